//! [`RequestTimeout`]: a server-side bound on how long a call may take to
//! answer, reported as DEADLINE_EXCEEDED (the gRPC spec's code for it).
//!
//! It bounds the time until the response starts: the whole of a unary call, and
//! the set-up of a streaming one. Long-lived streams are bounded by the client's
//! deadline and by the drain at shutdown, not by this.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use pin_project_lite::pin_project;
use tokio::time::{Sleep, sleep};
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

/// Builds [`RequestTimeout`] services.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimeoutLayer {
    timeout: Duration,
}

impl RequestTimeoutLayer {
    /// Answers DEADLINE_EXCEEDED when a call has not answered within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout {
            inner,
            timeout: self.timeout,
        }
    }
}

/// Races each call against the server's request timeout.
#[derive(Debug, Clone)]
pub struct RequestTimeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S, Request, ResBody> Service<Request> for RequestTimeout<S>
where
    S: Service<Request, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RequestTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        RequestTimeoutFuture {
            inner: self.inner.call(request),
            deadline: None,
            timeout: self.timeout,
        }
    }
}

pin_project! {
    /// The response future of [`RequestTimeout`].
    ///
    /// The timer is armed only when the first poll does not answer: most unary
    /// calls answer at once, and for them a timer (a clock read and a timer
    /// wheel entry, added and removed) would be pure cost. The time before that
    /// first poll is spent queued in the connection, not in the call.
    pub struct RequestTimeoutFuture<F> {
        #[pin]
        inner: F,
        deadline: Option<Pin<Box<Sleep>>>,
        timeout: Duration,
    }
}

impl<F, ResBody, E> Future for RequestTimeoutFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    ResBody: Default,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.inner.poll(cx) {
            return Poll::Ready(output);
        }
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(sleep(*this.timeout)));
        if deadline.as_mut().poll(cx).is_ready() {
            let status = Status::deadline_exceeded(format!(
                "no answer within the server's request timeout of {}",
                humantime::format_duration(*this.timeout)
            ));
            return Poll::Ready(Ok(status.into_http()));
        }
        Poll::Pending
    }
}
