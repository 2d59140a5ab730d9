//! The default provider: a deterministic climate model for every station of
//! the [catalogue](super::catalogue). A reading is a pure function of the
//! station and the instant: no state, no random number generator, so the same
//! question always gets the same answer, on any replica. `docs/weather.md`
//! describes the model for users.
//!
//! Values are rounded to 0.1, as stations report them.
//!
//! # Layout
//! - this file: [`SimulatedProvider`], which answers for the catalogue.
//! - `model`: the climate of one station: temperature, pressure, rainfall.
//! - `sun`: the calendar, and the sun's path that drives the daily cycle.
//! - `noise`: the hash behind every "random" choice.

mod model;
mod noise;
mod sun;

use jiff::Timestamp;

use self::model::{StationModel, hours_since_epoch};
use super::{ByStation, ReadingProvider, catalogue::CATALOGUE};
use crate::{
    error::WeatherError,
    reading::{Metric, MetricSet, Reading, Source, Station},
};

/// The default [`ReadingProvider`]: simulated weather for the catalogue.
#[derive(Debug)]
pub struct SimulatedProvider {
    /// Every station of the catalogue, with its model.
    models: ByStation<StationModel>,
}

impl Default for SimulatedProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl SimulatedProvider {
    /// A provider for every station of the catalogue.
    pub fn new() -> Self {
        Self {
            models: ByStation::new(CATALOGUE.iter().map(|entry| {
                let model = StationModel::new(&entry.station, &entry.climate);
                (entry.station.clone(), model)
            })),
        }
    }
}

impl ReadingProvider for SimulatedProvider {
    fn stations(&self) -> &[Station] {
        self.models.stations()
    }

    fn reading(
        &self,
        station: &str,
        at: Timestamp,
        metrics: MetricSet,
    ) -> Result<Reading, WeatherError> {
        let (station, model) = self.models.get(station)?;
        let hours = hours_since_epoch(at);
        let (min, max) = if metrics.contains(Metric::MinTemperature)
            || metrics.contains(Metric::MaxTemperature)
        {
            let (min, max) = model.temperature_range(hours);
            (Some(round_tenth(min)), Some(round_tenth(max)))
        } else {
            (None, None)
        };
        let pressure = metrics
            .contains(Metric::Pressure)
            .then(|| round_tenth(model.pressure(hours)));
        let rainfall = metrics
            .contains(Metric::Rainfall)
            .then(|| round_tenth(model.rainfall(hours)));
        Ok(Reading {
            station_id: station.id,
            observed_at: at,
            min_temperature_c: min,
            max_temperature_c: max,
            pressure_hpa: pressure,
            rainfall_mm: rainfall,
            source: Source::Simulated,
        }
        .only(metrics))
    }
}

fn round_tenth(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{
        model::{BAROMETRIC_EXPONENT, LAPSE_RATE, STANDARD_PRESSURE_HPA},
        *,
    };
    use crate::{
        provider::catalogue::CATALOGUE,
        reading::{END_OF_SUPPORTED, FIRST_SUPPORTED},
    };

    pub(super) fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn the_same_station_and_time_give_the_same_reading() {
        let provider = SimulatedProvider::new();
        let time = at("2024-03-10T12:34:56.789Z");
        let first = provider.reading("madrid", time, MetricSet::ALL).unwrap();
        let second = SimulatedProvider::new()
            .reading("madrid", time, MetricSet::ALL)
            .unwrap();
        assert_eq!(first, second);
        assert_eq!(first.observed_at, time);
        assert_eq!(first.source, Source::Simulated);
    }

    /// Pins the model: a change to any of its numbers shows up here, so it is
    /// a decision rather than an accident (readings are meant to be stable
    /// across releases).
    #[test]
    fn a_known_reading_stays_what_it_was() {
        let reading = SimulatedProvider::new()
            .reading("madrid", at("2024-07-15T14:00:00Z"), MetricSet::ALL)
            .unwrap();
        let values = (
            reading.min_temperature_c.unwrap(),
            reading.max_temperature_c.unwrap(),
            reading.pressure_hpa.unwrap(),
            reading.rainfall_mm.unwrap(),
        );
        assert_eq!(values, PINNED_MADRID_JULY, "{reading:?}");
    }

    const PINNED_MADRID_JULY: (f64, f64, f64, f64) = (17.6, 30.7, 939.8, 0.5);

    #[test]
    fn only_the_requested_metrics_are_computed_and_returned() {
        let provider = SimulatedProvider::new();
        let time = at("2024-01-05T06:00:00Z");
        let all = provider.reading("tokyo", time, MetricSet::ALL).unwrap();
        for metric in Metric::ALL {
            let one = provider
                .reading("tokyo", time, MetricSet::EMPTY.insert(metric))
                .unwrap();
            for other in Metric::ALL {
                let expected = if other == metric {
                    all.value(other)
                } else {
                    None
                };
                assert_eq!(
                    one.value(other),
                    expected,
                    "{metric:?} asked, {other:?} seen"
                );
            }
        }
    }

    #[test]
    fn an_unknown_station_is_an_error() {
        let error = SimulatedProvider::new()
            .reading("atlantis", at("2024-01-01T00:00:00Z"), MetricSet::ALL)
            .unwrap_err();
        assert!(matches!(error, WeatherError::UnknownStation(id) if id == "atlantis"));
    }

    /// A year of hourly readings for every station: the contract's invariants
    /// and physically plausible values, station by station.
    #[test]
    fn a_year_of_hourly_readings_is_plausible_for_every_station() {
        let provider = SimulatedProvider::new();
        let start = at("2023-01-01T00:00:00Z");
        for station in provider.stations() {
            let standard = STANDARD_PRESSURE_HPA
                * (1.0 - LAPSE_RATE * station.elevation_m / 288.15).powf(BAROMETRIC_EXPONENT);
            for hour in 0..365 * 24 {
                let time = start + jiff::SignedDuration::from_hours(hour);
                let reading = provider.reading(station.id, time, MetricSet::ALL).unwrap();
                let min = reading.min_temperature_c.unwrap();
                let max = reading.max_temperature_c.unwrap();
                let pressure = reading.pressure_hpa.unwrap();
                let rain = reading.rainfall_mm.unwrap();
                let context = || format!("{} at {time}: {reading:?}", station.id);
                assert!(min <= max, "{}", context());
                assert!(max - min <= 35.0, "{}", context());
                assert!((-60.0..=50.0).contains(&min), "{}", context());
                assert!((-60.0..=50.0).contains(&max), "{}", context());
                assert!((300.0..=1080.0).contains(&pressure), "{}", context());
                assert!((pressure - standard).abs() <= 45.0, "{}", context());
                assert!((0.0..=400.0).contains(&rain), "{}", context());
            }
        }
    }

    pub(super) fn any_station() -> impl Strategy<Value = &'static str> {
        prop::sample::select(
            CATALOGUE
                .iter()
                .map(|entry| entry.station.id)
                .collect::<Vec<_>>(),
        )
    }

    pub(super) fn any_supported_time() -> impl Strategy<Value = Timestamp> {
        (
            FIRST_SUPPORTED.as_second()..END_OF_SUPPORTED.as_second(),
            0..1_000_000_000_i32,
        )
            .prop_map(|(seconds, nanos)| Timestamp::new(seconds, nanos).unwrap())
    }

    proptest! {
        #[test]
        fn any_supported_time_gives_a_sane_reading(station in any_station(), time in any_supported_time()) {
            let provider = SimulatedProvider::new();
            let reading = provider.reading(station, time, MetricSet::ALL).unwrap();
            let min = reading.min_temperature_c.unwrap();
            let max = reading.max_temperature_c.unwrap();
            prop_assert!(min <= max);
            prop_assert!((-60.0..=50.0).contains(&min) && (-60.0..=50.0).contains(&max));
            prop_assert!((300.0..=1080.0).contains(&reading.pressure_hpa.unwrap()));
            prop_assert!(reading.rainfall_mm.unwrap() >= 0.0);
            prop_assert_eq!(provider.reading(station, time, MetricSet::ALL).unwrap(), reading);
        }
    }
}
