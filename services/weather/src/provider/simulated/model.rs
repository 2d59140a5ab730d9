//! The climate model of one station: a pure function of the instant, in hours
//! since 1970. `docs/weather.md` describes it for users; in short:
//!
//! - **Temperature** = annual mean + seasonal cycle + daily cycle + weather
//!   anomaly. The seasonal cycle is coldest around 20 January in the northern
//!   hemisphere and six months later in the southern. The daily cycle follows
//!   local *solar* time (longitude): coldest at sunrise, warmest at 70 % of the
//!   daylight, with sunrise and day length from latitude and the sun's
//!   declination (polar day and night included); its range grows with the noon
//!   sun's height and shrinks under cloudy low pressure. The anomaly is smooth
//!   value noise over days. Min and max scan the 24 hours ending at the reading.
//! - **Pressure**: sea-level pressure (1013.25 hPa, minus up to 14 hPa in lows,
//!   plus the semidiurnal atmospheric tide) reduced to the station's elevation
//!   with the barometric formula at the current temperature.
//! - **Rainfall**: weather episodes, not noise. Time is cut into 12-hour
//!   blocks; each block may hold one rain episode (1 to 8 hours at a constant
//!   rate), likelier in the rainy season and under low pressure, calibrated so
//!   the year has about the station's wet days and annual total. A reading sums
//!   the episodes overlapping its 24 hours.

// Time as f64 hours since 1970: within 1900..2200 that is below 2^53 seconds, so
// exact enough, and block indices fit an i64 by far.
#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]

use std::f64::consts::TAU;

use jiff::Timestamp;

use super::{
    noise::{Purpose, fnv1a, hash, smooth_noise, unit},
    sun::{DAYS_PER_YEAR, Sun, day_of_year},
};
use crate::{provider::catalogue::ClimateNormals, reading::Station};

/// Day of the year of the coldest weather in the northern hemisphere (20 January:
/// surface temperature lags the solstice by about a month).
const COLDEST_DAY_NORTH: f64 = 20.0;
/// Rain episodes are drawn one block at a time; a block holds at most one.
const RAIN_BLOCK_HOURS: f64 = 12.0;
/// Shortest rain episode, hours.
const MIN_EPISODE_HOURS: f64 = 1.0;
/// Longest rain episode, hours; episodes may spill into the next block.
const MAX_EPISODE_HOURS: f64 = 8.0;
/// How far apart min/max samples are in the 24-hour window, hours. The window's
/// ends are sampled too, so the current temperature is always inside [min, max].
const SAMPLE_STEP_HOURS: f64 = 0.5;
/// Sea-level pressure of the standard atmosphere, hPa.
pub(super) const STANDARD_PRESSURE_HPA: f64 = 1013.25;
/// How deep the deepest low and how high the highest high go, hPa.
const SYNOPTIC_PRESSURE_HPA: f64 = 14.0;
/// Standard temperature lapse rate, K per metre.
pub(super) const LAPSE_RATE: f64 = 0.0065;
/// g·M/(R·L) of the barometric formula for the standard atmosphere.
pub(super) const BAROMETRIC_EXPONENT: f64 = 5.255_88;

/// Everything about a station the model needs, derived once.
#[derive(Debug, Clone)]
pub(super) struct StationModel {
    seed: u64,
    latitude: f64,
    /// Longitude as an offset of solar time from UTC, hours.
    solar_offset_hours: f64,
    elevation_m: f64,
    mean_c: f64,
    seasonal_c: f64,
    diurnal_c: f64,
    /// Day of the year of the coldest weather: 20 January, or July in the south.
    coldest_day: f64,
    /// Amplitude of the weather anomaly, °C: wider where seasons are wider.
    anomaly_c: f64,
    /// Amplitude of the semidiurnal pressure tide, hPa: widest at the equator.
    tide_hpa: f64,
    /// Chance a 12-hour block holds an episode, before season and pressure.
    block_wet_chance: f64,
    /// Mean rain of an episode, mm, before season.
    episode_mm: f64,
    rain_peak_day: f64,
    rain_seasons: f64,
    rain_seasonality: f64,
    /// Normalises the seasonal rain factor to a mean of 1 over the year.
    rain_season_norm: f64,
}

impl StationModel {
    /// The model of `station`, driven by its `climate`.
    pub(super) fn new(station: &Station, climate: &ClimateNormals) -> Self {
        let coldest_day = if station.latitude >= 0.0 {
            COLDEST_DAY_NORTH
        } else {
            COLDEST_DAY_NORTH + DAYS_PER_YEAR / 2.0
        };
        // A day has rain when either of its two blocks does:
        // wet_days / 365 = 1 - (1 - chance)^2.
        let wet_fraction = (climate.wet_days / DAYS_PER_YEAR).clamp(0.0, 0.99);
        let block_wet_chance = 1.0 - (1.0 - wet_fraction).sqrt();
        let blocks_per_year = DAYS_PER_YEAR * 24.0 / RAIN_BLOCK_HOURS;
        Self {
            seed: fnv1a(station.id.as_bytes()),
            latitude: station.latitude,
            solar_offset_hours: station.longitude / 15.0,
            elevation_m: station.elevation_m,
            mean_c: climate.mean_c,
            seasonal_c: climate.seasonal_c,
            diurnal_c: climate.diurnal_c,
            coldest_day,
            anomaly_c: 1.5 + 0.2 * climate.seasonal_c,
            tide_hpa: 0.3 + 0.9 * station.latitude.to_radians().cos(),
            block_wet_chance,
            episode_mm: climate.annual_rain_mm / (blocks_per_year * block_wet_chance),
            rain_peak_day: climate.rain_peak_day,
            rain_seasons: f64::from(climate.rain_seasons),
            rain_seasonality: climate.rain_seasonality,
            rain_season_norm: bessel_i0(climate.rain_seasonality),
        }
    }

    /// How deep in a low the station is, -1 (high) to 1 (deep low): two octaves
    /// of smooth noise, a few days and most of a day long.
    fn low(&self, hours: f64) -> f64 {
        0.7 * smooth_noise(self.seed, Purpose::Low, hours, 60.0)
            + 0.3 * smooth_noise(self.seed, Purpose::LowDetail, hours, 17.0)
    }

    /// Air temperature at one instant, °C.
    fn temperature(&self, hours: f64) -> f64 {
        let day = day_of_year(hours);
        let seasonal = -self.seasonal_c * (TAU * (day - self.coldest_day) / DAYS_PER_YEAR).cos();
        let sun = Sun::on(day, self.latitude);
        // A high noon sun heats the afternoon more; clouds in a low damp the range.
        let sun_factor = 0.7 + 0.6 * sun.noon_elevation_deg.clamp(0.0, 90.0) / 90.0;
        let cloud_factor = 1.0 - 0.4 * self.low(hours).max(0.0);
        let range = self.diurnal_c * sun_factor * cloud_factor;
        let solar_hour = (hours + self.solar_offset_hours).rem_euclid(24.0);
        let daily = range * (sun.daily_shape(solar_hour) - 0.5);
        let anomaly = self.anomaly_c
            * (0.75 * smooth_noise(self.seed, Purpose::Anomaly, hours, 71.0)
                + 0.25 * smooth_noise(self.seed, Purpose::AnomalyDetail, hours, 23.0));
        self.mean_c + seasonal + daily + anomaly
    }

    /// Lowest and highest temperature of the 24 hours ending at `hours`.
    pub(super) fn temperature_range(&self, hours: f64) -> (f64, f64) {
        let start = hours - 24.0;
        let mut min = self.temperature(hours);
        let mut max = min;
        let mut sample = |at: f64| {
            let temperature = self.temperature(at);
            min = min.min(temperature);
            max = max.max(temperature);
        };
        sample(start);
        // Grid points are absolute, so windows that overlap share their samples.
        let mut step = (start / SAMPLE_STEP_HOURS).floor() + 1.0;
        while step * SAMPLE_STEP_HOURS < hours {
            sample(step * SAMPLE_STEP_HOURS);
            step += 1.0;
        }
        (min, max)
    }

    /// Pressure at the station's elevation, hPa.
    pub(super) fn pressure(&self, hours: f64) -> f64 {
        let solar_hour = (hours + self.solar_offset_hours).rem_euclid(24.0);
        // The atmospheric tide peaks at 10:00 and 22:00 local solar time.
        let tide = self.tide_hpa * (TAU * (solar_hour - 10.0) / 12.0).cos();
        let sea_level = STANDARD_PRESSURE_HPA - SYNOPTIC_PRESSURE_HPA * self.low(hours) + tide;
        let sea_level_kelvin = self.temperature(hours) + 273.15 + LAPSE_RATE * self.elevation_m;
        sea_level
            * (1.0 - LAPSE_RATE * self.elevation_m / sea_level_kelvin).powf(BAROMETRIC_EXPONENT)
    }

    /// Precipitation of the 24 hours ending at `hours`, mm.
    pub(super) fn rainfall(&self, hours: f64) -> f64 {
        let start = hours - 24.0;
        let last_block = (hours / RAIN_BLOCK_HOURS).floor() as i64;
        // An episode of block k ends before (k + 1) * 12 + 8 hours, so blocks
        // more than three back cannot reach into the window.
        let mut total = 0.0;
        for block in last_block - 3..=last_block {
            if let Some(episode) = self.episode(block) {
                let overlap = episode.end.min(hours) - episode.start.max(start);
                if overlap > 0.0 {
                    total += overlap * episode.rate_mm_per_hour;
                }
            }
        }
        total
    }

    /// The rain episode of a 12-hour block, if it has one.
    fn episode(&self, block: i64) -> Option<Episode> {
        let block_start = block as f64 * RAIN_BLOCK_HOURS;
        let middle = block_start + RAIN_BLOCK_HOURS / 2.0;
        let season = self.rain_season_factor(day_of_year(middle)).sqrt();
        let chance =
            (self.block_wet_chance * season * (1.0 + 0.8 * self.low(middle))).clamp(0.0, 0.95);
        if unit(hash(self.seed, Purpose::RainWet, block)) >= chance {
            return None;
        }
        let start =
            block_start + unit(hash(self.seed, Purpose::RainStart, block)) * RAIN_BLOCK_HOURS;
        let length = MIN_EPISODE_HOURS
            + unit(hash(self.seed, Purpose::RainLength, block))
                * (MAX_EPISODE_HOURS - MIN_EPISODE_HOURS);
        // Exponentially distributed amounts (mean 1), capped: mostly light rain,
        // now and then a downpour.
        let draw = unit(hash(self.seed, Purpose::RainAmount, block));
        let amount = self.episode_mm * season * (-(1.0 - draw).ln()).min(8.0);
        Some(Episode {
            start,
            end: start + length,
            rate_mm_per_hour: amount / length,
        })
    }

    /// How much rainier than average this day of the year is: a von Mises
    /// bump around the peak (or two, for two rainy seasons), mean 1 over a year.
    fn rain_season_factor(&self, day: f64) -> f64 {
        let angle = TAU * self.rain_seasons * (day - self.rain_peak_day) / DAYS_PER_YEAR;
        (self.rain_seasonality * angle.cos()).exp() / self.rain_season_norm
    }

    /// Whether it is raining at this instant (for tests of the episode shape).
    #[cfg(test)]
    fn raining(&self, hours: f64) -> bool {
        let block = (hours / RAIN_BLOCK_HOURS).floor() as i64;
        (block - 1..=block)
            .filter_map(|block| self.episode(block))
            .any(|episode| (episode.start..episode.end).contains(&hours))
    }
}

/// A spell of rain at a constant rate.
#[derive(Debug, Clone, Copy)]
struct Episode {
    start: f64,
    end: f64,
    rate_mm_per_hour: f64,
}

/// The model's time: hours since 1970.
pub(super) fn hours_since_epoch(at: Timestamp) -> f64 {
    at.as_second() as f64 / 3600.0 + f64::from(at.subsec_nanosecond()) / 3.6e12
}

/// The modified Bessel function I0, which normalises the von Mises bump.
fn bessel_i0(x: f64) -> f64 {
    let quarter_square = x * x / 4.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..40 {
        term *= quarter_square / f64::from(k * k);
        sum += term;
    }
    sum
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::provider::{
        catalogue::{self, CATALOGUE, CatalogueEntry},
        simulated::tests::{any_station, any_supported_time, at},
    };

    fn model(id: &str) -> StationModel {
        let entry = catalogue::find(id).unwrap();
        StationModel::new(&entry.station, &entry.climate)
    }

    /// Every station of the catalogue with its model.
    fn every_model() -> impl Iterator<Item = (&'static CatalogueEntry, StationModel)> {
        CATALOGUE
            .iter()
            .map(|entry| (entry, StationModel::new(&entry.station, &entry.climate)))
    }

    /// Mean of `f` over every hour of 2023.
    fn hourly_mean_2023(f: impl Fn(f64) -> f64) -> f64 {
        let start = hours_since_epoch(at("2023-01-01T00:00:00Z"));
        let hours = 365 * 24;
        (0..hours)
            .map(|hour| f(start + f64::from(hour)))
            .sum::<f64>()
            / f64::from(hours)
    }

    #[test]
    fn rainfall_over_ten_years_is_near_each_station_normal() {
        for (entry, model) in every_model() {
            let start = hours_since_epoch(at("2010-01-01T00:00:00Z"));
            let days = 3652;
            // Consecutive 24-hour windows tile the decade.
            let total: f64 = (1..=days)
                .map(|day| model.rainfall(start + 24.0 * f64::from(day)))
                .sum();
            let per_year = total / 10.0;
            let normal = entry.climate.annual_rain_mm;
            assert!(
                (normal / 1.5..=normal * 1.5).contains(&per_year),
                "{}: {per_year:.0} mm a year, normal {normal}",
                entry.station.id
            );
        }
    }

    #[test]
    fn rain_falls_in_episodes_not_as_hourly_noise() {
        for (entry, model) in every_model() {
            let start = hours_since_epoch(at("2015-01-01T00:00:00Z"));
            let (mut wet_hours, mut wet_to_wet) = (0_u32, 0_u32);
            let mut was_raining = false;
            for hour in 0..5 * 365 * 24 {
                let raining = model.raining(start + f64::from(hour) + 0.5);
                if was_raining {
                    wet_hours += 1;
                    wet_to_wet += u32::from(raining);
                }
                was_raining = raining;
            }
            assert!(wet_hours > 0, "{} never rains", entry.station.id);
            // Noise would make the next hour wet about as often as any hour is;
            // episodes keep it raining most of the time.
            let persistence = f64::from(wet_to_wet) / f64::from(wet_hours);
            assert!(persistence > 0.6, "{}: {persistence}", entry.station.id);
        }
    }

    #[test]
    fn seasons_are_opposite_in_the_two_hemispheres() {
        for (id, north) in [
            ("london", true),
            ("newyork", true),
            ("sydney", false),
            ("buenosaires", false),
        ] {
            let model = model(id);
            let january = hours_since_epoch(at("2023-01-15T12:00:00Z"));
            let july = hours_since_epoch(at("2023-07-15T12:00:00Z"));
            let mean_over_month = |start: f64| {
                (0..30 * 24)
                    .map(|hour| model.temperature(start + f64::from(hour)))
                    .sum::<f64>()
                    / 720.0
            };
            let (winter, summer) = if north {
                (january, july)
            } else {
                (july, january)
            };
            assert!(
                mean_over_month(summer) > mean_over_month(winter) + 4.0,
                "{id}"
            );
        }
    }

    #[test]
    fn afternoons_are_warmer_than_dawns() {
        for (entry, model) in every_model() {
            // UTC hour at which it is `solar` o'clock at the station.
            let utc_for = |solar: f64| (solar - model.solar_offset_hours).rem_euclid(24.0);
            let afternoon = hourly_mean_2023(|hours| {
                model.temperature(hours.floor() - hours.floor().rem_euclid(24.0) + utc_for(14.0))
            });
            let dawn = hourly_mean_2023(|hours| {
                model.temperature(hours.floor() - hours.floor().rem_euclid(24.0) + utc_for(5.0))
            });
            assert!(
                afternoon > dawn + 1.0,
                "{}: {afternoon} vs {dawn}",
                entry.station.id
            );
        }
    }

    #[test]
    fn mean_temperature_is_the_station_normal() {
        for (entry, model) in every_model() {
            let mean = hourly_mean_2023(|hours| model.temperature(hours));
            assert!(
                (mean - entry.climate.mean_c).abs() < 2.0,
                "{}: {mean}",
                entry.station.id
            );
        }
    }

    #[test]
    fn pressure_falls_with_elevation() {
        let coast = hourly_mean_2023(|hours| model("london").pressure(hours));
        let plateau = hourly_mean_2023(|hours| model("lapaz").pressure(hours));
        assert!((1000.0..1025.0).contains(&coast), "{coast}");
        // El Alto, 4061 m: about 630 hPa.
        assert!((600.0..660.0).contains(&plateau), "{plateau}");
    }

    #[test]
    fn low_pressure_brings_the_rain() {
        let model = model("london");
        let start = hours_since_epoch(at("2010-01-01T00:00:00Z"));
        let (mut wet_pressure, mut wet_count, mut dry_pressure, mut dry_count) =
            (0.0, 0.0, 0.0, 0.0);
        for hour in 0..5 * 365 * 24 {
            let hours = start + f64::from(hour);
            if model.raining(hours) {
                wet_pressure += model.pressure(hours);
                wet_count += 1.0;
            } else {
                dry_pressure += model.pressure(hours);
                dry_count += 1.0;
            }
        }
        assert!(wet_pressure / wet_count < dry_pressure / dry_count - 2.0);
    }

    proptest! {
        /// Min and max come from samples every 30 minutes (and the window's
        /// ends), so an extreme between two samples may be missed, by a few
        /// hundredths of a degree: the curves are smooth at that scale.
        #[test]
        fn min_and_max_bracket_every_minute_of_their_window(station in any_station(), time in any_supported_time()) {
            let model = model(station);
            let hours = hours_since_epoch(time);
            let (min, max) = model.temperature_range(hours);
            prop_assert!((min..=max).contains(&model.temperature(hours)));
            for minute in 0..=24 * 60 {
                let temperature = model.temperature(hours - f64::from(minute) / 60.0);
                prop_assert!(
                    (min - 0.1..=max + 0.1).contains(&temperature),
                    "{} outside [{}, {}]", temperature, min, max
                );
            }
        }
    }
}
