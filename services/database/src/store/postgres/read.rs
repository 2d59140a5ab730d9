//! Reads: one person, a page of people at one snapshot, the change log, and
//! the revision and the size. None of them waits for a writer (PostgreSQL's MVCC).
//! Every statement is prepared once per connection (the pool's statement
//! cache): preparing costs a round trip, as much as running it.

use deadpool_postgres::Object;
use tokio_postgres::IsolationLevel;

use super::{
    failure, query_cached,
    schema::{change_from_row, person_columns, person_from_row, to_i64, to_u64},
};
use crate::{
    change::Change,
    error::DatabaseError,
    listing::{ListQuery, Page},
    person::{Person, prefix_upper_bound},
};

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
/// At most `$2` changes after revision `$1`.
const CHANGES: &str = concat!(
    "SELECT revision, kind, ",
    person_columns!(),
    ", commit_time FROM people_changes WHERE revision > $1 ORDER BY revision LIMIT $2"
);
/// The latest committed revision.
const REVISION: &str = "SELECT revision FROM people_revision";

/// One person; NOT_FOUND when there is none.
pub(super) async fn person(client: &Object, id: &str) -> Result<Person, DatabaseError> {
    let rows = query_cached(client, PERSON, &[&id])
        .await
        .map_err(|error| failure(&error))?;
    rows.first()
        .map(person_from_row)
        .ok_or_else(|| DatabaseError::NotFound(id.to_owned()))
}

/// One page of people, and the revision it was read at.
pub(super) async fn page(client: &mut Object, query: &ListQuery) -> Result<Page, DatabaseError> {
    let upper = prefix_upper_bound(&query.prefix).unwrap_or_else(|| ABOVE_EVERY_ID.to_owned());
    let after = query.after.clone().unwrap_or_default();
    let limit = i64::try_from(query.limit + 1).unwrap_or(i64::MAX);
    let read = async {
        // One snapshot for the revision and the rows, so watching from the
        // revision misses nothing the page does not show.
        let txn = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let revision: i64 = query_cached(&txn, REVISION, &[])
            .await?
            .first()
            .map_or(0, |row| row.get(0));
        let rows = query_cached(&txn, PAGE, &[&query.prefix, &upper, &after, &limit]).await?;
        txn.commit().await?;
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

/// Up to `limit` changes after `revision`, in order; RevisionCompacted when the
/// log no longer reaches back that far.
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
    let changes: Vec<Change> = rows.iter().map(change_from_row).collect::<Result<_, _>>()?;
    if let Some(first) = changes.first()
        && first.revision != revision + 1
    {
        return Err(DatabaseError::RevisionCompacted {
            requested: revision,
            oldest: first.revision,
        });
    }
    Ok(changes)
}

/// Bytes the people table takes, indexes included.
pub(super) async fn size_bytes(client: &Object) -> Result<u64, DatabaseError> {
    select_number(client, "SELECT pg_total_relation_size('people')").await
}

/// The latest committed revision.
pub(super) async fn revision(client: &Object) -> Result<u64, DatabaseError> {
    select_number(client, REVISION).await
}

/// The one number `sql` selects.
async fn select_number(client: &Object, sql: &str) -> Result<u64, DatabaseError> {
    let rows = query_cached(client, sql, &[])
        .await
        .map_err(|error| failure(&error))?;
    Ok(rows.first().map_or(0, |row| to_u64(row.get(0))))
}
