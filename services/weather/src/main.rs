//! `quartet-weather`: the weather service on its own, as deployed.

use clap::Parser;
use quartet_runtime::{Process, ProcessOptions};
use quartet_weather::{DEFAULT_PORT, WeatherOptions};

/// Serves quartet.weather.v1.WeatherService with health and reflection.
#[derive(Debug, Parser)]
#[command(name = "quartet-weather", version, about)]
struct Args {
    #[command(flatten)]
    process: ProcessOptions,
    #[command(flatten)]
    weather: WeatherOptions,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Args { process, weather } = Args::parse();
    let running = Process::start("quartet-weather", &process).await?;
    let handler = quartet_weather::handler(&weather).await?;
    let server = quartet_weather::server(process.server.clone(), running.shutdown(), handler);
    Ok(running
        .serve(server, process.listen_or(DEFAULT_PORT))
        .await?)
}
