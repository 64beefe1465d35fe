//! Hot reload of the rules directory: on a file change (notify) or SIGHUP, re-read every rule file and
//! swap the router atomically.
//!
//! Reading and compiling run on the compute pool ([`crate::compute`]): a reload of ten thousand rules
//! never stalls the async runtime (health checks, ingest, deliveries go on meanwhile).
//!
//! Promise: a reload is all-or-nothing. If any file is broken, the previous rule set keeps running, the
//! errors are logged with file and pointer, and `scanbridge_rule_reload_failures_total` grows; fixing the
//! file triggers the next reload. A rule whose pattern has lints (`crate::lint`) loads, and each lint
//! is logged as a warning with file and pointer. File events are debounced (editors write in several
//! steps). [`Status`] keeps the outcome of the last load (time, errors) for the console and `GET
//! /api/v1/rules`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::router::{Router, RouterHandle};
use crate::rules;

/// The outcome of the last load of the rules.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LastLoad {
    /// When it was tried (ms since the epoch).
    pub at_ms: i64,
    /// Whether it is the set in force.
    pub ok: bool,
    /// Every error, with file and JSON pointer, when it failed.
    pub errors: Vec<String>,
    /// When the set in force was loaded.
    pub loaded_at_ms: i64,
    /// The set in force is the built-in example rules (no rules directory).
    pub builtin: bool,
}

/// Shared record of the last load (see [`LastLoad`]).
#[derive(Debug, Default)]
pub struct Status(Mutex<LastLoad>);

impl Status {
    /// Records a load, at `now`, that is now in force.
    pub fn loaded(&self, builtin: bool, now: i64) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = LastLoad {
            at_ms: now,
            ok: true,
            errors: Vec::new(),
            loaded_at_ms: now,
            builtin,
        };
    }

    /// Records a failed reload at `now` (every error, with file and pointer); the previous set stays
    /// in force.
    pub fn failed(&self, errors: Vec<String>, now: i64) {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        last.at_ms = now;
        last.ok = false;
        last.errors = errors;
    }

    pub fn last(&self) -> LastLoad {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What a reload needs.
pub struct Reloader {
    pub dir: PathBuf,
    pub known: rules::Known,
    pub router: Arc<RouterHandle>,
    pub metrics: Arc<Metrics>,
    /// Topics come from the configuration, which a reload does not re-read.
    pub topics: Arc<crate::notify::topic::Topics>,
    /// Whether to log the rules' pattern lints (`serve --no-lint` turns them off).
    pub lint: bool,
    pub status: Arc<Status>,
    /// When a reload happened (for [`Status`]).
    pub clock: crate::alerting::SharedClock,
}

/// Logs every lint of `rules` as a warning (file, pointer, message): a pattern AWS accepts that
/// likely means something else. Nothing else changes: the rule is live.
pub fn log_lints(rules: &[rules::Rule]) {
    for r in rules {
        for l in &r.lints {
            tracing::warn!(
                rule = %r.name,
                file = %r.file.display(),
                pointer = %l.pointer,
                lint = %l.message,
                "rule pattern warning"
            );
        }
    }
}

impl Reloader {
    /// Reloads once; returns whether the new set is live. Reading the files and compiling the rule set
    /// (seconds for many thousands of rules) run on the compute pool, off the async runtime.
    pub async fn reload(&self) -> bool {
        let (dir, known, topics) = (self.dir.clone(), self.known.clone(), self.topics.clone());
        let lint = self.lint;
        let built = crate::compute::run(move || {
            rules::load_dir_or_builtin(&dir, &known).map(|(rules, builtin)| {
                if lint {
                    log_lints(&rules);
                }
                (Router::new(rules, topics), builtin)
            })
        })
        .await;
        let built = match built {
            Ok(b) => b,
            Err(panicked) => {
                self.metrics.reload(false, 0);
                self.status
                    .failed(vec![panicked.to_string()], self.clock.now_ms());
                tracing::error!(error = %panicked, "rule reload failed; keeping the previous rules");
                return false;
            }
        };
        match built {
            Ok((router, builtin)) => {
                let n = router.len();
                self.router.swap(router);
                self.status.loaded(builtin, self.clock.now_ms());
                self.metrics.reload(true, n);
                tracing::info!(rules = n, dir = %self.dir.display(), "rules reloaded");
                true
            }
            Err(errs) => {
                self.metrics.reload(false, 0);
                let shown = errs.0.iter().map(ToString::to_string).collect();
                self.status.failed(shown, self.clock.now_ms());
                for e in &errs.0 {
                    tracing::error!(error = %e, "rule reload failed; keeping the previous rules");
                }
                false
            }
        }
    }

    /// Runs until cancelled: reloads on SIGHUP (`hup`) and, if `watch`, on file changes.
    pub async fn run(self, watch: bool, mut hup: mpsc::Receiver<()>, shutdown: CancellationToken) {
        let (tx, mut changes) = mpsc::channel::<()>(1);
        let _watcher = if watch && !self.dir.exists() {
            tracing::info!(dir = %self.dir.display(), "no rules directory to watch; SIGHUP still reloads");
            None
        } else if watch {
            let w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                let relevant = |kind: &EventKind| {
                    matches!(
                        kind,
                        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
                    ) || matches!(
                        kind,
                        EventKind::Access(AccessKind::Close(AccessMode::Write))
                    )
                };
                if let Ok(ev) = res
                    && relevant(&ev.kind)
                {
                    let _ = tx.try_send(());
                }
            })
            .and_then(|mut w| w.watch(&self.dir, RecursiveMode::NonRecursive).map(|()| w));
            match w {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::error!(error = %e, dir = %self.dir.display(), "cannot watch rules; SIGHUP still reloads");
                    None
                }
            }
        } else {
            None
        };
        loop {
            tokio::select! {
                Some(()) = changes.recv() => {
                    // Debounce: let the writer finish, then fold the burst into one reload.
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    while changes.try_recv().is_ok() {}
                }
                Some(()) = hup.recv() => {}
                _ = shutdown.cancelled() => break,
            }
            self.reload().await;
        }
    }
}
