//! The weather protocol: `MIN_TEMP [station]`, `MAX_TEMP [station]`,
//! `PRESSURE [station]`, `RAINFALL [station]` answer one number; `ALL [station]`
//! the four, labelled; `STATIONS` lists the stations. Without a station, the
//! gateway's default station is read. Every command reads, so a connection's
//! pipelined commands all run at once.

use quartet_proto::weather::v1::{
    GetReadingRequest, ListStationsRequest, Measurement, Metric, Reading,
};

use quartet_client::{Connection, retry_read};
use quartet_proto::weather::v1::weather_service_client::WeatherServiceClient;
use quartet_text::printable;

use super::split_command;
use crate::{
    ordered::{Access, Call, CallProtocol},
    reply::{Reply, err, failed, help, quit, unknown, usage},
    upstreams::Upstreams,
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

/// One weather request. A station of `None` is the gateway's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// One metric, answered as one number.
    One {
        /// Which metric.
        metric: Metric,
        /// Whose.
        station: Option<String>,
    },
    /// `ALL [station]`: the four metrics, labelled.
    All {
        /// Whose.
        station: Option<String>,
    },
    /// `STATIONS`: the catalogue.
    Stations,
}

/// The metric a one-number verb reads.
fn metric(verb: &str) -> Option<Metric> {
    Some(match verb {
        "MIN_TEMP" => Metric::MinTemperature,
        "MAX_TEMP" => Metric::MaxTemperature,
        "PRESSURE" => Metric::Pressure,
        "RAINFALL" => Metric::Rainfall,
        _ => return None,
    })
}

/// Parses one request line.
pub fn parse(line: &str) -> Result<Command, Reply> {
    let (verb, rest) = split_command(line);
    let station = || match rest {
        "" => Ok(None),
        one if !one.contains(' ') => Ok(Some(one.to_owned())),
        _ => Err(usage(&format!("{verb} [station]"))),
    };
    if let Some(metric) = metric(&verb) {
        return Ok(Command::One {
            metric,
            station: station()?,
        });
    }
    match verb.as_str() {
        "ALL" => Ok(Command::All {
            station: station()?,
        }),
        "STATIONS" if rest.is_empty() => Ok(Command::Stations),
        "STATIONS" => Err(usage("STATIONS")),
        "HELP" => Err(help(&COMMANDS)),
        "QUIT" => Err(quit()),
        _ => Err(unknown(&verb)),
    }
}

fn number(measurement: Option<&Measurement>) -> Option<String> {
    measurement.map(|measurement| format!("{:.1}", measurement.value))
}

/// A reading as the `ALL` line: `min=.. max=.. pressure=.. rainfall=..`, `-`
/// for a metric not recorded. The web door's weather socket sends the same.
pub fn all_line(reading: &Reading) -> String {
    let value = |measurement| number(measurement).unwrap_or_else(|| "-".into());
    format!(
        "min={} max={} pressure={} rainfall={}",
        value(reading.min_temperature.as_ref()),
        value(reading.max_temperature.as_ref()),
        value(reading.pressure.as_ref()),
        value(reading.rainfall.as_ref()),
    )
}

/// The measurement of `metric` in a reading, and its name in messages.
fn pick(reading: &Reading, metric: Metric) -> (Option<&Measurement>, &'static str) {
    match metric {
        Metric::MinTemperature => (reading.min_temperature.as_ref(), "min temperature"),
        Metric::MaxTemperature => (reading.max_temperature.as_ref(), "max temperature"),
        Metric::Pressure => (reading.pressure.as_ref(), "pressure"),
        Metric::Rainfall | Metric::Unspecified => (reading.rainfall.as_ref(), "rainfall"),
    }
}

/// A reading, with one more try on another endpoint if the first was
/// unavailable (a read changes nothing).
async fn get_reading(
    weather: &WeatherServiceClient<Connection>,
    upstreams: &Upstreams,
    read: &GetReadingRequest,
) -> Result<tonic::Response<Reading>, tonic::Status> {
    retry_read(|| {
        let mut weather = weather.clone();
        let request = upstreams.request(read.clone());
        async move { weather.get_reading(request).await }
    })
    .await
}

/// Calls the weather service for `command` and formats its answer.
pub async fn apply(command: Command, upstreams: &Upstreams, default_station: &str) -> Reply {
    let weather = upstreams.weather.clone();
    let or_default = |station: Option<String>| station.unwrap_or_else(|| default_station.into());
    match command {
        Command::One { metric, station } => {
            let station = or_default(station);
            let read = GetReadingRequest {
                station_id: station.clone(),
                metrics: vec![metric.into()],
                at: None,
            };
            match get_reading(&weather, upstreams, &read).await {
                Ok(reading) => match pick(&reading.into_inner(), metric) {
                    (Some(value), _) => Reply::line(format!("{:.1}", value.value)),
                    (None, name) => Reply::line(err(
                        "NOT_FOUND",
                        &format!("no {name} recorded for {station}"),
                    )),
                },
                Err(status) => failed(&status),
            }
        }
        Command::All { station } => {
            let read = GetReadingRequest {
                station_id: or_default(station),
                metrics: Vec::new(),
                at: None,
            };
            match get_reading(&weather, upstreams, &read).await {
                Ok(reading) => Reply::line(all_line(&reading.into_inner())),
                Err(status) => failed(&status),
            }
        }
        Command::Stations => {
            let stations = retry_read(|| {
                let mut weather = weather.clone();
                let request = upstreams.request(ListStationsRequest {});
                async move { weather.list_stations(request).await }
            })
            .await;
            match stations {
                Ok(list) => Reply::counted(
                    "",
                    list.into_inner().stations.iter().map(|station| {
                        format!("{} {}", printable(&station.id), printable(&station.name))
                    }),
                ),
                Err(status) => failed(&status),
            }
        }
    }
}

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

impl CallProtocol for WeatherLines {
    type Command = Command;

    fn parse(&self, line: &str) -> Result<Command, Reply> {
        parse(line)
    }

    fn access(_: &Command) -> Access {
        Access::Read
    }

    fn apply(&self, command: Command) -> Call {
        let this = self.clone();
        Box::pin(async move { apply(command, &this.upstreams, &this.default_station).await })
    }
}

#[cfg(test)]
mod tests {
    use quartet_proto::weather::v1::Metric;

    use super::{Command, parse};

    #[test]
    fn a_station_is_optional_and_one_word() {
        assert_eq!(
            parse("min_temp"),
            Ok(Command::One {
                metric: Metric::MinTemperature,
                station: None
            })
        );
        assert_eq!(
            parse("ALL lhasa"),
            Ok(Command::All {
                station: Some("lhasa".into())
            })
        );
        assert_eq!(
            parse("PRESSURE a b").unwrap_err().text(),
            "ERR INVALID_ARGUMENT usage: PRESSURE [station]"
        );
        assert_eq!(
            parse("STATIONS x").unwrap_err().text(),
            "ERR INVALID_ARGUMENT usage: STATIONS"
        );
    }

    #[test]
    fn help_and_unknown_verbs_are_answered_whatever_follows() {
        assert!(
            parse("HELP me please")
                .unwrap_err()
                .text()
                .starts_with("OK 8")
        );
        assert!(
            parse("SNOW a b")
                .unwrap_err()
                .text()
                .starts_with("ERR INVALID_ARGUMENT unknown command \"SNOW\"")
        );
    }
}
