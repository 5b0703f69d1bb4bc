//! Mailboxes: message copies, threads, labels and the outbound queue.
//!
//! One sent message is one `mail_contents` row (headers, bodies, raw bytes, snippet) and one
//! `messages` row per mailbox copy. A copy's `seq` orders its mailbox and is the list cursor.
//! Threading is per mailbox: a copy joins the thread of the newest message in the same
//! owner's mailbox whose `Message-ID` is the new message's `In-Reply-To` or one of its
//! `References`, else starts the thread the caller chose. Every lookup is scoped by owner, so
//! another owner's message or thread behaves exactly like a missing one.

use loft_core::address::EmailAddress;
use loft_core::audit::AuditEntry;
use loft_core::ids::{IdentityId, MessageId, ThreadId};
use loft_core::mail::{
    Authentication, Folder, InboundMail, MailCopy, Message, MessagePatch, MessageQuery, MessageStatus, MessageSummary,
    NewMail, SNIPPET_CHARS, StorePage, Thread, ThreadQuery, ThreadSummary,
};
use loft_core::search::{SearchQuery, SearchRow};
use loft_core::{Error, Result};
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder};

use crate::rows::{self, col};
use crate::{WriteTx, db_err};

/// Everything a full [`Message`] needs, from `messages m JOIN mail_contents c`.
macro_rules! message_cols {
    () => {
        "m.seq, m.id, m.thread_id, m.folder, COALESCE(m.schedule_state, m.status) AS status, m.unread, m.bcc_addrs, \
         m.delivery, m.send_at, m.archived, m.trashed_at, \
         c.message_id, c.in_reply_to, c.refs, c.from_addr, c.from_name, c.to_addrs, c.cc_addrs, \
         c.subject, c.body_text, c.body_html, c.extracted_text, c.authentication, c.created_at, c.size, \
         c.attachments, ARRAY(SELECT l.label FROM message_labels l WHERE l.message_seq = m.seq ORDER BY l.label) AS labels"
    };
}

/// A [`MessageSummary`]: no bodies, no raw bytes.
macro_rules! summary_cols {
    () => {
        "m.seq, m.id, m.thread_id, m.folder, COALESCE(m.schedule_state, m.status) AS status, m.unread, \
         m.archived, m.trashed_at, \
         c.message_id, c.from_addr, c.from_name, c.to_addrs, c.cc_addrs, c.subject, c.snippet, \
         c.authentication, c.created_at, \
         ARRAY(SELECT l.label FROM message_labels l WHERE l.message_seq = m.seq ORDER BY l.label) AS labels"
    };
}

pub(crate) use summary_cols;

pub(crate) const FROM_COPIES: &str = " FROM messages m JOIN mail_contents c ON c.id = m.content_id";

fn folder_col(row: &PgRow) -> Result<Folder> {
    let folder: String = col(row, "folder")?;
    let id: String = col(row, "id")?;
    Folder::parse_stored(&folder, &id)
}

fn status_col(row: &PgRow) -> Result<MessageStatus> {
    let status: String = col(row, "status")?;
    let id: String = col(row, "id")?;
    MessageStatus::parse_stored(&status, &id)
}

pub(crate) fn message(row: &PgRow) -> Result<Message> {
    Ok(Message {
        status: status_col(row)?,
        send_at: rows::opt_ts(row, "send_at")?,
        approval: None,
        sender_contact: None,
        id: MessageId::from_trusted(col(row, "id")?),
        thread_id: ThreadId::from_trusted(col(row, "thread_id")?),
        folder: folder_col(row)?,
        message_id: col(row, "message_id")?,
        in_reply_to: col(row, "in_reply_to")?,
        references: rows::json_col(row, "refs")?,
        from: EmailAddress::from_trusted(col(row, "from_addr")?),
        from_name: col(row, "from_name")?,
        to: rows::addresses_col(row, "to_addrs")?,
        cc: rows::addresses_col(row, "cc_addrs")?,
        bcc: rows::addresses_col(row, "bcc_addrs")?,
        subject: col(row, "subject")?,
        text: col(row, "body_text")?,
        html: col(row, "body_html")?,
        extracted_text: col(row, "extracted_text")?,
        authentication: rows::json_col::<Authentication>(row, "authentication")?,
        unread: col(row, "unread")?,
        labels: col(row, "labels")?,
        archived: col(row, "archived")?,
        trashed_at: rows::opt_ts(row, "trashed_at")?,
        created_at: rows::ts(row, "created_at")?,
        size: col(row, "size")?,
        delivery: rows::json_col(row, "delivery")?,
        attachments: rows::json_col(row, "attachments")?,
        codes: vec![],
        links: vec![],
        screening: None,
    })
}

pub(crate) fn summary(row: &PgRow) -> Result<(i64, MessageSummary)> {
    let item = MessageSummary {
        status: status_col(row)?,
        id: MessageId::from_trusted(col(row, "id")?),
        thread_id: ThreadId::from_trusted(col(row, "thread_id")?),
        folder: folder_col(row)?,
        message_id: col(row, "message_id")?,
        from: EmailAddress::from_trusted(col(row, "from_addr")?),
        from_name: col(row, "from_name")?,
        to: rows::addresses_col(row, "to_addrs")?,
        cc: rows::addresses_col(row, "cc_addrs")?,
        subject: col(row, "subject")?,
        snippet: col(row, "snippet")?,
        authentication: rows::json_col::<Authentication>(row, "authentication")?,
        unread: col(row, "unread")?,
        labels: col(row, "labels")?,
        archived: col(row, "archived")?,
        trashed_at: rows::opt_ts(row, "trashed_at")?,
        created_at: rows::ts(row, "created_at")?,
    };
    Ok((col(row, "seq")?, item))
}

/// Writes each recipient's inbox copy of stored content, threaded in its own mailbox (see the
/// module header). Inbox copies never carry Bcc, nor the sender's delivery report.
///
/// One statement for all the copies, one round trip however many recipients. A copy's thread
/// lookup reads its own owner's mailbox, as the statement found it: what earlier statements of
/// the transaction wrote (the sender's copy of a mail to oneself) is seen, the statement's own
/// rows are not. So two copies for one owner take the first one's new thread, which is what
/// the second would have found had they been written one after the other.
pub(crate) async fn insert_inbox_copies(
    conn: &mut PgConnection,
    copies: &[MailCopy],
    content_id: i64,
    message_id: &str,
    parents: &[String],
) -> Result<()> {
    if copies.is_empty() {
        return Ok(());
    }
    let mut first_thread: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    let new_threads: Vec<&str> = copies
        .iter()
        .map(|c| *first_thread.entry(c.owner.as_str()).or_insert(c.new_thread_id.as_str()))
        .collect();
    let ids: Vec<&str> = copies.iter().map(|c| c.id.as_str()).collect();
    let owners: Vec<&str> = copies.iter().map(|c| c.owner.as_str()).collect();
    let folders: Vec<&str> = copies.iter().map(|c| c.folder.as_str()).collect();
    sqlx::query(
        "INSERT INTO messages (id, owner_id, thread_id, folder, content_id, message_id, bcc_addrs, delivery, unread, \
         status, composed_at) \
         SELECT u.id, u.owner, COALESCE((SELECT t.thread_id FROM messages t \
                 WHERE t.owner_id = u.owner AND t.message_id = ANY($5) ORDER BY t.seq DESC LIMIT 1), u.new_thread), \
             u.folder, $6, $7, '[]', '[]', TRUE, $8, NULL \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS u (id, owner, new_thread, folder, n) \
         ORDER BY u.n",
    )
    .bind(ids)
    .bind(owners)
    .bind(new_threads)
    .bind(folders)
    .bind(parents)
    .bind(content_id)
    .bind(message_id)
    .bind(MessageStatus::Received.as_str())
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Locks the mailbox of every copy's owner (see the crate docs: this orders each mailbox's
/// `seq`) and adds the message's size to each mailbox's total, in one statement. Rows are
/// upserted in owner-id order, the one order every send uses, so two sends cannot deadlock.
pub(crate) async fn lock_mailboxes<'a>(
    conn: &mut PgConnection,
    copies: impl IntoIterator<Item = &'a MailCopy>,
    size: i64,
) -> Result<()> {
    let mut bytes: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for copy in copies {
        *bytes.entry(copy.owner.as_str()).or_default() += size;
    }
    let (owners, sizes): (Vec<&str>, Vec<i64>) = bytes.into_iter().unzip();
    sqlx::query(
        "INSERT INTO mailbox_usage (owner_id, bytes) \
         SELECT o, b FROM unnest($1::text[], $2::bigint[]) AS u (o, b) ORDER BY o \
         ON CONFLICT (owner_id) DO UPDATE SET bytes = mailbox_usage.bytes + EXCLUDED.bytes",
    )
    .bind(owners)
    .bind(sizes)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Records an idempotency key with the send (see [`loft_core::mail::Idempotency`]). A
/// concurrent send with the same key waits on the row's unique index and then does nothing.
async fn record_idempotency(conn: &mut PgConnection, copy: &MailCopy, i: &loft_core::mail::Idempotency) -> Result<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE identity_id = $1 AND key = $2 AND created_at <= $3")
        .bind(copy.owner.as_str())
        .bind(&i.key)
        .bind(i.stale_before.as_micros())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let done = sqlx::query(
        "INSERT INTO idempotency_keys (identity_id, key, fingerprint, message_id, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (identity_id, key) DO NOTHING",
    )
    .bind(copy.owner.as_str())
    .bind(&i.key)
    .bind(&i.fingerprint)
    .bind(copy.id.as_str())
    .bind(i.created_at.as_micros())
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    if done.rows_affected() == 0 {
        return Err(Error::conflict(
            "idempotency_key_in_use",
            "a send with this idempotency key was recorded first",
        ));
    }
    Ok(())
}

pub(crate) async fn send_mail(pool: &PgPool, mail: NewMail, audit: AuditEntry) -> Result<Message> {
    let NewMail {
        content: c,
        raw,
        sender_copy,
        recipient_copies,
        delivery,
        jobs,
        hold,
        idempotency,
        consumes_draft,
        send_at,
        schedule,
        contacts,
        held_copies,
        attachments,
    } = mail;
    let size = raw.len() as i64;
    let bcc = rows::to_json(&c.bcc)?;
    let delivery_json = rows::to_json(&delivery)?;
    let parents = parents(&c);

    let mut w = WriteTx::begin(pool).await?;
    lock_mailboxes(w.conn(), std::iter::once(&sender_copy).chain(&recipient_copies), size).await?;
    // The content, the sender's copy and the audit row first, then each recipient's copy, each
    // threaded in its own mailbox.
    let (content_id, sender_thread) = insert_content_and_sender_copy(
        w.conn(),
        &c,
        raw,
        &attachments,
        SenderCopy {
            copy: &sender_copy,
            parents: &parents,
            bcc: &bcc,
            delivery: &delivery_json,
            status: if hold.is_some() {
                MessageStatus::PendingApproval
            } else {
                MessageStatus::Sent
            },
        },
        &audit,
    )
    .await?;
    if send_at.is_some() || schedule.is_some() {
        let job = match &schedule {
            Some(job) => Some(crate::jobs::insert(w.conn(), job).await?),
            None => None,
        };
        crate::schedule::mark(w.conn(), &sender_copy.id, send_at, job).await?;
    }
    insert_inbox_copies(w.conn(), &recipient_copies, content_id, &c.message_id, &parents).await?;
    crate::oversight::insert_held(w.conn(), &held_copies, content_id, &parents, c.created_at).await?;
    for job in &jobs {
        crate::jobs::insert(w.conn(), job).await?;
    }
    if let Some(hold) = &hold {
        crate::oversight::insert(w.conn(), hold, &sender_copy, c.created_at).await?;
    }
    if let Some(i) = &idempotency {
        record_idempotency(w.conn(), &sender_copy, i).await?;
    }
    // After the idempotency key: a concurrent retry of the same send is answered as a retry.
    if let Some(draft) = &consumes_draft {
        crate::drafts::consume(w.conn(), &sender_copy.owner, draft).await?;
    }
    // Last, in (identity, address) order: see the migration `caps_contacts`.
    crate::caps::touch_contacts(w.conn(), &contacts).await?;
    w.commit().await?;

    Ok(Message {
        status: if hold.is_some() {
            MessageStatus::PendingApproval
        } else if schedule.is_some() {
            MessageStatus::Scheduled
        } else {
            MessageStatus::Sent
        },
        send_at,
        approval: None,
        sender_contact: None,
        id: sender_copy.id,
        thread_id: sender_thread,
        folder: sender_copy.folder,
        message_id: c.message_id,
        in_reply_to: c.in_reply_to,
        references: c.references,
        from: c.from,
        from_name: c.from_name,
        to: c.to,
        cc: c.cc,
        bcc: c.bcc,
        subject: c.subject,
        text: c.text,
        html: c.html,
        extracted_text: c.extracted_text,
        authentication: c.authentication,
        unread: false,
        labels: Vec::new(),
        archived: false,
        trashed_at: None,
        created_at: c.created_at,
        size,
        delivery,
        attachments,
        codes: vec![],
        links: vec![],
        screening: None,
    })
}

/// Stores a mail received from outside: its content once, one inbox copy per recipient
/// (threaded in each mailbox), the mailboxes' byte totals, and the audit row.
/// What a copy is threaded by: the messages it answers, and the message's own id (a copy to
/// oneself joins the thread of the sent copy).
pub(crate) fn parents(c: &loft_core::mail::MailContent) -> Vec<String> {
    std::iter::once(&c.message_id)
        .chain(c.in_reply_to.iter())
        .chain(&c.references)
        .cloned()
        .collect()
}

/// The statement that stores a message's content and bytes once, for all its copies
/// (`RETURNING id`); its parameters `$1` (the `Message-ID`) to `$17` are bound by
/// [`bind_content`].
macro_rules! insert_content_sql {
    () => {
        "INSERT INTO mail_contents (message_id, in_reply_to, refs, from_addr, from_name, to_addrs, cc_addrs, \
         subject, body_text, body_html, extracted_text, snippet, authentication, created_at, size, raw, attachments) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING id"
    };
}

type PgQuery<'q, O> = sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments>;

/// Binds the parameters of [`insert_content_sql`].
fn bind_content<'q, O>(
    q: PgQuery<'q, O>,
    c: &'q loft_core::mail::MailContent,
    raw: Vec<u8>,
    attachments: &[loft_core::mail::Attachment],
) -> Result<PgQuery<'q, O>> {
    let size = raw.len() as i64;
    Ok(q.bind(&c.message_id)
        .bind(c.in_reply_to.as_deref())
        .bind(rows::to_json(&c.references)?)
        .bind(c.from.as_str())
        .bind(c.from_name.as_deref())
        .bind(rows::to_json(&c.to)?)
        .bind(rows::to_json(&c.cc)?)
        .bind(&c.subject)
        .bind(&c.text)
        .bind(c.html.as_deref())
        .bind(&c.extracted_text)
        .bind(loft_core::text::snippet(&c.extracted_text, SNIPPET_CHARS))
        .bind(rows::to_json(&c.authentication)?)
        .bind(c.created_at.as_micros())
        .bind(size)
        .bind(raw)
        .bind(rows::to_json(attachments)?))
}

/// Stores a message's content and bytes once, for all its copies; returns the content's id.
async fn insert_content(
    conn: &mut PgConnection,
    c: &loft_core::mail::MailContent,
    raw: Vec<u8>,
    attachments: &[loft_core::mail::Attachment],
) -> Result<i64> {
    let (id,): (i64,) = bind_content(sqlx::query_as(insert_content_sql!()), c, raw, attachments)?
        .fetch_one(conn)
        .await
        .map_err(db_err)?;
    Ok(id)
}

/// Stores a sent message's content, the sender's copy and the send's audit row in one statement
/// (one round trip), the copy threaded by the same lookup as [`insert_inbox_copies`].
/// Returns the content's id and the copy's thread.
async fn insert_content_and_sender_copy(
    conn: &mut PgConnection,
    c: &loft_core::mail::MailContent,
    raw: Vec<u8>,
    attachments: &[loft_core::mail::Attachment],
    own: SenderCopy<'_>,
    audit: &AuditEntry,
) -> Result<(i64, ThreadId)> {
    let SenderCopy {
        copy,
        parents,
        bcc,
        delivery,
        status,
    } = own;
    let q = sqlx::query_as(concat!(
        "WITH content AS (",
        insert_content_sql!(),
        "), audit AS (",
        crate::sealer::insert_pending_sql!("$26"),
        ") INSERT INTO messages (id, owner_id, thread_id, folder, content_id, message_id, bcc_addrs, delivery, \
         unread, status, composed_at) \
         SELECT $18, $19, COALESCE((SELECT t.thread_id FROM messages t \
                 WHERE t.owner_id = $19 AND t.message_id = ANY($20) ORDER BY t.seq DESC LIMIT 1), $21), \
             $22, content.id, $1, $23, $24, FALSE, $25, $14 FROM content \
         RETURNING content_id, thread_id"
    ));
    let (content_id, thread): (i64, String) = bind_content(q, c, raw, attachments)?
        .bind(copy.id.as_str())
        .bind(copy.owner.as_str())
        .bind(parents)
        .bind(copy.new_thread_id.as_str())
        .bind(copy.folder.as_str())
        .bind(bcc)
        .bind(delivery)
        .bind(status.as_str())
        .bind(crate::sealer::pending_json(audit)?)
        .fetch_one(conn)
        .await
        .map_err(db_err)?;
    Ok((content_id, ThreadId::from_trusted(thread)))
}

/// The sender's copy, threaded by `parents`, and what only it carries.
struct SenderCopy<'a> {
    copy: &'a MailCopy,
    parents: &'a [String],
    bcc: &'a str,
    delivery: &'a str,
    status: MessageStatus,
}

/// The inbox copies of a mail written by this server (a bounce notice), inside the caller's
/// transaction, which has locked the copies' mailboxes already ([`lock_mailboxes`]).
pub(crate) async fn write_inbound_locked(conn: &mut PgConnection, mail: InboundMail) -> Result<()> {
    let parents = parents(&mail.content);
    for job in &mail.jobs {
        crate::jobs::insert(&mut *conn, job).await?;
    }
    let content_id = insert_content(&mut *conn, &mail.content, mail.raw, &mail.attachments).await?;
    insert_inbox_copies(conn, &mail.copies, content_id, &mail.content.message_id, &parents).await
}

pub(crate) async fn receive_mail(pool: &PgPool, mail: InboundMail, audit: AuditEntry) -> Result<()> {
    let InboundMail {
        content: c,
        raw,
        copies,
        held_copies,
        attachments,
        jobs,
    } = mail;
    let size = raw.len() as i64;
    let parents = parents(&c);

    let mut w = WriteTx::begin(pool).await?;
    lock_mailboxes(w.conn(), copies.iter(), size).await?;
    let content_id = insert_content(w.conn(), &c, raw, &attachments).await?;
    insert_inbox_copies(w.conn(), &copies, content_id, &c.message_id, &parents).await?;
    crate::oversight::insert_held(w.conn(), &held_copies, content_id, &parents, c.created_at).await?;
    for job in &jobs {
        crate::jobs::insert(w.conn(), job).await?;
    }
    w.audit(audit).await?;
    w.commit().await?;
    Ok(())
}

pub(crate) async fn list_messages(
    pool: &PgPool,
    owner: &IdentityId,
    query: &MessageQuery,
) -> Result<StorePage<MessageSummary>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(concat!("SELECT ", summary_cols!()));
    let order = if query.oldest_first { " ASC" } else { " DESC" };
    // With a label, the page is walked through that mailbox's copies carrying the label, in
    // order, from the `(owner_id, label, message_seq)` index, each joined to its copy; so it
    // costs the page whatever the mailbox holds (walking the mailbox and testing each copy for
    // the label read all of a million-message mailbox when the label was rare). That plan is
    // only chosen when planned for the label (`planned_for_values`).
    let seq = if let Some(label) = &query.label {
        qb.push(" FROM message_labels ml JOIN messages m ON m.seq = ml.message_seq");
        qb.push(" JOIN mail_contents c ON c.id = m.content_id WHERE ml.owner_id = ");
        qb.push_bind(owner.as_str().to_owned());
        qb.push(" AND ml.label = ");
        qb.push_bind(label.clone());
        qb.push(" AND ");
        "ml.message_seq"
    } else {
        qb.push(FROM_COPIES);
        qb.push(" WHERE ");
        "m.seq"
    };
    qb.push("m.owner_id = ");
    qb.push_bind(owner.as_str().to_owned());
    if let Some(folder) = query.folder {
        qb.push(" AND m.folder = ");
        qb.push_bind(folder.as_str());
    }
    if let Some(archived) = query.archived {
        qb.push(" AND m.archived = ");
        qb.push_bind(archived);
    }
    qb.push(if query.trashed {
        " AND m.trashed_at IS NOT NULL"
    } else {
        " AND m.trashed_at IS NULL"
    });
    if query.unread_only {
        qb.push(" AND m.unread");
    }
    if let Some(from) = &query.from {
        qb.push(" AND c.from_addr = ");
        qb.push_bind(from.as_str().to_owned());
    }
    if let Some(thread) = &query.thread_id {
        qb.push(" AND m.thread_id = ");
        qb.push_bind(thread.as_str().to_owned());
    }
    if let Some(after) = query.after_seq {
        qb.push(" AND ").push(seq).push(" > ");
        qb.push_bind(after);
    }
    if let Some(before) = query.before_seq {
        qb.push(" AND ").push(seq).push(" < ");
        qb.push_bind(before);
    }
    qb.push(" ORDER BY ").push(seq).push(order).push(" LIMIT ");
    qb.push_bind(rows::fetch_limit(query.limit));
    let found = if query.label.is_some() {
        let mut tx = crate::planned_for_values(pool).await?;
        let found = qb.build().fetch_all(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        found
    } else {
        qb.build().fetch_all(pool).await.map_err(db_err)?
    };
    let items = found.iter().map(summary).collect::<Result<Vec<_>>>()?;
    Ok(rows::page(items, query.limit))
}

async fn message_by_seq(conn: &mut PgConnection, seq: i64) -> Result<Message> {
    let row = sqlx::query(concat!(
        "SELECT ",
        message_cols!(),
        " FROM messages m JOIN mail_contents c ON c.id = m.content_id WHERE m.seq = $1"
    ))
    .bind(seq)
    .fetch_one(conn)
    .await
    .map_err(db_err)?;
    message(&row)
}

/// The seq of `owner`'s copy `id`, or `NotFound("message")`.
async fn owned_seq(conn: &mut PgConnection, owner: &IdentityId, id: &MessageId) -> Result<i64> {
    // The row lock makes concurrent changes of one message's labels take turns, so the label
    // cap below counts what the other change committed.
    let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM messages WHERE owner_id = $1 AND id = $2 FOR UPDATE")
        .bind(owner.as_str())
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
        .map_err(db_err)?;
    seq.ok_or_else(|| Error::not_found("message"))
}

pub(crate) async fn get_message(pool: &PgPool, owner: &IdentityId, id: &MessageId) -> Result<Option<Message>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        message_cols!(),
        " FROM messages m JOIN mail_contents c ON c.id = m.content_id WHERE m.owner_id = $1 AND m.id = $2"
    ))
    .bind(owner.as_str())
    .bind(id.as_str())
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    row.as_ref().map(message).transpose()
}

pub(crate) async fn read_message(
    pool: &PgPool,
    owner: &IdentityId,
    id: &MessageId,
    audit: AuditEntry,
) -> Result<Message> {
    let mut w = WriteTx::begin(pool).await?;
    let seq: Option<i64> =
        sqlx::query_scalar("UPDATE messages SET unread = FALSE WHERE owner_id = $1 AND id = $2 RETURNING seq")
            .bind(owner.as_str())
            .bind(id.as_str())
            .fetch_optional(w.conn())
            .await
            .map_err(db_err)?;
    let Some(seq) = seq else {
        return Err(Error::not_found("message"));
    };
    let msg = message_by_seq(w.conn(), seq).await?;
    w.audit(audit).await?;
    w.commit().await?;
    Ok(msg)
}

pub(crate) async fn raw_message(pool: &PgPool, owner: &IdentityId, id: &MessageId) -> Result<Option<Vec<u8>>> {
    sqlx::query_scalar(
        "SELECT c.raw FROM messages m JOIN mail_contents c ON c.id = m.content_id WHERE m.owner_id = $1 AND m.id = $2",
    )
    .bind(owner.as_str())
    .bind(id.as_str())
    .fetch_optional(pool)
    .await
    .map_err(db_err)
}

pub(crate) async fn update_message(
    pool: &PgPool,
    owner: &IdentityId,
    id: &MessageId,
    patch: &MessagePatch,
    audit: AuditEntry,
) -> Result<Message> {
    let mut w = WriteTx::begin(pool).await?;
    let seq = owned_seq(w.conn(), owner, id).await?;
    apply(w.conn(), &[seq], patch, audit.at).await?;
    let msg = message_by_seq(w.conn(), seq).await?;
    w.audit(audit).await?;
    w.commit().await?;
    Ok(msg)
}

/// The copies of `owner`'s thread, locked, oldest first.
async fn thread_seqs(conn: &mut PgConnection, owner: &IdentityId, id: &ThreadId) -> Result<Vec<i64>> {
    sqlx::query_scalar("SELECT seq FROM messages WHERE owner_id = $1 AND thread_id = $2 ORDER BY seq FOR UPDATE")
        .bind(owner.as_str())
        .bind(id.as_str())
        .fetch_all(conn)
        .await
        .map_err(db_err)
}

pub(crate) async fn update_thread(
    pool: &PgPool,
    owner: &IdentityId,
    id: &ThreadId,
    patch: &MessagePatch,
    audit: AuditEntry,
) -> Result<Thread> {
    let mut w = WriteTx::begin(pool).await?;
    let seqs = thread_seqs(w.conn(), owner, id).await?;
    if seqs.is_empty() {
        return Err(Error::not_found("thread"));
    }
    apply(w.conn(), &seqs, patch, audit.at).await?;
    let found = sqlx::query(concat!(
        "SELECT ",
        message_cols!(),
        " FROM messages m JOIN mail_contents c ON c.id = m.content_id WHERE m.seq = ANY($1) ORDER BY m.seq"
    ))
    .bind(&seqs)
    .fetch_all(w.conn())
    .await
    .map_err(db_err)?;
    let messages = found.iter().map(message).collect::<Result<Vec<_>>>()?;
    let subject = messages.first().map(|m| m.subject.clone()).unwrap_or_default();
    w.audit(audit).await?;
    w.commit().await?;
    Ok(Thread {
        id: id.clone(),
        subject,
        messages,
    })
}

/// What the mailbox rules judge a copy by, and what deleting it frees.
struct CopyFacts {
    state: loft_core::mail::CopyState,
    content_id: i64,
    size: i64,
}

async fn states(conn: &mut PgConnection, seqs: &[i64]) -> Result<Vec<CopyFacts>> {
    let found = sqlx::query(
        "SELECT m.id, m.folder, COALESCE(m.schedule_state, m.status) AS status, m.trashed_at, \
         EXISTS (SELECT 1 FROM approvals a WHERE a.message_id = m.id) AS held, m.delivery, c.created_at, \
         m.content_id, c.size \
         FROM messages m JOIN mail_contents c ON c.id = m.content_id WHERE m.seq = ANY($1) ORDER BY m.seq",
    )
    .bind(seqs)
    .fetch_all(conn)
    .await
    .map_err(db_err)?;
    found
        .iter()
        .map(|row| {
            let delivery: Vec<loft_core::mail::Delivery> = rows::json_col(row, "delivery")?;
            let trashed_at: Option<i64> = col(row, "trashed_at")?;
            Ok(CopyFacts {
                state: loft_core::mail::CopyState {
                    id: MessageId::from_trusted(col(row, "id")?),
                    folder: folder_col(row)?,
                    status: status_col(row)?,
                    trashed: trashed_at.is_some(),
                    held: col(row, "held")?,
                    delivery_pending: delivery
                        .iter()
                        .any(|d| d.status == loft_core::mail::DeliveryStatus::Queued),
                    created_at: rows::ts(row, "created_at")?,
                },
                content_id: col(row, "content_id")?,
                size: col(row, "size")?,
            })
        })
        .collect()
}

/// Applies `patch` to the locked copies `seqs` (the caller's transaction rolls back on error).
async fn apply(
    conn: &mut PgConnection,
    seqs: &[i64],
    patch: &MessagePatch,
    at: loft_core::time::Timestamp,
) -> Result<()> {
    if patch.trashed == Some(true) {
        let found = states(&mut *conn, seqs).await?;
        let states: Vec<_> = found.into_iter().map(|r| r.state).collect();
        loft_core::mail::check_trashable(&states)?;
    }
    // Additions first, then removals: a label named in both ends up removed.
    if !patch.add_labels.is_empty() {
        sqlx::query(
            "INSERT INTO message_labels (message_seq, label, owner_id) \
             SELECT m.seq, ls.l, m.owner_id FROM messages m \
             CROSS JOIN (SELECT DISTINCT unnest($2::text[]) AS l) AS ls \
             WHERE m.seq = ANY($1::bigint[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(seqs)
        .bind(&patch.add_labels)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    if !patch.remove_labels.is_empty() {
        sqlx::query("DELETE FROM message_labels WHERE message_seq = ANY($1) AND label = ANY($2)")
            .bind(seqs)
            .bind(&patch.remove_labels)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    if !patch.add_labels.is_empty() {
        let most: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM message_labels WHERE message_seq = ANY($1) \
             GROUP BY message_seq) AS counts",
        )
        .bind(seqs)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
        if most.unwrap_or(0) > loft_core::mail::MAX_LABELS_PER_MESSAGE as i64 {
            // Dropping the transaction rolls the whole patch back.
            return Err(Error::invalid(
                "too_many_labels",
                format!(
                    "a message carries at most {} labels",
                    loft_core::mail::MAX_LABELS_PER_MESSAGE
                ),
            )
            .with_hint("remove labels before adding more"));
        }
    }
    if let Some(unread) = patch.unread {
        sqlx::query("UPDATE messages SET unread = $2 WHERE seq = ANY($1)")
            .bind(seqs)
            .bind(unread)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    if let Some(archived) = patch.archived {
        sqlx::query("UPDATE messages SET archived = $2 WHERE seq = ANY($1)")
            .bind(seqs)
            .bind(archived)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    match patch.trashed {
        // A copy trashed already keeps the time it was trashed.
        Some(true) => {
            sqlx::query("UPDATE messages SET trashed_at = $2 WHERE seq = ANY($1) AND trashed_at IS NULL")
                .bind(seqs)
                .bind(at.as_micros())
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
        Some(false) => {
            sqlx::query("UPDATE messages SET trashed_at = NULL WHERE seq = ANY($1)")
                .bind(seqs)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
        None => {}
    }
    Ok(())
}

/// Deletes `owner`'s copy or thread for ever (see `MailStore::delete_for_ever`).
pub(crate) async fn delete_for_ever(
    pool: &PgPool,
    owner: &IdentityId,
    target: &loft_core::mail::MailTarget,
    audit: AuditEntry,
) -> Result<Vec<MessageId>> {
    let mut w = WriteTx::begin(pool).await?;
    // The mailbox first, as sends and decisions take it, then the copies, then their contents:
    // one lock order, so no deadlock with them.
    sqlx::query("SELECT bytes FROM mailbox_usage WHERE owner_id = $1 FOR UPDATE")
        .bind(owner.as_str())
        .fetch_optional(w.conn())
        .await
        .map_err(db_err)?;
    let seqs = match target {
        loft_core::mail::MailTarget::Message(id) => vec![owned_seq(w.conn(), owner, id).await?],
        loft_core::mail::MailTarget::Thread(id) => thread_seqs(w.conn(), owner, id).await?,
    };
    if seqs.is_empty() {
        return Err(target.not_found());
    }
    let found = states(w.conn(), &seqs).await?;
    let states: Vec<_> = found.iter().map(|r| r.state.clone()).collect();
    loft_core::mail::check_deletable(&states, audit.at)?;
    let mut contents: Vec<i64> = found.iter().map(|r| r.content_id).collect();
    contents.sort_unstable();
    contents.dedup();
    // Two owners deleting their copies of one mail at once: the second waits here, then sees
    // the first's copy gone, so the last one out removes the content.
    sqlx::query("SELECT id FROM mail_contents WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&contents)
        .fetch_all(w.conn())
        .await
        .map_err(db_err)?;
    let ids: Vec<&str> = states.iter().map(|s| s.id.as_str()).collect();
    // Labels go with their copy (ON DELETE CASCADE); the search vector is on the content row.
    sqlx::query("DELETE FROM messages WHERE seq = ANY($1)")
        .bind(&seqs)
        .execute(w.conn())
        .await
        .map_err(db_err)?;
    sqlx::query("DELETE FROM idempotency_keys WHERE identity_id = $1 AND message_id = ANY($2)")
        .bind(owner.as_str())
        .bind(&ids)
        .execute(w.conn())
        .await
        .map_err(db_err)?;
    sqlx::query(
        "DELETE FROM mail_contents c WHERE c.id = ANY($1) \
         AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.content_id = c.id) \
         AND NOT EXISTS (SELECT 1 FROM held_mail h WHERE h.content_id = c.id)",
    )
    .bind(&contents)
    .execute(w.conn())
    .await
    .map_err(db_err)?;
    let bytes: i64 = found.iter().map(|r| r.size).sum();
    sqlx::query("UPDATE mailbox_usage SET bytes = GREATEST(bytes - $2, 0) WHERE owner_id = $1")
        .bind(owner.as_str())
        .bind(bytes)
        .execute(w.conn())
        .await
        .map_err(db_err)?;
    w.audit(audit).await?;
    w.commit().await?;
    Ok(states.into_iter().map(|s| s.id).collect())
}

/// How many copies the thread walk of [`list_threads`] reads at a time.
const THREAD_WALK_BATCH: i64 = 256;

/// A label on at most this many copies of a mailbox lists its threads from those copies alone;
/// a label on more is found by the mailbox walk, which costs the distance to the page's labelled
/// threads (short for a label that common, unless its copies are all old).
const LABELLED_FEW: i64 = 2048;

/// A page of threads, newest last copy first.
///
/// The mailbox is walked from its newest copy down (`messages_owner_seq_idx`), a batch at a
/// time; the threads met for the first time are summed up by [`threads_among`], which keeps
/// those whose newest copy is below the cursor (the others were on an earlier page). They come
/// out in the order of the walk, so a page costs about the copies of its threads, whatever the
/// size of the mailbox; grouping the whole mailbox on every call cost time in proportion to
/// the mailbox (docs/benchmarks.md, issue 14).
pub(crate) async fn list_threads(
    pool: &PgPool,
    owner: &IdentityId,
    query: &ThreadQuery,
) -> Result<StorePage<ThreadSummary>> {
    let want = rows::fetch_limit(query.limit);
    if let Some(label) = &query.label {
        // A label on few copies: their threads are the only candidates (walking the mailbox
        // for them read all of it when the label was rare). The label's copies first, from the
        // index alone, planned for the label (a generic plan read all of a common label's
        // copies before stopping at the bound); then their threads when they are few.
        let mut tx = crate::planned_for_values(pool).await?;
        let labelled: Vec<i64> =
            sqlx::query_scalar("SELECT message_seq FROM message_labels WHERE owner_id = $1 AND label = $2 LIMIT $3")
                .bind(owner.as_str())
                .bind(label)
                .bind(LABELLED_FEW + 1)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        if labelled.len() as i64 <= LABELLED_FEW {
            let candidates: Vec<String> =
                sqlx::query_scalar("SELECT DISTINCT thread_id FROM messages WHERE seq = ANY($1)")
                    .bind(&labelled)
                    .fetch_all(pool)
                    .await
                    .map_err(db_err)?;
            let items = if candidates.is_empty() {
                Vec::new()
            } else {
                threads_among(pool, owner, query, &candidates, want).await?
            };
            return Ok(rows::page(items, query.limit));
        }
    }
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut items: Vec<(i64, ThreadSummary)> = Vec::new();
    let mut walk_from = query.before_seq.unwrap_or(i64::MAX);
    while (items.len() as i64) < want {
        let batch: Vec<(i64, String)> = sqlx::query_as(if query.trashed {
            "SELECT seq, thread_id FROM messages WHERE owner_id = $1 AND seq < $2 \
             AND trashed_at IS NOT NULL ORDER BY seq DESC LIMIT $3"
        } else {
            "SELECT seq, thread_id FROM messages WHERE owner_id = $1 AND seq < $2 \
             AND trashed_at IS NULL ORDER BY seq DESC LIMIT $3"
        })
        .bind(owner.as_str())
        .bind(walk_from)
        .bind(THREAD_WALK_BATCH)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
        let Some(last) = batch.last() else { break };
        walk_from = last.0;
        let candidates: Vec<String> = batch
            .into_iter()
            .filter_map(|(_, thread)| seen.insert(thread.clone()).then_some(thread))
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let found = threads_among(pool, owner, query, &candidates, want - items.len() as i64).await?;
        items.extend(found);
    }
    Ok(rows::page(items, query.limit))
}

/// The summaries of `candidates` (at most `limit`, newest last copy first) that pass the
/// query's filters and whose newest copy is below its cursor.
async fn threads_among(
    pool: &PgPool,
    owner: &IdentityId,
    query: &ThreadQuery,
    candidates: &[String],
    limit: i64,
) -> Result<Vec<(i64, ThreadSummary)>> {
    let owner = owner.as_str().to_owned();
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
        "WITH t AS (SELECT m.thread_id, MIN(m.seq) AS first_seq, MAX(m.seq) AS last_seq, \
         COUNT(*) AS message_count, COUNT(*) FILTER (WHERE m.unread) AS unread_count \
         FROM messages m WHERE m.owner_id = ",
    );
    qb.push_bind(owner.clone());
    qb.push(" AND m.thread_id = ANY(");
    qb.push_bind(candidates.to_vec());
    qb.push(")");
    // The trash's threads or the others', counted over those copies alone.
    let trash = if query.trashed {
        " AND m.trashed_at IS NOT NULL"
    } else {
        " AND m.trashed_at IS NULL"
    };
    qb.push(trash);
    qb.push(" GROUP BY m.thread_id HAVING TRUE");
    if query.unread_only {
        qb.push(" AND COUNT(*) FILTER (WHERE m.unread) > 0");
    }
    if let Some(label) = &query.label {
        qb.push(
            " AND EXISTS (SELECT 1 FROM messages m3 JOIN message_labels l ON l.message_seq = m3.seq \
             WHERE m3.owner_id = ",
        );
        qb.push_bind(owner.clone());
        qb.push(" AND m3.thread_id = m.thread_id AND l.label = ");
        qb.push_bind(label.clone());
        qb.push(if query.trashed {
            " AND m3.trashed_at IS NOT NULL)"
        } else {
            " AND m3.trashed_at IS NULL)"
        });
    }
    if let Some(before) = query.before_seq {
        qb.push(" AND MAX(m.seq) < ");
        qb.push_bind(before);
    }
    qb.push(" ORDER BY last_seq DESC LIMIT ");
    qb.push_bind(limit);
    qb.push(
        ") SELECT t.thread_id, t.last_seq, t.message_count, t.unread_count, fc.subject, lc.snippet, \
         lm.id AS last_id, lc.created_at AS last_at, \
         ARRAY(SELECT p.from_addr FROM (SELECT c2.from_addr, MIN(m2.seq) AS first_seen \
               FROM messages m2 JOIN mail_contents c2 ON c2.id = m2.content_id \
               WHERE m2.owner_id = ",
    );
    qb.push_bind(owner);
    qb.push(if query.trashed {
        " AND m2.trashed_at IS NOT NULL"
    } else {
        " AND m2.trashed_at IS NULL"
    });
    qb.push(
        " AND m2.thread_id = t.thread_id GROUP BY c2.from_addr) p ORDER BY p.first_seen) AS participants \
         FROM t \
         JOIN messages fm ON fm.seq = t.first_seq JOIN mail_contents fc ON fc.id = fm.content_id \
         JOIN messages lm ON lm.seq = t.last_seq JOIN mail_contents lc ON lc.id = lm.content_id \
         ORDER BY t.last_seq DESC",
    );
    let found = qb.build().fetch_all(pool).await.map_err(db_err)?;
    found
        .iter()
        .map(|row| {
            let participants: Vec<String> = col(row, "participants")?;
            let summary = ThreadSummary {
                id: ThreadId::from_trusted(col(row, "thread_id")?),
                subject: col(row, "subject")?,
                message_count: col(row, "message_count")?,
                unread_count: col(row, "unread_count")?,
                participants: participants.into_iter().map(EmailAddress::from_trusted).collect(),
                snippet: col(row, "snippet")?,
                last_message_id: MessageId::from_trusted(col(row, "last_id")?),
                last_message_at: rows::ts(row, "last_at")?,
            };
            Ok((col::<i64>(row, "last_seq")?, summary))
        })
        .collect::<Result<Vec<_>>>()
}

pub(crate) async fn read_thread(
    pool: &PgPool,
    owner: &IdentityId,
    id: &ThreadId,
    trashed: bool,
    audit: AuditEntry,
) -> Result<Thread> {
    let mut w = WriteTx::begin(pool).await?;
    let found = sqlx::query(concat!(
        "SELECT ",
        message_cols!(),
        " FROM messages m JOIN mail_contents c ON c.id = m.content_id \
          WHERE m.owner_id = $1 AND m.thread_id = $2 AND (m.trashed_at IS NOT NULL) = $3 ORDER BY m.seq"
    ))
    .bind(owner.as_str())
    .bind(id.as_str())
    .bind(trashed)
    .fetch_all(w.conn())
    .await
    .map_err(db_err)?;
    let messages = found.iter().map(message).collect::<Result<Vec<_>>>()?;
    let Some(first) = messages.first() else {
        return Err(Error::not_found("thread"));
    };
    let subject = first.subject.clone();
    w.audit(audit).await?;
    w.commit().await?;
    Ok(Thread {
        id: id.clone(),
        subject,
        messages,
    })
}

pub(crate) async fn latest_mail_seq(pool: &PgPool, owner: &IdentityId) -> Result<i64> {
    sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE owner_id = $1")
        .bind(owner.as_str())
        .fetch_one(pool)
        .await
        .map_err(db_err)
}

#[async_trait::async_trait]
impl loft_core::store::MailStore for crate::PostgresStore {
    async fn mailbox_labels(&self, owner: &IdentityId, labels: &[String]) -> Result<(u64, u64)> {
        crate::identities::mailbox_labels(&self.pool, owner, labels).await
    }

    async fn mailbox_bytes(&self, owners: &[IdentityId]) -> Result<Vec<(IdentityId, u64)>> {
        crate::identities::mailbox_bytes(&self.pool, owners).await
    }

    async fn mailbox_stats(&self, owners: &[IdentityId]) -> Result<Vec<loft_core::store::MailboxStats>> {
        crate::identities::mailbox_stats(&self.pool, owners).await
    }

    async fn find_idempotency(
        &self,
        owner: &IdentityId,
        key: &str,
        not_before: loft_core::time::Timestamp,
    ) -> Result<Option<(String, MessageId)>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT fingerprint, message_id FROM idempotency_keys WHERE identity_id = $1 AND key = $2 AND created_at > $3",
        )
        .bind(owner.as_str())
        .bind(key)
        .bind(not_before.as_micros())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|(f, m)| (f, MessageId::from_trusted(m))))
    }

    async fn send_mail(&self, mail: NewMail, audit: AuditEntry) -> Result<Message> {
        self.wrote(self::send_mail(&self.pool, mail, audit).await)
    }

    async fn receive_mail(&self, mail: InboundMail, audit: AuditEntry) -> Result<()> {
        self.wrote(self::receive_mail(&self.pool, mail, audit).await)
    }

    async fn list_messages(&self, owner: &IdentityId, query: MessageQuery) -> Result<StorePage<MessageSummary>> {
        self::list_messages(&self.pool, owner, &query).await
    }

    async fn get_message(&self, owner: &IdentityId, id: &MessageId) -> Result<Option<Message>> {
        self::get_message(&self.pool, owner, id).await
    }

    async fn read_message(&self, owner: &IdentityId, id: &MessageId, audit: AuditEntry) -> Result<Message> {
        self.wrote(self::read_message(&self.pool, owner, id, audit).await)
    }

    async fn raw_message(&self, owner: &IdentityId, id: &MessageId) -> Result<Option<Vec<u8>>> {
        self::raw_message(&self.pool, owner, id).await
    }

    async fn update_message(
        &self,
        owner: &IdentityId,
        id: &MessageId,
        patch: MessagePatch,
        audit: AuditEntry,
    ) -> Result<Message> {
        self.wrote(self::update_message(&self.pool, owner, id, &patch, audit).await)
    }

    async fn update_thread(
        &self,
        owner: &IdentityId,
        id: &ThreadId,
        patch: MessagePatch,
        audit: AuditEntry,
    ) -> Result<Thread> {
        self.wrote(self::update_thread(&self.pool, owner, id, &patch, audit).await)
    }

    async fn delete_for_ever(
        &self,
        owner: &IdentityId,
        target: &loft_core::mail::MailTarget,
        audit: AuditEntry,
    ) -> Result<Vec<MessageId>> {
        self.wrote(self::delete_for_ever(&self.pool, owner, target, audit).await)
    }

    async fn list_threads(&self, owner: &IdentityId, query: ThreadQuery) -> Result<StorePage<ThreadSummary>> {
        self::list_threads(&self.pool, owner, &query).await
    }

    async fn read_thread(&self, owner: &IdentityId, id: &ThreadId, trashed: bool, audit: AuditEntry) -> Result<Thread> {
        self.wrote(self::read_thread(&self.pool, owner, id, trashed, audit).await)
    }

    async fn latest_mail_seq(&self, owner: &IdentityId) -> Result<i64> {
        self::latest_mail_seq(&self.pool, owner).await
    }

    async fn search_messages(&self, owner: &IdentityId, query: &SearchQuery) -> Result<Vec<SearchRow>> {
        crate::search::search(&self.pool, owner, query).await
    }
}
