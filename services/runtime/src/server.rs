//! [`GrpcServer`]: a tonic server with everything every Quartet server has
//! (health, reflection, limits, call tracing, graceful shutdown), configured once
//! here so services only add themselves.

use std::{
    convert::Infallible,
    io::{self, Write as _},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use tokio::{net::TcpListener, task::JoinHandle, time::sleep};
use tokio_util::sync::CancellationToken;
use tonic::{body::Body, server::NamedService, service::RoutesBuilder, transport::Server};
use tower_service::Service;
use tracing::{info, warn};

use crate::{
    accept,
    auth::BearerAuthLayer,
    call_trace::CallTraceLayer,
    config::ServerOptions,
    health::{HealthRegistry, ServingStatus},
    overload::InFlightLimitLayer,
    reflection,
    request_framing::RequestFramingLayer,
    request_timeout::RequestTimeoutLayer,
    served_methods::{DescriptorError, ServedMethods},
    shutdown::{DrainSignal, Shutdown},
};

/// Streams a client may reset before the server answers them (hyper's own
/// default, which tonic otherwise replaces with "no limit"; see RUSTSEC-2024-0003).
const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams the server may reset because of client errors before it sends GOAWAY
/// (hyper's default, likewise removed by tonic unless set).
const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The descriptor sets are inconsistent (a build problem, not a runtime one).
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The descriptor sets do not describe every hosted service (a build problem).
    #[error(transparent)]
    Descriptors(#[from] DescriptorError),
    /// The HTTP/2 server failed.
    #[error("server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A certificate, key or token file cannot be used.
    #[error("{0}")]
    Config(#[from] crate::reload::LoadError),
}

/// A gRPC server being assembled: name it, add services, then [`bind`](Self::bind).
#[derive(Debug)]
pub struct GrpcServer {
    name: &'static str,
    options: ServerOptions,
    shutdown: Shutdown,
    health: HealthRegistry,
    routes: RoutesBuilder,
    service_names: Vec<&'static str>,
    descriptor_sets: Vec<&'static [u8]>,
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
        }
    }

    /// The metrics registry, for services that add their own gauges.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.options.metrics
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
    /// [`BoundServer::local_addr`]). Nothing is served until [`BoundServer::serve`].
    pub async fn bind(self, addr: SocketAddr) -> Result<BoundServer, ServeError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        let health_listener =
            match self.options.health_listen {
                Some(health_addr) => {
                    Some(TcpListener::bind(health_addr).await.map_err(|source| {
                        ServeError::Bind {
                            addr: health_addr,
                            source,
                        }
                    })?)
                }
                None => None,
            };
        Ok(BoundServer {
            server: self,
            listener,
            local_addr,
            health_listener,
        })
    }
}

/// tonic's HTTP/2 server with every limit set deliberately (tonic's own
/// defaults leave several unbounded).
fn http2_server(limits: &crate::Limits) -> Server {
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
        let task = tokio::spawn(self.start()?);
        Ok(RunningServer {
            local_addr,
            health_addr,
            health,
            shutdown,
            task,
        })
    }

    /// Does everything that can fail or must be visible at once (routes,
    /// reflection, SERVING), and returns the future that serves.
    fn start(
        self,
    ) -> Result<impl Future<Output = Result<(), ServeError>> + Send + 'static, ServeError> {
        let Self {
            server,
            listener,
            local_addr,
            health_listener,
        } = self;
        let GrpcServer {
            name,
            options,
            shutdown,
            health,
            mut routes,
            service_names,
            descriptor_sets,
        } = server;
        let limits = &options.limits;
        let policy = options.shutdown.clone();

        let (reflection_v1, reflection_v1alpha) =
            reflection::services(&descriptor_sets, &service_names)?;
        let served = Arc::new(ServedMethods::of_server(&descriptor_sets, &service_names)?);
        routes
            .add_service(health.service(shutdown.drain_signal()))
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        // Reloaders (certificates, tokens) live as long as the server serves.
        let reloaders = CancellationToken::new();
        let tls = options
            .tls
            .server_config(options.reload_interval, reloaders.clone())?;
        let tokens = options
            .auth
            .tokens(options.reload_interval, reloaders.clone());
        let secure = if tls.is_some() { "tls" } else { "plaintext" };
        let incoming = accept::incoming(listener, tls, limits);
        let router = http2_server(limits)
            .layer(CallTraceLayer::new(options.metrics.clone(), served.clone()))
            .layer(BearerAuthLayer::new(tokens))
            .layer(InFlightLimitLayer::new(limits.max_concurrent_calls))
            .layer(RequestFramingLayer::new(limits.max_message_bytes, served))
            .layer(RequestTimeoutLayer::new(limits.request_timeout))
            .add_routes(routes.routes());

        let stop_accepting = {
            let shutdown = shutdown.clone();
            let health = health.clone();
            async move {
                shutdown.requested().await;
                health.set_all(ServingStatus::NotServing);
                info!(
                    server = name,
                    delay = %humantime::format_duration(policy.shutdown_delay),
                    "health is NOT_SERVING; draining after the delay"
                );
                sleep(policy.shutdown_delay).await;
                info!(
                    server = name,
                    "draining: no new connections, streams told to close"
                );
                shutdown.start_draining();
            }
        };

        // Probes keep their answers until the drain: they must see NOT_SERVING.
        let health_only = health_listener.map(|listener| {
            let drain = shutdown.drain_signal();
            http2_server(limits)
                .add_service(health.service(drain.clone()))
                .serve_with_incoming_shutdown(
                    accept::incoming(listener, None, limits),
                    async move {
                        drain.draining().await;
                    },
                )
        });

        health.set_all(ServingStatus::Serving);
        info!(server = name, %local_addr, transport = secure, services = ?service_names, "serving");
        Ok(async move {
            let _reloaders = reloaders.drop_guard();
            if let Some(health_only) = health_only {
                tokio::spawn(async move {
                    if let Err(error) = health_only.await {
                        warn!(server = name, error = %error, "health port failed");
                    }
                });
            }
            let serving = router.serve_with_incoming_shutdown(incoming, stop_accepting);
            let drain_deadline = async {
                shutdown.draining().await;
                sleep(policy.drain_timeout).await;
            };
            tokio::select! {
                result = serving => result?,
                () = drain_deadline => warn!(
                    server = name,
                    timeout = %humantime::format_duration(policy.drain_timeout),
                    "drain timed out; cutting the calls still open"
                ),
                () = shutdown.forced() => warn!(server = name, "forced to stop; cutting the calls still open"),
            }
            info!(server = name, "stopped");
            Ok(())
        })
    }
}

/// A server serving on a background task.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    health_addr: Option<SocketAddr>,
    health: HealthRegistry,
    shutdown: Shutdown,
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
