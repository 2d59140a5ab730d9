//! # quartet-gateway
//!
//! The original plain-text line protocols, so `nc` and telnet users reach the
//! same services gRPC users do: transform (TCP 7001), database (7002), weather
//! (7003), chat (TCP and UDP 7004). Each request line becomes a gRPC call on one
//! multiplexed channel per service; `docs/protocol.md` is the exact grammar.
//!
//! # Layout
//! - [`options`]: listeners (each can be `off`), limits, upstream addresses.
//! - [`codec`]: [`codec::LineCodec`], bounded lines that tolerate bad UTF-8.
//! - [`lines`]: the connection driver of the request/answer protocols:
//!   pipelined requests run concurrently upstream, answers go out in order.
//! - [`protocol`]: one module per request/answer protocol (parse, call, format).
//! - [`chat`]: the chat session state machine, over TCP and over UDP.
//! - [`upstreams`]: the gRPC clients and the `ERR <CODE> <message>` lines.
//! - [`gateway`]: binding, accept loops, the connection limit, shutdown.
//! - `main.rs`: the `quartet-gateway` binary.

pub mod chat;
pub mod codec;
pub mod gateway;
pub mod lines;
pub mod options;
pub mod protocol;
pub mod upstreams;

pub use gateway::{BoundGateway, Gateway, RunningGateway};
pub use options::{GatewayOptions, Listen, Protocol, UpstreamOptions};
pub use upstreams::Upstreams;

/// The gateway's health port: no service of its own, but Kubernetes' gRPC
/// probes need one (an addition to DESIGN.md's port table).
pub const DEFAULT_HEALTH_PORT: u16 = 50055;
