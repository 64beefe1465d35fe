//! A real HTTP server on loopback standing in for a vendor API (PagerDuty, Opsgenie, a Teams
//! workflow): it records every request and answers from a script (status, headers, body), then with
//! its default answer. Also the vendors' published payload rules as JSON Schemas
//! (tests/fixtures/vendors, tests/fixtures/adaptive-card).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::Value;

use crate::daemon::{Daemon, PATIENCE};

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub fn new(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
        }
    }

    pub fn header(mut self, k: &'static str, v: &str) -> Reply {
        self.headers.push((k, v.to_owned()));
        self
    }
}

/// One request received, with the answer given.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
    pub status: u16,
    pub at: Instant,
}

impl Call {
    pub fn header(&self, k: &str) -> String {
        self.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

#[derive(Clone)]
pub struct Vendor {
    pub addr: SocketAddr,
    calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    default: Arc<Mutex<Reply>>,
}

impl Vendor {
    /// Starts on 127.0.0.1:0, answering `default` once the script is used up.
    pub async fn start(default: Reply) -> Vendor {
        let v = Vendor {
            addr: "127.0.0.1:0".parse().unwrap(),
            calls: Arc::default(),
            script: Arc::default(),
            default: Arc::new(Mutex::new(default)),
        };
        let state = v.clone();
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: HeaderMap,
                  body: axum::body::Bytes| {
                let st = state.clone();
                async move {
                    let reply = st
                        .script
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or_else(|| st.default.lock().unwrap().clone());
                    let raw = body.to_vec();
                    st.calls.lock().unwrap().push(Call {
                        method: method.to_string(),
                        path: uri.path().to_owned(),
                        query: uri.query().map(str::to_owned),
                        headers,
                        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
                        raw,
                        status: reply.status,
                        at: Instant::now(),
                    });
                    let mut h = HeaderMap::new();
                    h.insert("content-type", HeaderValue::from_static("application/json"));
                    for (k, val) in &reply.headers {
                        h.insert(
                            HeaderName::from_static(k),
                            HeaderValue::from_str(val).unwrap(),
                        );
                    }
                    (StatusCode::from_u16(reply.status).unwrap(), h, reply.body)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Vendor { addr, ..v }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Queues answers for the next requests.
    pub fn then(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    pub fn answer(&self, default: Reply) {
        *self.default.lock().unwrap() = default;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_calls(&self, n: usize, daemon: &Daemon) -> Vec<Call> {
        let start = Instant::now();
        loop {
            let calls = self.calls();
            if calls.len() >= n {
                return calls;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "vendor got {} of {n} requests:\n{}",
                calls.len(),
                daemon.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A JSON Schema from the fixtures, compiled.
pub fn schema(path: &str) -> jsonschema::Validator {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Asserts that `value` is valid under `schema`, listing every violation.
pub fn assert_valid(schema: &jsonschema::Validator, value: &Value, what: &str) {
    let errors: Vec<String> = schema
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{value:#}");
}

/// PagerDuty's documented answer to an accepted event.
pub fn pagerduty_accepted() -> Reply {
    Reply::new(
        202,
        r#"{"status":"success","message":"Event processed","dedup_key":"k"}"#,
    )
}

/// Opsgenie's documented answer to an accepted request.
pub fn opsgenie_accepted() -> Reply {
    Reply::new(
        202,
        r#"{"result":"Request will be processed","took":0.107,"requestId":"43a29c5c-3dbf-4fa4-9c26-f4f71023e120"}"#,
    )
}
