//! # quartet-client
//!
//! How Quartet's clients (the CLI and the gateway) reach the services: from an
//! address to a channel carrying the caller's credentials (TLS, client
//! certificate, bearer token) and trace context, spread over every endpoint of
//! the address, and pinging idle connections so a vanished server is noticed.
//! The server side is `quartet-runtime`; this crate uses only its
//! [`telemetry`](quartet_runtime::telemetry), for the trace context it sends.
//!
//! # Layout
//! - [`address`]: [`Target`], the forms of an address (`http(s)://`, a list,
//!   `dns:///`).
//! - [`balance`]: [`Balanced`], per-call balancing over the endpoints, with
//!   ejection of failed ones and health checks to bring them back.
//! - [`resolve`]: [`Resolve`], the name resolver (injectable for tests).
//! - this file: [`Credentials`], [`Resolution`] and [`connect`]: the flags
//!   and the channel they make; [`retry_read`]: one more try for a read that
//!   met an unavailable endpoint.

pub mod address;
pub mod balance;
pub mod resolve;

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use clap::Args;
use tokio_util::sync::CancellationToken;
use tonic::{
    Code, Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, ClientTlsConfig, Endpoint, Identity},
};

pub use address::Target;
pub use balance::Balanced;
pub use resolve::{Resolve, SystemResolver};

use balance::{Backend, MakeBackend, Pool, Upkeep};

/// How a client proves who it is and checks who it talks to. The client
/// certificate flags are `--tls-client-*` because servers (and `quartet serve`)
/// take `--tls-cert`/`--tls-key` for their own certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct Credentials {
    /// PEM CA bundle to verify servers with; implies TLS. Without it, https://
    /// addresses are verified against the system's roots.
    #[arg(long, global = true, env = "QUARTET_TLS_CA")]
    tls_ca: Option<PathBuf>,

    /// PEM client certificate, for servers that require mutual TLS.
    #[arg(
        long,
        global = true,
        env = "QUARTET_TLS_CLIENT_CERT",
        requires = "tls_client_key"
    )]
    tls_client_cert: Option<PathBuf>,

    /// PEM private key of the client certificate.
    #[arg(
        long,
        global = true,
        env = "QUARTET_TLS_CLIENT_KEY",
        requires = "tls_client_cert"
    )]
    tls_client_key: Option<PathBuf>,

    /// The name to expect in the server's certificate, when it is not the
    /// address's host.
    #[arg(long, global = true, env = "QUARTET_TLS_SERVER_NAME")]
    tls_server_name: Option<String>,

    /// Bearer token sent with every call (servers started with --auth-token-file need it).
    #[arg(long, global = true, env = "QUARTET_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// How a client keeps its endpoints current.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Resolution {
    /// How often `dns:///` addresses are resolved again (and, at most once a
    /// second, when a call to one of their endpoints fails); an endpoint taken
    /// out of rotation is health-checked at least this often.
    #[arg(long, global = true, env = "QUARTET_RESOLVE_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub resolve_interval: Duration,
}

impl Default for Resolution {
    fn default() -> Self {
        Self {
            resolve_interval: Duration::from_secs(30),
        }
    }
}

/// A balanced channel that adds the bearer token to every call.
pub type Connection = InterceptedService<Balanced, BearerToken>;

/// Adds `authorization: Bearer <token>` when a token is configured, and the
/// caller's trace context when traces are exported.
#[derive(Debug, Clone)]
pub struct BearerToken {
    header: Option<MetadataValue<Ascii>>,
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        quartet_runtime::telemetry::propagate_current_trace(request.metadata_mut());
        Ok(request)
    }
}

/// Parses a service address flag: an `http://` or `https://` URL with a
/// host, a comma-separated list of them, or `dns:///host:port`.
pub fn parse_address(value: &str) -> Result<String, String> {
    Target::parse(value).map(|_| value.trim().to_owned())
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, Status> {
    std::fs::read(path).map_err(|error| {
        Status::invalid_argument(format!("cannot read {what} {}: {error}", path.display()))
    })
}

impl Credentials {
    /// Whether every call uses TLS whatever the address's scheme says (a CA
    /// or a client certificate was given).
    fn insists_on_tls(&self) -> bool {
        self.tls_ca.is_some() || self.tls_client_cert.is_some()
    }

    /// The TLS settings for `address`; `host` is the name to verify when the
    /// address is an IP found by resolving it.
    fn tls_config(
        &self,
        address: &str,
        host: Option<&str>,
    ) -> Result<Option<ClientTlsConfig>, Status> {
        let https = address.starts_with("https://");
        if !https && !self.insists_on_tls() {
            return Ok(None);
        }
        let mut config = ClientTlsConfig::new();
        config = match &self.tls_ca {
            Some(ca) => config.ca_certificate(Certificate::from_pem(read(ca, "CA bundle")?)),
            None => config.with_native_roots(),
        };
        if let (Some(cert), Some(key)) = (&self.tls_client_cert, &self.tls_client_key) {
            config = config.identity(Identity::from_pem(
                read(cert, "client certificate")?,
                read(key, "client key")?,
            ));
        }
        if let Some(name) = self.tls_server_name.as_deref().or(host) {
            config = config.domain_name(name.to_owned());
        }
        Ok(Some(config))
    }

    fn bearer(&self) -> Result<BearerToken, Status> {
        let header = self
            .token
            .as_ref()
            .map(|token| {
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| Status::invalid_argument("--token: not a valid header value"))
            })
            .transpose()?;
        Ok(BearerToken { header })
    }
}

/// How often an idle connection is pinged.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered before the connection counts as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `address` (see [`Target`]), waiting at most `timeout` for at
/// least one endpoint to answer. A failure is UNAVAILABLE, as gRPC clients
/// report an unreachable server. For commands that want to know at once.
pub async fn connect(
    address: &str,
    timeout: Duration,
    credentials: &Credentials,
    resolution: &Resolution,
) -> Result<Connection, Status> {
    let target = target(address)?;
    let plan = Plan::new(
        &target,
        timeout,
        credentials,
        resolution,
        Arc::new(SystemResolver),
    );
    let urls = match &target {
        Target::Static(urls) => urls.clone(),
        Target::Dns { host, port } => {
            let addresses = plan.resolver.resolve(host, *port).await.map_err(|error| {
                Status::unavailable(format!("cannot resolve {address}: {error}"))
            })?;
            addresses
                .into_iter()
                .map(|address| url_of(address, plan.scheme))
                .collect()
        }
    };
    let mut attempts = Vec::new();
    for url in &urls {
        let endpoint = plan.endpoint(url)?;
        attempts.push(async move { (url.clone(), endpoint.connect().await, endpoint) });
    }
    let mut backends = Vec::new();
    let mut first_error = None;
    for (url, connected, endpoint) in futures_util::future::join_all(attempts).await {
        match connected {
            Ok(channel) => backends.push(Backend::new(url, channel, true)),
            Err(error) => {
                first_error.get_or_insert_with(|| error_chain(&error));
                // Out of rotation until a health check through it answers.
                backends.push(Backend::new(url, endpoint.connect_lazy(), false));
            }
        }
    }
    if !backends.iter().any(|backend| backend.is_in_rotation()) {
        let error = first_error.unwrap_or_else(|| "the name has no addresses".to_owned());
        return Err(Status::unavailable(format!(
            "cannot connect to {address}: {error}"
        )));
    }
    plan.start(Pool::new(backends, true), credentials)
}

/// A channel to `address` that connects on first use and reconnects by itself
/// after failures; each call fails UNAVAILABLE within `timeout` while the
/// servers are down. For long-running clients (the gateway) that must start
/// before their upstreams and outlive their restarts.
pub fn connect_lazy(
    address: &str,
    timeout: Duration,
    credentials: &Credentials,
    resolution: &Resolution,
) -> Result<Connection, Status> {
    connect_lazy_with(
        address,
        timeout,
        credentials,
        resolution,
        Arc::new(SystemResolver),
    )
}

/// [`connect_lazy`] with a resolver of the caller's (tests inject answers).
pub fn connect_lazy_with(
    address: &str,
    timeout: Duration,
    credentials: &Credentials,
    resolution: &Resolution,
    resolver: Arc<dyn Resolve>,
) -> Result<Connection, Status> {
    let target = target(address)?;
    let plan = Plan::new(&target, timeout, credentials, resolution, resolver);
    let pool = match &target {
        Target::Static(urls) => {
            let mut backends = Vec::with_capacity(urls.len());
            for url in urls {
                backends.push(Backend::new(
                    url.clone(),
                    plan.endpoint(url)?.connect_lazy(),
                    true,
                ));
            }
            Pool::new(backends, true)
        }
        // The first resolution runs at once on the upkeep; calls wait for it.
        Target::Dns { .. } => Pool::new(Vec::new(), false),
    };
    plan.start(pool, credentials)
}

/// One more try for a read that failed UNAVAILABLE: the endpoint that failed
/// is out of rotation by then, so the second try goes to another. Only for
/// calls that change nothing (a transform, a weather reading, GetPerson,
/// ListPeople); a write is never retried blindly, since it may have been
/// applied before the failure.
pub async fn retry_read<T, F, Fut>(mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    match call().await {
        Err(status) if is_connection_failure(&status) => call().await,
        answer => answer,
    }
}

/// Whether a call failed because of its endpoint or the connection to it,
/// not because of what it asked: UNAVAILABLE, or an UNKNOWN or INTERNAL that
/// this client made from a transport error (a connection reset mid-call, an
/// HTTP/2 protocol error). A status the server sent carries no source error.
pub fn is_connection_failure(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        Code::Unknown | Code::Internal => std::error::Error::source(status).is_some(),
        _ => false,
    }
}

fn target(address: &str) -> Result<Target, Status> {
    Target::parse(address).map_err(Status::invalid_argument)
}

/// `scheme://address`, with IPv6 addresses in brackets.
fn url_of(address: SocketAddr, scheme: &str) -> String {
    format!("{scheme}://{address}")
}

/// What building a balanced channel for one target needs.
struct Plan {
    timeout: Duration,
    credentials: Credentials,
    interval: Duration,
    resolver: Arc<dyn Resolve>,
    /// The name to resolve, for `dns:///` targets.
    dns: Option<(String, u16)>,
    /// The scheme of resolved endpoints.
    scheme: &'static str,
}

impl Plan {
    fn new(
        target: &Target,
        timeout: Duration,
        credentials: &Credentials,
        resolution: &Resolution,
        resolver: Arc<dyn Resolve>,
    ) -> Self {
        let dns = match target {
            Target::Dns { host, port } => Some((host.clone(), *port)),
            Target::Static(_) => None,
        };
        Self {
            timeout,
            credentials: credentials.clone(),
            interval: resolution.resolve_interval,
            resolver,
            dns,
            scheme: if credentials.insists_on_tls() {
                "https"
            } else {
                "http"
            },
        }
    }

    fn endpoint(&self, url: &str) -> Result<Endpoint, Status> {
        let host = self.dns.as_ref().map(|(host, _)| host.as_str());
        endpoint(url, self.timeout, &self.credentials, host)
    }

    /// Spawns the pool's upkeep and wraps it with the bearer token.
    fn start(self, pool: Arc<Pool>, credentials: &Credentials) -> Result<Connection, Status> {
        let make: MakeBackend = {
            let (timeout, credentials) = (self.timeout, self.credentials.clone());
            let host = self.dns.as_ref().map(|(host, _)| host.clone());
            Box::new(move |url: &str| {
                endpoint(url, timeout, &credentials, host.as_deref())
                    .ok()
                    .map(|endpoint| Backend::new(url.to_owned(), endpoint.connect_lazy(), true))
            })
        };
        let stop = CancellationToken::new();
        let upkeep = Upkeep {
            pool: pool.clone(),
            dns: self.dns,
            resolver: self.resolver,
            make,
            interval: self.interval,
            probe_timeout: self.timeout,
            url_of,
            scheme: self.scheme,
        };
        tokio::spawn(upkeep.run(stop.clone()));
        Ok(InterceptedService::new(
            Balanced::new(pool, stop),
            credentials.bearer()?,
        ))
    }
}

/// The endpoint for `url`, with TLS when asked for and keepalive pings.
fn endpoint(
    url: &str,
    timeout: Duration,
    credentials: &Credentials,
    host: Option<&str>,
) -> Result<Endpoint, Status> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|error| Status::invalid_argument(format!("{url}: {error}")))?
        .connect_timeout(timeout)
        .timeout(timeout)
        // Pings find a server that vanished without closing the connection (a
        // crashed host, a dropped network), so a long watch fails and resumes
        // instead of waiting forever.
        .http2_keep_alive_interval(PING_INTERVAL)
        .keep_alive_timeout(PING_TIMEOUT)
        .keep_alive_while_idle(true);
    if let Some(tls) = credentials.tls_config(url, host)? {
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|error| Status::invalid_argument(format!("{url}: {}", error_chain(&error))))?;
    }
    Ok(endpoint)
}

/// An error and its causes on one line: tonic's own message is only "transport
/// error", the reason is underneath.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // Layers often repeat their cause's words; say each thing once.
        let cause_message = cause.to_string();
        if !message.ends_with(&cause_message) {
            message.push_str(": ");
            message.push_str(&cause_message);
        }
        source = cause.source();
    }
    message
}
