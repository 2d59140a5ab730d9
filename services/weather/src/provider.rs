//! Where readings come from: the [`ReadingProvider`] trait and its two
//! implementations, [`simulated`] (the default) and [`observations`], over the
//! [`catalogue`] of stations; both answer through a `ByStation` lookup.

pub mod catalogue;
pub mod observations;
pub mod simulated;

use std::fmt;

use jiff::Timestamp;

use crate::{
    error::WeatherError,
    reading::{MetricSet, Reading, Station},
};

/// A source of readings the service can serve from. Providers answer from
/// memory, so the trait is synchronous: a reading costs microseconds and a
/// watch tick never waits on I/O.
pub trait ReadingProvider: fmt::Debug + Send + Sync + 'static {
    /// Every station this provider can read, ordered by id.
    fn stations(&self) -> &[Station];

    /// The reading of `station` at `at` (a supported time, already checked),
    /// with at least the metrics in `metrics` that the source has. The caller
    /// trims what was not asked for.
    ///
    /// Errors: [`WeatherError::UnknownStation`], or
    /// [`WeatherError::NoObservation`] when the source has nothing that early.
    fn reading(
        &self,
        station: &str,
        at: Timestamp,
        metrics: MetricSet,
    ) -> Result<Reading, WeatherError>;

    /// The station with this id, if the provider has it.
    fn station(&self, id: &str) -> Option<&Station> {
        let stations = self.stations();
        stations
            .binary_search_by(|station| station.id.cmp(id))
            .ok()
            .map(|index| &stations[index])
    }
}

/// Stations ordered by id, each with what a provider keeps for it (a model, a
/// series of records): the lookup every provider answers through.
#[derive(Debug)]
pub(crate) struct ByStation<T> {
    stations: Vec<Station>,
    /// One value per station, in the order of `stations`.
    values: Vec<T>,
}

impl<T> ByStation<T> {
    /// The stations of `entries` with their values; `entries` come ordered by
    /// station id.
    pub(crate) fn new(entries: impl IntoIterator<Item = (Station, T)>) -> Self {
        let (stations, values): (Vec<Station>, Vec<T>) = entries.into_iter().unzip();
        debug_assert!(
            stations.is_sorted_by(|a, b| a.id < b.id),
            "stations must come ordered by id, each once"
        );
        Self { stations, values }
    }

    /// Every station, ordered by id.
    pub(crate) fn stations(&self) -> &[Station] {
        &self.stations
    }

    /// The station with this id and its value; UnknownStation when there is none.
    pub(crate) fn get(&self, id: &str) -> Result<(&Station, &T), WeatherError> {
        let index = self
            .stations
            .binary_search_by(|station| station.id.cmp(id))
            .map_err(|_| WeatherError::UnknownStation(id.to_owned()))?;
        Ok((&self.stations[index], &self.values[index]))
    }
}
