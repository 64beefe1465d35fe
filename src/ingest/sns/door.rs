//! `POST /sns`: the HTTP door of the SNS subscription endpoint.
//!
//! Order of checks, cheapest and most telling first: the body must be an SNS message (400), of an
//! allowed topic (403, before any certificate is fetched), with a valid signature (403; 503 when AWS
//! cannot be reached, so SNS retries). Then:
//! - `SubscriptionConfirmation`: the `SubscribeURL` (AWS's form only) is visited; 200 once AWS answered;
//! - `Notification`: the `Message` is ingested as the EventBridge event it holds (an event without `id`
//!   gets the SNS `MessageId`, so SNS's retries stay one event); a Message that is a scanner report
//!   becomes its Image Scan event; anything else is a 400. 202 only once durable;
//! - `UnsubscribeConfirmation`: acknowledged (200), nothing stored;
//! - raw message delivery (`x-amz-sns-rawdelivery: true`): SNS sends the bare message, unsigned, so it
//!   must carry an accepted ingest token (Basic auth `user:TOKEN` in the subscription URL, or Bearer)
//!   whenever tokens are configured — 401 with a Basic challenge otherwise — and its
//!   `x-amz-sns-topic-arn` header must name an allowed topic.
//!
//! Nothing is stored for a message that fails a check.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::verify::Verifier;
use super::{Kind, Message, SnsConfig, SnsError};
use crate::ingest::Ingestor;
use crate::ingest::reports::{self, Converted};

/// The endpoint's configuration and certificate verifier.
#[derive(Debug)]
pub struct Sns {
    pub config: SnsConfig,
    pub verifier: Verifier,
}

impl Sns {
    pub fn new(config: &SnsConfig) -> Result<Sns, crate::config::ConfigError> {
        Ok(Sns {
            verifier: Verifier::new(config)?,
            config: config.clone(),
        })
    }
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn refuse(ingestor: &Ingestor, e: &SnsError) -> Response {
    ingestor.metrics.limited(match e.status() {
        400 => "sns_malformed",
        503 => "sns_unavailable",
        _ => "sns_forbidden",
    });
    tracing::warn!(error = %e, "SNS message refused");
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN);
    let mut r = answer(status, json!({"error": e.to_string()}));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
    }
    r
}

/// The event text an SNS message body holds: an EventBridge event (given `message_id` as its id when it
/// has none), or the event a scanner report becomes.
pub fn event_of(
    message: &str,
    message_id: Option<&str>,
    envelope: &crate::event::EnvelopeRules,
) -> Result<Value, String> {
    if let Ok(Value::Object(mut ev)) = crate::strict_json::from_str(message)
        && ["source", "detail-type", "detail"]
            .iter()
            .all(|k| ev.contains_key(*k))
    {
        if let Some(id) = message_id.filter(|_| matches!(ev.get("id"), None | Some(Value::Null))) {
            ev.insert("id".into(), json!(id));
        }
        return Ok(Value::Object(ev));
    }
    match reports::convert(message.as_bytes(), None, envelope) {
        Ok(Converted::Event { event, .. }) => Ok(event),
        Ok(Converted::Ignored(why)) => Err(why),
        Err(_) => Err(
            "the message is neither an EventBridge event (source, detail-type, detail) nor a scanner report"
                .into(),
        ),
    }
}

async fn ingest(ingestor: &Ingestor, event: Result<Value, String>, topic: &str) -> Response {
    let event = match event {
        Ok(e) => e,
        Err(why) => {
            ingestor.metrics.received(1);
            ingestor.metrics.rejected(1);
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": why, "topic": topic}),
            );
        }
    };
    let results = match ingestor
        .ingest(vec![Ok(crate::event::Incoming::Built(event))])
        .await
    {
        Ok(r) => r,
        Err(e) => return crate::ingest::answer::store_unavailable(&e),
    };
    match &results[0] {
        Ok(a) => answer(
            StatusCode::ACCEPTED,
            json!({"status": if a.duplicate { "duplicate" } else { "accepted" }, "id": a.id, "topic": topic}),
        ),
        Err(why) => answer(
            StatusCode::BAD_REQUEST,
            json!({"error": why.to_string(), "topic": topic}),
        ),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Answers one `POST /sns`; `authorized` says whether the request carried an accepted ingest token
/// (or none is required), which only raw deliveries need.
pub async fn handle(
    ingestor: &Ingestor,
    sns: &Sns,
    headers: &HeaderMap,
    authorized: bool,
    body: &[u8],
) -> Response {
    let raw = header_str(headers, "x-amz-sns-rawdelivery")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if raw {
        let topic = header_str(headers, "x-amz-sns-topic-arn").unwrap_or_default();
        if !sns.config.allows(topic) {
            return refuse(
                ingestor,
                &SnsError::TopicNotAllowed(topic.chars().take(256).collect()),
            );
        }
        if !authorized {
            ingestor.metrics.limited("unauthorized");
            let mut r = answer(
                StatusCode::UNAUTHORIZED,
                json!({"error": "raw message delivery is unsigned: it needs an ingest token (https://user:TOKEN@host/sns)"}),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"scanbridge\""),
            );
            return r;
        }
        let text = String::from_utf8_lossy(body);
        let event = event_of(
            &text,
            header_str(headers, "x-amz-sns-message-id"),
            &ingestor.envelope,
        );
        return ingest(ingestor, event, topic).await;
    }
    let m = match Message::parse(body) {
        Ok(m) => m,
        Err(e) => return refuse(ingestor, &e),
    };
    if !sns.config.allows(&m.topic_arn) {
        return refuse(
            ingestor,
            &SnsError::TopicNotAllowed(m.topic_arn.chars().take(256).collect()),
        );
    }
    if let Err(e) = sns.verifier.verify(&m).await {
        return refuse(ingestor, &e);
    }
    match m.kind {
        Kind::SubscriptionConfirmation => {
            let url = m.subscribe_url.as_deref().unwrap_or_default();
            match sns.verifier.confirm(url).await {
                Ok(()) => {
                    tracing::info!(topic = %m.topic_arn, "SNS subscription confirmed");
                    answer(
                        StatusCode::OK,
                        json!({"status": "confirmed", "topic": m.topic_arn}),
                    )
                }
                Err(e) => refuse(ingestor, &e),
            }
        }
        Kind::UnsubscribeConfirmation => {
            tracing::info!(topic = %m.topic_arn, "SNS subscription ended (UnsubscribeConfirmation)");
            answer(
                StatusCode::OK,
                json!({"status": "unsubscribed", "topic": m.topic_arn}),
            )
        }
        Kind::Notification => {
            let event = event_of(&m.message, Some(&m.message_id), &ingestor.envelope);
            ingest(ingestor, event, &m.topic_arn).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> crate::event::EnvelopeRules {
        crate::event::EnvelopeRules {
            max_event_bytes: 262_144,
            account: "1".into(),
            region: "r".into(),
        }
    }

    #[test]
    fn messages_become_events() {
        let ev = crate::testing::sample("ecr-image-scan-critical.json").to_string();
        assert_eq!(
            event_of(&ev, Some("m-1"), &rules()).unwrap().to_string(),
            ev,
            "its own id is kept"
        );
        let no_id = r#"{"source":"aws.ecr","detail-type":"ECR Image Scan","detail":{}}"#;
        let got: Value = event_of(no_id, Some("m-1"), &rules()).unwrap();
        assert_eq!(got["id"], "m-1", "SNS retries stay one event");
        let report = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/reports/grype-image.json"),
        )
        .unwrap();
        let got: Value = event_of(&report, Some("m-2"), &rules()).unwrap();
        assert_eq!(got["source"], "scanbridge.grype");
        assert!(
            event_of("Hello world!", Some("m"), &rules())
                .unwrap_err()
                .contains("neither")
        );
    }
}
