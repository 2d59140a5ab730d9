//! Where readings come from: the [`ReadingProvider`] trait and its two
//! implementations, [`simulated`] (the default) and [`observations`].

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
