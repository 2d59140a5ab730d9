//! The shared store: PostgreSQL, so several replicas serve one database.
//!
//! A batch is one transaction of two pipelined round trips whatever its size:
//! lock every row it touches at once (`SELECT ... FOR UPDATE` in id order, so two
//! replicas' batches never deadlock), decide every write in Rust with the same
//! rules as the embedded store, then write rows, append the change log and
//! `COMMIT` with `UNNEST`ed arrays; the other replicas are notified after the
//! commit ([`PostgresBackend::announce`] says why not inside it). Every
//! statement is prepared once per connection, and point reads share a few
//! connections that pipeline them.
//!
//! A change's revision is its transaction's id (times 2^20, plus its position
//! in the transaction), taken without any lock, so replicas commit side by
//! side. Transactions commit out of id order, so the log is read only below
//! the oldest transaction still running (`pg_snapshot_xmin`): that part never
//! changes again, which keeps the feed gap-free. A list, or a watch from now,
//! needs the revision that splits what it saw from what it did not: it takes
//! its snapshot behind the writers' gate ([`gate`]). Revisions are therefore
//! increasing but not consecutive; how far the log was trimmed is recorded
//! (`people_log`) rather than inferred from a missing number.
//!
//! Every replica `LISTEN`s for those notifications and tails the log, so a watch
//! on one replica sees writes made through any other.
//!
//! # Layout
//! - this file: [`PostgresBackend`], its connection pools, cached statements,
//!   and the [`StoreBackend`] methods, each handed to the module that does the
//!   work.
//! - [`schema`]: the tables, their migrations, and how records map to rows.
//! - [`gate`]: the lock that lets a reader see an exact "now".
//! - [`write`]: the batch write transaction and its retries.
//! - [`read`]: point reads, listing, the change log and the counters.
//! - [`pipeline`]: the connections point reads share.
//! - [`listen`]: the `LISTEN` connection that hears other replicas' commits.

mod gate;
mod listen;
mod pipeline;
mod read;
mod schema;
mod write;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::watch;
use tokio_postgres::{NoTls, Row, types::ToSql};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{StoreBackend, WriteResult, latest_revision};
use crate::{
    change::Change,
    error::DatabaseError,
    listing::{ListQuery, Page},
    person::Person,
    write::WriteOp,
};

/// Read connections per replica (8, 16 and 32 served point reads alike).
const POOL_SIZE: usize = 16;
/// Write connections per replica: the writer commits one batch at a time, on a
/// connection of its own, so it never queues behind reads for the pool. (A
/// second batch in flight, on a second connection, halves the batches and
/// costs more than it overlaps: 0.78x, BENCHMARKS.md.)
const WRITER_POOL_SIZE: usize = 1;
/// Connections point reads share, each carrying many reads at once.
const SHARED_READ_CONNECTIONS: usize = 4;
/// How long the writer's transaction may sit idle before PostgreSQL ends it.
const WRITER_IDLE_LIMIT: Duration = Duration::from_secs(30);
/// How long a call waits for a free connection before UNAVAILABLE.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// The tailer reads the log at least this often even without notifications, in
/// case a notification was lost while the listener reconnected.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

fn unavailable(error: impl std::fmt::Display) -> DatabaseError {
    DatabaseError::Unavailable(format!("postgresql: {error}"))
}

/// The writer's `config`:
/// - every statement planned for its parameters. A batch's statements join
///   arrays of any length with the people table; a plan cached for unknown
///   arrays may scan the whole table (seen: 16 million rows read for 30,000
///   writes), while planning each time costs far less than one round trip.
/// - a transaction left idle for [`WRITER_IDLE_LIMIT`] ends the session: the
///   writer never waits that long between a batch's round trips, and a stuck
///   one would hold the writers' gate, and its rows, for every replica.
fn writer_config(config: &tokio_postgres::Config) -> tokio_postgres::Config {
    let mut writer = config.clone();
    let options = config.get_options().unwrap_or_default();
    writer.options(
        format!(
            "{options} -c plan_cache_mode=force_custom_plan \
             -c idle_in_transaction_session_timeout={}s",
            WRITER_IDLE_LIMIT.as_secs()
        )
        .trim_start(),
    );
    writer
}

/// A pool of up to `size` connections to the database `config` names.
fn connection_pool(config: &tokio_postgres::Config, size: usize) -> Result<Pool, DatabaseError> {
    let manager = Manager::from_config(
        config.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(POOL_WAIT))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(unavailable)
}

/// What a failed statement means to the caller: a server's refusal is
/// INTERNAL (with PostgreSQL's own words; `Display` says only "db error"),
/// a lost connection UNAVAILABLE.
fn failure(error: &tokio_postgres::Error) -> DatabaseError {
    let Some(refusal) = error.as_db_error() else {
        return unavailable(error);
    };
    let said = format!("{} ({})", refusal.message(), refusal.code().code());
    if refusal.code() == &tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE {
        return unavailable(format_args!(
            "writes in flight did not finish within {:?}: {said}",
            gate::CLOSE_TIMEOUT
        ));
    }
    DatabaseError::Internal(format!("postgresql: {said}"))
}

/// Runs `sql`, prepared once per connection (the pool's statement cache):
/// preparing costs a round trip, as much as running the statement.
async fn query_cached(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query(&statement, params).await
}

/// The PostgreSQL backend.
#[derive(Clone)]
pub struct PostgresBackend {
    /// Connections for reads.
    pool: Pool,
    /// The writer's connection, apart so that reads never hold it up.
    writer: Pool,
    /// Point reads' shared, pipelined connections, taken from `pool`.
    shared: Arc<pipeline::SharedConnections>,
    config: tokio_postgres::Config,
    /// The NOTIFY channel: per schema, so databases in different schemas of one
    /// server do not wake each other.
    channel: String,
    retention: Arc<write::LogRetention>,
    gate: gate::WritersGate,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl PostgresBackend {
    /// Connects to `url`, applies migrations, and keeps the last `retention`
    /// changes for watches.
    pub async fn connect(url: &str, retention: u64) -> Result<Self, DatabaseError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|error| DatabaseError::Unavailable(format!("bad database url: {error}")))?;
        let pool = connection_pool(&config, POOL_SIZE)?;
        let writer = connection_pool(&writer_config(&config), WRITER_POOL_SIZE)?;
        let shared = Arc::new(pipeline::SharedConnections::new(
            pool.clone(),
            SHARED_READ_CONNECTIONS,
        ));
        let mut client = writer.get().await.map_err(unavailable)?;
        schema::migrate(&mut client)
            .await
            .map_err(|error| failure(&error))?;
        let names = client
            .query_one(concat!("SELECT current_schema(), ", gate::gate_key!()), &[])
            .await
            .map_err(|error| failure(&error))?;
        let (schema, gate_key): (String, i64) = (names.get(0), names.get(1));
        Ok(Self {
            pool,
            writer,
            shared,
            config,
            channel: format!("quartet_people_{schema}"),
            retention: Arc::new(write::LogRetention::new(retention)),
            gate: gate::WritersGate::new(gate_key),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, DatabaseError> {
        self.pool.get().await.map_err(unavailable)
    }

    /// Tells every replica's listener that the log reaches `latest`, after
    /// the commit and outside its transaction, without waiting. A transaction
    /// that notifies holds PostgreSQL's notification lock, one for the whole
    /// server, from just before its commit until the commit is on disk (so
    /// that notifications queue in commit order): notifying inside the write
    /// made every replica's commits take turns, as a counter row would. A
    /// notification lost here costs watchers on other replicas at most the
    /// tailer's [`POLL_INTERVAL`].
    fn announce(&self, latest: u64) {
        let shared = self.shared.clone();
        let channel = self.channel.clone();
        tokio::spawn(async move {
            let sent = async {
                let connection = shared.get().await?;
                query_cached(&*connection, NOTIFY, &[&channel, &latest.to_string()])
                    .await
                    .map_err(|error| failure(&error))
            };
            if let Err(error) = sent.await {
                debug!(error = %error, latest, "cannot notify the other replicas");
            }
        });
    }
}

/// Notifies channel `$1` that the log reaches revision `$2`.
const NOTIFY: &str = "SELECT pg_notify($1, $2)";

#[async_trait]
impl StoreBackend for PostgresBackend {
    async fn apply(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>, DatabaseError> {
        let client = self.writer.get().await.map_err(unavailable)?;
        let log = write::LogTarget {
            retention: &self.retention,
            gate: &self.gate,
        };
        let results = write::apply(&client, &ops, &log).await?;
        if let Some(latest) = latest_revision(&results) {
            self.announce(latest);
        }
        Ok(results)
    }

    async fn get(&self, id: &str) -> Result<Person, DatabaseError> {
        read::person(&*self.shared.get().await?, id).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, DatabaseError> {
        read::page(&mut self.client().await?, query, &self.gate).await
    }

    async fn changes_after(
        &self,
        revision: u64,
        limit: usize,
    ) -> Result<Vec<Change>, DatabaseError> {
        read::changes_after(&self.client().await?, revision, limit).await
    }

    async fn size_bytes(&self) -> Result<u64, DatabaseError> {
        read::size_bytes(&self.client().await?).await
    }

    async fn revision(&self) -> Result<u64, DatabaseError> {
        read::revision(&mut self.client().await?, &self.gate).await
    }

    fn follow_commits(&self, commits: watch::Sender<u64>, stop: CancellationToken) {
        let listener =
            listen::CommitListener::new(self.config.clone(), self.channel.clone(), commits);
        tokio::spawn(listener.run(stop));
    }

    fn poll_interval(&self) -> Option<Duration> {
        Some(POLL_INTERVAL)
    }
}
