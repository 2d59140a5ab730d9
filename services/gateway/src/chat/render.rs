//! How the chat service's events read on a text line. Others' words are
//! printed through [`printable`]: the chat service refuses lines that are not
//! text, and this door does not rely on it.

use quartet_proto::chat::v1::{Joined, NoticeKind, server_event::Event};
use quartet_text::printable;

use crate::reply::err;

/// The answer to a join: `OK joined <room> as <nick>; here: <nicks>`.
pub fn joined(joined: &Joined) -> String {
    let members: Vec<_> = joined.members.iter().map(|nick| printable(nick)).collect();
    format!(
        "OK joined {} as {}; here: {}",
        printable(&joined.room),
        printable(&joined.nick),
        members.join(", ")
    )
}

/// How one member reads the room.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The member's nick as the service spells it.
    pub own: &'a str,
    /// Lines up to this seq are history, shown even when they are ours.
    pub history_until: u64,
    /// `JOIN .. SEQ` / `SINCE`: lines read `#<seq> <nick> text`, and our own
    /// live lines come back too, so the client holds the whole sequence.
    pub numbered: bool,
}

/// What a member sees of an event, if anything: unnumbered, its own live
/// lines are not echoed back.
pub fn event(event: &Event, view: View<'_>) -> Option<String> {
    let own = view.own;
    Some(match event {
        Event::Message(message) => {
            let nick = printable(&message.nick);
            let text = printable(&message.text);
            if view.numbered {
                return Some(format!("#{} {nick} {text}", message.seq));
            }
            if message.nick == own && message.seq > view.history_until {
                return None;
            }
            format!("{nick} {text}")
        }
        Event::MemberJoined(member) if member.nick != own => {
            format!("* {} joined", printable(&member.nick))
        }
        Event::MemberLeft(member) if member.nick != own => {
            format!("* {} left", printable(&member.nick))
        }
        Event::Gap(gap) => format!("* missed {}-{}", gap.from_seq, gap.to_seq),
        Event::Notice(notice) => {
            let code = match notice.kind() {
                NoticeKind::RateLimited => "RESOURCE_EXHAUSTED",
                _ => "INVALID_ARGUMENT",
            };
            err(code, &printable(&notice.message))
        }
        Event::GoingAway(away) => format!("* server going away: {}", printable(&away.reason)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use quartet_proto::chat::v1::{ChatMessage, Gap, MemberJoined, server_event::Event};

    use super::{View, event};

    fn plain(own: &str, history_until: u64) -> View<'_> {
        View {
            own,
            history_until,
            numbered: false,
        }
    }

    fn message(nick: &str, seq: u64, text: &str) -> Event {
        Event::Message(ChatMessage {
            nick: nick.into(),
            seq,
            text: text.into(),
            ..ChatMessage::default()
        })
    }

    #[test]
    fn own_live_lines_are_not_echoed_but_own_history_is() {
        assert_eq!(event(&message("ana", 5, "hola"), plain("ana", 4)), None);
        assert_eq!(
            event(&message("ana", 3, "hola"), plain("ana", 4)).as_deref(),
            Some("ana hola")
        );
        assert_eq!(
            event(&message("bo", 9, "hi\u{1b}[2J"), plain("ana", 4)).as_deref(),
            Some("bo hi\\u{001B}[2J")
        );
    }

    #[test]
    fn numbered_lines_carry_their_seq_and_echo_our_own() {
        let view = View {
            numbered: true,
            ..plain("ana", 4)
        };
        assert_eq!(
            event(&message("ana", 5, "hola"), view).as_deref(),
            Some("#5 ana hola")
        );
        assert_eq!(
            event(&message("bo", 2, "a b"), view).as_deref(),
            Some("#2 bo a b")
        );
    }

    #[test]
    fn presence_and_gaps_read_as_star_lines() {
        let joined = Event::MemberJoined(MemberJoined {
            nick: "bo".into(),
            ..MemberJoined::default()
        });
        assert_eq!(
            event(&joined, plain("ana", 0)).as_deref(),
            Some("* bo joined")
        );
        assert_eq!(event(&joined, plain("bo", 0)), None, "not our own join");
        let gap = Event::Gap(Gap {
            from_seq: 4,
            to_seq: 9,
        });
        assert_eq!(
            event(&gap, plain("ana", 0)).as_deref(),
            Some("* missed 4-9")
        );
    }
}
