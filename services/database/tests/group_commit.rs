//! Group commit, shown: concurrent writes share transactions (the batch-size
//! histogram sees batches larger than one), and a write refused inside a batch
//! leaves its batchmates acknowledged and stored, on both stores.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::sync::Arc;

use harness::Backend;
use quartet_database::{
    DatabaseError, Patch, PeopleStore, WriteOp,
    person::{NewPerson, PersonFields},
    store::{postgres::PostgresBackend, redb::RedbBackend},
};
use quartet_runtime::Metrics;
use tokio::task::JoinSet;

fn person(id: &str) -> NewPerson {
    NewPerson::new(
        id.to_owned(),
        PersonFields {
            name: format!("Person {id}"),
            email: None,
            age: None,
        },
    )
    .unwrap()
}

/// A histogram sample from the registry, by its series name.
fn sample(metrics: &Metrics, series: &str) -> f64 {
    metrics
        .encode()
        .lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or_else(|| panic!("{series} is not in the scrape"))
}

async fn concurrent_writes_share_transactions(backend: Backend) {
    let store = backend.options(1000).open().await.unwrap();
    let metrics = Metrics::new();
    store.register_metrics(&metrics);
    let mut writes = JoinSet::new();
    for i in 0..400 {
        let store: PeopleStore = store.clone();
        writes.spawn(async move { store.create(person(&format!("g{i}"))).await });
    }
    for created in writes.join_all().await {
        created.unwrap();
    }
    let writes = sample(&metrics, "quartet_database_commit_batch_size_sum");
    let commits = sample(&metrics, "quartet_database_commit_batch_size_count");
    let single = sample(
        &metrics,
        "quartet_database_commit_batch_size_bucket{le=\"1.0\"}",
    );
    assert!(
        (writes - 400.0).abs() < 0.5,
        "every write was committed once: {writes}"
    );
    assert!(
        commits < writes,
        "400 concurrent writes took {commits} commits: none was shared"
    );
    assert!(single < commits, "no batch held more than one write");
    drop(store);
    backend.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_transactions_on_the_embedded_store() {
    concurrent_writes_share_transactions(Backend::redb()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_transactions_on_postgres() {
    if let Some(backend) = Backend::postgres().await {
        concurrent_writes_share_transactions(backend).await;
    }
}

/// One batch, applied straight to the backend: good writes around refused
/// ones.
async fn a_refused_write_leaves_its_batchmates_stored(
    backend: Arc<dyn quartet_database::StoreBackend>,
) {
    backend
        .apply(vec![
            WriteOp::Create(person("taken")),
            WriteOp::Create(person("old")),
        ])
        .await
        .unwrap();
    let batch = vec![
        WriteOp::Create(person("a")),
        WriteOp::Create(person("taken")),
        WriteOp::Update {
            id: "old".into(),
            patch: Patch {
                name: Some("Wrong Version".into()),
                ..Patch::default()
            },
            expected_version: Some(7),
        },
        WriteOp::Delete {
            id: "nobody".into(),
            expected_version: None,
        },
        WriteOp::Create(person("b")),
    ];
    let results = backend.apply(batch).await.unwrap();
    assert_eq!(results.len(), 5);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(DatabaseError::AlreadyExists(_))),
        "{:?}",
        results[1]
    );
    assert!(
        matches!(results[2], Err(DatabaseError::VersionMismatch { .. })),
        "{:?}",
        results[2]
    );
    assert!(
        matches!(results[3], Err(DatabaseError::NotFound(_))),
        "{:?}",
        results[3]
    );
    assert!(results[4].is_ok(), "{:?}", results[4]);
    // The acknowledged writes are stored, and the refused ones changed nothing.
    assert_eq!(backend.get("a").await.unwrap().fields.name, "Person a");
    assert_eq!(backend.get("b").await.unwrap().fields.name, "Person b");
    assert_eq!(backend.get("old").await.unwrap().version, 1);
    assert_eq!(backend.get("taken").await.unwrap().version, 1);
    // And the change log has exactly the four creates, in order.
    let changes = backend.changes_after(0, 100).await.unwrap();
    let ids: Vec<&str> = changes
        .iter()
        .map(|change| change.person.id.as_str())
        .collect();
    assert_eq!(ids, ["taken", "old", "a", "b"]);
}

#[tokio::test]
async fn a_refused_write_leaves_its_batchmates_stored_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let backend = RedbBackend::open(dir.path(), 1000).unwrap();
    a_refused_write_leaves_its_batchmates_stored(Arc::new(backend)).await;
}

#[tokio::test]
async fn a_refused_write_leaves_its_batchmates_stored_on_postgres() {
    let Some(Backend::Postgres(schema)) = Backend::postgres().await else {
        return;
    };
    let backend = PostgresBackend::connect(&schema.url, 1000).await.unwrap();
    a_refused_write_leaves_its_batchmates_stored(Arc::new(backend)).await;
    schema.drop_schema().await.unwrap();
}
