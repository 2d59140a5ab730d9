//! Room names and nicks: what the contract allows, checked once at the edge so
//! the rest of the crate only sees valid ones.
//!
//! Both are NFKC-normalised and refuse whitespace, controls and invisible or
//! format characters ([`quartet_text::Name`]), so one member cannot pass for
//! another with `alice\u{200B}` or a right-to-left override. A room *is* its
//! case-folded form (`Lobby` and `lobby` are one room, named `lobby`); a nick
//! keeps the case its owner typed but is unique in its room without regard to
//! case (`Ana` holds `ana` too).

use std::fmt;

use quartet_text::{Name, NameError};

use crate::error::ChatError;

/// Longest room name, in characters (the contract: 1 to 64).
pub const MAX_ROOM_CHARS: usize = 64;
/// Longest nick, in characters (the contract: 1 to 32).
pub const MAX_NICK_CHARS: usize = 32;

/// A valid room name, in its canonical (NFKC, case-folded) form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoomName(String);

/// A valid nick: shown as typed (NFKC), equal to any nick with the same
/// case-folded form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nick(Name);

fn invalid(field: &'static str, error: &NameError) -> ChatError {
    ChatError::InvalidName {
        field,
        reason: error.to_string(),
    }
}

impl RoomName {
    /// Checks `value` against the contract and gives its canonical form.
    pub fn parse(value: &str) -> Result<Self, ChatError> {
        let name = Name::parse(value, MAX_ROOM_CHARS).map_err(|error| invalid("room", &error))?;
        Ok(Self(name.key().to_owned()))
    }

    /// The canonical name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Nick {
    /// Checks `value` against the contract.
    pub fn parse(value: &str) -> Result<Self, ChatError> {
        Name::parse(value, MAX_NICK_CHARS)
            .map(Self)
            .map_err(|error| invalid("nick", &error))
    }

    /// The nick as its owner typed it (NFKC).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// What decides whether two nicks are the same: the case-folded form.
    pub fn key(&self) -> &str {
        self.0.key()
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    fn empty_whitespace_control_and_invisible_characters_are_refused() {
        for bad in [
            "",
            "a b",
            "tab\there",
            "new\nline",
            "nbsp\u{a0}",
            "bell\u{7}",
            "alice\u{200b}",
            "\u{202e}ecila",
            "a\u{2028}b",
        ] {
            assert!(Nick::parse(bad).is_err(), "{bad:?}");
            assert!(RoomName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_message_names_the_field_and_the_character() {
        let error = RoomName::parse("").unwrap_err();
        assert!(error.to_string().starts_with("room:"), "{error}");
        let error = Nick::parse("alice\u{200b}").unwrap_err();
        assert_eq!(
            error.to_string(),
            "nick: contains an invisible or format character (U+200B) at character 6"
        );
    }

    #[test]
    fn rooms_are_their_folded_form_and_nicks_compare_without_case() {
        assert_eq!(RoomName::parse("Lobby").unwrap().as_str(), "lobby");
        assert_eq!(
            RoomName::parse("ＬＯＢＢＹ").unwrap(),
            RoomName::parse("lobby").unwrap()
        );
        let ana = Nick::parse("Ana").unwrap();
        assert_eq!(ana.as_str(), "Ana");
        assert_eq!(ana, Nick::parse("ANA").unwrap());
        assert_eq!(ana.key(), "ana");
    }

    proptest! {
        #[test]
        fn accepted_nicks_keep_the_rules(value in "\\PC{0,40}") {
            if let Ok(nick) = Nick::parse(&value) {
                let chars = nick.as_str().chars().count();
                prop_assert!((1..=MAX_NICK_CHARS).contains(&chars));
                prop_assert!(!nick.as_str().chars().any(|c| c.is_whitespace() || c.is_control()));
            }
        }

        #[test]
        fn printable_words_within_the_limit_are_accepted(value in "[a-zA-Z0-9_ñ€-]{1,32}") {
            prop_assert!(Nick::parse(&value).is_ok());
            prop_assert!(RoomName::parse(&value).is_ok());
        }
    }
}
