//! The gRPC adapter: decode the request into an [`Operation`], apply it, encode
//! the answer. No transform logic lives here.

use std::pin::Pin;

use futures_util::{Stream, stream};
use prost::Message as _;
use quartet_proto::transform::v1::{
    self as pb, TransformRequest, TransformResponse, transform_service_server::TransformService,
};
use quartet_runtime::DrainSignal;
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

impl TransformHandler {
    /// A handler whose answers stay within `max_message_bytes` and whose streams
    /// end when `drain` fires.
    pub fn new(max_message_bytes: usize, drain: DrainSignal) -> Self {
        Self {
            max_message_bytes,
            drain,
        }
    }

    async fn transform(&self, request: TransformRequest) -> Result<TransformResponse, Status> {
        let operation = Operation::try_from(request.operation)?;
        let text = request.text;
        let text = if text.len() > INLINE_TEXT_BYTES {
            tokio::task::spawn_blocking(move || operation.apply(&text))
                .await
                .map_err(|error| Status::internal(format!("transform task failed: {error}")))?
        } else {
            operation.apply(&text)
        };
        let response = TransformResponse { text };
        let len = response.encoded_len();
        if len > self.max_message_bytes {
            return Err(TransformError::ResultTooLarge {
                len,
                limit: self.max_message_bytes,
            }
            .into());
        }
        Ok(response)
    }
}

/// The answers of one `TransformStream`, in request order.
type Answers = Pin<Box<dyn Stream<Item = Result<TransformResponse, Status>> + Send>>;

/// Where one `TransformStream` call stands.
struct StreamState {
    handler: TransformHandler,
    requests: Streaming<TransformRequest>,
    ended: bool,
}

impl StreamState {
    /// The next answer, or `None` once the stream is over. Requests are answered
    /// one at a time, so order is kept and a slow reader slows the stream
    /// instead of growing a buffer.
    async fn next_answer(mut self) -> Option<(Result<TransformResponse, Status>, Self)> {
        if self.ended {
            return None;
        }
        let answer = tokio::select! {
            biased;
            () = self.handler.drain.draining() => {
                Err(Status::unavailable("server is shutting down; retry unanswered requests"))
            }
            request = self.requests.message() => match request {
                Ok(Some(request)) => self.handler.transform(request).await,
                Ok(None) => return None,
                Err(status) => Err(status),
            },
        };
        self.ended = answer.is_err();
        Some((answer, self))
    }
}

#[tonic::async_trait]
impl TransformService for TransformHandler {
    async fn transform(
        &self,
        request: Request<TransformRequest>,
    ) -> Result<Response<TransformResponse>, Status> {
        self.transform(request.into_inner())
            .await
            .map(Response::new)
    }

    type TransformStreamStream = Answers;

    async fn transform_stream(
        &self,
        request: Request<Streaming<TransformRequest>>,
    ) -> Result<Response<Self::TransformStreamStream>, Status> {
        let state = StreamState {
            handler: self.clone(),
            requests: request.into_inner(),
            ended: false,
        };
        Ok(Response::new(Box::pin(stream::unfold(
            state,
            StreamState::next_answer,
        ))))
    }
}
