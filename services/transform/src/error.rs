//! Everything that can go wrong in a transform, and its gRPC status, in one place.

use tonic::Status;

/// Why a request cannot be transformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The request left `operation` at OPERATION_UNSPECIFIED.
    #[error("operation: must be set (UPPER, LOWER or REVERSE)")]
    MissingOperation,
    /// The request carries an operation number this server does not know.
    #[error("operation: {0} is not a known operation")]
    UnknownOperation(i32),
    /// The result would not fit in one message (case mapping can grow a text).
    #[error("result of {len} bytes is larger than the message limit of {limit} bytes")]
    ResultTooLarge {
        /// Encoded size of the result.
        len: usize,
        /// The server's message limit.
        limit: usize,
    },
    /// The blocking task that transforms a long text failed (it panicked).
    #[error("transform task failed: {0}")]
    TaskFailed(String),
    /// The server is draining; the stream ends and the client retries elsewhere.
    #[error("server is shutting down; retry unanswered requests")]
    ShuttingDown,
}

impl From<TransformError> for Status {
    fn from(error: TransformError) -> Self {
        let message = error.to_string();
        match error {
            TransformError::MissingOperation | TransformError::UnknownOperation(_) => {
                Status::invalid_argument(message)
            }
            TransformError::ResultTooLarge { .. } => Status::resource_exhausted(message),
            TransformError::TaskFailed(_) => Status::internal(message),
            TransformError::ShuttingDown => Status::unavailable(message),
        }
    }
}
