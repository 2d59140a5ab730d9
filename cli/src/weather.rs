//! `quartet weather stations|get|watch`: the weather service from the command
//! line. Times are shown in the station's own time zone; `watch` is the classic
//! periodic client, and survives server restarts by reconnecting with backoff.

use std::{process::ExitCode, time::Duration};

use clap::{Args, Subcommand, ValueEnum};
use jiff::{Timestamp, civil::DateTime, tz::TimeZone};
use quartet_proto::weather::v1::{
    self as pb, GetReadingRequest, ListStationsRequest, WatchReadingsRequest,
    weather_service_client::WeatherServiceClient,
};
use quartet_runtime::status_names::code_name;
use serde::Serialize;
use tonic::{Code, Status};

use crate::{
    client::{ClientOptions, Connection},
    failure::UsageError,
    output::{Printer, notice},
};

/// First wait before reconnecting a lost watch; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

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
        WeatherCommand::Stations => stations(client, &printer).await?,
        WeatherCommand::Get {
            station,
            metrics,
            at,
        } => get(client, &printer, station, &metrics, at.as_deref()).await?,
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
            watch(client, &printer, request, count).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list_stations(
    client: &ClientOptions,
    service: &WeatherServiceClient<Connection>,
) -> Result<Vec<pb::Station>, Status> {
    let answer = client
        .read(
            service,
            &ListStationsRequest {},
            |mut service, request| async move { service.list_stations(request).await },
        )
        .await?;
    Ok(answer.stations)
}

#[derive(Serialize)]
struct StationJson<'a> {
    id: &'a str,
    name: &'a str,
    country: &'a str,
    latitude: f64,
    longitude: f64,
    elevation_m: f64,
    time_zone: &'a str,
}

async fn stations(client: &ClientOptions, printer: &Printer) -> anyhow::Result<()> {
    let service = client.connect_weather().await?;
    let stations = list_stations(client, &service).await?;
    let id_width = column_width(stations.iter().map(|station| station.id.as_str()), "ID");
    let name_width = column_width(stations.iter().map(|station| station.name.as_str()), "NAME");
    printer.heading(&format!(
        "{:id_width$}  {:name_width$}  COUNTRY  LATITUDE  LONGITUDE  ELEVATION  TIME ZONE",
        "ID", "NAME"
    ))?;
    for station in &stations {
        let text = format!(
            "{:id_width$}  {:name_width$}  {:7}  {:>8.4}  {:>9.4}  {:>7.0} m  {}",
            station.id,
            station.name,
            station.country,
            station.latitude,
            station.longitude,
            station.elevation_m,
            station.time_zone,
        );
        let json = StationJson {
            id: &station.id,
            name: &station.name,
            country: &station.country,
            latitude: station.latitude,
            longitude: station.longitude,
            elevation_m: station.elevation_m,
            time_zone: &station.time_zone,
        };
        printer.print(&text, &json)?;
    }
    Ok(())
}

/// Width of a text column: its longest value, or its heading. Counted in
/// characters, as a terminal shows them ("Reykjavík").
fn column_width<'a>(values: impl Iterator<Item = &'a str>, heading: &str) -> usize {
    values
        .map(|value| value.chars().count())
        .chain([heading.len()])
        .max()
        .unwrap_or_default()
}

/// The station's time zone, for reading and showing local times; UTC when the
/// server does not list the station (its answer will say why).
fn zone_of(stations: &[pb::Station], station: &str) -> TimeZone {
    stations
        .iter()
        .find(|candidate| candidate.id == station)
        .and_then(|station| TimeZone::get(&station.time_zone).ok())
        .unwrap_or(TimeZone::UTC)
}

/// An instant from the command line: RFC 3339 with an offset, or a local time
/// (or date) in `zone`. A local time the clocks skip or repeat is refused.
fn parse_time(text: &str, zone: &TimeZone) -> Result<Timestamp, UsageError> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    let civil: DateTime = text.parse().map_err(|_| {
        UsageError(format!(
            "--at {text:?}: expected 2024-06-01T12:00:00Z, 2024-06-01T14:00:00+02:00 or a local 2024-06-01T14:00"
        ))
    })?;
    zone.to_ambiguous_timestamp(civil)
        .unambiguous()
        .map_err(|error| UsageError(format!("--at {text:?}: {error}; give an offset")))
}

fn to_proto_time(at: Timestamp) -> prost_types::Timestamp {
    let (mut seconds, mut nanos) = (at.as_second(), at.subsec_nanosecond());
    if nanos < 0 {
        seconds -= 1;
        nanos += 1_000_000_000;
    }
    prost_types::Timestamp { seconds, nanos }
}

async fn get(
    client: &ClientOptions,
    printer: &Printer,
    station: String,
    metrics: &MetricArgs,
    at: Option<&str>,
) -> anyhow::Result<()> {
    let service = client.connect_weather().await?;
    let stations = list_stations(client, &service).await?;
    let zone = zone_of(&stations, &station);
    let at = at.map(|text| parse_time(text, &zone)).transpose()?;
    let message = GetReadingRequest {
        station_id: station,
        metrics: metrics.to_proto(),
        at: at.map(to_proto_time),
    };
    let reading = client
        .read(&service, &message, |mut service, request| async move {
            service.get_reading(request).await
        })
        .await?;
    let name = stations
        .iter()
        .find(|candidate| candidate.id == reading.station_id)
        .map(|station| format!(" ({}, {})", station.name, station.country))
        .unwrap_or_default();
    let shown = ShownReading::new(&reading, &zone);
    let mut lines = vec![
        format!("station      {}{name}", reading.station_id),
        format!("observed at  {}", shown.local_time),
        format!("source       {}", shown.source),
    ];
    for (label, measurement) in shown.measurements() {
        lines.push(format!("{label:12} {measurement}"));
    }
    let text = lines.join("\n");
    printer.print(&text, &ReadingJson::new(&reading))?;
    Ok(())
}

/// A reading as people read it.
struct ShownReading<'a> {
    reading: &'a pb::Reading,
    local_time: String,
    source: &'static str,
}

impl<'a> ShownReading<'a> {
    fn new(reading: &'a pb::Reading, zone: &TimeZone) -> Self {
        let local_time = reading
            .observed_at
            .and_then(|at| Timestamp::new(at.seconds, at.nanos).ok())
            .map_or_else(
                || "unknown".to_owned(),
                |at| {
                    // Milliseconds only when there are some: watch readings have
                    // them, readings asked for at a given time usually do not.
                    let format = if at.subsec_nanosecond() == 0 {
                        "%Y-%m-%dT%H:%M:%S%:z"
                    } else {
                        "%Y-%m-%dT%H:%M:%S%.3f%:z"
                    };
                    at.to_zoned(zone.clone()).strftime(format).to_string()
                },
            );
        Self {
            reading,
            local_time,
            source: source_name(reading.source()),
        }
    }

    /// (label, "value unit") of every metric present, in proto order.
    fn measurements(&self) -> Vec<(&'static str, String)> {
        [
            ("min", &self.reading.min_temperature),
            ("max", &self.reading.max_temperature),
            ("pressure", &self.reading.pressure),
            ("rainfall", &self.reading.rainfall),
        ]
        .into_iter()
        .filter_map(|(label, measurement)| {
            measurement.as_ref().map(|measurement| {
                (
                    label,
                    format!("{:.1} {}", measurement.value, measurement.unit),
                )
            })
        })
        .collect()
    }

    /// One line: time, station, then each metric with its unit.
    fn line(&self) -> String {
        let mut parts = vec![format!("{} {}", self.local_time, self.reading.station_id)];
        for (label, measurement) in self.measurements() {
            parts.push(format!("{label} {measurement}"));
        }
        parts.join("  ")
    }
}

fn source_name(source: pb::ReadingSource) -> &'static str {
    match source {
        pb::ReadingSource::Simulated => "simulated",
        pb::ReadingSource::Observed => "observed",
        pb::ReadingSource::Unspecified => "unspecified",
    }
}

#[derive(Serialize)]
struct MeasurementJson<'a> {
    value: f64,
    unit: &'a str,
}

/// A reading for scripts: UTC time, absent metrics left out (never zero).
#[derive(Serialize)]
struct ReadingJson<'a> {
    station_id: &'a str,
    observed_at: Option<String>,
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_temperature: Option<MeasurementJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_temperature: Option<MeasurementJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pressure: Option<MeasurementJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rainfall: Option<MeasurementJson<'a>>,
}

impl<'a> ReadingJson<'a> {
    fn new(reading: &'a pb::Reading) -> Self {
        let measurement = |measurement: &'a Option<pb::Measurement>| {
            measurement.as_ref().map(|measurement| MeasurementJson {
                value: measurement.value,
                unit: &measurement.unit,
            })
        };
        Self {
            station_id: &reading.station_id,
            observed_at: reading
                .observed_at
                .and_then(|at| Timestamp::new(at.seconds, at.nanos).ok())
                .map(|at| at.to_string()),
            source: source_name(reading.source()),
            min_temperature: measurement(&reading.min_temperature),
            max_temperature: measurement(&reading.max_temperature),
            pressure: measurement(&reading.pressure),
            rainfall: measurement(&reading.rainfall),
        }
    }
}

/// Whether a watch that failed with `status` is worth resuming: the server or
/// the connection went away, as opposed to a request it will never accept.
fn worth_resuming(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
    )
}

/// Exponential backoff with jitter, so a fleet of watchers does not reconnect
/// to a restarted server in lockstep.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self {
            next: FIRST_BACKOFF,
        }
    }

    fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }

    /// The wait before the next attempt: half to all of the current step.
    fn next_wait(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(MAX_BACKOFF);
        // Jitter from the clock's nanoseconds: enough to spread a fleet, no RNG.
        let nanos = Timestamp::now().subsec_nanosecond().unsigned_abs();
        step / 2 + step.mul_f64(f64::from(nanos % 1000) / 2000.0)
    }
}

/// Prints readings as they come. After the first connection, a lost stream
/// (server restart, drain, network) is reopened with backoff, forever; a
/// request the server refuses ends the command.
async fn watch(
    client: &ClientOptions,
    printer: &Printer,
    request: WatchReadingsRequest,
    count: Option<u64>,
) -> anyhow::Result<()> {
    let service = client.connect_weather().await?;
    let stations = list_stations(client, &service).await?;
    let zone = zone_of(&stations, &request.station_id);
    let mut readings_printed = 0_u64;
    let mut backoff = Backoff::new();
    let mut interrupted = false;
    let mut service = Some(service);
    loop {
        let Some(mut current) = service.take() else {
            match client.connect_weather().await {
                Ok(reconnected) => service = Some(reconnected),
                Err(status) => wait_to_resume(&status, &mut backoff).await,
            }
            continue;
        };
        let mut readings = match current.watch_readings(request.clone()).await {
            Ok(response) => response.into_inner(),
            Err(status) if readings_printed > 0 && worth_resuming(&status) => {
                wait_to_resume(&status, &mut backoff).await;
                continue;
            }
            Err(status) => return Err(status.into()),
        };
        loop {
            match readings.message().await {
                Ok(Some(reading)) => {
                    if std::mem::take(&mut interrupted) {
                        notice("watch resumed");
                    }
                    backoff.reset();
                    let shown = ShownReading::new(&reading, &zone);
                    printer.print(&shown.line(), &ReadingJson::new(&reading))?;
                    readings_printed += 1;
                    if count.is_some_and(|count| readings_printed >= count) {
                        return Ok(());
                    }
                }
                Ok(None) => {
                    // Servers end watches only with a status; treat a bare end
                    // as a lost connection.
                    let status = Status::unavailable("the server ended the stream");
                    interrupted = true;
                    wait_to_resume(&status, &mut backoff).await;
                    break;
                }
                Err(status) if worth_resuming(&status) => {
                    interrupted = true;
                    wait_to_resume(&status, &mut backoff).await;
                    break;
                }
                Err(status) => return Err(status.into()),
            }
        }
    }
}

async fn wait_to_resume(status: &Status, backoff: &mut Backoff) {
    let wait = backoff.next_wait();
    notice(&format!(
        "watch interrupted ({}: {}); reconnecting in {}",
        code_name(status.code()),
        status.message(),
        humantime::format_duration(Duration::from_millis(
            u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
        )),
    ));
    tokio::time::sleep(wait).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_with_an_offset_or_in_the_station_zone() {
        let madrid = TimeZone::get("Europe/Madrid").unwrap();
        let utc: Timestamp = "2024-06-01T12:00:00Z".parse().unwrap();
        assert_eq!(parse_time("2024-06-01T12:00:00Z", &madrid).unwrap(), utc);
        assert_eq!(
            parse_time("2024-06-01T14:00:00+02:00", &madrid).unwrap(),
            utc
        );
        assert_eq!(parse_time("2024-06-01T14:00", &madrid).unwrap(), utc);
        assert_eq!(parse_time("2024-06-01 14:00", &madrid).unwrap(), utc);
        assert!(
            parse_time("2024-03-31T02:30", &madrid).is_err(),
            "skipped by DST"
        );
        assert!(parse_time("tomorrow", &madrid).is_err());
    }

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        let mut backoff = Backoff::new();
        let first = backoff.next_wait();
        assert!(
            first >= FIRST_BACKOFF / 2 && first <= FIRST_BACKOFF,
            "{first:?}"
        );
        for _ in 0..20 {
            assert!(backoff.next_wait() <= MAX_BACKOFF);
        }
        assert!(backoff.next_wait() >= MAX_BACKOFF / 2);
        backoff.reset();
        assert!(backoff.next_wait() <= FIRST_BACKOFF);
    }

    #[test]
    fn only_connection_trouble_is_worth_resuming() {
        assert!(worth_resuming(&Status::unavailable("draining")));
        assert!(worth_resuming(&Status::unknown("connection reset")));
        assert!(!worth_resuming(&Status::not_found("no such station")));
        assert!(!worth_resuming(&Status::invalid_argument("interval")));
    }
}
