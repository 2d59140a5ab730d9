//! The batch write transaction: lock every row the batch touches, decide each
//! write in Rust, write the rows, number the changes, append them to the log and
//! notify the other replicas; all of it again when a race with another replica
//! is lost.

use std::collections::{HashMap, hash_map::Entry};

use deadpool_postgres::{GenericClient as _, Object, Transaction};
use tokio_postgres::{error::SqlState, types::ToSql};

use super::{
    failure,
    schema::{PERSON_COLUMNS, PersonArrays, kind_code, person_from_row, to_i64, to_u64},
};
use crate::{
    change::{Change, ChangeKind, PendingChange},
    error::DatabaseError,
    person::{Person, Timestamp},
    store::WriteResult,
    write::{WriteOp, decide, decide_upsert},
};

/// Attempts at a batch that lost a race (deadlock, a row created concurrently by
/// another replica) before giving up.
const MAX_ATTEMPTS: usize = 5;
/// The change log is trimmed when the revision crosses a multiple of this, so
/// trimming happens in bulk rather than on every commit.
const TRIM_EVERY: i64 = 1024;

/// Commits `ops` in one transaction, trying again (up to [`MAX_ATTEMPTS`]) when
/// another replica's transaction got in the way; `channel` is told the latest
/// revision, and the log keeps the last `retention` changes.
pub(super) async fn apply(
    client: &mut Object,
    ops: &[WriteOp],
    channel: &str,
    retention: u64,
) -> Result<Vec<WriteResult>, DatabaseError> {
    let mut last_race = String::new();
    for _ in 0..MAX_ATTEMPTS {
        match try_apply(client, ops, channel, retention).await {
            Ok(results) => return Ok(results),
            Err(Attempt::Retry(race)) => last_race = race,
            Err(Attempt::Fail(error)) => return Err(error),
        }
    }
    Err(DatabaseError::Unavailable(format!(
        "batch kept losing races with other replicas: {last_race}"
    )))
}

/// Why an attempt at a batch did not commit.
enum Attempt {
    /// Lost a race with another transaction; the batch may be tried again.
    Retry(String),
    /// Failed for good.
    Fail(DatabaseError),
}

impl From<tokio_postgres::Error> for Attempt {
    fn from(error: tokio_postgres::Error) -> Self {
        if is_retryable(&error) {
            Self::Retry(error.to_string())
        } else {
            Self::Fail(failure(&error))
        }
    }
}

fn is_retryable(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(&SqlState::T_R_DEADLOCK_DETECTED | &SqlState::T_R_SERIALIZATION_FAILURE)
    )
}

/// One attempt at the batch, in one transaction.
async fn try_apply(
    client: &mut Object,
    ops: &[WriteOp],
    channel: &str,
    retention: u64,
) -> Result<Vec<WriteResult>, Attempt> {
    let txn = client.transaction().await?;
    let mut working = WorkingSet::lock(&txn, ops).await?;
    let now = Timestamp::now();
    let pending: Vec<Result<Vec<PendingChange>, DatabaseError>> =
        ops.iter().map(|op| working.apply(op, now)).collect();
    let changes: usize = pending.iter().flatten().map(Vec::len).sum();
    if changes == 0 {
        txn.commit().await?;
        return Ok(pending
            .into_iter()
            .map(|result| result.map(|_| Vec::new()))
            .collect());
    }

    working.write(&txn).await?;
    let count = i64::try_from(changes).unwrap_or(i64::MAX);
    let latest: i64 = txn
        .query_one(
            "UPDATE people_revision SET revision = revision + $1 RETURNING revision",
            &[&count],
        )
        .await?
        .get(0);
    let (results, committed) = number(pending, to_u64(latest) - changes as u64, now);
    append_changes(&txn, &committed).await?;
    if latest / TRIM_EVERY != (latest - count) / TRIM_EVERY {
        let cutoff = latest - to_i64(retention);
        txn.execute(
            "DELETE FROM people_changes WHERE revision <= $1",
            &[&cutoff],
        )
        .await?;
    }
    txn.execute("SELECT pg_notify($1, $2)", &[&channel, &latest.to_string()])
        .await?;
    txn.commit().await?;
    Ok(results)
}

/// Gives the decided changes the revisions after `before`, in order: each
/// write's result, and every change for the log.
fn number(
    pending: Vec<Result<Vec<PendingChange>, DatabaseError>>,
    before: u64,
    now: Timestamp,
) -> (Vec<WriteResult>, Vec<Change>) {
    let mut revision = before;
    let mut results = Vec::with_capacity(pending.len());
    let mut committed = Vec::with_capacity(pending.iter().flatten().map(Vec::len).sum());
    for result in pending {
        results.push(result.map(|changes| {
            changes
                .into_iter()
                .map(|change| {
                    revision += 1;
                    let change = change.commit(revision, now);
                    committed.push(change.clone());
                    change
                })
                .collect()
        }));
    }
    (results, committed)
}

/// The rows a batch works on: what each id held when locked, and holds now.
struct WorkingSet {
    rows: HashMap<String, RowState>,
}

/// One id's row before and after the batch.
struct RowState {
    existed: bool,
    current: Option<Person>,
}

impl WorkingSet {
    /// Locks the row of every id `ops` touch, in id order (so that two
    /// replicas' batches never deadlock), and reads them.
    async fn lock(txn: &Transaction<'_>, ops: &[WriteOp]) -> Result<Self, Attempt> {
        let mut ids: Vec<&str> = ops.iter().flat_map(WriteOp::ids).collect();
        ids.sort_unstable();
        ids.dedup();
        let locked = txn
            .query(
                &format!(
                    "SELECT {PERSON_COLUMNS} FROM people WHERE id = ANY($1) ORDER BY id FOR UPDATE"
                ),
                &[&ids],
            )
            .await?;
        let mut rows = HashMap::with_capacity(ids.len());
        for row in &locked {
            let person = person_from_row(row);
            rows.insert(
                person.id.clone(),
                RowState {
                    existed: true,
                    current: Some(person),
                },
            );
        }
        Ok(Self { rows })
    }

    fn current(&self, id: &str) -> Option<&Person> {
        self.rows.get(id).and_then(|row| row.current.as_ref())
    }

    fn set(&mut self, change: &PendingChange) {
        let after = (change.kind != ChangeKind::Deleted).then(|| change.person.clone());
        match self.rows.entry(change.person.id.clone()) {
            Entry::Occupied(mut row) => row.get_mut().current = after,
            Entry::Vacant(row) => {
                row.insert(RowState {
                    existed: false,
                    current: after,
                });
            }
        }
    }

    fn apply(&mut self, op: &WriteOp, now: Timestamp) -> Result<Vec<PendingChange>, DatabaseError> {
        if let WriteOp::Import(people) = op {
            let mut changes = Vec::with_capacity(people.len());
            for person in people {
                let change = decide_upsert(person, self.current(&person.id), now);
                self.set(&change);
                changes.push(change);
            }
            return Ok(changes);
        }
        let id = op.ids().first().copied().unwrap_or_default();
        let change = decide(op, self.current(id), now)?;
        self.set(&change);
        Ok(vec![change])
    }

    /// Writes the final state of every row. A row that appeared since it was
    /// found missing (another replica created it) fails the attempt.
    async fn write(&self, txn: &Transaction<'_>) -> Result<(), Attempt> {
        let mut inserts = Vec::new();
        let mut updates = Vec::new();
        let mut deletes = Vec::new();
        for (id, row) in &self.rows {
            match (row.existed, &row.current) {
                (true, Some(person)) => updates.push(person),
                (true, None) => deletes.push(id.as_str()),
                (false, Some(person)) => inserts.push(person),
                (false, None) => {}
            }
        }
        if !inserts.is_empty() {
            let inserted = txn
                .query(
                    &format!(
                        "INSERT INTO people ({PERSON_COLUMNS})
                         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::int8[],
                                              $6::timestamptz[], $7::timestamptz[])
                         ON CONFLICT (id) DO NOTHING RETURNING id"
                    ),
                    &PersonArrays::new(&inserts).params(),
                )
                .await?;
            if inserted.len() != inserts.len() {
                return Err(Attempt::Retry("a person was created concurrently".into()));
            }
        }
        if !updates.is_empty() {
            txn.execute(
                "UPDATE people AS p SET name = u.name, email = u.email, age = u.age,
                        version = u.version, update_time = u.update_time
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::int8[],
                             $6::timestamptz[], $7::timestamptz[])
                      AS u(id, name, email, age, version, create_time, update_time)
                 WHERE p.id = u.id",
                &PersonArrays::new(&updates).params(),
            )
            .await?;
        }
        if !deletes.is_empty() {
            txn.execute("DELETE FROM people WHERE id = ANY($1)", &[&deletes])
                .await?;
        }
        Ok(())
    }
}

/// Appends `changes` to the log, in one statement.
async fn append_changes(
    txn: &Transaction<'_>,
    changes: &[Change],
) -> Result<(), tokio_postgres::Error> {
    let people: Vec<&Person> = changes.iter().map(|change| &change.person).collect();
    let columns = PersonArrays::new(&people);
    let revisions: Vec<i64> = changes
        .iter()
        .map(|change| to_i64(change.revision))
        .collect();
    let kinds: Vec<i16> = changes
        .iter()
        .map(|change| kind_code(change.kind))
        .collect();
    let commit_times: Vec<std::time::SystemTime> = changes
        .iter()
        .map(|change| change.commit_time.into())
        .collect();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&revisions, &kinds];
    params.extend(columns.params());
    params.push(&commit_times);
    txn.execute(
        &format!(
            "INSERT INTO people_changes (revision, kind, {PERSON_COLUMNS}, commit_time)
             SELECT * FROM UNNEST($1::int8[], $2::int2[], $3::text[], $4::text[], $5::text[], $6::int4[],
                                  $7::int8[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[])"
        ),
        &params,
    )
    .await?;
    Ok(())
}
