//! `quartet chat ROOM --nick NAME`: a member of a chat room.
//!
//! On a terminal it is interactive: a line editor (rustyline) keeps what you
//! are typing intact while the room's lines are printed above it; `bye`,
//! Ctrl-D or Ctrl-C leave. With stdin not a terminal it says each stdin line
//! and prints events, so it scripts; at the end of stdin it waits for its own
//! lines to come back, then leaves.
//!
//! The session resumes by itself: when the stream breaks (server restart,
//! GoingAway, network), it rejoins with `since_seq` of the last line it showed,
//! so nothing is shown twice and nothing is lost silently (what the server no
//! longer has arrives as a Gap).

use std::{
    collections::VecDeque,
    io::IsTerminal as _,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::Args;
use quartet_proto::chat::v1::{
    ClientEvent, Join, Leave, LeaveReason, NoticeKind, Say, ServerEvent, client_event,
    server_event::Event,
};
use quartet_runtime::status_names::code_name;
use rustyline::{DefaultEditor, ExternalPrinter as _, error::ReadlineError};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming};

use crate::{
    client::ClientOptions,
    output::{OutputFormat, Printer},
};

/// Lines typed (or read from stdin) not yet handed to the stream; bounds memory
/// while disconnected or when stdin is much faster than the server.
const INPUT_QUEUE: usize = 64;
/// Client events queued on one stream ahead of the transport.
const OUTBOX: usize = 16;
/// Events waiting for the terminal printer thread.
const PRINT_QUEUE: usize = 256;
/// First pause before rejoining after a broken stream; doubles up to the max.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(200);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);
/// How long a rejoin keeps trying when the nick is still held: the server may
/// not have noticed the old stream's end yet (over NATS, a crashed replica's
/// claim lives 30s).
const NICK_RELEASE_WAIT: Duration = Duration::from_secs(40);
/// At the end of piped stdin, longest to wait for one's own lines to come back.
const ECHO_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    /// The room to join.
    room: String,
    /// Your name in the room.
    #[arg(long)]
    nick: String,
    /// Start after this sequence number (receive exactly what came after it)
    /// instead of the room's recent history.
    #[arg(long)]
    since: Option<u64>,
}

/// What the member typed.
#[derive(Debug)]
enum Input {
    Say(String),
    Leave,
}

/// Where events are shown: stdout, or above the line being edited.
enum Screen {
    Plain(Printer),
    Terminal {
        format: OutputFormat,
        lines: mpsc::Sender<String>,
    },
}

impl Screen {
    /// Shows one event: `text` on a text screen, escaped (it carries other
    /// people's words, which must never reach the terminal as control), or
    /// `value` as a JSON line.
    async fn show(&self, text: &str, value: &impl Serialize) -> anyhow::Result<()> {
        let text = quartet_text::printable(text);
        match self {
            Self::Plain(printer) => Ok(printer.print(&text, value)?),
            Self::Terminal { format, lines } => {
                let line = match format {
                    OutputFormat::Text => text.into_owned(),
                    OutputFormat::Json => serde_json::to_string(value)?,
                };
                // The printer thread only stops when the terminal is gone.
                let _ = lines.send(line).await;
                Ok(())
            }
        }
    }

    async fn note(&self, text: &str) -> anyhow::Result<()> {
        self.show(text, &EventJson::Note { text }).await
    }
}

/// One event as a JSON line.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum EventJson<'a> {
    Joined {
        room: &'a str,
        nick: &'a str,
        members: &'a [String],
        last_seq: u64,
    },
    Message {
        seq: u64,
        id: &'a str,
        room: &'a str,
        nick: &'a str,
        text: &'a str,
        time: Option<String>,
    },
    MemberJoined {
        room: &'a str,
        nick: &'a str,
    },
    MemberLeft {
        room: &'a str,
        nick: &'a str,
        reason: &'a str,
    },
    Gap {
        from_seq: u64,
        to_seq: u64,
    },
    Notice {
        kind: &'a str,
        message: &'a str,
    },
    GoingAway {
        reason: &'a str,
    },
    Note {
        text: &'a str,
    },
}

/// What the session knows across reconnects.
struct Progress {
    room: String,
    nick: String,
    /// The last sequence number shown (a line, or the end of a Gap).
    last_seen: Option<u64>,
    /// The room's last sequence number at the first join: where a rejoin
    /// starts when no line was shown yet (history before it is not a promise;
    /// what came after it is).
    joined_at: Option<u64>,
    /// Lines said and not yet seen back (or refused with a Notice).
    unconfirmed: usize,
    joined_once: bool,
    leaving: bool,
    /// Lines typed while no stream was open, said once one is (at most
    /// INPUT_QUEUE; past that the oldest is dropped, with a note).
    backlog: VecDeque<String>,
}

/// How one stream ended.
enum StreamEnd {
    /// We left: the session is over.
    Left,
    /// Broken or told to go away: rejoin.
    Resume(String),
}

pub(crate) async fn run(client: &ClientOptions, args: ChatArgs) -> anyhow::Result<ExitCode> {
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let (inputs, mut input) = mpsc::channel(INPUT_QUEUE);
    let mut progress = Progress {
        room: args.room,
        nick: args.nick,
        last_seen: args.since,
        joined_at: None,
        unconfirmed: 0,
        joined_once: false,
        leaving: false,
        backlog: VecDeque::new(),
    };
    let mut screen = Screen::Plain(Printer::new(client.output));
    let mut pause = FIRST_RETRY_PAUSE;
    let mut nick_wait_started: Option<Instant> = None;
    let mut editor_started = false;
    loop {
        let events = match join(client, &progress).await {
            Ok(events) => events,
            Err(status) if progress.joined_once && retryable(&status) => {
                nick_wait_started = match (status.code(), nick_wait_started) {
                    (Code::AlreadyExists, None) => Some(Instant::now()),
                    (Code::AlreadyExists, Some(started))
                        if started.elapsed() > NICK_RELEASE_WAIT =>
                    {
                        return Err(status.into());
                    }
                    (_, started) => started,
                };
                screen
                    .note(&format!(
                        "* cannot rejoin ({}: {}); retrying in {} ms",
                        code_name(status.code()),
                        status.message(),
                        pause.as_millis()
                    ))
                    .await?;
                if wait_to_retry(pause, &mut input, &mut progress, &screen).await? {
                    // Left while disconnected: nothing more to say to anyone.
                    return Ok(ExitCode::SUCCESS);
                }
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
                continue;
            }
            Err(status) => return Err(status.into()),
        };
        nick_wait_started = None;
        if !editor_started {
            // Only once the first join worked: a refused nick exits at once,
            // with the terminal untouched.
            editor_started = true;
            if interactive {
                screen = start_editor(inputs.clone(), client.output)?;
            } else {
                tokio::spawn(read_stdin(inputs.clone()));
            }
        }
        let (outbox, end) = (events.0, events.1);
        let ended = session(&screen, &mut progress, &mut input, outbox, end, interactive).await;
        let ended = match ended {
            Ok(ended) => ended,
            Err(error) if interactive => {
                // The line editor holds the terminal in raw mode: let it give
                // the terminal back before the process exits.
                screen
                    .note(&format!("* session over: {error:#}; press Ctrl-D to exit"))
                    .await?;
                while let Some(typed) = input.recv().await {
                    if matches!(typed, Input::Leave) {
                        break;
                    }
                }
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        match ended {
            StreamEnd::Left => return Ok(ExitCode::SUCCESS),
            // It broke while we were leaving: the server counts us gone.
            StreamEnd::Resume(_) if progress.leaving => return Ok(ExitCode::SUCCESS),
            StreamEnd::Resume(why) => {
                screen
                    .note(&format!("* disconnected ({why}); rejoining"))
                    .await?;
                pause = FIRST_RETRY_PAUSE;
            }
        }
    }
}

/// Sleeps `pause` before the next rejoin while still listening to the member:
/// lines go to the backlog, and leaving ends the wait (returns true).
async fn wait_to_retry(
    pause: Duration,
    input: &mut mpsc::Receiver<Input>,
    progress: &mut Progress,
    screen: &Screen,
) -> anyhow::Result<bool> {
    let until = tokio::time::Instant::now() + pause;
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

/// Opens a Chat stream and sends the Join: from where we stopped when we have
/// seen something, else the room's recent history (or `--since`).
async fn join(
    client: &ClientOptions,
    progress: &Progress,
) -> Result<(mpsc::Sender<ClientEvent>, Streaming<ServerEvent>), Status> {
    let mut chat = client.connect_chat().await?;
    let (outbox, outgoing) = mpsc::channel(OUTBOX);
    let join = ClientEvent {
        event: Some(client_event::Event::Join(Join {
            room: progress.room.clone(),
            nick: progress.nick.clone(),
            since_seq: progress.last_seen.or(progress.joined_at),
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

/// Runs one stream: forwards input, shows events, until we leave or it breaks.
async fn session(
    screen: &Screen,
    progress: &mut Progress,
    input: &mut mpsc::Receiver<Input>,
    outbox: mpsc::Sender<ClientEvent>,
    mut events: Streaming<ServerEvent>,
    interactive: bool,
) -> anyhow::Result<StreamEnd> {
    let mut input_open = !progress.leaving;
    while let Some(text) = progress.backlog.pop_front() {
        progress.unconfirmed += 1;
        if outbox.send(say_event(text)).await.is_err() {
            return Ok(StreamEnd::Resume("the stream closed".to_owned()));
        }
    }
    if progress.leaving {
        let _ = outbox.send(leave_event()).await;
    }
    let mut echo_deadline: Option<tokio::time::Instant> = None;
    loop {
        let echo_wait = async {
            match echo_deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            typed = input.recv(), if input_open => {
                let event = match typed {
                    Some(Input::Say(text)) => {
                        progress.unconfirmed += 1;
                        say_event(text)
                    }
                    Some(Input::Leave) | None => {
                        input_open = false;
                        progress.leaving = true;
                        if interactive || progress.unconfirmed == 0 {
                            leave_event()
                        } else {
                            // Piped: first see our own lines come back.
                            echo_deadline = Some(tokio::time::Instant::now() + ECHO_WAIT);
                            continue;
                        }
                    }
                };
                if outbox.send(event).await.is_err() {
                    return Ok(StreamEnd::Resume("the stream closed".to_owned()));
                }
            }
            () = echo_wait => {
                echo_deadline = None;
                let _ = outbox.send(leave_event()).await;
            }
            event = events.message() => match event {
                Ok(Some(ServerEvent { event: Some(event) })) => {
                    if let Some(end) = show(screen, progress, event).await? {
                        return Ok(end);
                    }
                    if echo_deadline.is_some() && progress.unconfirmed == 0 {
                        echo_deadline = None;
                        let _ = outbox.send(leave_event()).await;
                    }
                }
                Ok(Some(ServerEvent { event: None })) => {}
                Ok(None) if progress.leaving => return Ok(StreamEnd::Left),
                Ok(None) => return Ok(StreamEnd::Resume("the server ended the stream".to_owned())),
                Err(status) if retryable(&status) => {
                    return Ok(StreamEnd::Resume(format!(
                        "{}: {}",
                        code_name(status.code()),
                        status.message()
                    )));
                }
                Err(status) => return Err(status).context("the chat stream failed"),
            }
        }
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

fn leave_reason(reason: LeaveReason) -> &'static str {
    match reason {
        LeaveReason::Bye => "bye",
        LeaveReason::Disconnected => "disconnected",
        LeaveReason::SlowConsumer => "too slow",
        LeaveReason::ServerShutdown => "server shut down",
        LeaveReason::Unspecified => "unknown",
    }
}

fn notice_kind(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::RateLimited => "rate_limited",
        NoticeKind::InvalidMessage => "invalid_message",
        NoticeKind::Unspecified => "notice",
    }
}

/// Shows Joined; notices a room whose sequence restarted (a server that lost
/// its state), so its new lines are not taken for ones already shown.
async fn show_joined(
    screen: &Screen,
    progress: &mut Progress,
    joined: &quartet_proto::chat::v1::Joined,
) -> anyhow::Result<()> {
    if let Some(seen) = progress.last_seen
        && joined.last_seq < seen
    {
        screen
            .note("* the room's sequence restarted (the server lost its history)")
            .await?;
        progress.last_seen = None;
        progress.joined_at = None;
    }
    progress.joined_at.get_or_insert(joined.last_seq);
    let text = if progress.joined_once {
        format!("* rejoined {} as {}", joined.room, joined.nick)
    } else {
        format!(
            "* joined {} as {}; here: {}",
            joined.room,
            joined.nick,
            joined.members.join(", ")
        )
    };
    progress.joined_once = true;
    let json = EventJson::Joined {
        room: &joined.room,
        nick: &joined.nick,
        members: &joined.members,
        last_seq: joined.last_seq,
    };
    screen.show(&text, &json).await
}

/// Shows one event and updates the progress; `Some` when it ends the stream.
async fn show(
    screen: &Screen,
    progress: &mut Progress,
    event: Event,
) -> anyhow::Result<Option<StreamEnd>> {
    match event {
        Event::Joined(joined) => show_joined(screen, progress, &joined).await?,
        Event::Message(message) => {
            if progress.last_seen.is_some_and(|seen| message.seq <= seen) {
                return Ok(None);
            }
            progress.last_seen = Some(message.seq);
            if message.nick == progress.nick {
                progress.unconfirmed = progress.unconfirmed.saturating_sub(1);
            }
            let json = EventJson::Message {
                seq: message.seq,
                id: &message.id,
                room: &message.room,
                nick: &message.nick,
                text: &message.text,
                time: message.time.map(|time| time.to_string()),
            };
            screen
                .show(&format!("<{}> {}", message.nick, message.text), &json)
                .await?;
        }
        Event::MemberJoined(joined) => {
            let json = EventJson::MemberJoined {
                room: &joined.room,
                nick: &joined.nick,
            };
            screen
                .show(&format!("* {} joined", joined.nick), &json)
                .await?;
        }
        Event::MemberLeft(left) => {
            let reason = leave_reason(left.reason());
            let json = EventJson::MemberLeft {
                room: &left.room,
                nick: &left.nick,
                reason,
            };
            screen
                .show(&format!("* {} left ({reason})", left.nick), &json)
                .await?;
        }
        Event::Gap(gap) => {
            progress.last_seen = Some(gap.to_seq.max(progress.last_seen.unwrap_or(0)));
            let json = EventJson::Gap {
                from_seq: gap.from_seq,
                to_seq: gap.to_seq,
            };
            screen
                .show(&format!("* missed {}-{}", gap.from_seq, gap.to_seq), &json)
                .await?;
        }
        Event::Notice(notice) => {
            progress.unconfirmed = progress.unconfirmed.saturating_sub(1);
            let kind = notice_kind(notice.kind());
            let json = EventJson::Notice {
                kind,
                message: &notice.message,
            };
            screen.show(&format!("! {}", notice.message), &json).await?;
        }
        Event::GoingAway(going) => {
            let json = EventJson::GoingAway {
                reason: &going.reason,
            };
            screen
                .show(&format!("* server going away: {}", going.reason), &json)
                .await?;
            if progress.leaving {
                return Ok(Some(StreamEnd::Left));
            }
            return Ok(Some(StreamEnd::Resume(going.reason)));
        }
    }
    Ok(None)
}

/// Starts the line editor on its own thread, and the thread that prints above
/// it; returns the screen that prints there.
fn start_editor(inputs: mpsc::Sender<Input>, format: OutputFormat) -> anyhow::Result<Screen> {
    let mut editor = DefaultEditor::new().context("cannot start the line editor")?;
    let mut printer = editor
        .create_external_printer()
        .context("cannot print above the line editor")?;
    let (lines, mut to_print) = mpsc::channel::<String>(PRINT_QUEUE);
    std::thread::Builder::new()
        .name("chat-printer".to_owned())
        .spawn(move || {
            while let Some(line) = to_print.blocking_recv() {
                if printer.print(format!("{line}\n")).is_err() {
                    return;
                }
            }
        })
        .context("cannot start the printer thread")?;
    std::thread::Builder::new()
        .name("chat-editor".to_owned())
        .spawn(move || edit_lines(&mut editor, &inputs))
        .context("cannot start the editor thread")?;
    Ok(Screen::Terminal { format, lines })
}

/// Reads lines from the terminal until `bye`, Ctrl-D or Ctrl-C.
fn edit_lines(editor: &mut DefaultEditor, inputs: &mpsc::Sender<Input>) {
    loop {
        match editor.readline("> ") {
            Ok(line) if line.trim() == "bye" => break,
            Ok(line) if line.is_empty() => {}
            Ok(line) => {
                let _ = editor.add_history_entry(line.as_str());
                if inputs.blocking_send(Input::Say(line)).is_err() {
                    return;
                }
            }
            // Ctrl-D, Ctrl-C, or a terminal that went away: leave.
            Err(ReadlineError::Eof | ReadlineError::Interrupted | _) => break,
        }
    }
    let _ = inputs.blocking_send(Input::Leave);
}

/// Says every stdin line; `bye` or the end of stdin leaves.
async fn read_stdin(inputs: mpsc::Sender<Input>) {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let Ok(Some(line)) = lines.next_line().await else {
            break;
        };
        let line = line.strip_suffix('\r').unwrap_or(&line).to_owned();
        if line.trim() == "bye" {
            break;
        }
        if line.is_empty() {
            continue;
        }
        if inputs.send(Input::Say(line)).await.is_err() {
            return;
        }
    }
    let _ = inputs.send(Input::Leave).await;
}
