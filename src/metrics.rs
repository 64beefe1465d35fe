//! Process metrics, rendered in the Prometheus text format by `GET /metrics`.
//!
//! Counters are monotonic for the life of the process. Labelled series live in small mutex-guarded maps
//! (label cardinality is bounded by the configured rules and targets); the hot counters are atomics.
//! Rendering takes each lock briefly and never while doing I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the delivery latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// All metrics of the daemon.
#[derive(Debug, Default)]
pub struct Metrics {
    pub events_received: AtomicU64,
    pub events_accepted: AtomicU64,
    pub events_rejected: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    pub rules_loaded: AtomicU64,
    matches: Mutex<BTreeMap<String, u64>>,
    deliveries: Mutex<BTreeMap<(String, String), u64>>,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    /// (target, attempt label) -> (retries scheduled, sum of their delays in seconds).
    retries: Mutex<BTreeMap<(String, String), (u64, f64)>>,
    latency: Mutex<Histogram>,
    /// Alerting counters: (metric, label text) -> count.
    alerting: Mutex<BTreeMap<(&'static str, String), u64>>,
    silences_active: AtomicU64,
    /// Deliveries that reached the worker: leased by the accepting commit, or by a lease read.
    leased_at_accept: AtomicU64,
    leased_by_poll: AtomicU64,
    /// Rows deleted by retention, by kind.
    pruned: Mutex<BTreeMap<&'static str, u64>>,
    store_bytes: AtomicU64,
    store_limit_bytes: AtomicU64,
    /// 1 while ingest is refused for want of room (disk full, or pending work fills the limit).
    store_full: AtomicU64,
}

/// The alerting counters: name and help.
const ALERTING: [(&str, &str); 4] = [
    (
        "scanbridge_notifications_suppressed_total",
        "Deliveries not sent on purpose, by rule, target and reason (silenced, duplicate, not_new, not_worse).",
    ),
    (
        "scanbridge_notifications_grouped_total",
        "Deliveries folded into a digest group, by rule and target.",
    ),
    (
        "scanbridge_digests_total",
        "Digest messages made from groups, by rule and target.",
    ),
    (
        "scanbridge_deliveries_delayed_total",
        "Deliveries put back in the outbox by a target's rate limit, by target.",
    ),
];

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// A delivery reached the worker, `via` "accept" (leased by the commit that stored it) or
    /// "poll" (a lease read).
    pub fn leased(&self, via: &str) {
        inc(
            if via == "accept" {
                &self.leased_at_accept
            } else {
                &self.leased_by_poll
            },
            1,
        );
    }
    pub fn received(&self, n: u64) {
        inc(&self.events_received, n);
    }
    pub fn accepted(&self, n: u64) {
        inc(&self.events_accepted, n);
    }
    pub fn rejected(&self, n: u64) {
        inc(&self.events_rejected, n);
    }
    pub fn reload(&self, ok: bool, rules: usize) {
        if ok {
            inc(&self.reloads, 1);
            self.rules_loaded.store(rules as u64, Ordering::Relaxed);
        } else {
            inc(&self.reload_failures, 1);
        }
    }
    pub fn rule_matched(&self, rule: &str) {
        *self
            .matches
            .lock()
            .expect("metrics lock")
            .entry(rule.to_owned())
            .or_default() += 1;
    }
    /// One attempt's outcome (`delivered`, `retryable`, `permanent`, `dead_letter`).
    pub fn delivery(&self, target: &str, outcome: &str) {
        *self
            .deliveries
            .lock()
            .expect("metrics lock")
            .entry((target.to_owned(), outcome.to_owned()))
            .or_default() += 1;
    }
    fn count(&self, metric: &'static str, labels: String) {
        *self
            .alerting
            .lock()
            .expect("metrics lock")
            .entry((metric, labels))
            .or_default() += 1;
    }
    /// A delivery suppressed by the notification pipeline.
    pub fn suppressed(&self, rule: &str, target: &str, reason: &str) {
        self.count(
            ALERTING[0].0,
            format!(
                "rule=\"{}\",target=\"{}\",reason=\"{}\"",
                escape(rule),
                escape(target),
                escape(reason)
            ),
        );
    }
    /// A delivery added to a digest group.
    pub fn grouped(&self, rule: &str, target: &str) {
        self.count(
            ALERTING[1].0,
            format!("rule=\"{}\",target=\"{}\"", escape(rule), escape(target)),
        );
    }
    /// A digest made.
    pub fn digest(&self, rule: &str, target: &str) {
        self.count(
            ALERTING[2].0,
            format!("rule=\"{}\",target=\"{}\"", escape(rule), escape(target)),
        );
    }
    /// A delivery postponed by a rate limit.
    pub fn delayed(&self, target: &str) {
        self.count(ALERTING[3].0, format!("target=\"{}\"", escape(target)));
    }
    /// Silences in force (set whenever the pipeline re-reads them).
    pub fn silences_active(&self, n: u64) {
        self.silences_active.store(n, Ordering::Relaxed);
    }
    /// An ingest request refused before its events were read (`rate`, `unauthorized`, `body_size`,
    /// `body_timeout`, `body_broken`), or a connection refused (`client_connections`).
    pub fn limited(&self, reason: &'static str) {
        *self
            .refused
            .lock()
            .expect("metrics lock")
            .entry(reason)
            .or_default() += 1;
    }
    /// A retry scheduled after failed attempt number `attempt` (1-based), `delay` later. Attempts past
    /// 10 share the label `11+`, so the series stay few while the backoff schedule stays visible.
    pub fn retry_scheduled(&self, target: &str, attempt: u32, delay: Duration) {
        let label = if attempt > 10 {
            "11+".to_owned()
        } else {
            attempt.to_string()
        };
        let mut m = self.retries.lock().expect("metrics lock");
        let e = m.entry((target.to_owned(), label)).or_default();
        e.0 += 1;
        e.1 += delay.as_secs_f64();
    }
    /// Rows of `kind` deleted by retention (`events`, `suppressed`, `history`, `dedup`, `alerts`,
    /// `groups`, and `oldest` for archived events pruned early to make room).
    pub fn pruned(&self, kind: &'static str, n: u64) {
        if n > 0 {
            *self
                .pruned
                .lock()
                .expect("metrics lock")
                .entry(kind)
                .or_default() += n;
        }
    }
    /// The store's size when last measured, its limit, and whether ingest is refused for room.
    pub fn store_space(&self, used: u64, limit: u64, full: bool) {
        self.store_bytes.store(used, Ordering::Relaxed);
        self.store_limit_bytes.store(limit, Ordering::Relaxed);
        self.store_full.store(full as u64, Ordering::Relaxed);
    }
    /// Time from acceptance to confirmed delivery.
    pub fn delivered_after(&self, d: Duration) {
        let s = d.as_secs_f64();
        let mut h = self.latency.lock().expect("metrics lock");
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += s;
    }

    /// The Prometheus text exposition; `queue_depth` and the store's own counters are read from the
    /// store by the caller.
    pub fn render(&self, queue_depth: Option<u64>, io: Option<crate::store::IoStats>) -> String {
        let mut o = String::new();
        if let Some(io) = io {
            let series = [
                (
                    "scanbridge_store_commits_total",
                    "counter",
                    "Store transactions committed (one fsync each; group commit puts every write waiting into one).",
                    io.commits,
                ),
                (
                    "scanbridge_store_writes_total",
                    "counter",
                    "Store write requests committed (an accepted batch of events is one).",
                    io.writes,
                ),
                (
                    "scanbridge_store_writes_queued",
                    "gauge",
                    "Store write requests waiting for the writer.",
                    io.queued,
                ),
                (
                    "scanbridge_lease_reads_total",
                    "counter",
                    "Reads of the outbox for due deliveries.",
                    io.lease_reads,
                ),
                (
                    "scanbridge_deliveries_leased",
                    "gauge",
                    "Deliveries leased now (held by the worker).",
                    io.leased,
                ),
            ];
            for (name, kind, help, v) in series {
                let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
            }
        }
        let _ = writeln!(
            o,
            "# HELP scanbridge_deliveries_leased_total Deliveries that reached the worker, by how: leased by the commit that stored them (accept) or by a read of the outbox (poll).\n# TYPE scanbridge_deliveries_leased_total counter\nscanbridge_deliveries_leased_total{{via=\"accept\"}} {}\nscanbridge_deliveries_leased_total{{via=\"poll\"}} {}",
            self.leased_at_accept.load(Ordering::Relaxed),
            self.leased_by_poll.load(Ordering::Relaxed)
        );
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let counters = [
            (
                "scanbridge_events_received_total",
                "Events received on any ingest path.",
                &self.events_received,
            ),
            (
                "scanbridge_events_accepted_total",
                "Events validated and stored durably.",
                &self.events_accepted,
            ),
            (
                "scanbridge_events_rejected_total",
                "Events rejected (invalid or too large).",
                &self.events_rejected,
            ),
            (
                "scanbridge_rule_reloads_total",
                "Successful rule set (re)loads.",
                &self.reloads,
            ),
            (
                "scanbridge_rule_reload_failures_total",
                "Rule reloads that failed (previous set kept).",
                &self.reload_failures,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                o,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                get(c)
            );
        }
        let _ = writeln!(
            o,
            "# HELP scanbridge_event_parses_total Events parsed into a tree: once at ingest, again only by a delivery attempt that was not handed the parsed event (after a restart).\n# TYPE scanbridge_event_parses_total counter\nscanbridge_event_parses_total {}",
            crate::event::parses()
        );
        let _ = writeln!(
            o,
            "# HELP scanbridge_rules_loaded Enabled rules in the live rule set.\n# TYPE scanbridge_rules_loaded gauge\nscanbridge_rules_loaded {}",
            get(&self.rules_loaded)
        );
        let _ = writeln!(
            o,
            "# HELP scanbridge_rule_matches_total Events matched, by rule.\n# TYPE scanbridge_rule_matches_total counter"
        );
        for (rule, n) in self.matches.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                o,
                "scanbridge_rule_matches_total{{rule=\"{}\"}} {n}",
                escape(rule)
            );
        }
        let _ = writeln!(
            o,
            "# HELP scanbridge_deliveries_total Delivery attempts and dead letters, by target and outcome.\n# TYPE scanbridge_deliveries_total counter"
        );
        for ((target, outcome), n) in self.deliveries.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                o,
                "scanbridge_deliveries_total{{target=\"{}\",outcome=\"{}\"}} {n}",
                escape(target),
                escape(outcome)
            );
        }
        {
            let alerting = self.alerting.lock().expect("metrics lock");
            for (name, help) in ALERTING {
                let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
                for ((_, labels), n) in alerting.iter().filter(|((m, _), _)| *m == name) {
                    let _ = writeln!(o, "{name}{{{labels}}} {n}");
                }
            }
        }
        let _ = writeln!(
            o,
            "# HELP scanbridge_silences_active Silences in force when last read.\n# TYPE scanbridge_silences_active gauge\nscanbridge_silences_active {}",
            get(&self.silences_active)
        );
        let _ = writeln!(
            o,
            "# HELP scanbridge_ingest_refused_total Ingest requests refused before reading events, by reason.\n# TYPE scanbridge_ingest_refused_total counter"
        );
        for (reason, n) in self.refused.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                o,
                "scanbridge_ingest_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            o,
            "# HELP scanbridge_retries_scheduled_total Retries scheduled, by target and failed attempt number.\n# TYPE scanbridge_retries_scheduled_total counter"
        );
        let retries = self.retries.lock().expect("metrics lock");
        for ((target, attempt), (n, _)) in retries.iter() {
            let _ = writeln!(
                o,
                "scanbridge_retries_scheduled_total{{target=\"{}\",attempt=\"{attempt}\"}} {n}",
                escape(target)
            );
        }
        let _ = writeln!(
            o,
            "# HELP scanbridge_retry_delay_seconds_total Sum of the scheduled retry delays (divide by the count: the backoff schedule).\n# TYPE scanbridge_retry_delay_seconds_total counter"
        );
        for ((target, attempt), (_, sum)) in retries.iter() {
            let _ = writeln!(
                o,
                "scanbridge_retry_delay_seconds_total{{target=\"{}\",attempt=\"{attempt}\"}} {sum}",
                escape(target)
            );
        }
        drop(retries);
        if let Some(depth) = queue_depth {
            let _ = writeln!(
                o,
                "# HELP scanbridge_queue_depth Deliveries waiting in the outbox.\n# TYPE scanbridge_queue_depth gauge\nscanbridge_queue_depth {depth}"
            );
        }
        let _ = writeln!(
            o,
            "# HELP scanbridge_pruned_total Rows deleted by retention, by kind (oldest: archived events pruned early to make room under store.max_db_bytes).\n# TYPE scanbridge_pruned_total counter"
        );
        for (kind, n) in self.pruned.lock().expect("metrics lock").iter() {
            let _ = writeln!(o, "scanbridge_pruned_total{{kind=\"{kind}\"}} {n}");
        }
        let _ = writeln!(
            o,
            "# HELP scanbridge_store_bytes Bytes the store occupies (pages in use and the write-ahead log), when last measured.\n# TYPE scanbridge_store_bytes gauge\nscanbridge_store_bytes {}\n# HELP scanbridge_store_limit_bytes store.max_db_bytes (0: no limit).\n# TYPE scanbridge_store_limit_bytes gauge\nscanbridge_store_limit_bytes {}\n# HELP scanbridge_store_full 1 while new events are refused for want of room (the disk is full, or pending work fills store.max_db_bytes).\n# TYPE scanbridge_store_full gauge\nscanbridge_store_full {}",
            get(&self.store_bytes),
            get(&self.store_limit_bytes),
            get(&self.store_full)
        );
        let h = self.latency.lock().expect("metrics lock");
        let name = "scanbridge_delivery_latency_seconds";
        let _ = writeln!(
            o,
            "# HELP {name} Time from acceptance to confirmed delivery.\n# TYPE {name} histogram"
        );
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(o, "{name}_bucket{{le=\"{b}\"}} {}", h.counts[i]);
        }
        let _ = writeln!(
            o,
            "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
            h.count, h.sum, h.count
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_labels_and_histogram() {
        let m = Metrics::default();
        m.received(3);
        m.rule_matched("crit\"x");
        m.delivery("hook", "delivered");
        m.delivered_after(Duration::from_millis(30));
        m.retry_scheduled("hook", 2, Duration::from_millis(1500));
        m.retry_scheduled("hook", 12, Duration::from_secs(60));
        let text = m.render(Some(5), None);
        assert!(
            text.contains("scanbridge_retries_scheduled_total{target=\"hook\",attempt=\"2\"} 1")
        );
        assert!(
            text.contains(
                "scanbridge_retry_delay_seconds_total{target=\"hook\",attempt=\"11+\"} 60"
            )
        );
        assert!(text.contains("scanbridge_events_received_total 3"));
        assert!(text.contains("scanbridge_rule_matches_total{rule=\"crit\\\"x\"} 1"));
        assert!(
            text.contains("scanbridge_deliveries_total{target=\"hook\",outcome=\"delivered\"} 1")
        );
        assert!(text.contains("scanbridge_queue_depth 5"));
        m.suppressed("r", "hook", "silenced");
        m.suppressed("r", "hook", "silenced");
        m.delayed("slack");
        let text = m.render(None, None);
        assert!(
            text.contains(
                "scanbridge_notifications_suppressed_total{rule=\"r\",target=\"hook\",reason=\"silenced\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("scanbridge_deliveries_delayed_total{target=\"slack\"} 1"));
        assert!(text.contains("scanbridge_delivery_latency_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("scanbridge_delivery_latency_seconds_bucket{le=\"0.025\"} 0"));
    }
}
