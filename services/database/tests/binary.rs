//! The `quartet-database` binary as deployed: durability under SIGKILL, and a
//! clean exit on SIGTERM.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex},
};

use quartet_e2e::{DEADLINE, ServerProcess, Signal};
use quartet_proto::database::v1::{
    CreatePersonRequest, ListPeopleRequest, Person, people_service_client::PeopleServiceClient,
};
use tokio::{process::Command, time::timeout};

async fn start(data_dir: &Path) -> ServerProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quartet-database"));
    command
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("QUARTET_DATABASE_URL");
    ServerProcess::start(command, &["database"]).await.unwrap()
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
    let mut server = start(data.path()).await;
    let url = server.url("database").unwrap();

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
    server.signal(Signal::SIGKILL).unwrap();
    assert_eq!(
        server.exit_code().await.unwrap(),
        None,
        "killed by the signal"
    );
    timeout(DEADLINE, writers.join_all())
        .await
        .expect("writers hung");

    let acknowledged = acknowledged.lock().unwrap().clone();
    let mut restarted = start(data.path()).await;
    let stored = everyone(restarted.url("database").unwrap()).await;
    for person in &acknowledged {
        assert_eq!(
            stored.get(&person.id),
            Some(person),
            "acknowledged write lost or changed"
        );
    }
    assert!(stored.len() >= acknowledged.len());
    restarted.signal(Signal::SIGTERM).unwrap();
    assert_eq!(restarted.exit_code().await.unwrap(), Some(0));
}

#[tokio::test]
async fn sigterm_exits_zero_and_a_second_process_cannot_share_the_directory() {
    let data = tempfile::tempdir().unwrap();
    let mut server = start(data.path()).await;

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

    server.signal(Signal::SIGTERM).unwrap();
    assert_eq!(server.exit_code().await.unwrap(), Some(0));
}

/// The PostgreSQL URL from a mounted Secret file: an empty file stops the start
/// with a message naming the file, before anything listens; giving the URL both
/// ways is a usage error (exit 2).
#[tokio::test]
async fn database_url_file_problems_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("url");
    std::fs::write(&url_file, "\n").unwrap();
    let run = |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_quartet-database"));
        command
            .args(["--listen", "127.0.0.1:0", "--database-url-file"])
            .arg(&url_file)
            .args(extra)
            .env_remove("QUARTET_DATABASE_URL")
            .env_remove("QUARTET_DATABASE_URL_FILE")
            .kill_on_drop(true);
        command.output()
    };

    let empty = timeout(DEADLINE, run(&[])).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&empty.stderr);
    assert_eq!(empty.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is empty"), "{stderr}");
    assert!(stderr.contains(url_file.to_str().unwrap()), "{stderr}");
    assert!(!String::from_utf8_lossy(&empty.stdout).contains("listening"));

    let both = timeout(DEADLINE, run(&["--database-url", "postgres://db/quartet"]))
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert_eq!(both.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}
