//! The answers every HTTP door gives alike: a JSON error body, and the 503 of a store failure (nothing
//! was accepted; retry later). Kept apart from the doors so that each door can use them without
//! importing another door.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `{"error": message}` with `status`.
pub(crate) fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({"error": message.to_string()}))).into_response()
}

/// 503 for a store failure: nothing was accepted, retry later.
pub(crate) fn store_unavailable(e: &crate::store::StoreError) -> Response {
    match e {
        // No room: the retention task logs the state once; each refused request is not news.
        crate::store::StoreError::Full(_) => {
            tracing::debug!(error = %e, "no room in the store: events not accepted")
        }
        _ => tracing::error!(error = %e, "store failure: events not accepted"),
    }
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("store unavailable ({}); nothing was accepted", e.kind()),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}
