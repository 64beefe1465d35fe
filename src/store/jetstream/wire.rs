//! What the JetStream backend writes into messages and bucket values (JSON): the folder's other
//! contract, beside [`super::cluster`]. Fields added later are `#[serde(default)]`, so a value written
//! by an older build still reads.
//!
//! A delivery message is self-contained (its event's body travels with it), so a daemon attempts it
//! without another read; the archive (`P_EVENTS`) keeps each event once more for digests, dead
//! letters and listings.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::store::{AlertKind, AlertMark, Leased, NewDelivery};

/// One delivery in `P_OUTBOX` (and, with the dead-letter fields, in `P_DEAD`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryMsg {
    pub id: String,
    pub event_id: String,
    pub rule: String,
    pub target: String,
    #[serde(default)]
    pub input: Option<String>,
    /// When the event was accepted (or the delivery redriven), ms since the Unix epoch.
    pub created_at: i64,
    /// The scan result the event replaced (JSON), stamped at accept.
    #[serde(default)]
    pub previous: Option<String>,
    #[serde(default)]
    pub alert: Option<Mark>,
    /// Published by an accept, whose commit record (`P_seen`) must exist before the delivery is
    /// attempted (see `outbox.rs`); false for redriven deliveries and digests.
    #[serde(default)]
    pub commit: bool,
    /// The replay this delivery belongs to (`scanbridge replay`); None for a live delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
    /// The event JSON, embedded as it is.
    pub body: Box<RawValue>,
}

/// An event body (canonical JSON, as validated) to embed in a message; a body that is not JSON
/// (never made by scanbridge) is embedded as a JSON string instead of failing the message.
pub fn raw(body: &str) -> Box<RawValue> {
    RawValue::from_string(body.to_owned()).unwrap_or_else(|_| {
        RawValue::from_string(serde_json::to_string(body).expect("a string serialises"))
            .expect("a JSON string is JSON")
    })
}

impl DeliveryMsg {
    /// The message of a delivery of event `event_id` accepted at `now`.
    pub fn new(
        d: &NewDelivery,
        event_id: &str,
        body: &str,
        previous: Option<&str>,
        now: i64,
    ) -> DeliveryMsg {
        DeliveryMsg {
            id: d.id.clone(),
            event_id: event_id.to_owned(),
            rule: d.rule.clone(),
            target: d.target.clone(),
            input: d.input.clone(),
            created_at: now,
            previous: previous.map(str::to_owned),
            alert: d.alert.as_ref().map(Mark::from),
            commit: true,
            replay: None,
            body: raw(body),
        }
    }

    /// The outbox subject of this delivery (its alert mark decides it).
    pub fn subject(&self, names: &super::cluster::Names) -> String {
        match &self.alert {
            Some(m) => names.alert_subject(&m.key, &self.rule, &self.target, &m.kind),
            None => names.plain_subject(),
        }
    }

    /// The delivery as the worker sees it, after `attempts` attempts.
    pub fn leased(&self, attempts: u32) -> Leased {
        Leased {
            id: self.id.clone(),
            event_id: self.event_id.clone(),
            rule: self.rule.clone(),
            target: self.target.clone(),
            input: self.input.clone(),
            body: self.body.get().to_owned(),
            attempts,
            created_at_ms: self.created_at,
            previous: self.previous.clone(),
            alert: self.alert.as_ref().and_then(Mark::to_mark),
            replay: self.replay.clone(),
        }
    }
}

/// An [`AlertMark`] in a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// `trigger` or `resolve`.
    pub kind: String,
    pub key: String,
    #[serde(default)]
    pub time: Option<i64>,
    #[serde(default)]
    pub record: Option<String>,
}

impl From<&AlertMark> for Mark {
    fn from(m: &AlertMark) -> Mark {
        Mark {
            kind: m.kind.as_str().to_owned(),
            key: m.key.clone(),
            time: m.time_ms,
            record: m.record.clone(),
        }
    }
}

impl Mark {
    pub fn to_mark(&self) -> Option<AlertMark> {
        Some(AlertMark {
            kind: AlertKind::parse(&self.kind)?,
            key: self.key.clone(),
            time_ms: self.time,
            record: self.record.clone(),
        })
    }
}

/// A dead letter in `P_DEAD`: the delivery as it was, and why it gave up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadMsg {
    /// Nested, not flattened: the embedded body does not survive serde's flattening.
    pub delivery: DeliveryMsg,
    pub attempts: u32,
    pub failed_at: i64,
    pub reason: String,
}

/// One event in the archive `P_EVENTS`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventMsg {
    pub id: String,
    pub received_at: i64,
    pub body: Box<RawValue>,
    #[serde(default)]
    pub previous: Option<String>,
    /// The deliveries it caused at ingest: (id, rule, target).
    #[serde(default)]
    pub deliveries: Vec<(String, String, String)>,
    /// It matched a rule (or caused a delivery): kept `retain_events`, else `retain_unmatched`.
    #[serde(default)]
    pub matched: bool,
    /// The rules it matched at ingest.
    #[serde(default)]
    pub rules: Vec<String>,
}

impl EventMsg {
    /// Whether the archive keeps it as a matched event: it matched a rule or caused a delivery at
    /// ingest (a build before the archive wrote no `matched`), or a replay added deliveries to it.
    pub fn is_matched(&self, replayed: bool) -> bool {
        self.matched || !self.deliveries.is_empty() || replayed
    }
}

/// The deliveries replays added to one archived event, in `P_replays` (key: the event's token).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Replays {
    pub deliveries: Vec<ReplayRef>,
}

/// One replayed delivery of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayRef {
    pub id: String,
    pub rule: String,
    pub target: String,
    pub replay: String,
}

/// The commit record of an accepted event in `P_seen` (also the record of ids seen before).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seen {
    pub at: i64,
}

/// Attempts made on one delivery, in `P_attempts` (absent: none yet).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Attempts {
    pub attempts: u32,
    /// When the next attempt is due, ms since the Unix epoch.
    #[serde(default)]
    pub next_at: i64,
    #[serde(default)]
    pub last_error: Option<String>,
}
