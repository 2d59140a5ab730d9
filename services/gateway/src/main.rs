//! `quartet-gateway`: the plain-text protocols, bridged to the gRPC services.

use std::net::Ipv4Addr;

use clap::Args;
use quartet_gateway::{DEFAULT_HEALTH_PORT, Gateway, GatewayOptions, UpstreamOptions};
use quartet_runtime::{GrpcServer, Process};

/// The gateway's own flags: its listeners and limits, and where the services are.
#[derive(Debug, Args)]
struct GatewayArgs {
    #[command(flatten)]
    gateway: GatewayOptions,
    #[command(flatten)]
    upstreams: UpstreamOptions,
}

fn main() -> anyhow::Result<()> {
    // The runtime QUARTET_RUNTIME asks for (docs/operations.md).
    quartet_runtime::tokio_runtime()?.block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    // `--listen` is where its gRPC health service answers Kubernetes' probes.
    let about = "Serves the text protocols on TCP 7001-7004 and UDP 7004";
    let (process, args) = Process::parse::<GatewayArgs>("quartet-gateway", about).await?;
    let server = process.server_options();
    let shutdown = process.shutdown();
    let gateway = Gateway::under(
        args.gateway,
        args.upstreams,
        &server,
        shutdown.clone(),
        process.metrics(),
    )
    .bind(Ipv4Addr::UNSPECIFIED.into())
    .await?;
    gateway.announce()?;
    let gateway = gateway.spawn();
    let health = GrpcServer::new("gateway", server, shutdown);
    process.serve(health, DEFAULT_HEALTH_PORT).await?;
    gateway.stopped().await;
    Ok(())
}
