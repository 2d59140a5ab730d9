//! Connection workers: threads that each serve a share of a server's
//! connections on a single-threaded tokio runtime of their own.
//!
//! On tokio's work-stealing runtime a unary call crosses tasks (the
//! connection, the call's stream, the handler) that the scheduler spreads over
//! threads, and every wake across threads is a futex call and often a context
//! switch. Under h2load on two cores that made our server slower than
//! grpc-go, and every task on one thread (`QUARTET_RUNTIME=current-thread`)
//! cut the CPU per call by half, at the price of one core per process
//! (BENCHMARKS.md, "Transform under h2load"). Workers keep that price away:
//! each connection lives on one worker, from its handshakes to its last call,
//! and there is a worker per CPU (the Envoy model, as the gateway's text
//! workers do for lines).
//!
//! The accept loop stays on the process's runtime, admits connections under
//! the cap, and hands each one, as a plain socket, to the worker serving the
//! fewest; the worker registers it with its own event loop. A worker starts on
//! its first connection, so an idle server runs no extra threads. Every
//! worker serves the same router (the layers' state, metrics and limits are
//! shared), stops accepting when the drain starts, and finishes its calls as
//! the single-runtime server does; the server waits for all of them.
//!
//! What a handler spawns runs on the worker of the call that spawned it.

use std::{
    fmt, io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

use futures_util::future::BoxFuture;
use tokio::{net::TcpStream, sync::mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, warn};

use crate::{
    accept::{self, Admitted, Hold, Incoming, READY_CONNECTIONS},
    shutdown::DrainSignal,
};

/// The future that serves the connections of `Incoming` until the `Stop`
/// future completes, then finishes their calls: one HTTP/2 server.
pub(crate) type Serve = Arc<
    dyn Fn(Incoming, Pin<Box<dyn Future<Output = ()> + Send>>) -> BoxFuture<'static, ServeResult>
        + Send
        + Sync,
>;

/// What one HTTP/2 server ends with.
pub(crate) type ServeResult = Result<(), tonic::transport::Error>;

/// How many workers serve a server's connections when none is configured:
/// one per CPU on a multi-thread runtime, none on a current-thread one (whose
/// point is one thread: `QUARTET_RUNTIME=current-thread`).
pub(crate) fn default_count() -> usize {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        }
        _ => 0,
    }
}

/// A connection on its way to a worker: a socket no event loop watches yet.
struct Job {
    tcp: std::net::TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    hold: Hold,
}

impl Job {
    /// The connection registered with the calling runtime's event loop.
    fn admit(self) -> io::Result<Admitted> {
        self.tcp.set_nonblocking(true)?;
        Ok(Admitted {
            tcp: TcpStream::from_std(self.tcp)?,
            peer: self.peer,
            tls: self.tls,
            hold: self.hold,
        })
    }
}

/// One worker, as the dispatcher sees it.
enum Worker {
    /// Not started: no connection has needed it yet.
    Idle,
    Running {
        jobs: mpsc::UnboundedSender<Job>,
        /// Connections it serves now.
        load: Arc<AtomicUsize>,
    },
    /// Its thread or runtime could not be started; it gets no connections.
    Failed,
}

/// A server's connection workers, owned by its accept loop.
pub(crate) struct Workers {
    name: &'static str,
    threads: Vec<Worker>,
    serve: Serve,
    handshake_timeout: Duration,
    drain: DrainSignal,
    /// Tracks the worker threads; the server waits on it once draining.
    running: TaskTracker,
    /// Cancelled when the server stops waiting (drain timeout, forced stop):
    /// every worker then drops its runtime, cutting the calls still open.
    cut: CancellationToken,
}

impl fmt::Debug for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workers")
            .field("name", &self.name)
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl Workers {
    /// `count` workers (none started yet) for the server called `name`, each
    /// serving with `serve` until `drain` starts.
    pub(crate) fn new(
        name: &'static str,
        count: usize,
        serve: Serve,
        handshake_timeout: Duration,
        drain: DrainSignal,
    ) -> Self {
        Self {
            name,
            threads: (0..count).map(|_| Worker::Idle).collect(),
            serve,
            handshake_timeout,
            drain,
            running: TaskTracker::new(),
            cut: CancellationToken::new(),
        }
    }

    /// Serves `listener`'s connections on the workers until the drain starts,
    /// then until every worker has finished its calls. Dropping the future
    /// cuts the calls still open.
    pub(crate) async fn serve(
        mut self,
        listener: tokio::net::TcpListener,
        tls: Option<crate::reload::Reloading<rustls::ServerConfig>>,
        max_connections: usize,
    ) -> ServeResult {
        let _cut = self.cut.clone().drop_guard();
        let running = self.running.clone();
        let drain = self.drain.clone();
        accept::accept_loop(
            listener,
            tls,
            max_connections,
            async move { drain.draining().await },
            |admitted| self.hand(admitted),
        )
        .await;
        // No worker starts after this; each stops accepting as the drain
        // began, and ends once its calls have.
        drop(self);
        running.close();
        running.wait().await;
        Ok(())
    }

    /// Hands `admitted` to the least loaded worker, starting it if it is idle.
    fn hand(&mut self, admitted: Admitted) {
        let Some(index) = self.least_loaded() else {
            debug!(peer = %admitted.peer, "no connection worker could start; connection closed");
            return;
        };
        if matches!(self.threads[index], Worker::Idle) {
            self.threads[index] = self.start(index);
        }
        let Worker::Running { jobs, load } = &self.threads[index] else {
            // It failed to start; the next connection tries the others.
            return;
        };
        let Admitted {
            tcp,
            peer,
            tls,
            mut hold,
        } = admitted;
        hold.count_in(load.clone());
        // Out of this runtime's event loop, into the worker's.
        match tcp.into_std() {
            Ok(tcp) => {
                let job = Job {
                    tcp,
                    peer,
                    tls,
                    hold,
                };
                if jobs.send(job).is_err() {
                    // Its thread ended (its runtime could not be built): this
                    // connection is closed, and no other is sent there.
                    warn!(%peer, worker = index, "a connection worker is gone; connection closed");
                    self.threads[index] = Worker::Failed;
                }
            }
            Err(error) => warn!(%peer, error = %error, "cannot hand a connection to a worker"),
        }
    }

    /// The worker with the fewest connections, a running one before an idle
    /// one (so sequential clients do not wake every worker).
    fn least_loaded(&self) -> Option<usize> {
        self.threads
            .iter()
            .enumerate()
            .filter_map(|(index, worker)| match worker {
                Worker::Running { load, .. } => Some((load.load(Ordering::Relaxed), 0, index)),
                Worker::Idle => Some((0, 1, index)),
                Worker::Failed => None,
            })
            .min()
            .map(|(_, _, index)| index)
    }

    /// Starts worker `index` on a thread of its own.
    fn start(&self, index: usize) -> Worker {
        let (jobs, queue) = mpsc::unbounded_channel();
        let load = Arc::new(AtomicUsize::new(0));
        let serve = self.serve.clone();
        let drain = self.drain.clone();
        let cut = self.cut.clone();
        let handshake_timeout = self.handshake_timeout;
        let running = self.running.token();
        let name = self.name;
        let started = thread::Builder::new()
            .name(format!("{name}-{index}"))
            .spawn(move || {
                let _running = running;
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        warn!(server = name, worker = index, error = %error, "connection worker cannot start");
                        return;
                    }
                };
                runtime.block_on(work(queue, serve, handshake_timeout, drain, cut));
                // Dropping the runtime here closes whatever outlived the cut.
            });
        match started {
            Ok(_) => Worker::Running { jobs, load },
            Err(error) => {
                warn!(server = name, worker = index, error = %error, "connection worker cannot start");
                Worker::Failed
            }
        }
    }
}

/// A worker's life: takes its connections through their handshakes and
/// serves them with `serve` until the drain starts and their calls end, or
/// until `cut`.
async fn work(
    mut queue: mpsc::UnboundedReceiver<Job>,
    serve: Serve,
    handshake_timeout: Duration,
    drain: DrainSignal,
    cut: CancellationToken,
) {
    let (ready, incoming) = mpsc::channel(READY_CONNECTIONS);
    // The queue is bounded by the listener's connection cap: every job holds
    // one of its slots.
    tokio::spawn(async move {
        while let Some(job) = queue.recv().await {
            match job.admit() {
                Ok(admitted) => {
                    tokio::spawn(accept::establish(
                        admitted,
                        handshake_timeout,
                        ready.clone(),
                    ));
                }
                Err(error) => debug!(error = %error, "a worker cannot take a connection"),
            }
        }
    });
    let stop = Box::pin(async move { drain.draining().await });
    tokio::select! {
        served = serve(ReceiverStream::new(incoming), stop) => {
            if let Err(error) = served {
                warn!(error = %error, "a connection worker's HTTP/2 server failed");
            }
        }
        () = cut.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::default_count;

    #[test]
    fn a_current_thread_runtime_gets_no_workers_by_default() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(runtime.block_on(async { default_count() }), 0);
    }

    #[test]
    fn a_multi_thread_runtime_gets_one_worker_per_cpu_by_default() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(runtime.block_on(async { default_count() }), cpus);
    }
}
