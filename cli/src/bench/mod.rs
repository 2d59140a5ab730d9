//! `quartet bench SCENARIO`: a closed-loop load generator in the spirit of ghz.
//!
//! `--concurrency` workers share `--connections` HTTP/2 connections; each worker
//! sends one call, waits for the answer, records its latency, and sends the next.
//! Calls during `--warmup` are made but not counted. The report gives throughput,
//! latency percentiles (hdrhistogram, microsecond resolution) and errors by code.
//! `startup` is the odd one out: it times a server's start instead ([`startup`]).
//!
//! # Layout
//! - this file: the arguments, the workers' loop and the report.
//! - `caller`: what one worker sends per call, for each scenario.
//! - `startup`: the start-up probe.

use std::{
    collections::BTreeMap,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use quartet_runtime::status_names::code_name;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::{client::ClientOptions, output::Printer};

mod caller;
mod startup;

use caller::Caller;

/// Highest latency the histograms record (longer calls are clamped to it).
const MAX_LATENCY_MICROS: u64 = 60_000_000;

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// What to call.
    #[arg(value_enum)]
    scenario: Scenario,
    /// Calls in flight at once (one per worker).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections the workers share.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// How long to measure.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Stop after this many counted calls instead (the duration still bounds the run).
    #[arg(long)]
    requests: Option<u64>,
    /// How long to run before counting.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Where the text scenarios connect (HOST:PORT): the gateway's transform
    /// port for text-transform, its database port for text-db-get.
    #[arg(long, default_value = "127.0.0.1:7001")]
    text_addr: String,
    /// startup: how many times to start the server.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// startup: how long the server idles before its memory is read.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    idle: Duration,
    /// startup: the server's command line, after `--`.
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Transform: unary UPPER of a short text.
    Transform,
    /// Transform: one long-lived TransformStream per worker, one request and its
    /// answer per call.
    TransformStream,
    /// Database: CreatePerson with a new id each call (durable writes).
    DbCreate,
    /// Database: GetPerson of existing records.
    DbGet,
    /// Database: UpdatePerson with the expected version, each worker on a
    /// record of its own (so every call commits: no version conflicts).
    DbUpdate,
    /// Weather: GetReading of all four metrics, now, cycling through stations.
    WeatherGet,
    /// A text protocol: `UPPER hola, mundo` lines over TCP, one connection per
    /// worker (the gateway, or any server speaking the transform text protocol).
    TextTransform,
    /// A text protocol: `GET <id>` lines of existing records over TCP, one
    /// connection per worker (the gateway's database port); the records are
    /// created first over gRPC at --database-addr.
    TextDbGet,
    /// Not a load: starts the server given after `--` (`--runs` times) and
    /// reports the time from process start to SERVING and its idle memory.
    Startup,
}

/// What one worker measured.
struct Tally {
    latencies: Histogram<u64>,
    errors: BTreeMap<&'static str, u64>,
}

#[derive(Serialize)]
struct Report {
    scenario: String,
    concurrency: usize,
    connections: usize,
    seconds: f64,
    ok: u64,
    errors: BTreeMap<&'static str, u64>,
    per_second: f64,
    latency_ms: Latencies,
}

#[derive(Serialize)]
struct Latencies {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

fn millis(micros: u64) -> f64 {
    // Latencies are far below 2^52 microseconds.
    #[allow(clippy::cast_precision_loss)]
    let millis = micros as f64 / 1000.0;
    millis
}

fn address(client: &ClientOptions, scenario: Scenario) -> &str {
    match scenario {
        Scenario::Transform | Scenario::TransformStream | Scenario::TextTransform => {
            &client.transform_addr
        }
        Scenario::DbCreate | Scenario::DbGet | Scenario::DbUpdate | Scenario::TextDbGet => {
            &client.database_addr
        }
        Scenario::WeatherGet => &client.weather_addr,
        Scenario::Startup => "",
    }
}

/// When counting starts and when the run ends, and how many counted calls remain.
#[derive(Clone)]
struct Window {
    counting_from: Instant,
    deadline: Instant,
    budget: Arc<AtomicU64>,
}

/// One worker's loop: call, time, repeat until the window closes.
async fn measure(mut caller: Caller, window: Window) -> anyhow::Result<Tally> {
    let mut tally = Tally {
        latencies: Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3)?,
        errors: BTreeMap::new(),
    };
    loop {
        let sent = Instant::now();
        if sent >= window.deadline {
            return Ok(tally);
        }
        let counted = sent >= window.counting_from;
        if counted
            && window
                .budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(1)
                })
                .is_err()
        {
            return Ok(tally);
        }
        let result = caller.call().await;
        if !counted {
            continue;
        }
        match result {
            Ok(()) => {
                let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                tally
                    .latencies
                    .saturating_record(micros.clamp(1, MAX_LATENCY_MICROS));
            }
            Err(status) => *tally.errors.entry(code_name(status.code())).or_default() += 1,
        }
    }
}

pub(crate) async fn run(client: &ClientOptions, args: BenchArgs) -> anyhow::Result<ExitCode> {
    let printer = Printer::new(client.output);
    if args.scenario == Scenario::Startup {
        let report = startup::probe(&args.command, args.runs.max(1), args.idle).await?;
        printer.print(&report.to_string(), &report)?;
        return Ok(ExitCode::SUCCESS);
    }
    anyhow::ensure!(
        args.concurrency > 0 && args.connections > 0,
        "concurrency and connections must be positive"
    );
    let address = address(client, args.scenario);
    let mut channels = Vec::with_capacity(args.connections);
    if args.scenario != Scenario::TextTransform {
        for _ in 0..args.connections {
            channels.push(client.connect(address).await?);
        }
    }
    let shared = caller::prepare(args.scenario, channels.first().cloned()).await?;
    if args.scenario == Scenario::TextDbGet {
        // The gRPC connection only made the records; the load is text.
        channels.clear();
    }

    let counting_from = Instant::now() + args.warmup;
    let window = Window {
        counting_from,
        deadline: counting_from + args.duration,
        budget: Arc::new(AtomicU64::new(args.requests.unwrap_or(u64::MAX))),
    };
    let mut workers = JoinSet::new();
    for worker in 0..args.concurrency {
        let channel = (!channels.is_empty()).then(|| channels[worker % channels.len()].clone());
        let caller = Caller::new(&args, worker, channel, &shared).await?;
        workers.spawn(measure(caller, window.clone()));
    }

    let mut latencies = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_MICROS, 3)?;
    let mut errors = BTreeMap::new();
    for tally in workers.join_all().await {
        let tally = tally?;
        latencies.add(&tally.latencies)?;
        for (code, count) in tally.errors {
            *errors.entry(code).or_default() += count;
        }
    }
    let seconds = Instant::now()
        .min(window.deadline)
        .saturating_duration_since(counting_from)
        .as_secs_f64();
    let report = Report::new(&args, seconds, &latencies, errors);
    printer.print(&report.to_string(), &report)?;
    Ok(ExitCode::SUCCESS)
}

impl Report {
    fn new(
        args: &BenchArgs,
        seconds: f64,
        latencies: &Histogram<u64>,
        errors: BTreeMap<&'static str, u64>,
    ) -> Self {
        let ok = latencies.len();
        #[allow(clippy::cast_precision_loss)]
        let per_second = if seconds > 0.0 {
            ok as f64 / seconds
        } else {
            0.0
        };
        Self {
            scenario: args
                .scenario
                .to_possible_value()
                .map_or_else(String::new, |value| value.get_name().to_owned()),
            concurrency: args.concurrency,
            connections: args.connections,
            seconds,
            ok,
            errors,
            per_second,
            latency_ms: Latencies {
                p50: millis(latencies.value_at_quantile(0.50)),
                p90: millis(latencies.value_at_quantile(0.90)),
                p99: millis(latencies.value_at_quantile(0.99)),
                max: millis(latencies.max()),
            },
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} concurrency={} connections={}: {:.0} calls/s ({} ok in {:.1}s), latency ms p50 {:.3} p90 {:.3} p99 {:.3} max {:.3}, errors {:?}",
            self.scenario,
            self.concurrency,
            self.connections,
            self.per_second,
            self.ok,
            self.seconds,
            self.latency_ms.p50,
            self.latency_ms.p90,
            self.latency_ms.p99,
            self.latency_ms.max,
            self.errors,
        )
    }
}
