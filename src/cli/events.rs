//! `scanbridge events list | show ID`: the events the daemon accepted, newest first, and what became
//! of each delivery (`pending`, `retrying`, `delivered`, `grouped`, `in_digest`, `dead_letter`,
//! `suppressed`: the console's words, [`crate::admin::events`]). Through the daemon's admin API, or a
//! data directory opened directly: [`super::admin_client`].

use serde_json::Value;

use super::admin_client::{Op, list, text};
use super::outcome::Outcome;

/// Arguments of `scanbridge events`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub store: super::store_args::StoreArgs,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List recent events with each delivery's status, newest first.
    List {
        /// At most this many events (at most 500).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The page after this event id (the `next:` line of the previous page).
        #[arg(long)]
        before: Option<String>,
        /// Print the API's JSON (one line per event) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one event, its deliveries and the event itself, as JSON.
    Show { id: String },
}

/// One delivery as a word: `target:status` (`hook:retrying`).
fn delivery(d: &Value) -> String {
    format!("{}:{}", text(d, "target", 100), text(d, "status", 40))
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    args.store.run(|admin| async move {
        match args.action {
            Action::List {
                limit,
                before,
                json,
            } => {
                let answer = admin.call(Op::Events { limit, before }).await?;
                let events = list(&answer, "events");
                if json {
                    for e in events {
                        println!("{e}");
                    }
                } else {
                    println!(
                        "{:<38}  {:<20}  {:<60}  DELIVERIES",
                        "ID", "RECEIVED", "HEADLINE"
                    );
                    for e in events {
                        let at = e["received_at_ms"]
                            .as_i64()
                            .map(crate::event::rfc3339)
                            .unwrap_or_else(|| "-".into());
                        let deliveries: Vec<String> =
                            list(e, "deliveries").iter().map(delivery).collect();
                        // Ids and headlines come from events: one visible line each.
                        println!(
                            "{:<38}  {:<20}  {:<60}  {}",
                            text(e, "id", 200),
                            at,
                            text(e, "headline", 200),
                            if deliveries.is_empty() {
                                "(no rule matched)".to_owned()
                            } else {
                                deliveries.join(" ")
                            }
                        );
                    }
                    if let Some(next) = answer["next"].as_str() {
                        println!("next: --before {}", crate::escape::line(next, 200));
                    }
                }
                eprintln!("{} event(s) from {}", events.len(), admin.which());
            }
            Action::Show { id } => {
                return super::admin_client::show(&admin, Op::Event(id.clone()), "event", &id)
                    .await;
            }
        }
        Ok(Outcome::Success)
    })
}
