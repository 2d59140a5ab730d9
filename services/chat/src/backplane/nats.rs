//! [`NatsBackplane`]: replicas that share rooms through NATS with JetStream.
//!
//! - **Lines and order**: each room is one JetStream stream (`max_messages` =
//!   the retention) with one subject. JetStream assigns the stream sequence
//!   when it stores a line, and that *is* the room's `seq`: one order, dense,
//!   decided in one place, surviving any replica's restart. A replica with
//!   members in the room reads the stream with an ordered push consumer (which
//!   recreates itself on any gap) into its [`RoomHub`], which fans out to its
//!   members exactly as in-process rooms do.
//! - **Nicks**: a KV bucket holds one key per (room, nick), taken with `create`
//!   (fails if present), so a nick is unique across replicas. Keys expire after
//!   [`MEMBER_TTL`] unless the owning replica refreshes them (every
//!   [`HEARTBEAT`]), so a crashed replica's nicks come free by themselves.
//! - **Presence**: MemberJoined/MemberLeft travel on a core NATS subject per
//!   room (best effort: not stored, not part of the sequence); member lists
//!   start from the KV bucket when a replica first opens a room.
//!
//! Names: streams `{PREFIX}_chat_{h}`, subjects `{prefix}.chat.room.{h}` and
//! `{prefix}.chat.presence.{h}`, bucket `{prefix}_chat_members`, where `h` is
//! the first 128 bits of SHA-256 of the room name, hex (room names may hold
//! characters subjects and stream names cannot); the stream's description holds
//! the room's real name.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, push},
    kv,
    stream::{self, DiscardPolicy, StorageType},
};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::{sync::OnceCell, time::timeout};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, warn};

use crate::{
    backplane::Backplane,
    error::ChatError,
    event::{ChatLine, HistoryPage, LeaveReason, Presence, RoomSummary},
    hub::{Membership, RoomHub},
    names::{Nick, RoomName},
};

/// How long a nick claim lives without a refresh from its replica: how long a
/// crashed replica's members keep their nicks.
pub const MEMBER_TTL: Duration = Duration::from_secs(30);
/// How often a replica refreshes its members' claims (well inside the TTL).
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// Longest a replica waits for a room's retained lines when it opens the room.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before re-reading a room's stream after the consumer failed.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Where NATS is and how this deployment names things in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsOptions {
    /// The NATS URL, e.g. nats://127.0.0.1:4222.
    pub url: String,
    /// Prefix of every subject, stream and bucket: ASCII letters, digits, `-`, `_`.
    pub prefix: String,
    /// Lines each room's stream retains.
    pub retain: usize,
    /// Largest line text, for the stream's message size limit.
    pub max_text_bytes: usize,
}

/// A line as stored in a room's stream; the sequence is the stream's own.
#[derive(Debug, Serialize, Deserialize)]
struct StoredLine {
    id: String,
    room: String,
    nick: String,
    text: String,
    time: SystemTime,
}

/// A presence event on the wire, and the value of a nick claim.
#[derive(Debug, Serialize, Deserialize)]
struct PresenceNote {
    /// The replica the member is connected to.
    replica: String,
    room: String,
    nick: String,
    left: Option<LeaveReason>,
    time: SystemTime,
}

fn backplane_error(context: &str) -> impl Fn(String) -> ChatError + '_ {
    move |error| ChatError::Backplane(format!("{context}: {error}"))
}

/// Rooms shared by every replica connected to the same NATS and prefix.
#[derive(Debug)]
pub struct NatsBackplane {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    members: kv::Store,
    hub: Arc<RoomHub>,
    options: NatsOptions,
    /// This process's id in presence events and claims.
    replica: String,
    /// Rooms this replica reads, each opened once.
    open: Mutex<HashMap<RoomName, Arc<OnceCell<()>>>>,
    /// Stops the room readers and the heartbeat when the backplane goes.
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

impl NatsBackplane {
    /// Connects to NATS, makes sure the members bucket exists, and starts the
    /// heartbeat that keeps this replica's nick claims alive. The hub is a
    /// mirror of the rooms' streams: build it with `evict_idle_rooms` off.
    pub async fn connect(options: NatsOptions, hub: Arc<RoomHub>) -> Result<Self, ChatError> {
        if options.prefix.is_empty()
            || !options
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ChatError::Backplane(format!(
                "prefix {:?} must be ASCII letters, digits, '-' or '_'",
                options.prefix
            )));
        }
        let client = async_nats::ConnectOptions::new()
            .name("quartet-chat")
            .connect(options.url.as_str())
            .await
            .map_err(|error| error.to_string())
            .map_err(backplane_error(&format!(
                "cannot connect to {}",
                options.url
            )))?;
        let jetstream = jetstream::new(client.clone());
        let bucket = format!("{}_chat_members", options.prefix);
        let members = open_claims_bucket(&jetstream, &bucket)
            .await
            .map_err(backplane_error(&format!("cannot open bucket {bucket}")))?;
        let stop = CancellationToken::new();
        let backplane = Self {
            client,
            jetstream,
            members,
            hub,
            options,
            replica: nuid::next().to_string(),
            open: Mutex::default(),
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
        };
        tokio::spawn(heartbeat(
            backplane.members.clone(),
            backplane.hub.clone(),
            backplane.replica.clone(),
            backplane.stop.clone(),
        ));
        Ok(backplane)
    }

    fn room_hash(room: &RoomName) -> String {
        let digest = Sha256::digest(room.as_str().as_bytes());
        hex(&digest[..16])
    }

    fn stream_name(&self, room: &RoomName) -> String {
        format!("{}_chat_{}", self.options.prefix, Self::room_hash(room))
    }

    fn stream_prefix(&self) -> String {
        format!("{}_chat_", self.options.prefix)
    }

    fn line_subject(&self, room: &RoomName) -> String {
        format!(
            "{}.chat.room.{}",
            self.options.prefix,
            Self::room_hash(room)
        )
    }

    fn presence_subject(&self, room: &RoomName) -> String {
        format!(
            "{}.chat.presence.{}",
            self.options.prefix,
            Self::room_hash(room)
        )
    }

    /// The KV key that claims `nick` in `room`: the nick's case-folded form,
    /// so `Ana` on one replica and `ana` on another cannot both hold it.
    fn claim_key(room: &RoomName, nick: &Nick) -> String {
        let nick_hex = hex(nick.key().as_bytes());
        format!("{}.{nick_hex}", Self::room_hash(room))
    }

    fn note(&self, room: &RoomName, nick: &Nick, left: Option<LeaveReason>) -> PresenceNote {
        PresenceNote {
            replica: self.replica.clone(),
            room: room.to_string(),
            nick: nick.to_string(),
            left,
            time: SystemTime::now(),
        }
    }

    /// Makes sure this replica reads `room`: its stream exists, its retained
    /// lines are in the hub, and its presence events arrive. Done once per room.
    async fn open_room(&self, room: &RoomName) -> Result<(), ChatError> {
        let cell = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            open.entry(room.clone()).or_default().clone()
        };
        cell.get_or_try_init(|| self.start_reading(room))
            .await
            .copied()
    }

    async fn start_reading(&self, room: &RoomName) -> Result<(), ChatError> {
        let error = backplane_error("cannot open the room's stream");
        let max_message_size =
            i32::try_from(self.options.max_text_bytes + 1024).unwrap_or(i32::MAX);
        let mut stream = self
            .jetstream
            .get_or_create_stream(stream::Config {
                name: self.stream_name(room),
                description: Some(room.to_string()),
                subjects: vec![self.line_subject(room)],
                max_messages: i64::try_from(self.options.retain).unwrap_or(i64::MAX),
                discard: DiscardPolicy::Old,
                max_message_size,
                storage: StorageType::File,
                ..stream::Config::default()
            })
            .await
            .map_err(|e| error(e.to_string()))?;
        let last_seq = stream
            .info()
            .await
            .map_err(|e| error(e.to_string()))?
            .state
            .last_sequence;

        // Presence first, then the claims already there: nothing falls between.
        let presence = self
            .client
            .subscribe(self.presence_subject(room))
            .await
            .map_err(|e| error(e.to_string()))?;
        tokio::spawn(read_presence(
            presence,
            self.hub.clone(),
            self.replica.clone(),
            self.stop.clone(),
        ));
        self.load_claims(room).await?;

        let (applied, mut applied_rx) = tokio::sync::watch::channel(0_u64);
        tokio::spawn(read_lines(
            stream,
            self.client.clone(),
            self.line_subject(room),
            self.hub.clone(),
            room.clone(),
            applied,
            self.stop.clone(),
        ));
        if last_seq > 0 {
            timeout(
                CATCH_UP_TIMEOUT,
                applied_rx.wait_for(|seq| *seq >= last_seq),
            )
            .await
            .map_err(|_| error("timed out reading the room's history".to_owned()))?
            .map_err(|_| error("the room reader stopped".to_owned()))?;
        }
        debug!(room = %room, last_seq, "room open on the nats backplane");
        Ok(())
    }

    /// Adds the members other replicas hold in `room` to the hub.
    async fn load_claims(&self, room: &RoomName) -> Result<(), ChatError> {
        let error = backplane_error("cannot read the room's members");
        let prefix = format!("{}.", Self::room_hash(room));
        let mut keys = self
            .members
            .keys()
            .await
            .map_err(|e| error(e.to_string()))?;
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| error(e.to_string()))?;
            if !key.starts_with(&prefix) {
                continue;
            }
            let Some(value) = self
                .members
                .get(key.as_str())
                .await
                .map_err(|e| error(e.to_string()))?
            else {
                continue;
            };
            if let Some(presence) = decode_presence(&value, &self.replica) {
                self.hub.apply_remote_presence(presence)?;
            }
        }
        Ok(())
    }

    async fn publish_presence(&self, room: &RoomName, note: &PresenceNote) {
        let Ok(payload) = serde_json::to_vec(note) else {
            return;
        };
        if let Err(error) = self
            .client
            .publish(self.presence_subject(room), payload.into())
            .await
        {
            warn!(room = %room, %error, "cannot publish presence");
            return;
        }
        // Publishing only queues the note; a replica shutting down must not
        // exit with its members' MemberLeft still in the buffer.
        if let Err(error) = self.client.flush().await {
            warn!(room = %room, %error, "cannot flush presence");
        }
    }

    /// Every claim in the bucket, as (room hash, nick).
    /// Every claim: (room hash, nick as its owner typed it). The key holds
    /// only the folded nick, so the nick shown is read from the claim's note.
    async fn all_claims(&self) -> Result<Vec<(String, String)>, ChatError> {
        let error = backplane_error("cannot list members");
        let mut keys = self
            .members
            .keys()
            .await
            .map_err(|e| error(e.to_string()))?;
        let mut claims = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| error(e.to_string()))?;
            let Some((hash, _)) = key.split_once('.') else {
                continue;
            };
            let note = self
                .members
                .get(key.as_str())
                .await
                .map_err(|e| error(e.to_string()))?
                .and_then(|value| serde_json::from_slice::<PresenceNote>(&value).ok());
            // A claim that expired between listing and reading is gone.
            if let Some(note) = note {
                claims.push((hash.to_owned(), note.nick));
            }
        }
        Ok(claims)
    }
}

/// Lower-case hex of `bytes`: a form every subject token and key accepts.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// Opens (creating if needed) the KV bucket of nick claims. The bucket's stream
/// is created here with the layout a KV bucket has, rather than with
/// `create_key_value`, which first reads account fields NATS servers before
/// 2.10 do not send.
async fn open_claims_bucket(
    jetstream: &jetstream::Context,
    bucket: &str,
) -> Result<kv::Store, String> {
    jetstream
        .get_or_create_stream(stream::Config {
            name: format!("KV_{bucket}"),
            description: Some("quartet chat: nick claims per room".to_owned()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: MEMBER_TTL,
            storage: StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: DiscardPolicy::New,
            num_replicas: 1,
            ..stream::Config::default()
        })
        .await
        .map_err(|error| error.to_string())?;
    jetstream
        .get_key_value(bucket)
        .await
        .map_err(|error| error.to_string())
}

/// A presence note from another replica, as a domain event (`None` for this
/// replica's own notes and for anything malformed).
fn decode_presence(payload: &[u8], own_replica: &str) -> Option<Presence> {
    let note: PresenceNote = serde_json::from_slice(payload).ok()?;
    if note.replica == own_replica {
        return None;
    }
    Some(Presence {
        room: RoomName::parse(&note.room).ok()?,
        nick: Nick::parse(&note.nick).ok()?,
        left: note.left,
        time: note.time,
    })
}

/// Turns a stored line into a domain line with its sequence number.
fn decode_line(room: &RoomName, seq: u64, payload: &[u8]) -> Option<ChatLine> {
    let stored: StoredLine = serde_json::from_slice(payload).ok()?;
    if stored.room != room.as_str() {
        return None;
    }
    Some(ChatLine {
        id: stored.id,
        seq,
        room: room.clone(),
        nick: Nick::parse(&stored.nick).ok()?,
        text: stored.text,
        time: stored.time,
    })
}

/// Reads a room's stream into the hub, in order, for as long as the backplane
/// lives; after a failure it resumes after the last line applied.
async fn read_lines(
    stream: stream::Stream,
    client: async_nats::Client,
    subject: String,
    hub: Arc<RoomHub>,
    room: RoomName,
    applied: tokio::sync::watch::Sender<u64>,
    stop: CancellationToken,
) {
    loop {
        let start_sequence = hub.last_seq(&room).unwrap_or(0) + 1;
        let consumer = stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: client.new_inbox(),
                filter_subject: subject.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence },
                ..push::OrderedConfig::default()
            })
            .await;
        let messages = match consumer {
            Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match messages {
            Ok(mut messages) => loop {
                let message = tokio::select! {
                    () = stop.cancelled() => return,
                    message = messages.next() => message,
                };
                let message = match message {
                    Some(Ok(message)) => message,
                    Some(Err(error)) => {
                        warn!(room = %room, %error, "room reader failed; resuming");
                        break;
                    }
                    None => break,
                };
                let Ok(info) = message.info() else { continue };
                let seq = info.stream_sequence;
                if let Some(line) = decode_line(&room, seq, &message.payload) {
                    if let Err(error) = hub.apply_line(line) {
                        warn!(room = %room, seq, %error, "cannot apply line");
                    }
                } else {
                    warn!(room = %room, seq, "skipping a malformed stored line");
                }
                applied.send_replace(seq);
            },
            Err(error) => warn!(room = %room, %error, "cannot read the room's stream"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RETRY_PAUSE) => {}
        }
    }
}

/// Applies other replicas' presence notes for one room.
async fn read_presence(
    mut subscriber: async_nats::Subscriber,
    hub: Arc<RoomHub>,
    replica: String,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return,
            message = subscriber.next() => message,
        };
        let Some(message) = message else { return };
        if let Some(presence) = decode_presence(&message.payload, &replica)
            && let Err(error) = hub.apply_remote_presence(presence)
        {
            warn!(%error, "cannot apply presence");
        }
    }
}

/// Refreshes this replica's nick claims so they outlive [`MEMBER_TTL`].
async fn heartbeat(
    members: kv::Store,
    hub: Arc<RoomHub>,
    replica: String,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(HEARTBEAT);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        for (room, nick) in hub.local_members() {
            let note = PresenceNote {
                replica: replica.clone(),
                room: room.to_string(),
                nick: nick.to_string(),
                left: None,
                time: SystemTime::now(),
            };
            let Ok(value) = serde_json::to_vec(&note) else {
                continue;
            };
            let key = NatsBackplane::claim_key(&room, &nick);
            if let Err(error) = members.put(key.as_str(), Bytes::from(value)).await {
                warn!(room = %room, nick = %nick, %error, "cannot refresh nick claim");
            }
            // The member may have left while the claim was refreshed: do not
            // hold its nick for another TTL.
            if !hub.is_local_member(&room, &nick) {
                let _ = members.delete(key.as_str()).await;
            }
        }
    }
}

impl Backplane for NatsBackplane {
    async fn join(
        &self,
        room: &RoomName,
        nick: &Nick,
        since: Option<u64>,
    ) -> Result<Membership, ChatError> {
        self.open_room(room).await?;
        let note = self.note(room, nick, None);
        let value = serde_json::to_vec(&note).map_err(|e| ChatError::Backplane(e.to_string()))?;
        let key = Self::claim_key(room, nick);
        match self.members.create(key.as_str(), value.into()).await {
            Ok(_) => {}
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
                return Err(ChatError::NickTaken {
                    room: room.to_string(),
                    nick: nick.to_string(),
                });
            }
            Err(error) => {
                return Err(ChatError::Backplane(format!(
                    "cannot claim the nick: {error}"
                )));
            }
        }
        let membership = match self.hub.join(room, nick, since) {
            Ok(membership) => membership,
            Err(error) => {
                let _ = self.members.delete(key.as_str()).await;
                return Err(error);
            }
        };
        self.publish_presence(room, &note).await;
        Ok(membership)
    }

    async fn say(&self, room: &RoomName, nick: &Nick, text: String) -> Result<(), ChatError> {
        let stored = StoredLine {
            id: nuid::next().to_string(),
            room: room.to_string(),
            nick: nick.to_string(),
            text,
            time: SystemTime::now(),
        };
        let payload =
            serde_json::to_vec(&stored).map_err(|e| ChatError::Backplane(e.to_string()))?;
        let error = backplane_error("cannot store the line");
        self.jetstream
            .publish(self.line_subject(room), payload.into())
            .await
            .map_err(|e| error(e.to_string()))?
            .await
            .map_err(|e| error(e.to_string()))?;
        Ok(())
    }

    async fn leave(&self, room: &RoomName, nick: &Nick, reason: LeaveReason) {
        self.hub.leave(room, nick, reason);
        if let Err(error) = self
            .members
            .delete(Self::claim_key(room, nick).as_str())
            .await
        {
            warn!(room = %room, nick = %nick, %error, "cannot release nick claim; it expires by itself");
        }
        let note = self.note(room, nick, Some(reason));
        self.publish_presence(room, &note).await;
    }

    async fn rooms(&self) -> Result<Vec<RoomSummary>, ChatError> {
        let error = backplane_error("cannot list rooms");
        let prefix = self.stream_prefix();
        let mut rooms: BTreeMap<String, (RoomName, u64)> = BTreeMap::new();
        let mut streams = self.jetstream.streams();
        while let Some(info) = streams.next().await {
            let info = info.map_err(|e| error(e.to_string()))?;
            let Some(hash) = info.config.name.strip_prefix(&prefix) else {
                continue;
            };
            let Some(name) = info
                .config
                .description
                .as_deref()
                .and_then(|name| RoomName::parse(name).ok())
            else {
                continue;
            };
            rooms.insert(hash.to_owned(), (name, info.state.last_sequence));
        }
        let mut members: HashMap<String, Vec<Nick>> = HashMap::new();
        for (hash, nick) in self.all_claims().await? {
            if let Ok(nick) = Nick::parse(&nick) {
                members.entry(hash).or_default().push(nick);
            }
        }
        let mut summaries: Vec<RoomSummary> = rooms
            .into_iter()
            .map(|(hash, (name, last_seq))| {
                let mut nicks = members.remove(&hash).unwrap_or_default();
                nicks.sort();
                RoomSummary {
                    name,
                    members: nicks,
                    last_seq,
                }
            })
            .filter(|summary| !summary.members.is_empty() || summary.last_seq > 0)
            .collect();
        summaries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(summaries)
    }

    async fn history(
        &self,
        room: &RoomName,
        since: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, ChatError> {
        if self.hub.last_seq(room).is_none() {
            // Only rooms that exist in NATS are opened; GetHistory creates nothing.
            match self.jetstream.get_stream(self.stream_name(room)).await {
                Ok(_) => self.open_room(room).await?,
                Err(error)
                    if matches!(
                        error.kind(),
                        jetstream::context::GetStreamErrorKind::JetStream(ref js)
                            if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                    ) =>
                {
                    return Err(ChatError::NoSuchRoom(room.to_string()));
                }
                Err(error) => return Err(ChatError::Backplane(error.to_string())),
            }
        }
        self.hub.history(room, since, limit)
    }
}
