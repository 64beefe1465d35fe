//! `--config` and `--data-dir`: the arguments of the commands that read or change the store beside a
//! running daemon (`dlq`, `silence`, `suppressed`), and opening that store.
//!
//! These commands open the store without recovery: the daemon owns the leases; SQLite's WAL lets a CLI
//! read and write beside it (writes wait on a busy timeout).

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

    /// Opens the store (creating it if needed), without clearing the daemon's leases.
    pub fn open(&self) -> anyhow::Result<SqliteStore> {
        let dir = self.data_dir()?;
        SqliteStore::open(&dir, false)
            .with_context(|| format!("opening the store in {}", dir.display()))
    }
}
