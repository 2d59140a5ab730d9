//! From an address flag to a connected tonic channel.

use std::time::Duration;

use tonic::{
    Status,
    transport::{Channel, Endpoint},
};

/// Parses a service address flag: an `http://` or `https://` URL with a host.
pub(crate) fn parse_address(value: &str) -> Result<String, String> {
    let endpoint = Endpoint::from_shared(value.to_owned()).map_err(|error| error.to_string())?;
    let uri = endpoint.uri();
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(value.to_owned()),
        _ => Err("expected a URL like http://127.0.0.1:50051".to_owned()),
    }
}

/// Connects to `address`, waiting at most `timeout`. A failure is UNAVAILABLE,
/// as gRPC clients report an unreachable server.
pub(crate) async fn connect(address: &str, timeout: Duration) -> Result<Channel, Status> {
    let endpoint = Endpoint::from_shared(address.to_owned())
        .map_err(|error| Status::invalid_argument(format!("{address}: {error}")))?
        .connect_timeout(timeout);
    endpoint.connect().await.map_err(|error| {
        Status::unavailable(format!(
            "cannot connect to {address}: {}",
            error_chain(&error)
        ))
    })
}

/// Connects like [`connect`], for a stream meant to stay open for hours: HTTP/2
/// pings find a server that vanished without closing the connection (a
/// crashed host, a dropped network), so the stream fails and can be resumed
/// instead of waiting forever.
pub(crate) async fn connect_long_lived(
    address: &str,
    timeout: Duration,
) -> Result<Channel, Status> {
    let endpoint = Endpoint::from_shared(address.to_owned())
        .map_err(|error| Status::invalid_argument(format!("{address}: {error}")))?
        .connect_timeout(timeout)
        .http2_keep_alive_interval(LONG_LIVED_PING_INTERVAL)
        .keep_alive_timeout(LONG_LIVED_PING_TIMEOUT)
        .keep_alive_while_idle(true);
    endpoint.connect().await.map_err(|error| {
        Status::unavailable(format!(
            "cannot connect to {address}: {}",
            error_chain(&error)
        ))
    })
}

/// How often a long-lived stream's connection is pinged.
const LONG_LIVED_PING_INTERVAL: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered before the connection counts as lost.
const LONG_LIVED_PING_TIMEOUT: Duration = Duration::from_secs(10);

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
