//! One chat user's session, whatever carries its lines: before joining it
//! takes the [`command`](super::command)s; once in a room it says every line
//! and relays the room's events as text ([`render`](super::render)), until
//! `bye`, the client going, idleness, or the server draining.

use std::{future::Future, time::Duration};

use futures_util::{Stream, StreamExt as _};
use quartet_proto::chat::v1::{
    ClientEvent, Join, Leave, Say, ServerEvent, client_event, server_event,
};
use quartet_runtime::DrainSignal;
use tokio::{
    sync::mpsc,
    time::{Instant, sleep_until, timeout},
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::{
    command::{self, Command, JoinMode, RoomLine},
    render,
};
use crate::{
    reply::{self, Reply, err, status_line},
    upstreams::Upstreams,
};

/// Client events queued for the upstream stream; a client typing faster than
/// the service takes lines waits here (and then at its socket).
const OUTBOX: usize = 16;

/// What the transport read from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A line of text.
    Line(String),
    /// A line that is not UTF-8.
    NotUtf8,
    /// A line over the limit; the session ends.
    TooLong,
}

/// Where a session's lines go: a TCP connection, or datagrams to a UDP peer.
pub trait LineSink: Send {
    /// Sends one line (the transport adds the line ending).
    fn send(&mut self, line: &str) -> impl Future<Output = std::io::Result<()>> + Send;
}

/// A session's place in a room.
struct InRoom {
    /// Our nick as the service spells it (NFKC), to tell our lines from others'.
    nick: String,
    outbox: mpsc::Sender<ClientEvent>,
    events: Streaming<ServerEvent>,
    /// Lines up to this seq are history, shown even when they are ours.
    history_until: u64,
    /// Whether room lines are numbered (`JOIN .. SEQ` or `SINCE`).
    numbered: bool,
    left: bool,
}

/// What to do after a line or event.
enum Next {
    Continue,
    Close,
}

/// One session's state: the nick chosen, and the room once joined.
struct Session<'a, S> {
    upstreams: &'a Upstreams,
    sink: S,
    nick: Option<String>,
    room: Option<InRoom>,
}

/// Runs one session until it ends.
pub async fn run<I, S>(
    upstreams: Upstreams,
    mut input: I,
    sink: S,
    idle: Duration,
    drain: DrainSignal,
) where
    I: Stream<Item = Input> + Unpin + Send,
    S: LineSink,
{
    let mut session = Session {
        upstreams: &upstreams,
        sink,
        nick: None,
        room: None,
    };
    let mut deadline = Instant::now() + idle;
    loop {
        let next = tokio::select! {
            input = input.next() => {
                deadline = Instant::now() + idle;
                session.input(input).await
            }
            event = next_event(&mut session.room) => {
                deadline = Instant::now() + idle;
                session.relay(event).await
            }
            () = sleep_until(deadline) => {
                session.farewell(&err("DEADLINE_EXCEEDED", "idle timeout")).await
            }
            () = drain.draining() => session.farewell("* gateway shutting down").await,
        };
        if matches!(next, Next::Close) {
            break;
        }
    }
    if let Some(joined) = session.room
        && !joined.left
    {
        leave(&joined).await;
    }
}

async fn next_event(room: &mut Option<InRoom>) -> Result<Option<ServerEvent>, tonic::Status> {
    match room {
        Some(joined) => joined.events.message().await,
        None => std::future::pending().await,
    }
}

async fn leave(joined: &InRoom) {
    let leave = ClientEvent {
        event: Some(client_event::Event::Leave(Leave {})),
    };
    let _ = joined.outbox.send(leave).await;
}

impl<S: LineSink> Session<'_, S> {
    /// Sends every line of `reply`; closes when it says so or the client is gone.
    async fn answer(&mut self, reply: &Reply) -> Next {
        for line in reply.lines() {
            if self.sink.send(line).await.is_err() {
                return Next::Close;
            }
        }
        if reply.closes() {
            Next::Close
        } else {
            Next::Continue
        }
    }

    /// A last line, then the session ends.
    async fn farewell(&mut self, line: &str) -> Next {
        let _ = self.sink.send(line).await;
        Next::Close
    }

    async fn input(&mut self, input: Option<Input>) -> Next {
        match input {
            None => Next::Close,
            Some(Input::TooLong) => self.answer(&reply::too_long()).await,
            Some(Input::NotUtf8) => self.answer(&reply::not_utf8()).await,
            Some(Input::Line(line)) => {
                if self.room.is_some() {
                    self.in_room(command::parse_in_room(line)).await
                } else {
                    match command::parse(&line) {
                        Ok(command) => self.apply(command).await,
                        Err(reply) => self.answer(&reply).await,
                    }
                }
            }
        }
    }

    /// Carries out a command sent before joining.
    async fn apply(&mut self, command: Command) -> Next {
        match command {
            Command::Nick(nick) => {
                let answer = Reply::line(format!("OK nick {nick}"));
                self.nick = Some(nick);
                self.answer(&answer).await
            }
            Command::Join { room, mode } => {
                let Some(nick) = self.nick.clone() else {
                    let refusal = err("FAILED_PRECONDITION", "choose a name first: NICK <name>");
                    return self.answer(&Reply::line(refusal)).await;
                };
                match join(self.upstreams, &room, &nick, mode).await {
                    Ok((joined, line)) => {
                        self.room = Some(joined);
                        self.answer(&Reply::line(line)).await
                    }
                    Err(line) => self.answer(&Reply::line(line)).await,
                }
            }
            Command::Quit => self.answer(&reply::quit()).await,
        }
    }

    /// Says a line to the room, or leaves on `bye`.
    async fn in_room(&mut self, line: RoomLine) -> Next {
        let Some(joined) = self.room.as_mut() else {
            return Next::Continue;
        };
        let text = match line {
            RoomLine::Bye => {
                leave(joined).await;
                joined.left = true;
                return self.answer(&reply::quit()).await;
            }
            RoomLine::Say(text) => text,
        };
        let say = ClientEvent {
            event: Some(client_event::Event::Say(Say { text })),
        };
        if joined.outbox.send(say).await.is_err() {
            return self
                .farewell(&err("UNAVAILABLE", "the chat stream has ended"))
                .await;
        }
        Next::Continue
    }

    /// Writes a room event as text.
    async fn relay(&mut self, event: Result<Option<ServerEvent>, tonic::Status>) -> Next {
        let Some(joined) = self.room.as_mut() else {
            return Next::Continue;
        };
        let event = match event {
            Ok(Some(ServerEvent { event: Some(event) })) => event,
            Ok(Some(ServerEvent { event: None })) => return Next::Continue,
            Ok(None) => {
                joined.left = true;
                return self
                    .farewell(&err("UNAVAILABLE", "the chat service ended the session"))
                    .await;
            }
            Err(status) => {
                joined.left = true;
                return self.farewell(&status_line(&status)).await;
            }
        };
        let view = render::View {
            own: &joined.nick,
            history_until: joined.history_until,
            numbered: joined.numbered,
        };
        match render::event(&event, view) {
            Some(line) => self.answer(&Reply::line(line)).await,
            None => Next::Continue,
        }
    }
}

/// Opens the room's stream and waits for the server to let us in; the answer
/// line either way.
async fn join(
    upstreams: &Upstreams,
    room: &str,
    nick: &str,
    mode: JoinMode,
) -> Result<(InRoom, String), String> {
    let (outbox, outgoing) = mpsc::channel(OUTBOX);
    let join = ClientEvent {
        event: Some(client_event::Event::Join(Join {
            room: room.to_owned(),
            nick: nick.to_owned(),
            since_seq: mode.since(),
        })),
    };
    // The receiver is alive until the call below takes it.
    let _ = outbox.send(join).await;
    let mut client = upstreams.chat.clone();
    let mut events = client
        .chat(ReceiverStream::new(outgoing))
        .await
        .map_err(|status| status_line(&status))?
        .into_inner();
    let first = timeout(upstreams.timeout, events.message())
        .await
        .map_err(|_| {
            err(
                "DEADLINE_EXCEEDED",
                "the chat service did not answer the join",
            )
        })?;
    match first {
        Ok(Some(ServerEvent {
            event: Some(server_event::Event::Joined(joined)),
        })) => {
            let line = render::joined(&joined);
            let in_room = InRoom {
                nick: joined.nick,
                outbox,
                events,
                history_until: joined.last_seq,
                numbered: mode.numbered(),
                left: false,
            };
            Ok((in_room, line))
        }
        Ok(_) => Err(err("UNAVAILABLE", "the chat service ended the join")),
        Err(status) => Err(status_line(&status)),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, Mutex},
        time::Duration,
    };

    use proptest::prelude::*;
    use quartet_runtime::DrainSignal;

    use super::{Input, LineSink, run};
    use crate::{options::UpstreamOptions, upstreams::Upstreams};

    /// Collects what a session sends.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<String>>>);

    impl LineSink for Recorded {
        async fn send(&mut self, line: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(line.to_owned());
            Ok(())
        }
    }

    fn upstreams() -> Upstreams {
        let nowhere = UpstreamOptions {
            chat_addr: "http://127.0.0.1:9".into(),
            ..UpstreamOptions::default()
        };
        Upstreams::new(&nowhere, Duration::from_millis(200)).unwrap()
    }

    async fn session(inputs: Vec<Input>) -> Vec<String> {
        let sink = Recorded::default();
        let stream = futures_util::stream::iter(inputs);
        run(
            upstreams(),
            stream,
            sink.clone(),
            Duration::from_secs(5),
            DrainSignal::never(),
        )
        .await;
        sink.0.lock().unwrap().clone()
    }

    fn line(text: &str) -> Input {
        Input::Line(text.to_owned())
    }

    #[tokio::test]
    async fn before_joining_only_commands_are_understood() {
        let answers = session(vec![
            line("hola"),
            line("JOIN lobby"),
            line("NICK two words"),
            line("nick ana"),
            Input::NotUtf8,
            line("quit"),
            line("never read"),
        ])
        .await;
        assert_eq!(
            answers,
            [
                "ERR FAILED_PRECONDITION join a room first: NICK <name>, then JOIN <room>",
                "ERR FAILED_PRECONDITION choose a name first: NICK <name>",
                "ERR INVALID_ARGUMENT usage: NICK <name> (no spaces)",
                "OK nick ana",
                "ERR INVALID_ARGUMENT line is not valid UTF-8",
                "OK bye",
            ]
        );
    }

    #[tokio::test]
    async fn a_join_the_service_cannot_answer_is_an_unavailable_error() {
        let answers = session(vec![line("NICK ana"), line("JOIN lobby")]).await;
        assert_eq!(answers[0], "OK nick ana");
        assert!(answers[1].starts_with("ERR UNAVAILABLE "), "{answers:?}");
    }

    #[tokio::test]
    async fn a_line_over_the_limit_ends_the_session() {
        let answers = session(vec![Input::TooLong, line("NICK never")]).await;
        assert_eq!(answers, ["ERR line too long"]);
    }

    proptest! {
        #[test]
        fn any_line_before_joining_gets_exactly_one_well_formed_answer(text in "\\PC{0,60}") {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let verb = text.split(' ').next().unwrap_or_default().to_ascii_uppercase();
            // JOIN with a nick set is an upstream call; HELP answers several lines.
            prop_assume!(verb != "HELP");
            let answers = runtime.block_on(session(vec![line(&text)]));
            prop_assert_eq!(answers.len(), 1, "{:?}", answers);
            prop_assert!(answers[0].starts_with("OK ") || answers[0].starts_with("ERR "), "{:?}", answers);
        }
    }
}
