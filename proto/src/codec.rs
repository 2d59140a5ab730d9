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
//!
//! [`OutgoingCodec`] is the same codec for a server stream whose answers may
//! be encoded already ([`Outgoing`]): a chat room encodes each line once,
//! not once per member.

use std::marker::PhantomData;

use bytes::{BufMut as _, Bytes};
use prost::Message;
use tonic::{
    Code, Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
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

/// An answer of a server stream: a message of this stream alone, encoded as
/// it is sent, or one that many streams send alike, encoded once (see
/// [`encode`]) and its bytes shared: a chat room's line reaches every member.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing<T> {
    /// Encoded by the stream's codec when sent.
    Message(T),
    /// Already encoded: written as it is.
    Encoded(Bytes),
}

/// `message` encoded once, to send as [`Outgoing::Encoded`] on many streams.
pub fn encode<T: Message>(message: &T) -> Bytes {
    message.encode_to_vec().into()
}

/// [`ProtoCodec`] for streams that answer with [`Outgoing`] messages: it
/// decodes as that codec does.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutgoingCodec<T, U> {
    decoding: ProtoCodec<T, U>,
}

impl<T, U> Codec for OutgoingCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = Outgoing<T>;
    type Decode = U;
    type Encoder = OutgoingEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        OutgoingEncoder {
            inner: ProstEncoder::new(buffer_settings()),
        }
    }

    fn decoder(&mut self) -> Self::Decoder {
        self.decoding.decoder()
    }
}

/// Encodes an [`Outgoing::Message`] with prost and copies an
/// [`Outgoing::Encoded`] as it is.
#[derive(Debug)]
pub struct OutgoingEncoder<T> {
    inner: ProstEncoder<T>,
}

impl<T: Message> Encoder for OutgoingEncoder<T> {
    type Item = Outgoing<T>;
    type Error = Status;

    fn encode(&mut self, item: Outgoing<T>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match item {
            Outgoing::Message(message) => self.inner.encode(message, buf),
            Outgoing::Encoded(bytes) => {
                buf.put_slice(&bytes);
                Ok(())
            }
        }
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}
