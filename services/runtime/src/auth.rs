//! [`BearerAuth`]: with `--auth-token-file`, every call but health must carry
//! `authorization: Bearer <token>` with one of the file's tokens; others are
//! answered UNAUTHENTICATED before they reach a service.
//!
//! Tokens are compared as SHA-256 digests in constant time, against every token
//! in the file, so neither the time nor the length of a comparison says anything
//! about a valid token. The file holds one token per line (blank lines and `#`
//! comments ignored) and is re-read when it changes, so tokens rotate without a
//! restart.
//!
//! The file fails closed: while it is missing, unreadable or lists no token
//! (at start too), no token is valid and every call but health is refused, so
//! emptying or deleting the file revokes every token at the next reload. An
//! ERROR says so once per change of the file, and the server picks the tokens
//! up as soon as the file lists some again.

use std::{
    future::{Ready, ready},
    path::PathBuf,
    task::{Context, Poll},
    time::Duration,
};

use clap::Args;
use futures_util::future::Either;
use ring::digest::{SHA256, digest};
use subtle::ConstantTimeEq as _;
use tokio_util::sync::CancellationToken;
use tonic::{Status, body::Body};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    health::HEALTH_SERVICE_NAME,
    reload::{LoadError, Reloading},
};

/// What a server whose token file does not load does, for its ERROR line.
const FAILED_CLOSED: &str = "no token is valid: every call but health is refused";

/// The authentication flags of a server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct AuthOptions {
    /// File of accepted bearer tokens, one per line; when set, every call but
    /// health needs `authorization: Bearer <token>`.
    #[arg(long, env = "QUARTET_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
}

impl AuthOptions {
    /// The accepted tokens, re-reading their file every `interval`, or `None`
    /// when auth is off. A file that does not load accepts no token.
    pub fn tokens(
        &self,
        interval: Duration,
        stop: CancellationToken,
    ) -> Option<Reloading<TokenSet>> {
        let path = self.auth_token_file.as_ref()?;
        let name = path.display().to_string();
        Some(Reloading::start_failing_closed(
            "auth tokens",
            vec![path.clone()],
            interval,
            move |files| TokenSet::parse(&files[0], &name),
            TokenSet::none(),
            FAILED_CLOSED,
            stop,
        ))
    }
}

/// The accepted tokens, as digests.
#[derive(Debug, Clone)]
pub struct TokenSet {
    digests: Vec<[u8; 32]>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

impl TokenSet {
    /// A set that accepts no token: what a server serves while its token file
    /// is missing, unreadable or empty.
    pub fn none() -> Self {
        Self {
            digests: Vec::new(),
        }
    }

    /// Parses a token file: one token per line; blank lines and `#` comments skipped.
    pub fn parse(file: &[u8], path: &str) -> Result<Self, LoadError> {
        let text = std::str::from_utf8(file).map_err(|_| LoadError {
            path: path.to_owned(),
            reason: "not UTF-8".into(),
        })?;
        let digests: Vec<[u8; 32]> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|token| sha256(token.as_bytes()))
            .collect();
        if digests.is_empty() {
            return Err(LoadError {
                path: path.to_owned(),
                reason: "no token in the file".into(),
            });
        }
        Ok(Self { digests })
    }

    /// Whether `presented` is one of the tokens, in time independent of which.
    pub fn allows(&self, presented: &[u8]) -> bool {
        let presented = sha256(presented);
        let mut found = subtle::Choice::from(0);
        for digest in &self.digests {
            found |= digest.ct_eq(&presented);
        }
        found.into()
    }
}

/// Builds [`BearerAuth`] services.
#[derive(Debug, Clone)]
pub struct BearerAuthLayer {
    tokens: Option<Reloading<TokenSet>>,
}

impl BearerAuthLayer {
    /// Checks tokens against `tokens`; `None` lets every call through.
    pub fn new(tokens: Option<Reloading<TokenSet>>) -> Self {
        Self { tokens }
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

/// Refuses calls without an accepted bearer token.
#[derive(Debug, Clone)]
pub struct BearerAuth<S> {
    inner: S,
    tokens: Option<Reloading<TokenSet>>,
}

fn presented_token(request: &http::Request<Body>) -> Option<&[u8]> {
    let value = request
        .headers()
        .get(http::header::AUTHORIZATION)?
        .as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

fn is_health(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|rest| rest.strip_prefix(HEALTH_SERVICE_NAME))
        .is_some_and(|rest| rest.starts_with('/'))
}

impl<S> Service<http::Request<Body>> for BearerAuth<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<http::Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let Some(tokens) = &self.tokens else {
            return Either::Left(self.inner.call(request));
        };
        if is_health(request.uri().path()) {
            return Either::Left(self.inner.call(request));
        }
        let allowed = presented_token(&request).is_some_and(|token| tokens.current().allows(token));
        if allowed {
            return Either::Left(self.inner.call(request));
        }
        let status =
            Status::unauthenticated("a valid `authorization: Bearer <token>` header is required");
        Either::Right(ready(Ok(status.into_http())))
    }
}

#[cfg(test)]
mod tests {
    use super::{TokenSet, is_health};

    #[test]
    fn tokens_are_lines_without_comments() {
        let tokens = TokenSet::parse(b"# rotated monthly\nfirst\n\n  second  \n", "f").unwrap();
        assert!(tokens.allows(b"first"));
        assert!(tokens.allows(b"second"));
        assert!(!tokens.allows(b"# rotated monthly"));
        assert!(!tokens.allows(b"firs"));
        assert!(!tokens.allows(b""));
        assert!(TokenSet::parse(b"# nothing\n\n", "f").is_err());
    }

    #[test]
    fn the_empty_set_accepts_nothing() {
        let none = TokenSet::none();
        assert!(!none.allows(b""));
        assert!(!none.allows(b"first"));
    }

    #[test]
    fn only_the_health_service_is_exempt() {
        assert!(is_health("/grpc.health.v1.Health/Check"));
        assert!(is_health("/grpc.health.v1.Health/Watch"));
        assert!(!is_health("/grpc.health.v1.HealthX/Check"));
        assert!(!is_health(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
    }
}
