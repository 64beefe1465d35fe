//! What every admin handler shares ([`AdminState`]) and how it fails ([`ApiError`]: a status and a
//! message for people, `{"error": "..."}` on the wire); a store failure is a 503 that says only the
//! kind of failure, an unknown id a 404.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::ingest::rate::RateLimiter;
use crate::store::{Store, StoreError};

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    pub access: Arc<crate::ui::access::Access>,
    pub limiter: Arc<RateLimiter>,
    pub body_timeout: Duration,
    /// Pattern limits (`rules.max_pattern_length`).
    pub limits: scanbridge_pattern::Limits,
    pub routing: Arc<super::routing::Routing>,
    /// The last load of the rules.
    pub reload: Arc<crate::reload::Status>,
    /// The rules directory (shown with the rules).
    pub rules_dir: String,
    /// The store; `None` for `scanbridge sandbox` (the store routes are then absent).
    pub store: Option<Arc<dyn Store>>,
    /// Wakes the worker (a redriven delivery is due now).
    pub wake: Arc<tokio::sync::Notify>,
    /// The daemon's clock (silence expiry, redrive due times).
    pub clock: crate::alerting::SharedClock,
}

impl AdminState {
    pub(super) fn store(&self) -> Result<&Arc<dyn Store>, ApiError> {
        self.store.as_ref().ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                "this server has no store (scanbridge sandbox)".into(),
            )
        })
    }
}

/// An error answer: a status and a message for people.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn bad_request(m: impl std::fmt::Display) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, m.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound { .. } => ApiError(StatusCode::NOT_FOUND, e.to_string()),
            other => {
                tracing::error!(error = %other, "store failure (admin API)");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("store unavailable ({})", other.kind()),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error": self.1}))).into_response()
    }
}

/// A handler's answer.
pub type ApiResult = Result<axum::Json<Value>, ApiError>;

/// Parses a JSON body into `T`, or a 400 naming the problem.
pub fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}
