//! Room names and nicks: what the contract allows, checked once at the edge so
//! the rest of the crate only sees valid ones.

use std::fmt;

use crate::error::ChatError;

/// Longest room name, in characters (the contract: 1 to 64).
pub const MAX_ROOM_CHARS: usize = 64;
/// Longest nick, in characters (the contract: 1 to 32).
pub const MAX_NICK_CHARS: usize = 32;

/// A valid room name: 1 to [`MAX_ROOM_CHARS`] characters, no whitespace or control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoomName(String);

/// A valid nick: 1 to [`MAX_NICK_CHARS`] characters, no whitespace or control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nick(String);

/// Why a name is refused, or `None` when it is fine.
fn problem(value: &str, max_chars: usize) -> Option<String> {
    if value.is_empty() {
        return Some("must not be empty".to_owned());
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Some(format!(
            "must be at most {max_chars} characters, got {chars}"
        ));
    }
    if let Some(bad) = value.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!(
            "must not contain whitespace or control characters, found {bad:?}"
        ));
    }
    None
}

impl RoomName {
    /// Checks `value` against the contract.
    pub fn parse(value: &str) -> Result<Self, ChatError> {
        match problem(value, MAX_ROOM_CHARS) {
            None => Ok(Self(value.to_owned())),
            Some(reason) => Err(ChatError::InvalidName {
                field: "room",
                reason,
            }),
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Nick {
    /// Checks `value` against the contract.
    pub fn parse(value: &str) -> Result<Self, ChatError> {
        match problem(value, MAX_NICK_CHARS) {
            None => Ok(Self(value.to_owned())),
            Some(reason) => Err(ChatError::InvalidName {
                field: "nick",
                reason,
            }),
        }
    }

    /// The nick as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_NICK_CHARS, MAX_ROOM_CHARS, Nick, RoomName};
    use proptest::prelude::*;

    #[test]
    fn limits_count_characters_not_bytes() {
        assert!(Nick::parse(&"ñ".repeat(MAX_NICK_CHARS)).is_ok());
        assert!(Nick::parse(&"ñ".repeat(MAX_NICK_CHARS + 1)).is_err());
        assert!(RoomName::parse(&"a".repeat(MAX_ROOM_CHARS)).is_ok());
        assert!(RoomName::parse(&"a".repeat(MAX_ROOM_CHARS + 1)).is_err());
    }

    #[test]
    fn empty_whitespace_and_control_characters_are_refused() {
        for bad in [
            "",
            "a b",
            "tab\there",
            "new\nline",
            "nbsp\u{a0}",
            "bell\u{7}",
        ] {
            assert!(Nick::parse(bad).is_err(), "{bad:?}");
            assert!(RoomName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_message_names_the_field() {
        let error = RoomName::parse("").unwrap_err();
        assert!(error.to_string().starts_with("room:"), "{error}");
    }

    proptest! {
        #[test]
        fn accepted_nicks_keep_the_rules(value in "\\PC{0,40}") {
            if let Ok(nick) = Nick::parse(&value) {
                let chars = nick.as_str().chars().count();
                prop_assert!((1..=MAX_NICK_CHARS).contains(&chars));
                prop_assert!(!nick.as_str().chars().any(|c| c.is_whitespace() || c.is_control()));
                prop_assert_eq!(nick.as_str(), value.as_str());
            }
        }

        #[test]
        fn printable_words_within_the_limit_are_accepted(value in "[a-zA-Z0-9_ñ€-]{1,32}") {
            prop_assert!(Nick::parse(&value).is_ok());
            prop_assert!(RoomName::parse(&value).is_ok());
        }
    }
}
