//! [`MessageSizeLimit`]: refuses a gRPC request message larger than the limit
//! with RESOURCE_EXHAUSTED, as the gRPC spec asks, before it is buffered.
//!
//! tonic's own check answers OUT_OF_RANGE. This layer reads the 5-byte
//! length prefix of each message as the request body streams through and fails
//! the body with a RESOURCE_EXHAUSTED [`Status`] as soon as a prefix is too large;
//! tonic hands that status to the caller unchanged.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::{Status, body::Body};
use tower_layer::Layer;
use tower_service::Service;

/// Tracks gRPC message boundaries across body chunks of any size.
///
/// A gRPC message is a 1-byte compression flag, a 4-byte big-endian length and
/// that many bytes. The scanner never buffers payload; it only counts.
#[derive(Debug, Clone)]
pub struct FrameScanner {
    limit: usize,
    prefix: [u8; 5],
    prefix_len: usize,
    payload_left: usize,
}

/// A message whose declared length is over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversize {
    /// The declared length.
    pub len: usize,
    /// The limit it broke.
    pub limit: usize,
    /// Where the oversize message's prefix starts in the chunk that completed
    /// it (0 when it started in an earlier chunk). The bytes before it are whole
    /// messages that must still be delivered.
    pub starts_at: usize,
}

impl FrameScanner {
    /// A scanner that allows messages of up to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            prefix: [0; 5],
            prefix_len: 0,
            payload_left: 0,
        }
    }

    /// Feeds the next chunk of the body; fails on the first oversize prefix.
    pub fn scan(&mut self, chunk: &[u8]) -> Result<(), Oversize> {
        let mut at = 0;
        while at < chunk.len() {
            if self.payload_left > 0 {
                let skipped = self.payload_left.min(chunk.len() - at);
                self.payload_left -= skipped;
                at += skipped;
                continue;
            }
            let prefix_starts_at = at.saturating_sub(self.prefix_len);
            let taken = (self.prefix.len() - self.prefix_len).min(chunk.len() - at);
            self.prefix[self.prefix_len..self.prefix_len + taken]
                .copy_from_slice(&chunk[at..at + taken]);
            self.prefix_len += taken;
            at += taken;
            if self.prefix_len == self.prefix.len() {
                self.prefix_len = 0;
                let [_, a, b, c, d] = self.prefix;
                let len = u32::from_be_bytes([a, b, c, d]) as usize;
                if len > self.limit {
                    return Err(Oversize {
                        len,
                        limit: self.limit,
                        starts_at: prefix_starts_at,
                    });
                }
                self.payload_left = len;
            }
        }
        Ok(())
    }
}

/// Builds [`MessageSizeLimit`] services.
#[derive(Debug, Clone, Copy)]
pub struct MessageSizeLimitLayer {
    limit: usize,
}

impl MessageSizeLimitLayer {
    /// Allows request messages of up to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for MessageSizeLimitLayer {
    type Service = MessageSizeLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MessageSizeLimit {
            inner,
            limit: self.limit,
        }
    }
}

/// Wraps each request body so an oversize message fails it with RESOURCE_EXHAUSTED.
#[derive(Debug, Clone)]
pub struct MessageSizeLimit<S> {
    inner: S,
    limit: usize,
}

impl<S> Service<http::Request<Body>> for MessageSizeLimit<S>
where
    S: Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let limit = self.limit;
        self.inner.call(request.map(|body| {
            Body::new(LimitedBody {
                inner: body,
                scanner: FrameScanner::new(limit),
                refusal: None,
                failed: false,
            })
        }))
    }
}

pin_project! {
    /// A request body that fails once a message is declared too large, after
    /// delivering the whole messages before it.
    struct LimitedBody {
        #[pin]
        inner: Body,
        scanner: FrameScanner,
        // The error to return on the next poll, once the bytes before the
        // oversize message are delivered.
        refusal: Option<Status>,
        failed: bool,
    }
}

impl HttpBody for LimitedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        if let Some(refusal) = this.refusal.take() {
            *this.failed = true;
            return Poll::Ready(Some(Err(refusal)));
        }
        let frame = match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        let Some(data) = frame.data_ref() else {
            return Poll::Ready(Some(Ok(frame)));
        };
        let Err(Oversize {
            len,
            limit,
            starts_at,
        }) = this.scanner.scan(data)
        else {
            return Poll::Ready(Some(Ok(frame)));
        };
        let refusal = Status::resource_exhausted(format!(
            "message of {len} bytes is larger than the limit of {limit} bytes"
        ));
        if starts_at == 0 {
            *this.failed = true;
            return Poll::Ready(Some(Err(refusal)));
        }
        *this.refusal = Some(refusal);
        Poll::Ready(Some(Ok(Frame::data(data.slice(..starts_at)))))
    }

    fn is_end_stream(&self) -> bool {
        self.failed || (self.refusal.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::{FrameScanner, Oversize};
    use proptest::prelude::*;

    fn message(len: usize) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
        bytes.resize(5 + len, 0xAB);
        bytes
    }

    #[test]
    fn message_at_the_limit_passes() {
        let mut scanner = FrameScanner::new(10);
        assert_eq!(scanner.scan(&message(10)), Ok(()));
    }

    #[test]
    fn message_over_the_limit_fails_on_its_prefix() {
        let mut scanner = FrameScanner::new(10);
        // Only the prefix has arrived: the payload is never waited for.
        assert_eq!(
            scanner.scan(&message(11)[..5]),
            Err(Oversize {
                len: 11,
                limit: 10,
                starts_at: 0
            })
        );
    }

    #[test]
    fn oversize_message_after_whole_ones_says_where_it_starts() {
        let mut scanner = FrameScanner::new(10);
        let mut chunk = message(3);
        chunk.extend_from_slice(&message(11));
        assert_eq!(
            scanner.scan(&chunk).map_err(|oversize| oversize.starts_at),
            Err(8)
        );
    }

    proptest! {
        #[test]
        fn chunking_never_changes_the_verdict(
            lens in prop::collection::vec(0usize..64, 1..8),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
            limit in 0usize..64,
        ) {
            let body: Vec<u8> = lens.iter().flat_map(|&len| message(len)).collect();
            let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(body.len() + 1)).collect();
            points.extend([0, body.len()]);
            points.sort_unstable();

            let mut scanner = FrameScanner::new(limit);
            // Where, in the whole body, the scanner says the oversize message starts.
            let verdict = points.windows(2).try_for_each(|pair| {
                scanner.scan(&body[pair[0]..pair[1]]).map_err(|oversize| {
                    (oversize.len, pair[0] + oversize.starts_at)
                })
            });

            let mut offset = 0;
            let mut expected = Ok(());
            for &len in &lens {
                if len > limit {
                    expected = Err((len, offset));
                    break;
                }
                offset += 5 + len;
            }
            match (verdict, expected) {
                (Ok(()), Ok(())) => {}
                (Err((len, start)), Err((expected_len, expected_start))) => {
                    prop_assert_eq!(len, expected_len);
                    // A prefix split across chunks reports 0 in its last chunk,
                    // which lies at or after the true start: never before it.
                    prop_assert!(start >= expected_start && start < expected_start + 5);
                }
                (verdict, expected) => prop_assert!(false, "{:?} != {:?}", verdict, expected),
            }
        }
    }
}
