//! One cell of the file read on its own: a metric's value, or the time of an
//! observation. A cell that is wrong says why; the loader adds where.

use jiff::{Timestamp, civil::DateTime, tz::AmbiguousOffset};

use crate::reading::{Metric, Station, check_supported};

/// Plausible ranges: a value outside is a typo or a unit mix-up (°F, Pa,
/// inches), not weather.
const TEMPERATURE_RANGE_C: (f64, f64) = (-95.0, 65.0);
const PRESSURE_RANGE_HPA: (f64, f64) = (300.0, 1100.0);
const RAINFALL_RANGE_MM: (f64, f64) = (0.0, 2000.0);

/// A metric's value, `None` for an empty cell (a metric the station did not
/// record); a number outside the metric's plausible range is refused.
pub(super) fn metric_value(metric: Metric, field: &str) -> Result<Option<f64>, String> {
    if field.is_empty() {
        return Ok(None);
    }
    let value: f64 = field
        .parse()
        .ok()
        .filter(|value: &f64| value.is_finite())
        .ok_or_else(|| format!("{field:?} is not a number"))?;
    let (low, high) = match metric {
        Metric::MinTemperature | Metric::MaxTemperature => TEMPERATURE_RANGE_C,
        Metric::Pressure => PRESSURE_RANGE_HPA,
        Metric::Rainfall => RAINFALL_RANGE_MM,
    };
    if !(low..=high).contains(&value) {
        let unit = metric.unit();
        return Err(format!(
            "{value} {unit} is outside the plausible range {low} to {high} {unit}"
        ));
    }
    Ok(Some(value))
}

/// The time of an observation at `station`: RFC 3339 with an offset, or a
/// local time in the station's zone; inside the supported range either way.
pub(super) fn time(station: &Station, field: &str) -> Result<Timestamp, String> {
    let at = match field.parse::<Timestamp>() {
        Ok(at) => at,
        Err(_) => local_time(station, field)?,
    };
    check_supported(at).map_err(|error| error.to_string())
}

/// A time without an offset, in the station's zone. A local time that a
/// clock change skips or repeats is refused: only an offset says which
/// instant was meant.
fn local_time(station: &Station, field: &str) -> Result<Timestamp, String> {
    let civil: DateTime = field.parse().map_err(|_| {
        format!("{field:?} is not a time; write 2024-01-15T09:00:00Z, 2024-01-15T09:00:00+01:00 or a local 2024-01-15 09:00")
    })?;
    let zone = jiff::tz::TimeZone::get(station.time_zone)
        .map_err(|error| format!("time zone {}: {error}", station.time_zone))?;
    let problem = match zone.to_ambiguous_timestamp(civil).offset() {
        AmbiguousOffset::Unambiguous { offset } => {
            return offset
                .to_timestamp(civil)
                .map_err(|error| error.to_string());
        }
        AmbiguousOffset::Gap { .. } => "does not exist (the clocks skip it)",
        AmbiguousOffset::Fold { .. } => "happens twice (the clocks go back)",
    };
    Err(format!(
        "{civil} {problem} in {}; give it with an offset",
        station.time_zone
    ))
}
