//! Graceful shutdown in two phases, shared by every server of a process.
//!
//! 1. *Requested* (SIGTERM, SIGINT, or [`Shutdown::request`]): servers turn their
//!    health NOT_SERVING and keep serving for the configured delay, so load
//!    balancers stop sending new calls.
//! 2. *Draining*: servers stop accepting, open streams are told to close (services
//!    watch a [`DrainSignal`]), in-flight calls finish, bounded by a drain timeout.
//!
//! A second signal during either phase *forces* the exit.

use std::io;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::{info, warn};

/// The process-wide shutdown switch. Cheap to clone; every clone sees the same state.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    requested: CancellationToken,
    draining: CancellationToken,
    forced: CancellationToken,
}

impl Shutdown {
    /// A switch that only [`Shutdown::request`] flips; tests use this.
    pub fn new() -> Self {
        Self::default()
    }

    /// A switch flipped by SIGTERM (what Kubernetes sends to start a graceful
    /// shutdown) or SIGINT (Ctrl-C); a second signal forces the exit.
    pub fn on_signals() -> io::Result<Self> {
        let shutdown = Self::new();
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let switch = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => info!(signal = "SIGTERM", "shutdown requested"),
                _ = interrupt.recv() => info!(signal = "SIGINT", "shutdown requested"),
            }
            switch.request();
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            warn!("second signal: closing without waiting for the drain");
            switch.forced.cancel();
        });
        Ok(shutdown)
    }

    /// Starts the shutdown (phase 1). Idempotent.
    pub fn request(&self) {
        self.requested.cancel();
    }

    /// Completes once shutdown has been requested.
    pub async fn requested(&self) {
        self.requested.cancelled().await;
    }

    /// Whether shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        self.requested.is_cancelled()
    }

    /// What services hold to learn when to close their open streams.
    pub fn drain_signal(&self) -> DrainSignal {
        DrainSignal {
            draining: self.draining.clone(),
        }
    }

    /// Enters phase 2. Servers call this after their shutdown delay (servers
    /// that are not [`crate::GrpcServer`]s, like the gateway's listeners, too).
    /// Idempotent.
    pub fn start_draining(&self) {
        self.draining.cancel();
    }

    /// Completes once draining has started.
    pub async fn draining(&self) {
        self.draining.cancelled().await;
    }

    /// Completes when the operator insists (a second signal).
    pub(crate) async fn forced(&self) {
        self.forced.cancelled().await;
    }
}

/// Tells a service that the server is draining: end long-lived streams now
/// (with UNAVAILABLE, or a goodbye event first) so the drain does not wait on them.
#[derive(Debug, Clone, Default)]
pub struct DrainSignal {
    draining: CancellationToken,
}

impl DrainSignal {
    /// A signal that never fires, for services built outside a server (unit tests).
    pub fn never() -> Self {
        Self::default()
    }

    /// Completes once the server starts draining.
    pub async fn draining(&self) {
        self.draining.cancelled().await;
    }

    /// Whether the server is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// [`draining`](Self::draining) as a future that owns its signal, for
    /// streams that keep it across polls.
    pub(crate) fn draining_owned(&self) -> WaitForCancellationFutureOwned {
        self.draining.clone().cancelled_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::Shutdown;

    #[tokio::test]
    async fn drain_signal_follows_the_shutdown_it_came_from() {
        let shutdown = Shutdown::new();
        let signal = shutdown.drain_signal();
        assert!(!signal.is_draining());
        shutdown.request();
        assert!(!signal.is_draining(), "requesting alone must not drain");
        shutdown.start_draining();
        signal.draining().await;
        assert!(signal.is_draining());
    }
}
