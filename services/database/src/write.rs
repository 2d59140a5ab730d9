//! Writes as values, and what each one does to the record it touches.
//!
//! Both stores run the same decisions: they read the current record inside their
//! transaction, call [`decide`] or [`decide_upsert`], and store the result. So the
//! rules (ALREADY_EXISTS, NOT_FOUND, version checks, field masks) live once, here.

use crate::{
    change::{ChangeKind, PendingChange},
    error::{DatabaseError, FieldError},
    person::{
        NewPerson, Person, PersonFields, Timestamp, validate_age, validate_email, validate_name,
    },
};

/// The fields an update changes; `None` leaves a field alone, and for the optional
/// fields `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patch {
    /// A new name.
    pub name: Option<String>,
    /// A new e-mail address, or `Some(None)` to clear it.
    pub email: Option<Option<String>>,
    /// A new age, or `Some(None)` to clear it.
    pub age: Option<Option<u32>>,
}

/// The mutable fields, as `update_mask` names them.
const MUTABLE: [&str; 3] = ["name", "email", "age"];
/// Fields a client may read but never write.
const IMMUTABLE: [&str; 4] = ["id", "version", "create_time", "update_time"];

impl Patch {
    /// The patch an update asks for: the `update_mask` paths (absent or empty:
    /// every field set in `values`; `*`: every mutable field) applied to `values`.
    pub fn from_mask(paths: &[String], values: &PersonFields) -> Result<Self, FieldError> {
        let mut patch = Self::default();
        if paths.is_empty() {
            if !values.name.is_empty() {
                patch.name = Some(values.name.clone());
            }
            if values.email.is_some() {
                patch.email = Some(values.email.clone());
            }
            if values.age.is_some() {
                patch.age = Some(values.age);
            }
        }
        for path in paths {
            let single = [path.as_str()];
            let fields: &[&str] = if path == "*" { &MUTABLE } else { &single };
            for field in fields {
                match *field {
                    "name" => patch.name = Some(values.name.clone()),
                    "email" => patch.email = Some(values.email.clone()),
                    "age" => patch.age = Some(values.age),
                    other if IMMUTABLE.contains(&other) => {
                        return Err(FieldError::new(
                            "update_mask",
                            format!("{} cannot be changed", quartet_text::excerpt(other)),
                        ));
                    }
                    other => {
                        return Err(FieldError::new(
                            "update_mask",
                            format!("unknown field {}", quartet_text::excerpt(other)),
                        ));
                    }
                }
            }
        }
        if patch == Self::default() {
            return Err(FieldError::new("update_mask", "nothing to update"));
        }
        patch.validate()?;
        Ok(patch)
    }

    fn validate(&self) -> Result<(), FieldError> {
        if let Some(name) = &self.name {
            validate_name("person.name", name)?;
        }
        if let Some(Some(email)) = &self.email {
            validate_email("person.email", email)?;
        }
        if let Some(Some(age)) = self.age {
            validate_age("person.age", age)?;
        }
        Ok(())
    }

    fn apply(&self, fields: &mut PersonFields) {
        if let Some(name) = &self.name {
            fields.name.clone_from(name);
        }
        if let Some(email) = &self.email {
            fields.email.clone_from(email);
        }
        if let Some(age) = self.age {
            fields.age = age;
        }
    }
}

/// One write a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Create a person whose id must be free.
    Create(NewPerson),
    /// Change some fields of an existing person.
    Update {
        /// The record.
        id: String,
        /// What to change.
        patch: Patch,
        /// Apply only at this version.
        expected_version: Option<u64>,
    },
    /// Delete an existing person.
    Delete {
        /// The record.
        id: String,
        /// Delete only at this version.
        expected_version: Option<u64>,
    },
    /// Create or replace each person, in one transaction.
    Import(Vec<NewPerson>),
}

impl WriteOp {
    /// The ids this write touches, in the order it touches them.
    pub fn ids(&self) -> Vec<&str> {
        match self {
            Self::Create(person) => vec![person.id.as_str()],
            Self::Update { id, .. } | Self::Delete { id, .. } => vec![id.as_str()],
            Self::Import(people) => people.iter().map(|person| person.id.as_str()).collect(),
        }
    }
}

fn check_version(current: &Person, expected: Option<u64>) -> Result<(), DatabaseError> {
    match expected {
        Some(expected) if expected != current.version => Err(DatabaseError::VersionMismatch {
            id: current.id.clone(),
            expected,
            actual: current.version,
        }),
        _ => Ok(()),
    }
}

/// A new record for `person`: version 1, created and updated `now`.
fn created(person: &NewPerson, now: Timestamp) -> PendingChange {
    PendingChange {
        kind: ChangeKind::Created,
        person: Person {
            id: person.id.clone(),
            fields: person.fields.clone(),
            version: 1,
            create_time: now,
            update_time: now,
        },
    }
}

/// What a single-record write does to `current` (the stored record, if any).
/// `Import` is not single-record; see [`decide_upsert`].
pub fn decide(
    op: &WriteOp,
    current: Option<&Person>,
    now: Timestamp,
) -> Result<PendingChange, DatabaseError> {
    match (op, current) {
        (WriteOp::Create(person), None) => Ok(created(person, now)),
        (WriteOp::Create(person), Some(_)) => Err(DatabaseError::AlreadyExists(person.id.clone())),
        (WriteOp::Update { id, .. } | WriteOp::Delete { id, .. }, None) => {
            Err(DatabaseError::NotFound(id.clone()))
        }
        (
            WriteOp::Update {
                patch,
                expected_version,
                ..
            },
            Some(current),
        ) => {
            check_version(current, *expected_version)?;
            let mut person = current.clone();
            patch.apply(&mut person.fields);
            person.version += 1;
            person.update_time = now;
            Ok(PendingChange {
                kind: ChangeKind::Updated,
                person,
            })
        }
        (
            WriteOp::Delete {
                expected_version, ..
            },
            Some(current),
        ) => {
            check_version(current, *expected_version)?;
            Ok(PendingChange {
                kind: ChangeKind::Deleted,
                person: current.clone(),
            })
        }
        (WriteOp::Import(_), _) => Err(DatabaseError::Internal(
            "import is not a single-record write".into(),
        )),
    }
}

/// What importing `person` does: create it, or replace every field of the stored
/// record and bump its version.
pub fn decide_upsert(
    person: &NewPerson,
    current: Option<&Person>,
    now: Timestamp,
) -> PendingChange {
    match current {
        None => created(person, now),
        Some(current) => PendingChange {
            kind: ChangeKind::Updated,
            person: Person {
                fields: person.fields.clone(),
                version: current.version + 1,
                update_time: now,
                ..current.clone()
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(name: &str, email: Option<&str>, age: Option<u32>) -> PersonFields {
        PersonFields {
            name: name.into(),
            email: email.map(Into::into),
            age,
        }
    }

    fn stored() -> Person {
        Person {
            id: "p1".into(),
            fields: fields("Ana", Some("ana@example.com"), Some(30)),
            version: 3,
            create_time: Timestamp(1),
            update_time: Timestamp(2),
        }
    }

    fn paths(paths: &[&str]) -> Vec<String> {
        paths.iter().map(|&path| path.to_owned()).collect()
    }

    #[test]
    fn an_empty_mask_means_the_fields_that_are_set() {
        let patch = Patch::from_mask(&[], &fields("", None, Some(31))).unwrap();
        assert_eq!(
            patch,
            Patch {
                age: Some(Some(31)),
                ..Patch::default()
            }
        );
    }

    #[test]
    fn a_named_field_left_empty_is_cleared() {
        let patch = Patch::from_mask(&paths(&["email"]), &fields("", None, None)).unwrap();
        assert_eq!(patch.email, Some(None));
        let change = decide(
            &WriteOp::Update {
                id: "p1".into(),
                patch,
                expected_version: None,
            },
            Some(&stored()),
            Timestamp(9),
        )
        .unwrap();
        assert_eq!(change.person.fields, fields("Ana", None, Some(30)));
        assert_eq!(
            (change.person.version, change.person.update_time),
            (4, Timestamp(9))
        );
        assert_eq!(change.person.create_time, Timestamp(1));
    }

    #[test]
    fn star_replaces_every_mutable_field() {
        let patch = Patch::from_mask(&paths(&["*"]), &fields("Bea", None, None)).unwrap();
        assert_eq!(
            patch,
            Patch {
                name: Some("Bea".into()),
                email: Some(None),
                age: Some(None)
            }
        );
    }

    #[test]
    fn masks_name_the_field_they_reject() {
        let error = |mask: &[&str], values| {
            Patch::from_mask(&paths(mask), &values)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error(&["id"], fields("x", None, None)),
            "update_mask: \"id\" cannot be changed"
        );
        assert_eq!(
            error(&["nickname"], fields("x", None, None)),
            "update_mask: unknown field \"nickname\""
        );
        assert_eq!(
            error(&[], fields("", None, None)),
            "update_mask: nothing to update"
        );
        assert_eq!(
            error(&["name"], fields("", None, None)),
            "person.name: must not be empty"
        );
        assert_eq!(
            error(&["age"], fields("x", None, Some(200))),
            "person.age: 200 is above 150"
        );
    }

    #[test]
    fn create_on_a_taken_id_is_already_exists() {
        let op = WriteOp::Create(NewPerson::new("p1".into(), fields("Ana", None, None)).unwrap());
        assert_eq!(
            decide(&op, Some(&stored()), Timestamp(5)),
            Err(DatabaseError::AlreadyExists("p1".into()))
        );
        let created = decide(&op, None, Timestamp(5)).unwrap();
        assert_eq!(
            (created.kind, created.person.version),
            (ChangeKind::Created, 1)
        );
    }

    #[test]
    fn writes_on_a_missing_id_are_not_found() {
        let delete = WriteOp::Delete {
            id: "ghost".into(),
            expected_version: None,
        };
        assert_eq!(
            decide(&delete, None, Timestamp(5)),
            Err(DatabaseError::NotFound("ghost".into()))
        );
    }

    #[test]
    fn a_stale_expected_version_is_refused() {
        let delete = WriteOp::Delete {
            id: "p1".into(),
            expected_version: Some(2),
        };
        assert!(matches!(
            decide(&delete, Some(&stored()), Timestamp(5)),
            Err(DatabaseError::VersionMismatch {
                expected: 2,
                actual: 3,
                ..
            })
        ));
        let delete = WriteOp::Delete {
            id: "p1".into(),
            expected_version: Some(3),
        };
        assert_eq!(
            decide(&delete, Some(&stored()), Timestamp(5)).unwrap().kind,
            ChangeKind::Deleted
        );
    }

    #[test]
    fn upsert_keeps_create_time_and_bumps_the_version() {
        let person = NewPerson::new("p1".into(), fields("Ana María", None, None)).unwrap();
        let change = decide_upsert(&person, Some(&stored()), Timestamp(7));
        assert_eq!(change.kind, ChangeKind::Updated);
        assert_eq!(change.person.version, 4);
        assert_eq!(change.person.create_time, Timestamp(1));
        assert_eq!(change.person.fields.email, None);
    }
}
