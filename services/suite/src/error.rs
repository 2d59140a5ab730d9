//! [`SuiteError`]: why a service of the suite could not start or serve.

use quartet_chat::ChatError;
use quartet_database::DatabaseError;
use quartet_runtime::ServeError;
use quartet_transform::TransformError;
use quartet_weather::WeatherError;

/// Why the suite could not start, or stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The transform service could not be built.
    #[error(transparent)]
    Transform(#[from] TransformError),
    /// The people store could not be opened.
    #[error("cannot open the people store")]
    Database(#[from] DatabaseError),
    /// The weather service's provider could not be loaded.
    #[error(transparent)]
    Weather(#[from] WeatherError),
    /// The chat backplane could not be started.
    #[error("cannot start the chat backplane")]
    Chat(#[from] ChatError),
    /// A server could not bind, start or serve.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The gateway could not bind its listeners, or an announce line could
    /// not be printed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A server's task ended without a result (it panicked).
    #[error("server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}
