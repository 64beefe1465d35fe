//! `--config` and `--data-dir`: the arguments of the commands that read or change the store beside a
//! running daemon (`dlq`, `silence`, `suppressed`), and opening that store.
//!
//! These commands open the store without recovery: the daemon owns the leases. With SQLite, the WAL
//! lets a CLI read and write beside the daemon (writes wait on a busy timeout); with JetStream
//! (`store.backend = "jetstream"` in the `--config` file), the CLI joins the same cluster as the
//! daemons, from any machine that reaches it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::config::StoreConfig;
use crate::settings::Settings;
use crate::store::Store;

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
    /// The store's configuration: the file's (or the defaults), with `--data-dir` over it.
    pub fn store_config(&self) -> anyhow::Result<StoreConfig> {
        let mut store = Settings::load(self.config.as_deref())?.store;
        if let Some(d) = &self.data_dir {
            store.data_dir = d.clone();
        }
        Ok(store)
    }

    /// Opens the store on `rt` (SQLite: creating it if needed), without the daemon's recovery.
    pub fn open(&self, rt: &tokio::runtime::Runtime) -> anyhow::Result<Arc<dyn Store>> {
        let cfg = self.store_config()?;
        rt.block_on(crate::store::open::for_tools(&cfg))
            .with_context(|| {
                format!(
                    "opening the store in {}",
                    crate::store::open::describe(&cfg)
                )
            })
    }
}
