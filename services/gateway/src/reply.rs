//! [`Reply`]: what a request line is answered with, and every answer the
//! protocols share (`ERR <CODE> <message>`, `HELP`, usage, `QUIT`), written once.

use std::fmt::Write as _;

use quartet_runtime::status_names::code_name;
use tonic::Status;

/// The answer to one request: one or more lines, and whether the connection
/// closes after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The answer's lines joined by `\n`, without the final line ending: one
    /// allocation however many lines, written to the socket as it is.
    text: String,
    /// `QUIT`, or a line too long: nothing after this reply is answered.
    close: bool,
}

impl Reply {
    /// One line; the connection goes on.
    pub fn line(line: impl Into<String>) -> Self {
        Self {
            text: line.into(),
            close: false,
        }
    }

    /// A multi-line answer: `OK <n>` (and `suffix`, e.g. ` more`), then the `n` lines.
    pub fn counted<I>(suffix: &str, lines: I) -> Self
    where
        I: IntoIterator,
        I::IntoIter: ExactSizeIterator,
        I::Item: AsRef<str>,
    {
        let lines = lines.into_iter();
        let mut text = format!("OK {}{suffix}", lines.len());
        for line in lines {
            text.push('\n');
            text.push_str(line.as_ref());
        }
        Self::line(text)
    }

    /// This reply, then the connection closes.
    #[must_use]
    pub fn then_close(mut self) -> Self {
        self.close = true;
        self
    }

    /// The lines, joined by `\n`, without the final line ending.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the connection closes after this reply.
    pub fn closes(&self) -> bool {
        self.close
    }

    /// The lines, for tests and for transports that send one line at a time.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.split('\n')
    }
}

/// `ERR <CODE> <message>`, with line breaks in the message turned to spaces so
/// the answer stays one line.
pub fn err(code: &str, message: &str) -> String {
    let mut line = String::with_capacity(5 + code.len() + message.len());
    let _ = write!(line, "ERR {code} ");
    line.extend(
        message
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
    );
    line
}

/// The `ERR` line for a failed call: `ERR <CODE> <message>`.
pub fn status_line(status: &Status) -> String {
    err(code_name(status.code()), status.message())
}

/// The answer to a failed call.
pub fn failed(status: &Status) -> Reply {
    Reply::line(status_line(status))
}

/// The answer to `HELP`: the protocol's commands, one per line, after `OK <n>`.
pub fn help(commands: &[&str]) -> Reply {
    Reply::counted("", commands)
}

/// The answer to `QUIT`: `OK bye`, then the connection closes.
pub fn quit() -> Reply {
    Reply::line("OK bye").then_close()
}

/// The answer to an unknown verb.
pub fn unknown(verb: &str) -> Reply {
    Reply::line(err(
        "INVALID_ARGUMENT",
        &format!(
            "unknown command {}; HELP lists the commands",
            quartet_text::excerpt(verb)
        ),
    ))
}

/// The answer to a command used wrongly.
pub fn usage(usage: &str) -> Reply {
    Reply::line(err("INVALID_ARGUMENT", &format!("usage: {usage}")))
}

/// The answer to a line whose bytes are not UTF-8 (the connection goes on).
pub fn not_utf8() -> Reply {
    Reply::line(err("INVALID_ARGUMENT", "line is not valid UTF-8"))
}

/// The answer to a line over the limit: its tail cannot be told from the next
/// line, so the connection closes. The one error without a code (DESIGN.md).
pub fn too_long() -> Reply {
    Reply::line("ERR line too long").then_close()
}

/// What an idle connection is told before it is closed.
pub fn idle_timeout() -> Reply {
    Reply::line(err("DEADLINE_EXCEEDED", "idle timeout")).then_close()
}

#[cfg(test)]
mod tests {
    use super::{Reply, err, help, quit};

    #[test]
    fn error_lines_stay_one_line() {
        assert_eq!(err("INTERNAL", "a\nb\r\nc"), "ERR INTERNAL a b  c");
    }

    #[test]
    fn counted_answers_start_with_their_count() {
        let reply = Reply::counted(" more", ["a 1 Ana", "b 1 Bea"]);
        assert_eq!(reply.text(), "OK 2 more\na 1 Ana\nb 1 Bea");
        assert_eq!(help(&["HELP", "QUIT"]).lines().count(), 3);
        assert_eq!(Reply::counted("", Vec::<String>::new()).text(), "OK 0");
    }

    #[test]
    fn quit_closes_and_other_answers_do_not() {
        assert!(quit().closes());
        assert!(!Reply::line("x").closes());
    }
}
