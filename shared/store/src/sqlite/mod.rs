//! Embedded adapters for running hmsync on one machine: the storage ports and a durable queue
//! that behaves like SQS FIFO, both in SQLite (bundled; WAL, so readers never wait for the
//! writer). Blocking SQLite calls run on Tokio's blocking pool, never on the async runtime.

mod hourly;
mod parked;
mod privacy;
mod queue;
mod store;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::ErrorCode;

use crate::error::{Result, StoreError};

pub use queue::{SqliteQueue, SqliteQueueConfig};
pub use store::SqliteStore;

/// How long a writer waits for another connection's write lock (another queue instance or
/// process on the same file) before reporting the database as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// One SQLite connection, used from the blocking pool one call at a time.
#[derive(Clone)]
pub(crate) struct Db {
    conn: Arc<Mutex<rusqlite::Connection>>,
    path: Arc<PathBuf>,
}

impl Db {
    pub fn open(path: &Path, schema: &str) -> Result<Db> {
        let open_err = |e: rusqlite::Error| {
            StoreError::backend(format!("could not open the SQLite database {}: {e}", path.display()))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::backend(format!("could not create {}: {e}", dir.display())))?;
        }
        let conn = rusqlite::Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::backend(format!(
                "SQLite database {} cannot use write-ahead logging (journal mode {mode})",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL;").map_err(open_err)?;
        conn.execute_batch(schema).map_err(open_err)?;
        Ok(Db { conn: Arc::new(Mutex::new(conn)), path: Arc::new(path.to_path_buf()) })
    }

    /// Runs a schema change on the connection (at open, before any other use).
    pub fn migrate(&self, change: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<()>) -> Result<()> {
        let conn = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&conn).map_err(|e| {
            StoreError::backend(format!("could not upgrade the SQLite database {}: {e}", self.path.display()))
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a migration that needs its own transaction (at open; each checks whether it is needed).
    pub fn migrate_with(&self, f: impl FnOnce(&mut rusqlite::Connection) -> Result<()>) -> Result<()> {
        let mut conn = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut conn)
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::backend(format!("SQLite task failed: {e}")))?
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::Throttled { message: format!("SQLite database is busy: {err}") }
            }
            Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => {
                StoreError::Unavailable { message: format!("SQLite: {err}") }
            }
            _ => StoreError::Backend { message: format!("SQLite: {err}") },
        }
    }
}

pub(crate) fn to_json<T: serde::Serialize>(what: &str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::backend(format!("could not encode {what}: {e}")))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(what, e))
}
