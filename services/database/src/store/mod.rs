//! The store: one [`PeopleStore`] in front of a [`StoreBackend`] (redb or
//! PostgreSQL).
//!
//! Writes go through one queue. A writer task takes everything waiting (up to
//! [`MAX_BATCH_OPS`]) and hands it to the backend as one transaction, committed
//! durably once: concurrent writers share the fsync (group commit) and no write
//! is answered before it is on disk. Reads go straight to the backend, which
//! serves them from a snapshot without waiting for the writer.
//!
//! Every committed change gets a store-wide revision and lands in a change log.
//! A tailer task reads the log after each commit (and, for PostgreSQL, after each
//! commit notification from another replica) and broadcasts the changes in
//! order, while anyone is watching; watchers catch up from the log and then
//! follow the broadcast.

mod encoding;
mod feed;
pub mod postgres;
pub mod redb;

use std::sync::Arc;

use async_trait::async_trait;
use prometheus_client::metrics::{
    counter::Counter,
    gauge::Gauge,
    histogram::{Histogram, exponential_buckets},
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, error};

pub use feed::WatchStream;

use crate::{
    change::Change,
    error::DatabaseError,
    listing::{ListQuery, Page},
    person::{NewPerson, Person},
    write::{Patch, WriteOp},
};

/// Most writes committed in one transaction: bounds the latency a batch adds to
/// the writes in it, and the size of one transaction.
pub const MAX_BATCH_OPS: usize = 256;
/// Writes waiting for the writer; callers wait (backpressure) when it is full.
const WRITE_QUEUE: usize = 1024;

/// What a backend says about one write of a batch.
pub type WriteResult = Result<Vec<Change>, DatabaseError>;

/// A storage engine: one transaction per batch of writes, snapshot reads, and a
/// gap-free change log.
#[async_trait]
pub trait StoreBackend: Send + Sync + 'static {
    /// Applies `ops` in order in one durable transaction. The outer error fails
    /// the whole batch (nothing committed); inner errors reject single writes
    /// (ALREADY_EXISTS, NOT_FOUND, ...), which change nothing.
    async fn apply(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>, DatabaseError>;

    /// One person.
    async fn get(&self, id: &str) -> Result<Person, DatabaseError>;

    /// One page of people, and the revision it was read at.
    async fn list(&self, query: &ListQuery) -> Result<Page, DatabaseError>;

    /// Up to `limit` changes with a revision above `revision`, in order;
    /// RevisionCompacted when some of them are no longer kept.
    async fn changes_after(
        &self,
        revision: u64,
        limit: usize,
    ) -> Result<Vec<Change>, DatabaseError>;

    /// The latest committed revision, exactly: every change committed so far
    /// has a revision at or below it (readable from the log once settled, or
    /// trimmed from it), and every later one a revision above it.
    async fn revision(&self) -> Result<u64, DatabaseError>;

    /// Starts whatever tells this process about commits made elsewhere (other
    /// replicas), sending their revisions on `commits` until `stop`. Embedded
    /// stores have no one else and do nothing.
    fn follow_commits(&self, _commits: watch::Sender<u64>, _stop: CancellationToken) {}

    /// Bytes the people occupy in storage (file size, or table size), for the
    /// `quartet_database_size_bytes` gauge.
    async fn size_bytes(&self) -> Result<u64, DatabaseError>;

    /// How long the tailer may wait without a notification before it looks at
    /// the log anyway; `None` when every commit is notified.
    fn poll_interval(&self) -> Option<std::time::Duration> {
        None
    }
}

/// A write waiting for its batch.
struct PendingWrite {
    op: WriteOp,
    reply: oneshot::Sender<WriteResult>,
}

/// The people database as the service uses it. Cheap to clone.
#[derive(Clone)]
pub struct PeopleStore {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn StoreBackend>,
    writes: mpsc::Sender<PendingWrite>,
    feed: feed::ChangeFeed,
    metrics: StoreMetrics,
    /// Stops the writer, tailer and follower when the last handle goes.
    _tasks: DropGuard,
}

impl std::fmt::Debug for PeopleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeopleStore").finish_non_exhaustive()
    }
}

impl PeopleStore {
    /// A store over `backend`, with its writer and change tailer running.
    pub async fn new(backend: Arc<dyn StoreBackend>) -> Result<Self, DatabaseError> {
        let stop = CancellationToken::new();
        let (writes, queue) = mpsc::channel(WRITE_QUEUE);
        let (commits, committed) = watch::channel(backend.revision().await?);
        let feed = feed::ChangeFeed::start(backend.clone(), committed, stop.clone()).await?;
        backend.follow_commits(commits.clone(), stop.clone());
        let metrics = StoreMetrics::default();
        tokio::spawn(run_writer(
            backend.clone(),
            queue,
            commits,
            metrics.clone(),
            stop.clone(),
        ));
        tokio::spawn(measure_size(
            backend.clone(),
            metrics.size_bytes.clone(),
            stop.clone(),
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                writes,
                feed,
                metrics,
                _tasks: stop.drop_guard(),
            }),
        })
    }

    async fn write(&self, op: WriteOp) -> WriteResult {
        let (reply, answer) = oneshot::channel();
        let closed = || DatabaseError::Unavailable("the store is shutting down".into());
        self.inner
            .writes
            .send(PendingWrite { op, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    async fn write_one(&self, op: WriteOp) -> Result<Change, DatabaseError> {
        self.write(op)
            .await?
            .pop()
            .ok_or_else(|| DatabaseError::Internal("a write committed no change".into()))
    }

    /// Creates a person; ALREADY_EXISTS when the id is taken.
    pub async fn create(&self, person: NewPerson) -> Result<Change, DatabaseError> {
        self.write_one(WriteOp::Create(person)).await
    }

    /// Applies `patch` to an existing person, at `expected_version` if given.
    pub async fn update(
        &self,
        id: String,
        patch: Patch,
        expected_version: Option<u64>,
    ) -> Result<Change, DatabaseError> {
        self.write_one(WriteOp::Update {
            id,
            patch,
            expected_version,
        })
        .await
    }

    /// Deletes an existing person, at `expected_version` if given.
    pub async fn delete(
        &self,
        id: String,
        expected_version: Option<u64>,
    ) -> Result<Change, DatabaseError> {
        self.write_one(WriteOp::Delete {
            id,
            expected_version,
        })
        .await
    }

    /// Creates or replaces every person of `batch` in one transaction.
    pub async fn import(&self, batch: Vec<NewPerson>) -> Result<Vec<Change>, DatabaseError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.write(WriteOp::Import(batch)).await
    }

    /// One person; NOT_FOUND when there is none.
    pub async fn get(&self, id: &str) -> Result<Person, DatabaseError> {
        self.inner.backend.get(id).await
    }

    /// One page of people.
    pub async fn list(&self, query: &ListQuery) -> Result<Page, DatabaseError> {
        self.inner.backend.list(query).await
    }

    /// Adds the store's gauges and histograms to a server's registry.
    pub fn register_metrics(&self, registry: &quartet_runtime::Metrics) {
        let metrics = &self.inner.metrics;
        registry.register(
            "database_commit_batch_size",
            "Writes committed together in one transaction (group commit)",
            metrics.batch_size.clone(),
        );
        registry.register(
            "database_commits",
            "Transactions committed by this process",
            metrics.commits.clone(),
        );
        registry.register(
            "database_size_bytes",
            "Storage used by the people database",
            metrics.size_bytes.clone(),
        );
    }

    /// Every change after `since` (absent: after now) to ids starting with
    /// `prefix`, in revision order, until the returned stream is dropped.
    pub async fn watch(
        &self,
        since: Option<u64>,
        prefix: String,
    ) -> Result<WatchStream, DatabaseError> {
        self.inner.feed.watch(since, prefix).await
    }
}

/// How often the size gauge is refreshed.
const SIZE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// The store's own metrics; clones share the values.
#[derive(Clone)]
struct StoreMetrics {
    batch_size: Histogram,
    commits: Counter,
    size_bytes: Gauge,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self {
            // 1, 2, 4, ... 256 (MAX_BATCH_OPS).
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            commits: Counter::default(),
            size_bytes: Gauge::default(),
        }
    }
}

/// Refreshes the size gauge until the store goes away.
async fn measure_size(backend: Arc<dyn StoreBackend>, gauge: Gauge, stop: CancellationToken) {
    loop {
        match backend.size_bytes().await {
            Ok(bytes) => {
                gauge.set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
            Err(failure) => debug!(error = %failure, "cannot measure the store's size"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(SIZE_INTERVAL) => {}
        }
    }
}

/// Commits queued writes in batches until the store goes away.
async fn run_writer(
    backend: Arc<dyn StoreBackend>,
    mut queue: mpsc::Receiver<PendingWrite>,
    commits: watch::Sender<u64>,
    metrics: StoreMetrics,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH_OPS);
    loop {
        let received = tokio::select! {
            () = stop.cancelled() => 0,
            received = queue.recv_many(&mut batch, MAX_BATCH_OPS) => received,
        };
        if received == 0 {
            return;
        }
        let (ops, replies): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|write| (write.op, write.reply)).unzip();
        debug!(ops = ops.len(), "committing a batch");
        #[allow(clippy::cast_precision_loss)] // At most MAX_BATCH_OPS.
        let size = ops.len() as f64;
        match backend.apply(ops).await {
            Ok(results) => {
                metrics.batch_size.observe(size);
                metrics.commits.inc();
                if let Some(latest) = latest_revision(&results) {
                    announce(&commits, latest);
                }
                for (reply, result) in replies.into_iter().zip(results) {
                    // A caller that gave up no longer needs its answer; the write stands.
                    let _ = reply.send(result);
                }
            }
            Err(failure) => {
                error!(error = %failure, "batch failed; nothing in it was committed");
                for reply in replies {
                    let _ = reply.send(Err(failure.clone()));
                }
            }
        }
    }
}

/// The latest revision a batch's `results` took, if it changed anything.
pub(super) fn latest_revision(results: &[WriteResult]) -> Option<u64> {
    results
        .iter()
        .flatten()
        .flatten()
        .map(|change| change.revision)
        .max()
}

/// Tells `commits` about `revision`, unless it already knows a later one: this
/// process's commits and other replicas' notifications may arrive out of order.
fn announce(commits: &watch::Sender<u64>, revision: u64) {
    commits.send_if_modified(|known| {
        let newer = revision > *known;
        if newer {
            *known = revision;
        }
        newer
    });
}
