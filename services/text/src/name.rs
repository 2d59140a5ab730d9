//! [`Name`]: a nick or room name as people will see it, and the key that says
//! when two names are the same.

use std::{cmp::Ordering, fmt, hash};

use caseless::Caseless as _;
use unicode_normalization::UnicodeNormalization as _;

use crate::hazard::{self, Refusal};

/// Why a name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing at all.
    #[error("must not be empty")]
    Empty,
    /// Longer than allowed, counted in characters after normalisation.
    #[error("must be at most {max} characters, got {got}")]
    TooLong {
        /// The limit.
        max: usize,
        /// The length given.
        got: usize,
    },
    /// A character a name may not hold.
    #[error("{0}")]
    Refused(Refusal),
}

/// A name people see (its NFKC form) and its key (case-folded NFKC), which
/// decides equality: `Ana`, `ANA` and fullwidth `Ａｎａ` are one name.
#[derive(Debug, Clone)]
pub struct Name {
    shown: String,
    key: String,
}

impl Name {
    /// Normalises `value` (NFKC) and checks it: 1 to `max_chars` characters,
    /// no whitespace, controls, separators, bidirectional controls, or
    /// invisible and format characters.
    pub fn parse(value: &str, max_chars: usize) -> Result<Self, NameError> {
        if value.is_empty() {
            return Err(NameError::Empty);
        }
        // Positions in a refusal refer to what the user typed.
        hazard::first(value, hazard::in_name).map_err(NameError::Refused)?;
        let shown: String = value.nfkc().collect();
        // Normalising can make what it did not start with (NBSP becomes a space).
        hazard::first(&shown, hazard::in_name).map_err(NameError::Refused)?;
        let chars = shown.chars().count();
        if chars > max_chars {
            return Err(NameError::TooLong {
                max: max_chars,
                got: chars,
            });
        }
        let key = shown.chars().default_case_fold().nfkc().collect();
        Ok(Self { shown, key })
    }

    /// The name as people see it.
    pub fn as_str(&self) -> &str {
        &self.shown
    }

    /// What makes two names the same: the case-folded NFKC form.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Name {}

impl hash::Hash for Name {
    fn hash<H: hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Name, NameError};
    use crate::Hazard;

    fn name(value: &str) -> Name {
        Name::parse(value, 32).unwrap()
    }

    #[test]
    fn case_and_compatibility_forms_are_one_name() {
        assert_eq!(name("Ana"), name("ana"));
        assert_eq!(name("ANA"), name("\u{FF21}\u{FF4E}\u{FF41}"));
        assert_eq!(name("Straße"), name("STRASSE"));
        assert_eq!(name("ﬁn"), name("fin"));
        assert_eq!(name("\u{FF21}na").as_str(), "Ana", "shown in NFKC form");
        assert_eq!(name("Ana").as_str(), "Ana", "case is kept for display");
    }

    #[test]
    fn lookalikes_made_of_invisible_characters_are_refused() {
        for (value, hazard, position) in [
            ("alice\u{200B}", Hazard::Invisible, 6),
            ("\u{202E}ecila", Hazard::Bidi, 1),
            ("al\u{AD}ice", Hazard::Invisible, 3),
            ("a\u{FE0F}", Hazard::Invisible, 2),
            ("ali ce", Hazard::Whitespace, 4),
            ("alice\u{A0}", Hazard::Whitespace, 6),
            ("bell\u{7}", Hazard::Control, 5),
        ] {
            match Name::parse(value, 32) {
                Err(NameError::Refused(refusal)) => {
                    assert_eq!(
                        (refusal.hazard, refusal.position),
                        (hazard, position),
                        "{value:?}"
                    );
                }
                other => panic!("{value:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn length_is_counted_in_characters_after_normalisation() {
        assert!(Name::parse(&"ñ".repeat(32), 32).is_ok());
        assert_eq!(
            Name::parse(&"a".repeat(33), 32).unwrap_err(),
            NameError::TooLong { max: 32, got: 33 }
        );
        assert_eq!(Name::parse("", 32).unwrap_err(), NameError::Empty);
    }

    proptest! {
        #[test]
        fn an_accepted_name_is_normalised_and_clean(value in "\\PC{1,20}") {
            if let Ok(parsed) = Name::parse(&value, 64) {
                let shown = parsed.as_str();
                prop_assert!(!shown.chars().any(char::is_whitespace));
                prop_assert!(crate::check_line(shown).is_ok());
                // Parsing what is shown gives the same name back.
                let again = Name::parse(shown, 64).unwrap();
                prop_assert_eq!(again.as_str(), shown);
                prop_assert_eq!(again, parsed.clone());
            }
        }
    }
}
