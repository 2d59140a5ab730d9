//! # quartet-gateway
//!
//! The original plain-text line protocols, so `nc` and telnet users reach the
//! same services gRPC users do: transform (TCP 7001), database (7002), weather
//! (7003), chat (TCP and UDP 7004), and a web page with WebSockets (HTTP
//! 7080) for browsers. Each request line becomes a gRPC call (or,
//! for transform, a message on the connection's stream) on one multiplexed
//! channel per service; `docs/protocol.md` is the exact grammar. On one
//! connection, every command sees the effects of every command before it.
//!
//! # Layout
//! - [`options`]: listeners (each can be `off`), limits, upstream addresses.
//! - [`codec`]: [`codec::LineCodec`], bounded lines that tolerate bad UTF-8.
//! - [`connection`]: the connection driver of the request/answer protocols:
//!   reads lines, hands them to the connection's [`connection::Session`], writes
//!   answers in request order, several per write when they are ready together.
//! - [`ordered`]: the session of the unary-call protocols: reads run together,
//!   writes alone and in order.
//! - [`protocol`]: one module per request/answer protocol: a pure `parse` into
//!   a `Command`, an `apply` that calls the service (transform: its stream).
//! - [`reply`]: [`reply::Reply`] and every shared answer (`ERR`, `HELP`, `QUIT`).
//! - [`chat`]: the chat session state machine, over TCP and over UDP.
//! - [`web`]: the web door: the page, and chat and weather over WebSockets.
//! - [`upstreams`]: the gRPC clients of the four services.
//! - [`server`]: binding, accept loops, the connection limit, shutdown.
//! - `workers`: the threads serving text connections, one single-threaded
//!   runtime and one set of upstream channels each (shared-nothing).
//! - `main.rs`: the `quartet-gateway` binary.

pub mod chat;
pub mod codec;
pub mod connection;
pub mod options;
pub mod ordered;
pub mod protocol;
pub mod reply;
pub mod server;
pub mod upstreams;
pub mod web;
mod workers;

pub use options::{GatewayOptions, Listen, Protocol, UpstreamOptions};
pub use server::{BoundGateway, Gateway, RunningGateway};
pub use upstreams::Upstreams;

/// The gateway's health port: no service of its own, but Kubernetes' gRPC
/// probes need one (an addition to DESIGN.md's port table).
pub const DEFAULT_HEALTH_PORT: u16 = 50055;
