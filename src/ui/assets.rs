//! The UI's files, embedded in the binary: the pages, their stylesheet and scripts (plain HTML, CSS and
//! JavaScript modules, no framework and no build step), and the sample events the sandbox offers.
//!
//! Promises: everything is compiled in (`include_str!`), so the binary serves the UI with no files
//! beside it; each file is served with its exact content type, an ETag of its content, and
//! `Cache-Control: no-cache` (the browser revalidates, so an upgrade is seen at once).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// The files under `/ui/assets/`.
pub const ASSETS: &[Asset] = &[
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("common.js", JS),
    asset!("sandbox.js", JS),
    asset!("console.js", JS),
    asset!("slack.js", JS),
    asset!("icon.svg", "image/svg+xml"),
];

/// The pages.
pub const SANDBOX_HTML: &str = include_str!("assets/sandbox.html");
pub const CONSOLE_HTML: &str = include_str!("assets/console.html");
pub const LOGIN_HTML: &str = include_str!("assets/login.html");

/// The sample events the sandbox offers: (file name, what it shows, the event).
pub const SAMPLES: &[(&str, &str, &str)] = &[
    (
        "ecr-image-scan-critical.json",
        "ECR scan: 2 CRITICAL, 7 HIGH",
        include_str!("../../tests/fixtures/ecr-image-scan-critical.json"),
    ),
    (
        "ecr-image-scan-high-only.json",
        "ECR scan: HIGH only (no CRITICAL key)",
        include_str!("../../tests/fixtures/samples/ecr-image-scan-high-only.json"),
    ),
    (
        "ecr-image-scan-clean.json",
        "ECR scan: no findings",
        include_str!("../../tests/fixtures/samples/ecr-image-scan-clean.json"),
    ),
    (
        "ecr-image-scan-failed.json",
        "ECR scan: FAILED",
        include_str!("../../tests/fixtures/samples/ecr-image-scan-failed.json"),
    ),
    (
        "inspector2-scan.json",
        "Inspector2 scan (enhanced scanning)",
        include_str!("../../tests/fixtures/samples/inspector2-scan.json"),
    ),
    (
        "inspector2-finding.json",
        "Inspector2 finding: one CVE",
        include_str!("../../tests/fixtures/samples/inspector2-finding.json"),
    ),
    (
        "ecr-image-action-push.json",
        "ECR image push",
        include_str!("../../tests/fixtures/samples/ecr-image-action-push.json"),
    ),
];

fn etag(body: &str) -> String {
    let d = Sha256::digest(body.as_bytes());
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Serves `body` as `content_type`, answering 304 when the browser already has it.
pub fn serve(request: &HeaderMap, content_type: &'static str, body: &'static str) -> Response {
    let tag = etag(body);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    r
}

/// The asset called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_events_and_pages_reference_only_embedded_assets() {
        for (name, _, text) in SAMPLES {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            assert!(v["detail-type"].is_string(), "{name}");
        }
        for page in [SANDBOX_HTML, CONSOLE_HTML, LOGIN_HTML] {
            for part in page.split("/ui/assets/").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| !matches!(c, '"' | '\'' | '?'))
                    .collect();
                assert!(find(&name).is_some(), "{name} is not embedded");
            }
            assert!(!page.contains("<script>"), "no inline scripts");
            assert!(
                !page.contains("http://") && !page.contains("https://"),
                "no CDN"
            );
        }
    }

    #[test]
    fn etags_revalidate() {
        let a = find("style.css").unwrap();
        let first = serve(&HeaderMap::new(), a.content_type, a.body);
        assert_eq!(first.status(), StatusCode::OK);
        let tag = first.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, tag);
        assert_eq!(
            serve(&h, a.content_type, a.body).status(),
            StatusCode::NOT_MODIFIED
        );
    }
}
