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
    Approval, ApprovalId, ApprovalQuery, ApprovalStatus, DecisionQuery, ModeRequest, NewHold, NewModeRequest, Release,
    StoredDecision, StoredEdit,
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

const SELECT: &str = "SELECT a.seq, a.id, a.identity_id, a.message_id, a.status, a.reasons, a.created_at, \
     a.expires_at, a.decided_at, a.decided_by, a.reason, a.edit_count, a.edited_at, a.edited_by, c.from_addr, c.subject, c.to_addrs, c.cc_addrs, m.bcc_addrs \
     FROM approvals a JOIN messages m ON m.id = a.message_id JOIN mail_contents c ON c.id = m.content_id";

fn approval(row: &PgRow) -> Result<(i64, Approval)> {
    let id: String = col(row, "id")?;
    let status: String = col(row, "status")?;
    let decided_by: Option<String> = col(row, "decided_by")?;
    let edited_by: Option<String> = col(row, "edited_by")?;
    let edit_count: i32 = col(row, "edit_count")?;
    let a = Approval {
        status: ApprovalStatus::parse_stored(&status, &id)?,
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
    let updated: Option<(String, String)> = sqlx::query_as(
        "UPDATE approvals SET status = $2, decided_at = $3, decided_by = $4, reason = $5 \
         WHERE id = $1 AND status = 'pending' AND (NOT $6 OR expires_at > $3) \
         AND ($7::integer IS NULL OR edit_count = $7) RETURNING message_id, identity_id",
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
    let Some((message_id, composer)) = updated else {
        // Nothing moved: say why, from what is there now.
        return Err(why_not(w.conn(), &d.id, d.at, "approved").await);
    };
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
    qb.push(" WHERE a.identity_id = ")
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
    for job in &release.jobs {
        crate::jobs::insert(&mut *conn, job).await?;
    }
    Ok(())
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
