//! The hot reads ([`crate::SqliteStore::hot`]): each runs whole on a `rusqlite` connection,
//! either right on the calling thread (short reads) or on one of Tokio's blocking threads.
//!
//! Why not sqlx here: its SQLite driver runs each connection on a worker thread of its own, so
//! every statement is a hand-off between threads, every row of a result another message on
//! its channel, and the pool pings a connection each time it is given back. On the read path
//! that was most of the cost (docs/benchmarks.md, "Profile of the read path with symbols" and
//! "Reads on rusqlite"). Here a short read (a few rows through an index: tens of
//! microseconds) runs on the calling thread with no hand-off at all, and a longer one is one
//! hand-off to a blocking thread and one back; statements are prepared once per connection
//! and cached.
//!
//! The trade (ARCHITECTURE.md): a short read blocks its Tokio worker while it runs. What
//! could make that long is bounded: a short read never waits for a lock (its busy timeout is
//! zero; a read that would wait runs again on a blocking thread, where it may), and its size
//! is bounded by [`Cost`]. A page of the database not in memory is still read from disk on
//! the worker.
//!
//! Both drivers link the one bundled SQLite (`libsqlite3-sys`), and these connections are
//! read-only: writes stay with the writer (`writer.rs`). A read runs to its end even if the
//! caller stops waiting (it is one synchronous call), so its connection always comes back in
//! a known state. At most [`crate::READERS`] run at once; further reads wait for one (bounded
//! by the busy timeout).

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use loft_core::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, TryAcquireError};

use crate::error::map_rusqlite;

/// Statements kept prepared per connection: the hot reads and the shapes of the inbox list.
const STATEMENT_CACHE: usize = 64;

pub(crate) struct HotReads {
    path: Arc<Path>,
    idle: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
}

impl HotReads {
    pub(crate) fn new(path: &Path, max: usize) -> Self {
        Self {
            path: path.into(),
            idle: Arc::default(),
            permits: Arc::new(Semaphore::new(max)),
        }
    }

    /// Runs `f` on an idle read connection (or a new one), and keeps the connection for the
    /// next read: on the calling thread when `cost` is [`Cost::Short`] (and SQLite need not
    /// wait for a lock), otherwise on a blocking thread.
    pub(crate) async fn run<T, F>(&self, cost: Cost, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T> + Send + 'static,
    {
        // A free connection is the usual case: no timer for it.
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(closed()),
            Err(TryAcquireError::NoPermits) => {
                tokio::time::timeout(crate::BUSY_TIMEOUT, Arc::clone(&self.permits).acquire_owned())
                    .await
                    .map_err(|_| Error::Unavailable("every SQLite read connection stayed busy".into()))?
                    .map_err(|_| closed())?
            }
        };
        if cost == Cost::Short {
            // The connection's busy timeout is zero here: a read that would have to wait for a
            // lock fails at once (`Unavailable`) and runs again below, where it may wait.
            let conn = take(&self.idle, &self.path)?;
            let out = f(&conn);
            give_back(&self.idle, conn);
            match out {
                Err(Error::Unavailable(_)) => {}
                done => return done,
            }
        }
        let idle = Arc::clone(&self.idle);
        let path = Arc::clone(&self.path);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = take(&idle, &path)?;
            let out = conn
                .busy_timeout(crate::BUSY_TIMEOUT)
                .map_err(map_rusqlite)
                .and_then(|()| f(&conn));
            if conn.busy_timeout(Duration::ZERO).is_ok() {
                give_back(&idle, conn);
            }
            out
        })
        .await
        .map_err(|e| Error::Internal(format!("a SQLite read stopped: {e}")))?
    }

    /// Refuses further reads and closes the idle connections (a read still running closes its
    /// own when the store is dropped).
    pub(crate) fn close(&self) {
        self.permits.close();
        drop(std::mem::take(
            &mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner),
        ));
    }
}

/// How long a hot read may take, which decides where it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cost {
    /// A few rows found through an index (a key, an identity, the rules in effect, one
    /// message, a page of at most [`SHORT_PAGE`] messages): tens of microseconds, run on the
    /// calling thread, where a hand-off to another thread and back would cost more than the
    /// read. (One message's bodies are as large as the message size limit lets them be:
    /// copying the largest takes a few milliseconds.)
    Short,
    /// Anything that may read many rows: on a blocking thread.
    Long,
}

/// The largest page of a list read as [`Cost::Short`].
pub(crate) const SHORT_PAGE: u32 = 100;

impl Cost {
    /// The cost of a read of up to `rows` rows found through an index: short up to
    /// [`SHORT_PAGE`].
    pub(crate) fn of_rows(rows: usize) -> Self {
        if rows <= SHORT_PAGE as usize {
            Cost::Short
        } else {
            Cost::Long
        }
    }
}

/// Runs `f`'s statements in one read transaction: they see one state of the database, and
/// the file's shared lock is taken and released once for all of them rather than once per
/// statement (each is a pass through a mutex every connection of the process shares).
///
/// `BEGIN` and `COMMIT` are statements of the connection's cache (`Connection::transaction`
/// parses its `BEGIN` and `ROLLBACK` at every call: 5% of a `whoami`). Ending a read
/// transaction only lets go of its snapshot; a connection still in one is not kept
/// ([`give_back`]).
pub(crate) fn snapshot<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let run = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut st| st.execute([]))
            .map_err(map_rusqlite)
    };
    run("BEGIN")?;
    let out = f(conn);
    let end = run("COMMIT");
    let out = out?;
    end?;
    Ok(out)
}

fn closed() -> Error {
    Error::Unavailable("the SQLite store is closed".into())
}

fn take(idle: &Mutex<Vec<Connection>>, path: &Path) -> Result<Connection> {
    let taken = idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
    match taken {
        Some(c) => Ok(c),
        None => open(path),
    }
}

/// Keeps `conn` for the next read, unless a transaction of it is still open (a
/// [`snapshot`] whose end failed): that one is closed, and its snapshot with it.
fn give_back(idle: &Mutex<Vec<Connection>>, conn: Connection) {
    if conn.is_autocommit() {
        idle.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
    }
}

fn open(path: &Path) -> Result<Connection> {
    // NO_MUTEX: a connection is used by one thread at a time (taken from `idle`, given back).
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| Error::Unavailable(format!("cannot open a SQLite read connection: {}", map_rusqlite(e))))?;
    conn.busy_timeout(Duration::ZERO).map_err(map_rusqlite)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}
