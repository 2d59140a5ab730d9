//! `quartet-weather`: the weather service on its own, as deployed.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use quartet_runtime::{Metrics, ServerOptions, Shutdown, TelemetryOptions, telemetry};
use quartet_weather::{DEFAULT_PORT, WeatherOptions};

/// Serves quartet.weather.v1.WeatherService with health and reflection.
#[derive(Debug, Parser)]
#[command(name = "quartet-weather", version, about)]
struct Args {
    /// Address to listen on for gRPC (port 0 picks a free port).
    #[arg(long, env = "QUARTET_LISTEN", default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))]
    listen: SocketAddr,
    #[command(flatten)]
    weather: WeatherOptions,
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
    let _telemetry = telemetry::init(&args.telemetry, "quartet-weather", "info")?;
    let shutdown = Shutdown::on_signals().context("cannot install signal handlers")?;
    let metrics = Metrics::for_process(args.server.metrics_listen, &shutdown).await?;
    let server = quartet_weather::server(args.server, shutdown, &args.weather)?
        .record_into(&metrics)
        .bind(args.listen)
        .await?;
    server.announce()?;
    server.serve().await?;
    Ok(())
}
