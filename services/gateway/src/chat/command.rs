//! The chat protocol's lines, parsed without any upstream: before joining a
//! line is a [`Command`]; once in a room it is a [`RoomLine`].

use crate::{
    protocol::split_command,
    reply::{Reply, err, help},
};

const COMMANDS: [&str; 5] = [
    "NICK <name>        choose your name (before JOIN)",
    "JOIN <room>        enter a room; then every line you send is said to it",
    "bye                leave the room (once joined)",
    "HELP",
    "QUIT",
];

/// A line before joining a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `NICK <name>`: the name to join with (the chat service checks it).
    Nick(String),
    /// `JOIN <room>`.
    Join(String),
    /// `QUIT` or `BYE`: `OK bye`, then the session ends.
    Quit,
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
        "JOIN" if one_word => Ok(Command::Join(rest.to_owned())),
        "JOIN" => Err(Reply::line(err(
            "INVALID_ARGUMENT",
            "usage: JOIN <room> (no spaces)",
        ))),
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

    use super::{Command, RoomLine, parse, parse_in_room};

    #[test]
    fn commands_before_joining() {
        assert_eq!(parse("nick ana"), Ok(Command::Nick("ana".into())));
        assert_eq!(parse("JOIN lobby"), Ok(Command::Join("lobby".into())));
        assert_eq!(parse("quit"), Ok(Command::Quit));
        assert_eq!(parse("BYE"), Ok(Command::Quit));
        assert_eq!(
            parse("NICK two words").unwrap_err().text(),
            "ERR INVALID_ARGUMENT usage: NICK <name> (no spaces)"
        );
        assert!(parse("HELP").unwrap_err().text().starts_with("OK 5\n"));
        assert!(
            parse("hola")
                .unwrap_err()
                .text()
                .starts_with("ERR FAILED_PRECONDITION join a room first")
        );
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
