//! The durable store: accepted events, the outbox of pending deliveries, and dead letters.
//!
//! [`Store`] is the whole interface the daemon uses, so that a distributed backend (NATS JetStream, with
//! several daemons sharing the work) can sit beside [`sqlite::SqliteStore`] later. Its methods are async
//! (boxed futures keep it object-safe); the SQLite backend runs each call on the blocking pool.
//!
//! Contract, whatever the backend:
//! - `accept` is atomic and durable when it returns `Ok`: the events and all their deliveries, or none.
//!   Re-accepting an event id is a no-op (ids are deterministic), so client retries do not duplicate.
//! - `lease` hands out due deliveries (next attempt time reached, not leased by anyone else) and
//!   reserves them for the lease duration; a delivery whose lease expires (crashed worker) is handed out
//!   again. A delivery leaves the outbox only through `ack` (delivered) or `dead_letter`.
//! - Every delivery is therefore attempted at least once; receivers dedupe with the delivery id.
//!
//! Alerting state (issue 7), same backend, same durability:
//! - `accept` also records each new event's [`HistoryUpdate`] (computed by the caller) in the scan
//!   history and stamps the event with the result it replaced ([`Leased::previous`]), in the same
//!   transaction.
//! - A delivery can leave the outbox a third way, `suppress` (silenced, duplicate, not news): it is
//!   kept in the suppressed list with the reason, never silently lost. `postpone` delays a delivery
//!   without counting an attempt (rate limits). `group_add` moves it into a digest group;
//!   `group_flush` replaces the group's members by one digest event and its delivery, atomically.
//! - `dedup_claim` is an atomic check-and-set: the first delivery to claim a key within the window
//!   wins, every other one learns whose duplicate it is. Claims by the same delivery are idempotent
//!   (a retried delivery is not its own duplicate).
//! - Silences are stored as given; matching them is the caller's job ([`crate::alerting::silence`]).
//!
//! Time: the store never reads a clock. Every method that decides something by time (accept and
//! received-at, due and lease times, retry delays, dedup windows, digest schedules, silence expiry)
//! is handed `now_ms` by its caller, who reads the daemon's one clock ([`crate::alerting`]'s `Clock`),
//! so tests drive all of it with one injected clock.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

pub mod sqlite;

/// The deterministic delivery id (the outbox key, so accepting an event twice stores its deliveries
/// once; receivers drop duplicates with it): SHA-256 of event id, rule and target (NUL-separated), 32 hex digits.
pub fn delivery_id(event_id: &str, rule: &str, target: &str) -> String {
    let mut h = Sha256::new();
    for part in [event_id, rule, target] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A boxed, sendable future: keeps [`Store`] usable as `dyn Store`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A storage failure. Ingest answers 503 on it; nothing is acknowledged that was not stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store: cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("store: background task failed: {0}")]
    Join(String),
    #[error("store: no dead letter with id {0}")]
    NotFound(String),
}

impl StoreError {
    /// A short description for clients (503 bodies): the kind of failure, without paths or data.
    pub fn kind(&self) -> String {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => e.to_string(),
            StoreError::Sqlite(_) => "database error".into(),
            StoreError::DataDir { .. } => "data directory unavailable".into(),
            StoreError::Join(_) => "internal error".into(),
            StoreError::NotFound(_) => "not found".into(),
        }
    }
}

/// A new delivery to store with its event.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub rule: String,
    pub target: String,
    /// The rule target's input transformation (JSON), if any.
    pub input: Option<String>,
}

/// A validated event and the deliveries it caused.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub body: String,
    pub deliveries: Vec<NewDelivery>,
    /// What the event teaches the scan history, if anything (computed by the caller).
    pub history: Option<HistoryUpdate>,
}

/// One event's entry in the scan history, computed by the caller from the parsed event
/// ([`crate::alerting`]'s history) so that the store parses nothing: in the accept transaction it
/// finds the result this one replaces, stamps it on the event ([`Leased::previous`]) and records
/// `record` under every key.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryUpdate {
    /// Keys naming this very image or finding, most specific first: the first that holds a result
    /// gives the previous result.
    pub exact: Vec<String>,
    /// Keys naming a predecessor (`repository:tag`): without an exact result, the one updated last
    /// gives the previous result.
    pub related: Vec<String>,
    /// The result to record (JSON).
    pub record: String,
}

/// A delivery leased for one attempt.
#[derive(Debug, Clone)]
pub struct Leased {
    pub id: String,
    pub event_id: String,
    pub rule: String,
    pub target: String,
    pub input: Option<String>,
    /// The event JSON.
    pub body: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When the event was accepted (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// The scan result this event replaced in the history (JSON: `{"via": KEY, "record": RECORD}`).
    pub previous: Option<String>,
}

/// A delivery that was not sent on purpose, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Suppressed {
    pub id: String,
    pub event_id: String,
    pub rule: String,
    pub target: String,
    /// `silenced`, `duplicate`, `not_new` or `not_worse`.
    pub reason: String,
    /// The silence id, the delivery this one duplicates, or the comparison made.
    pub detail: String,
    pub at_ms: i64,
}

/// A delivery joining a digest group.
#[derive(Debug, Clone)]
pub struct GroupAdd {
    pub group_id: String,
    pub rule: String,
    pub target: String,
    /// The group labels (JSON).
    pub labels: String,
    pub delivery_id: String,
    pub now_ms: i64,
    pub wait_ms: i64,
    pub interval_ms: i64,
}

/// A group whose flush time has come, with its members' events (oldest first).
#[derive(Debug, Clone)]
pub struct DueGroup {
    pub id: String,
    pub rule: String,
    pub target: String,
    pub labels: String,
    pub members: Vec<Member>,
}

/// One delivery waiting in a digest group.
#[derive(Debug, Clone)]
pub struct Member {
    pub delivery_id: String,
    pub event_id: String,
    /// The event JSON (`{}` if the event is gone).
    pub body: String,
    pub added_at_ms: i64,
}

/// One silence as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Silence {
    pub id: String,
    /// The event pattern (JSON text).
    pub pattern: String,
    /// The matchers as the person wrote them (for listings).
    pub matchers: String,
    pub comment: String,
    pub created_by: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

impl Silence {
    pub fn active_at(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at_ms
    }
}

/// A delivery that gave up.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: String,
    pub event_id: String,
    pub rule: String,
    pub target: String,
    pub attempts: u32,
    pub created_at_ms: i64,
    pub failed_at_ms: i64,
    pub reason: String,
    /// The event JSON (only filled by [`Store::dead_letter_get`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<serde_json::Value>,
}

/// The store interface (see the module doc for the contract).
pub trait Store: Send + Sync + 'static {
    /// Stores events and their deliveries, atomically and durably.
    /// Returns, per event in order, whether it was new (`false`: its id was accepted before, so it is
    /// not routed again).
    fn accept(
        &self,
        events: Vec<NewEvent>,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<bool>, StoreError>>;
    /// Leases up to `limit` deliveries due at `now_ms` for `lease`.
    fn lease(
        &self,
        limit: usize,
        lease: Duration,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<Leased>, StoreError>>;
    /// Delivered: removes the delivery.
    fn ack(&self, id: String) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Failed retryably: counts the attempt and schedules the next one `delay` after `now_ms`.
    fn retry_later(
        &self,
        id: String,
        delay: Duration,
        error: String,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Moves the delivery to the dead letters with `attempts` made and the reason, failed at `now_ms`.
    fn dead_letter(
        &self,
        id: String,
        attempts: u32,
        reason: String,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Deliveries in the outbox.
    fn depth(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// Dead letters, oldest first.
    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, StoreError>>;
    /// One dead letter with its event.
    fn dead_letter_get(&self, id: String) -> BoxFuture<'_, Result<DeadLetter, StoreError>>;
    /// Moves dead letters (one, or all when `id` is None) back to the outbox, due at `now_ms`, attempts
    /// reset.
    fn redrive(&self, id: Option<String>, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// Deletes all dead letters; returns how many.
    fn purge(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Releases a leased delivery due again `delay` after `now_ms`, without counting an attempt.
    fn postpone(
        &self,
        id: String,
        delay: Duration,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Moves a delivery from the outbox to the suppressed list.
    fn suppress(&self, s: Suppressed) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Suppressed deliveries, newest first.
    fn suppressed(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Suppressed>, StoreError>>;
    /// Claims `key` in `scope` (rule and target) for `delivery_id` for `window_ms`. Returns `None` if
    /// this delivery holds the claim, or the id of the delivery that claimed it within the window.
    fn dedup_claim(
        &self,
        scope: String,
        key: String,
        delivery_id: String,
        window_ms: i64,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<Option<String>, StoreError>>;
    /// Stores a new silence.
    fn silence_add(&self, silence: Silence) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Every silence, expired ones included, newest first.
    fn silences(&self) -> BoxFuture<'_, Result<Vec<Silence>, StoreError>>;
    /// Expires a silence now (`NotFound` if there is none with that id).
    fn silence_expire(&self, id: String, now_ms: i64) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Moves a delivery from the outbox into its digest group (the alerting digest stage).
    fn group_add(&self, add: GroupAdd) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Groups due for a flush at `now_ms`.
    fn groups_due(&self, now_ms: i64) -> BoxFuture<'_, Result<Vec<DueGroup>, StoreError>>;
    /// Replaces the listed members of a group by the digest event (with its deliveries, due at
    /// `now_ms`), atomically.
    fn group_flush(
        &self,
        group_id: String,
        members: Vec<String>,
        digest: NewEvent,
        now_ms: i64,
        interval_ms: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
}
