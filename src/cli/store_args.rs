//! The arguments of the store commands (`dlq`, `silence`, `suppressed`, `events`): the daemon to ask
//! (`--url`, `--token`, `--config` for their defaults: [`super::client`]), or `--data-dir` to open a
//! data directory directly ([`super::admin_client`]).

use std::path::PathBuf;

use super::admin_client::{self, Admin, CallError};
use super::outcome::Outcome;

/// Where the store is: a running daemon (the default) or a data directory.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Configuration file layered over the built-in defaults (for the daemon's address and token).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Open this data directory directly instead of asking the daemon; it must already hold a store
    /// (nothing is created).
    #[arg(long, global = true, conflicts_with = "url")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub daemon: super::client::DaemonArgs,
}

impl StoreArgs {
    /// The admin API of the daemon, or the store of `--data-dir`.
    pub fn connect(&self) -> anyhow::Result<Admin> {
        match &self.data_dir {
            Some(dir) => admin_client::open_dir(dir),
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
        let admin = match self.connect() {
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
