//! Outbound delivery outcomes and the suppression list (`loft_core::delivery`). An outcome
//! locks the sender copy's row (`FOR UPDATE`), replaces the recipient's entry in its delivery
//! report only while it is `queued`, and writes the bounce notice, the suppression and the
//! audit row in the same transaction. Two workers on two nodes recording the same recipient
//! (one took the job over after the other's lease expired) queue on that row lock, and the
//! second finds the entry no longer `queued`: one outcome per recipient, never two.

use async_trait::async_trait;
use loft_core::address::EmailAddress;
use loft_core::audit::AuditEntry;
use loft_core::delivery::{DeliveryStore, DeliveryUpdate, Suppression};
use loft_core::ids::{IdentityId, MessageId};
use loft_core::mail::{Delivery, DeliveryStatus};
use loft_core::time::Timestamp;
use loft_core::{Error, Result};

use crate::rows;
use crate::{WriteTx, db_err};

type Row = (String, String, String, String, i64);

const COLUMNS: &str = "address, reason, identity_id, message_id, created_at";

fn suppression((address, reason, identity, message, at): Row) -> Result<Suppression> {
    Ok(Suppression {
        address: EmailAddress::parse(&address)
            .map_err(|e| Error::internal(format!("suppressions row {address}: {e}")))?,
        reason,
        identity_id: IdentityId::from_trusted(identity),
        message_id: MessageId::from_trusted(message),
        created_at: Timestamp::from_micros(at),
    })
}

#[async_trait]
impl DeliveryStore for crate::PostgresStore {
    async fn record_delivery(&self, u: DeliveryUpdate, audit: Option<AuditEntry>) -> Result<bool> {
        let mut w = WriteTx::begin(&self.pool).await?;
        // The notice's mailbox first, in the order every write that adds mail uses (see
        // `lock_mailboxes`), then the sender copy's row.
        if let Some(notice) = &u.notice {
            crate::mail::lock_mailboxes(w.conn(), notice.copies.iter(), notice.raw.len() as i64).await?;
        }
        let json: Option<String> =
            sqlx::query_scalar("SELECT delivery FROM messages WHERE id = $1 AND owner_id = $2 FOR UPDATE")
                .bind(u.message.as_str())
                .bind(u.owner.as_str())
                .fetch_optional(w.conn())
                .await
                .map_err(db_err)?;
        let Some(json) = json else { return Ok(false) };
        let mut report: Vec<Delivery> = serde_json::from_str(&json)
            .map_err(|e| Error::internal(format!("message {}: bad delivery report: {e}", u.message)))?;
        let Some(entry) = report
            .iter_mut()
            .find(|d| d.recipient == u.delivery.recipient && d.status == DeliveryStatus::Queued)
        else {
            return Ok(false);
        };
        *entry = u.delivery.clone();
        sqlx::query("UPDATE messages SET delivery = $3 WHERE id = $1 AND owner_id = $2")
            .bind(u.message.as_str())
            .bind(u.owner.as_str())
            .bind(rows::to_json(&report)?)
            .execute(w.conn())
            .await
            .map_err(db_err)?;
        if let Some(notice) = u.notice {
            crate::mail::write_inbound_locked(w.conn(), notice).await?;
        }
        if let Some(s) = &u.suppress {
            sqlx::query(
                "INSERT INTO suppressions (address, reason, identity_id, message_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (address) DO NOTHING",
            )
            .bind(s.address.as_str())
            .bind(&s.reason)
            .bind(s.identity_id.as_str())
            .bind(s.message_id.as_str())
            .bind(s.created_at.as_micros())
            .execute(w.conn())
            .await
            .map_err(db_err)?;
        }
        if let Some(a) = audit {
            w.audit(a).await?;
        }
        self.wrote(w.commit().await)?;
        Ok(true)
    }

    async fn suppressed(&self, addresses: &[EmailAddress]) -> Result<Vec<Suppression>> {
        let list: Vec<&str> = addresses.iter().map(EmailAddress::as_str).collect();
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM suppressions WHERE address = ANY($1) ORDER BY address"
        )))
        .bind(list)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(suppression).collect()
    }

    async fn list_suppressions(&self, after: Option<&EmailAddress>, limit: u32) -> Result<Vec<Suppression>> {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM suppressions WHERE address COLLATE \"C\" > $1 ORDER BY address COLLATE \"C\" LIMIT $2"
        )))
        .bind(after.map_or("", EmailAddress::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(suppression).collect()
    }

    async fn remove_suppression(&self, address: &EmailAddress, audit: AuditEntry) -> Result<Suppression> {
        let mut w = WriteTx::begin(&self.pool).await?;
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "DELETE FROM suppressions WHERE address = $1 RETURNING {COLUMNS}"
        )))
        .bind(address.as_str())
        .fetch_optional(w.conn())
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            return Err(Error::not_found("suppression"));
        };
        w.audit(audit).await?;
        self.wrote(w.commit().await)?;
        suppression(row)
    }
}
