//! Each transform connection carries its lines on one `TransformStream`:
//! opened at its first line, given back when idle past the budget, and reopened
//! after an error, with the lines a broken stream left unanswered sent again.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gateway_harness;

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::{Stream, StreamExt as _};
use gateway_harness::{
    LineClient, Services, gateway, gateway_with_metrics, paste, start, until_sample,
};
use quartet_gateway::{GatewayOptions, Protocol, UpstreamOptions};
use quartet_proto::transform::v1::{
    TransformRequest, TransformResponse,
    transform_service_server::{TransformService, TransformServiceServer},
};
use quartet_runtime::Metrics;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

const STREAM_CALLS: &str = r#"grpc_server_handled_total{grpc_service="quartet.transform.v1.TransformService",grpc_method="TransformStream",grpc_code="OK"}"#;
const UNARY_CALLS: &str = r#"grpc_server_handled_total{grpc_service="quartet.transform.v1.TransformService",grpc_method="Transform""#;

#[tokio::test]
async fn a_connection_carries_all_its_lines_on_one_stream() {
    let (services, gateway) = start(GatewayOptions::ephemeral()).await;
    let mut user = LineClient::connect_to(&gateway, Protocol::Transform).await;

    let pasted = paste(500, |i| format!("UPPER línea {i}"));
    user.send_bytes(pasted.as_bytes()).await;
    for i in 0..500 {
        assert_eq!(user.line().await, format!("LÍNEA {i}"));
    }
    for i in 0..20 {
        assert_eq!(
            user.ask(&format!("lower UNO {i}")).await,
            format!("uno {i}")
        );
    }
    assert_eq!(user.ask("QUIT").await, "OK bye");

    // The stream ends with the connection: one call, no unary ones.
    until_sample(services.metrics(), STREAM_CALLS, 1.0).await;
    assert!(
        !services.metrics().encode().contains(UNARY_CALLS),
        "no line may take a unary call"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn idle_connections_give_their_streams_back_past_the_budget() {
    let services = Services::start().await;
    let metrics = Metrics::new();
    let options = GatewayOptions {
        max_idle_streams: 1,
        ..GatewayOptions::ephemeral()
    };
    let gateway = gateway_with_metrics(options, &services.upstream_options(), &metrics).await;
    let mut users = Vec::new();
    for i in 0..3 {
        let mut user = LineClient::connect_to(&gateway, Protocol::Transform).await;
        assert_eq!(user.ask(&format!("UPPER u{i}")).await, format!("U{i}"));
        users.push(user);
    }
    // The first keeps its stream; the others gave theirs back once answered.
    until_sample(&metrics, "quartet_gateway_transform_streams", 1.0).await;
    for (i, user) in users.iter_mut().enumerate() {
        assert_eq!(user.ask(&format!("REVERSE ab{i}")).await, format!("{i}ba"));
    }
    drop(users);
    until_sample(&metrics, "quartet_gateway_transform_streams", 0.0).await;
    gateway.stop().await;
}

/// A transform service whose first `broken` streams, after answering
/// `answers` requests, fail with `failure`, or go silent without ending when
/// it is `None`; later streams answer everything.
struct Flaky {
    broken: usize,
    answers: usize,
    failure: Option<Status>,
    streams: AtomicUsize,
}

type Answers = Pin<Box<dyn Stream<Item = Result<TransformResponse, Status>> + Send>>;

#[tonic::async_trait]
impl TransformService for Flaky {
    async fn transform(
        &self,
        _: Request<TransformRequest>,
    ) -> Result<Response<TransformResponse>, Status> {
        Err(Status::unimplemented("the gateway must use the stream"))
    }

    type TransformStreamStream = Answers;

    async fn transform_stream(
        &self,
        request: Request<Streaming<TransformRequest>>,
    ) -> Result<Response<Answers>, Status> {
        let broken = self.streams.fetch_add(1, Ordering::SeqCst) < self.broken;
        let limit = if broken { self.answers } else { usize::MAX };
        let answers = request.into_inner().take(limit).map(|request| {
            request.map(|request| TransformResponse {
                text: request.text.to_uppercase(),
            })
        });
        let end: Answers = match (broken, self.failure.clone()) {
            (false, _) => Box::pin(futures_util::stream::empty()),
            (true, Some(failure)) => Box::pin(futures_util::stream::iter([Err(failure)])),
            (true, None) => Box::pin(futures_util::stream::pending()),
        };
        Ok(Response::new(Box::pin(answers.chain(end))))
    }
}

/// Serves `service` on a port of its own; returns its URL.
async fn serve(service: Flaky) -> (String, Arc<Flaky>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let service = Arc::new(service);
    let server = TransformServiceServer::from_arc(service.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (url, service)
}

async fn gateway_for(url: String, timeout: Duration) -> quartet_gateway::RunningGateway {
    let upstreams = UpstreamOptions {
        transform_addr: url,
        ..UpstreamOptions::default()
    };
    let options = GatewayOptions {
        upstream_timeout: timeout,
        ..GatewayOptions::ephemeral()
    };
    gateway(options, &upstreams).await
}

fn numbered(count: usize) -> String {
    paste(count, |i| format!("UPPER n{i}"))
}

#[tokio::test]
async fn lines_a_draining_server_left_unanswered_are_sent_again() {
    let (url, service) = serve(Flaky {
        broken: 1,
        answers: 3,
        failure: Some(Status::unavailable(
            "server is shutting down; retry unanswered requests",
        )),
        streams: AtomicUsize::new(0),
    })
    .await;
    let gateway = gateway_for(url, Duration::from_secs(10)).await;
    let mut user = LineClient::connect_to(&gateway, Protocol::Transform).await;
    user.send_bytes(numbered(10).as_bytes()).await;
    for i in 0..10 {
        assert_eq!(user.line().await, format!("N{i}"));
    }
    assert_eq!(service.streams.load(Ordering::SeqCst), 2);
    gateway.stop().await;
}

#[tokio::test]
async fn a_line_whose_own_call_failed_gets_the_error_and_the_rest_go_on() {
    let (url, _) = serve(Flaky {
        broken: 1,
        answers: 2,
        failure: Some(Status::resource_exhausted("result too large")),
        streams: AtomicUsize::new(0),
    })
    .await;
    let gateway = gateway_for(url, Duration::from_secs(10)).await;
    let mut user = LineClient::connect_to(&gateway, Protocol::Transform).await;
    user.send_bytes(numbered(5).as_bytes()).await;
    assert_eq!(user.line().await, "N0");
    assert_eq!(user.line().await, "N1");
    assert_eq!(user.line().await, "ERR RESOURCE_EXHAUSTED result too large");
    assert_eq!(user.line().await, "N3");
    assert_eq!(user.line().await, "N4");
    gateway.stop().await;
}

#[tokio::test]
async fn a_service_that_keeps_failing_gets_each_line_an_error_not_a_loop() {
    let (url, service) = serve(Flaky {
        broken: usize::MAX,
        answers: 0,
        failure: Some(Status::unavailable("always going away")),
        streams: AtomicUsize::new(0),
    })
    .await;
    let gateway = gateway_for(url, Duration::from_secs(10)).await;
    let mut user = LineClient::connect_to(&gateway, Protocol::Transform).await;
    user.send_bytes(numbered(3).as_bytes()).await;
    for _ in 0..3 {
        assert_eq!(user.line().await, "ERR UNAVAILABLE always going away");
    }
    assert_eq!(user.ask("HELP").await, "OK 5");
    // Each line was sent at most twice.
    assert!(service.streams.load(Ordering::SeqCst) <= 2 * 3);
    gateway.stop().await;
}

#[tokio::test]
async fn a_stream_that_stops_answering_times_out_and_the_next_line_works() {
    let (url, _) = serve(Flaky {
        broken: 1,
        answers: 0,
        failure: None,
        streams: AtomicUsize::new(0),
    })
    .await;
    let gateway = gateway_for(url, Duration::from_millis(300)).await;
    let mut user = LineClient::connect_to(&gateway, Protocol::Transform).await;
    user.send_bytes(b"UPPER a\nUPPER b\n").await;
    for _ in 0..2 {
        assert_eq!(
            user.line().await,
            "ERR DEADLINE_EXCEEDED the transform service did not answer within 300ms"
        );
    }
    assert_eq!(user.ask("UPPER c").await, "C");
    gateway.stop().await;
}
