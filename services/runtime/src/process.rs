//! [`Process`]: what every server binary does around its server, once: logs
//! and traces ([`telemetry`](crate::telemetry)), the signals that start a
//! graceful shutdown, the process's metrics endpoint, and binding, announcing
//! and serving. A binary's `main` is then [`Process::parse`], its service's
//! `handler`, and [`Process::host`].

use std::{
    io,
    net::{Ipv4Addr, SocketAddr},
};

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser};

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

/// A server binary's whole command line: the flags every server takes, and
/// its service's own.
#[derive(Debug, Parser)]
#[command(version)]
struct ServiceArgs<O: Args> {
    #[command(flatten)]
    process: ProcessOptions,
    #[command(flatten)]
    service: O,
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

/// A server process: its flags, its shutdown switch, its metrics, its
/// telemetry.
#[derive(Debug)]
pub struct Process {
    options: ProcessOptions,
    shutdown: Shutdown,
    metrics: Metrics,
    /// Flushes traces when the process ends.
    _telemetry: TelemetryGuard,
}

impl Process {
    /// Sets up the process of the binary `name` (`quartet-transform`): logs at
    /// `info` unless `RUST_LOG` says otherwise, SIGTERM and SIGINT, and the
    /// metrics endpoint when `--metrics-listen` asks for one.
    async fn start(name: &'static str, options: ProcessOptions) -> Result<Self, ProcessError> {
        let telemetry = telemetry::init(&options.telemetry, name, "info")?;
        let shutdown = Shutdown::on_signals().map_err(ProcessError::Signals)?;
        let metrics = Metrics::for_process(options.server.metrics_listen, &shutdown).await?;
        Ok(Self {
            options,
            shutdown,
            metrics,
            _telemetry: telemetry,
        })
    }

    /// Parses the command line of the binary `name` (`about` is its `--help`
    /// summary): the flags every server takes and the service's own, `O`;
    /// exits with a usage error (code 2) when they do not parse. Then starts
    /// the process as [`Process::start`] does, and hands back `O`.
    pub async fn parse<O: Args>(
        name: &'static str,
        about: &'static str,
    ) -> Result<(Self, O), ProcessError> {
        let mut command = ServiceArgs::<O>::command().name(name).about(about);
        let matches = command.get_matches_mut();
        let args = ServiceArgs::<O>::from_arg_matches(&matches)
            .unwrap_or_else(|error| error.format(&mut command).exit());
        Ok((Self::start(name, args.process).await?, args.service))
    }

    /// The server flags (limits, TLS, auth, shutdown) the process was given.
    pub fn server_options(&self) -> ServerOptions {
        self.options.server.clone()
    }

    /// The process's shutdown switch, flipped by SIGTERM or SIGINT.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The process's metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Hosts `handler` on the server that `server` (a service crate's
    /// `server` function) assembles under the process's flags and shutdown
    /// switch, and serves it as [`Process::serve`] does.
    pub async fn host<H>(
        self,
        server: fn(ServerOptions, Shutdown, H) -> GrpcServer,
        handler: H,
        default_port: u16,
    ) -> Result<(), ProcessError> {
        let server = server(self.server_options(), self.shutdown(), handler);
        self.serve(server, default_port).await
    }

    /// Binds `server` where `--listen` says (every interface on
    /// `default_port` without it), announces it on stdout, and serves it
    /// until the shutdown sequence completes.
    pub async fn serve(self, server: GrpcServer, default_port: u16) -> Result<(), ProcessError> {
        let listen = self.options.listen_or(default_port);
        let bound = server.record_into(&self.metrics).bind(listen).await?;
        bound.announce().map_err(ProcessError::Announce)?;
        bound.serve().await?;
        Ok(())
    }
}
