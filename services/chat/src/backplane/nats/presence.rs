//! Presence between replicas: MemberJoined and MemberLeft travel as notes on
//! a core NATS subject per room (best effort: not stored, not part of the
//! sequence). The same note is the value of a nick claim.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use futures_util::StreamExt as _;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{claims::Claims, naming::room_hash, note::PresenceNote};
use crate::{
    error::ChatError,
    hub::RoomHub,
    names::{Nick, RoomName},
};

/// Longest a presence note waits to be flushed. While NATS is away the note
/// stays queued in the client and goes out once NATS is back; a leave is not
/// held for that.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Sends `note` to the other replicas on `subject`, and flushes: publishing
/// only queues the note, and a replica shutting down must not exit with its
/// members' MemberLeft still in the buffer.
pub(super) async fn publish(
    client: &async_nats::Client,
    subject: String,
    room: &RoomName,
    note: &PresenceNote,
) {
    let Ok(payload) = serde_json::to_vec(note) else {
        return;
    };
    if let Err(error) = client.publish(subject, payload.into()).await {
        warn!(room = %room, %error, "cannot publish presence");
        return;
    }
    match timeout(FLUSH_TIMEOUT, client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => warn!(room = %room, %error, "cannot flush presence"),
        Err(_) => debug!(room = %room, "presence queued until nats is back"),
    }
}

/// Makes the members from other replicas of each of `rooms` those the nick
/// claims name. Notes are news of changes and NATS keeps none of them: a
/// replica cut off from NATS misses some, and the claims are what is true
/// (but for a note that arrives while they are read, which is newer: the hub
/// keeps what such a note said). On an error the rooms it could not read
/// stay as they were, and the first error is returned.
pub(super) async fn reconcile(
    hub: &RoomHub,
    claims: &Claims,
    rooms: &[RoomName],
    own_replica: &str,
) -> Result<(), ChatError> {
    let mut failed = None;
    let mut syncing = Vec::with_capacity(rooms.len());
    for room in rooms {
        match hub.begin_remote_sync(room) {
            Ok(()) => syncing.push(room),
            Err(error) => {
                failed.get_or_insert(error);
            }
        }
    }
    if syncing.is_empty() {
        return failed.map_or(Ok(()), Err);
    }
    let mut claimed = claims.of_rooms(&syncing).await;
    for room in syncing {
        let remote: Option<BTreeSet<Nick>> = claimed.as_mut().ok().map(|by_room| {
            by_room
                .remove(&room_hash(room))
                .unwrap_or_default()
                .into_iter()
                .filter_map(|note| note.into_presence(own_replica))
                .map(|presence| presence.nick)
                .collect()
        });
        if let Err(error) = hub.sync_remote_members(room, remote.as_ref()) {
            failed.get_or_insert(error);
        }
    }
    match (claimed, failed) {
        (Err(error), _) | (Ok(_), Some(error)) => Err(error),
        (Ok(_), None) => Ok(()),
    }
}

/// Applies other replicas' presence notes for one room.
pub(super) async fn read_presence(
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
        let presence = serde_json::from_slice::<PresenceNote>(&message.payload)
            .ok()
            .and_then(|note| note.into_presence(&replica));
        if let Some(presence) = presence
            && let Err(error) = hub.apply_remote_presence(presence)
        {
            warn!(%error, "cannot apply presence");
        }
    }
}
