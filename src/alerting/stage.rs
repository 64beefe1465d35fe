//! The stage contract: what one step of the notification pipeline is given, what it may decide, and
//! how steps are chained (Alertmanager's `notify.Stage` and `MultiStage`, for one delivery at a time).
//!
//! A [`Stage`] looks at one [`Notice`] (a leased delivery, its event parsed once, the rule's options,
//! "now") and either lets it go on ([`Flow::Next`]) or holds it ([`Flow::Held`]) after recording where
//! it went: the suppressed list, a digest group, or back in the outbox. A [`MultiStage`] runs its stages
//! in order and stops at the first hold, as Alertmanager's `MultiStage` stops when no alert is left.
//!
//! Promises every stage keeps: it never drops a delivery silently (a hold is recorded in the store, and
//! a suppression also in the metrics and the debug log, through [`Ledger`]); it is idempotent for a
//! delivery (a retried delivery runs the stages again and is not its own duplicate); a store error lets
//! the delivery go on (at-least-once wins over silence).

use std::future::Future;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::options::AlertOptions;
use crate::metrics::Metrics;
use crate::scan::Delta;
use crate::store::{BoxFuture, Leased, Store, Suppressed};

/// One delivery on its way through the stages.
pub struct Notice<'a> {
    pub delivery: &'a Leased,
    /// The delivery's event, parsed once for every stage.
    pub event: &'a Value,
    /// The rule's options as the live rule set has them now (defaults for a rule since removed).
    pub options: &'a AlertOptions,
    /// The one "now" of this pass through the stages (ms since the Unix epoch, from the clock).
    pub now_ms: i64,
    /// What changed since the previous scan, set by the history stage when the store knew one (for
    /// a resolve: since the trigger that opened the alert, set by the resolve stage).
    pub delta: OnceLock<Delta>,
    /// Appended to the dedup scope by the resolve stage: the alert's episode, so that claims do not
    /// reach across a resolve.
    pub dedup_scope: OnceLock<String>,
}

impl Notice<'_> {
    /// Whether the delivery resolves an alert (rules with `notify_resolved`).
    pub fn is_resolve(&self) -> bool {
        self.delivery
            .alert
            .as_ref()
            .is_some_and(|a| a.kind == crate::store::AlertKind::Resolve)
    }
}

/// What a stage decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// On to the next stage (after the last one: send).
    Next,
    /// Recorded elsewhere (suppressed, grouped into a digest, postponed): stop here.
    Held,
}

/// One step of the pipeline.
pub trait Stage: Send + Sync {
    /// The stage's name, for logs.
    const NAME: &'static str;
    /// Looks at `notice`; records the delivery elsewhere before answering [`Flow::Held`].
    fn exec(&self, notice: &Notice<'_>) -> impl Future<Output = Flow> + Send;
}

/// A [`Stage`] behind a pointer, so that a chain can hold stages of different types.
pub trait DynStage: Send + Sync {
    fn name(&self) -> &'static str;
    fn exec<'a>(&'a self, notice: &'a Notice<'a>) -> BoxFuture<'a, Flow>;
}

impl<S: Stage> DynStage for S {
    fn name(&self) -> &'static str {
        S::NAME
    }
    fn exec<'a>(&'a self, notice: &'a Notice<'a>) -> BoxFuture<'a, Flow> {
        Box::pin(Stage::exec(self, notice))
    }
}

/// Stages run in order; the first that holds the delivery ends the run.
#[derive(Clone, Default)]
pub struct MultiStage(pub Vec<Arc<dyn DynStage>>);

impl MultiStage {
    pub async fn exec(&self, notice: &Notice<'_>) -> Flow {
        for stage in &self.0 {
            if stage.exec(notice).await == Flow::Held {
                tracing::trace!(delivery = %notice.delivery.id, stage = stage.name(), "held");
                return Flow::Held;
            }
        }
        Flow::Next
    }
}

/// Where stages record what they did with a delivery: the store and the metrics.
#[derive(Clone)]
pub struct Ledger {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
}

impl Ledger {
    /// Moves the delivery to the suppressed list with `reason` and `detail`; counts and logs it.
    pub async fn suppress(&self, n: &Notice<'_>, reason: &'static str, detail: String) -> Flow {
        let d = n.delivery;
        tracing::debug!(delivery = %d.id, rule = %d.rule, target = %d.target, reason, %detail,
            "notification suppressed");
        self.metrics.suppressed(&d.rule, &d.target, reason);
        let s = Suppressed {
            id: d.id.clone(),
            event_id: d.event_id.clone(),
            rule: d.rule.clone(),
            target: d.target.clone(),
            reason: reason.to_owned(),
            detail,
            at_ms: n.now_ms,
        };
        if let Err(e) = self.store.suppress(s).await {
            tracing::error!(delivery = %d.id, error = %e, "cannot record suppression (lease will expire)");
        }
        Flow::Held
    }
}
