//! The `quartet-gateway` binary as deployed: its announce lines, a health
//! service for probes, and a clean exit on SIGTERM.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use quartet_e2e::{DEADLINE, ServerProcess, Signal};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::TcpStream,
    process::Command,
    time::timeout,
};

#[tokio::test]
async fn the_binary_announces_its_listeners_answers_and_exits_zero_on_sigterm() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quartet-gateway"));
    command
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
            "--web-listen",
            "off",
        ])
        // Nothing listens here: the gateway must start anyway and answer ERR.
        .args([
            "--transform-addr",
            "http://127.0.0.1:9",
            "--upstream-timeout",
            "2s",
        ]);
    let mut gateway = ServerProcess::start(command, &["gateway", "gateway transform"])
        .await
        .unwrap();

    // The health service answers like any Quartet server's.
    let channel = tonic::transport::Channel::from_shared(gateway.url("gateway").unwrap())
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

    let stream = TcpStream::connect(gateway.addr("gateway transform").unwrap())
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

    gateway.signal(Signal::SIGTERM).unwrap();
    assert_eq!(gateway.exit_code().await.unwrap(), Some(0));
}
