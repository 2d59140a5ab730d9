//! What the member types: a line editor on a terminal, or stdin lines when
//! piped. Either way each line arrives as an [`Input`] on one bounded channel.

use anyhow::Context as _;
use rustyline::{DefaultEditor, ExternalPrinter as _, error::ReadlineError};
use tokio::sync::mpsc;

use super::screen::Screen;
use crate::output::OutputFormat;

/// Lines typed (or read from stdin) not yet handed to the stream; bounds memory
/// while disconnected or when stdin is much faster than the server.
pub(super) const INPUT_QUEUE: usize = 64;
/// Events waiting for the terminal printer thread.
const PRINT_QUEUE: usize = 256;

/// What the member typed.
#[derive(Debug)]
pub(super) enum Input {
    Say(String),
    Leave,
}

/// Starts the line editor on its own thread, and the thread that prints above
/// it; returns the screen that prints there.
pub(super) fn start_editor(
    inputs: mpsc::Sender<Input>,
    format: OutputFormat,
) -> anyhow::Result<Screen> {
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
pub(super) async fn read_stdin(inputs: mpsc::Sender<Input>) {
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
