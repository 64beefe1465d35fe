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

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

pub mod sqlite;

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

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The store interface (see the module doc for the contract).
pub trait Store: Send + Sync + 'static {
    /// Stores events and their deliveries, atomically and durably.
    /// Returns, per event in order, whether it was new (`false`: its id was accepted before, so it is
    /// not routed again).
    fn accept(&self, events: Vec<NewEvent>) -> BoxFuture<'_, Result<Vec<bool>, StoreError>>;
    /// Leases up to `limit` due deliveries for `lease`.
    fn lease(
        &self,
        limit: usize,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Vec<Leased>, StoreError>>;
    /// Delivered: removes the delivery.
    fn ack(&self, id: String) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Failed retryably: counts the attempt and schedules the next one after `delay`.
    fn retry_later(
        &self,
        id: String,
        delay: Duration,
        error: String,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Moves the delivery to the dead letters with `attempts` made and the reason.
    fn dead_letter(
        &self,
        id: String,
        attempts: u32,
        reason: String,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Deliveries in the outbox.
    fn depth(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// Dead letters, oldest first.
    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, StoreError>>;
    /// One dead letter with its event.
    fn dead_letter_get(&self, id: String) -> BoxFuture<'_, Result<DeadLetter, StoreError>>;
    /// Moves dead letters (one, or all when `id` is None) back to the outbox, due now, attempts reset.
    fn redrive(&self, id: Option<String>) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// Deletes all dead letters; returns how many.
    fn purge(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
}
