//! `scanbridge suppressed`: deliveries the notification pipeline did not send on purpose (silenced,
//! duplicate, not new, not worse), newest first, with the reason and what it refers to (the silence,
//! the delivery it duplicates, the comparison made). Reads the store of the data directory.

use super::outcome::Outcome;
use crate::store::Store;

/// Arguments of `scanbridge suppressed`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub store: super::store_args::StoreArgs,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let store = args.store.open()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let list = rt.block_on(store.suppressed(args.limit))?;
    if args.json {
        for s in &list {
            println!("{}", serde_json::to_string(s)?);
        }
    } else {
        println!(
            "{:<20}  {:<24}  {:<12}  {:<10}  DETAIL",
            "AT", "RULE", "TARGET", "REASON"
        );
        for s in &list {
            println!(
                "{:<20}  {:<24}  {:<12}  {:<10}  {} (event {})",
                crate::event::rfc3339(s.at_ms),
                s.rule,
                s.target,
                s.reason,
                // Details and event ids come from events and silences: one visible line each.
                crate::escape::line(&s.detail, 2000),
                crate::escape::line(&s.event_id, 200)
            );
        }
    }
    eprintln!("{} suppressed notification(s)", list.len());
    Ok(Outcome::Success)
}
