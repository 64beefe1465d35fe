//! Dedup claims in the `P_dedup` bucket: one entry per (scope, key), holding the delivery that claimed
//! it and when. A claim is an atomic check-and-set on the entry's revision (create when absent,
//! update at the revision read when the window has passed), so of two daemons claiming one key at
//! once exactly one wins; the other reads again and learns whose duplicate it is. A claim by the
//! holder itself answers "yours" without a write (a retried delivery is not its own duplicate).

use async_nats::jetstream::kv::{self, Operation};
use serde::{Deserialize, Serialize};

use super::cluster::{Cluster, failed, from_json, to_json, token2};
use crate::store::StoreError;

#[derive(Debug, Serialize, Deserialize)]
struct Claim {
    delivery_id: String,
    at: i64,
}

const TRIES: usize = 20;

pub struct Claims {
    kv: kv::Store,
}

impl Claims {
    pub async fn open(c: &Cluster) -> Result<Claims, StoreError> {
        Ok(Claims {
            kv: c.bucket(&c.names.bucket("dedup")).await?,
        })
    }

    /// The Store contract's `dedup_claim`.
    pub async fn claim(
        &self,
        scope: &str,
        key: &str,
        delivery_id: &str,
        window_ms: i64,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let k = token2(scope, key);
        let mine = to_json(&Claim {
            delivery_id: delivery_id.to_owned(),
            at: now,
        });
        for _ in 0..TRIES {
            let entry = self
                .kv
                .entry(&k)
                .await
                .map_err(|e| failed("reading a dedup claim", e))?;
            let written = match entry {
                Some(e) if e.operation == Operation::Put => {
                    // A claim that does not read is no claim: take it over.
                    if let Ok(held) = from_json::<Claim>("dedup claim", &e.value) {
                        if held.delivery_id == delivery_id {
                            return Ok(None);
                        }
                        if now < held.at.saturating_add(window_ms) {
                            return Ok(Some(held.delivery_id));
                        }
                    }
                    match self.kv.update(&k, mine.clone().into(), e.revision).await {
                        Ok(_) => true,
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => false,
                        Err(e) => return Err(failed("writing a dedup claim", e)),
                    }
                }
                _ => match self.kv.create(&k, mine.clone().into()).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => false,
                    Err(e) => return Err(failed("writing a dedup claim", e)),
                },
            };
            if written {
                return Ok(None);
            }
        }
        Err(StoreError::JetStream(
            "a dedup claim kept changing under 20 tries".into(),
        ))
    }
}
