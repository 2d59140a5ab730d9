//! The people database as a model: each id is a register holding nothing or a
//! record (version, name), and the four calls of `PeopleService` that touch one
//! record act on it as the contract says (proto/quartet/database/v1).
//!
//! Tests make every name they write unique, so a (version, name) pair names
//! the one write that produced it: a read that goes back in time, a version
//! seen twice or a delete that un-happens all leave an answer no order
//! explains.

use std::fmt;

use crate::model::Model;

/// A stored person as the check sees it: the fields a write sets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// 1 on create, one more on every update.
    pub version: u64,
    /// The name the last write set.
    pub name: String,
}

impl Record {
    /// The record at `version` named `name`.
    pub fn new(version: u64, name: impl Into<String>) -> Self {
        Self {
            version,
            name: name.into(),
        }
    }
}

/// A call on one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// CreatePerson.
    Create {
        /// The person's id.
        id: String,
        /// The name to store.
        name: String,
    },
    /// GetPerson.
    Get {
        /// The person's id.
        id: String,
    },
    /// UpdatePerson of the name.
    Update {
        /// The person's id.
        id: String,
        /// The new name.
        name: String,
        /// Apply only at this version.
        expected_version: Option<u64>,
    },
    /// DeletePerson.
    Delete {
        /// The person's id.
        id: String,
        /// Delete only at this version.
        expected_version: Option<u64>,
    },
}

impl Call {
    /// The person the call acts on.
    pub fn id(&self) -> &str {
        match self {
            Self::Create { id, .. }
            | Self::Get { id }
            | Self::Update { id, .. }
            | Self::Delete { id, .. } => id,
        }
    }
}

/// A definite answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// OK: the stored record (create, get, update), or the record as it was
    /// just before it was deleted (delete).
    Record(Record),
    /// NOT_FOUND.
    NotFound,
    /// ALREADY_EXISTS.
    AlreadyExists,
    /// FAILED_PRECONDITION: the expected version is not the stored one.
    VersionMismatch,
}

/// What one id holds.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum RegisterState {
    /// No person has the id.
    Absent,
    /// This record is stored.
    Present(Record),
    /// Anything: the state failures are shrunk from (see
    /// [`Model::unconstrained`]). An answer that reveals the state replaces
    /// it; one that does not keeps it.
    Any,
}

impl fmt::Debug for RegisterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absent => f.write_str("absent"),
            Self::Present(record) => write!(f, "v{} {:?}", record.version, record.name),
            Self::Any => f.write_str("any state"),
        }
    }
}

/// The model of `PeopleService` records, keyed by id.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeopleRegister;

fn version_differs(expected: Option<u64>, record: &Record) -> bool {
    expected.is_some_and(|expected| expected != record.version)
}

/// What `call` answers on `current` and what it leaves stored: the contract,
/// for one concrete state.
fn apply(call: &Call, current: Option<&Record>) -> (Answer, Option<Record>) {
    match (call, current) {
        (Call::Create { name, .. }, None) => {
            let record = Record::new(1, name.clone());
            (Answer::Record(record.clone()), Some(record))
        }
        (Call::Create { .. }, Some(record)) => (Answer::AlreadyExists, Some(record.clone())),
        (Call::Get { .. } | Call::Update { .. } | Call::Delete { .. }, None) => {
            (Answer::NotFound, None)
        }
        (Call::Get { .. }, Some(record)) => (Answer::Record(record.clone()), Some(record.clone())),
        (
            Call::Update {
                name,
                expected_version,
                ..
            },
            Some(record),
        ) => {
            if version_differs(*expected_version, record) {
                return (Answer::VersionMismatch, Some(record.clone()));
            }
            let updated = Record::new(record.version + 1, name.clone());
            (Answer::Record(updated.clone()), Some(updated))
        }
        (
            Call::Delete {
                expected_version, ..
            },
            Some(record),
        ) => {
            if version_differs(*expected_version, record) {
                return (Answer::VersionMismatch, Some(record.clone()));
            }
            (Answer::Record(record.clone()), None)
        }
    }
}

/// The state after `call` answered `answer` from a state that could be
/// anything, if some state could have answered it. Over-approximates: an answer
/// that narrows the state without revealing it (ALREADY_EXISTS) leaves `Any`.
fn step_from_any(call: &Call, answer: &Answer) -> Option<RegisterState> {
    match (call, answer) {
        (Call::Create { name, .. }, Answer::Record(record))
            if record.version == 1 && record.name == *name =>
        {
            Some(RegisterState::Present(record.clone()))
        }
        (Call::Get { .. }, Answer::Record(record)) => Some(RegisterState::Present(record.clone())),
        (
            Call::Update {
                name,
                expected_version,
                ..
            },
            Answer::Record(record),
        ) if record.name == *name
            && record.version >= 2
            && expected_version.is_none_or(|expected| record.version == expected + 1) =>
        {
            Some(RegisterState::Present(record.clone()))
        }
        (
            Call::Delete {
                expected_version, ..
            },
            Answer::Record(record),
        ) if expected_version.is_none_or(|expected| record.version == expected) => {
            Some(RegisterState::Absent)
        }
        (Call::Get { .. } | Call::Update { .. } | Call::Delete { .. }, Answer::NotFound) => {
            Some(RegisterState::Absent)
        }
        (Call::Create { .. }, Answer::AlreadyExists)
        | (
            Call::Update {
                expected_version: Some(_),
                ..
            }
            | Call::Delete {
                expected_version: Some(_),
                ..
            },
            Answer::VersionMismatch,
        ) => Some(RegisterState::Any),
        _ => None,
    }
}

impl Model for PeopleRegister {
    type Key = String;
    type Input = Call;
    type Output = Answer;
    type State = RegisterState;

    fn key(&self, input: &Call) -> String {
        input.id().to_owned()
    }

    fn init(&self) -> RegisterState {
        RegisterState::Absent
    }

    fn step(
        &self,
        state: &RegisterState,
        input: &Call,
        output: Option<&Answer>,
    ) -> Option<RegisterState> {
        let current = match state {
            RegisterState::Absent => None,
            RegisterState::Present(record) => Some(record),
            RegisterState::Any => {
                return match output {
                    Some(answer) => step_from_any(input, answer),
                    None => Some(RegisterState::Any),
                };
            }
        };
        let (answer, stored) = apply(input, current);
        if output.is_some_and(|output| *output != answer) {
            return None;
        }
        Some(stored.map_or(RegisterState::Absent, RegisterState::Present))
    }

    fn unconstrained(&self) -> Option<RegisterState> {
        Some(RegisterState::Any)
    }

    fn has_no_effect(&self, input: &Call, output: Option<&Answer>) -> bool {
        match (input, output) {
            (Call::Get { .. }, _) => true,
            (_, Some(answer)) => !matches!(answer, Answer::Record(_)),
            (_, None) => false,
        }
    }
}

fn condition(f: &mut fmt::Formatter<'_>, expected_version: Option<u64>) -> fmt::Result {
    match expected_version {
        Some(version) => write!(f, " if v{version}"),
        None => Ok(()),
    }
}

/// `create p1 "Ana"`, `get p1`, `update p1 to "Bea" if v2`, `delete p1 if v3`.
impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Create { id, name } => write!(f, "create {id} {name:?}"),
            Self::Get { id } => write!(f, "get {id}"),
            Self::Update {
                id,
                name,
                expected_version,
            } => {
                write!(f, "update {id} to {name:?}")?;
                condition(f, *expected_version)
            }
            Self::Delete {
                id,
                expected_version,
            } => {
                write!(f, "delete {id}")?;
                condition(f, *expected_version)
            }
        }
    }
}

/// `v2 "Bea"`, or the gRPC code of a refusal.
impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Record(record) => write!(f, "v{} {:?}", record.version, record.name),
            Self::NotFound => f.write_str("NOT_FOUND"),
            Self::AlreadyExists => f.write_str("ALREADY_EXISTS"),
            Self::VersionMismatch => f.write_str("FAILED_PRECONDITION"),
        }
    }
}
