//! `quartet serve`: servers in the CLI's own process, announced on stdout,
//! called by the CLI itself, stopped with SIGTERM (exit 0).

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    time::timeout,
};

use quartet_e2e::{ServerProcess, Signal};

use common::{DEADLINE, every_listener_on_any_port, quartet, run};

/// `quartet serve ARGS...`, logging warnings only and with none of the
/// machine's backend settings (PostgreSQL, NATS, observations), once it has
/// announced every one of `names`.
async fn serve<S: AsRef<std::ffi::OsStr>>(args: &[S], names: &[&str]) -> ServerProcess {
    let mut command = quartet();
    command
        .arg("serve")
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("QUARTET_DATABASE_URL")
        .env_remove("QUARTET_NATS_URL")
        .env_remove("QUARTET_OBSERVATIONS");
    ServerProcess::start(command, names).await.unwrap()
}

/// Sends SIGTERM and expects a clean exit.
async fn stop(mut server: ServerProcess) {
    server.signal(Signal::SIGTERM).unwrap();
    assert_eq!(server.exit_code().await.unwrap(), Some(0));
}

#[tokio::test]
async fn serve_runs_transform_until_sigterm_then_exits_zero() {
    let server = serve(
        &["transform", "--transform-listen", "127.0.0.1:0"],
        &["transform"],
    )
    .await;
    let url = server.url("transform").unwrap();
    let answer = run(quartet().args(["--transform-addr", &url, "transform", "upper", "ok"])).await;
    assert_eq!(answer.stdout, "OK\n", "{}", answer.stderr);
    stop(server).await;
}

#[tokio::test]
async fn serve_runs_chat_until_sigterm_then_exits_zero() {
    let server = serve(&["chat", "--chat-listen", "127.0.0.1:0"], &["chat"]).await;
    let url = server.url("chat").unwrap();
    let answer = run(quartet().args(["--chat-addr", &url, "health", "--service", "chat"])).await;
    assert_eq!(answer.code, Some(0), "{}{}", answer.stdout, answer.stderr);
    assert!(
        answer.stdout.starts_with("chat http://"),
        "{}",
        answer.stdout
    );
    stop(server).await;
}

#[tokio::test]
async fn serve_all_runs_every_service() {
    let data = tempfile::tempdir().unwrap();
    let args = every_listener_on_any_port(data.path());
    let services = ["transform", "database", "weather", "chat"];
    let gateway = services.map(|service| format!("gateway {service}"));
    let mut names: Vec<&str> = services.to_vec();
    names.extend(gateway.iter().map(String::as_str));
    names.extend(["gateway chat-udp", "gateway web"]);
    let server = serve(&args, &names).await;

    let url = |service: &str| server.url(service).unwrap();
    let report = run(quartet().args([
        "--transform-addr",
        &url("transform"),
        "--database-addr",
        &url("database"),
        "--weather-addr",
        &url("weather"),
        "--chat-addr",
        &url("chat"),
        "health",
    ]))
    .await;
    assert_eq!(report.code, Some(0), "{}", report.stdout);
    assert_eq!(
        report.stdout.matches(" SERVING").count(),
        4,
        "{}",
        report.stdout
    );

    let answer = run(quartet()
        .args(["--weather-addr", &url("weather")])
        .args("weather get nairobi --metric pressure".split_whitespace()))
    .await;
    assert_eq!(answer.code, Some(0), "{}", answer.stderr);
    assert!(answer.stdout.contains("pressure     "), "{}", answer.stdout);

    // The gateway in front of them, as a telnet user sees it.
    let telnet = tokio::net::TcpStream::connect(server.addr("gateway transform").unwrap())
        .await
        .unwrap();
    let (read, mut write) = telnet.into_split();
    write.write_all(b"UPPER hola\n").await.unwrap();
    let mut lines = BufReader::new(read).lines();
    let upper = timeout(DEADLINE, lines.next_line()).await.unwrap().unwrap();
    assert_eq!(upper.as_deref(), Some("HOLA"));
    stop(server).await;
}

#[tokio::test]
async fn serve_refuses_a_bad_observations_file_before_serving() {
    let refused = run(quartet().args(
        "serve weather --weather-listen 127.0.0.1:0 --observations /no/such/file.csv"
            .split_whitespace(),
    ))
    .await;
    assert_eq!(refused.code, Some(1));
    refused.assert_stderr_has("cannot read observations from /no/such/file.csv");
}
