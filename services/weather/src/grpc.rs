//! The gRPC adapter: proto messages in, domain calls, proto messages out. No
//! weather logic lives here.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures_util::{Stream, StreamExt as _};
use jiff::{SignedDuration, Timestamp};
use quartet_proto::weather::v1::{
    self as pb, GetReadingRequest, ListStationsRequest, ListStationsResponse, Measurement,
    WatchReadingsRequest, weather_service_server::WeatherService,
};
use quartet_runtime::DrainSignal;
use tonic::{Request, Response, Status};

use crate::{
    error::WeatherError,
    provider::ReadingProvider,
    reading::{
        DEFAULT_INTERVAL, Metric, MetricSet, Reading, Source, Station, check_interval,
        check_supported,
    },
    watch::{self, OpenWatches, WatchPlan},
};

/// Implements `quartet.weather.v1.WeatherService` over a [`ReadingProvider`].
#[derive(Debug, Clone)]
pub struct WeatherHandler {
    provider: Arc<dyn ReadingProvider>,
    drain: DrainSignal,
    watches: OpenWatches,
}

impl WeatherHandler {
    /// A handler serving `provider`, whose watch streams are counted (and
    /// capped) by `watches` and never drain: [`crate::server`] gives it the
    /// server's drain signal.
    pub fn new(provider: Arc<dyn ReadingProvider>, watches: OpenWatches) -> Self {
        Self {
            provider,
            drain: DrainSignal::never(),
            watches,
        }
    }

    /// The same handler, its watch streams ended when `drain` fires: what the
    /// hosting server decides.
    #[must_use]
    pub fn hosted(self, drain: DrainSignal) -> Self {
        Self { drain, ..self }
    }

    /// The open watch streams, for metrics.
    pub fn watches(&self) -> &OpenWatches {
        &self.watches
    }

    /// The station's id as the provider spells it, or why it cannot be read.
    fn station(&self, id: &str) -> Result<&'static str, WeatherError> {
        if id.is_empty() {
            return Err(WeatherError::MissingStation);
        }
        self.provider
            .station(id)
            .map(|station| station.id)
            .ok_or_else(|| WeatherError::UnknownStation(id.to_owned()))
    }

    fn get_reading(&self, request: &GetReadingRequest) -> Result<pb::Reading, WeatherError> {
        let station = self.station(&request.station_id)?;
        let metrics = metric_set(&request.metrics)?;
        let at = match request.at {
            Some(at) => timestamp_from_proto(at)?,
            None => watch::now(),
        };
        let reading = self
            .provider
            .reading(station, check_supported(at)?, metrics)?;
        Ok(reading_to_proto(&reading.only(metrics)))
    }

    fn watch_readings(&self, request: &WatchReadingsRequest) -> Result<Readings, WeatherError> {
        let plan = WatchPlan {
            station: self.station(&request.station_id)?,
            metrics: metric_set(&request.metrics)?,
            interval: match request.interval {
                Some(interval) => check_interval(duration_from_proto(interval)?)?,
                None => DEFAULT_INTERVAL,
            },
        };
        let permit = self.watches.open()?;
        let readings = watch::start(self.provider.clone(), plan, permit, &self.drain)?;
        let metrics = plan.metrics;
        Ok(Box::pin(readings.map(move |reading| {
            reading
                .map(|reading| reading_to_proto(&reading.only(metrics)))
                .map_err(Status::from)
        })))
    }
}

/// The readings of one `WatchReadings` call.
type Readings = Pin<Box<dyn Stream<Item = Result<pb::Reading, Status>> + Send>>;

#[tonic::async_trait]
impl WeatherService for WeatherHandler {
    async fn list_stations(
        &self,
        _request: Request<ListStationsRequest>,
    ) -> Result<Response<ListStationsResponse>, Status> {
        let stations = self
            .provider
            .stations()
            .iter()
            .map(station_to_proto)
            .collect();
        Ok(Response::new(ListStationsResponse { stations }))
    }

    async fn get_reading(
        &self,
        request: Request<GetReadingRequest>,
    ) -> Result<Response<pb::Reading>, Status> {
        Ok(Response::new(self.get_reading(request.get_ref())?))
    }

    type WatchReadingsStream = Readings;

    async fn watch_readings(
        &self,
        request: Request<WatchReadingsRequest>,
    ) -> Result<Response<Self::WatchReadingsStream>, Status> {
        Ok(Response::new(self.watch_readings(request.get_ref())?))
    }
}

/// The metrics of a request: empty means all four, duplicates count once.
fn metric_set(metrics: &[i32]) -> Result<MetricSet, WeatherError> {
    let mut set = MetricSet::EMPTY;
    for &number in metrics {
        let metric = match pb::Metric::try_from(number) {
            Ok(pb::Metric::MinTemperature) => Metric::MinTemperature,
            Ok(pb::Metric::MaxTemperature) => Metric::MaxTemperature,
            Ok(pb::Metric::Pressure) => Metric::Pressure,
            Ok(pb::Metric::Rainfall) => Metric::Rainfall,
            Ok(pb::Metric::Unspecified) => return Err(WeatherError::UnspecifiedMetric),
            Err(_) => return Err(WeatherError::UnknownMetric(number)),
        };
        set = set.insert(metric);
    }
    Ok(if set.is_empty() { MetricSet::ALL } else { set })
}

/// A protobuf Timestamp (nanos in [0, 1e9), as the spec requires) as an instant.
fn timestamp_from_proto(at: prost_types::Timestamp) -> Result<Timestamp, WeatherError> {
    if !(0..1_000_000_000).contains(&at.nanos) {
        return Err(WeatherError::MalformedField {
            field: "at",
            reason: format!("nanos must be 0 to 999999999, not {}", at.nanos),
        });
    }
    Timestamp::from_second(at.seconds)
        .and_then(|seconds| seconds.checked_add(SignedDuration::from_nanos(i64::from(at.nanos))))
        .map_err(|_| WeatherError::TimeOutOfRange {
            at: format!("{} seconds since 1970", at.seconds),
        })
}

/// An instant as a protobuf Timestamp, whose nanos are never negative (jiff's
/// are, before 1970).
fn timestamp_to_proto(at: Timestamp) -> prost_types::Timestamp {
    let (mut seconds, mut nanos) = (at.as_second(), at.subsec_nanosecond());
    if nanos < 0 {
        seconds -= 1;
        nanos += 1_000_000_000;
    }
    prost_types::Timestamp { seconds, nanos }
}

/// A protobuf Duration as a std one; negative ones are out of range.
fn duration_from_proto(interval: prost_types::Duration) -> Result<Duration, WeatherError> {
    let prost_types::Duration { seconds, nanos } = interval;
    if nanos.abs() >= 1_000_000_000 || (seconds != 0 && nanos != 0 && (seconds < 0) != (nanos < 0))
    {
        return Err(WeatherError::MalformedField {
            field: "interval",
            reason: format!(
                "nanos must be -999999999 to 999999999 with the sign of seconds, not {nanos}"
            ),
        });
    }
    match (u64::try_from(seconds), u32::try_from(nanos)) {
        (Ok(seconds), Ok(nanos)) => Ok(Duration::new(seconds, nanos)),
        _ => Err(WeatherError::IntervalOutOfRange {
            interval: format!("{seconds}s {nanos}ns"),
        }),
    }
}

fn station_to_proto(station: &Station) -> pb::Station {
    pb::Station {
        id: station.id.to_owned(),
        name: station.name.to_owned(),
        country: station.country.to_owned(),
        latitude: station.latitude,
        longitude: station.longitude,
        elevation_m: station.elevation_m,
        time_zone: station.time_zone.to_owned(),
    }
}

fn reading_to_proto(reading: &Reading) -> pb::Reading {
    let measurement = |metric: Metric| {
        reading.value(metric).map(|value| Measurement {
            value,
            unit: metric.unit().to_owned(),
        })
    };
    let source = match reading.source {
        Source::Simulated => pb::ReadingSource::Simulated,
        Source::Observed => pb::ReadingSource::Observed,
    };
    pb::Reading {
        station_id: reading.station_id.to_owned(),
        observed_at: Some(timestamp_to_proto(reading.observed_at)),
        min_temperature: measurement(Metric::MinTemperature),
        max_temperature: measurement(Metric::MaxTemperature),
        pressure: measurement(Metric::Pressure),
        rainfall: measurement(Metric::Rainfall),
        source: source.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unspecified_and_unknown_metrics_are_refused() {
        assert!(matches!(
            metric_set(&[0]),
            Err(WeatherError::UnspecifiedMetric)
        ));
        assert!(matches!(
            metric_set(&[1, 9]),
            Err(WeatherError::UnknownMetric(9))
        ));
        assert_eq!(metric_set(&[]).unwrap(), MetricSet::ALL);
        assert_eq!(
            metric_set(&[3, 3]).unwrap(),
            MetricSet::EMPTY.insert(Metric::Pressure)
        );
    }

    #[test]
    fn malformed_and_negative_intervals_are_refused() {
        let duration = |seconds, nanos| prost_types::Duration { seconds, nanos };
        assert_eq!(
            duration_from_proto(duration(1, 500_000_000)).unwrap(),
            Duration::from_millis(1500)
        );
        assert!(matches!(
            duration_from_proto(duration(-1, 0)),
            Err(WeatherError::IntervalOutOfRange { .. })
        ));
        assert!(matches!(
            duration_from_proto(duration(0, -5)),
            Err(WeatherError::IntervalOutOfRange { .. })
        ));
        assert!(matches!(
            duration_from_proto(duration(1, 1_000_000_000)),
            Err(WeatherError::MalformedField { .. })
        ));
        assert!(matches!(
            duration_from_proto(duration(1, -1)),
            Err(WeatherError::MalformedField { .. })
        ));
    }

    #[test]
    fn malformed_and_huge_timestamps_are_refused() {
        let stamp = |seconds, nanos| prost_types::Timestamp { seconds, nanos };
        assert!(matches!(
            timestamp_from_proto(stamp(0, -1)),
            Err(WeatherError::MalformedField { .. })
        ));
        assert!(matches!(
            timestamp_from_proto(stamp(i64::MAX, 0)),
            Err(WeatherError::TimeOutOfRange { .. })
        ));
    }

    proptest! {
        #[test]
        fn timestamps_survive_the_round_trip(seconds in -2_208_988_800_i64..7_289_654_400, nanos in 0..1_000_000_000_i32) {
            let proto = prost_types::Timestamp { seconds, nanos };
            let at = timestamp_from_proto(proto).unwrap();
            prop_assert_eq!(timestamp_to_proto(at), proto);
        }
    }
}
