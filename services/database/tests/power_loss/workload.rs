//! Random workloads on a few ids, sent through `PeopleStore` in waves so that
//! group commit batches them, and what each write was answered.
//!
//! Every write names what it writes after itself (`w7`, or `w7.1` for the
//! second person of an import), so a change found after the power loss can be
//! traced to the write that made it.

use proptest::{collection::vec, option, prelude::*};
use quartet_database::{
    DatabaseError, Patch, PeopleStore,
    change::Change,
    person::{NewPerson, PersonFields},
};

/// The ids writes touch: few, so that they collide.
pub(crate) const IDS: [&str; 3] = ["p0", "p1", "p2"];

/// One write, on ids by their position in [`IDS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Write {
    /// Create a person.
    Create(usize),
    /// Rename a person, at a version if given.
    Update {
        id: usize,
        expected_version: Option<u64>,
    },
    /// Delete a person, at a version if given.
    Delete {
        id: usize,
        expected_version: Option<u64>,
    },
    /// Create or replace these people, in one transaction.
    Import(Vec<usize>),
}

impl Write {
    /// The id of the `part`-th person this write touches.
    pub(crate) fn id(&self, part: usize) -> Option<&'static str> {
        let position = match self {
            Self::Create(id) | Self::Update { id, .. } | Self::Delete { id, .. } if part == 0 => {
                *id
            }
            Self::Import(ids) => *ids.get(part)?,
            _ => return None,
        };
        Some(IDS[position])
    }

    /// How many changes the write makes when it succeeds.
    pub(crate) fn changes(&self) -> usize {
        match self {
            Self::Import(ids) => ids.len(),
            _ => 1,
        }
    }
}

/// Writes sent together.
#[derive(Debug, Clone)]
pub(crate) struct Wave {
    /// Sent at once, each from its own task.
    pub(crate) writes: Vec<Write>,
    /// Whether every earlier write is answered before this wave is sent;
    /// otherwise it queues behind the batch being committed.
    pub(crate) after_answers: bool,
}

/// How a write was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Committed: the changes it made. These must survive.
    Acknowledged(Vec<Change>),
    /// Refused (ALREADY_EXISTS, NOT_FOUND, FAILED_PRECONDITION): it changed
    /// nothing.
    Refused(DatabaseError),
    /// Failed with the store: it may or may not have been committed.
    Failed(DatabaseError),
}

impl From<Result<Vec<Change>, DatabaseError>> for Outcome {
    fn from(result: Result<Vec<Change>, DatabaseError>) -> Self {
        match result {
            Ok(changes) => Self::Acknowledged(changes),
            Err(
                refusal @ (DatabaseError::AlreadyExists(_)
                | DatabaseError::NotFound(_)
                | DatabaseError::VersionMismatch { .. }),
            ) => Self::Refused(refusal),
            Err(failure) => Self::Failed(failure),
        }
    }
}

/// The name the `part`-th person of the `index`-th write gets.
pub(crate) fn name(index: usize, part: usize, write: &Write) -> String {
    match write {
        Write::Import(_) => format!("w{index}.{part}"),
        _ => format!("w{index}"),
    }
}

/// The write and part that wrote `name`, if a write did.
pub(crate) fn author(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix('w')?;
    match rest.split_once('.') {
        Some((index, part)) => Some((index.parse().ok()?, part.parse().ok()?)),
        None => Some((rest.parse().ok()?, 0)),
    }
}

/// Every write of `waves`, in the order they are numbered.
pub(crate) fn writes(waves: &[Wave]) -> Vec<Write> {
    waves
        .iter()
        .flat_map(|wave| wave.writes.iter().cloned())
        .collect()
}

/// Sends every wave, and returns the answer to each write, in write order.
pub(crate) async fn run(store: &PeopleStore, waves: &[Wave]) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut unanswered = Vec::new();
    let mut index = 0;
    for wave in waves {
        if wave.after_answers {
            for write in unanswered.drain(..) {
                outcomes.push(answer(write).await);
            }
        }
        for write in &wave.writes {
            let store = store.clone();
            let write = write.clone();
            unanswered.push(tokio::spawn(
                async move { send(&store, index, &write).await },
            ));
            index += 1;
        }
        // Let the wave reach the queue before the next one is sent.
        tokio::task::yield_now().await;
    }
    for write in unanswered {
        outcomes.push(answer(write).await);
    }
    outcomes
}

async fn answer(write: tokio::task::JoinHandle<Outcome>) -> Outcome {
    write.await.expect("a write's task panicked")
}

async fn send(store: &PeopleStore, index: usize, write: &Write) -> Outcome {
    let person = |part: usize| {
        let id = write
            .id(part)
            .expect("the write touches this part")
            .to_owned();
        NewPerson::new(id, fields(name(index, part, write))).expect("a valid person")
    };
    let result = match write {
        Write::Create(_) => store.create(person(0)).await.map(|change| vec![change]),
        Write::Update {
            id,
            expected_version,
        } => {
            let patch = Patch {
                name: Some(name(index, 0, write)),
                ..Patch::default()
            };
            store
                .update(IDS[*id].to_owned(), patch, *expected_version)
                .await
                .map(|change| vec![change])
        }
        Write::Delete {
            id,
            expected_version,
        } => store
            .delete(IDS[*id].to_owned(), *expected_version)
            .await
            .map(|change| vec![change]),
        Write::Import(ids) => store.import((0..ids.len()).map(person).collect()).await,
    };
    Outcome::from(result)
}

fn fields(name: String) -> PersonFields {
    PersonFields {
        name,
        email: None,
        age: None,
    }
}

/// Any write; the expected versions are small, so some match.
fn write() -> impl Strategy<Value = Write> {
    let id = 0..IDS.len();
    let expected_version = || option::of(1..=3_u64);
    prop_oneof![
        3 => id.clone().prop_map(Write::Create),
        3 => (id.clone(), expected_version())
            .prop_map(|(id, expected_version)| Write::Update { id, expected_version }),
        2 => (id.clone(), expected_version())
            .prop_map(|(id, expected_version)| Write::Delete { id, expected_version }),
        1 => vec(id, 1..=3).prop_map(Write::Import),
    ]
}

/// Up to six waves of up to five writes.
pub(crate) fn waves() -> impl Strategy<Value = Vec<Wave>> {
    let wave = (vec(write(), 1..=5), any::<bool>()).prop_map(|(writes, after_answers)| Wave {
        writes,
        after_answers,
    });
    vec(wave, 1..=6)
}
