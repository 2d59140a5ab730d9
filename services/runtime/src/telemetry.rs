//! Process-wide tracing: human-readable text for terminals, JSON lines for log
//! collectors, filtered by `RUST_LOG`; logs go to stderr so stdout stays for a
//! command's output. With `--otlp-endpoint`, spans are also exported over OTLP
//! (gRPC) and W3C trace context (`traceparent`) links a client's span to the
//! server spans of the calls it makes. Without it nothing is exported and no
//! trace header is read or written.

use std::{
    io::{self, IsTerminal},
    sync::atomic::{AtomicBool, Ordering},
};

use clap::{Args, ValueEnum};
use opentelemetry::{
    propagation::{Extractor, Injector, TextMapPropagator as _},
    trace::TracerProvider as _,
};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, filter::filter_fn, fmt, prelude::*};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per event, with span fields, for log collectors.
    Json,
}

/// The logging and tracing flags of a process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct TelemetryOptions {
    /// Log line format; the level filter comes from RUST_LOG.
    #[arg(long, global = true, env = "QUARTET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// OTLP/gRPC collector to export traces to (for example http://otel-collector:4317);
    /// off when absent.
    #[arg(long, global = true, env = "QUARTET_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// Why tracing could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` does not parse.
    #[error("RUST_LOG is not a valid filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    /// Something installed a global subscriber first.
    #[error("a tracing subscriber is already installed: {0}")]
    AlreadyInstalled(#[from] tracing_subscriber::util::TryInitError),
    /// The OTLP exporter cannot be built (a bad endpoint).
    #[error("cannot export traces: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Whether spans are exported (and so trace context is worth propagating).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Keeps the trace exporter running; dropping it flushes the spans still queued.
#[must_use = "dropping the guard stops trace export at once"]
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Flushes what is queued; errors have nowhere left to go.
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber, logging at `default_level` unless RUST_LOG
/// says otherwise. Call once, first thing, inside the Tokio runtime (the
/// exporter needs it). `service` names the process in exported traces.
pub fn init(
    options: &TelemetryOptions,
    service: &'static str,
    default_level: &str,
) -> Result<TelemetryGuard, TelemetryError> {
    let filter = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(directives)?,
        _ => EnvFilter::new(default_level),
    };
    let logs = match options.log_format {
        LogFormat::Text => fmt::layer()
            .with_writer(io::stderr)
            .with_ansi(io::stderr().is_terminal())
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(io::stderr)
            .boxed(),
    };
    let (traces, provider) = match &options.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()?;
            let provider = SdkTracerProvider::builder()
                .with_resource(Resource::builder().with_service_name(service).build())
                .with_batch_exporter(exporter)
                .build();
            // INFO and up, plus the per-call spans (DEBUG, so that logs at the
            // default level do not pay for them) but not the per-call DEBUG events.
            let worth_exporting = filter_fn(|metadata| {
                *metadata.level() <= Level::INFO
                    || (metadata.is_span() && metadata.target() == "quartet::call")
            });
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer(service))
                .with_filter(worth_exporting);
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .try_init()?;
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    Ok(TelemetryGuard { provider })
}

/// Whether traces are being exported.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

struct HeaderReader<'a>(&'a http::HeaderMap);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MetadataWriter<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Makes `span` a child of the trace a caller sent in `traceparent`, if any.
pub fn continue_remote_trace(span: &Span, headers: &http::HeaderMap) {
    if !exporting() || !headers.contains_key("traceparent") {
        return;
    }
    let context = TraceContextPropagator::new().extract(&HeaderReader(headers));
    // Fails only when the span is disabled; then there is nothing to link.
    let _ = span.set_parent(context);
}

/// Adds the current span's trace context to an outgoing call's metadata.
pub fn propagate_current_trace(metadata: &mut tonic::metadata::MetadataMap) {
    if !exporting() {
        return;
    }
    let context = Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut MetadataWriter(metadata));
}
