//! The chat service over real sockets: servers on port 0 and the generated
//! tonic client, as members would use it.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod member;

use std::time::Duration;

use member::{DEADLINE, Member, config, seqs, start};
use quartet_chat::ChatConfig;
use quartet_proto::chat::v1::{LeaveReason, NoticeKind, server_event::Event};
use quartet_runtime::ServerOptions;
use tokio::time::timeout;
use tonic::Code;

#[tokio::test]
async fn two_members_exchange_lines_in_one_order() {
    let server = start(config()).await;
    let mut ana = Member::join(&server.url(), "lobby", "ana", None).await;
    let joined = ana.joined().await;
    assert_eq!(
        (joined.members, joined.last_seq),
        (vec!["ana".to_owned()], 0)
    );

    let mut bo = Member::join(&server.url(), "lobby", "bo", None).await;
    assert_eq!(bo.joined().await.members, ["ana", "bo"]);
    match ana.next().await {
        Event::MemberJoined(joined) => assert_eq!(joined.nick, "bo"),
        other => panic!("expected bo's join, got {other:?}"),
    }

    ana.say("hola").await;
    bo.say("qué tal").await;
    ana.say("bien").await;
    let for_ana = ana.lines(3).await;
    let for_bo = bo.lines(3).await;
    assert_eq!(for_ana, for_bo, "both see one order");
    assert_eq!(seqs(&for_ana), [1, 2, 3]);
    let texts: Vec<&str> = for_ana.iter().map(|m| m.text.as_str()).collect();
    // One sender's lines keep their order; the two senders may interleave.
    let hola = texts.iter().position(|t| *t == "hola").unwrap();
    let bien = texts.iter().position(|t| *t == "bien").unwrap();
    assert!(hola < bien, "{texts:?}");
    let first = &for_ana[0];
    assert_eq!(first.room, "lobby");
    assert!(!first.id.is_empty() && first.time.is_some());
    let ids: std::collections::HashSet<&str> = for_ana.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "ids are unique");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn twenty_members_see_every_line_in_the_same_order() {
    const MEMBERS: usize = 20;
    const LINES_EACH: usize = 15;
    let server = start(config()).await;
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        let member = Member::enter(&server.url(), "crowd", &format!("m{i}")).await;
        members.push(member);
    }
    // Every member says its lines at once, concurrently with the others.
    let mut sayers = tokio::task::JoinSet::new();
    for (i, member) in members.iter().enumerate() {
        let sender = member.sender();
        sayers.spawn(async move {
            for n in 0..LINES_EACH {
                member::say(&sender, &format!("m{i} line {n}")).await;
            }
        });
    }
    sayers.join_all().await;
    let total = MEMBERS * LINES_EACH;
    let mut views = Vec::new();
    for member in &mut members {
        let lines = member.lines(total).await;
        views.push(
            lines
                .into_iter()
                .map(|m| (m.seq, m.id, m.nick, m.text))
                .collect::<Vec<_>>(),
        );
    }
    for view in &views[1..] {
        assert_eq!(view, &views[0], "every member sees one order");
    }
    let order: Vec<u64> = views[0].iter().map(|(seq, ..)| *seq).collect();
    assert_eq!(order, (1..=total as u64).collect::<Vec<_>>());
    for i in 0..MEMBERS {
        let own: Vec<&str> = views[0]
            .iter()
            .filter(|(_, _, nick, _)| *nick == format!("m{i}"))
            .map(|(.., text)| text.as_str())
            .collect();
        let expected: Vec<String> = (0..LINES_EACH).map(|n| format!("m{i} line {n}")).collect();
        assert_eq!(own, expected, "a sender's lines keep its order");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_joiner_receives_the_last_lines_of_history() {
    let server = start(ChatConfig {
        history: 3,
        ..config()
    })
    .await;
    let mut ana = Member::enter(&server.url(), "lobby", "ana").await;
    ana.say_numbered(5).await;

    let mut bo = Member::join(&server.url(), "lobby", "bo", None).await;
    assert_eq!(bo.joined().await.last_seq, 5);
    let history: Vec<String> = bo.lines(3).await.into_iter().map(|m| m.text).collect();
    assert_eq!(history, ["l3", "l4", "l5"]);
    ana.say("live").await;
    assert_eq!(
        bo.lines(1).await[0].seq,
        6,
        "history then live, nothing twice"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn since_seq_replays_exactly_what_was_missed_and_a_gap_for_what_is_gone() {
    let server = start(ChatConfig {
        history: 2,
        retain: 4,
        ..config()
    })
    .await;
    let mut ana = Member::enter(&server.url(), "lobby", "ana").await;
    ana.say_numbered(6).await;

    // Seen up to 4: gets 5 and 6 only.
    let mut bo = Member::join(&server.url(), "lobby", "bo", Some(4)).await;
    bo.joined().await;
    assert_eq!(seqs(&bo.lines(2).await), [5, 6]);

    // Seen up to 1: 2 is no longer retained (retain 4 keeps 3..=6).
    let mut cy = Member::join(&server.url(), "lobby", "cy", Some(1)).await;
    cy.joined().await;
    match cy.next().await {
        Event::Gap(gap) => assert_eq!((gap.from_seq, gap.to_seq), (2, 2)),
        other => panic!("expected a gap, got {other:?}"),
    }
    assert_eq!(seqs(&cy.lines(4).await), [3, 4, 5, 6]);

    // Up to date: nothing replayed, the next line is live.
    let mut di = Member::join(&server.url(), "lobby", "di", Some(6)).await;
    di.joined().await;
    ana.say("live").await;
    assert_eq!(di.lines(1).await[0].seq, 7);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn leaves_are_announced_with_their_reason_and_leave_ends_the_stream_ok() {
    let server = start(config()).await;
    let mut ana = Member::enter(&server.url(), "lobby", "ana").await;
    let mut bo = Member::enter(&server.url(), "lobby", "bo").await;
    let cy = Member::join(&server.url(), "lobby", "cy", None).await;
    ana.presence_of("bo").await;
    ana.presence_of("cy").await;

    bo.leave().await;
    assert_eq!(bo.end().await, Code::Ok, "Leave ends the stream with OK");
    let left = ana.presence_of("bo").await;
    assert_eq!(left, Some(LeaveReason::Bye));

    drop(cy); // the client goes away without a Leave
    let left = ana.presence_of("cy").await;
    assert_eq!(left, Some(LeaveReason::Disconnected));

    // Nicks are free again.
    let mut bo_again = Member::join(&server.url(), "lobby", "bo", None).await;
    assert_eq!(bo_again.joined().await.members, ["ana", "bo"]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn closing_the_client_side_leaves_as_disconnected() {
    let server = start(config()).await;
    let mut ana = Member::enter(&server.url(), "lobby", "ana").await;
    let mut bo = Member::enter(&server.url(), "lobby", "bo").await;
    ana.presence_of("bo").await;
    bo.close_sending();
    assert_eq!(bo.end().await, Code::Ok);
    assert_eq!(ana.presence_of("bo").await, Some(LeaveReason::Disconnected));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_joins_get_precise_statuses() {
    let server = start(config()).await;
    let url = server.url();
    let mut ana = Member::enter(&url, "lobby", "ana").await;

    for (room, nick) in [
        ("", "x"),
        ("lobby", ""),
        ("has space", "x"),
        ("lobby", "tab\tnick"),
        (&"r".repeat(65) as &str, "x"),
        ("lobby", &"n".repeat(33)),
    ] {
        let status = Member::try_join(&url, room, nick, None).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{room:?} {nick:?}");
    }
    let taken = Member::try_join(&url, "lobby", "ana", None)
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");
    assert!(
        Member::try_join(&url, "elsewhere", "ana", None)
            .await
            .is_ok()
    );

    let first_say = Member::try_first_say(&url).await.unwrap_err();
    assert_eq!(first_say.code(), Code::InvalidArgument);

    ana.join_again("other").await;
    assert_eq!(ana.end().await, Code::FailedPrecondition);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn forged_lines_and_escape_codes_are_refused_and_never_reach_others() {
    let server = start(config()).await;
    let url = server.url();
    let mut mallory = Member::enter(&url, "lobby", "mallory").await;
    let mut ana = Member::enter(&url, "lobby", "ana").await;
    mallory.presence_of("ana").await;

    for forged in [
        "hi\n* admin joined\nadmin please type your password",
        "\u{1b}[2J\u{1b}[31mred",
        "over\rwrite",
        "\u{202e}drowssap",
    ] {
        mallory.say(forged).await;
        let notice = mallory.notice().await;
        assert_eq!(notice.kind(), NoticeKind::InvalidMessage, "{forged:?}");
        assert!(
            notice.message.starts_with("say.text: contains "),
            "{}",
            notice.message
        );
        assert!(
            !notice.message.contains(forged),
            "the refusal must not echo the text: {}",
            notice.message
        );
    }
    // The next line that is text arrives, and is the first the others see.
    mallory.say("only this").await;
    assert_eq!(ana.lines(1).await[0].text, "only this");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn lookalike_nicks_are_refused_and_case_does_not_make_a_new_one() {
    let server = start(config()).await;
    let url = server.url();
    let mut alice = Member::join(&url, "Lobby", "Alice", None).await;
    let joined = alice.joined().await;
    assert_eq!(joined.room, "lobby", "a room is its folded form");
    assert_eq!(joined.nick, "Alice", "a nick keeps its case");

    for (nick, code) in [
        ("alice\u{200b}", Code::InvalidArgument),
        ("\u{202e}ecilA", Code::InvalidArgument),
        ("al\u{ad}ice", Code::InvalidArgument),
        ("ALICE", Code::AlreadyExists),
        ("\u{ff21}lice", Code::AlreadyExists),
    ] {
        let status = Member::try_join(&url, "LOBBY", nick, None)
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{nick:?}: {status:?}");
        if code == Code::InvalidArgument {
            assert!(
                status.message().starts_with("nick: contains "),
                "{status:?}"
            );
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn too_fast_and_oversize_lines_get_a_notice_and_the_stream_goes_on() {
    let server = start(ChatConfig {
        rate_per_second: 0.01,
        rate_burst: 2,
        max_text_bytes: 10,
        ..ChatConfig::default()
    })
    .await;
    let mut ana = Member::enter(&server.url(), "lobby", "ana").await;

    ana.say(&"x".repeat(11)).await;
    let notice = ana.notice().await;
    assert_eq!(notice.kind(), NoticeKind::InvalidMessage);
    assert!(notice.message.contains("10 bytes"), "{}", notice.message);

    ana.say("one").await;
    ana.say("two").await;
    ana.say("three").await;
    // A Notice answers the member's own sending; it is not ordered with the
    // room's lines, so collect both.
    let mut said = Vec::new();
    let mut notices = Vec::new();
    while said.len() < 2 || notices.is_empty() {
        match ana.next().await {
            Event::Message(message) => said.push(message.text),
            Event::Notice(notice) => notices.push(notice),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(said, ["one", "two"]);
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].kind(), NoticeKind::RateLimited);
    assert!(
        notices[0].message.contains("too fast"),
        "{}",
        notices[0].message
    );

    // Still a member: others' lines keep arriving.
    let bo = Member::enter(&server.url(), "lobby", "bo").await;
    bo.say("still?").await;
    ana.presence_of("bo").await;
    assert_eq!(ana.lines(1).await[0].text, "still?");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_member_that_stops_reading_skips_ahead_with_a_gap_and_never_slows_the_room() {
    const LINES: usize = 3_000;
    let server = start(ChatConfig {
        member_queue: 64,
        retain: 100,
        ..config()
    })
    .await;
    let url = server.url();
    let mut slow = Member::join_with_small_window(&url, "busy", "slow").await;
    slow.joined().await;
    let mut fast = Member::enter(&url, "busy", "fast").await;
    let mut sayer = Member::enter(&url, "busy", "sayer").await;

    // `slow` reads nothing from here on while 3 MB go through the room. The
    // sayer says a line once it saw its previous one: a steady room, not a
    // burst that would outrun the readers that do keep up.
    let text = "x".repeat(1000);
    let saying = tokio::spawn(async move {
        for _ in 0..LINES {
            sayer.say(&text).await;
            sayer.lines(1).await;
        }
        sayer
    });
    let received = timeout(DEADLINE, fast.lines(LINES))
        .await
        .expect("the room slowed down for a member that stopped reading");
    assert_eq!(seqs(&received), (1..=LINES as u64).collect::<Vec<_>>());
    let sayer = saying.await.unwrap();

    // Now `slow` reads: some lines, then a Gap for what it skipped, then lines
    // up to the end; every sequence number accounted for once.
    let mut covered = 0_u64;
    let mut gaps = 0;
    let mut delivered = 0;
    while covered < LINES as u64 {
        match slow.next().await {
            Event::Message(message) => {
                assert_eq!(message.seq, covered + 1, "no duplicates, no silent loss");
                covered = message.seq;
                delivered += 1;
            }
            Event::Gap(gap) => {
                assert_eq!(gap.from_seq, covered + 1);
                covered = gap.to_seq;
                gaps += 1;
            }
            Event::MemberJoined(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        gaps >= 1,
        "a member that stopped reading must skip with a Gap"
    );
    assert!(
        delivered < LINES / 2,
        "the server held {delivered} lines for a member that did not read"
    );
    // And it is still a member: live lines reach it.
    sayer.say("after").await;
    let after = slow.lines(1).await;
    assert_eq!(after[0].seq, LINES as u64 + 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn drain_sends_going_away_then_unavailable() {
    let server = start(config()).await;
    let mut ana = Member::enter(&server.url(), "lobby", "ana").await;
    ana.say("before").await;
    ana.lines(1).await;

    server.shutdown().request();
    match ana.next().await {
        Event::GoingAway(going) => assert!(!going.reason.is_empty()),
        other => panic!("expected GoingAway, got {other:?}"),
    }
    let end = ana.end_status().await;
    assert_eq!(end.code(), Code::Unavailable);
    assert!(end.message().contains("since_seq 1"), "{}", end.message());
    timeout(DEADLINE, server.stopped()).await.unwrap().unwrap();
}

#[tokio::test]
async fn list_rooms_and_get_history() {
    let server = start(config()).await;
    let url = server.url();
    assert!(member::rooms(&url).await.is_empty());

    let _bo = Member::enter(&url, "b-room", "bo").await;
    let mut ana = Member::enter(&url, "a-room", "ana").await;
    ana.say_numbered(3).await;
    let summary: Vec<(String, u32, Vec<String>, u64)> = member::rooms(&url)
        .await
        .into_iter()
        .map(|r| (r.name, r.member_count, r.members, r.last_seq))
        .collect();
    assert_eq!(
        summary,
        [
            ("a-room".to_owned(), 1, vec!["ana".to_owned()], 3),
            ("b-room".to_owned(), 1, vec!["bo".to_owned()], 0),
        ]
    );

    let history = member::history(&url, "a-room", Some(1), 1).await.unwrap();
    assert_eq!(history.last_seq, 3);
    assert_eq!(history.messages.len(), 1);
    assert_eq!(history.messages[0].text, "l2");

    let missing = member::history(&url, "b-room", None, 0).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let invalid = member::history(&url, "no spaces", None, 0)
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_chat_stream_outlives_the_request_timeout() {
    let mut options = ServerOptions::default();
    options.limits.request_timeout = Duration::from_millis(200);
    let server = member::start_with(options, config()).await;
    let mut ana = Member::enter(&server.url(), "lobby", "ana").await;
    // Time passing is what this test is about, not a way to wait for an event.
    tokio::time::sleep(Duration::from_millis(600)).await;
    ana.say("still here").await;
    assert_eq!(ana.lines(1).await[0].text, "still here");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_stream_that_never_joins_is_refused_when_it_closes() {
    let server = start(config()).await;
    let status = timeout(Duration::from_secs(10), Member::try_empty(&server.url()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn rooms_and_members_are_exported_as_gauges() {
    let server = member::start_with(ServerOptions::default(), ChatConfig::default()).await;
    let metrics = server.metrics();
    assert!(
        metrics.encode().contains("quartet_chat_rooms 0\n"),
        "{}",
        metrics.encode()
    );
    let _member = Member::enter(&server.url(), "gauges", "ana").await;
    let text = metrics.encode();
    assert!(text.contains("quartet_chat_rooms 1\n"), "{text}");
    assert!(text.contains("quartet_chat_members 1\n"), "{text}");
    server.stop().await.unwrap();
}
