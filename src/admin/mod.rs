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
//! event reaches, rendered), [`events`] (recent events and what became of each delivery; suppressed),
//! [`deadletters`], [`silences`], [`rules`] (the loaded rules and the last reload).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::ingest::rate::RateLimiter;

pub mod sandbox;

/// Largest admin request body (an event is at most 256 KiB; a pattern a few KiB).
pub const MAX_BODY: usize = 1 << 20;

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    pub access: Arc<crate::ui::access::Access>,
    pub limiter: Arc<RateLimiter>,
    pub body_timeout: Duration,
    /// Pattern limits (`rules.max_pattern_length`).
    pub limits: scanbridge_pattern::Limits,
}

/// An error answer: a status and a message for people.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn bad_request(m: impl std::fmt::Display) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, m.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error": self.1}))).into_response()
    }
}

/// A handler's answer.
pub type ApiResult = Result<axum::Json<Value>, ApiError>;

/// The `/api/v1` routes, with their guards and the security headers.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/api/v1/test-pattern", post(test_pattern))
        .route("/api/v1/samples", get(samples))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(middleware::map_response(crate::ui::headers::secure))
        .with_state(state)
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
    if let Err(why) = st.access.check(req.method(), req.headers()) {
        let mut r = ApiError(why.status(), why.to_string()).into_response();
        if why.status() == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        return r;
    }
    let (parts, body) = req.into_parts();
    match crate::ingest::body::read(body, MAX_BODY, st.body_timeout).await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
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

/// Parses a JSON body into `T`, or a 400 naming the problem.
pub fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
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
