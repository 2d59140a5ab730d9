//! [`LocalBackplane`]: every member on this server; the hub does everything.

use std::sync::Arc;

use crate::{
    backplane::Backplane,
    error::ChatError,
    event::{HistoryPage, LeaveReason, RoomSummary},
    hub::{Membership, RoomHub},
    names::{Nick, RoomName},
};

/// In-process rooms: the default, and the baseline the NATS backplane is
/// measured against.
#[derive(Debug, Clone)]
pub struct LocalBackplane {
    hub: Arc<RoomHub>,
}

impl LocalBackplane {
    /// A backplane over `hub`.
    pub fn new(hub: Arc<RoomHub>) -> Self {
        Self { hub }
    }
}

impl Backplane for LocalBackplane {
    async fn join(
        &self,
        room: &RoomName,
        nick: &Nick,
        since: Option<u64>,
    ) -> Result<Membership, ChatError> {
        self.hub.join(room, nick, since)
    }

    async fn say(&self, room: &RoomName, nick: &Nick, text: String) -> Result<(), ChatError> {
        self.hub.say(room, nick, text).map(drop)
    }

    async fn leave(&self, room: &RoomName, nick: &Nick, reason: LeaveReason) {
        self.hub.leave(room, nick, reason);
    }

    async fn rooms(&self) -> Result<Vec<RoomSummary>, ChatError> {
        Ok(self.hub.rooms())
    }

    async fn history(
        &self,
        room: &RoomName,
        since: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, ChatError> {
        self.hub.history(room, since, limit)
    }

    fn hub(&self) -> &Arc<RoomHub> {
        &self.hub
    }
}
