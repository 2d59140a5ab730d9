//! [`RequestFraming`]: checks the gRPC framing of every request body as it
//! streams through, and says what went wrong with the status the gRPC spec
//! (or plain honesty) asks for, where tonic's own answer would mislead:
//!
//! - a message declared larger than the limit: RESOURCE_EXHAUSTED, before it
//!   is buffered (tonic's own check answers OUT_OF_RANGE);
//! - a body that ends inside a message (its prefix promised more bytes than
//!   came before END_STREAM): INVALID_ARGUMENT;
//! - a unary or server-streaming call whose body ends without any message:
//!   INVALID_ARGUMENT (tonic answers INTERNAL "Missing request message");
//! - a body that fails because the client went away (it reset the stream, or
//!   the connection closed): a status marked as abandoned, which the call
//!   trace records as CANCELLED. tonic would turn the transport error into
//!   UNKNOWN, and a reset into a clean end of the body, then INTERNAL.
//!
//! It reads only the 5-byte prefix of each message (a compression flag and a
//! big-endian length) and counts payload bytes; it never buffers payload. It
//! must be the first layer to wrap the request body, so that an error from the
//! body it wraps is the transport's.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::{Status, body::Body};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    call_trace,
    served_methods::{ServedMethod, ServedMethods},
};

/// Length of a message's prefix: the compression flag and the 4-byte length.
const PREFIX_LEN: usize = 5;

/// Tracks gRPC message boundaries across body chunks of any size.
///
/// A gRPC message is a 1-byte compression flag, a 4-byte big-endian length and
/// that many bytes. The scanner never buffers payload; it only counts.
#[derive(Debug, Clone)]
pub struct FrameScanner {
    limit: usize,
    prefix: [u8; PREFIX_LEN],
    prefix_len: usize,
    /// The declared length of the message being read.
    declared: usize,
    payload_left: usize,
    /// Messages whose prefix has been read.
    messages: usize,
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

/// Where a body that ended in the middle of a message stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutShort {
    /// Inside a prefix, after this many of its 5 bytes.
    InPrefix(usize),
    /// Inside a payload of `declared` bytes, `missing` short.
    InPayload {
        /// The length the prefix promised.
        declared: usize,
        /// The bytes that never came.
        missing: usize,
    },
}

impl FrameScanner {
    /// A scanner that allows messages of up to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            prefix: [0; PREFIX_LEN],
            prefix_len: 0,
            declared: 0,
            payload_left: 0,
            messages: 0,
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
            let taken = (PREFIX_LEN - self.prefix_len).min(chunk.len() - at);
            self.prefix[self.prefix_len..self.prefix_len + taken]
                .copy_from_slice(&chunk[at..at + taken]);
            self.prefix_len += taken;
            at += taken;
            if self.prefix_len == PREFIX_LEN {
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
                self.messages += 1;
                self.declared = len;
                self.payload_left = len;
            }
        }
        Ok(())
    }

    /// Messages begun so far (their prefix read).
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// Where the body stopped, if it stopped inside a message.
    pub fn cut_short(&self) -> Option<CutShort> {
        if self.prefix_len > 0 {
            return Some(CutShort::InPrefix(self.prefix_len));
        }
        (self.payload_left > 0).then_some(CutShort::InPayload {
            declared: self.declared,
            missing: self.payload_left,
        })
    }
}

/// Builds [`RequestFraming`] services.
#[derive(Debug, Clone)]
pub struct RequestFramingLayer {
    limit: usize,
    served: Arc<ServedMethods>,
}

impl RequestFramingLayer {
    /// Allows request messages of up to `limit` bytes; `served` says which
    /// calls must carry exactly one message.
    pub(crate) fn new(limit: usize, served: Arc<ServedMethods>) -> Self {
        Self { limit, served }
    }
}

impl<S> Layer<S> for RequestFramingLayer {
    type Service = RequestFraming<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestFraming {
            inner,
            limit: self.limit,
            served: self.served.clone(),
        }
    }
}

/// Wraps each request body in the checks of this module.
#[derive(Debug, Clone)]
pub struct RequestFraming<S> {
    inner: S,
    limit: usize,
    served: Arc<ServedMethods>,
}

impl<S> Service<http::Request<Body>> for RequestFraming<S>
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
        // Unknown paths are answered UNIMPLEMENTED without reading the body.
        let single_request = self
            .served
            .get(request.uri().path())
            .is_some_and(ServedMethod::single_request);
        let limit = self.limit;
        self.inner.call(request.map(|body| {
            Body::new(FramedBody {
                inner: body,
                scanner: FrameScanner::new(limit),
                single_request,
                refusal: None,
                failed: false,
            })
        }))
    }
}

pin_project! {
    /// A request body that fails with the status of the first thing wrong
    /// with it, after delivering the whole messages before it.
    struct FramedBody {
        #[pin]
        inner: Body,
        scanner: FrameScanner,
        // The call must carry exactly one message.
        single_request: bool,
        // The error to return on the next poll, once the bytes before the
        // oversize message are delivered.
        refusal: Option<Status>,
        failed: bool,
    }
}

impl FramedBody {
    /// Whether the body may end now: not inside a message, and not before the
    /// one message a single-request call needs.
    fn may_end(scanner: &FrameScanner, single_request: bool) -> bool {
        scanner.cut_short().is_none() && !(single_request && scanner.messages() == 0)
    }

    /// What is wrong with the body if it ends now.
    fn verdict_at_end(scanner: &FrameScanner, single_request: bool) -> Option<Status> {
        if Self::may_end(scanner, single_request) {
            return None;
        }
        let message = match scanner.cut_short() {
            Some(CutShort::InPrefix(got)) => format!(
                "truncated message: the request ended {got} bytes into a {PREFIX_LEN}-byte message prefix"
            ),
            Some(CutShort::InPayload { declared, missing }) => format!(
                "truncated message: its prefix promised {declared} bytes, the request ended {missing} bytes short"
            ),
            None => "no request message: this method takes exactly one".to_owned(),
        };
        Some(Status::invalid_argument(message))
    }
}

impl HttpBody for FramedBody {
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
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(transport))) => {
                *this.failed = true;
                return Poll::Ready(Some(Err(call_trace::abandoned(&transport))));
            }
            Poll::Ready(None) => {
                let verdict = Self::verdict_at_end(this.scanner, *this.single_request);
                *this.failed = verdict.is_some();
                return Poll::Ready(verdict.map(Err));
            }
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
        // A body whose end is an error is not over until that error is read.
        self.failed
            || (self.refusal.is_none()
                && self.inner.is_end_stream()
                && Self::may_end(&self.scanner, self.single_request))
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::{CutShort, FrameScanner, Oversize};
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

    #[test]
    fn a_body_that_stops_inside_a_message_is_cut_short() {
        let mut scanner = FrameScanner::new(100);
        scanner.scan(&message(10)[..3]).unwrap();
        assert_eq!(scanner.cut_short(), Some(CutShort::InPrefix(3)));
        scanner.scan(&message(10)[3..8]).unwrap();
        assert_eq!(
            scanner.cut_short(),
            Some(CutShort::InPayload {
                declared: 10,
                missing: 7
            })
        );
        scanner.scan(&message(10)[8..]).unwrap();
        assert_eq!(scanner.cut_short(), None);
        assert_eq!(scanner.messages(), 1);
    }

    #[test]
    fn an_empty_message_is_whole_after_its_prefix() {
        let mut scanner = FrameScanner::new(100);
        scanner.scan(&message(0)).unwrap();
        assert_eq!(scanner.cut_short(), None);
        assert_eq!(scanner.messages(), 1);
    }

    proptest! {
        #[test]
        fn a_body_is_cut_short_exactly_when_it_stops_between_boundaries(
            lens in prop::collection::vec(0usize..64, 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let body: Vec<u8> = lens.iter().flat_map(|&len| message(len)).collect();
            let cut = cut.index(body.len() + 1);
            let mut boundaries = vec![0];
            for &len in &lens {
                boundaries.push(boundaries[boundaries.len() - 1] + 5 + len);
            }

            let mut scanner = FrameScanner::new(64);
            scanner.scan(&body[..cut]).unwrap();
            prop_assert_eq!(scanner.cut_short().is_none(), boundaries.contains(&cut));
            let begun = boundaries.iter().filter(|&&start| start + 5 <= cut).count();
            prop_assert_eq!(scanner.messages(), begun);
        }

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
