//! The change feed: a tailer turns the change log into an in-order broadcast, and
//! each watch catches up from the log, then follows the broadcast.
//!
//! A watcher never misses a change and never sees one twice: it subscribes before
//! it reads the log, skips what it has seen, and goes back to the log whenever the
//! broadcast skips ahead or it falls behind (a slow watcher costs a read, not
//! memory).
//!
//! Revisions increase but need not be consecutive (PostgreSQL numbers changes by
//! transaction id), so each broadcast change says which revision it follows in
//! the log: a watcher that has handled that one (or any later one below the
//! change) may take it straight from the broadcast.

use std::{sync::Arc, time::Duration};

use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::StoreBackend;
use crate::{change::Change, error::DatabaseError};

/// Changes the broadcast holds for watchers that are behind; past this they
/// catch up from the log instead.
const BROADCAST_CAPACITY: usize = 4096;
/// Changes read from the log at a time.
const LOG_PAGE: usize = 512;
/// Changes buffered between a watch and its gRPC stream.
const WATCH_BUFFER: usize = 64;

/// What a watch yields: changes in revision order, or the error that ended it.
pub type WatchStream = ReceiverStream<Result<Arc<Change>, DatabaseError>>;

/// Longest the tailer waits before it reads the log again when a commit it
/// heard of has not settled yet (an older transaction is still running).
const MAX_SETTLE_WAIT: Duration = Duration::from_millis(100);

/// A change on the broadcast, and the revision it follows in the log: the log
/// holds nothing between the two, and never will.
#[derive(Clone)]
struct Linked {
    after: u64,
    change: Arc<Change>,
}

/// The broadcast side of the feed.
#[derive(Clone)]
pub(super) struct ChangeFeed {
    backend: Arc<dyn StoreBackend>,
    live: broadcast::Sender<Linked>,
}

impl ChangeFeed {
    /// Starts the tailer from the latest committed revision.
    pub(super) async fn start(
        backend: Arc<dyn StoreBackend>,
        committed: watch::Receiver<u64>,
        stop: CancellationToken,
    ) -> Result<Self, DatabaseError> {
        let (live, _) = broadcast::channel::<Linked>(BROADCAST_CAPACITY);
        let from = backend.revision().await?;
        tokio::spawn(run_tailer(
            backend.clone(),
            live.clone(),
            committed,
            from,
            stop,
        ));
        Ok(Self { backend, live })
    }

    /// Starts a watch; see [`super::PeopleStore::watch`].
    pub(super) async fn watch(
        &self,
        since: Option<u64>,
        prefix: String,
    ) -> Result<WatchStream, DatabaseError> {
        let live = self.live.subscribe();
        let latest = self.backend.revision().await?;
        let from = match since {
            None => latest,
            Some(requested) if requested > latest => {
                return Err(DatabaseError::RevisionInFuture { requested, latest });
            }
            Some(requested) => requested,
        };
        // Fail now, as a status, if the log no longer reaches back that far.
        self.backend.changes_after(from, 1).await?;
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        let watcher = Watcher {
            backend: self.backend.clone(),
            prefix,
            last: from,
            sender,
        };
        tokio::spawn(watcher.run(live));
        Ok(ReceiverStream::new(receiver))
    }
}

/// Reads the log after each commit notification and broadcasts in order.
async fn run_tailer(
    backend: Arc<dyn StoreBackend>,
    live: broadcast::Sender<Linked>,
    mut committed: watch::Receiver<u64>,
    mut last: u64,
    stop: CancellationToken,
) {
    // Without a poll interval, wait for notifications only.
    let poll = backend.poll_interval().unwrap_or(Duration::from_secs(3600));
    // Set while a commit we heard of is not in the log's settled part yet:
    // look again soon, rather than at the next commit or poll.
    let mut settle_wait: Option<Duration> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = committed.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(settle_wait.unwrap_or(poll)) => {}
        }
        // Nobody is watching: there is nobody to broadcast to, so skip the read
        // (two queries per commit otherwise, on the database the writes need).
        // A watch that starts later subscribes before it reads the log, and so
        // reads itself up to at least this revision; and a watcher that sees the
        // broadcast skip ahead goes back to the log. Skipping loses nothing.
        if live.receiver_count() == 0 {
            last = last.max(*committed.borrow_and_update());
            settle_wait = None;
            continue;
        }
        loop {
            match backend.changes_after(last, LOG_PAGE).await {
                Ok(changes) if changes.is_empty() => break,
                Ok(changes) => {
                    for change in changes {
                        let after = last;
                        last = change.revision;
                        // No receivers is fine: nobody is watching.
                        let _ = live.send(Linked {
                            after,
                            change: Arc::new(change),
                        });
                    }
                }
                Err(DatabaseError::RevisionCompacted { oldest, .. }) => {
                    error!(
                        last,
                        oldest, "change tailer fell behind the log's retention; skipping ahead"
                    );
                    last = oldest.saturating_sub(1);
                }
                Err(failure) => {
                    warn!(error = %failure, "cannot read the change log; retrying on the next commit");
                    break;
                }
            }
        }
        settle_wait = (last < *committed.borrow()).then(|| {
            settle_wait.map_or(Duration::from_millis(1), |wait| {
                (wait * 2).min(MAX_SETTLE_WAIT)
            })
        });
    }
}

/// One watch: where it stands and where its changes go.
struct Watcher {
    backend: Arc<dyn StoreBackend>,
    prefix: String,
    /// The last revision handled (sent or filtered out).
    last: u64,
    sender: mpsc::Sender<Result<Arc<Change>, DatabaseError>>,
}

/// Why a watch stops.
enum Stop {
    /// The client went away.
    Gone,
    /// The watch failed; the error was sent.
    Failed,
}

impl Watcher {
    async fn run(mut self, mut live: broadcast::Receiver<Linked>) {
        if self.catch_up().await.is_err() {
            return;
        }
        loop {
            let received = tokio::select! {
                () = self.sender.closed() => return,
                received = live.recv() => received,
            };
            let outcome = match received {
                Ok(linked) if linked.change.revision <= self.last => Ok(()),
                // Nothing in the log between what we handled and this change.
                Ok(linked) if linked.after <= self.last => self.offer(linked.change).await,
                // The broadcast is ahead of us (we started mid-flight) or we fell
                // behind it: the log has everything.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up().await,
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = self
                        .sender
                        .send(Err(DatabaseError::Unavailable(
                            "the store is shutting down".into(),
                        )))
                        .await;
                    return;
                }
            };
            if outcome.is_err() {
                return;
            }
        }
    }

    /// Sends everything the log has after `last`.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            let changes = match self.backend.changes_after(self.last, LOG_PAGE).await {
                Ok(changes) => changes,
                Err(failure) => {
                    let _ = self.sender.send(Err(failure)).await;
                    return Err(Stop::Failed);
                }
            };
            if changes.is_empty() {
                return Ok(());
            }
            for change in changes {
                self.offer(Arc::new(change)).await?;
            }
        }
    }

    /// Sends `change` if it matches the prefix; either way it is handled.
    async fn offer(&mut self, change: Arc<Change>) -> Result<(), Stop> {
        self.last = change.revision;
        if !change.person.id.starts_with(&self.prefix) {
            return Ok(());
        }
        self.sender.send(Ok(change)).await.map_err(|_| Stop::Gone)
    }
}
