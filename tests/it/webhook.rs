//! The webhook target against a real HTTP receiver: Standard Webhooks signature recomputed from the
//! bytes received, the idempotency header, configured method and headers, and a transformed input
//! (a string template) sent as text.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::json;

use crate::daemon::{Home, Receiver};

const SECRET_B64: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhook_and_transformed_text() {
    let rx = Receiver::start().await;
    let config = format!(
        "[targets.signed]\ntype = \"webhook\"\nurl = \"{url}\"\nmethod = \"PUT\"\nsecret = \"whsec_{SECRET_B64}\"\n\
         headers = {{ X-Team = \"platform\" }}\n\
         [targets.text]\ntype = \"webhook\"\nurl = \"{url}\"\n",
        url = rx.url()
    );
    let rule = json!({"name": "ci", "event_pattern": {"source": ["ci"]}, "targets": [
        "signed",
        {"target": "text", "input_transformer": {
            "input_paths_map": {"n": "$.detail.n", "src": "$.source"},
            "input_template": "\"<src> sent n=<n> via <aws.events.rule-name>\""}}
    ]});
    let home = Home::new(&config, &[("r.json", &rule.to_string())]);
    let d = home.start();
    d.post(crate::daemon::event("e-sign", "ci").to_string())
        .await;
    let hits = rx.wait_hits(2, &d).await;
    let signed = hits.iter().find(|h| h.method == "PUT").expect("the PUT");
    let text = hits.iter().find(|h| h.method == "POST").expect("the POST");

    let id = scanbridge::delivery_id("e-sign", "ci", "signed");
    let hv = |h: &crate::daemon::Hit, k: &str| h.headers[k].to_str().unwrap().to_owned();
    assert_eq!(hv(signed, "idempotency-key"), id);
    assert_eq!(hv(signed, "webhook-id"), id);
    assert_eq!(hv(signed, "x-team"), "platform");
    assert_eq!(hv(signed, "content-type"), "application/json");
    let ts: u64 = hv(signed, "webhook-timestamp").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(ts) < 60, "timestamp {ts} vs now {now}");
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET_B64)
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&signed.raw);
    let want = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(hv(signed, "webhook-signature"), want);
    assert_eq!(signed.body["id"], "e-sign", "the event itself");

    assert_eq!(hv(text, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(String::from_utf8_lossy(&text.raw), "ci sent n=1 via ci");
    assert!(
        !text.headers.contains_key("webhook-signature"),
        "unsigned target"
    );
    d.stop();
}
