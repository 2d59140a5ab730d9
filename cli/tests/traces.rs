//! Trace export: a CLI call and the server call it causes land in one trace at
//! an OTLP collector (a fake one, in this test).

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    trace::v1::Span,
};
use tokio::{sync::Notify, time::timeout};
use tonic::{Request, Response, Status};

use quartet_e2e::{ServerProcess, Signal};

use common::{DEADLINE, quartet, run};

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

    let mut command = quartet();
    command
        .args(["--otlp-endpoint", &otlp, "serve", "transform"])
        .args(["--transform-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn");
    let mut server = ServerProcess::start(command, &["transform"]).await.unwrap();
    let address = server.url("transform").unwrap();

    let call = run(quartet().args([
        "--otlp-endpoint",
        &otlp,
        "--transform-addr",
        &address,
        "transform",
        "upper",
        "traced",
    ]))
    .await;
    assert_eq!(call.stdout, "TRACED\n", "{}", call.stderr);

    // The server flushes its spans when it stops.
    server.signal(Signal::SIGTERM).unwrap();
    server.exit_code().await.unwrap();

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
