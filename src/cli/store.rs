//! `scanbridge store check | backup FILE | restore FILE`: the integrity of the store, a consistent
//! copy of it while the daemon runs, and that copy put back.
//!
//! `check` runs SQLite's integrity check and the outbox's own invariants (every delivery, dead letter
//! and digest member has its event; no negative attempt count; a delivery in one place only; digest
//! groups that will flush; whole alert marks; events that are JSON) in one read transaction, and
//! prints one line per problem with some of the ids at fault. Exit 0 when all is well, 1 when it
//! found a problem, 2 when it could not check (no store there).
//!
//! `backup FILE` writes a compact copy (SQLite's `VACUUM INTO`, one read transaction: the daemon
//! does not wait) under a temporary name beside FILE, checks it, and renames it into place; FILE must
//! not exist. On JetStream it writes every stream's and bucket's messages as JSON lines.
//!
//! `restore FILE` puts such a copy back, and prints what it restored per table or stream. On SQLite
//! (`--data-dir DIR`, or `store.data_dir`): refused while a daemon holds the directory; the copy is
//! checked as `check` would, written beside the store under a temporary name and renamed onto
//! `scanbridge.db`, the stale `-wal` and `-shm` removed. On JetStream (`--config` naming the
//! cluster): the whole file is checked first (the line at fault is named), then published into the
//! prefix's streams and buckets; stop the daemons meanwhile. Either way a store that already holds
//! data is refused (exit 2, saying what it holds) unless `--replace`, which replaces it with the
//! backup: what it held is lost. A store a daemon made and nothing used (a new cluster whose daemons
//! started first) holds no data.

use std::path::{Path, PathBuf};

use super::outcome::Outcome;
use super::store_args::StoreArgs;
use crate::config::Backend;
use crate::store::jetstream::JetStreamStore;
use crate::store::sqlite_restore;

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
    /// Put a backup (what `store backup` wrote) back: into the data directory on SQLite (no
    /// daemon may hold it), into the `[store.jetstream]` cluster and prefix on JetStream (stop the
    /// daemons first). A store that already holds data is refused unless --replace.
    Restore {
        file: PathBuf,
        /// Replace a store that already holds data with the backup (what it holds is lost).
        #[arg(long)]
        replace: bool,
    },
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let Action::Restore { file, replace } = &args.action {
        // Not opened first: the store to restore into may not exist, or be about to be replaced.
        return restore(&args.store, &rt, file, *replace);
    }
    let store = args.store.open(&rt)?;
    let where_ = args.store.describe()?;
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
                eprintln!("store in {where_}: ok (integrity check and invariants)");
                Ok(Outcome::Success)
            } else {
                eprintln!("store in {where_}: {} problem(s)", problems.len());
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
        Action::Restore { .. } => unreachable!("handled above"),
    }
}

/// `store restore FILE`: the configured backend's restore, then one line per table or stream.
fn restore(
    args: &StoreArgs,
    rt: &tokio::runtime::Runtime,
    file: &Path,
    replace: bool,
) -> anyhow::Result<Outcome> {
    if let Some(url) = &args.daemon.url {
        anyhow::bail!(
            "--url {url}: `store restore` works on the store itself, not through the daemon; give --data-dir (or --config with store.data_dir, or with the [store.jetstream] cluster)"
        );
    }
    let cfg = args.store_config()?;
    let done = match cfg.backend {
        Backend::Sqlite => sqlite_restore::restore(file, &cfg.data_dir, replace),
        Backend::Jetstream => {
            // The one clock: restored retries are due what remains of their delay from now.
            let now = crate::alerting::system_clock().now_ms();
            rt.block_on(JetStreamStore::restore(&cfg.jetstream, file, replace, now))
        }
    };
    let done = match done {
        Ok(d) => d,
        Err(e) => {
            eprintln!("scanbridge: error: store restore: {e}");
            return Ok(Outcome::Invalid);
        }
    };
    let unit = match cfg.backend {
        Backend::Sqlite => "row(s)",
        Backend::Jetstream => "message(s)",
    };
    for p in &done.parts {
        if p.deletes > 0 {
            println!(
                "{}: {} {unit}, {} delete marker(s)",
                p.name, p.count, p.deletes
            );
        } else {
            println!("{}: {} {unit}", p.name, p.count);
        }
    }
    for n in &done.notes {
        eprintln!("note: {n}");
    }
    eprintln!("restored into {}", done.into);
    Ok(Outcome::Success)
}
