//! Two replicas on one PostgreSQL database: each sees the other's writes and
//! watch events, concurrent writers spread over both lose no update, and
//! commits that land out of revision order reach watchers in order, each once.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::time::{Duration, Instant};

use harness::{
    Backend, DEADLINE, Seen, create, get, increment, next_event, next_events, person, start,
    update, watch,
};
use quartet_proto::database::v1::{
    ChangeKind, CreatePersonRequest, DeletePersonRequest, ImportPeopleRequest, ListPeopleRequest,
};
use tokio::time::timeout;
use tonic::Code;

#[tokio::test]
async fn replicas_share_writes_watch_events_and_record_locks() {
    const INCREMENTS: usize = 20;
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let mut a = start(&backend).await;
    let mut b = start(&backend).await;

    // A watch on B, a write through A.
    let mut events = watch(&mut b, None, "").await.unwrap();
    create(&mut a, person("shared", "n=0")).await.unwrap();
    let event = next_event(&mut events).await;
    assert_eq!(
        (event.kind(), event.person.unwrap().id.as_str()),
        (ChangeKind::Created, "shared")
    );
    assert_eq!(get(&mut b, "shared").await.unwrap().name, "n=0");
    let taken = create(&mut b, person("shared", "again")).await.unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);

    // Read-modify-write loops on both replicas at once.
    let mut writers = tokio::task::JoinSet::new();
    for client in [
        a.client.clone(),
        b.client.clone(),
        a.client.clone(),
        b.client.clone(),
    ] {
        writers.spawn(increment(client, "shared", INCREMENTS));
    }
    timeout(DEADLINE, writers.join_all())
        .await
        .expect("writers hung");
    let last = get(&mut a, "shared").await.unwrap();
    assert_eq!(last.name, format!("n={}", 4 * INCREMENTS));

    // B's watch saw every one of those updates, in revision order, no gaps:
    // each count once, in counting order.
    let seen = next_events(&mut events, 4 * INCREMENTS).await;
    let counts: Vec<&str> = seen.iter().map(|event| event.name.as_str()).collect();
    let expected: Vec<String> = (1..=4 * INCREMENTS)
        .map(|count| format!("n={count}"))
        .collect();
    assert_eq!(counts, expected);
    b.assert_in_order(event.revision, &seen);

    a.server.stop().await.unwrap();
    b.server.stop().await.unwrap();
    backend.clean_up().await;
}

/// Revisions come from transaction ids, taken in one order and committed in
/// another. Here replica A's import locks "a-first" (taking its transaction
/// id) and then waits for the lock on "held", kept by an outside transaction,
/// while replica B creates and deletes people, committing later ids first. A
/// watch must neither deliver B's changes before A's (A's revision is lower)
/// nor skip A's once B's are out; and a watch from the delete's revision
/// starts right after it.
#[tokio::test]
async fn commits_out_of_revision_order_reach_watchers_in_order() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let mut a = start(&backend).await;
    let mut b = start(&backend).await;
    for id in ["a-first", "held", "doomed"] {
        create(&mut a, person(id, "x")).await.unwrap();
    }
    let listed = b
        .client
        .list_people(ListPeopleRequest::default())
        .await
        .unwrap()
        .into_inner()
        .revision;
    let mut early_watch = watch(&mut b, Some(listed), "").await.unwrap();

    // An outside transaction locks "held" and keeps it.
    let outside = backend.outside_client().await;
    outside.batch_execute("BEGIN").await.unwrap();
    let holder: String = outside
        .query_one(
            "SELECT pg_current_xact_id()::text FROM people WHERE id = 'held' FOR UPDATE",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    // A's import locks the rows in id order: "a-first" (which gives it a
    // transaction id), then it waits for "held".
    let mut a_client = a.client.clone();
    let held_update = tokio::spawn(async move {
        let batch = ImportPeopleRequest {
            people: vec![person("a-first", "y"), person("held", "y")],
        };
        a_client.import_people(tokio_stream::iter([batch])).await
    });
    wait_for_lock_waiter(&outside, &holder).await;

    // B commits two changes meanwhile: later transaction ids than A's.
    create(&mut b, person("late", "x")).await.unwrap();
    let deleted = b
        .client
        .delete_person(DeletePersonRequest {
            id: "doomed".into(),
            expected_version: None,
        })
        .await
        .unwrap()
        .into_inner();

    outside.batch_execute("COMMIT").await.unwrap();
    let imported = held_update.await.unwrap().unwrap().into_inner();
    assert_eq!(imported.updated, 2);
    // A watch from the delete's revision starts right after the delete.
    let mut after_delete = watch(&mut b, Some(deleted.revision), "").await.unwrap();
    update(&mut b, person("late", "y"), &["name"], None)
        .await
        .unwrap();

    // Every change once, in revision order, A's (the lowest revision) first.
    let seen = next_events(&mut early_watch, 5).await;
    assert_eq!(
        seen.iter().map(Seen::change).collect::<Vec<_>>(),
        [
            (ChangeKind::Updated, "a-first", "y"),
            (ChangeKind::Updated, "held", "y"),
            (ChangeKind::Created, "late", "x"),
            (ChangeKind::Deleted, "doomed", "x"),
            (ChangeKind::Updated, "late", "y"),
        ]
    );
    b.assert_in_order(listed, &seen);
    assert_eq!(seen[3].revision, deleted.revision);
    let next = next_event(&mut after_delete).await;
    assert_eq!(
        (next.revision, next.person.unwrap().name.as_str()),
        (seen[4].revision, "y")
    );

    a.server.stop().await.unwrap();
    b.server.stop().await.unwrap();
    backend.clean_up().await;
}

/// Waits (within [`DEADLINE`]) until some transaction waits for transaction
/// `holder`'s lock.
async fn wait_for_lock_waiter(client: &tokio_postgres::Client, holder: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_locks
                 WHERE locktype = 'transactionid' AND transactionid::text = $1 AND NOT granted",
                &[&holder],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the update never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A write transaction that never ends (here, one from outside holding the
/// writers' gate) must not stall the service: a list waits for it only so
/// long, then answers UNAVAILABLE, and writes go on meanwhile.
#[tokio::test]
async fn a_stuck_write_transaction_makes_lists_unavailable_not_writes() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let mut server = start(&backend).await;
    let outside = backend.outside_client().await;
    outside
        .batch_execute(
            "BEGIN; SELECT pg_advisory_xact_lock_shared(
                 hashtext(current_schema() || '.quartet_people_writers')::int8)",
        )
        .await
        .unwrap();

    let mut client = server.client.clone();
    let status = timeout(DEADLINE, client.list_people(ListPeopleRequest::default()))
        .await
        .expect("the list waited for the stuck transaction")
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("writes in flight did not finish"),
        "{}",
        status.message()
    );
    // The list gave up its place in the lock queue: writes are not held back.
    create(&mut server, person("after", "x")).await.unwrap();

    outside.batch_execute("COMMIT").await.unwrap();
    let listed = server
        .client
        .list_people(ListPeopleRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.people.len(), 1);

    server.server.stop().await.unwrap();
    backend.clean_up().await;
}

/// Replicas racing to create the same ids: each id is created once, every
/// other attempt is ALREADY_EXISTS. A batch that loses such a race inside
/// PostgreSQL (a unique violation on insert) is retried, never reported as
/// INTERNAL, whichever of its pipelined statements' answers comes back first.
#[tokio::test]
async fn replicas_racing_to_create_the_same_ids_create_each_once() {
    const IDS: usize = 40;
    const RACERS: usize = 8;
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let a = start(&backend).await;
    let b = start(&backend).await;
    let mut racers = tokio::task::JoinSet::new();
    for racer in 0..RACERS {
        let mut client = [&a, &b][racer % 2].client.clone();
        racers.spawn(async move {
            let mut created = 0;
            for i in 0..IDS {
                let request = CreatePersonRequest {
                    person: Some(person(&format!("race-{i:02}"), "x")),
                };
                match client.create_person(request).await {
                    Ok(_) => created += 1,
                    Err(status) if status.code() == Code::AlreadyExists => {}
                    Err(status) => panic!("race-{i:02}: {status:?}"),
                }
            }
            created
        });
    }
    let created: usize = timeout(DEADLINE, racers.join_all())
        .await
        .expect("racers hung")
        .into_iter()
        .sum();
    assert_eq!(created, IDS);

    a.server.stop().await.unwrap();
    b.server.stop().await.unwrap();
    backend.clean_up().await;
}
