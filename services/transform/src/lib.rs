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
//! - [`server`] (this file): assembles the service on a [`GrpcServer`].
//! - `main.rs`: the `quartet-transform` binary.

pub mod error;
pub mod grpc;
pub mod text;

use quartet_proto::transform::v1::transform_service_server::TransformServiceServer;
use quartet_runtime::{GrpcServer, ServerOptions, Shutdown};

pub use error::TransformError;
pub use grpc::TransformHandler;
pub use text::Operation;

/// The default gRPC port (DESIGN.md).
pub const DEFAULT_PORT: u16 = 50051;

/// A server hosting the transform service, with the shared runtime around it.
pub fn server(options: ServerOptions, shutdown: Shutdown) -> GrpcServer {
    let limit = options.limits.max_message_bytes;
    let handler = TransformHandler::new(limit, shutdown.drain_signal());
    GrpcServer::new("transform", options, shutdown)
        .descriptors(quartet_proto::FILE_DESCRIPTOR_SET)
        .add_service(
            TransformServiceServer::new(handler)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
}
