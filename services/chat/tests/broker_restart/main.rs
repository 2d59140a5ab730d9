//! Chat through a broker restart: two replicas on a NATS server this test
//! starts itself (`/usr/sbin/nats-server -js` on a free port, its store in a
//! temporary directory), killed with SIGKILL mid-conversation and started
//! again on the same port and store. Members on both replicas talk before,
//! during and after the outage; then every member's stream is held against
//! what every sayer was told (see [`check_transcripts`]):
//!
//! - each member's lines and Gaps cover every sequence number once, in order,
//!   across its sessions (a session that ended resumes with `since_seq`);
//! - a sequence number holds the same line for every member and in both
//!   replicas' history;
//! - every acknowledged line (its sayer saw it come back) is there; no line
//!   whose sayer was told it failed is anywhere;
//! - both replicas serve again within [`RECOVERY`] of NATS coming back,
//!   without a restart: sayers on both are confirmed, members that stayed
//!   connected get lines from both replicas, since_seq joins get exactly what
//!   they missed, a new member and a new room work, and presence and nick
//!   claims are right again.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broker;
mod chatter;
#[path = "../member/mod.rs"]
mod member;
mod person;
mod transcript;

use std::{collections::BTreeMap, time::Duration};

use broker::Broker;
use chatter::{Chatter, Outcomes};
use member::{DEADLINE, config, start_replica};
use person::{Outcome, Person, Session, Shown};
use tokio::{sync::watch, time::Instant};
use tonic::Code;
use transcript::check_transcripts;

/// The room everybody talks in.
pub(crate) const LOBBY: &str = "lobby";
/// How long after NATS is back both replicas must serve again: sayers
/// confirmed, joins taken, rooms opened.
pub(crate) const RECOVERY: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_through_a_broker_restart_loses_and_invents_no_line() {
    let Some(mut broker) = Broker::start().await else {
        return;
    };
    // The broker is this test's alone: the default prefix is fine.
    let a = start_replica(&broker.url(), "quartet", config()).await;
    let b = start_replica(&broker.url(), "quartet", config()).await;
    let (on_a, on_b) = (a.url(), b.url());

    let mut cast = before(&on_a, &on_b).await;
    let before_outage = member::history(&on_a, LOBBY, None, 1)
        .await
        .unwrap()
        .last_seq;
    let killed = during(&mut broker, &mut cast, &on_a).await;
    broker.run().await;
    let restarted = Instant::now();
    note(&format!("nats was down for {:?}", restarted - killed));
    let newcomers = after(&mut cast, &on_a, &on_b, restarted).await;
    note(&format!(
        "both replicas served again {:?} after the restart",
        restarted.elapsed()
    ));
    assert!(restarted.elapsed() < RECOVERY, "{:?}", restarted.elapsed());
    check_everything(cast, newcomers, &on_a, &on_b, before_outage).await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// Who is in the lobby from the start: ana and gus on replica a, bo and jo
/// on b, and a chatter on each (cy on a, di on b).
struct Cast {
    ana: Person,
    bo: Person,
    gus: Person,
    jo: Person,
    cy: Chatter,
    di: Chatter,
    stop_chatting: watch::Sender<bool>,
}

/// Before: everybody in, lines from both replicas, the chatters talking.
async fn before(on_a: &str, on_b: &str) -> Cast {
    let mut ana = Person::join(on_a, LOBBY, "ana", None, DEADLINE).await;
    let gus = Person::join(on_a, LOBBY, "gus", None, DEADLINE).await;
    let mut bo = Person::join(on_b, LOBBY, "bo", None, DEADLINE).await;
    let jo = Person::join(on_b, LOBBY, "jo", None, DEADLINE).await;
    let cy = Person::join(on_a, LOBBY, "cy", None, DEADLINE).await;
    let di = Person::join(on_b, LOBBY, "di", None, DEADLINE).await;
    assert!(ana.say("ana before").await.is_acked());
    assert!(bo.say("bo before").await.is_acked());
    let (stop_chatting, stop) = watch::channel(false);
    let mut cy = Chatter::start(cy, stop.clone());
    let mut di = Chatter::start(di, stop);
    let start = Instant::now();
    for chatter in [&mut cy, &mut di] {
        chatter
            .wait_for("three lines confirmed", DEADLINE, |o| {
                o.acked_after(start) >= 3
            })
            .await;
    }
    Cast {
        ana,
        bo,
        gus,
        jo,
        cy,
        di,
        stop_chatting,
    }
}

/// During: NATS killed while one of cy's lines is on its way, so its fate
/// is unknown until NATS is back. A join is refused, not half-taken (after
/// which replica a knows NATS is gone); a line said now fails and must never
/// appear; members on both replicas can still leave; the chatters go on
/// trying. Returns when NATS died.
async fn during(broker: &mut Broker, cast: &mut Cast, on_a: &str) -> Instant {
    cast.cy
        .wait_for("a line on its way", DEADLINE, Outcomes::in_flight)
        .await;
    broker.kill().await;
    let killed = Instant::now();
    let refused = Session::open(on_a, LOBBY, "eve", None)
        .await
        .expect_err("a join while NATS is down");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let said = cast.ana.say("ana during").await.clone();
    assert!(matches!(said, Outcome::Refused(_)), "{said:?}");
    tokio::join!(cast.gus.leave(), cast.jo.leave());
    for chatter in [&mut cast.cy, &mut cast.di] {
        chatter
            .wait_for("a line said while NATS is down", DEADLINE, |o| {
                o.said_since(killed)
            })
            .await;
    }
    killed
}

/// Those who join after the outage: eve on a (refused during it), fay in a
/// room new since.
struct Newcomers {
    eve: Person,
    fay: Person,
}

/// After: NATS back on the same port and store (at `restarted`). Both
/// replicas serve again by themselves, within RECOVERY: the chatters are
/// confirmed, ana resumes with since_seq, eve joins (her refused join left
/// no claim behind), a new room opens, everyone talks, and bo (on b) learns
/// that gus (on a) left during the outage. (That a learns jo left is
/// checked at the end, in a's member list.)
async fn after(cast: &mut Cast, on_a: &str, on_b: &str, restarted: Instant) -> Newcomers {
    for chatter in [&mut cast.cy, &mut cast.di] {
        chatter
            .wait_for("a line confirmed after the restart", RECOVERY, |o| {
                o.acked_after(restarted) >= 1
            })
            .await;
    }
    cast.ana.rejoin(left(restarted)).await;
    let mut eve = Person::join(on_a, LOBBY, "eve", Some(0), left(restarted)).await;
    let mut fay = Person::join(on_b, "after", "fay", None, left(restarted)).await;
    assert!(fay.say("fay in a new room").await.is_acked());
    for person in [&mut cast.ana, &mut cast.bo, &mut eve] {
        let text = format!("{} after", person.nick);
        assert!(person.say(&text).await.is_acked(), "{text}");
    }
    cast.bo
        .current()
        .wait_for(
            "gus's leave seen on the other replica",
            left(restarted),
            |r| r.shown.contains(&Shown::Left("gus".into())),
        )
        .await;
    Newcomers { eve, fay }
}

/// Stops the chatters, lets everyone catch up, brings in late joiners (from
/// before the outage on a, from the start on b), and checks both replicas'
/// member lists and nick claims, the transcripts and the history (see
/// [`check_transcripts`]).
async fn check_everything(
    cast: Cast,
    newcomers: Newcomers,
    on_a: &str,
    on_b: &str,
    before_outage: u64,
) {
    let Cast {
        mut ana,
        mut bo,
        gus,
        jo,
        cy,
        di,
        stop_chatting,
    } = cast;
    let Newcomers { mut eve, fay } = newcomers;
    stop_chatting.send_replace(true);
    let (mut cy, mut di) = (cy.stop().await, di.stop().await);
    let last_seq = member::history(on_a, LOBBY, None, 1)
        .await
        .unwrap()
        .last_seq;
    for person in [&mut ana, &mut bo, &mut cy, &mut di, &mut eve] {
        person.caught_up(last_seq).await;
    }
    // ivy joins on a; once b has shown bo her arrival, hal joins on b: each
    // Joined lists who each replica believes is in, gus and jo long gone.
    let mut ivy = Person::join(on_a, LOBBY, "ivy", Some(before_outage), DEADLINE).await;
    let members_on_a = ivy.current().joined_members();
    assert_eq!(members_on_a, ["ana", "bo", "cy", "di", "eve", "ivy"]);
    bo.current()
        .wait_for("ivy's join seen on b", DEADLINE, |r| {
            r.shown.contains(&Shown::Came("ivy".into()))
        })
        .await;
    let mut hal = Person::join(on_b, LOBBY, "hal", Some(0), DEADLINE).await;
    let members = hal.current().joined_members();
    assert_eq!(members, ["ana", "bo", "cy", "di", "eve", "hal", "ivy"]);
    ivy.caught_up(last_seq).await;
    hal.caught_up(last_seq).await;
    for url in [on_a, on_b] {
        let rooms = member::rooms(url).await;
        let claims: Vec<(&str, &[String])> = rooms
            .iter()
            .map(|room| (room.name.as_str(), room.members.as_slice()))
            .collect();
        let fay = ["fay".to_owned()];
        assert_eq!(
            claims,
            [("after", &fay[..]), (LOBBY, &members[..])],
            "nick claims seen from {url}"
        );
    }

    let people = [&ana, &bo, &cy, &di, &eve, &gus, &hal, &ivy, &jo];
    let transcript = check_transcripts(&people, last_seq);
    for url in [on_a, on_b] {
        let history = member::history(url, LOBBY, Some(0), 1000).await.unwrap();
        let stored: BTreeMap<u64, (String, String)> = history
            .messages
            .into_iter()
            .map(|line| (line.seq, (line.nick, line.text)))
            .collect();
        assert_eq!(stored, transcript, "history on {url}");
    }
    let refused: Vec<&str> = people
        .iter()
        .flat_map(|person| person.said.iter())
        .filter(|said| matches!(said.outcome, Outcome::Refused(_)))
        .map(|said| said.text.as_str())
        .collect();
    note(&format!("{last_seq} lines; refused: {refused:?}"));
    drop((ana, bo, cy, di, eve, fay, gus, hal, ivy, jo));
}

/// Notes a step of the timeline on stderr, which the test harness shows
/// when the test fails (or with `--nocapture`).
#[allow(clippy::print_stderr)]
pub(crate) fn note(what: &str) {
    eprintln!("{what}");
}

/// What remains of `RECOVERY` since `since`.
pub(crate) fn left(since: Instant) -> Duration {
    RECOVERY.saturating_sub(since.elapsed())
}
