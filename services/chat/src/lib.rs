//! # quartet-chat
//!
//! The chat service: the classic two-person UDP chat grown into rooms over
//! bidirectional gRPC streams (`quartet.chat.v1.ChatService`). Each member
//! joins a room with a nick, says lines, and receives every line of the room in
//! one order, with per-room sequence numbers, history on join, exact replay
//! `since_seq`, explicit gaps, and presence events.
//!
//! # Layout
//! - [`names`]: [`RoomName`] and [`Nick`], validated once at the edge.
//! - [`event`]: the domain's events ([`ChatLine`], [`Presence`], [`RoomEvent`]).
//! - [`hub`]: [`RoomHub`], the rooms of one server: finding, creating and
//!   forgetting them; `hub/room.rs` is one room's members, sequencing,
//!   history ring, and the bounded live feed every member reads.
//! - [`session`]: one member's rules: line size, rate limit ([`rate`]), the
//!   [`session::Cursor`] that turns a lossy feed into lines plus Gaps, and
//!   the [`session::Outbound`] events a member is shown.
//! - [`member`]: one member's stream: its Join, then its requests and the
//!   room's feed turned into what it is shown, until it leaves or the server
//!   drains.
//! - [`backplane`]: the [`Backplane`] trait; [`LocalBackplane`] (in-process,
//!   the default) and [`NatsBackplane`] (replicas sharing rooms over NATS;
//!   `backplane/nats/` splits it into streams, presence and nick claims), and
//!   [`AnyBackplane`], whichever the flags chose.
//! - [`config`]: [`ChatOptions`], the service's flags: [`BackplaneOptions`]
//!   and [`ChatConfig`].
//! - [`metrics`]: room and member gauges, counted from the hub when scraped.
//! - [`error`]: [`ChatError`] and its one mapping to a gRPC status.
//! - [`grpc`]: the thin adapter from the generated service trait to the above.
//! - This file: the shape every Quartet service shares. [`handler`] builds
//!   the service from its [`ChatOptions`]; [`server`] hosts a handler on a
//!   [`GrpcServer`] of the shared runtime.
//! - `main.rs`: the `quartet-chat` binary.

pub mod backplane;
pub mod config;
pub mod error;
pub mod event;
pub mod grpc;
pub mod hub;
pub mod member;
pub mod metrics;
pub mod names;
pub mod rate;
pub mod session;

use std::sync::Arc;

use quartet_proto::{
    MessageLimit as _, chat::v1::preencoded::chat_service_server::ChatServiceServer,
};
use quartet_runtime::{GrpcServer, ServerOptions, Shutdown};

pub use backplane::{AnyBackplane, Backplane, LocalBackplane, NatsBackplane, NatsOptions};
pub use config::{BackplaneOptions, ChatConfig, ChatOptions};
pub use error::ChatError;
pub use event::{ChatLine, Encoding, Presence, RoomEvent};
pub use grpc::ChatHandler;
pub use hub::{HubLimits, RoomHub};
pub use names::{Nick, RoomName};

/// The default gRPC port (DESIGN.md).
pub const DEFAULT_PORT: u16 = 50054;

/// The handler `options` describe: connects to NATS (and prepares its
/// buckets) first when a URL is given.
pub async fn handler(options: &ChatOptions) -> Result<ChatHandler<AnyBackplane>, ChatError> {
    let backplane = AnyBackplane::open(options).await?;
    Ok(ChatHandler::new(
        Arc::new(backplane),
        options.config.clone(),
    ))
}

/// A server hosting `handler`, with the shared runtime around it: the
/// server's drain ends the sessions, and the hub's rooms and members are
/// metrics.
pub fn server<B: Backplane>(
    options: ServerOptions,
    shutdown: Shutdown,
    handler: ChatHandler<B>,
) -> GrpcServer {
    let limit = options.limits.max_message_bytes;
    let collector = Box::new(metrics::HubCollector::new(
        handler.backplane().hub().clone(),
    ));
    let handler = handler.hosted(shutdown.drain_signal());
    GrpcServer::new("chat", options, shutdown)
        .descriptors(quartet_proto::FILE_DESCRIPTOR_SET)
        .add_service(ChatServiceServer::new(handler).limited_to(limit))
        .register_metrics(|registry| registry.register_collector(collector))
}
