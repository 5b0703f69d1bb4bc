//! Hosted domains and their sealed DKIM keys (`domains`, `domain_keys`, migration 0024).

use loft_core::audit::AuditEntry;
use loft_core::domains::{DkimAlgorithm, DkimSelector, Domain, StoredDkimKey};
use loft_core::time::Timestamp;
use loft_core::vault::Sealed;
use loft_core::{Error, Result};
use sqlx::{Row, SqliteConnection};

use crate::audit;
use crate::error::map_err;

const KEY_COLUMNS: &str =
    "domain, selector, algorithm, public_key, created_at, ciphertext, nonce, wrapped_key, wrap_nonce, master_key_id";

fn key(row: &sqlx::sqlite::SqliteRow) -> Result<StoredDkimKey> {
    let algorithm: String = row.try_get("algorithm").map_err(map_err)?;
    Ok(StoredDkimKey {
        domain: row.try_get("domain").map_err(map_err)?,
        selector: DkimSelector {
            selector: row.try_get("selector").map_err(map_err)?,
            algorithm: DkimAlgorithm::parse_stored(&algorithm)?,
            public_key: row.try_get("public_key").map_err(map_err)?,
            created_at: Timestamp::from_micros(row.try_get("created_at").map_err(map_err)?),
        },
        sealed: Sealed {
            ciphertext: row.try_get("ciphertext").map_err(map_err)?,
            nonce: row.try_get("nonce").map_err(map_err)?,
            wrapped_key: row.try_get("wrapped_key").map_err(map_err)?,
            wrap_nonce: row.try_get("wrap_nonce").map_err(map_err)?,
            master_key_id: row.try_get("master_key_id").map_err(map_err)?,
        },
    })
}

async fn keys_where(conn: &mut SqliteConnection, clause: &'static str, arg: &str) -> Result<Vec<StoredDkimKey>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM domain_keys WHERE {clause} ORDER BY domain, selector");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(arg.to_owned())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    rows.iter().map(key).collect()
}

async fn domains(conn: &mut SqliteConnection, name: Option<&str>) -> Result<Vec<Domain>> {
    let rows = sqlx::query("SELECT name, created_at FROM domains WHERE ?1 IS NULL OR name = ?1 ORDER BY name")
        .bind(name.map(str::to_owned))
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let name: String = r.try_get("name").map_err(map_err)?;
        let created: i64 = r.try_get("created_at").map_err(map_err)?;
        let dkim = keys_where(conn, "domain = ?1", &name)
            .await?
            .into_iter()
            .map(|k| k.selector)
            .collect();
        out.push(Domain {
            name,
            default: false,
            created_at: Some(Timestamp::from_micros(created)),
            dkim,
        });
    }
    Ok(out)
}

async fn insert(
    conn: &mut SqliteConnection,
    name: String,
    at: Timestamp,
    keys: Vec<StoredDkimKey>,
    entry: AuditEntry,
) -> Result<()> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM domains WHERE name = ?")
        .bind(name.clone())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    if exists.is_some() {
        return Err(Error::conflict(
            "domain_exists",
            format!("{name} is already hosted here"),
        ));
    }
    sqlx::query("INSERT INTO domains (name, created_at) VALUES (?, ?)")
        .bind(name.clone())
        .bind(at.as_micros())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    for k in keys {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO domain_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )))
        .bind(name.clone())
        .bind(k.selector.selector)
        .bind(k.selector.algorithm.as_str())
        .bind(k.selector.public_key)
        .bind(k.selector.created_at.as_micros())
        .bind(k.sealed.ciphertext)
        .bind(k.sealed.nonce)
        .bind(k.sealed.wrapped_key)
        .bind(k.sealed.wrap_nonce)
        .bind(k.sealed.master_key_id)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    audit::append(conn, entry).await?;
    Ok(())
}

async fn delete(conn: &mut SqliteConnection, name: String, entry: AuditEntry) -> Result<()> {
    sqlx::query("DELETE FROM domain_keys WHERE domain = ?")
        .bind(name.clone())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    let n = sqlx::query("DELETE FROM domains WHERE name = ?")
        .bind(name)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected();
    if n == 0 {
        return Err(Error::not_found("domain"));
    }
    audit::append(conn, entry).await?;
    Ok(())
}

async fn rewrap(conn: &mut SqliteConnection, batch: Vec<(StoredDkimKey, String)>, entry: AuditEntry) -> Result<u64> {
    let mut n = 0;
    for (k, old) in batch {
        n += sqlx::query(
            "UPDATE domain_keys SET ciphertext = ?, nonce = ?, wrapped_key = ?, wrap_nonce = ?, master_key_id = ?
             WHERE domain = ? AND selector = ? AND master_key_id = ?",
        )
        .bind(k.sealed.ciphertext)
        .bind(k.sealed.nonce)
        .bind(k.sealed.wrapped_key)
        .bind(k.sealed.wrap_nonce)
        .bind(k.sealed.master_key_id)
        .bind(k.domain)
        .bind(k.selector.selector)
        .bind(old)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected();
    }
    let mut entry = entry;
    if let Some(obj) = entry.details.as_object_mut() {
        obj.insert("rewrapped".into(), n.into());
    }
    audit::append(conn, entry).await?;
    Ok(n)
}

#[async_trait::async_trait]
impl loft_core::domains::DomainStore for crate::SqliteStore {
    async fn insert_domain(
        &self,
        name: &str,
        at: Timestamp,
        keys: Vec<StoredDkimKey>,
        audit: AuditEntry,
    ) -> Result<()> {
        let name = name.to_owned();
        self.write(move |c| Box::pin(self::insert(c, name, at, keys, audit)))
            .await
    }

    async fn list_domains(&self) -> Result<Vec<Domain>> {
        let mut tx = self.reading().await?;
        let out = self::domains(&mut tx, None).await;
        crate::done(tx, out).await
    }

    async fn get_domain(&self, name: &str) -> Result<Option<Domain>> {
        let mut tx = self.reading().await?;
        let out = self::domains(&mut tx, Some(name)).await.map(|v| v.into_iter().next());
        crate::done(tx, out).await
    }

    async fn domain_keys(&self, name: &str) -> Result<Vec<StoredDkimKey>> {
        let mut tx = self.reading().await?;
        let out = self::keys_where(&mut tx, "domain = ?1", name).await;
        crate::done(tx, out).await
    }

    async fn delete_domain(&self, name: &str, audit: AuditEntry) -> Result<()> {
        let name = name.to_owned();
        self.write(move |c| Box::pin(self::delete(c, name, audit))).await
    }

    async fn domain_keys_stale(&self, current: &str) -> Result<Vec<StoredDkimKey>> {
        let mut tx = self.reading().await?;
        let out = self::keys_where(&mut tx, "master_key_id <> ?1", current).await;
        crate::done(tx, out).await
    }

    async fn domain_keys_rewrap(&self, keys: Vec<(StoredDkimKey, String)>, audit: AuditEntry) -> Result<u64> {
        self.write(move |c| Box::pin(self::rewrap(c, keys, audit))).await
    }
}
