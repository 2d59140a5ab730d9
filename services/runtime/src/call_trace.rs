//! [`CallTrace`]: the metrics of every call, and one tracing span per call with
//! the method, the peer, and once the call ends, its status code and latency.
//!
//! A call ends when its response does: with the `grpc-status` of a trailers-only
//! response, with the trailers at the end of the body, or as CANCELLED when the
//! body is dropped first (the client went away). Successful and client-caused
//! outcomes are logged at DEBUG, server faults at WARN (with the method and
//! peer in the event itself), under the target `quartet::call`.
//!
//! The span is at DEBUG too: `RUST_LOG=info,quartet::call=debug` logs every call
//! inside its span, and exported traces (`--otlp-endpoint`) always have it. At
//! the default `info` level no span is built: a span with formatted fields cost
//! about a sixth of the throughput of a small unary call (BENCHMARKS.md), which
//! is too much to pay for context that only DEBUG lines would show.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::{Code, Status, body::Body, transport::server::TcpConnectInfo};
use tower_layer::Layer;
use tower_service::Service;
use tracing::{Span, debug, debug_span, field, warn};

use crate::{
    metrics::{MethodMetrics, Metrics},
    status_names::code_name,
};

/// Builds [`CallTrace`] services.
#[derive(Debug, Clone)]
pub struct CallTraceLayer {
    metrics: Metrics,
}

impl CallTraceLayer {
    /// Traces calls and records them in `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for CallTraceLayer {
    type Service = CallTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallTrace {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// Opens a span per call and records how the call ended.
#[derive(Debug, Clone)]
pub struct CallTrace<S> {
    inner: S,
    metrics: Metrics,
}

impl<S> Service<http::Request<Body>> for CallTrace<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = CallTraceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let peer = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr);
        let span = debug_span!(
            target: "quartet::call",
            "call",
            method = request.uri().path(),
            peer = field::Empty,
            code = field::Empty,
            latency_ms = field::Empty,
        );
        if !span.is_disabled() {
            if let Some(peer) = peer {
                span.record("peer", field::display(peer));
            }
            crate::telemetry::continue_remote_trace(&span, request.headers());
        }
        let method = self.metrics.calls().method(request.uri().path());
        method.started();
        let inner = span.in_scope(|| self.inner.call(request));
        CallTraceFuture {
            inner,
            record: Some(CallRecord {
                span,
                peer,
                started: Instant::now(),
                finished: false,
                method,
            }),
        }
    }
}

/// The span of one call and when it started; logs and counts the outcome
/// exactly once.
struct CallRecord {
    span: Span,
    peer: Option<SocketAddr>,
    started: Instant,
    finished: bool,
    method: Arc<MethodMetrics>,
}

impl std::fmt::Debug for CallRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRecord")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}

impl CallRecord {
    fn finish(&mut self, code: Code) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        // Microsecond precision is all a log reader wants.
        #[allow(clippy::cast_precision_loss)]
        let latency_ms = elapsed.as_micros() as f64 / 1000.0;
        self.method.finished(code, elapsed.as_secs_f64());
        let name = code_name(code);
        if !self.span.is_disabled() {
            self.span.record("code", name);
            self.span.record("latency_ms", latency_ms);
        }
        if is_server_fault(code) {
            if self.span.is_disabled() {
                // No span to carry them: say which call failed in the event itself.
                let method = self.method.path();
                let peer = self.peer.map(field::display);
                warn!(target: "quartet::call", method, peer, code = name, latency_ms, "call failed");
            } else {
                warn!(target: "quartet::call", parent: &self.span, code = name, latency_ms, "call failed");
            }
        } else {
            debug!(target: "quartet::call", parent: &self.span, code = name, latency_ms, "call finished");
        }
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        // Dropped before any status was seen: the client reset the stream or the
        // connection closed under it.
        self.finish(Code::Cancelled);
    }
}

fn is_server_fault(code: Code) -> bool {
    matches!(code, Code::Internal | Code::Unknown | Code::DataLoss)
}

fn status_code(headers: &HeaderMap) -> Option<Code> {
    headers
        .get(Status::GRPC_STATUS)
        .map(|value| Code::from_bytes(value.as_bytes()))
}

pin_project! {
    /// The response future of [`CallTrace`].
    pub struct CallTraceFuture<F> {
        #[pin]
        inner: F,
        record: Option<CallRecord>,
    }
}

impl<F, E> Future for CallTraceFuture<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(record) = this.record.as_mut() else {
            return Poll::Pending;
        };
        let result = {
            let _entered = record.span.enter();
            match this.inner.poll(cx) {
                Poll::Ready(result) => result,
                Poll::Pending => return Poll::Pending,
            }
        };
        let Some(mut record) = this.record.take() else {
            return Poll::Pending;
        };
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                record.finish(Code::Unknown);
                return Poll::Ready(Err(error));
            }
        };
        if let Some(code) = status_code(response.headers()) {
            // Trailers-only: the call is over before any message.
            record.finish(code);
            return Poll::Ready(Ok(response));
        }
        Poll::Ready(Ok(
            response.map(|inner| Body::new(TracedBody { inner, record }))
        ))
    }
}

pin_project! {
    /// A response body that records the call's status from its trailers.
    struct TracedBody {
        #[pin]
        inner: Body,
        record: CallRecord,
    }
}

impl HttpBody for TracedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.project();
        let polled = {
            let _entered = this.record.span.enter();
            this.inner.poll_frame(cx)
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_code) {
                    this.record.finish(code);
                }
            }
            Poll::Ready(Some(Err(status))) => this.record.finish(status.code()),
            Poll::Ready(None) => this.record.finish(Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
