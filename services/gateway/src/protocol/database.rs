//! The people database protocol ("alta, baja, modificación, consulta"):
//! `ADD <id> <name>`, `GET <id>`, `UPDATE <id> <name>`, `DEL <id>`,
//! `LIST [prefix]`, with the classic Spanish verbs as aliases. Answers start with
//! `OK` or `ERR <CODE>`; a person is `<id> <version> <name>`, name last because
//! it may hold spaces.

use quartet_proto::database::v1::{
    CreatePersonRequest, DeletePersonRequest, GetPersonRequest, ListPeopleRequest, Person,
    UpdatePersonRequest,
};

use super::{help, quit, unknown, usage};
use crate::{
    lines::{LineProtocol, PendingReply, Reply, split_command},
    upstreams::{Upstreams, error_line},
};

/// Most people one `LIST` answers with; narrow with a prefix for more.
pub const LIST_LIMIT: u32 = 1000;

const COMMANDS: [&str; 7] = [
    "ADD <id> <name>          (alias ALTA)",
    "GET <id>                 (alias CONSULTA)",
    "UPDATE <id> <name>       (alias MODIFICACION)",
    "DEL <id>                 (alias BAJA)",
    "LIST [prefix]",
    "HELP",
    "QUIT",
];

/// Bridges the database protocol to the people service.
#[derive(Debug, Clone)]
pub struct DatabaseLines {
    upstreams: Upstreams,
}

impl DatabaseLines {
    /// A protocol handler calling `upstreams`.
    pub fn new(upstreams: Upstreams) -> Self {
        Self { upstreams }
    }
}

fn person_line(person: &Person) -> String {
    format!("{} {} {}", person.id, person.version, person.name)
}

fn named(id: &str, name: &str) -> Person {
    Person {
        id: id.to_owned(),
        name: name.to_owned(),
        ..Person::default()
    }
}

/// Splits `<id> <name>`; both must be there.
fn id_and_name(rest: &str) -> Option<(&str, &str)> {
    let (id, name) = rest.split_once(' ')?;
    (!id.is_empty() && !name.is_empty()).then_some((id, name))
}

fn ready(reply: Reply) -> PendingReply {
    Box::pin(std::future::ready(reply))
}

/// Answers with the person a call returned.
fn person_reply(answer: Result<tonic::Response<Person>, tonic::Status>) -> Reply {
    match answer {
        Ok(person) => Reply::line(format!("OK {}", person_line(&person.into_inner()))),
        Err(status) => Reply::line(error_line(&status)),
    }
}

/// A lone id argument, or `None` when it is missing or has company.
fn lone_id(rest: &str) -> Option<&str> {
    (!rest.is_empty() && !rest.contains(' ')).then_some(rest)
}

impl DatabaseLines {
    fn add(&self, rest: &str) -> PendingReply {
        let Some((id, name)) = id_and_name(rest) else {
            return ready(usage("ADD <id> <name>"));
        };
        let request = self.upstreams.request(CreatePersonRequest {
            person: Some(named(id, name)),
        });
        let mut people = self.upstreams.people.clone();
        Box::pin(async move { person_reply(people.create_person(request).await) })
    }

    fn get(&self, rest: &str) -> PendingReply {
        let Some(id) = lone_id(rest) else {
            return ready(usage("GET <id>"));
        };
        let request = self
            .upstreams
            .request(GetPersonRequest { id: id.to_owned() });
        let mut people = self.upstreams.people.clone();
        Box::pin(async move { person_reply(people.get_person(request).await) })
    }

    fn update(&self, rest: &str) -> PendingReply {
        let Some((id, name)) = id_and_name(rest) else {
            return ready(usage("UPDATE <id> <name>"));
        };
        let request = self.upstreams.request(UpdatePersonRequest {
            person: Some(named(id, name)),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["name".into()],
            }),
            expected_version: None,
        });
        let mut people = self.upstreams.people.clone();
        Box::pin(async move { person_reply(people.update_person(request).await) })
    }

    fn delete(&self, rest: &str) -> PendingReply {
        let Some(id) = lone_id(rest) else {
            return ready(usage("DEL <id>"));
        };
        let id = id.to_owned();
        let request = self.upstreams.request(DeletePersonRequest {
            id: id.clone(),
            expected_version: None,
        });
        let mut people = self.upstreams.people.clone();
        Box::pin(async move {
            match people.delete_person(request).await {
                Ok(_) => Reply::line(format!("OK {id} deleted")),
                Err(status) => Reply::line(error_line(&status)),
            }
        })
    }

    fn list(&self, rest: &str) -> PendingReply {
        if rest.contains(' ') {
            return ready(usage("LIST [prefix]"));
        }
        let request = self.upstreams.request(ListPeopleRequest {
            page_size: LIST_LIMIT,
            page_token: String::new(),
            id_prefix: rest.to_owned(),
        });
        let mut people = self.upstreams.people.clone();
        Box::pin(async move {
            match people.list_people(request).await {
                Ok(page) => {
                    let page = page.into_inner();
                    let more = if page.next_page_token.is_empty() {
                        ""
                    } else {
                        " more"
                    };
                    let mut lines = vec![format!("OK {}{more}", page.people.len())];
                    lines.extend(page.people.iter().map(person_line));
                    Reply::Lines(lines)
                }
                Err(status) => Reply::line(error_line(&status)),
            }
        })
    }
}

impl LineProtocol for DatabaseLines {
    fn handle(&self, line: String) -> PendingReply {
        let (verb, rest) = split_command(&line);
        match verb.as_str() {
            "ADD" | "ALTA" => self.add(rest),
            "GET" | "CONSULTA" => self.get(rest),
            "UPDATE" | "MODIFICACION" | "MODIFICACIÓN" => self.update(rest),
            "DEL" | "BAJA" => self.delete(rest),
            "LIST" => self.list(rest),
            "HELP" => ready(help(&COMMANDS)),
            "QUIT" => ready(quit()),
            _ => ready(unknown(&verb)),
        }
    }
}
