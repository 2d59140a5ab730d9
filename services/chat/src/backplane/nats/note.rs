//! [`PresenceNote`]: what one replica says about a member, both as a
//! presence event on the wire (`presence.rs`) and as the value of the
//! member's nick claim (`claims.rs`); its own file so neither of those
//! imports the other for it.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::{
    event::{LeaveReason, Presence},
    names::{Nick, RoomName},
};

/// A presence event on the wire, and the value of a nick claim.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PresenceNote {
    /// The replica the member is connected to.
    replica: String,
    room: String,
    /// The nick as its owner typed it (claim keys hold only its folded form).
    pub(super) nick: String,
    left: Option<LeaveReason>,
    time: SystemTime,
}

impl PresenceNote {
    /// A note from `replica` that `nick` joined `room` (`left` is `None`) or
    /// left it, now.
    pub(super) fn new(
        replica: &str,
        room: &RoomName,
        nick: &Nick,
        left: Option<LeaveReason>,
    ) -> Self {
        Self {
            replica: replica.to_owned(),
            room: room.to_string(),
            nick: nick.to_string(),
            left,
            time: SystemTime::now(),
        }
    }

    /// The note as a domain event; `None` for `own_replica`'s own notes and
    /// for names that do not parse.
    pub(super) fn into_presence(self, own_replica: &str) -> Option<Presence> {
        if self.replica == own_replica {
            return None;
        }
        Some(Presence {
            room: RoomName::parse(&self.room).ok()?,
            nick: Nick::parse(&self.nick).ok()?,
            left: self.left,
            time: self.time,
        })
    }
}
