//! Everything that can go wrong in the people database, and its gRPC status, in
//! one place.

use std::fmt;

use tonic::Status;

/// A field that failed validation: which one and why. Displays as
/// `person.email: not an email address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path in the request (`person.email`, `update_mask`).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    /// A validation failure of `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

/// Why a database operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseError {
    /// The request is invalid; nothing was changed.
    #[error("{0}")]
    Invalid(#[from] FieldError),
    /// No person has this id.
    #[error("person {0:?} not found")]
    NotFound(String),
    /// Create with an id that is taken.
    #[error("person {0:?} already exists")]
    AlreadyExists(String),
    /// A conditional write whose expected version is not the stored one.
    #[error("person {id:?} is at version {actual}, not the expected {expected}")]
    VersionMismatch {
        /// The record.
        id: String,
        /// What the client expected.
        expected: u64,
        /// What is stored.
        actual: u64,
    },
    /// A watch from a revision whose changes are no longer kept.
    #[error(
        "changes after revision {requested} are no longer kept (oldest kept: {oldest}); list again and watch from the list's revision"
    )]
    RevisionCompacted {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision still kept.
        oldest: u64,
    },
    /// A watch from a revision the store has not reached.
    #[error("revision {requested} is in the future (latest: {latest})")]
    RevisionInFuture {
        /// The revision asked for.
        requested: u64,
        /// The latest revision.
        latest: u64,
    },
    /// The store cannot be reached or is shutting down; retrying may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The server is draining: a watch ends, to be resumed (on another replica)
    /// from the last revision it received.
    #[error("server is shutting down; watch again from the last revision received")]
    ShuttingDown,
    /// The store failed in a way retrying will not fix (corruption, a bug).
    #[error("store failure: {0}")]
    Internal(String),
    /// The store cannot be opened as configured (an unreadable or empty URL file);
    /// seen at start-up, before any call.
    #[error("misconfigured: {0}")]
    Misconfigured(String),
}

impl From<DatabaseError> for Status {
    fn from(error: DatabaseError) -> Self {
        let message = error.to_string();
        match error {
            DatabaseError::Invalid(_) => Status::invalid_argument(message),
            DatabaseError::NotFound(_) => Status::not_found(message),
            DatabaseError::AlreadyExists(_) => Status::already_exists(message),
            DatabaseError::VersionMismatch { .. } => Status::failed_precondition(message),
            DatabaseError::RevisionCompacted { .. } | DatabaseError::RevisionInFuture { .. } => {
                Status::out_of_range(message)
            }
            DatabaseError::Unavailable(_) | DatabaseError::ShuttingDown => {
                Status::unavailable(message)
            }
            DatabaseError::Internal(_) | DatabaseError::Misconfigured(_) => {
                Status::internal(message)
            }
        }
    }
}

/// A field that failed validation is an invalid request: INVALID_ARGUMENT, as
/// [`DatabaseError::Invalid`] maps it.
impl From<FieldError> for Status {
    fn from(error: FieldError) -> Self {
        DatabaseError::from(error).into()
    }
}
