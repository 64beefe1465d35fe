//! The arguments of the commands that read or change the store: `--config`, `--data-dir`, and the
//! daemon to ask (`--url`, `--token`: [`super::client`]).
//!
//! `silence`, `dlq`, `suppressed`, `events` and `replay` ask the running daemon's admin API by
//! default (on every backend: any daemon of a JetStream installation answers for all of it), or with
//! `--data-dir` open a data directory directly ([`super::admin_client`]), printing the same lines
//! either way. `store` (check, backup) opens the store directly: the configured backend, i.e.
//! SQLite's own file (`--data-dir`, else `store.data_dir`) or the `[store.jetstream]` cluster
//! (`store restore` reaches the same place without opening it: `super::store`). Opened directly, a store is opened without
//! recovery: the daemon owns the leases; SQLite's WAL lets a CLI read and write beside it. Every one
//! of them opens only a store that exists: pointed at the wrong directory they say so, and create
//! nothing; `--data-dir` also says on stderr which store it opened. This file also has the time
//! window (`--since`, `--until`) of the commands that read the archive.

use std::path::PathBuf;

use anyhow::Context;

use super::admin_client::{self, Admin, CallError};
use super::outcome::Outcome;
use crate::settings::Settings;
use std::sync::Arc;

use crate::config::StoreConfig;
use crate::store::Store;

/// Where the store is: a running daemon (the default for the admin-API commands) or a data directory.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Configuration file layered over the built-in defaults (the daemon's address and token; for
    /// `store`, `store.data_dir`; for `replay --data-dir`, the rules and targets).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Open this data directory directly; it must already hold a store (nothing is created).
    #[arg(long, global = true, conflicts_with = "url")]
    pub data_dir: Option<PathBuf>,
    /// Open the configured store directly instead of asking the daemon: SQLite's `store.data_dir`,
    /// or the `[store.jetstream]` cluster of `--config` (from any machine that reaches it); it must
    /// already hold a store (nothing is created).
    #[arg(long, global = true, conflicts_with_all = ["url", "data_dir"])]
    pub direct: bool,
    #[command(flatten)]
    pub daemon: super::client::DaemonArgs,
}

impl StoreArgs {
    /// The data directory: `--data-dir`, else the configuration's `store.data_dir`.
    pub fn data_dir(&self) -> anyhow::Result<PathBuf> {
        Ok(self.store_config()?.data_dir)
    }

    /// The store's configuration: the file's (or the defaults), with `--data-dir` over it.
    pub fn store_config(&self) -> anyhow::Result<StoreConfig> {
        let mut store = Settings::load(self.config.as_deref())?.store;
        if let Some(d) = &self.data_dir {
            store.data_dir = d.clone();
        }
        Ok(store)
    }

    /// Where the store is, for messages: the data directory or the cluster.
    pub fn describe(&self) -> anyhow::Result<String> {
        Ok(crate::store::open::describe(&self.store_config()?))
    }

    /// Opens the configured store that exists there directly on `rt` (`store check|backup`: the
    /// SQLite file of the data directory, or the JetStream cluster of `--config`), without clearing
    /// the daemon's leases; no store there is an error, and nothing is created.
    pub fn open(&self, rt: &tokio::runtime::Runtime) -> anyhow::Result<Arc<dyn Store>> {
        if let Some(url) = &self.daemon.url {
            anyhow::bail!(
                "--url {url}: `store` works on the store itself, not through the daemon; give --data-dir (or --config with store.data_dir, or with the [store.jetstream] cluster)"
            );
        }
        let cfg = self.store_config()?;
        rt.block_on(crate::store::open::for_tools(&cfg, false))
            .with_context(|| {
                format!(
                    "opening the store in {}",
                    crate::store::open::describe(&cfg)
                )
            })
    }

    /// The admin API of the daemon, or the store of `--data-dir`.
    /// (A JetStream store is opened on `rt`, the runtime its calls then run on.)
    pub fn connect(&self, rt: &tokio::runtime::Runtime) -> anyhow::Result<Admin> {
        match &self.data_dir {
            Some(dir) => admin_client::open_dir(dir),
            None if self.direct => admin_client::open_configured(&self.store_config()?, rt),
            None => Ok(Admin::Api(self.daemon.daemon(self.config.as_deref())?)),
        }
    }

    /// Runs a store command: connects as these arguments say, runs `f` on a current-thread runtime,
    /// and turns a failed call into one error line on stderr and exit 2.
    pub fn run<F, Fut>(&self, f: F) -> anyhow::Result<Outcome>
    where
        F: FnOnce(Admin) -> Fut,
        Fut: std::future::Future<Output = Result<Outcome, CallError>>,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let admin = match self.connect(&rt) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("scanbridge: error: {e:#}");
                return Ok(Outcome::Invalid);
            }
        };
        match rt.block_on(f(admin)) {
            Ok(o) => Ok(o),
            Err(e) => {
                eprintln!("scanbridge: error: {e:#}");
                Ok(Outcome::Invalid)
            }
        }
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
