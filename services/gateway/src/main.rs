//! `quartet-gateway`: the plain-text protocols, bridged to the gRPC services.

use std::net::Ipv4Addr;

use clap::Parser;
use quartet_gateway::{DEFAULT_HEALTH_PORT, Gateway, GatewayOptions, UpstreamOptions};
use quartet_runtime::{GrpcServer, Process, ProcessOptions};

/// Serves the text protocols on TCP 7001-7004 and UDP 7004; `--listen` is
/// where its gRPC health service answers Kubernetes' probes.
#[derive(Debug, Parser)]
#[command(name = "quartet-gateway", version, about)]
struct Args {
    #[command(flatten)]
    process: ProcessOptions,
    #[command(flatten)]
    gateway: GatewayOptions,
    #[command(flatten)]
    upstreams: UpstreamOptions,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Args {
        process,
        gateway,
        upstreams,
    } = Args::parse();
    let running = Process::start("quartet-gateway", &process).await?;
    let shutdown = running.shutdown();
    let gateway = Gateway::under(
        gateway,
        upstreams,
        &process.server,
        shutdown.clone(),
        running.metrics(),
    )
    .bind(Ipv4Addr::UNSPECIFIED.into())
    .await?;
    gateway.announce()?;
    let gateway = gateway.spawn();
    let health = GrpcServer::new("gateway", process.server.clone(), shutdown);
    running
        .serve(health, process.listen_or(DEFAULT_HEALTH_PORT))
        .await?;
    gateway.stopped().await;
    Ok(())
}
