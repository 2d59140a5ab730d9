//! The flags every server shares, as clap arguments with environment fallbacks.
//!
//! Binaries flatten [`ServerOptions`] into their own parser next to their listen
//! address; tests build it with [`Default`] and change what they need. The clap
//! defaults and the [`Default`] impls are kept equal by a test.

use std::time::Duration;

use clap::{Args, Parser};

use crate::{auth::AuthOptions, tls::TlsOptions};

/// How a server protects itself and its clients: sizes, concurrency, timeouts,
/// keepalive. Every limit is on by default; none is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Limits {
    /// Largest gRPC message accepted or sent, in bytes; larger ones are refused
    /// with RESOURCE_EXHAUSTED before they are buffered.
    #[arg(long, env = "QUARTET_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Calls being handled at once by this server; more are refused at once with
    /// RESOURCE_EXHAUSTED instead of queueing (health checks are never refused).
    #[arg(long, env = "QUARTET_MAX_CONCURRENT_CALLS", default_value_t = 4096)]
    pub max_concurrent_calls: usize,

    /// Concurrent HTTP/2 streams (calls) a client may open on one connection;
    /// long-lived streams count. Advertised in SETTINGS, so clients queue rather
    /// than fail.
    #[arg(long, env = "QUARTET_MAX_CONCURRENT_STREAMS", default_value_t = 1024)]
    pub max_concurrent_streams: u32,

    /// Longest a unary call may take before it is answered DEADLINE_EXCEEDED. A
    /// shorter `grpc-timeout` from the client is honoured too.
    #[arg(long, env = "QUARTET_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// How often to send HTTP/2 PINGs on an idle connection, to find dead peers
    /// and keep middleboxes from dropping quiet streams.
    #[arg(long, env = "QUARTET_HTTP2_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub http2_keepalive_interval: Duration,

    /// How long to wait for a PING answer before closing the connection.
    #[arg(long, env = "QUARTET_HTTP2_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub http2_keepalive_timeout: Duration,

    /// Largest header list a client may send, in bytes.
    #[arg(long, env = "QUARTET_MAX_HEADER_LIST_BYTES", default_value_t = 16 * 1024)]
    pub max_header_list_bytes: u32,

    /// Close connections this old (GOAWAY, then the grace below), so clients
    /// reconnect and spread over new replicas: HTTP/2 otherwise pins a client to
    /// one pod behind a Kubernetes ClusterIP Service. Off when absent.
    #[arg(long, env = "QUARTET_MAX_CONNECTION_AGE", value_parser = humantime::parse_duration)]
    pub max_connection_age: Option<Duration>,

    /// How long a connection past its age may finish its calls before it is
    /// cut (long streams resume on a new connection).
    #[arg(long, env = "QUARTET_MAX_CONNECTION_AGE_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub max_connection_age_grace: Duration,

    /// Longest a new connection may take to start speaking HTTP/2 (the client
    /// preface), its TLS handshake included; it is closed after that, so
    /// clients that connect and stay silent cannot pile up sockets and memory.
    #[arg(long, env = "QUARTET_HTTP2_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_interval)]
    pub http2_handshake_timeout: Duration,

    /// Connections open at once on each listener, those still in their
    /// handshake included; one more is accepted and closed at once (a warning
    /// is logged at most every 10s), so a flood cannot exhaust file
    /// descriptors. Open connections and their calls carry on.
    #[arg(long, env = "QUARTET_MAX_CONNECTIONS", default_value_t = 16_384, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent_calls: 4096,
            max_concurrent_streams: 1024,
            request_timeout: Duration::from_secs(30),
            http2_keepalive_interval: Duration::from_secs(30),
            http2_keepalive_timeout: Duration::from_secs(10),
            max_header_list_bytes: 16 * 1024,
            max_connection_age: None,
            max_connection_age_grace: Duration::from_secs(30),
            http2_handshake_timeout: Duration::from_secs(10),
            max_connections: 16_384,
        }
    }
}

/// What happens between SIGTERM and exit.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ShutdownPolicy {
    /// After health turns NOT_SERVING, keep serving this long before draining, so
    /// load balancers and Kubernetes endpoints stop sending new calls first.
    #[arg(long, env = "QUARTET_SHUTDOWN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,

    /// Longest the drain may take: open streams are told to close and in-flight
    /// calls finish; whatever is still open after this is cut.
    #[arg(long, env = "QUARTET_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
}

impl Default for ShutdownPolicy {
    fn default() -> Self {
        Self {
            shutdown_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Everything a server needs besides its address and its services.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ServerOptions {
    /// Sizes, concurrency, timeouts and keepalive.
    #[command(flatten)]
    pub limits: Limits,

    /// Shutdown timing.
    #[command(flatten)]
    pub shutdown: ShutdownPolicy,

    /// TLS and mutual TLS.
    #[command(flatten)]
    pub tls: TlsOptions,

    /// Bearer-token authentication.
    #[command(flatten)]
    pub auth: AuthOptions,

    /// How often certificate and token files are checked for changes (they are
    /// reloaded without a restart when they change).
    #[arg(long, env = "QUARTET_RELOAD_INTERVAL", default_value = "10s", value_parser = parse_interval)]
    pub reload_interval: Duration,

    /// A second, plaintext port serving only `grpc.health.v1`, for probes that
    /// cannot speak TLS (Kubernetes' gRPC probes) when the server uses TLS. One
    /// server per process: `quartet serve` refuses it.
    #[arg(long, env = "QUARTET_HEALTH_LISTEN")]
    pub health_listen: Option<std::net::SocketAddr>,

    /// Where to serve Prometheus metrics (`GET /metrics`); off when absent. One
    /// endpoint per process: `quartet serve` shows every server's metrics on it.
    #[arg(long, env = "QUARTET_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Threads that serve this server's gRPC connections, each a
    /// single-threaded event loop that keeps a connection and its calls on one
    /// core; 0 serves them on the process's own runtime [default: one per CPU,
    /// or 0 under QUARTET_RUNTIME=current-thread].
    #[arg(long, env = "QUARTET_CONNECTION_WORKERS")]
    pub connection_workers: Option<usize>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            shutdown: ShutdownPolicy::default(),
            tls: TlsOptions::default(),
            auth: AuthOptions::default(),
            reload_interval: Duration::from_secs(10),
            health_listen: None,
            metrics_listen: None,
            connection_workers: None,
        }
    }
}

/// A positive duration (a zero reload interval would spin; a zero handshake
/// timeout would close every connection).
fn parse_interval(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(interval) if interval.is_zero() => Err("must be longer than zero".into()),
        Ok(interval) => Ok(interval),
        Err(error) => Err(error.to_string()),
    }
}

/// A command line of one flattened options struct.
#[derive(Debug, Parser)]
struct Only<O: Args> {
    #[command(flatten)]
    options: O,
}

/// Options `O` parsed from `args` (the flags alone, no program name) as a
/// binary that flattens them parses them, environment fallbacks included:
/// how tests hold an options type's `Default` to its flags' defaults.
pub fn parse_options<'a, O: Args>(
    args: impl IntoIterator<Item = &'a str>,
) -> Result<O, clap::Error> {
    Only::<O>::try_parse_from(std::iter::once("quartet").chain(args)).map(|only| only.options)
}

#[cfg(test)]
mod tests {
    use super::{ServerOptions, parse_options};

    fn parse(args: &[&str]) -> Result<ServerOptions, clap::Error> {
        parse_options(args.iter().copied())
    }

    #[test]
    fn clap_defaults_equal_default_impl() {
        // Environment variables would change the parse; the names are ours and
        // no test sets them.
        assert_eq!(parse(&[]).unwrap(), ServerOptions::default());
    }

    #[test]
    fn durations_parse_human_units() {
        let parsed = parse(&["--request-timeout", "1500ms", "--drain-timeout", "1m"]).unwrap();
        assert_eq!(parsed.limits.request_timeout.as_millis(), 1500);
        assert_eq!(parsed.shutdown.drain_timeout.as_secs(), 60);
    }

    #[test]
    fn a_zero_handshake_timeout_or_connection_cap_is_a_usage_error() {
        for (flag, value) in [
            ("--http2-handshake-timeout", "0s"),
            ("--max-connections", "0"),
        ] {
            let error = parse(&[flag, value]).err().unwrap();
            assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
        }
    }

    #[test]
    fn bad_duration_is_a_usage_error() {
        let error = parse(&["--request-timeout", "soon"]).err().unwrap();
        assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
    }
}
