//! [`CookieJar`]: stateless proof that a UDP sender receives what is sent to
//! its address, so the gateway cannot be used to reflect traffic at a victim.
//!
//! A cookie is a MAC of the sender's address and the current minute under a
//! key drawn at start-up: the gateway keeps no state for senders it has not
//! validated, so spoofed datagrams cost it nothing but a MAC, and a cookie
//! proves the sender read a datagram sent to that address. Cookies are valid
//! for the minute they were issued in and the next (one to two minutes).

use std::{
    fmt::Write as _,
    net::SocketAddr,
    time::{SystemTime, UNIX_EPOCH},
};

use ring::{hmac, rand::SystemRandom};
use subtle::ConstantTimeEq as _;

/// Bytes of MAC a cookie carries: 32 bits, printed as 8 hex digits. A spoofer
/// that never sees our answers must guess them for the one address it forges,
/// within two minutes.
const COOKIE_BYTES: usize = 4;
/// Seconds in one cookie window.
const WINDOW_SECS: u64 = 60;

/// Issues and checks cookies.
pub struct CookieJar {
    key: hmac::Key,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieJar").finish_non_exhaustive()
    }
}

/// The cookie window `now` falls in.
pub fn window(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / WINDOW_SECS)
}

impl CookieJar {
    /// A jar with a fresh random key; `None` when the system has no randomness.
    pub fn new() -> Option<Self> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new()).ok()?;
        Some(Self { key })
    }

    /// The cookie of `peer` in `window`.
    pub fn issue(&self, peer: SocketAddr, window: u64) -> String {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(&window.to_be_bytes());
        match peer.ip() {
            std::net::IpAddr::V4(ip) => context.update(&ip.octets()),
            std::net::IpAddr::V6(ip) => context.update(&ip.octets()),
        }
        context.update(&peer.port().to_be_bytes());
        let tag = context.sign();
        let mut cookie = String::with_capacity(COOKIE_BYTES * 2);
        for byte in &tag.as_ref()[..COOKIE_BYTES] {
            let _ = write!(cookie, "{byte:02x}");
        }
        cookie
    }

    /// Whether `cookie` was issued to `peer` in `window` or the one before.
    pub fn check(&self, peer: SocketAddr, cookie: &str, window: u64) -> bool {
        let cookie = cookie.trim().to_ascii_lowercase();
        [window, window.saturating_sub(1)]
            .into_iter()
            .any(|window| {
                let expected = self.issue(peer, window);
                // Constant time: a spoofer learns nothing from how long a
                // wrong guess took.
                bool::from(expected.as_bytes().ct_eq(cookie.as_bytes()))
            })
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::CookieJar;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_cookie_is_valid_for_its_address_this_window_and_the_next() {
        let jar = CookieJar::new().unwrap();
        let peer = addr("192.0.2.7:40000");
        let cookie = jar.issue(peer, 100);
        assert_eq!(cookie.len(), 8);
        assert!(jar.check(peer, &cookie, 100));
        assert!(jar.check(peer, &cookie.to_uppercase(), 101));
        assert!(!jar.check(peer, &cookie, 102), "expired");
        assert!(
            !jar.check(addr("192.0.2.7:40001"), &cookie, 100),
            "another port"
        );
        assert!(
            !jar.check(addr("192.0.2.8:40000"), &cookie, 100),
            "another host"
        );
        assert!(!jar.check(peer, "", 100));
    }

    #[test]
    fn two_gateways_issue_different_cookies() {
        let peer = addr("[2001:db8::1]:5000");
        let (one, two) = (CookieJar::new().unwrap(), CookieJar::new().unwrap());
        assert_ne!(one.issue(peer, 1), two.issue(peer, 1));
    }
}
