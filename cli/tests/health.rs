//! `quartet health`: grpc_health_probe's exit codes (0 SERVING, 2 connection
//! failed, 3 RPC failed, 4 NOT_SERVING) against a live server.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use quartet_runtime::{ServerOptions, ServingStatus};

use common::{ADDRESS_VARIABLES, quartet, quartet_at, run, stopped_server_url, transform_server};

#[tokio::test]
async fn serving_exits_zero() {
    let server = transform_server(ServerOptions::default()).await;
    let run = run(quartet_at(&server.url()).arg("health")).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    // Every known service is checked at its address (all this one server here).
    assert!(
        run.stdout
            .starts_with(&format!("transform {} SERVING\n", server.url())),
        "{}",
        run.stdout
    );
    assert_eq!(run.stdout.lines().count(), ADDRESS_VARIABLES.len());

    let named =
        common::run(quartet_at(&server.url()).args(["health", "--service", "transform"])).await;
    assert_eq!(named.code, Some(0), "{}", named.stderr);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn not_serving_exits_four() {
    let server = transform_server(ServerOptions::default()).await;
    server.health().set(
        "quartet.transform.v1.TransformService",
        ServingStatus::NotServing,
    );
    let run = run(quartet_at(&server.url())
        .args("--output json health --service transform".split_whitespace()))
    .await;
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["status"], "NOT_SERVING");
    assert_eq!(report["service"], "quartet.transform.v1.TransformService");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_failed_connection_exits_two() {
    let url = stopped_server_url().await;
    let run = run(quartet().args(["health", "--addr", &url, "--timeout", "2s"])).await;
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    assert!(run.stdout.contains("CONNECTION_FAILED"), "{}", run.stdout);
}

#[tokio::test]
async fn a_failed_rpc_exits_three() {
    let server = transform_server(ServerOptions::default()).await;
    let run = run(quartet_at(&server.url()).args([
        "health",
        "--addr",
        &server.url(),
        "--service",
        "no.such.Service",
    ]))
    .await;
    assert_eq!(run.code, Some(3), "{}", run.stdout);
    assert!(
        run.stdout.contains("RPC_FAILED (NOT_FOUND"),
        "{}",
        run.stdout
    );
    server.stop().await.unwrap();
}
