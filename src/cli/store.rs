//! `scanbridge store check | backup FILE`: the integrity of the store in the data directory, and a
//! consistent copy of it while the daemon runs.
//!
//! `check` runs SQLite's integrity check and the outbox's own invariants (every delivery, dead letter
//! and digest member has its event; no negative attempt count; a delivery in one place only; digest
//! groups that will flush; whole alert marks; events that are JSON) in one read transaction, and
//! prints one line per problem with some of the ids at fault. Exit 0 when all is well, 1 when it
//! found a problem, 2 when it could not check (no store there).
//!
//! `backup FILE` writes a compact copy (SQLite's `VACUUM INTO`, one read transaction: the daemon
//! does not wait) under a temporary name beside FILE, checks it, and renames it into place; FILE must
//! not exist. To restore: stop the daemon, put the copy in place of `DATA_DIR/scanbridge.db` (and
//! remove `scanbridge.db-wal` and `scanbridge.db-shm`), start it.

use std::path::PathBuf;

use super::outcome::Outcome;
use super::store_args::StoreArgs;
use crate::store::Store;

/// Arguments of `scanbridge store`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Check the store: SQLite's integrity check and the outbox's invariants (exit 1 on a problem).
    Check {
        /// Print the problems as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent copy of the store to FILE (which must not exist), even while the daemon
    /// runs.
    Backup { file: PathBuf },
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let dir = args.store.data_dir()?;
    let store = args.store.open()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.action {
        Action::Check { json } => {
            let problems = rt.block_on(store.check())?;
            for p in &problems {
                if json {
                    println!("{}", serde_json::to_string(p)?);
                } else {
                    println!(
                        "problem: {} ({}){}",
                        p.what,
                        p.count,
                        if p.examples.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", crate::escape::line(&p.examples.join(", "), 1000))
                        }
                    );
                }
            }
            if problems.is_empty() {
                eprintln!(
                    "store in {}: ok (integrity check and invariants)",
                    dir.display()
                );
                Ok(Outcome::Success)
            } else {
                eprintln!("store in {}: {} problem(s)", dir.display(), problems.len());
                Ok(Outcome::NoMatch)
            }
        }
        Action::Backup { file } => {
            let b = rt.block_on(store.backup(file.clone()))?;
            println!(
                "{}: {} bytes, {} event(s), {} pending delivery(ies), {} dead letter(s); checked",
                file.display(),
                b.bytes,
                b.events,
                b.pending,
                b.dead_letters
            );
            Ok(Outcome::Success)
        }
    }
}
