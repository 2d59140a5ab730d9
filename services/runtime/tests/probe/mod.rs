//! A gRPC service whose calls tests control, and starting a server around it.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::{
    pin::Pin,
    sync::{Arc, Mutex, OnceLock},
};

use quartet_e2e::grpc::{next, open_stream, within};
use quartet_proto::transform::v1::{
    TransformRequest, TransformResponse,
    transform_service_client::TransformServiceClient,
    transform_service_server::{TransformService, TransformServiceServer},
};
use quartet_runtime::{GrpcServer, RunningServer, ServerOptions, Shutdown};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status, Streaming, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// A service whose behaviour each test picks through the request text.
#[derive(Debug, Clone)]
pub struct Probe {
    /// One permit per "wait" call that has arrived.
    pub arrived: Arc<Semaphore>,
    /// Notified to let a "wait" call answer.
    pub release: Arc<Notify>,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            arrived: Arc::new(Semaphore::new(0)),
            release: Arc::default(),
        }
    }
}

impl Probe {
    /// Waits until `count` "wait" calls have arrived.
    pub async fn arrivals(&self, count: u32) {
        within(self.arrived.acquire_many(count))
            .await
            .unwrap()
            .forget();
    }
}

#[tonic::async_trait]
impl TransformService for Probe {
    async fn transform(
        &self,
        request: Request<TransformRequest>,
    ) -> Result<Response<TransformResponse>, Status> {
        let text = request.into_inner().text;
        match text.as_str() {
            "hang" => std::future::pending().await,
            "wait" => {
                // Registered before the arrival is announced: a test that
                // releases as soon as it sees the arrival, from another thread
                // (a connection worker serves this call), cannot miss it.
                let released = self.release.notified();
                let mut released = std::pin::pin!(released);
                released.as_mut().enable();
                self.arrived.add_permits(1);
                released.await;
            }
            "bad" => return Err(Status::invalid_argument("bad on purpose")),
            "broken" => return Err(Status::internal("broken on purpose")),
            "thread" => {
                let name = std::thread::current()
                    .name()
                    .unwrap_or("unnamed")
                    .to_owned();
                return Ok(Response::new(TransformResponse { text: name }));
            }
            _ => {}
        }
        Ok(Response::new(TransformResponse { text }))
    }

    type TransformStreamStream =
        Pin<Box<dyn Stream<Item = Result<TransformResponse, Status>> + Send>>;

    /// Echoes, and never ends on its own: it ignores the drain signal, like a
    /// badly written service would.
    async fn transform_stream(
        &self,
        request: Request<Streaming<TransformRequest>>,
    ) -> Result<Response<Self::TransformStreamStream>, Status> {
        let echoes = request
            .into_inner()
            .map(|request| request.map(|request| TransformResponse { text: request.text }));
        Ok(Response::new(Box::pin(
            echoes.chain(tokio_stream::pending()),
        )))
    }
}

pub async fn start(options: ServerOptions, probe: Probe) -> RunningServer {
    start_named("probe", options, probe).await
}

/// [`start`] with the server called `name` (its connection workers' threads
/// are named after it).
pub async fn start_named(
    name: &'static str,
    options: ServerOptions,
    probe: Probe,
) -> RunningServer {
    GrpcServer::new(name, options, Shutdown::new())
        .descriptors(quartet_proto::FILE_DESCRIPTOR_SET)
        .add_service(TransformServiceServer::new(probe))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .spawn()
        .unwrap()
}

pub async fn channel(server: &RunningServer) -> Channel {
    Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

pub fn say(text: &str) -> TransformRequest {
    TransformRequest {
        operation: 1,
        text: text.into(),
    }
}

/// What the probe answers `text` (itself, unless it is one of the words that
/// steer it), or the status it refuses it with.
pub async fn echo(
    client: &mut TransformServiceClient<Channel>,
    text: &str,
) -> Result<String, Status> {
    let answer = within(client.transform(say(text))).await?;
    Ok(answer.into_inner().text)
}

/// A `TransformStream` call the probe has echoed "ping" on, and the sender
/// that keeps it open: the probe never ends it by itself.
pub async fn open_echo_stream(
    client: &mut TransformServiceClient<Channel>,
) -> (mpsc::Sender<TransformRequest>, Streaming<TransformResponse>) {
    let (sender, mut echoes) = open_stream(|requests| client.transform_stream(requests)).await;
    sender.send(say("ping")).await.unwrap();
    assert_eq!(next(&mut echoes).await.text, "ping");
    (sender, echoes)
}

pub async fn check(
    health: &mut HealthClient<Channel>,
    service: &str,
) -> Result<ServingStatus, Status> {
    let response = within(health.check(HealthCheckRequest {
        service: service.into(),
    }))
    .await?;
    Ok(response.into_inner().status())
}

/// Collects formatted log output for one test.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    /// Captures this thread's logs at `filter` until the guard is dropped
    /// (tests that use it run on one thread, so the server's tasks log here too).
    pub fn capture(filter: &str) -> (Self, tracing::subscriber::DefaultGuard) {
        // While it believes only one subscriber exists, tracing-core decides a
        // log statement's interest from the subscriber of whichever thread
        // reaches it first, for every thread: another test's thread (no
        // subscriber) would switch this test's DEBUG lines off. A second,
        // silent subscriber kept for the whole run turns that shortcut off.
        static SILENT: OnceLock<tracing::Dispatch> = OnceLock::new();
        SILENT.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::new()));
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}
