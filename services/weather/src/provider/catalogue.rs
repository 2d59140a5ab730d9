//! The stations this server knows: real places on every continent, each with
//! the climate normals the simulated model is driven by. Coordinates and
//! normals are rounded public figures, good for plausible weather, not for
//! climatology.

use crate::reading::Station;

/// The long-term climate of a station, which the simulated model turns into
/// weather.
#[derive(Debug, Clone, PartialEq)]
pub struct ClimateNormals {
    /// Annual mean air temperature at the station, °C.
    pub mean_c: f64,
    /// Half the difference between the warmest and the coldest month, °C.
    pub seasonal_c: f64,
    /// Typical difference between a day's maximum and minimum, °C.
    pub diurnal_c: f64,
    /// Annual precipitation, mm.
    pub annual_rain_mm: f64,
    /// Days a year with at least 1 mm of precipitation.
    pub wet_days: f64,
    /// Day of the year (0 = 1 January) when rain is likeliest.
    pub rain_peak_day: f64,
    /// Rainy seasons a year: 1, or 2 for places like Nairobi.
    pub rain_seasons: u8,
    /// How concentrated rain is in its season: 0 spreads it over the year, 3 is
    /// a monsoon.
    pub rain_seasonality: f64,
}

/// A station and its climate.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogueEntry {
    /// What `ListStations` shows.
    pub station: Station,
    /// What the simulated model is driven by.
    pub climate: ClimateNormals,
}

/// Builds one entry; positional so the table below stays one station per row.
const fn entry(
    station: (&'static str, &'static str, &'static str, &'static str),
    position: (f64, f64, f64),
    temperature: (f64, f64, f64),
    rain: (f64, f64, f64, u8, f64),
) -> CatalogueEntry {
    let (id, name, country, time_zone) = station;
    let (latitude, longitude, elevation_m) = position;
    let (mean_c, seasonal_c, diurnal_c) = temperature;
    let (annual_rain_mm, wet_days, rain_peak_day, rain_seasons, rain_seasonality) = rain;
    CatalogueEntry {
        station: Station {
            id,
            name,
            country,
            latitude,
            longitude,
            elevation_m,
            time_zone,
        },
        climate: ClimateNormals {
            mean_c,
            seasonal_c,
            diurnal_c,
            annual_rain_mm,
            wet_days,
            rain_peak_day,
            rain_seasons,
            rain_seasonality,
        },
    }
}

/// Every station, ordered by id (a test keeps it so).
///
/// Columns: (id, name, country, time zone), (latitude, longitude, elevation m),
/// (mean °C, seasonal half-range °C, daily range °C), (annual rain mm, wet
/// days, rain peak day of year, rainy seasons, rain seasonality).
pub static CATALOGUE: [CatalogueEntry; 18] = [
    entry(
        (
            "anchorage",
            "Anchorage International Airport",
            "US",
            "America/Anchorage",
        ),
        (61.1744, -149.9964, 40.0),
        (3.0, 11.5, 7.0),
        (420.0, 115.0, 230.0, 1, 0.8),
    ),
    entry(
        (
            "buenosaires",
            "Buenos Aires Observatorio Central",
            "AR",
            "America/Argentina/Buenos_Aires",
        ),
        (-34.5875, -58.4839, 25.0),
        (18.0, 6.9, 9.0),
        (1240.0, 100.0, 60.0, 1, 0.3),
    ),
    entry(
        ("cairo", "Cairo International Airport", "EG", "Africa/Cairo"),
        (30.1219, 31.4056, 74.0),
        (22.5, 7.3, 12.0),
        (25.0, 4.0, 15.0, 1, 0.9),
    ),
    entry(
        (
            "capetown",
            "Cape Town International Airport",
            "ZA",
            "Africa/Johannesburg",
        ),
        (-33.9715, 18.6021, 46.0),
        (17.0, 4.5, 10.0),
        (510.0, 62.0, 175.0, 1, 1.2),
    ),
    entry(
        (
            "denver",
            "Denver International Airport",
            "US",
            "America/Denver",
        ),
        (39.8466, -104.6562, 1656.0),
        (10.5, 12.0, 15.0),
        (380.0, 75.0, 130.0, 1, 0.6),
    ),
    entry(
        ("lapaz", "La Paz El Alto", "BO", "America/La_Paz"),
        (-16.5100, -68.1989, 4061.0),
        (7.5, 2.2, 14.0),
        (610.0, 110.0, 15.0, 1, 2.0),
    ),
    entry(
        ("lhasa", "Lhasa", "CN", "Asia/Shanghai"),
        (29.6500, 91.1333, 3650.0),
        (8.0, 8.5, 15.0),
        (430.0, 75.0, 215.0, 1, 2.0),
    ),
    entry(
        ("london", "London Heathrow", "GB", "Europe/London"),
        (51.4787, -0.4614, 25.0),
        (11.3, 6.8, 8.0),
        (600.0, 110.0, 310.0, 1, 0.2),
    ),
    entry(
        ("madrid", "Madrid Retiro", "ES", "Europe/Madrid"),
        (40.4117, -3.6781, 667.0),
        (15.0, 9.7, 11.0),
        (420.0, 55.0, 310.0, 1, 0.6),
    ),
    entry(
        ("mcmurdo", "McMurdo Station", "AQ", "Antarctica/McMurdo"),
        (-77.8500, 166.6667, 24.0),
        (-17.0, 12.5, 4.0),
        (200.0, 50.0, 120.0, 1, 0.3),
    ),
    entry(
        (
            "mexicocity",
            "Mexico City Tacubaya",
            "MX",
            "America/Mexico_City",
        ),
        (19.4036, -99.1964, 2309.0),
        (16.5, 2.8, 13.0),
        (820.0, 130.0, 200.0, 1, 1.8),
    ),
    entry(
        ("mumbai", "Mumbai Santacruz", "IN", "Asia/Kolkata"),
        (19.0886, 72.8681, 14.0),
        (27.5, 3.0, 7.0),
        (2200.0, 75.0, 195.0, 1, 3.0),
    ),
    entry(
        (
            "nairobi",
            "Nairobi Dagoretti Corner",
            "KE",
            "Africa/Nairobi",
        ),
        (-1.3019, 36.7600, 1798.0),
        (18.0, 1.6, 11.0),
        (900.0, 90.0, 105.0, 2, 1.0),
    ),
    entry(
        ("newyork", "New York Central Park", "US", "America/New_York"),
        (40.7789, -73.9692, 42.0),
        (13.2, 12.2, 8.5),
        (1200.0, 120.0, 200.0, 1, 0.1),
    ),
    entry(
        ("reykjavik", "Reykjavík", "IS", "Atlantic/Reykjavik"),
        (64.1275, -21.9028, 52.0),
        (4.6, 6.0, 5.0),
        (850.0, 150.0, 290.0, 1, 0.35),
    ),
    entry(
        ("singapore", "Singapore Changi", "SG", "Asia/Singapore"),
        (1.3678, 103.9826, 15.0),
        (27.5, 1.0, 7.0),
        (2500.0, 165.0, 350.0, 1, 0.3),
    ),
    entry(
        (
            "sydney",
            "Sydney Observatory Hill",
            "AU",
            "Australia/Sydney",
        ),
        (-33.8607, 151.2050, 39.0),
        (18.4, 5.0, 7.5),
        (1200.0, 140.0, 160.0, 1, 0.4),
    ),
    entry(
        ("tokyo", "Tokyo", "JP", "Asia/Tokyo"),
        (35.6917, 139.7500, 25.0),
        (15.8, 10.7, 7.5),
        (1530.0, 105.0, 255.0, 1, 0.5),
    ),
];

/// The station of the catalogue with this id.
pub fn find(id: &str) -> Option<&'static CatalogueEntry> {
    CATALOGUE
        .binary_search_by(|entry| entry.station.id.cmp(id))
        .ok()
        .map(|index| &CATALOGUE[index])
}

#[cfg(test)]
mod tests {
    use super::{CATALOGUE, find};

    #[test]
    fn catalogue_is_ordered_by_id_without_duplicates() {
        for pair in CATALOGUE.windows(2) {
            assert!(
                pair[0].station.id < pair[1].station.id,
                "{}",
                pair[1].station.id
            );
        }
    }

    #[test]
    fn ids_are_short_lowercase_ascii() {
        for entry in &CATALOGUE {
            let id = entry.station.id;
            assert!(
                !id.is_empty() && id.bytes().all(|byte| byte.is_ascii_lowercase()),
                "{id}"
            );
        }
    }

    #[test]
    fn at_least_a_dozen_stations_on_every_inhabited_continent_and_both_hemispheres() {
        assert!(CATALOGUE.len() >= 12);
        let regions: std::collections::BTreeSet<&str> = CATALOGUE
            .iter()
            .map(|entry| entry.station.time_zone.split('/').next().unwrap())
            .collect();
        for region in [
            "Africa",
            "America",
            "Asia",
            "Australia",
            "Europe",
            "Antarctica",
        ] {
            assert!(regions.contains(region), "no station in {region}");
        }
        assert!(CATALOGUE.iter().any(|entry| entry.station.latitude < -30.0));
        assert!(CATALOGUE.iter().any(|entry| entry.station.latitude > 60.0));
    }

    #[test]
    fn every_time_zone_is_in_the_tz_database() {
        for entry in &CATALOGUE {
            let zone = entry.station.time_zone;
            assert!(jiff::tz::TimeZone::get(zone).is_ok(), "{zone}");
        }
    }

    #[test]
    fn normals_and_positions_are_sane() {
        for entry in &CATALOGUE {
            let (station, climate) = (&entry.station, &entry.climate);
            assert!((-90.0..=90.0).contains(&station.latitude), "{}", station.id);
            assert!(
                (-180.0..=180.0).contains(&station.longitude),
                "{}",
                station.id
            );
            assert!(
                (0.0..5000.0).contains(&station.elevation_m),
                "{}",
                station.id
            );
            assert!((1.0..365.0).contains(&climate.wet_days), "{}", station.id);
            assert!(climate.annual_rain_mm > 0.0, "{}", station.id);
            assert!(matches!(climate.rain_seasons, 1 | 2), "{}", station.id);
        }
        assert_eq!(find("madrid").unwrap().station.name, "Madrid Retiro");
        assert!(find("atlantis").is_none());
    }
}
