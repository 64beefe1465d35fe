//! The one way the store commands (`silence`, `dlq`, `suppressed`, `events`, `replay`) reach a store:
//! the running daemon's admin API (`/api/v1`, [`crate::admin`]) by default, as `amtool` talks to
//! Alertmanager, or, with `--data-dir`, a data directory opened directly.
//!
//! Promises:
//! - Both ways answer with the admin API's JSON shapes (the directory's answers are built by the same
//!   functions the API's handlers use), so a command prints the same thing whichever way it went, and
//!   works on every store backend the daemon has. The archive and replays travel as the store's and
//!   [`crate::replay`]'s own types, read back into the same values either way.
//! - `--data-dir` must name a directory that already holds a store (`scanbridge.db`): nothing reads or
//!   changes an absent store into existence. The command says on stderr which store it opened.
//!   `--direct` opens the configured store the same way: SQLite's `store.data_dir`, or the
//!   `[store.jetstream]` cluster (which must hold a store of its prefix).
//! - Over the API, a refusal is one error with the daemon's reason and status (a 401 says which
//!   token variable to set); a daemon that does not answer names the URL tried and where it came from.

use std::path::{Path, PathBuf};

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::Daemon;
use super::outcome::Outcome;
use crate::alerting::silence::SilenceSpec;
use crate::replay::{ReplayError, ReplayReport, ReplayRequest};
use crate::router::Router;
use crate::store::sqlite::{DB_FILE, SqliteStore};
use crate::store::{ArchivedEvent, EventPage, EventQuery, Store, StoreError};

/// What a store command asks for: one admin API call.
#[derive(Debug, Clone)]
pub enum Op {
    /// `GET /api/v1/silences[?all=true]`.
    Silences { all: bool },
    /// `POST /api/v1/silences`.
    SilenceAdd(Box<SilenceSpec>),
    /// `POST /api/v1/silences/{id}/expire`.
    SilenceExpire(String),
    /// `GET /api/v1/deadletters`.
    DeadLetters,
    /// `GET /api/v1/deadletters/{id}`.
    DeadLetter(String),
    /// `POST /api/v1/deadletters/{id}/redrive`, or `/deadletters/redrive` for all.
    Redrive(Option<String>),
    /// `POST /api/v1/deadletters/purge`.
    Purge,
    /// `GET /api/v1/suppressed?limit=N`.
    Suppressed { limit: usize },
    /// `GET /api/v1/events?limit=N[&before=ID]`.
    Events {
        limit: usize,
        before: Option<String>,
    },
    /// `GET /api/v1/events/{id}`.
    Event(String),
    /// `GET /api/v1/archive?...`: a page of the archive.
    Archive(EventQuery),
    /// `GET /api/v1/archive/{id}`.
    Archived(String),
}

/// Why a call failed: the store (or daemon) said no (`NotFound`: an unknown id), or it could not be
/// reached or read.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Where the store commands go.
pub enum Admin {
    /// The daemon's admin API.
    Api(Daemon),
    /// A data directory opened directly (`--data-dir`).
    Dir {
        store: std::sync::Arc<dyn Store>,
        /// Where it is, for messages.
        path: String,
    },
}

/// Opens the store of `dir`, which must already hold one.
pub fn open_dir(dir: &Path) -> anyhow::Result<Admin> {
    if !dir.is_dir() {
        anyhow::bail!(
            "--data-dir {}: no such directory (the daemon's store.data_dir; without --data-dir the command asks the running daemon)",
            dir.display()
        );
    }
    let db = dir.join(DB_FILE);
    if !db.is_file() {
        anyhow::bail!(
            "--data-dir {}: holds no store (no {DB_FILE}); nothing was created. Is this the daemon's store.data_dir?",
            dir.display()
        );
    }
    let store = SqliteStore::open(dir, false)
        .with_context(|| format!("opening the store in {}", dir.display()))?;
    let path = std::fs::canonicalize(&db).unwrap_or(db);
    eprintln!("store: {}", path.display());
    Ok(Admin::Dir {
        store: std::sync::Arc::new(store),
        path: path.display().to_string(),
    })
}

/// Opens the configured store directly (`--direct`): SQLite's data directory as [`open_dir`]
/// does, or the `[store.jetstream]` cluster, which must already hold a store of its prefix.
pub fn open_configured(
    cfg: &crate::config::StoreConfig,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<Admin> {
    if cfg.backend == crate::config::Backend::Sqlite {
        return open_dir(&cfg.data_dir);
    }
    let path = crate::store::open::describe(cfg);
    let store = rt
        .block_on(crate::store::open::for_tools(cfg, false))
        .with_context(|| format!("opening the store in {path}"))?;
    eprintln!("store: {path}");
    Ok(Admin::Dir { store, path })
}

impl Op {
    /// The method, path and body of this call on the admin API.
    fn request(&self) -> (Method, String, Option<Value>) {
        let enc = crate::admin::archive::percent;
        match self {
            Op::Silences { all } => (
                Method::GET,
                format!("/api/v1/silences{}", if *all { "?all=true" } else { "" }),
                None,
            ),
            Op::SilenceAdd(spec) => (Method::POST, "/api/v1/silences".into(), Some(json!(spec))),
            Op::SilenceExpire(id) => (
                Method::POST,
                format!("/api/v1/silences/{}/expire", enc(id)),
                None,
            ),
            Op::DeadLetters => (Method::GET, "/api/v1/deadletters".into(), None),
            Op::DeadLetter(id) => (
                Method::GET,
                format!("/api/v1/deadletters/{}", enc(id)),
                None,
            ),
            Op::Redrive(Some(id)) => (
                Method::POST,
                format!("/api/v1/deadletters/{}/redrive", enc(id)),
                None,
            ),
            Op::Redrive(None) => (Method::POST, "/api/v1/deadletters/redrive".into(), None),
            Op::Purge => (Method::POST, "/api/v1/deadletters/purge".into(), None),
            Op::Suppressed { limit } => (
                Method::GET,
                format!("/api/v1/suppressed?limit={limit}"),
                None,
            ),
            Op::Events { limit, before } => {
                let before = before
                    .as_deref()
                    .map(|b| format!("&before={}", enc(b)))
                    .unwrap_or_default();
                (
                    Method::GET,
                    format!("/api/v1/events?limit={limit}{before}"),
                    None,
                )
            }
            Op::Event(id) => (Method::GET, format!("/api/v1/events/{}", enc(id)), None),
            Op::Archive(q) => (
                Method::GET,
                format!("/api/v1/archive?{}", crate::admin::archive::query_string(q)),
                None,
            ),
            Op::Archived(id) => (Method::GET, format!("/api/v1/archive/{}", enc(id)), None),
        }
    }
}

impl Admin {
    /// Runs `op`; the answer is the admin API's JSON.
    pub async fn call(&self, op: Op) -> Result<Value, CallError> {
        match self {
            Admin::Api(d) => {
                let (method, path, body) = op.request();
                api(d, method, &path, body).await
            }
            Admin::Dir { store, .. } => local(store, op).await,
        }
    }

    /// A page of the archive.
    pub async fn archive(&self, q: EventQuery) -> Result<EventPage, CallError> {
        let v = self.call(Op::Archive(q)).await?;
        self.typed(v, "/api/v1/archive")
    }

    /// One archived event (`NotFound` when it is not in the archive).
    pub async fn archived(&self, id: String) -> Result<ArchivedEvent, CallError> {
        let v = self.call(Op::Archived(id)).await?;
        self.typed(v, "/api/v1/archive/{id}")
    }

    /// Runs a replay: in the daemon through its live rules (`POST /api/v1/replay`), or on the data
    /// directory through the rules `rules` loads (called only then) with their directory, which an
    /// unknown rule's error names.
    pub async fn replay<F>(&self, req: ReplayRequest, rules: F) -> Result<ReplayReport, CallError>
    where
        F: FnOnce() -> anyhow::Result<(Router, PathBuf)>,
    {
        match self {
            Admin::Api(d) => {
                let v = api(d, Method::POST, "/api/v1/replay", Some(json!(req))).await?;
                self.typed(v, "/api/v1/replay")
            }
            Admin::Dir { store, .. } => {
                let (router, dir) = rules().map_err(CallError::Other)?;
                let now = crate::alerting::system_clock().now_ms();
                crate::replay::run(
                    store.as_ref(),
                    std::sync::Arc::new(router),
                    &req,
                    crate::replay::new_id(),
                    now,
                )
                .await
                .map_err(|e| match e {
                    ReplayError::UnknownRule { rule } => CallError::Refused(format!(
                        "--rule {}: no enabled rule of that name in {}",
                        crate::escape::line(&rule, 200),
                        dir.display()
                    )),
                    ReplayError::Store(e) => e.into(),
                    other => CallError::Other(other.into()),
                })
            }
        }
    }

    /// An answer read back into its type; one that does not fit names who answered.
    fn typed<T: serde::de::DeserializeOwned>(&self, v: Value, path: &str) -> Result<T, CallError> {
        serde_json::from_value(v).map_err(|e| {
            CallError::Other(anyhow::anyhow!(
                "{} answered {path} with an unexpected shape ({e}); is it the same scanbridge version?",
                self.which()
            ))
        })
    }

    /// Who answered: "the daemon at URL" or "the store FILE".
    pub fn which(&self) -> String {
        match self {
            Admin::Api(d) => format!("the daemon at {}", d.base),
            Admin::Dir { path, .. } => format!("the store {path}"),
        }
    }
}

async fn api(
    d: &Daemon,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, CallError> {
    let mut req = d.request(method, path);
    if let Some(b) = &body {
        req = req.json(b);
    }
    let resp = d.send(req).await?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let value: Option<Value> = serde_json::from_str(&text).ok();
    if status.is_success() {
        return value.ok_or_else(|| {
            CallError::Other(anyhow::anyhow!(
                "{}: answered {status} with a body that is not JSON; is this a scanbridge daemon?",
                d.url(path)
            ))
        });
    }
    let reason = value
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(Value::as_str)
        .map(|e| crate::escape::line(e, 500))
        .unwrap_or_else(|| crate::escape::line(text.trim(), 300));
    Err(match status.as_u16() {
        404 if value.is_some() => CallError::NotFound(reason),
        404 => CallError::Refused(format!(
            "{}: HTTP 404: this daemon has no admin API route for it (an older scanbridge, or `scanbridge sandbox`)",
            d.url(path)
        )),
        401 => CallError::Refused(format!(
            "the daemon at {} refused (HTTP 401): {reason}; give --token or set SCANBRIDGE__SERVER__TOKEN",
            d.base
        )),
        _ => CallError::Refused(format!(
            "the daemon at {} answered HTTP {status}: {reason}",
            d.base
        )),
    })
}

impl From<StoreError> for CallError {
    fn from(e: StoreError) -> CallError {
        match e {
            StoreError::NotFound { .. } => CallError::NotFound(e.to_string()),
            other => CallError::Other(other.into()),
        }
    }
}

/// `op` on a store opened directly, answered in the API's shapes (the same functions build them).
async fn local(store: &std::sync::Arc<dyn Store>, op: Op) -> Result<Value, CallError> {
    let now = crate::alerting::system_clock().now_ms();
    Ok(match op {
        Op::Silences { all } => {
            let list: Vec<Value> = store
                .silences()
                .await?
                .iter()
                .filter(|s| all || s.active_at(now))
                .map(|s| crate::admin::silences::shown(s, now))
                .collect();
            json!({"silences": list})
        }
        Op::SilenceAdd(spec) => {
            let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
            let s = spec
                .build(now, &user)
                .map_err(|e| CallError::Refused(e.to_string()))?;
            store.silence_add(s.clone()).await?;
            json!({"silence": crate::admin::silences::shown(&s, now)})
        }
        Op::SilenceExpire(id) => {
            store.silence_expire(id.clone(), now).await?;
            json!({"expired": id})
        }
        Op::DeadLetters => {
            json!({"deadletters": store.dead_letters(crate::admin::deadletters::MAX_LISTED).await?})
        }
        Op::DeadLetter(id) => json!(store.dead_letter_get(id).await?),
        Op::Redrive(id) => json!({"redriven": store.redrive(id, now).await?}),
        Op::Purge => json!({"purged": store.purge().await?}),
        Op::Suppressed { limit } => json!({"suppressed": store.suppressed(limit).await?}),
        Op::Events { limit, before } => {
            let limit = limit.clamp(1, crate::admin::events::MAX_LIMIT);
            crate::admin::events::page(&store.recent_events(limit, before).await?, limit)
        }
        Op::Event(id) => crate::admin::events::event(&store.event_record(id).await?, true),
        Op::Archive(q) => {
            crate::admin::archive::page(&store.events(crate::admin::archive::clamped(q)).await?)
        }
        Op::Archived(id) => crate::admin::archive::one_event(&store.event_get(id).await?),
    })
}

/// The list under `key` of an answer (empty when absent).
pub fn list<'a>(answer: &'a Value, key: &str) -> &'a [Value] {
    answer
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The text of `key` in `v`, as one visible line of at most `max` characters (content from events
/// and receivers), `-` when absent.
pub fn text(v: &Value, key: &str, max: usize) -> String {
    match v.get(key) {
        Some(Value::String(s)) => crate::escape::line(s, max),
        Some(Value::Null) | None => "-".into(),
        Some(other) => crate::escape::line(&other.to_string(), max),
    }
}

/// `show ID`: prints the answer to `op` as pretty JSON; an unknown id is one error naming `what`,
/// the id and the store asked, and exit 2.
pub async fn show(admin: &Admin, op: Op, what: &str, id: &str) -> Result<Outcome, CallError> {
    match admin.call(op).await {
        Ok(v) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&v).map_err(anyhow::Error::from)?
            );
            Ok(Outcome::Success)
        }
        Err(CallError::NotFound(_)) => {
            eprintln!(
                "scanbridge: error: no {what} with id {id} in {}",
                admin.which()
            );
            Ok(Outcome::Invalid)
        }
        Err(e) => Err(e),
    }
}
