//! Dead letters: `GET /api/v1/deadletters` (oldest first, `{"deadletters": [{id, event_id, rule,
//! target, attempts, created_at_ms, failed_at_ms, reason}]}`), `GET /api/v1/deadletters/{id}` (with
//! `event`), `POST /api/v1/deadletters/{id}/redrive`, `POST /api/v1/deadletters/redrive` (all) →
//! `{"redriven": N}`, and `POST /api/v1/deadletters/purge` → `{"purged": N}`. A redriven delivery is
//! back in the outbox, due now, attempts reset; the worker picks it up at its next poll.

use axum::extract::{Path, Query, State};
use serde_json::json;

use super::events::Page;
use super::state::{AdminState, ApiResult};

/// Dead letters listed at most.
pub const MAX_LISTED: usize = 10_000;

pub async fn list(State(st): State<AdminState>, Query(p): Query<Page>) -> ApiResult {
    let limit = p.limit.unwrap_or(MAX_LISTED).clamp(1, MAX_LISTED);
    let list = st.store()?.dead_letters(limit).await?;
    Ok(axum::Json(json!({"deadletters": list})))
}

pub async fn one(State(st): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    let d = st.store()?.dead_letter_get(id).await?;
    Ok(axum::Json(json!(d)))
}

pub async fn redrive(State(st): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    let n = st
        .store()?
        .redrive(Some(id.clone()), st.clock.now_ms())
        .await?;
    tracing::info!(delivery = %id, "dead letter redriven (admin API)");
    st.wake.notify_one();
    Ok(axum::Json(json!({"redriven": n})))
}

pub async fn redrive_all(State(st): State<AdminState>) -> ApiResult {
    let n = st.store()?.redrive(None, st.clock.now_ms()).await?;
    tracing::info!(count = n, "dead letters redriven (admin API)");
    st.wake.notify_one();
    Ok(axum::Json(json!({"redriven": n})))
}

pub async fn purge(State(st): State<AdminState>) -> ApiResult {
    let n = st.store()?.purge().await?;
    tracing::warn!(count = n, "dead letters purged (admin API)");
    Ok(axum::Json(json!({"purged": n})))
}
