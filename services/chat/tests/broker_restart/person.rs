//! [`Person`]: one member across its sessions, and everything each session
//! showed it ([`Record`], [`Shown`]) and told it ([`Outcome`]).

use std::time::Duration;

use quartet_proto::chat::v1::{
    ClientEvent, Leave, Say, ServerEvent, client_event, server_event::Event,
};
use tokio::{
    sync::{mpsc, watch},
    time::{Instant, sleep, timeout},
};
use tonic::{Code, Status, Streaming};

use crate::{
    RECOVERY,
    member::{DEADLINE, Member},
};

/// Between two attempts to join while a replica cannot serve yet.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// One event a member was shown, as far as this test cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shown {
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
pub(crate) struct Record {
    pub(crate) shown: Vec<Shown>,
    /// The stream's final status (`Code::Ok` for a clean end) and message.
    pub(crate) ended: Option<(Code, String)>,
}

impl Record {
    /// The sequence number of the line `nick` said as `text`, if shown.
    pub(crate) fn echo(&self, nick: &str, text: &str) -> Option<u64> {
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
    pub(crate) fn last_seen(&self) -> Option<u64> {
        self.shown.iter().rev().find_map(|shown| match shown {
            Shown::Line { seq, .. } => Some(*seq),
            Shown::Gap { to, .. } => Some(*to),
            _ => None,
        })
    }

    pub(crate) fn joined_members(&self) -> Vec<String> {
        match self.shown.first() {
            Some(Shown::Joined { members, .. }) => members.clone(),
            other => panic!("a stream that starts with {other:?}"),
        }
    }
}

/// One Chat stream, read on a task of its own into a [`Record`].
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) outbox: mpsc::Sender<ClientEvent>,
    pub(crate) record: watch::Receiver<Record>,
}

impl Session {
    /// Joins and waits for the Joined that opens the stream.
    pub(crate) async fn open(
        url: &str,
        room: &str,
        nick: &str,
        since: Option<u64>,
    ) -> Result<Self, Status> {
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
    pub(crate) async fn wait_for(
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

    pub(crate) fn record(&self) -> Record {
        self.record.borrow().clone()
    }

    pub(crate) fn is_open(&self) -> bool {
        self.record.borrow().ended.is_none()
    }

    pub(crate) fn joined_members(&self) -> Vec<String> {
        self.record.borrow().joined_members()
    }

    pub(crate) async fn send(&self, event: client_event::Event) {
        let event = ClientEvent { event: Some(event) };
        // A stream the server already ended no longer reads its requests;
        // its record says how it ended.
        let _ = self.outbox.send(event).await;
    }
}

/// Records every event of `events` until the stream ends.
pub(crate) async fn read_into(mut events: Streaming<ServerEvent>, record: watch::Sender<Record>) {
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
pub(crate) enum Outcome {
    /// It came back to the sayer with this sequence number.
    Acked(u64),
    /// The sayer's stream ended saying the line was not said.
    Refused(String),
    /// The sayer's stream ended saying the line may or may not be stored.
    InDoubt(String),
}

impl Outcome {
    pub(crate) fn is_acked(&self) -> bool {
        matches!(self, Self::Acked(_))
    }
}

/// A line someone said, and what they were told.
#[derive(Debug, Clone)]
pub(crate) struct Said {
    pub(crate) text: String,
    pub(crate) outcome: Outcome,
}

/// A nick in a room across its sessions: a session the server ended is
/// followed by a rejoin with `since_seq`, as the CLI does.
pub(crate) struct Person {
    pub(crate) nick: String,
    pub(crate) room: String,
    pub(crate) url: String,
    /// The `since_seq` of the first session.
    pub(crate) since: Option<u64>,
    pub(crate) sessions: Vec<Session>,
    pub(crate) said: Vec<Said>,
}

impl Person {
    /// Joins, retrying while the replica answers UNAVAILABLE for at most
    /// `within`. A nick nobody holds is never ALREADY_EXISTS.
    pub(crate) async fn join(
        url: &str,
        room: &str,
        nick: &str,
        since: Option<u64>,
        within: Duration,
    ) -> Self {
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
    pub(crate) async fn rejoin(&mut self, within: Duration) {
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

    pub(crate) fn current(&mut self) -> &mut Session {
        self.sessions.last_mut().unwrap()
    }

    pub(crate) fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.sessions.iter().map(Session::record)
    }

    pub(crate) fn is_in(&self) -> bool {
        self.sessions.last().is_some_and(Session::is_open)
    }

    /// The first sequence number this person's streams account for.
    pub(crate) fn first_seq(&self) -> u64 {
        match self.since {
            Some(since) => since + 1,
            None => match self.sessions[0].record().shown.first() {
                Some(Shown::Joined { last_seq: 0, .. }) => 1,
                other => panic!("{} joined a room with history: {other:?}", self.nick),
            },
        }
    }

    /// Says `text` and waits until it comes back or the stream ends.
    pub(crate) async fn say(&mut self, text: &str) -> &Outcome {
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
    pub(crate) async fn leave(&mut self) {
        let nick = self.nick.clone();
        let session = self.current();
        session.send(client_event::Event::Leave(Leave {})).await;
        let record = session
            .wait_for(&format!("{nick}'s leave"), DEADLINE, |r| r.ended.is_some())
            .await;
        assert_eq!(record.ended, Some((Code::Ok, String::new())), "{nick}");
    }

    /// Waits until the current session has shown everything up to `last_seq`.
    pub(crate) async fn caught_up(&mut self, last_seq: u64) {
        let what = format!("{} catching up to {last_seq}", self.nick);
        self.current()
            .wait_for(&what, RECOVERY, |r| r.last_seen() >= Some(last_seq))
            .await;
    }
}

/// Opens a session, retrying on the `retry` codes for at most `within`.
pub(crate) async fn open_within(
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
