//! One delivery attempt, the contract between the worker and every receiver: what a receiver is
//! given ([`Message`]) and what it answers ([`Outcome`]).
//!
//! Promise of every receiver: one attempt per call, classified as delivered, retryable (with the
//! receiver's Retry-After, if any) or permanent; no retry, sleep, dead letter or clock of its own (the
//! attempt's time is [`Message::now_ms`]); reasons without secrets.

use std::time::Duration;

use serde_json::Value;

use crate::render::template::Context;

/// One delivery attempt's input.
#[derive(Debug)]
pub struct Message<'a> {
    /// Deterministic id (event id + rule + target): receivers use it to drop duplicates.
    pub delivery_id: &'a str,
    pub rule: &'a str,
    pub event_id: &'a str,
    /// The whole event.
    pub event: &'a Value,
    /// What the rule says to send: the event, or its transformed input.
    pub payload: &'a Value,
    /// What changed since the previous scan of the image, when known (templates: `scan.delta`); for
    /// a resolve, since the scan that opened the alert.
    pub delta: Option<&'a crate::scan::Delta>,
    /// When the attempt is made (the daemon's clock): signature timestamps, Retry-After dates.
    pub now_ms: i64,
    /// The alert this delivery triggers or resolves (rules with `notify_resolved`).
    pub alert: Option<&'a crate::store::AlertMark>,
    /// The replay this delivery belongs to (`scanbridge replay`), from the store, never from the
    /// event: receivers mark it (`X-Scanbridge-Replay`, templates' `replay`). None when live.
    pub replay: Option<&'a str>,
}

impl<'a> Message<'a> {
    /// What the templates of this attempt see.
    pub fn context(&self) -> Context<'a> {
        Context::new(
            self.event,
            self.payload,
            self.rule,
            self.delivery_id,
            self.event_id,
        )
        .with_delta(self.delta)
        .with_alert(self.alert)
        .with_replay(self.replay)
    }

    /// Whether this delivery says that an alert is resolved: each receiver says so in its own terms.
    pub fn is_resolve(&self) -> bool {
        self.alert
            .is_some_and(|a| a.kind == crate::store::AlertKind::Resolve)
    }
}

/// Hands `f` the message of one delivery of `event` as an attempt at `now_ms` would build it (the
/// rule target's input transformation applied; no delta or alert mark), for previews that send
/// nothing (the admin API's route preview). Err with the reason when the transformation fails: the
/// daemon would dead-letter that delivery.
pub fn with_message<T>(
    event_id: &str,
    event: &Value,
    (delivery_id, rule, input): (&str, &str, Option<&Value>),
    now_ms: i64,
    f: impl FnOnce(&Message<'_>) -> T,
) -> Result<T, String> {
    let payload = crate::render::payload(event, input, rule).map_err(|e| e.to_string())?;
    Ok(f(&Message {
        delivery_id,
        rule,
        event_id,
        event,
        payload: &payload,
        delta: None,
        now_ms,
        alert: None,
        replay: None,
    }))
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    Retryable {
        retry_after: Option<Duration>,
        reason: String,
    },
    Permanent {
        reason: String,
    },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retryable { .. } => "retryable",
            Outcome::Permanent { .. } => "permanent",
        }
    }
}
