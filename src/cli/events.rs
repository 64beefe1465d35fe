//! `scanbridge events list | show ID`: the archive of accepted events (EventBridge's archive,
//! browsed), with what became of each event's deliveries: pending, delivered, waiting in a digest
//! group or sent in a digest, dead-lettered, or suppressed (and why). Read only. It asks the running
//! daemon's admin API (`GET /api/v1/archive`), or with `--data-dir` reads a data directory's store
//! beside it ([`super::store_args`]); both print the same lines.
//!
//! `list` is newest first (`--oldest-first` to reverse), within `--since`/`--until` (acceptance
//! time), optionally only events that matched a rule (`--matched`) or none (`--unmatched`); `--json`
//! prints one JSON object per event. `show` prints one event with its deliveries and its JSON.
//! Exit 0, or 2 when the daemon does not answer or refuses, the store or the event does not exist.

use serde_json::Value;

use super::admin_client::{Admin, CallError};
use super::outcome::Outcome;
use super::store_args::{StoreArgs, Window};
use crate::escape::line;
use crate::event::rfc3339;
use crate::store::{ArchivedEvent, DeliveryRecord, DeliveryState, EventPage, EventQuery};

/// Arguments of `scanbridge events`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List archived events, newest first, with their rules and what became of their deliveries.
    List {
        #[command(flatten)]
        window: Window,
        /// Only events that matched a rule.
        #[arg(long, conflicts_with = "unmatched")]
        matched: bool,
        /// Only events that matched no rule.
        #[arg(long)]
        unmatched: bool,
        /// Oldest first.
        #[arg(long)]
        oldest_first: bool,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one archived event: its deliveries and its JSON.
    Show {
        id: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let now = crate::alerting::system_clock().now_ms();
    match args.action {
        Action::List {
            window,
            matched,
            unmatched,
            oldest_first,
            limit,
            json,
        } => {
            let (since_ms, until_ms) = match window.resolve(now) {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("scanbridge: error: {e}");
                    return Ok(Outcome::Invalid);
                }
            };
            let query = EventQuery {
                since_ms,
                until_ms,
                matched: (matched || unmatched).then_some(matched),
                newest_first: !oldest_first,
                after: None,
                limit: PAGE,
                bodies: true,
            };
            args.store
                .run(|admin| async move { list(&admin, query, limit, json).await })
        }
        Action::Show { id, json } => args.store.run(|admin| async move {
            let e = match admin.archived(id.clone()).await {
                Ok(e) => e,
                Err(CallError::NotFound(_)) => {
                    eprintln!(
                        "scanbridge: error: no event with id {} in the archive (never accepted, or pruned)",
                        line(&id, 200)
                    );
                    return Ok(Outcome::Invalid);
                }
                Err(e) => return Err(e),
            };
            if json {
                let text = serde_json::to_string_pretty(&as_json(&e)).map_err(anyhow::Error::from)?;
                println!("{text}");
            } else {
                show(&e);
            }
            Ok(Outcome::Success)
        }),
    }
}

/// Events asked for per page (the admin API's largest page).
const PAGE: usize = crate::admin::archive::MAX_LIMIT;

/// `list`: up to `limit` events from `query` on, page by page; the table's header once the first
/// page came (so a daemon that does not answer prints no half table).
async fn list(
    admin: &Admin,
    mut query: EventQuery,
    limit: usize,
    json: bool,
) -> Result<Outcome, CallError> {
    let mut shown = 0;
    let mut header = !json;
    while shown < limit || header {
        let page = if shown < limit {
            query.limit = (limit - shown).min(PAGE);
            admin.archive(query.clone()).await?
        } else {
            EventPage::default()
        };
        if std::mem::take(&mut header) {
            println!(
                "{:<20}  {:<36}  {:<7}  {:<40}  {:<24}  DELIVERIES",
                "RECEIVED", "ID", "MATCHED", "WHAT", "RULES"
            );
        }
        for e in &page.events {
            if json {
                let text = serde_json::to_string(&as_json(e)).map_err(anyhow::Error::from)?;
                println!("{text}");
            } else {
                println!(
                    "{:<20}  {:<36}  {:<7}  {:<40}  {:<24}  {}",
                    rfc3339(e.received_at_ms),
                    line(&e.id, 200),
                    if e.matched { "yes" } else { "no" },
                    line(&what(e), 40),
                    line(&e.rules.join(","), 200),
                    summary(&e.deliveries)
                );
            }
        }
        shown += page.events.len();
        match page.next {
            Some(next) if !page.events.is_empty() => query.after = Some(next),
            _ => break,
        }
    }
    eprintln!("{shown} event(s)");
    Ok(Outcome::Success)
}

/// The event's body parsed (`{}` if it is not JSON).
fn body(e: &ArchivedEvent) -> Value {
    e.body
        .as_deref()
        .and_then(crate::event::parse_stored)
        .unwrap_or_else(|| Value::Object(Default::default()))
}

/// One line saying what the event is: the scan headline (`2 CRITICAL in payments/api:v1`), or its
/// detail-type.
fn what(e: &ArchivedEvent) -> String {
    let v = body(e);
    let f = crate::scan::Facts::of(&v);
    if f.kind == crate::scan::Kind::Generic {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
        format!("{} from {}", s("detail-type"), s("source"))
    } else {
        f.headline
    }
}

/// "2 done, 1 pending" (or "-" when it had none).
fn summary(ds: &[DeliveryRecord]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for d in ds {
        match counts.iter_mut().find(|(l, _)| *l == d.state.label()) {
            Some(c) => c.1 += 1,
            None => counts.push((d.state.label(), 1)),
        }
    }
    if counts.is_empty() {
        return "-".into();
    }
    counts
        .iter()
        .map(|(l, n)| format!("{n} {}", l.replace('_', " ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The JSON form: the record, with the event parsed in place of its text.
fn as_json(e: &ArchivedEvent) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("body");
        m.insert(
            "received_at".into(),
            Value::String(rfc3339(e.received_at_ms)),
        );
        if e.body.is_some() {
            m.insert("event".into(), body(e));
        }
    }
    v
}

/// What one delivery's state says, in a line.
fn describe(s: &DeliveryState) -> String {
    match s {
        DeliveryState::Pending {
            attempts,
            next_attempt_at_ms,
            last_error,
        } => {
            let mut t = format!(
                "pending: {attempts} attempt(s), next at {}",
                rfc3339(*next_attempt_at_ms)
            );
            if let Some(e) = last_error {
                t.push_str(&format!("; last error: {}", line(e, 300)));
            }
            t
        }
        DeliveryState::Delivered { attempts, at_ms } => {
            format!("delivered at {} (attempt {attempts})", rfc3339(*at_ms))
        }
        DeliveryState::Grouped { group_id, at_ms } => format!(
            "waiting in digest group {} since {}",
            line(group_id, 200),
            rfc3339(*at_ms)
        ),
        DeliveryState::InDigest {
            digest_event_id,
            at_ms,
        } => format!(
            "sent in the digest event {} at {}",
            line(digest_event_id, 200),
            rfc3339(*at_ms)
        ),
        DeliveryState::DeadLettered {
            attempts,
            at_ms,
            reason,
        } => format!(
            "dead letter since {} after {attempts} attempt(s): {}",
            rfc3339(*at_ms),
            line(reason, 300)
        ),
        DeliveryState::Suppressed {
            reason,
            detail,
            at_ms,
        } => format!(
            "suppressed ({}) at {}: {}",
            line(reason, 100),
            rfc3339(*at_ms),
            line(detail, 300)
        ),
    }
}

fn show(e: &ArchivedEvent) {
    println!("event {}: {}", line(&e.id, 200), line(&what(e), 200));
    println!(
        "  received {} ({})",
        rfc3339(e.received_at_ms),
        if e.matched {
            "matched a rule: kept as retain_events says, replayable"
        } else {
            "matched no rule: kept as retain_unmatched says"
        }
    );
    if !e.rules.is_empty() {
        println!("  rules: {}", line(&e.rules.join(", "), 500));
    }
    for d in &e.deliveries {
        let replay = d
            .replay
            .as_deref()
            .map(|r| format!(" (replay {})", line(r, 100)))
            .unwrap_or_default();
        println!(
            "  -> {} via {}{replay}  delivery {}: {}",
            line(&d.target, 200),
            line(&d.rule, 200),
            d.id,
            describe(&d.state)
        );
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&body(e)).unwrap_or_default()
    );
}
