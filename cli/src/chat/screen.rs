//! Where and how events are shown: stdout, or above the line being edited; a
//! text line for people (other people's words escaped) or a JSON line.

use quartet_proto::chat::v1::{LeaveReason, NoticeKind, server_event::Event};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::output::{OutputFormat, Printer};

/// Where events are shown: stdout, or above the line being edited.
pub(super) enum Screen {
    Plain(Printer),
    Terminal {
        format: OutputFormat,
        /// Lines for the printer thread, which prints them above the editor.
        lines: mpsc::Sender<String>,
    },
}

impl Screen {
    /// Shows one event: `text` on a text screen, escaped (it carries other
    /// people's words, which must never reach the terminal as control), or
    /// `value` as a JSON line.
    pub(super) async fn show(&self, text: &str, value: &impl Serialize) -> anyhow::Result<()> {
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

    /// Shows a server event; `rejoined` tells a Joined after a reconnect from
    /// the first one.
    pub(super) async fn show_event(&self, event: &Event, rejoined: bool) -> anyhow::Result<()> {
        let (text, json) = describe(event, rejoined);
        self.show(&text, &json).await
    }

    /// Shows a line of the CLI's own (a reconnect, a dropped line).
    pub(super) async fn note(&self, text: &str) -> anyhow::Result<()> {
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

/// An event's text line and its JSON line.
fn describe(event: &Event, rejoined: bool) -> (String, EventJson<'_>) {
    match event {
        Event::Joined(joined) => {
            let text = if rejoined {
                format!("* rejoined {} as {}", joined.room, joined.nick)
            } else {
                format!(
                    "* joined {} as {}; here: {}",
                    joined.room,
                    joined.nick,
                    joined.members.join(", ")
                )
            };
            let json = EventJson::Joined {
                room: &joined.room,
                nick: &joined.nick,
                members: &joined.members,
                last_seq: joined.last_seq,
            };
            (text, json)
        }
        Event::Message(message) => {
            let json = EventJson::Message {
                seq: message.seq,
                id: &message.id,
                room: &message.room,
                nick: &message.nick,
                text: &message.text,
                time: message.time.as_ref().map(ToString::to_string),
            };
            (format!("<{}> {}", message.nick, message.text), json)
        }
        Event::MemberJoined(joined) => {
            let json = EventJson::MemberJoined {
                room: &joined.room,
                nick: &joined.nick,
            };
            (format!("* {} joined", joined.nick), json)
        }
        Event::MemberLeft(left) => {
            let reason = leave_reason(left.reason());
            let json = EventJson::MemberLeft {
                room: &left.room,
                nick: &left.nick,
                reason,
            };
            (format!("* {} left ({reason})", left.nick), json)
        }
        Event::Gap(gap) => {
            let json = EventJson::Gap {
                from_seq: gap.from_seq,
                to_seq: gap.to_seq,
            };
            (format!("* missed {}-{}", gap.from_seq, gap.to_seq), json)
        }
        Event::Notice(notice) => {
            let json = EventJson::Notice {
                kind: notice_kind(notice.kind()),
                message: &notice.message,
            };
            (format!("! {}", notice.message), json)
        }
        Event::GoingAway(going) => {
            let json = EventJson::GoingAway {
                reason: &going.reason,
            };
            (format!("* server going away: {}", going.reason), json)
        }
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
