//! Which pages may open the WebSockets. A browser sends cookies and reaches
//! private networks from any page it shows, so an upgrade from another site
//! would chat in the visitor's name from wherever the visitor is: the page's
//! own origin is allowed, others only when listed (`--web-allowed-origins`).
//! Clients that are not browsers send no `Origin` and are not asked.

/// The origins allowed besides the page's own.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins {
    /// `scheme://host[:port]`, lower-case, without a trailing slash.
    listed: Vec<String>,
}

impl AllowedOrigins {
    /// The origins of `--web-allowed-origins`.
    pub fn new(listed: &[String]) -> Self {
        Self {
            listed: listed
                .iter()
                .map(|origin| normalise(origin))
                .filter(|origin| !origin.is_empty())
                .collect(),
        }
    }

    /// Whether a request with this `Origin` (if any) to this `Host` may upgrade.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let origin = normalise(origin);
        if self.listed.contains(&origin) {
            return true;
        }
        let authority = origin
            .split_once("://")
            .map_or("", |(_, authority)| authority);
        host.is_some_and(|host| !authority.is_empty() && authority.eq_ignore_ascii_case(host))
    }
}

fn normalise(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::AllowedOrigins;

    #[test]
    fn the_pages_own_origin_is_allowed_and_others_only_when_listed() {
        let none = AllowedOrigins::new(&[]);
        assert!(none.allows(Some("http://127.0.0.1:7080"), Some("127.0.0.1:7080")));
        assert!(none.allows(Some("HTTP://Chat.Example:7080"), Some("chat.example:7080")));
        assert!(!none.allows(Some("http://evil.example"), Some("127.0.0.1:7080")));
        assert!(!none.allows(Some("null"), Some("127.0.0.1:7080")));
        assert!(!none.allows(Some("http://127.0.0.1:7080"), None));
        assert!(none.allows(None, Some("127.0.0.1:7080")), "not a browser");

        let listed = AllowedOrigins::new(&["https://chat.example.com/".into(), String::new()]);
        assert!(listed.allows(Some("https://chat.example.com"), Some("gw:7080")));
        assert!(!listed.allows(Some("http://chat.example.com"), Some("gw:7080")));
    }
}
