//! Loft's storage port ([`loft_core::store::Store`]) on Postgres, for several `loft serve`
//! nodes sharing one database.
//!
//! This crate owns the Postgres schema (`migrations/`, embedded and run by [`connect`]) and
//! every SQL statement Loft sends to Postgres. It decides nothing about permissions or
//! meaning: `loft-core` does that and hands over use-case-shaped calls. It must behave exactly
//! like `loft-store-sqlite`; the shared conformance suite in `loft-testkit` is the judge.
//!
//! # Writes, and why they are serialised
//!
//! Every mutating method is **one transaction** whose **first statement** is
//!
//! ```sql
//! SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE
//! ```
//!
//! on the single-row chain head (seeded by the migration with seq 0 and
//! [`loft_core::audit::GENESIS_HASH`]). The transaction then makes its change, seals its audit
//! row(s) after the head with [`loft_core::audit::AuditRecord::seal`], moves the head, and
//! commits. [`Store::append_audit`] is the same with only the row (see `WriteTx`).
//!
//! Taking that row lock first, everywhere, gives:
//! - **A correct hash chain across processes.** Two nodes cannot both read head *n* and both
//!   append *n + 1*; the second waits for the first to commit and then reads the new head
//!   (`FOR UPDATE` under READ COMMITTED re-reads the latest committed version of the row).
//! - **One lock order, so no deadlocks** between Loft's own transactions: every writer holds
//!   the head before it touches any other row.
//! - **Mail sequence numbers that commit in order.** `messages.seq` comes from an identity
//!   column, and since writers are serialised, a higher seq never becomes visible before a
//!   lower one; waiting on `after_seq` cannot skip a message.
//!
//! The price: **writes are serialised across the whole deployment**, so write throughput is
//! bounded by one transaction at a time (a few milliseconds each on a local server; network
//! round trips to the database add to every write). Reads take no lock and scale with nodes.
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
mod identities;
mod jobs;
mod mail;
mod rows;
#[cfg(test)]
mod tests;
mod vault;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use loft_core::address::EmailAddress;
use loft_core::audit::{AuditEntry, AuditQuery, AuditRecord, ChainHead};
use loft_core::identity::{Identity, NewIdentity};
use loft_core::ids::{IdentityId, KeyId, MessageId, ThreadId};
use loft_core::keys::{KeyMeta, StoredKey};
use loft_core::mail::{
    Message, MessagePatch, MessageQuery, MessageSummary, NewMail, StorePage, Thread, ThreadQuery, ThreadSummary,
};
use loft_core::store::{IdentityQuery, IdentityUpdate, Store};
use loft_core::time::Timestamp;
use loft_core::vault::{CredentialMeta, MasterKeyCheck, StoredCredential};
use loft_core::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

/// Connections per node. Writers are serialised on the chain head anyway; the rest serve reads.
const MAX_CONNECTIONS: u32 = 10;
/// How long a request waits for a pooled connection before the store reports `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Session settings for every connection. A node that stalls inside a transaction (paused VM,
/// network partition) would otherwise hold the chain head, and so every node's writes,
/// indefinitely: the server ends such a session, and a writer gives up waiting for the head
/// with `Unavailable` instead of hanging. Loft's transactions never wait on anything but the
/// database, so neither limit is reached in normal operation.
const SESSION_SETTINGS: [(&str, &str); 2] = [("idle_in_transaction_session_timeout", "30s"), ("lock_timeout", "30s")];

/// The Postgres store. Cheap to clone (it is a connection pool handle).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

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
        Ok(Self { pool })
    }

    /// Closes the pool, waiting for checked-out connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
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
            // available (`lock_timeout` on the chain head).
            if code.starts_with("08")
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

/// A write transaction that holds the audit chain head.
///
/// [`WriteTx::begin`] opens the transaction and locks the head row as its first statement;
/// [`WriteTx::audit`] seals rows onto the chain; [`WriteTx::commit`] moves the head and
/// commits. Dropping it without committing rolls everything back, head included.
pub(crate) struct WriteTx {
    tx: Transaction<'static, Postgres>,
    seq: i64,
    hash: String,
}

impl WriteTx {
    pub(crate) async fn begin(pool: &PgPool) -> Result<Self> {
        let mut tx = pool.begin().await.map_err(db_err)?;
        let (seq, hash): (i64, String) = sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        Ok(Self { tx, seq, hash })
    }

    /// The connection to run the change on.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Seals `entry` after the current head and inserts it.
    pub(crate) async fn audit(&mut self, entry: AuditEntry) -> Result<()> {
        let record = AuditRecord::seal(entry, self.seq, &self.hash);
        audit_log::insert(&mut self.tx, &record).await?;
        self.seq = record.seq;
        self.hash = record.hash;
        Ok(())
    }

    pub(crate) async fn commit(mut self) -> Result<()> {
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(self.seq)
            .bind(&self.hash)
            .execute(&mut *self.tx)
            .await
            .map_err(db_err)?;
        self.tx.commit().await.map_err(db_err)
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn append_audit(&self, entry: AuditEntry) -> Result<()> {
        let mut w = WriteTx::begin(&self.pool).await?;
        w.audit(entry).await?;
        w.commit().await
    }

    async fn find_key(&self, id: &KeyId) -> Result<Option<(StoredKey, Identity)>> {
        identities::find_key(&self.pool, id).await
    }

    async fn create_identity(&self, new: NewIdentity, audit: AuditEntry) -> Result<()> {
        identities::create_identity(&self.pool, &new, audit).await
    }

    async fn get_identity(&self, id: &IdentityId) -> Result<Option<Identity>> {
        identities::get_identity(&self.pool, id).await
    }

    async fn list_identities(&self, query: IdentityQuery) -> Result<StorePage<Identity>> {
        identities::list_identities(&self.pool, &query).await
    }

    async fn update_identity(&self, id: &IdentityId, update: IdentityUpdate, audit: AuditEntry) -> Result<Identity> {
        identities::update_identity(&self.pool, id, &update, audit).await
    }

    async fn revoke_identity(&self, id: &IdentityId, at: Timestamp, audit: AuditEntry) -> Result<Vec<IdentityId>> {
        identities::revoke_identity(&self.pool, id, at, audit).await
    }

    async fn ancestors(&self, id: &IdentityId) -> Result<Vec<Identity>> {
        identities::ancestors(&self.pool, id).await
    }

    async fn usage(&self, identity: &IdentityId) -> Result<loft_core::quota::Usage> {
        identities::usage(&self.pool, identity).await
    }

    async fn mailbox_labels(&self, owner: &IdentityId, labels: &[String]) -> Result<(u64, u64)> {
        identities::mailbox_labels(&self.pool, owner, labels).await
    }

    async fn mailbox_bytes(&self, owners: &[IdentityId]) -> Result<Vec<(IdentityId, u64)>> {
        identities::mailbox_bytes(&self.pool, owners).await
    }

    async fn resolve_addresses(&self, addresses: &[EmailAddress]) -> Result<Vec<(EmailAddress, IdentityId)>> {
        identities::resolve_addresses(&self.pool, addresses).await
    }

    async fn create_key(&self, key: StoredKey, replaces: Option<KeyId>, audit: AuditEntry) -> Result<()> {
        identities::create_key(&self.pool, &key, replaces.as_ref(), audit).await
    }

    async fn list_keys(&self, identity: &IdentityId) -> Result<Vec<KeyMeta>> {
        identities::list_keys(&self.pool, identity).await
    }

    async fn revoke_key(
        &self,
        identity: &IdentityId,
        key: &KeyId,
        at: Timestamp,
        audit: AuditEntry,
    ) -> Result<KeyMeta> {
        identities::revoke_key(&self.pool, identity, key, at, audit).await
    }

    async fn send_mail(&self, mail: NewMail, audit: AuditEntry) -> Result<Message> {
        mail::send_mail(&self.pool, mail, audit).await
    }

    async fn list_messages(&self, owner: &IdentityId, query: MessageQuery) -> Result<StorePage<MessageSummary>> {
        mail::list_messages(&self.pool, owner, &query).await
    }

    async fn get_message(&self, owner: &IdentityId, id: &MessageId) -> Result<Option<Message>> {
        mail::get_message(&self.pool, owner, id).await
    }

    async fn read_message(&self, owner: &IdentityId, id: &MessageId, audit: AuditEntry) -> Result<Message> {
        mail::read_message(&self.pool, owner, id, audit).await
    }

    async fn raw_message(&self, owner: &IdentityId, id: &MessageId) -> Result<Option<Vec<u8>>> {
        mail::raw_message(&self.pool, owner, id).await
    }

    async fn update_message(
        &self,
        owner: &IdentityId,
        id: &MessageId,
        patch: MessagePatch,
        audit: AuditEntry,
    ) -> Result<Message> {
        mail::update_message(&self.pool, owner, id, &patch, audit).await
    }

    async fn list_threads(&self, owner: &IdentityId, query: ThreadQuery) -> Result<StorePage<ThreadSummary>> {
        mail::list_threads(&self.pool, owner, &query).await
    }

    async fn read_thread(&self, owner: &IdentityId, id: &ThreadId, audit: AuditEntry) -> Result<Thread> {
        mail::read_thread(&self.pool, owner, id, audit).await
    }

    async fn latest_mail_seq(&self, owner: &IdentityId) -> Result<i64> {
        mail::latest_mail_seq(&self.pool, owner).await
    }

    async fn list_audit(&self, query: AuditQuery) -> Result<StorePage<AuditRecord>> {
        audit_log::list(&self.pool, &query).await
    }

    async fn audit_after(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        audit_log::after(&self.pool, after_seq, limit).await
    }

    async fn audit_head(&self) -> Result<Option<ChainHead>> {
        audit_log::head(&self.pool).await
    }

    async fn vault_key_checks(&self) -> Result<Vec<MasterKeyCheck>> {
        vault::key_checks(&self.pool).await
    }

    async fn vault_register_key(&self, check: MasterKeyCheck, audit: AuditEntry) -> Result<bool> {
        vault::register_key(&self.pool, &check, audit).await
    }

    async fn vault_key_ids_in_use(&self) -> Result<Vec<String>> {
        vault::key_ids_in_use(&self.pool).await
    }

    async fn vault_create(&self, credential: StoredCredential, audit: AuditEntry) -> Result<()> {
        vault::create(&self.pool, &credential, audit).await
    }

    async fn vault_get(&self, owner: &IdentityId, name: &str) -> Result<Option<StoredCredential>> {
        vault::get(&self.pool, owner, name).await
    }

    async fn vault_list(
        &self,
        owner: &IdentityId,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<StorePage<CredentialMeta>> {
        vault::list(&self.pool, owner, before_seq, limit).await
    }

    async fn vault_update(&self, credential: StoredCredential, expected_version: i64, audit: AuditEntry) -> Result<()> {
        vault::update(&self.pool, &credential, expected_version, audit).await
    }

    async fn vault_delete(&self, owner: &IdentityId, name: &str, audit: AuditEntry) -> Result<()> {
        vault::delete(&self.pool, owner, name, audit).await
    }

    async fn vault_stale(&self, current_key_id: &str, limit: u32) -> Result<Vec<StoredCredential>> {
        vault::stale(&self.pool, current_key_id, limit).await
    }

    async fn vault_rewrap(&self, batch: Vec<(StoredCredential, i64)>, audit: AuditEntry) -> Result<u64> {
        vault::rewrap(&self.pool, &batch, audit).await
    }
}
