//! Recorded observations from a CSV file (`--observations FILE.csv`): the
//! answer for a time is the station's latest record at or before it.
//!
//! # File layout
//! UTF-8 CSV with a header line; `#` starts a comment line; blank lines and
//! spaces around fields are ignored. Columns, by header name in any order:
//!
//! | column | required | content |
//! |--------|----------|---------|
//! | `station` | yes | a catalogue station id (`madrid`) |
//! | `observed_at` | yes | RFC 3339 with an offset (`2024-01-15T09:00:00Z`, `2024-01-15T09:00:00+01:00`), or a local time without one (`2024-01-15 09:00`) in the station's time zone |
//! | `min_temperature_c` | no | lowest °C of the 24 hours ending at `observed_at` |
//! | `max_temperature_c` | no | highest °C of the same 24 hours, not below the min |
//! | `pressure_hpa` | no | station pressure, hPa |
//! | `rainfall_mm` | no | precipitation of the same 24 hours, mm, not negative |
//!
//! An empty cell (or a missing column) is a metric the station did not record:
//! readings leave it absent. Rows may come in any order; two rows for the same
//! station and instant are an error. Every problem is reported at start with its
//! line and column, and the server does not start.//!
//! # Layout
//! - this file: [`ObservationsProvider`], which answers from the records.
//! - `loader`: reads the file, row by row, and refuses what is wrong with it.
//! - `cell`: reads one cell, a metric's value or an observation time.

mod cell;
mod loader;

use std::{fs::File, io, path::Path};

use jiff::Timestamp;

use self::loader::{Loader, Record};
use super::{ByStation, ReadingProvider};
use crate::{
    error::WeatherError,
    reading::{MetricSet, Reading, Source, Station},
};

/// Serves readings recorded in a file.
#[derive(Debug)]
pub struct ObservationsProvider {
    /// The stations that have records, each with its records sorted by time.
    records: ByStation<Vec<Record>>,
}

impl ObservationsProvider {
    /// Loads `path`, or says exactly what is wrong with it.
    pub fn load(path: &Path) -> Result<Self, WeatherError> {
        let file = File::open(path).map_err(|source| WeatherError::ObservationsUnreadable {
            path: path.to_owned(),
            source,
        })?;
        Self::from_reader(path, io::BufReader::new(file))
    }

    /// Loads observations from `reader`; `path` names it in errors.
    /// Loads observations from `reader`; `path` names it in errors.
    pub fn from_reader(path: &Path, reader: impl io::Read) -> Result<Self, WeatherError> {
        Ok(Self {
            records: Loader::new(path).load(reader)?,
        })
    }
}

impl ReadingProvider for ObservationsProvider {
    fn stations(&self) -> &[Station] {
        self.records.stations()
    }

    fn reading(
        &self,
        station: &str,
        at: Timestamp,
        metrics: MetricSet,
    ) -> Result<Reading, WeatherError> {
        let (station, records) = self.records.get(station)?;
        let after = records.partition_point(|record| record.at <= at);
        let Some(record) = after.checked_sub(1).map(|latest| &records[latest]) else {
            return Err(WeatherError::NoObservation {
                station: station.id.to_owned(),
                at,
                first: records[0].at,
            });
        };
        Ok(Reading {
            station_id: station.id,
            observed_at: record.at,
            min_temperature_c: record.min_temperature_c,
            max_temperature_c: record.max_temperature_c,
            pressure_hpa: record.pressure_hpa,
            rainfall_mm: record.rainfall_mm,
            source: Source::Observed,
        }
        .only(metrics))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../../data/observations-sample.csv");

    /// A header naming every column.
    pub(super) const HEADER: &str =
        "station,observed_at,min_temperature_c,max_temperature_c,pressure_hpa,rainfall_mm\n";

    /// The provider for `text`, as a file named test.csv.
    pub(super) fn load(text: impl AsRef<[u8]>) -> Result<ObservationsProvider, WeatherError> {
        ObservationsProvider::from_reader(Path::new("test.csv"), text.as_ref())
    }

    /// The provider for a file of `rows` under [`HEADER`].
    fn provider_of(rows: &str) -> ObservationsProvider {
        load(format!("{HEADER}{rows}")).unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// What `provider` reads for `station` at `time`, every metric asked.
    fn read(
        provider: &ObservationsProvider,
        station: &str,
        time: &str,
    ) -> Result<Reading, WeatherError> {
        provider.reading(station, at(time), MetricSet::ALL)
    }

    #[test]
    fn the_sample_file_loads_with_its_stations_in_order() {
        let provider = load(SAMPLE).unwrap();
        let ids: Vec<_> = provider
            .stations()
            .iter()
            .map(|station| station.id)
            .collect();
        assert_eq!(ids, ["london", "madrid", "sydney"]);
        assert_eq!(
            provider.station("madrid").unwrap().time_zone,
            "Europe/Madrid"
        );
    }

    #[test]
    fn a_time_between_records_reads_the_earlier_one() {
        let provider = provider_of(
            "madrid,2024-01-02T09:00:00+01:00,1.0,9.0,940.0,0.0\nmadrid,2024-01-03T09:00:00+01:00,2.0,11.0,,3.5\n",
        );
        let reading = read(&provider, "madrid", "2024-01-03T07:59:59Z").unwrap();
        assert_eq!(reading.observed_at, at("2024-01-02T08:00:00Z"));
        assert_eq!(reading.min_temperature_c, Some(1.0));
        assert_eq!(reading.source, Source::Observed);

        let exact = read(&provider, "madrid", "2024-01-03T08:00:00Z").unwrap();
        assert_eq!(exact.max_temperature_c, Some(11.0));
        // An empty cell is a metric that was not recorded: absent, not zero.
        assert_eq!(exact.pressure_hpa, None);
        assert_eq!(exact.rainfall_mm, Some(3.5));

        let later = read(&provider, "madrid", "2030-01-01T00:00:00Z").unwrap();
        assert_eq!(later, exact);
    }

    #[test]
    fn a_time_before_the_first_record_is_no_observation() {
        let provider = provider_of("london,2024-01-02T09:00:00Z,1,2,1000,0\n");
        let error = read(&provider, "london", "2024-01-02T08:59:59Z").unwrap_err();
        assert!(
            matches!(&error, WeatherError::NoObservation { first, .. } if *first == at("2024-01-02T09:00:00Z")),
            "{error}"
        );
        let unknown = read(&provider, "madrid", "2024-01-03T00:00:00Z").unwrap_err();
        assert!(matches!(unknown, WeatherError::UnknownStation(_)));
    }

    #[test]
    fn local_times_are_in_the_station_zone() {
        let provider = load(
            "station,observed_at,pressure_hpa\nmadrid,2024-07-01 09:00,940\nsydney,2024-07-01T09:00,1015\n",
        )
        .unwrap();
        let madrid = read(&provider, "madrid", "2024-07-02T00:00:00Z").unwrap();
        assert_eq!(madrid.observed_at, at("2024-07-01T07:00:00Z"));
        let sydney = read(&provider, "sydney", "2024-07-02T00:00:00Z").unwrap();
        assert_eq!(sydney.observed_at, at("2024-06-30T23:00:00Z"));
        // Missing columns are metrics never recorded.
        assert_eq!(madrid.min_temperature_c, None);
        assert_eq!(madrid.pressure_hpa, Some(940.0));
    }

    #[test]
    fn rows_in_any_order_are_sorted() {
        let provider = provider_of(
            "madrid,2024-01-03T09:00:00Z,2,3,,\nlondon,2024-01-01T09:00:00Z,0,1,,\nmadrid,2024-01-01T09:00:00Z,0,1,,\n",
        );
        let reading = read(&provider, "madrid", "2024-01-02T00:00:00Z").unwrap();
        assert_eq!(reading.observed_at, at("2024-01-01T09:00:00Z"));
    }

    #[test]
    fn a_missing_file_is_unreadable() {
        let error = ObservationsProvider::load(Path::new("/no/such/observations.csv")).unwrap_err();
        assert!(
            matches!(error, WeatherError::ObservationsUnreadable { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("/no/such/observations.csv"));
    }
}
