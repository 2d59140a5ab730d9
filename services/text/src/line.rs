//! [`check_line`]: whether a line of text may be said to others.

use crate::hazard::{self, Refusal};

/// Accepts `text` as a line for other people to read, or names its first
/// refused character ([`crate::Hazard`]): controls, separators and
/// bidirectional controls are refused, tabs and all printable text kept.
pub fn check_line(text: &str) -> Result<(), Refusal> {
    hazard::first(text, hazard::in_line)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::check_line;
    use crate::Hazard;

    #[test]
    fn a_forged_line_is_refused_where_it_starts() {
        let refusal = check_line("hi\n* admin joined").unwrap_err();
        assert_eq!(refusal.hazard, Hazard::Control);
        assert_eq!(refusal.position, 3);
        assert_eq!(
            refusal.to_string(),
            "contains a control character (U+000A) at character 3"
        );
        assert!(check_line("\u{1b}[2J\u{1b}[31m").is_err());
        assert!(check_line("hola\tqué tal, ¿bien? 😀").is_ok());
    }

    proptest! {
        #[test]
        fn printable_text_always_passes(text in "[\\PC\t]{0,64}") {
            // \PC excludes controls but not separators or bidi controls.
            let hazardous = text.chars().any(|c| matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'));
            prop_assert_eq!(check_line(&text).is_ok(), !hazardous);
        }
    }
}
