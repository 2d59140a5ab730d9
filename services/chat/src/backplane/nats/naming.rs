//! How one deployment names its rooms' things in NATS: streams
//! `{prefix}_chat_{h}`, subjects `{prefix}.chat.room.{h}` and
//! `{prefix}.chat.presence.{h}`, bucket `{prefix}_chat_members` with keys
//! `{h}.{n}`, where `h` is the first 128 bits of SHA-256 of the room name and
//! `n` the nick's case-folded form, both hex (room names and nicks may hold
//! characters subjects, stream names and keys cannot). A room's stream's
//! description holds the room's real name.

use sha2::{Digest as _, Sha256};

use crate::{
    error::ChatError,
    names::{Nick, RoomName},
};

/// The names under one prefix, so several deployments (or test runs) can
/// share one NATS.
#[derive(Debug, Clone)]
pub(super) struct Naming {
    prefix: String,
}

impl Naming {
    /// Names under `prefix`: ASCII letters, digits, `-` and `_`, which every
    /// subject, stream and bucket name accepts.
    pub(super) fn new(prefix: &str) -> Result<Self, ChatError> {
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ChatError::Backplane(format!(
                "prefix {prefix:?} must be ASCII letters, digits, '-' or '_'"
            )));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    /// The stream that holds `room`'s lines.
    pub(super) fn stream(&self, room: &RoomName) -> String {
        format!("{}{}", self.stream_prefix(), room_hash(room))
    }

    /// What every room stream's name starts with, before the room's hash.
    pub(super) fn stream_prefix(&self) -> String {
        format!("{}_chat_", self.prefix)
    }

    /// The subject `room`'s lines are stored on.
    pub(super) fn line_subject(&self, room: &RoomName) -> String {
        format!("{}.chat.room.{}", self.prefix, room_hash(room))
    }

    /// The subject `room`'s presence notes travel on.
    pub(super) fn presence_subject(&self, room: &RoomName) -> String {
        format!("{}.chat.presence.{}", self.prefix, room_hash(room))
    }

    /// The KV bucket of nick claims.
    pub(super) fn claims_bucket(&self) -> String {
        format!("{}_chat_members", self.prefix)
    }
}

/// The key that claims `nick` in `room`: the nick's case-folded form, so
/// `Ana` on one replica and `ana` on another cannot both hold it.
pub(super) fn claim_key(room: &RoomName, nick: &Nick) -> String {
    format!("{}{}", claim_key_prefix(room), hex(nick.key().as_bytes()))
}

/// What the key of every claim in `room` starts with.
pub(super) fn claim_key_prefix(room: &RoomName) -> String {
    format!("{}.", room_hash(room))
}

/// The first 128 bits of SHA-256 of the room's name, hex.
pub(super) fn room_hash(room: &RoomName) -> String {
    let digest = Sha256::digest(room.as_str().as_bytes());
    hex(&digest[..16])
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
