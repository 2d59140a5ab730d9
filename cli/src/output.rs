//! What commands print on stdout: one line per result, as text or JSON.

use std::io::{self, Write as _};

use clap::ValueEnum;
use serde::Serialize;

/// How results are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Plain lines for people.
    #[default]
    Text,
    /// One JSON object per line, for scripts (`jq`).
    Json,
}

/// Prints results on stdout, flushing every line so a reader sees each result
/// as soon as it arrives (streams are interactive).
pub(crate) struct Printer {
    format: OutputFormat,
}

impl Printer {
    pub(crate) fn new(format: OutputFormat) -> Self {
        Self { format }
    }

    /// Prints `text` in text mode, or `value` as JSON.
    pub(crate) fn print<T: Serialize>(&self, text: &str, value: &T) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        match self.format {
            OutputFormat::Text => writeln!(stdout, "{text}")?,
            OutputFormat::Json => {
                serde_json::to_writer(&mut stdout, value)?;
                writeln!(stdout)?;
            }
        }
        stdout.flush()
    }
}
