//! CPU-bound work off the async runtime: a bounded pool for matching, validation and rule compilation.
//!
//! Matching thousands of wildcard rules against a 256 KiB event, or compiling ten thousand rules,
//! takes seconds of CPU. Run on an async worker thread, it stops that thread from polling anything else,
//! and a few such requests stop the whole runtime: `/healthz`, `/readyz` and the delivery worker all
//! wait. [`run`] moves a closure to tokio's blocking pool instead, with at most [`limit`] closures
//! running at once (one per CPU): further callers wait asynchronously for a slot, so the async threads
//! stay free to answer health checks and drive deliveries, and heavy work queues instead of
//! oversubscribing the CPUs.
//!
//! A panic inside the closure is returned as [`Panicked`] (with its message) rather than unwinding into
//! the caller, so one poisoned input fails only the work it was part of.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

/// At most this many closures run at once: the number of CPUs (at least 1).
pub fn limit() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| Semaphore::new(limit()))
}

/// The closure panicked; the message of the panic, if it had one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("internal error: {0}")]
pub struct Panicked(pub String);

/// The message of a caught panic.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic without a message".to_owned())
}

/// Runs `f` on the blocking pool once a slot is free, and returns its result.
pub async fn run<T, F>(f: F) -> Result<T, Panicked>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let _slot = slots()
        .acquire()
        .await
        .expect("the semaphore is never closed");
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => Err(Panicked(panic_message(&*e.into_panic()))),
        Err(e) => Err(Panicked(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_limit_closures_run_at_once_and_panics_come_back_as_errors() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..(limit() * 3) {
            let (running, peak) = (running.clone(), peak.clone());
            tasks.push(tokio::spawn(run(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
            })));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= limit());
        let err = run(|| -> u8 { panic!("poisoned input") })
            .await
            .unwrap_err();
        assert_eq!(err, Panicked("poisoned input".into()));
    }
}
