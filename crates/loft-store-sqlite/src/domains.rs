//! Hosted domains and their sealed DKIM keys (`domains`, `domain_keys`, migration 0024).

use loft_core::audit::AuditEntry;
use loft_core::domains::{DkimAlgorithm, DkimSelector, Domain, StoredDkimKey};
use loft_core::time::Timestamp;
use loft_core::vault::Sealed;
use loft_core::{Error, Result};

use crate::audit;
use crate::db::{Db, Hot, args, at_once};
use crate::hot::Cost;

/// The columns of `domain_keys`, in the order [`KeyRow`] reads them.
macro_rules! key_columns {
    () => {
        "domain, selector, algorithm, public_key, created_at, ciphertext, nonce, wrapped_key, wrap_nonce, master_key_id"
    };
}

crate::rows::sql_row! {
struct KeyRow {
    domain: String,
    selector: String,
    algorithm: String,
    public_key: String,
    created_at: i64,
    ciphertext: Vec<u8>,
    nonce: Vec<u8>,
    wrapped_key: Vec<u8>,
    wrap_nonce: Vec<u8>,
    master_key_id: String,
}}

impl KeyRow {
    fn into_key(self) -> Result<StoredDkimKey> {
        Ok(StoredDkimKey {
            domain: self.domain,
            selector: DkimSelector {
                selector: self.selector,
                algorithm: DkimAlgorithm::parse_stored(&self.algorithm)?,
                public_key: self.public_key,
                created_at: Timestamp::from_micros(self.created_at),
            },
            sealed: Sealed {
                ciphertext: self.ciphertext,
                nonce: self.nonce,
                wrapped_key: self.wrapped_key,
                wrap_nonce: self.wrap_nonce,
                master_key_id: self.master_key_id,
            },
        })
    }
}

const KEYS_OF_DOMAIN: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM domain_keys WHERE domain = ?1 ORDER BY domain, selector"
);
const KEYS_STALE: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM domain_keys WHERE master_key_id <> ?1 ORDER BY domain, selector"
);

async fn keys_where(conn: &mut impl Db, sql: &'static str, arg: &str) -> Result<Vec<StoredDkimKey>> {
    let rows: Vec<KeyRow> = conn.all(sql, &args![arg]).await?;
    rows.into_iter().map(KeyRow::into_key).collect()
}

async fn domains(conn: &mut impl Db, name: Option<&str>) -> Result<Vec<Domain>> {
    let rows: Vec<(String, i64)> = conn
        .all(
            "SELECT name, created_at FROM domains WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
            &args![name],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (name, created) in rows {
        let dkim = keys_where(conn, KEYS_OF_DOMAIN, &name)
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
    conn: &mut impl Db,
    name: String,
    at: Timestamp,
    keys: Vec<StoredDkimKey>,
    entry: AuditEntry,
) -> Result<()> {
    let exists: Option<(i64,)> = conn
        .first("SELECT 1 FROM domains WHERE name = ?", &args![name.as_str()])
        .await?;
    if exists.is_some() {
        return Err(Error::conflict(
            "domain_exists",
            format!("{name} is already hosted here"),
        ));
    }
    conn.exec(
        "INSERT INTO domains (name, created_at) VALUES (?, ?)",
        &args![name.as_str(), at.as_micros()],
    )
    .await?;
    for k in keys {
        conn.exec(
            concat!(
                "INSERT INTO domain_keys (",
                key_columns!(),
                ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            &args![
                name.as_str(),
                k.selector.selector,
                k.selector.algorithm.as_str(),
                k.selector.public_key,
                k.selector.created_at.as_micros(),
                k.sealed.ciphertext,
                k.sealed.nonce,
                k.sealed.wrapped_key,
                k.sealed.wrap_nonce,
                k.sealed.master_key_id,
            ],
        )
        .await?;
    }
    audit::append(conn, entry).await?;
    Ok(())
}

async fn delete(conn: &mut impl Db, name: String, entry: AuditEntry) -> Result<()> {
    conn.exec("DELETE FROM domain_keys WHERE domain = ?", &args![name.as_str()])
        .await?;
    let n = conn
        .exec("DELETE FROM domains WHERE name = ?", &args![name])
        .await?
        .rows;
    if n == 0 {
        return Err(Error::not_found("domain"));
    }
    audit::append(conn, entry).await?;
    Ok(())
}

async fn rewrap(conn: &mut impl Db, batch: Vec<(StoredDkimKey, String)>, entry: AuditEntry) -> Result<u64> {
    let mut n = 0;
    for (k, old) in batch {
        n += conn
            .exec(
                "UPDATE domain_keys SET ciphertext = ?, nonce = ?, wrapped_key = ?, wrap_nonce = ?, master_key_id = ?
                 WHERE domain = ? AND selector = ? AND master_key_id = ?",
                &args![
                    k.sealed.ciphertext,
                    k.sealed.nonce,
                    k.sealed.wrapped_key,
                    k.sealed.wrap_nonce,
                    k.sealed.master_key_id,
                    k.domain,
                    k.selector.selector,
                    old,
                ],
            )
            .await?
            .rows;
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
        self.write_native(move |c| at_once(self::insert(c, name, at, keys, audit)))
            .await
    }

    // Hot reads: every inbound mail looks up the hosted domains, and every outbound delivery
    // the keys it signs with. Each read of several statements runs in one transaction (one
    // snapshot): a few rows per hosted domain.
    async fn list_domains(&self) -> Result<Vec<Domain>> {
        self.hot(Cost::Short, |c| {
            crate::hot::snapshot(c, |c| at_once(self::domains(&mut Hot(c), None)))
        })
        .await
    }

    async fn get_domain(&self, name: &str) -> Result<Option<Domain>> {
        let name = name.to_owned();
        self.hot(Cost::Short, move |c| {
            crate::hot::snapshot(c, |c| {
                at_once(self::domains(&mut Hot(c), Some(&name))).map(|v| v.into_iter().next())
            })
        })
        .await
    }

    async fn domain_keys(&self, name: &str) -> Result<Vec<StoredDkimKey>> {
        let name = name.to_owned();
        self.hot(Cost::Short, move |c| {
            at_once(self::keys_where(&mut Hot(c), KEYS_OF_DOMAIN, &name))
        })
        .await
    }

    async fn delete_domain(&self, name: &str, audit: AuditEntry) -> Result<()> {
        let name = name.to_owned();
        self.write_native(move |c| at_once(self::delete(c, name, audit))).await
    }

    async fn domain_keys_stale(&self, current: &str) -> Result<Vec<StoredDkimKey>> {
        let current = current.to_owned();
        self.hot(Cost::Long, move |c| {
            at_once(self::keys_where(&mut Hot(c), KEYS_STALE, &current))
        })
        .await
    }

    async fn domain_keys_rewrap(&self, keys: Vec<(StoredDkimKey, String)>, audit: AuditEntry) -> Result<u64> {
        self.write_native(move |c| at_once(self::rewrap(c, keys, audit))).await
    }
}
