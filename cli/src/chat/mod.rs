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
//!
//! # Layout
//! - `session`: one stream: join, talk, until it ends.
//! - `rejoin`: when to rejoin after a break (the CLI's resume policy, plus a
//!   nick still held by our previous session), and the pause before it.
//! - `progress`: what the session knows across streams.
//! - `screen`: how events are shown, as text or JSON.
//! - `input`: the line editor, or stdin when piped.

mod input;
mod progress;
mod rejoin;
mod screen;
mod session;

use std::{io::IsTerminal as _, process::ExitCode};

use clap::Args;
use quartet_runtime::status_names::code_name;
use tokio::sync::mpsc;

use self::{
    input::{INPUT_QUEUE, Input, read_stdin, start_editor},
    progress::Progress,
    rejoin::{Rejoin, wait_to_retry},
    screen::Screen,
    session::{StreamEnd, join, session},
};
use crate::{client::ClientOptions, output::Printer};

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

pub(crate) async fn run(client: &ClientOptions, args: ChatArgs) -> anyhow::Result<ExitCode> {
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let (inputs, mut input) = mpsc::channel(INPUT_QUEUE);
    let mut progress = Progress::new(args.room, args.nick, args.since);
    let mut screen = Screen::Plain(Printer::new(client.output));
    let mut rejoin = Rejoin::new();
    let mut input_started = false;
    loop {
        let stream = match join(client, &progress).await {
            Ok(stream) => stream,
            Err(status) if progress.joined_once => {
                let Some(pause) = rejoin.wait_after(&status) else {
                    return Err(status.into());
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
                continue;
            }
            Err(status) => return Err(status.into()),
        };
        rejoin.joined();
        if !input_started {
            // Only once the first join worked: a refused nick exits at once,
            // with the terminal untouched.
            input_started = true;
            if interactive {
                screen = start_editor(inputs.clone(), client.output)?;
            } else {
                tokio::spawn(read_stdin(inputs.clone()));
            }
        }
        let ended = match session(&screen, &mut progress, &mut input, stream, interactive).await {
            Ok(ended) => ended,
            Err(error) if interactive => {
                return Err(release_terminal(&screen, &mut input, error).await);
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
            }
        }
    }
}

/// The line editor holds the terminal in raw mode: lets it give the terminal
/// back (the member presses Ctrl-D) before the process exits with `error`.
async fn release_terminal(
    screen: &Screen,
    input: &mut mpsc::Receiver<Input>,
    error: anyhow::Error,
) -> anyhow::Error {
    let note = format!("* session over: {error:#}; press Ctrl-D to exit");
    if let Err(failed) = screen.note(&note).await {
        return failed;
    }
    while let Some(typed) = input.recv().await {
        if matches!(typed, Input::Leave) {
            break;
        }
    }
    error
}
