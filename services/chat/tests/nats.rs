//! Replicas sharing rooms through NATS: in-process servers, each with its own
//! hub, on one NATS with JetStream (`QUARTET_TEST_NATS_URL`), under a prefix
//! unique to the test run so tests sharing the NATS never see each other.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod member;

use std::sync::Arc;

use member::{Member, Prefix, connect, nats_url};
use quartet_chat::{ChatConfig, HubLimits, NatsBackplane, NatsOptions, RoomHub};
use quartet_proto::chat::v1::{GetHistoryRequest, ListRoomsRequest};
use quartet_runtime::{RunningServer, ServerOptions, Shutdown};
use tokio::time::timeout;
use tonic::Code;

fn config() -> ChatConfig {
    ChatConfig {
        rate_per_second: 10_000.0,
        rate_burst: 10_000,
        ..ChatConfig::default()
    }
}

async fn replica(url: &str, prefix: &str) -> RunningServer {
    let config = config();
    let hub = Arc::new(RoomHub::new(HubLimits {
        evict_idle_rooms: false,
        ..config.hub_limits()
    }));
    let backplane = NatsBackplane::connect(
        NatsOptions {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            retain: config.retained(),
            max_text_bytes: config.max_text_bytes,
        },
        hub,
    )
    .await
    .unwrap();
    quartet_chat::server(
        ServerOptions::default(),
        Shutdown::new(),
        config,
        Arc::new(backplane),
    )
    .bind("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap()
    .spawn()
    .unwrap()
}

#[tokio::test]
async fn replicas_on_one_nats_carry_one_conversation_in_one_order() {
    const EACH: usize = 20;
    let Some(url) = nats_url() else { return };
    let guard = Prefix::new(&url);
    let prefix = guard.name.as_str();
    let a = replica(&url, prefix).await;
    let b = replica(&url, prefix).await;

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
    let (ana_sender, bo_sender) = (ana.sender(), bo.sender());
    let saying = tokio::spawn(async move {
        for n in 0..EACH {
            member::say(&ana_sender, &format!("a{n}")).await;
            member::say(&bo_sender, &format!("b{n}")).await;
        }
    });
    let on_a = ana.lines(2 * EACH).await;
    let on_b = bo.lines(2 * EACH).await;
    saying.await.unwrap();
    let view = |lines: &[quartet_proto::chat::v1::ChatMessage]| -> Vec<(u64, String, String)> {
        lines
            .iter()
            .map(|m| (m.seq, m.id.clone(), m.text.clone()))
            .collect()
    };
    assert_eq!(view(&on_a), view(&on_b));
    let seqs: Vec<u64> = on_a.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=2 * EACH as u64).collect::<Vec<_>>());

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
    let c = replica(&url, prefix).await;
    let mut cy = Member::join(&c.url(), "lobby", "cy", Some(2 * EACH as u64 - 3)).await;
    assert_eq!(cy.joined().await.last_seq, 2 * EACH as u64);
    let replay: Vec<u64> = cy.lines(3).await.iter().map(|m| m.seq).collect();
    assert_eq!(replay, [38, 39, 40]);
    cy.say("after the restart").await;
    let next = cy.lines(1).await;
    assert_eq!(
        (next[0].seq, next[0].text.as_str()),
        (41, "after the restart")
    );

    let mut client = connect(&c.url()).await;
    let history = client
        .get_history(GetHistoryRequest {
            room: "lobby".into(),
            since_seq: Some(39),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let seqs: Vec<u64> = history.messages.iter().map(|m| m.seq).collect();
    assert_eq!((seqs, history.last_seq), (vec![40, 41], 41));
    let missing = client
        .get_history(GetHistoryRequest {
            room: "never-used".into(),
            since_seq: None,
            limit: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let rooms = client
        .list_rooms(ListRoomsRequest {})
        .await
        .unwrap()
        .into_inner()
        .rooms;
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
    let a = replica(&url, prefix).await;
    let rooms = timeout(
        member::DEADLINE,
        connect(&a.url()).await.list_rooms(ListRoomsRequest {}),
    )
    .await
    .expect("listing rooms of an empty deployment hung")
    .unwrap()
    .into_inner()
    .rooms;
    assert!(rooms.is_empty(), "{rooms:?}");
    let mut ana = Member::join(&a.url(), "den", "ana", None).await;
    ana.joined().await;
    ana.say("first").await;
    ana.lines(1).await;

    let b = replica(&url, prefix).await;
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
