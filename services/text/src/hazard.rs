//! The characters that must not travel from one user to another, and why.

use std::fmt;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

/// Why a character is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hazard {
    /// C0 (but tab), DEL or C1: moves cursors, clears screens, rings bells, and
    /// `\n` or `\r` forge whole lines on the text protocols.
    Control,
    /// U+2028 or U+2029: a line break to some readers and not to others.
    Separator,
    /// A bidirectional embedding, override or isolate (U+202A to U+202E,
    /// U+2066 to U+2069): makes the text after it read backwards.
    Bidi,
    /// Whitespace, in a name: `alice` and `alice ` would be two people.
    Whitespace,
    /// An invisible or format character in a name (zero-width space, joiner,
    /// variation selector, filler, private use, unassigned): `alice` and
    /// `alice\u{200B}` would look alike.
    Invisible,
}

impl fmt::Display for Hazard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Control => "a control character",
            Self::Separator => "a line or paragraph separator",
            Self::Bidi => "a bidirectional control",
            Self::Whitespace => "whitespace",
            Self::Invisible => "an invisible or format character",
        })
    }
}

/// A refused character and where it was: the message names it by code point,
/// never by echoing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct Refusal {
    /// What kind of character.
    pub hazard: Hazard,
    /// The character.
    pub character: char,
    /// Its position, counting characters from 1.
    pub position: usize,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "contains {} (U+{:04X}) at character {}",
            self.hazard,
            u32::from(self.character),
            self.position
        )
    }
}

/// The hazard of `c` inside a line of text; tabs are text.
pub(crate) fn in_line(c: char) -> Option<Hazard> {
    match c {
        '\t' => None,
        '\u{2028}' | '\u{2029}' => Some(Hazard::Separator),
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => Some(Hazard::Bidi),
        c if c.is_control() => Some(Hazard::Control),
        _ => None,
    }
}

/// The hazard of `c` inside a name.
pub(crate) fn in_name(c: char) -> Option<Hazard> {
    if c.is_whitespace() {
        return Some(Hazard::Whitespace);
    }
    if let Some(hazard) = in_line(c) {
        return Some(hazard);
    }
    invisible(c).then_some(Hazard::Invisible)
}

/// Characters that show nothing, or change how their neighbours show: every
/// format character (Cf: zero-width spaces and joiners, soft hyphen, BOM,
/// tags), private use and unassigned code points, and the default-ignorable
/// letters and marks that are not Cf (Hangul fillers, variation selectors,
/// the combining grapheme joiner), plus the blank braille pattern.
fn invisible(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Format | GeneralCategory::PrivateUse | GeneralCategory::Unassigned
    ) || matches!(
        c,
        '\u{034F}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFA0}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// The first hazard in `text` under `rule`.
pub(crate) fn first(text: &str, rule: fn(char) -> Option<Hazard>) -> Result<(), Refusal> {
    for (index, character) in text.chars().enumerate() {
        if let Some(hazard) = rule(character) {
            return Err(Refusal {
                hazard,
                character,
                position: index + 1,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Hazard, in_line, in_name};

    #[test]
    fn lines_refuse_controls_separators_and_bidi_but_keep_tabs() {
        for (c, hazard) in [
            ('\n', Hazard::Control),
            ('\r', Hazard::Control),
            ('\u{0}', Hazard::Control),
            ('\u{7}', Hazard::Control),
            ('\u{1b}', Hazard::Control),
            ('\u{7f}', Hazard::Control),
            ('\u{85}', Hazard::Control),
            ('\u{9b}', Hazard::Control),
            ('\u{2028}', Hazard::Separator),
            ('\u{2029}', Hazard::Separator),
            ('\u{202E}', Hazard::Bidi),
            ('\u{2066}', Hazard::Bidi),
        ] {
            assert_eq!(in_line(c), Some(hazard), "{c:?}");
        }
        for fine in ['\t', ' ', 'a', 'ñ', '€', '😀', '\u{200F}', 'ا'] {
            assert_eq!(in_line(fine), None, "{fine:?}");
        }
    }

    #[test]
    fn names_also_refuse_whitespace_and_invisible_characters() {
        for (c, hazard) in [
            (' ', Hazard::Whitespace),
            ('\t', Hazard::Whitespace),
            ('\u{a0}', Hazard::Whitespace),
            ('\u{200B}', Hazard::Invisible),
            ('\u{200D}', Hazard::Invisible),
            ('\u{AD}', Hazard::Invisible),
            ('\u{FEFF}', Hazard::Invisible),
            ('\u{FE0F}', Hazard::Invisible),
            ('\u{3164}', Hazard::Invisible),
            ('\u{E0041}', Hazard::Invisible),
            ('\u{E000}', Hazard::Invisible),
            ('\u{202E}', Hazard::Bidi),
        ] {
            assert_eq!(in_name(c), Some(hazard), "{c:?}");
        }
        for fine in ['a', 'Z', '0', '_', '-', 'ñ', 'Ω', '字', '😀'] {
            assert_eq!(in_name(fine), None, "{fine:?}");
        }
    }
}
