//! The credential vault: sealed credentials per owner and the master key check values.
//!
//! Every lookup is scoped by the owner; another owner's credential behaves like a missing one.
//! Only sealed bytes and descriptive metadata are stored here.

use loft_core::audit::AuditEntry;
use loft_core::ids::IdentityId;
use loft_core::mail::StorePage;
use loft_core::time::Timestamp;
use loft_core::vault::{CredentialMeta, MasterKeyCheck, Sealed, StoredCredential};
use loft_core::{Error, Result};
use sqlx::{Row as _, SqliteConnection};

use crate::error::map_err;
use crate::rows::{from_json, to_json};
use crate::{audit, page_limit, paged};

const COLS: &str = "seq, owner_id, name, meta, version, created_at, updated_at, ciphertext, nonce, wrapped_key, \
                    wrap_nonce, master_key_id";

fn credential(row: &sqlx::sqlite::SqliteRow) -> Result<(i64, StoredCredential)> {
    let get = |e: sqlx::Error| Error::internal(format!("reading a vault row: {e}"));
    let meta_text: String = row.try_get("meta").map_err(get)?;
    let mut meta: CredentialMeta = from_json(&meta_text, "meta")?;
    meta.name = row.try_get("name").map_err(get)?;
    meta.version = row.try_get("version").map_err(get)?;
    meta.created_at = Timestamp::from_micros(row.try_get("created_at").map_err(get)?);
    meta.updated_at = Timestamp::from_micros(row.try_get("updated_at").map_err(get)?);
    Ok((
        row.try_get("seq").map_err(get)?,
        StoredCredential {
            owner: IdentityId::from_trusted(row.try_get("owner_id").map_err(get)?),
            meta,
            sealed: Sealed {
                ciphertext: row.try_get("ciphertext").map_err(get)?,
                nonce: row.try_get("nonce").map_err(get)?,
                wrapped_key: row.try_get("wrapped_key").map_err(get)?,
                wrap_nonce: row.try_get("wrap_nonce").map_err(get)?,
                master_key_id: row.try_get("master_key_id").map_err(get)?,
            },
        },
    ))
}

pub(crate) async fn key_checks(conn: &mut SqliteConnection) -> Result<Vec<MasterKeyCheck>> {
    let rows: Vec<(String, Vec<u8>, Vec<u8>, i64)> =
        sqlx::query_as("SELECT key_id, nonce, check_value, created_at FROM vault_master_keys ORDER BY created_at")
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
    Ok(rows
        .into_iter()
        .map(|(key_id, nonce, check, at)| MasterKeyCheck {
            key_id,
            nonce,
            check,
            created_at: Timestamp::from_micros(at),
        })
        .collect())
}

pub(crate) async fn register_key(conn: &mut SqliteConnection, c: MasterKeyCheck, entry: AuditEntry) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO vault_master_keys (key_id, nonce, check_value, created_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (key_id) DO NOTHING",
    )
    .bind(c.key_id)
    .bind(c.nonce)
    .bind(c.check)
    .bind(c.created_at.as_micros())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?
    .rows_affected();
    if done == 0 {
        return Ok(false);
    }
    audit::append(conn, entry).await?;
    Ok(true)
}

pub(crate) async fn key_ids_in_use(conn: &mut SqliteConnection) -> Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT master_key_id FROM vault_items UNION SELECT master_key_id FROM domain_keys \
         UNION SELECT secret_key_id FROM webhooks \
         UNION SELECT prev_key_id FROM webhooks WHERE prev_key_id IS NOT NULL ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)
}

pub(crate) async fn create(conn: &mut SqliteConnection, c: StoredCredential, entry: AuditEntry) -> Result<()> {
    let m = &c.meta;
    sqlx::query(
        "INSERT INTO vault_items (owner_id, name, kind, meta, version, created_at, updated_at, ciphertext, nonce, \
         wrapped_key, wrap_nonce, master_key_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(c.owner.as_str().to_owned())
    .bind(m.name.clone())
    .bind(m.kind.as_str())
    .bind(to_json(m, "meta")?)
    .bind(m.version)
    .bind(m.created_at.as_micros())
    .bind(m.updated_at.as_micros())
    .bind(c.sealed.ciphertext.clone())
    .bind(c.sealed.nonce.clone())
    .bind(c.sealed.wrapped_key.clone())
    .bind(c.sealed.wrap_nonce.clone())
    .bind(c.sealed.master_key_id.clone())
    .execute(&mut *conn)
    .await
    .map_err(|e| match map_err(e) {
        Error::Conflict(_) => Error::conflict("credential_exists", "a credential of this name exists already"),
        other => other,
    })?;
    audit::append(conn, entry).await?;
    Ok(())
}

pub(crate) async fn get(
    conn: &mut SqliteConnection,
    owner: &IdentityId,
    name: &str,
) -> Result<Option<StoredCredential>> {
    let sql = format!("SELECT {COLS} FROM vault_items WHERE owner_id = ? AND name = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(owner.as_str().to_owned())
        .bind(name.to_owned())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    row.as_ref().map(credential).transpose().map(|o| o.map(|(_, c)| c))
}

pub(crate) async fn all(conn: &mut SqliteConnection, owner: &IdentityId) -> Result<Vec<StoredCredential>> {
    let sql = format!("SELECT {COLS} FROM vault_items WHERE owner_id = ? ORDER BY seq");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(owner.as_str().to_owned())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    rows.iter().map(|r| credential(r).map(|(_, c)| c)).collect()
}

pub(crate) async fn list(
    conn: &mut SqliteConnection,
    owner: &IdentityId,
    before: Option<i64>,
    limit: u32,
) -> Result<StorePage<CredentialMeta>> {
    let limit = page_limit(limit);
    let sql = format!("SELECT {COLS} FROM vault_items WHERE owner_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(owner.as_str().to_owned())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    let items = rows.iter().map(credential).collect::<Result<Vec<_>>>()?;
    let page = paged(items, limit, |(seq, _)| *seq);
    Ok(StorePage {
        items: page.items.into_iter().map(|(_, c)| c.meta).collect(),
        next_before: page.next_before,
    })
}

/// Writes the row if its version is still `expected`; returns whether it did.
async fn write_if(conn: &mut SqliteConnection, c: &StoredCredential, expected: i64) -> Result<bool> {
    let m = &c.meta;
    let n = sqlx::query(
        "UPDATE vault_items SET meta = ?, version = ?, updated_at = ?, ciphertext = ?, nonce = ?, wrapped_key = ?, \
         wrap_nonce = ?, master_key_id = ? WHERE owner_id = ? AND name = ? AND version = ?",
    )
    .bind(to_json(m, "meta")?)
    .bind(m.version)
    .bind(m.updated_at.as_micros())
    .bind(c.sealed.ciphertext.clone())
    .bind(c.sealed.nonce.clone())
    .bind(c.sealed.wrapped_key.clone())
    .bind(c.sealed.wrap_nonce.clone())
    .bind(c.sealed.master_key_id.clone())
    .bind(c.owner.as_str().to_owned())
    .bind(m.name.clone())
    .bind(expected)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?
    .rows_affected();
    Ok(n == 1)
}

pub(crate) async fn update(
    conn: &mut SqliteConnection,
    c: StoredCredential,
    expected: i64,
    entry: AuditEntry,
) -> Result<()> {
    if !write_if(conn, &c, expected).await? {
        let exists: Option<i64> = sqlx::query_scalar("SELECT version FROM vault_items WHERE owner_id = ? AND name = ?")
            .bind(c.owner.as_str().to_owned())
            .bind(c.meta.name.clone())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
        return Err(match exists {
            None => Error::not_found("credential"),
            Some(_) => Error::conflict("version_conflict", "the credential changed since it was read"),
        });
    }
    audit::append(conn, entry).await?;
    Ok(())
}

pub(crate) async fn delete(
    conn: &mut SqliteConnection,
    owner: &IdentityId,
    name: &str,
    entry: AuditEntry,
) -> Result<()> {
    let n = sqlx::query("DELETE FROM vault_items WHERE owner_id = ? AND name = ?")
        .bind(owner.as_str().to_owned())
        .bind(name.to_owned())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected();
    if n == 0 {
        return Err(Error::not_found("credential"));
    }
    audit::append(conn, entry).await?;
    Ok(())
}

pub(crate) async fn stale(conn: &mut SqliteConnection, current: &str, limit: u32) -> Result<Vec<StoredCredential>> {
    let sql = format!("SELECT {COLS} FROM vault_items WHERE master_key_id <> ? ORDER BY seq LIMIT ?");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(current.to_owned())
        .bind(i64::from(page_limit(limit)))
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    rows.iter().map(|r| credential(r).map(|(_, c)| c)).collect()
}

pub(crate) async fn rewrap(
    conn: &mut SqliteConnection,
    batch: Vec<(StoredCredential, i64)>,
    entry: AuditEntry,
) -> Result<u64> {
    let mut n = 0;
    for (c, expected) in &batch {
        if write_if(conn, c, *expected).await? {
            n += 1;
        }
    }
    let mut entry = entry;
    if let Some(obj) = entry.details.as_object_mut() {
        obj.insert("rewrapped".into(), n.into());
    }
    audit::append(conn, entry).await?;
    Ok(n)
}

#[async_trait::async_trait]
impl loft_core::store::VaultStore for crate::SqliteStore {
    async fn vault_key_checks(&self) -> Result<Vec<MasterKeyCheck>> {
        let mut tx = self.reading().await?;
        let out = self::key_checks(&mut tx).await;
        crate::done(tx, out).await
    }

    async fn vault_register_key(&self, check: MasterKeyCheck, audit: AuditEntry) -> Result<bool> {
        self.write(move |c| Box::pin(self::register_key(c, check, audit))).await
    }

    async fn vault_key_ids_in_use(&self) -> Result<Vec<String>> {
        let mut tx = self.reading().await?;
        let out = self::key_ids_in_use(&mut tx).await;
        crate::done(tx, out).await
    }

    async fn vault_create(&self, credential: StoredCredential, audit: AuditEntry) -> Result<()> {
        self.write(move |c| Box::pin(self::create(c, credential, audit))).await
    }

    async fn vault_get(&self, owner: &IdentityId, name: &str) -> Result<Option<StoredCredential>> {
        let mut tx = self.reading().await?;
        let out = self::get(&mut tx, owner, name).await;
        crate::done(tx, out).await
    }

    async fn vault_all(&self, owner: &IdentityId) -> Result<Vec<StoredCredential>> {
        let mut tx = self.reading().await?;
        let out = self::all(&mut tx, owner).await;
        crate::done(tx, out).await
    }

    async fn vault_list(
        &self,
        owner: &IdentityId,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<StorePage<CredentialMeta>> {
        let mut tx = self.reading().await?;
        let out = self::list(&mut tx, owner, before_seq, limit).await;
        crate::done(tx, out).await
    }

    async fn vault_update(&self, credential: StoredCredential, expected_version: i64, audit: AuditEntry) -> Result<()> {
        self.write(move |c| Box::pin(self::update(c, credential, expected_version, audit)))
            .await
    }

    async fn vault_delete(&self, owner: &IdentityId, name: &str, audit: AuditEntry) -> Result<()> {
        let (owner, name) = (owner.clone(), name.to_owned());
        self.write(move |c| Box::pin(async move { self::delete(c, &owner, &name, audit).await }))
            .await
    }

    async fn vault_stale(&self, current_key_id: &str, limit: u32) -> Result<Vec<StoredCredential>> {
        let mut tx = self.reading().await?;
        let out = self::stale(&mut tx, current_key_id, limit).await;
        crate::done(tx, out).await
    }

    async fn vault_rewrap(&self, batch: Vec<(StoredCredential, i64)>, audit: AuditEntry) -> Result<u64> {
        self.write(move |c| Box::pin(self::rewrap(c, batch, audit))).await
    }
}
