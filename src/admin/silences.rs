//! Silences: `GET /api/v1/silences` (in force; `?all=true` with expired ones, newest first: `{"silences":
//! [{id, pattern, matchers, comment, created_by, created_at_ms, expires_at_ms, expires_at, active}]}`),
//! `POST /api/v1/silences` with a [`SilenceSpec`] (`{"matchers": ["detail.repository-name=payments/*"],
//! "expires": "2h", "comment": "..."}`; 201 `{"silence": ...}`, 400 with the reason when a matcher,
//! pattern or expiry is wrong, and nothing stored), and `POST /api/v1/silences/{id}/expire`.
//! The daemon applies a new silence at the next delivery attempt, as for `scanbridge silence add`.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::state::{AdminState, ApiError, ApiResult};
use crate::alerting::silence::SilenceSpec;
use crate::event::rfc3339 as format_ms;
use crate::store::Silence;
use crate::ui::access::Caller;

#[derive(Debug, serde::Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub all: bool,
}

/// A silence as the API shows it: its fields, `expires_at` (RFC 3339) and whether it is `active`.
pub fn shown(s: &Silence, now: i64) -> Value {
    let mut v = json!(s);
    v["expires_at"] = format_ms(s.expires_at_ms).into();
    v["active"] = s.active_at(now).into();
    v
}

pub async fn list(State(st): State<AdminState>, Query(q): Query<ListQuery>) -> ApiResult {
    let now = st.clock.now_ms();
    let list: Vec<Value> = st
        .store()?
        .silences()
        .await?
        .iter()
        .filter(|s| q.all || s.active_at(now))
        .map(|s| shown(s, now))
        .collect();
    Ok(axum::Json(json!({"silences": list})))
}

pub async fn add(
    State(st): State<AdminState>,
    Extension(caller): Extension<Caller>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let spec: SilenceSpec = super::state::body(&bytes)?;
    let author = match caller {
        Caller::Session(_) => "console",
        Caller::Bearer | Caller::Open => "api",
    };
    let now = st.clock.now_ms();
    let silence = spec.build(now, author).map_err(ApiError::bad_request)?;
    st.store()?.silence_add(silence.clone()).await?;
    tracing::info!(silence = %silence.id, matchers = %silence.matchers, until = %format_ms(silence.expires_at_ms),
        by = %silence.created_by, "silence added (admin API)");
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"silence": shown(&silence, now)})),
    )
        .into_response())
}

pub async fn expire(State(st): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    st.store()?
        .silence_expire(id.clone(), st.clock.now_ms())
        .await?;
    tracing::info!(silence = %id, "silence expired (admin API)");
    Ok(axum::Json(json!({"expired": id})))
}
