//! Outbound delivery outcomes and the suppression list (`loft_core::delivery`). An outcome is
//! one writer job: it reads the sender copy's delivery report, replaces the recipient's entry
//! only while it is `queued`, and writes the bounce notice, the suppression and the audit row
//! with it. The single writer serialises outcomes, so a second one finds nothing to do.

use async_trait::async_trait;
use loft_core::address::EmailAddress;
use loft_core::audit::AuditEntry;
use loft_core::delivery::{DeliveryStore, DeliveryUpdate, Suppression};
use loft_core::ids::{IdentityId, MessageId};
use loft_core::mail::{Delivery, DeliveryStatus};
use loft_core::time::Timestamp;
use loft_core::{Error, Result};

use crate::SqliteStore;
use crate::audit;
use crate::db::{Db, Hot, args, at_once};
use crate::error::map_err;
use crate::hot::Cost;
use crate::rows::{from_json, to_json};

type Row = (String, String, String, String, i64);

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

async fn record(conn: &mut impl Db, u: DeliveryUpdate, audit_entry: Option<AuditEntry>) -> Result<bool> {
    let row: Option<(String,)> = conn
        .first(
            "SELECT delivery FROM messages WHERE id = ? AND owner_id = ?",
            &args![u.message.as_str().to_owned(), u.owner.as_str().to_owned()],
        )
        .await?;
    let Some((json,)) = row else { return Ok(false) };
    let mut report: Vec<Delivery> = from_json(&json, "delivery")?;
    let Some(entry) = report
        .iter_mut()
        .find(|d| d.recipient == u.delivery.recipient && d.status == DeliveryStatus::Queued)
    else {
        return Ok(false);
    };
    *entry = u.delivery.clone();
    conn.exec(
        "UPDATE messages SET delivery = ? WHERE id = ? AND owner_id = ?",
        &args![
            to_json(&report, "delivery")?,
            u.message.as_str().to_owned(),
            u.owner.as_str().to_owned()
        ],
    )
    .await?;
    if let Some(notice) = &u.notice {
        crate::mail::write_inbound(conn, notice).await?;
    }
    if let Some(s) = &u.suppress {
        conn.exec(
            "INSERT INTO suppressions (address, reason, identity_id, message_id, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (address) DO NOTHING",
            &args![
                s.address.as_str().to_owned(),
                s.reason.clone(),
                s.identity_id.as_str().to_owned(),
                s.message_id.as_str().to_owned(),
                s.created_at.as_micros()
            ],
        )
        .await?;
    }
    if let Some(a) = audit_entry {
        audit::append(conn, a).await?;
    }
    Ok(true)
}

async fn remove(conn: &mut impl Db, address: &EmailAddress, audit_entry: AuditEntry) -> Result<Suppression> {
    let row: Option<Row> = conn
        .first(
            "DELETE FROM suppressions WHERE address = ? RETURNING address, reason, identity_id, message_id, created_at",
            &args![address.as_str().to_owned()],
        )
        .await?;
    let Some(row) = row else {
        return Err(Error::not_found("suppression"));
    };
    audit::append(conn, audit_entry).await?;
    suppression(row)
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn record_delivery(&self, update: DeliveryUpdate, audit: Option<AuditEntry>) -> Result<bool> {
        self.write_native(move |c| at_once(record(c, update, audit))).await
    }

    async fn suppressed(&self, addresses: &[EmailAddress]) -> Result<Vec<Suppression>> {
        // A send's recipients (and each delivery's one): a lookup through the key each.
        let addresses: Vec<String> = addresses.iter().map(|a| a.as_str().to_owned()).collect();
        let rows: Vec<Row> = self
            .hot(Cost::of_rows(addresses.len()), move |c| {
                let mut out = Vec::new();
                for a in &addresses {
                    let row = at_once(Hot(c).first(
                        "SELECT address, reason, identity_id, message_id, created_at FROM suppressions WHERE address = ?",
                        &args![a.as_str()],
                    ))?;
                    out.extend(row);
                }
                Ok(out)
            })
            .await?;
        rows.into_iter().map(suppression).collect()
    }

    async fn list_suppressions(&self, after: Option<&EmailAddress>, limit: u32) -> Result<Vec<Suppression>> {
        let mut tx = self.reading().await?;
        let rows: std::result::Result<Vec<Row>, _> = sqlx::query_as(
            "SELECT address, reason, identity_id, message_id, created_at FROM suppressions
             WHERE address > ? ORDER BY address LIMIT ?",
        )
        .bind(after.map_or_else(String::new, |a| a.as_str().to_owned()))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await;
        let out = rows
            .map_err(map_err)
            .and_then(|r| r.into_iter().map(suppression).collect());
        crate::done(tx, out).await
    }

    async fn remove_suppression(&self, address: &EmailAddress, audit: AuditEntry) -> Result<Suppression> {
        let address = address.clone();
        self.write_native(move |c| at_once(remove(c, &address, audit))).await
    }
}
