//! Who may call the admin API (`/api/v1/...`) and see the UI pages.
//!
//! With no token configured everything is open, as ingest is. With tokens (`server.token`,
//! `server.tokens`, `server.tokens_file`, the same set `POST /events` accepts):
//! - a program sends `Authorization: Bearer TOKEN` (the CLI, scripts; no CSRF token: a browser never
//!   adds that header by itself);
//! - the browser sends the session cookie of [`crate::ui::session`]; every change (any method but
//!   GET/HEAD) must then carry the session's CSRF token in `X-CSRF-Token`, compared in constant time.
//!
//! Whatever the configuration, a change whose `Origin` is not this server, or that the browser marks
//! `Sec-Fetch-Site: cross-site`, is refused: another web site cannot make a browser on the same
//! machine redrive or silence anything, even on an open daemon.
//!
//! Refusals are 401 (no or bad credential: `WWW-Authenticate: Bearer`) or 403 (CSRF, cross-site) with
//! a JSON error that never echoes what was presented.

use std::sync::Arc;

use axum::http::{HeaderMap, Method, StatusCode, header};

use crate::ingest::auth::Tokens;
use crate::ui::session::{self, Current, Sessions};

/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The tokens, the UI sessions, and whether cookies must be `Secure`.
#[derive(Debug)]
pub struct Access {
    pub tokens: Arc<Tokens>,
    pub sessions: Sessions,
    /// The server speaks TLS: cookies are marked `Secure`.
    pub tls: bool,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("sign in first: send Authorization: Bearer TOKEN, or sign in at /ui/login")]
    Unauthenticated,
    #[error("missing or invalid CSRF token (X-CSRF-Token); reload the page")]
    Csrf,
    #[error("cross-site request refused")]
    CrossSite,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
            Refusal::Csrf | Refusal::CrossSite => StatusCode::FORBIDDEN,
        }
    }
}

/// How a request was let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No tokens are configured.
    Open,
    /// A valid bearer token.
    Bearer,
    /// A browser session.
    Session(Current),
}

impl Access {
    pub fn new(tokens: Arc<Tokens>, tls: bool) -> Access {
        Access {
            tokens,
            sessions: Sessions::default(),
            tls,
        }
    }

    /// Whether signing in is needed at all.
    pub fn required(&self) -> bool {
        self.tokens.required()
    }

    /// The browser session of this request, if it has a live one.
    pub fn session(&self, headers: &HeaderMap) -> Option<Current> {
        session::cookie_value(headers).and_then(|c| self.sessions.current(&self.tokens, c))
    }

    /// Who is calling (without the CSRF check, see [`Access::check`]).
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, Refusal> {
        if !self.required() {
            return Ok(Caller::Open);
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                // The scheme is case-insensitive (RFC 9110 §11.1), as on ingest.
                let (scheme, token) = v.trim().split_once([' ', '\t'])?;
                scheme.eq_ignore_ascii_case("bearer").then_some(token)
            });
        if let Some(token) = bearer {
            return if self.tokens.accepts(token.trim()) {
                Ok(Caller::Bearer)
            } else {
                Err(Refusal::Unauthenticated)
            };
        }
        self.session(headers)
            .map(Caller::Session)
            .ok_or(Refusal::Unauthenticated)
    }

    /// Admits or refuses a request to the admin API (see the module doc).
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<Caller, Refusal> {
        let change = !matches!(*method, Method::GET | Method::HEAD);
        if change {
            refuse_cross_site(headers)?;
        }
        let caller = self.caller(headers)?;
        if let Caller::Session(s) = &caller
            && change
        {
            let presented = headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !s.csrf_ok(presented) {
                return Err(Refusal::Csrf);
            }
        }
        Ok(caller)
    }
}

/// Refuses a request another site made a browser send.
pub fn refuse_cross_site(headers: &HeaderMap) -> Result<(), Refusal> {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if fetch_site.eq_ignore_ascii_case("cross-site") || fetch_site.eq_ignore_ascii_case("same-site")
    {
        return Err(Refusal::CrossSite);
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .unwrap_or("");
    if origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
        return Err(Refusal::CrossSite);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn open_daemon_still_refuses_cross_site_changes() {
        let a = Access::new(Arc::new(Tokens::new(&[], None).unwrap()), false);
        assert_eq!(a.check(&Method::GET, &headers(&[])), Ok(Caller::Open));
        assert_eq!(a.check(&Method::POST, &headers(&[])), Ok(Caller::Open));
        let same = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert_eq!(a.check(&Method::POST, &same), Ok(Caller::Open));
        let evil = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example"),
        ]);
        assert_eq!(a.check(&Method::POST, &evil), Err(Refusal::CrossSite));
        let marked = headers(&[("sec-fetch-site", "cross-site")]);
        assert_eq!(a.check(&Method::POST, &marked), Err(Refusal::CrossSite));
        assert_eq!(
            a.check(&Method::GET, &evil),
            Ok(Caller::Open),
            "reads are not changes"
        );
    }

    #[test]
    fn tokens_bearer_or_session_with_csrf() {
        let t = Secret::new("s3cret-token");
        let a = Access::new(Arc::new(Tokens::new(&[&t], None).unwrap()), false);
        assert_eq!(
            a.check(&Method::GET, &headers(&[])),
            Err(Refusal::Unauthenticated)
        );
        let bearer = headers(&[("authorization", "Bearer s3cret-token")]);
        assert_eq!(a.check(&Method::POST, &bearer), Ok(Caller::Bearer));
        let bad = headers(&[("authorization", "Bearer nope")]);
        let lower = headers(&[("authorization", "bearer s3cret-token")]);
        assert_eq!(a.check(&Method::POST, &lower), Ok(Caller::Bearer));
        assert_eq!(a.check(&Method::GET, &bad), Err(Refusal::Unauthenticated));
        let id = a.sessions.sign_in(&a.tokens, "s3cret-token").unwrap();
        let cookie = format!("{}={id}", session::COOKIE);
        let browser = headers(&[("cookie", &cookie)]);
        assert!(matches!(
            a.check(&Method::GET, &browser),
            Ok(Caller::Session(_))
        ));
        assert_eq!(a.check(&Method::POST, &browser), Err(Refusal::Csrf));
        let csrf = a.session(&browser).unwrap().csrf;
        let with = headers(&[("cookie", &cookie), (CSRF_HEADER, &csrf)]);
        assert!(matches!(
            a.check(&Method::POST, &with),
            Ok(Caller::Session(_))
        ));
        let wrong = headers(&[("cookie", &cookie), (CSRF_HEADER, "x")]);
        assert_eq!(a.check(&Method::POST, &wrong), Err(Refusal::Csrf));
    }
}
