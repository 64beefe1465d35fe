//! `scanbridge notify-test TARGET [--event E]`: sends events (default: an embedded CRITICAL ECR scan;
//! `--event` reads them as every command does, [`super::input`]), each under a fresh event id so
//! receivers that dedupe still show it, to one configured target, now, without the daemon, and reports
//! the outcome. A topic sends to each subscription whose filter policy matches. Each message is
//! rendered before anything is sent: a template that fails (an undefined variable, with the template,
//! line and variable named) is an error, not a send. Exit 0 when every send was delivered, 1 when one
//! failed, 2 on a configuration, template or input error.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;

use super::outcome::Outcome;
use super::route::Offline;
use crate::notify::{Message, Outcome as Sent};
use crate::store::delivery_id;

/// The sample sent when no `--event` is given: an ECR basic scan with CRITICAL findings.
pub const SAMPLE: &str = include_str!("../../tests/fixtures/ecr-image-scan-critical.json");

/// Arguments of `scanbridge notify-test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configured target (or topic) to send to.
    pub target: String,
    /// The event(s) to send (default: a CRITICAL ECR image scan): a file, a directory, inline JSON,
    /// or - for stdin; each holding one event (pretty or not), a JSON array of events, or NDJSON.
    #[arg(long, value_name = "E")]
    pub event: Vec<String>,
    /// Configuration file layered over the built-in defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let fail = |e: anyhow::Error| {
        eprintln!("scanbridge: error: {e:#}");
        Ok(Outcome::Invalid)
    };
    // Rules are not needed to send, so a broken rules/ does not get in the way.
    let offline = match Offline::load(args.config.as_deref(), None, false) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let docs: Vec<super::input::Item> = if args.event.is_empty() {
        vec![Ok(super::input::Doc {
            name: "the sample CRITICAL scan".into(),
            text: SAMPLE.to_owned(),
        })]
    } else {
        super::input::read(&args.event)
    };
    if !offline.settings.targets.contains_key(&args.target) {
        let known: Vec<&String> = offline.settings.targets.keys().collect();
        return fail(anyhow::anyhow!(
            "no target {:?}; configured targets: {known:?}",
            args.target
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut outcome = Outcome::Success;
    for doc in docs {
        let event = match doc
            .map_err(|f| anyhow::anyhow!("{f}"))
            .and_then(|d| fresh(&offline, &d))
        {
            Ok(e) => e,
            Err(e) => {
                eprintln!("scanbridge: error: {e:#}");
                outcome = Outcome::Invalid;
                continue;
            }
        };
        match send(&offline, &rt, &args.target, &event) {
            Outcome::Success => {}
            Outcome::NoMatch if outcome == Outcome::Success => outcome = Outcome::NoMatch,
            Outcome::NoMatch => {}
            Outcome::Invalid => outcome = Outcome::Invalid,
        }
    }
    Ok(outcome)
}

/// `doc` as the daemon would hold it, under a fresh id.
fn fresh(offline: &Offline, doc: &super::input::Doc) -> anyhow::Result<crate::event::Event> {
    let mut value: Value = serde_json::from_str(&doc.text)
        .map_err(|e| anyhow::anyhow!("{}: invalid event: {e}", doc.name))?;
    if let Some(m) = value.as_object_mut() {
        m.insert(
            "id".into(),
            format!("notify-test-{}", uuid::Uuid::new_v4()).into(),
        );
    }
    offline
        .event(&value.to_string())
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", doc.name))
}

/// Sends one event to `target` (each accepting subscription of a topic): success when every send
/// was delivered, no match when one failed, invalid when a message could not be rendered.
fn send(
    offline: &Offline,
    rt: &tokio::runtime::Runtime,
    target: &str,
    event: &crate::event::Event,
) -> Outcome {
    let names: Vec<String> = match offline.topics.get(target) {
        Some(subs) => subs
            .iter()
            .filter(|s| s.accepts(&event.value))
            .map(|s| s.target.clone())
            .collect(),
        None => vec![target.to_owned()],
    };
    if names.is_empty() {
        println!(
            "topic {target}: no subscription's filter policy accepts this event; nothing sent"
        );
        return Outcome::NoMatch;
    }
    let mut all_ok = true;
    for name in names {
        let (target, _) = offline
            .targets
            .get(&name)
            .expect("built from the same config");
        let id = delivery_id(&event.id, "notify-test", &name);
        let msg = Message {
            delivery_id: &id,
            rule: "notify-test",
            event_id: &event.id,
            event: &event.value,
            payload: &event.value,
            delta: None,
            now_ms: offline.clock.now_ms(),
            alert: None,
            replay: None,
        };
        // Rendered first: a template error is the user's to fix now, not a failed send.
        if let Err(e) = target.preview(&msg) {
            eprintln!("scanbridge: error: {name}: cannot render the message: {e}");
            return Outcome::Invalid;
        }
        let start = Instant::now();
        let outcome = rt.block_on(target.notify(&msg));
        let ms = start.elapsed().as_millis();
        match outcome {
            Sent::Delivered => println!("{name}: delivered in {ms} ms (delivery {id})"),
            Sent::Retryable {
                reason,
                retry_after,
            } => {
                all_ok = false;
                let after = retry_after
                    .map(|d| format!("; receiver asks to retry after {} s", d.as_secs()))
                    .unwrap_or_default();
                println!(
                    "{name}: NOT delivered (retryable: the daemon would retry): {reason}{after}"
                );
            }
            Sent::Permanent { reason } => {
                all_ok = false;
                println!(
                    "{name}: NOT delivered (permanent: the daemon would dead-letter): {reason}"
                );
            }
        }
    }
    if all_ok {
        Outcome::Success
    } else {
        Outcome::NoMatch
    }
}
