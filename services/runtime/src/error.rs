//! [`ServeError`]: why a server, or the process's metrics endpoint, could not
//! start or stopped with an error; and [`DescriptorError`], the build problem
//! it reports when descriptor sets do not describe what a server hosts.

use std::{io, net::SocketAddr};

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The descriptor sets do not describe every hosted service (a build problem).
    #[error(transparent)]
    Descriptors(#[from] DescriptorError),
    /// The HTTP/2 server failed.
    #[error("server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A certificate, key or token file cannot be used.
    #[error("{0}")]
    Config(#[from] crate::reload::LoadError),
}

/// Why the descriptor sets cannot say what a server serves (a build problem,
/// not a runtime one).
#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    /// A descriptor set is not an encoded `FileDescriptorSet`.
    #[error("a descriptor set does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A hosted service is in none of the descriptor sets.
    #[error(
        "service {0} is in no descriptor set: pass its FILE_DESCRIPTOR_SET to GrpcServer::descriptors"
    )]
    Undescribed(String),
}
