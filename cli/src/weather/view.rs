//! Readings and stations as people read them (local time, units, aligned
//! columns) and as scripts read them (JSON: UTC, absent metrics left out).

use jiff::{Timestamp, tz::TimeZone};
use quartet_proto::weather::v1 as pb;
use serde::Serialize;

use crate::output::Printer;

/// A station for scripts.
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

/// Prints the stations as an aligned table under a heading, or as one JSON
/// object each.
pub(super) fn print_stations(printer: &Printer, stations: &[pb::Station]) -> std::io::Result<()> {
    let id_width = column_width(stations.iter().map(|station| station.id.as_str()), "ID");
    let name_width = column_width(stations.iter().map(|station| station.name.as_str()), "NAME");
    printer.heading(&format!(
        "{:id_width$}  {:name_width$}  COUNTRY  LATITUDE  LONGITUDE  ELEVATION  TIME ZONE",
        "ID", "NAME"
    ))?;
    for station in stations {
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

/// A reading as people read it: in the station's time zone, with units.
pub(super) struct ShownReading<'a> {
    reading: &'a pb::Reading,
    local_time: String,
    source: &'static str,
}

impl<'a> ShownReading<'a> {
    pub(super) fn new(reading: &'a pb::Reading, zone: &TimeZone) -> Self {
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

    /// Several lines, one thing a line (`get`): the station and its `name`,
    /// the time, the source, then each metric.
    pub(super) fn card(&self, name: &str) -> String {
        let mut lines = vec![
            format!("station      {}{name}", self.reading.station_id),
            format!("observed at  {}", self.local_time),
            format!("source       {}", self.source),
        ];
        for (label, measurement) in self.measurements() {
            lines.push(format!("{label:12} {measurement}"));
        }
        lines.join("\n")
    }

    /// One line (`watch`): time, station, then each metric with its unit.
    pub(super) fn line(&self) -> String {
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

/// A metric for scripts: its value and unit.
#[derive(Serialize)]
struct MeasurementJson<'a> {
    value: f64,
    unit: &'a str,
}

/// A reading for scripts: UTC time, absent metrics left out (never zero).
#[derive(Serialize)]
pub(super) struct ReadingJson<'a> {
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
    pub(super) fn new(reading: &'a pb::Reading) -> Self {
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
