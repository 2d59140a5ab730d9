//! Everything that can go wrong in chat, and its gRPC status, in one place.

use std::time::Duration;

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
    /// A new Chat stream sent no Join in time; an idle stream must not hold a
    /// slot forever.
    #[error("no Join within {}s of opening the stream", .0.as_secs())]
    JoinTimedOut(Duration),
    /// The server is draining: the stream ends so the member can go
    /// elsewhere; one that had joined is told where to resume from.
    #[error("server is shutting down{}", resume_hint(*.since_seq))]
    ShuttingDown {
        /// The last sequence number the member was shown, once it had joined.
        since_seq: Option<u64>,
    },
    /// The room's live feed closed under a member.
    #[error("the room was closed")]
    RoomClosed,
    /// The backplane (NATS) failed; the message says how.
    #[error("backplane: {0}")]
    Backplane(String),
    /// The backplane could not store a line, and never will: it was not
    /// said.
    #[error("backplane: the line was not said: {0}")]
    LineNotSaid(String),
    /// The backplane took a line but could not confirm it in time (NATS went
    /// away meanwhile): it may have been said, and if so the room shows it
    /// once.
    #[error(
        "backplane: the line may have been said, unconfirmed ({0}); rejoin with since_seq to see"
    )]
    LineInDoubt(String),
}

impl ChatError {
    /// A backplane failure while doing `context`, for the `map_err` of each
    /// of the backplane's many calls.
    pub(crate) fn backplane(context: &str) -> impl Fn(String) -> Self + '_ {
        move |error| Self::Backplane(format!("{context}: {error}"))
    }
}

impl From<ChatError> for Status {
    fn from(error: ChatError) -> Self {
        let message = error.to_string();
        match error {
            ChatError::InvalidName { .. } | ChatError::NotJoined => {
                Status::invalid_argument(message)
            }
            ChatError::AlreadyJoined { .. } => Status::failed_precondition(message),
            ChatError::NickTaken { .. } => Status::already_exists(message),
            ChatError::NoSuchRoom(_) => Status::not_found(message),
            ChatError::TooManyRooms(_) => Status::resource_exhausted(message),
            ChatError::JoinTimedOut(_) => Status::deadline_exceeded(message),
            ChatError::ShuttingDown { .. }
            | ChatError::RoomClosed
            | ChatError::Backplane(_)
            | ChatError::LineNotSaid(_)
            | ChatError::LineInDoubt(_) => Status::unavailable(message),
        }
    }
}

/// How a drained member resumes without missing anything, when it had joined.
fn resume_hint(since_seq: Option<u64>) -> String {
    since_seq
        .map(|seq| format!("; rejoin with since_seq {seq} to miss nothing"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{ChatError, Status};
    use tonic::Code;

    #[test]
    fn a_drain_is_unavailable_and_says_where_to_resume_once_joined() {
        let before_join = Status::from(ChatError::ShuttingDown { since_seq: None });
        assert_eq!(
            (before_join.code(), before_join.message()),
            (Code::Unavailable, "server is shutting down")
        );
        let joined = Status::from(ChatError::ShuttingDown { since_seq: Some(7) });
        assert_eq!(
            (joined.code(), joined.message()),
            (
                Code::Unavailable,
                "server is shutting down; rejoin with since_seq 7 to miss nothing"
            )
        );
    }
}
