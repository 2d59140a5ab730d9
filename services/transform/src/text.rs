//! What each operation does to a text. Pure functions: no I/O, no gRPC.

use unicode_segmentation::UnicodeSegmentation;

/// A text transformation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Full Unicode upper-case mapping: one character may become several
    /// ("ß" -> "SS").
    Upper,
    /// Full Unicode lower-case mapping, with the final-sigma rule.
    Lower,
    /// Reverses extended grapheme clusters, so combining marks stay on their
    /// letter and multi-codepoint emoji stay whole.
    Reverse,
}

impl Operation {
    /// Applies the operation.
    pub fn apply(self, text: &str) -> String {
        match self {
            Self::Upper => text.to_uppercase(),
            Self::Lower => text.to_lowercase(),
            Self::Reverse => text.graphemes(true).rev().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Operation::{Lower, Reverse, Upper};
    use proptest::prelude::*;

    #[test]
    fn upper_uses_full_case_mapping() {
        assert_eq!(Upper.apply("straße"), "STRASSE");
        assert_eq!(Upper.apply("ﬁx"), "FIX");
        assert_eq!(Upper.apply("hola, mundo"), "HOLA, MUNDO");
    }

    #[test]
    fn lower_applies_final_sigma() {
        assert_eq!(Lower.apply("ΣΑΣ"), "σας");
        assert_eq!(Lower.apply("İ"), "i\u{307}");
    }

    #[test]
    fn reverse_keeps_combining_marks_on_their_letter() {
        // "é" as e + COMBINING ACUTE ACCENT.
        assert_eq!(Reverse.apply("ne\u{301}e"), "ee\u{301}n");
    }

    #[test]
    fn reverse_keeps_emoji_sequences_whole() {
        let family = "👨\u{200d}👩\u{200d}👧";
        let flag = "🇪🇸";
        assert_eq!(
            Reverse.apply(&format!("a{family}b{flag}")),
            format!("{flag}b{family}a")
        );
    }

    #[test]
    fn empty_text_stays_empty() {
        for operation in [Upper, Lower, Reverse] {
            assert_eq!(operation.apply(""), "");
        }
    }

    #[test]
    fn reverse_attaches_a_leading_combining_mark_to_its_new_neighbour() {
        // A text that starts with a lone combining mark has no letter for it; once
        // reversed, the mark follows the last letter and joins its cluster. This
        // is why reversing twice is the identity only for well-formed clusters.
        assert_eq!(Reverse.apply("\u{301}ab"), "ba\u{301}");
    }

    /// Texts of well-formed grapheme clusters: a base character that joins
    /// nothing by itself (no special Grapheme_Cluster_Break value) with up to two
    /// combining diacritics, or a multi-codepoint cluster (flag, ZWJ family, skin
    /// tone, CRLF, Hangul syllable).
    const CLUSTERED_TEXT: &str = concat!(
        "(?:",
        r"[\p{L}\p{N}\p{P}\p{S}\p{Zs}",
        r"&&\P{gcb=Extend}&&\P{gcb=Prepend}&&\P{gcb=SpacingMark}&&\P{gcb=ZWJ}",
        r"&&\P{gcb=Regional_Indicator}&&\P{gcb=L}&&\P{gcb=V}&&\P{gcb=T}&&\P{gcb=LV}&&\P{gcb=LVT}]",
        r"[\u{300}-\u{36F}]{0,2}",
        "|🇪🇸|👨\u{200d}👩\u{200d}👧|👍🏽|\r\n|한",
        "){0,24}",
    );

    proptest! {
        #[test]
        fn reverse_twice_is_identity(text in CLUSTERED_TEXT) {
            prop_assert_eq!(Reverse.apply(&Reverse.apply(&text)), text);
        }

        #[test]
        fn upper_is_idempotent(text in any::<String>()) {
            let once = Upper.apply(&text);
            prop_assert_eq!(Upper.apply(&once), once);
        }

        #[test]
        fn lower_is_idempotent(text in "\\PC*") {
            let once = Lower.apply(&text);
            prop_assert_eq!(Lower.apply(&once), once);
        }

        #[test]
        fn reverse_keeps_the_graphemes(text in CLUSTERED_TEXT) {
            use unicode_segmentation::UnicodeSegmentation;
            let mut forward: Vec<&str> = text.graphemes(true).collect();
            let reversed = Reverse.apply(&text);
            let mut backward: Vec<&str> = reversed.graphemes(true).collect();
            forward.sort_unstable();
            backward.sort_unstable();
            prop_assert_eq!(forward, backward);
        }
    }
}
