//! The audit log: appending a row to the hash chain (always inside the writer's transaction)
//! and reading the log back.

use loft_core::Result;
use loft_core::audit::{AuditEntry, AuditQuery, AuditRecord, ChainHead};
use loft_core::mail::StorePage;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::db::{Db, args, at_once};
use crate::error::{map_err, map_rusqlite};
use crate::rows::{AuditRow, audit_columns, to_json};
use crate::{page_limit, paged};

/// Seals `entry` after the current chain head, inserts it and moves the head. Must run on the
/// writer's connection: the transaction it is in holds the write lock, so no other append
/// (from this process or another) can read the same head.
pub(crate) async fn append(conn: &mut impl Db, mut entry: AuditEntry) -> Result<AuditRecord> {
    let entry_events = std::mem::take(&mut entry.events);
    let (prev_seq, prev_hash): (i64, String) = conn
        .first(HEAD, &[])
        .await?
        .ok_or_else(|| loft_core::Error::internal("the audit chain has no head row"))?;
    let record = AuditRecord::seal(entry, prev_seq, &prev_hash);
    let e = &record.entry;
    conn.exec(
        "INSERT INTO audit_log (seq, at, actor_kind, actor_identity_id, key_id, action, target, outcome, \
         request_id, remote_addr, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &args![
            record.seq,
            e.at.as_micros(),
            e.actor_kind.as_str(),
            e.actor_identity_id.as_ref().map(loft_core::ids::IdentityId::as_str),
            e.key_id.as_deref(),
            e.action.as_str(),
            e.target.as_deref(),
            e.outcome.as_str(),
            e.request_id.as_deref(),
            e.remote_addr.as_deref(),
            // The text stored is exactly what the hash covered; it is never re-encoded.
            to_json(&e.details, "details")?,
            record.prev_hash.as_str(),
            record.hash.as_str(),
        ],
    )
    .await?;
    conn.exec(
        "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1",
        &args![record.seq, record.hash.clone()],
    )
    .await?;
    crate::events::insert(conn, &entry_events, record.entry.at, record.seq).await?;
    Ok(record)
}

pub(crate) async fn list(conn: &mut SqliteConnection, q: AuditQuery) -> Result<StorePage<AuditRecord>> {
    let limit = page_limit(q.limit);
    // Only fixed fragments are pushed as SQL; every value is bound.
    let mut sql: QueryBuilder<Sqlite> =
        QueryBuilder::new(concat!("SELECT ", audit_columns!(), " FROM audit_log WHERE 1 = 1"));
    if let Some(id) = &q.actor_identity_id {
        sql.push(" AND actor_identity_id = ").push_bind(id.as_str().to_owned());
    }
    if let Some(action) = &q.action {
        if let Some(stem) = action.strip_suffix('.') {
            // A prefix ending in `.`: every action in [stem + ".", stem + "/") starts with it,
            // as '/' is the byte right after '.'. Unlike LIKE this is exact (case-sensitive,
            // no wildcards in the input to escape) and can use the index on `action`.
            sql.push(" AND action >= ").push_bind(format!("{stem}."));
            sql.push(" AND action < ").push_bind(format!("{stem}/"));
        } else {
            sql.push(" AND action = ").push_bind(action.clone());
        }
    }
    if let Some(outcome) = q.outcome {
        sql.push(" AND outcome = ").push_bind(outcome.as_str());
    }
    if let Some(since) = q.since {
        sql.push(" AND at >= ").push_bind(since.as_micros());
    }
    if let Some(until) = q.until {
        sql.push(" AND at < ").push_bind(until.as_micros());
    }
    if let Some(before) = q.before_seq {
        sql.push(" AND seq < ").push_bind(before);
    }
    if let Some(after) = q.after_seq {
        sql.push(" AND seq > ").push_bind(after);
    }
    sql.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(limit) + 1);
    let rows: Vec<AuditRow> = sql.build_query_as().fetch_all(&mut *conn).await.map_err(map_err)?;
    let records = rows
        .into_iter()
        .map(AuditRow::into_record)
        .collect::<Result<Vec<_>>>()?;
    Ok(paged(records, limit, |r| r.seq))
}

pub(crate) async fn after(conn: &mut SqliteConnection, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>> {
    let rows: Vec<AuditRow> = sqlx::query_as(concat!(
        "SELECT ",
        audit_columns!(),
        " FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?"
    ))
    .bind(after_seq)
    .bind(i64::from(page_limit(limit)))
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    rows.into_iter().map(AuditRow::into_record).collect()
}

pub(crate) const HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";

fn head(conn: &rusqlite::Connection) -> Result<Option<ChainHead>> {
    let (seq, hash): (i64, String) = conn
        .prepare_cached(HEAD)
        .and_then(|mut st| st.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(map_rusqlite)?;
    Ok((seq > 0).then_some(ChainHead { seq, hash }))
}

#[async_trait::async_trait]
impl loft_core::store::AuditStore for crate::SqliteStore {
    async fn append_audit(&self, entry: AuditEntry) -> Result<()> {
        self.write_native(move |c| at_once(self::append(c, entry)).map(|_| ()))
            .await
    }

    async fn list_audit(&self, query: AuditQuery) -> Result<StorePage<AuditRecord>> {
        let mut tx = self.reading().await?;
        let out = self::list(&mut tx, query).await;
        crate::done(tx, out).await
    }

    async fn audit_after(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        let mut tx = self.reading().await?;
        let out = self::after(&mut tx, after_seq, limit).await;
        crate::done(tx, out).await
    }

    async fn audit_head(&self) -> Result<Option<ChainHead>> {
        // One statement: no read transaction needed (the health check reads it).
        self.hot(crate::hot::Cost::Short, self::head).await
    }
}
