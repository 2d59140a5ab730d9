//! [`CallTrace`]: the metrics of every call, and one tracing span per call with
//! the method, the peer, and once the call ends, its status code and latency.
//!
//! A call ends when its response does: with the `grpc-status` of a trailers-only
//! response, with the trailers at the end of the body, or as CANCELLED when the
//! body is dropped first (the client went away). A call whose request body
//! failed because its client went away (the request framing marks that
//! status) is CANCELLED too, whatever the service made of the failure: a client
//! that resets its streams or drops its connections must not be able to raise
//! server-fault alerts. Successful and client-caused outcomes are logged at DEBUG, server
//! faults at WARN (with the method and peer in the event itself), under the
//! target `quartet::call`.
//!
//! The span is at DEBUG too: `RUST_LOG=info,quartet::call=debug` logs every call
//! inside its span, and exported traces (`--otlp-endpoint`) always have it. At
//! the default `info` level no span is built: a span with formatted fields cost
//! about a sixth of the throughput of a small unary call (BENCHMARKS.md), which
//! is too much to pay for context that only DEBUG lines would show.
//!
//! Only methods the server serves get their own metric series; calls to any
//! other path count in one `unknown` series, and logs name such a path by its
//! first [`LOGGED_PATH_CHARS`] characters: clients choose paths, and neither
//! the scrape nor the logs may grow with them.

use std::{
    borrow::Cow,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use http::{HeaderMap, uri::PathAndQuery};
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::{
    Code, Status,
    body::Body,
    metadata::{MetadataMap, MetadataValue},
    transport::server::TcpConnectInfo,
};
use tower_layer::Layer;
use tower_service::Service;
use tracing::{Span, debug, debug_span, field, warn};

use crate::{
    metrics::{MethodMetrics, Metrics},
    served_methods::ServedMethods,
    status_names::code_name,
};

/// Characters of a path the server does not serve that logs show, followed by
/// an ellipsis when there are more.
pub const LOGGED_PATH_CHARS: usize = 64;

/// Marks a status as made by [`abandoned`]. The mark never leaves the server:
/// the call trace takes it off (and the stream it would travel on is gone).
const ABANDONED_BY_CLIENT: &str = "quartet-abandoned-by-client";

/// The status a request body fails with when its client went away: it reset
/// the stream, or its connection closed (`transport` is what the transport
/// said). The call trace records the call as CANCELLED. The code seen by
/// whoever reads the body is UNAVAILABLE, not CANCELLED, because tonic takes a
/// CANCELLED body error for a clean end of the request, and would then serve
/// half a request, or answer a unary call INTERNAL.
pub(crate) fn abandoned(transport: &Status) -> Status {
    let mut metadata = MetadataMap::new();
    metadata.insert(ABANDONED_BY_CLIENT, MetadataValue::from_static("1"));
    Status::with_metadata(
        Code::Unavailable,
        format!("the client went away: {}", transport.message()),
        metadata,
    )
}

/// How a call that answered `code` (with `headers` or trailers) ended: as
/// CANCELLED when its client went away. Takes the mark off.
fn outcome(code: Code, headers: &mut HeaderMap) -> Code {
    if code != Code::Ok && headers.remove(ABANDONED_BY_CLIENT).is_some() {
        Code::Cancelled
    } else {
        code
    }
}

/// `path` as logs show it: whole if the server serves it, otherwise its first
/// [`LOGGED_PATH_CHARS`] characters and an ellipsis.
fn logged_path(path: &str, served: bool) -> Cow<'_, str> {
    if served {
        return Cow::Borrowed(path);
    }
    match path.char_indices().nth(LOGGED_PATH_CHARS) {
        None => Cow::Borrowed(path),
        Some((cut, _)) => Cow::Owned(format!("{}…", &path[..cut])),
    }
}

/// Builds [`CallTrace`] services.
#[derive(Debug, Clone)]
pub struct CallTraceLayer {
    metrics: Metrics,
    served: Arc<ServedMethods>,
}

impl CallTraceLayer {
    /// Traces calls and records them in `metrics`, each served method (from
    /// `served`) in its own series.
    pub(crate) fn new(metrics: Metrics, served: Arc<ServedMethods>) -> Self {
        Self { metrics, served }
    }
}

impl<S> Layer<S> for CallTraceLayer {
    type Service = CallTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallTrace {
            inner,
            metrics: self.metrics.clone(),
            served: self.served.clone(),
        }
    }
}

/// Opens a span per call and records how the call ended.
#[derive(Debug, Clone)]
pub struct CallTrace<S> {
    inner: S,
    metrics: Metrics,
    served: Arc<ServedMethods>,
}

impl<S> Service<http::Request<Body>> for CallTrace<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
{
    type Response = http::Response<TracedBody>;
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
        let path = request.uri().path();
        let calls = self.metrics.calls();
        let (method, unknown_path) = match self.served.get(path) {
            Some(served) => (served.metrics(calls, path), None),
            None => (calls.unknown(), request.uri().path_and_query().cloned()),
        };
        let span = debug_span!(
            target: "quartet::call",
            "call",
            method = field::Empty,
            peer = field::Empty,
            code = field::Empty,
            latency_ms = field::Empty,
        );
        if !span.is_disabled() {
            span.record("method", logged_path(path, unknown_path.is_none()).as_ref());
            if let Some(peer) = peer {
                span.record("peer", field::display(peer));
            }
            crate::telemetry::continue_remote_trace(&span, request.headers());
        }
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
                unknown_path,
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
    /// The path of a call to a method the server does not serve, for the
    /// WARN line of a fault (the series says only "unknown").
    unknown_path: Option<PathAndQuery>,
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
                let method = match &self.unknown_path {
                    Some(path) => logged_path(path.path(), false),
                    None => Cow::Borrowed(self.method.path()),
                };
                let peer = self.peer.map(field::display);
                warn!(target: "quartet::call", method = method.as_ref(), peer, code = name, latency_ms, "call failed");
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
    type Output = Result<http::Response<TracedBody>, E>;

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
        let mut response = match result {
            Ok(response) => response,
            Err(error) => {
                record.finish(Code::Unknown);
                return Poll::Ready(Err(error));
            }
        };
        let record = match status_code(response.headers()) {
            Some(code) => {
                // Trailers-only: the call is over before any message.
                record.finish(outcome(code, response.headers_mut()));
                None
            }
            None => Some(record),
        };
        Poll::Ready(Ok(response.map(|inner| TracedBody { inner, record })))
    }
}

pin_project! {
    /// The response body of a call through [`CallTrace`]: records the call's
    /// status from its trailers (`record` is `None` once the call is over).
    ///
    /// A type of its own rather than a boxed [`Body`]: tonic boxes whatever
    /// body the outermost layer answers with, so boxing it here too would be
    /// one more allocation per call (issue 19 counted them).
    pub struct TracedBody {
        #[pin]
        inner: Body,
        record: Option<CallRecord>,
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
        let Some(record) = this.record.as_mut() else {
            return this.inner.poll_frame(cx);
        };
        let mut polled = {
            let _entered = record.span.enter();
            this.inner.poll_frame(cx)
        };
        match &mut polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_mut()
                    && let Some(code) = status_code(trailers)
                {
                    record.finish(outcome(code, trailers));
                }
            }
            Poll::Ready(Some(Err(status))) => {
                let code = if status.metadata().contains_key(ABANDONED_BY_CLIENT) {
                    Code::Cancelled
                } else {
                    status.code()
                };
                record.finish(code);
            }
            Poll::Ready(None) => record.finish(Code::Unknown),
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
