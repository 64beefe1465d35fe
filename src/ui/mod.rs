//! The browser UI under `/ui`: the pattern sandbox, the on-call console, and signing in.
//!
//! The pages are static files ([`assets`]) whose scripts draw everything from the admin API
//! ([`crate::admin`], `/api/v1/...`); this module serves them and owns the browser session
//! ([`session`]) and the security headers ([`headers`]). Routes:
//! - `GET /ui` → the console (the sandbox when run as `scanbridge sandbox`);
//! - `GET /ui/sandbox`, `GET /ui/console`: the pages (sign-in first when tokens are configured);
//! - `GET /ui/login`, `POST /ui/login` (form field `token`), `POST /ui/logout` (CSRF token needed);
//! - `GET /ui/session`: `{"mode", "auth_required", "signed_in", "csrf"}` for the scripts;
//! - `GET /ui/assets/NAME`: the embedded stylesheet, scripts and icon.
//!
//! Promises: the pages never show a secret (tokens, target URLs, header values: the API does not
//! return them); every value drawn from an event is put in the page as text (`textContent`), never
//! as HTML; the email preview is drawn in a sandboxed frame without scripts. Sign-in attempts go
//! through the same per-client rate limit as ingest.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::ingest::rate::RateLimiter;
use crate::ui::access::{Access, refuse_cross_site};

pub mod access;
pub mod assets;
pub mod headers;
pub mod session;

/// What the server around the UI is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `scanbridge serve`: sandbox and console.
    Daemon,
    /// `scanbridge sandbox`: the sandbox alone, no store.
    Sandbox,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Daemon => "daemon",
            Mode::Sandbox => "sandbox",
        }
    }

    fn home(self) -> &'static str {
        match self {
            Mode::Daemon => "/ui/console",
            Mode::Sandbox => "/ui/sandbox",
        }
    }
}

/// What the UI handlers share.
#[derive(Clone)]
pub struct UiState {
    pub mode: Mode,
    pub access: Arc<Access>,
    /// The per-client limit of ingest, applied to sign-in attempts.
    pub limiter: Arc<RateLimiter>,
}

/// The `/ui` routes, with the security headers.
pub fn router(state: UiState) -> Router {
    Router::new()
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/sandbox", get(sandbox_page))
        .route("/ui/console", get(console_page))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/session", get(session_info))
        .route("/ui/assets/{name}", get(asset))
        .layer(middleware::map_response(headers::secure))
        .with_state(state)
}

async fn home(State(st): State<UiState>) -> Redirect {
    Redirect::to(st.mode.home())
}

fn html(body: impl Into<String>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// The page, or a redirect to sign in when a session is needed and missing.
fn page(st: &UiState, headers: &HeaderMap, name: &str, body: &'static str) -> Response {
    if st.access.required() && st.access.session(headers).is_none() {
        return Redirect::to(&format!("/ui/login?next={name}")).into_response();
    }
    html(body)
}

async fn sandbox_page(State(st): State<UiState>, headers: HeaderMap) -> Response {
    page(&st, &headers, "sandbox", assets::SANDBOX_HTML)
}

async fn console_page(State(st): State<UiState>, headers: HeaderMap) -> Response {
    if st.mode == Mode::Sandbox {
        return Redirect::to("/ui/sandbox").into_response();
    }
    page(&st, &headers, "console", assets::CONSOLE_HTML)
}

#[derive(Deserialize)]
struct Next {
    #[serde(default)]
    next: String,
}

/// The sign-in page; `next` (a page name, nothing else) is carried through the form.
fn login_html(st: &UiState, next: &str, notice: &str) -> String {
    let next = match next_page(st, next) {
        "/ui/sandbox" => "sandbox",
        _ => "console",
    };
    assets::LOGIN_HTML
        .replace("{{next}}", next)
        .replace("<!--notice-->", notice)
}

async fn login_page(State(st): State<UiState>, Query(q): Query<Next>) -> Response {
    if !st.access.required() {
        return Redirect::to(st.mode.home()).into_response();
    }
    html(login_html(&st, &q.next, ""))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

/// Where to go after signing in: only our own pages (no open redirect).
fn next_page(st: &UiState, next: &str) -> &'static str {
    match next {
        "sandbox" => "/ui/sandbox",
        "console" if st.mode == Mode::Daemon => "/ui/console",
        _ => st.mode.home(),
    }
}

/// The sign-in page again, with `why` (fixed text, never the request's) above the form.
fn login_refused(st: &UiState, next: &str, status: StatusCode, why: &'static str) -> Response {
    let notice = format!("<p class=\"notice error\" data-testid=\"login-error\">{why}</p>");
    (status, html(login_html(st, next, &notice))).into_response()
}

async fn login(
    State(st): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if refuse_cross_site(&headers).is_err() {
        return login_refused(
            &st,
            &form.next,
            StatusCode::FORBIDDEN,
            "Cross-site sign-in refused.",
        );
    }
    if st.limiter.check(peer.ip()).is_err() {
        return login_refused(
            &st,
            &form.next,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts; wait a moment.",
        );
    }
    let Some(id) = st.access.sessions.sign_in(&st.access.tokens, &form.token) else {
        tracing::warn!("UI sign-in refused: unknown token");
        return login_refused(
            &st,
            &form.next,
            StatusCode::UNAUTHORIZED,
            "That token is not accepted.",
        );
    };
    tracing::info!("UI sign-in");
    let mut r = Redirect::to(next_page(&st, &form.next)).into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(Some(&id), st.access.tls)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout(State(st): State<UiState>, headers: HeaderMap) -> Response {
    if let Err(why) = st.access.check(&Method::POST, &headers) {
        return (why.status(), axum::Json(json!({"error": why.to_string()}))).into_response();
    }
    if let Some(c) = session::cookie_value(&headers) {
        st.access.sessions.sign_out(c);
    }
    let mut r = axum::Json(json!({"signed_out": true})).into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(None, st.access.tls)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn session_info(State(st): State<UiState>, headers: HeaderMap) -> Response {
    let current = st.access.session(&headers);
    axum::Json(json!({
        "mode": st.mode.as_str(),
        "auth_required": st.access.required(),
        "signed_in": current.is_some(),
        "csrf": current.map(|c| c.csrf),
    }))
    .into_response()
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match assets::find(&name) {
        Some(a) => assets::serve(&headers, a.content_type, a.body),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}
