//! Ingest authentication: a set of accepted bearer tokens, rotatable without a restart.
//!
//! Tokens come from `server.token`, `server.tokens` (inline or from the environment) and
//! `server.tokens_file` (one per line). The file is re-read when its modification time changes
//! (checked at most once a second), so rotation is: add the new token, move the clients, remove the
//! old token. If the file becomes unreadable, the previous set stays in force and a warning is logged.
//!
//! Comparison: the presented credential and every accepted token are hashed with SHA-256 and the
//! digests compared with `subtle`'s constant-time equality, over all tokens without an early exit, so
//! neither the content nor the length of a token, nor which one matched, shows in the timing. Tokens
//! are never logged and never appear in errors or metrics.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::config::{ConfigError, Secret, ServerConfig};

type Digest32 = [u8; 32];

fn digest(s: &[u8]) -> Digest32 {
    Sha256::digest(s).into()
}

/// The accepted tokens.
#[derive(Debug)]
pub struct Tokens {
    inline: Vec<Digest32>,
    file: Option<PathBuf>,
    from_file: Mutex<FileTokens>,
}

#[derive(Debug)]
struct FileTokens {
    checked: Instant,
    modified: Option<SystemTime>,
    digests: Vec<Digest32>,
}

/// How often the tokens file's modification time is looked at.
const RECHECK: Duration = Duration::from_secs(1);

fn read_file(path: &Path) -> std::io::Result<(Option<SystemTime>, Vec<Digest32>)> {
    let modified = std::fs::metadata(path)?.modified().ok();
    let text = std::fs::read_to_string(path)?;
    let digests = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| digest(l.as_bytes()))
        .collect();
    Ok((modified, digests))
}

impl Tokens {
    /// The tokens of `[server]`; an unreadable `tokens_file` is an error naming the key.
    pub fn from_config(server: &ServerConfig) -> Result<Tokens, ConfigError> {
        let inline: Vec<&Secret> = server.token.iter().chain(&server.tokens).collect();
        Self::new(&inline, server.tokens_file.clone())
    }

    /// Tokens given inline and, optionally, in a file.
    pub fn new(inline: &[&Secret], file: Option<PathBuf>) -> Result<Tokens, ConfigError> {
        let (modified, digests) = match &file {
            Some(path) => read_file(path).map_err(|source| ConfigError::SecretFile {
                key: "server.tokens_file".into(),
                path: path.clone(),
                source,
            })?,
            None => (None, Vec::new()),
        };
        Ok(Tokens {
            inline: inline
                .iter()
                .map(|t| digest(t.expose().as_bytes()))
                .collect(),
            file,
            from_file: Mutex::new(FileTokens {
                checked: Instant::now(),
                modified,
                digests,
            }),
        })
    }

    /// Whether ingest requires a token at all (some token configured, or a tokens file).
    pub fn required(&self) -> bool {
        !self.inline.is_empty() || self.file.is_some()
    }

    /// Whether `presented` is one of the accepted tokens (constant-time; see the module doc).
    pub fn accepts(&self, presented: &str) -> bool {
        self.accepts_digest(&digest(presented.as_bytes()))
    }

    /// Whether the token whose SHA-256 digest is `given` is accepted (constant-time). UI sessions keep
    /// only this digest, so a token withdrawn from the file ends the sessions it opened.
    pub fn accepts_digest(&self, given: &[u8; 32]) -> bool {
        let mut ok = Choice::from(0);
        for t in &self.inline {
            ok |= given.ct_eq(t);
        }
        let mut f = self.from_file.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh(&mut f);
        for t in &f.digests {
            ok |= given.ct_eq(t);
        }
        ok.into()
    }

    /// Makes the next check re-read the tokens file (tests: no waiting for [`RECHECK`], and a new
    /// mtime is not needed on file systems with coarse timestamps).
    #[cfg(test)]
    pub(crate) fn force_recheck(&self) {
        let mut f = self.from_file.lock().unwrap();
        f.checked -= RECHECK;
        f.modified = None;
    }

    fn refresh(&self, f: &mut FileTokens) {
        let Some(path) = &self.file else { return };
        if f.checked.elapsed() < RECHECK {
            return;
        }
        f.checked = Instant::now();
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if modified.is_some() && modified == f.modified {
            return;
        }
        match read_file(path) {
            Ok((modified, digests)) => {
                tracing::info!(file = %path.display(), tokens = digests.len(), "ingest tokens re-read");
                f.modified = modified;
                f.digests = digests;
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot re-read the ingest tokens file; keeping the previous tokens");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_configured_token_is_accepted() {
        let (a, b) = (Secret::new("tok-a"), Secret::new("tok-b"));
        let t = Tokens::new(&[&a, &b], None).unwrap();
        assert!(t.required());
        assert!(t.accepts("tok-a") && t.accepts("tok-b"));
        assert!(!t.accepts("tok-c") && !t.accepts("") && !t.accepts("tok-a "));
        assert!(!Tokens::new(&[], None).unwrap().required());
    }

    #[test]
    fn the_file_rotates_without_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# comment\nold-token\n\n").unwrap();
        let t = Tokens::new(&[], Some(path.clone())).unwrap();
        assert!(t.accepts("old-token") && !t.accepts("# comment"));
        std::fs::write(&path, "new-token\n").unwrap();
        t.force_recheck();
        assert!(t.accepts("new-token"));
        assert!(!t.accepts("old-token"));
        let missing = Tokens::new(&[], Some(dir.path().join("nope"))).unwrap_err();
        assert!(
            missing.to_string().contains("server.tokens_file"),
            "{missing}"
        );
    }
}
