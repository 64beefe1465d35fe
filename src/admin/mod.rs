//! The admin API, `/api/v1/...`: JSON over HTTP for the UI's pages and for programs (the CLI, as
//! `amtool` talks to Alertmanager). README's endpoint table lists every route.
//!
//! Each request passes, in order: the per-client rate limit of ingest (429), [`crate::ui::access`] (401/403:
//! bearer token or browser session, CSRF token on changes, no cross-site changes), then its body is
//! read whole within [`MAX_BODY`] bytes (413) and `server.body_timeout` (408). Answers are JSON;
//! errors are `{"error": "..."}` with the status that fits (400 bad input, 404 unknown id, 503 store
//! failure). Nothing returned contains a secret: targets are shown by name and type, never by URL.
//!
//! One file per concept: [`sandbox`] (test a pattern, samples), [`routing`] (which rules and targets an
//! event reaches, rendered; the loaded rules), [`events`] (recent events and what became of each
//! delivery, as the console shows them; suppressed), [`archive`] (the archive's pages and replays,
//! as `scanbridge events` and `scanbridge replay` read them), [`deadletters`], [`silences`]; `state.rs` is the handlers' contract (what they
//! share, how they fail). This file: the routes, the guard, and the small handlers (rules with the
//! last reload, the dashboard's status). [`browser_app`] joins this API and
//! the UI pages of [`crate::ui`].

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

pub use state::{AdminState, ApiError, ApiResult, body};

pub mod archive;
pub mod deadletters;
pub mod events;
pub mod routing;
pub mod sandbox;
pub mod silences;
mod state;

/// Largest admin request body (an event is at most 256 KiB; a pattern a few KiB).
pub const MAX_BODY: usize = 1 << 20;

/// The `/api/v1` routes, with their guards and the security headers.
pub fn router(state: AdminState) -> Router {
    let mut r = Router::new()
        .route("/api/v1/test-pattern", post(test_pattern))
        .route("/api/v1/samples", get(samples))
        .route("/api/v1/route", post(route))
        .route("/api/v1/rules", get(rules));
    if state.store.is_some() {
        r = r
            .route("/api/v1/status", get(status))
            .route("/api/v1/events", get(events::list))
            .route("/api/v1/events/{id}", get(events::one))
            .route("/api/v1/archive", get(archive::list))
            .route("/api/v1/archive/{id}", get(archive::one))
            .route("/api/v1/replay", post(archive::replay))
            .route("/api/v1/suppressed", get(events::suppressed))
            .route("/api/v1/deadletters", get(deadletters::list))
            .route(
                "/api/v1/deadletters/redrive",
                post(deadletters::redrive_all),
            )
            .route("/api/v1/deadletters/purge", post(deadletters::purge))
            .route("/api/v1/deadletters/{id}", get(deadletters::one))
            .route(
                "/api/v1/deadletters/{id}/redrive",
                post(deadletters::redrive),
            )
            .route("/api/v1/silences", get(silences::list).post(silences::add))
            .route("/api/v1/silences/{id}/expire", post(silences::expire));
    }
    r.route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(middleware::map_response(crate::ui::headers::secure))
        .with_state(state)
}

/// The admin API and the UI pages together, as `serve` (`mode` daemon) and `sandbox` serve them.
pub fn browser_app(state: AdminState, mode: crate::ui::Mode) -> Router {
    let ui = crate::ui::UiState {
        mode,
        access: state.access.clone(),
        limiter: state.limiter.clone(),
    };
    router(state).merge(crate::ui::router(ui))
}

/// Rate limit, access, and the whole body read within limits (see the module doc).
async fn guard(State(st): State<AdminState>, req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<std::net::SocketAddr>>()
        && let Err(wait) = st.limiter.check(peer.ip())
    {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut r = ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many requests from this client; retry in {secs}s"),
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    let caller = match st.access.check(req.method(), req.headers()) {
        Ok(c) => c,
        Err(why) => {
            let mut r = ApiError(why.status(), why.to_string()).into_response();
            if why.status() == StatusCode::UNAUTHORIZED {
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            return r;
        }
    };
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(caller);
    match crate::ingest::body::read(body, MAX_BODY, st.body_timeout).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => {
            let (status, message) = match e {
                crate::ingest::body::ReadError::TooLarge { .. } => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body is over the limit of {MAX_BODY} bytes"),
                ),
                crate::ingest::body::ReadError::TimedOut { .. } => {
                    (StatusCode::REQUEST_TIMEOUT, e.to_string())
                }
                crate::ingest::body::ReadError::Broken => (StatusCode::BAD_REQUEST, e.to_string()),
            };
            let mut r = ApiError(status, message).into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

async fn test_pattern(State(st): State<AdminState>, bytes: axum::body::Bytes) -> ApiResult {
    let req: sandbox::TestPattern = body(&bytes)?;
    Ok(axum::Json(sandbox::evaluate(
        &req.pattern.into_text(),
        &req.event.into_text(),
        &st.limits,
    )))
}

async fn samples() -> ApiResult {
    Ok(axum::Json(json!({"samples": sandbox::samples()})))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteRequest {
    event: sandbox::Text,
}

async fn route(State(st): State<AdminState>, bytes: axum::body::Bytes) -> ApiResult {
    let req: RouteRequest = body(&bytes)?;
    let silences = match &st.store {
        Some(store) => store.silences().await?,
        None => Vec::new(),
    };
    let set = crate::alerting::silence::SilenceSet::new(silences);
    st.routing
        .plan(&req.event.into_text(), &set, st.clock.now_ms())
        .map(axum::Json)
        .map_err(ApiError::bad_request)
}

/// `{"rules": [...], "dir", "reload": {at_ms, ok, errors, loaded_at_ms, builtin}}`.
async fn rules(State(st): State<AdminState>) -> ApiResult {
    Ok(axum::Json(json!({
        "rules": st.routing.rules(),
        "dir": st.rules_dir,
        "reload": st.reload.last(),
    })))
}

/// `{"counts": {outbox, retrying, dead_letters, suppressed, grouped}, "silences_active", "rules",
/// "reload_ok"}`: the console's dashboard.
async fn status(State(st): State<AdminState>) -> ApiResult {
    let store = st.store()?;
    let counts = store.counts().await?;
    let now = st.clock.now_ms();
    let active = store
        .silences()
        .await?
        .iter()
        .filter(|s| s.active_at(now))
        .count();
    Ok(axum::Json(json!({
        "counts": counts,
        "silences_active": active,
        "rules": st.routing.router.current().len(),
        "reload_ok": st.reload.last().ok,
    })))
}
