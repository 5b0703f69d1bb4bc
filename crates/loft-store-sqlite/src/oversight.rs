//! Approvals of held mail. A held send's sender copy is written by `mail::send` (status
//! `pending_approval`) with its approval row; a decision moves the approval out of `pending`
//! and, for an approval, writes the recipients' copies (sharing the sender copy's content) and
//! delivery jobs, all in one writer job.

use loft_core::audit::AuditEntry;
use loft_core::ids::{IdentityId, MessageId};
use loft_core::mail::{MailCopy, MessageStatus, StorePage};
use loft_core::oversight::{
    Approval, ApprovalId, ApprovalQuery, ApprovalStatus, DecisionQuery, HoldDirection, ModeRequest, NewHold,
    NewModeRequest, Release, StoredDecision, StoredEdit,
};
use loft_core::time::Timestamp;
use loft_core::{Error, Result};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::db::{Db, Select, args, at_once};
use crate::error::map_err;
use crate::rows::{from_json, to_json};
use crate::{audit, page_limit, paged};

pub(crate) async fn insert(conn: &mut impl Db, hold: &NewHold, sender_copy: &MailCopy, at: Timestamp) -> Result<()> {
    conn.exec(
        "INSERT INTO approvals (id, identity_id, message_id, status, reasons, created_at, expires_at)
         VALUES (?, ?, ?, 'pending', ?, ?, ?)",
        &args![
            hold.id.as_str().to_owned(),
            sender_copy.owner.as_str().to_owned(),
            sender_copy.id.as_str().to_owned(),
            to_json(&hold.reasons, "reasons")?,
            at.as_micros(),
            hold.expires_at.as_micros()
        ],
    )
    .await?;
    Ok(())
}

/// Writes the approval of a held incoming copy (direction `receive`; see `mail::insert_held`).
pub(crate) async fn insert_receive_hold(
    conn: &mut impl Db,
    h: &loft_core::oversight::HeldCopy,
    at: Timestamp,
) -> Result<()> {
    conn.exec(
        "INSERT INTO approvals (id, identity_id, message_id, direction, status, reasons, created_at, expires_at)
         VALUES (?, ?, ?, 'receive', 'pending', ?, ?, ?)",
        &args![
            h.hold.id.as_str().to_owned(),
            h.copy.owner.as_str().to_owned(),
            h.copy.id.as_str().to_owned(),
            to_json(&h.hold.reasons, "reasons")?,
            at.as_micros(),
            h.hold.expires_at.as_micros()
        ],
    )
    .await?;
    Ok(())
}

// A `send` approval's mail is its sender copy (`messages`); a `receive` approval's is its held
// copy (`held_mail`, kept after the release).
const COLS: &str = "a.seq, a.id, a.identity_id, a.message_id, a.direction, a.status, a.reasons, a.created_at, \
                    a.expires_at, a.decided_at, a.decided_by, a.reason, a.edit_count, a.edited_at, a.edited_by, \
                    COALESCE(h.from_addr, m.from_addr) AS from_addr, COALESCE(h.subject, m.subject) AS subject, \
                    COALESCE(h.to_addrs, m.to_addrs) AS to_addrs, COALESCE(h.cc_addrs, m.cc_addrs) AS cc_addrs, \
                    CASE WHEN h.id IS NULL THEN m.bcc_addrs ELSE '[]' END AS bcc_addrs";
const FROM: &str = " FROM approvals a LEFT JOIN messages m ON a.direction = 'send' AND m.id = a.message_id \
                     LEFT JOIN held_mail h ON a.direction = 'receive' AND h.id = a.message_id";
/// Leaves out approvals whose mail is gone (a sender copy deleted for ever).
const FOUND: &str = " (m.id IS NOT NULL OR h.id IS NOT NULL)";

crate::rows::sql_row! {
struct Row {
    seq: i64,
    id: String,
    identity_id: String,
    message_id: String,
    direction: String,
    status: String,
    reasons: String,
    created_at: i64,
    expires_at: i64,
    decided_at: Option<i64>,
    decided_by: Option<String>,
    reason: Option<String>,
    edit_count: i64,
    edited_at: Option<i64>,
    edited_by: Option<String>,
    from_addr: String,
    subject: String,
    to_addrs: String,
    cc_addrs: String,
    bcc_addrs: String,
}}

impl Row {
    fn into_approval(self) -> Result<Approval> {
        let addresses = |text: &str, col: &str| -> Result<Vec<loft_core::address::EmailAddress>> {
            Ok(from_json::<Vec<String>>(text, col)?
                .into_iter()
                .map(loft_core::address::EmailAddress::from_trusted)
                .collect())
        };
        Ok(Approval {
            status: ApprovalStatus::parse_stored(&self.status, &self.id)?,
            direction: HoldDirection::parse_stored(&self.direction, &self.id)?,
            id: ApprovalId::from_trusted(self.id),
            identity_id: IdentityId::from_trusted(self.identity_id),
            from: loft_core::address::EmailAddress::from_trusted(self.from_addr),
            message_id: MessageId::from_trusted(self.message_id),
            subject: self.subject,
            to: addresses(&self.to_addrs, "to_addrs")?,
            cc: addresses(&self.cc_addrs, "cc_addrs")?,
            bcc: addresses(&self.bcc_addrs, "bcc_addrs")?,
            reasons: from_json(&self.reasons, "reasons")?,
            created_at: Timestamp::from_micros(self.created_at),
            expires_at: Timestamp::from_micros(self.expires_at),
            decided_at: self.decided_at.map(Timestamp::from_micros),
            decided_by: self
                .decided_by
                .as_deref()
                .map(|d| from_json(d, "decided_by"))
                .transpose()?,
            reason: self.reason,
            edit_count: u32::try_from(self.edit_count).unwrap_or(u32::MAX),
            edited_at: self.edited_at.map(Timestamp::from_micros),
            edited_by: self
                .edited_by
                .as_deref()
                .map(|d| from_json(d, "edited_by"))
                .transpose()?,
        })
    }
}

pub(crate) async fn get(conn: &mut SqliteConnection, id: &ApprovalId) -> Result<Option<Approval>> {
    let sql = format!("SELECT {COLS}{FROM} WHERE{FOUND} AND a.id = ?");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id.as_str().to_owned())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    row.map(Row::into_approval).transpose()
}

fn list(conn: &rusqlite::Connection, q: &ApprovalQuery) -> Result<StorePage<Approval>> {
    let limit = page_limit(q.limit);
    // Fixed fragments and Loft's own values (the page size) in the SQL; every value a caller
    // gave is bound.
    let mut sql = Select::new(&format!("SELECT {COLS}{FROM} WHERE{FOUND}"));
    if let Some(direction) = q.direction {
        sql.push(" AND a.direction = ").bind(direction.as_str());
    }
    if let Some(identity) = &q.identity {
        sql.push(" AND a.identity_id = ").bind(identity.as_str());
    }
    if let Some(message) = &q.message {
        sql.push(" AND a.message_id = ").bind(message.as_str());
    }
    match q.status {
        None => {}
        Some(ApprovalStatus::Pending) => {
            sql.push(" AND a.status = 'pending' AND a.expires_at > ")
                .bind(q.now.as_micros());
        }
        Some(ApprovalStatus::Expired) => {
            sql.push(" AND (a.status = 'expired' OR (a.status = 'pending' AND a.expires_at <= ")
                .bind(q.now.as_micros())
                .push("))");
        }
        Some(s) => {
            sql.push(" AND a.status = ").bind(s.as_str());
        }
    }
    if let Some(before) = q.created_before {
        sql.push(" AND a.created_at <= ").bind(before.as_micros());
    }
    if let Some(before) = q.before_seq {
        sql.push(" AND a.seq < ").bind(before);
    }
    sql.push(&format!(" ORDER BY a.seq DESC LIMIT {}", i64::from(limit) + 1));
    let rows: Vec<Row> = sql.rows(conn)?;
    let page = paged(rows, limit, |r| r.seq);
    Ok(StorePage {
        items: page.items.into_iter().map(Row::into_approval).collect::<Result<_>>()?,
        next_before: page.next_before,
    })
}

/// See [`loft_core::store::OversightStore::list_decisions`].
pub(crate) async fn decisions(conn: &mut SqliteConnection, q: DecisionQuery) -> Result<Vec<(i64, Approval)>> {
    let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "SELECT a.decided_seq, {COLS}{FROM} WHERE{FOUND} AND a.direction = 'send' AND a.identity_id = "
    ));
    sql.push_bind(q.identity.as_str().to_owned())
        .push(" AND a.decided_seq IS NOT NULL AND a.decided_seq <= ")
        .push_bind(q.upto_seq);
    match q.after_seq {
        Some(after) => sql.push(" AND a.decided_seq > ").push_bind(after),
        None => sql.push(" AND m.unread = 1"),
    };
    sql.push(" ORDER BY a.decided_seq LIMIT ")
        .push_bind(i64::from(page_limit(q.limit)));
    let rows: Vec<DecidedRow> = sql.build_query_as().fetch_all(&mut *conn).await.map_err(map_err)?;
    rows.into_iter()
        .map(|r| Ok((r.decided_seq, r.row.into_approval()?)))
        .collect()
}

#[derive(sqlx::FromRow)]
struct DecidedRow {
    decided_seq: i64,
    #[sqlx(flatten)]
    row: Row,
}

pub(crate) async fn latest_decision(conn: &mut SqliteConnection, identity: &IdentityId) -> Result<i64> {
    sqlx::query_scalar("SELECT COALESCE(MAX(decided_seq), 0) FROM approvals WHERE identity_id = ?")
        .bind(identity.as_str().to_owned())
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)
}

/// See [`loft_core::store::OversightStore::decide_approval`].
pub(crate) async fn decide(conn: &mut impl Db, d: StoredDecision, audit_entry: AuditEntry) -> Result<()> {
    let found: Option<(String, i64, String, i64, String)> = conn
        .first(
            "SELECT status, expires_at, message_id, edit_count, direction FROM approvals WHERE id = ?",
            &args![d.id.as_str().to_owned()],
        )
        .await?;
    let Some((status, expires_at, message_id, edit_count, direction)) = found else {
        return Err(Error::not_found("approval"));
    };
    if status != "pending" {
        return Err(Error::conflict(
            "already_decided",
            format!("approval {} was already decided: {status}", d.id),
        ));
    }
    if d.status == ApprovalStatus::Approved && expires_at <= d.at.as_micros() {
        return Err(Error::conflict(
            "approval_expired",
            format!("approval {} expired before it was approved", d.id),
        ));
    }
    if d.expected_edits.is_some_and(|n| i64::from(n) != edit_count) {
        return Err(edited(&d.id));
    }
    // The composer's next decision number: one writer, so its highest plus one. Held incoming
    // mail gets none: its recipient composed nothing to be told about.
    let done = conn
        .exec(
            "UPDATE approvals SET status = ?, decided_at = ?, decided_by = ?, reason = ?, decided_seq = \
         CASE WHEN direction = 'send' THEN \
         (SELECT COALESCE(MAX(b.decided_seq), 0) + 1 FROM approvals b WHERE b.identity_id = approvals.identity_id) END \
         WHERE id = ? AND status = 'pending'",
            &args![
                d.status.as_str(),
                d.at.as_micros(),
                to_json(&d.decided_by, "decided_by")?,
                d.reason.clone(),
                d.id.as_str().to_owned()
            ],
        )
        .await?;
    if done.rows != 1 {
        return Err(Error::conflict(
            "already_decided",
            format!("approval {} was already decided", d.id),
        ));
    }
    if direction == HoldDirection::Receive.as_str() {
        if d.status == ApprovalStatus::Approved {
            release_held(conn, &message_id, d.release.as_ref()).await?;
        }
        audit::append(conn, audit_entry).await?;
        return Ok(());
    }
    let message_status = match d.status {
        ApprovalStatus::Approved => MessageStatus::Sent,
        ApprovalStatus::Rejected => MessageStatus::Rejected,
        ApprovalStatus::Expired => MessageStatus::Expired,
        ApprovalStatus::Pending => return Err(Error::internal("a decision cannot leave an approval pending")),
    };
    if let Some(release) = &d.release {
        write_copies(conn, &message_id, release).await?;
        conn.exec(
            "UPDATE messages SET status = ?, delivery = ?, unread = 1 WHERE id = ?",
            &args![
                message_status.as_str(),
                to_json(&release.delivery, "delivery")?,
                message_id
            ],
        )
        .await?;
    } else if let Some(schedule) = &d.schedule {
        // Approved before its send_at: it waits for its release job.
        let job = crate::jobs::insert(conn, &schedule.job).await?;
        conn.exec(
        "UPDATE messages SET status = ?, delivery = ?, unread = 1, schedule_state = 'scheduled', schedule_job = ? WHERE id = ?",
        &args![message_status.as_str(), to_json(&schedule.delivery, "delivery")?, job, message_id],
    )
    .await?;
    } else {
        conn.exec(
            "UPDATE messages SET status = ?, unread = 1 WHERE id = ?",
            &args![message_status.as_str(), message_id],
        )
        .await?;
    }
    audit::append(conn, audit_entry).await?;
    Ok(())
}

/// Writes what releases the sender copy `message_id` to its recipients: their copies (sharing
/// its content, each threaded in its own mailbox) and the delivery jobs. The caller moves the
/// sender copy's status.
pub(crate) async fn write_copies(conn: &mut impl Db, message_id: &str, release: &Release) -> Result<()> {
    let (message_id_header, in_reply_to, refs, size): (String, Option<String>, String, i64) = conn
        .one(
            "SELECT message_id, in_reply_to, refs, size FROM messages WHERE id = ?",
            &args![message_id.to_owned()],
        )
        .await?;
    let mut parents = vec![message_id_header];
    parents.extend(in_reply_to);
    parents.extend(from_json::<Vec<String>>(&refs, "refs")?);
    let parents = to_json(&parents, "parents")?;
    for copy in &release.recipient_copies {
        let thread = crate::mail::thread_of(conn, &copy.owner, &parents)
            .await?
            .unwrap_or_else(|| copy.new_thread_id.as_str().to_owned());
        conn.exec(
            "INSERT INTO messages (id, owner_id, thread_id, folder, content_id, message_id, in_reply_to, refs, \
             from_addr, from_name, to_addrs, cc_addrs, bcc_addrs, subject, snippet, authentication, unread, \
             created_at, size, delivery, status)
             SELECT ?, ?, ?, 'inbox', content_id, message_id, in_reply_to, refs, from_addr, from_name, to_addrs, \
             cc_addrs, '[]', subject, snippet, authentication, 1, created_at, size, '[]', 'received'
             FROM messages WHERE id = ?",
            &args![
                copy.id.as_str().to_owned(),
                copy.owner.as_str().to_owned(),
                thread,
                message_id.to_owned()
            ],
        )
        .await?;
        crate::mail::add_usage(conn, &copy.owner, size).await?;
    }
    for h in &release.held_copies {
        conn.exec(
            "INSERT INTO held_mail (id, owner_id, new_thread_id, content_id, parents, message_id, in_reply_to, refs, \
             from_addr, from_name, to_addrs, cc_addrs, subject, snippet, authentication, created_at, size)
             SELECT ?, ?, ?, content_id, ?, message_id, in_reply_to, refs, from_addr, from_name, to_addrs, cc_addrs, \
             subject, snippet, authentication, created_at, size FROM messages WHERE id = ?",
            &args![
                h.copy.id.as_str().to_owned(),
                h.copy.owner.as_str().to_owned(),
                h.copy.new_thread_id.as_str().to_owned(),
                parents.clone(),
                message_id.to_owned()
            ],
        )
        .await?;
        let (at,): (i64,) = conn
            .one("SELECT created_at FROM messages WHERE id = ?", &args![message_id])
            .await?;
        insert_receive_hold(conn, h, Timestamp::from_micros(at)).await?;
    }
    for job in &release.jobs {
        crate::jobs::insert(conn, job).await?;
    }
    crate::caps::touch_contacts(conn, &release.contacts).await?;
    Ok(())
}

/// Writes a released held copy into its owner's inbox (threaded now), and the contacts the
/// release records. The held row keeps its headers for the approval's listing.
async fn release_held(conn: &mut impl Db, id: &str, release: Option<&Release>) -> Result<()> {
    let (owner, new_thread, parents, size): (String, String, String, i64) = conn
        .first(
            "SELECT owner_id, new_thread_id, parents, size FROM held_mail WHERE id = ? AND content_id IS NOT NULL",
            &args![id.to_owned()],
        )
        .await?
        .ok_or_else(|| Error::internal(format!("held mail {id} is missing")))?;
    let owner = IdentityId::from_trusted(owner);
    let thread = crate::mail::thread_of(conn, &owner, &parents)
        .await?
        .unwrap_or(new_thread);
    conn.exec(
        "INSERT INTO messages (id, owner_id, thread_id, folder, content_id, message_id, in_reply_to, refs, \
         from_addr, from_name, to_addrs, cc_addrs, bcc_addrs, subject, snippet, authentication, unread, \
         created_at, size, delivery, status)
         SELECT id, owner_id, ?, 'inbox', content_id, message_id, in_reply_to, refs, from_addr, from_name, to_addrs, \
         cc_addrs, '[]', subject, snippet, authentication, 1, created_at, size, '[]', 'received'
         FROM held_mail WHERE id = ?",
        &args![thread, id.to_owned()],
    )
    .await?;
    conn.exec(
        "UPDATE held_mail SET content_id = NULL WHERE id = ?",
        &args![id.to_owned()],
    )
    .await?;
    crate::mail::add_usage(conn, &owner, size).await?;
    if let Some(r) = release {
        crate::caps::touch_contacts(conn, &r.contacts).await?;
    }
    Ok(())
}

/// A held incoming copy as its owner will see it (see `OversightStore::held_message`).
pub(crate) async fn held_message(
    conn: &mut SqliteConnection,
    id: &MessageId,
) -> Result<Option<loft_core::mail::Message>> {
    let row: Option<crate::rows::MessageRow> = sqlx::query_as(
        "SELECT 0 AS seq, h.id, h.new_thread_id AS thread_id, 'inbox' AS folder, h.message_id, h.in_reply_to, h.refs, \
         h.from_addr, h.from_name, h.to_addrs, h.cc_addrs, '[]' AS bcc_addrs, h.subject, c.text, c.html, \
         c.extracted_text, h.authentication, 1 AS unread, h.created_at, h.size, '[]' AS delivery, \
         'received' AS status, NULL AS send_at, 0 AS archived, NULL AS trashed_at, c.attachments \
         FROM held_mail h JOIN mail_contents c ON c.id = h.content_id WHERE h.id = ?",
    )
    .bind(id.as_str().to_owned())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    row.map(|r| r.into_message(Vec::new())).transpose()
}

/// The refusal of a decision or edit planned from a version of the mail edited since.
pub(crate) fn edited(id: &ApprovalId) -> Error {
    Error::conflict(
        "approval_edited",
        format!("the mail of approval {id} was edited since it was read"),
    )
}

fn frozen(conn: &rusqlite::Connection) -> Result<Option<Timestamp>> {
    let at: Option<i64> = conn
        .prepare_cached("SELECT outgoing_frozen_at FROM instance_state WHERE id = 1")
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(crate::error::map_rusqlite)?;
    Ok(at.map(Timestamp::from_micros))
}

async fn set_frozen(conn: &mut impl Db, at: Option<Timestamp>, audit_entry: AuditEntry) -> Result<()> {
    conn.exec(
        "UPDATE instance_state SET outgoing_frozen_at = ? WHERE id = 1",
        &args![at.map(Timestamp::as_micros)],
    )
    .await?;
    audit::append(conn, audit_entry).await?;
    Ok(())
}

#[async_trait::async_trait]
impl loft_core::store::OversightStore for crate::SqliteStore {
    async fn outgoing_frozen(&self) -> Result<Option<Timestamp>> {
        self.hot(crate::hot::Cost::Short, self::frozen).await
    }

    async fn set_outgoing_frozen(&self, at: Option<Timestamp>, audit: AuditEntry) -> Result<()> {
        self.write_native(move |c| at_once(self::set_frozen(c, at, audit)))
            .await
    }

    async fn get_approval(&self, id: &ApprovalId) -> Result<Option<Approval>> {
        let mut tx = self.reading().await?;
        let out = self::get(&mut tx, id).await;
        crate::done(tx, out).await
    }

    async fn held_message(&self, id: &MessageId) -> Result<Option<loft_core::mail::Message>> {
        let mut tx = self.reading().await?;
        let out = self::held_message(&mut tx, id).await;
        crate::done(tx, out).await
    }

    async fn list_approvals(&self, query: ApprovalQuery) -> Result<StorePage<Approval>> {
        let cost = crate::hot::Cost::of_rows(page_limit(query.limit) as usize);
        self.hot(cost, move |c| self::list(c, &query)).await
    }

    async fn list_decisions(&self, query: DecisionQuery) -> Result<Vec<(i64, Approval)>> {
        let mut tx = self.reading().await?;
        let out = self::decisions(&mut tx, query).await;
        crate::done(tx, out).await
    }

    async fn latest_decision_seq(&self, identity: &IdentityId) -> Result<i64> {
        let mut tx = self.reading().await?;
        let out = self::latest_decision(&mut tx, identity).await;
        crate::done(tx, out).await
    }

    async fn edit_held_mail(&self, edit: StoredEdit, audit: AuditEntry) -> Result<Approval> {
        let id = edit.id.clone();
        self.write(move |c| Box::pin(crate::oversight_edits::edit(c, edit, audit)))
            .await?;
        self.get_approval(&id)
            .await?
            .ok_or_else(|| Error::internal("the approval is missing right after it was edited"))
    }

    async fn put_mode_request(&self, request: NewModeRequest, audit: AuditEntry) -> Result<ModeRequest> {
        let id = request.identity_id.clone();
        self.write(move |c| Box::pin(crate::oversight_edits::put_mode_request(c, request, audit)))
            .await?;
        self.get_mode_request(&id)
            .await?
            .ok_or_else(|| Error::internal("the mode request is missing right after it was made"))
    }

    async fn get_mode_request(&self, identity: &IdentityId) -> Result<Option<ModeRequest>> {
        let id = identity.clone();
        self.hot(crate::hot::Cost::Short, move |c| {
            crate::oversight_edits::get_mode_request_hot(c, &id)
        })
        .await
    }

    async fn list_mode_requests(&self, before_seq: Option<i64>, limit: u32) -> Result<StorePage<ModeRequest>> {
        let mut tx = self.reading().await?;
        let out = crate::oversight_edits::list_mode_requests(&mut tx, before_seq, limit).await;
        crate::done(tx, out).await
    }

    async fn deny_mode_request(
        &self,
        identity: &IdentityId,
        at: Timestamp,
        reason: String,
        audit: AuditEntry,
    ) -> Result<ModeRequest> {
        let id = identity.clone();
        self.write(move |c| Box::pin(async move { crate::oversight_edits::deny(c, &id, at, reason, audit).await }))
            .await?;
        self.get_mode_request(identity)
            .await?
            .ok_or_else(|| Error::internal("the mode request is missing right after it was denied"))
    }

    async fn decide_approval(&self, decision: StoredDecision, audit: AuditEntry) -> Result<Approval> {
        let id = decision.id.clone();
        self.write_native(move |c| at_once(self::decide(c, decision, audit)))
            .await?;
        self.get_approval(&id)
            .await?
            .ok_or_else(|| Error::internal("the approval is missing right after it was decided"))
    }
}
