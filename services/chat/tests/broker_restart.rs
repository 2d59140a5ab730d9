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

mod member;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use member::{DEADLINE, Member, config, start_replica};
use quartet_proto::chat::v1::{
    ClientEvent, Leave, Say, ServerEvent, client_event, server_event::Event,
};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
    sync::{mpsc, watch},
    task::JoinHandle,
    time::{Instant, sleep, timeout},
};
use tonic::{Code, Status, Streaming};

/// The NATS server binary the test runs (Debian's `nats-server` package).
const NATS_SERVER: &str = "/usr/sbin/nats-server";
/// The room everybody talks in.
const LOBBY: &str = "lobby";
/// How long after NATS is back both replicas must serve again: sayers
/// confirmed, joins taken, rooms opened.
const RECOVERY: Duration = Duration::from_secs(15);
/// Between a chatter's lines: steady talk, far below the rate limit and the
/// retention, so every line stays in history for the final checks.
const PACE: Duration = Duration::from_millis(40);
/// Between two attempts to join while a replica cannot serve yet.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

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
fn note(what: &str) {
    eprintln!("{what}");
}

/// What remains of `RECOVERY` since `since`.
fn left(since: Instant) -> Duration {
    RECOVERY.saturating_sub(since.elapsed())
}

/// Holds what every member was shown against what every sayer was told, and
/// returns the room's lines by sequence number as the members saw them:
///
/// - per member, across its sessions: lines and Gaps cover each sequence
///   number once, in order, from where it joined to where it left (or
///   `last_seq`, for members still in);
/// - across members: a sequence number holds one line, and every line
///   1..=`last_seq` was shown to someone;
/// - per sayer: an acknowledged line holds its sequence number, and a line
///   it was told failed appears nowhere; no line is shown that nobody said;
/// - nobody was left in doubt (a line neither confirmed nor refused).
fn check_transcripts(people: &[&Person], last_seq: u64) -> BTreeMap<u64, (String, String)> {
    let mut transcript: BTreeMap<u64, (String, String)> = BTreeMap::new();
    for person in people {
        let mut next = person.first_seq();
        for (session, record) in person.records().enumerate() {
            for shown in &record.shown {
                match shown {
                    Shown::Line { seq, nick, text } => {
                        assert_eq!(
                            *seq, next,
                            "{} (session {session}) was shown {seq} {text:?} where {next} was due",
                            person.nick
                        );
                        let line = (nick.clone(), text.clone());
                        let held = transcript.entry(*seq).or_insert_with(|| line.clone());
                        assert_eq!(*held, line, "seq {seq} differs for {}", person.nick);
                        next = seq + 1;
                    }
                    Shown::Gap { from, to } => {
                        assert_eq!(*from, next, "{}'s gap {from}-{to}", person.nick);
                        next = to + 1;
                    }
                    _ => {}
                }
            }
        }
        if person.is_in() {
            assert_eq!(next, last_seq + 1, "{} did not get every line", person.nick);
        }
    }
    let seqs: Vec<u64> = transcript.keys().copied().collect();
    assert_eq!(
        seqs,
        (1..=last_seq).collect::<Vec<_>>(),
        "lines nobody was shown"
    );

    let mut where_said: BTreeMap<&str, u64> = BTreeMap::new();
    for (seq, (_, text)) in &transcript {
        let again = where_said.insert(text, *seq);
        assert_eq!(again, None, "{text:?} stored twice");
    }
    let mut told = BTreeSet::new();
    for person in people {
        for said in &person.said {
            told.insert(said.text.as_str());
            let stored = where_said.get(said.text.as_str());
            match &said.outcome {
                Outcome::Acked(seq) => assert_eq!(
                    transcript.get(seq),
                    Some(&(person.nick.clone(), said.text.clone())),
                    "{}'s acknowledged {:?}",
                    person.nick,
                    said.text
                ),
                Outcome::Refused(why) => assert_eq!(
                    stored, None,
                    "{}'s {:?} was refused ({why}) yet delivered",
                    person.nick, said.text
                ),
                Outcome::InDoubt(why) => {
                    panic!(
                        "{} was left in doubt about {:?}: {why}",
                        person.nick, said.text
                    )
                }
            }
        }
    }
    for text in where_said.keys() {
        assert!(told.contains(text), "{text:?} was shown but nobody said it");
    }
    transcript
}

/// A nats-server with JetStream for this test alone: a free port and a store
/// in a temporary directory, both kept across restarts.
struct Broker {
    port: u16,
    store: PathBuf,
    process: Option<Child>,
}

impl Broker {
    /// Starts it, or `None` after a visible SKIPPED line when nats-server is
    /// not installed (under `CI=true` a missing binary fails instead).
    async fn start() -> Option<Self> {
        if !Path::new(NATS_SERVER).exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{NATS_SERVER} must be installed in CI"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED chat through a broker restart: {NATS_SERVER} is not installed"
            );
            return None;
        }
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let store = std::env::temp_dir().join(format!("quartet-chat-nats-{}", nuid::next()));
        let mut broker = Self {
            port,
            store,
            process: None,
        };
        broker.run().await;
        Some(broker)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts nats-server and waits until it logs that it is ready (after
    /// JetStream has recovered the store and it listens for clients).
    async fn run(&mut self) {
        let mut child = Command::new(NATS_SERVER)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let ready = timeout(DEADLINE, async {
            while let Some(line) = log.next_line().await.unwrap() {
                let ready = line.contains("Server is ready");
                seen.push(line);
                if ready {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            ready,
            Ok(true),
            "nats-server did not come up:\n{}",
            seen.join("\n")
        );
        // Keep reading its log, so a full pipe never stalls it.
        tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
        self.process = Some(child);
    }

    /// Kills it (SIGKILL: no goodbye to its clients) and waits until it is
    /// gone.
    async fn kill(&mut self) {
        let mut child = self.process.take().unwrap();
        child.start_kill().unwrap();
        timeout(DEADLINE, child.wait()).await.unwrap().unwrap();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.process {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// One event a member was shown, as far as this test cares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shown {
    Joined {
        last_seq: u64,
        members: Vec<String>,
    },
    Line {
        seq: u64,
        nick: String,
        text: String,
    },
    Gap {
        from: u64,
        to: u64,
    },
    Came(String),
    Left(String),
    Notice(String),
    GoingAway,
}

impl From<Event> for Shown {
    fn from(event: Event) -> Self {
        match event {
            Event::Joined(joined) => Self::Joined {
                last_seq: joined.last_seq,
                members: joined.members,
            },
            Event::Message(line) => Self::Line {
                seq: line.seq,
                nick: line.nick,
                text: line.text,
            },
            Event::Gap(gap) => Self::Gap {
                from: gap.from_seq,
                to: gap.to_seq,
            },
            Event::MemberJoined(joined) => Self::Came(joined.nick),
            Event::MemberLeft(left) => Self::Left(left.nick),
            Event::Notice(notice) => Self::Notice(notice.message),
            Event::GoingAway(_) => Self::GoingAway,
        }
    }
}

/// Everything one Chat stream showed, and how it ended.
#[derive(Debug, Clone, Default)]
struct Record {
    shown: Vec<Shown>,
    /// The stream's final status (`Code::Ok` for a clean end) and message.
    ended: Option<(Code, String)>,
}

impl Record {
    /// The sequence number of the line `nick` said as `text`, if shown.
    fn echo(&self, nick: &str, text: &str) -> Option<u64> {
        self.shown.iter().find_map(|shown| match shown {
            Shown::Line {
                seq,
                nick: n,
                text: t,
            } if n == nick && t == text => Some(*seq),
            _ => None,
        })
    }

    /// The last sequence number shown, as a line or the end of a gap.
    fn last_seen(&self) -> Option<u64> {
        self.shown.iter().rev().find_map(|shown| match shown {
            Shown::Line { seq, .. } => Some(*seq),
            Shown::Gap { to, .. } => Some(*to),
            _ => None,
        })
    }

    fn joined_members(&self) -> Vec<String> {
        match self.shown.first() {
            Some(Shown::Joined { members, .. }) => members.clone(),
            other => panic!("a stream that starts with {other:?}"),
        }
    }
}

/// One Chat stream, read on a task of its own into a [`Record`].
#[derive(Debug)]
struct Session {
    outbox: mpsc::Sender<ClientEvent>,
    record: watch::Receiver<Record>,
}

impl Session {
    /// Joins and waits for the Joined that opens the stream.
    async fn open(url: &str, room: &str, nick: &str, since: Option<u64>) -> Result<Self, Status> {
        let (outbox, events) = Member::try_join(url, room, nick, since).await?.into_parts();
        let (record, watched) = watch::channel(Record::default());
        tokio::spawn(read_into(events, record));
        let mut session = Self {
            outbox: outbox.unwrap(),
            record: watched,
        };
        let record = session
            .wait_for("Joined", DEADLINE, |r| {
                !r.shown.is_empty() || r.ended.is_some()
            })
            .await;
        assert!(
            matches!(record.shown.first(), Some(Shown::Joined { .. })),
            "{nick}: {record:?}"
        );
        Ok(session)
    }

    /// Waits, at most `within`, until the record satisfies `done`.
    async fn wait_for(
        &mut self,
        what: &str,
        within: Duration,
        done: impl FnMut(&Record) -> bool,
    ) -> Record {
        let waited = timeout(within, self.record.wait_for(done))
            .await
            .map(|record| record.map(|record| record.clone()));
        match waited {
            Ok(Ok(record)) => record,
            _ => panic!("{what}: not within {within:?}; {:?}", self.record()),
        }
    }

    fn record(&self) -> Record {
        self.record.borrow().clone()
    }

    fn is_open(&self) -> bool {
        self.record.borrow().ended.is_none()
    }

    fn joined_members(&self) -> Vec<String> {
        self.record.borrow().joined_members()
    }

    async fn send(&self, event: client_event::Event) {
        let event = ClientEvent { event: Some(event) };
        // A stream the server already ended no longer reads its requests;
        // its record says how it ended.
        let _ = self.outbox.send(event).await;
    }
}

/// Records every event of `events` until the stream ends.
async fn read_into(mut events: Streaming<ServerEvent>, record: watch::Sender<Record>) {
    loop {
        let (shown, ended) = match events.message().await {
            Ok(Some(event)) => (event.event.map(Shown::from), None),
            Ok(None) => (None, Some((Code::Ok, String::new()))),
            Err(status) => (None, Some((status.code(), status.message().to_owned()))),
        };
        let done = ended.is_some();
        record.send_modify(|record| {
            record.shown.extend(shown);
            record.ended = ended;
        });
        if done {
            return;
        }
    }
}

/// What a sayer was told about one line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// It came back to the sayer with this sequence number.
    Acked(u64),
    /// The sayer's stream ended saying the line was not said.
    Refused(String),
    /// The sayer's stream ended saying the line may or may not be stored.
    InDoubt(String),
}

impl Outcome {
    fn is_acked(&self) -> bool {
        matches!(self, Self::Acked(_))
    }
}

/// A line someone said, and what they were told.
#[derive(Debug, Clone)]
struct Said {
    text: String,
    outcome: Outcome,
}

/// A nick in a room across its sessions: a session the server ended is
/// followed by a rejoin with `since_seq`, as the CLI does.
struct Person {
    nick: String,
    room: String,
    url: String,
    /// The `since_seq` of the first session.
    since: Option<u64>,
    sessions: Vec<Session>,
    said: Vec<Said>,
}

impl Person {
    /// Joins, retrying while the replica answers UNAVAILABLE for at most
    /// `within`. A nick nobody holds is never ALREADY_EXISTS.
    async fn join(url: &str, room: &str, nick: &str, since: Option<u64>, within: Duration) -> Self {
        let session = open_within(url, room, nick, since, within, &[Code::Unavailable]).await;
        Self {
            nick: nick.to_owned(),
            room: room.to_owned(),
            url: url.to_owned(),
            since,
            sessions: vec![session],
            said: Vec::new(),
        }
    }

    /// Resumes after the current session ended, with `since_seq` of the
    /// last line (or gap) shown, within `within`. The nick may still be
    /// claimed for the old session for a moment (its release waits for
    /// NATS), as the CLI also expects.
    async fn rejoin(&mut self, within: Duration) {
        assert!(!self.current().is_open(), "{} is still in", self.nick);
        let since = self
            .records()
            .filter_map(|r| r.last_seen())
            .max()
            .unwrap_or(0);
        let retry = [Code::Unavailable, Code::AlreadyExists];
        let session = open_within(
            &self.url,
            &self.room,
            &self.nick,
            Some(since),
            within,
            &retry,
        )
        .await;
        self.sessions.push(session);
    }

    fn current(&mut self) -> &mut Session {
        self.sessions.last_mut().unwrap()
    }

    fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.sessions.iter().map(Session::record)
    }

    fn is_in(&self) -> bool {
        self.sessions.last().is_some_and(Session::is_open)
    }

    /// The first sequence number this person's streams account for.
    fn first_seq(&self) -> u64 {
        match self.since {
            Some(since) => since + 1,
            None => match self.sessions[0].record().shown.first() {
                Some(Shown::Joined { last_seq: 0, .. }) => 1,
                other => panic!("{} joined a room with history: {other:?}", self.nick),
            },
        }
    }

    /// Says `text` and waits until it comes back or the stream ends.
    async fn say(&mut self, text: &str) -> &Outcome {
        let nick = self.nick.clone();
        let session = self.current();
        assert!(session.is_open(), "{nick} says {text:?} outside the room");
        let say = Say { text: text.into() };
        session.send(client_event::Event::Say(say)).await;
        let record = session
            .wait_for(&format!("{nick}'s {text:?}"), DEADLINE, |r| {
                r.echo(&nick, text).is_some() || r.ended.is_some()
            })
            .await;
        let outcome = match (record.echo(&nick, text), record.ended) {
            (Some(seq), _) => Outcome::Acked(seq),
            (None, Some((Code::Unavailable, why))) if why.contains("may have been") => {
                Outcome::InDoubt(why)
            }
            (None, Some((Code::Unavailable, why))) => Outcome::Refused(why),
            (None, ended) => panic!("{nick}'s {text:?}: the stream ended with {ended:?}"),
        };
        self.said.push(Said {
            text: text.to_owned(),
            outcome,
        });
        &self.said.last().unwrap().outcome
    }

    /// Says goodbye and waits until the server ends the stream with OK.
    async fn leave(&mut self) {
        let nick = self.nick.clone();
        let session = self.current();
        session.send(client_event::Event::Leave(Leave {})).await;
        let record = session
            .wait_for(&format!("{nick}'s leave"), DEADLINE, |r| r.ended.is_some())
            .await;
        assert_eq!(record.ended, Some((Code::Ok, String::new())), "{nick}");
    }

    /// Waits until the current session has shown everything up to `last_seq`.
    async fn caught_up(&mut self, last_seq: u64) {
        let what = format!("{} catching up to {last_seq}", self.nick);
        self.current()
            .wait_for(&what, RECOVERY, |r| r.last_seen() >= Some(last_seq))
            .await;
    }
}

/// Opens a session, retrying on the `retry` codes for at most `within`.
async fn open_within(
    url: &str,
    room: &str,
    nick: &str,
    since: Option<u64>,
    within: Duration,
    retry: &[Code],
) -> Session {
    let until = Instant::now() + within;
    loop {
        match Session::open(url, room, nick, since).await {
            Ok(session) => return session,
            Err(status) if retry.contains(&status.code()) && Instant::now() < until => {
                sleep(RETRY_PAUSE).await;
            }
            Err(status) => {
                panic!("{nick} cannot join {room} on {url} within {within:?}: {status:?}")
            }
        }
    }
}

/// A chatter's lines: when it started saying each, and when and what it was
/// told (`None` while it waits to learn).
#[derive(Debug, Clone, Default)]
struct Outcomes(Vec<(Instant, Option<(Instant, Outcome)>)>);

impl Outcomes {
    /// Whether the latest line is waiting for its fate.
    fn in_flight(&self) -> bool {
        self.0.last().is_some_and(|(_, told)| told.is_none())
    }

    /// Whether some line was being said at `at` or later: started then, or
    /// not yet settled, or settled then.
    fn said_since(&self, at: Instant) -> bool {
        self.0
            .iter()
            .any(|(said, told)| *said >= at || told.as_ref().is_none_or(|(when, _)| *when >= at))
    }

    /// Lines started since `since` that came back.
    fn acked_after(&self, since: Instant) -> usize {
        self.0
            .iter()
            .filter(|(said, told)| {
                *said >= since && told.as_ref().is_some_and(|(_, outcome)| outcome.is_acked())
            })
            .count()
    }
}

/// A person saying numbered lines at a steady pace, through whatever
/// happens: when its session ends it rejoins and goes on.
struct Chatter {
    task: JoinHandle<Person>,
    outcomes: watch::Receiver<Outcomes>,
}

impl Chatter {
    fn start(mut person: Person, stop: watch::Receiver<bool>) -> Self {
        let (report, outcomes) = watch::channel(Outcomes::default());
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(PACE);
            for n in 1.. {
                ticks.tick().await;
                if *stop.borrow() {
                    break;
                }
                if !person.current().is_open() {
                    person.rejoin(DEADLINE).await;
                }
                let text = format!("{} {n}", person.nick);
                report.send_modify(|o| o.0.push((Instant::now(), None)));
                let outcome = person.say(&text).await.clone();
                report.send_modify(|o| {
                    if let Some((_, told)) = o.0.last_mut() {
                        *told = Some((Instant::now(), outcome));
                    }
                });
            }
            person
        });
        Self { task, outcomes }
    }

    async fn wait_for(
        &mut self,
        what: &str,
        within: Duration,
        done: impl FnMut(&Outcomes) -> bool,
    ) {
        let waited = timeout(within, self.outcomes.wait_for(done))
            .await
            .is_ok_and(|watched| watched.is_ok());
        assert!(
            waited,
            "{what}: not within {within:?}; {:?}",
            *self.outcomes.borrow()
        );
    }

    async fn stop(self) -> Person {
        timeout(DEADLINE, self.task).await.unwrap().unwrap()
    }
}
