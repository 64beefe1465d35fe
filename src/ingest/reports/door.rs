//! `POST /reports[?format=trivy|grype|trivy-operator]`: the HTTP door for scanner reports. The rest of
//! this directory is pure conversion; this file only answers.
//!
//! Promises: behind the same rate limit, authentication and body limits as `POST /events` (the router
//! in [`crate::ingest::http`] puts it there); 202 only after the event is durable (the one ingest path,
//! [`crate::ingest::Ingestor::ingest`]); a body that is no report is a 400 saying, per format, why not;
//! a trivy-operator report kind without vulnerabilities (the operator posts every kind to one URL) is a
//! 200 saying it was skipped; a store failure is a 503 and nothing is acknowledged.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Converted, Format};
use crate::event::Rejection;
use crate::ingest::Ingestor;

/// The value of `format` in a query string, if given.
pub fn format_param(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "format")
        .map(|(_, v)| v)
}

fn refused(ingestor: &Ingestor, status: StatusCode, message: String) -> Response {
    ingestor.metrics.received(1);
    ingestor.metrics.rejected(1);
    let formats: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
    (
        status,
        axum::Json(json!({"error": message, "formats": formats})),
    )
        .into_response()
}

/// Answers one `POST /reports`.
pub async fn handle(ingestor: &Ingestor, query: Option<&str>, body: &[u8]) -> Response {
    let forced = match format_param(query).map(Format::parse).transpose() {
        Ok(f) => f,
        Err(e) => return refused(ingestor, StatusCode::BAD_REQUEST, e.to_string()),
    };
    let (format, event, omitted) = match super::convert(body, forced, &ingestor.envelope) {
        Err(e) => return refused(ingestor, StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Converted::Ignored(why)) => {
            tracing::info!(reason = %why, "report skipped");
            return (
                StatusCode::OK,
                axum::Json(json!({"accepted": 0, "rejected": 0, "ignored": why})),
            )
                .into_response();
        }
        Ok(Converted::Event {
            format,
            event,
            omitted,
        }) => (format, event, omitted),
    };
    let results = match ingestor
        .ingest(vec![Ok(crate::event::Incoming::Built(event))])
        .await
    {
        Ok(r) => r,
        Err(e) => return crate::ingest::answer::store_unavailable(&e),
    };
    match &results[0] {
        Ok(a) => {
            let status = if a.duplicate { "duplicate" } else { "accepted" };
            let mut body = json!({"accepted": 1, "rejected": 0, "format": format.name(),
                "results": [{"index": 0, "status": status, "id": a.id}]});
            if a.duplicate {
                body["results"][0]["note"] =
                    json!("this report was accepted before; it is not routed again");
            }
            if omitted > 0 {
                body["findings_omitted"] = json!(omitted);
            }
            (StatusCode::ACCEPTED, axum::Json(body)).into_response()
        }
        Err(why) => {
            let status = match why {
                Rejection::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            (
                status,
                axum::Json(
                    json!({"accepted": 0, "rejected": 1, "format": format.name(),
                    "results": [{"index": 0, "status": "rejected", "error": why.to_string()}]}),
                ),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_parameter() {
        assert_eq!(format_param(Some("format=grype")), Some("grype"));
        assert_eq!(
            format_param(Some("x=1&format=trivy-operator")),
            Some("trivy-operator")
        );
        assert_eq!(format_param(Some("x=1")), None);
        assert_eq!(format_param(None), None);
    }
}
