//! `scanbridge dlq list | show ID | redrive [ID|--all] | purge`: the dead letters in the store of the
//! data directory. Safe beside a running daemon: the store is opened without lease recovery and
//! SQLite's WAL lets both work; redriven deliveries are picked up by the daemon's next poll.

use super::outcome::Outcome;
use crate::store::Store;

/// Arguments of `scanbridge dlq`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub store: super::store_args::StoreArgs,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List dead letters (id, rule, target, attempts, reason).
    List {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter with its event, as JSON.
    Show { id: String },
    /// Move dead letters back to the outbox (attempts reset).
    Redrive {
        /// The dead letter to redrive.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Redrive every dead letter.
        #[arg(long)]
        all: bool,
    },
    /// Delete every dead letter.
    Purge,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let store = args.store.open()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match args.action {
            Action::List { json } => {
                let dls = store.dead_letters(10_000).await?;
                if json {
                    for d in &dls {
                        println!("{}", serde_json::to_string(d)?);
                    }
                } else {
                    println!(
                        "{:<32}  {:<24}  {:<12}  {:>8}  REASON",
                        "ID", "RULE", "TARGET", "ATTEMPTS"
                    );
                    for d in &dls {
                        println!(
                            "{:<32}  {:<24}  {:<12}  {:>8}  {}",
                            d.id,
                            d.rule,
                            d.target,
                            d.attempts,
                            // Reasons can quote a receiver or an event: one visible line.
                            crate::escape::line(&d.reason, 2000)
                        );
                    }
                }
                eprintln!("{} dead letter(s)", dls.len());
            }
            Action::Show { id } => {
                let d = store.dead_letter_get(id).await?;
                println!("{}", serde_json::to_string_pretty(&d)?);
            }
            Action::Redrive { id, all: _ } => {
                let n = store
                    .redrive(id, crate::alerting::system_clock().now_ms())
                    .await?;
                println!("redriven: {n}");
            }
            Action::Purge => {
                let n = store.purge().await?;
                println!("purged: {n}");
            }
        }
        Ok(Outcome::Success)
    })
}
