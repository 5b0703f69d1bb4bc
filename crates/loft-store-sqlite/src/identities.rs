//! Identities, their delegation tree (`identities.parent_id`) and their API keys.
//!
//! Functions taking `&mut SqliteConnection` run either on a read connection (inside a read
//! transaction) or, for the mutating ones, inside a writer job (see `writer`), where they are
//! already in a transaction and a savepoint; those taking a `rusqlite::Connection` are hot
//! reads (`hot.rs`).

use std::collections::HashMap;

use loft_core::address::EmailAddress;
use loft_core::audit::AuditEntry;
use loft_core::identity::{Identity, NewIdentity};
use loft_core::ids::{IdentityId, KeyId};
use loft_core::keys::{KeyMeta, StoredKey};
use loft_core::mail::StorePage;
use loft_core::store::{IdentityQuery, IdentityUpdate};
use loft_core::time::Timestamp;
use loft_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension as _};
use sqlx::SqliteConnection;

use crate::error::{map_err, map_rusqlite};
use crate::rows::{
    IdentityRow, KeyRow, PrefixedKeyRow, ReadRow as _, creator_kind_str, identity_columns, key_columns,
    prefixed_key_columns, status_str, to_json,
};
use crate::{audit, page_limit, paged};
use std::sync::atomic::Ordering;

/// Deeper delegation chains than this are refused by the recursive queries (a guard against a
/// cycle written by hand into the file; Loft itself cannot create one).
const MAX_DEPTH: i64 = 10_000;

pub(crate) const GET: &str = concat!("SELECT ", identity_columns!(), " FROM identities i WHERE i.id = ?1");

pub(crate) async fn get(conn: &mut SqliteConnection, id: &IdentityId) -> Result<Option<Identity>> {
    let row: Option<IdentityRow> = sqlx::query_as(GET)
        .bind(id.as_str().to_owned())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    row.map(IdentityRow::into_identity).transpose()
}

/// [`get`] on a hot-read connection.
fn get_hot(conn: &Connection, id: &IdentityId) -> Result<Option<Identity>> {
    let row = conn
        .prepare_cached(GET)
        .and_then(|mut st| st.query_row([id.as_str()], IdentityRow::from_row).optional())
        .map_err(map_rusqlite)?;
    row.map(IdentityRow::into_identity).transpose()
}

pub(crate) async fn create(conn: &mut SqliteConnection, new: NewIdentity, audit_entry: AuditEntry) -> Result<()> {
    let i = &new.identity;
    // Inside the writer's transaction nothing can take the address between this check and
    // the insert; the UNIQUE constraint stays as the backstop.
    let taken: Option<i64> = sqlx::query_scalar("SELECT 1 FROM identities WHERE address = ?")
        .bind(i.address.as_str().to_owned())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    if taken.is_some() {
        return Err(address_taken(&i.address));
    }
    sqlx::query(
        "INSERT INTO identities (id, name, display_name, address, scopes, status, created_at, revoked_at, \
         creator_kind, parent_id, creator_key_id, oversight_mode) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(i.id.as_str().to_owned())
    .bind(i.name.clone())
    .bind(i.display_name.clone())
    .bind(i.address.as_str().to_owned())
    .bind(i.scopes.to_json())
    .bind(status_str(i.status))
    .bind(i.created_at.as_micros())
    .bind(i.revoked_at.map(Timestamp::as_micros))
    .bind(creator_kind_str(i.created_by.kind))
    .bind(i.created_by.identity_id.as_ref().map(|p| p.as_str().to_owned()))
    .bind(i.created_by.key_id.clone())
    .bind(i.oversight_mode.as_str())
    .execute(&mut *conn)
    .await
    .map_err(|e| match map_err(e) {
        Error::Conflict(_) => Error::conflict("address_taken", "this identity id or address is already taken"),
        other => other,
    })?;
    insert_key(conn, &new.key).await?;
    audit::append(conn, audit_entry).await?;
    Ok(())
}

fn address_taken(address: &EmailAddress) -> Error {
    Error::conflict("address_taken", format!("the address {address} is already taken"))
}

pub(crate) async fn list(conn: &mut SqliteConnection, q: IdentityQuery) -> Result<StorePage<Identity>> {
    let limit = page_limit(q.limit);
    let rows: Vec<IdentityRow> = sqlx::query_as(concat!(
        "WITH RECURSIVE tree(id, depth) AS (
             SELECT id, 0 FROM identities WHERE id = ?1
             UNION
             SELECT c.id, tree.depth + 1 FROM identities c JOIN tree ON c.parent_id = tree.id
             WHERE tree.depth < ?5
         )
         SELECT ",
        identity_columns!(),
        " FROM identities i
         WHERE (?1 IS NULL OR i.id IN (SELECT id FROM tree))
           AND (?2 OR i.status = 'active')
           AND (?3 IS NULL OR i.seq < ?3)
         ORDER BY i.seq DESC
         LIMIT ?4"
    ))
    .bind(q.within.as_ref().map(|w| w.as_str().to_owned()))
    .bind(q.include_revoked)
    .bind(q.before_seq)
    .bind(i64::from(limit) + 1)
    .bind(MAX_DEPTH)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let seq = row.seq;
        items.push((seq, row.into_identity()?));
    }
    let page = paged(items, limit, |(seq, _)| *seq);
    Ok(StorePage {
        items: page.items.into_iter().map(|(_, i)| i).collect(),
        next_before: page.next_before,
    })
}

pub(crate) async fn update(
    conn: &mut SqliteConnection,
    id: &IdentityId,
    update: IdentityUpdate,
    audit_entry: AuditEntry,
) -> Result<Identity> {
    if get(conn, id).await?.is_none() {
        return Err(Error::not_found("identity"));
    }
    if let Some(name) = &update.display_name {
        let name = Some(name.as_str()).filter(|n| !n.is_empty()).map(str::to_owned);
        sqlx::query("UPDATE identities SET display_name = ? WHERE id = ?")
            .bind(name)
            .bind(id.as_str().to_owned())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    if let Some(paused_at) = update.paused_at {
        sqlx::query("UPDATE identities SET paused_at = ? WHERE id = ?")
            .bind(paused_at.map(Timestamp::as_micros))
            .bind(id.as_str().to_owned())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    if let Some(mode) = update.oversight_mode {
        sqlx::query("UPDATE identities SET oversight_mode = ? WHERE id = ?")
            .bind(mode.as_str())
            .bind(id.as_str().to_owned())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    if let Some(caps) = &update.caps {
        sqlx::query(
            "UPDATE identities SET cap_mails_per_hour = ?, cap_mails_per_day = ?, cap_new_recipients_per_day = ?, \
             first_contact = ?, exfiltration_guard = ?, internal_mail = ? WHERE id = ?",
        )
        .bind(crate::rows::cap_col(caps.mails_per_hour))
        .bind(crate::rows::cap_col(caps.mails_per_day))
        .bind(crate::rows::cap_col(caps.new_recipients_per_day))
        .bind(caps.first_contact.as_str())
        .bind(caps.exfiltration_guard.as_str())
        .bind(caps.internal_mail.as_str())
        .bind(id.as_str().to_owned())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    if let Some(scopes) = &update.scopes {
        sqlx::query("UPDATE identities SET scopes = ? WHERE id = ?")
            .bind(scopes.to_json())
            .bind(id.as_str().to_owned())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    if update.clear_mode_request {
        crate::oversight_edits::clear_mode_request(conn, id).await?;
    }
    audit::append(conn, audit_entry).await?;
    get(conn, id).await?.ok_or_else(|| Error::not_found("identity"))
}

pub(crate) async fn revoke(
    conn: &mut SqliteConnection,
    id: &IdentityId,
    at: Timestamp,
    mut audit_entry: AuditEntry,
) -> Result<Vec<IdentityId>> {
    if get(conn, id).await?.is_none() {
        return Err(Error::not_found("identity"));
    }
    // The identity and everything below it, in creation order (so the one named comes first).
    let tree: Vec<(String, String)> = sqlx::query_as(
        "WITH RECURSIVE tree(id, depth) AS (
             SELECT id, 0 FROM identities WHERE id = ?1
             UNION
             SELECT c.id, tree.depth + 1 FROM identities c JOIN tree ON c.parent_id = tree.id
             WHERE tree.depth < ?2
         )
         SELECT i.id, i.status FROM identities i WHERE i.id IN (SELECT id FROM tree) ORDER BY i.seq",
    )
    .bind(id.as_str().to_owned())
    .bind(MAX_DEPTH)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    let all: Vec<&str> = tree.iter().map(|(i, _)| i.as_str()).collect();
    let newly: Vec<IdentityId> = tree
        .iter()
        .filter(|(_, status)| status == "active")
        .map(|(i, _)| IdentityId::from_trusted(i.clone()))
        .collect();
    let all_json = to_json(&all, "identity ids")?;
    sqlx::query(
        "UPDATE identities SET status = 'revoked', revoked_at = ?
         WHERE status = 'active' AND id IN (SELECT value FROM json_each(?))",
    )
    .bind(at.as_micros())
    .bind(all_json.clone())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    sqlx::query(
        "UPDATE api_keys SET revoked_at = ?
         WHERE revoked_at IS NULL AND identity_id IN (SELECT value FROM json_each(?))",
    )
    .bind(at.as_micros())
    .bind(all_json)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    let revoked = serde_json::Value::Array(newly.iter().map(|i| i.as_str().into()).collect());
    match &mut audit_entry.details {
        serde_json::Value::Object(map) => {
            map.insert("revoked".into(), revoked);
        }
        other => *other = serde_json::json!({ "revoked": revoked }),
    }
    audit::append(conn, audit_entry).await?;
    Ok(newly)
}

pub(crate) const ANCESTORS: &str = concat!(
    "WITH RECURSIVE up(id, depth) AS (
         SELECT parent_id, 1 FROM identities WHERE id = ?1 AND parent_id IS NOT NULL
         UNION ALL
         SELECT p.parent_id, up.depth + 1 FROM identities p JOIN up ON p.id = up.id
         WHERE p.parent_id IS NOT NULL AND up.depth < ?2
     )
     SELECT ",
    identity_columns!(),
    " FROM up JOIN identities i ON i.id = up.id ORDER BY up.depth"
);

pub(crate) fn ancestors(conn: &Connection, id: &IdentityId) -> Result<Vec<Identity>> {
    let mut st = conn.prepare_cached(ANCESTORS).map_err(map_rusqlite)?;
    let rows = st
        .query_map(rusqlite::params![id.as_str(), MAX_DEPTH], IdentityRow::from_row)
        .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
        .map_err(map_rusqlite)?;
    rows.into_iter().map(IdentityRow::into_identity).collect()
}

pub(crate) const USAGE: &str = "SELECT
       (SELECT COUNT(*) FROM identities WHERE parent_id = ?1 AND status = 'active'),
       (SELECT COUNT(*) FROM api_keys WHERE identity_id = ?1 AND revoked_at IS NULL),
       (SELECT COUNT(*) FROM vault_items WHERE owner_id = ?1),
       COALESCE((SELECT bytes FROM mailbox_usage WHERE owner_id = ?1), 0)";

fn usage(conn: &Connection, id: &IdentityId) -> Result<loft_core::quota::Usage> {
    let count = |i: usize, r: &rusqlite::Row<'_>| r.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
    conn.prepare_cached(USAGE)
        .and_then(|mut st| {
            st.query_row([id.as_str()], |r| {
                Ok(loft_core::quota::Usage {
                    sub_identities: count(0, r)?,
                    active_keys: count(1, r)?,
                    vault_items: count(2, r)?,
                    stored_bytes: count(3, r)?,
                })
            })
        })
        .map_err(map_rusqlite)
}

pub(crate) fn mailbox_bytes(conn: &Connection, owners: &[IdentityId]) -> Result<Vec<(IdentityId, u64)>> {
    if owners.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<&str> = owners.iter().map(IdentityId::as_str).collect();
    let wanted = to_json(&wanted, "owners")?;
    conn.prepare_cached("SELECT owner_id, bytes FROM mailbox_usage WHERE owner_id IN (SELECT value FROM json_each(?1))")
        .and_then(|mut st| {
            st.query_map([wanted], |r| {
                Ok((
                    IdentityId::from_trusted(r.get(0)?),
                    u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                ))
            })?
            .collect()
        })
        .map_err(map_rusqlite)
}

pub(crate) async fn mailbox_stats(
    conn: &mut SqliteConnection,
    owners: &[IdentityId],
) -> Result<Vec<loft_core::store::MailboxStats>> {
    if owners.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<&str> = owners.iter().map(IdentityId::as_str).collect();
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT s.owner_id, s.n, COALESCE(u.bytes, 0), m.created_at
         FROM (SELECT owner_id, COUNT(*) AS n, MAX(seq) AS last FROM messages
               WHERE owner_id IN (SELECT value FROM json_each(?)) GROUP BY owner_id) s
         JOIN messages m ON m.seq = s.last
         LEFT JOIN mailbox_usage u ON u.owner_id = s.owner_id",
    )
    .bind(to_json(&wanted, "owners")?)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(rows
        .into_iter()
        .map(|(id, n, bytes, at)| loft_core::store::MailboxStats {
            owner: IdentityId::from_trusted(id),
            messages: n as u64,
            bytes: bytes as u64,
            last_mail_at: Some(loft_core::time::Timestamp::from_micros(at)),
        })
        .collect())
}

pub(crate) async fn mailbox_labels(
    conn: &mut SqliteConnection,
    owner: &IdentityId,
    labels: &[String],
) -> Result<(u64, u64)> {
    let (used, present): (i64, i64) = sqlx::query_as(
        // The distinct labels are found one index seek each (the next label after the last one),
        // and each label asked for by one more: a labels quota check costs the number of labels,
        // whatever the size of the mailbox.
        "WITH RECURSIVE used(label) AS (
             SELECT MIN(label) FROM message_labels WHERE owner_id = ?1
             UNION ALL
             SELECT (SELECT MIN(l.label) FROM message_labels l WHERE l.owner_id = ?1 AND l.label > used.label)
             FROM used WHERE used.label IS NOT NULL
         )
         SELECT
           (SELECT COUNT(label) FROM used),
           (SELECT COUNT(*) FROM (SELECT DISTINCT value AS label FROM json_each(?2)) a
            WHERE EXISTS (SELECT 1 FROM message_labels l INDEXED BY message_labels_owner_label
                          WHERE l.owner_id = ?1 AND l.label = a.label))",
    )
    .bind(owner.as_str().to_owned())
    .bind(to_json(&labels, "labels")?)
    .fetch_one(&mut *conn)
    .await
    .map_err(map_err)?;
    let asked = labels.iter().collect::<std::collections::HashSet<_>>().len() as u64;
    Ok((used as u64, asked.saturating_sub(present as u64)))
}

fn resolve_addresses(conn: &Connection, addresses: &[EmailAddress]) -> Result<Vec<(EmailAddress, IdentityId)>> {
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<&str> = addresses.iter().map(EmailAddress::as_str).collect();
    let wanted = to_json(&wanted, "addresses")?;
    let rows: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT address, id FROM identities
             WHERE status = 'active' AND address IN (SELECT value FROM json_each(?1))",
        )
        .and_then(|mut st| st.query_map([wanted], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(map_rusqlite)?;
    let found: HashMap<String, String> = rows.into_iter().collect();
    // In the order asked, each address once.
    let mut out: Vec<(EmailAddress, IdentityId)> = Vec::new();
    for a in addresses {
        if let Some(id) = found.get(a.as_str())
            && !out.iter().any(|(seen, _)| seen == a)
        {
            out.push((a.clone(), IdentityId::from_trusted(id.clone())));
        }
    }
    Ok(out)
}

// ----- keys -----------------------------------------------------------------------------

async fn insert_key(conn: &mut SqliteConnection, key: &StoredKey) -> Result<()> {
    let m = &key.meta;
    sqlx::query(
        "INSERT INTO api_keys (id, identity_id, digest, kind, label, scopes, created_at, expires_at, revoked_at, \
         created_by_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(key.id.as_str().to_owned())
    .bind(key.identity_id.as_str().to_owned())
    .bind(key.digest.to_hex())
    .bind(m.kind.as_str())
    .bind(m.label.clone())
    .bind(m.scopes.to_json())
    .bind(m.created_at.as_micros())
    .bind(m.expires_at.map(Timestamp::as_micros))
    .bind(m.revoked_at.map(Timestamp::as_micros))
    .bind(m.created_by_key.clone())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// A key and its identity, in one statement (authentication runs it on every cache miss).
pub(crate) const FIND_KEY: &str = concat!(
    "SELECT ",
    prefixed_key_columns!(),
    ", ",
    identity_columns!(),
    " FROM api_keys k JOIN identities i ON i.id = k.identity_id WHERE k.id = ?1"
);

fn find_key(conn: &Connection, id: &KeyId) -> Result<Option<(StoredKey, Identity)>> {
    let row = conn
        .prepare_cached(FIND_KEY)
        .and_then(|mut st| {
            st.query_row([id.as_str()], |r| {
                let at = &mut 0;
                Ok((PrefixedKeyRow::read(r, at)?, IdentityRow::read(r, at)?))
            })
            .optional()
        })
        .map_err(map_rusqlite)?;
    let Some((key, identity)) = row else { return Ok(None) };
    Ok(Some((key.into_stored()?, identity.into_identity()?)))
}

async fn key_meta(conn: &mut SqliteConnection, identity: &IdentityId, id: &KeyId) -> Result<Option<KeyMeta>> {
    let row: Option<KeyRow> = sqlx::query_as(concat!(
        "SELECT ",
        key_columns!(),
        " FROM api_keys k WHERE k.id = ? AND k.identity_id = ?"
    ))
    .bind(id.as_str().to_owned())
    .bind(identity.as_str().to_owned())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    row.map(KeyRow::into_meta).transpose()
}

pub(crate) async fn create_key(
    conn: &mut SqliteConnection,
    key: StoredKey,
    replaces: Option<KeyId>,
    audit_entry: AuditEntry,
) -> Result<()> {
    if get(conn, &key.identity_id).await?.is_none() {
        return Err(Error::not_found("identity"));
    }
    if let Some(old) = &replaces {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND identity_id = ? AND revoked_at IS NULL")
                .bind(key.meta.created_at.as_micros())
                .bind(old.as_str().to_owned())
                .bind(key.identity_id.as_str().to_owned())
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("key"));
        }
    }
    insert_key(conn, &key).await?;
    audit::append(conn, audit_entry).await?;
    Ok(())
}

/// Oldest first.
pub(crate) async fn list_keys(conn: &mut SqliteConnection, identity: &IdentityId) -> Result<Vec<KeyMeta>> {
    let rows: Vec<KeyRow> = sqlx::query_as(concat!(
        "SELECT ",
        key_columns!(),
        " FROM api_keys k WHERE k.identity_id = ? ORDER BY k.seq"
    ))
    .bind(identity.as_str().to_owned())
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    rows.into_iter().map(KeyRow::into_meta).collect()
}

pub(crate) async fn revoke_key(
    conn: &mut SqliteConnection,
    identity: &IdentityId,
    id: &KeyId,
    at: Timestamp,
    audit_entry: AuditEntry,
) -> Result<KeyMeta> {
    let Some(meta) = key_meta(conn, identity, id).await? else {
        return Err(Error::not_found("key"));
    };
    let meta = if meta.revoked_at.is_some() {
        meta
    } else {
        sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(at.as_micros())
            .bind(id.as_str().to_owned())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        KeyMeta {
            revoked_at: Some(at),
            ..meta
        }
    };
    audit::append(conn, audit_entry).await?;
    Ok(meta)
}

#[async_trait::async_trait]
impl loft_core::store::IdentityStore for crate::SqliteStore {
    async fn find_key(&self, id: &KeyId) -> Result<Option<(StoredKey, Identity)>> {
        let id = id.clone();
        self.hot(crate::hot::Cost::Short, move |c| self::find_key(c, &id)).await
    }

    fn key_epoch(&self) -> u64 {
        self.key_epoch.load(Ordering::SeqCst)
    }

    async fn create_identity(&self, new: NewIdentity, audit: AuditEntry) -> Result<()> {
        let out = self.write(move |c| Box::pin(self::create(c, new, audit))).await;
        self.keys_changed(out)
    }

    async fn get_identity(&self, id: &IdentityId) -> Result<Option<Identity>> {
        let id = id.clone();
        self.hot(crate::hot::Cost::Short, move |c| self::get_hot(c, &id)).await
    }

    async fn list_identities(&self, query: IdentityQuery) -> Result<StorePage<Identity>> {
        let mut tx = self.reading().await?;
        let out = self::list(&mut tx, query).await;
        crate::done(tx, out).await
    }

    async fn update_identity(&self, id: &IdentityId, update: IdentityUpdate, audit: AuditEntry) -> Result<Identity> {
        let id = id.clone();
        let out = self
            .write(move |c| Box::pin(async move { self::update(c, &id, update, audit).await }))
            .await;
        self.keys_changed(out)
    }

    async fn revoke_identity(&self, id: &IdentityId, at: Timestamp, audit: AuditEntry) -> Result<Vec<IdentityId>> {
        let id = id.clone();
        let out = self
            .write(move |c| Box::pin(async move { self::revoke(c, &id, at, audit).await }))
            .await;
        self.keys_changed(out)
    }

    async fn ancestors(&self, id: &IdentityId) -> Result<Vec<Identity>> {
        let id = id.clone();
        self.hot(crate::hot::Cost::Short, move |c| self::ancestors(c, &id))
            .await
    }

    async fn usage(&self, identity: &IdentityId) -> Result<loft_core::quota::Usage> {
        let id = identity.clone();
        self.hot(crate::hot::Cost::Short, move |c| self::usage(c, &id)).await
    }

    async fn resolve_addresses(&self, addresses: &[EmailAddress]) -> Result<Vec<(EmailAddress, IdentityId)>> {
        let addresses = addresses.to_vec();
        self.hot(crate::hot::Cost::Short, move |c| self::resolve_addresses(c, &addresses))
            .await
    }

    async fn create_key(&self, key: StoredKey, replaces: Option<KeyId>, audit: AuditEntry) -> Result<()> {
        let out = self
            .write(move |c| Box::pin(self::create_key(c, key, replaces, audit)))
            .await;
        self.keys_changed(out)
    }

    async fn list_keys(&self, identity: &IdentityId) -> Result<Vec<KeyMeta>> {
        let mut tx = self.reading().await?;
        let out = self::list_keys(&mut tx, identity).await;
        crate::done(tx, out).await
    }

    async fn revoke_key(
        &self,
        identity: &IdentityId,
        key: &KeyId,
        at: Timestamp,
        audit: AuditEntry,
    ) -> Result<KeyMeta> {
        let (identity, key) = (identity.clone(), key.clone());
        let out = self
            .write(move |c| Box::pin(async move { self::revoke_key(c, &identity, &key, at, audit).await }))
            .await;
        self.keys_changed(out)
    }
}

impl crate::SqliteStore {
    /// After an identity or key write has returned (committed, or failed: bumping then is
    /// harmless), invalidates what Loft's key cache holds (`IdentityStore::key_epoch`).
    fn keys_changed<T>(&self, out: Result<T>) -> Result<T> {
        self.key_epoch.fetch_add(1, Ordering::SeqCst);
        out
    }
}
