//! [`Process`]: what every server binary does around its server, once: logs
//! and traces ([`telemetry`](crate::telemetry)), the signals that start a
//! graceful shutdown, the process's metrics endpoint, and binding, announcing
//! and serving. A binary's `main` is then its flags and its server.

use std::{
    io,
    net::{Ipv4Addr, SocketAddr},
};

use clap::Args;

use crate::{
    GrpcServer, Metrics, ServeError, ServerOptions, Shutdown, TelemetryOptions,
    telemetry::{self, TelemetryError, TelemetryGuard},
};

/// The flags every server binary takes: where it listens, its logs and
/// traces, and the server's own.
#[derive(Debug, Clone, Args)]
pub struct ProcessOptions {
    /// Address to listen on for gRPC; port 0 picks a free port [default:
    /// 0.0.0.0 and the service's port].
    #[arg(long, env = "QUARTET_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Logs and traces.
    #[command(flatten)]
    pub telemetry: TelemetryOptions,

    /// Limits, TLS, auth, metrics, shutdown.
    #[command(flatten)]
    pub server: ServerOptions,
}

impl ProcessOptions {
    /// Where to listen: as given, else every interface on `port`.
    pub fn listen_or(&self, port: u16) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
    }
}

/// Why a server process could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Logs or traces could not be set up.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// SIGTERM and SIGINT could not be watched.
    #[error("cannot install signal handlers: {0}")]
    Signals(io::Error),
    /// The server could not start, or failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The announce line could not be printed.
    #[error("cannot print the announce line: {0}")]
    Announce(io::Error),
}

/// A server process: its shutdown switch, its metrics, its telemetry.
#[derive(Debug)]
pub struct Process {
    shutdown: Shutdown,
    metrics: Metrics,
    /// Flushes traces when the process ends.
    _telemetry: TelemetryGuard,
}

impl Process {
    /// Sets up the process of the binary `name` (`quartet-transform`): logs at
    /// `info` unless `RUST_LOG` says otherwise, SIGTERM and SIGINT, and the
    /// metrics endpoint when `--metrics-listen` asks for one.
    pub async fn start(name: &'static str, options: &ProcessOptions) -> Result<Self, ProcessError> {
        let telemetry = telemetry::init(&options.telemetry, name, "info")?;
        let shutdown = Shutdown::on_signals().map_err(ProcessError::Signals)?;
        let metrics = Metrics::for_process(options.server.metrics_listen, &shutdown).await?;
        Ok(Self {
            shutdown,
            metrics,
            _telemetry: telemetry,
        })
    }

    /// The process's shutdown switch, flipped by SIGTERM or SIGINT.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The process's metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Binds `server` on `listen`, announces it on stdout, and serves it
    /// until the shutdown sequence completes.
    pub async fn serve(self, server: GrpcServer, listen: SocketAddr) -> Result<(), ProcessError> {
        let bound = server.record_into(&self.metrics).bind(listen).await?;
        bound.announce().map_err(ProcessError::Announce)?;
        bound.serve().await?;
        Ok(())
    }
}
