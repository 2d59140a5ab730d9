//! Waiting on gRPC answers in tests: every wait is bounded by [`DEADLINE`], and
//! what a test does not expect panics with what came instead, as a failed
//! assertion would.

use std::{fmt::Debug, future::IntoFuture};

use tokio::{sync::mpsc, time::timeout};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_client::HealthClient};

use crate::DEADLINE;

/// Requests a test sends one at a time, on a stream that stays open until the
/// sender is dropped.
pub fn request_stream<T>() -> (mpsc::Sender<T>, ReceiverStream<T>) {
    // A test sends a few requests and reads their answers in between.
    let (sender, receiver) = mpsc::channel(4);
    (sender, ReceiverStream::new(receiver))
}

/// A bidirectional stream `call` opens (`|requests| client.chat(requests)`),
/// within [`DEADLINE`]: the sender of its requests and its answers.
///
/// # Panics
/// When the call fails or takes longer.
pub async fn open_stream<T, R, F, Fut>(call: F) -> (mpsc::Sender<T>, Streaming<R>)
where
    F: FnOnce(ReceiverStream<T>) -> Fut,
    Fut: IntoFuture<Output = Result<tonic::Response<Streaming<R>>, Status>>,
{
    let (sender, requests) = request_stream();
    match within(call(requests)).await {
        Ok(answers) => (sender, answers.into_inner()),
        Err(status) => panic!("cannot open the stream: {status:?}"),
    }
}

/// What `future` gives, within [`DEADLINE`].
///
/// # Panics
/// When it takes longer: a hang fails the test instead of stalling CI.
pub async fn within<F: IntoFuture>(future: F) -> F::Output {
    match timeout(DEADLINE, future).await {
        Ok(output) => output,
        Err(elapsed) => panic!("nothing within {DEADLINE:?}: {elapsed}"),
    }
}

/// The next message of `stream`.
///
/// # Panics
/// When the stream fails or ends instead, or sends nothing within [`DEADLINE`].
pub async fn next<T>(stream: &mut Streaming<T>) -> T {
    match within(stream.message()).await {
        Ok(Some(message)) => message,
        Ok(None) => panic!("the stream ended instead of sending a message"),
        Err(status) => panic!("the stream failed instead of sending a message: {status:?}"),
    }
}

/// The status `stream` fails with next.
///
/// # Panics
/// When it sends a message or ends cleanly instead, or nothing within
/// [`DEADLINE`].
pub async fn failure<T: Debug>(stream: &mut Streaming<T>) -> Status {
    match within(stream.message()).await {
        Err(status) => status,
        Ok(other) => panic!("the stream sent {other:?} instead of failing"),
    }
}

/// Waits for `stream` to end cleanly (an OK status).
///
/// # Panics
/// When it sends a message or fails instead, or nothing within [`DEADLINE`].
pub async fn end<T: Debug>(stream: &mut Streaming<T>) {
    let item = within(stream.message()).await;
    assert!(
        matches!(item, Ok(None)),
        "the stream sent {item:?} instead of ending"
    );
}

/// Asserts that `status` has `code` and a message that says `words`.
///
/// # Panics
/// When it does not.
pub fn assert_status(status: &Status, code: Code, words: &str) {
    assert!(
        status.code() == code && status.message().contains(words),
        "expected {code:?} saying {words:?}, got {status:?}"
    );
}

/// Watches the health of `service` (`""` for the whole server) on `channel`.
///
/// # Panics
/// When the server refuses the watch or does not answer within [`DEADLINE`].
pub async fn watch_health(channel: Channel, service: &str) -> Streaming<HealthCheckResponse> {
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    match within(HealthClient::new(channel).watch(request)).await {
        Ok(watch) => watch.into_inner(),
        Err(status) => panic!("health watch refused: {status:?}"),
    }
}
