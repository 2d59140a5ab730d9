//! The `quartet-transform` binary as deployed: a real process, its announce
//! line, its gRPC port, and what SIGTERM does to it.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use quartet_e2e::{DEADLINE, ServerProcess, Signal};
use quartet_proto::transform::v1::{
    Operation, TransformRequest, transform_service_client::TransformServiceClient,
};
use tokio::{process::Command, time::timeout};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

async fn start() -> ServerProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quartet-transform"));
    command.args(["--listen", "127.0.0.1:0"]);
    ServerProcess::start(command, &["transform"]).await.unwrap()
}

#[tokio::test]
async fn sigterm_turns_health_not_serving_closes_streams_and_exits_zero() {
    let mut server = start().await;
    let url = server.url("transform").unwrap();
    let channel = tonic::transport::Channel::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = TransformServiceClient::new(channel.clone());
    let mut health = HealthClient::new(channel);

    let answer = client
        .transform(TransformRequest {
            operation: Operation::Upper.into(),
            text: "hola".into(),
        })
        .await
        .unwrap();
    assert_eq!(answer.into_inner().text, "HOLA");

    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let serving = timeout(DEADLINE, watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(serving.status(), ServingStatus::Serving);

    let (requests, receiver) = tokio::sync::mpsc::channel(1);
    let mut answers = client
        .transform_stream(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .unwrap()
        .into_inner();
    requests
        .send(TransformRequest {
            operation: Operation::Reverse.into(),
            text: "abc".into(),
        })
        .await
        .unwrap();
    assert_eq!(answers.message().await.unwrap().unwrap().text, "cba");

    server.signal(Signal::SIGTERM).unwrap();

    let not_serving = timeout(DEADLINE, watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(not_serving.status(), ServingStatus::NotServing);
    let end = timeout(DEADLINE, answers.message())
        .await
        .expect("stream kept open");
    assert_eq!(end.unwrap_err().code(), Code::Unavailable);

    assert_eq!(server.exit_code().await.unwrap(), Some(0));
    drop(requests);
}

#[tokio::test]
async fn bad_flags_exit_with_usage_code_two() {
    let output = Command::new(env!("CARGO_BIN_EXE_quartet-transform"))
        .args(["--request-timeout", "soon"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--request-timeout"));
}

#[tokio::test]
async fn a_taken_port_is_reported_and_exits_non_zero() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_quartet-transform"))
        .args(["--listen", &addr])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}
