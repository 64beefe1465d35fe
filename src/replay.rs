//! A replay, as EventBridge replays an archive: the archived events accepted in a window, routed
//! again through the rules as they are now, each delivery queued with the replay's id. One code path
//! for `POST /api/v1/replay` (the daemon, with its live rules) and `scanbridge replay --data-dir`
//! (the CLI, with the rules of `rules.dir`), so both plan and queue exactly the same deliveries.
//!
//! Promises:
//! - Every event accepted in `[since_ms, until_ms)` is read, oldest first, in pages of [`PAGE`];
//!   digests scanbridge made itself are not replayed (they are its output, not events it received).
//!   Each is routed with EventBridge's `replay-name` field set to the replay id, so receivers,
//!   templates and dedup tell a replay from a live alert.
//! - With `rules`, only those rules' deliveries are planned; a name that is not an enabled rule is
//!   [`ReplayError::UnknownRule`] before anything is read or queued.
//! - Each delivery gets a new id ([`replay_delivery_id`]: the live id scoped by the replay) and is
//!   queued, due now, with its replay id; a dry run plans the same deliveries and queues nothing.
//! - Routing runs on the bounded compute pool ([`crate::compute`]), never on an async worker thread,
//!   and one rule set (the one current when the replay starts) routes every event of the replay.
//!
//! It decides nothing else: the worker sends the queued deliveries like any other (and marks them as
//! replays), and a replayed delivery triggers, resolves and digests nothing.

use std::sync::Arc;

use crate::event::Event;
use crate::router::Router;
use crate::store::{EventQuery, ReplayDelivery, Store, StoreError, replay_delivery_id};

/// Events read per page (and deliveries queued per transaction, about as many).
pub const PAGE: usize = 500;

/// What to replay (the body of `POST /api/v1/replay`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Events accepted at or after (ms since the Unix epoch).
    pub since_ms: i64,
    /// Events accepted before (default: now).
    #[serde(default)]
    pub until_ms: Option<i64>,
    /// Only these rules' deliveries (default: every enabled rule).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Plan the deliveries, queue nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// One delivery a replay makes (or would make, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Planned {
    pub event_id: String,
    pub rule: String,
    /// The topic it came through, if any.
    pub topic: Option<String>,
    pub target: String,
    /// The replayed delivery's id (what receivers get as the idempotency key).
    pub delivery_id: String,
}

/// What a replay did: its id, every planned delivery in order (event, then rule order), and the
/// counts.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReplayReport {
    /// `replay-...`: the id receivers see (`X-Scanbridge-Replay`, the event's `replay-name`).
    pub replay: String,
    pub dry_run: bool,
    /// Archived events read in the window.
    pub events: u64,
    /// Of those, the events that made at least one delivery.
    pub replayed: u64,
    /// Deliveries newly queued (0 in a dry run; fewer than planned when some were queued before).
    pub queued: u64,
    pub deliveries: Vec<Planned>,
}

/// Why a replay was not made.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A rule asked for is not an enabled rule of the current set.
    #[error("rule {rule:?}: no enabled rule of that name")]
    UnknownRule { rule: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Routing a page panicked (the events of that page named by the message).
    #[error("routing the archived events failed: {0}")]
    Routing(#[from] crate::compute::Panicked),
}

/// A new replay id: `replay-` and 12 random hex digits.
pub fn new_id() -> String {
    format!("replay-{}", crate::alerting::silence::new_id())
}

/// Runs replay `id` of `req` over `store` through `router`, at `now_ms` (the default end of the
/// window, and when queued deliveries fall due).
pub async fn run(
    store: &dyn Store,
    router: Arc<Router>,
    req: &ReplayRequest,
    id: String,
    now_ms: i64,
) -> Result<ReplayReport, ReplayError> {
    if let Some(rule) = req.rules.iter().find(|r| router.rule(r).is_none()) {
        return Err(ReplayError::UnknownRule { rule: rule.clone() });
    }
    let until_ms = req.until_ms.unwrap_or(now_ms);
    let mut query = EventQuery {
        since_ms: Some(req.since_ms),
        until_ms: Some(until_ms),
        matched: None,
        newest_first: false,
        after: None,
        limit: PAGE,
        bodies: true,
    };
    let only = Arc::new(req.rules.clone());
    let mut report = ReplayReport {
        replay: id,
        dry_run: req.dry_run,
        events: 0,
        replayed: 0,
        queued: 0,
        deliveries: Vec::new(),
    };
    loop {
        let page = store.events(query.clone()).await?;
        let next = page.next.filter(|_| !page.events.is_empty());
        report.events += page.events.len() as u64;
        let (router, only, replay) = (router.clone(), only.clone(), report.replay.clone());
        let planned = crate::compute::run(move || {
            page.events
                .iter()
                .map(|archived| {
                    archived
                        .body
                        .as_deref()
                        .and_then(|b| Event::replay_of(b, &replay))
                        .filter(|event| !crate::scan::is_digest(&event.value))
                        .map(|event| deliveries(&router, &event, &archived.id, &only, &replay))
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
        })
        .await?;
        let mut batch = Vec::new();
        for made in planned {
            report.replayed += (!made.is_empty()) as u64;
            for (d, topic) in made {
                report.deliveries.push(Planned {
                    event_id: d.event_id.clone(),
                    rule: d.rule.clone(),
                    topic,
                    target: d.target.clone(),
                    delivery_id: d.id.clone(),
                });
                batch.push(d);
            }
        }
        if !req.dry_run && !batch.is_empty() {
            report.queued += store.replay_enqueue(batch, now_ms).await?;
        }
        match next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    Ok(report)
}

/// The replayed deliveries of one event (with the topic each came through), in rule order.
fn deliveries(
    router: &Router,
    event: &Event,
    event_id: &str,
    only: &[String],
    replay: &str,
) -> Vec<(ReplayDelivery, Option<String>)> {
    let (routed, _) = router.route_matching(event);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewEvent;
    use crate::store::sqlite::SqliteStore;
    use serde_json::json;

    fn rule(name: &str, source: &str) -> crate::rules::Rule {
        let known = crate::rules::Known {
            targets: ["console".to_owned()].into(),
            ..Default::default()
        };
        let doc =
            json!({"name": name, "event_pattern": {"source": [source]}, "targets": ["console"]});
        crate::rules::parse_rule(&doc, &known).unwrap()
    }

    fn archived(id: &str, source: &str) -> NewEvent {
        NewEvent {
            id: id.into(),
            body: json!({"id": id, "source": source, "detail-type": "T", "detail": {}}).to_string(),
            matched: Vec::new(),
            deliveries: Vec::new(),
            history: None,
            resolve: None,
        }
    }

    #[tokio::test]
    async fn a_dry_run_plans_what_a_replay_queues_and_unknown_rules_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), true).unwrap();
        store
            .accept(vec![archived("a", "ci"), archived("b", "other")], 10)
            .await
            .unwrap();
        let router = Arc::new(Router::new(
            vec![rule("ci", "ci"), rule("other", "other")],
            Arc::default(),
        ));
        let req = ReplayRequest {
            since_ms: 0,
            until_ms: None,
            rules: vec!["ci".into()],
            dry_run: true,
        };
        let dry = run(&store, router.clone(), &req, "replay-x".into(), 100)
            .await
            .unwrap();
        assert_eq!((dry.events, dry.replayed, dry.queued), (2, 1, 0));
        assert_eq!(dry.deliveries.len(), 1);
        assert_eq!(
            (
                dry.deliveries[0].event_id.as_str(),
                dry.deliveries[0].rule.as_str()
            ),
            ("a", "ci")
        );
        let real = ReplayRequest {
            dry_run: false,
            ..req.clone()
        };
        let done = run(&store, router.clone(), &real, "replay-x".into(), 100)
            .await
            .unwrap();
        assert_eq!(done.deliveries, dry.deliveries, "the same plan");
        assert_eq!(done.queued, 1);
        let again = run(&store, router.clone(), &real, "replay-x".into(), 100)
            .await
            .unwrap();
        assert_eq!(again.queued, 0, "the same replay queues nothing twice");
        let bad = ReplayRequest {
            rules: vec!["nosuch".into()],
            ..req
        };
        let e = run(&store, router, &bad, new_id(), 100).await.unwrap_err();
        assert!(matches!(e, ReplayError::UnknownRule { .. }), "{e}");
    }
}
