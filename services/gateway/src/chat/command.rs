//! The chat protocol's lines, parsed without any upstream: before joining a
//! line is a [`Command`]; once in a room it is a [`RoomLine`].

use crate::{
    protocol::split_command,
    reply::{Reply, err, help},
};

const COMMANDS: [&str; 7] = [
    "NICK <name>                    choose your name (before JOIN)",
    "JOIN <room>                    enter a room; then every line you send is said to it",
    "JOIN <room> SEQ                the same, every room line numbered: #<seq> <nick> text",
    "JOIN <room> SINCE <n>          numbered, and only the lines after <n> (to resume)",
    "bye                            leave the room (once joined)",
    "HELP",
    "QUIT",
];

/// A line before joining a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `NICK <name>`: the name to join with (the chat service checks it).
    Nick(String),
    /// `JOIN <room> [SEQ | SINCE <n>]`.
    Join {
        /// The room to enter.
        room: String,
        /// Whether room lines are numbered, and from where history starts.
        mode: JoinMode,
    },
    /// `QUIT` or `BYE`: `OK bye`, then the session ends.
    Quit,
}

/// How a join numbers the room's lines and which history it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinMode {
    /// `JOIN <room>`: the room's recent history, lines as `<nick> text`, our
    /// own live lines not echoed; what every `nc` user has always had.
    Plain,
    /// `JOIN <room> SEQ`: the same history, but every room line is
    /// `#<seq> <nick> text` and our own lines are echoed, so a client holds
    /// the room's whole numbered sequence and can resume from it.
    Numbered,
    /// `JOIN <room> SINCE <n>`: numbered, and instead of the recent history
    /// exactly the lines after `n` (after a `* missed` line for any no longer
    /// kept): a client that lost its connection gets what it missed.
    Since(u64),
}

impl JoinMode {
    /// Whether room lines carry their sequence numbers.
    pub fn numbered(self) -> bool {
        !matches!(self, Self::Plain)
    }

    /// The sequence number history starts after, if not the recent history.
    pub fn since(self) -> Option<u64> {
        match self {
            Self::Since(seq) => Some(seq),
            Self::Plain | Self::Numbered => None,
        }
    }
}

/// `<room> [SEQ | SINCE <n>]`, the words after `JOIN`.
fn join(rest: &str) -> Result<Command, Reply> {
    let words: Vec<&str> = rest.split(' ').collect();
    let room = words[0];
    let mode = match words.as_slice() {
        _ if room.is_empty() || room.contains(char::is_whitespace) => {
            return Err(join_usage());
        }
        [_] => JoinMode::Plain,
        [_, seq] if seq.eq_ignore_ascii_case("SEQ") => JoinMode::Numbered,
        [_, since, n] if since.eq_ignore_ascii_case("SINCE") => match n.parse() {
            Ok(seq) => JoinMode::Since(seq),
            Err(_) => {
                return Err(Reply::line(err(
                    "INVALID_ARGUMENT",
                    "SINCE takes a sequence number: JOIN <room> SINCE <n>",
                )));
            }
        },
        _ => return Err(join_usage()),
    };
    Ok(Command::Join {
        room: room.to_owned(),
        mode,
    })
}

fn join_usage() -> Reply {
    Reply::line(err(
        "INVALID_ARGUMENT",
        "usage: JOIN <room> [SEQ | SINCE <n>] (a room has no spaces)",
    ))
}

/// Parses a line sent before joining: a command, or its answer when it needs
/// no upstream (`HELP`, a usage error, a line said too early).
pub fn parse(line: &str) -> Result<Command, Reply> {
    let (verb, rest) = split_command(line);
    let one_word = !rest.is_empty() && !rest.contains(char::is_whitespace);
    match verb.as_str() {
        "NICK" if one_word => Ok(Command::Nick(rest.to_owned())),
        "NICK" => Err(Reply::line(err(
            "INVALID_ARGUMENT",
            "usage: NICK <name> (no spaces)",
        ))),
        "JOIN" => join(rest),
        "HELP" => Err(help(&COMMANDS)),
        "QUIT" | "BYE" => Ok(Command::Quit),
        _ => Err(Reply::line(err(
            "FAILED_PRECONDITION",
            "join a room first: NICK <name>, then JOIN <room>",
        ))),
    }
}

/// A line sent once in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomLine {
    /// `bye` alone, whatever its case and surrounding spaces: leave.
    Bye,
    /// Anything else is said to the room.
    Say(String),
}

/// Parses a line sent in a room.
pub fn parse_in_room(line: String) -> RoomLine {
    if line.trim().eq_ignore_ascii_case("bye") {
        RoomLine::Bye
    } else {
        RoomLine::Say(line)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Command, JoinMode, RoomLine, parse, parse_in_room};

    #[test]
    fn commands_before_joining() {
        assert_eq!(parse("nick ana"), Ok(Command::Nick("ana".into())));
        assert_eq!(
            parse("JOIN lobby"),
            Ok(Command::Join {
                room: "lobby".into(),
                mode: JoinMode::Plain
            })
        );
        assert_eq!(parse("quit"), Ok(Command::Quit));
        assert_eq!(parse("BYE"), Ok(Command::Quit));
        assert_eq!(
            parse("NICK two words").unwrap_err().text(),
            "ERR INVALID_ARGUMENT usage: NICK <name> (no spaces)"
        );
        assert!(parse("HELP").unwrap_err().text().starts_with("OK 7\n"));
        assert!(
            parse("hola")
                .unwrap_err()
                .text()
                .starts_with("ERR FAILED_PRECONDITION join a room first")
        );
    }

    #[test]
    fn a_join_may_ask_for_numbered_lines_or_what_came_after_a_number() {
        let join = |room: &str, mode| {
            Ok(Command::Join {
                room: room.into(),
                mode,
            })
        };
        assert_eq!(parse("join Plaza seq"), join("Plaza", JoinMode::Numbered));
        assert_eq!(
            parse("JOIN plaza SINCE 42"),
            join("plaza", JoinMode::Since(42))
        );
        assert_eq!(
            parse("JOIN plaza SINCE x").unwrap_err().text(),
            "ERR INVALID_ARGUMENT SINCE takes a sequence number: JOIN <room> SINCE <n>"
        );
        for usage in [
            "JOIN",
            "JOIN ",
            "JOIN two words",
            "JOIN a SEQ more",
            "JOIN a  SEQ",
        ] {
            assert!(
                parse(usage)
                    .unwrap_err()
                    .text()
                    .starts_with("ERR INVALID_ARGUMENT usage: JOIN"),
                "{usage:?}"
            );
        }
    }

    #[test]
    fn only_a_lone_bye_leaves_a_room() {
        assert_eq!(parse_in_room("  ByE ".into()), RoomLine::Bye);
        assert_eq!(
            parse_in_room("bye now".into()),
            RoomLine::Say("bye now".into())
        );
        assert_eq!(parse_in_room("HELP".into()), RoomLine::Say("HELP".into()));
    }

    proptest! {
        #[test]
        fn any_line_is_a_command_or_one_well_formed_answer(line in "\\PC{0,60}") {
            if let Err(reply) = parse(&line) {
                let first = reply.lines().next().unwrap_or_default().to_owned();
                prop_assert!(first.starts_with("OK ") || first.starts_with("ERR "), "{:?}", first);
            }
        }
    }
}
