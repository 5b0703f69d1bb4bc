//! Loft's storage port ([`loft_core::store::Store`]) on one embedded SQLite file: the default
//! backend, needing nothing but a path.
//!
//! # Design
//!
//! - **One file, WAL mode.** Readers never block the writer nor each other. `foreign_keys=ON`
//!   and a busy timeout on every connection.
//! - **Reads** go through read-only connections. A store read made of several queries runs
//!   in its own read transaction, so it sees one snapshot. The hot reads (a key and its
//!   identity, the delegation chain, the caps and usage, the inbox list, one message, what a
//!   send checks first, what a delivery reads, the hosted domains and their keys, the audit
//!   head, the job runner's look for due work) run whole on `rusqlite` connections, short
//!   ones on the calling thread and the others on Tokio's blocking threads (`hot.rs`): at
//!   most one hand-off per read, where sqlx's SQLite driver makes one per statement and per
//!   row, and those hand-offs were most of the cost of a small read (docs/benchmarks.md,
//!   issue 14). The
//!   other reads use sqlx's pool, which does not ping a connection before handing it out (a
//!   connection to a local file cannot go stale). Both drivers link the one bundled SQLite.
//! - **Writes** all go through one writer task that owns the only read-write connections
//!   (a `rusqlite` one for the writes moved to it, sqlx's for the rest; see `db.rs`) and
//!   commits in groups (see `writer.rs`): the first queued job plus whatever else is already
//!   waiting, in one `BEGIN IMMEDIATE ... COMMIT`, each job in its own savepoint so a failing job
//!   leaves the others intact. Jobs are answered only after the `COMMIT`. With
//!   `synchronous=FULL` a success returned to a client is on disk, yet under load many writes
//!   share one fsync. Mutating store methods are each one job: the change, its audit row and
//!   anything it queues commit or vanish together. Where a method returns a big value
//!   (a message with its bodies), it is read back from a read connection after the commit, so
//!   the writer does not spend its time loading bodies.
//! - **Audit chain.** A single-row `audit_head` holds the last `(seq, hash)`. Every append
//!   reads it, seals the entry with [`AuditRecord::seal`], inserts the row and moves the head,
//!   inside the writer's transaction; `BEGIN IMMEDIATE` holds the database write lock, so appends are
//!   serial even across processes sharing the file. `details` is stored as the exact JSON text
//!   that was hashed.
//! - **Schema** (in `migrations/`, embedded and run by [`open`]): timestamps are INTEGER unix
//!   microseconds, ids TEXT, scope sets and address lists JSON text. Identities, keys, message
//!   copies and audit rows carry an integer `seq` used for ordering and cursors. A message's
//!   bodies (`mail_contents`) and raw bytes (`mail_raw`) are stored once and shared by all its
//!   copies; lists read only the `messages` table (headers and a snippet). With one writer,
//!   sequence numbers become visible in the order they were allocated, so a client waiting
//!   for mail with `after_seq` cannot skip a message.
//!
//! This crate holds SQL and nothing else: whether an action is allowed, and what it means, is
//! decided in `loft-core` before a store method is called.
//!
//! [`AuditRecord::seal`]: loft_core::audit::AuditRecord::seal

mod audit;
pub mod backup;
mod caps;
mod console;
mod contacts;
mod db;
mod delivery;
mod domains;
mod drafts;
mod error;
mod events;
mod hot;
mod identities;
mod jobs;
mod mail;
mod notices;
mod oversight;
mod oversight_edits;
mod rows;
mod rules;
mod schedule;
mod search;
mod vault;
mod webhooks;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use loft_core::mail::StorePage;
use loft_core::store::Store;
use loft_core::{Error, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, Sqlite, SqliteConnection, Transaction};

use crate::error::map_err;
use crate::writer::Writer;

/// How long a connection waits for a lock held by another connection (or process).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read-only connections in the pool.
const READERS: u32 = 8;
/// The most rows one call returns (audit export asks for up to this many). A limit is
/// otherwise taken as given, 0 included (an empty page), as on PostgreSQL.
const MAX_LIMIT: u32 = 10_000;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The SQLite implementation of [`Store`]. Cheap to share behind an `Arc`; call
/// [`SqliteStore::close`] on shutdown to finish queued writes and close the file cleanly.
pub struct SqliteStore {
    path: PathBuf,
    reader: SqlitePool,
    /// `rusqlite` read connections for the hot reads (`hot.rs`).
    hot: hot::HotReads,
    writer: Writer,
    /// Bumped after every committed identity or key change (`IdentityStore::key_epoch`).
    key_epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Opens (creating the file, not its directory, if missing) and migrates the database at
/// `path`. Must be called inside a Tokio runtime: it starts the writer task.
pub async fn open(path: &Path) -> Result<SqliteStore> {
    SqliteStore::open(path).await
}

/// Like [`open`], from `sqlite://PATH` or `sqlite:PATH` (query parameters are not accepted:
/// the settings above are not negotiable).
pub async fn open_url(url: &str) -> Result<SqliteStore> {
    SqliteStore::open_url(url).await
}

/// The database holds mail, key digests and the audit log: it, its WAL and its shared-memory
/// file are readable by the owner only, whatever the umask. The file is created here, 0600,
/// before SQLite opens it, because SQLite gives the WAL and shared-memory files the mode of
/// the database file; files left by an older version are tightened.
#[cfg(unix)]
fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    match backup::create_private_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = Path::new(&file);
        match std::fs::metadata(file) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_to_owner(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Statements the writer's `rusqlite` connection keeps prepared (every write of a batch).
const WRITER_STATEMENTS: usize = 128;

/// The writer's `rusqlite` connection, on a file that exists and is migrated. The same
/// settings as sqlx's writer connection: foreign keys enforced, every `COMMIT` durable, and
/// the busy timeout (another process may hold the write lock).
fn open_writer(path: &Path) -> Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let cannot = |e: rusqlite::Error| {
        Error::Unavailable(format!(
            "cannot open the SQLite database {} for writing: {}",
            path.display(),
            crate::error::map_rusqlite(e)
        ))
    };
    // NO_MUTEX: the writer uses it from one thread at a time.
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(cannot)?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;")
        .map_err(cannot)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(cannot)?;
    conn.set_prepared_statement_cache_capacity(WRITER_STATEMENTS);
    Ok(conn)
}

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<Self> {
        let cannot_open = |e: sqlx::Error| -> Error {
            // Say which file: the usual causes (missing directory, permissions) are about it.
            Error::Unavailable(format!(
                "cannot open the SQLite database {}: {}",
                path.display(),
                map_err(e)
            ))
        };
        restrict_to_owner(path).map_err(|e| {
            Error::Unavailable(format!(
                "cannot make the SQLite database {} owner-only: {e}",
                path.display()
            ))
        })?;
        let base = SqliteConnectOptions::new()
            .filename(path)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);

        // The one read-write connection. WAL is a property of the file, set here once;
        // synchronous=FULL makes every COMMIT durable before the writer answers.
        let write_options = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let mut conn = SqliteConnection::connect_with(&write_options)
            .await
            .map_err(cannot_open)?;
        if let Err(e) = MIGRATOR.run(&mut conn).await {
            let _ = conn.close().await;
            return Err(Error::Internal(format!(
                "migrating the SQLite database {}: {e}",
                path.display()
            )));
        }

        let native = match open_writer(path) {
            Ok(native) => native,
            Err(e) => {
                let _ = conn.close().await;
                return Err(e);
            }
        };
        let reader = match SqlitePoolOptions::new()
            .max_connections(READERS)
            .min_connections(1)
            .acquire_timeout(BUSY_TIMEOUT)
            // No ping (a round trip to the connection's worker thread) on every acquire: a
            // connection to a local file does not go stale. sqlx still pings on release.
            .test_before_acquire(false)
            .connect_with(base.clone().read_only(true))
            .await
        {
            Ok(pool) => pool,
            Err(e) => {
                let _ = conn.close().await;
                return Err(cannot_open(e));
            }
        };
        Ok(Self {
            path: path.to_owned(),
            hot: hot::HotReads::new(path, READERS as usize),
            reader,
            writer: Writer::spawn(conn, native),
            key_epoch: std::sync::Arc::default(),
        })
    }

    pub async fn open_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                Error::invalid(
                    "invalid_database_url",
                    "a SQLite URL starts with `sqlite://` or `sqlite:`",
                )
            })?;
        if rest.is_empty() || rest.contains('?') || rest == ":memory:" {
            return Err(Error::invalid(
                "invalid_database_url",
                "a SQLite URL names a file: `sqlite://PATH` (no query parameters, no :memory:)",
            ));
        }
        // `sqlite:///abs/path` and `sqlite://rel/path` both mean the path after the scheme.
        Self::open(Path::new(rest)).await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write transactions committed since [`open`]. Fewer than the writes made means group
    /// commit is sharing fsyncs; benchmarks print it next to the write count.
    pub fn committed_batches(&self) -> u64 {
        self.writer.commits()
    }

    /// Graceful shutdown: runs the writes already queued, refuses new ones, and closes every
    /// connection. Calls made afterwards fail with `Unavailable`.
    pub async fn close(&self) {
        self.writer.close().await;
        self.hot.close();
        self.reader.close().await;
    }

    /// A read transaction on a read-only connection: every query in it sees one snapshot.
    async fn reading(&self) -> Result<Transaction<'static, Sqlite>> {
        self.reader.begin().await.map_err(map_err)
    }

    /// Runs `f`, a hot read of the given cost, whole on a `rusqlite` read connection (see
    /// `hot.rs`). A read of several statements must run them in one transaction
    /// (`hot::snapshot`) to see one snapshot. `f` may run twice (a short
    /// read that would wait for a lock runs again where it may wait).
    async fn hot<T, F>(&self, cost: hot::Cost, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&rusqlite::Connection) -> Result<T> + Send + 'static,
    {
        self.hot.run(cost, f).await
    }

    /// Runs `f` in the writer's next group commit on its `rusqlite` connection (see
    /// `writer.rs`; `db::at_once` runs a write function written against [`db::Db`] there).
    async fn write_native<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T> + Send + 'static,
    {
        self.writer.write_native(f).await
    }

    /// Runs `f` in the writer's next group commit on its sqlx connection (see `writer.rs`).
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> futures::future::BoxFuture<'c, Result<T>> + Send + 'static,
    {
        self.writer.write(f).await
    }
}

/// Ends a read transaction and passes its result on.
async fn done<T>(tx: Transaction<'static, Sqlite>, out: Result<T>) -> Result<T> {
    let out = out?;
    tx.commit().await.map_err(map_err)?;
    Ok(out)
}

/// The page size: the caller's limit, at most [`MAX_LIMIT`].
pub(crate) fn page_limit(limit: u32) -> u32 {
    limit.min(MAX_LIMIT)
}

/// Cuts `rows` (fetched with `limit + 1`) to a page; the cursor is the last item's seq when
/// more rows exist.
pub(crate) fn paged<T>(mut rows: Vec<T>, limit: u32, seq: impl Fn(&T) -> i64) -> StorePage<T> {
    let limit = limit as usize;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_before = if more { rows.last().map(seq) } else { None };
    StorePage {
        items: rows,
        next_before,
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }

    fn data_epoch(&self) -> Option<u64> {
        // The server holds the database's lock file, so this writer is the only one.
        Some(self.writer.ended())
    }

    /// One hot read, one read transaction: statements that each took (and released) the
    /// file's WAL read lock on their own made `whoami` contend for that lock's mutex between
    /// the runtime's workers (docs/benchmarks.md, "whoami in one read, ...").
    async fn whoami_context(
        &self,
        identity: &loft_core::identity::Identity,
    ) -> Result<loft_core::store::WhoAmIContext> {
        let id = identity.id.clone();
        let has_parent = identity.parent_id().is_some();
        self.hot(hot::Cost::Short, move |c| {
            hot::snapshot(c, |c| {
                Ok(loft_core::store::WhoAmIContext {
                    // A recursive query costs a temporary table even when it finds nothing.
                    ancestors: if has_parent {
                        identities::ancestors(c, &id)?
                    } else {
                        Vec::new()
                    },
                    instance_caps: caps::instance_caps(c)?,
                    mode_request: oversight_edits::get_mode_request_hot(c, &id)?,
                })
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests;
