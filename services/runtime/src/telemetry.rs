//! Process-wide tracing: human-readable text for terminals, JSON lines for log
//! collectors, filtered by `RUST_LOG` (default `info`). Logs go to stderr so that
//! stdout stays for a command's output.

use std::io::{self, IsTerminal};

use clap::{Args, ValueEnum};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per event, with span fields, for log collectors.
    Json,
}

/// The logging flags of a process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct TelemetryOptions {
    /// Log line format; the level filter comes from RUST_LOG (default "info").
    #[arg(long, env = "QUARTET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Why tracing could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` does not parse.
    #[error("RUST_LOG is not a valid filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    /// Something installed a global subscriber first.
    #[error("a tracing subscriber is already installed: {0}")]
    AlreadyInstalled(#[from] tracing_subscriber::util::TryInitError),
}

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(options: &TelemetryOptions) -> Result<(), TelemetryError> {
    let filter = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(directives)?,
        _ => EnvFilter::new("info"),
    };
    let registry = tracing_subscriber::registry().with(filter);
    match options.log_format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_writer(io::stderr)
                    .with_ansi(io::stderr().is_terminal()),
            )
            .try_init()?,
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(io::stderr),
            )
            .try_init()?,
    }
    Ok(())
}
