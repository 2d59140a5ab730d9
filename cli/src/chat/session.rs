//! One Chat stream at a time: join (from where the session stopped), then
//! forward what the member types and show what the room says, until the
//! member leaves or the stream breaks.

use std::time::Duration;

use anyhow::Context as _;
use quartet_proto::chat::v1::{
    ClientEvent, Join, Leave, Say, ServerEvent, client_event, server_event::Event,
};
use quartet_runtime::status_names::code_name;
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::{input::Input, progress::Progress, screen::Screen};
use crate::{client::ClientOptions, resume::is_transient};

/// Client events queued on one stream ahead of the transport.
const OUTBOX: usize = 16;
/// At the end of piped stdin, longest to wait for one's own lines to come back.
const ECHO_WAIT: Duration = Duration::from_secs(10);

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
                    Err(status) if is_transient(&status) => {
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
