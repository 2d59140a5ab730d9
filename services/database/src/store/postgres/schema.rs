//! The tables: their migrations, and how records map to rows and back.

use std::time::SystemTime;

use tokio_postgres::{Row, types::ToSql};
use tracing::info;

use crate::{
    change::{Change, ChangeKind},
    error::DatabaseError,
    person::{Person, PersonFields, Timestamp},
};

/// Schema migrations, applied in order once each, under an advisory lock so that
/// replicas starting together do not race.
///
/// 2 numbers changes by their transaction id ([`revision_base`]) instead of a
/// counter row every commit updated, which serialized replicas' commits. It
/// drops the counter row so that a replica still running the old code fails
/// its writes loudly rather than numbering changes the old way: stop old
/// replicas before starting new ones.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r#"
    CREATE TABLE people (
        id          text COLLATE "C" PRIMARY KEY,
        name        text NOT NULL,
        email       text,
        age         integer,
        version     bigint NOT NULL,
        create_time timestamptz NOT NULL,
        update_time timestamptz NOT NULL
    );
    CREATE TABLE people_changes (
        revision    bigint PRIMARY KEY,
        kind        smallint NOT NULL,
        id          text COLLATE "C" NOT NULL,
        name        text NOT NULL,
        email       text,
        age         integer,
        version     bigint NOT NULL,
        create_time timestamptz NOT NULL,
        update_time timestamptz NOT NULL,
        commit_time timestamptz NOT NULL
    );
    CREATE TABLE people_revision (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        revision bigint NOT NULL
    );
    INSERT INTO people_revision (revision) VALUES (0);
    "#,
    ),
    (
        2,
        r"
    CREATE TABLE people_log (
        only_row        boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        trimmed_through bigint NOT NULL
    );
    INSERT INTO people_log (trimmed_through)
        SELECT COALESCE((SELECT min(revision) - 1 FROM people_changes), revision)
        FROM people_revision;
    DROP TABLE people_revision;
    ",
    ),
];

/// Revisions per transaction: a change's revision is its transaction's id
/// times this, plus its position in the transaction (1, 2, ...). A batch holds
/// at most `MAX_BATCH_OPS` writes of at most `MAX_IMPORT_BATCH` people each.
pub(super) const REVISIONS_PER_TRANSACTION: u64 = 1 << 20;
const _: () = assert!(
    ((crate::store::MAX_BATCH_OPS * crate::grpc::MAX_IMPORT_BATCH) as u64)
        < REVISIONS_PER_TRANSACTION
);

/// SQL for the first revision a transaction id may take. A macro, so that
/// statements stay `concat!`ed constants.
///
/// Why transaction ids: they are taken without any lock, so replicas commit
/// side by side, and they let a reader tell which changes are settled. Every
/// transaction below the oldest one still running (`pg_snapshot_xmin` of the
/// reader's snapshot) has ended, so the log below [`settled_below`] never
/// gains another row: reading only that part keeps the feed gap-free even
/// though transactions commit out of id order.
macro_rules! revision_base {
    ($xid:expr) => {
        concat!("(", $xid, ")::text::bigint * 1048576")
    };
}
pub(super) use revision_base;

/// SQL for the revision below which the log, as the statement's snapshot sees
/// it, is final (see [`revision_base`]).
macro_rules! settled_below {
    () => {
        $crate::store::postgres::schema::revision_base!("pg_snapshot_xmin(pg_current_snapshot())")
    };
}
pub(super) use settled_below;

/// A person's columns, in table order: both tables hold them so. A macro, so
/// that statements are `concat!`ed constants (the statement cache's keys).
macro_rules! person_columns {
    () => {
        "id, name, email, age, version, create_time, update_time"
    };
}
pub(super) use person_columns;

/// Applies the migrations this database has not seen yet.
pub(super) async fn migrate(
    client: &mut deadpool_postgres::Object,
) -> Result<(), tokio_postgres::Error> {
    let txn = client.transaction().await?;
    txn.execute(
        "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.quartet_migrations'))",
        &[],
    )
    .await?;
    txn.batch_execute(
        "CREATE TABLE IF NOT EXISTS quartet_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let applied: Vec<i32> = txn
        .query("SELECT version FROM quartet_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        txn.batch_execute(sql).await?;
        txn.execute(
            "INSERT INTO quartet_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
        info!(version, "applied database migration");
    }
    txn.commit().await
}

/// The person in a row of `people`, or in a row of `people_changes`.
pub(super) fn person_from_row(row: &Row) -> Person {
    Person {
        id: row.get("id"),
        fields: PersonFields {
            name: row.get("name"),
            email: row.get("email"),
            age: row
                .get::<_, Option<i32>>("age")
                .and_then(|age| u32::try_from(age).ok()),
        },
        version: to_u64(row.get("version")),
        create_time: Timestamp::from(row.get::<_, SystemTime>("create_time")),
        update_time: Timestamp::from(row.get::<_, SystemTime>("update_time")),
    }
}

/// The change in a row of `people_changes`.
pub(super) fn change_from_row(row: &Row) -> Result<Change, DatabaseError> {
    let kind = match row.get::<_, i16>("kind") {
        1 => ChangeKind::Created,
        2 => ChangeKind::Updated,
        3 => ChangeKind::Deleted,
        other => {
            return Err(DatabaseError::Internal(format!(
                "unknown change kind {other} in people_changes"
            )));
        }
    };
    Ok(Change {
        revision: to_u64(row.get("revision")),
        kind,
        person: person_from_row(row),
        commit_time: Timestamp::from(row.get::<_, SystemTime>("commit_time")),
    })
}

/// How `people_changes.kind` stores a kind; [`change_from_row`] reads it back.
pub(super) fn kind_code(kind: ChangeKind) -> i16 {
    match kind {
        ChangeKind::Created => 1,
        ChangeKind::Updated => 2,
        ChangeKind::Deleted => 3,
    }
}

/// A count or a version as a `bigint` column holds it.
pub(super) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A `bigint` column as the count or version it holds.
pub(super) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// People as column arrays, for `UNNEST`.
pub(super) struct PersonArrays<'a> {
    ids: Vec<&'a str>,
    names: Vec<&'a str>,
    emails: Vec<Option<&'a str>>,
    ages: Vec<Option<i32>>,
    versions: Vec<i64>,
    create_times: Vec<SystemTime>,
    update_times: Vec<SystemTime>,
}

impl<'a> PersonArrays<'a> {
    pub(super) fn new(people: &[&'a Person]) -> Self {
        Self {
            ids: people.iter().map(|person| person.id.as_str()).collect(),
            names: people
                .iter()
                .map(|person| person.fields.name.as_str())
                .collect(),
            emails: people
                .iter()
                .map(|person| person.fields.email.as_deref())
                .collect(),
            ages: people
                .iter()
                .map(|person| {
                    person
                        .fields
                        .age
                        .map(|age| i32::try_from(age).unwrap_or(i32::MAX))
                })
                .collect(),
            versions: people.iter().map(|person| to_i64(person.version)).collect(),
            create_times: people
                .iter()
                .map(|person| person.create_time.into())
                .collect(),
            update_times: people
                .iter()
                .map(|person| person.update_time.into())
                .collect(),
        }
    }

    /// The arrays as statement parameters, in the order of [`person_columns`]:
    /// `UNNEST($n::text[], $n+1::text[], $n+2::text[], $n+3::int4[], $n+4::int8[],
    /// $n+5::timestamptz[], $n+6::timestamptz[])`.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.ids,
            &self.names,
            &self.emails,
            &self.ages,
            &self.versions,
            &self.create_times,
            &self.update_times,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::REVISIONS_PER_TRANSACTION;

    #[test]
    fn the_sql_multiplier_is_the_revisions_per_transaction() {
        assert!(
            revision_base!("x").ends_with(&format!(" * {REVISIONS_PER_TRANSACTION}")),
            "{}",
            revision_base!("x")
        );
    }
}
