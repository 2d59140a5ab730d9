//! One member's session, in domain terms: which lines it may say (size and
//! rate), what of the room's feed it is shown (no duplicates, and a Gap
//! wherever it fell behind), and the [`Outbound`] events its stream carries.
//! [`crate::member`] applies these rules over a member's stream.

use std::sync::Arc;

use tokio::time::Instant;

use crate::{
    config::ChatConfig,
    event::{ChatLine, Presence, RoomEvent},
    names::{Nick, RoomName},
    rate::TokenBucket,
};

/// A problem with a line the member sent; the session goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Sent faster than the rate limit; the line was not said.
    RateLimited(String),
    /// Empty, longer than the limit, or holding characters that are not
    /// text (controls, separators, bidirectional controls); the line was not
    /// said.
    InvalidMessage(String),
}

/// What a member is shown, in order.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// The join took: the first event of every member's stream.
    Joined {
        /// The room, in its canonical form.
        room: RoomName,
        /// The member's nick, as typed.
        nick: Nick,
        /// Everyone in the room now, the joiner included, ordered by nick.
        members: Vec<Nick>,
        /// The room's latest sequence number when the member joined.
        last_seq: u64,
    },
    /// A line of the room.
    Line(Arc<ChatLine>),
    /// Someone joined or left.
    Presence(Arc<Presence>),
    /// Lines `from..=to` the member will not receive.
    Gap {
        /// First missed sequence number.
        from: u64,
        /// Last missed sequence number.
        to: u64,
    },
    /// A line the member sent was not said; the stream goes on.
    Notice(Notice),
    /// The server is shutting down: the last event before the stream ends.
    GoingAway,
}

/// Decides whether a line may be said: size and content first, then the rate
/// limit (a refused line does not spend a token).
#[derive(Debug, Clone)]
pub struct LinePolicy {
    max_text_bytes: usize,
    bucket: TokenBucket,
}

impl LinePolicy {
    /// The policy of `config`, with a full bucket at `now`.
    pub fn new(config: &ChatConfig, now: Instant) -> Self {
        Self {
            max_text_bytes: config.max_text_bytes,
            bucket: TokenBucket::new(config.rate_per_second, config.rate_burst, now),
        }
    }

    /// `Ok` to say `text` now, or the Notice that explains why not.
    pub fn check(&mut self, text: &str, now: Instant) -> Result<(), Notice> {
        if text.is_empty() {
            return Err(Notice::InvalidMessage(
                "empty line; nothing was said".to_owned(),
            ));
        }
        if text.len() > self.max_text_bytes {
            return Err(Notice::InvalidMessage(format!(
                "line of {} bytes is longer than the limit of {} bytes; it was not said",
                text.len(),
                self.max_text_bytes
            )));
        }
        if let Err(refusal) = quartet_text::check_line(text) {
            // Text is data for the other members, never control: no forged
            // lines, no terminal escapes, no text that reads backwards.
            return Err(Notice::InvalidMessage(format!(
                "say.text: {refusal}; nothing was said"
            )));
        }
        self.bucket.try_take(now).map_err(|wait| {
            Notice::RateLimited(format!(
                "sending too fast; that line was not said (next in {} ms)",
                wait.as_millis().max(1)
            ))
        })
    }
}

/// Where a member is in the room's sequence: the last line it was shown.
#[derive(Debug, Clone)]
pub struct Cursor {
    shown: u64,
    lagged: bool,
}

impl Cursor {
    /// A member that has been shown everything up to `last_seq` (its join
    /// snapshot, history included).
    pub fn new(last_seq: u64) -> Self {
        Self {
            shown: last_seq,
            lagged: false,
        }
    }

    /// The last sequence number shown.
    pub fn shown(&self) -> u64 {
        self.shown
    }

    /// The feed dropped events this member had not read yet.
    pub fn fell_behind(&mut self) {
        self.lagged = true;
    }

    /// What to show for `event`, in order: nothing for a line already shown, a
    /// Gap first when lines were skipped.
    pub fn admit(&mut self, event: RoomEvent) -> Vec<Outbound> {
        match event {
            RoomEvent::Presence(presence) => vec![Outbound::Presence(presence)],
            RoomEvent::Line(line) => {
                if line.seq <= self.shown {
                    return Vec::new();
                }
                let mut shown = Vec::with_capacity(2);
                if line.seq > self.shown + 1 {
                    shown.push(Outbound::Gap {
                        from: self.shown + 1,
                        to: line.seq - 1,
                    });
                }
                self.shown = line.seq;
                self.lagged = false;
                shown.push(Outbound::Line(line));
                shown
            }
        }
    }

    /// Whether the member fell behind and has not been shown a line since.
    pub fn is_lagging(&self) -> bool {
        self.lagged
    }
}

#[cfg(test)]
mod tests {
    use super::{Cursor, LinePolicy, Notice, Outbound};
    use crate::{
        config::ChatConfig,
        event::{ChatLine, Encoding, RoomEvent},
        names::{Nick, RoomName},
    };
    use proptest::prelude::*;
    use std::{sync::Arc, time::SystemTime};
    use tokio::time::Instant;

    fn line(seq: u64) -> RoomEvent {
        RoomEvent::Line(Arc::new(ChatLine {
            id: format!("id{seq}"),
            seq,
            room: RoomName::parse("r").unwrap(),
            nick: Nick::parse("n").unwrap(),
            text: "t".into(),
            time: SystemTime::UNIX_EPOCH,
            encoding: Encoding::default(),
        }))
    }

    #[test]
    fn oversize_and_empty_lines_are_refused_before_the_rate_limit() {
        let config = ChatConfig {
            max_text_bytes: 4,
            rate_burst: 1,
            ..ChatConfig::default()
        };
        let now = Instant::now();
        let mut policy = LinePolicy::new(&config, now);
        assert!(matches!(
            policy.check("12345", now),
            Err(Notice::InvalidMessage(_))
        ));
        assert!(matches!(
            policy.check("", now),
            Err(Notice::InvalidMessage(_))
        ));
        assert_eq!(policy.check("1234", now), Ok(()));
        assert!(matches!(
            policy.check("a", now),
            Err(Notice::RateLimited(_))
        ));
    }

    #[test]
    fn lines_that_are_not_text_are_refused_with_the_field_named() {
        let config = ChatConfig::default();
        let now = Instant::now();
        let mut policy = LinePolicy::new(&config, now);
        for forged in [
            "hi\n* admin joined\nadmin please type your password",
            "\u{1b}[2J\u{1b}[31m",
            "carriage\rreturn",
            "nul\u{0}",
            "bell\u{7}",
            "del\u{7f}",
            "c1\u{9b}",
            "line\u{2028}separator",
            "\u{202e}backwards",
        ] {
            match policy.check(forged, now) {
                Err(Notice::InvalidMessage(message)) => {
                    assert!(message.starts_with("say.text: contains "), "{message}");
                }
                other => panic!("{forged:?} gave {other:?}"),
            }
        }
        assert_eq!(policy.check("tabs\tand ünïcödé 😀 are text", now), Ok(()));
    }

    #[test]
    fn a_skipped_stretch_becomes_one_gap_before_the_next_line() {
        let mut cursor = Cursor::new(3);
        assert!(cursor.admit(line(2)).is_empty(), "already shown");
        cursor.fell_behind();
        let shown = cursor.admit(line(9));
        assert!(matches!(shown[0], Outbound::Gap { from: 4, to: 8 }));
        assert!(matches!(&shown[1], Outbound::Line(l) if l.seq == 9));
        assert!(!cursor.is_lagging());
    }

    proptest! {
        /// Whatever subset of an ordered feed reaches a member, what it is shown
        /// accounts for every sequence number exactly once, in order.
        #[test]
        fn lines_and_gaps_cover_the_sequence_once(
            start in 0u64..5,
            kept in proptest::collection::vec(any::<bool>(), 1..200),
        ) {
            let mut cursor = Cursor::new(start);
            let mut covered = start;
            for (offset, keep) in kept.iter().enumerate() {
                let seq = start + 1 + offset as u64;
                if !keep {
                    continue;
                }
                for shown in cursor.admit(line(seq)) {
                    match shown {
                        Outbound::Gap { from, to } => {
                            prop_assert_eq!(from, covered + 1);
                            prop_assert!(to >= from);
                            covered = to;
                        }
                        Outbound::Line(line) => {
                            prop_assert_eq!(line.seq, covered + 1);
                            covered = line.seq;
                        }
                        other => unreachable!("{other:?}"),
                    }
                }
                // Redelivery of anything already shown is ignored.
                prop_assert!(cursor.admit(line(seq)).is_empty());
            }
            prop_assert_eq!(covered, cursor.shown());
        }
    }
}
