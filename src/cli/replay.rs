//! `scanbridge replay --since T [--until T] [--rule NAME]... [--dry-run]`: archived events sent again
//! through the current rules, as an EventBridge replay (a rule added today can be tried on last
//! week's scans).
//!
//! Every event accepted in the window (acceptance time; digests scanbridge made are not replayed) is
//! routed by the rules of `rules.dir` as they are now, with EventBridge's `replay-name` field set to
//! a new replay id; with `--rule`, only those rules' deliveries are made. Each delivery gets a new id
//! ([`crate::store::replay_delivery_id`]: the live id scoped by the replay) and is queued in the
//! outbox with its replay id, so the running daemon (or the next one) sends it like any delivery,
//! marked as a replay for receivers (`X-Scanbridge-Replay`, the event's `replay-name`, templates'
//! `replay`) and for dedup (a replay never counts as a duplicate of a live alert, nor the reverse).
//! Replayed deliveries trigger and resolve no alert, and are not grouped into digests.
//!
//! Output: one line per delivery, `EVENT_ID  RULE -> TARGET  delivery ID`, then (stderr) a summary
//! with the replay id. `--dry-run` prints the same lines and changes nothing. Exit 0; 2 on bad input
//! (an unknown rule, a bad time, no store).

use std::path::PathBuf;

use super::outcome::Outcome;
use super::route::Offline;
use super::store_args::Window;
use crate::escape::line;
use crate::event::Event;
use crate::store::sqlite::SqliteStore;
use crate::store::{EventQuery, ReplayDelivery, Store, replay_delivery_id};

/// Arguments of `scanbridge replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub window: Window,
    /// Only the deliveries of this rule (repeat for several); default: every enabled rule.
    #[arg(long = "rule", value_name = "NAME")]
    pub rules_only: Vec<String>,
    /// Print the deliveries the replay would make, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Configuration file layered over the built-in defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Rules directory (overrides `rules.dir`): the rules the events are replayed through.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Data directory of the store (overrides `store.data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Events read per page (and deliveries queued per transaction, about as many).
const PAGE: usize = 500;

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let offline = match Offline::load(args.config.as_deref(), args.rules.clone(), true) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("scanbridge: error: {e:#}");
            return Ok(Outcome::Invalid);
        }
    };
    let now = offline.clock.now_ms();
    if args.window.since.is_none() {
        eprintln!("scanbridge: error: --since is required (for example --since 7d)");
        return Ok(Outcome::Invalid);
    }
    let (since_ms, until_ms) = match args.window.resolve(now) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("scanbridge: error: {e}");
            return Ok(Outcome::Invalid);
        }
    };
    for r in &args.rules_only {
        if offline.router.rule(r).is_none() {
            eprintln!(
                "scanbridge: error: --rule {}: no enabled rule of that name in {}",
                line(r, 200),
                offline.settings.rules.dir.display()
            );
            return Ok(Outcome::Invalid);
        }
    }
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| offline.settings.store.data_dir.clone());
    let store = SqliteStore::open_existing(&dir)
        .map_err(|e| anyhow::anyhow!("opening the store in {}: {e}", dir.display()))?;
    let replay = format!("replay-{}", crate::alerting::silence::new_id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut query = EventQuery {
        since_ms,
        until_ms: Some(until_ms.unwrap_or(now)),
        matched: None,
        newest_first: false,
        after: None,
        limit: PAGE,
        bodies: true,
    };
    let (mut events, mut replayed, mut planned, mut queued) = (0u64, 0u64, 0u64, 0u64);
    loop {
        let page = rt.block_on(store.events(query.clone()))?;
        let mut batch = Vec::new();
        for archived in &page.events {
            events += 1;
            let Some(event) = archived
                .body
                .as_deref()
                .and_then(|b| Event::replay_of(b, &replay))
            else {
                continue;
            };
            if crate::scan::is_digest(&event.value) {
                continue; // scanbridge's own output, not an event it received
            }
            let made = deliveries(&offline, &event, &archived.id, &args.rules_only, &replay);
            replayed += (!made.is_empty()) as u64;
            for (d, topic) in made {
                let via = match topic {
                    Some(t) => format!("topic {} -> ", line(&t, 200)),
                    None => String::new(),
                };
                println!(
                    "{}  {} -> {via}{}  delivery {}",
                    line(&archived.id, 200),
                    line(&d.rule, 200),
                    line(&d.target, 200),
                    d.id
                );
                planned += 1;
                batch.push(d);
            }
        }
        if !args.dry_run && !batch.is_empty() {
            queued += rt.block_on(store.replay_enqueue(batch, now))?;
        }
        match page.next {
            Some(next) if !page.events.is_empty() => query.after = Some(next),
            _ => break,
        }
    }
    if args.dry_run {
        eprintln!(
            "dry run: {planned} delivery(ies) for {replayed} of {events} archived event(s); nothing was queued"
        );
    } else {
        eprintln!(
            "{replay}: {queued} delivery(ies) queued for {replayed} of {events} archived event(s){}; the daemon sends them (scanbridge events show ID tells what became of each)",
            if queued < planned {
                format!(" ({} already queued or done)", planned - queued)
            } else {
                String::new()
            }
        );
    }
    Ok(Outcome::Success)
}

/// The replayed deliveries of one event (with the topic each came through), in rule order.
fn deliveries(
    offline: &Offline,
    event: &Event,
    event_id: &str,
    only: &[String],
    replay: &str,
) -> Vec<(ReplayDelivery, Option<String>)> {
    let (routed, _) = offline.router.route_matching(event);
    routed
        .into_iter()
        .filter(|d| only.is_empty() || only.contains(&d.rule))
        .map(|d| {
            let r = ReplayDelivery {
                id: replay_delivery_id(replay, &d.id),
                event_id: event_id.to_owned(),
                rule: d.rule,
                target: d.target,
                input: d.input.map(|i| i.to_string()),
                replay: replay.to_owned(),
            };
            (r, d.topic)
        })
        .collect()
}
