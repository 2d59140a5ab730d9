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
//! line and column, and the server does not start.

use std::{fs::File, io, path::Path};

use csv::{ReaderBuilder, StringRecord, Trim};
use jiff::{Timestamp, civil::DateTime, tz::AmbiguousOffset};

use super::{ReadingProvider, catalogue};
use crate::{
    error::{FileLocation, WeatherError},
    reading::{Metric, MetricSet, Reading, Source, Station, check_supported},
};

/// Plausible ranges: a value outside is a typo or a unit mix-up (°F, Pa,
/// inches), not weather.
const TEMPERATURE_RANGE_C: (f64, f64) = (-95.0, 65.0);
const PRESSURE_RANGE_HPA: (f64, f64) = (300.0, 1100.0);
const RAINFALL_RANGE_MM: (f64, f64) = (0.0, 2000.0);

/// Serves readings recorded in a file.
#[derive(Debug)]
pub struct ObservationsProvider {
    /// The stations that have records, ordered by id.
    stations: Vec<Station>,
    /// Each station's records, in the order of `stations`, sorted by time.
    records: Vec<Vec<Record>>,
}

/// One row of the file.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    at: Timestamp,
    min_temperature_c: Option<f64>,
    max_temperature_c: Option<f64>,
    pressure_hpa: Option<f64>,
    rainfall_mm: Option<f64>,
}

/// What each header column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Station,
    ObservedAt,
    Metric(Metric),
}

impl Column {
    const NAMES: [(&'static str, Self); 6] = [
        ("station", Self::Station),
        ("observed_at", Self::ObservedAt),
        ("min_temperature_c", Self::Metric(Metric::MinTemperature)),
        ("max_temperature_c", Self::Metric(Metric::MaxTemperature)),
        ("pressure_hpa", Self::Metric(Metric::Pressure)),
        ("rainfall_mm", Self::Metric(Metric::Rainfall)),
    ];

    fn named(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, column)| *column)
    }
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
    pub fn from_reader(path: &Path, reader: impl io::Read) -> Result<Self, WeatherError> {
        Loader::new(path).load(reader)
    }
}

impl ReadingProvider for ObservationsProvider {
    fn stations(&self) -> &[Station] {
        &self.stations
    }

    fn reading(
        &self,
        station: &str,
        at: Timestamp,
        metrics: MetricSet,
    ) -> Result<Reading, WeatherError> {
        let index = self
            .stations
            .binary_search_by(|candidate| candidate.id.cmp(station))
            .map_err(|_| WeatherError::UnknownStation(station.to_owned()))?;
        let records = &self.records[index];
        let station_id = self.stations[index].id;
        let after = records.partition_point(|record| record.at <= at);
        let Some(record) = after.checked_sub(1).map(|latest| &records[latest]) else {
            return Err(WeatherError::NoObservation {
                station: station_id.to_owned(),
                at,
                first: records[0].at,
            });
        };
        Ok(Reading {
            station_id,
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

/// One pass over a file: the header, then every row, then the checks that need
/// all rows.
struct Loader<'a> {
    path: &'a Path,
    /// Header name of every column, for messages.
    names: Vec<String>,
    /// What every column holds.
    columns: Vec<Column>,
}

/// A row on its way in: where it was, whose it is, what it says.
struct Row {
    line: u64,
    station: &'static Station,
    record: Record,
}

impl<'a> Loader<'a> {
    fn new(path: &'a Path) -> Self {
        Self {
            path,
            names: Vec::new(),
            columns: Vec::new(),
        }
    }

    fn invalid(&self, line: u64, column: Option<usize>, reason: impl Into<String>) -> WeatherError {
        WeatherError::ObservationsInvalid {
            path: self.path.to_owned(),
            location: FileLocation {
                line,
                column: column.map(|index| (index + 1, self.names[index].clone())),
            },
            reason: reason.into(),
        }
    }

    fn csv_error(&self, error: &csv::Error) -> WeatherError {
        let line = error.position().map_or(1, csv::Position::line);
        let reason = match error.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!("expected {expected_len} fields as in the header, found {len}"),
            csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
            csv::ErrorKind::Io(io) => {
                return WeatherError::ObservationsUnreadable {
                    path: self.path.to_owned(),
                    source: io::Error::new(io.kind(), io.to_string()),
                };
            }
            _ => error.to_string(),
        };
        self.invalid(line, None, reason)
    }

    fn load(mut self, reader: impl io::Read) -> Result<ObservationsProvider, WeatherError> {
        let mut reader = ReaderBuilder::new()
            .trim(Trim::All)
            .comment(Some(b'#'))
            .from_reader(reader);
        let header = reader
            .headers()
            .map_err(|error| self.csv_error(&error))?
            .clone();
        self.read_header(&header)?;
        let mut rows = Vec::new();
        for result in reader.records() {
            let record = result.map_err(|error| self.csv_error(&error))?;
            rows.push(self.read_row(&record)?);
        }
        if rows.is_empty() {
            let line = header.position().map_or(1, csv::Position::line);
            return Err(self.invalid(line, None, "the file has a header but no observations"));
        }
        self.assemble(rows)
    }

    fn read_header(&mut self, header: &StringRecord) -> Result<(), WeatherError> {
        let line = header.position().map_or(1, csv::Position::line);
        self.names = header.iter().map(str::to_owned).collect();
        let expected = || {
            Column::NAMES
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if header.iter().all(str::is_empty) {
            return Err(self.invalid(
                line,
                None,
                format!(
                    "empty file; the first line must be a header naming the columns: {}",
                    expected()
                ),
            ));
        }
        for (index, name) in header.iter().enumerate() {
            let Some(column) = Column::named(name) else {
                return Err(self.invalid(
                    line,
                    Some(index),
                    format!("unknown column {name:?}; columns are {}", expected()),
                ));
            };
            if self.columns.contains(&column) {
                return Err(self.invalid(
                    line,
                    Some(index),
                    format!("column {name:?} appears twice"),
                ));
            }
            self.columns.push(column);
        }
        for required in [Column::Station, Column::ObservedAt] {
            if !self.columns.contains(&required) {
                let name = Column::NAMES
                    .iter()
                    .find(|(_, column)| *column == required)
                    .map_or("?", |(name, _)| name);
                return Err(self.invalid(line, None, format!("the header has no {name:?} column")));
            }
        }
        Ok(())
    }

    fn read_row(&self, fields: &StringRecord) -> Result<Row, WeatherError> {
        let line = fields.position().map_or(0, csv::Position::line);
        let mut station = None;
        let mut record = Record {
            at: Timestamp::UNIX_EPOCH,
            min_temperature_c: None,
            max_temperature_c: None,
            pressure_hpa: None,
            rainfall_mm: None,
        };
        // A local time needs the station's zone, and the station may come in a
        // later column: resolve the time after the loop.
        let mut time_field = None;
        for (index, (column, field)) in self.columns.iter().zip(fields.iter()).enumerate() {
            match column {
                Column::Station => {
                    let entry = catalogue::find(field).ok_or_else(|| {
                        self.invalid(line, Some(index), format!("{field:?} is not a station of the catalogue (`quartet weather stations` lists them)"))
                    })?;
                    station = Some(&entry.station);
                }
                Column::ObservedAt => time_field = Some((index, field)),
                Column::Metric(metric) => {
                    let value = self.metric_value(*metric, field, line, index)?;
                    match metric {
                        Metric::MinTemperature => record.min_temperature_c = value,
                        Metric::MaxTemperature => record.max_temperature_c = value,
                        Metric::Pressure => record.pressure_hpa = value,
                        Metric::Rainfall => record.rainfall_mm = value,
                    }
                }
            }
        }
        let (Some(station), Some((index, field))) = (station, time_field) else {
            return Err(self.invalid(line, None, "a row needs a station and a time"));
        };
        record.at = self.time(station, field, line, index)?;
        if let (Some(min), Some(max)) = (record.min_temperature_c, record.max_temperature_c)
            && min > max
        {
            let max_column = self
                .columns
                .iter()
                .position(|column| *column == Column::Metric(Metric::MaxTemperature));
            return Err(self.invalid(
                line,
                max_column,
                format!("max temperature {max} is below the min temperature {min}"),
            ));
        }
        Ok(Row {
            line,
            station,
            record,
        })
    }

    fn metric_value(
        &self,
        metric: Metric,
        field: &str,
        line: u64,
        index: usize,
    ) -> Result<Option<f64>, WeatherError> {
        if field.is_empty() {
            return Ok(None);
        }
        let value: f64 = field
            .parse()
            .ok()
            .filter(|value: &f64| value.is_finite())
            .ok_or_else(|| self.invalid(line, Some(index), format!("{field:?} is not a number")))?;
        let (low, high) = match metric {
            Metric::MinTemperature | Metric::MaxTemperature => TEMPERATURE_RANGE_C,
            Metric::Pressure => PRESSURE_RANGE_HPA,
            Metric::Rainfall => RAINFALL_RANGE_MM,
        };
        if !(low..=high).contains(&value) {
            let unit = metric.unit();
            return Err(self.invalid(
                line,
                Some(index),
                format!("{value} {unit} is outside the plausible range {low} to {high} {unit}"),
            ));
        }
        Ok(Some(value))
    }

    fn time(
        &self,
        station: &Station,
        field: &str,
        line: u64,
        index: usize,
    ) -> Result<Timestamp, WeatherError> {
        let at = match field.parse::<Timestamp>() {
            Ok(at) => at,
            Err(_) => self.local_time(station, field, line, index)?,
        };
        check_supported(at).map_err(|error| self.invalid(line, Some(index), error.to_string()))
    }

    /// A time without an offset, in the station's zone. A local time that a
    /// clock change skips or repeats is refused: only an offset says which
    /// instant was meant.
    fn local_time(
        &self,
        station: &Station,
        field: &str,
        line: u64,
        index: usize,
    ) -> Result<Timestamp, WeatherError> {
        let civil: DateTime = field.parse().map_err(|_| {
            self.invalid(
                line,
                Some(index),
                format!("{field:?} is not a time; write 2024-01-15T09:00:00Z, 2024-01-15T09:00:00+01:00 or a local 2024-01-15 09:00"),
            )
        })?;
        let zone = jiff::tz::TimeZone::get(station.time_zone).map_err(|error| {
            self.invalid(
                line,
                Some(index),
                format!("time zone {}: {error}", station.time_zone),
            )
        })?;
        let ambiguous = zone.to_ambiguous_timestamp(civil);
        let problem = match ambiguous.offset() {
            AmbiguousOffset::Unambiguous { offset } => {
                return offset
                    .to_timestamp(civil)
                    .map_err(|error| self.invalid(line, Some(index), error.to_string()));
            }
            AmbiguousOffset::Gap { .. } => "does not exist (the clocks skip it)",
            AmbiguousOffset::Fold { .. } => "happens twice (the clocks go back)",
        };
        Err(self.invalid(
            line,
            Some(index),
            format!(
                "{civil} {problem} in {}; give it with an offset",
                station.time_zone
            ),
        ))
    }

    /// Groups rows by station, sorts them by time, and refuses duplicates.
    fn assemble(&self, mut rows: Vec<Row>) -> Result<ObservationsProvider, WeatherError> {
        rows.sort_by(|a, b| {
            (a.station.id, a.record.at, a.line).cmp(&(b.station.id, b.record.at, b.line))
        });
        let time_column = self
            .columns
            .iter()
            .position(|column| *column == Column::ObservedAt);
        for pair in rows.windows(2) {
            let (first, second) = (&pair[0], &pair[1]);
            if first.station.id == second.station.id && first.record.at == second.record.at {
                return Err(self.invalid(
                    second.line,
                    time_column,
                    format!(
                        "station {} already has an observation at {} (line {})",
                        second.station.id, second.record.at, first.line
                    ),
                ));
            }
        }
        let mut stations: Vec<Station> = Vec::new();
        let mut records: Vec<Vec<Record>> = Vec::new();
        for row in rows {
            if stations.last().is_none_or(|last| last.id != row.station.id) {
                stations.push(row.station.clone());
                records.push(Vec::new());
            }
            if let Some(station_records) = records.last_mut() {
                station_records.push(row.record);
            }
        }
        Ok(ObservationsProvider { stations, records })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../data/observations-sample.csv");

    fn load(text: &str) -> Result<ObservationsProvider, WeatherError> {
        ObservationsProvider::from_reader(Path::new("test.csv"), text.as_bytes())
    }

    fn message(text: &str) -> String {
        load(text).unwrap_err().to_string()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    const HEADER: &str =
        "station,observed_at,min_temperature_c,max_temperature_c,pressure_hpa,rainfall_mm\n";

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
        let provider = load(&format!(
            "{HEADER}madrid,2024-01-02T09:00:00+01:00,1.0,9.0,940.0,0.0\nmadrid,2024-01-03T09:00:00+01:00,2.0,11.0,,3.5\n"
        ))
        .unwrap();
        let reading = provider
            .reading("madrid", at("2024-01-03T07:59:59Z"), MetricSet::ALL)
            .unwrap();
        assert_eq!(reading.observed_at, at("2024-01-02T08:00:00Z"));
        assert_eq!(reading.min_temperature_c, Some(1.0));
        assert_eq!(reading.source, Source::Observed);

        let exact = provider
            .reading("madrid", at("2024-01-03T08:00:00Z"), MetricSet::ALL)
            .unwrap();
        assert_eq!(exact.max_temperature_c, Some(11.0));
        // An empty cell is a metric that was not recorded: absent, not zero.
        assert_eq!(exact.pressure_hpa, None);
        assert_eq!(exact.rainfall_mm, Some(3.5));

        let later = provider
            .reading("madrid", at("2030-01-01T00:00:00Z"), MetricSet::ALL)
            .unwrap();
        assert_eq!(later, exact);
    }

    #[test]
    fn a_time_before_the_first_record_is_no_observation() {
        let provider = load(&format!("{HEADER}london,2024-01-02T09:00:00Z,1,2,1000,0\n")).unwrap();
        let error = provider
            .reading("london", at("2024-01-02T08:59:59Z"), MetricSet::ALL)
            .unwrap_err();
        assert!(
            matches!(&error, WeatherError::NoObservation { first, .. } if *first == at("2024-01-02T09:00:00Z")),
            "{error}"
        );
        let unknown = provider
            .reading("madrid", at("2024-01-03T00:00:00Z"), MetricSet::ALL)
            .unwrap_err();
        assert!(matches!(unknown, WeatherError::UnknownStation(_)));
    }

    #[test]
    fn local_times_are_in_the_station_zone() {
        let provider = load(
            "station,observed_at,pressure_hpa\nmadrid,2024-07-01 09:00,940\nsydney,2024-07-01T09:00,1015\n",
        )
        .unwrap();
        let madrid = provider
            .reading("madrid", at("2024-07-02T00:00:00Z"), MetricSet::ALL)
            .unwrap();
        assert_eq!(madrid.observed_at, at("2024-07-01T07:00:00Z"));
        let sydney = provider
            .reading("sydney", at("2024-07-02T00:00:00Z"), MetricSet::ALL)
            .unwrap();
        assert_eq!(sydney.observed_at, at("2024-06-30T23:00:00Z"));
        // Missing columns are metrics never recorded.
        assert_eq!(madrid.min_temperature_c, None);
        assert_eq!(madrid.pressure_hpa, Some(940.0));
    }

    #[test]
    fn rows_in_any_order_are_sorted() {
        let provider = load(&format!(
            "{HEADER}madrid,2024-01-03T09:00:00Z,2,3,,\nlondon,2024-01-01T09:00:00Z,0,1,,\nmadrid,2024-01-01T09:00:00Z,0,1,,\n"
        ))
        .unwrap();
        let reading = provider
            .reading("madrid", at("2024-01-02T00:00:00Z"), MetricSet::ALL)
            .unwrap();
        assert_eq!(reading.observed_at, at("2024-01-01T09:00:00Z"));
    }

    #[test]
    fn a_bad_number_names_its_line_and_column() {
        let text = format!("# a comment\n{HEADER}madrid,2024-01-01T09:00:00Z,1,2,3x,0\n");
        assert_eq!(
            message(&text),
            "bad observations file test.csv, line 3, column 5 (pressure_hpa): \"3x\" is not a number"
        );
    }

    #[test]
    fn broken_headers_are_refused() {
        assert!(
            message("station,observed_at,min_temp\n")
                .contains("line 1, column 3 (min_temp): unknown column \"min_temp\""),
            "{}",
            message("station,observed_at,min_temp\n")
        );
        assert!(
            message("station,pressure_hpa\nmadrid,940\n").contains("no \"observed_at\" column")
        );
        assert!(
            message("station,observed_at,station\n")
                .contains("column 3 (station): column \"station\" appears twice")
        );
        assert!(
            message("").contains("line 1: empty file"),
            "{}",
            message("")
        );
        assert!(message(HEADER).contains("no observations"));
    }

    #[test]
    fn bad_rows_are_refused_with_their_place() {
        let cases = [
            (
                "atlantis,2024-01-01T09:00:00Z,1,2,1000,0",
                "line 2, column 1 (station)",
            ),
            (
                "madrid,yesterday,1,2,1000,0",
                "line 2, column 2 (observed_at): \"yesterday\" is not a time",
            ),
            (
                "madrid,1850-01-01T09:00:00Z,1,2,1000,0",
                "column 2 (observed_at): at: 1850",
            ),
            (
                "madrid,2024-01-01T09:00:00Z,5,2,1000,0",
                "column 4 (max_temperature_c): max temperature 2 is below the min temperature 5",
            ),
            (
                "madrid,2024-01-01T09:00:00Z,1,2,1000,-1",
                "column 6 (rainfall_mm): -1 mm is outside",
            ),
            (
                "madrid,2024-01-01T09:00:00Z,1,2,101325,0",
                "column 5 (pressure_hpa): 101325 hPa is outside",
            ),
            (
                "madrid,2024-01-01T09:00:00Z,1,NaN,1000,0",
                "column 4 (max_temperature_c): \"NaN\" is not a number",
            ),
            (
                "madrid,2024-01-01T09:00:00Z,1,2,1000",
                "line 2: expected 6 fields as in the header, found 5",
            ),
            (
                "madrid,2024-03-31 02:30,1,2,1000,0",
                "2024-03-31T02:30:00 does not exist (the clocks skip it) in Europe/Madrid",
            ),
            (
                "madrid,2024-10-27 02:30,1,2,1000,0",
                "happens twice (the clocks go back) in Europe/Madrid",
            ),
        ];
        for (row, expected) in cases {
            let message = message(&format!("{HEADER}{row}\n"));
            assert!(message.contains(expected), "{row}: {message}");
        }
    }

    #[test]
    fn a_duplicate_time_names_both_lines() {
        let message = message(&format!(
            "{HEADER}madrid,2024-01-01T09:00:00+01:00,1,2,,\nlondon,2024-01-01T08:00:00Z,1,2,,\nmadrid,2024-01-01T08:00:00Z,1,2,,\n"
        ));
        assert!(
            message.contains("line 4, column 2 (observed_at): station madrid already has an observation at 2024-01-01T08:00:00Z (line 2)"),
            "{message}"
        );
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

    #[test]
    fn text_that_is_not_utf8_is_refused_with_its_line() {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(b"madrid,2024-01-01T09:00:00Z,1,2,\xff,0\n");
        let error =
            ObservationsProvider::from_reader(Path::new("test.csv"), bytes.as_slice()).unwrap_err();
        assert!(
            error.to_string().contains("line 2: not valid UTF-8"),
            "{error}"
        );
    }
}
