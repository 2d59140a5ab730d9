//! `quartet-weather`: the weather service on its own, as deployed.

use quartet_runtime::Process;
use quartet_weather::{DEFAULT_PORT, WeatherOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let about = "Serves quartet.weather.v1.WeatherService with health and reflection";
    let (process, options) = Process::parse::<WeatherOptions>("quartet-weather", about).await?;
    let handler = quartet_weather::handler(&options).await?;
    let server = quartet_weather::server(process.server_options(), process.shutdown(), handler);
    Ok(process.serve(server, DEFAULT_PORT).await?)
}
