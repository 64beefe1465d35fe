//! An in-memory copy of a small, often-read bucket (silences, digest groups), kept current by a watch.
//!
//! The worker reads silences before every attempt and digest groups on every turn; asking the cluster
//! each time would cost a consumer per read. A mirror loads the bucket once (every key's latest
//! value), then follows it with a watch from the revision the load started at, so a silence added
//! with the CLI on any machine applies to the next attempt here. While the mirror is not in step
//! (starting, or the watch was lost with the cluster) [`Mirror::values`] answers `None` and the
//! caller reads the bucket directly ([`load`]); the mirror reloads by itself.
//!
//! Writes never go through the mirror: they are check-and-set on the bucket itself.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::cluster::{failed, from_json};
use crate::store::StoreError;

#[derive(Debug)]
struct Copy<T> {
    in_step: bool,
    values: BTreeMap<String, T>,
}

/// A bucket followed in memory; the watch task ends with the mirror.
pub struct Mirror<T> {
    copy: Arc<RwLock<Copy<T>>>,
    task: tokio::task::JoinHandle<()>,
}

impl<T> Drop for Mirror<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T: DeserializeOwned + Clone + Send + Sync + 'static> Mirror<T> {
    /// Starts following `kv` (values read as `what`).
    pub fn start(js: async_nats::jetstream::Context, kv: kv::Store, what: &'static str) -> Self {
        let copy = Arc::new(RwLock::new(Copy {
            in_step: false,
            values: BTreeMap::new(),
        }));
        let c = copy.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = follow(&js, &kv, what, &c).await {
                    tracing::warn!(bucket = %kv.name, error = %e, "lost the bucket's watch; reloading");
                }
                c.write().unwrap_or_else(|p| p.into_inner()).in_step = false;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Mirror { copy, task }
    }

    /// Every value, by key, when the mirror is in step.
    pub fn values(&self) -> Option<Vec<T>> {
        let c = self.copy.read().unwrap_or_else(|p| p.into_inner());
        c.in_step.then(|| c.values.values().cloned().collect())
    }
}

/// Loads the bucket, then applies its changes until the watch ends.
async fn follow<T: DeserializeOwned>(
    js: &async_nats::jetstream::Context,
    kv: &kv::Store,
    what: &'static str,
    copy: &RwLock<Copy<T>>,
) -> Result<(), StoreError> {
    let mut stream = js
        .get_stream(&kv.stream_name)
        .await
        .map_err(|e| failed("opening a bucket", e))?;
    let from = stream
        .info()
        .await
        .map_err(|e| failed("reading a bucket", e))?
        .state
        .last_sequence
        + 1;
    let loaded = load(kv, what).await?;
    {
        let mut c = copy.write().unwrap_or_else(|p| p.into_inner());
        c.values = loaded.into_iter().collect();
        c.in_step = true;
    }
    let mut watch = kv
        .watch_all_from_revision(from)
        .await
        .map_err(|e| failed("watching a bucket", e))?;
    while let Some(e) = watch.next().await {
        let e = e.map_err(|e| failed("watching a bucket", e))?;
        let mut c = copy.write().unwrap_or_else(|p| p.into_inner());
        match e.operation {
            Operation::Put => match from_json::<T>(what, &e.value) {
                Ok(v) => {
                    c.values.insert(e.key, v);
                }
                Err(err) => {
                    tracing::error!(bucket = %kv.name, key = %e.key, error = %err, "unreadable value")
                }
            },
            Operation::Delete | Operation::Purge => {
                c.values.remove(&e.key);
            }
        }
    }
    Ok(())
}

/// Every key's latest value, read from the bucket (values that do not read are skipped, logged).
pub async fn load<T: DeserializeOwned>(
    kv: &kv::Store,
    what: &'static str,
) -> Result<Vec<(String, T)>, StoreError> {
    let mut keys = kv.keys().await.map_err(|e| failed("listing a bucket", e))?;
    let mut names = Vec::new();
    while let Some(k) = keys.next().await {
        names.push(k.map_err(|e| failed("listing a bucket", e))?);
    }
    let mut out = Vec::with_capacity(names.len());
    for k in names {
        let v = kv
            .get(&k)
            .await
            .map_err(|e| failed("reading a bucket", e))?;
        if let Some(v) = v {
            match from_json::<T>(what, &v) {
                Ok(v) => out.push((k, v)),
                Err(err) => {
                    tracing::error!(bucket = %kv.name, key = %k, error = %err, "unreadable value")
                }
            }
        }
    }
    Ok(out)
}

/// How many keys `kv` holds (deleted ones not counted).
pub async fn count(kv: &kv::Store) -> Result<u64, StoreError> {
    let mut keys = kv.keys().await.map_err(|e| failed("listing a bucket", e))?;
    let mut n = 0;
    while let Some(k) = keys.next().await {
        k.map_err(|e| failed("listing a bucket", e))?;
        n += 1;
    }
    Ok(n)
}
