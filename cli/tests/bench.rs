//! `quartet bench`: exactly the calls asked for, failures counted by status
//! code, and the start-up probe.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use quartet_database::listing::ListQuery;
use quartet_runtime::{RunningServer, ServerOptions, Shutdown};

use common::{DEADLINE, quartet, quartet_at, run, transform_server};

/// Runs `quartet --output json bench ARGS...` against `server` and parses the report.
async fn bench_json(server: &RunningServer, args: &[&str]) -> serde_json::Value {
    let result = run(quartet_at(&server.url())
        .args(["--output", "json", "bench"])
        .args(args))
    .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    result.json()
}

#[tokio::test]
async fn bench_makes_exactly_the_requested_calls_and_reports_latencies() {
    let server = transform_server(ServerOptions::default()).await;
    for scenario in ["transform", "transform-stream"] {
        let report = bench_json(
            &server,
            &[
                scenario,
                "--concurrency",
                "4",
                "--requests",
                "200",
                "--duration",
                "30s",
                "--warmup",
                "0s",
            ],
        )
        .await;
        assert_eq!(report["scenario"], scenario);
        assert_eq!(report["ok"], 200, "{report}");
        assert_eq!(report["errors"], serde_json::json!({}), "{report}");
        assert!(report["per_second"].as_f64().unwrap() > 0.0, "{report}");
        let latency = &report["latency_ms"];
        let (p50, p99, max) = (
            latency["p50"].as_f64().unwrap(),
            latency["p99"].as_f64().unwrap(),
            latency["max"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{report}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bench_counts_failed_calls_by_status_code() {
    // A transform server has no weather service: every call is UNIMPLEMENTED.
    let server = transform_server(ServerOptions::default()).await;
    let report = bench_json(
        &server,
        &[
            "weather-get",
            "--concurrency",
            "2",
            "--requests",
            "50",
            "--warmup",
            "0s",
        ],
    )
    .await;
    assert_eq!(report["ok"], 0, "{report}");
    assert_eq!(
        report["errors"],
        serde_json::json!({"UNIMPLEMENTED": 50}),
        "{report}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bench_startup_times_a_server_from_spawn_to_serving() {
    let quartet_binary = env!("CARGO_BIN_EXE_quartet");
    let result = run(quartet()
        .args("--output json bench startup --runs 2".split_whitespace())
        .args(["--idle", "0s", "--", quartet_binary, "serve", "transform"])
        .args(["--transform-listen", "127.0.0.1:0"]))
    .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    let report = result.json();
    let serving = report["serving_ms"].as_array().unwrap();
    assert_eq!(serving.len(), 2, "{report}");
    for value in serving {
        let millis = value.as_f64().unwrap();
        assert!(
            millis > 0.0 && millis < DEADLINE.as_secs_f64() * 1000.0,
            "{report}"
        );
    }
    for value in report["idle_rss_mib"].as_array().unwrap() {
        assert!(value.as_f64().unwrap() > 1.0, "{report}");
    }
}

#[tokio::test]
async fn bench_startup_fails_when_the_server_never_announces_itself() {
    let result = run(quartet().args("bench startup --runs 1 -- false".split_whitespace())).await;
    assert_eq!(result.code, Some(1), "{}", result.stderr);
    result.assert_stderr_has("exited before announcing");
}

#[tokio::test]
async fn bench_db_update_commits_every_call_at_the_version_it_expects() {
    let dir = tempfile::tempdir().unwrap();
    let store = quartet_database::StoreOptions {
        data_dir: dir.path().to_owned(),
        database_url: None,
        database_url_file: None,
        change_retention: 1000,
    }
    .open()
    .await
    .unwrap();
    let server = common::serve(
        quartet_database::server(
            ServerOptions::default(),
            Shutdown::new(),
            quartet_database::PeopleHandler::new(store.clone()),
        ),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let report = bench_json(
        &server,
        &[
            "db-update",
            "--concurrency",
            "4",
            "--requests",
            "100",
            "--duration",
            "30s",
            "--warmup",
            "0s",
        ],
    )
    .await;
    assert_eq!(report["scenario"], "db-update");
    assert_eq!(report["ok"], 100, "{report}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");
    // One record per worker, created at version 1; every counted call bumped
    // one of them once, at the version it expected.
    let page = store
        .list(&ListQuery {
            prefix: "bench-".into(),
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(page.people.len(), 4, "{page:?}");
    let bumps: u64 = page.people.iter().map(|person| person.version - 1).sum();
    assert_eq!(bumps, 100, "{page:?}");
    assert!(
        page.people
            .iter()
            .all(|person| person.fields.name.starts_with("Bench Mark ")),
        "{page:?}"
    );
    server.stop().await.unwrap();
}
