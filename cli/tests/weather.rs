//! `quartet weather` against a live weather server (the simulated climate):
//! stations, readings once or periodically, and a watch that resumes after
//! the server restarts.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use quartet_runtime::{RunningServer, ServerOptions, Shutdown};
use quartet_weather::WeatherOptions;

use common::{Process, quartet_at, run, serve};

async fn start() -> RunningServer {
    start_on("127.0.0.1:0".parse().unwrap()).await
}

async fn start_on(addr: SocketAddr) -> RunningServer {
    let handler = quartet_weather::handler(&WeatherOptions::default())
        .await
        .unwrap();
    let server = quartet_weather::server(ServerOptions::default(), Shutdown::new(), handler);
    serve(server, addr).await
}

#[tokio::test]
async fn stations_print_a_table_or_one_json_object_each() {
    let server = start().await;
    let table = run(quartet_at(&server.url()).args(["weather", "stations"])).await;
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].starts_with("ID "), "{}", lines[0]);
    assert!(lines[0].contains("TIME ZONE"));
    let madrid = lines
        .iter()
        .find(|line| line.starts_with("madrid "))
        .unwrap();
    assert!(madrid.contains("Madrid Retiro"), "{madrid}");
    assert!(madrid.contains("667 m"), "{madrid}");
    assert!(madrid.ends_with("Europe/Madrid"), "{madrid}");

    let json =
        run(quartet_at(&server.url()).args("--output json weather stations".split_whitespace()))
            .await;
    let stations = json.json_lines();
    assert_eq!(
        stations.len(),
        lines.len() - 1,
        "one object per station, no heading"
    );
    assert!(stations.len() >= 12);
    let sydney = stations
        .iter()
        .find(|station| station["id"] == "sydney")
        .unwrap();
    assert_eq!(sydney["time_zone"], "Australia/Sydney");
    assert_eq!(sydney["country"], "AU");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn get_json_carries_exactly_the_requested_metrics_with_units() {
    let server = start().await;
    let run = run(quartet_at(&server.url()).args(
        "--output json weather get madrid --metric min --metric pressure --at 2024-06-01T12:00:00Z"
            .split_whitespace(),
    ))
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let reading = run.json();
    assert_eq!(reading["station_id"], "madrid");
    assert_eq!(reading["observed_at"], "2024-06-01T12:00:00Z");
    assert_eq!(reading["source"], "simulated");
    assert_eq!(reading["min_temperature"]["unit"], "°C");
    assert_eq!(reading["pressure"]["unit"], "hPa");
    assert!(reading["pressure"]["value"].as_f64().unwrap() > 900.0);
    // Not asked for: absent, not zero.
    assert!(reading.get("max_temperature").is_none(), "{reading}");
    assert!(reading.get("rainfall").is_none(), "{reading}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn get_at_a_local_time_reads_that_instant_in_the_station_zone() {
    let server = start().await;
    let local = run(quartet_at(&server.url())
        .args("weather get madrid --at".split_whitespace())
        .arg("2024-06-01 14:00"))
    .await;
    assert_eq!(local.code, Some(0), "{}", local.stderr);
    assert!(
        local
            .stdout
            .contains("station      madrid (Madrid Retiro, ES)\n"),
        "{}",
        local.stdout
    );
    assert!(
        local
            .stdout
            .contains("observed at  2024-06-01T14:00:00+02:00\n"),
        "{}",
        local.stdout
    );
    for unit in [" °C\n", " hPa\n", " mm\n"] {
        assert!(local.stdout.contains(unit), "{unit}: {}", local.stdout);
    }
    // The same instant in UTC gives the same reading.
    let utc = run(quartet_at(&server.url())
        .args("weather get madrid --at 2024-06-01T12:00:00Z".split_whitespace()))
    .await;
    assert_eq!(utc.stdout, local.stdout);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn refused_reads_exit_one_and_bad_times_exit_two() {
    let server = start().await;
    let unknown = run(quartet_at(&server.url()).args(["weather", "get", "atlantis"])).await;
    unknown.assert_failed("NOT_FOUND: ");

    let too_fast =
        run(quartet_at(&server.url()).args("weather watch madrid --every 10ms".split_whitespace()))
            .await;
    too_fast.assert_failed("INVALID_ARGUMENT: interval");

    let bad_time =
        run(quartet_at(&server.url()).args("weather get madrid --at soon".split_whitespace()))
            .await;
    assert_eq!(bad_time.code, Some(2), "{}", bad_time.stderr);
    let bad_metric =
        run(quartet_at(&server.url())
            .args("weather get madrid --metric humidity".split_whitespace()))
        .await;
    assert_eq!(bad_metric.code, Some(2), "{}", bad_metric.stderr);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn watch_prints_one_line_per_reading_with_units() {
    let server = start().await;
    let run = run(quartet_at(&server.url()).args(
        "weather watch tokyo --every 100ms --count 3 --metric max --metric rain".split_whitespace(),
    ))
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    for line in lines {
        // 2026-11-23T20:03:32.890+09:00 tokyo  max 12.4 °C  rainfall 0.0 mm
        assert!(line.contains("+09:00 tokyo  max "), "{line}");
        assert!(line.contains(" °C  rainfall "), "{line}");
        assert!(line.ends_with(" mm"), "{line}");
        assert!(!line.contains("pressure"), "{line}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn watch_resumes_by_itself_after_the_server_restarts_on_the_same_port() {
    let first = start().await;
    let addr = first.local_addr();
    let mut watch = Process::spawn(
        quartet_at(&first.url())
            .args("weather watch london --every 100ms --count 6".split_whitespace()),
    );
    for _ in 0..2 {
        assert!(watch.next_line().await.contains(" london  min "));
    }

    // The server goes away (its drain ends the stream with UNAVAILABLE),
    // and a new one comes up on the same address.
    first.stop().await.unwrap();
    let second = start_on(addr).await;

    let mut after = Vec::new();
    for _ in 0..4 {
        after.push(watch.next_line().await);
    }
    assert!(
        after.iter().all(|line| line.contains(" london  min ")),
        "{after:?}"
    );
    let finished = watch.finish().await;
    assert_eq!(finished.code, Some(0));
    finished.assert_stderr_has("note: watch interrupted (UNAVAILABLE");
    finished.assert_stderr_has("note: watch resumed");
    second.stop().await.unwrap();
}
