//! Reviewers' edits of held mail, and identities' requests for another oversight mode.
//!
//! An edit is one transaction that starts with `UPDATE approvals ... WHERE status = 'pending'
//! AND expires_at > at AND edit_count = expected`: its row lock orders it against a concurrent
//! decision or edit on any node (the later one waits, then finds the row changed and updates
//! nothing). It then rewrites the held sender copy's content row in place (it is its own until
//! approval writes the recipients' copies) and moves the mailbox's byte total by the change.

use loft_core::address::EmailAddress;
use loft_core::audit::AuditEntry;
use loft_core::ids::IdentityId;
use loft_core::mail::{SNIPPET_CHARS, StorePage};
use loft_core::oversight::{ModeRequest, ModeRequestStatus, NewModeRequest, OversightMode, StoredEdit};
use loft_core::time::Timestamp;
use loft_core::{Error, Result};
use sqlx::postgres::{PgPool, PgRow};

use crate::rows::{self, col};
use crate::{WriteTx, db_err};

/// See [`loft_core::store::OversightStore::edit_held_mail`].
pub(crate) async fn edit(pool: &PgPool, e: &StoredEdit, audit: AuditEntry) -> Result<()> {
    let mut w = WriteTx::begin(pool).await?;
    let updated: Option<String> = sqlx::query_scalar(
        "UPDATE approvals SET reasons = $2, edit_count = edit_count + 1, edited_at = $3, edited_by = $4 \
         WHERE id = $1 AND status = 'pending' AND expires_at > $3 AND edit_count = $5 RETURNING message_id",
    )
    .bind(e.id.as_str())
    .bind(rows::to_json(&e.reasons)?)
    .bind(e.at.as_micros())
    .bind(rows::to_json(&e.edited_by)?)
    .bind(i32::try_from(e.expected_edits).unwrap_or(i32::MAX))
    .fetch_optional(w.conn())
    .await
    .map_err(db_err)?;
    let Some(message_id) = updated else {
        return Err(crate::oversight::why_not(w.conn(), &e.id, e.at, "edited").await);
    };
    let (content_id, owner, old_size): (i64, String, i64) = sqlx::query_as(
        "SELECT m.content_id, m.owner_id, c.size FROM messages m JOIN mail_contents c ON c.id = m.content_id \
         WHERE m.id = $1",
    )
    .bind(&message_id)
    .fetch_one(w.conn())
    .await
    .map_err(db_err)?;
    let c = &e.content;
    let size = i64::try_from(e.raw.len()).map_err(|_| Error::internal("message size overflows i64"))?;
    sqlx::query(
        "UPDATE mail_contents SET to_addrs = $2, cc_addrs = $3, subject = $4, body_text = $5, body_html = $6, \
         extracted_text = $7, snippet = $8, size = $9, raw = $10 WHERE id = $1",
    )
    .bind(content_id)
    .bind(rows::to_json(&c.to)?)
    .bind(rows::to_json(&c.cc)?)
    .bind(&c.subject)
    .bind(&c.text)
    .bind(c.html.as_deref())
    .bind(&c.extracted_text)
    .bind(loft_core::text::snippet(&c.extracted_text, SNIPPET_CHARS))
    .bind(size)
    .bind(&e.raw)
    .execute(w.conn())
    .await
    .map_err(db_err)?;
    sqlx::query("UPDATE messages SET bcc_addrs = $2, delivery = $3 WHERE id = $1")
        .bind(&message_id)
        .bind(rows::to_json(&c.bcc)?)
        .bind(rows::to_json(&e.delivery)?)
        .execute(w.conn())
        .await
        .map_err(db_err)?;
    sqlx::query("UPDATE mailbox_usage SET bytes = bytes + $2 WHERE owner_id = $1")
        .bind(&owner)
        .bind(size - old_size)
        .execute(w.conn())
        .await
        .map_err(db_err)?;
    w.audit(audit).await?;
    w.commit().await
}

const MODE_SELECT: &str = "SELECT r.seq, r.identity_id, r.mode, r.reason, r.status, r.requested_at, r.decided_at, \
     r.denial_reason, i.address, i.oversight_mode \
     FROM oversight_mode_requests r JOIN identities i ON i.id = r.identity_id";

fn mode_request(row: &PgRow) -> Result<(i64, ModeRequest)> {
    let id: String = col(row, "identity_id")?;
    let mode: String = col(row, "mode")?;
    let current: String = col(row, "oversight_mode")?;
    let status: String = col(row, "status")?;
    let r = ModeRequest {
        mode: OversightMode::parse_stored(&mode, &id)?,
        current_mode: OversightMode::parse_stored(&current, &id)?,
        status: ModeRequestStatus::parse_stored(&status, &id)?,
        identity_id: IdentityId::from_trusted(id),
        address: EmailAddress::from_trusted(col(row, "address")?),
        reason: col(row, "reason")?,
        requested_at: rows::ts(row, "requested_at")?,
        decided_at: rows::opt_ts(row, "decided_at")?,
        denial_reason: col(row, "denial_reason")?,
    };
    Ok((col(row, "seq")?, r))
}

pub(crate) async fn put_mode_request(pool: &PgPool, r: &NewModeRequest, audit: AuditEntry) -> Result<()> {
    let mut w = WriteTx::begin(pool).await?;
    // A new request replaces the last, open or denied (and takes a new place in the list).
    // Two at once from one identity: the later insert waits on the unique index for the
    // earlier transaction, then replaces its row.
    sqlx::query("DELETE FROM oversight_mode_requests WHERE identity_id = $1")
        .bind(r.identity_id.as_str())
        .execute(w.conn())
        .await
        .map_err(db_err)?;
    sqlx::query(
        "INSERT INTO oversight_mode_requests (identity_id, mode, reason, status, requested_at) \
         VALUES ($1, $2, $3, 'open', $4) \
         ON CONFLICT (identity_id) DO UPDATE SET mode = EXCLUDED.mode, reason = EXCLUDED.reason, status = 'open', \
         requested_at = EXCLUDED.requested_at, decided_at = NULL, denial_reason = NULL",
    )
    .bind(r.identity_id.as_str())
    .bind(r.mode.as_str())
    .bind(&r.reason)
    .bind(r.requested_at.as_micros())
    .execute(w.conn())
    .await
    .map_err(db_err)?;
    w.audit(audit).await?;
    w.commit().await
}

/// Deletes the identity's mode request, if any (the operator set its mode).
pub(crate) async fn clear_mode_request(conn: &mut sqlx::PgConnection, identity: &IdentityId) -> Result<()> {
    sqlx::query("DELETE FROM oversight_mode_requests WHERE identity_id = $1")
        .bind(identity.as_str())
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

pub(crate) async fn get_mode_request(pool: &PgPool, identity: &IdentityId) -> Result<Option<ModeRequest>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{MODE_SELECT} WHERE r.identity_id = $1")))
        .bind(identity.as_str())
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    row.as_ref().map(|r| mode_request(r).map(|(_, m)| m)).transpose()
}

pub(crate) async fn list_mode_requests(
    pool: &PgPool,
    before_seq: Option<i64>,
    limit: u32,
) -> Result<StorePage<ModeRequest>> {
    let found = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{MODE_SELECT} WHERE r.status = 'open' AND i.status = 'active' AND r.seq < $1 ORDER BY r.seq DESC LIMIT $2"
    )))
    .bind(before_seq.unwrap_or(i64::MAX))
    .bind(rows::fetch_limit(limit))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    let items = found.iter().map(mode_request).collect::<Result<Vec<_>>>()?;
    Ok(rows::page(items, limit))
}

pub(crate) async fn deny(
    pool: &PgPool,
    identity: &IdentityId,
    at: Timestamp,
    reason: &str,
    audit: AuditEntry,
) -> Result<()> {
    let mut w = WriteTx::begin(pool).await?;
    let done = sqlx::query(
        "UPDATE oversight_mode_requests SET status = 'denied', decided_at = $2, denial_reason = $3 \
         WHERE identity_id = $1 AND status = 'open'",
    )
    .bind(identity.as_str())
    .bind(at.as_micros())
    .bind(reason)
    .execute(w.conn())
    .await
    .map_err(db_err)?;
    if done.rows_affected() != 1 {
        let exists: Option<i64> = sqlx::query_scalar("SELECT seq FROM oversight_mode_requests WHERE identity_id = $1")
            .bind(identity.as_str())
            .fetch_optional(w.conn())
            .await
            .map_err(db_err)?;
        return Err(match exists {
            None => Error::not_found("mode_request"),
            Some(_) => Error::conflict(
                "mode_request_not_open",
                format!("the mode request of {identity} was already denied"),
            ),
        });
    }
    w.audit(audit).await?;
    w.commit().await
}
