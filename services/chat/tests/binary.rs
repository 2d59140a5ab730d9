//! The `quartet-chat` binary as deployed: a real process, its announce line,
//! and what SIGTERM does to a member's open stream.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod member;

use std::process::Stdio;

use member::{DEADLINE, Member};
use nix::{sys::signal::Signal, unistd::Pid};
use quartet_proto::chat::v1::server_event::Event;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    time::timeout,
};
use tonic::Code;

async fn spawn_server() -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quartet-chat"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .env_remove("QUARTET_NATS_URL")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = timeout(DEADLINE, BufReader::new(stdout).lines().next_line())
        .await
        .expect("the server never announced itself")
        .unwrap()
        .unwrap();
    let addr = line
        .strip_prefix("chat listening on ")
        .unwrap_or_else(|| panic!("unexpected announce line {line:?}"));
    (child, format!("http://{addr}"))
}

#[tokio::test]
async fn sigterm_sends_going_away_ends_streams_unavailable_and_exits_zero() {
    let (mut child, url) = spawn_server().await;
    let mut ana = Member::join(&url, "lobby", "ana", None).await;
    ana.joined().await;
    ana.say("hola").await;
    assert_eq!(ana.lines(1).await[0].text, "hola");

    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();

    match ana.next().await {
        Event::GoingAway(going) => assert_eq!(going.reason, "server shutting down"),
        other => panic!("expected GoingAway, got {other:?}"),
    }
    assert_eq!(ana.end_status().await.code(), Code::Unavailable);
    let status = timeout(DEADLINE, child.wait())
        .await
        .expect("no exit after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
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
