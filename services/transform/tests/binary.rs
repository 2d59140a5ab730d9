//! The `quartet-transform` binary as deployed: a real process, its announce
//! line, its gRPC port, and what SIGTERM does to it.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use quartet_e2e::{
    ServerProcess, Signal, assert_usage_error, exit_of,
    grpc::{failure, next, open_stream, watch_health},
};
use quartet_proto::transform::v1::{
    Operation, TransformRequest, transform_service_client::TransformServiceClient,
};
use tokio::process::Command;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

fn transform() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quartet-transform"))
}

async fn start() -> ServerProcess {
    let mut command = transform();
    command.args(["--listen", "127.0.0.1:0"]);
    ServerProcess::start(command, &["transform"]).await.unwrap()
}

/// `text` upper-cased by the server, over one unary call.
async fn upper(
    client: &mut TransformServiceClient<tonic::transport::Channel>,
    text: &str,
) -> String {
    let request = TransformRequest {
        operation: Operation::Upper.into(),
        text: text.into(),
    };
    client.transform(request).await.unwrap().into_inner().text
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
    assert_eq!(upper(&mut client, "hola").await, "HOLA");

    let mut watch = watch_health(channel, "").await;
    assert_eq!(next(&mut watch).await.status(), ServingStatus::Serving);

    let (sender, mut answers) = open_stream(|requests| client.transform_stream(requests)).await;
    sender
        .send(TransformRequest {
            operation: Operation::Reverse.into(),
            text: "abc".into(),
        })
        .await
        .unwrap();
    assert_eq!(next(&mut answers).await.text, "cba");

    server.signal(Signal::SIGTERM).unwrap();

    assert_eq!(next(&mut watch).await.status(), ServingStatus::NotServing);
    assert_eq!(failure(&mut answers).await.code(), Code::Unavailable);

    assert_eq!(server.exit_code().await.unwrap(), Some(0));
    drop(sender);
}

#[tokio::test]
async fn bad_flags_exit_with_usage_code_two() {
    assert_usage_error(
        transform().args(["--request-timeout", "soon"]),
        "--request-timeout",
    )
    .await;
}

#[tokio::test]
async fn a_taken_port_is_reported_and_exits_non_zero() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let exit = exit_of(transform().args(["--listen", &addr]))
        .await
        .unwrap();
    assert_eq!(exit.code, Some(1));
    let refusal = format!("cannot listen on {addr}");
    assert!(exit.stderr.contains(&refusal), "{exit:?}");
}

#[tokio::test]
async fn connections_are_served_by_workers_the_first_clients_start() {
    let mut server = start().await;
    assert_eq!(
        server.threads_named("transform-"),
        0,
        "an idle server runs no connection worker"
    );
    let mut first = TransformServiceClient::connect(server.url("transform").unwrap())
        .await
        .unwrap();
    assert_eq!(upper(&mut first, "uno").await, "UNO");
    assert_eq!(server.threads_named("transform-"), 1);
    let mut second = TransformServiceClient::connect(server.url("transform").unwrap())
        .await
        .unwrap();
    assert_eq!(upper(&mut second, "dos").await, "DOS");
    // Two CPUs or more: a second open connection gets a worker of its own.
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    assert_eq!(server.threads_named("transform-"), cpus.min(2));

    let mut none = transform();
    none.args(["--listen", "127.0.0.1:0", "--connection-workers", "0"]);
    let mut unworked = ServerProcess::start(none, &["transform"]).await.unwrap();
    let mut client = TransformServiceClient::connect(unworked.url("transform").unwrap())
        .await
        .unwrap();
    assert_eq!(upper(&mut client, "sin").await, "SIN");
    assert_eq!(unworked.threads_named("transform-"), 0);
    for process in [&mut server, &mut unworked] {
        process.signal(Signal::SIGTERM).unwrap();
        assert_eq!(process.exit_code().await.unwrap(), Some(0));
    }
}

#[tokio::test]
async fn quartet_runtime_current_thread_serves_and_a_typo_is_refused() {
    let mut command = transform();
    command
        .args(["--listen", "127.0.0.1:0"])
        .env("QUARTET_RUNTIME", "current-thread");
    let mut server = ServerProcess::start(command, &["transform"]).await.unwrap();
    let mut client = TransformServiceClient::connect(server.url("transform").unwrap())
        .await
        .unwrap();
    assert_eq!(upper(&mut client, "una hebra").await, "UNA HEBRA");
    assert_eq!(
        server.threads_named("transform-"),
        0,
        "one thread means no connection workers"
    );
    server.signal(Signal::SIGTERM).unwrap();
    assert_eq!(server.exit_code().await.unwrap(), Some(0));

    let refused = exit_of(
        transform()
            .args(["--listen", "127.0.0.1:0"])
            .env("QUARTET_RUNTIME", "single"),
    )
    .await
    .unwrap();
    assert_ne!(refused.code, Some(0), "{refused:?}");
    assert!(
        refused.stderr.contains("QUARTET_RUNTIME=single"),
        "the refusal names the variable: {refused:?}"
    );
}
