//! Hostile connections over real sockets: clients that connect and stay
//! silent, stop halfway through the HTTP/2 preface, speak something else, or
//! come in greater numbers than the connection cap. Each is closed by the
//! server, while well-behaved clients are served before, during and after.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod probe;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use probe::{Probe, channel, check, say, start};
use quartet_e2e::{DEADLINE, grpc::within};
use quartet_proto::transform::v1::transform_service_client::TransformServiceClient;
use quartet_runtime::{RunningServer, ServerOptions, ServingStatus};
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    time::{Instant, timeout},
};
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

/// The HTTP/2 client connection preface (RFC 9113, section 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The handshake timeout the tests configure: long enough that a connection
/// closed sooner was not closed by it, short enough to wait for.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(300);
/// How long a server may take to close a connection it should close, timer
/// and scheduling slack included; shorter than the 10s fixed TLS handshake
/// deadline that came before the handshake timeout.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

fn handshake_timeout(timeout: Duration) -> ServerOptions {
    let mut options = ServerOptions::default();
    options.limits.http2_handshake_timeout = timeout;
    options
}

/// Reads until the server closes `stream` (a read returns 0 or fails) and
/// returns how long that took from `since`; panics if it is still open after
/// [`CLOSE_WITHIN`].
async fn closed_by_server(stream: &mut (impl AsyncRead + Unpin), since: Instant) -> Duration {
    let mut scratch = [0_u8; 1024];
    timeout(CLOSE_WITHIN, async {
        // Whatever the server sent before closing does not matter here.
        while let Ok(1..) = stream.read(&mut scratch).await {}
    })
    .await
    .expect("the server left the connection open");
    since.elapsed()
}

/// Connects to `addr`, sends `first_bytes`, and asserts the server closes the
/// connection once the handshake timeout has passed, not before.
async fn closed_after_the_handshake_timeout(addr: SocketAddr, first_bytes: &[u8]) {
    let started = Instant::now();
    let mut connection = TcpStream::connect(addr).await.unwrap();
    connection.write_all(first_bytes).await.unwrap();
    let open_for = closed_by_server(&mut connection, started).await;
    assert!(open_for >= HANDSHAKE_TIMEOUT, "closed after {open_for:?}");
}

async fn health_is_serving(server: &RunningServer) {
    let mut health = HealthClient::new(channel(server).await);
    assert_eq!(
        check(&mut health, "").await.unwrap(),
        ServingStatus::Serving
    );
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_handshake_timeout() {
    let server = start(handshake_timeout(HANDSHAKE_TIMEOUT), Probe::default()).await;
    health_is_serving(&server).await;
    closed_after_the_handshake_timeout(server.local_addr(), b"").await;
    health_is_serving(&server).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn half_a_preface_is_closed_after_the_handshake_timeout() {
    let server = start(handshake_timeout(HANDSHAKE_TIMEOUT), Probe::default()).await;
    closed_after_the_handshake_timeout(server.local_addr(), &PREFACE[..PREFACE.len() / 2]).await;
    health_is_serving(&server).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_connection_that_does_not_speak_http2_is_closed_at_once() {
    // A deadline far beyond the wait: only the wrong bytes can close these.
    let server = start(handshake_timeout(Duration::from_secs(60)), Probe::default()).await;

    // Shorter than the preface, and then a whole HTTP/1.1 request.
    for garbage in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let started = Instant::now();
        let mut stranger = TcpStream::connect(server.local_addr()).await.unwrap();
        stranger.write_all(garbage).await.unwrap();
        closed_by_server(&mut stranger, started).await;
    }

    health_is_serving(&server).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_health_port_closes_silent_connections_too() {
    let mut options = handshake_timeout(HANDSHAKE_TIMEOUT);
    options.health_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = start(options, Probe::default()).await;
    let health_addr = server.health_addr().unwrap();
    closed_after_the_handshake_timeout(health_addr, b"").await;

    let channel = Channel::from_shared(format!("http://{health_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert_eq!(
        check(&mut HealthClient::new(channel), "").await.unwrap(),
        ServingStatus::Serving
    );
    server.stop().await.unwrap();
}

/// A server with a self-signed certificate for `localhost`, and a client
/// configuration that trusts it.
mod tls {
    use super::*;
    use rustls::{ClientConfig, RootCertStore, pki_types::CertificateDer};

    pub(super) fn options(dir: &std::path::Path) -> (ServerOptions, Arc<ClientConfig>) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(dir.join("server.crt"), certified.cert.pem()).unwrap();
        std::fs::write(
            dir.join("server.key"),
            certified.signing_key.serialize_pem(),
        )
        .unwrap();
        let mut options = handshake_timeout(HANDSHAKE_TIMEOUT);
        options.tls.tls_cert = Some(dir.join("server.crt"));
        options.tls.tls_key = Some(dir.join("server.key"));

        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(certified.cert.der().to_vec()))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (options, Arc::new(client))
    }

    #[tokio::test]
    async fn the_handshake_timeout_covers_the_tls_handshake_and_the_preface_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (options, client) = options(dir.path());
        let server = start(options, Probe::default()).await;
        let addr: SocketAddr = server.local_addr();

        // No ClientHello at all.
        let started = Instant::now();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let open_for = closed_by_server(&mut silent, started).await;
        assert!(open_for >= HANDSHAKE_TIMEOUT, "closed after {open_for:?}");

        // A finished TLS handshake, then nothing: the same deadline still runs.
        let started = Instant::now();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut quiet = tokio_rustls::TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .unwrap();
        let open_for = closed_by_server(&mut quiet, started).await;
        assert!(open_for >= HANDSHAKE_TIMEOUT, "closed after {open_for:?}");

        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn past_max_connections_new_ones_are_closed_at_once_and_open_ones_carry_on() {
    let mut options = handshake_timeout(Duration::from_secs(60));
    options.limits.max_connections = 3;
    let probe = Probe::default();
    let server = start(options, probe.clone()).await;

    // One real client in the middle of a call, and two silent connections that
    // still count while in their handshake.
    let open_channel = channel(&server).await;
    let mut waiting = TransformServiceClient::new(open_channel.clone());
    let held_call = tokio::spawn(async move { waiting.transform(say("wait")).await });
    probe.arrivals(1).await;
    let first_silent = TcpStream::connect(server.local_addr()).await.unwrap();
    let _second_silent = TcpStream::connect(server.local_addr()).await.unwrap();

    // The server accepts in order, so this one finds every slot taken; it is
    // closed well before any handshake deadline.
    let started = Instant::now();
    let mut fourth = TcpStream::connect(server.local_addr()).await.unwrap();
    closed_by_server(&mut fourth, started).await;

    // The open connection's calls are untouched.
    let mut client = TransformServiceClient::new(open_channel.clone());
    let answer = within(client.transform(say("still served"))).await.unwrap();
    assert_eq!(answer.into_inner().text, "still served");
    check(&mut HealthClient::new(open_channel), "")
        .await
        .unwrap();
    probe.release.notify_one();
    let held = within(held_call).await.unwrap();
    assert_eq!(held.unwrap().into_inner().text, "wait");

    // Once a connection goes away its slot is free again; the server learns of
    // it asynchronously, so keep trying until a new client is served.
    drop(first_silent);
    let newcomer = timeout(DEADLINE, async {
        loop {
            if let Ok(channel) = Channel::from_shared(server.url()).unwrap().connect().await {
                let mut health = HealthClient::new(channel);
                if check(&mut health, "").await.is_ok() {
                    return;
                }
            }
            // A pause between tries, not a synchronisation: success ends it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(newcomer.is_ok(), "a freed slot was never reused");
    server.stop().await.unwrap();
}
