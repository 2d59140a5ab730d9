//! What must hold of a store after a power loss, given what its writers were
//! answered before it.
//!
//! - Every acknowledged write survived, exactly as answered.
//! - The change log has no hole: revisions 1 to the store's revision, each
//!   once, and the acknowledged ones are exactly 1 to the last of them.
//! - Whatever else survived was in flight at the power loss (its write failed
//!   with the store), whole: an import is all there or not at all.
//! - Replaying the log from an empty store gives the records found, and every
//!   change in it is a legal step (a create of a free id at version 1, an
//!   update one version up, a delete of the record as it was): so each
//!   person's version counts the writes that survived for it.

use std::collections::{BTreeMap, BTreeSet};

use quartet_database::{
    change::{Change, ChangeKind},
    person::Person,
};

use crate::workload::{Outcome, Write, author};

/// What a reopened store holds.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// The revision it reports.
    pub(crate) revision: u64,
    /// Every person, by id.
    pub(crate) people: BTreeMap<String, Person>,
    /// Its change feed from the start, as a watcher receives it.
    pub(crate) changes: Vec<Change>,
}

/// Checks `recovered` against the `outcomes` of `writes`; the error says what
/// broke, in words.
pub(crate) fn check(
    writes: &[Write],
    outcomes: &[Outcome],
    recovered: &Recovered,
) -> Result<(), String> {
    let acknowledged = acknowledged(writes, outcomes)?;
    check_log_is_whole(recovered)?;
    check_acknowledged_survived(&acknowledged, recovered)?;
    let in_flight = &recovered.changes[acknowledged.len().min(recovered.changes.len())..];
    check_rest_was_in_flight(writes, outcomes, in_flight)?;
    check_replay(recovered)
}

/// Every acknowledged change by revision, with the write that made it; the
/// revisions must be 1 to the last one, each once.
fn acknowledged<'a>(
    writes: &'a [Write],
    outcomes: &'a [Outcome],
) -> Result<BTreeMap<u64, (&'a Write, &'a Change)>, String> {
    let mut by_revision = BTreeMap::new();
    for (write, outcome) in writes.iter().zip(outcomes) {
        let Outcome::Acknowledged(changes) = outcome else {
            continue;
        };
        for change in changes {
            if by_revision
                .insert(change.revision, (write, change))
                .is_some()
            {
                return Err(format!(
                    "two acknowledged changes have revision {}",
                    change.revision
                ));
            }
        }
    }
    let last = by_revision.keys().next_back().copied().unwrap_or(0);
    if last != by_revision.len() as u64 {
        return Err(format!(
            "acknowledged revisions skip some: {} changes up to revision {last}",
            by_revision.len()
        ));
    }
    Ok(by_revision)
}

fn check_log_is_whole(recovered: &Recovered) -> Result<(), String> {
    for (due, change) in (1..).zip(&recovered.changes) {
        if change.revision != due {
            return Err(format!(
                "the change feed has a hole: revision {} where {due} was due",
                change.revision
            ));
        }
    }
    if recovered.changes.len() as u64 != recovered.revision {
        return Err(format!(
            "the store reports revision {} but its feed ends at {}",
            recovered.revision,
            recovered.changes.len()
        ));
    }
    Ok(())
}

fn check_acknowledged_survived(
    acknowledged: &BTreeMap<u64, (&Write, &Change)>,
    recovered: &Recovered,
) -> Result<(), String> {
    for (&revision, &(write, answered)) in acknowledged {
        let position = usize::try_from(revision - 1).expect("a revision fits in memory");
        match recovered.changes.get(position) {
            None => {
                return Err(format!(
                    "lost an acknowledged write: {write:?} was answered with revision \
                     {revision} ({:?} {} at version {}), but the store came back at \
                     revision {}",
                    answered.kind, answered.person.id, answered.person.version, recovered.revision
                ));
            }
            Some(found) if found != answered => {
                return Err(format!(
                    "acknowledged revision {revision} changed: answered {answered:?}, \
                     found {found:?}"
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Each change past the acknowledged ones must come from a write that failed
/// with the store, and such a write must be there whole or not at all.
fn check_rest_was_in_flight(
    writes: &[Write],
    outcomes: &[Outcome],
    in_flight: &[Change],
) -> Result<(), String> {
    let failed = |index: usize| matches!(outcomes.get(index), Some(Outcome::Failed(_)));
    let mut claimed: BTreeSet<(usize, usize)> = BTreeSet::new();
    for change in in_flight {
        let origin = match change.kind {
            ChangeKind::Created | ChangeKind::Updated => {
                author(&change.person.fields.name).filter(|&(index, part)| {
                    failed(index)
                        && writes[index].id(part) == Some(change.person.id.as_str())
                        && matches!(
                            (&writes[index], change.kind),
                            (Write::Create(_) | Write::Import(_), ChangeKind::Created)
                                | (Write::Update { .. } | Write::Import(_), ChangeKind::Updated)
                        )
                        && !claimed.contains(&(index, part))
                })
            }
            ChangeKind::Deleted => (0..writes.len())
                .find(|&index| {
                    failed(index)
                        && matches!(writes[index], Write::Delete { .. })
                        && writes[index].id(0) == Some(change.person.id.as_str())
                        && !claimed.contains(&(index, 0))
                })
                .map(|index| (index, 0)),
        };
        let Some(origin) = origin else {
            return Err(format!(
                "revision {} was never acknowledged and no write in flight made it: {change:?}",
                change.revision
            ));
        };
        claimed.insert(origin);
    }
    for (index, write) in writes.iter().enumerate() {
        let parts = claimed.range((index, 0)..(index + 1, 0)).count();
        if parts != 0 && parts != write.changes() {
            return Err(format!(
                "{write:?} (write {index}) survived in part: {parts} of {} changes",
                write.changes()
            ));
        }
    }
    Ok(())
}

/// Replays the feed from nothing: every step legal, and the result is the
/// records found.
fn check_replay(recovered: &Recovered) -> Result<(), String> {
    let mut people: BTreeMap<String, Person> = BTreeMap::new();
    for change in &recovered.changes {
        let person = &change.person;
        let before = people.get(&person.id);
        let legal = match (change.kind, before) {
            (ChangeKind::Created, None) => {
                person.version == 1
                    && person.create_time == change.commit_time
                    && person.update_time == change.commit_time
            }
            (ChangeKind::Updated, Some(before)) => {
                person.version == before.version + 1
                    && person.create_time == before.create_time
                    && person.update_time == change.commit_time
            }
            (ChangeKind::Deleted, Some(before)) => person == before,
            _ => false,
        };
        if !legal {
            return Err(format!(
                "revision {} is not a legal step from {before:?}: {change:?}",
                change.revision
            ));
        }
        if change.kind == ChangeKind::Deleted {
            people.remove(&person.id);
        } else {
            people.insert(person.id.clone(), person.clone());
        }
    }
    if people != recovered.people {
        return Err(format!(
            "the records disagree with the change feed: replayed {people:?}, found {:?}",
            recovered.people
        ));
    }
    Ok(())
}
