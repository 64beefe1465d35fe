//! The backend's layout in the cluster, made (or brought up to date) when a store is opened: the
//! four streams, the key-value buckets and the one durable pull consumer of the outbox. Idempotent
//! and safe when several daemons start at once (create or update; a lost race is retried), so every
//! daemon of an installation runs it at start-up and an upgrade that changes a limit applies it.
//!
//! Durability: every stream and bucket is file-backed with `replicas` copies; a publish is
//! acknowledged only once the stream's replicas have it (JetStream's own rule), which is what makes
//! a 202 safe against losing a node when `replicas = 3`.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, ReplayPolicy, pull};
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};

use super::cluster::{BUCKETS, Cluster, failed};
use crate::store::StoreError;

/// How long JetStream drops a repeated `Nats-Msg-Id` by itself; a client retry within it is
/// deduplicated by the stream, later ones by the commit records of `P_seen`.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long commit records were kept by builds before retention (issue 13): past it, a missing
/// commit record proves nothing about a delivery's accept.
pub const RETAIN: Duration = Duration::from_secs(30 * 24 * 3600);

fn stream(c: &Cluster, name: String, subject: String, retention: RetentionPolicy) -> Config {
    Config {
        name,
        subjects: vec![subject],
        retention,
        storage: StorageType::File,
        num_replicas: c.replicas,
        duplicate_window: DUPLICATE_WINDOW,
        discard: DiscardPolicy::Old,
        allow_direct: true,
        ..Default::default()
    }
}

/// Creates or updates everything the backend needs.
pub async fn ensure(c: &Cluster) -> Result<(), StoreError> {
    let n = &c.names;
    let p = &n.prefix;
    let mut streams = vec![
        Config {
            max_messages_per_subject: 1,
            ..stream(
                c,
                n.events_stream(),
                format!("{p}.events.>"),
                RetentionPolicy::Limits,
            )
        },
        stream(
            c,
            n.outbox_stream(),
            format!("{p}.outbox.>"),
            RetentionPolicy::WorkQueue,
        ),
        Config {
            max_messages_per_subject: 1,
            ..stream(
                c,
                n.dead_stream(),
                format!("{p}.dead.>"),
                RetentionPolicy::Limits,
            )
        },
        stream(
            c,
            n.suppressed_stream(),
            n.suppressed_subject(),
            RetentionPolicy::Limits,
        ),
    ];
    for config in streams.drain(..) {
        let name = config.name.clone();
        retry_race(|| async {
            c.js.create_or_update_stream(config.clone())
                .await
                .map(|_| ())
                .map_err(|e| failed(&format!("creating stream {name}"), e))
        })
        .await?;
    }
    for (what, max_age) in BUCKETS {
        let bucket = n.bucket(what);
        let config = kv::Config {
            bucket: bucket.clone(),
            history: 1,
            max_age,
            storage: StorageType::File,
            num_replicas: c.replicas,
            ..Default::default()
        };
        retry_race(|| async {
            c.js.create_or_update_key_value(config.clone())
                .await
                .map(|_| ())
                .map_err(|e| failed(&format!("creating bucket {bucket}"), e))
        })
        .await?;
    }
    // Not data (not in BUCKETS, so not backed up): who repairs the delivery consumer, for a minute.
    let repairs = kv::Config {
        bucket: n.bucket(REPAIRS),
        history: 1,
        max_age: REPAIR_SPACING,
        storage: StorageType::File,
        num_replicas: c.replicas,
        ..Default::default()
    };
    retry_race(|| async {
        c.js.create_or_update_key_value(repairs.clone())
            .await
            .map(|_| ())
            .map_err(|e| failed(&format!("creating bucket {}", repairs.bucket), e))
    })
    .await?;
    let outbox = c.stream(&n.outbox_stream()).await?;
    let consumer = consumer_config(c);
    retry_race(|| async {
        outbox
            .create_consumer(consumer.clone())
            .await
            .map(|_| ())
            .map_err(|e| failed("creating the delivery consumer", e))
    })
    .await
}

/// At most one repair of the delivery consumer per installation in this time (the life of a
/// `P_repairs` entry).
pub const REPAIR_SPACING: Duration = Duration::from_secs(60);

/// The bucket (`P_repairs`) whose short-lived keys say which daemon repairs the delivery consumer
/// (`consumer_watch.rs`).
pub const REPAIRS: &str = "repairs";

/// The ONE delivery consumer's configuration, at start-up and when `consumer_watch` makes it again.
pub fn consumer_config(c: &Cluster) -> pull::Config {
    pull::Config {
        durable_name: Some(c.names.consumer()),
        description: Some("scanbridge deliveries, shared by every daemon".into()),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: c.ack_wait,
        // The retry policy decides when a delivery gives up, not the consumer.
        max_deliver: -1,
        // Deliveries waiting for a retry stay pending: never let them block the others.
        max_ack_pending: 1_000_000,
        replay_policy: ReplayPolicy::Instant,
        ..Default::default()
    }
}

/// Runs `f` again after a short pause when it fails: two daemons creating the same stream at once
/// can lose the race once ("already in use"), and a fresh cluster may still be electing its
/// JetStream leader.
async fn retry_race<F, Fut>(f: F) -> Result<(), StoreError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let mut last = None;
    for _ in 0..5 {
        match f().await {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last.expect("at least one try"))
}
