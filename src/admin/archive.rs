//! The archive as programs read it, and replays (`scanbridge events` and `scanbridge replay` call
//! these): `GET /api/v1/archive`, `GET /api/v1/archive/{id}`, `POST /api/v1/replay`.
//!
//! `GET /api/v1/archive?since_ms=&until_ms=&matched=true|false&oldest_first=true&limit=&after=&bodies=false`
//! reads one page of the store's archive ([`EventQuery`]): events accepted in `[since_ms, until_ms)`,
//! newest first unless `oldest_first`, only those that matched a rule (`matched=true`) or none
//! (`matched=false`), at most `limit` ([`MAX_LIMIT`], default [`super::events::DEFAULT_LIMIT`]),
//! after the cursor `after` (the `next` of the page before). The answer is `{"events": [...], "next":
//! CURSOR | null}`, each event `{id, received_at_ms, matched, rules, deliveries, body}`: the
//! [`ArchivedEvent`] (`body` is the event JSON as stored, a string; absent with `bodies=false`), each
//! delivery `{id, rule, target, replay?, state, ...}` with the fields of its state. An unknown
//! parameter is a 400, so a misspelt filter never widens a listing. `GET /api/v1/archive/{id}` is one
//! archived event with its body (404 when it is not in the archive).
//!
//! `POST /api/v1/replay` with `{"since_ms", "until_ms"?, "rules"?: [...], "dry_run"?}` runs a replay
//! ([`crate::replay`]) through the daemon's live rules and answers [`crate::replay::ReplayReport`]: `{"replay",
//! "dry_run", "events", "replayed", "queued", "deliveries": [{event_id, rule, topic, target,
//! delivery_id}]}`. A rule that is not loaded and enabled is a 400 naming it, before anything is read.
//! The worker is woken when something was queued.
//!
//! These shapes are the store's own types, so the CLI reads them back into the same values it would
//! get opening a data directory, and prints the same lines either way. `/api/v1/events` keeps the
//! console's shape.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::state::{AdminState, ApiError, ApiResult, body};
use crate::replay::{ReplayError, ReplayRequest};
use crate::store::{ArchivedEvent, EventPage, EventQuery};

/// The largest page served (the CLI pages with it).
pub const MAX_LIMIT: usize = 500;

/// The query parameters of `GET /api/v1/archive`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub matched: Option<bool>,
    #[serde(default)]
    pub oldest_first: bool,
    pub limit: Option<usize>,
    pub after: Option<String>,
    pub bodies: Option<bool>,
}

impl Params {
    /// The store query these parameters ask for.
    pub fn query(self) -> EventQuery {
        clamped(EventQuery {
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            matched: self.matched,
            newest_first: !self.oldest_first,
            after: self.after,
            limit: self.limit.unwrap_or(super::events::DEFAULT_LIMIT),
            bodies: self.bodies.unwrap_or(true),
        })
    }
}

/// `q` with its limit within `1..=MAX_LIMIT`, as the API serves it.
pub fn clamped(mut q: EventQuery) -> EventQuery {
    q.limit = q.limit.clamp(1, MAX_LIMIT);
    q
}

/// The query string (after `?`) that asks the API for `q`: the inverse of [`Params::query`].
pub fn query_string(q: &EventQuery) -> String {
    let mut parts = vec![format!("limit={}", q.limit)];
    if let Some(s) = q.since_ms {
        parts.push(format!("since_ms={s}"));
    }
    if let Some(u) = q.until_ms {
        parts.push(format!("until_ms={u}"));
    }
    if let Some(m) = q.matched {
        parts.push(format!("matched={m}"));
    }
    if !q.newest_first {
        parts.push("oldest_first=true".into());
    }
    if let Some(a) = &q.after {
        parts.push(format!("after={}", percent(a)));
    }
    if !q.bodies {
        parts.push("bodies=false".into());
    }
    parts.join("&")
}

/// `text` percent-encoded for a URL's query or path (everything but unreserved characters).
pub fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A page as the API answers it.
pub fn page(p: &EventPage) -> Value {
    json!(p)
}

/// One archived event as the API answers it.
pub fn one_event(e: &ArchivedEvent) -> Value {
    json!(e)
}

/// `GET /api/v1/archive`.
pub async fn list(
    State(st): State<AdminState>,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(params) = params
        .map_err(|e| ApiError::bad_request(format!("query parameters: {}", e.body_text())))?;
    let p = st.store()?.events(params.query()).await?;
    Ok(axum::Json(page(&p)))
}

/// `GET /api/v1/archive/{id}`.
pub async fn one(State(st): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    let e = st.store()?.event_get(id).await?;
    Ok(axum::Json(one_event(&e)))
}

/// `POST /api/v1/replay`.
pub async fn replay(State(st): State<AdminState>, bytes: axum::body::Bytes) -> ApiResult {
    let req: ReplayRequest = body(&bytes)?;
    let store = st.store()?;
    let router = st.routing.router.current();
    let report = crate::replay::run(
        store.as_ref(),
        router,
        &req,
        crate::replay::new_id(),
        st.clock.now_ms(),
    )
    .await
    .map_err(|e| match e {
        ReplayError::UnknownRule { rule } => ApiError::bad_request(format!(
            "rule {}: no enabled rule of that name in the daemon's rules ({})",
            crate::escape::line(&rule, 200),
            st.rules_dir
        )),
        ReplayError::Store(e) => e.into(),
        ReplayError::Routing(e) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    })?;
    if report.queued > 0 {
        st.wake.notify_one();
    }
    tracing::info!(replay = %report.replay, dry_run = report.dry_run, events = report.events,
        planned = report.deliveries.len(), queued = report.queued, "replay (admin API)");
    Ok(axum::Json(json!(report)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_string_asks_for_the_query() {
        let q = EventQuery {
            since_ms: Some(5),
            until_ms: Some(9),
            matched: Some(false),
            newest_first: false,
            after: Some("12:3 x&y".into()),
            limit: 40,
            bodies: true,
        };
        let text = query_string(&q);
        let back: Params = serde_urlencoded_like(&text);
        let again = back.query();
        assert_eq!(
            (
                again.since_ms,
                again.until_ms,
                again.matched,
                again.newest_first
            ),
            (Some(5), Some(9), Some(false), false)
        );
        assert_eq!(
            (again.after.as_deref(), again.limit, again.bodies),
            (Some("12:3 x&y"), 40, true)
        );
        let all = Params::default().query();
        assert!(all.newest_first && all.bodies && all.matched.is_none());
        assert_eq!(all.limit, super::super::events::DEFAULT_LIMIT);
        let big = Params {
            limit: Some(1_000_000),
            ..Params::default()
        };
        assert_eq!(big.query().limit, MAX_LIMIT);
    }

    /// Parses a query string as axum's `Query` does.
    fn serde_urlencoded_like(text: &str) -> Params {
        let uri: axum::http::Uri = format!("/api/v1/archive?{text}").parse().unwrap();
        Query::<Params>::try_from_uri(&uri).unwrap().0
    }
}
