//! `quartet db import FILE`: people from a CSV or JSON Lines file, read on the
//! blocking pool and streamed to ImportPeople in batches; lines that are not
//! people are counted and reported with the server's own rejections.

use std::{
    io::{BufRead as _, IsTerminal as _, Read},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use quartet_proto::database::v1::{
    ImportPeopleRequest, ImportPeopleResponse, Person, people_service_client::PeopleServiceClient,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    client::{ClientOptions, Connection},
    failure::CALL_FAILED,
    output::{OutputFormat, Printer},
};

/// People per ImportPeople message (the server takes up to 1000).
const IMPORT_BATCH: usize = 500;
/// Batches read ahead of the server during an import.
const IMPORT_READ_AHEAD: usize = 4;
/// Rejected records listed after an import; the rest are only counted.
const SHOWN_FAILURES: usize = 10;

#[derive(Debug, Args)]
pub(super) struct ImportArgs {
    /// The file; "-" reads stdin.
    file: PathBuf,
    /// The file's format; by default from its extension (.csv, else JSON Lines).
    #[arg(long, value_enum)]
    format: Option<ImportFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ImportFormat {
    /// Comma-separated, with a header naming the columns id,name[,email][,age].
    Csv,
    /// One JSON object per line: {"id": ..., "name": ..., "email": ..., "age": ...}.
    Jsonl,
}

/// One record of an import file, as CSV rows and JSON lines spell it.
#[derive(Debug, Deserialize)]
struct ImportRecord {
    id: String,
    name: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    age: Option<u32>,
}

impl From<ImportRecord> for Person {
    fn from(record: ImportRecord) -> Self {
        Self {
            id: record.id,
            name: record.name,
            email: record.email.unwrap_or_default(),
            age: record.age,
            ..Self::default()
        }
    }
}

/// A line of the file that could not be read as a person.
struct Unreadable {
    line: u64,
    reason: String,
}

#[derive(Serialize)]
struct ImportSummary {
    created: u64,
    updated: u64,
    failed: u64,
    failures: Vec<String>,
}

/// The file to read: stdin, or an opened file and its size (for the progress bar).
type Source = (Box<dyn Read + Send>, Option<u64>);

pub(super) async fn import(
    client: &ClientOptions,
    people: &mut PeopleServiceClient<Connection>,
    args: ImportArgs,
) -> anyhow::Result<ExitCode> {
    let format = args.format.unwrap_or(
        if args
            .file
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("csv"))
        {
            ImportFormat::Csv
        } else {
            ImportFormat::Jsonl
        },
    );
    let (reader, total_bytes) = open(&args.file)?;
    let progress = progress_bar(total_bytes);
    let (batches, outgoing) = mpsc::channel(IMPORT_READ_AHEAD);
    let reading = {
        let progress = progress.clone();
        tokio::task::spawn_blocking(move || read_records(reader, format, &batches, &progress))
    };
    let answer = people.import_people(ReceiverStream::new(outgoing)).await;
    let unreadable = reading.await.context("file reader failed")??;
    progress.finish_and_clear();
    let summary = summarize(&unreadable, &answer?.into_inner());
    report(&summary, client.output)?;
    Ok(if summary.failed > 0 {
        ExitCode::from(CALL_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

fn open(file: &Path) -> anyhow::Result<Source> {
    if file.as_os_str() == "-" {
        return Ok((Box::new(std::io::stdin()), None));
    }
    let opened =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let size = opened.metadata().ok().map(|metadata| metadata.len());
    Ok((Box::new(opened), size))
}

/// What was imported and what failed: lines we could not read, then records
/// the server refused.
fn summarize(unreadable: &[Unreadable], answer: &ImportPeopleResponse) -> ImportSummary {
    let mut failures: Vec<String> = unreadable
        .iter()
        .map(|bad| format!("line {}: {}", bad.line, bad.reason))
        .collect();
    failures.extend(answer.failures.iter().map(|failure| {
        format!(
            "record {} ({:?}): {}",
            failure.index + 1,
            failure.id,
            failure.reason
        )
    }));
    ImportSummary {
        created: answer.created,
        updated: answer.updated,
        failed: answer.failed + unreadable.len() as u64,
        failures,
    }
}

/// Prints the counts; in text mode the first failures follow on stderr.
fn report(summary: &ImportSummary, output: OutputFormat) -> std::io::Result<()> {
    let text = format!(
        "imported: {} created, {} updated, {} failed",
        summary.created, summary.updated, summary.failed
    );
    Printer::new(output).print(&text, summary)?;
    if output == OutputFormat::Text {
        #[allow(clippy::print_stderr)] // Details of rejected records go with the errors.
        for failure in summary.failures.iter().take(SHOWN_FAILURES) {
            eprintln!("  {failure}");
        }
    }
    Ok(())
}

fn progress_bar(total_bytes: Option<u64>) -> ProgressBar {
    // indicatif draws only when stderr is a terminal.
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match total_bytes {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner(),
    }
}

/// Reads the file into batches on the blocking pool; returns the lines that
/// could not be read as people.
fn read_records(
    reader: Box<dyn Read + Send>,
    format: ImportFormat,
    batches: &mpsc::Sender<ImportPeopleRequest>,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Unreadable>> {
    let mut people = Batcher {
        batches,
        progress,
        batch: Vec::with_capacity(IMPORT_BATCH),
        sent: 0,
    };
    let unreadable = match format {
        ImportFormat::Csv => read_csv(reader, &mut people)?,
        ImportFormat::Jsonl => read_json_lines(reader, &mut people)?,
    };
    people.finish();
    Ok(unreadable)
}

/// Gathers people into batches, sends each full one, and moves the progress bar.
struct Batcher<'a> {
    batches: &'a mpsc::Sender<ImportPeopleRequest>,
    progress: &'a ProgressBar,
    batch: Vec<Person>,
    /// People sent so far, for the progress bar's message.
    sent: u64,
}

impl Batcher<'_> {
    /// Adds a person read up to byte `position`; false once the import stream
    /// is gone (the server ended it, and its answer says why): stop reading.
    fn push(&mut self, person: Person, position: u64) -> bool {
        self.batch.push(person);
        self.progress.set_position(position);
        if self.batch.len() < IMPORT_BATCH {
            return true;
        }
        self.sent += IMPORT_BATCH as u64;
        self.progress.set_message(format!("{} people", self.sent));
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(IMPORT_BATCH));
        self.batches
            .blocking_send(ImportPeopleRequest { people: full })
            .is_ok()
    }

    /// Sends the last, partial batch.
    fn finish(self) {
        if !self.batch.is_empty() {
            // A closed stream has its answer already; nothing is lost here.
            let _ = self
                .batches
                .blocking_send(ImportPeopleRequest { people: self.batch });
        }
    }
}

fn read_csv(
    reader: Box<dyn Read + Send>,
    people: &mut Batcher<'_>,
) -> anyhow::Result<Vec<Unreadable>> {
    let mut unreadable = Vec::new();
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = csv.headers().context("cannot read the CSV header")?.clone();
    let mut row = csv::StringRecord::new();
    loop {
        let more = match csv.read_record(&mut row) {
            Ok(more) => more,
            Err(error) if matches!(error.kind(), csv::ErrorKind::Io(_)) => {
                return Err(error).context("cannot read the CSV file");
            }
            Err(error) => {
                unreadable.push(Unreadable {
                    line: error.position().map_or(0, csv::Position::line),
                    reason: error.to_string(),
                });
                continue;
            }
        };
        if !more {
            return Ok(unreadable);
        }
        let position = csv.position().byte();
        match row.deserialize::<ImportRecord>(Some(&headers)) {
            Ok(record) => {
                if !people.push(record.into(), position) {
                    return Ok(unreadable);
                }
            }
            Err(error) => unreadable.push(Unreadable {
                line: row.position().map_or(0, csv::Position::line),
                reason: error.to_string(),
            }),
        }
    }
}

fn read_json_lines(
    reader: Box<dyn Read + Send>,
    people: &mut Batcher<'_>,
) -> anyhow::Result<Vec<Unreadable>> {
    let mut unreadable = Vec::new();
    let mut position = 0_u64;
    for (number, line) in std::io::BufReader::new(reader).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read line {}", number + 1))?;
        position += line.len() as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<ImportRecord>(&line) {
            Ok(record) => {
                if !people.push(record.into(), position) {
                    return Ok(unreadable);
                }
            }
            Err(error) => unreadable.push(Unreadable {
                line: number as u64 + 1,
                reason: error.to_string(),
            }),
        }
    }
    Ok(unreadable)
}
