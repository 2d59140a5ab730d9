//! [`printable`]: what a door prints of other people's words; [`excerpt`]:
//! how much of a client's input an error message may quote back.

use std::{borrow::Cow, fmt, fmt::Write as _};

use crate::hazard;

/// `text` with every character a line may not hold written as `\u{XXXX}`:
/// what the services refuse can still arrive from elsewhere (an older
/// replica, a stored record, a bug), and a door never lets it reach a
/// terminal as control. Text without such characters is returned as it is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| hazard::in_line(c).is_some()) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if hazard::in_line(c).is_some() {
            let _ = write!(shown, "\\u{{{:04X}}}", u32::from(c));
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// Characters of a client's input an error message quotes at most.
pub const EXCERPT_CHARS: usize = 32;

/// A client's input as an error message quotes it: in quotes and escaped
/// (`"a\nb"`), and when it is longer than [`EXCERPT_CHARS`] characters, cut
/// there with its full size: `"abc…"… (1048576 bytes)`. A message that echoed
/// the whole of a megabyte id would itself be refused as oversize metadata,
/// and is one more place a client could write into logs.
#[derive(Debug, Clone, Copy)]
pub struct Excerpt<'a>(&'a str);

/// Quotes `input` for an error message; see [`Excerpt`].
pub fn excerpt(input: &str) -> Excerpt<'_> {
    Excerpt(input)
}

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(EXCERPT_CHARS) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}… ({} bytes)", &self.0[..cut], self.0.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use proptest::prelude::*;

    use super::{EXCERPT_CHARS, excerpt, printable};

    #[test]
    fn excerpts_quote_short_input_whole_and_cut_long_input() {
        assert_eq!(excerpt("madrid").to_string(), "\"madrid\"");
        assert_eq!(excerpt("a\nb").to_string(), "\"a\\nb\"");
        let long = "x".repeat(1 << 20);
        let quoted = excerpt(&long).to_string();
        assert_eq!(
            quoted,
            format!("\"{}\"… (1048576 bytes)", "x".repeat(EXCERPT_CHARS))
        );
    }

    #[test]
    fn controls_are_shown_as_code_points_and_plain_text_is_untouched() {
        assert_eq!(
            printable("hi\n* admin joined\u{1b}[2J"),
            "hi\\u{000A}* admin joined\\u{001B}[2J"
        );
        assert!(matches!(printable("hola\tmundo ñ"), Cow::Borrowed(_)));
    }

    proptest! {
        #[test]
        fn what_is_printed_is_always_one_safe_line(text in any::<String>()) {
            let shown = printable(&text);
            prop_assert!(crate::check_line(&shown).is_ok());
        }
    }
}
