//! The weather protocol: `MIN_TEMP [station]`, `MAX_TEMP [station]`,
//! `PRESSURE [station]`, `RAINFALL [station]` answer one number; `ALL [station]`
//! the four, labelled; `STATIONS` lists the stations. Without a station, the
//! gateway's default station is read.

use quartet_proto::weather::v1::{
    GetReadingRequest, ListStationsRequest, Measurement, Metric, Reading,
};

use super::{help, quit, unknown, usage};
use crate::{
    lines::{LineProtocol, PendingReply, Reply, split_command},
    upstreams::{Upstreams, err, error_line},
};

const COMMANDS: [&str; 8] = [
    "MIN_TEMP [station]   lowest temperature of the last 24 h, °C",
    "MAX_TEMP [station]   highest temperature of the last 24 h, °C",
    "PRESSURE [station]   pressure at the station, hPa",
    "RAINFALL [station]   precipitation of the last 24 h, mm",
    "ALL [station]        the four: min=.. max=.. pressure=.. rainfall=..",
    "STATIONS             the stations: <id> <name>",
    "HELP",
    "QUIT",
];

/// Bridges the weather protocol to the weather service.
#[derive(Debug, Clone)]
pub struct WeatherLines {
    upstreams: Upstreams,
    default_station: String,
}

impl WeatherLines {
    /// A protocol handler calling `upstreams`, reading `default_station` when a
    /// command names none.
    pub fn new(upstreams: Upstreams, default_station: String) -> Self {
        Self {
            upstreams,
            default_station,
        }
    }
}

fn number(measurement: Option<&Measurement>) -> Option<String> {
    measurement.map(|measurement| format!("{:.1}", measurement.value))
}

fn ready(reply: Reply) -> PendingReply {
    Box::pin(std::future::ready(reply))
}

/// The metric a one-number command reads, and its reading's field.
type Pick = fn(&Reading) -> Option<&Measurement>;

fn one_metric(verb: &str) -> Option<(Metric, &'static str, Pick)> {
    Some(match verb {
        "MIN_TEMP" => (Metric::MinTemperature, "min temperature", |r| {
            r.min_temperature.as_ref()
        }),
        "MAX_TEMP" => (Metric::MaxTemperature, "max temperature", |r| {
            r.max_temperature.as_ref()
        }),
        "PRESSURE" => (Metric::Pressure, "pressure", |r| r.pressure.as_ref()),
        "RAINFALL" => (Metric::Rainfall, "rainfall", |r| r.rainfall.as_ref()),
        _ => return None,
    })
}

impl LineProtocol for WeatherLines {
    fn handle(&self, line: String) -> PendingReply {
        let (verb, rest) = split_command(&line);
        if rest.contains(' ') {
            return ready(usage(&format!("{verb} [station]")));
        }
        let station = if rest.is_empty() {
            self.default_station.clone()
        } else {
            rest.to_owned()
        };
        let mut weather = self.upstreams.weather.clone();
        if let Some((metric, name, pick)) = one_metric(&verb) {
            let request = self.upstreams.request(GetReadingRequest {
                station_id: station.clone(),
                metrics: vec![metric.into()],
                at: None,
            });
            return Box::pin(async move {
                match weather.get_reading(request).await {
                    Ok(reading) => match number(pick(&reading.into_inner())) {
                        Some(value) => Reply::line(value),
                        None => Reply::line(err(
                            "NOT_FOUND",
                            &format!("no {name} recorded for {station}"),
                        )),
                    },
                    Err(status) => Reply::line(error_line(&status)),
                }
            });
        }
        match verb.as_str() {
            "ALL" => {
                let request = self.upstreams.request(GetReadingRequest {
                    station_id: station,
                    metrics: Vec::new(),
                    at: None,
                });
                Box::pin(async move {
                    match weather.get_reading(request).await {
                        Ok(reading) => {
                            let reading = reading.into_inner();
                            let value =
                                |measurement| number(measurement).unwrap_or_else(|| "-".into());
                            Reply::line(format!(
                                "min={} max={} pressure={} rainfall={}",
                                value(reading.min_temperature.as_ref()),
                                value(reading.max_temperature.as_ref()),
                                value(reading.pressure.as_ref()),
                                value(reading.rainfall.as_ref()),
                            ))
                        }
                        Err(status) => Reply::line(error_line(&status)),
                    }
                })
            }
            "STATIONS" if rest.is_empty() => {
                let request = self.upstreams.request(ListStationsRequest {});
                Box::pin(async move {
                    match weather.list_stations(request).await {
                        Ok(list) => {
                            let stations = list.into_inner().stations;
                            let mut lines = vec![format!("OK {}", stations.len())];
                            lines.extend(
                                stations
                                    .iter()
                                    .map(|station| format!("{} {}", station.id, station.name)),
                            );
                            Reply::Lines(lines)
                        }
                        Err(status) => Reply::line(error_line(&status)),
                    }
                })
            }
            "STATIONS" => ready(usage("STATIONS")),
            "HELP" => ready(help(&COMMANDS)),
            "QUIT" => ready(quit()),
            _ => ready(unknown(&verb)),
        }
    }
}
