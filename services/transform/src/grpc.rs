//! The gRPC adapter: decode the request into an [`Operation`], apply it, encode
//! the answer. No transform logic lives here.

use std::pin::Pin;

use futures_util::{Stream, StreamExt as _};
use prost::Message as _;
use quartet_proto::transform::v1::{
    self as pb, TransformRequest, TransformResponse, transform_service_server::TransformService,
};
use quartet_runtime::{DrainSignal, Limits, UntilDrained};
use tonic::{Request, Response, Status, Streaming};

use crate::{error::TransformError, text::Operation};

/// Texts longer than this are transformed on the blocking pool: a multi-megabyte
/// grapheme walk would otherwise stall every call sharing the worker thread.
const INLINE_TEXT_BYTES: usize = 64 * 1024;

impl TryFrom<i32> for Operation {
    type Error = TransformError;

    fn try_from(value: i32) -> Result<Self, Self::Error> {
        match pb::Operation::try_from(value) {
            Ok(pb::Operation::Upper) => Ok(Self::Upper),
            Ok(pb::Operation::Lower) => Ok(Self::Lower),
            Ok(pb::Operation::Reverse) => Ok(Self::Reverse),
            Ok(pb::Operation::Unspecified) => Err(TransformError::MissingOperation),
            Err(_) => Err(TransformError::UnknownOperation(value)),
        }
    }
}

/// Implements `quartet.transform.v1.TransformService`.
#[derive(Debug, Clone)]
pub struct TransformHandler {
    max_message_bytes: usize,
    drain: DrainSignal,
}

impl Default for TransformHandler {
    /// A handler within the default message limit whose streams never drain:
    /// [`crate::server`] gives it the server's limit and drain signal.
    fn default() -> Self {
        Self {
            max_message_bytes: Limits::default().max_message_bytes,
            drain: DrainSignal::never(),
        }
    }
}

impl TransformHandler {
    /// The same handler, its answers kept within `max_message_bytes` and its
    /// streams ended when `drain` fires: what the hosting server decides.
    #[must_use]
    pub fn hosted(self, max_message_bytes: usize, drain: DrainSignal) -> Self {
        Self {
            max_message_bytes,
            drain,
        }
    }
}

/// Applies the request's operation; the answer must fit in `max_message_bytes`.
async fn transform(
    request: TransformRequest,
    max_message_bytes: usize,
) -> Result<TransformResponse, TransformError> {
    let operation = Operation::try_from(request.operation)?;
    let text = request.text;
    let text = if text.len() > INLINE_TEXT_BYTES {
        tokio::task::spawn_blocking(move || operation.apply(&text))
            .await
            .map_err(|error| TransformError::TaskFailed(error.to_string()))?
    } else {
        operation.apply(&text)
    };
    let response = TransformResponse { text };
    let len = response.encoded_len();
    if len > max_message_bytes {
        return Err(TransformError::ResultTooLarge {
            len,
            limit: max_message_bytes,
        });
    }
    Ok(response)
}

/// The answers of one `TransformStream`, in request order.
type Answers = Pin<Box<dyn Stream<Item = Result<TransformResponse, Status>> + Send>>;

#[tonic::async_trait]
impl TransformService for TransformHandler {
    async fn transform(
        &self,
        request: Request<TransformRequest>,
    ) -> Result<Response<TransformResponse>, Status> {
        let answer = transform(request.into_inner(), self.max_message_bytes).await?;
        Ok(Response::new(answer))
    }

    type TransformStreamStream = Answers;

    async fn transform_stream(
        &self,
        request: Request<Streaming<TransformRequest>>,
    ) -> Result<Response<Self::TransformStreamStream>, Status> {
        // Requests are answered one at a time, so order is kept and a slow
        // reader slows the stream instead of growing a buffer; a request
        // taken before the drain is answered before the goodbye.
        let limit = self.max_message_bytes;
        let answers = request
            .into_inner()
            .map(move |request| async move { Ok(transform(request?, limit).await?) });
        Ok(Response::new(Box::pin(UntilDrained::answering(
            answers,
            &self.drain,
            || [Err(TransformError::ShuttingDown.into())],
        ))))
    }
}
