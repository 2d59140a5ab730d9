//! Trace export: a CLI call and the server call it causes land in one trace at
//! an OTLP collector (a fake one, in this test).

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    trace::v1::Span,
};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::Command,
    sync::Notify,
    time::timeout,
};
use tonic::{Request, Response, Status};

const DEADLINE: Duration = Duration::from_secs(30);

/// Keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    arrived: Arc<Notify>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans);
        self.spans.lock().unwrap().extend(spans);
        self.arrived.notify_waiters();
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// The first span called `name` with attribute `key` (any value when `value` is None).
    fn find(&self, name: &str, key: &str, value: Option<&str>) -> Option<Span> {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        self.spans
            .lock()
            .unwrap()
            .iter()
            .find(|span| {
                span.name == name
                    && span.attributes.iter().any(|attribute| {
                        let text = attribute.value.as_ref().and_then(|any| match &any.value {
                            Some(Value::StringValue(text)) => Some(text.as_str()),
                            _ => None,
                        });
                        attribute.key == key && value.is_none_or(|value| text == Some(value))
                    })
            })
            .cloned()
    }
}

#[tokio::test]
async fn a_cli_call_and_the_server_call_share_one_trace() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let mut server = Command::new(env!("CARGO_BIN_EXE_quartet"))
        .args([
            "--otlp-endpoint",
            &otlp,
            "serve",
            "transform",
            "--transform-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let announced = timeout(DEADLINE, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let address = format!("http://{}", announced.rsplit(' ').next().unwrap());

    let call = Command::new(env!("CARGO_BIN_EXE_quartet"))
        .args([
            "--otlp-endpoint",
            &otlp,
            "--transform-addr",
            &address,
            "transform",
            "upper",
            "traced",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&call.stdout), "TRACED\n");

    // The server flushes its spans when it stops.
    nix::sys::signal::kill(
        Pid::from_raw(i32::try_from(server.id().unwrap()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    timeout(DEADLINE, server.wait()).await.unwrap().unwrap();

    let (cli_span, server_span) = timeout(DEADLINE, async {
        loop {
            let arrived = collector.arrived.notified();
            let cli_span = collector.find("quartet", "command", Some("transform"));
            let server_span = collector.find("call", "method", None);
            if let (Some(cli_span), Some(server_span)) = (cli_span, server_span) {
                return (cli_span, server_span);
            }
            arrived.await;
        }
    })
    .await
    .expect("both spans should reach the collector");
    assert_eq!(
        server_span.trace_id, cli_span.trace_id,
        "the server span must join the CLI's trace"
    );
    assert!(
        !server_span.parent_span_id.is_empty(),
        "the server span has a remote parent"
    );
}
