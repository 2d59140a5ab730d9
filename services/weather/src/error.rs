//! Everything that can go wrong in the weather service, and its gRPC status, in
//! one place.

use std::{fmt, path::PathBuf};

use tonic::Status;

/// Why a weather request cannot be answered, or why a provider cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WeatherError {
    /// The request left `station_id` empty.
    #[error("station_id: must be set (`quartet weather stations` lists them)")]
    MissingStation,
    /// No station of this server has that id.
    #[error(
        "station {} is not known here (`quartet weather stations` lists them)",
        quartet_text::excerpt(.0)
    )]
    UnknownStation(String),
    /// The request named METRIC_UNSPECIFIED.
    #[error("metrics: METRIC_UNSPECIFIED is not a metric (leave the list empty for all four)")]
    UnspecifiedMetric,
    /// The request carries a metric number this server does not know.
    #[error("metrics: {0} is not a known metric")]
    UnknownMetric(i32),
    /// A timestamp or duration field that protobuf itself would call malformed.
    #[error("{field}: {reason}")]
    MalformedField {
        /// The request field, as the proto names it.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A time before 1900 or after 2200.
    #[error("at: {at} is outside the supported range, years 1900 to 2200")]
    TimeOutOfRange {
        /// The time asked for, as RFC 3339 (or seconds since 1970 when even
        /// that cannot represent it).
        at: String,
    },
    /// A watch interval outside [100ms, 24h].
    #[error("interval: {interval} is outside the supported range, 100ms to 24h")]
    IntervalOutOfRange {
        /// The interval asked for, human-readable.
        interval: String,
    },
    /// The station's recorded observations start after the time asked for.
    #[error(
        "no observation of station {} at or before {at}; its records start at {first}",
        quartet_text::excerpt(station)
    )]
    NoObservation {
        /// The station asked for.
        station: String,
        /// The time asked for.
        at: jiff::Timestamp,
        /// The station's earliest record.
        first: jiff::Timestamp,
    },
    /// The server already holds as many watch streams as it is configured for.
    #[error(
        "this server already holds its limit of {limit} watch streams; retry later or use another replica"
    )]
    TooManyWatches {
        /// The configured limit (`--max-watches`).
        limit: usize,
    },
    /// The server is draining; the client should reconnect (to another replica).
    #[error("server is shutting down; reconnect to resume")]
    ShuttingDown,
    /// The observations file cannot be opened or read.
    #[error("cannot read observations from {path}: {source}")]
    ObservationsUnreadable {
        /// The file given with `--observations`.
        path: PathBuf,
        /// What the OS or the CSV reader said.
        source: std::io::Error,
    },
    /// The observations file is readable but wrong; says exactly where.
    #[error("bad observations file {path}, {location}: {reason}")]
    ObservationsInvalid {
        /// The file given with `--observations`.
        path: PathBuf,
        /// The line, and the column when one is to blame.
        location: FileLocation,
        /// What is wrong there.
        reason: String,
    },
}

/// Where in a CSV file a problem is: a 1-based line, and a 1-based column with
/// its header name when one field is to blame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLocation {
    /// 1-based line number, as editors show it.
    pub line: u64,
    /// 1-based column number and the column's header name.
    pub column: Option<(usize, String)>,
}

impl fmt::Display for FileLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some((number, name)) => write!(f, "line {}, column {number} ({name})", self.line),
            None => write!(f, "line {}", self.line),
        }
    }
}

impl From<WeatherError> for Status {
    fn from(error: WeatherError) -> Self {
        let message = error.to_string();
        match error {
            WeatherError::MissingStation
            | WeatherError::UnspecifiedMetric
            | WeatherError::UnknownMetric(_)
            | WeatherError::MalformedField { .. }
            | WeatherError::TimeOutOfRange { .. }
            | WeatherError::IntervalOutOfRange { .. } => Status::invalid_argument(message),
            WeatherError::UnknownStation(_) | WeatherError::NoObservation { .. } => {
                Status::not_found(message)
            }
            WeatherError::TooManyWatches { .. } => Status::resource_exhausted(message),
            WeatherError::ShuttingDown => Status::unavailable(message),
            // Start-up errors: a running server never answers with them.
            WeatherError::ObservationsUnreadable { .. }
            | WeatherError::ObservationsInvalid { .. } => Status::internal(message),
        }
    }
}
