//! The scan history in the `P_history` bucket: the last result per history key (the alerting
//! history's `digest:`, `tag:` and `finding:` keys), written as the caller computed it.
//!
//! Check-and-set: an accept reads the entries of its keys, finds the result it replaces (the first
//! exact key holding one, else the related key updated last, as the SQLite backend does), and writes
//! its record under every key with the bucket's revision check (create for a new key, update at the
//! revision read for an existing one). A write that loses a race to another daemon makes the accept
//! read again and decide again, so two daemons recording scans of one image never both take the
//! same predecessor unknowingly.
//!
//! Idempotent per event: each value keeps the event that wrote it and the result it replaced, so an
//! accept retried after a failure (the client's retry of a 503) finds its own write and reuses the
//! predecessor it found the first time, instead of comparing the scan with itself.

use async_nats::jetstream::kv::{self, Entry, Operation};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::cluster::{Cluster, failed, from_json, to_json, token};
use crate::store::{HistoryUpdate, StoreError};

/// One history key's value.
#[derive(Debug, Serialize, Deserialize)]
struct Value {
    /// The result (JSON, as the caller gave it).
    record: String,
    /// When it was recorded, ms since the Unix epoch.
    at: i64,
    /// The event that recorded it.
    event: String,
    /// What that event replaced (the `previous` stamped on it).
    #[serde(default)]
    prev: Option<String>,
}

/// Races lost to other writers before an accept gives up (a store error: 503).
const TRIES: usize = 20;

pub struct History {
    kv: kv::Store,
}

impl History {
    pub async fn open(c: &Cluster) -> Result<History, StoreError> {
        Ok(History {
            kv: c.bucket(&c.names.bucket("history")).await?,
        })
    }

    /// Records `h` for event `event_id`; returns the result it replaced (JSON `{"via", "record"}`).
    pub async fn record(
        &self,
        h: &HistoryUpdate,
        event_id: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let mut keys: Vec<&String> = Vec::new();
        for k in h.exact.iter().chain(&h.related) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        for _ in 0..TRIES {
            let entries = join_all(keys.iter().map(|k| self.kv.entry(token(k)))).await;
            let mut read: Vec<(Option<u64>, Option<Value>)> = Vec::with_capacity(keys.len());
            for e in entries {
                let e = e.map_err(|e| failed("reading the scan history", e))?;
                read.push(current(e));
            }
            let mine = read
                .iter()
                .find_map(|(_, v)| v.as_ref().filter(|v| v.event == event_id));
            let prev = match mine {
                Some(v) => v.prev.clone(),
                None => previous(h, &keys, &read),
            };
            let value = to_json(&Value {
                record: h.record.clone(),
                at: now,
                event: event_id.to_owned(),
                prev: prev.clone(),
            });
            let writes = keys.iter().zip(&read).filter_map(|(k, (rev, v))| {
                if v.as_ref().is_some_and(|v| v.event == event_id) {
                    return None; // written by this event's earlier try
                }
                let (k, value) = (token(k), value.clone().into());
                Some(async move {
                    match rev {
                        Some(rev) => {
                            self.kv
                                .update(k, value, *rev)
                                .await
                                .map(|_| ())
                                .map_err(|e| {
                                    (
                                        e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                                        e.to_string(),
                                    )
                                })
                        }
                        None => self.kv.create(k, value).await.map(|_| ()).map_err(|e| {
                            (
                                e.kind() == kv::CreateErrorKind::AlreadyExists,
                                e.to_string(),
                            )
                        }),
                    }
                })
            });
            let results = join_all(writes).await;
            let mut raced = false;
            for r in results {
                match r {
                    Ok(()) => {}
                    Err((true, _)) => raced = true,
                    Err((false, e)) => return Err(failed("writing the scan history", e)),
                }
            }
            if !raced {
                return Ok(prev);
            }
        }
        Err(StoreError::JetStream(format!(
            "the scan history of {} kept changing under {TRIES} tries",
            keys.first().map_or("?", |k| k.as_str())
        )))
    }
}

/// The revision to write at (None: create) and the readable value of an entry.
fn current(e: Option<Entry>) -> (Option<u64>, Option<Value>) {
    match e {
        Some(e) if e.operation == Operation::Put => {
            // A value that does not read (damage) is passed over, as the SQLite backend does.
            let v = from_json::<Value>("scan history", &e.value).ok();
            (Some(e.revision), v)
        }
        Some(e) => (Some(e.revision), None), // deleted or purged: update at its marker
        None => (None, None),
    }
}

/// The result the event replaces: the first exact key's, else the related key updated last.
fn previous(
    h: &HistoryUpdate,
    keys: &[&String],
    read: &[(Option<u64>, Option<Value>)],
) -> Option<String> {
    let value_of = |key: &String| {
        keys.iter()
            .position(|k| *k == key)
            .and_then(|i| read[i].1.as_ref())
            .filter(|v| serde_json::from_str::<&RawValue>(&v.record).is_ok())
    };
    let mut found: Option<(&String, &Value)> =
        h.exact.iter().find_map(|k| value_of(k).map(|v| (k, v)));
    if found.is_none() {
        for k in &h.related {
            if let Some(v) = value_of(k)
                && found.is_none_or(|(_, best)| v.at > best.at)
            {
                found = Some((k, v));
            }
        }
    }
    #[derive(Serialize)]
    struct Previous<'a> {
        via: &'a str,
        record: &'a RawValue,
    }
    let (via, v) = found?;
    let record = serde_json::from_str::<&RawValue>(&v.record).ok()?;
    serde_json::to_string(&Previous { via, record }).ok()
}
