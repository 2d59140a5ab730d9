//! `quartet weather get STATION`: one reading, now or at `--at` (an instant,
//! or a local time in the station's zone).

use std::time::SystemTime;

use jiff::{Timestamp, civil::DateTime, tz::TimeZone};
use quartet_proto::weather::v1::GetReadingRequest;

use super::{
    stations::{list_stations, zone_of},
    view::{ReadingJson, ShownReading},
};
use crate::{client::ClientOptions, failure::UsageError, output::Printer};

/// Reads `request`'s station at `at` (now when absent) and prints the reading.
pub(super) async fn get(
    client: &ClientOptions,
    printer: &Printer,
    mut request: GetReadingRequest,
    at: Option<&str>,
) -> anyhow::Result<()> {
    let service = client.connect_weather().await?;
    let stations = list_stations(client, &service).await?;
    let zone = zone_of(&stations, &request.station_id);
    let at = at.map(|text| parse_time(text, &zone)).transpose()?;
    request.at = at.map(to_proto_time);
    let reading = client
        .read(&service, &request, |mut service, request| async move {
            service.get_reading(request).await
        })
        .await?;
    let name = stations
        .iter()
        .find(|candidate| candidate.id == reading.station_id)
        .map(|station| format!(" ({}, {})", station.name, station.country))
        .unwrap_or_default();
    let text = ShownReading::new(&reading, &zone).card(&name);
    printer.print(&text, &ReadingJson::new(&reading))?;
    Ok(())
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
    SystemTime::from(at).into()
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
    fn instants_before_1970_keep_their_nanoseconds_positive() {
        let at: Timestamp = "1969-12-31T23:59:59.25Z".parse().unwrap();
        let proto = to_proto_time(at);
        assert_eq!((proto.seconds, proto.nanos), (-1, 250_000_000));
    }
}
