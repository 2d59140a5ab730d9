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
//!   start from the KV bucket when a replica first opens a room, and are
//!   reconciled with it whenever the connection to NATS comes back.
//! - **Outages**: the main client reconnects by itself, keeps what it was
//!   asked to send meanwhile, and sends it once NATS is back (room readers,
//!   releases, refreshes and notes want exactly that). Lines and claims go
//!   through a [`Writer`] instead, whose failures are final: a line said while
//!   NATS is away is refused at once and never stored later.
//!
//! Layout: `streams.rs` (lines), `presence.rs` (notes between replicas),
//! `note.rs` (the note itself, also a claim's value), `claims.rs` (nicks), `writer.rs` (the connection for writes whose failure
//! is final), `naming.rs` (every stream, subject and key name); this file
//! connects, opens rooms, and implements [`Backplane`] from those pieces.

mod claims;
mod naming;
mod note;
mod presence;
mod streams;
mod writer;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_nats::jetstream;
use tokio::{
    sync::{OnceCell, watch},
    time::timeout,
};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, warn};

use crate::{
    backplane::Backplane,
    error::ChatError,
    event::{HistoryPage, LeaveReason, RoomSummary},
    hub::{Membership, RoomHub},
    names::{Nick, RoomName},
};
use claims::Claims;
use naming::Naming;
use note::PresenceNote;
use writer::Writer;

pub use claims::{HEARTBEAT, MEMBER_TTL};

/// Longest a replica waits for a room's retained lines when it opens the room.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The rooms a replica reads, each opened once (an empty cell: opening, or
/// failed and to be tried again).
type OpenRooms = Arc<Mutex<HashMap<RoomName, Arc<OnceCell<()>>>>>;

/// Rooms shared by every replica connected to the same NATS and prefix.
#[derive(Debug)]
pub struct NatsBackplane {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// Lines and nick claims: writes whose failure is final (see `writer.rs`).
    writer: Arc<Writer>,
    claims: Claims,
    hub: Arc<RoomHub>,
    naming: Naming,
    options: NatsOptions,
    /// This process's id in presence events and claims.
    replica: String,
    /// Rooms this replica reads, each opened once.
    open: OpenRooms,
    /// Stops the room readers and the heartbeat when the backplane goes.
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

impl NatsBackplane {
    /// Connects to NATS, makes sure the members bucket exists, and starts the
    /// heartbeat that keeps this replica's nick claims alive and the task that
    /// reconciles member lists after reconnecting. The hub is a mirror of the
    /// rooms' streams: build it with `evict_idle_rooms` off.
    pub async fn connect(options: NatsOptions, hub: Arc<RoomHub>) -> Result<Self, ChatError> {
        let naming = Naming::new(&options.prefix)?;
        let (connected, connects) = watch::channel(0_u64);
        let connected = Arc::new(connected);
        let client = async_nats::ConnectOptions::new()
            .name("quartet-chat")
            .event_callback(move |event| {
                let connected = connected.clone();
                async move {
                    if event == async_nats::Event::Connected {
                        connected.send_modify(|count| *count += 1);
                    }
                }
            })
            .connect(options.url.as_str())
            .await
            .map_err(|error| error.to_string())
            .map_err(ChatError::backplane(&format!(
                "cannot connect to {}",
                options.url
            )))?;
        let jetstream = jetstream::new(client.clone());
        let writer = Arc::new(Writer::new(&options.url, &naming.claims_bucket()));
        let claims = Claims::open(&jetstream, &naming.claims_bucket(), writer.clone()).await?;
        let stop = CancellationToken::new();
        let backplane = Self {
            client,
            jetstream,
            writer,
            claims,
            hub,
            naming,
            options,
            replica: nuid::next().to_string(),
            open: OpenRooms::default(),
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
        };
        tokio::spawn(claims::heartbeat(
            backplane.claims.clone(),
            backplane.hub.clone(),
            backplane.replica.clone(),
            backplane.stop.clone(),
        ));
        tokio::spawn(reconcile_on_reconnect(
            connects,
            backplane.claims.clone(),
            backplane.hub.clone(),
            backplane.replica.clone(),
            backplane.open.clone(),
            backplane.stop.clone(),
        ));
        Ok(backplane)
    }

    fn note(&self, room: &RoomName, nick: &Nick, left: Option<LeaveReason>) -> PresenceNote {
        PresenceNote::new(&self.replica, room, nick, left)
    }

    /// Tells the other replicas with members in `room`.
    async fn publish_presence(&self, room: &RoomName, note: &PresenceNote) {
        let subject = self.naming.presence_subject(room);
        presence::publish(&self.client, subject, room, note).await;
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

    /// Reads `room` from now on. The readers it starts are stopped if it
    /// fails halfway (a later join tries again from the start).
    async fn start_reading(&self, room: &RoomName) -> Result<(), ChatError> {
        let error = ChatError::backplane("cannot open the room's stream");
        let (stream, last_seq) = streams::open(
            &self.jetstream,
            room,
            self.naming.stream(room),
            self.naming.line_subject(room),
            self.options.retain,
            self.options.max_text_bytes,
        )
        .await?;
        let stop = self.stop.child_token();
        let stop_if_failed = stop.clone().drop_guard();

        // Presence first, then the claims already there: nothing falls between.
        let presence = self
            .client
            .subscribe(self.naming.presence_subject(room))
            .await
            .map_err(|e| error(e.to_string()))?;
        tokio::spawn(presence::read_presence(
            presence,
            self.hub.clone(),
            self.replica.clone(),
            stop.clone(),
        ));
        presence::reconcile(
            &self.hub,
            &self.claims,
            std::slice::from_ref(room),
            &self.replica,
        )
        .await?;

        let (applied, mut applied_rx) = tokio::sync::watch::channel(0_u64);
        tokio::spawn(streams::read_lines(
            stream,
            self.client.clone(),
            self.naming.line_subject(room),
            self.hub.clone(),
            room.clone(),
            applied,
            stop,
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
        stop_if_failed.disarm();
        debug!(room = %room, last_seq, "room open on the nats backplane");
        Ok(())
    }
}

/// Each time the main connection comes back, reconciles the member lists of
/// the open rooms with the nick claims: presence notes sent while this
/// replica was cut off are lost, so a member who left meanwhile would stay
/// listed and one who joined would be missing. The claims are read after the
/// presence subscriptions are renewed (both on the new connection, in that
/// order), so a note sent after the read is not missed either.
async fn reconcile_on_reconnect(
    mut connects: watch::Receiver<u64>,
    claims: Claims,
    hub: Arc<RoomHub>,
    replica: String,
    open: OpenRooms,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = connects.changed() => if changed.is_err() { return },
        }
        let rooms: Vec<RoomName> = open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, cell)| cell.initialized())
            .map(|(room, _)| room.clone())
            .collect();
        if let Err(error) = presence::reconcile(&hub, &claims, &rooms, &replica).await {
            warn!(%error, "cannot reconcile members after reconnecting");
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
        self.claims.claim(room, nick, &note).await?;
        let membership = match self.hub.join(room, nick, since) {
            Ok(membership) => membership,
            Err(error) => {
                let _ = self.claims.release(room, nick).await;
                return Err(error);
            }
        };
        self.publish_presence(room, &note).await;
        Ok(membership)
    }

    async fn say(&self, room: &RoomName, nick: &Nick, text: String) -> Result<(), ChatError> {
        streams::store_line(
            &self.writer,
            self.naming.line_subject(room),
            room,
            nick,
            text,
        )
        .await
    }

    async fn leave(&self, room: &RoomName, nick: &Nick, reason: LeaveReason) {
        self.hub.leave(room, nick, reason);
        if let Err(error) = self.claims.release(room, nick).await {
            warn!(room = %room, nick = %nick, %error, "cannot release nick claim; it expires by itself");
        }
        let note = self.note(room, nick, Some(reason));
        self.publish_presence(room, &note).await;
    }

    async fn rooms(&self) -> Result<Vec<RoomSummary>, ChatError> {
        let rooms = streams::rooms(&self.jetstream, &self.naming.stream_prefix()).await?;
        let mut members: HashMap<String, Vec<Nick>> = HashMap::new();
        for (hash, note) in self.claims.all().await? {
            if let Ok(nick) = Nick::parse(&note.nick) {
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
            if !streams::exists(&self.jetstream, self.naming.stream(room)).await? {
                return Err(ChatError::NoSuchRoom(room.to_string()));
            }
            self.open_room(room).await?;
        }
        self.hub.history(room, since, limit)
    }

    fn hub(&self) -> &Arc<RoomHub> {
        &self.hub
    }
}
