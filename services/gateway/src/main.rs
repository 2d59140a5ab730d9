//! `quartet-gateway`: the plain-text protocols, bridged to the gRPC services.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use clap::Parser;
use quartet_gateway::{DEFAULT_HEALTH_PORT, Gateway, GatewayOptions, UpstreamOptions};
use quartet_runtime::{GrpcServer, Metrics, ServerOptions, Shutdown, TelemetryOptions, telemetry};

/// Serves the text protocols on TCP 7001-7004 and UDP 7004.
#[derive(Debug, Parser)]
#[command(name = "quartet-gateway", version, about)]
struct Args {
    /// Where the gateway's gRPC health service listens (for Kubernetes probes).
    #[arg(long, env = "QUARTET_LISTEN", default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_HEALTH_PORT)))]
    listen: SocketAddr,
    #[command(flatten)]
    gateway: GatewayOptions,
    #[command(flatten)]
    upstreams: UpstreamOptions,
    #[command(flatten)]
    telemetry: TelemetryOptions,
    #[command(flatten)]
    server: ServerOptions,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    quartet_runtime::tokio_runtime()?.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let _telemetry = telemetry::init(&args.telemetry, "quartet-gateway", "info")?;
    let shutdown = Shutdown::on_signals().context("cannot install signal handlers")?;
    let metrics = Metrics::for_process(args.server.metrics_listen, &shutdown).await?;
    let options = GatewayOptions {
        max_connections: args.server.limits.max_connections,
        ..args.gateway
    };
    let gateway = Gateway::new(
        options,
        args.upstreams,
        shutdown.clone(),
        args.server.shutdown.clone(),
        &metrics,
    )
    .bind(Ipv4Addr::UNSPECIFIED.into())
    .await?;
    let health = GrpcServer::new("gateway", args.server, shutdown)
        .record_into(&metrics)
        .bind(args.listen)
        .await?;
    gateway.announce()?;
    health.announce()?;
    let health = health.spawn()?;
    gateway.serve().await;
    health.stopped().await?;
    Ok(())
}
