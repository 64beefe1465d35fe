//! Which rules an event reaches and what each target would receive: `POST /api/v1/route` (the
//! sandbox's "which rules match"), the same answer `scanbridge route` prints, as data. Nothing is
//! sent and nothing is stored.
//!
//! Body: `{"event": E}` (text or JSON). The event is validated and normalised as ingest would (a
//! missing `id` or `time` is filled in). Answer:
//! `{"event_id", "rules_total", "deliveries", "silenced": null | {id, expires_at, comment, created_by},
//! "rules": [{"name", "description", "alerting", "deliveries": [{"id", "target", "topic", "kind",
//! "preview" | "error"}]}], "unreached_topics": [{"topic", "subscribers"}]}`. Previews are
//! [`crate::notify::Target::preview_data`]: never a URL, token or header value. They show a trigger as
//! it would first be sent (no delta to a previous scan, no resolve).
//!
//! Rules are the live set in `serve` (a reload is seen at once) and the loaded set in `sandbox`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::alerting::silence::SilenceSet;
use crate::event::EnvelopeRules;
use crate::notify::Targets;
use crate::notify::topic::Topics;
use crate::router::RouterHandle;

/// What a route preview needs.
pub struct Routing {
    pub router: Arc<RouterHandle>,
    pub targets: Arc<Targets>,
    /// Target name → its `type`.
    pub kinds: BTreeMap<String, &'static str>,
    pub topics: Arc<Topics>,
    pub envelope: EnvelopeRules,
}

impl Routing {
    /// The routing of `settings`' targets with `router`'s rules.
    pub fn new(
        router: Arc<RouterHandle>,
        targets: Arc<Targets>,
        topics: Arc<Topics>,
        settings: &crate::settings::Settings,
    ) -> Routing {
        Routing {
            router,
            targets,
            kinds: settings
                .targets
                .iter()
                .map(|(name, cfg)| (name.clone(), cfg.kind()))
                .collect(),
            topics,
            envelope: EnvelopeRules {
                max_event_bytes: settings.server.max_event_bytes,
                account: settings.aws.account.clone(),
                region: settings.aws.region.clone(),
            },
        }
    }

    /// The preview of `text` (one event); Err with the reason when the event is invalid.
    pub fn plan(&self, text: &str, silences: &SilenceSet, now_ms: i64) -> Result<Value, String> {
        let event = crate::event::validate(text, &self.envelope, now_ms)
            .map_err(|e| format!("invalid event: {e}"))?;
        let router = self.router.current();
        let (deliveries, matching) = router.route_matching(&event);
        let mut rules = Vec::new();
        for name in matching {
            let rule = router.rule(name);
            let mine: Vec<Value> = deliveries
                .iter()
                .filter(|d| d.rule == name)
                .map(|d| {
                    let kind = self.kinds.get(&d.target).copied().unwrap_or("unknown");
                    let mut out =
                        json!({"id": d.id, "target": d.target, "topic": d.topic, "kind": kind});
                    let Some((target, _)) = self.targets.get(&d.target) else {
                        out["error"] = format!("target {:?} is not configured", d.target).into();
                        return out;
                    };
                    let preview = crate::notify::with_message(
                        &event.id,
                        &event.value,
                        (&d.id, &d.rule, d.input.as_ref()),
                        now_ms,
                        |msg| target.preview_data(msg),
                    );
                    match preview {
                        Ok(Ok(p)) => out["preview"] = p,
                        Ok(Err(e)) => out["error"] = format!("would fail permanently: {e}").into(),
                        Err(e) => out["error"] = format!("would be dead-lettered: {e}").into(),
                    }
                    out
                })
                .collect();
            rules.push(json!({
                "name": name,
                "description": rule.and_then(|r| r.description.clone()),
                "alerting": rule.and_then(|r| r.alert.describe()),
                "deliveries": mine,
            }));
        }
        let unreached: Vec<Value> = self
            .topics
            .iter()
            .filter(|(name, _)| {
                router.routes_to(&event, name)
                    && !deliveries.iter().any(|d| d.topic.as_deref() == Some(name))
            })
            .map(|(name, subs)| {
                json!({"topic": name, "subscribers": subs.iter().map(|s| s.target.as_str()).collect::<Vec<_>>()})
            })
            .collect();
        let silenced = silences.find(&event.value, now_ms).map(|s| {
            json!({"id": s.id, "expires_at": crate::event::rfc3339(s.expires_at_ms),
                "comment": s.comment, "created_by": s.created_by})
        });
        Ok(json!({
            "event_id": event.id,
            "rules_total": router.len(),
            "deliveries": deliveries.len(),
            "silenced": silenced,
            "rules": rules,
            "unreached_topics": unreached,
        }))
    }

    /// The loaded rules as the console lists them: name, description, file, pattern, targets (name,
    /// type, whether the input is transformed) and alerting options.
    pub fn rules(&self) -> Vec<Value> {
        self.router
            .current()
            .rules()
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "description": r.description,
                    "file": r.file.display().to_string(),
                    "pattern": r.pattern_json,
                    "targets": r.targets.iter().map(|t| json!({
                        "target": t.target,
                        "kind": self.kinds.get(&t.target).copied().unwrap_or("unknown"),
                        "transformed": t.input.is_some(),
                    })).collect::<Vec<_>>(),
                    "alerting": r.alert.describe(),
                })
            })
            .collect()
    }
}
