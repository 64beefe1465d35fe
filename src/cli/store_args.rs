//! `--config` and `--data-dir`: the arguments of the commands that read or change the store beside a
//! running daemon (`dlq`, `silence`, `suppressed`, `events`, `replay`, `store`), opening that store,
//! and the time window (`--since`, `--until`) of the commands that read the archive.
//!
//! These commands open the store without recovery: the daemon owns the leases; SQLite's WAL lets a CLI
//! read and write beside it (writes wait on a busy timeout). They open only a store that exists:
//! pointed at the wrong directory they say so, and create nothing.

use std::path::PathBuf;

use anyhow::Context;

use crate::settings::Settings;
use crate::store::sqlite::SqliteStore;

/// Where the store is.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Configuration file layered over the built-in defaults.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Data directory of the store (overrides `store.data_dir`).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
}

impl StoreArgs {
    /// The data directory: `--data-dir`, else the configuration's `store.data_dir`.
    pub fn data_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.data_dir {
            Some(d) => Ok(d.clone()),
            None => Ok(Settings::load(self.config.as_deref())?.store.data_dir),
        }
    }

    /// Opens the store that exists there, without clearing the daemon's leases; a directory without
    /// a store is an error, and nothing is created (the commands that read never make a store).
    pub fn open(&self) -> anyhow::Result<SqliteStore> {
        let dir = self.data_dir()?;
        SqliteStore::open_existing(&dir)
            .with_context(|| format!("opening the store in {}", dir.display()))
    }
}

/// A point in time from the command line, at or before `now_ms`: a duration ago (`1h`, `7d`), or a
/// UTC date (`2026-11-20`) or time (`2026-11-20T09:00:00Z`). Returns ms since the Unix epoch.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(d) = humantime::parse_duration(t) {
        return Ok(now_ms.saturating_sub(d.as_millis() as i64));
    }
    let full = if t.len() == 10 {
        format!("{t}T00:00:00Z")
    } else {
        t.to_owned()
    };
    let when = humantime::parse_rfc3339_weak(full.trim_end_matches('Z')).map_err(|_| {
        format!("{text:?}: expected a duration ago (1h, 7d) or a UTC date (2026-11-20) or time (2026-11-20T09:00:00Z)")
    })?;
    Ok(when
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0))
}

/// `--since` and `--until`: a window of acceptance times in the archive.
#[derive(Debug, Clone, clap::Args)]
pub struct Window {
    /// Events accepted at or after: a duration ago (1h, 7d) or a UTC date or time (2026-11-20,
    /// 2026-11-20T09:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Events accepted before (default: now); same forms as --since.
    #[arg(long)]
    pub until: Option<String>,
}

impl Window {
    /// The window in ms since the Unix epoch at `now_ms`, or the error message.
    pub fn resolve(&self, now_ms: i64) -> Result<(Option<i64>, Option<i64>), String> {
        let since = self.since.as_deref().map(|t| parse_time(t, now_ms));
        let until = self.until.as_deref().map(|t| parse_time(t, now_ms));
        let (since, until) = (since.transpose()?, until.transpose()?);
        if let (Some(s), Some(u)) = (since, until)
            && s >= u
        {
            return Err("--since must be before --until".into());
        }
        Ok((since, until))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_durations_ago_or_utc_dates() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_time("1h", now), Ok(now - 3_600_000));
        assert_eq!(parse_time("7d", now), Ok(now - 7 * 86_400_000));
        assert_eq!(parse_time("2023-11-14", now), Ok(1_699_920_000_000));
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", now),
            Ok(1_700_000_000_000)
        );
        assert!(
            parse_time("last tuesday", now)
                .unwrap_err()
                .contains("expected")
        );
        let w = Window {
            since: Some("1h".into()),
            until: Some("2h".into()),
        };
        assert!(w.resolve(now).is_err(), "since after until");
    }
}
