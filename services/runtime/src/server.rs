//! [`GrpcServer`]: a tonic server with everything every Quartet server has
//! (health, reflection, limits, call tracing, graceful shutdown), configured once
//! here so services only add themselves.
//!
//! A server goes through three types: [`GrpcServer`] while services are added,
//! [`BoundServer`] once its ports are bound (port 0 reports the real port), and
//! [`RunningServer`] when it serves on a background task. Starting it assembles
//! the router (`GrpcServer::into_serve`), the connection workers, the health-only port
//! (`health_only`) and the shutdown sequence (`ShutdownSequence`).

use std::{
    convert::Infallible,
    fmt,
    io::{self, Write as _},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use futures_util::future::BoxFuture;
use tokio::{net::TcpListener, task::JoinHandle, time::sleep};
use tokio_util::sync::CancellationToken;
use tonic::{body::Body, server::NamedService, service::RoutesBuilder, transport::Server};
use tower_service::Service;
use tracing::{info, warn};

use crate::{
    accept,
    auth::BearerAuthLayer,
    call_trace::CallTraceLayer,
    config::{Limits, ServerOptions, ShutdownPolicy},
    error::ServeError,
    health::{HealthRegistry, ServingStatus},
    metrics::Metrics,
    overload::InFlightLimitLayer,
    reflection,
    request_framing::RequestFramingLayer,
    request_timeout::RequestTimeoutLayer,
    served_methods::ServedMethods,
    shutdown::{DrainSignal, Shutdown},
    workers::{self, Workers},
};

/// Streams a client may reset before the server answers them (hyper's own
/// default, which tonic otherwise replaces with "no limit"; see RUSTSEC-2024-0003).
const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams the server may reset because of client errors before it sends GOAWAY
/// (hyper's default, likewise removed by tonic unless set).
const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// A service's own metrics, registered once the server knows which registry it
/// records into.
type Registration = Box<dyn FnOnce(&Metrics) + Send>;

/// A gRPC server being assembled: name it, add services, then [`bind`](Self::bind).
pub struct GrpcServer {
    name: &'static str,
    options: ServerOptions,
    shutdown: Shutdown,
    health: HealthRegistry,
    routes: RoutesBuilder,
    service_names: Vec<&'static str>,
    descriptor_sets: Vec<&'static [u8]>,
    /// The process's registry, when the server shares one; it gets a registry
    /// of its own at bind otherwise.
    metrics: Option<Metrics>,
    /// The services' own metrics, added to the registry at bind.
    registrations: Vec<Registration>,
}

impl fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcServer")
            .field("name", &self.name)
            .field("services", &self.service_names)
            .finish_non_exhaustive()
    }
}

impl GrpcServer {
    /// A server called `name` in logs (for example "transform") that stops when
    /// `shutdown` is requested.
    pub fn new(name: &'static str, options: ServerOptions, shutdown: Shutdown) -> Self {
        Self {
            name,
            options,
            shutdown,
            health: HealthRegistry::new(),
            routes: RoutesBuilder::default(),
            service_names: Vec::new(),
            descriptor_sets: Vec::new(),
            metrics: None,
            registrations: Vec::new(),
        }
    }

    /// Records into `metrics`, the registry of the process, instead of one of
    /// its own: a binary makes one registry and serves it on `--metrics-listen`,
    /// and `quartet serve` shares it between all its servers.
    #[must_use]
    pub fn record_into(mut self, metrics: &Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }

    /// Adds a service's own metrics (gauges, collectors) with `register`, which
    /// is given the registry this server records into when it binds.
    #[must_use]
    pub fn register_metrics(mut self, register: impl FnOnce(&Metrics) + Send + 'static) -> Self {
        self.registrations.push(Box::new(register));
        self
    }

    /// The options this server was built with; services size their own limits
    /// from them.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// What services watch to close their streams when the server drains.
    pub fn drain_signal(&self) -> DrainSignal {
        self.shutdown.drain_signal()
    }

    /// The health registry, for services that report their own state.
    pub fn health(&self) -> HealthRegistry {
        self.health.clone()
    }

    /// Registers an encoded `FileDescriptorSet` that describes the services, so
    /// reflection can serve them.
    #[must_use]
    pub fn descriptors(mut self, encoded: &'static [u8]) -> Self {
        self.descriptor_sets.push(encoded);
        self
    }

    /// Adds a generated tonic service. Its health is tracked under its full name.
    #[must_use]
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.health.set(S::NAME, ServingStatus::NotServing);
        self.service_names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Binds the listen address (port 0 picks a free port; see
    /// [`BoundServer::local_addr`]) and the health port, if any, and settles
    /// the metrics registry. Nothing is served until [`BoundServer::serve`].
    pub async fn bind(mut self, addr: SocketAddr) -> Result<BoundServer, ServeError> {
        let listener = accept::bind(addr).await?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        let health_listener = match self.options.health_listen {
            Some(health_addr) => Some(accept::bind(health_addr).await?),
            None => None,
        };
        let metrics = self.metrics.take().unwrap_or_default();
        for register in self.registrations.drain(..) {
            register(&metrics);
        }
        Ok(BoundServer {
            server: self,
            metrics,
            listener,
            local_addr,
            health_listener,
        })
    }

    /// Binds `addr` and serves on a background task ([`Self::bind`], then
    /// [`BoundServer::spawn`]): how tests and in-process suites start a server.
    pub async fn spawn_on(self, addr: SocketAddr) -> Result<RunningServer, ServeError> {
        self.bind(addr).await?.spawn()
    }

    /// Assembles the router every call goes through (the services, health and
    /// reflection, behind the layers in the order `lib.rs` lists them), and
    /// returns what serves a stream of connections with it: once on this
    /// runtime, or once per connection worker.
    fn into_serve(
        self,
        metrics: Metrics,
        reloaders: &CancellationToken,
    ) -> Result<workers::Serve, ServeError> {
        let Self {
            options,
            shutdown,
            health,
            mut routes,
            service_names,
            descriptor_sets,
            ..
        } = self;
        let (reflection_v1, reflection_v1alpha) =
            reflection::services(&descriptor_sets, &service_names);
        let served = Arc::new(ServedMethods::of_server(&descriptor_sets, &service_names)?);
        routes
            .add_service(health.service(shutdown.drain_signal()))
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        let tokens = options
            .auth
            .tokens(options.reload_interval, reloaders.clone());
        let limits = &options.limits;
        let router = http2_server(limits)
            .layer(CallTraceLayer::new(metrics, served.clone()))
            .layer(BearerAuthLayer::new(tokens))
            .layer(InFlightLimitLayer::new(limits.max_concurrent_calls))
            .layer(RequestFramingLayer::new(limits.max_message_bytes, served))
            .layer(RequestTimeoutLayer::new(limits.request_timeout))
            .add_routes(routes.routes());
        Ok(Arc::new(move |incoming, stop| {
            // Boxed, once per HTTP/2 server: its future is large, and would
            // otherwise be stored again by each future it moves into.
            Box::pin(router.clone().serve_with_incoming_shutdown(incoming, stop))
        }))
    }
}

/// tonic's HTTP/2 server with every limit set deliberately (tonic's own
/// defaults leave several unbounded).
fn http2_server(limits: &Limits) -> Server {
    let mut builder = Server::builder();
    if let Some(age) = limits.max_connection_age {
        builder = builder
            .max_connection_age(jittered(age))
            .max_connection_age_grace(limits.max_connection_age_grace);
    }
    builder
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(limits.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(limits.http2_keepalive_timeout))
        .http2_max_header_list_size(limits.max_header_list_bytes)
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_ACCEPT_RESET_STREAMS))
        .http2_max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESET_STREAMS))
}

/// `age` moved by up to 10% either way, drawn once per server: replicas
/// started together (a rollout) then do not close their connections, and
/// send every client reconnecting, all at the same moment.
fn jittered(age: Duration) -> Duration {
    let mut noise = [0_u8; 2];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut noise).is_err() {
        return age;
    }
    // A factor in [0.9, 1.1].
    let factor = 0.9 + 0.2 * f64::from(u16::from_le_bytes(noise)) / f64::from(u16::MAX);
    age.mul_f64(factor)
}

/// A server whose port is bound, ready to serve.
#[derive(Debug)]
pub struct BoundServer {
    server: GrpcServer,
    /// The registry the server records into.
    metrics: Metrics,
    listener: TcpListener,
    local_addr: SocketAddr,
    /// The plaintext health-only port, when `--health-listen` is set.
    health_listener: Option<TcpListener>,
}

impl BoundServer {
    /// The address actually bound, with the real port when port 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The health registry, for services that report their own state.
    pub fn health(&self) -> HealthRegistry {
        self.server.health.clone()
    }

    /// The registry this server records into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The server's name ("transform"), as in its announce line.
    pub fn name(&self) -> &'static str {
        self.server.name
    }

    /// The line that tells scripts and tests where the server is, for example
    /// `transform listening on 127.0.0.1:50051`.
    pub fn announcement(&self) -> String {
        format!("{} listening on {}", self.server.name, self.local_addr)
    }

    /// The plaintext health port's address, when there is one.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// Prints [`announcement`](Self::announcement) on stdout, flushed, for the
    /// script or test that started this process (logs go to stderr), and
    /// `<name> health listening on ADDR` when there is a health port.
    pub fn announce(&self) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{}", self.announcement())?;
        if let Some(addr) = self.health_addr() {
            writeln!(stdout, "{} health listening on {addr}", self.server.name)?;
        }
        stdout.flush()
    }

    /// Serves until shutdown is requested and the drain completes (or times out).
    ///
    /// On shutdown: health turns NOT_SERVING, the server keeps serving for the
    /// shutdown delay, then stops accepting, tells streams to close, and waits for
    /// in-flight calls up to the drain timeout.
    pub async fn serve(self) -> Result<(), ServeError> {
        self.start()?.await
    }

    /// Serves on a background task, SERVING by the time this returns; tests and
    /// `quartet serve` use it to run several servers in one process.
    pub fn spawn(self) -> Result<RunningServer, ServeError> {
        let local_addr = self.local_addr;
        let health_addr = self.health_addr();
        let health = self.server.health.clone();
        let shutdown = self.server.shutdown.clone();
        let metrics = self.metrics.clone();
        let task = tokio::spawn(self.start()?);
        Ok(RunningServer {
            local_addr,
            health_addr,
            health,
            shutdown,
            metrics,
            task,
        })
    }

    /// Does everything that can fail or must be visible at once (routes,
    /// reflection, certificates, SERVING), and returns the future that serves.
    fn start(
        self,
    ) -> Result<impl Future<Output = Result<(), ServeError>> + Send + 'static, ServeError> {
        let Self {
            server,
            metrics,
            listener,
            local_addr,
            health_listener,
        } = self;
        let name = server.name;
        let limits = server.options.limits.clone();
        let services = server.service_names.clone();
        let health = server.health.clone();
        let sequence = ShutdownSequence {
            name,
            policy: server.options.shutdown.clone(),
            shutdown: server.shutdown.clone(),
            health: health.clone(),
        };
        // Reloaders (certificates, tokens) live as long as the server serves.
        let reloaders = CancellationToken::new();
        let tls = server
            .options
            .tls
            .server_config(server.options.reload_interval, reloaders.clone())?;
        let transport = if tls.is_some() { "tls" } else { "plaintext" };
        let workers = server
            .options
            .connection_workers
            .unwrap_or_else(workers::default_count);
        let drain = server.shutdown.drain_signal();
        let serve = server.into_serve(metrics, &reloaders)?;
        let stop_accepting = Box::pin(sequence.clone().stop_accepting());
        let serving: BoxFuture<'static, workers::ServeResult> = if workers == 0 {
            serve(accept::incoming(listener, tls, &limits), stop_accepting)
        } else {
            let workers = Workers::new(name, workers, serve, limits.http2_handshake_timeout, drain);
            let max_connections = limits.max_connections;
            Box::pin(async move {
                // The shutdown sequence runs here; the workers watch the drain it starts.
                let ((), served) = tokio::join!(
                    stop_accepting,
                    workers.serve(listener, tls, max_connections)
                );
                served
            })
        };
        let health_only = health_listener.map(|listener| {
            health_only(
                name,
                listener,
                &limits,
                &health,
                sequence.shutdown.drain_signal(),
            )
        });

        health.set_all(ServingStatus::Serving);
        info!(server = name, %local_addr, transport, ?services, "serving");
        Ok(async move {
            let _reloaders = reloaders.drop_guard();
            if let Some(health_only) = health_only {
                tokio::spawn(health_only);
            }
            sequence.until_drained(serving).await
        })
    }
}

/// The plaintext port that serves only health, for probes that cannot speak
/// TLS. Probes keep their answers until the drain: they must see NOT_SERVING.
fn health_only(
    name: &'static str,
    listener: TcpListener,
    limits: &Limits,
    health: &HealthRegistry,
    drain: DrainSignal,
) -> impl Future<Output = ()> + Send + use<> {
    let serving = http2_server(limits)
        .add_service(health.service(drain.clone()))
        .serve_with_incoming_shutdown(accept::incoming(listener, None, limits), async move {
            drain.draining().await;
        });
    async move {
        if let Err(error) = serving.await {
            warn!(server = name, error = %error, "health port failed");
        }
    }
}

/// What a server does between a shutdown request and its exit (the module
/// [`crate::shutdown`] describes the two phases).
#[derive(Debug, Clone)]
struct ShutdownSequence {
    name: &'static str,
    policy: ShutdownPolicy,
    shutdown: Shutdown,
    health: HealthRegistry,
}

impl ShutdownSequence {
    /// Phase 1, up to the start of the drain: health turns NOT_SERVING, the
    /// server keeps serving for the shutdown delay, then drains. Completes
    /// when the server must stop accepting.
    async fn stop_accepting(self) {
        let name = self.name;
        self.shutdown.requested().await;
        self.health.set_all(ServingStatus::NotServing);
        info!(
            server = name,
            delay = %humantime::format_duration(self.policy.shutdown_delay),
            "health is NOT_SERVING; draining after the delay"
        );
        sleep(self.policy.shutdown_delay).await;
        info!(
            server = name,
            "draining: no new connections, streams told to close"
        );
        self.shutdown.start_draining();
    }

    /// Phase 2: waits for `serving` to finish its calls, up to the drain
    /// timeout, or until the operator forces the exit; then the calls still
    /// open are cut.
    async fn until_drained(
        &self,
        serving: impl Future<Output = Result<(), tonic::transport::Error>>,
    ) -> Result<(), ServeError> {
        let name = self.name;
        let drain_deadline = async {
            self.shutdown.draining().await;
            sleep(self.policy.drain_timeout).await;
        };
        tokio::select! {
            result = serving => result?,
            () = drain_deadline => warn!(
                server = name,
                timeout = %humantime::format_duration(self.policy.drain_timeout),
                "drain timed out; cutting the calls still open"
            ),
            () = self.shutdown.forced() => warn!(server = name, "forced to stop; cutting the calls still open"),
        }
        info!(server = name, "stopped");
        Ok(())
    }
}

/// A server serving on a background task.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    health_addr: Option<SocketAddr>,
    health: HealthRegistry,
    shutdown: Shutdown,
    metrics: Metrics,
    task: JoinHandle<Result<(), ServeError>>,
}

impl RunningServer {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The plaintext health port's address, when `--health-listen` is set.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_addr
    }

    /// The address as a URL a tonic client connects to (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The server's health registry.
    pub fn health(&self) -> &HealthRegistry {
        &self.health
    }

    /// The registry the server records into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The shutdown switch this server obeys (shared with any server built on it).
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Waits for the server to stop by itself (after a shutdown request).
    pub async fn stopped(self) -> Result<(), ServeError> {
        match self.task.await {
            Ok(result) => result,
            Err(join_error) if join_error.is_panic() => {
                std::panic::resume_unwind(join_error.into_panic())
            }
            // Cancelled: the runtime is going away, and the server with it.
            Err(_) => Ok(()),
        }
    }

    /// Requests shutdown and waits for the server to stop.
    pub async fn stop(self) -> Result<(), ServeError> {
        self.shutdown.request();
        self.stopped().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::jittered;

    #[test]
    fn connection_age_is_moved_by_at_most_a_tenth() {
        let age = Duration::from_secs(300);
        let ages: Vec<Duration> = (0..200).map(|_| jittered(age)).collect();
        assert!(ages.iter().all(|jittered| {
            (Duration::from_secs(270)..=Duration::from_secs(330)).contains(jittered)
        }));
        assert!(
            ages.iter().any(|jittered| *jittered != ages[0]),
            "it varies"
        );
    }
}
