//! `quartet-transform`: the transform service on its own, as deployed.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use quartet_runtime::{Metrics, ServerOptions, Shutdown, TelemetryOptions, telemetry};
use quartet_transform::DEFAULT_PORT;

/// Serves quartet.transform.v1.TransformService with health and reflection.
#[derive(Debug, Parser)]
#[command(name = "quartet-transform", version, about)]
struct Args {
    /// Address to listen on for gRPC (port 0 picks a free port).
    #[arg(long, env = "QUARTET_LISTEN", default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))]
    listen: SocketAddr,
    #[command(flatten)]
    telemetry: TelemetryOptions,
    #[command(flatten)]
    server: ServerOptions,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = telemetry::init(&args.telemetry, "quartet-transform", "info")?;
    let shutdown = Shutdown::on_signals().context("cannot install signal handlers")?;
    let metrics = Metrics::for_process(args.server.metrics_listen, &shutdown).await?;
    let server = quartet_transform::server(args.server, shutdown)
        .record_into(&metrics)
        .bind(args.listen)
        .await?;
    server.announce()?;
    server.serve().await?;
    Ok(())
}
