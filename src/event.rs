//! The EventBridge envelope: validation of one event's JSON and normalisation before it is stored.
//!
//! Promises: an accepted event is a JSON object no larger than the limit, with string `source` and
//! `detail-type`, an object `detail`, and — filled in when absent — `version` "0", a fresh `id` (UUID v4),
//! `time` (now, RFC 3339), `account` and `region` (from `[aws]`) and `resources` ([]). Fields that are
//! present must have EventBridge's types. An object with a repeated key is rejected (see
//! [`crate::strict_json`]). Validation is pure; nothing here does I/O.
//!
//! Parse once: an event's JSON is parsed into a tree once, at ingest ([`parse_strict`]), counted in
//! [`parses`]. Its canonical bytes ([`Event::body`]) are what the router matches and the store keeps;
//! the parsed view goes to the worker through the [`Handoff`]. Only when the handoff no longer holds
//! it (after a restart, or behind a long backlog) does the worker parse the stored bytes
//! ([`parse_stored`]), once, and hand that view on to the event's later attempts.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};

/// Limits and defaults applied to every incoming event.
#[derive(Debug, Clone)]
pub struct EnvelopeRules {
    pub max_event_bytes: usize,
    pub account: String,
    pub region: String,
}

/// Why one event was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("event is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("event is not valid JSON: {0}")]
    Malformed(String),
    #[error("event must be a JSON object")]
    NotObject,
    #[error("event lacks required field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    /// Processing this event failed inside scanbridge (a bug, caught): the event alone is refused.
    #[error(
        "event could not be processed ({0}); it was not accepted, and the other events of the request are not affected"
    )]
    Internal(String),
}

/// A validated, normalised event: its canonical bytes and the one parsed view of them. Both travel
/// from ingest to the router (which matches on `body`), the store (which keeps `body`) and, through
/// the `Handoff`, the worker (which reads `value`).
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub value: Value,
    /// `value` serialised (valid JSON by construction): what the store keeps and the matcher reads.
    pub body: String,
}

#[cfg(test)]
impl Event {
    /// An event from a value as is, without the envelope checks (tests).
    pub fn from_value(value: Value) -> Event {
        let id = value
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let body = value.to_string();
        Event { id, value, body }
    }
}

/// The field EventBridge adds to a replayed event: the replay's name (here its id).
pub const REPLAY_FIELD: &str = "replay-name";

/// `event` as a replay delivers it: with [`REPLAY_FIELD`] set to `replay` (replacing one the event
/// may have carried, so the field always says what the store says).
pub fn replayed(event: &Value, replay: &str) -> Value {
    let mut v = event.clone();
    if let Value::Object(m) = &mut v {
        m.insert(REPLAY_FIELD.to_owned(), Value::String(replay.to_owned()));
    }
    v
}

impl Event {
    /// An archived event (its stored bytes) as replay `replay` routes it: with `replay-name` set.
    pub fn replay_of(stored: &str, replay: &str) -> Option<Event> {
        let value = replayed(&parse_stored(stored)?, replay);
        let id = value.get("id")?.as_str()?.to_owned();
        let body = value.to_string();
        Some(Event { id, value, body })
    }
}

/// A time in EventBridge's format (RFC 3339, seconds, UTC): `2026-12-31T00:00:00Z`.
pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// One event as a door hands it to ingest: JSON text (`POST /events`, NDJSON, stdin), or an event
/// the door built from parts it parsed itself (PutEvents), which is not parsed again.
#[derive(Debug, Clone)]
pub enum Incoming {
    Text(String),
    Built(Value),
}

/// Validates and normalises one incoming event (see [`validate`] and [`validate_built`]).
pub fn accept(item: Incoming, rules: &EnvelopeRules, now_ms: i64) -> Result<Event, Rejection> {
    match item {
        Incoming::Text(raw) => validate(&raw, rules, now_ms),
        Incoming::Built(value) => validate_built(value, rules, now_ms),
    }
}

/// Validates and normalises one event given as JSON text, accepted at `now_ms` (its `time` when it
/// has none). The text is parsed once, strictly (`parse_strict`).
pub fn validate(raw: &str, rules: &EnvelopeRules, now_ms: i64) -> Result<Event, Rejection> {
    within(raw.len(), rules)?;
    let value = parse_strict(raw).map_err(|e| Rejection::Malformed(e.to_string()))?;
    normalised(value, rules, now_ms)
}

/// Like [`validate`] for an event a door built as a value: the same checks and the same size limit
/// (measured on its JSON text, which is written to a counter, not built), without a parse.
pub fn validate_built(
    value: Value,
    rules: &EnvelopeRules,
    now_ms: i64,
) -> Result<Event, Rejection> {
    within(json_len(&value), rules)?;
    normalised(value, rules, now_ms)
}

fn within(size: usize, rules: &EnvelopeRules) -> Result<(), Rejection> {
    if size > rules.max_event_bytes {
        return Err(Rejection::TooLarge {
            size,
            limit: rules.max_event_bytes,
        });
    }
    Ok(())
}

/// The length of `value`'s compact JSON text.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, value);
    c.0
}

fn normalised(value: Value, rules: &EnvelopeRules, now_ms: i64) -> Result<Event, Rejection> {
    let Value::Object(mut m) = value else {
        return Err(Rejection::NotObject);
    };
    normalise(&mut m, rules, now_ms)?;
    let id = m["id"].as_str().expect("normalised").to_owned();
    let value = Value::Object(m);
    let body = value.to_string();
    within(body.len(), rules)?;
    Ok(Event { id, value, body })
}

/// Events parsed into a tree by this process: [`parse_strict`] (ingest, the PutEvents `Detail`) and
/// [`parse_stored`] (the worker, when no parsed view was handed over). `/metrics` shows it as
/// `scanbridge_event_parses_total`: one per accepted event on its way from ingest to delivery.
static PARSES: AtomicU64 = AtomicU64::new(0);

/// How many events this process has parsed (see [`PARSES`]).
pub fn parses() -> u64 {
    PARSES.load(Ordering::Relaxed)
}

/// Parses event JSON from outside, refusing repeated keys ([`crate::strict_json`]); counted.
pub fn parse_strict(text: &str) -> Result<Value, serde_json::Error> {
    let v = crate::strict_json::from_str(text)?;
    PARSES.fetch_add(1, Ordering::Relaxed);
    Ok(v)
}

/// Parses an event's stored bytes (written by [`validate`], so plain serde_json suffices); counted.
pub fn parse_stored(body: &str) -> Option<Value> {
    let v = serde_json::from_str(body).ok()?;
    PARSES.fetch_add(1, Ordering::Relaxed);
    Some(v)
}

/// Parsed views of recently accepted events, by event id, from ingest (and the digest maker) to the
/// worker, so that a delivery attempt does not parse what ingest already parsed.
///
/// Sound because an event id's stored bytes never change: only an event the store newly accepted is
/// put here (a duplicate id keeps the first body), after the store committed it and before the worker
/// is woken. Bounded: the oldest views are dropped beyond [`Handoff::MAX_EVENTS`] events or
/// [`Handoff::MAX_BYTES`] bytes of their JSON; a delivery whose view was dropped parses the stored
/// bytes instead. Per process: nothing here is durable, nothing depends on it but speed.
#[derive(Debug, Default)]
pub struct Handoff(Mutex<Views>);

#[derive(Debug, Default)]
struct Views {
    by_id: HashMap<String, Arc<Value>>,
    /// Insertion order, with each body's length.
    order: VecDeque<(String, usize)>,
    bytes: usize,
}

impl Handoff {
    pub const MAX_EVENTS: usize = 4096;
    pub const MAX_BYTES: usize = 8 << 20;

    /// Hands over the parsed view of event `id`, whose stored JSON is `len` bytes.
    pub fn put(&self, id: &str, value: Arc<Value>, len: usize) {
        if len > Self::MAX_BYTES {
            return; // alone over the budget: it would only push every other view out
        }
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if v.by_id.contains_key(id) {
            return;
        }
        v.by_id.insert(id.to_owned(), value);
        v.order.push_back((id.to_owned(), len));
        v.bytes += len;
        while v.by_id.len() > Self::MAX_EVENTS || v.bytes > Self::MAX_BYTES {
            let Some((old, n)) = v.order.pop_front() else {
                break;
            };
            v.by_id.remove(&old);
            v.bytes -= n;
        }
    }

    /// The parsed view of event `id`, if handed over and not dropped since.
    pub fn get(&self, id: &str) -> Option<Arc<Value>> {
        let v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        v.by_id.get(id).cloned()
    }

    /// The parsed view of the event `id` stored as `body`: the handed-over one, else `body` parsed
    /// (and handed on to the event's next delivery); `Null` for bytes that do not parse.
    pub fn view(&self, id: &str, body: &str) -> Arc<Value> {
        if let Some(v) = self.get(id) {
            return v;
        }
        match parse_stored(body) {
            Some(v) => {
                let v = Arc::new(v);
                self.put(id, v.clone(), body.len());
                v
            }
            None => Arc::new(Value::Null),
        }
    }
}

fn normalise(
    m: &mut Map<String, Value>,
    rules: &EnvelopeRules,
    now_ms: i64,
) -> Result<(), Rejection> {
    for field in ["source", "detail-type"] {
        match m.get(field) {
            None | Some(Value::Null) => return Err(Rejection::Missing(field)),
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(_) => {
                return Err(Rejection::WrongType {
                    field,
                    expected: "a non-empty string",
                });
            }
        }
    }
    match m.get("detail") {
        None | Some(Value::Null) => return Err(Rejection::Missing("detail")),
        Some(Value::Object(_)) => {}
        Some(_) => {
            return Err(Rejection::WrongType {
                field: "detail",
                expected: "a JSON object",
            });
        }
    }
    type Fill = fn(&EnvelopeRules, i64) -> String;
    let defaults: [(&'static str, Fill); 5] = [
        ("version", |_, _| "0".to_owned()),
        ("id", |_, _| uuid::Uuid::new_v4().to_string()),
        ("time", |_, now| rfc3339(now)),
        ("account", |r, _| r.account.clone()),
        ("region", |r, _| r.region.clone()),
    ];
    for (field, make) in defaults {
        match m.get(field) {
            None | Some(Value::Null) => {
                m.insert(field.to_owned(), Value::String(make(rules, now_ms)));
            }
            Some(Value::String(s)) if !(field == "id" && s.is_empty()) => {}
            Some(_) => {
                return Err(Rejection::WrongType {
                    field,
                    expected: "a non-empty string",
                });
            }
        }
    }
    match m.get("resources") {
        None | Some(Value::Null) => {
            m.insert("resources".into(), Value::Array(vec![]));
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => {
            return Err(Rejection::WrongType {
                field: "resources",
                expected: "an array of strings",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn rules() -> EnvelopeRules {
        EnvelopeRules {
            max_event_bytes: 1024,
            account: "111".into(),
            region: "eu-west-1".into(),
        }
    }

    #[test]
    fn fills_missing_envelope_fields() {
        let e = validate(
            r#"{"source":"ci","detail-type":"t","detail":{}}"#,
            &rules(),
            NOW,
        )
        .unwrap();
        assert_eq!(e.id.len(), 36);
        assert_eq!(e.value["account"], "111");
        assert_eq!(e.value["region"], "eu-west-1");
        assert_eq!(e.value["resources"], serde_json::json!([]));
        assert_eq!(
            e.value["time"], "2023-11-14T22:13:20Z",
            "the acceptance time"
        );
        let again: Value = serde_json::from_str(&e.body).unwrap();
        assert_eq!(again, e.value);
    }

    #[test]
    fn keeps_given_id() {
        let e = validate(
            r#"{"id":"x1","source":"s","detail-type":"t","detail":{}}"#,
            &rules(),
            NOW,
        )
        .unwrap();
        assert_eq!(e.id, "x1");
    }

    #[test]
    fn handoff_gives_the_view_it_was_handed_and_stays_bounded() {
        let h = Handoff::default();
        let v = Arc::new(serde_json::json!({"id": "a"}));
        h.put("a", v.clone(), 10);
        assert!(Arc::ptr_eq(&h.view("a", "{not parsed}"), &v), "no parse");
        assert_eq!(
            h.view("b", r#"{"id":"b"}"#)["id"],
            "b",
            "parsed from the stored bytes"
        );
        assert!(h.get("b").is_some(), "and handed on to the next delivery");
        assert_eq!(*h.view("c", "{broken"), Value::Null);
        for i in 0..Handoff::MAX_EVENTS + 10 {
            h.put(&format!("n{i}"), v.clone(), 1);
        }
        assert!(h.get("a").is_none(), "the oldest dropped first");
        assert!(h.get(&format!("n{}", Handoff::MAX_EVENTS + 9)).is_some());
        h.put("big", v.clone(), Handoff::MAX_BYTES + 1);
        assert!(h.get("big").is_none(), "bounded in bytes too");
        assert!(h.get("n20").is_some(), "without pushing the others out");
    }

    #[test]
    fn built_events_get_the_same_checks_and_limit_without_a_parse() {
        let r = rules();
        let value = serde_json::json!({"source": "s", "detail-type": "t", "detail": {"a": 1}});
        let text = value.to_string();
        let built = validate_built(value.clone(), &r, NOW).unwrap();
        let parsed = validate(&text, &r, NOW).unwrap();
        assert_eq!(built.value["detail"], parsed.value["detail"]);
        assert_eq!(json_len(&value), text.len());
        let big = serde_json::json!({"source": "s", "detail-type": "t", "detail": {"x": "a".repeat(2000)}});
        assert_eq!(
            validate_built(big.clone(), &r, NOW).unwrap_err(),
            validate(&big.to_string(), &r, NOW).unwrap_err(),
            "the same message"
        );
        assert_eq!(
            validate_built(serde_json::json!([1]), &r, NOW).unwrap_err(),
            Rejection::NotObject
        );
    }

    #[test]
    fn rejections() {
        let r = rules();
        assert_eq!(validate("[1]", &r, NOW).unwrap_err(), Rejection::NotObject);
        assert!(matches!(
            validate("{", &r, NOW).unwrap_err(),
            Rejection::Malformed(_)
        ));
        assert_eq!(
            validate(r#"{"detail-type":"t","detail":{}}"#, &r, NOW).unwrap_err(),
            Rejection::Missing("source")
        );
        assert_eq!(
            validate(r#"{"source":"s","detail-type":"t","detail":"x"}"#, &r, NOW).unwrap_err(),
            Rejection::WrongType {
                field: "detail",
                expected: "a JSON object"
            }
        );
        let big = format!(
            r#"{{"source":"s","detail-type":"t","detail":{{"x":"{}"}}}}"#,
            "a".repeat(2000)
        );
        assert!(matches!(
            validate(&big, &r, NOW).unwrap_err(),
            Rejection::TooLarge { .. }
        ));
    }
}
