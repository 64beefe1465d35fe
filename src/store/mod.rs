//! The durable store: accepted events, the outbox of pending deliveries, and dead letters.
//!
//! [`Store`] is the whole interface the daemon uses, with two backends: [`sqlite::SqliteStore`] (one
//! file, one daemon) and [`jetstream::JetStreamStore`] (NATS JetStream streams and key-value buckets,
//! any number of daemons sharing the work); [`open`] opens the configured one. Its methods are async
//! (boxed futures keep it object-safe); the SQLite backend runs each call on the blocking pool.
//!
//! Contract, whatever the backend:
//! - `accept` is atomic and durable when it returns `Ok`: the events and all their deliveries, or none
//!   (an event that fails on its own is refused alone: [`Stored::Refused`]; the others are stored).
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
//! What became of each delivery (issue 17: the console and the admin API), same backend:
//! - `ack` keeps a record of the delivery (id, rule, target, attempts, time) when it leaves the outbox,
//!   and `group_flush` one for each member sent in the digest (with the digest event's id), so that
//!   every delivery ever made has exactly one state: pending (in the outbox, maybe retrying), delivered,
//!   sent in a digest, waiting in a digest group, dead-lettered or suppressed ([`DeliveryState`]).
//! - `recent_events` and `event_record` read events with those states, newest first, in pages
//!   (a cursor names the last event of the previous page); `counts` gives the totals a dashboard shows.
//!   They only read, and return event bodies as stored (the caller parses them).
//!
//! Time: the store never reads a clock. Every method that decides something by time (accept and
//! received-at, due and lease times, retry delays, dedup windows, digest schedules, silence expiry)
//! is handed `now_ms` by its caller, who reads the daemon's one clock ([`crate::alerting`]'s `Clock`),
//! so tests drive all of it with one injected clock.
//!
//! Alert state (issue 16, rules with `notify_resolved`), same backend, same durability. The caller
//! decides everything from the parsed event ([`crate::alerting`]'s resolve stage); the store keeps
//! the state per (rule, alert key, target) and orders the deliveries that change it:
//! - A delivery may carry an [`AlertMark`]: a `trigger` or a `resolve` of one alert key. Marks are
//!   stored with the delivery, kept by `dead_letter` and restored by `redrive`, and handed back in
//!   [`Leased::alert`].
//! - `accept` with a [`ResolveCheck`] on an event adds, in the same transaction, one `resolve`
//!   delivery (id: [`delivery_id`] of the event, the rule and `TARGET#resolve`; no input) for every
//!   (rule, key, target) among the check's keys whose alert is open, or has a trigger still in the
//!   outbox, and whose rule is one of the check's `clear` rules or is not in its `live` set (a
//!   rule since removed or disabled matches nothing).
//! - `ack` of a marked delivery records its effect in the same transaction: a trigger opens the
//!   alert (or refreshes it: its record and event time), a resolve closes it and starts a new
//!   episode. Suppressed and dead-lettered deliveries change nothing.
//! - `alert_check` tells the stage, for one leased marked delivery, the alert's state and whether a
//!   delivery of the opposite kind for the same alert was accepted before it and is still in the
//!   outbox (then this one waits: triggers and resolves of one alert reach the target in the order
//!   they were accepted). `alert_states` lists the states of some keys, for `scanbridge route`.
//!
//! Rate limits (issue 14): `rate_take` is a token bucket shared by every daemon of the store, with
//! check-and-set; a backend used by one daemon only keeps none and says so ([`RateTake::Local`]),
//! and the caller's in-memory bucket is then exact.
//!
//! Archive, retention and space (issue 13), same backend, same durability:
//! - Every accepted event is kept as the **archive**, marked with whether it matched a rule (or
//!   caused a delivery) and which rules and deliveries it had at ingest. `events` pages through it
//!   (oldest or newest first, by acceptance time), `event_get` shows one event with what became of
//!   each of its deliveries ([`DeliveryState`], as `event_record` does) and the replay each belongs
//!   to.
//! - `replay_enqueue` queues deliveries of archived events again (a replay: the caller routed them
//!   through the current rules), each with its replay id ([`ReplayDelivery`], ids from
//!   [`replay_delivery_id`]); the replay id comes back in [`Leased::replay`], survives dead letters
//!   and redrives, and an id already queued or dead-lettered is not queued twice.
//! - `prune` deletes, in one bounded batch per kind of row, what the caller's [`Retention`] says has
//!   expired (an event with the records of its delivered deliveries); `prune_oldest` deletes the oldest archived events whatever their age (making room).
//!   Neither ever deletes a pending delivery, a dead letter, a silence, an open alert, a digest group
//!   with members, or an event that a pending delivery, a dead letter or a digest member still needs.
//! - `accept` under a size limit makes room itself: the oldest archived events go first; only when
//!   none is left (pending deliveries, dead letters and silences fill the store) is the accept
//!   refused with [`StoreError::Full`], leaving room for the writes that keep delivery going.
//! - `space` says how much the store occupies (its journal included) against its limit, whether new
//!   events are refused, and whether the disk under it is full. A backend keeps room to delete on a full disk
//!   (SQLite: a reserve file), so that acks, retries and dead letters go on while ingest is refused.
//! - `check` runs the backend's own integrity check and the outbox's invariants ([`Problem`]);
//!   `backup` writes a consistent copy while the daemon runs.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod backup_file;
pub mod jetstream;
mod leases;
pub mod lock;
pub mod open;
mod readers;
pub mod reserve;
pub mod restore;
pub mod sqlite;
mod sqlite_archive;
mod sqlite_integrity;
pub mod sqlite_restore;
mod sqlite_retention;
mod writer;

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

/// The id of a replayed delivery: the live delivery's id scoped by the replay id, so a replay never
/// collides with the live delivery (receivers and dedup tell them apart) and re-running the same
/// replay queues nothing twice.
pub fn replay_delivery_id(replay: &str, live_id: &str) -> String {
    delivery_id(live_id, replay, "#replay")
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
    /// No dead letter, silence or event has that id (`what` says which).
    #[error("store: no {what} with id {id}")]
    NotFound { what: &'static str, id: String },
    /// The JetStream backend could not reach the cluster, or the cluster refused a request.
    #[error("store: NATS JetStream: {0}")]
    JetStream(String),
    /// Another daemon holds the data directory ([`lock::DataDirLock`]).
    #[error(
        "store: data directory {path} is in use by another `scanbridge serve` ({}); stop it first, or give this one its own --data-dir",
        match holder { Some(pid) => format!("pid {pid}"), None => "pid unknown".to_owned() }
    )]
    InUse { path: String, holder: Option<u32> },
    #[error("store: cannot lock {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
    /// A command that only reads (or works on) an existing store found none.
    #[error(
        "store: no store in {path} (no {file}); give the daemon's data directory with --data-dir or store.data_dir"
    )]
    Missing { path: String, file: String },
    /// The JetStream backend found no store of its prefix on the cluster (a CLI tool that only
    /// reads or works on an existing store).
    #[error(
        "store: no scanbridge store with prefix {prefix:?} on NATS at {servers} (no stream {stream}); start `scanbridge serve` with this [store.jetstream] first, or check store.jetstream.prefix"
    )]
    NoLayout {
        servers: String,
        prefix: String,
        stream: String,
    },
    /// No room for new events: the disk is full, or pending work fills `store.max_db_bytes`.
    #[error("store: {0}")]
    Full(String),
    /// The database file exists but is not a scanbridge store (empty, not SQLite, or another schema).
    #[error(
        "store: {path} {why}; refusing to start rather than treat it as an empty store (move it away to start afresh, or restore it from a backup)"
    )]
    NotAStore { path: String, why: String },
}

impl StoreError {
    /// A short description for clients (503 bodies): the kind of failure, without paths or data.
    pub fn kind(&self) -> String {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => e.to_string(),
            StoreError::Sqlite(_) => "database error".into(),
            StoreError::DataDir { .. } => "data directory unavailable".into(),
            StoreError::Join(_) => "internal error".into(),
            StoreError::JetStream(_) => "NATS JetStream unavailable".into(),
            StoreError::NotFound { .. } => "not found".into(),
            StoreError::InUse { .. } | StoreError::Lock { .. } => "data directory in use".into(),
            StoreError::NotAStore { .. } => "not a scanbridge store".into(),
            StoreError::Missing { .. } | StoreError::NoLayout { .. } => "no store".into(),
            StoreError::Full(why) => why.clone(),
        }
    }

    /// Whether this is the store running out of room (the disk, or its configured limit).
    pub fn is_full(&self) -> bool {
        match self {
            StoreError::Full(_) => true,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            _ => false,
        }
    }
}

/// What [`Store::accept`] did with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Stored with its deliveries and history.
    New,
    /// Its id was accepted before: nothing stored, not routed again.
    Duplicate,
    /// Storing this event failed in a way particular to it (a value the database refuses, or a bug
    /// caught while recording it): it alone was rolled back; the others of the call are stored.
    Refused(String),
}

/// A new delivery to store with its event.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub rule: String,
    pub target: String,
    /// The rule target's input transformation (JSON), if any.
    pub input: Option<String>,
    /// A trigger of an alert (a rule with `notify_resolved`), if any.
    pub alert: Option<AlertMark>,
}

/// Whether a marked delivery opens or closes its alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    Trigger,
    Resolve,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Trigger => "trigger",
            AlertKind::Resolve => "resolve",
        }
    }
    pub fn parse(s: &str) -> Option<AlertKind> {
        match s {
            "trigger" => Some(AlertKind::Trigger),
            "resolve" => Some(AlertKind::Resolve),
            _ => None,
        }
    }
}

/// The alert a delivery triggers or resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertMark {
    pub kind: AlertKind,
    /// The alert key ([`crate::alerting`]'s `alert_keys`).
    pub key: String,
    /// The event's own `time` (ms since the Unix epoch), when it has one.
    pub time_ms: Option<i64>,
    /// The event's scan-history record (JSON), stored on the alert when a trigger is delivered.
    pub record: Option<String>,
}

/// Which open alerts an accepted event resolves (see the module doc), computed by the caller.
#[derive(Debug, Clone)]
pub struct ResolveCheck {
    /// Every alert key of the event.
    pub keys: Vec<String>,
    /// The rules with `notify_resolved` that this event does not match (or a CLOSED finding).
    pub clear: Vec<String>,
    /// Every live (enabled) rule: alerts of other rules are resolved by any conclusive event.
    pub live: std::sync::Arc<std::collections::BTreeSet<String>>,
    pub time_ms: Option<i64>,
    pub record: Option<String>,
}

/// The state of one alert for one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AlertState {
    pub rule: String,
    pub key: String,
    pub target: String,
    /// A trigger was delivered and no resolve since.
    pub open: bool,
    pub opened_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    /// The event of the last delivered trigger.
    pub trigger_event_id: Option<String>,
    /// The scan-history record of the last delivered trigger (JSON).
    pub record: Option<String>,
    /// The event time of the newest delivered trigger and of the last delivered resolve.
    pub trigger_time_ms: Option<i64>,
    pub resolve_time_ms: Option<i64>,
    /// How many times the alert was resolved (dedup claims do not cross episodes).
    pub episode: i64,
}

/// What the resolve stage learns about one leased marked delivery.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertCheck {
    pub state: Option<AlertState>,
    /// An earlier delivery of the opposite kind for the same alert, still in the outbox.
    pub waiting_for: Option<String>,
    /// When that delivery is next attempted, ms since the Unix epoch (0 while it is being attempted).
    pub waiting_until_ms: Option<i64>,
}

/// A validated event and the deliveries it caused.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub body: String,
    /// The rules the event matched (a matching rule may cause no delivery: a topic whose filter
    /// policies all refuse it). Recorded in the archive.
    pub matched: Vec<String>,
    pub deliveries: Vec<NewDelivery>,
    /// What the event teaches the scan history, if anything (computed by the caller).
    pub history: Option<HistoryUpdate>,
    /// Which open alerts the event may resolve, if any (computed by the caller).
    pub resolve: Option<ResolveCheck>,
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
    /// The alert this delivery triggers or resolves, if any.
    pub alert: Option<AlertMark>,
    /// The replay this delivery belongs to (`scanbridge replay`); None for a live delivery.
    pub replay: Option<String>,
}

/// A delivery that was not sent on purpose, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Suppressed {
    pub id: String,
    pub event_id: String,
    pub rule: String,
    pub target: String,
    /// `silenced`, `duplicate`, `not_new`, `not_worse`, `not_open` (a resolve of an alert that is
    /// not open) or `stale` (older than the scan that last changed the alert).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// A delivery of an archived event queued again by a replay (the caller routed the event through
/// the current rules).
#[derive(Debug, Clone)]
pub struct ReplayDelivery {
    /// [`replay_delivery_id`] of the replay and the live delivery id.
    pub id: String,
    pub event_id: String,
    pub rule: String,
    pub target: String,
    /// The rule target's input transformation (JSON), if any.
    pub input: Option<String>,
    /// The replay id.
    pub replay: String,
}

/// Which archived events to read.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Accepted at or after (ms since the Unix epoch).
    pub since_ms: Option<i64>,
    /// Accepted before.
    pub until_ms: Option<i64>,
    /// Only events that matched a rule (`Some(true)`), only those that did not, or all.
    pub matched: Option<bool>,
    pub newest_first: bool,
    /// Where the previous page ended ([`EventPage::next`]).
    pub after: Option<String>,
    /// At most this many (the backend may cap it).
    pub limit: usize,
    /// Fill [`ArchivedEvent::body`].
    pub bodies: bool,
}

/// One page of archived events (the admin API's `GET /api/v1/archive` answer, as JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<ArchivedEvent>,
    /// Give it as [`EventQuery::after`] for the next page; None at the end.
    pub next: Option<String>,
}

/// An event in the archive and what became of its deliveries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchivedEvent {
    pub id: String,
    pub received_at_ms: i64,
    /// Whether it matched a rule or caused a delivery (kept `retain_events`, else `retain_unmatched`).
    pub matched: bool,
    /// The rules it matched at ingest (empty for events stored by builds before the archive).
    pub rules: Vec<String>,
    /// Its deliveries: those made at ingest, and the resolves and replays still in the store.
    pub deliveries: Vec<DeliveryRecord>,
    /// The event JSON as stored (when asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// What became of one delivery (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryState {
    /// In the outbox: due at `next_attempt_at_ms`, after `attempts` failed attempts (the last
    /// failure's reason in `last_error`).
    Pending {
        attempts: u32,
        next_attempt_at_ms: i64,
        last_error: Option<String>,
    },
    /// Sent and confirmed by the receiver, at the `attempts`-th attempt.
    Delivered { attempts: u32, at_ms: i64 },
    /// Waiting in a digest group since `at_ms`.
    Grouped { group_id: String, at_ms: i64 },
    /// Folded into the digest event `digest_event_id`, whose own delivery says how that went.
    InDigest { digest_event_id: String, at_ms: i64 },
    /// Gave up after `attempts` attempts.
    DeadLettered {
        attempts: u32,
        at_ms: i64,
        reason: String,
    },
    /// Not sent on purpose ([`Suppressed`]'s reason and detail).
    Suppressed {
        reason: String,
        detail: String,
        at_ms: i64,
    },
}

impl DeliveryState {
    /// One word: pending, delivered, grouped, in_digest, dead_lettered, suppressed.
    pub fn label(&self) -> &'static str {
        match self {
            DeliveryState::Pending { .. } => "pending",
            DeliveryState::Delivered { .. } => "delivered",
            DeliveryState::Grouped { .. } => "grouped",
            DeliveryState::InDigest { .. } => "in_digest",
            DeliveryState::DeadLettered { .. } => "dead_lettered",
            DeliveryState::Suppressed { .. } => "suppressed",
        }
    }
}

/// One delivery of an event and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub id: String,
    pub rule: String,
    pub target: String,
    /// The replay it belongs to (None: a live delivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
    #[serde(flatten)]
    pub state: DeliveryState,
}

/// An accepted event with what became of each of its deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub id: String,
    pub received_at_ms: i64,
    /// The event JSON, as stored.
    pub body: String,
    /// In a stable order (rule, then target).
    pub deliveries: Vec<DeliveryRecord>,
}

/// Totals for a dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Deliveries in the outbox.
    pub outbox: u64,
    /// Of those, how many failed at least once.
    pub retrying: u64,
    pub dead_letters: u64,
    pub suppressed: u64,
    /// Deliveries waiting in digest groups.
    pub grouped: u64,
}

/// What [`Store::accept_leasing`] did: per event what became of it, and the deliveries it leased.
pub type AcceptedLeasing = (Vec<Stored>, Vec<Leased>);

/// Counters of a store's own work (`/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Transactions committed (each one fsync).
    pub commits: u64,
    /// Write requests committed (an accept of a whole batch is one; group commit puts many in one
    /// transaction).
    pub writes: u64,
    /// Write requests waiting for the writer.
    pub queued: u64,
    /// Reads of the outbox for due deliveries.
    pub lease_reads: u64,
    /// Deliveries leased now.
    pub leased: u64,
}

/// What has expired, decided by the caller (the retention policy and the clock): rows older than
/// each cutoff (ms since the Unix epoch; None keeps them) go, at most `limit` of each kind per call.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    /// Events that matched a rule, accepted before this, whose deliveries are all done.
    pub matched_before_ms: Option<i64>,
    /// Events that matched no rule, accepted before this.
    pub unmatched_before_ms: Option<i64>,
    /// Records of suppressed notifications.
    pub suppressed_before_ms: Option<i64>,
    /// Scan history entries, resolved alerts and idle digest groups, last changed before this.
    pub history_before_ms: Option<i64>,
    /// Dedup claims made before this (older than every live rule's window).
    pub dedup_before_ms: Option<i64>,
    pub limit: usize,
}

/// How many rows one [`Store::prune`] call deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    pub events: u64,
    pub suppressed: u64,
    pub history: u64,
    pub dedup: u64,
    pub alerts: u64,
    pub groups: u64,
    /// Some kind filled its batch: call again.
    pub more: bool,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.events + self.suppressed + self.history + self.dedup + self.alerts + self.groups
    }
}

/// How much room the store has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Space {
    /// Bytes in use: live data and the journal (SQLite: pages in use and the WAL file).
    pub used_bytes: u64,
    /// The configured limit (`store.max_db_bytes`; 0: none).
    pub limit_bytes: u64,
    /// The disk under the store is full (its reserve is spent): new events are refused until space
    /// returns.
    pub disk_full: bool,
    /// Pending work fills the limit: `accept` refuses new events ([`StoreError::Full`]) once the
    /// archive has nothing left to prune, keeping the rest for the writes of delivery.
    pub at_limit: bool,
    /// Archived rows `accept` itself pruned to make room since the last call (counted by the
    /// caller with its own pruning).
    pub pruned: u64,
}

/// An inconsistency `check` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong, in words.
    pub what: String,
    /// How many rows.
    pub count: u64,
    /// Some of them (ids).
    pub examples: Vec<String>,
}

/// What `backup` wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backup {
    pub bytes: u64,
    pub events: u64,
    pub pending: u64,
    pub dead_letters: u64,
}

/// What [`Store::rate_take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateTake {
    /// Only one daemon uses this store (SQLite: the data directory's lock): the caller's own
    /// in-memory bucket is the whole truth, so the store keeps none.
    Local,
    /// A token was taken from the shared bucket.
    Taken,
    /// The shared bucket is empty: the next token is there after this long.
    Wait(Duration),
}

/// The store interface (see the module doc for the contract).
pub trait Store: Send + Sync + 'static {
    /// Stores events and their deliveries, atomically and durably.
    /// Returns, per event in order, what became of it ([`Stored`]). A failure of the store itself fails
    /// the whole call (nothing stored); a failure particular to one event refuses that event alone.
    fn accept(
        &self,
        events: Vec<NewEvent>,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<Stored>, StoreError>>;
    /// Leases up to `limit` deliveries due at `now_ms` for `lease`.
    fn lease(
        &self,
        limit: usize,
        lease: Duration,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<Leased>, StoreError>>;
    /// Like `lease`, with at most `room[target]` deliveries of each target listed in `room` (a
    /// target at 0 is not read at all), so that one slow target cannot take every slot.
    fn lease_within(
        &self,
        limit: usize,
        lease: Duration,
        now_ms: i64,
        room: std::collections::BTreeMap<String, usize>,
    ) -> BoxFuture<'_, Result<Vec<Leased>, StoreError>> {
        let _ = room;
        self.lease(limit, lease, now_ms)
    }
    /// Like `accept`, and leases for `lease`, in the same commit, up to `max` of the deliveries it
    /// stored (in order): handed back beside the outcomes, so that the worker can send them at
    /// once without a lease read (the others are leased by the worker's reads as usual).
    fn accept_leasing(
        &self,
        events: Vec<NewEvent>,
        now_ms: i64,
        lease: Duration,
        max: usize,
    ) -> BoxFuture<'_, Result<AcceptedLeasing, StoreError>> {
        let _ = (lease, max);
        Box::pin(async move { Ok((self.accept(events, now_ms).await?, Vec::new())) })
    }
    /// Gives back the lease of a delivery that was not attempted (it is due again at once); a
    /// backend whose leases cannot be given back lets it expire.
    fn unlease(&self, id: &str) {
        let _ = id;
    }
    /// Counters of the backend's own work, for `/metrics` (zero where a backend has none).
    fn io_stats(&self) -> IoStats {
        IoStats::default()
    }
    /// Delivered at `now_ms`: removes the delivery (and records its alert mark's effect), and keeps a
    /// record of it as delivered.
    fn ack(&self, id: String, now_ms: i64) -> BoxFuture<'_, Result<(), StoreError>>;
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
    /// The state of the alert of a leased marked delivery at `now_ms`, and whether it must wait
    /// (module doc).
    fn alert_check(
        &self,
        delivery_id: String,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<AlertCheck, StoreError>>;
    /// Every alert state recorded under one of `keys`.
    fn alert_states(&self, keys: Vec<String>)
    -> BoxFuture<'_, Result<Vec<AlertState>, StoreError>>;
    /// Replaces the listed members of a group by the digest event (with its deliveries, due at
    /// `now_ms`), atomically; each member is recorded as sent in that digest.
    fn group_flush(
        &self,
        group_id: String,
        members: Vec<String>,
        digest: NewEvent,
        now_ms: i64,
        interval_ms: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// A page of the archive ([`EventQuery`]).
    fn events(&self, query: EventQuery) -> BoxFuture<'_, Result<EventPage, StoreError>>;
    /// One archived event with its body and deliveries (`NotFound` if it is not in the archive).
    fn event_get(&self, id: String) -> BoxFuture<'_, Result<ArchivedEvent, StoreError>>;
    /// Queues replayed deliveries, due at `now_ms`; returns how many were new (an id already in the
    /// outbox or the dead letters, or whose event is gone, is skipped).
    fn replay_enqueue(
        &self,
        deliveries: Vec<ReplayDelivery>,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// Deletes one bounded batch of each kind of expired row ([`Retention`]).
    fn prune(&self, retention: Retention) -> BoxFuture<'_, Result<Pruned, StoreError>>;
    /// Deletes the `limit` oldest archived events whose deliveries are all done, whatever their age
    /// (events that matched no rule first), and as many of the oldest suppressed records; returns
    /// how many rows went (0: nothing left to make room with).
    fn prune_oldest(&self, limit: usize) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// How much room the store has ([`Space`]); a backend may restore its disk reserve here when
    /// space has returned.
    fn space(&self) -> BoxFuture<'_, Result<Space, StoreError>>;
    /// The backend's integrity check and the outbox's invariants: empty when all is well.
    fn check(&self) -> BoxFuture<'_, Result<Vec<Problem>, StoreError>>;
    /// Writes a consistent copy of the whole store to `path` (which must not exist).
    fn backup(&self, path: std::path::PathBuf) -> BoxFuture<'_, Result<Backup, StoreError>>;
    /// Up to `limit` events, newest first (in the order they were stored), with their deliveries'
    /// states; `before` (an event id) continues a listing after that event. An unknown `before` gives
    /// `NotFound`.
    fn recent_events(
        &self,
        limit: usize,
        before: Option<String>,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, StoreError>>;
    /// One event with its deliveries' states (`NotFound` if no event has that id).
    fn event_record(&self, id: String) -> BoxFuture<'_, Result<EventRecord, StoreError>>;
    /// Totals of the outbox, dead letters, suppressed and grouped deliveries.
    fn counts(&self) -> BoxFuture<'_, Result<Counts, StoreError>>;

    /// Takes one token at `now_ms` from the token bucket `key` (refilled at `per_second`, holding at
    /// most `burst`; full when first used), atomically for every daemon sharing the store. A backend
    /// that only one daemon can use answers [`RateTake::Local`] (the default).
    fn rate_take(
        &self,
        key: String,
        per_second: f64,
        burst: u32,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<RateTake, StoreError>> {
        let _ = (key, per_second, burst, now_ms);
        Box::pin(async { Ok(RateTake::Local) })
    }
}
