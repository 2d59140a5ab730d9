//! Pages of people ordered by id, and the opaque tokens that continue them.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{
    error::FieldError,
    person::{Person, validate_id, validate_id_prefix},
};

/// Page size when the client does not say.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page; bigger requests are clamped.
pub const MAX_PAGE_SIZE: usize = 1000;

/// What a store reads for one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Only ids starting with this.
    pub prefix: String,
    /// Only ids after this one (the last id of the previous page).
    pub after: Option<String>,
    /// At most this many people.
    pub limit: usize,
}

/// One page, read at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The people, ordered by id.
    pub people: Vec<Person>,
    /// Whether more people follow.
    pub more: bool,
    /// The store revision the page was read at.
    pub revision: u64,
}

/// The continuation of a listing: the prefix it was for and the last id served,
/// as `base64url("<prefix>\n<last id>")`. Opaque to clients, but not secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    /// The prefix of the listing the token continues.
    pub prefix: String,
    /// The last id of the page before.
    pub after: String,
}

impl PageToken {
    /// The string form clients pass back.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}\n{}", self.prefix, self.after))
    }

    /// Parses a token; it must belong to a listing of `prefix`.
    pub fn decode(token: &str, prefix: &str) -> Result<Self, FieldError> {
        let malformed = || {
            FieldError::new(
                "page_token",
                "malformed; pass back a next_page_token unchanged",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
        let text = String::from_utf8(bytes).map_err(|_| malformed())?;
        let (token_prefix, after) = text.split_once('\n').ok_or_else(malformed)?;
        validate_id("page_token", after).map_err(|_| malformed())?;
        if token_prefix != prefix {
            return Err(FieldError::new(
                "page_token",
                "belongs to a listing with another id_prefix",
            ));
        }
        Ok(Self {
            prefix: token_prefix.to_owned(),
            after: after.to_owned(),
        })
    }
}

impl ListQuery {
    /// The query for a ListPeople request, checked.
    pub fn new(prefix: String, page_size: u32, page_token: &str) -> Result<Self, FieldError> {
        validate_id_prefix("id_prefix", &prefix)?;
        let after = if page_token.is_empty() {
            None
        } else {
            Some(PageToken::decode(page_token, &prefix)?.after)
        };
        let limit = match usize::try_from(page_size).unwrap_or(MAX_PAGE_SIZE) {
            0 => DEFAULT_PAGE_SIZE,
            size => size.min(MAX_PAGE_SIZE),
        };
        Ok(Self {
            prefix,
            after,
            limit,
        })
    }
}

impl Page {
    /// The token for the next page, or empty on the last page.
    pub fn next_page_token(&self, prefix: &str) -> String {
        match (self.more, self.people.last()) {
            (true, Some(last)) => PageToken {
                prefix: prefix.to_owned(),
                after: last.id.clone(),
            }
            .encode(),
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_for_their_prefix_only() {
        let token = PageToken {
            prefix: "es:".into(),
            after: "es:123".into(),
        };
        assert_eq!(PageToken::decode(&token.encode(), "es:").unwrap(), token);
        assert_eq!(
            PageToken::decode(&token.encode(), "fr:").unwrap_err().field,
            "page_token"
        );
    }

    #[test]
    fn garbage_tokens_are_malformed() {
        for token in [
            "%%%",
            "bm90IGEgdG9rZW4",
            &URL_SAFE_NO_PAD.encode("\nbad id"),
        ] {
            assert!(
                PageToken::decode(token, "")
                    .unwrap_err()
                    .reason
                    .starts_with("malformed"),
                "{token}"
            );
        }
    }

    #[test]
    fn page_sizes_default_and_clamp() {
        assert_eq!(
            ListQuery::new(String::new(), 0, "").unwrap().limit,
            DEFAULT_PAGE_SIZE
        );
        assert_eq!(
            ListQuery::new(String::new(), 5000, "").unwrap().limit,
            MAX_PAGE_SIZE
        );
        assert_eq!(ListQuery::new(String::new(), 7, "").unwrap().limit, 7);
        assert_eq!(
            ListQuery::new("bad prefix".into(), 7, "")
                .unwrap_err()
                .field,
            "id_prefix"
        );
    }
}
