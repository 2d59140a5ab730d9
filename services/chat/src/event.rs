//! What happens in a room, in domain terms: lines said, members coming and
//! going. No gRPC types; `grpc.rs` maps these to the contract.

use std::{
    fmt,
    sync::{Arc, OnceLock},
    time::SystemTime,
};

use bytes::Bytes;

use crate::names::{Nick, RoomName};

/// A line said in a room, with its place in the room's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    /// Globally unique id, assigned when the line was accepted.
    pub id: String,
    /// Position in the room: 1 for the first line, then +1 each.
    pub seq: u64,
    /// The room it was said in.
    pub room: RoomName,
    /// Who said it.
    pub nick: Nick,
    /// What was said.
    pub text: String,
    /// When it was accepted.
    pub time: SystemTime,
    /// The line as the wire carries it, made by the first member's stream
    /// that sends it and shared by every other: a room encodes each line
    /// once, not once per member.
    pub encoding: Encoding,
}

/// A line's encoding for the wire: opaque bytes that the gRPC adapter makes
/// once and reads many times. A cache, never part of what the line is: any
/// two are equal, and a clone starts empty (a cloned line may be changed).
#[derive(Default)]
pub struct Encoding(OnceLock<Bytes>);

impl Clone for Encoding {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl Encoding {
    /// The bytes, made by `encode` if this is the first call.
    pub fn get_or_init(&self, encode: impl FnOnce() -> Bytes) -> Bytes {
        self.0.get_or_init(encode).clone()
    }
}

impl PartialEq for Encoding {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for Encoding {}

impl fmt::Debug for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.get() {
            Some(bytes) => write!(f, "Encoding({} bytes)", bytes.len()),
            None => f.write_str("Encoding(not yet)"),
        }
    }
}

/// Why a member left a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LeaveReason {
    /// The member said goodbye (a Leave event, `bye`).
    Bye,
    /// The member's stream closed without a goodbye.
    Disconnected,
    /// The member could not keep up and was removed.
    SlowConsumer,
    /// The member's server shut down.
    ServerShutdown,
}

/// Someone entered or left a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// The room.
    pub room: RoomName,
    /// Who.
    pub nick: Nick,
    /// `None` for a join, the reason for a leave.
    pub left: Option<LeaveReason>,
    /// When.
    pub time: SystemTime,
}

/// One event of a room's live feed, cheap to clone for every member.
#[derive(Debug, Clone)]
pub enum RoomEvent {
    /// A line said.
    Line(Arc<ChatLine>),
    /// A member joined or left.
    Presence(Arc<Presence>),
}

/// What a joining member is told and given.
#[derive(Debug)]
pub struct JoinSnapshot {
    /// Everyone in the room now, the joiner included, ordered by nick.
    pub members: Vec<Nick>,
    /// The room's latest sequence number when the member joined.
    pub last_seq: u64,
    /// Lines the member asked for that are no longer retained (inclusive range).
    pub gap: Option<(u64, u64)>,
    /// History to send before live events, in sequence order.
    pub replay: Vec<Arc<ChatLine>>,
}

/// A room as listed by ListRooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    /// The room's name.
    pub name: RoomName,
    /// The members now, ordered by nick.
    pub members: Vec<Nick>,
    /// Its latest sequence number (0 when none).
    pub last_seq: u64,
}

/// A page of a room's retained lines.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// The lines, in sequence order.
    pub lines: Vec<Arc<ChatLine>>,
    /// The room's latest sequence number when read.
    pub last_seq: u64,
}
