//! Opening the store `[store] backend` names: for the daemon (`serve`: with recovery, the data
//! directory's lock for SQLite, the worker's wake-up for JetStream) or for the CLI tools (`dlq`,
//! `silence`, `suppressed`, `events`, `replay`, `store`, `route`), which work beside a running daemon.
//!
//! Kept apart from the contract (`mod.rs`) so that the contract imports no backend.

use std::sync::Arc;

use tokio::sync::Notify;

use super::jetstream::JetStreamStore;
use super::sqlite::{Options, SqliteStore};
use super::{Store, StoreError};
use crate::config::{Backend, StoreConfig};

/// The daemon's store. With SQLite this takes the data directory (one daemon per directory); with
/// JetStream it joins the cluster, and `wake` is rung whenever any daemon stored deliveries.
pub async fn for_daemon(
    cfg: &StoreConfig,
    wake: Arc<Notify>,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match cfg.backend {
        Backend::Sqlite => {
            let options = Options {
                max_bytes: cfg.max_db_bytes,
                reserve_bytes: cfg.reserve_bytes,
            };
            Arc::new(SqliteStore::open_with(&cfg.data_dir, true, options)?)
        }
        Backend::Jetstream => {
            Arc::new(JetStreamStore::open(&cfg.jetstream, cfg.max_db_bytes, Some(wake)).await?)
        }
    })
}

/// A CLI tool's store, beside the daemon: SQLite without recovery or lock, JetStream without the
/// daemon's background work. Without `create`, a store that does not exist yet (no database file;
/// no outbox stream of the prefix in the cluster) is [`StoreError::Missing`] and nothing is made.
pub async fn for_tools(cfg: &StoreConfig, create: bool) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match (cfg.backend, create) {
        (Backend::Sqlite, true) => Arc::new(SqliteStore::open(&cfg.data_dir, false)?),
        (Backend::Sqlite, false) => Arc::new(SqliteStore::open_existing(&cfg.data_dir)?),
        (Backend::Jetstream, true) => {
            Arc::new(JetStreamStore::open(&cfg.jetstream, cfg.max_db_bytes, None).await?)
        }
        (Backend::Jetstream, false) => {
            Arc::new(JetStreamStore::open_existing(&cfg.jetstream, cfg.max_db_bytes).await?)
        }
    })
}

/// Where the store is, for messages: the data directory or the cluster.
pub fn describe(cfg: &StoreConfig) -> String {
    match cfg.backend {
        Backend::Sqlite => cfg.data_dir.display().to_string(),
        Backend::Jetstream => format!(
            "NATS JetStream at {} (prefix {})",
            cfg.jetstream.servers.join(", "),
            cfg.jetstream.prefix
        ),
    }
}
