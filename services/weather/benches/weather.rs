//! Weather benchmarks, written up in `BENCHMARKS.md`:
//!
//! ```sh
//! cargo bench -p quartet-weather --bench weather
//! ```
//!
//! 1. **Baseline**: readings per second from the simulated provider alone, in
//!    this process, no gRPC.
//! 2. **GetReading**: readings per second through gRPC against the real
//!    `quartet-weather` binary (release build) on loopback, from concurrent
//!    callers on a few HTTP/2 connections. Its ratio to the baseline is the cost
//!    of gRPC, HTTP/2, loopback TCP and the client.
//! 3. **WatchReadings**: N concurrent streams at a 1 s interval on one server
//!    (default 10,000): readings delivered per second, how late they arrive, the
//!    server's CPU, and its resident memory idle, holding the streams, and after
//!    they close.
//!
//! Knobs (environment): `WEATHER_BENCH_RUNS` (5), `WEATHER_BENCH_STREAMS`
//! (10000), `WEATHER_BENCH_WATCH_ROUNDS` (3: later rounds show whether
//! memory freed by the first is reused or leaked), `WEATHER_BENCH_WINDOW_SECS`
//! (10). Everything runs on loopback, bounded in count and time; client and
//! server share the machine's cores.

// A benchmark's report is what it prints; figures are converted for display.
#![allow(
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use jiff::Timestamp;
use quartet_proto::weather::v1::{
    GetReadingRequest, WatchReadingsRequest, weather_service_client::WeatherServiceClient,
};
use quartet_weather::{MetricSet, ReadingProvider, provider::simulated::SimulatedProvider};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
    sync::Semaphore,
    task::JoinSet,
    time::timeout,
};
use tonic::transport::Channel;

/// Readings per run of the provider baseline.
const BASELINE_READINGS: u32 = 200_000;
/// How long each GetReading run calls.
const GET_RUN: Duration = Duration::from_secs(3);
/// Concurrent GetReading callers, spread over [`GET_CONNECTIONS`].
const GET_CALLERS: usize = 32;
/// HTTP/2 connections the GetReading callers share.
const GET_CONNECTIONS: usize = 4;
/// Watch streams per HTTP/2 connection: under the server's default of 1024
/// concurrent streams per connection.
const STREAMS_PER_CONNECTION: usize = 500;
/// Watch streams being opened at once.
const OPENING_AT_ONCE: usize = 500;
/// Longest any single step may take before the benchmark gives up.
const STEP_DEADLINE: Duration = Duration::from_secs(120);
/// Linux reports process CPU time in /proc in units of USER_HZ, 100 a second.
const USER_HZ: f64 = 100.0;

fn env_number(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(value) => value.parse().with_context(|| format!("{name}={value:?}")),
        Err(_) => Ok(default),
    }
}

fn main() -> anyhow::Result<()> {
    // Two workers, as many as the machine has cores.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let runs = env_number("WEATHER_BENCH_RUNS", 5)?;
    let streams = env_number("WEATHER_BENCH_STREAMS", 10_000)?;
    let rounds = env_number("WEATHER_BENCH_WATCH_ROUNDS", 3)?;
    let window = Duration::from_secs(u64::try_from(env_number("WEATHER_BENCH_WINDOW_SECS", 10)?)?);
    println!("weather benchmark: {runs} runs, {streams} watch streams, {window:?} window");
    println!(
        "machine: {} cores, shared; client and server on the same cores; load average {}",
        cores(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    let baseline: Vec<f64> = (0..runs).map(|_| provider_readings_per_second()).collect();
    report("provider alone (baseline)", "readings/s", &baseline);

    let mut server = Server::start().await?;
    let idle_rss = server.rss_kib()?;
    println!("server idle RSS: {idle_rss} KiB");

    let mut grpc = Vec::new();
    for _ in 0..runs {
        grpc.push(get_readings_per_second(&server.url).await?);
    }
    report("GetReading over gRPC", "readings/s", &grpc);
    println!(
        "GetReading / baseline: {:.3} (median over median)",
        median(&grpc) / median(&baseline)
    );
    let after_get_rss = server.rss_kib()?;
    println!("server RSS after the GetReading runs: {after_get_rss} KiB");

    for round in 1..=rounds {
        println!("watch round {round} of {rounds}");
        watch_capacity(&mut server, streams, window).await?;
    }
    server.stop().await
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn report(what: &str, unit: &str, values: &[f64]) {
    let runs: Vec<String> = values.iter().map(|value| format!("{value:.0}")).collect();
    println!(
        "{what}: median {:.0} {unit} (runs: {})",
        median(values),
        runs.join(", ")
    );
}

/// The simulated provider alone: all four metrics, a different station and
/// second each time, as a stream of "now" readings would ask.
fn provider_readings_per_second() -> f64 {
    let provider = SimulatedProvider::new();
    let stations: Vec<&'static str> = provider
        .stations()
        .iter()
        .map(|station| station.id)
        .collect();
    let start = Timestamp::now();
    let began = Instant::now();
    let mut checksum = 0.0;
    for i in 0..BASELINE_READINGS {
        let station = stations[i as usize % stations.len()];
        let at = start + jiff::SignedDuration::from_millis(i64::from(i));
        if let Ok(reading) = provider.reading(station, at, MetricSet::ALL) {
            checksum += reading.pressure_hpa.unwrap_or_default();
        }
    }
    let elapsed = began.elapsed();
    std::hint::black_box(checksum);
    f64::from(BASELINE_READINGS) / elapsed.as_secs_f64()
}

/// The real server binary, release build, as deployed.
struct Server {
    child: Child,
    pid: u32,
    url: String,
}

impl Server {
    async fn start() -> anyhow::Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quartet-weather"))
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .env_remove("QUARTET_OBSERVATIONS")
            .env_remove("QUARTET_MAX_WATCHES")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().context("server exited at once")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let line = timeout(STEP_DEADLINE, BufReader::new(stdout).lines().next_line())
            .await
            .context("server never announced itself")??
            .context("server closed stdout")?;
        let addr = line
            .strip_prefix("weather listening on ")
            .with_context(|| format!("unexpected announce line {line:?}"))?;
        Ok(Self {
            url: format!("http://{addr}"),
            child,
            pid,
        })
    }

    /// Resident memory, from /proc (Linux).
    fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let line = status
            .lines()
            .find(|line| line.starts_with("VmRSS:"))
            .context("no VmRSS")?;
        let kib = line
            .split_whitespace()
            .nth(1)
            .context("malformed VmRSS")?
            .parse()?;
        Ok(kib)
    }

    /// User + system CPU time so far, seconds.
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // Fields after the command name (which is in parentheses and may hold spaces).
        let after_name = stat.rsplit_once(')').context("malformed stat")?.1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
        let utime: f64 = fields.get(11).context("no utime")?.parse()?;
        let stime: f64 = fields.get(12).context("no stime")?.parse()?;
        Ok((utime + stime) / USER_HZ)
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid)?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        let status = timeout(STEP_DEADLINE, self.child.wait()).await??;
        if !status.success() {
            bail!("server exited with {status}");
        }
        Ok(())
    }
}

async fn channels(url: &str, count: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        channels.push(Channel::from_shared(url.to_owned())?.connect().await?);
    }
    Ok(channels)
}

/// Concurrent callers asking for all four metrics now, as a dashboard would.
async fn get_readings_per_second(url: &str) -> anyhow::Result<f64> {
    let channels = channels(url, GET_CONNECTIONS).await?;
    let stations = ["madrid", "tokyo", "sydney", "nairobi", "lapaz", "reykjavik"];
    let began = Instant::now();
    let mut callers = JoinSet::new();
    for caller in 0..GET_CALLERS {
        let mut client = WeatherServiceClient::new(channels[caller % channels.len()].clone());
        let station = stations[caller % stations.len()];
        callers.spawn(async move {
            let mut calls = 0_u64;
            while began.elapsed() < GET_RUN {
                client
                    .get_reading(GetReadingRequest {
                        station_id: station.to_owned(),
                        ..GetReadingRequest::default()
                    })
                    .await?;
                calls += 1;
            }
            Ok::<_, tonic::Status>(calls)
        });
    }
    let mut total = 0;
    while let Some(calls) = callers.join_next().await {
        total += calls??;
    }
    Ok(total as f64 / began.elapsed().as_secs_f64())
}

/// What the watch streams saw, shared by their tasks.
#[derive(Default)]
struct WatchTally {
    opened: AtomicUsize,
    readings: AtomicU64,
    failed: AtomicUsize,
    /// Gaps between consecutive readings of a stream, by whole milliseconds
    /// (the last bucket holds everything longer).
    gaps_ms: Vec<AtomicU64>,
}

impl WatchTally {
    fn new() -> Self {
        Self {
            gaps_ms: (0..=3000).map(|_| AtomicU64::new(0)).collect(),
            ..Self::default()
        }
    }

    fn record_gap(&self, gap: Duration) {
        let bucket = usize::try_from(gap.as_millis())
            .unwrap_or(usize::MAX)
            .min(3000);
        self.gaps_ms[bucket].fetch_add(1, Ordering::Relaxed);
    }

    fn reset_gaps(&self) {
        for bucket in &self.gaps_ms {
            bucket.store(0, Ordering::Relaxed);
        }
    }

    fn gap_percentile(&self, percentile: f64) -> u64 {
        let counts: Vec<u64> = self
            .gaps_ms
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let wanted = (total as f64 * percentile).ceil() as u64;
        let mut seen = 0;
        for (ms, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= wanted.max(1) {
                return ms as u64;
            }
        }
        3000
    }
}

/// Opens `streams` watches at a 1 s interval, measures what they get, and
/// closes them again, watching the server's memory.
async fn watch_capacity(
    server: &mut Server,
    streams: usize,
    window: Duration,
) -> anyhow::Result<()> {
    let connections = streams.div_ceil(STREAMS_PER_CONNECTION);
    let channels = channels(&server.url, connections).await?;
    let tally = Arc::new(WatchTally::new());
    let opening = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let stations = SimulatedProvider::new()
        .stations()
        .iter()
        .map(|station| station.id)
        .collect::<Vec<_>>();
    let began = Instant::now();
    let mut watchers = JoinSet::new();
    for stream in 0..streams {
        let client = WeatherServiceClient::new(channels[stream % channels.len()].clone());
        let station = stations[stream % stations.len()];
        watchers.spawn(follow_watch(
            client,
            station,
            tally.clone(),
            opening.clone(),
        ));
    }
    // Wait until every stream has its first reading (or failed to open).
    let all_open = async {
        while tally.opened.load(Ordering::Relaxed) + tally.failed.load(Ordering::Relaxed) < streams
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(STEP_DEADLINE, all_open)
        .await
        .context("streams did not open in time")?;
    let open_time = began.elapsed();
    let failed = tally.failed.load(Ordering::Relaxed);
    println!(
        "watch: {streams} streams at 1s on {connections} connections opened in {:.1}s ({failed} failed)",
        open_time.as_secs_f64()
    );
    measure_window(server, &tally, streams, window).await?;

    watchers.abort_all();
    while watchers.join_next().await.is_some() {}
    drop(channels);
    // Give the server a moment to notice the resets and free the streams.
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "watch: server RSS after the streams closed: {} KiB",
        server.rss_kib()?
    );
    Ok(())
}

/// One watch stream at a 1 s interval on `client`, tallied until aborted.
async fn follow_watch(
    mut client: WeatherServiceClient<Channel>,
    station: &'static str,
    tally: Arc<WatchTally>,
    opening: Arc<Semaphore>,
) {
    let request = WatchReadingsRequest {
        station_id: station.to_owned(),
        interval: Some(prost_types::Duration {
            seconds: 1,
            nanos: 0,
        }),
        ..WatchReadingsRequest::default()
    };
    // Held until the first reading: bounds how many opens are in flight.
    let mut permit = opening.acquire_owned().await.ok();
    let Ok(response) = client.watch_readings(request).await else {
        tally.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut readings = response.into_inner();
    let mut last = None;
    while let Ok(Some(_)) = readings.message().await {
        let now = Instant::now();
        if let Some(last) = last.replace(now) {
            tally.record_gap(now - last);
        } else {
            tally.opened.fetch_add(1, Ordering::Relaxed);
            permit.take();
        }
        tally.readings.fetch_add(1, Ordering::Relaxed);
    }
}

/// Measures a window of the open streams, once the opening burst has settled:
/// readings delivered, the server's CPU, the gaps between readings, its memory.
async fn measure_window(
    server: &Server,
    tally: &WatchTally,
    streams: usize,
    window: Duration,
) -> anyhow::Result<()> {
    // Let the schedule settle (the opening burst), then measure a window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    tally.reset_gaps();
    let readings_before = tally.readings.load(Ordering::Relaxed);
    let cpu_before = server.cpu_seconds()?;
    let window_began = Instant::now();
    tokio::time::sleep(window).await;
    let elapsed = window_began.elapsed().as_secs_f64();
    let delivered = tally.readings.load(Ordering::Relaxed) - readings_before;
    let cpu = (server.cpu_seconds()? - cpu_before) / elapsed;
    let holding_rss = server.rss_kib()?;
    println!(
        "watch: {:.0} readings/s delivered (ideal {streams}/s), server CPU {:.0}% of one core",
        delivered as f64 / elapsed,
        cpu * 100.0
    );
    println!(
        "watch: gap between a stream's readings p50 {} ms, p99 {} ms, p99.9 {} ms, max bucket {} ms",
        tally.gap_percentile(0.5),
        tally.gap_percentile(0.99),
        tally.gap_percentile(0.999),
        tally.gap_percentile(1.0)
    );
    println!("watch: server RSS holding {streams} streams: {holding_rss} KiB");
    Ok(())
}
