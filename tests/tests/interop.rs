//! Interoperability with an independent gRPC implementation (grpcio, the gRPC C
//! core): health as a Kubernetes gRPC probe asks it, and a client that learns
//! everything from server reflection, as grpcurl does.
//!
//! Needs python3 with `tests/interop/requirements.txt` installed (`.ci/run`
//! installs it). Without it the test prints a skip line, except under `CI=true`,
//! where a missing stack is a failure: CI must not skip silently.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, process::Stdio, time::Duration};

use quartet_runtime::{ServerOptions, Shutdown};
use quartet_transform::TransformHandler;
use tokio::{process::Command, time::timeout};

const DEADLINE: Duration = Duration::from_secs(60);

async fn grpcio_available() -> bool {
    let probe = Command::new("python3")
        .args([
            "-c",
            "import grpc, grpc_health.v1.health_pb2, grpc_reflection",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    matches!(probe, Ok(status) if status.success())
}

#[tokio::test]
async fn a_reflection_only_grpcio_client_checks_health_and_calls_transform() {
    if !grpcio_available().await {
        quartet_e2e::external::skip(
            "interop test",
            "python3 with grpcio not found (pip install -r tests/interop/requirements.txt)",
        );
        return;
    }
    let handler = TransformHandler::default();
    let server = quartet_transform::server(ServerOptions::default(), Shutdown::new(), handler)
        .spawn_on("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/reflection_client.py");
    let output = timeout(
        DEADLINE,
        Command::new("python3")
            .arg(script)
            .arg(server.local_addr().to_string())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the grpcio client hung")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "grpcio client failed: {stderr}");

    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["health"], "SERVING", "{seen}");
    assert_eq!(seen["service_health"], "SERVING", "{seen}");
    assert_eq!(
        seen["services"],
        serde_json::json!([
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
            "quartet.transform.v1.TransformService",
        ])
    );
    assert_eq!(seen["upper"], "STRASSE");
    assert_eq!(seen["unspecified"], "INVALID_ARGUMENT");
    assert_eq!(seen["stream_in_order"], true);
    assert_eq!(
        seen["documented"], true,
        "proto comments should reach reflection clients"
    );
    server.stop().await.unwrap();
}
