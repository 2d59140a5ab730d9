//! Two replicas on one PostgreSQL database: each sees the other's writes and
//! watch events, and concurrent writers spread over both lose no update.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::{Backend, DEADLINE, create, get, increment, next_event, person, start, watch};
use quartet_proto::database::v1::ChangeKind;
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

    // B's watch saw every one of those updates, in revision order, no gaps.
    let mut revision = event.revision;
    for _ in 0..4 * INCREMENTS {
        let next = next_event(&mut events).await;
        assert_eq!(next.revision, revision + 1);
        revision = next.revision;
    }

    a.server.stop().await.unwrap();
    b.server.stop().await.unwrap();
    backend.clean_up().await;
}
