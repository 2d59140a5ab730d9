//! The command line itself, before any command runs: a line that cannot work
//! exits 2, and shell completion scripts are generated.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use quartet_runtime::ServerOptions;

use common::{quartet, quartet_at, run, transform_server};

#[tokio::test]
async fn usage_errors_exit_two() {
    let server = transform_server(ServerOptions::default()).await;
    for args in [
        vec!["transform", "shout", "x"],
        vec!["--transform-addr", "not a url", "transform", "upper", "x"],
        vec!["health", "--service", "no.such.Service"],
        vec![],
    ] {
        let run = run(quartet_at(&server.url()).args(&args)).await;
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn completions_are_generated_for_bash() {
    let run = run(quartet().args(["completions", "bash"])).await;
    assert_eq!(run.code, Some(0));
    assert!(
        run.stdout.contains("_quartet()"),
        "{}",
        &run.stdout[..run.stdout.len().min(200)]
    );
    assert!(run.stdout.contains("transform"));
}
