//! The `quartet-database` binary as deployed: durability under SIGKILL, and a
//! clean exit on SIGTERM.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
use quartet_proto::database::v1::{
    CreatePersonRequest, ListPeopleRequest, Person, people_service_client::PeopleServiceClient,
};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
    time::timeout,
};

const DEADLINE: Duration = Duration::from_secs(60);

async fn spawn_server(data_dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quartet-database"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .env_remove("QUARTET_DATABASE_URL")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = timeout(DEADLINE, BufReader::new(stdout).lines().next_line())
        .await
        .expect("the server never announced itself")
        .unwrap()
        .unwrap();
    let addr = line
        .strip_prefix("database listening on ")
        .unwrap_or_else(|| panic!("{line:?}"));
    (child, format!("http://{addr}"))
}

fn signal(child: &Child, signal: Signal) {
    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, signal).unwrap();
}

async fn everyone(url: String) -> BTreeMap<String, Person> {
    let mut client = PeopleServiceClient::connect(url).await.unwrap();
    let mut people = BTreeMap::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_people(ListPeopleRequest {
                page_size: 1000,
                page_token: token,
                id_prefix: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        people.extend(
            page.people
                .into_iter()
                .map(|person| (person.id.clone(), person)),
        );
        if page.next_page_token.is_empty() {
            return people;
        }
        token = page.next_page_token;
    }
}

/// Concurrent writers; the server is killed with SIGKILL mid-flight; every write
/// it acknowledged is there after a restart on the same directory, intact.
#[tokio::test]
async fn every_acknowledged_write_survives_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_server(data.path()).await;

    let acknowledged: Arc<Mutex<Vec<Person>>> = Arc::default();
    let (enough, mut enough_reached) = tokio::sync::watch::channel(false);
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..16 {
        let mut client = PeopleServiceClient::connect(url.clone()).await.unwrap();
        let acknowledged = acknowledged.clone();
        let enough = enough.clone();
        writers.spawn(async move {
            for i in 0.. {
                let person = Person {
                    id: format!("w{writer:02}-{i:05}"),
                    name: format!("Writer {writer} record {i}"),
                    email: format!("w{writer}.{i}@example.com"),
                    age: Some(i % 150),
                    ..Person::default()
                };
                match client
                    .create_person(CreatePersonRequest {
                        person: Some(person),
                    })
                    .await
                {
                    Ok(stored) => {
                        let mut acknowledged = acknowledged.lock().unwrap();
                        acknowledged.push(stored.into_inner());
                        if acknowledged.len() >= 400 {
                            enough.send_replace(true);
                        }
                    }
                    // The server died under this call: not acknowledged.
                    Err(_) => return,
                }
            }
        });
    }
    timeout(DEADLINE, enough_reached.wait_for(|reached| *reached))
        .await
        .unwrap()
        .unwrap();
    signal(&child, Signal::SIGKILL);
    child.wait().await.unwrap();
    timeout(DEADLINE, writers.join_all())
        .await
        .expect("writers hung");

    let acknowledged = acknowledged.lock().unwrap().clone();
    let (mut restarted, url) = spawn_server(data.path()).await;
    let stored = everyone(url).await;
    for person in &acknowledged {
        assert_eq!(
            stored.get(&person.id),
            Some(person),
            "acknowledged write lost or changed"
        );
    }
    assert!(stored.len() >= acknowledged.len());
    signal(&restarted, Signal::SIGTERM);
    restarted.wait().await.unwrap();
}

#[tokio::test]
async fn sigterm_exits_zero_and_a_second_process_cannot_share_the_directory() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, _url) = spawn_server(data.path()).await;

    let second = Command::new(env!("CARGO_BIN_EXE_quartet-database"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env_remove("QUARTET_DATABASE_URL")
        .output()
        .await
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("in use by another process"), "{stderr}");

    signal(&child, Signal::SIGTERM);
    let status = timeout(DEADLINE, child.wait())
        .await
        .expect("no exit after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
