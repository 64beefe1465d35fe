//! The plain HTTP door (axum): `POST /events`, `GET /healthz`, `GET /readyz`, `GET /metrics`, and the
//! routes to the other doors: `POST /` (the AWS JSON 1.1 door, [`super::aws`]: `AWSEvents.PutEvents`,
//! `AWSEvents.TestEventPattern`) and `POST /reports` (scanner reports, [`super::reports::door`]), all
//! behind the same rate limit, authentication and body limits; `POST /sns` (SNS subscriptions,
//! [`super::sns::door`]) behind the same rate limit and body limits, authenticated by AWS's signature
//! (its raw deliveries, unsigned, need a token: the door checks it).
//!
//! Promises:
//! - `POST /events` answers 202 only after every accepted event is durable; the body lists index-aligned
//!   results; a bad event in a batch is rejected with its index and reason while the others are
//!   accepted. A single event over the size limit, or a body over `max_body_bytes`, gets 413. A store
//!   failure gets 503 and nothing is acknowledged.
//! - With any token configured (`server.token`, `server.tokens`, `server.tokens_file`), both ingest
//!   doors need one: `Authorization: Bearer TOKEN`, `Authorization: Basic` with TOKEN as the password
//!   (what SNS sends for `https://user:TOKEN@host/sns`), or (for AWS CLIs and SDKs, which sign with
//!   SigV4) TOKEN as the access key id of the credential. See [`super::auth`]. Health and metrics are open.
//! - Ingest requests pass, in order: the per-client rate limit (429 + Retry-After), authentication
//!   (401), then the body is read whole within `server.body_timeout` (408) and `server.max_body_bytes`
//!   (413) before any handler sees it. Error bodies never echo credentials.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::answer::{error, store_unavailable};
use super::auth::Tokens;
use super::body::{self, ReadError};
use super::rate::RateLimiter;
use super::{Ingestor, Shape, split_body};
use crate::event::{Incoming, Rejection};

/// State shared by the handlers.
#[derive(Clone)]
pub struct AppState {
    pub ingestor: Ingestor,
    pub tokens: Arc<Tokens>,
    pub limiter: Arc<RateLimiter>,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    pub max_batch_events: usize,
    pub sns: Arc<super::sns::door::Sns>,
    /// `server.aws_credentials`: when any, the AWS JSON door verifies every request's SigV4 signature
    /// (and the access key id is no longer taken as a token).
    pub aws_keys: Arc<super::sigv4::Credentials>,
    /// `server.api_key_header`: a header that may carry an ingest token too.
    pub api_key_header: Option<axum::http::HeaderName>,
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    // route_layer: the last one added runs first.
    let sns = Router::new()
        .route("/sns", post(post_sns))
        .route_layer(middleware::from_fn_with_state(state.clone(), read_body))
        .route_layer(middleware::from_fn_with_state(state.clone(), rate_limit));
    Router::new()
        .route("/events", post(post_events))
        .route("/reports", post(post_reports))
        .route("/", post(aws_json))
        .route_layer(middleware::from_fn_with_state(state.clone(), read_body))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route_layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .merge(sns)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // read_body has applied server.max_body_bytes; axum's own 2 MB default must not apply again.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn rate_limit(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<std::net::SocketAddr>>()
        && let Err(wait) = st.limiter.check(peer.ip())
    {
        st.ingestor.metrics.limited("rate");
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many requests from this client (server.rate_limit); retry in {secs}s"),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return refuse(&st, req, r).await;
    }
    next.run(req).await
}

/// Sends `answer` instead of handling `req`, after draining its body (see [`body::drain`]).
async fn refuse(st: &AppState, req: Request, answer: Response) -> Response {
    body::drain(req.into_body(), st.max_body_bytes, st.body_timeout).await;
    answer
}

async fn read_body(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let (parts, b) = req.into_parts();
    match body::read(b, st.max_body_bytes, st.body_timeout).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => {
            st.ingestor.metrics.limited(match e {
                ReadError::TooLarge { .. } => "body_size",
                ReadError::TimedOut { .. } => "body_timeout",
                ReadError::Broken => "body_broken",
            });
            let status = match e {
                ReadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                ReadError::TimedOut { .. } => StatusCode::REQUEST_TIMEOUT,
                ReadError::Broken => StatusCode::BAD_REQUEST,
            };
            let mut r = error(status, e);
            // The rest of the body is not read: the connection cannot be reused.
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

/// The credential a request presents: a bearer token, a Basic password or (when signatures are not
/// verified) a SigV4 access key id.
fn presented(headers: &HeaderMap, sigv4_verified: bool) -> Option<std::borrow::Cow<'_, str>> {
    use base64::Engine;
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    // The auth scheme is case-insensitive (RFC 9110 §11.1): `bearer`, `BEARER` and `Bearer` alike.
    let (scheme, credentials) = auth.split_once([' ', '\t']).unwrap_or((auth, ""));
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(credentials.into());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let b64 = credentials;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text.split_once(':').map(|(_, p)| p.to_owned().into());
    }
    if sigv4_verified {
        return None; // the access key id is not a secret: only a verified signature counts
    }
    super::aws::access_key_id(auth).map(Into::into)
}

/// Whether the request may ingest: no token is required, or it presents an accepted one (in
/// `Authorization`, or in `server.api_key_header`).
fn authorized(st: &AppState, headers: &HeaderMap) -> bool {
    if !st.tokens.required() {
        return true;
    }
    let in_header = st
        .api_key_header
        .as_ref()
        .and_then(|name| headers.get(name))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| st.tokens.accepts(v.trim()));
    in_header
        || st.tokens.accepts(
            presented(headers, !st.aws_keys.is_empty())
                .as_deref()
                .unwrap_or(""),
        )
}

async fn authenticate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    // With AWS credentials configured, the AWS JSON door verifies the signature of every request
    // itself, once the body is read (the signature covers it).
    if req.uri().path() == "/" && !st.aws_keys.is_empty() {
        return next.run(req).await;
    }
    if !authorized(&st, req.headers()) {
        st.ingestor.metrics.limited("unauthorized");
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or invalid token");
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return refuse(&st, req, r).await;
    }
    next.run(req).await
}

async fn post_events(State(st): State<AppState>, body: Bytes) -> Response {
    // Splitting a 10 MiB body is CPU work too: off the async runtime, like validation and matching.
    let split = crate::compute::run(move || split_body(&body))
        .await
        .unwrap_or_else(|p| Err(super::BodyError::Malformed(p.to_string())));
    let (shape, items) = match split {
        Ok(x) => x,
        Err(e) => {
            st.ingestor.metrics.received(1);
            st.ingestor.metrics.rejected(1);
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": e.to_string()})),
            )
                .into_response();
        }
    };
    if items.len() > st.max_batch_events {
        st.ingestor.metrics.limited("batch_size");
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "batch has {} events, over the limit of {} (server.max_batch_events); nothing was accepted",
                items.len(),
                st.max_batch_events
            ),
        );
    }
    let items = items.into_iter().map(|i| i.map(Incoming::Text)).collect();
    let results = match st.ingestor.ingest(items).await {
        Ok(r) => r,
        Err(e) => return store_unavailable(&e),
    };
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let listed: Vec<Value> = results
        .iter()
        .enumerate()
        .map(|(index, r)| match r {
            Ok(a) if a.duplicate => json!({"index": index, "status": "duplicate", "id": a.id,
                "note": "this event id was accepted before; it is not routed again"}),
            Ok(a) => json!({"index": index, "status": "accepted", "id": a.id}),
            Err(why) => json!({"index": index, "status": "rejected", "error": why.to_string()}),
        })
        .collect();
    let status = match (shape, &results[..]) {
        (Shape::Single, [Err(Rejection::TooLarge { .. })]) => StatusCode::PAYLOAD_TOO_LARGE,
        _ if accepted == 0 => StatusCode::BAD_REQUEST,
        _ => StatusCode::ACCEPTED,
    };
    let body =
        json!({"accepted": accepted, "rejected": results.len() - accepted, "results": listed});
    (status, axum::Json(body)).into_response()
}

async fn readyz(State(st): State<AppState>) -> Response {
    let rules = st.ingestor.router.current().len();
    match st.ingestor.store.depth().await {
        Ok(depth) => (
            StatusCode::OK,
            axum::Json(json!({"store": "ok", "rules": rules, "queue_depth": depth})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"store": e.to_string(), "rules": rules})),
        )
            .into_response(),
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    let depth = st.ingestor.store.depth().await.ok();
    let io = Some(st.ingestor.store.io_stats());
    let text = st.ingestor.metrics.render(depth, io);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `POST /`: the AWS JSON 1.1 door ([`super::aws`]).
async fn aws_json(
    State(st): State<AppState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = super::aws::Signed {
        keys: &st.aws_keys,
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
    };
    super::aws::handle(&st.ingestor, request, &headers, &body).await
}

/// `POST /reports`: scanner reports ([`super::reports::door`]).
async fn post_reports(State(st): State<AppState>, uri: axum::http::Uri, body: Bytes) -> Response {
    super::reports::door::handle(&st.ingestor, uri.query(), &body).await
}

/// `POST /sns`: SNS subscriptions ([`super::sns::door`]).
async fn post_sns(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let ok = authorized(&st, &headers);
    super::sns::door::handle(&st.ingestor, &st.sns, &headers, ok, &body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_bearer_and_sigv4() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(presented(&h, false).as_deref(), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=KEY123/20260101/us-east-1/events/aws4_request, SignedHeaders=host, Signature=x"
                .parse()
                .unwrap(),
        );
        assert_eq!(presented(&h, false).as_deref(), Some("KEY123"));
        h.insert(header::AUTHORIZATION, "Basic Zm9v".parse().unwrap());
        assert_eq!(presented(&h, false), None, "no colon");
        // "sns:tok-1", as SNS sends https://sns:tok-1@host/sns
        h.insert(header::AUTHORIZATION, "Basic c25zOnRvay0x".parse().unwrap());
        assert_eq!(presented(&h, false).as_deref(), Some("tok-1"));
        h.insert(header::AUTHORIZATION, "Digest x".parse().unwrap());
        assert_eq!(presented(&h, false), None);
        // The scheme is case-insensitive, and any whitespace separates it.
        for v in ["bearer abc", "BEARER abc", "Bearer   abc ", "bEaReR\tabc"] {
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            assert_eq!(presented(&h, false).as_deref(), Some("abc"), "{v:?}");
        }
        h.insert(header::AUTHORIZATION, "basic c25zOnRvay0x".parse().unwrap());
        assert_eq!(presented(&h, false).as_deref(), Some("tok-1"));
    }
}
