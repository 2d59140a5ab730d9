//! Reading the file: the header names the columns, every row becomes a record
//! of its station, and the checks that need every row run last. Every problem
//! is reported with its line and column.

use std::{io, path::Path};

use csv::{ReaderBuilder, StringRecord, Trim};
use jiff::Timestamp;

use super::cell;
use crate::{
    error::{FileLocation, WeatherError},
    provider::{ByStation, catalogue},
    reading::{Metric, Station},
};

/// One observation: a row of the file, once its station is known.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Record {
    /// When it was observed.
    pub(super) at: Timestamp,
    pub(super) min_temperature_c: Option<f64>,
    pub(super) max_temperature_c: Option<f64>,
    pub(super) pressure_hpa: Option<f64>,
    pub(super) rainfall_mm: Option<f64>,
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

/// One pass over a file: the header, then every row, then the checks that need
/// all rows.
pub(super) struct Loader<'a> {
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
    pub(super) fn new(path: &'a Path) -> Self {
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

    pub(super) fn load(
        mut self,
        reader: impl io::Read,
    ) -> Result<ByStation<Vec<Record>>, WeatherError> {
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
                    let value = cell::metric_value(*metric, field)
                        .map_err(|reason| self.invalid(line, Some(index), reason))?;
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
        record.at =
            cell::time(station, field).map_err(|reason| self.invalid(line, Some(index), reason))?;
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

    /// Groups rows by station, sorts them by time, and refuses duplicates.
    fn assemble(&self, mut rows: Vec<Row>) -> Result<ByStation<Vec<Record>>, WeatherError> {
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
        let mut series: Vec<(Station, Vec<Record>)> = Vec::new();
        for row in rows {
            match series.last_mut() {
                Some((station, records)) if station.id == row.station.id => {
                    records.push(row.record);
                }
                _ => series.push((row.station.clone(), vec![row.record])),
            }
        }
        Ok(ByStation::new(series))
    }
}

#[cfg(test)]
mod tests {
    use crate::provider::observations::tests::{HEADER, load};

    fn message(text: &str) -> String {
        load(text).unwrap_err().to_string()
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
    fn text_that_is_not_utf8_is_refused_with_its_line() {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(b"madrid,2024-01-01T09:00:00Z,1,2,\xff,0\n");
        let error = load(&bytes).unwrap_err();
        assert!(
            error.to_string().contains("line 2: not valid UTF-8"),
            "{error}"
        );
    }
}
