//! How the embedded store lays records out on disk: small Protobuf messages, so
//! fields can be added later without rewriting old records.

use prost::Message;

use crate::{
    change::{Change, ChangeKind},
    error::DatabaseError,
    person::{Person, PersonFields, Timestamp},
};

/// A person on disk.
#[derive(Clone, PartialEq, Message)]
struct StoredPerson {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(string, optional, tag = "3")]
    email: Option<String>,
    #[prost(uint32, optional, tag = "4")]
    age: Option<u32>,
    #[prost(uint64, tag = "5")]
    version: u64,
    #[prost(int64, tag = "6")]
    create_time_micros: i64,
    #[prost(int64, tag = "7")]
    update_time_micros: i64,
}

/// A change-log entry on disk (the revision is its key).
#[derive(Clone, PartialEq, Message)]
struct StoredChange {
    /// 1 created, 2 updated, 3 deleted.
    #[prost(uint32, tag = "1")]
    kind: u32,
    #[prost(message, optional, tag = "2")]
    person: Option<StoredPerson>,
    #[prost(int64, tag = "3")]
    commit_time_micros: i64,
}

impl From<&Person> for StoredPerson {
    fn from(person: &Person) -> Self {
        Self {
            id: person.id.clone(),
            name: person.fields.name.clone(),
            email: person.fields.email.clone(),
            age: person.fields.age,
            version: person.version,
            create_time_micros: person.create_time.0,
            update_time_micros: person.update_time.0,
        }
    }
}

impl From<StoredPerson> for Person {
    fn from(stored: StoredPerson) -> Self {
        Self {
            id: stored.id,
            fields: PersonFields {
                name: stored.name,
                email: stored.email,
                age: stored.age,
            },
            version: stored.version,
            create_time: Timestamp(stored.create_time_micros),
            update_time: Timestamp(stored.update_time_micros),
        }
    }
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> DatabaseError {
    DatabaseError::Internal(format!("corrupt {what} on disk: {error}"))
}

/// The bytes stored for `person`.
pub(super) fn encode_person(person: &Person) -> Vec<u8> {
    StoredPerson::from(person).encode_to_vec()
}

/// The person stored as `bytes`.
pub(super) fn decode_person(bytes: &[u8]) -> Result<Person, DatabaseError> {
    StoredPerson::decode(bytes)
        .map(Person::from)
        .map_err(|error| corrupt("person", error))
}

/// The bytes stored for `change`.
pub(super) fn encode_change(change: &Change) -> Vec<u8> {
    let kind = match change.kind {
        ChangeKind::Created => 1,
        ChangeKind::Updated => 2,
        ChangeKind::Deleted => 3,
    };
    StoredChange {
        kind,
        person: Some(StoredPerson::from(&change.person)),
        commit_time_micros: change.commit_time.0,
    }
    .encode_to_vec()
}

/// The change stored under `revision` as `bytes`.
pub(super) fn decode_change(revision: u64, bytes: &[u8]) -> Result<Change, DatabaseError> {
    let stored = StoredChange::decode(bytes).map_err(|error| corrupt("change", error))?;
    let kind = match stored.kind {
        1 => ChangeKind::Created,
        2 => ChangeKind::Updated,
        3 => ChangeKind::Deleted,
        other => return Err(corrupt("change", format!("unknown kind {other}"))),
    };
    let person = stored
        .person
        .ok_or_else(|| corrupt("change", "no person"))?;
    Ok(Change {
        revision,
        kind,
        person: person.into(),
        commit_time: Timestamp(stored.commit_time_micros),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip() {
        let change = Change {
            revision: 42,
            kind: ChangeKind::Updated,
            person: Person {
                id: "p".into(),
                fields: PersonFields {
                    name: "Ñu".into(),
                    email: None,
                    age: Some(0),
                },
                version: 2,
                create_time: Timestamp(-5),
                update_time: Timestamp(7),
            },
            commit_time: Timestamp(8),
        };
        assert_eq!(decode_change(42, &encode_change(&change)).unwrap(), change);
        assert!(decode_person(b"\xff\xff").is_err());
    }
}
