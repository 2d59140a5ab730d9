//! Overload protection and metrics: refusals are fast and counted, health keeps
//! answering, a reset flood is cut off, and `/metrics` tells the story.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod probe;

use std::time::{Duration, Instant};

use probe::{Probe, channel, check, echo, say, start};
use quartet_e2e::grpc::within;
use quartet_proto::transform::v1::transform_service_client::TransformServiceClient;
use quartet_runtime::{ServerOptions, ServingStatus};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test]
async fn calls_past_the_in_flight_limit_are_refused_at_once_and_health_still_answers() {
    const LIMIT: u32 = 4;
    let mut options = ServerOptions::default();
    options.limits.max_concurrent_calls = LIMIT as usize;
    let probe = Probe::default();
    let server = start(options, probe.clone()).await;
    let channel = channel(&server).await;

    let mut held = Vec::new();
    for _ in 0..LIMIT {
        let mut client = TransformServiceClient::new(channel.clone());
        held.push(tokio::spawn(
            async move { client.transform(say("wait")).await },
        ));
    }
    probe.arrivals(LIMIT).await;

    let mut client = TransformServiceClient::new(channel.clone());
    for _ in 0..20 {
        let started = Instant::now();
        let refused = within(client.transform(say("one more"))).await.unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "refusals must not queue"
        );
    }
    let mut health = HealthClient::new(channel);
    assert_eq!(
        check(&mut health, "").await.unwrap(),
        ServingStatus::Serving
    );

    probe.release.notify_waiters();
    for call in held {
        within(call).await.unwrap().unwrap();
    }
    assert_eq!(echo(&mut client, "room again").await.unwrap(), "room again");
    server.stop().await.unwrap();
}

/// An HTTP/2 frame, as bytes: 9-byte header, then the payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut bytes = vec![len[1], len[2], len[3], kind, flags];
    bytes.extend_from_slice(&stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// A HEADERS block for a gRPC call, HPACK-encoded by hand with the static table
/// and literals only, so it needs no encoder state.
fn request_headers() -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    for (prefix, value) in [
        (
            &[0x04][..],
            "/quartet.transform.v1.TransformService/Transform",
        ), // :path
        (&[0x01][..], "localhost"),              // :authority
        (&[0x0f, 0x10][..], "application/grpc"), // content-type
    ] {
        block.extend_from_slice(prefix);
        block.push(u8::try_from(value.len()).unwrap());
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// A client that opens streams and resets them at once, faster than the server
/// accepts them (CVE-2023-44487, "rapid reset"), is sent GOAWAY with
/// ENHANCE_YOUR_CALM instead of growing the server's queue; others carry on.
#[tokio::test]
async fn a_rapid_reset_flood_ends_in_goaway() {
    const HEADERS: u8 = 0x1;
    const RST_STREAM: u8 = 0x3;
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    const END_HEADERS: u8 = 0x4;
    const CANCEL: u32 = 0x8;
    const ENHANCE_YOUR_CALM: u32 = 0xb;

    let server = start(ServerOptions::default(), Probe::default()).await;
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut flood = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    flood.extend(frame(SETTINGS, 0, 0, &[]));
    let headers = request_headers();
    for stream in (1..2_000).step_by(2) {
        flood.extend(frame(HEADERS, END_HEADERS, stream, &headers));
        flood.extend(frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes()));
    }
    tcp.write_all(&flood).await.unwrap();

    // Read frames until GOAWAY.
    let goaway = within(async {
        let mut header = [0_u8; 9];
        loop {
            tcp.read_exact(&mut header)
                .await
                .expect("connection closed without GOAWAY");
            let len =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let mut payload = vec![0; len];
            tcp.read_exact(&mut payload).await.unwrap();
            if header[3] == GOAWAY {
                return u32::from_be_bytes(payload[4..8].try_into().unwrap());
            }
        }
    })
    .await;
    assert_eq!(goaway, ENHANCE_YOUR_CALM);

    let mut client = TransformServiceClient::new(channel(&server).await);
    assert_eq!(echo(&mut client, "still fine").await.unwrap(), "still fine");
    server.stop().await.unwrap();
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    within(tcp.read_to_string(&mut response)).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[tokio::test]
async fn metrics_count_calls_by_method_and_code() {
    let mut options = ServerOptions::default();
    options.limits.max_concurrent_calls = 1;
    let probe = Probe::default();
    let server = start(options, probe.clone()).await;
    let metrics = server.metrics().clone();
    let channel = channel(&server).await;
    let mut client = TransformServiceClient::new(channel.clone());
    client.transform(say("one")).await.unwrap();
    client.transform(say("two")).await.unwrap();
    client.transform(say("bad")).await.unwrap_err();
    // One call held open, and one refused for it.
    let mut holder = TransformServiceClient::new(channel);
    let held = tokio::spawn(async move { holder.transform(say("wait")).await });
    probe.arrivals(1).await;
    client.transform(say("refused")).await.unwrap_err();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = metrics.serve(listener, server.shutdown());
    let text = scrape(endpoint).await;
    let method = r#"grpc_service="quartet.transform.v1.TransformService",grpc_method="Transform""#;
    for expected in [
        format!("grpc_server_handled_total{{{method},grpc_code=\"OK\"}} 2"),
        format!("grpc_server_handled_total{{{method},grpc_code=\"INVALID_ARGUMENT\"}} 1"),
        format!("grpc_server_handled_total{{{method},grpc_code=\"RESOURCE_EXHAUSTED\"}} 1"),
        format!("grpc_server_handling_seconds_count{{{method}}} 4"),
        format!("grpc_server_in_flight{{{method}}} 1"),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in\n{text}");
    }

    probe.release.notify_waiters();
    held.await.unwrap().unwrap();
    let text = scrape(endpoint).await;
    assert!(
        text.contains(&format!("grpc_server_in_flight{{{method}}} 0")),
        "{text}"
    );
    server.stop().await.unwrap();
}
