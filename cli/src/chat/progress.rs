//! What a chat session knows across reconnects: where it stopped (so a rejoin
//! shows nothing twice and loses nothing silently), its own lines not yet seen
//! back, and what was typed while no stream was open.

use std::collections::VecDeque;

use quartet_proto::chat::v1::{Joined, server_event::Event};

/// What the session knows across reconnects.
pub(super) struct Progress {
    pub(super) room: String,
    pub(super) nick: String,
    /// The last sequence number shown (a line, or the end of a Gap).
    pub(super) last_seen: Option<u64>,
    /// The room's last sequence number at the first join: where a rejoin
    /// starts when no line was shown yet (history before it is not a promise;
    /// what came after it is).
    pub(super) joined_at: Option<u64>,
    /// Lines said and not yet seen back (or refused with a Notice).
    pub(super) unconfirmed: usize,
    /// Whether a join has worked: from then on a failed join is a rejoin.
    pub(super) joined_once: bool,
    /// The member left (`bye`, Ctrl-D, end of stdin); the stream may not
    /// have said goodbye yet.
    pub(super) leaving: bool,
    /// Lines typed while no stream was open, said once one is (at most
    /// INPUT_QUEUE; past that the oldest is dropped, with a note).
    pub(super) backlog: VecDeque<String>,
}

impl Progress {
    /// A session about to join `room` as `nick`, from after `since` if given.
    pub(super) fn new(room: String, nick: String, since: Option<u64>) -> Self {
        Self {
            room,
            nick,
            last_seen: since,
            joined_at: None,
            unconfirmed: 0,
            joined_once: false,
            leaving: false,
            backlog: VecDeque::new(),
        }
    }

    /// Where a join starts: after what we have seen, else after the first
    /// join's end of history (`None`: the room's recent history).
    pub(super) fn since(&self) -> Option<u64> {
        self.last_seen.or(self.joined_at)
    }

    /// Counts a line said: unconfirmed until it comes back.
    pub(super) fn said(&mut self) {
        self.unconfirmed += 1;
    }

    /// Whether `joined` shows a room whose sequence restarted (a server that
    /// lost its state); if so, forgets where we stopped, so its new lines are
    /// not taken for ones already shown.
    pub(super) fn sequence_restarted(&mut self, joined: &Joined) -> bool {
        let restarted = self.last_seen.is_some_and(|seen| joined.last_seq < seen);
        if restarted {
            self.last_seen = None;
            self.joined_at = None;
        }
        restarted
    }

    /// Takes in one event; false when it is a line already shown (a resumed
    /// stream may repeat what came just before the break).
    pub(super) fn record(&mut self, event: &Event) -> bool {
        match event {
            Event::Joined(joined) => {
                self.joined_at.get_or_insert(joined.last_seq);
                self.joined_once = true;
            }
            Event::Message(message) => {
                if self.last_seen.is_some_and(|seen| message.seq <= seen) {
                    return false;
                }
                self.last_seen = Some(message.seq);
                if message.nick == self.nick {
                    self.unconfirmed = self.unconfirmed.saturating_sub(1);
                }
            }
            Event::Gap(gap) => {
                self.last_seen = Some(gap.to_seq.max(self.last_seen.unwrap_or(0)));
            }
            Event::Notice(_) => self.unconfirmed = self.unconfirmed.saturating_sub(1),
            Event::MemberJoined(_) | Event::MemberLeft(_) | Event::GoingAway(_) => {}
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use quartet_proto::chat::v1::{ChatMessage, Gap};

    use super::*;

    fn line(seq: u64, nick: &str) -> Event {
        Event::Message(ChatMessage {
            seq,
            nick: nick.to_owned(),
            ..ChatMessage::default()
        })
    }

    fn joined(last_seq: u64) -> Joined {
        Joined {
            last_seq,
            ..Joined::default()
        }
    }

    #[test]
    fn a_resumed_stream_shows_no_line_twice() {
        let mut progress = Progress::new("lobby".into(), "ana".into(), None);
        progress.record(&Event::Joined(joined(7)));
        assert_eq!(progress.since(), Some(7), "a rejoin starts after the join");
        assert!(progress.record(&line(8, "bo")));
        assert!(progress.record(&line(9, "bo")));
        assert!(!progress.record(&line(9, "bo")), "seen already");
        assert!(!progress.record(&line(3, "bo")), "seen already");
        assert_eq!(progress.since(), Some(9));
    }

    #[test]
    fn own_lines_are_confirmed_when_they_come_back_or_are_refused() {
        let mut progress = Progress::new("lobby".into(), "ana".into(), None);
        progress.said();
        progress.said();
        progress.record(&line(1, "bo"));
        assert_eq!(progress.unconfirmed, 2);
        progress.record(&line(2, "ana"));
        progress.record(&Event::Notice(quartet_proto::chat::v1::Notice::default()));
        assert_eq!(progress.unconfirmed, 0);
    }

    #[test]
    fn a_gap_moves_past_what_was_missed() {
        let mut progress = Progress::new("lobby".into(), "ana".into(), Some(100));
        progress.record(&Event::Gap(Gap {
            from_seq: 101,
            to_seq: 180,
        }));
        assert_eq!(progress.since(), Some(180));
    }

    #[test]
    fn a_room_whose_sequence_restarted_is_read_from_its_start() {
        let mut progress = Progress::new("lobby".into(), "ana".into(), Some(50));
        assert!(!progress.sequence_restarted(&joined(60)));
        assert!(progress.sequence_restarted(&joined(2)));
        assert_eq!(progress.since(), None);
        assert!(progress.record(&line(1, "bo")), "a new line 1 is shown");
    }
}
