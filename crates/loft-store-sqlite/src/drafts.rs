//! Drafts (`loft_core::drafts`), scoped by owner: another owner's draft behaves exactly like a
//! missing one. A send consumes its draft through [`consume`], inside the send's writer job.

use loft_core::audit::AuditEntry;
use loft_core::drafts::{Draft, DraftStore, decode_files, encode_files};
use loft_core::ids::{DraftId, IdentityId, MessageId};
use loft_core::mail::StorePage;
use loft_core::time::Timestamp;
use loft_core::{Error, Result};
use sqlx::SqliteConnection;

use crate::db::{Db, args};
use crate::error::map_err;
use crate::rows::{from_json, to_json};
use crate::{audit, page_limit, paged};

const COLUMNS: &str =
    "seq, id, to_addrs, cc_addrs, bcc_addrs, subject, body_text, body_html, reply_to, files, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    id: String,
    to_addrs: String,
    cc_addrs: String,
    bcc_addrs: String,
    subject: String,
    body_text: String,
    body_html: Option<String>,
    reply_to: Option<String>,
    files: String,
    created_at: i64,
    updated_at: i64,
}

impl Row {
    fn into_draft(self) -> Result<Draft> {
        let mut d = Draft {
            id: DraftId::from_trusted(self.id),
            to: from_json(&self.to_addrs, "to_addrs")?,
            cc: from_json(&self.cc_addrs, "cc_addrs")?,
            bcc: from_json(&self.bcc_addrs, "bcc_addrs")?,
            subject: self.subject,
            text: self.body_text,
            html: self.body_html,
            reply_to: self.reply_to.map(MessageId::from_trusted),
            attachments: vec![],
            files: vec![],
            created_at: Timestamp::from_micros(self.created_at),
            updated_at: Timestamp::from_micros(self.updated_at),
        };
        d.set_files(decode_files(&self.files)?);
        Ok(d)
    }
}

/// Deletes `owner`'s draft `id` as part of a send; `NotFound("draft")` when it is gone, which
/// fails the whole send.
pub(crate) async fn consume(conn: &mut impl Db, owner: &IdentityId, id: &DraftId) -> Result<()> {
    let n = conn
        .exec(
            "DELETE FROM drafts WHERE owner_id = ? AND id = ?",
            &args![owner.as_str().to_owned(), id.as_str().to_owned()],
        )
        .await?
        .rows;
    if n == 1 { Ok(()) } else { Err(Error::not_found("draft")) }
}

async fn insert(conn: &mut SqliteConnection, owner: IdentityId, d: Draft, audit_entry: AuditEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO drafts (id, owner_id, to_addrs, cc_addrs, bcc_addrs, subject, body_text, body_html, reply_to, \
         files, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(d.id.as_str().to_owned())
    .bind(owner.as_str().to_owned())
    .bind(to_json(&d.to, "to_addrs")?)
    .bind(to_json(&d.cc, "cc_addrs")?)
    .bind(to_json(&d.bcc, "bcc_addrs")?)
    .bind(d.subject)
    .bind(d.text)
    .bind(d.html)
    .bind(d.reply_to.map(String::from))
    .bind(encode_files(&d.files)?)
    .bind(d.created_at.as_micros())
    .bind(d.updated_at.as_micros())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    audit::append(conn, audit_entry).await?;
    Ok(())
}

async fn replace(conn: &mut SqliteConnection, owner: IdentityId, d: Draft, audit_entry: AuditEntry) -> Result<()> {
    let n = sqlx::query(
        "UPDATE drafts SET to_addrs = ?, cc_addrs = ?, bcc_addrs = ?, subject = ?, body_text = ?, body_html = ?, \
         reply_to = ?, files = ?, updated_at = ? WHERE owner_id = ? AND id = ?",
    )
    .bind(to_json(&d.to, "to_addrs")?)
    .bind(to_json(&d.cc, "cc_addrs")?)
    .bind(to_json(&d.bcc, "bcc_addrs")?)
    .bind(d.subject)
    .bind(d.text)
    .bind(d.html)
    .bind(d.reply_to.map(String::from))
    .bind(encode_files(&d.files)?)
    .bind(d.updated_at.as_micros())
    .bind(owner.as_str().to_owned())
    .bind(d.id.as_str().to_owned())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?
    .rows_affected();
    if n != 1 {
        return Err(Error::not_found("draft"));
    }
    audit::append(conn, audit_entry).await?;
    Ok(())
}

async fn delete(conn: &mut SqliteConnection, owner: IdentityId, id: DraftId, audit_entry: AuditEntry) -> Result<()> {
    consume(conn, &owner, &id).await?;
    audit::append(conn, audit_entry).await?;
    Ok(())
}

#[async_trait::async_trait]
impl DraftStore for crate::SqliteStore {
    async fn create_draft(&self, owner: &IdentityId, draft: Draft, audit: AuditEntry) -> Result<()> {
        let owner = owner.clone();
        self.write(move |c| Box::pin(insert(c, owner, draft, audit))).await
    }

    async fn get_draft(&self, owner: &IdentityId, id: &DraftId) -> Result<Option<Draft>> {
        let mut tx = self.reading().await?;
        let row: std::result::Result<Option<Row>, _> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM drafts WHERE owner_id = ? AND id = ?"
        )))
        .bind(owner.as_str().to_owned())
        .bind(id.as_str().to_owned())
        .fetch_optional(&mut *tx)
        .await;
        let row = crate::done(tx, row.map_err(map_err)).await?;
        row.map(Row::into_draft).transpose()
    }

    async fn list_drafts(&self, owner: &IdentityId, before_seq: Option<i64>, limit: u32) -> Result<StorePage<Draft>> {
        let limit = page_limit(limit);
        let mut tx = self.reading().await?;
        let rows: std::result::Result<Vec<Row>, _> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM drafts WHERE owner_id = ? AND (? IS NULL OR seq < ?) ORDER BY seq DESC LIMIT ?"
        )))
        .bind(owner.as_str().to_owned())
        .bind(before_seq)
        .bind(before_seq)
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *tx)
        .await;
        let rows = crate::done(tx, rows.map_err(map_err)).await?;
        let page = paged(rows, limit, |r| r.seq);
        Ok(StorePage {
            items: page.items.into_iter().map(Row::into_draft).collect::<Result<_>>()?,
            next_before: page.next_before,
        })
    }

    async fn update_draft(&self, owner: &IdentityId, draft: Draft, audit: AuditEntry) -> Result<()> {
        let owner = owner.clone();
        self.write(move |c| Box::pin(replace(c, owner, draft, audit))).await
    }

    async fn delete_draft(&self, owner: &IdentityId, id: &DraftId, audit: AuditEntry) -> Result<()> {
        let (owner, id) = (owner.clone(), id.clone());
        self.write(move |c| Box::pin(delete(c, owner, id, audit))).await
    }

    async fn count_drafts(&self, owner: &IdentityId) -> Result<u64> {
        let mut tx = self.reading().await?;
        let n: std::result::Result<i64, _> = sqlx::query_scalar("SELECT COUNT(*) FROM drafts WHERE owner_id = ?")
            .bind(owner.as_str().to_owned())
            .fetch_one(&mut *tx)
            .await;
        let n = crate::done(tx, n.map_err(map_err)).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
