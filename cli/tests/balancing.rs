//! Calls spread over every replica, with real processes on loopback: three
//! transform replicas and two database replicas (on PostgreSQL) behind one
//! gateway configured with lists. Every replica serves its share; a replica
//! killed with SIGKILL mid-run costs no line; a replica started later on the
//! list's spare address gets calls within one re-resolution interval.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use quartet_e2e::{DEADLINE, ServerProcess, Signal, external::TestSchema};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::TcpStream,
    process::Command,
    task::JoinSet,
    time::{Instant, timeout},
};

/// How often the gateway re-resolves and health-checks ejected endpoints here.
const INTERVAL: Duration = Duration::from_secs(1);

fn quartet() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quartet"));
    command.env_remove("QUARTET_OUTPUT");
    command
}

/// A `quartet serve transform` replica on `listen`, with its own metrics port.
async fn transform_replica(listen: &str) -> ServerProcess {
    let mut command = quartet();
    command.args(["serve", "transform", "--transform-listen", listen]);
    command.args(["--metrics-listen", "127.0.0.1:0"]);
    ServerProcess::start(command, &["transform", "metrics"])
        .await
        .unwrap()
}

async fn database_replica(database_url: &str) -> ServerProcess {
    let mut command = quartet();
    command.args(["serve", "database", "--database-listen", "127.0.0.1:0"]);
    command.args([
        "--database-url",
        database_url,
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    ServerProcess::start(command, &["database", "metrics"])
        .await
        .unwrap()
}

/// A `(grpc_method, value)` sample of `name` from a replica's /metrics.
async fn calls_served(replica: &ServerProcess, method: &str) -> f64 {
    let addr = replica.addr("metrics").unwrap().to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    let mut reader = BufReader::new(stream);
    while reader.read_line(&mut body).await.unwrap() > 0 {}
    body.lines()
        .filter(|line| {
            line.starts_with("grpc_server_handled_total{")
                && line.contains(&format!("grpc_method=\"{method}\""))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// One text connection: sends `lines` transform lines one at a time and
/// checks each answer; returns how many failed.
async fn transform_lines(
    addr: String,
    tag: usize,
    lines: usize,
    answered: Arc<AtomicUsize>,
) -> usize {
    let stream = TcpStream::connect(&addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut answers = BufReader::new(read).lines();
    let mut failed = 0;
    for line in 0..lines {
        write
            .write_all(format!("UPPER c{tag}l{line}\n").as_bytes())
            .await
            .unwrap();
        let answer = timeout(DEADLINE, answers.next_line())
            .await
            .expect("an answer hung")
            .unwrap()
            .unwrap();
        if answer != format!("C{tag}L{line}") {
            failed += 1;
        }
        answered.fetch_add(1, Ordering::Relaxed);
    }
    write.write_all(b"QUIT\n").await.unwrap();
    while answers.next_line().await.unwrap().is_some() {}
    failed
}

/// `connections` text connections of `lines` lines each, at once; counts the
/// lines answered in `answered` as they come. Returns how many failed.
async fn load_counted(
    addr: String,
    first_tag: usize,
    connections: usize,
    lines: usize,
    answered: Arc<AtomicUsize>,
) -> usize {
    let mut clients = JoinSet::new();
    for tag in first_tag..first_tag + connections {
        clients.spawn(transform_lines(addr.clone(), tag, lines, answered.clone()));
    }
    clients.join_all().await.into_iter().sum()
}

async fn load(addr: &str, first_tag: usize, connections: usize, lines: usize) -> usize {
    load_counted(
        addr.to_owned(),
        first_tag,
        connections,
        lines,
        Arc::default(),
    )
    .await
}

/// Asks one text line of the database protocol and returns its answer.
async fn ask(addr: &str, line: &str) -> String {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    let mut answers = BufReader::new(read).lines();
    timeout(DEADLINE, answers.next_line())
        .await
        .expect("no answer")
        .unwrap()
        .unwrap()
}

/// The gateway, given both lists, re-resolving every [`INTERVAL`].
async fn gateway(transforms: &[String], databases: &[String]) -> ServerProcess {
    let mut gateway = quartet();
    gateway
        .args(["--transform-addr", &transforms.join(",")])
        .args(["--database-addr", &databases.join(",")])
        .args(["--resolve-interval", "1s"])
        .args(["serve", "gateway"])
        .args(["--transform-text-listen", "127.0.0.1:0"])
        .args(["--database-text-listen", "127.0.0.1:0"])
        .args(["--weather-text-listen", "off", "--chat-text-listen", "off"])
        .args(["--chat-udp-listen", "off", "--web-listen", "off"]);
    ServerProcess::start(gateway, &["gateway transform", "gateway database"])
        .await
        .unwrap()
}

/// Writes through the gateway are read back through it, each call going to
/// either database replica: both serve the same people.
async fn both_databases_serve_one_store(gateway: &ServerProcess, databases: &[ServerProcess]) {
    let db = gateway.addr("gateway database").unwrap().to_owned();
    for i in 0..20 {
        assert_eq!(
            ask(&db, &format!("ALTA b{i} Bea")).await,
            format!("OK b{i} 1 Bea")
        );
    }
    for i in 0..20 {
        assert_eq!(
            ask(&db, &format!("CONSULTA b{i}")).await,
            format!("OK b{i} 1 Bea")
        );
    }
    let mut calls = Vec::new();
    for replica in databases {
        calls.push(
            calls_served(replica, "CreatePerson").await + calls_served(replica, "GetPerson").await,
        );
    }
    assert!(
        calls.iter().all(|calls| *calls >= 8.0),
        "calls per replica, of 40: {calls:?}"
    );
}

#[tokio::test]
async fn calls_spread_over_every_replica_survive_a_kill_and_reach_a_newcomer() {
    let Some(schema) = TestSchema::create("balancing over replicas").await else {
        return;
    };
    // The fourth replica's address is on the list from the start: it is
    // refused (and out of rotation) until the replica comes up there.
    let spare = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut transforms = Vec::new();
    for _ in 0..3 {
        transforms.push(transform_replica("127.0.0.1:0").await);
    }
    let databases = [
        database_replica(&schema.url).await,
        database_replica(&schema.url).await,
    ];
    let mut transform_list: Vec<String> = transforms
        .iter()
        .map(|replica| replica.url("transform").unwrap())
        .collect();
    transform_list.push(format!("http://{spare}"));
    let database_list: Vec<String> = databases
        .iter()
        .map(|replica| replica.url("database").unwrap())
        .collect();

    let gateway = gateway(&transform_list, &database_list).await;
    let text = gateway.addr("gateway transform").unwrap().to_owned();

    // 3,000 lines on 60 connections: each connection's lines ride one stream,
    // and the streams spread over the three live replicas.
    assert_eq!(load(&text, 0, 60, 50).await, 0, "every line is answered");
    let mut served = Vec::new();
    for replica in &transforms {
        served.push(calls_served(replica, "TransformStream").await);
    }
    let total: f64 = served.iter().sum();
    // About 50 streams, each placed by the less loaded of two replicas drawn
    // at random, and at the start all are equally (un)loaded: a share is
    // close to binomial (mean 1/3, standard deviation about 0.07), so a floor
    // of 20% failed about one run in 25 (9 of 49 in CI once). A tenth is
    // three deviations below the mean and still far above a starved replica.
    for (replica, calls) in served.iter().enumerate() {
        assert!(
            *calls >= 0.1 * total,
            "replica {replica} served {calls} of {total} calls: {served:?}"
        );
    }

    // SIGKILL one replica while 30 connections are mid-way: the lines it
    // held are sent again elsewhere, and every line after that succeeds.
    let answered = Arc::new(AtomicUsize::new(0));
    let running = tokio::spawn(load_counted(text.clone(), 100, 30, 100, answered.clone()));
    let deadline = Instant::now() + DEADLINE;
    while answered.load(Ordering::Relaxed) < 1_000 {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    transforms[0].signal(Signal::SIGKILL).unwrap();
    assert_eq!(running.await.unwrap(), 0, "no line failed across the kill");
    assert_eq!(load(&text, 200, 30, 20).await, 0);

    // A fourth replica on the spare address gets calls within one interval.
    let fourth = transform_replica(&spare.to_string()).await;
    let started = Instant::now();
    let mut tag = 300;
    while calls_served(&fourth, "TransformStream").await < 1.0 {
        assert_eq!(load(&text, tag, 10, 5).await, 0);
        tag += 10;
        assert!(
            started.elapsed() < DEADLINE,
            "the fourth replica never got a call"
        );
    }
    assert!(
        started.elapsed() < INTERVAL * 2 + Duration::from_secs(2),
        "the fourth replica waited {:?}",
        started.elapsed()
    );

    both_databases_serve_one_store(&gateway, &databases).await;
    drop(gateway);
    drop(databases);
    schema.drop_schema().await.unwrap();
}
