//! `quartet db ...`: the people database from the command line.

use std::{
    io::IsTerminal as _,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use quartet_proto::database::v1::{
    ChangeKind, CreatePersonRequest, DeletePersonRequest, GetPersonRequest, ImportPeopleRequest,
    ListPeopleRequest, Person, PersonEvent, UpdatePersonRequest, WatchPeopleRequest,
    people_service_client::PeopleServiceClient,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tracing::warn;

use crate::{
    client::{ClientOptions, Connection},
    failure::CALL_FAILED,
    output::{OutputFormat, Printer},
    table::Table,
};

/// People per ImportPeople message (the server takes up to 1000).
const IMPORT_BATCH: usize = 500;
/// Batches read ahead of the server during an import.
const IMPORT_READ_AHEAD: usize = 4;
/// Rejected records listed after an import; the rest are only counted.
const SHOWN_FAILURES: usize = 10;
/// Longest wait between watch reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub(crate) struct DbArgs {
    #[command(subcommand)]
    command: DbCommand,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Create a person (alta).
    Create {
        /// The id (for example a national id).
        id: String,
        /// The full name.
        name: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        age: Option<u32>,
    },
    /// Show a person (consulta).
    Get { id: String },
    /// Change some fields of a person (modificación).
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, conflicts_with = "clear_email")]
        email: Option<String>,
        #[arg(long, conflicts_with = "clear_age")]
        age: Option<u32>,
        /// Remove the e-mail address.
        #[arg(long)]
        clear_email: bool,
        /// Remove the age.
        #[arg(long)]
        clear_age: bool,
        /// Only if the stored version is this one (else the call fails).
        #[arg(long)]
        expected_version: Option<u64>,
    },
    /// Delete a person (baja).
    Delete {
        id: String,
        /// Only if the stored version is this one.
        #[arg(long)]
        expected_version: Option<u64>,
    },
    /// List people ordered by id.
    List {
        /// Only ids starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Stop after this many people.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Print changes as they happen; reconnects by itself and resumes where it stopped.
    Watch {
        /// Only ids starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Start after this revision instead of now.
        #[arg(long)]
        since: Option<u64>,
    },
    /// Create or replace people from a CSV (id,name,email,age) or JSON Lines file.
    Import {
        /// The file; "-" reads stdin.
        file: PathBuf,
        /// The file's format; by default from its extension (.csv, else JSON Lines).
        #[arg(long, value_enum)]
        format: Option<ImportFormat>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ImportFormat {
    /// Comma-separated, with a header naming the columns id,name[,email][,age].
    Csv,
    /// One JSON object per line: {"id": ..., "name": ..., "email": ..., "age": ...}.
    Jsonl,
}

/// A person as printed in JSON.
#[derive(Serialize)]
struct PersonView<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    age: Option<u32>,
    version: u64,
    create_time: String,
    update_time: String,
}

fn rfc3339(time: Option<&prost_types::Timestamp>) -> String {
    let Some(time) = time else {
        return String::new();
    };
    let at = u64::try_from(time.seconds)
        .ok()
        .map(|seconds| UNIX_EPOCH + Duration::new(seconds, u32::try_from(time.nanos).unwrap_or(0)));
    at.map(|at: SystemTime| humantime::format_rfc3339_micros(at).to_string())
        .unwrap_or_default()
}

impl<'a> From<&'a Person> for PersonView<'a> {
    fn from(person: &'a Person) -> Self {
        Self {
            id: &person.id,
            name: &person.name,
            email: &person.email,
            age: person.age,
            version: person.version,
            create_time: rfc3339(person.create_time.as_ref()),
            update_time: rfc3339(person.update_time.as_ref()),
        }
    }
}

const PEOPLE_HEADER: [&str; 6] = ["ID", "NAME", "EMAIL", "AGE", "VERSION", "UPDATED"];

fn people_row(person: &Person) -> Vec<String> {
    vec![
        person.id.clone(),
        person.name.clone(),
        person.email.clone(),
        person.age.map(|age| age.to_string()).unwrap_or_default(),
        person.version.to_string(),
        rfc3339(person.update_time.as_ref()),
    ]
}

fn print_people(format: OutputFormat, people: &[Person]) -> std::io::Result<()> {
    match format {
        OutputFormat::Text => {
            let mut table = Table::new(&PEOPLE_HEADER);
            for person in people {
                table.row(people_row(person));
            }
            table.print()
        }
        OutputFormat::Json => {
            let printer = Printer::new(format);
            for person in people {
                printer.print("", &PersonView::from(person))?;
            }
            Ok(())
        }
    }
}

/// One person, with one more try on another endpoint if the first was
/// unavailable (a read changes nothing).
async fn get_person(
    client: &ClientOptions,
    people: &PeopleServiceClient<Connection>,
    id: String,
) -> Result<Person, tonic::Status> {
    let request = GetPersonRequest { id };
    client
        .read(people, &request, |mut people, request| async move {
            people.get_person(request).await
        })
        .await
}

pub(crate) async fn run(client: &ClientOptions, args: DbArgs) -> anyhow::Result<ExitCode> {
    let mut people = client.connect_database().await?;
    let format = client.output;
    match args.command {
        DbCommand::Create {
            id,
            name,
            email,
            age,
        } => {
            let person = Person {
                id,
                name,
                email: email.unwrap_or_default(),
                age,
                ..Person::default()
            };
            let request = CreatePersonRequest {
                person: Some(person),
            };
            let created = people.create_person(client.request(request)).await?;
            print_people(format, &[created.into_inner()])?;
        }
        DbCommand::Get { id } => {
            print_people(format, &[get_person(client, &people, id).await?])?;
        }
        DbCommand::Update {
            id,
            name,
            email,
            age,
            clear_email,
            clear_age,
            expected_version,
        } => {
            let mut paths = Vec::new();
            if name.is_some() {
                paths.push("name".to_owned());
            }
            if email.is_some() || clear_email {
                paths.push("email".to_owned());
            }
            if age.is_some() || clear_age {
                paths.push("age".to_owned());
            }
            let request = UpdatePersonRequest {
                person: Some(Person {
                    id,
                    name: name.unwrap_or_default(),
                    email: email.unwrap_or_default(),
                    age,
                    ..Person::default()
                }),
                update_mask: Some(prost_types::FieldMask { paths }),
                expected_version,
            };
            let updated = people.update_person(client.request(request)).await?;
            print_people(format, &[updated.into_inner()])?;
        }
        DbCommand::Delete {
            id,
            expected_version,
        } => {
            let request = DeletePersonRequest {
                id,
                expected_version,
            };
            let deleted = people.delete_person(client.request(request)).await?;
            let deleted = deleted.into_inner();
            print_people(format, &deleted.person.into_iter().collect::<Vec<_>>())?;
        }
        DbCommand::List { prefix, limit } => {
            let found = list(client, &people, prefix, limit).await?;
            print_people(format, &found)?;
        }
        DbCommand::Watch { prefix, since } => {
            return watch(client, &mut people, prefix, since).await;
        }
        DbCommand::Import {
            file,
            format: file_format,
        } => return import(&mut people, file, file_format, format).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(
    client: &ClientOptions,
    people: &PeopleServiceClient<Connection>,
    prefix: String,
    limit: Option<usize>,
) -> anyhow::Result<Vec<Person>> {
    let limit = limit.unwrap_or(usize::MAX);
    let mut found = Vec::new();
    let mut token = String::new();
    while found.len() < limit {
        let page_size = u32::try_from((limit - found.len()).min(1000)).unwrap_or(1000);
        let request = ListPeopleRequest {
            page_size,
            page_token: token,
            id_prefix: prefix.clone(),
        };
        let page = client
            .read(people, &request, |mut people, request| async move {
                people.list_people(request).await
            })
            .await?;
        found.extend(page.people);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    found.truncate(limit);
    Ok(found)
}

#[derive(Serialize)]
struct EventView<'a> {
    revision: u64,
    kind: &'a str,
    person: PersonView<'a>,
    commit_time: String,
}

fn print_event(printer: &Printer, event: &PersonEvent) -> std::io::Result<()> {
    let kind = match event.kind() {
        ChangeKind::Created => "CREATED",
        ChangeKind::Updated => "UPDATED",
        ChangeKind::Deleted => "DELETED",
        ChangeKind::Unspecified => "UNSPECIFIED",
    };
    let empty = Person::default();
    let person = event.person.as_ref().unwrap_or(&empty);
    let text = format!(
        "{:>8}  {kind:<7}  {}  {:?}  v{}",
        event.revision, person.id, person.name, person.version
    );
    let view = EventView {
        revision: event.revision,
        kind,
        person: PersonView::from(person),
        commit_time: rfc3339(event.commit_time.as_ref()),
    };
    printer.print(&text, &view)
}

/// Watches, reconnecting with backoff after a disconnect and resuming after the
/// last revision printed, so nothing is missed or printed twice.
async fn watch(
    client: &ClientOptions,
    people: &mut PeopleServiceClient<Connection>,
    prefix: String,
    since: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let printer = Printer::new(client.output);
    // "From now" is pinned to a revision, so a reconnect before the first event
    // still resumes from the right place.
    let mut last = if let Some(since) = since {
        since
    } else {
        let request = ListPeopleRequest {
            page_size: 1,
            page_token: String::new(),
            id_prefix: prefix.clone(),
        };
        people
            .list_people(client.request(request))
            .await?
            .into_inner()
            .revision
    };
    let mut delay = Duration::from_millis(200);
    loop {
        let request = WatchPeopleRequest {
            since_revision: Some(last),
            id_prefix: prefix.clone(),
        };
        let ended = match people.watch_people(request).await {
            Ok(response) => {
                let mut events = response.into_inner();
                loop {
                    match events.message().await {
                        Ok(Some(event)) => {
                            print_event(&printer, &event)?;
                            last = event.revision;
                            delay = Duration::from_millis(200);
                        }
                        Ok(None) => break tonic::Status::unavailable("the server ended the watch"),
                        Err(status) => break status,
                    }
                }
            }
            Err(status) => status,
        };
        if !matches!(
            ended.code(),
            Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
        ) {
            return Err(ended.into());
        }
        warn!(status = %ended.message(), retry_in = ?delay, last, "watch interrupted; resuming");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RECONNECT_DELAY);
    }
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

async fn import(
    people: &mut PeopleServiceClient<Connection>,
    file: PathBuf,
    format: Option<ImportFormat>,
    output: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let format = format.unwrap_or(
        if file
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("csv"))
        {
            ImportFormat::Csv
        } else {
            ImportFormat::Jsonl
        },
    );
    let (reader, total_bytes): (Box<dyn std::io::Read + Send>, Option<u64>) =
        if file.as_os_str() == "-" {
            (Box::new(std::io::stdin()), None)
        } else {
            let opened = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let size = opened.metadata().ok().map(|metadata| metadata.len());
            (Box::new(opened), size)
        };
    let progress = progress_bar(total_bytes);
    let (batches, outgoing) = mpsc::channel(IMPORT_READ_AHEAD);
    let reading = {
        let progress = progress.clone();
        tokio::task::spawn_blocking(move || read_records(reader, format, &batches, &progress))
    };
    let answer = people.import_people(ReceiverStream::new(outgoing)).await;
    let unreadable = reading.await.context("file reader failed")??;
    progress.finish_and_clear();
    let answer = answer?.into_inner();

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
    let summary = ImportSummary {
        created: answer.created,
        updated: answer.updated,
        failed: answer.failed + unreadable.len() as u64,
        failures,
    };
    let text = format!(
        "imported: {} created, {} updated, {} failed",
        summary.created, summary.updated, summary.failed
    );
    Printer::new(output).print(&text, &summary)?;
    if output == OutputFormat::Text {
        #[allow(clippy::print_stderr)] // Details of rejected records go with the errors.
        for failure in summary.failures.iter().take(SHOWN_FAILURES) {
            eprintln!("  {failure}");
        }
    }
    Ok(if summary.failed > 0 {
        ExitCode::from(CALL_FAILED)
    } else {
        ExitCode::SUCCESS
    })
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
    reader: Box<dyn std::io::Read + Send>,
    format: ImportFormat,
    batches: &mpsc::Sender<ImportPeopleRequest>,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Unreadable>> {
    let mut unreadable = Vec::new();
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let mut sent = 0_u64;
    let mut push = |person: Person, position: u64, batch: &mut Vec<Person>| -> bool {
        batch.push(person);
        progress.set_position(position);
        if batch.len() == IMPORT_BATCH {
            sent += IMPORT_BATCH as u64;
            progress.set_message(format!("{sent} people"));
            let full = std::mem::replace(batch, Vec::with_capacity(IMPORT_BATCH));
            return batches
                .blocking_send(ImportPeopleRequest { people: full })
                .is_ok();
        }
        true
    };
    match format {
        ImportFormat::Csv => {
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
                    break;
                }
                let position = csv.position().byte();
                let record: Result<ImportRecord, _> = row.deserialize(Some(&headers));
                match record {
                    Ok(record) => {
                        if !push(record.into(), position, &mut batch) {
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
        ImportFormat::Jsonl => {
            let mut position = 0_u64;
            for (number, line) in
                std::io::BufRead::lines(std::io::BufReader::new(reader)).enumerate()
            {
                let line = line.with_context(|| format!("cannot read line {}", number + 1))?;
                position += line.len() as u64 + 1;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<ImportRecord>(&line) {
                    Ok(record) => {
                        if !push(record.into(), position, &mut batch) {
                            return Ok(unreadable);
                        }
                    }
                    Err(error) => unreadable.push(Unreadable {
                        line: number as u64 + 1,
                        reason: error.to_string(),
                    }),
                }
            }
        }
    }
    if !batch.is_empty() {
        let _ = batches.blocking_send(ImportPeopleRequest { people: batch });
    }
    Ok(unreadable)
}
