//! The domain: stations, the four metrics, readings, and the bounds every
//! request must respect. No gRPC here.

use std::time::Duration;

use jiff::Timestamp;

use crate::error::WeatherError;

/// A weather station, as `ListStations` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Station {
    /// Stable short identifier, lowercase ASCII.
    pub id: &'static str,
    /// Human-readable name.
    pub name: &'static str,
    /// ISO 3166-1 alpha-2 country code.
    pub country: &'static str,
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// Metres above mean sea level.
    pub elevation_m: f64,
    /// IANA time zone: the station's local time, for observation files and the CLI.
    pub time_zone: &'static str,
}

/// One of the four things a station measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Lowest temperature of the 24 hours ending at the reading, °C.
    MinTemperature,
    /// Highest temperature of the 24 hours ending at the reading, °C.
    MaxTemperature,
    /// Pressure at the station's elevation, hPa.
    Pressure,
    /// Precipitation of the 24 hours ending at the reading, mm.
    Rainfall,
}

impl Metric {
    /// The four metrics, in proto order.
    pub const ALL: [Self; 4] = [
        Self::MinTemperature,
        Self::MaxTemperature,
        Self::Pressure,
        Self::Rainfall,
    ];

    /// The unit every value of this metric is in.
    pub fn unit(self) -> &'static str {
        match self {
            Self::MinTemperature | Self::MaxTemperature => "°C",
            Self::Pressure => "hPa",
            Self::Rainfall => "mm",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Self::MinTemperature => 1,
            Self::MaxTemperature => 2,
            Self::Pressure => 4,
            Self::Rainfall => 8,
        }
    }
}

/// Which metrics a request wants: a set of four bits, so it is `Copy` and free
/// to keep per watch stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricSet(u8);

impl MetricSet {
    /// All four metrics: what an empty request list means.
    pub const ALL: Self = Self(0b1111);
    /// No metric; only a starting point for [`MetricSet::insert`].
    pub const EMPTY: Self = Self(0);

    /// Adds `metric`; adding one twice is the same as once.
    #[must_use]
    pub fn insert(self, metric: Metric) -> Self {
        Self(self.0 | metric.bit())
    }

    /// Whether `metric` is wanted.
    pub fn contains(self, metric: Metric) -> bool {
        self.0 & metric.bit() != 0
    }

    /// Whether no metric is wanted.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Metric> for MetricSet {
    /// The set of the given metrics, or all four when none is given (the
    /// contract's "empty means all four").
    fn from_iter<I: IntoIterator<Item = Metric>>(metrics: I) -> Self {
        let set = metrics.into_iter().fold(Self::EMPTY, Self::insert);
        if set.is_empty() { Self::ALL } else { set }
    }
}

/// Where a reading comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The deterministic climate model.
    Simulated,
    /// A record from an observations file.
    Observed,
}

/// A station's weather at one moment. `None` is "not requested or not
/// recorded", never zero.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The station's id.
    pub station_id: &'static str,
    /// The moment the reading describes.
    pub observed_at: Timestamp,
    /// Lowest temperature of the 24 hours ending at `observed_at`, °C.
    pub min_temperature_c: Option<f64>,
    /// Highest temperature of the 24 hours ending at `observed_at`, °C.
    pub max_temperature_c: Option<f64>,
    /// Pressure at the station at `observed_at`, hPa.
    pub pressure_hpa: Option<f64>,
    /// Precipitation of the 24 hours ending at `observed_at`, mm.
    pub rainfall_mm: Option<f64>,
    /// Simulated or observed.
    pub source: Source,
}

impl Reading {
    /// The value of `metric`, if present.
    pub fn value(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::MinTemperature => self.min_temperature_c,
            Metric::MaxTemperature => self.max_temperature_c,
            Metric::Pressure => self.pressure_hpa,
            Metric::Rainfall => self.rainfall_mm,
        }
    }

    /// The same reading with every metric outside `metrics` removed, so a
    /// provider may compute more than was asked and the answer still carries
    /// exactly what was.
    #[must_use]
    pub fn only(mut self, metrics: MetricSet) -> Self {
        let keep = |metric, value: Option<f64>| value.filter(|_| metrics.contains(metric));
        self.min_temperature_c = keep(Metric::MinTemperature, self.min_temperature_c);
        self.max_temperature_c = keep(Metric::MaxTemperature, self.max_temperature_c);
        self.pressure_hpa = keep(Metric::Pressure, self.pressure_hpa);
        self.rainfall_mm = keep(Metric::Rainfall, self.rainfall_mm);
        self
    }
}

/// The first supported instant: 1900-01-01T00:00:00Z.
pub const FIRST_SUPPORTED: Timestamp = Timestamp::constant(-2_208_988_800, 0);
/// The first instant past the supported range: 2201-01-01T00:00:00Z.
pub const END_OF_SUPPORTED: Timestamp = Timestamp::constant(7_289_654_400, 0);

/// Refuses times outside the years 1900 to 2200 (UTC), the range the contract
/// promises and the climate model is built for.
pub fn check_supported(at: Timestamp) -> Result<Timestamp, WeatherError> {
    if (FIRST_SUPPORTED..END_OF_SUPPORTED).contains(&at) {
        Ok(at)
    } else {
        Err(WeatherError::TimeOutOfRange { at: at.to_string() })
    }
}

/// The shortest watch interval: bounds how often one stream costs the server a
/// reading.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest watch interval.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// The interval of a watch that does not choose one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Refuses watch intervals outside [`MIN_INTERVAL`, `MAX_INTERVAL`].
pub fn check_interval(interval: Duration) -> Result<Duration, WeatherError> {
    if (MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
        Ok(interval)
    } else {
        Err(WeatherError::IntervalOutOfRange {
            interval: format!("{interval:?}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reading() -> Reading {
        Reading {
            station_id: "madrid",
            observed_at: Timestamp::UNIX_EPOCH,
            min_temperature_c: Some(1.5),
            max_temperature_c: Some(11.0),
            pressure_hpa: Some(940.2),
            rainfall_mm: Some(0.0),
            source: Source::Simulated,
        }
    }

    #[test]
    fn no_metric_listed_means_all_four() {
        assert_eq!(MetricSet::from_iter([]), MetricSet::ALL);
    }

    #[test]
    fn only_keeps_exactly_the_wanted_metrics() {
        let wanted = MetricSet::EMPTY
            .insert(Metric::Pressure)
            .insert(Metric::Rainfall);
        let reading = reading().only(wanted);
        assert_eq!(reading.min_temperature_c, None);
        assert_eq!(reading.max_temperature_c, None);
        assert_eq!(reading.pressure_hpa, Some(940.2));
        // Zero rain is a value, not an absence.
        assert_eq!(reading.rainfall_mm, Some(0.0));
    }

    #[test]
    fn supported_range_is_years_1900_to_2200_inclusive() {
        let parse = |text: &str| text.parse::<Timestamp>().unwrap();
        assert!(check_supported(parse("1900-01-01T00:00:00Z")).is_ok());
        assert!(check_supported(parse("2200-12-31T23:59:59.999999999Z")).is_ok());
        assert!(check_supported(parse("1899-12-31T23:59:59.999999999Z")).is_err());
        assert!(check_supported(parse("2201-01-01T00:00:00Z")).is_err());
    }

    #[test]
    fn interval_bounds_are_inclusive() {
        assert!(check_interval(MIN_INTERVAL).is_ok());
        assert!(check_interval(MAX_INTERVAL).is_ok());
        assert!(
            check_interval(MIN_INTERVAL.checked_sub(Duration::from_nanos(1)).unwrap()).is_err()
        );
        assert!(check_interval(MAX_INTERVAL + Duration::from_nanos(1)).is_err());
        assert!(check_interval(Duration::ZERO).is_err());
    }

    fn any_metric() -> impl Strategy<Value = Metric> {
        prop::sample::select(Metric::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn a_set_holds_exactly_what_was_listed(metrics in prop::collection::vec(any_metric(), 1..8)) {
            let set: MetricSet = metrics.iter().copied().collect();
            for metric in Metric::ALL {
                prop_assert_eq!(set.contains(metric), metrics.contains(&metric));
            }
            let reading = reading().only(set);
            for metric in Metric::ALL {
                prop_assert_eq!(reading.value(metric).is_some(), metrics.contains(&metric));
            }
        }
    }
}
