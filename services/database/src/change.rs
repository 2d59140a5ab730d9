//! Committed changes: what watchers receive and what the change log keeps.

use crate::person::{Person, Timestamp};

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new record.
    Created,
    /// An existing record changed.
    Updated,
    /// A record was deleted.
    Deleted,
}

/// A change decided inside a transaction, before it gets its revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChange {
    /// What happened.
    pub kind: ChangeKind,
    /// The record after the change (for a delete, as it was).
    pub person: Person,
}

/// A committed change with its place in the store's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Store-wide, gap-free, in commit order.
    pub revision: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// The record after the change (for a delete, as it was).
    pub person: Person,
    /// When the transaction committed.
    pub commit_time: Timestamp,
}

impl PendingChange {
    /// The committed change at `revision`.
    pub fn commit(self, revision: u64, commit_time: Timestamp) -> Change {
        Change {
            revision,
            kind: self.kind,
            person: self.person,
            commit_time,
        }
    }
}
