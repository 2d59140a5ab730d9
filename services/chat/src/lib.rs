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
//!   `backplane/nats/` splits it into streams, presence and nick claims).
//! - [`config`]: [`ChatConfig`], the service's flags.
//! - [`metrics`]: room and member gauges, counted from the hub when scraped.
//! - [`error`]: [`ChatError`] and its one mapping to a gRPC status.
//! - [`grpc`]: the thin adapter from the generated service trait to the above.
//! - [`server`] (this file): assembles the service on a [`GrpcServer`].
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

use clap::Args;
use quartet_proto::chat::v1::preencoded::chat_service_server::ChatServiceServer;
use quartet_runtime::{GrpcServer, ServerOptions, Shutdown};

pub use backplane::{Backplane, LocalBackplane, NatsBackplane, NatsOptions};
pub use config::ChatConfig;
pub use error::ChatError;
pub use event::{ChatLine, Encoding, Presence, RoomEvent};
pub use grpc::ChatHandler;
pub use hub::{HubLimits, RoomHub};
pub use names::{Nick, RoomName};

/// The default gRPC port (DESIGN.md).
pub const DEFAULT_PORT: u16 = 50054;

/// Which backplane to run: NATS when `--nats-url` is given, else in-process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct BackplaneOptions {
    /// NATS server (with JetStream) shared by every replica, e.g.
    /// nats://127.0.0.1:4222. Without it rooms live in this process only.
    #[arg(long, env = "QUARTET_NATS_URL")]
    pub nats_url: Option<String>,

    /// Prefix of every NATS subject, stream and bucket this service uses, so
    /// several deployments (or test runs) can share one NATS.
    #[arg(long, env = "QUARTET_NATS_PREFIX", default_value = "quartet")]
    pub nats_prefix: String,
}

impl ChatConfig {
    /// The hub sizes this configuration asks for.
    pub fn hub_limits(&self) -> HubLimits {
        HubLimits {
            history: self.history,
            retain: self.retained(),
            member_queue: self.member_queue.max(1),
            max_rooms: self.max_rooms.max(1),
            evict_idle_rooms: true,
        }
    }
}

/// A server hosting the chat service over `backplane`, with the shared runtime
/// around it.
pub fn server<B: Backplane>(
    options: ServerOptions,
    shutdown: Shutdown,
    config: ChatConfig,
    backplane: Arc<B>,
) -> GrpcServer {
    let limit = options.limits.max_message_bytes;
    let handler = ChatHandler::new(backplane, config, shutdown.drain_signal());
    GrpcServer::new("chat", options, shutdown)
        .descriptors(quartet_proto::FILE_DESCRIPTOR_SET)
        .add_service(
            ChatServiceServer::new(handler)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
}

/// A server with the backplane `backplane_options` ask for: connects to NATS
/// (and prepares its streams) first when a URL is given.
pub async fn server_with_backplane(
    options: ServerOptions,
    shutdown: Shutdown,
    config: ChatConfig,
    backplane_options: &BackplaneOptions,
) -> Result<GrpcServer, ChatError> {
    match &backplane_options.nats_url {
        None => {
            let hub = Arc::new(RoomHub::new(config.hub_limits()));
            let collector = Box::new(metrics::HubCollector::new(hub.clone()));
            let backplane = Arc::new(LocalBackplane::new(hub));
            Ok(server(options, shutdown, config, backplane)
                .register_metrics(|registry| registry.register_collector(collector)))
        }
        Some(url) => {
            let hub = Arc::new(RoomHub::new(HubLimits {
                evict_idle_rooms: false,
                ..config.hub_limits()
            }));
            let collector = Box::new(metrics::HubCollector::new(hub.clone()));
            let nats = NatsOptions {
                url: url.clone(),
                prefix: backplane_options.nats_prefix.clone(),
                retain: config.retained(),
                max_text_bytes: config.max_text_bytes,
            };
            let backplane = NatsBackplane::connect(nats, hub).await?;
            Ok(server(options, shutdown, config, Arc::new(backplane))
                .register_metrics(|registry| registry.register_collector(collector)))
        }
    }
}
