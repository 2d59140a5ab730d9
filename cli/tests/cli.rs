//! The `quartet` binary against live servers: what a user types and what a
//! script reads back (stdout, stderr, exit code).

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{process::Stdio, time::Duration};

use nix::{sys::signal::Signal, unistd::Pid};
use quartet_runtime::{RunningServer, ServerOptions, ServingStatus, Shutdown};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    process::Command,
    time::timeout,
};

const DEADLINE: Duration = Duration::from_secs(30);

async fn start(options: ServerOptions) -> RunningServer {
    quartet_transform::server(options, Shutdown::new())
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .spawn()
        .unwrap()
}

async fn start_chat() -> RunningServer {
    let config = quartet_chat::ChatConfig::default();
    let hub = std::sync::Arc::new(quartet_chat::RoomHub::new(config.hub_limits()));
    quartet_chat::server(
        ServerOptions::default(),
        Shutdown::new(),
        config,
        std::sync::Arc::new(quartet_chat::LocalBackplane::new(hub)),
    )
    .bind("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap()
    .spawn()
    .unwrap()
}

/// The CLI pointed at `server`, with no QUARTET_* settings leaking in.
fn quartet(server: &RunningServer) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quartet"));
    command
        .env_remove("QUARTET_OUTPUT")
        .env_remove("QUARTET_TIMEOUT")
        .env("QUARTET_TRANSFORM_ADDR", server.url())
        .env_remove("QUARTET_CHAT_ADDR")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run(command: &mut Command) -> Run {
    let output = timeout(DEADLINE, command.output())
        .await
        .expect("quartet hung")
        .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Runs with `input` on stdin.
async fn run_with_stdin(command: &mut Command, input: Vec<u8>) -> Run {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        stdin.write_all(&input).await.unwrap();
    });
    let output = timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("quartet hung")
        .unwrap();
    writer.await.unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[tokio::test]
async fn transform_text_prints_the_answer() {
    let server = start(ServerOptions::default()).await;
    let run = run(quartet(&server).args(["transform", "upper", "straße"])).await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "STRASSE\n"),
        "{}",
        run.stderr
    );

    let words = self::run(quartet(&server).args(["transform", "reverse", "hola", "mundo"])).await;
    assert_eq!(words.stdout, "odnum aloh\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn json_output_is_one_object_per_answer() {
    let server = start(ServerOptions::default()).await;
    let run = run(quartet(&server).args(["--output", "json", "transform", "lower", "ΣΑΣ"])).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let value: serde_json::Value = serde_json::from_str(run.stdout.trim_end()).unwrap();
    assert_eq!(value, serde_json::json!({ "text": "σας" }));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn stdin_lines_go_through_one_stream_and_come_back_in_order() {
    let server = start(ServerOptions::default()).await;
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
        quartet(&server).args(["transform", "upper"]),
        input.into_bytes(),
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let expected: Vec<String> = lines.iter().map(|line| line.to_uppercase()).collect();
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), expected);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn each_stdin_answer_is_printed_before_the_next_line_is_read() {
    let server = start(ServerOptions::default()).await;
    let mut child = quartet(&server)
        .args(["transform", "upper"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut answers = BufReader::new(child.stdout.take().unwrap()).lines();

    // An interactive user: type a line, read its answer, type the next.
    for word in ["uno", "dos", "tres"] {
        stdin
            .write_all(format!("{word}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
        let answer = timeout(DEADLINE, answers.next_line())
            .await
            .expect("answer held back");
        assert_eq!(answer.unwrap().unwrap(), word.to_uppercase());
    }
    drop(stdin);
    let status = timeout(DEADLINE, child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn stdin_that_is_not_utf8_fails_naming_the_line() {
    let server = start(ServerOptions::default()).await;
    let run = run_with_stdin(
        quartet(&server).args(["transform", "upper"]),
        b"fine\n\xff\xfe\n".to_vec(),
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("stdin line 2"), "{}", run.stderr);
    assert_eq!(run.stdout, "FINE\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_refused_call_exits_one_with_the_status_on_stderr() {
    let mut options = ServerOptions::default();
    options.limits.max_message_bytes = 64;
    let server = start(options).await;
    let long = "x".repeat(100);
    let run = run(quartet(&server).args(["transform", "upper", &long])).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.starts_with("error: RESOURCE_EXHAUSTED: "),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_server_exits_one_with_unavailable() {
    let server = start(ServerOptions::default()).await;
    let url = server.url();
    server.stop().await.unwrap();

    let mut command = Command::new(env!("CARGO_BIN_EXE_quartet"));
    command.args([
        "--transform-addr",
        &url,
        "--timeout",
        "2s",
        "transform",
        "upper",
        "x",
    ]);
    let run = run(&mut command).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.starts_with("error: UNAVAILABLE: cannot connect"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn usage_errors_exit_two() {
    let server = start(ServerOptions::default()).await;
    for args in [
        vec!["transform", "shout", "x"],
        vec!["--transform-addr", "not a url", "transform", "upper", "x"],
        vec!["health", "--service", "no.such.Service"],
        vec![],
    ] {
        let run = run(quartet(&server).args(&args)).await;
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
    }
    server.stop().await.unwrap();
}

mod health {
    use super::*;

    #[tokio::test]
    async fn serving_exits_zero() {
        let server = start(ServerOptions::default()).await;
        let chat = start_chat().await;
        let run = run(quartet(&server)
            .env("QUARTET_CHAT_ADDR", chat.url())
            .arg("health"))
        .await;
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(
            run.stdout,
            format!(
                "transform {} SERVING\nchat {} SERVING\n",
                server.url(),
                chat.url()
            )
        );
        chat.stop().await.unwrap();

        let named = self::run(quartet(&server).args(["health", "--service", "transform"])).await;
        assert_eq!(named.code, Some(0), "{}", named.stderr);
        server.stop().await.unwrap();
    }

    #[tokio::test]
    async fn not_serving_exits_four() {
        let server = start(ServerOptions::default()).await;
        server.health().set(
            "quartet.transform.v1.TransformService",
            ServingStatus::NotServing,
        );
        let run =
            run(quartet(&server).args(["--output", "json", "health", "--service", "transform"]))
                .await;
        assert_eq!(run.code, Some(4), "{}", run.stderr);
        let report: serde_json::Value = serde_json::from_str(run.stdout.trim_end()).unwrap();
        assert_eq!(report["status"], "NOT_SERVING");
        assert_eq!(report["service"], "quartet.transform.v1.TransformService");
        server.stop().await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_connection_exits_two() {
        let server = start(ServerOptions::default()).await;
        let url = server.url();
        server.stop().await.unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_quartet"));
        command.args(["health", "--addr", &url, "--timeout", "2s"]);
        let run = run(&mut command).await;
        assert_eq!(run.code, Some(2), "{}", run.stdout);
        assert!(run.stdout.contains("CONNECTION_FAILED"), "{}", run.stdout);
    }

    #[tokio::test]
    async fn a_failed_rpc_exits_three() {
        let server = start(ServerOptions::default()).await;
        let run = run(quartet(&server).args([
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
}

#[tokio::test]
async fn serve_runs_transform_until_sigterm_then_exits_zero() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quartet"))
        .args(["serve", "transform", "--transform-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let announced = timeout(DEADLINE, lines.next_line())
        .await
        .expect("serve never announced")
        .unwrap()
        .unwrap();
    let addr = announced
        .strip_prefix("transform listening on ")
        .expect(&announced)
        .to_owned();

    let mut call = Command::new(env!("CARGO_BIN_EXE_quartet"));
    call.args([
        "--transform-addr",
        &format!("http://{addr}"),
        "transform",
        "upper",
        "ok",
    ]);
    let answer = run(&mut call).await;
    assert_eq!(answer.stdout, "OK\n", "{}", answer.stderr);

    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
    let status = timeout(DEADLINE, child.wait())
        .await
        .expect("no exit after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn serve_runs_chat_until_sigterm_then_exits_zero() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quartet"))
        .args(["serve", "chat", "--chat-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .env_remove("QUARTET_NATS_URL")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let announced = timeout(DEADLINE, lines.next_line())
        .await
        .expect("serve never announced")
        .unwrap()
        .unwrap();
    let addr = announced
        .strip_prefix("chat listening on ")
        .expect(&announced)
        .to_owned();

    let mut check = Command::new(env!("CARGO_BIN_EXE_quartet"));
    check.args([
        "--chat-addr",
        &format!("http://{addr}"),
        "health",
        "--service",
        "chat",
    ]);
    let answer = run(&mut check).await;
    assert_eq!(answer.code, Some(0), "{}{}", answer.stdout, answer.stderr);
    assert!(
        answer.stdout.starts_with("chat http://"),
        "{}",
        answer.stdout
    );

    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
    let status = timeout(DEADLINE, child.wait())
        .await
        .expect("no exit after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn completions_are_generated_for_bash() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quartet"));
    command.args(["completions", "bash"]);
    let run = run(&mut command).await;
    assert_eq!(run.code, Some(0));
    assert!(
        run.stdout.contains("_quartet()"),
        "{}",
        &run.stdout[..run.stdout.len().min(200)]
    );
    assert!(run.stdout.contains("transform"));
}
