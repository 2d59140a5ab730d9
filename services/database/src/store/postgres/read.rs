//! Reads: one person, a page of people at one snapshot, the change log, and
//! the revision and the size. None of them waits for a writer (PostgreSQL's MVCC).
//! Every statement is prepared once per connection (the pool's statement
//! cache): preparing costs a round trip, as much as running it.

use super::{
    failure,
    gate::WritersGate,
    query_cached,
    schema::{
        change_from_row, person_columns, person_from_row, revision_base, settled_below, to_i64,
        to_u64,
    },
};
use crate::{
    change::Change,
    error::DatabaseError,
    listing::{ListQuery, Page},
    person::{Person, prefix_upper_bound},
};
use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;

/// Sorts above every id (ids are ASCII below 0x7F) for open-ended range scans.
const ABOVE_EVERY_ID: &str = "\u{7f}";
/// One person by id.
const PERSON: &str = concat!("SELECT ", person_columns!(), " FROM people WHERE id = $1");
/// A page: ids in `[$1, $2)` after `$3`, at most `$4`.
const PAGE: &str = concat!(
    "SELECT ",
    person_columns!(),
    " FROM people WHERE id >= $1 AND id < $2 AND id > $3 ORDER BY id LIMIT $4"
);
/// How far the log has been trimmed, and at most `$2` settled changes after
/// revision `$1` (none: one row of nulls beside the mark), in one snapshot.
const CHANGES: &str = concat!(
    "SELECT log.trimmed_through, revision, kind, ",
    person_columns!(),
    ", commit_time
     FROM people_log AS log LEFT JOIN LATERAL (
         SELECT * FROM people_changes WHERE revision > $1 AND revision < ",
    settled_below!(),
    " ORDER BY revision LIMIT $2
     ) AS change ON true
     ORDER BY revision"
);
/// The latest revision, exactly, when no write is in flight (behind the
/// writers' gate): every change committed so far has a transaction id below the
/// snapshot's `xmax`, and every later one an id at or above it.
const REVISION: &str = concat!(
    "SELECT GREATEST(",
    revision_base!("pg_snapshot_xmax(pg_current_snapshot())"),
    " - 1, trimmed_through) FROM people_log"
);

/// One person; NOT_FOUND when there is none.
pub(super) async fn person(client: &Object, id: &str) -> Result<Person, DatabaseError> {
    let rows = query_cached(client, PERSON, &[&id])
        .await
        .map_err(|error| failure(&error))?;
    rows.first()
        .map(person_from_row)
        .ok_or_else(|| DatabaseError::NotFound(id.to_owned()))
}

/// One page of people, and the revision it was read at: exactly the changes
/// at or below it are in the page.
pub(super) async fn page(
    client: &mut Object,
    query: &ListQuery,
    gate: &WritersGate,
) -> Result<Page, DatabaseError> {
    let upper = prefix_upper_bound(&query.prefix).unwrap_or_else(|| ABOVE_EVERY_ID.to_owned());
    let after = query.after.clone().unwrap_or_default();
    let limit = i64::try_from(query.limit + 1).unwrap_or(i64::MAX);
    let read = async {
        // Behind the closed gate no write commits, so the revision and the
        // rows, read by two statements, see the same people.
        let txn = gate.closed(client).await?;
        let page_params: [&(dyn ToSql + Sync); 4] = [&query.prefix, &upper, &after, &limit];
        let (revision, rows) = tokio::try_join!(
            query_cached(&txn, REVISION, &[]),
            query_cached(&txn, PAGE, &page_params),
        )?;
        txn.commit().await?;
        let revision: i64 = revision.first().map_or(0, |row| row.get(0));
        Ok::<_, tokio_postgres::Error>((revision, rows))
    };
    let (revision, rows) = read.await.map_err(|error| failure(&error))?;
    let mut people: Vec<Person> = rows.iter().map(person_from_row).collect();
    let more = people.len() > query.limit;
    people.truncate(query.limit);
    Ok(Page {
        people,
        more,
        revision: to_u64(revision),
    })
}

/// Up to `limit` settled changes after `revision`, in order; RevisionCompacted
/// when the log no longer reaches back that far.
pub(super) async fn changes_after(
    client: &Object,
    revision: u64,
    limit: usize,
) -> Result<Vec<Change>, DatabaseError> {
    let rows = query_cached(
        client,
        CHANGES,
        &[&to_i64(revision), &i64::try_from(limit).unwrap_or(i64::MAX)],
    )
    .await
    .map_err(|error| failure(&error))?;
    let trimmed_through = rows.first().map_or(0, |row| to_u64(row.get(0)));
    let changes: Vec<Change> = rows
        .iter()
        .filter(|row| row.get::<_, Option<i64>>("revision").is_some())
        .map(change_from_row)
        .collect::<Result<_, _>>()?;
    if revision < trimmed_through {
        return Err(DatabaseError::RevisionCompacted {
            requested: revision,
            oldest: changes
                .first()
                .map_or(trimmed_through + 1, |change| change.revision),
        });
    }
    Ok(changes)
}

/// Bytes the people table takes, indexes included.
pub(super) async fn size_bytes(client: &Object) -> Result<u64, DatabaseError> {
    select_number(client, "SELECT pg_total_relation_size('people')").await
}

/// The latest revision, exactly (see [`REVISION`]).
pub(super) async fn revision(
    client: &mut Object,
    gate: &WritersGate,
) -> Result<u64, DatabaseError> {
    let read = async {
        let txn = gate.closed(client).await?;
        let revision: i64 = query_cached(&txn, REVISION, &[])
            .await?
            .first()
            .map_or(0, |row| row.get(0));
        txn.commit().await?;
        Ok::<_, tokio_postgres::Error>(revision)
    };
    read.await.map(to_u64).map_err(|error| failure(&error))
}

/// The one number `sql` selects.
async fn select_number(client: &Object, sql: &str) -> Result<u64, DatabaseError> {
    let rows = query_cached(client, sql, &[])
        .await
        .map_err(|error| failure(&error))?;
    Ok(rows.first().map_or(0, |row| to_u64(row.get(0))))
}
