//! `quartet-chat`: the chat service on its own, as deployed.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use quartet_chat::{BackplaneOptions, ChatConfig, DEFAULT_PORT};
use quartet_runtime::{Metrics, ServerOptions, Shutdown, TelemetryOptions, telemetry};

/// Serves quartet.chat.v1.ChatService with health and reflection.
#[derive(Debug, Parser)]
#[command(name = "quartet-chat", version, about)]
struct Args {
    /// Address to listen on for gRPC (port 0 picks a free port).
    #[arg(long, env = "QUARTET_LISTEN", default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))]
    listen: SocketAddr,
    #[command(flatten)]
    backplane: BackplaneOptions,
    #[command(flatten)]
    chat: ChatConfig,
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
    let _telemetry = telemetry::init(&args.telemetry, "quartet-chat", "info")?;
    let shutdown = Shutdown::on_signals().context("cannot install signal handlers")?;
    let metrics = Metrics::for_process(args.server.metrics_listen, &shutdown).await?;
    let server =
        quartet_chat::server_with_backplane(args.server, shutdown, args.chat, &args.backplane)
            .await
            .context("cannot start the chat backplane")?
            .record_into(&metrics)
            .bind(args.listen)
            .await?;
    server.announce()?;
    server.serve().await?;
    Ok(())
}
