//! Browser sessions of the UI: signing in with an API token, the session cookie, and the CSRF token.
//!
//! When tokens are configured (`server.token`, `server.tokens`, `server.tokens_file`), a person signs in
//! by posting one of them to `/ui/login`. The daemon then makes a session: a random 256-bit id sent as
//! the cookie `scanbridge_session` (`HttpOnly`, `SameSite=Strict`, `Path=/`, `Secure` when the server
//! speaks TLS) and a random per-session CSRF token that the page reads from `GET /ui/session` and sends
//! back in `X-CSRF-Token` on every change.
//!
//! Promises:
//! - Neither the token nor the session id is kept in clear: the table holds SHA-256 digests of the
//!   session id and of the token that opened it. A session lasts [`TTL`] and ends early when its token
//!   is no longer accepted (a token removed from `tokens_file` signs its sessions out), on sign-out, or
//!   when the daemon restarts (sessions live in memory).
//! - CSRF tokens are compared in constant time (`subtle`).
//! - The table is bounded ([`MAX_SESSIONS`]); expired sessions are dropped first, then the oldest.
//!
//! Concurrency: one mutex around a small map, held only for lookups and inserts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::ingest::auth::Tokens;

/// The session cookie's name.
pub const COOKIE: &str = "scanbridge_session";
/// How long a session lasts after sign-in.
pub const TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most.
pub const MAX_SESSIONS: usize = 10_000;

type Digest32 = [u8; 32];

fn sha256(s: &[u8]) -> Digest32 {
    Sha256::digest(s).into()
}

fn random_text() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

#[derive(Debug)]
struct Session {
    token: Digest32,
    csrf: String,
    expires: Instant,
}

/// A signed-in session, as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub csrf: String,
}

impl Current {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, presented: &str) -> bool {
        sha256(presented.as_bytes())
            .ct_eq(&sha256(self.csrf.as_bytes()))
            .into()
    }
}

/// The table of sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<Digest32, Session>>,
}

impl Sessions {
    /// Opens a session for `token` if `tokens` accepts it; returns the cookie value (the session id).
    pub fn sign_in(&self, tokens: &Tokens, token: &str) -> Option<String> {
        if token.is_empty() || !tokens.accepts(token) {
            return None;
        }
        let id = random_text();
        let now = Instant::now();
        let mut map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expires > now);
        }
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(
            sha256(id.as_bytes()),
            Session {
                token: sha256(token.as_bytes()),
                csrf: random_text(),
                expires: now + TTL,
            },
        );
        Some(id)
    }

    /// The live session whose id is `cookie`, if any (its token still accepted, not expired).
    pub fn current(&self, tokens: &Tokens, cookie: &str) -> Option<Current> {
        let key = sha256(cookie.as_bytes());
        let mut map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.get(&key)?;
        if s.expires <= Instant::now() || !tokens.accepts_digest(&s.token) {
            map.remove(&key);
            return None;
        }
        Some(Current {
            csrf: s.csrf.clone(),
        })
    }

    /// Ends the session whose id is `cookie`.
    pub fn sign_out(&self, cookie: &str) {
        let key = sha256(cookie.as_bytes());
        self.by_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }
}

/// The session id in a `Cookie` header, if any.
pub fn cookie_value(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
}

/// The `Set-Cookie` value that stores `id` (or, with `None`, clears the cookie).
pub fn set_cookie(id: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match id {
        Some(id) => format!(
            "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            TTL.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn sign_in_needs_an_accepted_token_and_keeps_no_secret_in_clear() {
        let t = Secret::new("tok-123456");
        let tokens = Tokens::new(&[&t], None).unwrap();
        let s = Sessions::default();
        assert!(s.sign_in(&tokens, "wrong").is_none());
        assert!(s.sign_in(&tokens, "").is_none());
        let id = s.sign_in(&tokens, "tok-123456").unwrap();
        assert!(id.len() >= 43, "256 random bits");
        let table = format!("{:?}", s.by_id.lock().unwrap());
        assert!(!table.contains("tok-123456") && !table.contains(&id));
        let cur = s.current(&tokens, &id).unwrap();
        assert!(cur.csrf_ok(&cur.csrf.clone()));
        assert!(!cur.csrf_ok("") && !cur.csrf_ok("x"));
        assert!(s.current(&tokens, "forged").is_none());
        s.sign_out(&id);
        assert!(s.current(&tokens, &id).is_none());
    }

    #[test]
    fn a_session_ends_when_its_token_is_withdrawn() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "old-token\n").unwrap();
        let tokens = Tokens::new(&[], Some(file.clone())).unwrap();
        let s = Sessions::default();
        let id = s.sign_in(&tokens, "old-token").unwrap();
        assert!(s.current(&tokens, &id).is_some());
        std::fs::write(&file, "new-token\n").unwrap();
        tokens.force_recheck();
        assert!(s.current(&tokens, &id).is_none());
    }

    #[test]
    fn cookies() {
        let mut h = axum::http::HeaderMap::new();
        h.append(
            "cookie",
            "a=1; scanbridge_session=abc ; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_value(&h), Some("abc"));
        let set = set_cookie(Some("abc"), true);
        for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(set.contains(attr), "{set}");
        }
        assert!(!set_cookie(Some("abc"), false).contains("Secure"));
        assert!(set_cookie(None, false).contains("Max-Age=0"));
    }
}
