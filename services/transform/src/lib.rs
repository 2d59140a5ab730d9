//! # quartet-transform
//!
//! The transform service: the classic "uppercase server", Unicode-correct, over
//! gRPC (`quartet.transform.v1.TransformService`), one call at a time or many on
//! one stream.
//!
//! # Layout
//! - [`text`]: the domain. [`Operation`] and what it does to a string; no gRPC here.
//! - [`error`]: [`TransformError`] and its one mapping to a gRPC status.
//! - [`grpc`]: the thin adapter from the generated service trait to [`text`].
//! - This file: the shape every Quartet service shares. [`TransformOptions`]
//!   are the service's own flags; [`handler`] builds the service from them;
//!   [`server`] hosts a handler on a [`GrpcServer`] of the shared runtime.
//!   The binary, `quartet serve` (through `quartet-suite`) and tests all
//!   assemble the service this one way.
//! - `main.rs`: the `quartet-transform` binary.

pub mod error;
pub mod grpc;
pub mod text;

use clap::Args;
use quartet_proto::{
    MessageLimit as _, transform::v1::transform_service_server::TransformServiceServer,
};
use quartet_runtime::{GrpcServer, ServerOptions, Shutdown};

pub use error::TransformError;
pub use grpc::TransformHandler;
pub use text::Operation;

/// The default gRPC port (DESIGN.md).
pub const DEFAULT_PORT: u16 = 50051;

/// The transform service's own flags: none, since it keeps no state; the
/// struct is here so the service has the shape every service shares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct TransformOptions {}

/// The handler `options` describe. It cannot fail today; the `Result` is the
/// shape every service shares.
#[allow(clippy::unused_async)]
pub async fn handler(options: &TransformOptions) -> Result<TransformHandler, TransformError> {
    let TransformOptions {} = options;
    Ok(TransformHandler::default())
}

/// A server hosting `handler`, with the shared runtime around it: the
/// server's message limit bounds the answers, its drain ends the streams.
pub fn server(options: ServerOptions, shutdown: Shutdown, handler: TransformHandler) -> GrpcServer {
    let limit = options.limits.max_message_bytes;
    let handler = handler.hosted(limit, shutdown.drain_signal());
    GrpcServer::new("transform", options, shutdown)
        .descriptors(quartet_proto::FILE_DESCRIPTOR_SET)
        .add_service(TransformServiceServer::new(handler).limited_to(limit))
}
