//! Loft's storage port ([`loft_core::store::Store`]) on Postgres, for several `loft serve`
//! nodes sharing one database.
//!
//! This crate owns the Postgres schema (`migrations/`, embedded and run by [`connect`]) and
//! every SQL statement Loft sends to Postgres. It decides nothing about permissions or
//! meaning: `loft-core` does that and hands over use-case-shaped calls. It must behave exactly
//! like `loft-store-sqlite`; the shared conformance suite in `loft-testkit` is the judge.
//!
//! # Writes, and what orders them
//!
//! Every mutating method is **one transaction**: its change, its audit entries and anything it
//! queues commit together or not at all (see `WriteTx`). No transaction takes a lock that
//! every writer takes; what used to be one global lock (the audit chain head, locked first by
//! every writer of every node) is now three narrow ones:
//!
//! - **The audit chain is sealed after the fact.** A writer inserts its entries, unchained,
//!   into `audit_pending`; the sealer (`sealer.rs`: one at a time per database, on whichever
//!   node, under an advisory lock only sealers take) gives them their sequence numbers and
//!   hashes in batches, and every reader of the log seals first, so what `list_audit`,
//!   `audit_after` and `audit_head` return is exactly what the chain would have held had each
//!   writer chained its own rows. Writers never wait for the sealer.
//! - **Each mailbox orders its own mail.** A send locks the `mailbox_usage` row of every
//!   mailbox it writes to, in id order (so two sends cannot deadlock), before it draws the
//!   `messages.seq` of its copies, and holds the locks until it commits: within one mailbox a
//!   higher seq never becomes visible before a lower one, which is all that waiting on
//!   `after_seq` needs. Sends to different mailboxes do not wait for each other.
//! - **Identity and key changes take one advisory lock of their own** (`IDENTITY_LOCK`): they
//!   are administrative and rare, and serialising them keeps the delegation tree simple to
//!   reason about (a child cannot be created under a parent being revoked at the same moment,
//!   two rotations of one key cannot both succeed). Mail and vault writes never take it.
//!
//! Row-level races that remain are settled by the statements themselves: a message's labels
//! are changed under that message's row lock, credentials by version (`WHERE version = $n`),
//! keys and addresses by unique constraints. A deadlock or serialisation failure PostgreSQL
//! reports anyway is `Unavailable` (retryable), never a half-written change.
//!
//! Keep write transactions short: no network calls or heavy work inside them.
//!
//! # Storage conventions
//!
//! Ids are TEXT, timestamps BIGINT unix microseconds, scope sets / address lists / delivery /
//! authentication TEXT holding JSON, audit `details` TEXT written by `serde_json` (never
//! `jsonb`, which reorders keys and would break the hash). Raw RFC 5322 bytes are BYTEA in
//! `mail_contents`, shared by all copies of one message and loaded only by `raw_message`;
//! lists read a precomputed snippet instead of bodies. Labels live in `message_labels`.
//!
//! # Errors
//!
//! `db_err` is the one place sqlx errors become [`loft_core::Error`]s: unique violations are
//! `Conflict`, connection and pool trouble is `Unavailable`, the rest `Internal` (for the
//! server log; never secret values, and never the connection URL).

mod audit_log;
mod caps;
mod console;
mod contacts;
mod delivery;
mod domains;
mod drafts;
mod events;
mod identities;
mod jobs;
mod mail;
mod notices;
mod oversight;
mod oversight_edits;
mod rows;
mod rules;
mod schedule;
mod sealer;
mod search;
#[cfg(test)]
mod tests;
mod vault;
mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use loft_core::audit::AuditEntry;
use loft_core::store::Store;
use loft_core::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

/// Connections per node, shared by readers, writers and the node's audit sealer; one more is
/// held by the node's event listener.
const MAX_CONNECTIONS: u32 = 11;
/// The advisory lock identity and key changes take (`LOFTIDEN` in ASCII); see the crate docs.
const IDENTITY_LOCK: i64 = 0x4c4f_4654_4944_454e;
/// How long a request waits for a pooled connection before the store reports `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Session settings for every connection. A node that stalls inside a transaction (paused VM,
/// network partition) would otherwise hold its row locks (a mailbox, the sealer's or the
/// identity lock) indefinitely: the server ends such a session, and a writer gives up waiting
/// for a lock with `Unavailable` instead of hanging. Loft's transactions never wait on anything but the
/// database, so neither limit is reached in normal operation.
///
/// Every statement runs with a generic plan (`plan_cache_mode`): planned once per connection
/// for any owner, as if each identity held an average share of the messages. With the default
/// (a plan per call for the first calls, using the actual parameter values), an identity holding
/// a large share of all messages made PostgreSQL walk the whole `messages` primary key
/// backwards from a list cursor, filtering on the owner, instead of that owner's own index: two
/// seconds for one page whose cursor pointed into a gap of other identities' mail, found at ten
/// million messages (docs/benchmarks.md). A generic plan takes the owner's index for everyone.
/// The exceptions go through [`planned_for_values`].
const SESSION_SETTINGS: [(&str, &str); 3] = [
    ("idle_in_transaction_session_timeout", "30s"),
    ("lock_timeout", "30s"),
    ("plan_cache_mode", "force_generic_plan"),
];

/// The Postgres store. Cheap to clone (a connection pool handle, the node's audit sealer and its event listener,
/// which stop when the last clone is dropped).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    sealer: std::sync::Arc<sealer::Sealer>,
    listener: std::sync::Arc<events::Listener>,
    /// Bumped after every committed identity or key change (`IdentityStore::key_epoch`).
    key_epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

pub use sealer::SealerStats;

/// Connects to `url`, runs the embedded migrations and returns the store.
///
/// Several nodes may call this at once: sqlx takes a Postgres advisory lock around the
/// migrations. An unreachable server is `Error::Unavailable` naming host and port (never the
/// password).
pub async fn connect(url: &str) -> Result<PostgresStore> {
    PostgresStore::connect(url).await
}

impl PostgresStore {
    /// See [`connect`].
    pub async fn connect(url: &str) -> Result<Self> {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        if !scheme.eq_ignore_ascii_case("postgres") && !scheme.eq_ignore_ascii_case("postgresql") {
            return Err(Error::invalid(
                "invalid_database_url",
                "a PostgreSQL URL starts with postgres:// or postgresql://",
            ));
        }
        // The parse error never contains the URL itself, so it cannot leak a password.
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            Error::invalid("invalid_database_url", format!("the PostgreSQL URL is not valid: {e}"))
                .with_hint("PostgreSQL URLs look like postgres://user:password@host:5432/database")
        })?;
        let target = describe_target(&options);
        let options = options.options(SESSION_SETTINGS);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot connect to PostgreSQL at {target}: {e}")))?;
        sqlx::migrate!("./migrations").run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => match db_err(inner) {
                Error::Unavailable(m) => Error::Unavailable(format!("PostgreSQL at {target}: {m}")),
                other => Error::internal(format!("migrating the PostgreSQL database at {target}: {other}")),
            },
            other => Error::internal(format!("migrating the PostgreSQL database at {target}: {other}")),
        })?;
        tracing::debug!(%target, "connected to PostgreSQL and applied migrations");
        let sealer = std::sync::Arc::new(sealer::Sealer::spawn(pool.clone()));
        let listener = std::sync::Arc::new(events::Listener::spawn(pool.clone()).await?);
        Ok(Self {
            pool,
            sealer,
            listener,
            key_epoch: std::sync::Arc::default(),
        })
    }

    /// Seals what is pending, then closes the pool, waiting for checked-out connections to be
    /// returned.
    pub async fn close(&self) {
        if self.pool.is_closed() {
            return;
        }
        if let Err(e) = sealer::seal_pending(&self.pool, sealer::Wait::Block).await {
            tracing::warn!(error = %e, "could not seal the audit log before closing; another node will");
        }
        self.pool.close().await;
    }

    /// What this node's audit sealer has done (see the crate docs on writes).
    pub fn sealer_stats(&self) -> SealerStats {
        self.sealer.stats()
    }

    /// How many audit rows wait to be sealed.
    pub async fn unsealed_audit_rows(&self) -> Result<i64> {
        sealer::pending_count(&self.pool).await
    }

    /// Wakes the sealer after a write that may have added audit rows.
    /// After an identity or key write has returned (committed, or failed: bumping then is
    /// harmless), invalidates what this node's key cache holds (`IdentityStore::key_epoch`).
    fn keys_changed<T>(&self, result: Result<T>) -> Result<T> {
        self.key_epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.wrote(result)
    }

    fn wrote<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_ok() {
            self.sealer.wake();
        }
        result
    }

    /// The underlying pool (for diagnostics and tests; Loft's code goes through [`Store`]).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// `host:port/database`, for error messages. Never includes user or password.
fn describe_target(options: &PgConnectOptions) -> String {
    let host = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => options.get_host().to_owned(),
    };
    let db = options.get_database().unwrap_or_default();
    if db.is_empty() {
        format!("{host}:{}", options.get_port())
    } else {
        format!("{host}:{}/{db}", options.get_port())
    }
}

/// A read-only transaction whose statements are planned for their own parameter values each
/// time (a custom plan), unlike every other statement (`SESSION_SETTINGS`): for the reads whose
/// best plan depends on how rare a value is, where a generic plan, which assumes an average
/// owner, read a whole million-message mailbox or all of a label's copies to return a page
/// (a search for a word in a thousand of a mailbox's messages, 420 ms instead of 4; a page of a
/// label on 100,000 copies, 500 ms instead of 0.3: docs/benchmarks.md). `BEGIN` and the setting
/// travel as one simple query, so this costs one more round trip (the `COMMIT`).
pub(crate) async fn planned_for_values(pool: &PgPool) -> Result<Transaction<'static, Postgres>> {
    pool.begin_with("BEGIN READ ONLY; SET LOCAL plan_cache_mode = force_custom_plan")
        .await
        .map_err(db_err)
}

/// The one mapping from sqlx errors to Loft's semantic errors.
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    use sqlx::Error as E;
    match e {
        E::Database(db) => {
            let code = db.code().map(std::borrow::Cow::into_owned).unwrap_or_default();
            if code == "23505" {
                return match db.constraint() {
                    Some("identities_address_key") => Error::conflict("address_taken", "the address is already taken"),
                    _ => Error::conflict("conflict", "a record with the same unique value already exists"),
                };
            }
            // Class 08: connection exception; 53: insufficient resources; 57P0x: the server is
            // shutting down or starting; 57014: statement cancelled (timeout); 55P03: lock not
            // available (`lock_timeout`); 40001 / 40P01: serialisation failure or deadlock (the
            // transaction was rolled back whole; trying again is safe).
            if code.starts_with("08")
                || code == "40001"
                || code == "40P01"
                || code.starts_with("53")
                || code.starts_with("57P0")
                || code == "57014"
                || code == "55P03"
            {
                return Error::Unavailable(format!("PostgreSQL ({code}): {}", db.message()));
            }
            Error::Internal(format!("PostgreSQL error {code}: {}", db.message()))
        }
        e @ (E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed) => {
            Error::Unavailable(e.to_string())
        }
        other => Error::Internal(other.to_string()),
    }
}

/// A write transaction: the change and its audit entries commit together.
///
/// [`WriteTx::audit`] appends an entry, unsealed, for the sealer (see the crate docs);
/// [`WriteTx::identities`] first takes the identity lock. Dropping it without committing rolls
/// everything back, audit entries included.
pub(crate) struct WriteTx {
    tx: Transaction<'static, Postgres>,
}

impl WriteTx {
    pub(crate) async fn begin(pool: &PgPool) -> Result<Self> {
        let tx = pool.begin().await.map_err(db_err)?;
        Ok(Self { tx })
    }

    /// A transaction for identity and key changes, serialised among themselves by
    /// `IDENTITY_LOCK` (taken first, so it is the first lock such a transaction holds).
    pub(crate) async fn identities(pool: &PgPool) -> Result<Self> {
        let mut w = Self::begin(pool).await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(IDENTITY_LOCK)
            .execute(&mut *w.tx)
            .await
            .map_err(db_err)?;
        Ok(w)
    }

    /// The connection to run the change on.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Appends `entry` to the audit log, to be sealed once this transaction commits.
    pub(crate) async fn audit(&mut self, entry: AuditEntry) -> Result<()> {
        sealer::append(&mut self.tx, &entry).await
    }

    pub(crate) async fn commit(self) -> Result<()> {
        self.tx.commit().await.map_err(db_err)
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn close(&self) {
        PostgresStore::close(self).await;
    }
}
