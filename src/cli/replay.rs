//! `scanbridge replay --since T [--until T] [--rule NAME]... [--dry-run]`: archived events sent again
//! through the current rules, as an EventBridge replay (a rule added today can be tried on last
//! week's scans).
//!
//! Every event accepted in the window (acceptance time; digests scanbridge made are not replayed) is
//! routed by the rules as they are now, with EventBridge's `replay-name` field set to a new replay
//! id; with `--rule`, only those rules' deliveries are made ([`crate::replay`], one code path). By
//! default the running daemon replays, through its live rules (`POST /api/v1/replay`: `--url`,
//! `--token`, as every store command, [`super::store_args`]); with `--data-dir` the CLI replays on that
//! store itself, through the rules of `rules.dir` (or `--rules`). Each delivery gets a new id
//! ([`crate::store::replay_delivery_id`]: the live id scoped by the replay) and is queued in the
//! outbox with its replay id, so the daemon (or the next one) sends it like any delivery, marked as a
//! replay for receivers (`X-Scanbridge-Replay`, the event's `replay-name`, templates' `replay`) and for
//! dedup (a replay never counts as a duplicate of a live alert, nor the reverse). Replayed
//! deliveries trigger and resolve no alert, and are not grouped into digests.
//!
//! Output: one line per delivery, `EVENT_ID  RULE -> TARGET  delivery ID`, then (stderr) a summary
//! with the replay id. `--dry-run` prints the same lines and changes nothing. Exit 0; 2 on bad input
//! (an unknown rule, a bad time, no daemon or no store).

use std::path::PathBuf;

use super::admin_client::CallError;
use super::outcome::Outcome;
use super::route::Offline;
use super::store_args::{StoreArgs, Window};
use crate::escape::line;
use crate::replay::{ReplayReport, ReplayRequest};

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
    /// With --data-dir: the rules directory the events are replayed through (overrides
    /// `rules.dir`). The daemon replays through its own live rules.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let now = crate::alerting::system_clock().now_ms();
    if let (Some(rules), None) = (&args.rules, &args.store.data_dir) {
        eprintln!(
            "scanbridge: error: --rules {}: only with --data-dir (the daemon replays through its own live rules; reload them there)",
            rules.display()
        );
        return Ok(Outcome::Invalid);
    }
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
    let req = ReplayRequest {
        since_ms: since_ms.unwrap_or(i64::MIN),
        until_ms,
        rules: args.rules_only.clone(),
        dry_run: args.dry_run,
    };
    let (config, rules) = (args.store.config.clone(), args.rules.clone());
    let load = move || -> anyhow::Result<(crate::router::Router, PathBuf)> {
        let offline = Offline::load(config.as_deref(), rules, true)?;
        Ok((offline.router, offline.settings.rules.dir))
    };
    args.store.run(|admin| async move {
        let report = admin.replay(req, load).await?;
        print(&report);
        Ok::<_, CallError>(Outcome::Success)
    })
}

/// The lines of a replay: one per delivery on stdout, the summary on stderr.
fn print(r: &ReplayReport) {
    for d in &r.deliveries {
        let via = match &d.topic {
            Some(t) => format!("topic {} -> ", line(t, 200)),
            None => String::new(),
        };
        println!(
            "{}  {} -> {via}{}  delivery {}",
            line(&d.event_id, 200),
            line(&d.rule, 200),
            line(&d.target, 200),
            line(&d.delivery_id, 100)
        );
    }
    let planned = r.deliveries.len() as u64;
    if r.dry_run {
        eprintln!(
            "dry run: {planned} delivery(ies) for {} of {} archived event(s); nothing was queued",
            r.replayed, r.events
        );
    } else {
        eprintln!(
            "{}: {} delivery(ies) queued for {} of {} archived event(s){}; the daemon sends them (scanbridge events show ID tells what became of each)",
            line(&r.replay, 100),
            r.queued,
            r.replayed,
            r.events,
            if r.queued < planned {
                format!(" ({} already queued or done)", planned - r.queued)
            } else {
                String::new()
            }
        );
    }
}
