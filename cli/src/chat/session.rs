//! One Chat stream at a time: join (from where the session stopped), then
//! forward what the member types and show what the room says, until the
//! member leaves or the stream breaks; and the pause before a rejoin.

use std::time::Duration;

use anyhow::Context as _;
use quartet_proto::chat::v1::{
    ClientEvent, Join, Leave, Say, ServerEvent, client_event, server_event::Event,
};
use quartet_runtime::status_names::code_name;
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming};

use super::{
    input::{INPUT_QUEUE, Input},
    progress::Progress,
    screen::Screen,
};
use crate::client::ClientOptions;

/// Client events queued on one stream ahead of the transport.
const OUTBOX: usize = 16;
/// At the end of piped stdin, longest to wait for one's own lines to come back.
const ECHO_WAIT: Duration = Duration::from_secs(10);
/// First pause before rejoining after a broken stream; doubles up to the max.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(200);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);
/// How long a rejoin keeps trying when the nick is still held: the server may
/// not have noticed the old stream's end yet (over NATS, a crashed replica's
/// claim lives 30s).
const NICK_RELEASE_WAIT: Duration = Duration::from_secs(40);

/// How one stream ended.
pub(super) enum StreamEnd {
    /// We left: the session is over.
    Left,
    /// Broken or told to go away: rejoin.
    Resume(String),
}

/// An open Chat stream: what we send on it, and what it brings.
pub(super) type Stream = (mpsc::Sender<ClientEvent>, Streaming<ServerEvent>);

/// Opens a Chat stream and sends the Join: from where we stopped when we have
/// seen something, else the room's recent history (or `--since`).
pub(super) async fn join(client: &ClientOptions, progress: &Progress) -> Result<Stream, Status> {
    let mut chat = client.connect_chat().await?;
    let (outbox, outgoing) = mpsc::channel(OUTBOX);
    let join = ClientEvent {
        event: Some(client_event::Event::Join(Join {
            room: progress.room.clone(),
            nick: progress.nick.clone(),
            since_seq: progress.since(),
        })),
    };
    // The receiver is alive: the send cannot fail.
    let _ = outbox.send(join).await;
    let events = tokio::time::timeout(client.timeout, chat.chat(ReceiverStream::new(outgoing)))
        .await
        .map_err(|_| Status::deadline_exceeded("no answer to Join"))??
        .into_inner();
    Ok((outbox, events))
}

/// Runs one stream: says the backlog, then forwards input and shows events,
/// until we leave or it breaks.
pub(super) async fn session(
    screen: &Screen,
    progress: &mut Progress,
    input: &mut mpsc::Receiver<Input>,
    (outbox, mut events): Stream,
    interactive: bool,
) -> anyhow::Result<StreamEnd> {
    let closed = || StreamEnd::Resume("the stream closed".to_owned());
    if !say_backlog(progress, &outbox).await {
        return Ok(closed());
    }
    let mut input_open = !progress.leaving;
    let mut echo_deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            typed = input.recv(), if input_open => {
                let event = match typed {
                    Some(Input::Say(text)) => {
                        progress.said();
                        say_event(text)
                    }
                    Some(Input::Leave) | None => {
                        input_open = false;
                        progress.leaving = true;
                        if !interactive && progress.unconfirmed > 0 {
                            // Piped: first see our own lines come back.
                            echo_deadline = Some(Instant::now() + ECHO_WAIT);
                            continue;
                        }
                        leave_event()
                    }
                };
                if outbox.send(event).await.is_err() {
                    return Ok(closed());
                }
            }
            () = until(echo_deadline) => {
                echo_deadline = None;
                let _ = outbox.send(leave_event()).await;
            }
            received = events.message() => {
                let event = match received {
                    Ok(Some(ServerEvent { event: Some(event) })) => event,
                    Ok(Some(ServerEvent { event: None })) => continue,
                    Ok(None) if progress.leaving => return Ok(StreamEnd::Left),
                    Ok(None) => return Ok(StreamEnd::Resume("the server ended the stream".to_owned())),
                    Err(status) if retryable(&status) => {
                        let why = format!("{}: {}", code_name(status.code()), status.message());
                        return Ok(StreamEnd::Resume(why));
                    }
                    Err(status) => return Err(status).context("the chat stream failed"),
                };
                if let Some(end) = show(screen, progress, event).await? {
                    return Ok(end);
                }
                if echo_deadline.is_some() && progress.unconfirmed == 0 {
                    echo_deadline = None;
                    let _ = outbox.send(leave_event()).await;
                }
            }
        }
    }
}

/// Says the lines typed while no stream was open, then leaves if the member
/// left meanwhile; false when the stream closed under us.
async fn say_backlog(progress: &mut Progress, outbox: &mpsc::Sender<ClientEvent>) -> bool {
    while let Some(text) = progress.backlog.pop_front() {
        progress.said();
        if outbox.send(say_event(text)).await.is_err() {
            return false;
        }
    }
    if progress.leaving {
        let _ = outbox.send(leave_event()).await;
    }
    true
}

/// Completes at `deadline`; never when there is none.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn say_event(text: String) -> ClientEvent {
    ClientEvent {
        event: Some(client_event::Event::Say(Say { text })),
    }
}

fn leave_event() -> ClientEvent {
    ClientEvent {
        event: Some(client_event::Event::Leave(Leave {})),
    }
}

/// Shows one event and takes it into the progress; `Some` when it ends the
/// stream.
async fn show(
    screen: &Screen,
    progress: &mut Progress,
    event: Event,
) -> anyhow::Result<Option<StreamEnd>> {
    if let Event::Joined(joined) = &event
        && progress.sequence_restarted(joined)
    {
        screen
            .note("* the room's sequence restarted (the server lost its history)")
            .await?;
    }
    let rejoined = progress.joined_once;
    if !progress.record(&event) {
        return Ok(None);
    }
    screen.show_event(&event, rejoined).await?;
    let Event::GoingAway(going) = event else {
        return Ok(None);
    };
    Ok(Some(if progress.leaving {
        StreamEnd::Left
    } else {
        StreamEnd::Resume(going.reason)
    }))
}

/// Sleeps `pause` before the next rejoin while still listening to the member:
/// lines go to the backlog, and leaving ends the wait (returns true).
pub(super) async fn wait_to_retry(
    pause: Duration,
    input: &mut mpsc::Receiver<Input>,
    progress: &mut Progress,
    screen: &Screen,
) -> anyhow::Result<bool> {
    let until = Instant::now() + pause;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(until) => return Ok(false),
            typed = input.recv() => match typed {
                Some(Input::Say(text)) => {
                    if progress.backlog.len() >= INPUT_QUEUE
                        && let Some(dropped) = progress.backlog.pop_front()
                    {
                        screen
                            .note(&format!("* not connected; dropped the line {dropped:?}"))
                            .await?;
                    }
                    progress.backlog.push_back(text);
                }
                Some(Input::Leave) | None => return Ok(true),
            },
        }
    }
}

/// Codes worth a rejoin: the server or the path to it, not our request.
fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::AlreadyExists
    )
}

/// When to try joining again after a rejoin failed.
pub(super) struct Rejoin {
    pause: Duration,
    /// When a rejoin was first refused because the nick is still held.
    nick_refused_since: Option<Instant>,
}

impl Rejoin {
    pub(super) fn new() -> Self {
        Self {
            pause: FIRST_RETRY_PAUSE,
            nick_refused_since: None,
        }
    }

    /// A join worked: the next failure starts over.
    pub(super) fn joined(&mut self) {
        self.pause = FIRST_RETRY_PAUSE;
        self.nick_refused_since = None;
    }

    /// The pause before the next rejoin after one failed with `status`;
    /// `None` when it is not worth another.
    pub(super) fn wait_after(&mut self, status: &Status) -> Option<Duration> {
        if !retryable(status) {
            return None;
        }
        if status.code() == Code::AlreadyExists {
            let since = *self.nick_refused_since.get_or_insert_with(Instant::now);
            if since.elapsed() > NICK_RELEASE_WAIT {
                return None;
            }
        }
        let pause = self.pause;
        self.pause = (pause * 2).min(MAX_RETRY_PAUSE);
        Some(pause)
    }
}
