//! Reviewers' edits of held mail, and identities' requests for another oversight mode.
//!
//! An edit rewrites the held sender copy in place (its `mail_contents` and `mail_raw` rows are
//! its own until approval writes the recipients' copies) in one writer job with the approval's
//! update and the audit row, after checking that the approval is still pending, unexpired and
//! at the edit count the reviewer read: the single writer orders it against any decision.

use loft_core::audit::AuditEntry;
use loft_core::ids::IdentityId;
use loft_core::mail::{self as core_mail, StorePage};
use loft_core::oversight::{ModeRequest, ModeRequestStatus, NewModeRequest, OversightMode, StoredEdit};
use loft_core::time::Timestamp;
use loft_core::{Error, Result, text};
use sqlx::SqliteConnection;

use crate::error::map_err;
use crate::rows::to_json;
use crate::{audit, page_limit, paged};

/// See [`loft_core::store::OversightStore::edit_held_mail`].
pub(crate) async fn edit(conn: &mut SqliteConnection, e: StoredEdit, audit_entry: AuditEntry) -> Result<()> {
    let found: Option<(String, i64, String, i64)> =
        sqlx::query_as("SELECT status, expires_at, message_id, edit_count FROM approvals WHERE id = ?")
            .bind(e.id.as_str().to_owned())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
    let Some((status, expires_at, message_id, edit_count)) = found else {
        return Err(Error::not_found("approval"));
    };
    if status != "pending" {
        return Err(Error::conflict(
            "already_decided",
            format!("approval {} was already decided: {status}", e.id),
        ));
    }
    if expires_at <= e.at.as_micros() {
        return Err(Error::conflict(
            "approval_expired",
            format!("approval {} expired before it was edited", e.id),
        ));
    }
    if edit_count != i64::from(e.expected_edits) {
        return Err(crate::oversight::edited(&e.id));
    }
    sqlx::query(
        "UPDATE approvals SET reasons = ?, edit_count = edit_count + 1, edited_at = ?, edited_by = ? WHERE id = ?",
    )
    .bind(to_json(&e.reasons, "reasons")?)
    .bind(e.at.as_micros())
    .bind(to_json(&e.edited_by, "edited_by")?)
    .bind(e.id.as_str().to_owned())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    let (content_id, owner, old_size): (i64, String, i64) =
        sqlx::query_as("SELECT content_id, owner_id, size FROM messages WHERE id = ?")
            .bind(message_id.clone())
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
    let c = &e.content;
    sqlx::query("UPDATE mail_contents SET text = ?, html = ?, extracted_text = ? WHERE id = ?")
        .bind(c.text.clone())
        .bind(c.html.clone())
        .bind(c.extracted_text.clone())
        .bind(content_id)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    sqlx::query("UPDATE mail_raw SET raw = ? WHERE content_id = ?")
        .bind(e.raw.clone())
        .bind(content_id)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    let size = i64::try_from(e.raw.len()).map_err(|_| Error::internal("message size overflows i64"))?;
    sqlx::query(
        "UPDATE messages SET to_addrs = ?, cc_addrs = ?, bcc_addrs = ?, subject = ?, snippet = ?, size = ?, \
         delivery = ? WHERE id = ?",
    )
    .bind(to_json(&c.to, "to_addrs")?)
    .bind(to_json(&c.cc, "cc_addrs")?)
    .bind(to_json(&c.bcc, "bcc_addrs")?)
    .bind(c.subject.clone())
    .bind(text::snippet(&c.extracted_text, core_mail::SNIPPET_CHARS))
    .bind(size)
    .bind(to_json(&e.delivery, "delivery")?)
    .bind(message_id)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    crate::mail::add_usage(conn, &IdentityId::from_trusted(owner), size - old_size).await?;
    audit::append(conn, audit_entry).await?;
    Ok(())
}

macro_rules! mode_select {
    () => {
        "SELECT r.seq, r.identity_id, r.mode, r.reason, r.status, r.requested_at, r.decided_at, \
     r.denial_reason, i.address, i.oversight_mode \
     FROM oversight_mode_requests r JOIN identities i ON i.id = r.identity_id"
    };
}

pub(crate) const GET_MODE_REQUEST: &str = concat!(mode_select!(), " WHERE r.identity_id = ?1");

crate::rows::sql_row! {
struct ModeRow {
    seq: i64,
    identity_id: String,
    mode: String,
    reason: String,
    status: String,
    requested_at: i64,
    decided_at: Option<i64>,
    denial_reason: Option<String>,
    address: String,
    oversight_mode: String,
}
}

impl ModeRow {
    fn into_request(self) -> Result<ModeRequest> {
        Ok(ModeRequest {
            mode: OversightMode::parse_stored(&self.mode, &self.identity_id)?,
            current_mode: OversightMode::parse_stored(&self.oversight_mode, &self.identity_id)?,
            status: ModeRequestStatus::parse_stored(&self.status, &self.identity_id)?,
            identity_id: IdentityId::from_trusted(self.identity_id),
            address: loft_core::address::EmailAddress::from_trusted(self.address),
            reason: self.reason,
            requested_at: Timestamp::from_micros(self.requested_at),
            decided_at: self.decided_at.map(Timestamp::from_micros),
            denial_reason: self.denial_reason,
        })
    }
}

pub(crate) async fn put_mode_request(
    conn: &mut SqliteConnection,
    r: NewModeRequest,
    audit_entry: AuditEntry,
) -> Result<()> {
    // A new request replaces the last, open or denied (and takes a new place in the list).
    clear_mode_request(conn, &r.identity_id).await?;
    sqlx::query(
        "INSERT INTO oversight_mode_requests (identity_id, mode, reason, status, requested_at) \
         VALUES (?, ?, ?, 'open', ?)",
    )
    .bind(r.identity_id.as_str().to_owned())
    .bind(r.mode.as_str())
    .bind(r.reason)
    .bind(r.requested_at.as_micros())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    audit::append(conn, audit_entry).await?;
    Ok(())
}

/// Deletes the identity's mode request, if any (a new request, or the operator set its mode).
pub(crate) async fn clear_mode_request(conn: &mut SqliteConnection, identity: &IdentityId) -> Result<()> {
    sqlx::query("DELETE FROM oversight_mode_requests WHERE identity_id = ?")
        .bind(identity.as_str().to_owned())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn get_mode_request(
    conn: &mut SqliteConnection,
    identity: &IdentityId,
) -> Result<Option<ModeRequest>> {
    let row: Option<ModeRow> = sqlx::query_as(GET_MODE_REQUEST)
        .bind(identity.as_str().to_owned())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    row.map(ModeRow::into_request).transpose()
}

/// [`get_mode_request`] on a hot-read connection.
pub(crate) fn get_mode_request_hot(conn: &rusqlite::Connection, identity: &IdentityId) -> Result<Option<ModeRequest>> {
    use crate::rows::ReadRow as _;
    use rusqlite::OptionalExtension as _;
    let row = conn
        .prepare_cached(GET_MODE_REQUEST)
        .and_then(|mut st| st.query_row([identity.as_str()], ModeRow::from_row).optional())
        .map_err(crate::error::map_rusqlite)?;
    row.map(ModeRow::into_request).transpose()
}

pub(crate) async fn list_mode_requests(
    conn: &mut SqliteConnection,
    before_seq: Option<i64>,
    limit: u32,
) -> Result<StorePage<ModeRequest>> {
    let limit = page_limit(limit);
    let rows: Vec<ModeRow> = sqlx::query_as(concat!(
        mode_select!(),
        " WHERE r.status = 'open' AND i.status = 'active' AND r.seq < ? ORDER BY r.seq DESC LIMIT ?"
    ))
    .bind(before_seq.unwrap_or(i64::MAX))
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    let page = paged(rows, limit, |r| r.seq);
    Ok(StorePage {
        items: page
            .items
            .into_iter()
            .map(ModeRow::into_request)
            .collect::<Result<_>>()?,
        next_before: page.next_before,
    })
}

pub(crate) async fn deny(
    conn: &mut SqliteConnection,
    identity: &IdentityId,
    at: Timestamp,
    reason: String,
    audit_entry: AuditEntry,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE oversight_mode_requests SET status = 'denied', decided_at = ?, denial_reason = ? \
         WHERE identity_id = ? AND status = 'open'",
    )
    .bind(at.as_micros())
    .bind(reason)
    .bind(identity.as_str().to_owned())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    if done.rows_affected() != 1 {
        return Err(match get_mode_request(conn, identity).await? {
            None => Error::not_found("mode_request"),
            Some(_) => not_open(identity),
        });
    }
    audit::append(conn, audit_entry).await?;
    Ok(())
}

fn not_open(identity: &IdentityId) -> Error {
    Error::conflict(
        "mode_request_not_open",
        format!("the mode request of {identity} was already denied"),
    )
}
