//! Read connections for store reads that are one statement ([`crate::SqliteStore::one`]),
//! kept by the store itself rather than in sqlx's pool.
//!
//! Why not the pool: sqlx's SQLite driver runs each connection on a worker thread, so every
//! command is a hand-off between threads, and the pool pings a connection each time it is
//! given back (not configurable). For a read of one statement that ping was one hand-off in
//! three (docs/benchmarks.md, "Profile of the read path with symbols"). Here a connection is
//! taken from a stack and put back after the statement, with nothing sent to it.
//!
//! What the ping guarded against, a statement left half-run when its future is dropped (a
//! client went away mid-request), is handled by not putting such a connection back: it is
//! dropped (its worker thread ends) and a new one is opened when needed. At most
//! [`crate::READERS`] run at once; further reads wait for one (bounded by the busy timeout).

use std::sync::Mutex;

use futures::future::BoxFuture;
use loft_core::{Error, Result};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};
use tokio::sync::Semaphore;

use crate::error::map_err;

pub(crate) struct SingleReads {
    options: SqliteConnectOptions,
    idle: Mutex<Vec<SqliteConnection>>,
    permits: Semaphore,
}

impl SingleReads {
    pub(crate) fn new(options: SqliteConnectOptions, max: usize) -> Self {
        Self {
            options,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max),
        }
    }

    /// Runs `f` on an idle read connection (or a new one), and keeps the connection for the
    /// next read once `f` has finished, with a result or an error; dropped mid-way, the
    /// connection is dropped too.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>>,
    {
        let _permit = tokio::time::timeout(crate::BUSY_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| Error::Unavailable("every SQLite read connection stayed busy".into()))?
            .map_err(|_| Error::Unavailable("the store is closed".into()))?;
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut conn = match idle {
            Some(c) => c,
            None => self.options.connect().await.map_err(map_err)?,
        };
        let out = f(&mut conn).await;
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(conn);
        out
    }

    /// Refuses further reads and closes the idle connections.
    pub(crate) async fn close(&self) {
        self.permits.close();
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for c in idle {
            let _ = c.close().await;
        }
    }
}
