//! The credential vault: sealed credentials per owner and the master key check values.
//!
//! Every lookup is scoped by the owner; another owner's credential behaves like a missing one.
//! Only sealed bytes and descriptive metadata are stored here. Writes run in a [`WriteTx`]
//! (holding the chain head), with their audit row.

use loft_core::audit::AuditEntry;
use loft_core::ids::IdentityId;
use loft_core::mail::StorePage;
use loft_core::vault::{CredentialMeta, MasterKeyCheck, Sealed, StoredCredential};
use loft_core::{Error, Result};
use sqlx::postgres::{PgConnection, PgPool, PgRow};

use crate::rows::{self, col};
use crate::{WriteTx, db_err};

const COLS: &str = "SELECT seq, owner_id, name, meta, version, created_at, updated_at, ciphertext, nonce, \
                    wrapped_key, wrap_nonce, master_key_id FROM vault_items";

fn credential(row: &PgRow) -> Result<(i64, StoredCredential)> {
    let mut meta: CredentialMeta = rows::json_col(row, "meta")?;
    meta.name = col(row, "name")?;
    meta.version = col(row, "version")?;
    meta.created_at = rows::ts(row, "created_at")?;
    meta.updated_at = rows::ts(row, "updated_at")?;
    Ok((
        col(row, "seq")?,
        StoredCredential {
            owner: IdentityId::from_trusted(col(row, "owner_id")?),
            meta,
            sealed: Sealed {
                ciphertext: col(row, "ciphertext")?,
                nonce: col(row, "nonce")?,
                wrapped_key: col(row, "wrapped_key")?,
                wrap_nonce: col(row, "wrap_nonce")?,
                master_key_id: col(row, "master_key_id")?,
            },
        },
    ))
}

pub(crate) async fn key_checks(pool: &PgPool) -> Result<Vec<MasterKeyCheck>> {
    let found: Vec<(String, Vec<u8>, Vec<u8>, i64)> =
        sqlx::query_as("SELECT key_id, nonce, check_value, created_at FROM vault_master_keys ORDER BY created_at")
            .fetch_all(pool)
            .await
            .map_err(db_err)?;
    Ok(found
        .into_iter()
        .map(|(key_id, nonce, check, at)| MasterKeyCheck {
            key_id,
            nonce,
            check,
            created_at: loft_core::time::Timestamp::from_micros(at),
        })
        .collect())
}

pub(crate) async fn register_key(pool: &PgPool, c: &MasterKeyCheck, audit: AuditEntry) -> Result<bool> {
    let mut w = WriteTx::begin(pool).await?;
    let n = sqlx::query(
        "INSERT INTO vault_master_keys (key_id, nonce, check_value, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key_id) DO NOTHING",
    )
    .bind(&c.key_id)
    .bind(&c.nonce)
    .bind(&c.check)
    .bind(c.created_at.as_micros())
    .execute(w.conn())
    .await
    .map_err(db_err)?
    .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    w.audit(audit).await?;
    w.commit().await?;
    Ok(true)
}

pub(crate) async fn key_ids_in_use(pool: &PgPool) -> Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT master_key_id FROM vault_items UNION SELECT master_key_id FROM domain_keys \
         UNION SELECT secret_key_id FROM webhooks \
         UNION SELECT prev_key_id FROM webhooks WHERE prev_key_id IS NOT NULL ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .map_err(db_err)
}

pub(crate) async fn create(pool: &PgPool, c: &StoredCredential, audit: AuditEntry) -> Result<()> {
    let mut w = WriteTx::begin(pool).await?;
    let m = &c.meta;
    sqlx::query(
        "INSERT INTO vault_items (owner_id, name, kind, meta, version, created_at, updated_at, ciphertext, nonce, \
         wrapped_key, wrap_nonce, master_key_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(c.owner.as_str())
    .bind(&m.name)
    .bind(m.kind.as_str())
    .bind(rows::to_json(m)?)
    .bind(m.version)
    .bind(m.created_at.as_micros())
    .bind(m.updated_at.as_micros())
    .bind(&c.sealed.ciphertext)
    .bind(&c.sealed.nonce)
    .bind(&c.sealed.wrapped_key)
    .bind(&c.sealed.wrap_nonce)
    .bind(&c.sealed.master_key_id)
    .execute(w.conn())
    .await
    .map_err(|e| match db_err(e) {
        Error::Conflict(_) => Error::conflict("credential_exists", "a credential of this name exists already"),
        other => other,
    })?;
    w.audit(audit).await?;
    w.commit().await
}

pub(crate) async fn get(pool: &PgPool, owner: &IdentityId, name: &str) -> Result<Option<StoredCredential>> {
    let sql = format!("{COLS} WHERE owner_id = $1 AND name = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(owner.as_str())
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    row.as_ref().map(credential).transpose().map(|o| o.map(|(_, c)| c))
}

pub(crate) async fn all(pool: &PgPool, owner: &IdentityId) -> Result<Vec<StoredCredential>> {
    let sql = format!("{COLS} WHERE owner_id = $1 ORDER BY seq");
    let found = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(owner.as_str())
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    found.iter().map(|r| credential(r).map(|(_, c)| c)).collect()
}

pub(crate) async fn list(
    pool: &PgPool,
    owner: &IdentityId,
    before: Option<i64>,
    limit: u32,
) -> Result<StorePage<CredentialMeta>> {
    let sql = format!("{COLS} WHERE owner_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3");
    let found = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(owner.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit) + 1)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    let items = found
        .iter()
        .map(|r| credential(r).map(|(seq, c)| (seq, c.meta)))
        .collect::<Result<Vec<_>>>()?;
    Ok(rows::page(items, limit))
}

async fn write_if(conn: &mut PgConnection, c: &StoredCredential, expected: i64) -> Result<bool> {
    let m = &c.meta;
    let n = sqlx::query(
        "UPDATE vault_items SET meta = $1, version = $2, updated_at = $3, ciphertext = $4, nonce = $5, \
         wrapped_key = $6, wrap_nonce = $7, master_key_id = $8 WHERE owner_id = $9 AND name = $10 AND version = $11",
    )
    .bind(rows::to_json(m)?)
    .bind(m.version)
    .bind(m.updated_at.as_micros())
    .bind(&c.sealed.ciphertext)
    .bind(&c.sealed.nonce)
    .bind(&c.sealed.wrapped_key)
    .bind(&c.sealed.wrap_nonce)
    .bind(&c.sealed.master_key_id)
    .bind(c.owner.as_str())
    .bind(&m.name)
    .bind(expected)
    .execute(conn)
    .await
    .map_err(db_err)?
    .rows_affected();
    Ok(n == 1)
}

pub(crate) async fn update(pool: &PgPool, c: &StoredCredential, expected: i64, audit: AuditEntry) -> Result<()> {
    let mut w = WriteTx::begin(pool).await?;
    if !write_if(w.conn(), c, expected).await? {
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT version FROM vault_items WHERE owner_id = $1 AND name = $2")
                .bind(c.owner.as_str())
                .bind(&c.meta.name)
                .fetch_optional(w.conn())
                .await
                .map_err(db_err)?;
        return Err(match exists {
            None => Error::not_found("credential"),
            Some(_) => Error::conflict("version_conflict", "the credential changed since it was read"),
        });
    }
    w.audit(audit).await?;
    w.commit().await
}

pub(crate) async fn delete(pool: &PgPool, owner: &IdentityId, name: &str, audit: AuditEntry) -> Result<()> {
    let mut w = WriteTx::begin(pool).await?;
    let n = sqlx::query("DELETE FROM vault_items WHERE owner_id = $1 AND name = $2")
        .bind(owner.as_str())
        .bind(name)
        .execute(w.conn())
        .await
        .map_err(db_err)?
        .rows_affected();
    if n == 0 {
        return Err(Error::not_found("credential"));
    }
    w.audit(audit).await?;
    w.commit().await
}

pub(crate) async fn stale(pool: &PgPool, current: &str, limit: u32) -> Result<Vec<StoredCredential>> {
    let sql = format!("{COLS} WHERE master_key_id <> $1 ORDER BY seq LIMIT $2");
    let found = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(current)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    found.iter().map(|r| credential(r).map(|(_, c)| c)).collect()
}

pub(crate) async fn rewrap(pool: &PgPool, batch: &[(StoredCredential, i64)], mut audit: AuditEntry) -> Result<u64> {
    let mut w = WriteTx::begin(pool).await?;
    let mut n: u64 = 0;
    for (c, expected) in batch {
        if write_if(w.conn(), c, *expected).await? {
            n += 1;
        }
    }
    if let Some(obj) = audit.details.as_object_mut() {
        obj.insert("rewrapped".into(), n.into());
    }
    w.audit(audit).await?;
    w.commit().await?;
    Ok(n)
}

#[async_trait::async_trait]
impl loft_core::store::VaultStore for crate::PostgresStore {
    async fn vault_key_checks(&self) -> Result<Vec<MasterKeyCheck>> {
        self::key_checks(&self.pool).await
    }

    async fn vault_register_key(&self, check: MasterKeyCheck, audit: AuditEntry) -> Result<bool> {
        self.wrote(self::register_key(&self.pool, &check, audit).await)
    }

    async fn vault_key_ids_in_use(&self) -> Result<Vec<String>> {
        self::key_ids_in_use(&self.pool).await
    }

    async fn vault_create(&self, credential: StoredCredential, audit: AuditEntry) -> Result<()> {
        self.wrote(self::create(&self.pool, &credential, audit).await)
    }

    async fn vault_get(&self, owner: &IdentityId, name: &str) -> Result<Option<StoredCredential>> {
        self::get(&self.pool, owner, name).await
    }

    async fn vault_all(&self, owner: &IdentityId) -> Result<Vec<StoredCredential>> {
        self::all(&self.pool, owner).await
    }

    async fn vault_list(
        &self,
        owner: &IdentityId,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<StorePage<CredentialMeta>> {
        self::list(&self.pool, owner, before_seq, limit).await
    }

    async fn vault_update(&self, credential: StoredCredential, expected_version: i64, audit: AuditEntry) -> Result<()> {
        self.wrote(self::update(&self.pool, &credential, expected_version, audit).await)
    }

    async fn vault_delete(&self, owner: &IdentityId, name: &str, audit: AuditEntry) -> Result<()> {
        self.wrote(self::delete(&self.pool, owner, name, audit).await)
    }

    async fn vault_stale(&self, current_key_id: &str, limit: u32) -> Result<Vec<StoredCredential>> {
        self::stale(&self.pool, current_key_id, limit).await
    }

    async fn vault_rewrap(&self, batch: Vec<(StoredCredential, i64)>, audit: AuditEntry) -> Result<u64> {
        self.wrote(self::rewrap(&self.pool, &batch, audit).await)
    }
}
