//! Recent events and what became of each of their deliveries (`GET /api/v1/events`,
//! `GET /api/v1/events/{id}`), and the notifications not sent on purpose (`GET /api/v1/suppressed`).
//!
//! An event in a listing is `{"id", "received_at_ms", "source", "detail_type", "headline",
//! "deliveries": [...]}`; one delivery is `{"id", "rule", "target", "state", ...}` with the fields of
//! its [`DeliveryState`] plus `"status"`, the word the console shows: `pending` (in the outbox, not
//! tried yet), `retrying` (failed at least once: `attempts`, `next_attempt_at_ms`, `last_error`),
//! `delivered`, `grouped` (waiting in a digest), `in_digest`, `dead_letter` (`reason`), `suppressed`
//! (`reason`, `detail`). `GET /api/v1/events/{id}` adds `"event"`, the event itself.
//!
//! Listings are newest first, `limit` at most [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]); `next` is the
//! `before` of the following page (`null` on the last).

use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use super::state::{AdminState, ApiResult};
use crate::store::{DeliveryRecord, DeliveryState, EventRecord};

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

/// `?limit=&before=`.
#[derive(Debug, serde::Deserialize)]
pub struct Page {
    pub limit: Option<usize>,
    pub before: Option<String>,
}

impl Page {
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }
}

/// The console's word for a delivery's state.
pub fn status(state: &DeliveryState) -> &'static str {
    match state {
        DeliveryState::Pending {
            attempts: 0,
            last_error: None,
            ..
        } => "pending",
        DeliveryState::Pending { .. } => "retrying",
        DeliveryState::Delivered { .. } => "delivered",
        DeliveryState::Grouped { .. } => "grouped",
        DeliveryState::InDigest { .. } => "in_digest",
        DeliveryState::DeadLettered { .. } => "dead_letter",
        DeliveryState::Suppressed { .. } => "suppressed",
    }
}

fn delivery(d: &DeliveryRecord) -> Value {
    let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
    v["status"] = status(&d.state).into();
    v
}

/// One event as listed; with `full`, the event itself too.
pub fn event(r: &EventRecord, full: bool) -> Value {
    let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    let facts = crate::scan::Facts::of(&body);
    let mut v = json!({
        "id": r.id,
        "received_at_ms": r.received_at_ms,
        "source": facts.source,
        "detail_type": facts.detail_type,
        "headline": facts.headline,
        "deliveries": r.deliveries.iter().map(delivery).collect::<Vec<_>>(),
    });
    if full {
        v["event"] = body;
    }
    v
}

/// A page of events: `{"events": [...], "next": ID | null}`.
pub fn page(records: &[EventRecord], limit: usize) -> Value {
    let next = (records.len() == limit)
        .then(|| records.last().map(|r| r.id.clone()))
        .flatten();
    json!({"events": records.iter().map(|r| event(r, false)).collect::<Vec<_>>(), "next": next})
}

/// `GET /api/v1/events?limit=&before=`.
pub async fn list(State(st): State<AdminState>, Query(p): Query<Page>) -> ApiResult {
    let limit = p.limit();
    let records = st.store()?.recent_events(limit, p.before).await?;
    Ok(axum::Json(page(&records, limit)))
}

/// `GET /api/v1/events/{id}`.
pub async fn one(State(st): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    let r = st.store()?.event_record(id).await?;
    Ok(axum::Json(event(&r, true)))
}

/// `GET /api/v1/suppressed?limit=`: `{"suppressed": [{id, event_id, rule, target, reason, detail,
/// at_ms}]}`, newest first.
pub async fn suppressed(State(st): State<AdminState>, Query(p): Query<Page>) -> ApiResult {
    let list = st.store()?.suppressed(p.limit()).await?;
    Ok(axum::Json(json!({"suppressed": list})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_shapes() {
        let pending = DeliveryState::Pending {
            attempts: 0,
            next_attempt_at_ms: 1,
            last_error: None,
        };
        let retrying = DeliveryState::Pending {
            attempts: 2,
            next_attempt_at_ms: 9,
            last_error: Some("HTTP 503".into()),
        };
        assert_eq!(status(&pending), "pending");
        assert_eq!(status(&retrying), "retrying");
        let r = EventRecord {
            id: "e1".into(),
            received_at_ms: 5,
            body: include_str!("../../tests/fixtures/ecr-image-scan-critical.json").into(),
            deliveries: vec![DeliveryRecord {
                id: "d1".into(),
                rule: "r".into(),
                target: "hook".into(),
                replay: None,
                state: retrying,
            }],
        };
        let v = event(&r, true);
        assert_eq!(
            v["headline"],
            "2 CRITICAL, 7 HIGH, 19 MEDIUM, 4 LOW, 3 INFORMATIONAL in payments/api:v2.14.0"
        );
        assert_eq!(v["deliveries"][0]["status"], "retrying");
        assert_eq!(v["deliveries"][0]["state"], "pending");
        assert_eq!(v["deliveries"][0]["last_error"], "HTTP 503");
        assert_eq!(v["deliveries"][0]["next_attempt_at_ms"], 9);
        assert_eq!(v["event"]["detail-type"], "ECR Image Scan");
        assert_eq!(page(std::slice::from_ref(&r), 1)["next"], "e1");
        assert_eq!(page(&[r], 2)["next"], Value::Null);
    }
}
