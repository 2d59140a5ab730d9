//! One module per request/answer text protocol, each in the shape of
//! mini-redis's commands: a pure `parse(line) -> Result<Command, Reply>`
//! (property-tested without any upstream) and an `apply` that calls the service
//! and formats the answer. The exact grammar is docs/protocol.md.

pub mod database;
pub mod transform;
pub mod weather;

/// The parts of a command line: the verb in upper case, and the rest after one
/// space (spaces inside it kept).
pub fn split_command(line: &str) -> (String, &str) {
    match line.split_once(' ') {
        Some((verb, rest)) => (verb.to_ascii_uppercase(), rest),
        None => (line.to_ascii_uppercase(), ""),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{database, split_command, transform, weather};
    use crate::reply::Reply;

    #[test]
    fn commands_split_on_the_first_space_and_keep_the_rest() {
        assert_eq!(
            split_command("upper  hola  mundo"),
            ("UPPER".into(), " hola  mundo")
        );
        assert_eq!(split_command("HELP"), ("HELP".into(), ""));
        assert_eq!(split_command(""), (String::new(), ""));
    }

    /// A local answer is well formed: `OK ...` or `ERR ...`, and as many lines
    /// as its `OK <n>` says.
    fn well_formed(reply: &Reply) -> Result<(), TestCaseError> {
        let lines: Vec<&str> = reply.lines().collect();
        prop_assert!(
            lines[0].starts_with("OK") || lines[0].starts_with("ERR "),
            "{:?}",
            lines
        );
        if lines.len() > 1 {
            let count: usize = lines[0]
                .split(' ')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            prop_assert_eq!(count, lines.len() - 1);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn any_line_parses_to_a_command_or_a_well_formed_answer(
            line in "\\PC{0,80}|[A-Za-z_]{1,12}( .{0,40})?",
        ) {
            if let Err(reply) = transform::parse(&line) {
                well_formed(&reply)?;
            }
            if let Err(reply) = database::parse(&line) {
                well_formed(&reply)?;
            }
            if let Err(reply) = weather::parse(&line) {
                well_formed(&reply)?;
            }
        }
    }
}
