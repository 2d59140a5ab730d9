//! The `quartet-gateway` binary as deployed: its announce lines, a health
//! service for probes, and a clean exit on SIGTERM.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::HashMap, process::Stdio, time::Duration};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::TcpStream,
    process::Command,
    time::timeout,
};

const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_binary_announces_its_listeners_answers_and_exits_zero_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quartet-gateway"))
        .args(["--listen", "127.0.0.1:0"])
        .args([
            "--transform-text-listen",
            "127.0.0.1:0",
            "--database-text-listen",
            "off",
        ])
        .args([
            "--weather-text-listen",
            "off",
            "--chat-text-listen",
            "off",
            "--chat-udp-listen",
            "off",
        ])
        // Nothing listens here: the gateway must start anyway and answer ERR.
        .args([
            "--transform-addr",
            "http://127.0.0.1:9",
            "--upstream-timeout",
            "2s",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut announced = HashMap::new();
    for _ in 0..2 {
        let line = timeout(DEADLINE, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let (what, addr) = line.rsplit_once(" listening on ").unwrap();
        announced.insert(what.to_owned(), addr.to_owned());
    }
    assert!(
        announced.contains_key("gateway"),
        "health server announced: {announced:?}"
    );

    // The health service answers like any Quartet server's.
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", announced["gateway"]))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let serving = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    let stream = TcpStream::connect(&announced["gateway transform"])
        .await
        .unwrap();
    let (read, mut write) = stream.into_split();
    write.write_all(b"UPPER nobody home\n").await.unwrap();
    let mut answers = BufReader::new(read).lines();
    let answer = timeout(DEADLINE, answers.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("ERR UNAVAILABLE "), "{answer}");

    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
    let status = timeout(DEADLINE, child.wait())
        .await
        .expect("no exit after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
