//! `quartet-weather`: the weather service on its own, as deployed.

use quartet_runtime::Process;
use quartet_weather::DEFAULT_PORT;

fn main() -> anyhow::Result<()> {
    // The runtime QUARTET_RUNTIME asks for (docs/operations.md).
    quartet_runtime::tokio_runtime()?.block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let (process, options) = Process::parse("quartet-weather", ABOUT).await?;
    let handler = quartet_weather::handler(&options).await?;
    Ok(process
        .host(quartet_weather::server, handler, DEFAULT_PORT)
        .await?)
}

/// What `--help` says the binary is.
const ABOUT: &str = "Serves quartet.weather.v1.WeatherService with health and reflection";
