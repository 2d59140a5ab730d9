//! Everything that can go wrong in chat, and its gRPC status, in one place.

use tonic::Status;

/// Why a chat request was refused or a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// A room name or nick breaks the contract's rules.
    #[error("{field}: {reason}")]
    InvalidName {
        /// "room" or "nick".
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The first event of a Chat stream was not a Join (or carried no event).
    #[error("the first event must be a Join")]
    NotJoined,
    /// A second Join on one stream.
    #[error("already joined {room} as {nick}; one stream is one membership")]
    AlreadyJoined {
        /// The room this stream is in.
        room: String,
        /// Its nick there.
        nick: String,
    },
    /// The nick is in use in the room.
    #[error("nick {nick:?} is taken in room {room:?}")]
    NickTaken {
        /// The room.
        room: String,
        /// The nick asked for.
        nick: String,
    },
    /// GetHistory for a room that has never had a message.
    #[error("room {0:?} has no messages")]
    NoSuchRoom(String),
    /// Creating one more room would pass the server's room limit.
    #[error("this server already holds its limit of {0} rooms")]
    TooManyRooms(usize),
    /// A GetHistory limit above the maximum.
    #[error("limit: at most {max}, got {got}")]
    LimitTooLarge {
        /// The maximum.
        max: u32,
        /// What was asked.
        got: u32,
    },
    /// The backplane (NATS) failed; the message says how.
    #[error("backplane: {0}")]
    Backplane(String),
}

impl From<ChatError> for Status {
    fn from(error: ChatError) -> Self {
        let message = error.to_string();
        match error {
            ChatError::InvalidName { .. }
            | ChatError::NotJoined
            | ChatError::LimitTooLarge { .. } => Status::invalid_argument(message),
            ChatError::AlreadyJoined { .. } => Status::failed_precondition(message),
            ChatError::NickTaken { .. } => Status::already_exists(message),
            ChatError::NoSuchRoom(_) => Status::not_found(message),
            ChatError::TooManyRooms(_) => Status::resource_exhausted(message),
            ChatError::Backplane(_) => Status::unavailable(message),
        }
    }
}
