//! The SNS subscription endpoint through the real binary, against a real loopback HTTPS server that
//! stands in for AWS (`sns.<region>.amazonaws.com` serving the signing certificate and answering
//! SubscribeURL, and the Amazon Trust Services host serving the issuer certificate). The test makes
//! its own CA (root → intermediate → RSA signing certificate, served alone as SNS serves it, with an
//! Authority Information Access URL to its issuer) and signs AWS's example messages
//! (tests/fixtures/sns) exactly as SNS does, with SignatureVersion 1 (SHA1withRSA) and 2
//! (SHA256withRSA). The daemon trusts that CA and that host only through the test-only
//! `[sns] test_ca_file` and `test_cert_host`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{Value, json};

use crate::daemon::{Daemon, Home, Receiver, rule};

const TOPIC: &str = "arn:aws:sns:us-west-2:123456789012:MyTopic";

/// DER of an AuthorityInfoAccess value with one caIssuers URI (short lengths).
fn aia(uri: &str) -> Vec<u8> {
    let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02];
    let mut desc = vec![0x30, (oid.len() + 2 + uri.len()) as u8];
    desc.extend_from_slice(&oid);
    desc.extend_from_slice(&[0x86, uri.len() as u8]);
    desc.extend_from_slice(uri.as_bytes());
    let mut seq = vec![0x30, desc.len() as u8];
    seq.extend_from_slice(&desc);
    seq
}

fn ca(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

/// The loopback stand-in for AWS, and the keys of the test CA.
struct FakeAws {
    addr: SocketAddr,
    /// Every request's path and query, in order.
    requests: Arc<Mutex<Vec<String>>>,
    signing_key: rsa::RsaPrivateKey,
    root_pem: String,
}

impl FakeAws {
    async fn start() -> FakeAws {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let root_key = KeyPair::generate().unwrap();
        let root = ca("scanbridge test root").self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(ca("scanbridge test root"), root_key);
        let int_key = KeyPair::generate().unwrap();
        let int = ca("scanbridge test intermediate")
            .signed_by(&int_key, &root_issuer)
            .unwrap();
        let int_issuer = Issuer::new(ca("scanbridge test intermediate"), int_key);
        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let mut lp = CertificateParams::new(vec!["sns.amazonaws.com".to_owned()]).unwrap();
        lp.distinguished_name
            .push(DnType::CommonName, "sns.amazonaws.com");
        lp.custom_extensions.push(CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 5, 5, 7, 1, 1],
            aia(&format!("https://{addr}/issuer.cer")),
        ));
        let leaf = lp.signed_by(&leaf_key, &int_issuer).unwrap();
        let tls_key = KeyPair::generate().unwrap();
        let tls_cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&tls_key, &root_issuer)
            .unwrap();

        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let leaf_pem = leaf.pem();
        let int_der = int.der().to_vec();
        let seen = requests.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let (leaf_pem, int_der, seen) = (leaf_pem.clone(), int_der.clone(), seen.clone());
            async move {
                seen.lock().unwrap().push(uri.to_string());
                match uri.path() {
                    // SNS serves the signing certificate alone, without its issuer.
                    "/SimpleNotificationService-test.pem" => leaf_pem.into_bytes(),
                    "/issuer.cer" => int_der,
                    _ => b"<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>arn:aws:sns:us-west-2:123456789012:MyTopic:1</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>".to_vec(),
                }
            }
        });
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![tls_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(tls_key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            tower::ServiceExt::oneshot(app.clone(), req)
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        FakeAws {
            addr,
            requests,
            signing_key: rsa::RsaPrivateKey::from_pkcs8_der(&leaf_key.serialize_der()).unwrap(),
            root_pem: root.pem(),
        }
    }

    fn cert_url(&self) -> String {
        format!("https://{}/SimpleNotificationService-test.pem", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// AWS's canonical string of `m` (written here from AWS's documentation, not scanbridge's code).
    fn string_to_sign(m: &Value) -> String {
        let keys: &[&str] = if m["Type"] == "Notification" {
            &[
                "Message",
                "MessageId",
                "Subject",
                "Timestamp",
                "TopicArn",
                "Type",
            ]
        } else {
            &[
                "Message",
                "MessageId",
                "SubscribeURL",
                "Timestamp",
                "Token",
                "TopicArn",
                "Type",
            ]
        };
        keys.iter()
            .filter_map(|k| m[*k].as_str().map(|v| format!("{k}\n{v}\n")))
            .collect()
    }

    /// Points `m` at this server and signs it as SNS does for `version`.
    fn sign(&self, mut m: Value, version: &str) -> Value {
        m["SigningCertURL"] = json!(self.cert_url());
        m["SignatureVersion"] = json!(version);
        let data = Self::string_to_sign(&m);
        let key = self.signing_key.clone();
        let sig = match version {
            "1" => rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(key)
                .sign(data.as_bytes())
                .to_vec(),
            _ => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key)
                .sign(data.as_bytes())
                .to_vec(),
        };
        m["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(sig));
        m
    }
}

fn aws_example(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sns")
        .join(name);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn sample(name: &str) -> String {
    std::fs::read_to_string(crate::support::sample(name)).unwrap()
}

async fn post_sns(d: &Daemon, m: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(d.url("/sns"))
        .header("content-type", "text/plain; charset=UTF-8")
        .header(
            "x-amz-sns-message-type",
            m["Type"].as_str().unwrap_or("Notification"),
        );
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(m.to_string()).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn home(aws: &FakeAws, rx: &Receiver, extra: &str) -> Home {
    let r = rule(
        "from-sns",
        json!({"source": ["aws.ecr", "aws.inspector2"]}),
        &["hook"],
    );
    let h = Home::new("", &[("sns.json", &r)]);
    let ca = h.path().join("test-ca.pem");
    std::fs::write(&ca, &aws.root_pem).unwrap();
    let config = format!(
        "{}\n{}[sns]\ntopic_arns = [\"{TOPIC}\"]\ntest_ca_file = {:?}\ntest_cert_host = \"{}\"\n",
        std::fs::read_to_string(h.path().join("config.toml")).unwrap(),
        rx.target(),
        ca.display().to_string(),
        aws.addr
    );
    std::fs::write(h.path().join("config.toml"), format!("{config}{extra}")).unwrap();
    h
}

fn notification(message: &str, id: &str) -> Value {
    let mut m = aws_example("notification.json");
    m["Message"] = json!(message);
    m["MessageId"] = json!(id);
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_confirms_allowed_topics_ingests_signed_notifications_and_refuses_bad_signatures() {
    let aws = FakeAws::start().await;
    let rx = Receiver::start().await;
    let home = home(&aws, &rx, "");
    let d = home.start();
    assert!(
        d.logs().contains("TEST-ONLY setting sns.test_ca_file"),
        "{}",
        d.logs()
    );

    // SubscriptionConfirmation for an allowed topic: signed (v1, as AWS's example), then confirmed by
    // visiting SubscribeURL.
    let mut c = aws_example("subscription-confirmation.json");
    let token = c["Token"].as_str().unwrap().to_owned();
    c["SubscribeURL"] = json!(format!(
        "https://{}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}",
        aws.addr
    ));
    let (status, answer) = post_sns(&d, &aws.sign(c.clone(), "1"), &[]).await;
    assert_eq!(status, 200, "{answer}\n{}", d.logs());
    assert_eq!(answer["status"], "confirmed");
    let visits: Vec<String> = aws
        .requests()
        .into_iter()
        .filter(|r| r.contains("ConfirmSubscription"))
        .collect();
    assert_eq!(visits.len(), 1, "{visits:?}");
    assert!(visits[0].contains(&token));
    let reqs = aws.requests();
    assert!(
        reqs.iter().any(|r| r == "/issuer.cer"),
        "the issuer was fetched from AIA: {reqs:?}"
    );

    // A confirmation for a topic not in [sns] topic_arns, properly signed: refused, not visited.
    let mut other = c.clone();
    other["TopicArn"] = json!("arn:aws:sns:us-west-2:123456789012:NotOurs");
    let (status, answer) = post_sns(&d, &aws.sign(other, "2"), &[]).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("not in [sns] topic_arns")
    );
    assert_eq!(
        aws.requests()
            .iter()
            .filter(|r| r.contains("ConfirmSubscription"))
            .count(),
        1
    );

    // Signed notifications holding EventBridge events, both signature versions: ingested and routed.
    let scan = sample("ecr-image-scan-critical.json");
    let finding = sample("inspector2-finding.json");
    let (s2, a2) = post_sns(&d, &aws.sign(notification(&scan, "msg-v2"), "2"), &[]).await;
    assert_eq!(s2, 202, "{a2}\n{}", d.logs());
    let (s1, a1) = post_sns(&d, &aws.sign(notification(&finding, "msg-v1"), "1"), &[]).await;
    assert_eq!(s1, 202, "{a1}");
    let hits = rx.wait_hits(2, &d).await;
    let scan_id = serde_json::from_str::<Value>(&scan).unwrap()["id"].clone();
    let finding_id = serde_json::from_str::<Value>(&finding).unwrap()["id"].clone();
    assert!(
        hits.iter()
            .any(|h| h.body["id"] == scan_id && h.body["detail-type"] == "ECR Image Scan")
    );
    assert!(hits.iter().any(|h| h.body["id"] == finding_id));
    assert_eq!(
        aws.requests()
            .iter()
            .filter(|r| r.ends_with(".pem"))
            .count(),
        1,
        "the signing certificate is cached"
    );

    // Bad signatures: a tampered Message, a signature of the other version, a foreign cert host.
    let accepted = d.metric("scanbridge_events_accepted_total").await;
    let mut event: Value = serde_json::from_str(&scan).unwrap();
    event["id"] = json!("forged-1");
    let mut tampered = aws.sign(notification(&scan, "msg-forged"), "2");
    tampered["Message"] = json!(event.to_string());
    let (status, answer) = post_sns(&d, &tampered, &[]).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("signature does not match"),
        "{answer}"
    );
    let mut wrong_version = aws.sign(notification(&event.to_string(), "msg-forged-2"), "1");
    wrong_version["SignatureVersion"] = json!("2");
    assert_eq!(post_sns(&d, &wrong_version, &[]).await.0, 403);
    let mut foreign = aws.sign(notification(&event.to_string(), "msg-forged-3"), "2");
    foreign["SigningCertURL"] = json!("https://evil.example.org/SimpleNotificationService-x.pem");
    let (status, answer) = post_sns(&d, &foreign, &[]).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("SigningCertURL"),
        "{answer}"
    );
    let mut unsigned = notification(&event.to_string(), "msg-forged-4");
    unsigned["SigningCertURL"] = json!(aws.cert_url());
    assert_eq!(
        post_sns(&d, &unsigned, &[]).await.0,
        403,
        "AWS's placeholder signature"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        d.metric("scanbridge_events_accepted_total").await,
        accepted,
        "nothing stored"
    );
    assert!(rx.hits().iter().all(|h| h.body["id"] != "forged-1"));
    assert_eq!(rx.hits().len(), 2);

    // A Notification that is not an event: 400, nothing stored. An UnsubscribeConfirmation: 200.
    let (status, _) = post_sns(&d, &aws.sign(aws_example("notification.json"), "2"), &[]).await;
    assert_eq!(status, 400, "AWS's \"Hello world!\" is no event");
    let mut unsub = c.clone();
    unsub["Type"] = json!("UnsubscribeConfirmation");
    let (status, answer) = post_sns(&d, &aws.sign(unsub, "2"), &[]).await;
    assert_eq!(
        (status, answer["status"].clone()),
        (200, json!("unsubscribed"))
    );
    assert_eq!(d.metric("scanbridge_events_accepted_total").await, accepted);

    // Raw message delivery: the bare event, with SNS's headers, from an allowed topic only.
    let mut raw: Value = serde_json::from_str(&scan).unwrap();
    raw["id"] = json!("raw-1");
    let raw_headers = [
        ("x-amz-sns-rawdelivery", "true"),
        ("x-amz-sns-topic-arn", TOPIC),
        ("x-amz-sns-message-id", "m-raw"),
    ];
    let (status, answer) = post_sns(&d, &raw, &raw_headers).await;
    assert_eq!(status, 202, "{answer}");
    rx.wait_hits(3, &d).await;
    let other_topic = [
        ("x-amz-sns-rawdelivery", "true"),
        (
            "x-amz-sns-topic-arn",
            "arn:aws:sns:us-west-2:123456789012:NotOurs",
        ),
    ];
    raw["id"] = json!("raw-2");
    assert_eq!(post_sns(&d, &raw, &other_topic).await.0, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_delivery_needs_the_ingest_token_when_tokens_are_set() {
    let aws = FakeAws::start().await;
    let rx = Receiver::start().await;
    let home = home(&aws, &rx, "\n[server]\ntoken = \"tok-sns\"\n");
    let d = home.start();
    let mut raw: Value = serde_json::from_str(&sample("ecr-image-scan-critical.json")).unwrap();
    raw["id"] = json!("raw-auth");
    let headers = [
        ("x-amz-sns-rawdelivery", "true"),
        ("x-amz-sns-topic-arn", TOPIC),
    ];
    let resp = reqwest::Client::new()
        .post(d.url("/sns"))
        .header(headers[0].0, headers[0].1)
        .header(headers[1].0, headers[1].1)
        .body(raw.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Basic realm=\"scanbridge\""
    );
    // As SNS sends it for https://sns:tok-sns@host/sns.
    let resp = reqwest::Client::new()
        .post(d.url("/sns"))
        .basic_auth("sns", Some("tok-sns"))
        .header(headers[0].0, headers[0].1)
        .header(headers[1].0, headers[1].1)
        .body(raw.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let hits = rx.wait_hits(1, &d).await;
    assert_eq!(hits[0].body["id"], "raw-auth");
    // Signed messages need no token: AWS's signature authenticates them.
    let m = aws.sign(
        notification(&sample("inspector2-finding.json"), "m-signed"),
        "2",
    );
    assert_eq!(post_sns(&d, &m, &[]).await.0, 202);
}
