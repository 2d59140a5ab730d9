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

    /// Prints a heading (a table's column names) in text mode only: JSON
    /// readers want objects, nothing else.
    pub(crate) fn heading(&self, text: &str) -> io::Result<()> {
        if self.format == OutputFormat::Json {
            return Ok(());
        }
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{text}")?;
        stdout.flush()
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

/// Tells the user something on stderr without ending the command (a watch
/// reconnecting); stdout stays for results.
pub(crate) fn notice(message: &str) {
    #[allow(clippy::print_stderr)] // The one place the CLI talks on stderr besides failures.
    {
        eprintln!("note: {message}");
    }
}
