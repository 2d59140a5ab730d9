//! [`ServeError`]: why a server, or the process's metrics endpoint, could not
//! start or stopped with an error.

use std::{io, net::SocketAddr};

use crate::served_methods::DescriptorError;

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
    /// The descriptor sets are inconsistent (a build problem, not a runtime one).
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
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
