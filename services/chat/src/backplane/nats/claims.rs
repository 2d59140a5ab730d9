//! Nick claims: a KV bucket with one key per (room, nick), taken with
//! `create` (which fails if the key is there), so a nick is unique across
//! replicas. Keys expire after [`MEMBER_TTL`] unless the owning replica's
//! [`heartbeat`] refreshes them, so a crashed replica's nicks come free by
//! themselves.
//!
//! A claim is taken through the [`Writer`]: a join refused because NATS did
//! not answer must not take the nick later, when the main client would send
//! the queued `create` after reconnecting. Releases and refreshes go through
//! the main client, whose queue is what they want: done once NATS is back.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use async_nats::jetstream::{
    self, kv,
    stream::{self, DiscardPolicy, StorageType},
};
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{
    naming::{claim_key, room_hash},
    note::PresenceNote,
    writer::Writer,
};
use crate::{
    error::ChatError,
    hub::RoomHub,
    names::{Nick, RoomName},
};

/// How long a nick claim lives without a refresh from its replica: how long a
/// crashed replica's members keep their nicks.
pub const MEMBER_TTL: Duration = Duration::from_secs(30);
/// How often a replica refreshes its members' claims (well inside the TTL).
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// The bucket of nick claims; each value is the owner's [`PresenceNote`].
#[derive(Debug, Clone)]
pub(super) struct Claims {
    store: kv::Store,
    writer: Arc<Writer>,
}

impl Claims {
    /// Opens (creating if needed) the bucket. Its stream is created here with
    /// the layout a KV bucket has, rather than with `create_key_value`, which
    /// first reads account fields NATS servers before 2.10 do not send.
    pub(super) async fn open(
        jetstream: &jetstream::Context,
        bucket: &str,
        writer: Arc<Writer>,
    ) -> Result<Self, ChatError> {
        let context = format!("cannot open bucket {bucket}");
        let error = ChatError::backplane(&context);
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
            .map_err(|e| error(e.to_string()))?;
        let store = jetstream
            .get_key_value(bucket)
            .await
            .map_err(|e| error(e.to_string()))?;
        Ok(Self { store, writer })
    }

    /// Takes `nick` in `room` for the member `note` describes; NickTaken if
    /// any replica holds it. A claim whose answer was lost (NATS went away
    /// meanwhile) may have been taken: unrefreshed, it expires within
    /// [`MEMBER_TTL`].
    pub(super) async fn claim(
        &self,
        room: &RoomName,
        nick: &Nick,
        note: &PresenceNote,
    ) -> Result<(), ChatError> {
        let value = serde_json::to_vec(note).map_err(|e| ChatError::Backplane(e.to_string()))?;
        let link = self
            .writer
            .link()
            .await
            .map_err(|error| ChatError::Backplane(format!("cannot claim the nick: {error}")))?;
        match link
            .claims
            .create(claim_key(room, nick), value.into())
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
                Err(ChatError::NickTaken {
                    room: room.to_string(),
                    nick: nick.to_string(),
                })
            }
            Err(error) => Err(ChatError::Backplane(format!(
                "cannot claim the nick: {error}"
            ))),
        }
    }

    /// Holds `nick` in `room` for another [`MEMBER_TTL`], whoever held it.
    async fn refresh(
        &self,
        room: &RoomName,
        nick: &Nick,
        note: &PresenceNote,
    ) -> Result<(), String> {
        let value = serde_json::to_vec(note).map_err(|e| e.to_string())?;
        self.store
            .put(claim_key(room, nick), Bytes::from(value))
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Frees `nick` in `room`.
    pub(super) async fn release(
        &self,
        room: &RoomName,
        nick: &Nick,
    ) -> Result<(), kv::DeleteError> {
        self.store.delete(claim_key(room, nick)).await
    }

    /// The claims held in each of `rooms`, by any replica, by room hash (a
    /// room without claims is absent). The keys are listed once, and only
    /// those of `rooms` are read.
    pub(super) async fn of_rooms(
        &self,
        rooms: &[&RoomName],
    ) -> Result<HashMap<String, Vec<PresenceNote>>, ChatError> {
        let hashes: HashSet<String> = rooms.iter().map(|room| room_hash(room)).collect();
        let error = ChatError::backplane("cannot read the rooms' members");
        let mut by_room: HashMap<String, Vec<PresenceNote>> = HashMap::new();
        for (hash, note) in self.notes(|hash| hashes.contains(hash), error).await? {
            by_room.entry(hash).or_default().push(note);
        }
        Ok(by_room)
    }

    /// Every claim, as (room hash, note).
    pub(super) async fn all(&self) -> Result<Vec<(String, PresenceNote)>, ChatError> {
        self.notes(|_| true, ChatError::backplane("cannot list members"))
            .await
    }

    /// The claims of the rooms whose hash `wanted` accepts, as (room hash,
    /// note). A claim that expired between listing and reading is gone.
    async fn notes(
        &self,
        wanted: impl Fn(&str) -> bool,
        error: impl Fn(String) -> ChatError,
    ) -> Result<Vec<(String, PresenceNote)>, ChatError> {
        let mut keys = self.store.keys().await.map_err(|e| error(e.to_string()))?;
        let mut notes = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| error(e.to_string()))?;
            let Some((hash, _)) = key.split_once('.') else {
                continue;
            };
            if !wanted(hash) {
                continue;
            }
            let note = self
                .store
                .get(key.as_str())
                .await
                .map_err(|e| error(e.to_string()))?
                .and_then(|value| serde_json::from_slice::<PresenceNote>(&value).ok());
            if let Some(note) = note {
                notes.push((hash.to_owned(), note));
            }
        }
        Ok(notes)
    }
}

/// Refreshes this replica's nick claims every [`HEARTBEAT`] so they outlive
/// [`MEMBER_TTL`], until `stop`.
pub(super) async fn heartbeat(
    claims: Claims,
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
            let note = PresenceNote::new(&replica, &room, &nick, None);
            if let Err(error) = claims.refresh(&room, &nick, &note).await {
                warn!(room = %room, nick = %nick, %error, "cannot refresh nick claim");
            }
            // The member may have left while the claim was refreshed: do not
            // hold its nick for another TTL.
            if !hub.is_local_member(&room, &nick) {
                let _ = claims.release(&room, &nick).await;
            }
        }
    }
}
