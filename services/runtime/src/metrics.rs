//! Prometheus metrics: every server's calls, plus whatever gauges its services
//! register, served as text on `GET /metrics` when `--metrics-listen` is set.
//!
//! Call metrics follow the names of go-grpc-prometheus, which dashboards already
//! know: `grpc_server_handled_total`, `grpc_server_handling_seconds`, plus
//! `grpc_server_in_flight` for calls open now (streams included).

use std::{
    fmt,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
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
use tracing::{info, warn};

use crate::shutdown::Shutdown;

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

/// The call metrics every server records.
pub(crate) struct CallMetrics {
    handled: Family<HandledLabels, Counter>,
    latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    in_flight: Family<MethodLabels, Gauge>,
}

impl CallMetrics {
    /// A call has started.
    pub(crate) fn started(&self, method: &MethodLabels) {
        self.in_flight.get_or_create(method).inc();
    }

    /// A call has ended with `code` after `seconds`.
    pub(crate) fn finished(&self, method: &MethodLabels, code: &'static str, seconds: f64) {
        self.in_flight.get_or_create(method).dec();
        self.latency.get_or_create(method).observe(seconds);
        let labels = HandledLabels {
            grpc_service: method.grpc_service.clone(),
            grpc_method: method.grpc_method.clone(),
            grpc_code: code,
        };
        self.handled.get_or_create(&labels).inc();
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
        let calls = CallMetrics {
            handled: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            in_flight: Family::default(),
        };
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
        let mut registry = self
            .inner
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        registry
            .sub_registry_with_prefix("quartet")
            .register(name, help, metric);
    }

    /// Adds a service's collector, which computes its metrics at scrape time
    /// (rooms and members counted from the live state, say), under `quartet_`.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        let mut registry = self
            .inner
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        registry
            .sub_registry_with_prefix("quartet")
            .register_collector(collector);
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
