//! The runtime over real sockets, with a probe service whose calls the tests
//! control: health, reflection, limits, timeouts, call tracing and the shutdown
//! sequence.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use quartet_e2e::grpc::{end, next, watch_health, within};
use quartet_proto::transform::v1::{
    transform_service_client::TransformServiceClient, transform_service_server::SERVICE_NAME,
};
use quartet_runtime::ServerOptions;
use tonic::{Code, transport::Channel};
use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};

mod probe;

use probe::{LogBuffer, Probe, channel, check, echo, open_echo_stream, say, start};

#[tokio::test]
async fn health_is_serving_overall_and_per_service_and_not_found_otherwise() {
    let server = start(ServerOptions::default(), Probe::default()).await;
    let mut health = HealthClient::new(channel(&server).await);

    assert_eq!(
        check(&mut health, "").await.unwrap(),
        ServingStatus::Serving
    );
    assert_eq!(
        check(&mut health, SERVICE_NAME).await.unwrap(),
        ServingStatus::Serving
    );
    let unknown = check(&mut health, "no.such.Service").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let long = check(&mut health, &"s".repeat(1 << 20)).await.unwrap_err();
    assert_eq!(long.code(), Code::NotFound);
    assert!(long.message().len() < 200, "{}", long.message());

    server.health().set(SERVICE_NAME, ServingStatus::NotServing);
    assert_eq!(
        check(&mut health, SERVICE_NAME).await.unwrap(),
        ServingStatus::NotServing
    );
    server.stop().await.unwrap();
}

mod reflection {
    use super::*;
    use tonic_reflection::pb::{v1, v1alpha};

    /// `list_services!(name, version)` defines `name`, the services a server's
    /// reflection of `version` lists: the two versions' generated types differ
    /// only in their module.
    macro_rules! list_services {
        ($name:ident, $version:ident) => {
            async fn $name(channel: Channel) -> BTreeSet<String> {
                use $version::{
                    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
                    server_reflection_request::MessageRequest,
                    server_reflection_response::MessageResponse,
                };
                let request = ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(MessageRequest::ListServices(String::new())),
                };
                let mut responses = ServerReflectionClient::new(channel)
                    .server_reflection_info(tokio_stream::once(request))
                    .await
                    .unwrap()
                    .into_inner();
                match next(&mut responses).await.message_response {
                    Some(MessageResponse::ListServicesResponse(list)) => list
                        .service
                        .into_iter()
                        .map(|service| service.name)
                        .collect(),
                    other => panic!("unexpected reflection answer {other:?}"),
                }
            }
        };
    }

    list_services!(services_v1, v1);
    list_services!(services_v1alpha, v1alpha);

    #[tokio::test]
    async fn both_versions_list_exactly_the_hosted_services() {
        let server = start(ServerOptions::default(), Probe::default()).await;
        let channel = channel(&server).await;

        let v1 = within(services_v1(channel.clone())).await;
        assert_eq!(
            v1,
            BTreeSet::from([
                SERVICE_NAME.to_owned(),
                "grpc.health.v1.Health".to_owned(),
                "grpc.reflection.v1.ServerReflection".to_owned(),
            ])
        );
        let v1alpha = within(services_v1alpha(channel)).await;
        assert!(v1alpha.contains(SERVICE_NAME), "{v1alpha:?}");
        assert!(
            v1alpha.contains("grpc.reflection.v1alpha.ServerReflection"),
            "{v1alpha:?}"
        );
        // The other Quartet services share the descriptor set but are not hosted here.
        assert!(
            !v1.iter().any(|name| name.contains("PeopleService")),
            "{v1:?}"
        );
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_call_slower_than_the_request_timeout_gets_deadline_exceeded() {
    let mut options = ServerOptions::default();
    options.limits.request_timeout = Duration::from_millis(200);
    let server = start(options, Probe::default()).await;
    let mut client = TransformServiceClient::new(channel(&server).await);

    let started = Instant::now();
    let status = within(client.transform(say("hang"))).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_turns_health_not_serving_while_calls_are_still_served() {
    let mut options = ServerOptions::default();
    options.shutdown.shutdown_delay = Duration::from_secs(2);
    let server = start(options, Probe::default()).await;
    let channel = channel(&server).await;
    let mut client = TransformServiceClient::new(channel.clone());

    let mut watch = watch_health(channel, "").await;
    assert_eq!(next(&mut watch).await.status(), ServingStatus::Serving);

    server.shutdown().request();
    assert_eq!(next(&mut watch).await.status(), ServingStatus::NotServing);
    // During the shutdown delay the server still answers, so load balancers have
    // time to stop routing to it without failing calls.
    let answer = within(client.transform(say("still here"))).await;
    assert_eq!(answer.unwrap().into_inner().text, "still here");

    // Draining ends the watch instead of letting it hold the server open.
    end(&mut watch).await;
    within(server.stopped()).await.unwrap();
}

#[tokio::test]
async fn watchers_see_not_serving_even_when_the_drain_follows_at_once() {
    // No shutdown delay: the drain starts right after health flips, and the
    // watch must still deliver NOT_SERVING before it ends.
    for _ in 0..20 {
        let server = start(ServerOptions::default(), Probe::default()).await;
        let mut watch = watch_health(channel(&server).await, SERVICE_NAME).await;
        assert_eq!(next(&mut watch).await.status(), ServingStatus::Serving);

        server.shutdown().request();
        assert_eq!(next(&mut watch).await.status(), ServingStatus::NotServing);
        end(&mut watch).await;
        within(server.stopped()).await.unwrap();
    }
}

#[tokio::test]
async fn an_in_flight_call_finishes_during_the_drain() {
    let probe = Probe::default();
    let server = start(ServerOptions::default(), probe.clone()).await;
    let mut client = TransformServiceClient::new(channel(&server).await);

    let call = tokio::spawn(async move { client.transform(say("wait")).await });
    probe.arrivals(1).await;

    let drain = server.shutdown().drain_signal();
    let health = server.health().clone();
    server.shutdown().request();
    let stopping = tokio::spawn(server.stopped());
    // Only once the server drains is the call released: a server that did not
    // wait for in-flight calls would cut it here.
    within(drain.draining()).await;
    assert_eq!(health.get(""), Some(ServingStatus::NotServing));

    probe.release.notify_one();
    let answer = within(call).await.unwrap().unwrap();
    assert_eq!(answer.into_inner().text, "wait");
    within(stopping).await.unwrap().unwrap();
}

#[tokio::test]
async fn the_drain_timeout_cuts_streams_that_ignore_the_drain() {
    let mut options = ServerOptions::default();
    options.shutdown.drain_timeout = Duration::from_millis(300);
    let server = start(options, Probe::default()).await;
    let addr = server.local_addr();
    let mut client = TransformServiceClient::new(channel(&server).await);

    let (_sender, _echoes) = open_echo_stream(&mut client).await;

    let started = Instant::now();
    within(server.stop()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The listener is closed: new clients are refused, not left hanging.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

// One thread, so the subscriber set for this thread sees the server's tasks too.
#[tokio::test(flavor = "current_thread")]
async fn every_call_is_logged_with_method_peer_code_and_latency() {
    let (logs, _guard) = LogBuffer::capture("quartet::call=debug");

    let server = start(ServerOptions::default(), Probe::default()).await;
    let mut client = TransformServiceClient::new(channel(&server).await);
    client.transform(say("fine")).await.unwrap();
    client.transform(say("bad")).await.unwrap_err();
    let mut echoes = client
        .transform_stream(tokio_stream::iter([say("a")]))
        .await
        .unwrap()
        .into_inner();
    echoes.message().await.unwrap();
    drop(echoes);
    server.stop().await.unwrap();

    let lines = logs.lines();
    let finished = |method: &str, code: &str| {
        lines.iter().any(|line| {
            line.contains("call finished")
                && line.contains(&format!("method=\"/{SERVICE_NAME}/{method}\""))
                && line.contains("peer=127.0.0.1:")
                && line.contains(&format!("code=\"{code}\""))
                && line.contains("latency_ms=")
        })
    };
    assert!(finished("Transform", "OK"), "{lines:#?}");
    assert!(finished("Transform", "INVALID_ARGUMENT"), "{lines:#?}");
    // The client dropped the stream it no longer wanted.
    assert!(finished("TransformStream", "CANCELLED"), "{lines:#?}");
}

// At the default level there is no call span (it costs too much per call), but
// a server fault is still logged, naming the method and the peer itself.
#[tokio::test(flavor = "current_thread")]
async fn server_faults_are_logged_with_their_method_at_the_default_level() {
    let (logs, _guard) = LogBuffer::capture("info");

    let server = start(ServerOptions::default(), Probe::default()).await;
    let mut client = TransformServiceClient::new(channel(&server).await);
    client.transform(say("fine")).await.unwrap();
    let status = client.transform(say("broken")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    server.stop().await.unwrap();

    let lines = logs.lines();
    let failed: Vec<_> = lines
        .iter()
        .filter(|line| line.contains("call failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{lines:#?}");
    assert!(
        failed[0].contains(&format!("method=\"/{SERVICE_NAME}/Transform\""))
            && failed[0].contains("peer=127.0.0.1:")
            && failed[0].contains("code=\"INTERNAL\""),
        "{lines:#?}"
    );
    // Successful calls stay quiet, and no line carries a call span.
    assert!(
        !lines.iter().any(|line| line.contains("call{")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn connections_past_their_max_age_are_closed_so_clients_rebalance() {
    let mut options = ServerOptions::default();
    options.limits.max_connection_age = Some(Duration::from_millis(200));
    options.limits.max_connection_age_grace = Duration::from_millis(200);
    let server = start(options, Probe::default()).await;
    let mut client = TransformServiceClient::new(channel(&server).await);

    // A stream that never ends by itself is cut once its connection is too old.
    let (_sender, mut echoes) = open_echo_stream(&mut client).await;
    let started = Instant::now();
    let end = within(echoes.message()).await;
    assert!(!matches!(end, Ok(Some(_))), "{end:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A new call gets a fresh connection and is served.
    assert_eq!(echo(&mut client, "again").await.unwrap(), "again");
    server.stop().await.unwrap();
}
