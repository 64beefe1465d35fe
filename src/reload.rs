//! Hot reload of the rules directory: on a file change (notify) or SIGHUP, re-read every rule file and
//! swap the router atomically.
//!
//! Promise: a reload is all-or-nothing. If any file is broken, the previous rule set keeps running, the
//! errors are logged with file and pointer, and `scanbridge_rule_reload_failures_total` grows; fixing the
//! file triggers the next reload. A rule whose pattern has lints (`crate::lint`) loads, and each lint
//! is logged as a warning with file and pointer. File events are debounced (editors write in several
//! steps).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::router::{Router, RouterHandle};
use crate::rules;

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
    /// Reloads once; returns whether the new set is live.
    pub fn reload(&self) -> bool {
        match rules::load_dir_or_builtin(&self.dir, &self.known) {
            Ok((rules, _builtin)) => {
                if self.lint {
                    log_lints(&rules);
                }
                let router = Router::new(rules, self.topics.clone());
                let n = router.len();
                self.router.swap(router);
                self.metrics.reload(true, n);
                tracing::info!(rules = n, dir = %self.dir.display(), "rules reloaded");
                true
            }
            Err(errs) => {
                self.metrics.reload(false, 0);
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
            self.reload();
        }
    }
}
