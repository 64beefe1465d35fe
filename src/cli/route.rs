//! `scanbridge route --event E`: what the daemon would do with each event, sending nothing — which
//! rules match, which targets and topic subscriptions receive it (with their delivery ids), and the
//! exact payload each would get, rendered (email headers and both parts, the Slack Block Kit JSON, the
//! webhook request). Secrets are not shown. Events are read as every command reads them
//! ([`super::input`]). Exit 0 if some rule matched every event, 1 if one matched none, 2 on error.
//! The last line of each event says what would be sent in one wording ([`summary`]): a silenced
//! event's deliveries are counted and said to be held, never "would be sent".
//!
//! It also shows the alerting side: each matching rule's options (notify_on, dedup, digest,
//! notify_resolved) and, when the data directory holds a store, the silences in force that match the
//! event (the daemon would hold its deliveries), the state of each alert the event triggers (open
//! since when, by which event), and the open alerts it would resolve, with each resolve's payload.
//! The store is only read, never created. Patterns AWS accepts that likely mean
//! something else (`crate::lint`) are warned about on stderr, matching or not (a rule that should have
//! matched often has one); `--no-lint` turns that off.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::outcome::Outcome;
use crate::alerting::{Fate, SharedClock};
use crate::event::{EnvelopeRules, Event};
use crate::notify::{Message, Targets};
use crate::router::Router;
use crate::settings::Settings;

/// Arguments of `scanbridge route`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The event(s): a file, a directory (its *.json, *.jsonl, *.ndjson files), inline JSON, or -
    /// for stdin; each holding one event (pretty or not), a JSON array of events, or NDJSON. Repeat
    /// for several.
    #[arg(long, required = true, value_name = "E")]
    pub event: Vec<String>,
    /// Configuration file layered over the built-in defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Rules directory (overrides `rules.dir`).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Data directory whose silences to apply (overrides `store.data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Do not warn about rule patterns that likely mean something else.
    #[arg(long)]
    pub no_lint: bool,
}

/// Settings, router and targets, built as `serve` builds them but without a store or a server.
pub(crate) struct Offline {
    pub settings: Settings,
    /// Wall time, read as the daemon reads its clock.
    pub clock: SharedClock,
    pub router: Router,
    /// The rules' pattern warnings, as `FILE: POINTER: MESSAGE` lines.
    pub lint_lines: Vec<String>,
    /// No rules directory: the built-in example rules are loaded.
    pub builtin: bool,
    pub targets: Targets,
    pub topics: Arc<crate::notify::topic::Topics>,
}

impl Offline {
    /// Loads everything (the rules only if `with_rules`); errors are printed by the caller (exit 2).
    pub fn load(
        config: Option<&Path>,
        rules: Option<PathBuf>,
        with_rules: bool,
    ) -> anyhow::Result<Offline> {
        let mut settings = Settings::load(config)?;
        if let Some(r) = rules {
            settings.rules.dir = r;
        }
        let known = crate::rules::Known::from_settings(&settings);
        let (rules, builtin) = if with_rules {
            crate::rules::load_dir_or_builtin(&settings.rules.dir, &known)
                .map_err(|e| anyhow::anyhow!("{} error(s) in the rules: {e}", e.0.len()))?
        } else {
            (Vec::new(), false)
        };
        let topics = Arc::new(crate::notify::compile_topics(&settings.targets)?);
        let templates = Arc::new(settings.load_templates()?);
        let targets = Targets::build(&settings.targets, &settings.delivery, templates)?;
        let lint_lines = rules.iter().flat_map(|r| r.lint_lines()).collect();
        Ok(Offline {
            clock: crate::alerting::system_clock(),
            lint_lines,
            router: Router::new(rules, topics.clone()),
            builtin,
            settings,
            targets,
            topics,
        })
    }

    /// Validates and normalises an event as ingest does.
    pub fn event(&self, text: &str) -> anyhow::Result<Event> {
        let rules = EnvelopeRules {
            max_event_bytes: self.settings.server.max_event_bytes,
            account: self.settings.aws.account.clone(),
            region: self.settings.aws.region.clone(),
        };
        crate::event::validate(text, &rules, self.clock.now_ms())
            .map_err(|e| anyhow::anyhow!("invalid event: {e}"))
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let offline = match Offline::load(args.config.as_deref(), args.rules.clone(), true) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("scanbridge: error: {e:#}");
            return Ok(Outcome::Invalid);
        }
    };
    if !args.no_lint {
        for line in &offline.lint_lines {
            eprintln!("scanbridge: warning: {line}");
        }
    }
    let mut store_config = offline.settings.store.clone();
    if let Some(d) = &args.data_dir {
        store_config.data_dir = d.clone();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = match open_store(&store_config, &rt) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "scanbridge: warning: cannot read the store in {}: {e:#}",
                crate::store::open::describe(&store_config)
            );
            None
        }
    };
    let silences = match &store {
        Some(s) => rt
            .block_on(s.silences())
            .map(crate::alerting::silence::SilenceSet::new)
            .unwrap_or_else(|e| {
                eprintln!("scanbridge: warning: cannot read silences: {e:#}");
                Default::default()
            }),
        None => Default::default(),
    };
    let mut outcome = Outcome::Success;
    let mut first = true;
    for item in super::input::read(&args.event) {
        let event = match item.map_err(|f| anyhow::anyhow!("{f}")).and_then(|doc| {
            offline
                .event(&doc.text)
                .map_err(|e| anyhow::anyhow!("{}: {e:#}", doc.name))
        }) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("scanbridge: error: {e:#}");
                outcome = Outcome::Invalid;
                continue;
            }
        };
        if !first {
            println!("\n---\n");
        }
        first = false;
        let ctx = RouteContext {
            offline: &offline,
            store: store.as_ref(),
            silences: &silences,
            rt: &rt,
        };
        if !route_one(&ctx, &event) && outcome == Outcome::Success {
            outcome = Outcome::NoMatch;
        }
    }
    Ok(outcome)
}

/// What every event of one `route` run is routed with.
struct RouteContext<'a> {
    offline: &'a Offline,
    store: Option<&'a std::sync::Arc<dyn crate::store::Store>>,
    silences: &'a crate::alerting::silence::SilenceSet,
    rt: &'a tokio::runtime::Runtime,
}

/// `n thing` / `n things`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Routes one event and prints what the daemon would do; whether a rule matched.
fn route_one(ctx: &RouteContext<'_>, event: &Event) -> bool {
    let offline = ctx.offline;
    let s = |k: &str| event.value.get(k).and_then(Value::as_str).unwrap_or("-");
    println!(
        "event {} ({} from {})",
        event.id,
        s("detail-type"),
        s("source")
    );
    let (deliveries, matching) = offline.router.route_matching(event);
    let silence = ctx.silences.find(&event.value, offline.clock.now_ms());
    if let Some(s) = silence {
        println!(
            "silenced by {} until {} ({}; by {}): its deliveries would be held, none sent",
            s.id,
            crate::event::rfc3339(s.expires_at_ms),
            s.comment,
            s.created_by
        );
    }
    let history = crate::alerting::history_update(&event.value);
    let plan = crate::alerting::resolve_plan(
        offline.router.tracking(),
        &event.value,
        history.as_ref(),
        &matching,
    );
    let mut keys: Vec<String> = plan.check.iter().flat_map(|c| c.keys.clone()).collect();
    if let Some(k) = crate::alerting::alert_keys(&event.value) {
        keys.extend(k.all);
    }
    keys.sort();
    keys.dedup();
    let states = match ctx.store {
        Some(s) if !keys.is_empty() => ctx.rt.block_on(s.alert_states(keys)).unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut made = 0;
    for rule in &matching {
        println!("\nrule {rule}: matches");
        if let Some(alerting) = offline.router.rule(rule).and_then(|r| r.alert.describe()) {
            println!("  alerting: {alerting}");
        }
        let mine: Vec<_> = deliveries.iter().filter(|d| d.rule == *rule).collect();
        if mine.is_empty() {
            println!("  (no topic subscription accepts this event: nothing is sent)");
        }
        let fate = plan.fate(rule);
        if fate == Fate::Drop {
            println!(
                "  a CLOSED finding resolves this rule's alerts and never pages: no trigger is sent"
            );
            continue;
        }
        for d in mine {
            let mark = match &fate {
                Fate::Trigger(m) => Some(m),
                _ => None,
            };
            if let Some(m) = mark {
                let state = states
                    .iter()
                    .find(|s| s.rule == *rule && s.target == d.target && s.key == m.key);
                println!("  alert {}: trigger ({})", m.key, describe_state(state));
            }
            show(
                offline,
                event,
                d,
                mark,
                None,
                silence.map(|s| s.id.as_str()),
            );
            made += 1;
        }
    }
    let mut resolves = 0;
    if let Some(check) = &plan.check {
        for st in states
            .iter()
            .filter(|s| s.open && crate::alerting::resolves(check, &s.rule))
        {
            println!(
                "\nrule {}: no longer matches: resolves alert {} ({})",
                st.rule,
                st.key,
                describe_state(Some(st))
            );
            let mark = crate::store::AlertMark {
                kind: crate::store::AlertKind::Resolve,
                key: st.key.clone(),
                time_ms: check.time_ms,
                record: check.record.clone(),
            };
            let delta = st
                .record
                .as_deref()
                .and_then(|r| crate::alerting::resolve_delta(&event.value, &st.key, r));
            let d = crate::router::Delivery {
                id: crate::store::delivery_id(
                    &event.id,
                    &st.rule,
                    &format!("{}#resolve", st.target),
                ),
                rule: st.rule.clone(),
                target: st.target.clone(),
                topic: None,
                input: None,
            };
            show(
                offline,
                event,
                &d,
                Some(&mark),
                delta.as_ref(),
                silence.map(|s| s.id.as_str()),
            );
            resolves += 1;
        }
    }
    for (name, subs) in offline.topics.iter() {
        let reached = deliveries.iter().any(|d| d.topic.as_deref() == Some(name));
        if offline.router.routes_to(event, name) && !reached {
            let names: Vec<&str> = subs.iter().map(|s| s.target.as_str()).collect();
            println!(
                "\ntopic {name}: no subscription's filter policy matches ({})",
                names.join(", ")
            );
        }
    }
    println!(
        "\n{}",
        summary(
            matching.len(),
            offline.router.len(),
            made,
            resolves,
            silence.map(|s| s.id.as_str())
        )
    );
    !matching.is_empty()
}

/// The last line of `route`: what matched and what would be sent, in one wording whatever happens
/// ("1 of 4 rules matched; 2 deliveries would be sent, and 1 resolve", "...; 1 delivery, held by
/// silence ID: nothing would be sent").
fn summary(
    matched: usize,
    rules: usize,
    made: usize,
    resolves: usize,
    silence: Option<&str>,
) -> String {
    let rules = format!("{matched} of {} matched", count(rules, "rule", "rules"));
    let sends = count(made, "delivery", "deliveries");
    let any = made + resolves > 0;
    let resolves = if resolves > 0 {
        format!(", and {}", count(resolves, "resolve", "resolves"))
    } else {
        String::new()
    };
    match silence {
        Some(id) if any => {
            format!("{rules}; {sends}{resolves}, held by silence {id}: nothing would be sent")
        }
        _ => format!("{rules}; {sends}{resolves} would be sent"),
    }
}

/// The configured store, read-only use (none when it holds no store yet: no database file in the
/// data directory, no store of the prefix on the cluster; `route` is offline: a cluster it cannot
/// reach within a few seconds is a warning, not an error).
fn open_store(
    cfg: &crate::config::StoreConfig,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<Option<std::sync::Arc<dyn crate::store::Store>>> {
    let mut cfg = cfg.clone();
    match cfg.backend {
        crate::config::Backend::Sqlite if !cfg.data_dir.join("scanbridge.db").is_file() => {
            return Ok(None);
        }
        crate::config::Backend::Sqlite => {}
        crate::config::Backend::Jetstream => {
            cfg.jetstream.connect_timeout = cfg
                .jetstream
                .connect_timeout
                .min(std::time::Duration::from_secs(3));
        }
    }
    match rt.block_on(crate::store::open::for_tools(&cfg, false)) {
        Ok(s) => Ok(Some(s)),
        Err(crate::store::StoreError::NoLayout { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// "open since ..., by event E" / "resolved at ..." / "not open".
fn describe_state(state: Option<&crate::store::AlertState>) -> String {
    let at = crate::event::rfc3339;
    match state {
        Some(s) if s.open => format!(
            "open since {}, by event {}",
            s.opened_at_ms.map(at).unwrap_or_default(),
            s.trigger_event_id.as_deref().unwrap_or("-")
        ),
        Some(s) if s.resolved_at_ms.is_some() => format!(
            "resolved at {}",
            s.resolved_at_ms.map(at).unwrap_or_default()
        ),
        _ => "not open".into(),
    }
}

fn show(
    offline: &Offline,
    event: &Event,
    d: &crate::router::Delivery,
    alert: Option<&crate::store::AlertMark>,
    delta: Option<&crate::scan::Delta>,
    silenced: Option<&str>,
) {
    let kind = offline
        .settings
        .targets
        .get(&d.target)
        .map(|c| c.kind())
        .unwrap_or("?");
    let held = silenced
        .map(|id| format!("  (held by silence {id})"))
        .unwrap_or_default();
    match &d.topic {
        Some(t) => println!(
            "  -> topic {t} -> {} ({kind})  delivery {}{held}",
            d.target, d.id
        ),
        None => println!("  -> {} ({kind})  delivery {}{held}", d.target, d.id),
    }
    let payload = match crate::render::payload(&event.value, d.input.as_ref(), &d.rule) {
        Ok(p) => p,
        Err(e) => {
            println!("      would be dead-lettered: {e}");
            return;
        }
    };
    let msg = Message {
        delivery_id: &d.id,
        rule: &d.rule,
        event_id: &event.id,
        event: &event.value,
        payload: &payload,
        delta,
        now_ms: offline.clock.now_ms(),
        alert,
        replay: None,
    };
    match offline.targets.get(&d.target) {
        Some((target, _)) => match target.preview(&msg) {
            Ok(text) => println!("{}", indent(&text)),
            Err(e) => println!("      would fail permanently: {e}"),
        },
        None => println!("      target {:?} is not configured", d.target),
    }
}
