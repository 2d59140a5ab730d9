//! `quartet transform` against a live transform server: one text, or every
//! stdin line on one stream; and how a failed call ends the command.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use quartet_runtime::ServerOptions;

use common::{
    Process, quartet, quartet_at, run, run_with_stdin, stopped_server_url, transform_server,
};

#[tokio::test]
async fn transform_text_prints_the_answer() {
    let server = transform_server(ServerOptions::default()).await;
    let run = run(quartet_at(&server.url()).args(["transform", "upper", "straße"])).await;
    run.assert_printed("STRASSE\n");

    let words = common::run(
        quartet_at(&server.url()).args("transform reverse hola mundo".split_whitespace()),
    )
    .await;
    assert_eq!(words.stdout, "odnum aloh\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn json_output_is_one_object_per_answer() {
    let server = transform_server(ServerOptions::default()).await;
    let run =
        run(quartet_at(&server.url()).args("--output json transform lower ΣΑΣ".split_whitespace()))
            .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.json(), serde_json::json!({ "text": "σας" }));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn stdin_lines_go_through_one_stream_and_come_back_in_order() {
    let server = transform_server(ServerOptions::default()).await;
    let lines: Vec<String> = (0..2_000).map(|i| format!("línea {i} straße")).collect();
    // Mix line endings: the CLI strips both.
    let input: String = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            if i % 2 == 0 {
                format!("{line}\n")
            } else {
                format!("{line}\r\n")
            }
        })
        .collect();

    let run = run_with_stdin(
        quartet_at(&server.url()).args(["transform", "upper"]),
        input,
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let expected: Vec<String> = lines.iter().map(|line| line.to_uppercase()).collect();
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), expected);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn each_stdin_answer_is_printed_before_the_next_line_is_read() {
    let server = transform_server(ServerOptions::default()).await;
    let mut transform = Process::spawn(quartet_at(&server.url()).args(["transform", "upper"]));

    // An interactive user: type a line, read its answer, type the next.
    for word in ["uno", "dos", "tres"] {
        transform.write(format!("{word}\n")).await;
        assert_eq!(transform.next_line().await, word.to_uppercase());
    }
    assert_eq!(transform.finish().await.code, Some(0));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn stdin_that_is_not_utf8_fails_naming_the_line() {
    let server = transform_server(ServerOptions::default()).await;
    let run = run_with_stdin(
        quartet_at(&server.url()).args(["transform", "upper"]),
        b"fine\n\xff\xfe\n".to_vec(),
    )
    .await;
    run.assert_failed("cannot read stdin line 2");
    assert_eq!(run.stdout, "FINE\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_refused_call_exits_one_with_the_status_on_stderr() {
    let mut options = ServerOptions::default();
    options.limits.max_message_bytes = 64;
    let server = transform_server(options).await;
    let long = "x".repeat(100);
    let run = run(quartet_at(&server.url()).args(["transform", "upper", &long])).await;
    run.assert_failed("RESOURCE_EXHAUSTED: ");
    assert!(run.stdout.is_empty());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_server_exits_one_with_unavailable() {
    let url = stopped_server_url().await;

    let run = run(quartet().args([
        "--transform-addr",
        &url,
        "--timeout",
        "2s",
        "transform",
        "upper",
        "x",
    ]))
    .await;
    run.assert_failed("UNAVAILABLE: cannot connect");
}
