//! Mailboxes: storing every copy of a message, threading each copy in its owner's mailbox,
//! labels and read state, and the list and thread views.
//!
//! Every lookup here is scoped by the owner: another owner's message or thread id behaves
//! exactly like a missing one. Lists select only the `messages` columns (headers and the
//! snippet), never the bodies in `mail_contents` or the bytes in `mail_raw`.

use std::collections::HashMap;

use loft_core::address::EmailAddress;
use loft_core::audit::AuditEntry;
use loft_core::ids::{IdentityId, MessageId, ThreadId};
use loft_core::mail::{
    self as core_mail, Delivery, Folder, InboundMail, MailContent, MailCopy, Message, MessagePatch, MessageQuery,
    MessageStatus, MessageSummary, NewMail, StorePage, Thread, ThreadQuery, ThreadSummary,
};
use loft_core::search::{SearchQuery, SearchRow};
use loft_core::time::Timestamp;
use loft_core::{Error, Result, text};
use sqlx::SqliteConnection;

use crate::db::{Db, Select, args, at_once};
use crate::error::{map_err, map_rusqlite};
use crate::rows::{MessageRow, ReadRow, SummaryRow, column, message_columns, summary_columns, to_json};
use crate::{audit, page_limit, paged};
use rusqlite::OptionalExtension as _;

/// A message's labels as one column of its row: a JSON array (so that a read of messages with
/// their labels is one statement).
macro_rules! labels_column {
    () => {
        "(SELECT json_group_array(l.label) FROM message_labels l WHERE l.message_seq = m.seq) AS labels"
    };
}

/// Writes every copy, the queue rows and the audit row. The caller reads the sender's copy
/// back once the batch is committed (bodies are not loaded inside the writer).
pub(crate) async fn send(conn: &mut impl Db, mail: NewMail, audit_entry: AuditEntry) -> Result<()> {
    let c = &mail.content;
    let shared = Shared::store(conn, c, &mail.raw, &mail.attachments, &c.bcc).await?;

    let held = mail.hold.is_some();
    insert_copy(conn, c, held, &mail.delivery, &shared, &mail.sender_copy, true).await?;
    if mail.send_at.is_some() || mail.schedule.is_some() {
        let job = match &mail.schedule {
            Some(job) => Some(crate::jobs::insert(conn, job).await?),
            None => None,
        };
        crate::schedule::mark(conn, &mail.sender_copy.id, mail.send_at, job).await?;
    }
    for copy in &mail.recipient_copies {
        insert_copy(conn, c, held, &mail.delivery, &shared, copy, false).await?;
    }
    for h in &mail.held_copies {
        insert_held(conn, c, &shared, h).await?;
    }
    for job in &mail.jobs {
        crate::jobs::insert(conn, job).await?;
    }
    if let Some(hold) = &mail.hold {
        crate::oversight::insert(conn, hold, &mail.sender_copy, c.created_at).await?;
    }
    if let Some(i) = &mail.idempotency {
        record_idempotency(conn, &mail.sender_copy, i).await?;
    }
    // After the idempotency key: a concurrent retry of the same send is answered as a retry.
    if let Some(draft) = &mail.consumes_draft {
        crate::drafts::consume(conn, &mail.sender_copy.owner, draft).await?;
    }
    crate::caps::touch_contacts(conn, &mail.contacts).await?;
    audit::append(conn, audit_entry).await?;
    Ok(())
}

/// Writes a mail received from outside: its content and bytes once, one inbox copy per
/// recipient (threaded in each mailbox), and the audit row.
pub(crate) async fn receive(conn: &mut impl Db, mail: InboundMail, audit_entry: AuditEntry) -> Result<()> {
    write_inbound(conn, &mail).await?;
    audit::append(conn, audit_entry).await?;
    Ok(())
}

/// The inbox copies of a mail from outside (or of a bounce notice), without an audit row.
pub(crate) async fn write_inbound(conn: &mut impl Db, mail: &InboundMail) -> Result<()> {
    let c = &mail.content;
    // Inbox copies never carry `bcc`.
    let shared = Shared::store(conn, c, &mail.raw, &mail.attachments, &[]).await?;
    for copy in &mail.copies {
        insert_copy(conn, c, false, &[], &shared, copy, false).await?;
    }
    for h in &mail.held_copies {
        insert_held(conn, c, &shared, h).await?;
    }
    for job in &mail.jobs {
        crate::jobs::insert(conn, job).await?;
    }
    Ok(())
}

/// Records an idempotency key with the send (see [`core_mail::Idempotency`]).
async fn record_idempotency(conn: &mut impl Db, copy: &MailCopy, i: &core_mail::Idempotency) -> Result<()> {
    let owner = copy.owner.as_str().to_owned();
    conn.exec(
        "DELETE FROM idempotency_keys WHERE identity_id = ? AND key = ? AND created_at <= ?",
        &args![owner.clone(), i.key.clone(), i.stale_before.as_micros()],
    )
    .await?;
    let done = conn.exec(
        "INSERT INTO idempotency_keys (identity_id, key, fingerprint, message_id, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (identity_id, key) DO NOTHING",
        &args![owner, i.key.clone(), i.fingerprint.clone(), copy.id.as_str().to_owned(), i.created_at.as_micros()],
    )
    .await?;
    if done.rows == 0 {
        return Err(Error::conflict(
            "idempotency_key_in_use",
            "a send with this idempotency key was recorded first",
        ));
    }
    Ok(())
}

pub(crate) async fn find_idempotency(
    conn: &mut SqliteConnection,
    owner: &IdentityId,
    key: &str,
    not_before: Timestamp,
) -> Result<Option<(String, MessageId)>> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT fingerprint, message_id FROM idempotency_keys WHERE identity_id = ? AND key = ? AND created_at > ?",
    )
    .bind(owner.as_str().to_owned())
    .bind(key.to_owned())
    .bind(not_before.as_micros())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(row.map(|(f, m)| (f, MessageId::from_trusted(m))))
}

/// Values computed once per message and written into every copy.
struct Shared {
    content_id: i64,
    refs: String,
    to: String,
    cc: String,
    bcc: String,
    snippet: String,
    authentication: String,
    size: i64,
    /// JSON array of `In-Reply-To` and `References`.
    parents: String,
}

impl Shared {
    /// Stores a message's content and bytes once, for all its copies, and prepares what every
    /// copy row repeats.
    async fn store(
        conn: &mut impl Db,
        c: &core_mail::MailContent,
        raw: &[u8],
        attachments: &[core_mail::Attachment],
        bcc: &[EmailAddress],
    ) -> Result<Self> {
        let content_id = conn
            .exec(
                "INSERT INTO mail_contents (text, html, extracted_text, attachments) VALUES (?, ?, ?, ?)",
                &args![
                    c.text.clone(),
                    c.html.clone(),
                    c.extracted_text.clone(),
                    to_json(attachments, "attachments")?
                ],
            )
            .await?
            .last_id;
        // One copy of the bytes, shared by every mailbox copy.
        conn.exec(
            "INSERT INTO mail_raw (content_id, raw) VALUES (?, ?)",
            &args![content_id, raw.to_vec()],
        )
        .await?;
        // What a copy is threaded by: the messages it answers, and the message's own id (a
        // copy to oneself joins the thread of the sent copy).
        let mut parents: Vec<&str> = Vec::with_capacity(c.references.len() + 2);
        parents.push(c.message_id.as_str());
        parents.extend(c.in_reply_to.as_deref());
        parents.extend(c.references.iter().map(String::as_str));
        Ok(Self {
            content_id,
            refs: to_json(&c.references, "refs")?,
            to: to_json(&c.to, "to_addrs")?,
            cc: to_json(&c.cc, "cc_addrs")?,
            bcc: to_json(bcc, "bcc_addrs")?,
            snippet: text::snippet(&c.extracted_text, core_mail::SNIPPET_CHARS),
            authentication: to_json(&c.authentication, "authentication")?,
            size: i64::try_from(raw.len()).map_err(|_| Error::internal("message size overflows i64"))?,
            parents: to_json(&parents, "references")?,
        })
    }
}

async fn insert_copy(
    conn: &mut impl Db,
    c: &MailContent,
    held: bool,
    delivery: &[Delivery],
    shared: &Shared,
    copy: &MailCopy,
    is_sender: bool,
) -> Result<i64> {
    // The thread of the newest message in this owner's mailbox that this one answers.
    let existing = thread_of(conn, &copy.owner, &shared.parents).await?;
    let thread_id = existing.unwrap_or_else(|| copy.new_thread_id.as_str().to_owned());
    let (bcc, delivery, status) = if is_sender {
        let status = if held {
            MessageStatus::PendingApproval
        } else {
            MessageStatus::Sent
        };
        (shared.bcc.clone(), to_json(delivery, "delivery")?, status)
    } else {
        // Inbox copies never learn who else was blind-copied.
        ("[]".to_owned(), "[]".to_owned(), MessageStatus::Received)
    };
    let seq = conn.exec(
        "INSERT INTO messages (id, owner_id, thread_id, folder, content_id, message_id, in_reply_to, refs, from_addr, \
         from_name, to_addrs, cc_addrs, bcc_addrs, subject, snippet, authentication, unread, created_at, size, delivery, \
         status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &args![copy.id.as_str().to_owned(), copy.owner.as_str().to_owned(), thread_id, copy.folder.as_str(), shared.content_id, c.message_id.clone(), c.in_reply_to.clone(), shared.refs.clone(), c.from.as_str().to_owned(), c.from_name.clone(), shared.to.clone(), shared.cc.clone(), bcc, c.subject.clone(), shared.snippet.clone(), shared.authentication.clone(), !is_sender, c.created_at.as_micros(), shared.size, delivery, status.as_str()],
    )
    .await?
    .last_id;
    add_usage(conn, &copy.owner, shared.size).await?;
    Ok(seq)
}

/// Writes a held incoming copy (apart from its owner's mailbox) and its approval.
async fn insert_held(
    conn: &mut impl Db,
    c: &MailContent,
    shared: &Shared,
    h: &loft_core::oversight::HeldCopy,
) -> Result<()> {
    conn.exec(
        "INSERT INTO held_mail (id, owner_id, new_thread_id, content_id, parents, message_id, in_reply_to, refs, \
         from_addr, from_name, to_addrs, cc_addrs, subject, snippet, authentication, created_at, size) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &args![
            h.copy.id.as_str().to_owned(),
            h.copy.owner.as_str().to_owned(),
            h.copy.new_thread_id.as_str().to_owned(),
            shared.content_id,
            shared.parents.clone(),
            c.message_id.clone(),
            c.in_reply_to.clone(),
            shared.refs.clone(),
            c.from.as_str().to_owned(),
            c.from_name.clone(),
            shared.to.clone(),
            shared.cc.clone(),
            c.subject.clone(),
            shared.snippet.clone(),
            shared.authentication.clone(),
            c.created_at.as_micros(),
            shared.size
        ],
    )
    .await?;
    crate::oversight::insert_receive_hold(conn, h, c.created_at).await
}

/// Adds a copy's bytes to its mailbox's running total.
pub(crate) async fn add_usage(conn: &mut impl Db, owner: &IdentityId, size: i64) -> Result<()> {
    conn.exec(
        "INSERT INTO mailbox_usage (owner_id, bytes) VALUES (?, ?)
         ON CONFLICT (owner_id) DO UPDATE SET bytes = bytes + excluded.bytes",
        &args![owner.as_str().to_owned(), size],
    )
    .await?;
    Ok(())
}

/// The thread of the newest message in `owner`'s mailbox among `parents` (a JSON array of
/// Message-IDs), if any.
pub(crate) async fn thread_of(conn: &mut impl Db, owner: &IdentityId, parents: &str) -> Result<Option<String>> {
    let row: Option<(String,)> = conn
        .first(
            // INDEXED BY: left to itself the planner walks the whole mailbox through
            // `messages_owner` to honour ORDER BY seq, which made every send O(mailbox size).
            "SELECT thread_id FROM messages INDEXED BY messages_owner_message_id
             WHERE owner_id = ? AND message_id IN (SELECT value FROM json_each(?))
             ORDER BY seq DESC LIMIT 1",
            &args![owner.as_str(), parents],
        )
        .await?;
    Ok(row.map(|(thread,)| thread))
}

/// Labels of these messages, sorted, keyed by message seq.
pub(crate) async fn labels_of(conn: &mut SqliteConnection, seqs: &[i64]) -> Result<HashMap<i64, Vec<String>>> {
    let mut out: HashMap<i64, Vec<String>> = HashMap::new();
    if seqs.is_empty() {
        return Ok(out);
    }
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT message_seq, label FROM message_labels
         WHERE message_seq IN (SELECT value FROM json_each(?)) ORDER BY message_seq, label",
    )
    .bind(to_json(seqs, "seqs")?)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    for (seq, label) in rows {
        out.entry(seq).or_default().push(label);
    }
    Ok(out)
}

async fn full_messages(conn: &mut SqliteConnection, rows: Vec<MessageRow>) -> Result<Vec<Message>> {
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let mut labels = labels_of(conn, &seqs).await?;
    rows.into_iter()
        .map(|r| {
            let l = labels.remove(&r.seq).unwrap_or_default();
            r.into_message(l)
        })
        .collect()
}

/// One message of `owner`'s mailbox with its labels, in one statement (a hot read).
fn get(conn: &rusqlite::Connection, owner: &IdentityId, id: &MessageId) -> Result<Option<Message>> {
    let row = conn
        .prepare_cached(concat!(
            "SELECT ",
            message_columns!(),
            ", ",
            labels_column!(),
            " FROM messages m JOIN mail_contents c ON c.id = m.content_id WHERE m.owner_id = ?1 AND m.id = ?2"
        ))
        .and_then(|mut st| {
            st.query_row([owner.as_str(), id.as_str()], Labelled::<MessageRow>::from_row)
                .optional()
        })
        .map_err(map_rusqlite)?;
    let Some(row) = row else { return Ok(None) };
    let labels = row.labels(row.row.seq)?;
    row.row.into_message(labels).map(Some)
}

async fn seq_of(conn: &mut impl Db, owner: &IdentityId, id: &MessageId) -> Result<i64> {
    let seq: Option<(i64,)> = conn
        .first(
            "SELECT seq FROM messages WHERE owner_id = ? AND id = ?",
            &args![owner.as_str(), id.as_str()],
        )
        .await?;
    seq.map(|(seq,)| seq).ok_or_else(|| Error::not_found("message"))
}

/// Marks one message read and records the read; `NotFound` for another owner's message.
pub(crate) async fn mark_read(
    conn: &mut impl Db,
    owner: &IdentityId,
    id: &MessageId,
    audit_entry: AuditEntry,
) -> Result<()> {
    let seq = seq_of(conn, owner, id).await?;
    conn.exec(
        "UPDATE messages SET unread = 0 WHERE seq = ? AND unread = 1",
        &args![seq],
    )
    .await?;
    audit::append(conn, audit_entry).await?;
    Ok(())
}

fn raw(conn: &rusqlite::Connection, owner: &IdentityId, id: &MessageId) -> Result<Option<Vec<u8>>> {
    conn.prepare_cached(
        "SELECT r.raw FROM messages m JOIN mail_raw r ON r.content_id = m.content_id
         WHERE m.owner_id = ? AND m.id = ?",
    )
    .and_then(|mut st| st.query_row([owner.as_str(), id.as_str()], |r| r.get(0)).optional())
    .map_err(map_rusqlite)
}

/// Applies a patch to one message and records it; the caller reads the message back.
pub(crate) async fn update(
    conn: &mut impl Db,
    owner: &IdentityId,
    id: &MessageId,
    patch: MessagePatch,
    audit_entry: AuditEntry,
) -> Result<()> {
    let seq = seq_of(conn, owner, id).await?;
    apply(conn, &[seq], &patch, audit_entry.at).await?;
    audit::append(conn, audit_entry).await?;
    Ok(())
}

/// Applies a patch to every copy of one thread and records it; the caller reads it back.
pub(crate) async fn update_thread(
    conn: &mut impl Db,
    owner: &IdentityId,
    id: &ThreadId,
    patch: MessagePatch,
    audit_entry: AuditEntry,
) -> Result<()> {
    let seqs: Vec<i64> = conn
        .all::<(i64,)>(
            "SELECT seq FROM messages WHERE owner_id = ? AND thread_id = ? ORDER BY seq",
            &args![owner.as_str(), id.as_str()],
        )
        .await?
        .into_iter()
        .map(|(seq,)| seq)
        .collect();
    if seqs.is_empty() {
        return Err(Error::not_found("thread"));
    }
    apply(conn, &seqs, &patch, audit_entry.at).await?;
    audit::append(conn, audit_entry).await?;
    Ok(())
}

crate::rows::sql_row! {
struct StateRow {
    id: String,
    folder: String,
    status: String,
    trashed_at: Option<i64>,
    held: bool,
    delivery: String,
    created_at: i64,
    content_id: i64,
    size: i64,
}}

impl StateRow {
    fn state(&self) -> Result<core_mail::CopyState> {
        let delivery: Vec<core_mail::Delivery> = crate::rows::from_json(&self.delivery, "delivery")?;
        Ok(core_mail::CopyState {
            id: MessageId::from_trusted(self.id.clone()),
            folder: core_mail::Folder::parse_stored(&self.folder, &self.id)?,
            status: MessageStatus::parse_stored(&self.status, &self.id)?,
            trashed: self.trashed_at.is_some(),
            held: self.held,
            delivery_pending: delivery.iter().any(|d| d.status == core_mail::DeliveryStatus::Queued),
            created_at: Timestamp::from_micros(self.created_at),
        })
    }
}

/// The copies `seqs` as the mailbox rules judge them.
async fn states(conn: &mut impl Db, seqs: &[i64]) -> Result<Vec<StateRow>> {
    conn.all(
        "SELECT m.id, m.folder, COALESCE(m.schedule_state, m.status) AS status, m.trashed_at,
                EXISTS (SELECT 1 FROM approvals a WHERE a.message_id = m.id) AS held,
                m.delivery, m.created_at, m.content_id, m.size
         FROM messages m WHERE m.seq IN (SELECT value FROM json_each(?)) ORDER BY m.seq",
        &args![to_json(seqs, "seqs")?],
    )
    .await
}

/// Applies `patch` to the copies `seqs` (all or none: the writer rolls the job's savepoint back
/// on an error).
async fn apply(conn: &mut impl Db, seqs: &[i64], patch: &MessagePatch, at: Timestamp) -> Result<()> {
    if patch.trashed == Some(true) {
        let rows = states(conn, seqs).await?;
        let states = rows.iter().map(StateRow::state).collect::<Result<Vec<_>>>()?;
        core_mail::check_trashable(&states)?;
    }
    for &seq in seqs {
        // Adds first, then removes: a label named in both ends up removed.
        for label in &patch.add_labels {
            conn.exec(
                "INSERT OR IGNORE INTO message_labels (message_seq, label, owner_id)
                 SELECT seq, ?2, owner_id FROM messages WHERE seq = ?1",
                &args![seq, label.clone()],
            )
            .await?;
        }
        for label in &patch.remove_labels {
            conn.exec(
                "DELETE FROM message_labels WHERE message_seq = ? AND label = ?",
                &args![seq, label.clone()],
            )
            .await?;
        }
        if !patch.add_labels.is_empty() {
            let (count,): (i64,) = conn
                .one("SELECT COUNT(*) FROM message_labels WHERE message_seq = ?", &args![seq])
                .await?;
            if count > core_mail::MAX_LABELS_PER_MESSAGE as i64 {
                // The job fails, so its savepoint is rolled back: nothing of this patch stays.
                return Err(Error::invalid(
                    "too_many_labels",
                    format!("a message carries at most {} labels", core_mail::MAX_LABELS_PER_MESSAGE),
                )
                .with_hint("remove labels before adding more"));
            }
        }
    }
    let seqs_json = to_json(seqs, "seqs")?;
    if let Some(unread) = patch.unread {
        conn.exec(
            "UPDATE messages SET unread = ? WHERE seq IN (SELECT value FROM json_each(?))",
            &args![unread, seqs_json.as_str()],
        )
        .await?;
    }
    if let Some(archived) = patch.archived {
        conn.exec(
            "UPDATE messages SET archived = ? WHERE seq IN (SELECT value FROM json_each(?))",
            &args![archived, seqs_json.as_str()],
        )
        .await?;
    }
    match patch.trashed {
        // A copy trashed already keeps the time it was trashed.
        Some(true) => {
            conn.exec(
                "UPDATE messages SET trashed_at = ? WHERE seq IN (SELECT value FROM json_each(?)) AND trashed_at IS NULL",
                &args![at.as_micros(), seqs_json],
            )
            .await?
        }
        Some(false) => {
            conn.exec(
                "UPDATE messages SET trashed_at = NULL WHERE seq IN (SELECT value FROM json_each(?))",
                &args![seqs_json],
            )
            .await?
        }
        None => return Ok(()),
    };
    Ok(())
}

/// Deletes `owner`'s copy or thread for ever (see `MailStore::delete_for_ever`).
pub(crate) async fn delete_for_ever(
    conn: &mut SqliteConnection,
    owner: &IdentityId,
    target: &core_mail::MailTarget,
    audit_entry: AuditEntry,
) -> Result<Vec<MessageId>> {
    let seqs: Vec<i64> = match target {
        core_mail::MailTarget::Message(id) => {
            sqlx::query_scalar("SELECT seq FROM messages WHERE owner_id = ? AND id = ?")
                .bind(owner.as_str().to_owned())
                .bind(id.as_str().to_owned())
        }
        core_mail::MailTarget::Thread(id) => {
            sqlx::query_scalar("SELECT seq FROM messages WHERE owner_id = ? AND thread_id = ? ORDER BY seq")
                .bind(owner.as_str().to_owned())
                .bind(id.as_str().to_owned())
        }
    }
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    if seqs.is_empty() {
        return Err(target.not_found());
    }
    let rows = states(conn, &seqs).await?;
    let copies = rows.iter().map(StateRow::state).collect::<Result<Vec<_>>>()?;
    core_mail::check_deletable(&copies, audit_entry.at)?;
    let seqs_json = to_json(&seqs, "seqs")?;
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let bytes: i64 = rows.iter().map(|r| r.size).sum();
    let mut contents: Vec<i64> = rows.iter().map(|r| r.content_id).collect();
    contents.sort_unstable();
    contents.dedup();
    let contents_json = to_json(&contents, "contents")?;
    for sql in [
        "DELETE FROM message_labels WHERE message_seq IN (SELECT value FROM json_each(?))",
        // The search trigger `message_search_delete` removes each copy's index row.
        "DELETE FROM messages WHERE seq IN (SELECT value FROM json_each(?))",
    ] {
        sqlx::query(sql)
            .bind(seqs_json.clone())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE identity_id = ? AND message_id IN (SELECT value FROM json_each(?))",
    )
    .bind(owner.as_str().to_owned())
    .bind(to_json(&ids, "ids")?)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    // The shared content and bytes go with the last copy that refers to them.
    for sql in [
        "DELETE FROM mail_raw WHERE content_id IN (SELECT value FROM json_each(?))
         AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.content_id = mail_raw.content_id)
         AND NOT EXISTS (SELECT 1 FROM held_mail h WHERE h.content_id = mail_raw.content_id)",
        "DELETE FROM mail_contents WHERE id IN (SELECT value FROM json_each(?))
         AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.content_id = mail_contents.id)
         AND NOT EXISTS (SELECT 1 FROM held_mail h WHERE h.content_id = mail_contents.id)",
    ] {
        sqlx::query(sql)
            .bind(contents_json.clone())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    sqlx::query("UPDATE mailbox_usage SET bytes = MAX(bytes - ?, 0) WHERE owner_id = ?")
        .bind(bytes)
        .bind(owner.as_str().to_owned())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    audit::append(conn, audit_entry).await?;
    Ok(rows.into_iter().map(|r| MessageId::from_trusted(r.id)).collect())
}

/// A row of a message (`R`) followed by its [`labels_column`].
struct Labelled<R> {
    row: R,
    labels: String,
}

impl<R: ReadRow> ReadRow for Labelled<R> {
    fn read(row: &rusqlite::Row<'_>, at: &mut usize) -> rusqlite::Result<Self> {
        Ok(Self {
            row: R::read(row, at)?,
            labels: column(row, at, "labels")?,
        })
    }
}

impl<R> Labelled<R> {
    /// The labels, sorted, of the message with this `seq`.
    fn labels(&self, seq: i64) -> Result<Vec<String>> {
        let mut labels: Vec<String> = serde_json::from_str(&self.labels)
            .map_err(|e| Error::internal(format!("the labels of message {seq} do not read: {e}")))?;
        labels.sort();
        Ok(labels)
    }
}

/// A page of `owner`'s mailbox: one statement, on a hot-read connection (`list_messages`).
fn list(conn: &rusqlite::Connection, owner: &IdentityId, q: &MessageQuery) -> Result<StorePage<MessageSummary>> {
    let limit = page_limit(q.limit);
    let sql = list_select(owner, q, limit);
    let rows: Vec<Labelled<SummaryRow>> = sql.rows(conn)?;
    let page = paged(rows, limit, |r| r.row.seq);
    let items = page
        .items
        .into_iter()
        .map(|r| {
            let labels = r.labels(r.row.seq)?;
            r.row.into_summary(labels)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(StorePage {
        items,
        next_before: page.next_before,
    })
}

/// The statement of [`list`]: fixed fragments and Loft's own values in the SQL, every value
/// that came from a caller bound. The labels come in the same statement (a JSON array per
/// row), so that a list is one statement.
pub(crate) fn list_select(owner: &IdentityId, q: &MessageQuery, limit: u32) -> Select {
    let mut sql = Select {
        sql: String::with_capacity(1024),
        args: Vec::with_capacity(4),
    };
    sql.push(concat!("SELECT ", summary_columns!(), ", ", labels_column!()));
    // With a label, the page is walked through that mailbox's copies carrying the label (the
    // `(owner_id, label, message_seq)` index, as the outer loop: CROSS JOIN), so that it costs
    // the page whatever the mailbox holds; walking the mailbox and testing each copy for the
    // label read all of a million-message mailbox when the label was rare (docs/benchmarks.md).
    let seq = if let Some(label) = &q.label {
        sql.push(
            " FROM message_labels ml INDEXED BY message_labels_owner_label \
                 CROSS JOIN messages m ON m.seq = ml.message_seq WHERE ml.owner_id = ",
        )
        .bind(owner.as_str().to_owned())
        .push(" AND ml.label = ")
        .bind(label.clone())
        .push(" AND m.owner_id = ml.owner_id");
        "ml.message_seq"
    } else {
        sql.push(" FROM messages m WHERE m.owner_id = ")
            .bind(owner.as_str().to_owned());
        "m.seq"
    };
    // The folder, the archived flag and the limit are written into the SQL, not bound (they
    // are Loft's own values, from closed sets or a number): SQLite plans with the values of
    // such parameters (the limit, a folder that a partial index names), and a statement whose
    // plan used a bound value is prepared again at every run, which was the largest cost of a
    // list after the hand-offs. Each shape is one cached statement.
    match q.folder {
        Some(Folder::Inbox) => sql.push(" AND m.folder = 'inbox'"),
        Some(Folder::Sent) => sql.push(" AND m.folder = 'sent'"),
        None => &mut sql,
    };
    match q.archived {
        Some(true) => sql.push(" AND m.archived = 1"),
        Some(false) => sql.push(" AND m.archived = 0"),
        None => &mut sql,
    };
    sql.push(if q.trashed {
        " AND m.trashed_at IS NOT NULL"
    } else {
        " AND m.trashed_at IS NULL"
    });
    if q.unread_only {
        sql.push(" AND m.unread = 1");
    }
    if let Some(from) = &q.from {
        sql.push(" AND m.from_addr = ").bind(from.as_str().to_owned());
    }
    if let Some(thread) = &q.thread_id {
        sql.push(" AND m.thread_id = ").bind(thread.as_str().to_owned());
    }
    if let Some(after) = q.after_seq {
        sql.push(" AND ").push(seq).push(" > ").bind(after);
    }
    if let Some(before) = q.before_seq {
        sql.push(" AND ").push(seq).push(" < ").bind(before);
    }
    sql.push(" ORDER BY ")
        .push(seq)
        .push(if q.oldest_first { " ASC LIMIT " } else { " DESC LIMIT " })
        .push(&(i64::from(limit) + 1).to_string());
    sql
}

#[derive(sqlx::FromRow)]
struct ThreadRow {
    thread_id: String,
    message_count: i64,
    unread_count: i64,
    last_seq: i64,
    subject: String,
    last_id: String,
    last_snippet: String,
    last_at: i64,
}

/// How many copies the thread walk of [`thread_page_rows`] reads at a time.
const THREAD_WALK_BATCH: i64 = 256;

/// A label on at most this many copies of a mailbox lists its threads from those copies alone;
/// a label on more is found by the mailbox walk, which costs the distance to the page's labelled
/// threads (short for a label that common, unless its copies are all old).
const LABELLED_FEW: i64 = 2048;

/// The rows of a thread-list page: up to `want` threads whose newest copy (in the trash, or
/// outside it) is below `q.before_seq`, newest first, with their counts and first and last
/// copies.
///
/// A mailbox is walked from its newest copy down (the `(owner_id, seq)` index), a batch at a
/// time; each thread met for the first time is a candidate, and its counts come from the
/// `(owner_id, thread_id, ...)` index. A candidate whose newest copy is at or above
/// `before_seq` was on an earlier page and is skipped; the others come out in the order of
/// their newest copy, which is the order of the walk. So a page costs about the copies of the
/// threads on it, whatever the size of the mailbox; grouping the whole mailbox on every call
/// cost time in proportion to the mailbox (docs/benchmarks.md, issue 14).
async fn thread_page_rows(
    conn: &mut SqliteConnection,
    owner: &IdentityId,
    q: &ThreadQuery,
    want: i64,
) -> Result<Vec<ThreadRow>> {
    let want = usize::try_from(want).unwrap_or(usize::MAX);
    let before = q.before_seq.unwrap_or(i64::MAX);
    if let Some(label) = &q.label {
        // A label on few copies: their threads are the only candidates (walking the mailbox
        // for them read all of it when the label was rare: 3.3 s at a million messages). The
        // label's copies first, from the index alone (a label on many copies costs no more than
        // this bounded look), then their threads when they are few.
        let labelled: Vec<i64> = sqlx::query_scalar(
            "SELECT message_seq FROM message_labels INDEXED BY message_labels_owner_label
             WHERE owner_id = ?1 AND label = ?2 LIMIT ?3",
        )
        .bind(owner.as_str().to_owned())
        .bind(label.clone())
        .bind(LABELLED_FEW + 1)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        if labelled.len() as i64 <= LABELLED_FEW {
            let candidates: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT thread_id FROM messages WHERE seq IN (SELECT value FROM json_each(?))",
            )
            .bind(to_json(&labelled, "seqs")?)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
            let mut found = threads_among(conn, owner, q, before, &candidates).await?;
            found.truncate(want);
            return Ok(found);
        }
    }
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut out: Vec<ThreadRow> = Vec::new();
    let mut walk_from = before;
    while out.len() < want {
        let batch: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, thread_id FROM messages INDEXED BY messages_owner
             WHERE owner_id = ?1 AND seq < ?2 AND (trashed_at IS NOT NULL) = ?3
             ORDER BY seq DESC LIMIT ?4",
        )
        .bind(owner.as_str().to_owned())
        .bind(walk_from)
        .bind(q.trashed)
        .bind(THREAD_WALK_BATCH)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        let Some(last) = batch.last() else { break };
        walk_from = last.0;
        let mut candidates: Vec<String> = Vec::new();
        for (_, thread) in batch {
            if seen.insert(thread.clone()) {
                candidates.push(thread);
            }
        }
        if candidates.is_empty() {
            continue;
        }
        let mut found = threads_among(conn, owner, q, before, &candidates).await?;
        found.truncate(want - out.len());
        out.extend(found);
    }
    Ok(out)
}

/// The rows of the threads `candidates` that pass the query's filters and whose newest copy is
/// below `before`, newest first.
async fn threads_among(
    conn: &mut SqliteConnection,
    owner: &IdentityId,
    q: &ThreadQuery,
    before: i64,
    candidates: &[String],
) -> Result<Vec<ThreadRow>> {
    sqlx::query_as(
        "WITH t AS (
             SELECT thread_id, MIN(seq) AS first_seq, MAX(seq) AS last_seq,
                    COUNT(*) AS message_count, SUM(unread) AS unread_count
             FROM messages INDEXED BY messages_owner_thread
             WHERE owner_id = ?1 AND thread_id IN (SELECT value FROM json_each(?2))
               AND (trashed_at IS NOT NULL) = ?3
             GROUP BY thread_id
         )
         SELECT t.thread_id, t.message_count, t.unread_count, t.last_seq,
                f.subject AS subject, l.id AS last_id, l.snippet AS last_snippet, l.created_at AS last_at
         FROM t
         JOIN messages f ON f.seq = t.first_seq
         JOIN messages l ON l.seq = t.last_seq
         WHERE t.last_seq < ?4
           AND (?5 = 0 OR t.unread_count > 0)
           AND (?6 IS NULL OR EXISTS (
                 SELECT 1 FROM messages m INDEXED BY messages_owner_thread
                 JOIN message_labels ml ON ml.message_seq = m.seq
                 WHERE m.owner_id = ?1 AND m.thread_id = t.thread_id AND ml.label = ?6
                   AND (m.trashed_at IS NOT NULL) = ?3))
         ORDER BY t.last_seq DESC",
    )
    .bind(owner.as_str().to_owned())
    .bind(to_json(candidates, "thread ids")?)
    .bind(q.trashed)
    .bind(before)
    .bind(q.unread_only)
    .bind(q.label.clone())
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)
}

pub(crate) async fn list_threads(
    conn: &mut SqliteConnection,
    owner: &IdentityId,
    q: ThreadQuery,
) -> Result<StorePage<ThreadSummary>> {
    let limit = page_limit(q.limit);
    let rows = thread_page_rows(conn, owner, &q, i64::from(limit) + 1).await?;
    let page = paged(rows, limit, |r| r.last_seq);

    // Participants: distinct senders in order of first appearance, for the threads on this page.
    let ids: Vec<&str> = page.items.iter().map(|r| r.thread_id.as_str()).collect();
    let mut participants: HashMap<String, Vec<EmailAddress>> = HashMap::new();
    if !ids.is_empty() {
        let senders: Vec<(String, String)> = sqlx::query_as(
            "SELECT thread_id, from_addr FROM messages INDEXED BY messages_owner_thread
             WHERE owner_id = ? AND thread_id IN (SELECT value FROM json_each(?))
               AND (trashed_at IS NOT NULL) = ? ORDER BY seq",
        )
        .bind(owner.as_str().to_owned())
        .bind(to_json(&ids, "thread ids")?)
        .bind(q.trashed)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        for (thread, from) in senders {
            let list = participants.entry(thread).or_default();
            if !list.iter().any(|a| a.as_str() == from) {
                list.push(EmailAddress::from_trusted(from));
            }
        }
    }
    let items = page
        .items
        .into_iter()
        .map(|r| ThreadSummary {
            participants: participants.remove(&r.thread_id).unwrap_or_default(),
            id: ThreadId::from_trusted(r.thread_id),
            subject: r.subject,
            message_count: r.message_count,
            unread_count: r.unread_count,
            snippet: r.last_snippet,
            last_message_id: MessageId::from_trusted(r.last_id),
            last_message_at: Timestamp::from_micros(r.last_at),
        })
        .collect();
    Ok(StorePage {
        items,
        next_before: page.next_before,
    })
}

/// Records a thread read; `NotFound` when the owner has no such thread.
pub(crate) async fn record_thread_read(
    conn: &mut impl Db,
    owner: &IdentityId,
    id: &ThreadId,
    trashed: bool,
    audit_entry: AuditEntry,
) -> Result<()> {
    let exists: Option<(i64,)> = conn
        .first(
            "SELECT 1 FROM messages WHERE owner_id = ? AND thread_id = ? AND (trashed_at IS NOT NULL) = ? LIMIT 1",
            &args![owner.as_str(), id.as_str(), trashed],
        )
        .await?;
    if exists.is_none() {
        return Err(Error::not_found("thread"));
    }
    audit::append(conn, audit_entry).await?;
    Ok(())
}

/// A thread, oldest first: every copy (`trashed` = `None`), only those outside the trash
/// (`Some(false)`) or only the trashed ones (`Some(true)`); `None` when there are none.
pub(crate) async fn thread(
    conn: &mut SqliteConnection,
    owner: &IdentityId,
    id: &ThreadId,
    trashed: Option<bool>,
) -> Result<Option<Thread>> {
    let rows: Vec<MessageRow> = sqlx::query_as(concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages m JOIN mail_contents c ON c.id = m.content_id
         WHERE m.owner_id = ? AND m.thread_id = ? AND (?3 IS NULL OR (m.trashed_at IS NOT NULL) = ?3) ORDER BY m.seq"
    ))
    .bind(owner.as_str().to_owned())
    .bind(id.as_str().to_owned())
    .bind(trashed)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    if rows.is_empty() {
        return Ok(None);
    }
    let messages = full_messages(conn, rows).await?;
    let subject = messages.first().map(|m| m.subject.clone()).unwrap_or_default();
    Ok(Some(Thread {
        id: id.clone(),
        subject,
        messages,
    }))
}

pub(crate) async fn latest_seq(conn: &mut SqliteConnection, owner: &IdentityId) -> Result<i64> {
    sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE owner_id = ?")
        .bind(owner.as_str().to_owned())
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)
}

#[async_trait::async_trait]
impl loft_core::store::MailStore for crate::SqliteStore {
    async fn mailbox_labels(&self, owner: &IdentityId, labels: &[String]) -> Result<(u64, u64)> {
        let mut tx = self.reading().await?;
        let out = crate::identities::mailbox_labels(&mut tx, owner, labels).await;
        crate::done(tx, out).await
    }

    async fn mailbox_bytes(&self, owners: &[IdentityId]) -> Result<Vec<(IdentityId, u64)>> {
        let owners = owners.to_vec();
        self.hot(crate::hot::Cost::Short, move |c| {
            crate::identities::mailbox_bytes(c, &owners)
        })
        .await
    }

    async fn mailbox_stats(&self, owners: &[IdentityId]) -> Result<Vec<loft_core::store::MailboxStats>> {
        let mut tx = self.reading().await?;
        let out = crate::identities::mailbox_stats(&mut tx, owners).await;
        crate::done(tx, out).await
    }

    async fn send_mail(&self, mail: NewMail, audit: AuditEntry) -> Result<Message> {
        let (owner, id) = (mail.sender_copy.owner.clone(), mail.sender_copy.id.clone());
        self.write_native(move |c| at_once(self::send(c, mail, audit))).await?;
        self.get_message(&owner, &id)
            .await?
            .ok_or_else(|| Error::internal("the sender's copy is missing right after it was committed"))
    }

    async fn receive_mail(&self, mail: InboundMail, audit: AuditEntry) -> Result<()> {
        self.write_native(move |c| at_once(self::receive(c, mail, audit))).await
    }

    async fn list_messages(&self, owner: &IdentityId, query: MessageQuery) -> Result<StorePage<MessageSummary>> {
        let owner = owner.clone();
        let cost = crate::hot::Cost::of_rows(query.limit as usize);
        self.hot(cost, move |c| self::list(c, &owner, &query)).await
    }

    async fn get_message(&self, owner: &IdentityId, id: &MessageId) -> Result<Option<Message>> {
        let (owner, id) = (owner.clone(), id.clone());
        self.hot(crate::hot::Cost::Short, move |c| self::get(c, &owner, &id))
            .await
    }

    async fn read_message(&self, owner: &IdentityId, id: &MessageId, audit: AuditEntry) -> Result<Message> {
        let (o, i) = (owner.clone(), id.clone());
        self.write_native(move |c| at_once(self::mark_read(c, &o, &i, audit)))
            .await?;
        self.get_message(owner, id)
            .await?
            .ok_or_else(|| Error::not_found("message"))
    }

    async fn raw_message(&self, owner: &IdentityId, id: &MessageId) -> Result<Option<Vec<u8>>> {
        let (o, i) = (owner.clone(), id.clone());
        // As large as the message size limit lets a message be, like one message's bodies.
        self.hot(crate::hot::Cost::Short, move |c| self::raw(c, &o, &i)).await
    }

    async fn update_message(
        &self,
        owner: &IdentityId,
        id: &MessageId,
        patch: MessagePatch,
        audit: AuditEntry,
    ) -> Result<Message> {
        let (o, i) = (owner.clone(), id.clone());
        self.write_native(move |c| at_once(self::update(c, &o, &i, patch, audit)))
            .await?;
        self.get_message(owner, id)
            .await?
            .ok_or_else(|| Error::not_found("message"))
    }

    async fn update_thread(
        &self,
        owner: &IdentityId,
        id: &ThreadId,
        patch: MessagePatch,
        audit: AuditEntry,
    ) -> Result<Thread> {
        let (o, i) = (owner.clone(), id.clone());
        self.write_native(move |c| at_once(self::update_thread(c, &o, &i, patch, audit)))
            .await?;
        let mut tx = self.reading().await?;
        let out = self::thread(&mut tx, owner, id, None).await;
        crate::done(tx, out).await?.ok_or_else(|| Error::not_found("thread"))
    }

    async fn delete_for_ever(
        &self,
        owner: &IdentityId,
        target: &core_mail::MailTarget,
        audit: AuditEntry,
    ) -> Result<Vec<MessageId>> {
        let (o, t) = (owner.clone(), target.clone());
        self.write(move |c| Box::pin(async move { self::delete_for_ever(c, &o, &t, audit).await }))
            .await
    }

    async fn list_threads(&self, owner: &IdentityId, query: ThreadQuery) -> Result<StorePage<ThreadSummary>> {
        let mut tx = self.reading().await?;
        let out = self::list_threads(&mut tx, owner, query).await;
        crate::done(tx, out).await
    }

    async fn read_thread(&self, owner: &IdentityId, id: &ThreadId, trashed: bool, audit: AuditEntry) -> Result<Thread> {
        let (o, i) = (owner.clone(), id.clone());
        self.write_native(move |c| at_once(self::record_thread_read(c, &o, &i, trashed, audit)))
            .await?;
        let mut tx = self.reading().await?;
        let out = self::thread(&mut tx, owner, id, Some(trashed)).await;
        crate::done(tx, out).await?.ok_or_else(|| Error::not_found("thread"))
    }

    async fn find_idempotency(
        &self,
        owner: &IdentityId,
        key: &str,
        not_before: Timestamp,
    ) -> Result<Option<(String, MessageId)>> {
        let mut tx = self.reading().await?;
        let out = self::find_idempotency(&mut tx, owner, key, not_before).await;
        crate::done(tx, out).await
    }

    async fn latest_mail_seq(&self, owner: &IdentityId) -> Result<i64> {
        let mut tx = self.reading().await?;
        let out = self::latest_seq(&mut tx, owner).await;
        crate::done(tx, out).await
    }

    async fn search_messages(&self, owner: &IdentityId, query: &SearchQuery) -> Result<Vec<SearchRow>> {
        let mut tx = self.reading().await?;
        let out = crate::search::search(&mut tx, owner, query).await;
        crate::done(tx, out).await
    }
}
