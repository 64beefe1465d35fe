//! The AWS JSON 1.1 door: `POST /` with `X-Amz-Target: AWSEvents.PutEvents` or
//! `AWSEvents.TestEventPattern`, so the real AWS CLI and SDKs work with `--endpoint-url`; and the
//! access key id of a SigV4 `Authorization` header, which [`super::http`] accepts as a token.
//!
//! Promises:
//! - PutEvents builds one EventBridge event per entry (`Source`, `DetailType`, `Detail` required;
//!   `Time` and `Resources` optional) and hands the batch to the same [`Ingestor::ingest`] as
//!   `POST /events`, so an `EventId` in the answer means the event is durable; a bad entry gets its
//!   `ErrorCode`/`ErrorMessage` (AWS's codes) while the others are accepted; a store failure fails
//!   the whole call (500, nothing accepted).
//! - TestEventPattern answers with the reference interpreter ([`scanbridge_pattern::Pattern`]) and
//!   AWS's own error messages for an invalid pattern.
//! - Errors have AWS's shape: `{"__type", "message"}` and the `x-amzn-errortype` header. A request whose
//!   entries cannot be read (an entry's `Time` that is not a timestamp) is a 400
//!   `ValidationException`, nothing accepted.
//!
//! Authentication: with `server.aws_credentials` set, every request's SigV4 signature is verified
//! ([`super::sigv4`]: canonical request, credential scope, signed headers, payload hash, a 15-minute
//! window), errors in AWS's words. Without them, the signature is not verified and the access key id
//! is taken as an ingest token (see [`super::auth`]); `serve` warns about it at start-up.

use std::time::{Duration, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::Ingestor;
use crate::event::{Incoming, Rejection};

/// The access key id of a SigV4 `Authorization` header (`AWS4-HMAC-SHA256 Credential=KEY/...`).
pub fn access_key_id(authorization: &str) -> Option<&str> {
    let cred = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")?
        .split(',')
        .find_map(|p| p.trim().strip_prefix("Credential="))?;
    cred.split('/').next()
}

const AMZ_JSON: &str = "application/x-amz-json-1.1";

fn aws_ok(body: Value) -> Response {
    ([(header::CONTENT_TYPE, AMZ_JSON)], body.to_string()).into_response()
}

fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"__type": kind, "message": message});
    let mut r = (status, [(header::CONTENT_TYPE, AMZ_JSON)], body.to_string()).into_response();
    if let Ok(v) = HeaderValue::from_str(kind) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

/// What the door needs to verify a request's signature: the accepted keys (none: no verification) and
/// the request line as received.
pub struct Signed<'a> {
    pub keys: &'a super::sigv4::Credentials,
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
}

/// Answers one AWS JSON 1.1 request (`X-Amz-Target` names the operation). With keys configured, its
/// SigV4 signature is verified first ([`super::sigv4`]), and a request that fails gets AWS's error.
pub async fn handle(
    ingestor: &Ingestor,
    request: Signed<'_>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if !request.keys.is_empty() {
        let now = ingestor.clock.now_ms();
        if let Err(e) = super::sigv4::verify(
            request.keys,
            request.method,
            request.path,
            request.query,
            headers,
            body,
            now,
        ) {
            ingestor.metrics.limited("unauthorized");
            let (status, kind, message) = e.aws();
            tracing::info!(kind, "AWS JSON request refused: {message}");
            return aws_error(status, kind, &message);
        }
    }
    let op = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let req: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                "request body is not a JSON object",
            );
        }
    };
    match op {
        "AWSEvents.PutEvents" => put_events(ingestor, &req).await,
        // Parsing a pattern and matching it are CPU work: off the async runtime.
        "AWSEvents.TestEventPattern" => crate::compute::run(move || test_event_pattern(&req))
            .await
            .unwrap_or_else(|p| {
                aws_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalException",
                    &p.to_string(),
                )
            }),
        other => aws_error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("operation {other:?} is not supported (PutEvents, TestEventPattern)"),
        ),
    }
}

/// Builds an EventBridge event from one PutEvents entry, or the entry's (ErrorCode, ErrorMessage).
/// `Detail` is parsed here, once; ingest takes the built event without parsing it again.
fn entry_to_event(entry: &Value) -> Result<Value, (&'static str, String)> {
    let required = |key: &str| -> Result<String, (&'static str, String)> {
        match entry.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err((
                "InvalidArgument",
                format!("Parameter {key} is not valid. Reason: {key} is a required argument."),
            )),
        }
    };
    let source = required("Source")?;
    let detail_type = required("DetailType")?;
    let detail_text = required("Detail")?;
    let detail: Value = match crate::event::parse_strict(&detail_text) {
        Ok(v @ Value::Object(_)) => v,
        _ => return Err(("MalformedDetail", "Detail is malformed.".into())),
    };
    let mut ev = Map::new();
    ev.insert("version".into(), json!("0"));
    ev.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
    ev.insert("detail-type".into(), json!(detail_type));
    ev.insert("source".into(), json!(source));
    match entry.get("Time") {
        Some(Value::Number(n)) => {
            // Checked by `bad_time` before any entry is built: finite, 1970..=9999.
            let secs = n.as_f64().unwrap_or(0.0).clamp(0.0, MAX_TIME);
            let t = UNIX_EPOCH + Duration::from_secs_f64(secs);
            ev.insert(
                "time".into(),
                json!(humantime::format_rfc3339_seconds(t).to_string()),
            );
        }
        Some(Value::String(s)) => {
            ev.insert("time".into(), json!(s));
        }
        _ => {}
    }
    match entry.get("Resources") {
        Some(Value::Array(r)) if r.iter().all(Value::is_string) => {
            ev.insert("resources".into(), Value::Array(r.clone()));
        }
        None | Some(Value::Null) => {}
        Some(_) => {
            return Err((
                "InvalidArgument",
                "Parameter Resources is not valid.".into(),
            ));
        }
    }
    ev.insert("detail".into(), detail);
    Ok(Value::Object(ev))
}

/// The latest `Time` a PutEvents entry may carry: 9999-12-31T23:59:59Z, in seconds.
const MAX_TIME: f64 = 253_402_300_799.0;

/// AWS's validation message for an entry whose `Time` is not a timestamp (a number of seconds from
/// 1970 to 9999, or a string), if any entry's is not. Such a request is refused whole, as AWS refuses
/// input it cannot deserialise: `"Time": 1e300` is a 400, never a panic.
fn bad_time(entries: &[Value]) -> Option<String> {
    entries.iter().enumerate().find_map(|(i, e)| {
        let ok = match e.get("Time") {
            None | Some(Value::Null) | Some(Value::String(_)) => true,
            Some(Value::Number(n)) => n.as_f64().is_some_and(|f| (0.0..=MAX_TIME).contains(&f)),
            Some(_) => false,
        };
        (!ok).then(|| {
            let shown = crate::escape::line(&e["Time"].to_string(), 64);
            format!(
                "1 validation error detected: Value '{shown}' at 'entries.{}.member.time' failed to satisfy constraint: Member must be a timestamp between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z",
                i + 1
            )
        })
    })
}

async fn put_events(ingestor: &Ingestor, req: &Value) -> Response {
    let Some(Value::Array(entries)) = req.get("Entries") else {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "Entries is required",
        );
    };
    if entries.is_empty() || entries.len() > 10 {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length between 1 and 10",
        );
    }
    if let Some(message) = bad_time(entries) {
        return aws_error(StatusCode::BAD_REQUEST, "ValidationException", &message);
    }
    // Per entry: the event built (handed to ingest as is), or AWS's error code and message.
    let mut codes: Vec<Option<(&'static str, String)>> = Vec::with_capacity(entries.len());
    let mut items = Vec::with_capacity(entries.len());
    for entry in entries {
        match entry_to_event(entry) {
            Ok(v) => {
                codes.push(None);
                items.push(Ok(Incoming::Built(v)));
            }
            Err((code, message)) => {
                items.push(Err(Rejection::Malformed(message.clone())));
                codes.push(Some((code, message)));
            }
        }
    }
    let results = match ingestor.ingest(items).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "store failure: PutEvents not accepted");
            return aws_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalException",
                "store unavailable",
            );
        }
    };
    let mut failed = 0;
    let out: Vec<Value> = results
        .iter()
        .zip(&codes)
        .map(|(r, c)| match (r, c) {
            (Ok(a), _) => json!({"EventId": a.id}),
            (Err(_), Some((code, msg))) => {
                failed += 1;
                json!({"ErrorCode": code, "ErrorMessage": msg})
            }
            (Err(why), None) => {
                failed += 1;
                let code = match why {
                    Rejection::Internal(_) => "InternalFailure",
                    _ => "InvalidArgument",
                };
                json!({"ErrorCode": code, "ErrorMessage": why.to_string()})
            }
        })
        .collect();
    aws_ok(json!({"FailedEntryCount": failed, "Entries": out}))
}

fn test_event_pattern(req: &Value) -> Response {
    let (Some(Value::String(pattern)), Some(Value::String(event))) =
        (req.get("EventPattern"), req.get("Event"))
    else {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "EventPattern and Event are required strings",
        );
    };
    let pattern = match scanbridge_pattern::Pattern::parse(pattern) {
        Ok(p) => p,
        Err(e) => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "InvalidEventPatternException",
                &e.to_string(),
            );
        }
    };
    let event: Value = match serde_json::from_str(event) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "Event is not valid JSON.",
            );
        }
    };
    aws_ok(json!({"Result": pattern.matches(&event)}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_that_are_not_timestamps_are_named() {
        assert_eq!(
            bad_time(&[
                json!({"Time": 1700000000}),
                json!({"Time": "2026-01-01T00:00:00Z"}),
                json!({})
            ]),
            None
        );
        for bad in [
            json!(1e300),
            json!(-1),
            json!(true),
            json!([1]),
            json!(253_402_300_800u64),
        ] {
            let msg = bad_time(&[json!({}), json!({"Time": bad})]).expect("refused");
            assert!(msg.contains("'entries.2.member.time'"), "{msg}");
        }
        // At the bound: no panic building it.
        let ok = entry_to_event(
            &json!({"Source":"s","DetailType":"t","Detail":"{}","Time":253_402_300_799u64}),
        )
        .unwrap();
        assert_eq!(ok["time"], "9999-12-31T23:59:59Z");
    }

    #[test]
    fn put_events_entries() {
        let ok = entry_to_event(
            &json!({"Source":"s","DetailType":"t","Detail":"{\"a\":1}","Time":1700000000}),
        )
        .unwrap();
        let v = ok;
        assert_eq!(v["time"], "2023-11-14T22:13:20Z");
        assert_eq!(v["detail"]["a"], 1);
        assert_eq!(
            entry_to_event(&json!({"DetailType":"t","Detail":"{}"}))
                .unwrap_err()
                .0,
            "InvalidArgument"
        );
        assert_eq!(
            entry_to_event(&json!({"Source":"s","DetailType":"t","Detail":"[1]"}))
                .unwrap_err()
                .0,
            "MalformedDetail"
        );
    }
}
