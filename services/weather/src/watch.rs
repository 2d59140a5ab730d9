//! Periodic readings: the stream behind `WatchReadings`, and the count (and cap)
//! of streams open at once.
//!
//! # Cost per stream
//! A watch is a small state machine polled by the HTTP/2 stream's own task
//! (hyper already runs one per stream, so a hand-made shared scheduler would
//! not save a task). Its timer is one entry in tokio's timer wheel, which is a
//! hierarchical wheel shared by the whole runtime: O(1) to arm and fire. What a
//! stream keeps is the provider handle, the station id, a four-bit metric set,
//! and that timer. `BENCHMARKS.md` measures the memory of 10,000 streams.
//!
//! # Cadence
//! The first reading is taken when the call arrives, then one every interval
//! with [`MissedTickBehavior::Delay`]: when a tick is late (a slow client
//! holding HTTP/2 flow control, a busy server), the next reading is taken as
//! soon as possible and the schedule restarts from there. Readings are never
//! closer together than the interval, so the 100 ms floor really bounds what a
//! stream costs, and a stalled client gets one fresh reading, not a burst of
//! stale ones (`Burst`), nor a reading squeezed in right after a late one to
//! catch up with the old grid (`Skip`).

use prometheus_client::metrics::gauge::Gauge;
use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use futures_util::{Stream, StreamExt as _, stream};
use jiff::Timestamp;
use quartet_runtime::{DrainSignal, UntilDrained};
use tokio::{
    sync::watch,
    time::{Instant, Interval, MissedTickBehavior, interval_at},
};
use tracing::debug;

use crate::{
    error::WeatherError,
    provider::ReadingProvider,
    reading::{MetricSet, Reading, check_supported},
};

/// The default cap on watch streams one server holds (`--max-watches`):
/// comfortably above the 10,000 the benchmark holds on two cores, far below
/// what would exhaust memory.
pub const DEFAULT_MAX_WATCHES: usize = 50_000;

/// The watch streams open on a server: counted so the server can refuse more
/// than its cap with RESOURCE_EXHAUSTED, and observable, so tests (and one
/// metrics, as `quartet_weather_watches`) see streams come and go.
#[derive(Debug, Clone)]
pub struct OpenWatches {
    count: Arc<watch::Sender<usize>>,
    limit: usize,
    gauge: Gauge,
}

impl OpenWatches {
    /// No streams yet; at most `limit` at once.
    pub fn new(limit: usize) -> Self {
        Self {
            count: Arc::new(watch::Sender::new(0)),
            limit,
            gauge: Gauge::default(),
        }
    }

    /// Counts one more stream, or refuses it past the limit. The stream holds
    /// the permit; dropping it (the stream ended or was dropped) counts it out.
    pub fn open(&self) -> Result<WatchPermit, WeatherError> {
        let opened = self.count.send_if_modified(|count| {
            if *count < self.limit {
                *count += 1;
                true
            } else {
                false
            }
        });
        if opened {
            self.gauge.inc();
            Ok(WatchPermit {
                watches: self.clone(),
            })
        } else {
            Err(WeatherError::TooManyWatches { limit: self.limit })
        }
    }

    /// The gauge that mirrors the count, for a metrics registry.
    pub fn gauge(&self) -> Gauge {
        self.gauge.clone()
    }

    /// How many streams are open now.
    pub fn count(&self) -> usize {
        *self.count.borrow()
    }

    /// Waits until the number of open streams satisfies `condition`.
    pub async fn wait_for(&self, condition: impl FnMut(&usize) -> bool) {
        let mut receiver = self.count.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = receiver.wait_for(condition).await;
    }
}

/// One open stream's place in [`OpenWatches`]; released on drop.
#[derive(Debug)]
pub struct WatchPermit {
    watches: OpenWatches,
}

impl Drop for WatchPermit {
    fn drop(&mut self) {
        self.watches.count.send_modify(|count| *count -= 1);
        self.watches.gauge.dec();
    }
}

/// What a watch reads, and how often.
#[derive(Debug, Clone, Copy)]
pub struct WatchPlan {
    /// The station, as the provider spells it.
    pub station: &'static str,
    /// The metrics each reading carries.
    pub metrics: MetricSet,
    /// Time between readings, already checked against the bounds.
    pub interval: Duration,
}

/// The current time, to the millisecond: what "now" means for a reading.
pub fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now)
}

/// Starts a watch: takes the first reading now, so a request that cannot be
/// answered fails before the stream starts, then returns the stream of that
/// reading and one more every interval. The stream ends with
/// [`WeatherError::ShuttingDown`] when `drain` fires, and simply stops being
/// polled (and is dropped) when the client goes away.
pub fn start(
    provider: Arc<dyn ReadingProvider>,
    plan: WatchPlan,
    permit: WatchPermit,
    drain: &DrainSignal,
) -> Result<impl Stream<Item = Result<Reading, WeatherError>> + Send + 'static, WeatherError> {
    let first = provider.reading(plan.station, check_supported(now())?, plan.metrics)?;
    let mut ticks = interval_at(Instant::now() + plan.interval, plan.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    debug!(station = plan.station, interval = ?plan.interval, "watch opened");
    let watch = Watch {
        provider,
        plan,
        ticks,
        _permit: permit,
    };
    let later = UntilDrained::new(watch, drain, || [Err(WeatherError::ShuttingDown)]);
    Ok(stream::iter([Ok(first)]).chain(later))
}

/// One open watch: a reading at every tick.
struct Watch {
    provider: Arc<dyn ReadingProvider>,
    plan: WatchPlan,
    ticks: Interval,
    /// Counts this stream as open until it is dropped.
    _permit: WatchPermit,
}

impl Drop for Watch {
    fn drop(&mut self) {
        debug!(station = self.plan.station, "watch closed");
    }
}

impl Stream for Watch {
    type Item = Result<Reading, WeatherError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        ready!(self.ticks.poll_tick(cx));
        let reading = check_supported(now()).and_then(|at| {
            self.provider
                .reading(self.plan.station, at, self.plan.metrics)
        });
        Poll::Ready(Some(reading))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::simulated::SimulatedProvider;

    fn plan(interval: Duration) -> WatchPlan {
        WatchPlan {
            station: "madrid",
            metrics: MetricSet::ALL,
            interval,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reading_now_then_one_every_interval() {
        let watches = OpenWatches::new(10);
        let interval = Duration::from_millis(250);
        let stream = start(
            Arc::new(SimulatedProvider::new()),
            plan(interval),
            watches.open().unwrap(),
            &DrainSignal::never(),
        )
        .unwrap();
        let mut stream = Box::pin(stream);
        let started = Instant::now();
        let mut arrivals = Vec::new();
        for _ in 0..5 {
            let reading = stream.next().await.unwrap().unwrap();
            assert_eq!(reading.station_id, "madrid");
            arrivals.push(Instant::now() - started);
        }
        let expected: Vec<Duration> = (0..5).map(|n| interval * n).collect();
        assert_eq!(arrivals, expected);
        assert_eq!(watches.count(), 1);
        drop(stream);
        assert_eq!(watches.count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_reader_gets_one_fresh_reading_then_the_interval_again() {
        let interval = Duration::from_secs(1);
        let stream = start(
            Arc::new(SimulatedProvider::new()),
            plan(interval),
            OpenWatches::new(1).open().unwrap(),
            &DrainSignal::never(),
        )
        .unwrap();
        let mut stream = Box::pin(stream);
        stream.next().await.unwrap().unwrap();
        let started = Instant::now();
        // The client stops reading for 3.5 intervals.
        tokio::time::sleep(interval * 7 / 2).await;
        stream.next().await.unwrap().unwrap();
        assert_eq!(
            Instant::now() - started,
            interval * 7 / 2,
            "no wait for a missed tick"
        );
        stream.next().await.unwrap().unwrap();
        assert_eq!(
            Instant::now() - started,
            interval * 9 / 2,
            "a full interval after the late reading, no burst"
        );
    }

    #[test]
    fn the_cap_refuses_one_more_and_frees_on_drop() {
        let watches = OpenWatches::new(2);
        let first = watches.open().unwrap();
        let _second = watches.open().unwrap();
        assert!(matches!(
            watches.open(),
            Err(WeatherError::TooManyWatches { limit: 2 })
        ));
        drop(first);
        assert!(watches.open().is_ok());
    }

    #[test]
    fn an_unknown_station_fails_before_the_stream_starts() {
        let plan = WatchPlan {
            station: "atlantis",
            ..plan(Duration::from_secs(1))
        };
        let result = start(
            Arc::new(SimulatedProvider::new()),
            plan,
            OpenWatches::new(1).open().unwrap(),
            &DrainSignal::never(),
        );
        assert!(matches!(
            result.err(),
            Some(WeatherError::UnknownStation(_))
        ));
    }
}
