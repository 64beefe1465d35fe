//! Silences in the `P_silences` bucket, one entry per silence (keyed by the token of its id). A daemon
//! reads them from a [`Mirror`] (the worker asks before every attempt); the CLI tools read the bucket.
//! Expiring a silence is a check-and-set of its entry, so it never undoes a concurrent change.

use async_nats::jetstream::kv::{self, Operation};

use super::cluster::{Cluster, failed, from_json, to_json, token};
use super::mirror::{Mirror, load};
use crate::store::{Silence, StoreError};

pub struct Silences {
    kv: kv::Store,
    mirror: Option<Mirror<Silence>>,
}

impl Silences {
    /// `follow`: keep a mirror (the daemon), or read the bucket on every call (the CLI tools).
    pub async fn open(c: &Cluster, follow: bool) -> Result<Silences, StoreError> {
        let kv = c.bucket(&c.names.bucket("silences")).await?;
        let mirror = follow.then(|| Mirror::start(c.js.clone(), kv.clone(), "silence"));
        Ok(Silences { kv, mirror })
    }

    pub async fn add(&self, s: Silence) -> Result<(), StoreError> {
        self.kv
            .create(token(&s.id), to_json(&s).into())
            .await
            .map_err(|e| failed("adding a silence", e))?;
        Ok(())
    }

    /// Every silence, newest first (as the SQLite backend orders them).
    pub async fn all(&self) -> Result<Vec<Silence>, StoreError> {
        let mut all = match self.mirror.as_ref().and_then(Mirror::values) {
            Some(v) => v,
            None => load::<Silence>(&self.kv, "silence")
                .await?
                .into_iter()
                .map(|(_, s)| s)
                .collect(),
        };
        all.sort_by(|a, b| {
            b.created_at_ms
                .cmp(&a.created_at_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(all)
    }

    pub async fn expire(&self, id: &str, now: i64) -> Result<(), StoreError> {
        let k = token(id);
        for _ in 0..20 {
            let e = self
                .kv
                .entry(&k)
                .await
                .map_err(|e| failed("reading a silence", e))?;
            let Some(e) = e.filter(|e| e.operation == Operation::Put) else {
                return Err(StoreError::NotFound {
                    what: "silence",
                    id: id.to_owned(),
                });
            };
            let mut s: Silence = from_json("silence", &e.value)?;
            s.expires_at_ms = s.expires_at_ms.min(now);
            match self.kv.update(&k, to_json(&s).into(), e.revision).await {
                Ok(_) => return Ok(()),
                Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(err) => return Err(failed("expiring a silence", err)),
            }
        }
        Err(StoreError::JetStream(format!(
            "silence {id} kept changing under 20 tries"
        )))
    }
}
