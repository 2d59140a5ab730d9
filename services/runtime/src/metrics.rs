//! Prometheus metrics: every server's calls, plus whatever gauges its services
//! register, served as text on `GET /metrics` when `--metrics-listen` is set.
//!
//! Call metrics follow the names of go-grpc-prometheus, which dashboards already
//! know: `grpc_server_handled_total`, `grpc_server_handling_seconds`, plus
//! `grpc_server_in_flight` for calls open now (streams included).

use std::{
    fmt,
    io::Write as _,
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock, PoisonError},
};

use prometheus_client::{
    collector::Collector,
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Metric, Registry},
};
use tokio::net::TcpListener;
use tonic::Code;
use tracing::{info, warn};

use crate::{accept, error::ServeError, shutdown::Shutdown, status_names::code_name};

/// Labels of a finished call (named as go-grpc-prometheus names them).
#[allow(clippy::struct_field_names)]
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HandledLabels {
    grpc_service: String,
    grpc_method: String,
    grpc_code: &'static str,
}

/// Labels of a method.
#[allow(clippy::struct_field_names)]
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct MethodLabels {
    grpc_service: String,
    grpc_method: String,
}

impl MethodLabels {
    /// Splits `/package.Service/Method`.
    pub(crate) fn from_path(path: &str) -> Self {
        let path = path.strip_prefix('/').unwrap_or(path);
        let (service, method) = path.split_once('/').unwrap_or((path, ""));
        Self {
            grpc_service: service.to_owned(),
            grpc_method: method.to_owned(),
        }
    }
}

/// Number of gRPC status codes (OK = 0 to UNAUTHENTICATED = 16).
const CODES: usize = 17;

/// The series of one method, looked up once per method rather than once per
/// call: a call then costs a few atomic operations, with no label strings
/// built, hashed or compared.
pub(crate) struct MethodMetrics {
    path: Box<str>,
    labels: MethodLabels,
    in_flight: Gauge,
    latency: Histogram,
    /// The family the per-code counters below come from.
    handled_family: Family<HandledLabels, Counter>,
    /// `grpc_server_handled_total` by code, created on a code's first use so the
    /// scrape shows only codes that happened.
    handled: [OnceLock<Counter>; CODES],
}

impl fmt::Debug for MethodMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MethodMetrics")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl MethodMetrics {
    /// The request path (`/package.Service/Method`) these series count.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// A call has started.
    pub(crate) fn started(&self) {
        self.in_flight.inc();
    }

    /// A call has ended with `code` after `seconds`.
    pub(crate) fn finished(&self, code: Code, seconds: f64) {
        self.in_flight.dec();
        self.latency.observe(seconds);
        // Codes past UNAUTHENTICATED do not exist on the wire; count them as UNKNOWN.
        let index = usize::try_from(code as i32)
            .ok()
            .filter(|index| *index < CODES)
            .unwrap_or(Code::Unknown as usize);
        self.handled[index]
            .get_or_init(|| {
                self.handled_family
                    .get_or_create(&HandledLabels {
                        grpc_service: self.labels.grpc_service.clone(),
                        grpc_method: self.labels.grpc_method.clone(),
                        grpc_code: code_name(code),
                    })
                    .clone()
            })
            .inc();
    }
}

/// The call metrics every server records.
pub(crate) struct CallMetrics {
    handled: Family<HandledLabels, Counter>,
    latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    in_flight: Family<MethodLabels, Gauge>,
    /// The one series of every path no server here serves: clients choose
    /// paths, so they must not choose labels (or the scrape's size).
    unknown: OnceLock<Arc<MethodMetrics>>,
}

impl CallMetrics {
    fn new() -> Self {
        Self {
            handled: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            in_flight: Family::default(),
            unknown: OnceLock::new(),
        }
    }

    /// The series of a served method, `path` (`/package.Service/Method`).
    /// Only for paths a server serves ([`crate::served_methods`] resolves each
    /// once); others count under [`Self::unknown`].
    pub(crate) fn resolve(&self, path: &str) -> Arc<MethodMetrics> {
        let labels = MethodLabels::from_path(path);
        Arc::new(MethodMetrics {
            path: path.into(),
            in_flight: self.in_flight.get_or_create(&labels).clone(),
            latency: self.latency.get_or_create(&labels).clone(),
            handled_family: self.handled.clone(),
            handled: std::array::from_fn(|_| OnceLock::new()),
            labels,
        })
    }

    /// The series shared by every path no server serves, labelled
    /// `grpc_service="unknown", grpc_method="unknown"`.
    pub(crate) fn unknown(&self) -> Arc<MethodMetrics> {
        self.unknown
            .get_or_init(|| self.resolve("/unknown/unknown"))
            .clone()
    }
}

fn latency_histogram() -> Histogram {
    // 100µs to ~15s in steps of 2.5x.
    Histogram::new(exponential_buckets(0.000_1, 2.5, 14))
}

struct Inner {
    registry: Mutex<Registry>,
    calls: CallMetrics,
}

/// The metrics of a process: one registry shared by every server in it (clones
/// share it), so one endpoint shows them all.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl PartialEq for Metrics {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Metrics {}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the call metrics in it.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let calls = CallMetrics::new();
        registry.register(
            "grpc_server_handled",
            "gRPC calls finished, by method and status code",
            calls.handled.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Time from a call's arrival to its last message, by method",
            calls.latency.clone(),
        );
        registry.register(
            "grpc_server_in_flight",
            "gRPC calls open now (streams included), by method",
            calls.in_flight.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry: Mutex::new(registry),
                calls,
            }),
        }
    }

    pub(crate) fn calls(&self) -> &CallMetrics {
        &self.inner.calls
    }

    /// Adds a service's own metric (a gauge of rooms, a histogram of batch
    /// sizes) under `quartet_<name>`.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.with_services_registry(|registry| registry.register(name, help, metric));
    }

    /// Adds a service's collector, which computes its metrics at scrape time
    /// (rooms and members counted from the live state, say), under `quartet_`.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        self.with_services_registry(|registry| registry.register_collector(collector));
    }

    /// Runs `add` on the part of the registry where services' own metrics go,
    /// under the `quartet_` prefix.
    fn with_services_registry(&self, add: impl FnOnce(&mut Registry)) {
        let mut registry = self
            .inner
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        add(registry.sub_registry_with_prefix("quartet"));
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let registry = self
            .inner
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut text = String::new();
        if let Err(error) = encode(&mut text, &registry) {
            warn!(error = %error, "cannot encode metrics");
        }
        text
    }

    /// The registry of this process, which every server in it records into,
    /// served on `listen` (`--metrics-listen`) when it is given, with
    /// `metrics listening on ADDR` printed on stdout like a server's announce
    /// line. Once per process; tests use [`Metrics::new`] or a server's own.
    pub async fn for_process(
        listen: Option<SocketAddr>,
        shutdown: &Shutdown,
    ) -> Result<Self, ServeError> {
        let metrics = Self::new();
        let Some(addr) = listen else {
            return Ok(metrics);
        };
        let bound = metrics.serve(accept::bind(addr).await?, shutdown);
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "metrics listening on {bound}")
            .and_then(|()| stdout.flush())
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(metrics)
    }

    /// Serves `GET /metrics` on `listener` until shutdown is requested.
    pub fn serve(&self, listener: TcpListener, shutdown: &Shutdown) -> SocketAddr {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let metrics = self.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        );
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let stopped = async move { shutdown.requested().await };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                warn!(error = %error, "metrics endpoint failed");
            }
        });
        info!(addr = %local, "metrics on /metrics");
        local
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::Metrics;

    #[test]
    fn calls_are_counted_by_method_and_code() {
        let metrics = Metrics::new();
        let method = metrics
            .calls()
            .resolve("/quartet.transform.v1.TransformService/Transform");
        method.started();
        method.finished(Code::Ok, 0.001);
        method.started();
        method.finished(Code::InvalidArgument, 0.001);
        let text = metrics.encode();
        assert!(
            text.contains(r#"grpc_server_handled_total{grpc_service="quartet.transform.v1.TransformService",grpc_method="Transform",grpc_code="INVALID_ARGUMENT"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"grpc_code="OK"} 1"#), "{text}");
        assert!(
            text.contains(r#"grpc_server_in_flight{grpc_service="quartet.transform.v1.TransformService",grpc_method="Transform"} 0"#),
            "{text}"
        );
    }

    #[test]
    fn every_unknown_path_shares_one_series() {
        let metrics = Metrics::new();
        for _ in 0..3 {
            let method = metrics.calls().unknown();
            method.started();
            method.finished(Code::Unimplemented, 0.0);
        }
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"grpc_server_handled_total{grpc_service="unknown",grpc_method="unknown",grpc_code="UNIMPLEMENTED"} 3"#
            ),
            "{text}"
        );
    }
}
