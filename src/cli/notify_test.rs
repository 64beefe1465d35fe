//! `scanbridge notify-test TARGET [--event FILE]`: sends one event (default: an embedded CRITICAL ECR
//! scan, under a fresh event id so receivers that dedupe still show it) to one configured target, now,
//! without the daemon, and reports the outcome. A topic sends to each subscription whose filter policy
//! matches. Exit 0 when every send was delivered, 1 when one failed, 2 on a configuration error.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;

use super::outcome::Outcome;
use super::route::{Offline, read};
use crate::notify::{Message, Outcome as Sent};
use crate::store::delivery_id;

/// The sample sent when no `--event` is given: an ECR basic scan with CRITICAL findings.
pub const SAMPLE: &str = include_str!("../../tests/fixtures/ecr-image-scan-critical.json");

/// Arguments of `scanbridge notify-test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configured target (or topic) to send to.
    pub target: String,
    /// The event to send (default: a CRITICAL ECR image scan); `-` reads standard input.
    #[arg(long)]
    pub event: Option<PathBuf>,
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
    let text = match &args.event {
        Some(p) => match read(p) {
            Ok(t) => t,
            Err(e) => return fail(e),
        },
        None => SAMPLE.to_owned(),
    };
    let mut value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return fail(anyhow::anyhow!("invalid event: {e}")),
    };
    if let Some(m) = value.as_object_mut() {
        m.insert(
            "id".into(),
            format!("notify-test-{}", uuid::Uuid::new_v4()).into(),
        );
    }
    let event = match offline.event(&value.to_string()) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let names: Vec<String> = match offline.topics.get(&args.target) {
        Some(subs) => subs
            .iter()
            .filter(|s| s.accepts(&event.value))
            .map(|s| s.target.clone())
            .collect(),
        None if offline.targets.get(&args.target).is_some() => vec![args.target.clone()],
        None => {
            let known: Vec<&String> = offline.settings.targets.keys().collect();
            return fail(anyhow::anyhow!(
                "no target {:?}; configured targets: {known:?}",
                args.target
            ));
        }
    };
    if names.is_empty() {
        println!(
            "topic {}: no subscription's filter policy accepts this event; nothing sent",
            args.target
        );
        return Ok(Outcome::NoMatch);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
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
    Ok(if all_ok {
        Outcome::Success
    } else {
        Outcome::NoMatch
    })
}
