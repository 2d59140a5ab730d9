//! Starting a weather server for a test, and the calls tests make to it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, sync::Arc, time::Duration};

use quartet_e2e::grpc::{next, within};
use quartet_proto::weather::v1::{
    GetReadingRequest, Metric, Reading, WatchReadingsRequest,
    weather_service_client::WeatherServiceClient,
};
use quartet_runtime::{RunningServer, ServerOptions, Shutdown};
use quartet_weather::{OpenWatches, ReadingProvider, WeatherHandler, WeatherOptions};
use tonic::{Status, Streaming, transport::Channel};

/// The four metrics, in the order readings list them.
pub(crate) const ALL: [Metric; 4] = [
    Metric::MinTemperature,
    Metric::MaxTemperature,
    Metric::Pressure,
    Metric::Rainfall,
];

/// The observations file the repository ships as an example.
pub(crate) fn sample_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/observations-sample.csv")
}

/// A server as `weather` configures it, on a free port.
pub(crate) async fn start_with(weather: &WeatherOptions) -> RunningServer {
    let handler = quartet_weather::handler(weather).await.unwrap();
    spawn(ServerOptions::default(), handler).await
}

/// A server of the simulated climate, on a free port.
pub(crate) async fn start() -> RunningServer {
    start_with(&WeatherOptions::default()).await
}

/// A server of `provider` under `options`, on a free port, whose open
/// `watches` the test can see.
pub(crate) async fn serve(
    options: ServerOptions,
    provider: Arc<dyn ReadingProvider>,
    watches: OpenWatches,
) -> RunningServer {
    spawn(options, WeatherHandler::new(provider, watches)).await
}

/// A server of `handler` under `options`, on a free port.
async fn spawn(options: ServerOptions, handler: WeatherHandler) -> RunningServer {
    quartet_weather::server(options, Shutdown::new(), handler)
        .spawn_on("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// A simulated server that holds at most `limit` watches, and its count of
/// open ones.
pub(crate) async fn start_counting(limit: usize) -> (RunningServer, OpenWatches) {
    let watches = OpenWatches::new(limit);
    let provider = WeatherOptions::default().provider().unwrap();
    let server = serve(ServerOptions::default(), provider, watches.clone()).await;
    (server, watches)
}

/// A client of `server`.
pub(crate) async fn client(server: &RunningServer) -> WeatherServiceClient<Channel> {
    WeatherServiceClient::connect(server.url()).await.unwrap()
}

/// An RFC 3339 time as the protocol carries it.
pub(crate) fn at(text: &str) -> prost_types::Timestamp {
    let at: jiff::Timestamp = text.parse().unwrap();
    prost_types::Timestamp {
        seconds: at.as_second(),
        nanos: at.subsec_nanosecond(),
    }
}

/// A GetReading request; no `time` is now.
pub(crate) fn get(station: &str, metrics: &[Metric], time: Option<&str>) -> GetReadingRequest {
    GetReadingRequest {
        station_id: station.to_owned(),
        metrics: metrics.iter().map(|metric| (*metric).into()).collect(),
        at: time.map(at),
    }
}

/// GetReading, which must answer within quartet-e2e's deadline.
pub(crate) async fn read(
    client: &mut WeatherServiceClient<Channel>,
    request: GetReadingRequest,
) -> Result<Reading, Status> {
    let reading = within(client.get_reading(request)).await?;
    Ok(reading.into_inner())
}

/// A WatchReadings request; no `interval` is the server's default.
pub(crate) fn watch(
    station: &str,
    metrics: &[Metric],
    interval: Option<Duration>,
) -> WatchReadingsRequest {
    WatchReadingsRequest {
        station_id: station.to_owned(),
        metrics: metrics.iter().map(|metric| (*metric).into()).collect(),
        interval: interval.map(|interval| prost_types::Duration::try_from(interval).unwrap()),
    }
}

/// Opens a watch the server accepts.
pub(crate) async fn open_watch(
    client: &mut WeatherServiceClient<Channel>,
    request: WatchReadingsRequest,
) -> Streaming<Reading> {
    client.watch_readings(request).await.unwrap().into_inner()
}

/// The next reading of a watch, which must come within quartet-e2e's deadline.
pub(crate) async fn next_reading(readings: &mut Streaming<Reading>) -> Reading {
    next(readings).await
}

/// Which metrics a reading carries, checking each has its unit.
pub(crate) fn present(reading: &Reading) -> Vec<Metric> {
    let mut present = Vec::new();
    for (metric, measurement, unit) in [
        (Metric::MinTemperature, &reading.min_temperature, "°C"),
        (Metric::MaxTemperature, &reading.max_temperature, "°C"),
        (Metric::Pressure, &reading.pressure, "hPa"),
        (Metric::Rainfall, &reading.rainfall, "mm"),
    ] {
        if let Some(measurement) = measurement {
            assert_eq!(measurement.unit, unit, "{metric:?}");
            present.push(metric);
        }
    }
    present
}

/// When a reading was observed, in milliseconds since 1970.
pub(crate) fn millis(reading: &Reading) -> i64 {
    let at = reading.observed_at.unwrap();
    at.seconds * 1000 + i64::from(at.nanos) / 1_000_000
}
