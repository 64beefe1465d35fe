//! `scanbridge suppressed`: deliveries the notification pipeline did not send on purpose (silenced,
//! duplicate, not new, not worse), newest first, with the reason and what it refers to (the silence,
//! the delivery it duplicates, the comparison made). Through the daemon's admin API, or a data
//! directory opened directly: [`super::admin_client`].

use super::admin_client::{Op, list, text};
use super::outcome::Outcome;

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
    args.store.run(|admin| async move {
        let answer = admin.call(Op::Suppressed { limit: args.limit }).await?;
        let list = list(&answer, "suppressed");
        if args.json {
            for s in list {
                println!("{s}");
            }
        } else {
            println!(
                "{:<20}  {:<24}  {:<12}  {:<10}  DETAIL",
                "AT", "RULE", "TARGET", "REASON"
            );
            for s in list {
                let at = s["at_ms"]
                    .as_i64()
                    .map(crate::event::rfc3339)
                    .unwrap_or_else(|| "-".into());
                // Details and event ids come from events and silences: one visible line each.
                println!(
                    "{:<20}  {:<24}  {:<12}  {:<10}  {} (event {})",
                    at,
                    text(s, "rule", 200),
                    text(s, "target", 200),
                    text(s, "reason", 100),
                    text(s, "detail", 2000),
                    text(s, "event_id", 200)
                );
            }
        }
        eprintln!(
            "{} suppressed notification(s) in {}",
            list.len(),
            admin.which()
        );
        Ok(Outcome::Success)
    })
}
