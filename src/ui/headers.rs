//! Security headers on every UI page, asset and admin API answer.
//!
//! - `Content-Security-Policy`: scripts only from this server's own files (no inline script, no
//!   `eval`), no plugins, no `<base>`, forms post only here, the pages cannot be framed
//!   (`frame-ancestors 'none'`), and fetches go only to this server. Inline *styles* are allowed
//!   because the email preview is the email's own HTML, drawn in a sandboxed `srcdoc` frame (no
//!   scripts, no same-origin access) that inherits this policy; images are limited to this server and
//!   `data:` URLs, so an event cannot make the page load anything from elsewhere.
//! - `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` (older browsers), `Referrer-Policy:
//!   same-origin` (no address of ours reaches another site, e.g. through a link to the ECR console;
//!   `no-referrer` would also blank the `Origin` of our own form posts, which the cross-site check
//!   reads), and `Cache-Control: no-store` unless the handler chose a caching policy (assets).

use axum::http::{HeaderValue, header};
use axum::response::Response;

/// The Content-Security-Policy of the UI.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-src 'self'; \
frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Adds the headers to a response (an axum `map_response` function).
pub async fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}
