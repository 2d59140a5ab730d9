//! The `quartet-chat` binary as deployed: a real process, its announce line,
//! and what SIGTERM does to a member's open stream.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod member;

use member::{DEADLINE, Member, seqs};
use quartet_e2e::{ServerProcess, Signal};
use quartet_proto::chat::v1::server_event::Event;
use tokio::{process::Command, time::timeout};
use tonic::Code;

/// Starts the binary with `flags` on a free port.
async fn start(flags: &[&str]) -> ServerProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quartet-chat"));
    command
        .args(["--listen", "127.0.0.1:0"])
        .args(flags)
        .env_remove("QUARTET_NATS_URL");
    ServerProcess::start(command, &["chat"]).await.unwrap()
}

#[tokio::test]
async fn sigterm_sends_going_away_ends_streams_unavailable_and_exits_zero() {
    let mut server = start(&[]).await;
    let mut ana = Member::enter(&server.url("chat").unwrap(), "lobby", "ana").await;
    ana.say("hola").await;
    assert_eq!(ana.lines(1).await[0].text, "hola");

    server.signal(Signal::SIGTERM).unwrap();

    match ana.next().await {
        Event::GoingAway(going) => assert_eq!(going.reason, "server shutting down"),
        other => panic!("expected GoingAway, got {other:?}"),
    }
    assert_eq!(ana.end_status().await.code(), Code::Unavailable);
    assert_eq!(server.exit_code().await.unwrap(), Some(0));
}

#[tokio::test]
async fn bad_flags_exit_with_usage_code_two() {
    let output = Command::new(env!("CARGO_BIN_EXE_quartet-chat"))
        .args(["--history", "many"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--history"));
}

#[tokio::test]
async fn an_unreachable_nats_is_reported_and_exits_non_zero() {
    // A port nobody listens on: bound, then released.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let output = timeout(
        DEADLINE,
        Command::new(env!("CARGO_BIN_EXE_quartet-chat"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--nats-url",
                &format!("nats://{addr}"),
            ])
            .output(),
    )
    .await
    .expect("hung on an unreachable nats")
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

/// Starts the binary as one replica on the NATS at `nats`, under `prefix`.
async fn start_replica(nats: &str, prefix: &str) -> ServerProcess {
    start(&[
        "--nats-url",
        nats,
        "--nats-prefix",
        prefix,
        "--rate-per-second",
        "1000",
        "--rate-burst",
        "1000",
    ])
    .await
}

#[tokio::test]
async fn two_server_processes_on_one_nats_carry_one_conversation() {
    const EACH: usize = 25;
    let Some(nats) = member::nats_url() else {
        return;
    };
    let prefix = member::Prefix::new(&nats);
    let mut first = start_replica(&nats, &prefix.name).await;
    let mut second = start_replica(&nats, &prefix.name).await;
    let (first_url, second_url) = (first.url("chat").unwrap(), second.url("chat").unwrap());

    let mut ana = Member::enter(&first_url, "plaza", "ana").await;
    let mut bo = Member::join(&second_url, "plaza", "bo", None).await;
    assert_eq!(bo.joined().await.members, ["ana", "bo"]);
    assert_eq!(ana.presence_of("bo").await, None);

    let (on_first, on_second) = member::converse(&mut ana, &mut bo, EACH).await;
    assert_eq!(on_first, on_second, "one order on both processes");
    assert_eq!(seqs(&on_first), (1..=2 * EACH as u64).collect::<Vec<_>>());

    // The first process shuts down: its member is told, the other sees it go.
    first.signal(Signal::SIGTERM).unwrap();
    assert!(matches!(ana.next().await, Event::GoingAway(_)));
    assert_eq!(
        bo.presence_of("ana").await,
        Some(quartet_proto::chat::v1::LeaveReason::ServerShutdown)
    );
    assert_eq!(first.exit_code().await.unwrap(), Some(0));

    // ana resumes on the second process from where she stopped.
    drop(ana);
    let mut ana = Member::join(&second_url, "plaza", "ana", Some(2 * EACH as u64)).await;
    assert_eq!(ana.joined().await.last_seq, 2 * EACH as u64);
    bo.say("welcome back").await;
    let next = ana.lines(1).await;
    assert_eq!(
        (next[0].seq, next[0].text.as_str()),
        (2 * EACH as u64 + 1, "welcome back")
    );

    drop((ana, bo));
    second.signal(Signal::SIGTERM).unwrap();
    assert_eq!(second.exit_code().await.unwrap(), Some(0));
}
