//! The codec behind every generated client and server.
//!
//! It is tonic-prost's codec with two changes. A message that does not decode
//! (a string field that is not UTF-8, a truncated field) is INVALID_ARGUMENT, not
//! INTERNAL. On a server that is the honest answer, since the client sent bad
//! bytes, and it is what our contracts promise for invalid input. A client that
//! receives an undecodable answer sees the same code; our servers never send one.
//!
//! And the buffer each call encodes into and decodes from starts at
//! [`BUFFER_BYTES`] rather than tonic's 8 KiB: most of our messages are tens of
//! bytes, a larger one grows the buffer, and every unary call allocates one
//! buffer each way (issue 19).

use std::marker::PhantomData;

use prost::Message;
use tonic::{
    Code, Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// First capacity of a call's encode and decode buffers: small enough to come
/// from the allocator's per-thread cache (glibc's tcache holds blocks up to
/// 1032 bytes; 8 KiB blocks go through its bins), and to keep a long-lived
/// stream's idle buffers small.
pub const BUFFER_BYTES: usize = 1024;

/// Encoded bytes a stream gathers before it yields them to the transport
/// (tonic's default, which it does not export).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// tonic's settings with [`BUFFER_BYTES`] buffers.
fn buffer_settings() -> BufferSettings {
    BufferSettings::new(BUFFER_BYTES, YIELD_THRESHOLD)
}

/// A prost codec that reports undecodable messages as INVALID_ARGUMENT.
#[derive(Debug, Clone, Copy)]
pub struct ProtoCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(buffer_settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder {
            inner: ProstDecoder::new(buffer_settings()),
        }
    }
}

/// Decodes with prost and maps decode failures to INVALID_ARGUMENT.
#[derive(Debug)]
pub struct ProtoDecoder<U> {
    inner: ProstDecoder<U>,
}

impl<U: Message + Default> Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.inner.decode(buf).map_err(|status| {
            // tonic-prost reports every prost::DecodeError as INTERNAL.
            if status.code() == Code::Internal {
                Status::invalid_argument(format!("malformed message: {}", status.message()))
            } else {
                status
            }
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}
