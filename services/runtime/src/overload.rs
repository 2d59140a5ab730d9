//! [`InFlightLimit`]: at most N calls being handled at once per server; the next
//! one is answered RESOURCE_EXHAUSTED at once rather than queued, so an
//! overloaded server stays fast to refuse and clients can back off or go
//! elsewhere. A call counts until its response starts: all of a unary call, the
//! set-up of a stream. Health checks are never refused, so probes keep telling
//! the truth under load.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use futures_util::future::Either;
use pin_project_lite::pin_project;
use tonic::{Status, body::Body};
use tower_layer::Layer;
use tower_service::Service;

use crate::health::HEALTH_SERVICE_NAME;

/// Builds [`InFlightLimit`] services sharing one budget.
#[derive(Debug, Clone)]
pub struct InFlightLimitLayer {
    budget: Arc<InFlight>,
}

impl InFlightLimitLayer {
    /// Allows `limit` calls in flight across every connection of a server.
    pub fn new(limit: usize) -> Self {
        Self {
            budget: Arc::new(InFlight {
                calls: AtomicUsize::new(0),
                limit,
            }),
        }
    }
}

impl<S> Layer<S> for InFlightLimitLayer {
    type Service = InFlightLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightLimit {
            inner,
            budget: self.budget.clone(),
        }
    }
}

/// Refuses calls beyond the server's in-flight budget.
#[derive(Debug, Clone)]
pub struct InFlightLimit<S> {
    inner: S,
    budget: Arc<InFlight>,
}

impl<S> Service<http::Request<Body>> for InFlightLimit<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future =
        Either<Permitted<S::Future>, std::future::Ready<Result<http::Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let health = request
            .uri()
            .path()
            .strip_prefix('/')
            .is_some_and(|path| path.starts_with(HEALTH_SERVICE_NAME));
        let permit = if health {
            None
        } else if let Some(permit) = InFlight::try_enter(&self.budget) {
            Some(permit)
        } else {
            let status = Status::resource_exhausted(format!(
                "server overloaded: {} calls in flight; retry with backoff",
                self.budget.limit
            ));
            return Either::Right(std::future::ready(Ok(status.into_http())));
        };
        Either::Left(Permitted {
            inner: self.inner.call(request),
            _permit: permit,
        })
    }
}

pin_project! {
    /// A call holding its place in the budget until its response starts.
    pub struct Permitted<F> {
        #[pin]
        inner: F,
        _permit: Option<Permit>,
    }
}

impl<F: Future> Future for Permitted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

/// The count of calls in flight. A plain atomic counter rather than a
/// semaphore: calls never wait for a permit (they are refused at once), and
/// handing one back to a semaphore takes its waiters' lock, which two busy
/// worker threads then contend for on every call.
#[derive(Debug)]
pub struct InFlight {
    calls: AtomicUsize,
    limit: usize,
}

impl InFlight {
    /// Counts one more call, unless `limit` are in flight already.
    fn try_enter(this: &Arc<Self>) -> Option<Permit> {
        let before = this.calls.fetch_add(1, Ordering::AcqRel);
        if before >= this.limit {
            this.calls.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Permit(this.clone()))
    }
}

/// One call in flight; dropping it (when the response future ends) counts
/// the call out.
#[derive(Debug)]
pub struct Permit(Arc<InFlight>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::AcqRel);
    }
}
