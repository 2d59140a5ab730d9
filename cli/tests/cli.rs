//! The `quartet` binary against live servers: what a user types and what a
//! script reads back (stdout, stderr, exit code).

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{fmt::Write as _, process::Stdio, time::Duration};

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

/// Every service address the CLI knows.
const ADDRESS_VARIABLES: [&str; 4] = [
    "QUARTET_TRANSFORM_ADDR",
    "QUARTET_DATABASE_ADDR",
    "QUARTET_WEATHER_ADDR",
    "QUARTET_CHAT_ADDR",
];

/// The CLI with every service address pointed at `server`, so nothing on the
/// machine's default ports leaks into a test.
fn quartet(server: &RunningServer) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quartet"));
    for variable in ADDRESS_VARIABLES {
        command.env(variable, server.url());
    }
    command
        .env_remove("QUARTET_OUTPUT")
        .env_remove("QUARTET_TIMEOUT")
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
        let run = run(quartet(&server).arg("health")).await;
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        // Every known service is checked at its address (all this one server here).
        assert!(
            run.stdout
                .starts_with(&format!("transform {} SERVING\n", server.url())),
            "{}",
            run.stdout
        );
        assert_eq!(run.stdout.lines().count(), ADDRESS_VARIABLES.len());

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

mod db {
    use super::*;

    async fn start_db(data_dir: &std::path::Path, addr: &str) -> RunningServer {
        let options = quartet_database::StoreOptions {
            data_dir: data_dir.to_owned(),
            database_url: None,
            database_url_file: None,
            change_retention: 1000,
        };
        // A server just stopped may still hold the store's file lock while
        // its last streams wind down: wait for it, with a deadline.
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let store = loop {
            match options.open().await {
                Ok(store) => break store,
                Err(error) => {
                    assert!(tokio::time::Instant::now() < deadline, "{error}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        quartet_database::server(ServerOptions::default(), Shutdown::new(), store)
            .bind(addr.parse().unwrap())
            .await
            .unwrap()
            .spawn()
            .unwrap()
    }

    fn db(server: &RunningServer) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_quartet"));
        command
            .env_remove("QUARTET_OUTPUT")
            .env("QUARTET_DATABASE_ADDR", server.url())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .arg("db");
        command
    }

    #[tokio::test]
    async fn crud_from_the_command_line() {
        let data = tempfile::tempdir().unwrap();
        let server = start_db(data.path(), "127.0.0.1:0").await;

        let created = run(db(&server).args([
            "create",
            "12345678-Z",
            "José Ñúñez",
            "--email",
            "jose@example.com",
        ]))
        .await;
        assert_eq!(created.code, Some(0), "{}", created.stderr);
        assert!(created.stdout.starts_with("ID "), "{}", created.stdout);
        assert!(created.stdout.contains("José Ñúñez"));

        let updated = run(db(&server).args([
            "--output",
            "json",
            "update",
            "12345678-Z",
            "--age",
            "41",
            "--expected-version",
            "1",
        ]))
        .await;
        let person: serde_json::Value = serde_json::from_str(updated.stdout.trim_end()).unwrap();
        assert_eq!(
            (person["age"].as_u64(), person["version"].as_u64()),
            (Some(41), Some(2))
        );
        assert_eq!(person["email"], "jose@example.com");

        let stale = run(db(&server).args([
            "update",
            "12345678-Z",
            "--clear-email",
            "--expected-version",
            "1",
        ]))
        .await;
        assert_eq!(stale.code, Some(1));
        assert!(
            stale.stderr.starts_with("error: FAILED_PRECONDITION: "),
            "{}",
            stale.stderr
        );

        let taken = run(db(&server).args(["create", "12345678-Z", "Otra"])).await;
        assert!(
            taken.stderr.starts_with("error: ALREADY_EXISTS: "),
            "{}",
            taken.stderr
        );

        let deleted = run(db(&server).args(["delete", "12345678-Z"])).await;
        assert_eq!(deleted.code, Some(0));
        let gone = run(db(&server).args(["get", "12345678-Z"])).await;
        assert_eq!(gone.code, Some(1));
        assert!(
            gone.stderr.starts_with("error: NOT_FOUND: "),
            "{}",
            gone.stderr
        );
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
        assert!(imported.stderr.contains("line 1203"), "{}", imported.stderr);
        assert!(imported.stderr.contains("person.id"), "{}", imported.stderr);

        let jsonl = files.path().join("people.jsonl");
        std::fs::write(&jsonl, "{\"id\":\"p0000\",\"name\":\"Renamed\"}\n{\"id\":\"new\",\"name\":\"New\",\"age\":3}\n").unwrap();
        let again = run(db(&server).args(["--output", "json", "import"]).arg(&jsonl)).await;
        assert_eq!(again.code, Some(0), "{}", again.stderr);
        let summary: serde_json::Value = serde_json::from_str(again.stdout.trim_end()).unwrap();
        assert_eq!(
            (summary["created"].as_u64(), summary["updated"].as_u64()),
            (Some(1), Some(1))
        );

        let listed = run(db(&server).args(["--output", "json", "list", "--prefix", "p00"])).await;
        let names: Vec<String> = listed
            .stdout
            .lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["name"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(names.len(), 100);
        assert_eq!(names[0], "Renamed");
        server.stop().await.unwrap();
    }

    #[tokio::test]
    async fn watch_prints_changes_and_resumes_after_the_server_restarts() {
        let data = tempfile::tempdir().unwrap();
        let server = start_db(data.path(), "127.0.0.1:0").await;
        let addr = server.local_addr().to_string();
        let mut watcher = db(&server)
            .args(["watch", "--since", "0"])
            .env("RUST_LOG", "off")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
        let created = run(db(&server).args(["create", "p1", "Ana"])).await;
        assert_eq!(created.code, Some(0), "{}", created.stderr);
        let first = timeout(DEADLINE, lines.next_line())
            .await
            .expect("no event")
            .unwrap()
            .unwrap();
        assert!(first.contains("CREATED") && first.contains("p1"), "{first}");

        server.stop().await.unwrap();
        let restarted = start_db(data.path(), &addr).await;
        run(db(&restarted).args(["create", "p2", "Bea"])).await;
        // It resumes after the last revision it printed: p2 next, p1 never again.
        let next = timeout(DEADLINE, lines.next_line())
            .await
            .expect("watch did not resume")
            .unwrap()
            .unwrap();
        assert!(next.contains("CREATED") && next.contains("p2"), "{next}");
        restarted.stop().await.unwrap();
    }
}

#[tokio::test]
async fn serve_all_runs_every_service() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quartet"))
        .args([
            "serve",
            "--transform-listen",
            "127.0.0.1:0",
            "--database-listen",
            "127.0.0.1:0",
            "--weather-listen",
            "127.0.0.1:0",
            "--chat-listen",
            "127.0.0.1:0",
            "--transform-text-listen",
            "127.0.0.1:0",
            "--database-text-listen",
            "127.0.0.1:0",
            "--weather-text-listen",
            "127.0.0.1:0",
            "--chat-text-listen",
            "127.0.0.1:0",
            "--chat-udp-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .env_remove("QUARTET_DATABASE_URL")
        .env_remove("QUARTET_NATS_URL")
        .env_remove("QUARTET_OBSERVATIONS")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut announced = Vec::new();
    for _ in 0..9 {
        announced.push(
            timeout(DEADLINE, lines.next_line())
                .await
                .unwrap()
                .unwrap()
                .unwrap(),
        );
    }
    let address = |service: &str| {
        let line = announced
            .iter()
            .find(|line| line.starts_with(service))
            .unwrap();
        format!("http://{}", line.rsplit(' ').next().unwrap())
    };
    let mut health = Command::new(env!("CARGO_BIN_EXE_quartet"));
    health.args([
        "--transform-addr",
        &address("transform"),
        "--database-addr",
        &address("database"),
        "--weather-addr",
        &address("weather"),
        "--chat-addr",
        &address("chat"),
        "health",
    ]);
    let report = run(&mut health).await;
    assert_eq!(report.code, Some(0), "{}", report.stdout);
    assert_eq!(
        report.stdout.matches(" SERVING").count(),
        4,
        "{}",
        report.stdout
    );

    let mut call = Command::new(env!("CARGO_BIN_EXE_quartet"));
    call.args([
        "--weather-addr",
        &address("weather"),
        "weather",
        "get",
        "nairobi",
        "--metric",
        "pressure",
    ]);
    let answer = run(&mut call).await;
    assert_eq!(answer.code, Some(0), "{}", answer.stderr);
    assert!(answer.stdout.contains("pressure     "), "{}", answer.stdout);

    // The gateway in front of them, as a telnet user sees it.
    let text = announced
        .iter()
        .find_map(|line| line.strip_prefix("gateway transform listening on "))
        .unwrap();
    let telnet = tokio::net::TcpStream::connect(text).await.unwrap();
    let (read, mut write) = telnet.into_split();
    write.write_all(b"UPPER hola\n").await.unwrap();
    let mut lines = BufReader::new(read).lines();
    let upper = timeout(DEADLINE, lines.next_line()).await.unwrap().unwrap();
    assert_eq!(upper.as_deref(), Some("HOLA"));

    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
    let status = timeout(DEADLINE, child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
}

mod security {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair,
    };

    #[tokio::test]
    async fn the_token_flag_authenticates_calls() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tokens"), "s3cret\n").unwrap();
        let mut options = ServerOptions::default();
        options.auth.auth_token_file = Some(dir.path().join("tokens"));
        let server = start(options).await;

        let refused = run(quartet(&server).args(["transform", "upper", "hi"])).await;
        assert_eq!(refused.code, Some(1));
        assert!(
            refused.stderr.starts_with("error: UNAUTHENTICATED: "),
            "{}",
            refused.stderr
        );
        let allowed =
            run(quartet(&server)
                .env("QUARTET_TOKEN", "s3cret")
                .args(["transform", "upper", "hi"]))
            .await;
        assert_eq!(
            (allowed.code, allowed.stdout.as_str()),
            (Some(0), "HI\n"),
            "{}",
            allowed.stderr
        );
        server.stop().await.unwrap();
    }

    #[tokio::test]
    async fn the_tls_flags_reach_a_mutual_tls_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(path("ca.pem"), ca.as_ref().pem()).unwrap();
        for (name, usage) in [
            ("server", ExtendedKeyUsagePurpose::ServerAuth),
            ("client", ExtendedKeyUsagePurpose::ClientAuth),
        ] {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
            params.extended_key_usages = vec![usage];
            std::fs::write(
                path(&format!("{name}.pem")),
                params.signed_by(&key, &ca).unwrap().pem(),
            )
            .unwrap();
            std::fs::write(path(&format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        let mut options = ServerOptions::default();
        options.tls.tls_cert = Some(path("server.pem"));
        options.tls.tls_key = Some(path("server.key"));
        options.tls.tls_client_ca = Some(path("ca.pem"));
        let server = start(options).await;
        let address = format!("https://127.0.0.1:{}", server.local_addr().port());

        let mut call = Command::new(env!("CARGO_BIN_EXE_quartet"));
        call.args([
            "--transform-addr",
            &address,
            "--tls-server-name",
            "localhost",
            "--tls-ca",
        ])
        .arg(path("ca.pem"))
        .arg("--tls-client-cert")
        .arg(path("client.pem"))
        .arg("--tls-client-key")
        .arg(path("client.key"))
        .args(["transform", "reverse", "abc"]);
        let answer = run(&mut call).await;
        assert_eq!(
            (answer.code, answer.stdout.as_str()),
            (Some(0), "cba\n"),
            "{}",
            answer.stderr
        );

        let mut anonymous = Command::new(env!("CARGO_BIN_EXE_quartet"));
        anonymous
            .args([
                "--transform-addr",
                &address,
                "--tls-server-name",
                "localhost",
                "--timeout",
                "5s",
                "--tls-ca",
            ])
            .arg(path("ca.pem"))
            .args(["transform", "reverse", "abc"]);
        let refused = run(&mut anonymous).await;
        assert_eq!(refused.code, Some(1), "{}", refused.stdout);
        server.stop().await.unwrap();
    }
}

mod weather {
    use super::*;
    use quartet_weather::WeatherOptions;

    pub(super) async fn start() -> RunningServer {
        start_on("127.0.0.1:0".parse().unwrap()).await
    }

    async fn start_on(addr: std::net::SocketAddr) -> RunningServer {
        quartet_weather::server(
            ServerOptions::default(),
            Shutdown::new(),
            &WeatherOptions::default(),
        )
        .unwrap()
        .bind(addr)
        .await
        .unwrap()
        .spawn()
        .unwrap()
    }

    /// The CLI pointed at a weather server, with no QUARTET_* settings leaking in.
    fn quartet_weather(server: &RunningServer) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_quartet"));
        command
            .env_remove("QUARTET_OUTPUT")
            .env_remove("QUARTET_TIMEOUT")
            .env_remove("QUARTET_TRANSFORM_ADDR")
            .env("QUARTET_WEATHER_ADDR", server.url())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    #[tokio::test]
    async fn stations_print_a_table_or_one_json_object_each() {
        let server = start().await;
        let table = run(quartet_weather(&server).args(["weather", "stations"])).await;
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
            run(quartet_weather(&server).args(["--output", "json", "weather", "stations"])).await;
        let stations: Vec<serde_json::Value> = json
            .stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
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
        let run = run(quartet_weather(&server).args([
            "--output",
            "json",
            "weather",
            "get",
            "madrid",
            "--metric",
            "min",
            "--metric",
            "pressure",
            "--at",
            "2024-06-01T12:00:00Z",
        ]))
        .await;
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let reading: serde_json::Value = serde_json::from_str(run.stdout.trim_end()).unwrap();
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
        let local = run(quartet_weather(&server).args([
            "weather",
            "get",
            "madrid",
            "--at",
            "2024-06-01 14:00",
        ]))
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
        let utc = run(quartet_weather(&server).args([
            "weather",
            "get",
            "madrid",
            "--at",
            "2024-06-01T12:00:00Z",
        ]))
        .await;
        assert_eq!(utc.stdout, local.stdout);
        server.stop().await.unwrap();
    }

    #[tokio::test]
    async fn refused_reads_exit_one_and_bad_times_exit_two() {
        let server = start().await;
        let unknown = run(quartet_weather(&server).args(["weather", "get", "atlantis"])).await;
        assert_eq!(unknown.code, Some(1));
        assert!(
            unknown.stderr.starts_with("error: NOT_FOUND: "),
            "{}",
            unknown.stderr
        );

        let too_fast =
            run(quartet_weather(&server).args(["weather", "watch", "madrid", "--every", "10ms"]))
                .await;
        assert_eq!(too_fast.code, Some(1));
        assert!(
            too_fast
                .stderr
                .starts_with("error: INVALID_ARGUMENT: interval"),
            "{}",
            too_fast.stderr
        );

        let bad_time =
            run(quartet_weather(&server).args(["weather", "get", "madrid", "--at", "soon"])).await;
        assert_eq!(bad_time.code, Some(2), "{}", bad_time.stderr);
        let bad_metric = run(
            quartet_weather(&server).args(["weather", "get", "madrid", "--metric", "humidity"])
        )
        .await;
        assert_eq!(bad_metric.code, Some(2), "{}", bad_metric.stderr);
        server.stop().await.unwrap();
    }

    #[tokio::test]
    async fn watch_prints_one_line_per_reading_with_units() {
        let server = start().await;
        let run = run(quartet_weather(&server).args([
            "weather", "watch", "tokyo", "--every", "100ms", "--count", "3", "--metric", "max",
            "--metric", "rain",
        ]))
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
        let mut child = quartet_weather(&first)
            .args([
                "weather", "watch", "london", "--every", "100ms", "--count", "6",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for _ in 0..2 {
            let line = timeout(DEADLINE, lines.next_line())
                .await
                .expect("no reading")
                .unwrap();
            assert!(line.unwrap().contains(" london  min "));
        }

        // The server goes away (its drain ends the stream with UNAVAILABLE),
        // and a new one comes up on the same address.
        first.stop().await.unwrap();
        let second = start_on(addr).await;

        let mut after = Vec::new();
        for _ in 0..4 {
            let line = timeout(DEADLINE, lines.next_line())
                .await
                .expect("the watch did not resume")
                .unwrap()
                .expect("the watch ended early");
            after.push(line);
        }
        assert!(
            after.iter().all(|line| line.contains(" london  min ")),
            "{after:?}"
        );
        let output = timeout(DEADLINE, child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(output.status.code(), Some(0));
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(
            stderr.contains("note: watch interrupted (UNAVAILABLE"),
            "{stderr}"
        );
        assert!(stderr.contains("note: watch resumed"), "{stderr}");
        second.stop().await.unwrap();
    }

    #[tokio::test]
    async fn serve_refuses_a_bad_observations_file_before_serving() {
        let output = timeout(
            DEADLINE,
            Command::new(env!("CARGO_BIN_EXE_quartet"))
                .args([
                    "serve",
                    "weather",
                    "--weather-listen",
                    "127.0.0.1:0",
                    "--observations",
                    "/no/such/file.csv",
                ])
                .output(),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("cannot read observations from /no/such/file.csv"),
            "{stderr}"
        );
    }
}

/// A telnet user on the gateway and a `quartet chat` user on gRPC share a room.
#[tokio::test]
async fn a_telnet_user_and_a_quartet_chat_user_talk_in_one_room() {
    use quartet_gateway::{Gateway, GatewayOptions, Protocol, UpstreamOptions};

    let config = quartet_chat::ChatConfig::default();
    let hub = std::sync::Arc::new(quartet_chat::RoomHub::new(config.hub_limits()));
    let chat = quartet_chat::server(
        ServerOptions::default(),
        Shutdown::new(),
        config,
        std::sync::Arc::new(quartet_chat::LocalBackplane::new(hub)),
    )
    .bind("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap()
    .spawn()
    .unwrap();
    let upstreams = UpstreamOptions {
        chat_addr: chat.url(),
        ..UpstreamOptions::default()
    };
    let gateway = Gateway::new(
        GatewayOptions::ephemeral(),
        upstreams,
        Shutdown::new(),
        quartet_runtime::ShutdownPolicy::default(),
        &quartet_runtime::Metrics::new(),
    )
    .bind("127.0.0.1".parse().unwrap())
    .await
    .unwrap()
    .spawn();

    // The telnet user joins first.
    let telnet = tokio::net::TcpStream::connect(gateway.address(Protocol::ChatTcp).unwrap())
        .await
        .unwrap();
    let (read, mut write) = telnet.into_split();
    let mut telnet_lines = BufReader::new(read).lines();
    let mut expect = async |line: &str| {
        let got = timeout(DEADLINE, telnet_lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got, line);
    };
    write
        .write_all(b"NICK tele\r\nJOIN sala\r\n")
        .await
        .unwrap();
    expect("OK nick tele").await;
    expect("OK joined sala as tele; here: tele").await;

    // The CLI user joins with piped stdin and says one line.
    let mut cli = Command::new(env!("CARGO_BIN_EXE_quartet"))
        .args(["--chat-addr", &chat.url(), "chat", "sala", "--nick", "cli"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut cli_in = cli.stdin.take().unwrap();
    let mut cli_out = BufReader::new(cli.stdout.take().unwrap()).lines();
    expect("* cli joined").await;
    cli_in.write_all(b"hola desde grpc\n").await.unwrap();
    expect("cli hola desde grpc").await;

    write.write_all(b"hola desde telnet\r\n").await.unwrap();
    let heard = timeout(DEADLINE, async {
        loop {
            let line = cli_out
                .next_line()
                .await
                .unwrap()
                .expect("the CLI ended early");
            if line.contains("hola desde telnet") {
                return line;
            }
        }
    })
    .await
    .expect("the CLI user never heard the telnet user");
    assert_eq!(heard, "<tele> hola desde telnet");

    drop(cli_in);
    let status = timeout(DEADLINE, cli.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
    expect("* cli left").await;
    gateway.stop().await;
    chat.stop().await.unwrap();
}

/// Runs `quartet --output json bench ARGS...` against `server` and parses the report.
async fn bench_json(server: &RunningServer, args: &[&str]) -> serde_json::Value {
    let result = run(quartet(server)
        .args(["--output", "json", "bench"])
        .args(args))
    .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    serde_json::from_str(result.stdout.trim()).unwrap()
}

#[tokio::test]
async fn bench_makes_exactly_the_requested_calls_and_reports_latencies() {
    let server = start(ServerOptions::default()).await;
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
    let server = start(ServerOptions::default()).await;
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
    let mut command = Command::new(quartet_binary);
    command
        .args(["--output", "json", "bench", "startup", "--runs", "2"])
        .args(["--idle", "0s", "--", quartet_binary, "serve", "transform"])
        .args(["--transform-listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let result = run(&mut command).await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    let report: serde_json::Value = serde_json::from_str(result.stdout.trim()).unwrap();
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
    let mut command = Command::new(env!("CARGO_BIN_EXE_quartet"));
    command
        .args(["bench", "startup", "--runs", "1", "--", "false"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let result = run(&mut command).await;
    assert_eq!(result.code, Some(1), "{}", result.stderr);
    assert!(
        result.stderr.contains("exited before announcing"),
        "{}",
        result.stderr
    );
}
