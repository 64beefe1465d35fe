//! Rate limits shared by every daemon (the Store contract's `rate_take`): one token bucket per key
//! (the target's name) in the `P_ratelimit` bucket, so a target's `rate_limit` holds for the whole
//! installation, however many daemons send to it.
//!
//! A value is the bucket's tokens and the time they were counted (`{tokens, at}`, the caller's
//! `now_ms`). A take reads it, refills by the time since (at most `burst`; a key never written is a
//! full bucket), and writes the bucket less one token with check-and-set on the revision it read:
//! two daemons taking the last token at once cannot both get it, the loser reads again. An empty
//! bucket is not written: the answer is how long until the next token. Time never runs backwards
//! for a bucket (a daemon whose clock is behind refills nothing and keeps the later `at`), so clock
//! skew between daemons can only slow sends down, never let more through.
//!
//! The arithmetic is the in-memory bucket's (`crate::alerting`'s rate limit stage), which a
//! single-daemon backend uses instead.

use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use serde::{Deserialize, Serialize};

use super::cluster::{Cluster, failed, from_json, to_json, token};
use crate::store::{RateTake, StoreError};

/// How often a take is tried against other daemons' writes before giving up.
const TRIES: usize = 30;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Bucket {
    tokens: f64,
    at: i64,
}

pub struct RateBuckets {
    kv: kv::Store,
}

impl RateBuckets {
    pub async fn open(c: &Cluster) -> Result<RateBuckets, StoreError> {
        Ok(RateBuckets {
            kv: c.bucket(&c.names.bucket("ratelimit")).await?,
        })
    }

    /// Takes a token from bucket `key` at `now` (module doc).
    pub async fn take(
        &self,
        key: &str,
        per_second: f64,
        burst: u32,
        now: i64,
    ) -> Result<RateTake, StoreError> {
        let k = token(key);
        let full = Bucket {
            tokens: burst as f64,
            at: now,
        };
        for _ in 0..TRIES {
            let entry = self
                .kv
                .entry(&k)
                .await
                .map_err(|e| failed("reading a rate limit", e))?;
            let (rev, b) = match entry {
                Some(e) if e.operation == Operation::Put => (
                    Some(e.revision),
                    from_json::<Bucket>("rate limit", &e.value).unwrap_or(full),
                ),
                Some(e) => (Some(e.revision), full),
                None => (None, full),
            };
            let elapsed = (now - b.at).max(0) as f64 / 1000.0;
            let tokens = (b.tokens + elapsed * per_second).min(burst as f64);
            if tokens < 1.0 {
                let secs = (1.0 - tokens) / per_second;
                // The epsilon keeps float noise from rounding up a whole millisecond.
                return Ok(RateTake::Wait(Duration::from_millis(
                    (secs * 1000.0 - 1e-6).ceil().max(1.0) as u64,
                )));
            }
            let next = to_json(&Bucket {
                tokens: tokens - 1.0,
                at: b.at.max(now),
            });
            let written = match rev {
                Some(rev) => match self.kv.update(&k, next.into(), rev).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => false,
                    Err(e) => return Err(failed("taking a rate limit token", e)),
                },
                None => match self.kv.create(&k, next.into()).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => false,
                    Err(e) => return Err(failed("taking a rate limit token", e)),
                },
            };
            if written {
                return Ok(RateTake::Taken);
            }
        }
        Err(StoreError::JetStream(format!(
            "the rate limit of {key} kept changing under {TRIES} tries"
        )))
    }
}
