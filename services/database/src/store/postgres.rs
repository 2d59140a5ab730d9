//! The shared store: PostgreSQL, so several replicas serve one database.
//!
//! A batch is one transaction of a handful of statements whatever its size: lock
//! every row it touches at once (`SELECT ... FOR UPDATE` in id order, so two
//! replicas' batches never deadlock), decide every write in Rust with the same
//! rules as the embedded store, then write rows, bump the revision counter, append
//! the change log and `NOTIFY` with `UNNEST`ed arrays. The counter row lock makes
//! revisions follow commit order, which is what lets every replica read the log
//! gap-free; batching is what keeps that lock from limiting throughput.
//!
//! Every replica `LISTEN`s for those notifications and tails the log, so a watch
//! on one replica sees writes made through any other.

use std::{
    collections::{HashMap, hash_map::Entry},
    future::poll_fn,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient as _, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime,
};
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, IsolationLevel, NoTls, Row, error::SqlState};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{StoreBackend, WriteResult};
use crate::{
    change::{Change, ChangeKind, PendingChange},
    error::DatabaseError,
    listing::{ListQuery, Page},
    person::{Person, PersonFields, Timestamp, prefix_upper_bound},
    write::{WriteOp, decide, decide_upsert},
};

/// Connections per replica: the writer uses one at a time, the rest serve reads.
const POOL_SIZE: usize = 16;
/// How long a call waits for a free connection before UNAVAILABLE.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// Attempts at a batch that lost a race (deadlock, a row created concurrently by
/// another replica) before giving up.
const MAX_ATTEMPTS: usize = 5;
/// The tailer reads the log at least this often even without notifications, in
/// case a notification was lost while the listener reconnected.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait between listener reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);
/// Sorts above every id (ids are ASCII below 0x7F) for open-ended range scans.
const ABOVE_EVERY_ID: &str = "\u{7f}";

/// Schema migrations, applied in order once each, under an advisory lock so that
/// replicas starting together do not race.
const MIGRATIONS: &[(i32, &str)] = &[(
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
)];

const PERSON_COLUMNS: &str = "id, name, email, age, version, create_time, update_time";

fn unavailable(error: impl std::fmt::Display) -> DatabaseError {
    DatabaseError::Unavailable(format!("postgresql: {error}"))
}

fn failure(error: &tokio_postgres::Error) -> DatabaseError {
    if error.as_db_error().is_some() {
        DatabaseError::Internal(format!("postgresql: {error}"))
    } else {
        unavailable(error)
    }
}

fn is_retryable(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(&SqlState::T_R_DEADLOCK_DETECTED | &SqlState::T_R_SERIALIZATION_FAILURE)
    )
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn person_from_row(row: &Row) -> Person {
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

/// The PostgreSQL backend.
#[derive(Clone)]
pub struct PostgresBackend {
    pool: Pool,
    config: tokio_postgres::Config,
    /// The NOTIFY channel: per schema, so databases in different schemas of one
    /// server do not wake each other.
    channel: String,
    retention: u64,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
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

/// The rows a batch works on: what each id held when locked, and holds now.
struct WorkingSet {
    rows: HashMap<String, RowState>,
}

/// One id's row before and after the batch.
struct RowState {
    existed: bool,
    current: Option<Person>,
}

impl PostgresBackend {
    /// Connects to `url`, applies migrations, and keeps the last `retention`
    /// changes for watches.
    pub async fn connect(url: &str, retention: u64) -> Result<Self, DatabaseError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|error| DatabaseError::Unavailable(format!("bad database url: {error}")))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(unavailable)?;
        let mut client = pool.get().await.map_err(unavailable)?;
        migrate(&mut client).await?;
        let schema: String = client
            .query_one("SELECT current_schema()", &[])
            .await
            .map_err(|error| failure(&error))?
            .get(0);
        Ok(Self {
            pool,
            config,
            channel: format!("quartet_people_{schema}"),
            retention: retention.max(1),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, DatabaseError> {
        self.pool.get().await.map_err(unavailable)
    }

    async fn try_apply(
        &self,
        client: &mut deadpool_postgres::Object,
        ops: &[WriteOp],
    ) -> Result<Vec<WriteResult>, Attempt> {
        let txn = client.transaction().await?;
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
        let mut working = WorkingSet {
            rows: HashMap::with_capacity(ids.len()),
        };
        for row in &locked {
            let person = person_from_row(row);
            working.rows.insert(
                person.id.clone(),
                RowState {
                    existed: true,
                    current: Some(person),
                },
            );
        }

        let now = Timestamp::now();
        let mut pending: Vec<Result<Vec<PendingChange>, DatabaseError>> =
            Vec::with_capacity(ops.len());
        for op in ops {
            pending.push(working.apply(op, now));
        }
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
        let mut revision = to_u64(latest) - changes as u64;
        let mut results = Vec::with_capacity(pending.len());
        let mut committed = Vec::with_capacity(changes);
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
        append_changes(&txn, &committed).await?;
        if latest / 1024 != (latest - count) / 1024 {
            // Trim in bulk, about once every thousand changes.
            let cutoff = latest - to_i64(self.retention);
            txn.execute(
                "DELETE FROM people_changes WHERE revision <= $1",
                &[&cutoff],
            )
            .await?;
        }
        txn.execute(
            "SELECT pg_notify($1, $2)",
            &[&self.channel, &latest.to_string()],
        )
        .await?;
        txn.commit().await?;
        Ok(results)
    }
}

impl WorkingSet {
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
    async fn write(&self, txn: &deadpool_postgres::Transaction<'_>) -> Result<(), Attempt> {
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
            let columns = PersonArrays::new(&inserts);
            let inserted = txn
                .query(
                    "INSERT INTO people (id, name, email, age, version, create_time, update_time)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::int8[],
                                          $6::timestamptz[], $7::timestamptz[])
                     ON CONFLICT (id) DO NOTHING RETURNING id",
                    &[
                        &columns.ids,
                        &columns.names,
                        &columns.emails,
                        &columns.ages,
                        &columns.versions,
                        &columns.create_times,
                        &columns.update_times,
                    ],
                )
                .await?;
            if inserted.len() != inserts.len() {
                return Err(Attempt::Retry("a person was created concurrently".into()));
            }
        }
        if !updates.is_empty() {
            let columns = PersonArrays::new(&updates);
            txn.execute(
                "UPDATE people AS p SET name = u.name, email = u.email, age = u.age,
                        version = u.version, update_time = u.update_time
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::int8[], $6::timestamptz[])
                      AS u(id, name, email, age, version, update_time)
                 WHERE p.id = u.id",
                &[
                    &columns.ids,
                    &columns.names,
                    &columns.emails,
                    &columns.ages,
                    &columns.versions,
                    &columns.update_times,
                ],
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

/// People as column arrays, for `UNNEST`.
struct PersonArrays<'a> {
    ids: Vec<&'a str>,
    names: Vec<&'a str>,
    emails: Vec<Option<&'a str>>,
    ages: Vec<Option<i32>>,
    versions: Vec<i64>,
    create_times: Vec<SystemTime>,
    update_times: Vec<SystemTime>,
}

impl<'a> PersonArrays<'a> {
    fn new(people: &[&'a Person]) -> Self {
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
}

async fn append_changes(
    txn: &deadpool_postgres::Transaction<'_>,
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
    let commit_times: Vec<SystemTime> = changes
        .iter()
        .map(|change| change.commit_time.into())
        .collect();
    txn.execute(
        "INSERT INTO people_changes
             (revision, kind, id, name, email, age, version, create_time, update_time, commit_time)
         SELECT * FROM UNNEST($1::int8[], $2::int2[], $3::text[], $4::text[], $5::text[], $6::int4[],
                              $7::int8[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[])",
        &[
            &revisions,
            &kinds,
            &columns.ids,
            &columns.names,
            &columns.emails,
            &columns.ages,
            &columns.versions,
            &columns.create_times,
            &columns.update_times,
            &commit_times,
        ],
    )
    .await?;
    Ok(())
}

fn kind_code(kind: ChangeKind) -> i16 {
    match kind {
        ChangeKind::Created => 1,
        ChangeKind::Updated => 2,
        ChangeKind::Deleted => 3,
    }
}

fn change_from_row(row: &Row) -> Result<Change, DatabaseError> {
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

/// Applies the migrations this database has not seen yet.
async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), DatabaseError> {
    let run = async {
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
    };
    run.await.map_err(|error| failure(&error))
}

#[async_trait]
impl StoreBackend for PostgresBackend {
    async fn apply(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>, DatabaseError> {
        let mut client = self.client().await?;
        let mut last_race = String::new();
        for _ in 0..MAX_ATTEMPTS {
            match self.try_apply(&mut client, &ops).await {
                Ok(results) => return Ok(results),
                Err(Attempt::Retry(race)) => last_race = race,
                Err(Attempt::Fail(error)) => return Err(error),
            }
        }
        Err(DatabaseError::Unavailable(format!(
            "batch kept losing races with other replicas: {last_race}"
        )))
    }

    async fn get(&self, id: &str) -> Result<Person, DatabaseError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {PERSON_COLUMNS} FROM people WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(|error| failure(&error))?;
        row.map(|row| person_from_row(&row))
            .ok_or_else(|| DatabaseError::NotFound(id.to_owned()))
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, DatabaseError> {
        let mut client = self.client().await?;
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
            let revision: i64 = txn
                .query_one("SELECT revision FROM people_revision", &[])
                .await?
                .get(0);
            let rows = txn
                .query(
                    &format!(
                        "SELECT {PERSON_COLUMNS} FROM people
                         WHERE id >= $1 AND id < $2 AND id > $3 ORDER BY id LIMIT $4"
                    ),
                    &[&query.prefix, &upper, &after, &limit],
                )
                .await?;
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

    async fn changes_after(
        &self,
        revision: u64,
        limit: usize,
    ) -> Result<Vec<Change>, DatabaseError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT revision, kind, {PERSON_COLUMNS}, commit_time FROM people_changes
                     WHERE revision > $1 ORDER BY revision LIMIT $2"
                ),
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

    async fn size_bytes(&self) -> Result<u64, DatabaseError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT pg_total_relation_size('people')", &[])
            .await
            .map_err(|error| failure(&error))?;
        Ok(to_u64(row.get(0)))
    }

    async fn revision(&self) -> Result<u64, DatabaseError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT revision FROM people_revision", &[])
            .await
            .map_err(|error| failure(&error))?;
        Ok(to_u64(row.get(0)))
    }

    fn follow_commits(&self, commits: watch::Sender<u64>, stop: CancellationToken) {
        let listener = CommitListener {
            config: self.config.clone(),
            channel: self.channel.clone(),
            commits,
        };
        tokio::spawn(listener.run(stop));
    }

    fn poll_interval(&self) -> Option<Duration> {
        Some(POLL_INTERVAL)
    }
}

/// Turns `NOTIFY`s from every replica's commits into revisions for the tailer.
struct CommitListener {
    config: tokio_postgres::Config,
    channel: String,
    commits: watch::Sender<u64>,
}

impl CommitListener {
    async fn run(self, stop: CancellationToken) {
        let mut delay = Duration::from_millis(100);
        loop {
            let listened = tokio::select! {
                () = stop.cancelled() => return,
                listened = self.listen() => listened,
            };
            match listened {
                Ok(()) => delay = Duration::from_millis(100),
                Err(error) => {
                    warn!(error = %error, retry_in = ?delay, "lost the commit notifications connection");
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(MAX_RECONNECT_DELAY);
        }
    }

    /// Listens until the connection ends.
    async fn listen(&self) -> Result<(), tokio_postgres::Error> {
        let (client, mut connection) = self.config.connect(NoTls).await?;
        let listen = format!("LISTEN \"{}\"", self.channel.replace('"', "\"\""));
        let subscribe = client.batch_execute(&listen);
        tokio::pin!(subscribe);
        let mut subscribed = false;
        loop {
            tokio::select! {
                result = &mut subscribe, if !subscribed => {
                    result?;
                    subscribed = true;
                    // Commits may have happened while we were away: look.
                    self.commits.send_modify(|_| {});
                }
                message = poll_fn(|cx| connection.poll_message(cx)) => match message {
                    Some(Ok(AsyncMessage::Notification(notification))) => {
                        if let Ok(revision) = notification.payload().parse::<u64>() {
                            self.commits.send_if_modified(|known| {
                                let newer = revision > *known;
                                if newer {
                                    *known = revision;
                                }
                                newer
                            });
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error),
                    None => return Ok(()),
                },
            }
        }
    }
}
