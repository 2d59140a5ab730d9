//! The people database protocol ("alta, baja, modificación, consulta"):
//! `ADD <id> <name>`, `GET <id>`, `UPDATE <id> <name>`, `DEL <id>`,
//! `LIST [prefix]`, with the classic Spanish verbs as aliases. Answers start with
//! `OK` or `ERR <CODE>`; a person is `<id> <version> <name>`, name last because
//! it may hold spaces. `GET` and `LIST` read; `ADD`, `UPDATE` and `DEL` write,
//! so a pasted script takes effect in the order it was written.

use quartet_proto::database::v1::{
    CreatePersonRequest, DeletePersonRequest, GetPersonRequest, ListPeopleRequest, Person,
    UpdatePersonRequest,
};

use quartet_client::retry_read;
use quartet_text::printable;

use super::split_command;
use crate::{
    ordered::{Access, Call, CallProtocol},
    reply::{Reply, failed, help, quit, unknown, usage},
    upstreams::Upstreams,
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

/// One database request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `ADD <id> <name>` (`ALTA`).
    Add {
        /// The new person's key.
        id: String,
        /// Everything after the id.
        name: String,
    },
    /// `GET <id>` (`CONSULTA`).
    Get {
        /// Whom to read.
        id: String,
    },
    /// `UPDATE <id> <name>` (`MODIFICACION`): the name only.
    Update {
        /// Whom to change.
        id: String,
        /// The new name.
        name: String,
    },
    /// `DEL <id>` (`BAJA`).
    Delete {
        /// Whom to remove.
        id: String,
    },
    /// `LIST [prefix]`: people ordered by id, at most [`LIST_LIMIT`].
    List {
        /// Only ids that start with this.
        prefix: String,
    },
}

impl Command {
    /// Whether the command changes the database.
    pub fn access(&self) -> Access {
        match self {
            Self::Get { .. } | Self::List { .. } => Access::Read,
            Self::Add { .. } | Self::Update { .. } | Self::Delete { .. } => Access::Write,
        }
    }
}

/// Splits `<id> <name>`; both must be there.
fn id_and_name(rest: &str) -> Option<(String, String)> {
    let (id, name) = rest.split_once(' ')?;
    (!id.is_empty() && !name.is_empty()).then(|| (id.to_owned(), name.to_owned()))
}

/// A lone id argument, or `None` when it is missing or has company.
fn lone_id(rest: &str) -> Option<String> {
    (!rest.is_empty() && !rest.contains(' ')).then(|| rest.to_owned())
}

/// Parses one request line. Field rules (id characters, name length) are the
/// service's to check, so the gateway and gRPC users get the same answers.
pub fn parse(line: &str) -> Result<Command, Reply> {
    let (verb, rest) = split_command(line);
    match verb.as_str() {
        "ADD" | "ALTA" => id_and_name(rest)
            .map(|(id, name)| Command::Add { id, name })
            .ok_or_else(|| usage("ADD <id> <name>")),
        "GET" | "CONSULTA" => lone_id(rest)
            .map(|id| Command::Get { id })
            .ok_or_else(|| usage("GET <id>")),
        "UPDATE" | "MODIFICACION" | "MODIFICACIÓN" => id_and_name(rest)
            .map(|(id, name)| Command::Update { id, name })
            .ok_or_else(|| usage("UPDATE <id> <name>")),
        "DEL" | "BAJA" => lone_id(rest)
            .map(|id| Command::Delete { id })
            .ok_or_else(|| usage("DEL <id>")),
        "LIST" if rest.contains(' ') => Err(usage("LIST [prefix]")),
        "LIST" => Ok(Command::List {
            prefix: rest.to_owned(),
        }),
        "HELP" => Err(help(&COMMANDS)),
        "QUIT" => Err(quit()),
        _ => Err(unknown(&verb)),
    }
}

/// `<id> <version> <name>`, escaped: a name is someone else's words, and a
/// line break in one would desynchronise a `LIST` answer.
fn person_line(person: &Person) -> String {
    format!(
        "{} {} {}",
        printable(&person.id),
        person.version,
        printable(&person.name)
    )
}

fn named(id: String, name: String) -> Person {
    Person {
        id,
        name,
        ..Person::default()
    }
}

/// Answers with the person a call returned.
fn person_reply(answer: Result<tonic::Response<Person>, tonic::Status>) -> Reply {
    match answer {
        Ok(person) => Reply::line(format!("OK {}", person_line(&person.into_inner()))),
        Err(status) => failed(&status),
    }
}

/// Calls the people service for `command` and formats its answer.
pub async fn apply(command: Command, upstreams: &Upstreams) -> Reply {
    let mut people = upstreams.people.clone();
    match command {
        Command::Add { id, name } => {
            let request = upstreams.request(CreatePersonRequest {
                person: Some(named(id, name)),
            });
            person_reply(people.create_person(request).await)
        }
        // Reads get one more try on another endpoint; writes never do.
        Command::Get { id } => person_reply(
            retry_read(|| {
                let mut people = people.clone();
                let request = upstreams.request(GetPersonRequest { id: id.clone() });
                async move { people.get_person(request).await }
            })
            .await,
        ),
        Command::Update { id, name } => {
            let request = upstreams.request(UpdatePersonRequest {
                person: Some(named(id, name)),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["name".into()],
                }),
                expected_version: None,
            });
            person_reply(people.update_person(request).await)
        }
        Command::Delete { id } => {
            let request = upstreams.request(DeletePersonRequest {
                id: id.clone(),
                expected_version: None,
            });
            match people.delete_person(request).await {
                Ok(_) => Reply::line(format!("OK {id} deleted")),
                Err(status) => failed(&status),
            }
        }
        Command::List { prefix } => {
            let list = ListPeopleRequest {
                page_size: LIST_LIMIT,
                page_token: String::new(),
                id_prefix: prefix,
            };
            let answer = retry_read(|| {
                let mut people = people.clone();
                let request = upstreams.request(list.clone());
                async move { people.list_people(request).await }
            })
            .await;
            match answer {
                Ok(page) => {
                    let page = page.into_inner();
                    let more = if page.next_page_token.is_empty() {
                        ""
                    } else {
                        " more"
                    };
                    Reply::counted(more, page.people.iter().map(person_line))
                }
                Err(status) => failed(&status),
            }
        }
    }
}

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

impl CallProtocol for DatabaseLines {
    type Command = Command;

    fn parse(&self, line: &str) -> Result<Command, Reply> {
        parse(line)
    }

    fn access(command: &Command) -> Access {
        command.access()
    }

    fn apply(&self, command: Command) -> Call {
        let upstreams = self.upstreams.clone();
        Box::pin(async move { apply(command, &upstreams).await })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Command, parse};
    use crate::ordered::Access;

    #[test]
    fn spanish_aliases_parse_like_their_english_verbs() {
        let add = Command::Add {
            id: "x1".into(),
            name: "Ana María".into(),
        };
        assert_eq!(parse("ALTA x1 Ana María"), Ok(add.clone()));
        assert_eq!(parse("add x1 Ana María"), Ok(add));
        assert_eq!(parse("consulta x1"), parse("GET x1"));
        assert_eq!(parse("MODIFICACIÓN x1 B"), parse("UPDATE x1 B"));
        assert_eq!(parse("BAJA x1"), parse("DEL x1"));
    }

    #[test]
    fn reads_and_writes_are_told_apart() {
        for (line, access) in [
            ("GET a", Access::Read),
            ("LIST", Access::Read),
            ("LIST a", Access::Read),
            ("ADD a b", Access::Write),
            ("UPDATE a b", Access::Write),
            ("DEL a", Access::Write),
        ] {
            assert_eq!(parse(line).map(|command| command.access()), Ok(access));
        }
    }

    #[test]
    fn misused_commands_answer_their_usage() {
        for (line, usage) in [
            ("ADD x1", "ADD <id> <name>"),
            ("GET", "GET <id>"),
            ("GET a b", "GET <id>"),
            ("UPDATE x1 ", "UPDATE <id> <name>"),
            ("DEL", "DEL <id>"),
            ("LIST a b", "LIST [prefix]"),
        ] {
            let reply = parse(line).unwrap_err();
            assert_eq!(reply.text(), format!("ERR INVALID_ARGUMENT usage: {usage}"));
        }
    }

    proptest! {
        #[test]
        fn names_keep_every_space(id in "[a-z0-9]{1,8}", name in "[^\n]{1,30}") {
            prop_assume!(!name.is_empty());
            let parsed = parse(&format!("ADD {id} {name}"));
            prop_assert_eq!(parsed, Ok(Command::Add { id, name }));
        }
    }
}
