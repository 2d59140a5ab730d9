//! The calendar and the sun: the day of the year, and the sun's path over a
//! station on one day (sunrise, day length, noon height), which shapes the
//! daily temperature cycle.

use std::f64::consts::{PI, TAU};

/// Mean length of a year, days.
pub(super) const DAYS_PER_YEAR: f64 = 365.2425;

/// Day of the year, 0 on 1 January, drifting less than a day over the range.
pub(super) fn day_of_year(hours: f64) -> f64 {
    (hours / 24.0).rem_euclid(DAYS_PER_YEAR)
}

/// The sun over a station on one day.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sun {
    /// Local solar hour of sunrise.
    sunrise: f64,
    /// Hours of daylight, 0 (polar night) to 24 (polar day).
    day_length: f64,
    /// Height of the noon sun, degrees (negative in polar night).
    pub(super) noon_elevation_deg: f64,
}

impl Sun {
    /// The sun on `day` of the year (as [`day_of_year`] counts) at `latitude`.
    pub(super) fn on(day: f64, latitude: f64) -> Self {
        let declination = -23.44_f64.to_radians() * (TAU * (day + 10.0) / DAYS_PER_YEAR).cos();
        let cos_hour_angle = -latitude.to_radians().tan() * declination.tan();
        let day_length = if cos_hour_angle >= 1.0 {
            0.0
        } else if cos_hour_angle <= -1.0 {
            24.0
        } else {
            24.0 * cos_hour_angle.acos() / PI
        };
        Self {
            sunrise: 12.0 - day_length / 2.0,
            day_length,
            noon_elevation_deg: 90.0 - (latitude - declination.to_degrees()).abs(),
        }
    }

    /// Where in its daily cycle the temperature is at a solar hour: 0 at the
    /// coldest (sunrise), 1 at the warmest (70 % of the daylight), cosine
    /// ramps between. Without a sunrise (polar day or night) a plain cosine
    /// with its low at 03:00.
    pub(super) fn daily_shape(self, solar_hour: f64) -> f64 {
        if self.day_length < 1.0 || self.day_length > 23.0 {
            return 0.5 - 0.5 * (TAU * (solar_hour - 3.0) / 24.0).cos();
        }
        let warmest = self.sunrise + 0.7 * self.day_length;
        let hour = if solar_hour < self.sunrise {
            solar_hour + 24.0
        } else {
            solar_hour
        };
        if hour <= warmest {
            0.5 - 0.5 * (PI * (hour - self.sunrise) / (warmest - self.sunrise)).cos()
        } else {
            0.5 + 0.5 * (PI * (hour - warmest) / (self.sunrise + 24.0 - warmest)).cos()
        }
    }
}
