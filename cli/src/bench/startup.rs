//! `quartet bench startup -- COMMAND [ARGS...]`: how long a server takes from
//! process start to answering SERVING, and how much memory it holds idle.
//!
//! The command must print `<name> listening on ADDR` on stdout once bound, as
//! every Quartet server (and the bench baselines) does; the probe then asks
//! `grpc.health.v1.Health/Check` on ADDR until the answer is SERVING. The time
//! runs from just before the process is spawned, so it includes `exec`, the
//! runtime's start, opening stores and binding. Idle memory is the process's
//! resident set (`VmRSS`) after `--idle` with no calls.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde::Serialize;
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// How long a server may take to announce itself and answer SERVING.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between health checks while the server is not SERVING yet.
const RETRY_EVERY: Duration = Duration::from_millis(1);

/// What the start-up probe measured over every run.
#[derive(Debug, Serialize)]
pub(super) struct StartupReport {
    command: String,
    /// Process start to SERVING, per run.
    serving_ms: Vec<f64>,
    /// Resident set after the idle pause, per run.
    idle_rss_mib: Vec<f64>,
    median_serving_ms: f64,
    median_idle_rss_mib: f64,
}

/// Starts `command` `runs` times, one after the other, and measures each.
pub(super) async fn probe(
    command: &[String],
    runs: usize,
    idle: Duration,
) -> anyhow::Result<StartupReport> {
    let (program, args) = command
        .split_first()
        .context("startup needs the server's command after `--`")?;
    let mut serving_ms = Vec::with_capacity(runs);
    let mut idle_rss_mib = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {program}"))?;
        let measured = tokio::time::timeout(START_DEADLINE, wait_serving(&mut child, started))
            .await
            .context("the server was not SERVING within 30 s")??;
        serving_ms.push(measured.as_secs_f64() * 1000.0);
        tokio::time::sleep(idle).await;
        idle_rss_mib.push(resident_mib(&child)?);
        child.kill().await?;
    }
    Ok(StartupReport {
        command: command.join(" "),
        median_serving_ms: median(&serving_ms),
        median_idle_rss_mib: median(&idle_rss_mib),
        serving_ms,
        idle_rss_mib,
    })
}

/// Waits for the announcement, then for SERVING; returns the time since `started`.
async fn wait_serving(child: &mut Child, started: Instant) -> anyhow::Result<Duration> {
    let stdout = child.stdout.take().context("the child has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let address = loop {
        let line = lines
            .next_line()
            .await?
            .context("the server exited before announcing its address")?;
        if let Some(address) = grpc_address(&line) {
            break address.to_owned();
        }
    };
    // Keep reading (and dropping) stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?;
    loop {
        if let Ok(channel) = endpoint.connect().await {
            let mut health = HealthClient::new(channel);
            let answer = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if answer.is_ok_and(|answer| answer.get_ref().status == ServingStatus::Serving as i32) {
                return Ok(started.elapsed());
            }
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// The address in `<name> listening on ADDR` (one word of name: the lines of
/// extra listeners, like `transform health listening on`, have two).
fn grpc_address(line: &str) -> Option<&str> {
    let (name, address) = line.trim().split_once(" listening on ")?;
    (!name.contains(' ')).then_some(address)
}

/// The child's resident set in MiB, from `/proc/PID/status`.
fn resident_mib(child: &Child) -> anyhow::Result<f64> {
    let pid = child.id().context("the server has exited")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")?;
    Ok(kib / 1024.0)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

impl std::fmt::Display for StartupReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |values: &[f64]| {
            values
                .iter()
                .map(|value| format!("{value:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "startup `{}`: SERVING after {:.1} ms (median; runs {}), idle RSS {:.1} MiB (runs {})",
            self.command,
            self.median_serving_ms,
            list(&self.serving_ms),
            self.median_idle_rss_mib,
            list(&self.idle_rss_mib),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{grpc_address, median};

    #[test]
    fn takes_the_grpc_listener_not_the_extra_ones() {
        assert_eq!(
            grpc_address("transform listening on 127.0.0.1:5"),
            Some("127.0.0.1:5")
        );
        assert_eq!(
            grpc_address("transform health listening on 127.0.0.1:6"),
            None
        );
        assert_eq!(
            grpc_address("gateway chat-udp listening on 127.0.0.1:7"),
            None
        );
        assert_eq!(grpc_address("2026-11-30 INFO starting"), None);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < f64::EPSILON);
        assert!((median(&[4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < f64::EPSILON);
    }
}
