//! Drafts (`loft_core::drafts`), scoped by owner: another owner's draft behaves exactly like a
//! missing one. A send consumes its draft through [`consume`], in the send's transaction; the
//! `DELETE` takes the draft's row lock, so of two sends of one draft the second finds nothing
//! and writes nothing.

use loft_core::audit::AuditEntry;
use loft_core::drafts::{Draft, DraftStore, decode_files, encode_files};
use loft_core::ids::{DraftId, IdentityId, MessageId};
use loft_core::mail::StorePage;
use loft_core::{Error, Result};
use sqlx::postgres::{PgConnection, PgRow};

use crate::rows::{self, col};
use crate::{WriteTx, db_err};

const COLUMNS: &str =
    "seq, id, to_addrs, cc_addrs, bcc_addrs, subject, body_text, body_html, reply_to, files, created_at, updated_at";

fn draft(row: &PgRow) -> Result<(i64, Draft)> {
    let reply_to: Option<String> = col(row, "reply_to")?;
    let files: String = col(row, "files")?;
    let mut d = Draft {
        id: DraftId::from_trusted(col(row, "id")?),
        to: rows::json_col(row, "to_addrs")?,
        cc: rows::json_col(row, "cc_addrs")?,
        bcc: rows::json_col(row, "bcc_addrs")?,
        subject: col(row, "subject")?,
        text: col(row, "body_text")?,
        html: col(row, "body_html")?,
        reply_to: reply_to.map(MessageId::from_trusted),
        attachments: vec![],
        files: vec![],
        created_at: rows::ts(row, "created_at")?,
        updated_at: rows::ts(row, "updated_at")?,
    };
    d.set_files(decode_files(&files)?);
    Ok((col(row, "seq")?, d))
}

/// Deletes `owner`'s draft `id` as part of a send; `NotFound("draft")` when it is gone, which
/// fails the whole send.
pub(crate) async fn consume(conn: &mut PgConnection, owner: &IdentityId, id: &DraftId) -> Result<()> {
    let n = sqlx::query("DELETE FROM drafts WHERE owner_id = $1 AND id = $2")
        .bind(owner.as_str())
        .bind(id.as_str())
        .execute(conn)
        .await
        .map_err(db_err)?
        .rows_affected();
    if n == 1 { Ok(()) } else { Err(Error::not_found("draft")) }
}

#[async_trait::async_trait]
impl DraftStore for crate::PostgresStore {
    async fn create_draft(&self, owner: &IdentityId, d: Draft, audit: AuditEntry) -> Result<()> {
        let mut w = WriteTx::begin(&self.pool).await?;
        sqlx::query(
            "INSERT INTO drafts (id, owner_id, to_addrs, cc_addrs, bcc_addrs, subject, body_text, body_html, \
             reply_to, created_at, updated_at, files) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(d.id.as_str())
        .bind(owner.as_str())
        .bind(rows::to_json(&d.to)?)
        .bind(rows::to_json(&d.cc)?)
        .bind(rows::to_json(&d.bcc)?)
        .bind(&d.subject)
        .bind(&d.text)
        .bind(d.html.as_deref())
        .bind(d.reply_to.as_ref().map(MessageId::as_str))
        .bind(d.created_at.as_micros())
        .bind(d.updated_at.as_micros())
        .bind(encode_files(&d.files)?)
        .execute(w.conn())
        .await
        .map_err(db_err)?;
        w.audit(audit).await?;
        self.wrote(w.commit().await)
    }

    async fn get_draft(&self, owner: &IdentityId, id: &DraftId) -> Result<Option<Draft>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM drafts WHERE owner_id = $1 AND id = $2"
        )))
        .bind(owner.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(|r| draft(r).map(|(_, d)| d)).transpose()
    }

    async fn list_drafts(&self, owner: &IdentityId, before_seq: Option<i64>, limit: u32) -> Result<StorePage<Draft>> {
        let found = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM drafts WHERE owner_id = $1 AND ($2::BIGINT IS NULL OR seq < $2) \
             ORDER BY seq DESC LIMIT $3"
        )))
        .bind(owner.as_str())
        .bind(before_seq)
        .bind(rows::fetch_limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let items = found.iter().map(draft).collect::<Result<Vec<_>>>()?;
        Ok(rows::page(items, limit))
    }

    async fn update_draft(&self, owner: &IdentityId, d: Draft, audit: AuditEntry) -> Result<()> {
        let mut w = WriteTx::begin(&self.pool).await?;
        let n = sqlx::query(
            "UPDATE drafts SET to_addrs = $3, cc_addrs = $4, bcc_addrs = $5, subject = $6, body_text = $7, \
             body_html = $8, reply_to = $9, updated_at = $10, files = $11 WHERE owner_id = $1 AND id = $2",
        )
        .bind(owner.as_str())
        .bind(d.id.as_str())
        .bind(rows::to_json(&d.to)?)
        .bind(rows::to_json(&d.cc)?)
        .bind(rows::to_json(&d.bcc)?)
        .bind(&d.subject)
        .bind(&d.text)
        .bind(d.html.as_deref())
        .bind(d.reply_to.as_ref().map(MessageId::as_str))
        .bind(d.updated_at.as_micros())
        .bind(encode_files(&d.files)?)
        .execute(w.conn())
        .await
        .map_err(db_err)?
        .rows_affected();
        if n != 1 {
            return Err(Error::not_found("draft"));
        }
        w.audit(audit).await?;
        self.wrote(w.commit().await)
    }

    async fn delete_draft(&self, owner: &IdentityId, id: &DraftId, audit: AuditEntry) -> Result<()> {
        let mut w = WriteTx::begin(&self.pool).await?;
        consume(w.conn(), owner, id).await?;
        w.audit(audit).await?;
        self.wrote(w.commit().await)
    }

    async fn count_drafts(&self, owner: &IdentityId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM drafts WHERE owner_id = $1")
            .bind(owner.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
