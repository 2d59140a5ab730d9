//! The batch write transaction: lock every row the batch touches, decide each
//! write in Rust, write the rows, number the changes and append them to the
//! log; all of it again when a race with another replica is lost.
//!
//! Two round trips whatever the batch's size: `BEGIN` with the writers' gate
//! and the row locks, then the writes, the log and `COMMIT`, each group pipelined
//! (sent together, answered together). A statement that fails aborts the
//! transaction, and the `COMMIT` behind it then rolls back.

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::atomic::{AtomicU64, Ordering},
};

use deadpool_postgres::{GenericClient as _, Object};
use tokio_postgres::{error::SqlState, types::ToSql};
use tracing::warn;

use super::{
    failure,
    gate::WritersGate,
    query_cached,
    schema::{
        PersonArrays, kind_code, person_columns, person_from_row, revision_base, settled_below,
        to_i64, to_u64,
    },
};
use crate::{
    change::{ChangeKind, PendingChange},
    error::DatabaseError,
    person::{Person, Timestamp},
    store::WriteResult,
    write::{WriteOp, decide, decide_upsert},
};

/// Attempts at a batch that lost a race (deadlock, a row created concurrently by
/// another replica) before giving up.
const MAX_ATTEMPTS: usize = 5;
/// The change log is trimmed after a replica has logged at least this many
/// changes since its last trim (and at least a quarter of what it keeps), so
/// trimming happens in bulk rather than on every commit.
const TRIM_EVERY: u64 = 1024;

/// Locks and reads the rows of ids `$1`, in id order. A join with the ids
/// rather than `id = ANY($1)`: once the statement is prepared, PostgreSQL may
/// plan `= ANY` generically as a scan of the whole table (seen: 2 million rows
/// read for 8,000 creates), while a join probes the index once per id.
const LOCK: &str = concat!(
    "SELECT ",
    person_columns!(),
    " FROM UNNEST($1::text[]) AS wanted(id) JOIN people USING (id)
     ORDER BY id FOR UPDATE OF people"
);
/// Inserts people given as column arrays; a duplicate id (another replica
/// created it since the lock found it missing) fails the attempt.
const INSERT: &str = concat!(
    "INSERT INTO people (",
    person_columns!(),
    ") SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::int8[],
                            $6::timestamptz[], $7::timestamptz[])"
);
/// Replaces people given as column arrays.
const UPDATE: &str = "UPDATE people AS p SET name = u.name, email = u.email, age = u.age,
            version = u.version, update_time = u.update_time
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::int8[],
                 $6::timestamptz[], $7::timestamptz[])
          AS u(id, name, email, age, version, create_time, update_time)
     WHERE p.id = u.id";
/// Deletes the people of ids `$1` (a join, for the reason [`LOCK`] gives).
const DELETE: &str =
    "DELETE FROM people USING UNNEST($1::text[]) AS gone(id) WHERE people.id = gone.id";
/// Numbers the changes by this transaction's id (see `schema::revision_base`)
/// and logs them. `$1` is how many changes there are; the answer is the latest
/// revision. (No `NOTIFY` here: see `PostgresBackend::announce`.)
const LOG: &str = concat!(
    "WITH txn AS (
         SELECT ",
    revision_base!("pg_current_xact_id()"),
    " AS base
     ), logged AS (
         INSERT INTO people_changes (revision, kind, ",
    person_columns!(),
    ", commit_time)
         SELECT txn.base + change.position, change.kind, change.id, change.name,
                change.email, change.age, change.version, change.create_time,
                change.update_time, $2
         FROM txn, UNNEST($3::int2[], $4::text[], $5::text[], $6::text[], $7::int4[],
                          $8::int8[], $9::timestamptz[], $10::timestamptz[])
              WITH ORDINALITY AS change(kind, id, name, email, age, version, create_time,
                                        update_time, position)
     )
     SELECT base + $1::int8 FROM txn"
);
/// Drops all but the last `$1` settled changes, and records how far the log
/// no longer reaches (readers tell a trimmed revision from an unused one by
/// it: revisions are not consecutive). Only settled changes count, so that no
/// change still being committed can land below the mark.
const TRIM: &str = concat!(
    "WITH cutoff AS (
         SELECT revision FROM people_changes
         WHERE revision < ",
    settled_below!(),
    " ORDER BY revision DESC OFFSET $1 LIMIT 1
     ), gone AS (
         DELETE FROM people_changes WHERE revision <= (SELECT revision FROM cutoff)
     )
     UPDATE people_log SET trimmed_through = GREATEST(trimmed_through, cutoff.revision)
     FROM cutoff"
);

/// How much of the change log to keep, and how much this replica has logged
/// since it last trimmed.
#[derive(Debug)]
pub(super) struct LogRetention {
    keep: u64,
    logged_since_trim: AtomicU64,
}

impl LogRetention {
    /// Keeps the last `keep` changes (at least one).
    pub(super) fn new(keep: u64) -> Self {
        Self {
            keep: keep.max(1),
            logged_since_trim: AtomicU64::new(0),
        }
    }

    /// Counts `count` more changes logged; whether it is time to trim. A trim
    /// counts back through the `keep` changes it keeps (revisions are not
    /// consecutive, so the cut cannot be computed), so it waits for a quarter
    /// of that many new ones: a few index entries read per change, and the
    /// log holds between `keep` and about 1.25 times as many.
    fn logged(&self, count: u64) -> bool {
        let due = TRIM_EVERY.max(self.keep / 4);
        self.logged_since_trim.fetch_add(count, Ordering::Relaxed) + count >= due
    }

    fn trimmed(&self) {
        self.logged_since_trim.store(0, Ordering::Relaxed);
    }
}

/// Where a batch's changes go besides the tables.
pub(super) struct LogTarget<'a> {
    /// How much of the log to keep.
    pub(super) retention: &'a LogRetention,
    /// Held shared by every write transaction.
    pub(super) gate: &'a WritersGate,
}

/// Commits `ops` in one transaction, trying again (up to [`MAX_ATTEMPTS`]) when
/// another replica's transaction got in the way.
pub(super) async fn apply(
    client: &Object,
    ops: &[WriteOp],
    log: &LogTarget<'_>,
) -> Result<Vec<WriteResult>, DatabaseError> {
    let mut last_race = String::new();
    for _ in 0..MAX_ATTEMPTS {
        match try_apply(client, ops, log).await {
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
        Some(
            &SqlState::T_R_DEADLOCK_DETECTED
                | &SqlState::T_R_SERIALIZATION_FAILURE
                | &SqlState::UNIQUE_VIOLATION
        )
    )
}

/// What each write of a batch decided.
type Decisions = Vec<Result<Vec<PendingChange>, DatabaseError>>;

/// One attempt at the batch, in one transaction.
async fn try_apply(
    client: &Object,
    ops: &[WriteOp],
    log: &LogTarget<'_>,
) -> Result<Vec<WriteResult>, Attempt> {
    let now = Timestamp::now();
    let (pending, latest) = match transact(client, ops, log, now).await {
        Ok(done) => done,
        Err(failed) => {
            // Leave no transaction open on this connection, whichever round
            // trip failed (after the pipelined COMMIT this only warns).
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(failed);
        }
    };
    let Some(latest) = latest else {
        return Ok(pending
            .into_iter()
            .map(|result| result.map(|_| Vec::new()))
            .collect());
    };
    let count = pending.iter().flatten().map(Vec::len).sum::<usize>() as u64;
    if log.retention.logged(count) {
        // Committed: a failed trim must not fail the batch; the next one retries.
        match trim(client, log.retention.keep).await {
            Ok(()) => log.retention.trimmed(),
            Err(error) => warn!(error = %error, "cannot trim the change log"),
        }
    }
    Ok(number(pending, latest - count, now))
}

/// The transaction: `BEGIN` with the writers' gate and the row locks, the
/// decisions, then the writes, the log, the notification and `COMMIT`. What
/// each write decided, and the latest revision (`None` when nothing changed).
async fn transact(
    client: &Object,
    ops: &[WriteOp],
    log: &LogTarget<'_>,
    now: Timestamp,
) -> Result<(Decisions, Option<u64>), Attempt> {
    // Every pipelined statement's answer is awaited, and the first failure in
    // the order they were sent is the one that counts: the statements behind
    // it fail only because it aborted the transaction ("current transaction
    // is aborted"), and `try_join!` would report whichever it polled first
    // (it rotates), turning a retryable race into a failed batch.
    let (begun, locked) = tokio::join!(
        client.batch_execute(log.gate.begin_write()),
        WorkingSet::lock(client, ops),
    );
    begun?;
    let mut working = locked?;
    let pending: Decisions = ops.iter().map(|op| working.apply(op, now)).collect();
    let decided: Vec<&PendingChange> = pending.iter().flatten().flatten().collect();
    if decided.is_empty() {
        client.batch_execute("COMMIT").await?;
        return Ok((pending, None));
    }
    // Pipelining sends each statement when first polled, in order; a statement
    // not yet prepared would wait for its preparation and so reach the server
    // after the COMMIT. Prepare them first: once per connection, after which
    // this costs nothing.
    tokio::try_join!(
        client.prepare_cached(INSERT),
        client.prepare_cached(UPDATE),
        client.prepare_cached(DELETE),
        client.prepare_cached(LOG),
    )?;
    let (written, logged, committed) = tokio::join!(
        working.write(client),
        log_changes(client, &decided, now),
        client.batch_execute("COMMIT"),
    );
    written?;
    let latest = logged?;
    committed?;
    Ok((pending, Some(latest)))
}

/// Gives the decided changes the revisions after `before`, in order, as each
/// write's result; the log numbered them the same way.
fn number(
    pending: Vec<Result<Vec<PendingChange>, DatabaseError>>,
    before: u64,
    now: Timestamp,
) -> Vec<WriteResult> {
    let mut revision = before;
    pending
        .into_iter()
        .map(|result| {
            result.map(|changes| {
                changes
                    .into_iter()
                    .map(|change| {
                        revision += 1;
                        change.commit(revision, now)
                    })
                    .collect()
            })
        })
        .collect()
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
    async fn lock(client: &Object, ops: &[WriteOp]) -> Result<Self, Attempt> {
        let mut ids: Vec<&str> = ops.iter().flat_map(WriteOp::ids).collect();
        ids.sort_unstable();
        ids.dedup();
        let locked = query_cached(client, LOCK, &[&ids]).await?;
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

    /// Writes the final state of every row, its statements pipelined. A row
    /// that appeared since it was found missing (another replica created it)
    /// fails the attempt.
    async fn write(&self, client: &Object) -> Result<(), Attempt> {
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
        let insert = async {
            if !inserts.is_empty() {
                query_cached(client, INSERT, &PersonArrays::new(&inserts).params()).await?;
            }
            Ok::<_, Attempt>(())
        };
        let update = async {
            if !updates.is_empty() {
                query_cached(client, UPDATE, &PersonArrays::new(&updates).params()).await?;
            }
            Ok::<_, Attempt>(())
        };
        let delete = async {
            if !deletes.is_empty() {
                query_cached(client, DELETE, &[&deletes]).await?;
            }
            Ok::<_, Attempt>(())
        };
        // In the order sent; see `transact`.
        let (insert, update, delete) = tokio::join!(insert, update, delete);
        insert?;
        update?;
        delete?;
        Ok(())
    }
}

/// Numbers `changes` by this transaction's id and appends them to the log; the
/// latest revision.
async fn log_changes(
    client: &Object,
    changes: &[&PendingChange],
    now: Timestamp,
) -> Result<u64, Attempt> {
    let people: Vec<&Person> = changes.iter().map(|change| &change.person).collect();
    let columns = PersonArrays::new(&people);
    let count = i64::try_from(changes.len()).unwrap_or(i64::MAX);
    let commit_time = std::time::SystemTime::from(now);
    let kinds: Vec<i16> = changes
        .iter()
        .map(|change| kind_code(change.kind))
        .collect();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&count, &commit_time, &kinds];
    params.extend(columns.params());
    let latest: i64 = query_cached(client, LOG, &params)
        .await?
        .first()
        .map(|row| row.get(0))
        .ok_or_else(|| {
            Attempt::Fail(DatabaseError::Internal(
                "the log answered no revision".into(),
            ))
        })?;
    Ok(to_u64(latest))
}

/// Drops all but the last `keep` settled changes.
async fn trim(client: &Object, keep: u64) -> Result<(), tokio_postgres::Error> {
    client.execute(TRIM, &[&to_i64(keep)]).await?;
    Ok(())
}
