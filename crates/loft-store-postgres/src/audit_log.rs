//! Reading the audit log table back. Rows get into it only through the sealer
//! (`crate::sealer`), which chains them; the store seals what is pending before it calls these.
//!
//! `details` is stored as the exact `serde_json` text, so the value read back is the value
//! that was hashed. Nothing here updates or deletes rows.

use loft_core::audit::{ActorKind, AuditEntry, AuditQuery, AuditRecord, ChainHead, Outcome};
use loft_core::ids::IdentityId;
use loft_core::mail::StorePage;
use loft_core::{Error, Result};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder};

use crate::db_err;
use crate::rows::{self, col};

const AUDIT_COLS: &str = "SELECT seq, at, actor_kind, actor_identity_id, key_id, action, target, outcome, \
                          request_id, remote_addr, details, prev_hash, hash FROM audit_log";

/// The entry columns of an audit row, sealed (`audit_log`, `what` = "audit row") or not
/// (`audit_pending`, "pending audit row"); `n` names the row in errors.
pub(crate) fn entry(row: &PgRow, what: &str, n: i64) -> Result<AuditEntry> {
    let actor_kind: String = col(row, "actor_kind")?;
    let outcome: String = col(row, "outcome")?;
    let outcome = Outcome::parse(&outcome)
        .ok_or_else(|| Error::internal(format!("{what} {n} has the unknown outcome `{outcome}`")))?;
    Ok(AuditEntry {
        at: rows::ts(row, "at")?,
        actor_kind: ActorKind::parse_stored(&actor_kind, n)?,
        actor_identity_id: col::<Option<String>>(row, "actor_identity_id")?.map(IdentityId::from_trusted),
        key_id: col(row, "key_id")?,
        action: col(row, "action")?,
        target: col(row, "target")?,
        outcome,
        request_id: col(row, "request_id")?,
        remote_addr: col(row, "remote_addr")?,
        details: rows::json_col(row, "details")?,
        events: Vec::new(),
    })
}

fn record(row: &PgRow) -> Result<AuditRecord> {
    let seq: i64 = col(row, "seq")?;
    Ok(AuditRecord {
        seq,
        entry: entry(row, "audit row", seq)?,
        prev_hash: col(row, "prev_hash")?,
        hash: col(row, "hash")?,
    })
}

/// `LIKE` pattern matching every action that starts with `prefix`, wildcards escaped.
pub(crate) fn prefix_pattern(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 1);
    for ch in prefix.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

pub(crate) async fn list(pool: &PgPool, query: &AuditQuery) -> Result<StorePage<AuditRecord>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(AUDIT_COLS);
    qb.push(" WHERE TRUE");
    if let Some(actor) = &query.actor_identity_id {
        qb.push(" AND actor_identity_id = ");
        qb.push_bind(actor.as_str().to_owned());
    }
    if let Some(action) = &query.action {
        if action.ends_with('.') {
            qb.push(" AND action LIKE ");
            qb.push_bind(prefix_pattern(action));
            qb.push(" ESCAPE '\\'");
        } else {
            qb.push(" AND action = ");
            qb.push_bind(action.clone());
        }
    }
    if let Some(outcome) = query.outcome {
        qb.push(" AND outcome = ");
        qb.push_bind(outcome.as_str());
    }
    if let Some(since) = query.since {
        qb.push(" AND at >= ");
        qb.push_bind(since.as_micros());
    }
    if let Some(until) = query.until {
        qb.push(" AND at < ");
        qb.push_bind(until.as_micros());
    }
    if let Some(before) = query.before_seq {
        qb.push(" AND seq < ");
        qb.push_bind(before);
    }
    if let Some(after) = query.after_seq {
        qb.push(" AND seq > ");
        qb.push_bind(after);
    }
    qb.push(" ORDER BY seq DESC LIMIT ");
    qb.push_bind(rows::fetch_limit(query.limit));
    let found = qb.build().fetch_all(pool).await.map_err(db_err)?;
    let items = found
        .iter()
        .map(|row| record(row).map(|r| (r.seq, r)))
        .collect::<Result<Vec<_>>>()?;
    Ok(rows::page(items, query.limit))
}

pub(crate) async fn after(pool: &PgPool, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>> {
    let found = sqlx::query(concat!(
        "SELECT seq, at, actor_kind, actor_identity_id, key_id, action, target, outcome, ",
        "request_id, remote_addr, details, prev_hash, hash FROM audit_log ",
        "WHERE seq > $1 ORDER BY seq LIMIT $2"
    ))
    .bind(after_seq)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    found.iter().map(record).collect()
}

pub(crate) async fn head(pool: &PgPool) -> Result<Option<ChainHead>> {
    let (seq, hash): (i64, String) = sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(pool)
        .await
        .map_err(db_err)?;
    Ok((seq > 0).then_some(ChainHead { seq, hash }))
}

#[async_trait::async_trait]
impl loft_core::store::AuditStore for crate::PostgresStore {
    async fn append_audit(&self, entry: AuditEntry) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        self.wrote(crate::sealer::append(&mut conn, &entry).await)
    }

    async fn list_audit(&self, query: AuditQuery) -> Result<StorePage<AuditRecord>> {
        crate::sealer::seal_pending(&self.pool, crate::sealer::Wait::Block).await?;
        self::list(&self.pool, &query).await
    }

    async fn audit_after(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        crate::sealer::seal_pending(&self.pool, crate::sealer::Wait::Block).await?;
        self::after(&self.pool, after_seq, limit).await
    }

    async fn audit_head(&self) -> Result<Option<ChainHead>> {
        crate::sealer::seal_pending(&self.pool, crate::sealer::Wait::Block).await?;
        self::head(&self.pool).await
    }
}
