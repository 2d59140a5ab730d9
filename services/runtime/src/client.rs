//! The client side, shared by the CLI and the gateway: from an address to a
//! connected channel carrying the caller's credentials (TLS, client
//! certificate, bearer token) and trace context, pinging idle connections so a
//! vanished server is noticed.

use std::{path::PathBuf, time::Duration};

use clap::Args;
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

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

/// A channel that adds the bearer token to every call.
pub type Connection = InterceptedService<Channel, BearerToken>;

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
        crate::telemetry::propagate_current_trace(request.metadata_mut());
        Ok(request)
    }
}

/// Parses a service address flag: an `http://` or `https://` URL with a host.
pub fn parse_address(value: &str) -> Result<String, String> {
    let endpoint = Endpoint::from_shared(value.to_owned()).map_err(|error| error.to_string())?;
    let uri = endpoint.uri();
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(value.to_owned()),
        _ => Err("expected a URL like http://127.0.0.1:50051".to_owned()),
    }
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, Status> {
    std::fs::read(path).map_err(|error| {
        Status::invalid_argument(format!("cannot read {what} {}: {error}", path.display()))
    })
}

impl Credentials {
    fn tls_config(&self, address: &str) -> Result<Option<ClientTlsConfig>, Status> {
        let https = address.starts_with("https://");
        if !https && self.tls_ca.is_none() && self.tls_client_cert.is_none() {
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
        if let Some(name) = &self.tls_server_name {
            config = config.domain_name(name.clone());
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

/// Connects to `address`, waiting at most `timeout`. A failure is UNAVAILABLE,
/// as gRPC clients report an unreachable server.
pub async fn connect(
    address: &str,
    timeout: Duration,
    credentials: &Credentials,
) -> Result<Connection, Status> {
    let channel = endpoint(address, timeout, credentials)?
        .connect()
        .await
        .map_err(|error| {
            Status::unavailable(format!(
                "cannot connect to {address}: {}",
                error_chain(&error)
            ))
        })?;
    Ok(InterceptedService::new(channel, credentials.bearer()?))
}

/// The endpoint for `address`, with TLS when asked for and keepalive pings.
fn endpoint(
    address: &str,
    timeout: Duration,
    credentials: &Credentials,
) -> Result<Endpoint, Status> {
    let mut endpoint = Endpoint::from_shared(address.to_owned())
        .map_err(|error| Status::invalid_argument(format!("{address}: {error}")))?
        .connect_timeout(timeout)
        // Pings find a server that vanished without closing the connection (a
        // crashed host, a dropped network), so a long watch fails and resumes
        // instead of waiting forever.
        .http2_keep_alive_interval(PING_INTERVAL)
        .keep_alive_timeout(PING_TIMEOUT)
        .keep_alive_while_idle(true);
    if let Some(tls) = credentials.tls_config(address)? {
        endpoint = endpoint.tls_config(tls).map_err(|error| {
            Status::invalid_argument(format!("{address}: {}", error_chain(&error)))
        })?;
    }
    Ok(endpoint)
}

/// A channel to `address` that connects on first use and reconnects by itself
/// after failures; each call fails UNAVAILABLE within `timeout` while the server
/// is down. For long-running clients (the gateway) that must start before their
/// upstreams and outlive their restarts.
pub fn connect_lazy(
    address: &str,
    timeout: Duration,
    credentials: &Credentials,
) -> Result<Connection, Status> {
    let channel = endpoint(address, timeout, credentials)?
        .timeout(timeout)
        .connect_lazy();
    Ok(InterceptedService::new(channel, credentials.bearer()?))
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
