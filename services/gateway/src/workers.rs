//! [`Workers`]: the threads that serve text connections, each a single-threaded
//! tokio runtime with upstream channels of its own.
//!
//! A line crosses three tasks in the gateway (the connection, the HTTP/2 body
//! pipe, the HTTP/2 connection) and back. On a work-stealing runtime those
//! tasks wake each other across threads, and every such wake is a futex call
//! and often a context switch: perf showed the kernel's share of a line at 78%,
//! most of it scheduling. Shared-nothing workers (the Envoy model) keep a
//! connection and its upstream connection on one thread, so a line's wakes are
//! plain queue pushes; more cores mean more workers, not more cross-talk.
//!
//! The accept loops hand each connection to the worker serving the fewest.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
};

use prometheus_client::metrics::gauge::Gauge;
use quartet_runtime::DrainSignal;
use tokio::{
    net::TcpStream,
    sync::{OwnedSemaphorePermit, mpsc, oneshot},
};
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::{
    chat,
    connection::{ConnectionLimits, LineProtocol, serve_connection},
    options::{GatewayOptions, Protocol, UpstreamOptions},
    ordered::Calls,
    protocol::{database::DatabaseLines, transform::TransformLines, weather::WeatherLines},
    upstreams::Upstreams,
};

/// An accepted connection on its way to a worker.
struct Job {
    protocol: Protocol,
    stream: std::net::TcpStream,
    /// The connection's place under `--max-connections`, held while it lives.
    permit: OwnedSemaphorePermit,
    /// The protocol's open-connections gauge.
    gauge: Gauge,
}

/// What every worker needs to build its handlers.
#[derive(Clone)]
pub(crate) struct WorkerConfig {
    pub(crate) options: GatewayOptions,
    pub(crate) upstreams: UpstreamOptions,
    pub(crate) limits: ConnectionLimits,
    pub(crate) transform_streams: Gauge,
    pub(crate) tracker: TaskTracker,
    pub(crate) drain: DrainSignal,
}

/// One worker, as the accept loops see it.
struct Worker {
    jobs: mpsc::UnboundedSender<Job>,
    /// Connections it serves now, for choosing the least loaded.
    load: Arc<AtomicUsize>,
}

/// The worker threads. Dropping this lets them finish: each stops once its
/// connections have (or when the gateway gives up on the drain).
pub(crate) struct Workers {
    workers: Vec<Worker>,
    stopped: Vec<oneshot::Receiver<()>>,
}

impl Workers {
    /// Starts `count` workers (at least one); fails when one cannot build its
    /// runtime or its upstream channels (a TLS file that cannot be read, say).
    pub(crate) async fn start(count: usize, config: &WorkerConfig) -> io::Result<Self> {
        let mut workers = Vec::new();
        let mut stopped = Vec::new();
        for index in 0..count.max(1) {
            let (jobs, queue) = mpsc::unbounded_channel();
            let (ready, started) = oneshot::channel();
            let (done, finished) = oneshot::channel();
            let load = Arc::new(AtomicUsize::new(0));
            let worker = WorkerThread {
                config: config.clone(),
                queue,
                load: load.clone(),
            };
            thread::Builder::new()
                .name(format!("gateway-worker-{index}"))
                .spawn(move || {
                    worker.run(ready);
                    let _ = done.send(());
                })?;
            started
                .await
                .map_err(|_| io::Error::other("a gateway worker stopped while starting"))??;
            workers.push(Worker { jobs, load });
            stopped.push(finished);
        }
        Ok(Self { workers, stopped })
    }

    /// Hands a connection to the least loaded worker.
    pub(crate) fn serve(
        &self,
        protocol: Protocol,
        stream: TcpStream,
        permit: OwnedSemaphorePermit,
        gauge: Gauge,
    ) {
        let Some(worker) = self
            .workers
            .iter()
            .min_by_key(|worker| worker.load.load(Ordering::Relaxed))
        else {
            return;
        };
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                warn!(error = %error, "cannot hand a connection to a worker");
                return;
            }
        };
        worker.load.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            protocol,
            stream,
            permit,
            gauge,
        };
        if worker.jobs.send(job).is_err() {
            worker.load.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Stops taking connections and waits for every worker thread to end.
    pub(crate) async fn stop(self) {
        drop(self.workers);
        for stopped in self.stopped {
            let _ = stopped.await;
        }
    }
}

/// A worker thread's own state.
struct WorkerThread {
    config: WorkerConfig,
    queue: mpsc::UnboundedReceiver<Job>,
    load: Arc<AtomicUsize>,
}

impl WorkerThread {
    fn run(self, ready: oneshot::Sender<io::Result<()>>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        runtime.block_on(self.serve(ready));
        // Connections still open here outlived the drain timeout: dropping
        // the runtime closes them.
    }

    async fn serve(mut self, ready: oneshot::Sender<io::Result<()>>) {
        let handlers = match Handlers::new(&self.config) {
            Ok(handlers) => Arc::new(handlers),
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        while let Some(job) = self.queue.recv().await {
            let stream = match job
                .stream
                .set_nonblocking(true)
                .and_then(|()| TcpStream::from_std(job.stream))
            {
                Ok(stream) => stream,
                Err(error) => {
                    warn!(error = %error, "a worker cannot take a connection");
                    self.load.fetch_sub(1, Ordering::Relaxed);
                    continue;
                }
            };
            let handlers = handlers.clone();
            let load = self.load.clone();
            let drain = self.config.drain.clone();
            job.gauge.inc();
            tokio::spawn(self.config.tracker.track_future(async move {
                handlers.serve(job.protocol, stream, drain).await;
                job.gauge.dec();
                load.fetch_sub(1, Ordering::Relaxed);
                drop(job.permit);
            }));
        }
        // The gateway stopped handing out connections: it has drained them,
        // or given up waiting, so whatever is left here is closed on return.
    }
}

/// A worker's protocol handlers, over its own upstream channels.
struct Handlers {
    transform: Box<dyn LineProtocol>,
    database: Box<dyn LineProtocol>,
    weather: Box<dyn LineProtocol>,
    upstreams: Upstreams,
    limits: ConnectionLimits,
}

impl Handlers {
    fn new(config: &WorkerConfig) -> io::Result<Self> {
        let options = &config.options;
        let upstreams = Upstreams::new(&config.upstreams, options.upstream_timeout)
            .map_err(|status| io::Error::other(status.message().to_owned()))?;
        Ok(Self {
            transform: Box::new(TransformLines::new(
                upstreams.clone(),
                options.max_pipelined,
                options.max_idle_streams,
                config.transform_streams.clone(),
            )),
            database: Box::new(Calls(Arc::new(DatabaseLines::new(upstreams.clone())))),
            weather: Box::new(Calls(Arc::new(WeatherLines::new(
                upstreams.clone(),
                options.default_station.clone(),
            )))),
            upstreams,
            limits: config.limits,
        })
    }

    async fn serve(&self, protocol: Protocol, stream: TcpStream, drain: DrainSignal) {
        let limits = self.limits;
        let lines = match protocol {
            Protocol::Transform => &self.transform,
            Protocol::Database => &self.database,
            Protocol::Weather => &self.weather,
            Protocol::ChatTcp | Protocol::ChatUdp => {
                chat::tcp::serve_connection(
                    stream,
                    self.upstreams.clone(),
                    limits.max_line_bytes,
                    limits.idle_timeout,
                    drain,
                )
                .await;
                return;
            }
            // The web door has its own server; no worker is handed its sockets.
            Protocol::Web => return,
        };
        serve_connection(stream, lines.session(), limits, async move {
            drain.draining().await;
        })
        .await;
    }
}
