//! Hosted domains and their sealed DKIM keys (`domains`, `domain_keys`, migration 20261221000000).

use loft_core::audit::AuditEntry;
use loft_core::domains::{DkimAlgorithm, DkimSelector, Domain, StoredDkimKey};
use loft_core::time::Timestamp;
use loft_core::vault::Sealed;
use loft_core::{Error, Result};
use sqlx::{PgConnection, Row};

use crate::{WriteTx, db_err as map_err};

const KEY_COLUMNS: &str =
    "domain, selector, algorithm, public_key, created_at, ciphertext, nonce, wrapped_key, wrap_nonce, master_key_id";

fn key(row: &sqlx::postgres::PgRow) -> Result<StoredDkimKey> {
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

async fn keys_where(conn: &mut PgConnection, clause: &'static str, arg: &str) -> Result<Vec<StoredDkimKey>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM domain_keys WHERE {clause} ORDER BY domain, selector");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(arg.to_owned())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    rows.iter().map(key).collect()
}

async fn domains(conn: &mut PgConnection, name: Option<&str>) -> Result<Vec<Domain>> {
    let rows = sqlx::query("SELECT name, created_at FROM domains WHERE $1::text IS NULL OR name = $1 ORDER BY name")
        .bind(name.map(str::to_owned))
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let name: String = r.try_get("name").map_err(map_err)?;
        let created: i64 = r.try_get("created_at").map_err(map_err)?;
        let dkim = keys_where(conn, "domain = $1", &name)
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

async fn insert(conn: &mut PgConnection, name: String, at: Timestamp, keys: Vec<StoredDkimKey>) -> Result<()> {
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM domains WHERE name = $1")
        .bind(name.clone())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    let taken = || Error::conflict("domain_exists", format!("{name} is already hosted here"));
    if exists.is_some() {
        return Err(taken());
    }
    // Two nodes adding the same domain at once: the second insert finds the row.
    let n = sqlx::query("INSERT INTO domains (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name.clone())
        .bind(at.as_micros())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected();
    if n == 0 {
        return Err(taken());
    }
    for k in keys {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO domain_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
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
    Ok(())
}

async fn delete(conn: &mut PgConnection, name: String) -> Result<()> {
    sqlx::query("DELETE FROM domain_keys WHERE domain = $1")
        .bind(name.clone())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    let n = sqlx::query("DELETE FROM domains WHERE name = $1")
        .bind(name)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected();
    if n == 0 {
        return Err(Error::not_found("domain"));
    }
    Ok(())
}

async fn rewrap(conn: &mut PgConnection, batch: Vec<(StoredDkimKey, String)>) -> Result<u64> {
    let mut n = 0;
    for (k, old) in batch {
        n += sqlx::query(
            "UPDATE domain_keys SET ciphertext = $1, nonce = $2, wrapped_key = $3, wrap_nonce = $4, master_key_id = $5
             WHERE domain = $6 AND selector = $7 AND master_key_id = $8",
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
    Ok(n)
}

#[async_trait::async_trait]
impl loft_core::domains::DomainStore for crate::PostgresStore {
    async fn insert_domain(
        &self,
        name: &str,
        at: Timestamp,
        keys: Vec<StoredDkimKey>,
        audit: AuditEntry,
    ) -> Result<()> {
        let mut w = WriteTx::begin(&self.pool).await?;
        self::insert(w.conn(), name.to_owned(), at, keys).await?;
        w.audit(audit).await?;
        self.wrote(w.commit().await)
    }

    async fn list_domains(&self) -> Result<Vec<Domain>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        self::domains(&mut conn, None).await
    }

    async fn get_domain(&self, name: &str) -> Result<Option<Domain>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        Ok(self::domains(&mut conn, Some(name)).await?.into_iter().next())
    }

    async fn domain_keys(&self, name: &str) -> Result<Vec<StoredDkimKey>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        self::keys_where(&mut conn, "domain = $1", name).await
    }

    async fn delete_domain(&self, name: &str, audit: AuditEntry) -> Result<()> {
        let mut w = WriteTx::begin(&self.pool).await?;
        self::delete(w.conn(), name.to_owned()).await?;
        w.audit(audit).await?;
        self.wrote(w.commit().await)
    }

    async fn domain_keys_stale(&self, current: &str) -> Result<Vec<StoredDkimKey>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        self::keys_where(&mut conn, "master_key_id <> $1", current).await
    }

    async fn domain_keys_rewrap(&self, keys: Vec<(StoredDkimKey, String)>, audit: AuditEntry) -> Result<u64> {
        let mut w = WriteTx::begin(&self.pool).await?;
        let n = self::rewrap(w.conn(), keys).await?;
        let mut audit = audit;
        if let Some(obj) = audit.details.as_object_mut() {
            obj.insert("rewrapped".into(), n.into());
        }
        w.audit(audit).await?;
        self.wrote(w.commit().await)?;
        Ok(n)
    }
}
