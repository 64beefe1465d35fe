//! The read connections of the SQLite backend: reads never wait behind the writer.
//!
//! In WAL mode a reader sees the last committed state and neither blocks the writer nor waits for it,
//! so every read of the store (listings, the outbox depth, lease reads, the alert checks) runs on a
//! connection of its own from this small pool, on tokio's blocking pool, while the writer thread
//! ([`super::writer`]) commits. Connections are opened on demand, kept up to [`KEEP`], and are
//! `query_only`: a read connection can never write.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;

/// Read connections kept open between reads (more are opened while more reads run at once).
pub const KEEP: usize = 4;

/// A pool of read connections to one database file.
#[derive(Debug)]
pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub fn new(path: PathBuf) -> Readers {
        Readers {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    /// Runs `f` on a read connection (call it on the blocking pool: it does I/O).
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match idle {
            Some(c) => c,
            None => self.open()?,
        };
        let out = f(&mut conn);
        // A connection left inside a transaction (an error mid-read) is not reused.
        if conn.is_autocommit() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < KEEP {
                idle.push(conn);
            }
        }
        out
    }
}
