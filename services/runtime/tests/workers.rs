//! Connection workers over real sockets: each connection is served on one
//! worker thread from its first call to its last, concurrent connections are
//! spread over the workers, an idle server runs none, and the drain and the
//! connection cap hold as they do without workers.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod probe;

use std::{collections::BTreeSet, time::Duration};

use probe::{Probe, channel, echo, start_named};
use quartet_e2e::grpc::within;
use quartet_proto::transform::v1::transform_service_client::TransformServiceClient;
use quartet_runtime::{RunningServer, ServerOptions};
use tokio::{io::AsyncReadExt as _, net::TcpStream};
use tonic::{Code, transport::Channel};

fn with_workers(count: usize) -> ServerOptions {
    ServerOptions {
        connection_workers: Some(count),
        ..ServerOptions::default()
    }
}

/// A client on a connection of its own.
async fn client(server: &RunningServer) -> TransformServiceClient<Channel> {
    TransformServiceClient::new(channel(server).await)
}

/// The threads of this process whose name starts with `prefix` (Linux keeps
/// each thread's name in `/proc/self/task/*/comm`).
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[tokio::test]
async fn each_connection_stays_on_one_worker_and_concurrent_ones_are_spread() {
    let server = start_named("spread", with_workers(2), Probe::default()).await;
    let mut first = client(&server).await;
    let mut second = client(&server).await;
    let mut seen = BTreeSet::new();
    for client in [&mut first, &mut second] {
        let thread = echo(client, "thread").await.unwrap();
        for _ in 0..5 {
            assert_eq!(
                echo(client, "thread").await.unwrap(),
                thread,
                "a connection moved"
            );
        }
        seen.insert(thread);
    }
    let expected: BTreeSet<String> = ["spread-0".into(), "spread-1".into()].into();
    assert_eq!(seen, expected, "two open connections, two workers");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_idle_server_starts_no_worker_and_a_lone_client_wakes_one() {
    let server = start_named("idle", with_workers(4), Probe::default()).await;
    assert_eq!(threads_named("idle-"), 0);
    let mut client = client(&server).await;
    assert_eq!(echo(&mut client, "thread").await.unwrap(), "idle-0");
    assert_eq!(threads_named("idle-"), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_drain_lets_calls_on_every_worker_finish() {
    let probe = Probe::default();
    let server = start_named("drain", with_workers(2), probe.clone()).await;
    let mut calls = Vec::new();
    for _ in 0..2 {
        let mut client = client(&server).await;
        calls.push(tokio::spawn(async move { echo(&mut client, "wait").await }));
    }
    probe.arrivals(2).await;
    server.shutdown().request();
    probe.release.notify_waiters();
    for call in calls {
        assert_eq!(within(call).await.unwrap().unwrap(), "wait");
    }
    within(server.stopped()).await.unwrap();
    // The workers end with the server (their threads exit just after it
    // stops waiting for them).
    within(async {
        while threads_named("drain-") > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_drain_timeout_cuts_calls_still_open_on_workers() {
    let mut options = with_workers(2);
    options.shutdown.drain_timeout = Duration::from_millis(200);
    let probe = Probe::default();
    let server = start_named("cut", options, probe.clone()).await;
    let mut client = client(&server).await;
    // Never released: only the cut ends it.
    let hanging = tokio::spawn(async move { echo(&mut client, "wait").await });
    probe.arrivals(1).await;
    within(server.stop()).await.unwrap();
    let cut = within(hanging).await.unwrap().unwrap_err();
    assert!(
        matches!(
            cut.code(),
            Code::Unavailable | Code::Cancelled | Code::Unknown
        ),
        "{cut:?}"
    );
}

#[tokio::test]
async fn the_connection_cap_holds_across_workers() {
    let mut options = with_workers(2);
    options.limits.max_connections = 1;
    let server = start_named("capped", options, Probe::default()).await;
    let mut admitted = client(&server).await;
    assert_eq!(echo(&mut admitted, "hello").await.unwrap(), "hello");
    // The one slot is taken: the next connection is closed at once, unread.
    let mut refused = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut scratch = [0_u8; 64];
    let read = within(refused.read(&mut scratch)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_eq!(echo(&mut admitted, "still").await.unwrap(), "still");
    server.stop().await.unwrap();
}
