//! `quartet db` against a live people database on the embedded store: the
//! one-call commands, import, and a watch that resumes after a restart.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{fmt::Write as _, path::Path, time::Duration};

use quartet_runtime::{RunningServer, ServerOptions, Shutdown};
use tokio::process::Command;

use common::{DEADLINE, Process, quartet_at, run, serve};

async fn start_db(data_dir: &Path, addr: &str) -> RunningServer {
    let options = quartet_database::StoreOptions {
        data_dir: data_dir.to_owned(),
        database_url: None,
        database_url_file: None,
        change_retention: 1000,
    };
    // A server just stopped may still hold the store's file lock while
    // its last streams wind down: wait for it, with a deadline.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let handler = loop {
        match quartet_database::handler(&options).await {
            Ok(handler) => break handler,
            Err(error) => {
                assert!(tokio::time::Instant::now() < deadline, "{error}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let server = quartet_database::server(ServerOptions::default(), Shutdown::new(), handler);
    serve(server, addr.parse().unwrap()).await
}

/// `quartet db` pointed at `server`.
fn db(server: &RunningServer) -> Command {
    let mut command = quartet_at(&server.url());
    command.arg("db");
    command
}

#[tokio::test]
async fn crud_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let server = start_db(data.path(), "127.0.0.1:0").await;

    let created = run(db(&server)
        .args(["create", "12345678-Z", "José Ñúñez"])
        .args(["--email", "jose@example.com"]))
    .await;
    assert_eq!(created.code, Some(0), "{}", created.stderr);
    assert!(created.stdout.starts_with("ID "), "{}", created.stdout);
    assert!(created.stdout.contains("José Ñúñez"));

    let updated = run(db(&server)
        .args("--output json update 12345678-Z --age 41 --expected-version 1".split_whitespace()))
    .await;
    let person = updated.json();
    assert_eq!(
        (person["age"].as_u64(), person["version"].as_u64()),
        (Some(41), Some(2))
    );
    assert_eq!(person["email"], "jose@example.com");

    let stale =
        run(db(&server)
            .args("update 12345678-Z --clear-email --expected-version 1".split_whitespace()))
        .await;
    stale.assert_failed("FAILED_PRECONDITION: ");

    let taken = run(db(&server).args(["create", "12345678-Z", "Otra"])).await;
    taken.assert_failed("ALREADY_EXISTS: ");

    let deleted = run(db(&server).args(["delete", "12345678-Z"])).await;
    assert_eq!(deleted.code, Some(0));
    let gone = run(db(&server).args(["get", "12345678-Z"])).await;
    gone.assert_failed("NOT_FOUND: ");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn import_reads_csv_and_json_lines_and_reports_what_failed() {
    let data = tempfile::tempdir().unwrap();
    let server = start_db(data.path(), "127.0.0.1:0").await;
    let files = tempfile::tempdir().unwrap();
    let csv = files.path().join("people.csv");
    let mut rows = String::from("id,name,email,age\n");
    for i in 0..1200 {
        writeln!(rows, "p{i:04},Person {i},p{i}@example.com,{}", i % 100).unwrap();
    }
    rows.push_str("bad id,Nobody,,\n");
    rows.push_str("p9999,Nine,,not-a-number\n");
    std::fs::write(&csv, rows).unwrap();

    let imported = run(db(&server).arg("import").arg(&csv)).await;
    assert_eq!(
        imported.code,
        Some(1),
        "failures make the exit code 1: {}",
        imported.stderr
    );
    assert_eq!(
        imported.stdout,
        "imported: 1200 created, 0 updated, 2 failed\n"
    );
    imported.assert_stderr_has("line 1203");
    imported.assert_stderr_has("person.id");

    let jsonl = files.path().join("people.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\":\"p0000\",\"name\":\"Renamed\"}\n{\"id\":\"new\",\"name\":\"New\",\"age\":3}\n",
    )
    .unwrap();
    let again = run(db(&server).args(["--output", "json", "import"]).arg(&jsonl)).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    let summary = again.json();
    assert_eq!(
        (summary["created"].as_u64(), summary["updated"].as_u64()),
        (Some(1), Some(1))
    );

    let listed = run(db(&server).args("--output json list --prefix p00".split_whitespace())).await;
    let people = listed.json_lines();
    assert_eq!(people.len(), 100);
    assert_eq!(people[0]["name"], "Renamed");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn watch_prints_changes_and_resumes_after_the_server_restarts() {
    let data = tempfile::tempdir().unwrap();
    let server = start_db(data.path(), "127.0.0.1:0").await;
    let addr = server.local_addr().to_string();
    let mut watcher = Process::spawn(
        db(&server)
            .args(["watch", "--since", "0"])
            .env("RUST_LOG", "off"),
    );
    let created = run(db(&server).args(["create", "p1", "Ana"])).await;
    assert_eq!(created.code, Some(0), "{}", created.stderr);
    let first = watcher.next_line().await;
    assert!(first.contains("CREATED") && first.contains("p1"), "{first}");

    server.stop().await.unwrap();
    let restarted = start_db(data.path(), &addr).await;
    run(db(&restarted).args(["create", "p2", "Bea"])).await;
    // It resumes after the last revision it printed: p2 next, p1 never again.
    let next = watcher.next_line().await;
    assert!(next.contains("CREATED") && next.contains("p2"), "{next}");
    restarted.stop().await.unwrap();
}
