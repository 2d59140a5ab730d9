//! Replicas sharing rooms through NATS: in-process servers, each with its own
//! hub, on one NATS with JetStream (`QUARTET_TEST_NATS_URL`), under a prefix
//! unique to the test run so tests sharing the NATS never see each other.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod member;

use member::{Member, Prefix, config, nats_url, seqs, start_replica};
use tonic::Code;

#[tokio::test]
async fn replicas_on_one_nats_carry_one_conversation_in_one_order() {
    const EACH: usize = 20;
    let Some(url) = nats_url() else { return };
    let guard = Prefix::new(&url);
    let prefix = guard.name.as_str();
    let a = start_replica(&url, prefix, config()).await;
    let b = start_replica(&url, prefix, config()).await;

    let mut ana = Member::join(&a.url(), "lobby", "ana", None).await;
    assert_eq!(ana.joined().await.members, ["ana"]);
    let mut bo = Member::join(&b.url(), "lobby", "bo", None).await;
    assert_eq!(
        bo.joined().await.members,
        ["ana", "bo"],
        "b knows a's member"
    );
    assert_eq!(ana.presence_of("bo").await, None, "a hears b's join");

    // The nick is unique across replicas.
    let taken = Member::try_join(&b.url(), "lobby", "ana", None)
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);

    // Both say lines at once; both replicas deliver one order.
    let (on_a, on_b) = member::converse(&mut ana, &mut bo, EACH).await;
    assert_eq!(on_a, on_b, "one order on both replicas");
    assert_eq!(seqs(&on_a), (1..=2 * EACH as u64).collect::<Vec<_>>());

    // Leaving on b is seen on a, with its reason.
    bo.leave().await;
    assert_eq!(
        ana.presence_of("bo").await,
        Some(quartet_proto::chat::v1::LeaveReason::Bye)
    );

    // History survives a replica going away: a new replica serves it.
    drop(ana);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    let c = start_replica(&url, prefix, config()).await;
    let mut cy = Member::join(&c.url(), "lobby", "cy", Some(2 * EACH as u64 - 3)).await;
    assert_eq!(cy.joined().await.last_seq, 2 * EACH as u64);
    assert_eq!(seqs(&cy.lines(3).await), [38, 39, 40]);
    cy.say("after the restart").await;
    let next = cy.lines(1).await;
    assert_eq!(
        (next[0].seq, next[0].text.as_str()),
        (41, "after the restart")
    );

    let history = member::history(&c.url(), "lobby", Some(39), 0)
        .await
        .unwrap();
    assert_eq!(
        (seqs(&history.messages), history.last_seq),
        (vec![40, 41], 41)
    );
    let missing = member::history(&c.url(), "never-used", None, 0)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let rooms = member::rooms(&c.url()).await;
    assert_eq!(rooms.len(), 1);
    assert_eq!(
        (
            rooms[0].name.as_str(),
            rooms[0].members.clone(),
            rooms[0].last_seq
        ),
        ("lobby", vec!["cy".to_owned()], 41)
    );

    drop(cy);
    c.stop().await.unwrap();
}

#[tokio::test]
async fn a_late_replica_sees_members_and_lines_of_an_early_one() {
    let Some(url) = nats_url() else { return };
    let guard = Prefix::new(&url);
    let prefix = guard.name.as_str();
    let a = start_replica(&url, prefix, config()).await;
    let rooms = member::rooms(&a.url()).await;
    assert!(rooms.is_empty(), "{rooms:?}");
    let mut ana = Member::enter(&a.url(), "den", "ana").await;
    ana.say("first").await;
    ana.lines(1).await;

    let b = start_replica(&url, prefix, config()).await;
    let mut bo = Member::join(&b.url(), "den", "bo", None).await;
    let joined = bo.joined().await;
    assert_eq!(
        (joined.members, joined.last_seq),
        (vec!["ana".to_owned(), "bo".to_owned()], 1)
    );
    assert_eq!(bo.lines(1).await[0].text, "first", "history from JetStream");
    ana.say("second").await;
    let next = bo.lines(1).await;
    assert_eq!(
        (next[0].seq, next[0].text.as_str()),
        (2, "second"),
        "live after history, nothing twice"
    );
    assert_eq!(ana.presence_of("bo").await, None);
    drop((ana, bo));
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
