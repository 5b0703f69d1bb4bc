//! Approvals of held mail. A held send's sender copy is written by `mail::send_mail` (status
//! `pending_approval`) with its approval row. A decision is one transaction: an `UPDATE ...
//! WHERE status = 'pending'` moves the approval out of `pending` (its row lock makes a
//! concurrent decision on another node wait, then find nothing to update), and for an approval
//! the recipients' copies (sharing the sender copy's `mail_contents` row) and delivery jobs
//! are written under the same mailbox locks a send takes.

use loft_core::address::EmailAddress;
use loft_core::audit::AuditEntry;
use loft_core::ids::{IdentityId, MessageId};
use loft_core::mail::{MailCopy, MessageStatus, StorePage};
use loft_core::oversight::{
    Approval, ApprovalId, ApprovalQuery, ApprovalStatus, DecisionQuery, HoldDirection, ModeRequest, NewHold,
    NewModeRequest, Release, StoredDecision, StoredEdit,
};
use loft_core::time::Timestamp;
use loft_core::{Error, Result};
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder};

use crate::mail::{insert_inbox_copies, lock_mailboxes};
use crate::rows::{self, col};
use crate::{WriteTx, db_err};

pub(crate) async fn insert(
    conn: &mut PgConnection,
    hold: &NewHold,
    sender_copy: &MailCopy,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO approvals (id, identity_id, message_id, status, reasons, created_at, expires_at) \
         VALUES ($1, $2, $3, 'pending', $4, $5, $6)",
    )
    .bind(hold.id.as_str())
    .bind(sender_copy.owner.as_str())
    .bind(sender_copy.id.as_str())
    .bind(rows::to_json(&hold.reasons)?)
    .bind(at.as_micros())
    .bind(hold.expires_at.as_micros())
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Writes held incoming copies of stored content (apart from their owners' mailboxes) and
/// their approvals (direction `receive`).
pub(crate) async fn insert_held(
    conn: &mut PgConnection,
    held: &[loft_core::oversight::HeldCopy],
    content_id: i64,
    parents: &[String],
    at: Timestamp,
) -> Result<()> {
    for h in held {
        sqlx::query(
            "INSERT INTO held_mail (id, owner_id, new_thread_id, content_id, parents) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(h.copy.id.as_str())
        .bind(h.copy.owner.as_str())
        .bind(h.copy.new_thread_id.as_str())
        .bind(content_id)
        .bind(rows::to_json(&parents)?)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO approvals (id, identity_id, message_id, direction, status, reasons, created_at, expires_at) \
             VALUES ($1, $2, $3, 'receive', 'pending', $4, $5, $6)",
        )
        .bind(h.hold.id.as_str())
        .bind(h.copy.owner.as_str())
        .bind(h.copy.id.as_str())
        .bind(rows::to_json(&h.hold.reasons)?)
        .bind(at.as_micros())
        .bind(h.hold.expires_at.as_micros())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

// A `send` approval's mail is its sender copy; a `receive` approval's is its held copy, then
// (once released) its recipient's inbox copy.
const SELECT: &str = "SELECT a.seq, a.id, a.identity_id, a.message_id, a.direction, a.status, a.reasons, a.created_at, \
     a.expires_at, a.decided_at, a.decided_by, a.reason, a.edit_count, a.edited_at, a.edited_by, c.from_addr, c.subject, \
     c.to_addrs, c.cc_addrs, COALESCE(m.bcc_addrs, '[]') AS bcc_addrs, m.unread \
     FROM approvals a LEFT JOIN messages m ON m.id = a.message_id \
     LEFT JOIN held_mail h ON a.direction = 'receive' AND h.id = a.message_id \
     JOIN mail_contents c ON c.id = COALESCE(h.content_id, m.content_id)";

fn approval(row: &PgRow) -> Result<(i64, Approval)> {
    let id: String = col(row, "id")?;
    let status: String = col(row, "status")?;
    let decided_by: Option<String> = col(row, "decided_by")?;
    let edited_by: Option<String> = col(row, "edited_by")?;
    let edit_count: i32 = col(row, "edit_count")?;
    let direction: String = col(row, "direction")?;
    let a = Approval {
        status: ApprovalStatus::parse_stored(&status, &id)?,
        direction: HoldDirection::parse_stored(&direction, &id)?,
        id: ApprovalId::from_trusted(id),
        identity_id: IdentityId::from_trusted(col(row, "identity_id")?),
        from: EmailAddress::from_trusted(col(row, "from_addr")?),
        message_id: MessageId::from_trusted(col(row, "message_id")?),
        subject: col(row, "subject")?,
        to: rows::addresses_col(row, "to_addrs")?,
        cc: rows::addresses_col(row, "cc_addrs")?,
        bcc: rows::addresses_col(row, "bcc_addrs")?,
        reasons: rows::json_col(row, "reasons")?,
        created_at: rows::ts(row, "created_at")?,
        expires_at: rows::ts(row, "expires_at")?,
        decided_at: rows::opt_ts(row, "decided_at")?,
        decided_by: decided_by
            .map(|d| serde_json::from_str(&d).map_err(|e| Error::internal(format!("stored decided_by: {e}"))))
            .transpose()?,
        reason: col(row, "reason")?,
        edit_count: u32::try_from(edit_count).unwrap_or(0),
        edited_at: rows::opt_ts(row, "edited_at")?,
        edited_by: edited_by
            .map(|d| serde_json::from_str(&d).map_err(|e| Error::internal(format!("stored edited_by: {e}"))))
            .transpose()?,
    };
    Ok((col(row, "seq")?, a))
}

pub(crate) async fn get(pool: &PgPool, id: &ApprovalId) -> Result<Option<Approval>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE a.id = $1")))
        .bind(id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    row.as_ref().map(|r| approval(r).map(|(_, a)| a)).transpose()
}

pub(crate) async fn list(pool: &PgPool, q: &ApprovalQuery) -> Result<StorePage<Approval>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(SELECT);
    qb.push(" WHERE TRUE");
    if let Some(direction) = q.direction {
        qb.push(" AND a.direction = ").push_bind(direction.as_str());
    }
    if let Some(identity) = &q.identity {
        qb.push(" AND a.identity_id = ").push_bind(identity.as_str().to_owned());
    }
    if let Some(message) = &q.message {
        qb.push(" AND a.message_id = ").push_bind(message.as_str().to_owned());
    }
    match q.status {
        None => {}
        Some(ApprovalStatus::Pending) => {
            qb.push(" AND a.status = 'pending' AND a.expires_at > ")
                .push_bind(q.now.as_micros());
        }
        Some(ApprovalStatus::Expired) => {
            qb.push(" AND (a.status = 'expired' OR (a.status = 'pending' AND a.expires_at <= ")
                .push_bind(q.now.as_micros())
                .push("))");
        }
        Some(s) => {
            qb.push(" AND a.status = ").push_bind(s.as_str());
        }
    }
    if let Some(before) = q.created_before {
        qb.push(" AND a.created_at <= ").push_bind(before.as_micros());
    }
    if let Some(before) = q.before_seq {
        qb.push(" AND a.seq < ").push_bind(before);
    }
    qb.push(" ORDER BY a.seq DESC LIMIT ")
        .push_bind(rows::fetch_limit(q.limit));
    let found = qb.build().fetch_all(pool).await.map_err(db_err)?;
    let items = found.iter().map(approval).collect::<Result<Vec<_>>>()?;
    Ok(rows::page(items, q.limit))
}

/// See [`loft_core::store::OversightStore::decide_approval`].
pub(crate) async fn decide(pool: &PgPool, d: &StoredDecision, audit: AuditEntry) -> Result<()> {
    let mut w = WriteTx::begin(pool).await?;
    let approving = d.status == ApprovalStatus::Approved;
    let updated: Option<(String, String, String)> = sqlx::query_as(
        "UPDATE approvals SET status = $2, decided_at = $3, decided_by = $4, reason = $5 \
         WHERE id = $1 AND status = 'pending' AND (NOT $6 OR expires_at > $3) \
         AND ($7::integer IS NULL OR edit_count = $7) RETURNING message_id, identity_id, direction",
    )
    .bind(d.id.as_str())
    .bind(d.status.as_str())
    .bind(d.at.as_micros())
    .bind(rows::to_json(&d.decided_by)?)
    .bind(d.reason.as_deref())
    .bind(approving)
    .bind(d.expected_edits.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
    .fetch_optional(w.conn())
    .await
    .map_err(db_err)?;
    let Some((message_id, composer, direction)) = updated else {
        // Nothing moved: say why, from what is there now.
        return Err(why_not(w.conn(), &d.id, d.at, "approved").await);
    };
    if direction == HoldDirection::Receive.as_str() {
        // Held incoming mail: no sender copy, and no decision number (its recipient composed
        // nothing to be told about).
        if approving {
            release_held(w.conn(), &message_id, d.release.as_ref()).await?;
        }
        w.audit(audit).await?;
        return w.commit().await;
    }
    let message_status = match d.status {
        ApprovalStatus::Approved => MessageStatus::Sent,
        ApprovalStatus::Rejected => MessageStatus::Rejected,
        ApprovalStatus::Expired => MessageStatus::Expired,
        ApprovalStatus::Pending => return Err(Error::internal("a decision cannot leave an approval pending")),
    };
    let mut delivery = None;
    let mut schedule_job = None;
    if let Some(release) = &d.release {
        write_copies(w.conn(), &message_id, release).await?;
        delivery = Some(rows::to_json(&release.delivery)?);
    } else if let Some(schedule) = &d.schedule {
        // Approved before its send_at: it waits for its release job.
        schedule_job = Some(crate::jobs::insert(w.conn(), &schedule.job).await?);
        delivery = Some(rows::to_json(&schedule.delivery)?);
    }
    if let Some(job) = schedule_job {
        sqlx::query("UPDATE messages SET schedule_state = 'scheduled', schedule_job = $2 WHERE id = $1")
            .bind(&message_id)
            .bind(job)
            .execute(w.conn())
            .await
            .map_err(db_err)?;
    }
    sqlx::query("UPDATE messages SET status = $2, delivery = COALESCE($3, delivery), unread = TRUE WHERE id = $1")
        .bind(&message_id)
        .bind(message_status.as_str())
        .bind(delivery)
        .execute(w.conn())
        .await
        .map_err(db_err)?;
    if let Some(release) = &d.release {
        // After the mailbox locks (taken by the copies) and before the decision number, in
        // (identity, address) order, as every writer takes them: see the migration
        // `caps_contacts`.
        crate::caps::touch_contacts(w.conn(), &release.contacts).await?;
    }
    // The composer's next decision number, taken last: the head row's lock makes the
    // composer's next decision wait for this one to commit, so numbers become visible in order.
    let number: i64 = sqlx::query_scalar(
        "INSERT INTO decision_heads (identity_id, seq) VALUES ($1, 1) \
         ON CONFLICT (identity_id) DO UPDATE SET seq = decision_heads.seq + 1 RETURNING seq",
    )
    .bind(&composer)
    .fetch_one(w.conn())
    .await
    .map_err(db_err)?;
    sqlx::query("UPDATE approvals SET decided_seq = $2 WHERE id = $1")
        .bind(d.id.as_str())
        .bind(number)
        .execute(w.conn())
        .await
        .map_err(db_err)?;
    w.audit(audit).await?;
    w.commit().await
}

/// See [`loft_core::store::OversightStore::list_decisions`].
pub(crate) async fn decisions(pool: &PgPool, q: &DecisionQuery) -> Result<Vec<(i64, Approval)>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(SELECT.replacen("SELECT ", "SELECT a.decided_seq, ", 1));
    qb.push(" WHERE a.direction = 'send' AND a.identity_id = ")
        .push_bind(q.identity.as_str().to_owned())
        .push(" AND a.decided_seq IS NOT NULL AND a.decided_seq <= ")
        .push_bind(q.upto_seq);
    match q.after_seq {
        Some(after) => qb.push(" AND a.decided_seq > ").push_bind(after),
        None => qb.push(" AND m.unread"),
    };
    qb.push(" ORDER BY a.decided_seq LIMIT ")
        .push_bind(i64::from(q.limit.min(10_000)));
    let found = qb.build().fetch_all(pool).await.map_err(db_err)?;
    found
        .iter()
        .map(|r| Ok((col(r, "decided_seq")?, approval(r)?.1)))
        .collect()
}

/// Writes what releases the sender copy `message_id` to its recipients: their copies (sharing
/// its content row, each threaded in its own mailbox, under the mailbox locks a send takes)
/// and the delivery jobs. The caller moves the sender copy's status.
pub(crate) async fn write_copies(conn: &mut PgConnection, message_id: &str, release: &Release) -> Result<()> {
    let (content_id, header_id, in_reply_to, refs, size): (i64, String, Option<String>, String, i64) = sqlx::query_as(
        "SELECT c.id, c.message_id, c.in_reply_to, c.refs, c.size \
             FROM messages m JOIN mail_contents c ON c.id = m.content_id WHERE m.id = $1",
    )
    .bind(message_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    let mut parents = vec![header_id.clone()];
    parents.extend(in_reply_to);
    parents
        .extend(serde_json::from_str::<Vec<String>>(&refs).map_err(|e| Error::internal(format!("stored refs: {e}")))?);
    lock_mailboxes(&mut *conn, &release.recipient_copies, size).await?;
    insert_inbox_copies(&mut *conn, &release.recipient_copies, content_id, &header_id, &parents).await?;
    let composed: i64 = sqlx::query_scalar("SELECT created_at FROM mail_contents WHERE id = $1")
        .bind(content_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    insert_held(
        &mut *conn,
        &release.held_copies,
        content_id,
        &parents,
        Timestamp::from_micros(composed),
    )
    .await?;
    for job in &release.jobs {
        crate::jobs::insert(&mut *conn, job).await?;
    }
    Ok(())
}

/// Writes a released held copy into its owner's inbox (threaded now, under its mailbox lock)
/// and the contacts the release records.
async fn release_held(conn: &mut PgConnection, id: &str, release: Option<&Release>) -> Result<()> {
    let (owner, new_thread, content_id, parents, header_id, size): (String, String, i64, String, String, i64) =
        sqlx::query_as(
            "SELECT h.owner_id, h.new_thread_id, h.content_id, h.parents, c.message_id, c.size \
             FROM held_mail h JOIN mail_contents c ON c.id = h.content_id WHERE h.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::internal(format!("held mail {id} is missing")))?;
    let parents: Vec<String> =
        serde_json::from_str(&parents).map_err(|e| Error::internal(format!("stored parents: {e}")))?;
    let copy = MailCopy {
        id: MessageId::from_trusted(id.to_owned()),
        owner: IdentityId::from_trusted(owner),
        folder: loft_core::mail::Folder::Inbox,
        new_thread_id: loft_core::ids::ThreadId::from_trusted(new_thread),
    };
    let copies = std::slice::from_ref(&copy);
    lock_mailboxes(&mut *conn, copies, size).await?;
    insert_inbox_copies(&mut *conn, copies, content_id, &header_id, &parents).await?;
    sqlx::query("UPDATE held_mail SET content_id = NULL WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    if let Some(r) = release {
        crate::caps::touch_contacts(&mut *conn, &r.contacts).await?;
    }
    Ok(())
}

/// A held incoming copy as its owner will see it (see `OversightStore::held_message`).
pub(crate) async fn held_message(pool: &PgPool, id: &MessageId) -> Result<Option<loft_core::mail::Message>> {
    let row = sqlx::query(
        "SELECT 0::bigint AS seq, h.id, h.new_thread_id AS thread_id, 'inbox' AS folder, 'received' AS status, \
         TRUE AS unread, '[]' AS bcc_addrs, '[]' AS delivery, NULL::bigint AS send_at, FALSE AS archived, \
         NULL::bigint AS trashed_at, c.message_id, c.in_reply_to, c.refs, c.from_addr, c.from_name, c.to_addrs, \
         c.cc_addrs, c.subject, c.body_text, c.body_html, c.extracted_text, c.authentication, c.created_at, c.size, \
         c.attachments, ARRAY[]::text[] AS labels \
         FROM held_mail h JOIN mail_contents c ON c.id = h.content_id WHERE h.id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    row.as_ref().map(crate::mail::message).transpose()
}

/// Why a conditional update of a pending approval (a decision or an edit at `at`) found
/// nothing to update, from what is there now.
pub(crate) async fn why_not(conn: &mut PgConnection, id: &ApprovalId, at: Timestamp, what: &str) -> Error {
    let now: Option<(String, i64)> = match sqlx::query_as("SELECT status, expires_at FROM approvals WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
    {
        Ok(r) => r,
        Err(e) => return db_err(e),
    };
    match now {
        None => Error::not_found("approval"),
        Some((status, _)) if status != "pending" => Error::conflict(
            "already_decided",
            format!("approval {id} was already decided: {status}"),
        ),
        Some((_, expires_at)) if expires_at <= at.as_micros() => Error::conflict(
            "approval_expired",
            format!("approval {id} expired before it was {what}"),
        ),
        Some(_) => Error::conflict(
            "approval_edited",
            format!("the mail of approval {id} was edited since it was read"),
        ),
    }
}

async fn set_frozen(pool: &PgPool, at: Option<Timestamp>, audit: AuditEntry) -> Result<()> {
    let mut w = WriteTx::begin(pool).await?;
    sqlx::query("UPDATE instance_state SET outgoing_frozen_at = $1 WHERE id = 1")
        .bind(at.map(Timestamp::as_micros))
        .execute(w.conn())
        .await
        .map_err(db_err)?;
    w.audit(audit).await?;
    w.commit().await
}

#[async_trait::async_trait]
impl loft_core::store::OversightStore for crate::PostgresStore {
    async fn outgoing_frozen(&self) -> Result<Option<Timestamp>> {
        let at: Option<i64> = sqlx::query_scalar("SELECT outgoing_frozen_at FROM instance_state WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(at.map(Timestamp::from_micros))
    }

    async fn set_outgoing_frozen(&self, at: Option<Timestamp>, audit: AuditEntry) -> Result<()> {
        self.wrote(self::set_frozen(&self.pool, at, audit).await)
    }

    async fn get_approval(&self, id: &ApprovalId) -> Result<Option<Approval>> {
        self::get(&self.pool, id).await
    }

    async fn held_message(&self, id: &MessageId) -> Result<Option<loft_core::mail::Message>> {
        self::held_message(&self.pool, id).await
    }

    async fn list_approvals(&self, query: ApprovalQuery) -> Result<StorePage<Approval>> {
        self::list(&self.pool, &query).await
    }

    async fn list_decisions(&self, query: DecisionQuery) -> Result<Vec<(i64, Approval)>> {
        self::decisions(&self.pool, &query).await
    }

    async fn latest_decision_seq(&self, identity: &IdentityId) -> Result<i64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM decision_heads WHERE identity_id = $1")
            .bind(identity.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(seq.unwrap_or(0))
    }

    async fn edit_held_mail(&self, edit: StoredEdit, audit: AuditEntry) -> Result<Approval> {
        self.wrote(crate::oversight_edits::edit(&self.pool, &edit, audit).await)?;
        self::get(&self.pool, &edit.id)
            .await?
            .ok_or_else(|| Error::internal("the approval is missing right after it was edited"))
    }

    async fn put_mode_request(&self, request: NewModeRequest, audit: AuditEntry) -> Result<ModeRequest> {
        self.wrote(crate::oversight_edits::put_mode_request(&self.pool, &request, audit).await)?;
        crate::oversight_edits::get_mode_request(&self.pool, &request.identity_id)
            .await?
            .ok_or_else(|| Error::internal("the mode request is missing right after it was made"))
    }

    async fn get_mode_request(&self, identity: &IdentityId) -> Result<Option<ModeRequest>> {
        crate::oversight_edits::get_mode_request(&self.pool, identity).await
    }

    async fn list_mode_requests(&self, before_seq: Option<i64>, limit: u32) -> Result<StorePage<ModeRequest>> {
        crate::oversight_edits::list_mode_requests(&self.pool, before_seq, limit).await
    }

    async fn deny_mode_request(
        &self,
        identity: &IdentityId,
        at: Timestamp,
        reason: String,
        audit: AuditEntry,
    ) -> Result<ModeRequest> {
        self.wrote(crate::oversight_edits::deny(&self.pool, identity, at, &reason, audit).await)?;
        crate::oversight_edits::get_mode_request(&self.pool, identity)
            .await?
            .ok_or_else(|| Error::internal("the mode request is missing right after it was denied"))
    }

    async fn decide_approval(&self, decision: StoredDecision, audit: AuditEntry) -> Result<Approval> {
        self.wrote(self::decide(&self.pool, &decision, audit).await)?;
        self::get(&self.pool, &decision.id)
            .await?
            .ok_or_else(|| Error::internal("the approval is missing right after it was decided"))
    }
}
