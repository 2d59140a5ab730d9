//! People and changes as people read them (an aligned table, one line per
//! change) and as scripts read them (one JSON object per line).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quartet_proto::database::v1::{ChangeKind, Person, PersonEvent};
use serde::Serialize;

use crate::{
    output::{OutputFormat, Printer},
    table::Table,
};

const PEOPLE_HEADER: [&str; 6] = ["ID", "NAME", "EMAIL", "AGE", "VERSION", "UPDATED"];

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

/// A change as printed in JSON.
#[derive(Serialize)]
struct EventView<'a> {
    revision: u64,
    kind: &'a str,
    person: PersonView<'a>,
    commit_time: String,
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

/// Prints people as a table with a header, or as one JSON object each.
pub(super) fn print_people(format: OutputFormat, people: &[Person]) -> std::io::Result<()> {
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

/// Prints one change: revision, kind, id, name and version on a line.
pub(super) fn print_event(printer: &Printer, event: &PersonEvent) -> std::io::Result<()> {
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
