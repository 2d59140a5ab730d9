//! `quartet weather stations|get|watch`: the weather service from the command
//! line. Times are shown in the station's own time zone; `watch` is the classic
//! periodic client, and survives server restarts by reconnecting with backoff.
//!
//! # Layout
//! - `stations`: the stations the server lists, and each one's time zone.
//! - `get`: one reading, now or at a given time.
//! - `watch`: a reading every interval, resumed after a disconnect.
//! - `view`: readings and stations as people and scripts read them.

mod get;
mod stations;
mod view;
mod watch;

use std::{process::ExitCode, time::Duration};

use clap::{Args, Subcommand, ValueEnum};
use quartet_proto::weather::v1::{self as pb, GetReadingRequest, WatchReadingsRequest};

use crate::{client::ClientOptions, failure::UsageError, output::Printer};

#[derive(Debug, Args)]
pub(crate) struct WeatherArgs {
    #[command(subcommand)]
    command: WeatherCommand,
}

#[derive(Debug, Subcommand)]
enum WeatherCommand {
    /// List the stations the server knows.
    Stations,
    /// Read a station once: now, or at --at.
    Get {
        /// The station's id (see `quartet weather stations`).
        station: String,
        #[command(flatten)]
        metrics: MetricArgs,
        /// When to read: RFC 3339 (2024-06-01T12:00:00Z, 2024-06-01T14:00:00+02:00),
        /// or a local time in the station's zone (2024-06-01T14:00, "2024-06-01 14:00",
        /// 2024-06-01). Default: now.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// Print a reading now, then one every --every, until interrupted (or
    /// --count readings). A lost connection is resumed by itself.
    Watch {
        /// The station's id (see `quartet weather stations`).
        station: String,
        #[command(flatten)]
        metrics: MetricArgs,
        /// Time between readings, 100ms to 24h (the server's default is 1s).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        every: Option<Duration>,
        /// Stop after this many readings.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
}

#[derive(Debug, Args)]
struct MetricArgs {
    /// A metric to read; repeat for several. Default: all four.
    #[arg(long = "metric", value_enum, value_name = "METRIC")]
    metrics: Vec<MetricArg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MetricArg {
    /// Lowest temperature of the last 24 hours, °C.
    #[value(alias = "min")]
    MinTemperature,
    /// Highest temperature of the last 24 hours, °C.
    #[value(alias = "max")]
    MaxTemperature,
    /// Pressure at the station, hPa.
    Pressure,
    /// Precipitation of the last 24 hours, mm.
    #[value(alias = "rain")]
    Rainfall,
}

impl MetricArgs {
    fn to_proto(&self) -> Vec<i32> {
        self.metrics
            .iter()
            .map(|metric| {
                let metric = match metric {
                    MetricArg::MinTemperature => pb::Metric::MinTemperature,
                    MetricArg::MaxTemperature => pb::Metric::MaxTemperature,
                    MetricArg::Pressure => pb::Metric::Pressure,
                    MetricArg::Rainfall => pb::Metric::Rainfall,
                };
                metric.into()
            })
            .collect()
    }
}

pub(crate) async fn run(client: &ClientOptions, args: WeatherArgs) -> anyhow::Result<ExitCode> {
    let printer = Printer::new(client.output);
    match args.command {
        WeatherCommand::Stations => stations::stations(client, &printer).await?,
        WeatherCommand::Get {
            station,
            metrics,
            at,
        } => {
            let request = GetReadingRequest {
                station_id: station,
                metrics: metrics.to_proto(),
                at: None,
            };
            get::get(client, &printer, request, at.as_deref()).await?;
        }
        WeatherCommand::Watch {
            station,
            metrics,
            every,
            count,
        } => {
            let request = WatchReadingsRequest {
                station_id: station,
                metrics: metrics.to_proto(),
                interval: every
                    .map(prost_types::Duration::try_from)
                    .transpose()
                    .map_err(|_| UsageError("--every: too long".to_owned()))?,
            };
            watch::watch(client, &printer, request, count).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
