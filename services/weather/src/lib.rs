//! # quartet-weather
//!
//! The weather service: the classic "ask the remote weather server" exercise
//! over gRPC (`quartet.weather.v1.WeatherService`). Clients list stations, read
//! any subset of minimum temperature, maximum temperature, pressure and
//! rainfall at a time, or watch readings at an interval on a server stream.
//!
//! # Layout
//! - [`reading`]: the domain. [`Station`], [`Metric`], [`MetricSet`],
//!   [`Reading`], and the bounds on times and intervals; no gRPC here.
//! - [`provider`]: the [`ReadingProvider`] trait and its implementations:
//!   [`provider::simulated`] (a deterministic climate model, the default: the
//!   provider, each station's model, the sun, the hash noise) over the
//!   [`provider::catalogue`] of stations, and [`provider::observations`]
//!   (recorded readings from a CSV file: the provider, its loader, one cell's
//!   parsing).
//! - [`watch`]: the periodic stream behind `WatchReadings`, and [`OpenWatches`],
//!   which counts and caps open streams.
//! - [`error`]: [`WeatherError`] and its one mapping to a gRPC status.
//! - [`grpc`]: the thin adapter from the generated service trait to the domain.
//! - [`options`]: [`WeatherOptions`], the service's own flags
//!   (`--observations`, `--max-watches`).
//! - This file: the shape every Quartet service shares. [`handler`] builds
//!   the service from its [`WeatherOptions`]; [`server`] hosts a handler on a
//!   [`GrpcServer`] of the shared runtime.
//! - `main.rs`: the `quartet-weather` binary.

pub mod error;
pub mod grpc;
pub mod options;
pub mod provider;
pub mod reading;
pub mod watch;

use quartet_proto::{MessageLimit as _, weather::v1::weather_service_server::WeatherServiceServer};
use quartet_runtime::{GrpcServer, ServerOptions, Shutdown};

pub use error::WeatherError;
pub use grpc::WeatherHandler;
pub use options::WeatherOptions;
pub use provider::ReadingProvider;
pub use reading::{Metric, MetricSet, Reading, Station};
pub use watch::OpenWatches;

/// The default gRPC port (DESIGN.md).
pub const DEFAULT_PORT: u16 = 50053;

/// The handler `options` describe: loads and checks the observations file
/// first, when one is given.
#[allow(clippy::unused_async)]
pub async fn handler(options: &WeatherOptions) -> Result<WeatherHandler, WeatherError> {
    Ok(WeatherHandler::new(
        options.provider()?,
        OpenWatches::new(options.max_watches),
    ))
}

/// A server hosting `handler`, with the shared runtime around it: the
/// server's drain ends the watches, whose count is a metric.
pub fn server(options: ServerOptions, shutdown: Shutdown, handler: WeatherHandler) -> GrpcServer {
    let limit = options.limits.max_message_bytes;
    let watches = handler.watches().gauge();
    let handler = handler.hosted(shutdown.drain_signal());
    GrpcServer::new("weather", options, shutdown)
        .descriptors(quartet_proto::FILE_DESCRIPTOR_SET)
        .add_service(WeatherServiceServer::new(handler).limited_to(limit))
        .register_metrics(move |metrics| {
            metrics.register("weather_watches", "Watch streams open now", watches);
        })
}
