//! `quartet-database`: the people database on its own, as deployed.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use quartet_database::{DEFAULT_PORT, StoreOptions};
use quartet_runtime::{Metrics, ServerOptions, Shutdown, TelemetryOptions, telemetry};

/// Serves quartet.database.v1.PeopleService with health and reflection.
#[derive(Debug, Parser)]
#[command(name = "quartet-database", version, about)]
struct Args {
    /// Address to listen on for gRPC (port 0 picks a free port).
    #[arg(long, env = "QUARTET_LISTEN", default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))]
    listen: SocketAddr,
    #[command(flatten)]
    store: StoreOptions,
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
    let _telemetry = telemetry::init(&args.telemetry, "quartet-database", "info")?;
    let shutdown = Shutdown::on_signals().context("cannot install signal handlers")?;
    let metrics = Metrics::for_process(args.server.metrics_listen, &shutdown).await?;
    let store = args
        .store
        .open()
        .await
        .context("cannot open the people store")?;
    let server = quartet_database::server(args.server, shutdown, store)
        .record_into(&metrics)
        .bind(args.listen)
        .await?;
    server.announce()?;
    server.serve().await?;
    Ok(())
}
