//! Identities, their delegation tree, and their API keys.
//!
//! The delegation tree is the `parent_id` column (the creating identity); descendants and
//! ancestors are walked with recursive CTEs. Addresses are unique across all identities,
//! revoked ones included (`identities_address_key`), so an address is never reused.

use std::collections::{HashMap, HashSet};

use loft_core::address::EmailAddress;
use loft_core::audit::AuditEntry;
use loft_core::identity::{Identity, NewIdentity};
use loft_core::ids::{IdentityId, KeyId};
use loft_core::keys::{KeyMeta, StoredKey};
use loft_core::mail::StorePage;
use loft_core::store::{IdentityQuery, IdentityUpdate};
use loft_core::time::Timestamp;
use loft_core::{Error, Result};
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Postgres, QueryBuilder};

use crate::rows::{self, identity_cols, key_cols};
use crate::{WriteTx, db_err};

pub(crate) async fn create_identity(pool: &PgPool, new: &NewIdentity, audit: AuditEntry) -> Result<()> {
    let i = &new.identity;
    let mut w = WriteTx::identities(pool).await?;
    sqlx::query(
        "INSERT INTO identities (id, name, display_name, address, scopes, status, created_at, revoked_at, \
         creator_kind, parent_id, creator_key_id, oversight_mode) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(i.id.as_str())
    .bind(&i.name)
    .bind(i.display_name.as_deref())
    .bind(i.address.as_str())
    .bind(i.scopes.to_json())
    .bind(rows::status_str(i.status))
    .bind(i.created_at.as_micros())
    .bind(i.revoked_at.map(Timestamp::as_micros))
    .bind(rows::creator_kind_str(i.created_by.kind))
    .bind(i.created_by.identity_id.as_ref().map(IdentityId::as_str))
    .bind(i.created_by.key_id.as_deref())
    .bind(i.oversight_mode.as_str())
    .execute(w.conn())
    .await
    .map_err(db_err)?;
    insert_key(w.conn(), &new.key).await?;
    w.audit(audit).await?;
    w.commit().await
}

async fn insert_key(conn: &mut PgConnection, key: &StoredKey) -> Result<()> {
    let m = &key.meta;
    sqlx::query(
        "INSERT INTO api_keys (id, identity_id, digest, kind, label, scopes, created_at, expires_at, revoked_at, \
         created_by_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(key.id.as_str())
    .bind(key.identity_id.as_str())
    .bind(key.digest.to_hex())
    .bind(m.kind.as_str())
    .bind(m.label.as_deref())
    .bind(m.scopes.to_json())
    .bind(m.created_at.as_micros())
    .bind(m.expires_at.map(Timestamp::as_micros))
    .bind(m.revoked_at.map(Timestamp::as_micros))
    .bind(m.created_by_key.as_deref())
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub(crate) async fn get_identity(pool: &PgPool, id: &IdentityId) -> Result<Option<Identity>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        identity_cols!(),
        " FROM identities i WHERE i.id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    row.as_ref().map(rows::identity).transpose()
}

async fn identity_exists(conn: &mut PgConnection, id: &IdentityId) -> Result<bool> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM identities WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
        .map_err(db_err)?;
    Ok(found.is_some())
}

pub(crate) async fn list_identities(pool: &PgPool, query: &IdentityQuery) -> Result<StorePage<Identity>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("");
    if let Some(within) = &query.within {
        qb.push("WITH RECURSIVE tree (id) AS (SELECT id FROM identities WHERE id = ");
        qb.push_bind(within.as_str().to_owned());
        qb.push(" UNION ALL SELECT c.id FROM identities c JOIN tree t ON c.parent_id = t.id) ");
    }
    qb.push(concat!("SELECT ", identity_cols!(), " FROM identities i WHERE TRUE"));
    if query.within.is_some() {
        qb.push(" AND i.id IN (SELECT id FROM tree)");
    }
    if !query.include_revoked {
        qb.push(" AND i.status = 'active'");
    }
    if let Some(before) = query.before_seq {
        qb.push(" AND i.seq < ");
        qb.push_bind(before);
    }
    qb.push(" ORDER BY i.seq DESC LIMIT ");
    qb.push_bind(rows::fetch_limit(query.limit));
    let found = qb.build().fetch_all(pool).await.map_err(db_err)?;
    let items = found.iter().map(rows::identity_with_seq).collect::<Result<Vec<_>>>()?;
    Ok(rows::page(items, query.limit))
}

pub(crate) async fn update_identity(
    pool: &PgPool,
    id: &IdentityId,
    update: &IdentityUpdate,
    audit: AuditEntry,
) -> Result<Identity> {
    let mut w = WriteTx::identities(pool).await?;
    // `display_name`: NULL leaves it, '' clears it, anything else sets it.
    let row = sqlx::query(concat!(
        "UPDATE identities i SET ",
        "display_name = CASE WHEN $2::text IS NULL THEN i.display_name ELSE NULLIF($2::text, '') END, ",
        "scopes = COALESCE($3::text, i.scopes), ",
        "oversight_mode = COALESCE($4::text, i.oversight_mode), ",
        "paused_at = CASE WHEN $5 THEN $6::bigint ELSE i.paused_at END, ",
        "cap_mails_per_hour = CASE WHEN $7 THEN $8::bigint ELSE i.cap_mails_per_hour END, ",
        "cap_mails_per_day = CASE WHEN $7 THEN $9::bigint ELSE i.cap_mails_per_day END, ",
        "cap_new_recipients_per_day = CASE WHEN $7 THEN $10::bigint ELSE i.cap_new_recipients_per_day END, ",
        "first_contact = COALESCE($11::text, i.first_contact), ",
        "exfiltration_guard = COALESCE($12::text, i.exfiltration_guard), ",
        "internal_mail = COALESCE($13::text, i.internal_mail) ",
        "WHERE i.id = $1 RETURNING ",
        identity_cols!()
    ))
    .bind(id.as_str())
    .bind(update.display_name.as_deref())
    .bind(update.scopes.as_ref().map(loft_core::keys::ScopeSet::to_json))
    .bind(update.oversight_mode.map(loft_core::oversight::OversightMode::as_str))
    .bind(update.paused_at.is_some())
    .bind(update.paused_at.flatten().map(Timestamp::as_micros))
    .bind(update.caps.is_some())
    .bind(update.caps.and_then(|c| rows::cap_col(c.mails_per_hour)))
    .bind(update.caps.and_then(|c| rows::cap_col(c.mails_per_day)))
    .bind(update.caps.and_then(|c| rows::cap_col(c.new_recipients_per_day)))
    .bind(update.caps.map(|c| c.first_contact.as_str()))
    .bind(update.caps.map(|c| c.exfiltration_guard.as_str()))
    .bind(update.caps.map(|c| c.internal_mail.as_str()))
    .fetch_optional(w.conn())
    .await
    .map_err(db_err)?;
    let Some(row) = row else {
        return Err(Error::not_found("identity"));
    };
    let identity = rows::identity(&row)?;
    if update.clear_mode_request {
        crate::oversight_edits::clear_mode_request(w.conn(), id).await?;
    }
    w.audit(audit).await?;
    w.commit().await?;
    Ok(identity)
}

pub(crate) async fn revoke_identity(
    pool: &PgPool,
    id: &IdentityId,
    at: Timestamp,
    mut audit: AuditEntry,
) -> Result<Vec<IdentityId>> {
    let mut w = WriteTx::identities(pool).await?;
    if !identity_exists(w.conn(), id).await? {
        return Err(Error::not_found("identity"));
    }
    let mut revoked: Vec<(i64, String)> = sqlx::query_as(
        "WITH RECURSIVE tree (id) AS ( \
            SELECT id FROM identities WHERE id = $1 \
            UNION ALL \
            SELECT c.id FROM identities c JOIN tree t ON c.parent_id = t.id) \
         UPDATE identities i SET status = 'revoked', revoked_at = $2 \
         FROM tree t WHERE i.id = t.id AND i.status = 'active' \
         RETURNING i.seq, i.id",
    )
    .bind(id.as_str())
    .bind(at.as_micros())
    .fetch_all(w.conn())
    .await
    .map_err(db_err)?;
    sqlx::query(
        "WITH RECURSIVE tree (id) AS ( \
            SELECT id FROM identities WHERE id = $1 \
            UNION ALL \
            SELECT c.id FROM identities c JOIN tree t ON c.parent_id = t.id) \
         UPDATE api_keys k SET revoked_at = $2 \
         FROM tree t WHERE k.identity_id = t.id AND k.revoked_at IS NULL",
    )
    .bind(id.as_str())
    .bind(at.as_micros())
    .execute(w.conn())
    .await
    .map_err(db_err)?;
    // Creation order: the named identity first, then the tree below it, parents before
    // children (a child is always created after its parent).
    revoked.sort_by_key(|(seq, _)| *seq);
    let ids: Vec<IdentityId> = revoked
        .into_iter()
        .map(|(_, id)| IdentityId::from_trusted(id))
        .collect();
    let list = serde_json::Value::from(ids.iter().map(|i| i.as_str().to_owned()).collect::<Vec<_>>());
    match audit.details.as_object_mut() {
        Some(details) => {
            details.insert("revoked".into(), list);
        }
        None => audit.details = serde_json::json!({ "revoked": list }),
    }
    w.audit(audit).await?;
    w.commit().await?;
    Ok(ids)
}

pub(crate) async fn ancestors(pool: &PgPool, id: &IdentityId) -> Result<Vec<Identity>> {
    let found = sqlx::query(concat!(
        "WITH RECURSIVE up (id, parent_id, depth) AS ( ",
        "SELECT id, parent_id, 0 FROM identities WHERE id = $1 ",
        "UNION ALL ",
        // The depth bound only guards against a corrupted (cyclic) tree.
        "SELECT p.id, p.parent_id, up.depth + 1 FROM identities p JOIN up ON p.id = up.parent_id ",
        "WHERE up.depth < 10000) ",
        "SELECT ",
        identity_cols!(),
        " FROM up JOIN identities i ON i.id = up.id WHERE up.depth > 0 ORDER BY up.depth"
    ))
    .bind(id.as_str())
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    found.iter().map(rows::identity).collect()
}

pub(crate) async fn usage(pool: &PgPool, id: &IdentityId) -> Result<loft_core::quota::Usage> {
    let (sub_identities, active_keys, vault_items, stored_bytes): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT \
           (SELECT COUNT(*) FROM identities WHERE parent_id = $1 AND status = 'active'), \
           (SELECT COUNT(*) FROM api_keys WHERE identity_id = $1 AND revoked_at IS NULL), \
           (SELECT COUNT(*) FROM vault_items WHERE owner_id = $1), \
           COALESCE((SELECT bytes FROM mailbox_usage WHERE owner_id = $1), 0)",
    )
    .bind(id.as_str())
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    Ok(loft_core::quota::Usage {
        sub_identities: sub_identities as u64,
        active_keys: active_keys as u64,
        vault_items: vault_items as u64,
        stored_bytes: stored_bytes as u64,
    })
}

pub(crate) async fn mailbox_bytes(pool: &PgPool, owners: &[IdentityId]) -> Result<Vec<(IdentityId, u64)>> {
    if owners.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<String> = owners.iter().map(|o| o.as_str().to_owned()).collect();
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT owner_id, bytes FROM mailbox_usage WHERE owner_id = ANY($1)")
        .bind(&wanted)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    Ok(rows
        .into_iter()
        .map(|(id, bytes)| (IdentityId::from_trusted(id), bytes as u64))
        .collect())
}

pub(crate) async fn mailbox_stats(pool: &PgPool, owners: &[IdentityId]) -> Result<Vec<loft_core::store::MailboxStats>> {
    if owners.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<String> = owners.iter().map(|o| o.as_str().to_owned()).collect();
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT s.owner_id, s.n, COALESCE(u.bytes, 0), c.created_at \
         FROM (SELECT owner_id, COUNT(*) AS n, MAX(seq) AS last FROM messages \
               WHERE owner_id = ANY($1) GROUP BY owner_id) s \
         JOIN messages m ON m.seq = s.last \
         JOIN mail_contents c ON c.id = m.content_id \
         LEFT JOIN mailbox_usage u ON u.owner_id = s.owner_id",
    )
    .bind(&wanted)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
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

pub(crate) async fn mailbox_labels(pool: &PgPool, owner: &IdentityId, labels: &[String]) -> Result<(u64, u64)> {
    let (used, present): (i64, i64) = sqlx::query_as(
        // The distinct labels are found one index seek each (the next label after the last one),
        // and each label asked for by one more: a labels quota check costs the number of labels,
        // whatever the size of the mailbox.
        "WITH RECURSIVE used(label) AS ( \
             SELECT MIN(label) FROM message_labels WHERE owner_id = $1 \
             UNION ALL \
             SELECT (SELECT MIN(l.label) FROM message_labels l WHERE l.owner_id = $1 AND l.label > used.label) \
             FROM used WHERE used.label IS NOT NULL \
         ) \
         SELECT \
           (SELECT COUNT(label) FROM used), \
           (SELECT COUNT(*) FROM (SELECT DISTINCT unnest($2::text[]) AS label) a \
            WHERE EXISTS (SELECT 1 FROM message_labels l WHERE l.owner_id = $1 AND l.label = a.label))",
    )
    .bind(owner.as_str())
    .bind(labels)
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    let asked = labels.iter().collect::<HashSet<_>>().len() as u64;
    Ok((used as u64, asked.saturating_sub(present as u64)))
}

pub(crate) async fn resolve_addresses(
    pool: &PgPool,
    addresses: &[EmailAddress],
) -> Result<Vec<(EmailAddress, IdentityId)>> {
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<String> = addresses.iter().map(|a| a.as_str().to_owned()).collect();
    let found: Vec<(String, String)> =
        sqlx::query_as("SELECT address, id FROM identities WHERE address = ANY($1) AND status = 'active'")
            .bind(&wanted)
            .fetch_all(pool)
            .await
            .map_err(db_err)?;
    let by_address: HashMap<String, String> = found.into_iter().collect();
    // In the order asked, once each.
    let mut seen = HashSet::new();
    Ok(addresses
        .iter()
        .filter(|a| seen.insert(a.as_str()))
        .filter_map(|a| {
            by_address
                .get(a.as_str())
                .map(|id| (a.clone(), IdentityId::from_trusted(id.clone())))
        })
        .collect())
}

pub(crate) async fn find_key(pool: &PgPool, id: &KeyId) -> Result<Option<(StoredKey, Identity)>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        key_cols!(),
        ", ",
        identity_cols!(),
        " FROM api_keys k JOIN identities i ON i.id = k.identity_id WHERE k.id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some((rows::stored_key(&row)?, rows::identity(&row)?))),
    }
}

pub(crate) async fn create_key(
    pool: &PgPool,
    key: &StoredKey,
    replaces: Option<&KeyId>,
    audit: AuditEntry,
) -> Result<()> {
    let mut w = WriteTx::identities(pool).await?;
    if !identity_exists(w.conn(), &key.identity_id).await? {
        return Err(Error::not_found("identity"));
    }
    if let Some(old) = replaces {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND identity_id = $2 AND revoked_at IS NULL",
        )
        .bind(old.as_str())
        .bind(key.identity_id.as_str())
        .bind(key.meta.created_at.as_micros())
        .execute(w.conn())
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("key"));
        }
    }
    insert_key(w.conn(), key).await?;
    w.audit(audit).await?;
    w.commit().await
}

pub(crate) async fn list_keys(pool: &PgPool, identity: &IdentityId) -> Result<Vec<KeyMeta>> {
    let found = sqlx::query(concat!(
        "SELECT ",
        key_cols!(),
        " FROM api_keys k WHERE k.identity_id = $1 ORDER BY k.seq"
    ))
    .bind(identity.as_str())
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    found.iter().map(rows::key_meta).collect()
}

pub(crate) async fn revoke_key(
    pool: &PgPool,
    identity: &IdentityId,
    key: &KeyId,
    at: Timestamp,
    audit: AuditEntry,
) -> Result<KeyMeta> {
    let mut w = WriteTx::identities(pool).await?;
    let row = sqlx::query(concat!(
        "SELECT ",
        key_cols!(),
        " FROM api_keys k WHERE k.id = $1 AND k.identity_id = $2"
    ))
    .bind(key.as_str())
    .bind(identity.as_str())
    .fetch_optional(w.conn())
    .await
    .map_err(db_err)?;
    let Some(row) = row else {
        return Err(Error::not_found("key"));
    };
    let mut meta = rows::key_meta(&row)?;
    if meta.revoked_at.is_none() {
        sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1")
            .bind(key.as_str())
            .bind(at.as_micros())
            .execute(w.conn())
            .await
            .map_err(db_err)?;
        meta.revoked_at = Some(at);
    }
    w.audit(audit).await?;
    w.commit().await?;
    Ok(meta)
}

#[async_trait::async_trait]
impl loft_core::store::IdentityStore for crate::PostgresStore {
    async fn find_key(&self, id: &KeyId) -> Result<Option<(StoredKey, Identity)>> {
        self::find_key(&self.pool, id).await
    }

    fn key_epoch(&self) -> u64 {
        self.key_epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn create_identity(&self, new: NewIdentity, audit: AuditEntry) -> Result<()> {
        self.keys_changed(self::create_identity(&self.pool, &new, audit).await)
    }

    async fn get_identity(&self, id: &IdentityId) -> Result<Option<Identity>> {
        self::get_identity(&self.pool, id).await
    }

    async fn list_identities(&self, query: IdentityQuery) -> Result<StorePage<Identity>> {
        self::list_identities(&self.pool, &query).await
    }

    async fn update_identity(&self, id: &IdentityId, update: IdentityUpdate, audit: AuditEntry) -> Result<Identity> {
        self.keys_changed(self::update_identity(&self.pool, id, &update, audit).await)
    }

    async fn revoke_identity(&self, id: &IdentityId, at: Timestamp, audit: AuditEntry) -> Result<Vec<IdentityId>> {
        self.keys_changed(self::revoke_identity(&self.pool, id, at, audit).await)
    }

    async fn ancestors(&self, id: &IdentityId) -> Result<Vec<Identity>> {
        self::ancestors(&self.pool, id).await
    }

    async fn usage(&self, identity: &IdentityId) -> Result<loft_core::quota::Usage> {
        self::usage(&self.pool, identity).await
    }

    async fn resolve_addresses(&self, addresses: &[EmailAddress]) -> Result<Vec<(EmailAddress, IdentityId)>> {
        self::resolve_addresses(&self.pool, addresses).await
    }

    async fn create_key(&self, key: StoredKey, replaces: Option<KeyId>, audit: AuditEntry) -> Result<()> {
        self.keys_changed(self::create_key(&self.pool, &key, replaces.as_ref(), audit).await)
    }

    async fn list_keys(&self, identity: &IdentityId) -> Result<Vec<KeyMeta>> {
        self::list_keys(&self.pool, identity).await
    }

    async fn revoke_key(
        &self,
        identity: &IdentityId,
        key: &KeyId,
        at: Timestamp,
        audit: AuditEntry,
    ) -> Result<KeyMeta> {
        self.keys_changed(self::revoke_key(&self.pool, identity, key, at, audit).await)
    }
}
