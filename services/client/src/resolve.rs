//! [`Resolve`]: how a `dns:///` name becomes addresses. The system resolver
//! (`getaddrinfo`, so `/etc/hosts` and the pod's search domains apply) in
//! production; tests inject one whose answers they change.

use std::{future::Future, io, net::SocketAddr, pin::Pin};

/// A name's addresses, found asynchronously.
pub trait Resolve: Send + Sync + 'static {
    /// Every address of `host`, with `port`.
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;
}

/// The operating system's resolver, every A and AAAA record.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>> {
        let host = host.to_owned();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    }
}
