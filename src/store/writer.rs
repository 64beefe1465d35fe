//! Group commit: one thread owns the store's write connection and commits every waiting request
//! together.
//!
//! Requests ([`Writer::submit`]) queue up while the thread is busy. Each turn the thread takes every
//! request waiting (at most [`MAX_BATCH`]), runs them in ONE transaction (`BEGIN IMMEDIATE`), each
//! in a savepoint of its own, and COMMITs once: one fsync (WAL, `synchronous=FULL`) for the whole
//! turn, however many requests and events it holds. While that fsync runs, the next requests queue, so
//! the batch grows with the load by itself: no timer, no added latency when the store is idle.
//!
//! Promises:
//! - A request is answered only after the commit that holds its writes returned: `Ok` means durable.
//! - A request whose own statements fail (or panic) is rolled back to its savepoint and answered
//!   with its error; the other requests of the turn are not affected. When SQLite rolled the whole
//!   transaction back by itself (it may, on a full disk or an I/O error), the request at fault is
//!   answered with its error and the others are run again in a new transaction: a request is never
//!   answered `Ok` for writes that are gone.
//! - A failed COMMIT fails every request of the turn, each with the commit's error; nothing of the
//!   turn is kept.
//! - Each request's `then` runs on the writer thread after the commit and before any later turn, so
//!   in-memory state that must follow the durable state (the lease table) changes in commit order.
//! - Requests are run in the order they were submitted; a request may run more than once (only after
//!   a rollback that undid its writes), so `work` must not have side effects outside the database.
//!
//! - A request of [`Kind::Alone`] runs by itself between turns, outside any transaction (a WAL
//!   checkpoint; a request that commits on its own). A [`Kind::Delivery`] request is committed again
//!   without the others when the turn's COMMIT failed for want of space and the store's hook made
//!   room (the disk reserve: delivery goes on while ingest is refused).
//!
//! The thread ends when the last [`Writer`] is dropped, after answering what it already took.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// Most requests committed in one transaction (a turn with more waiting takes the first ones).
pub const MAX_BATCH: usize = 1024;

/// How a request is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// In the turn's transaction, with the others waiting.
    Batched,
    /// In the turn's transaction; it keeps delivery going, so when the turn's COMMIT fails for want
    /// of space and the store's `on_full` hook made room (the disk reserve), the turn is committed
    /// again with these requests alone.
    Delivery,
    /// Alone, between turns, outside any transaction (checkpoints; a request that commits by itself).
    Alone,
}

/// One request, type-erased for the queue.
trait Job: Send {
    fn kind(&self) -> Kind;
    /// Runs the request's statements on the connection, inside the turn's transaction.
    fn run(&mut self, conn: &Connection) -> Result<(), StoreError>;
    /// After the commit: runs `then` and answers `Ok`.
    fn done(self: Box<Self>);
    /// Answers with `err`; nothing of the request was kept.
    fn fail(self: Box<Self>, err: StoreError);
}

struct Typed<T, R, W, G> {
    kind: Kind,
    work: W,
    then: G,
    out: Option<T>,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<T, R, W, G> Job for Typed<T, R, W, G>
where
    T: Send,
    R: Send,
    W: FnMut(&Connection) -> Result<T, StoreError> + Send,
    G: FnOnce(T) -> R + Send,
{
    fn kind(&self) -> Kind {
        self.kind
    }

    fn run(&mut self, conn: &Connection) -> Result<(), StoreError> {
        self.out = None;
        let work = &mut self.work;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn))) {
            Ok(Ok(t)) => {
                self.out = Some(t);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(panic) => Err(StoreError::Join(format!(
                "internal error while writing: {}",
                crate::compute::panic_message(&*panic)
            ))),
        }
    }

    fn done(self: Box<Self>) {
        let Typed {
            work,
            then,
            out,
            reply,
            ..
        } = *self;
        drop(work); // what it captured may be moved on by `then` (shared buffers)
        let answer = match out {
            Some(t) => Ok(then(t)),
            None => Err(StoreError::Join("request was not run".into())),
        };
        let _ = reply.send(answer);
    }

    fn fail(self: Box<Self>, err: StoreError) {
        let _ = self.reply.send(Err(err));
    }
}

/// Commit counters, for tests and `/metrics`.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Requests answered `Ok` (each was part of one commit).
    pub requests: AtomicU64,
    /// Requests submitted and not yet taken by the writer thread.
    pub queued: AtomicUsize,
}

/// The handle requests are submitted through; cheap to clone. The thread ends with the last clone.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::UnboundedSender<Box<dyn Job>>,
    stats: Arc<WriteStats>,
    _thread: Arc<Joiner>,
}

/// Joins the writer thread when the last handle is gone (so the connection is closed when the store
/// is), unless that happens on the writer thread itself.
struct Joiner(std::sync::Mutex<Option<JoinHandle<()>>>);

impl Drop for Joiner {
    fn drop(&mut self) {
        let handle = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle
            && h.thread().id() != std::thread::current().id()
        {
            let _ = h.join();
        }
    }
}

impl Writer {
    /// Starts the writer thread on `conn` (which must be in WAL mode and otherwise ready).
    #[cfg(test)]
    pub fn start(conn: Connection) -> Writer {
        Writer::start_with(conn, None)
    }

    /// Starts the writer thread on `conn` (in WAL mode and otherwise ready), with the hook a COMMIT that failed for want of space calls: it
    /// returns whether it made room (then the turn's [`Kind::Delivery`] requests are committed again).
    pub fn start_with(conn: Connection, on_full: Option<OnFull>) -> Writer {
        let (queue, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(WriteStats::default());
        let thread = {
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("scanbridge-store-writer".into())
                .spawn(move || run(conn, rx, &stats, on_full.as_deref()))
                .expect("spawn the store writer thread")
        };
        // The Joiner is created after the queue: dropping the last Writer drops the sender first
        // (field order), so the thread sees the queue closed before it is joined.
        Writer {
            queue,
            stats,
            _thread: Arc::new(Joiner(std::sync::Mutex::new(Some(thread)))),
        }
    }

    /// Queues `work` for the next turn; answers with `then(result)` once the turn committed.
    pub async fn submit<T, R, W, G>(&self, work: W, then: G) -> Result<R, StoreError>
    where
        T: Send + 'static,
        R: Send + 'static,
        W: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
        G: FnOnce(T) -> R + Send + 'static,
    {
        self.submit_as(Kind::Batched, work, then).await
    }

    /// Like [`Writer::submit`], run as `kind`.
    pub async fn submit_as<T, R, W, G>(&self, kind: Kind, work: W, then: G) -> Result<R, StoreError>
    where
        T: Send + 'static,
        R: Send + 'static,
        W: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
        G: FnOnce(T) -> R + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Typed {
            kind,
            work,
            then,
            out: None,
            reply,
        });
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        if self.queue.send(job).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Join("the store writer has stopped".into()));
        }
        answer
            .await
            .map_err(|_| StoreError::Join("the store writer has stopped".into()))?
    }

    pub fn stats(&self) -> &WriteStats {
        &self.stats
    }

    #[cfg(test)]
    fn queue_len_for_tests(&self) -> usize {
        self.stats.queued.load(Ordering::Relaxed)
    }

    /// Holds the writer thread inside a request (which commits nothing) until the returned sender is
    /// used or dropped, so that tests can queue requests behind it.
    #[cfg(test)]
    pub async fn pause_for_tests(&self) -> std::sync::mpsc::Sender<()> {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = oneshot::channel();
        let mut started_tx = Some(started_tx);
        let wait = std::sync::Mutex::new(wait);
        let w = self.clone();
        tokio::spawn(async move {
            let _ = w
                .submit(
                    move |_c: &Connection| {
                        if let Some(tx) = started_tx.take() {
                            let _ = tx.send(());
                        }
                        let _ = wait.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        Ok(())
                    },
                    |_| (),
                )
                .await;
        });
        started.await.expect("the writer took the pause");
        release
    }
}

/// The hook of a COMMIT that failed for want of space (see [`Writer::start_with`]).
pub type OnFull = Box<dyn Fn() -> bool + Send>;

fn run(
    conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Box<dyn Job>>,
    stats: &WriteStats,
    on_full: Option<&(dyn Fn() -> bool + Send)>,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(64);
    let mut alone: Option<Box<dyn Job>> = None;
    while let Some(first) = rx.blocking_recv() {
        if first.kind() == Kind::Alone {
            alone = Some(first);
        } else {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) if job.kind() == Kind::Alone => {
                        alone = Some(job);
                        break;
                    }
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        stats.queued.fetch_sub(
            batch.len() + usize::from(alone.is_some()),
            Ordering::Relaxed,
        );
        if !batch.is_empty() {
            turn(&conn, &mut batch, stats, on_full);
        }
        if let Some(job) = alone.take() {
            run_alone(&conn, job, stats);
        }
    }
}

/// Runs a [`Kind::Alone`] request by itself, outside any transaction.
fn run_alone(conn: &Connection, mut job: Box<dyn Job>, stats: &WriteStats) {
    let ran = job.run(conn);
    if !conn.is_autocommit() {
        let _ = exec(conn, "ROLLBACK"); // it left a transaction open: nothing of it is kept
    }
    match ran {
        Ok(()) => {
            stats.requests.fetch_add(1, Ordering::Relaxed);
            job.done()
        }
        Err(e) => job.fail(e),
    }
}

/// A copy of `err` for each request of a failed turn (rusqlite's errors are not `Clone`): an SQLite
/// failure keeps its code (so a full disk still reads as one), anything else its message.
fn copy_of(err: &StoreError) -> StoreError {
    match err {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(code, msg)) => {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(*code, msg.clone()))
        }
        StoreError::Full(why) => StoreError::Full(why.clone()),
        other => StoreError::Join(other.to_string()),
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Runs `jobs` in one transaction and answers each (see the module doc).
fn turn(
    conn: &Connection,
    jobs: &mut Vec<Box<dyn Job>>,
    stats: &WriteStats,
    on_full: Option<&(dyn Fn() -> bool + Send)>,
) {
    let mut failed: Vec<(Box<dyn Job>, StoreError)> = Vec::new();
    let mut made_room = false;
    'again: loop {
        if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
            for j in jobs.drain(..) {
                j.fail(copy_of(&e));
            }
            break;
        }
        let mut i = 0;
        while i < jobs.len() {
            let ran = exec(conn, "SAVEPOINT job").and_then(|()| jobs[i].run(conn));
            match ran {
                Ok(()) => {
                    if let Err(e) = exec(conn, "RELEASE job") {
                        failed.push((jobs.remove(i), e));
                        let _ = exec(conn, "ROLLBACK");
                        continue 'again;
                    }
                    i += 1;
                }
                Err(e) if conn.is_autocommit() => {
                    // SQLite rolled the whole transaction back: the requests before this one lost
                    // their writes too. This one is answered; the others run again.
                    failed.push((jobs.remove(i), e));
                    continue 'again;
                }
                Err(e) => {
                    failed.push((jobs.remove(i), e));
                    if exec(conn, "ROLLBACK TO job")
                        .and_then(|()| exec(conn, "RELEASE job"))
                        .is_err()
                    {
                        let _ = exec(conn, "ROLLBACK");
                        continue 'again;
                    }
                }
            }
        }
        match exec(conn, "COMMIT") {
            Ok(()) => {
                if !jobs.is_empty() {
                    stats.commits.fetch_add(1, Ordering::Relaxed);
                    stats
                        .requests
                        .fetch_add(jobs.len() as u64, Ordering::Relaxed);
                }
                for j in jobs.drain(..) {
                    j.done();
                }
            }
            Err(e) => {
                if !conn.is_autocommit() {
                    let _ = exec(conn, "ROLLBACK");
                }
                let delivery = jobs.iter().any(|j| j.kind() == Kind::Delivery);
                if e.is_full() && delivery && !made_room && on_full.is_some_and(|f| f()) {
                    // Room was made for delivery: commit its requests again, without the others.
                    made_room = true;
                    let (keep, others): (Vec<_>, Vec<_>) =
                        jobs.drain(..).partition(|j| j.kind() == Kind::Delivery);
                    failed.extend(others.into_iter().map(|j| (j, copy_of(&e))));
                    *jobs = keep;
                    continue 'again;
                }
                tracing::error!(error = %e, requests = jobs.len(), "store commit failed; every request of the batch fails");
                for j in jobs.drain(..) {
                    j.fail(copy_of(&e));
                }
            }
        }
        break;
    }
    for (j, e) in failed {
        j.fail(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        conn.execute_batch(
            "CREATE TABLE t (k TEXT PRIMARY KEY);
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        (dir, Writer::start(conn))
    }

    fn insert(w: &Writer, k: &str) -> impl Future<Output = Result<(), StoreError>> + use<> {
        let (w, k) = (w.clone(), k.to_owned());
        async move {
            w.submit(
                move |c: &Connection| Ok(c.execute("INSERT INTO t (k) VALUES (?1)", params![k])?),
                |_| (),
            )
            .await
        }
    }

    fn keys(dir: &tempfile::TempDir) -> Vec<String> {
        let c = Connection::open(dir.path().join("w.db")).unwrap();
        let mut st = c.prepare("SELECT k FROM t ORDER BY k").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_commit() {
        let (dir, w) = writer();
        let release = w.pause_for_tests().await;
        let waiting: Vec<_> = (0..50)
            .map(|i| tokio::spawn(insert(&w, &format!("k{i:02}"))))
            .collect();
        // All 50 are queued behind the held request (nothing was answered yet).
        while w.queue_len_for_tests() < 50 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        for t in waiting {
            t.await.unwrap().unwrap();
        }
        let commits = w.stats().commits.load(Ordering::Relaxed);
        assert_eq!(w.stats().requests.load(Ordering::Relaxed), 51);
        assert_eq!(
            commits, 2,
            "the pause's commit, then one for the 50 waiting"
        );
        assert_eq!(keys(&dir).len(), 50);
    }

    #[tokio::test]
    async fn a_failing_request_fails_alone() {
        let (dir, w) = writer();
        let release = w.pause_for_tests().await;
        let a = tokio::spawn(insert(&w, "a"));
        let dup = tokio::spawn(insert(&w, "a")); // primary key violation: this one alone fails
        let panics = {
            let w = w.clone();
            tokio::spawn(async move {
                w.submit(
                    |c: &Connection| -> Result<(), StoreError> {
                        c.execute("INSERT INTO t (k) VALUES ('p')", [])?;
                        panic!("a bug in a request")
                    },
                    |_| (),
                )
                .await
            })
        };
        let b = tokio::spawn(insert(&w, "b"));
        while w.queue_len_for_tests() < 4 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        a.await.unwrap().unwrap();
        b.await.unwrap().unwrap();
        let err = dup.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        let err = panics.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("a bug in a request"), "{err}");
        assert_eq!(keys(&dir), ["a", "b"], "the panicking request left nothing");
        assert_eq!(w.stats().commits.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_request_in_it() {
        let (dir, w) = writer();
        let release = w.pause_for_tests().await;
        let a = tokio::spawn(insert(&w, "a"));
        // A deferred foreign key is checked at COMMIT: the commit of this turn fails.
        let orphan = {
            let w = w.clone();
            tokio::spawn(async move {
                w.submit(
                    |c: &Connection| Ok(c.execute("INSERT INTO child (p) VALUES (42)", [])?),
                    |_| (),
                )
                .await
            })
        };
        let b = tokio::spawn(insert(&w, "b"));
        while w.queue_len_for_tests() < 3 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        for t in [a, orphan, b] {
            let err = t.await.unwrap().unwrap_err();
            assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
        }
        assert!(keys(&dir).is_empty(), "nothing of the failed turn is kept");
        // The writer goes on.
        insert(&w, "c").await.unwrap();
        assert_eq!(keys(&dir), ["c"]);
    }

    #[tokio::test]
    async fn an_alone_request_runs_between_turns_outside_any_transaction() {
        let (dir, w) = writer();
        let release = w.pause_for_tests().await;
        let before = tokio::spawn(insert(&w, "a"));
        let alone = {
            let w = w.clone();
            tokio::spawn(async move {
                w.submit_as(
                    Kind::Alone,
                    |c: &Connection| {
                        // Outside a transaction, and after the turn before it committed.
                        let n: i64 = c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?;
                        Ok((c.is_autocommit(), n))
                    },
                    |t| t,
                )
                .await
            })
        };
        let after = tokio::spawn(insert(&w, "b"));
        while w.queue_len_for_tests() < 3 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        before.await.unwrap().unwrap();
        assert_eq!(alone.await.unwrap().unwrap(), (true, 1));
        after.await.unwrap().unwrap();
        assert_eq!(keys(&dir), ["a", "b"]);
    }
}
