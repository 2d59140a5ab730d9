//! The client spreads calls over every endpoint of an address: a list of
//! URLs or a `dns:///` name (with an injected resolver whose answers change),
//! takes a dead endpoint out of rotation, brings it back when it answers
//! again, and retries a read once elsewhere.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use quartet_client::{
    Connection, Credentials, Resolution, Resolve, connect, connect_lazy, connect_lazy_with,
    retry_read,
};
use quartet_proto::transform::v1::{
    TransformRequest, TransformResponse,
    transform_service_client::TransformServiceClient,
    transform_service_server::{TransformService, TransformServiceServer},
};
use quartet_runtime::{GrpcServer, RunningServer, ServerOptions, Shutdown};
use tokio::time::Instant;
use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status, Streaming};

const DEADLINE: Duration = Duration::from_secs(30);
/// Short, so tests see re-resolution and re-admission quickly.
const INTERVAL: Duration = Duration::from_millis(200);

/// Answers every call with its own name.
struct Named(String);

#[tonic::async_trait]
impl TransformService for Named {
    async fn transform(
        &self,
        _: Request<TransformRequest>,
    ) -> Result<Response<TransformResponse>, Status> {
        Ok(Response::new(TransformResponse {
            text: self.0.clone(),
        }))
    }

    type TransformStreamStream =
        Pin<Box<dyn Stream<Item = Result<TransformResponse, Status>> + Send>>;

    async fn transform_stream(
        &self,
        _: Request<Streaming<TransformRequest>>,
    ) -> Result<Response<Self::TransformStreamStream>, Status> {
        Err(Status::unimplemented("unary only"))
    }
}

async fn serve(name: &str, addr: SocketAddr) -> RunningServer {
    GrpcServer::new("named", ServerOptions::default(), Shutdown::new())
        .descriptors(quartet_proto::FILE_DESCRIPTOR_SET)
        .add_service(TransformServiceServer::new(Named(name.to_owned())))
        .bind(addr)
        .await
        .unwrap()
        .spawn()
        .unwrap()
}

async fn servers(names: &[&str]) -> Vec<RunningServer> {
    let mut running = Vec::new();
    for name in names {
        running.push(serve(name, "127.0.0.1:0".parse().unwrap()).await);
    }
    running
}

fn resolution() -> Resolution {
    Resolution {
        resolve_interval: INTERVAL,
    }
}

fn list(servers: &[RunningServer]) -> String {
    servers
        .iter()
        .map(RunningServer::url)
        .collect::<Vec<_>>()
        .join(",")
}

/// Who answered one call (retried once, as reads are).
async fn who(client: &TransformServiceClient<Connection>) -> Result<String, Status> {
    let answer = retry_read(|| {
        let mut client = client.clone();
        async move {
            client
                .transform(TransformRequest {
                    operation: 1,
                    text: String::new(),
                })
                .await
        }
    });
    tokio::time::timeout(DEADLINE, answer)
        .await
        .expect("a call hung")
        .map(|answer| answer.into_inner().text)
}

async fn tally(
    client: &TransformServiceClient<Connection>,
    calls: usize,
) -> HashMap<String, usize> {
    let mut answered = HashMap::new();
    for _ in 0..calls {
        *answered.entry(who(client).await.unwrap()).or_default() += 1;
    }
    answered
}

/// Calls until `name` answers, within the deadline.
async fn until_answered_by(client: &TransformServiceClient<Connection>, name: &str) {
    let deadline = Instant::now() + DEADLINE;
    while who(client).await.ok().as_deref() != Some(name) {
        assert!(Instant::now() < deadline, "{name} never answered");
    }
}

#[tokio::test]
async fn calls_spread_over_every_url_of_a_list() {
    let running = servers(&["a", "b", "c"]).await;
    let channel = connect(
        &list(&running),
        DEADLINE,
        &Credentials::default(),
        &resolution(),
    )
    .await
    .unwrap();
    let client = TransformServiceClient::new(channel);
    let answered = tally(&client, 300).await;
    for name in ["a", "b", "c"] {
        let share = answered.get(name).copied().unwrap_or_default();
        assert!(share >= 60, "{name} served {share} of 300: {answered:?}");
    }
}

#[tokio::test]
async fn a_dead_endpoint_leaves_rotation_and_comes_back_when_it_answers() {
    let mut running = servers(&["a", "b", "c"]).await;
    let client = TransformServiceClient::new(
        connect_lazy(
            &list(&running),
            DEADLINE,
            &Credentials::default(),
            &resolution(),
        )
        .unwrap(),
    );
    tally(&client, 30).await;

    let dead = running.remove(2);
    let port = dead.local_addr();
    dead.stop().await.unwrap();
    // Every read succeeds: the one that meets the dead endpoint is retried.
    let answered = tally(&client, 200).await;
    assert!(!answered.contains_key("c"), "{answered:?}");
    assert_eq!(answered.values().sum::<usize>(), 200);

    // The same address answers again: a health check brings it back.
    let _back = serve("c", port).await;
    until_answered_by(&client, "c").await;
}

#[tokio::test]
async fn a_list_whose_every_endpoint_is_down_fails_fast_and_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("http://127.0.0.1:{port},http://127.0.0.1:{port}0");
    let error = connect(&address, DEADLINE, &Credentials::default(), &resolution())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    assert!(
        error.message().starts_with("cannot connect to "),
        "{error:?}"
    );

    let lazy = TransformServiceClient::new(
        connect_lazy(&address, DEADLINE, &Credentials::default(), &resolution()).unwrap(),
    );
    let started = Instant::now();
    let status = who(&lazy).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A resolver whose answers a test sets.
#[derive(Default)]
struct Answers(Mutex<Vec<SocketAddr>>);

impl Answers {
    fn set(&self, addresses: &[&RunningServer]) {
        *self.0.lock().unwrap() = addresses.iter().map(|server| server.local_addr()).collect();
    }
}

impl Resolve for Answers {
    fn resolve(
        &self,
        _: &str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>> {
        assert_eq!(port, 50051, "the port of the name is passed on");
        let answers = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(answers) })
    }
}

#[tokio::test]
async fn a_dns_name_follows_its_answers() {
    let running = servers(&["a", "b", "c"]).await;
    let answers = Arc::new(Answers::default());
    answers.set(&[&running[0], &running[1]]);
    let channel = connect_lazy_with(
        "dns:///transform-headless:50051",
        DEADLINE,
        &Credentials::default(),
        &resolution(),
        answers.clone(),
    )
    .unwrap();
    let client = TransformServiceClient::new(channel);
    let answered = tally(&client, 100).await;
    assert!(
        answered.contains_key("a") && answered.contains_key("b"),
        "{answered:?}"
    );
    assert!(!answered.contains_key("c"), "{answered:?}");

    // The name now points at b and c: within one interval, a gets nothing.
    answers.set(&[&running[1], &running[2]]);
    until_answered_by(&client, "c").await;
    let answered = tally(&client, 100).await;
    assert!(!answered.contains_key("a"), "{answered:?}");
    assert!(
        answered.contains_key("b") && answered.contains_key("c"),
        "{answered:?}"
    );

    // An answer with no addresses (a DNS glitch) keeps the endpoints known.
    answers.set(&[]);
    let until = Instant::now() + INTERVAL * 3;
    while Instant::now() < until {
        who(&client).await.unwrap();
    }
}

#[tokio::test]
async fn a_name_that_never_had_addresses_fails_unavailable_saying_why() {
    let answers = Arc::new(Answers::default());
    let channel = connect_lazy_with(
        "dns:///nowhere:50051",
        DEADLINE,
        &Credentials::default(),
        &resolution(),
        answers,
    )
    .unwrap();
    let status = who(&TransformServiceClient::new(channel))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("has no addresses"), "{status:?}");
}

#[tokio::test]
async fn the_system_resolver_finds_localhost() {
    let running = servers(&["local"]).await;
    let address = format!("dns:///localhost:{}", running[0].local_addr().port());
    let channel = connect_lazy(&address, DEADLINE, &Credentials::default(), &resolution()).unwrap();
    let client = TransformServiceClient::new(channel);
    // localhost may also resolve to ::1, where nothing listens: that endpoint
    // leaves rotation, and reads are retried.
    for _ in 0..20 {
        assert_eq!(who(&client).await.unwrap(), "local");
    }
}
