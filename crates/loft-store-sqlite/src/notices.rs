//! Held-mail notice settings (`held_mail_notices`, migration 0031).

use loft_core::Result;
use loft_core::address::EmailAddress;
use loft_core::audit::AuditEntry;
use loft_core::ids::IdentityId;
use loft_core::notices::HeldMailNotice;
use loft_core::time::Timestamp;
use sqlx::{Row, SqliteConnection};

use crate::audit;
use crate::error::map_err;

fn notice(row: &sqlx::sqlite::SqliteRow) -> Result<HeldMailNotice> {
    Ok(HeldMailNotice {
        identity_id: IdentityId::from_trusted(row.try_get("identity_id").map_err(map_err)?),
        address: EmailAddress::from_trusted(row.try_get("address").map_err(map_err)?),
        updated_at: Timestamp::from_micros(row.try_get("updated_at").map_err(map_err)?),
    })
}

async fn set(conn: &mut SqliteConnection, identity: String, address: Option<String>, entry: AuditEntry) -> Result<()> {
    match address {
        Some(a) => {
            sqlx::query(
                "INSERT INTO held_mail_notices (identity_id, address, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (identity_id) DO UPDATE SET address = ?2, updated_at = ?3",
            )
            .bind(identity)
            .bind(a)
            .bind(entry.at.as_micros())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        }
        None => {
            sqlx::query("DELETE FROM held_mail_notices WHERE identity_id = ?")
                .bind(identity)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
        }
    }
    audit::append(conn, entry).await?;
    Ok(())
}

#[async_trait::async_trait]
impl loft_core::notices::NoticeStore for crate::SqliteStore {
    async fn set_held_mail_notice(
        &self,
        identity: &IdentityId,
        address: Option<&EmailAddress>,
        audit: AuditEntry,
    ) -> Result<()> {
        let (identity, address) = (identity.to_string(), address.map(ToString::to_string));
        self.write(move |c| Box::pin(set(c, identity, address, audit))).await
    }

    async fn held_mail_notice(&self, identity: &IdentityId) -> Result<Option<HeldMailNotice>> {
        let mut tx = self.reading().await?;
        let out = sqlx::query("SELECT identity_id, address, updated_at FROM held_mail_notices WHERE identity_id = ?")
            .bind(identity.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)
            .and_then(|r| r.as_ref().map(notice).transpose());
        crate::done(tx, out).await
    }

    async fn held_mail_notices(&self) -> Result<Vec<HeldMailNotice>> {
        let mut tx = self.reading().await?;
        let out = sqlx::query("SELECT identity_id, address, updated_at FROM held_mail_notices ORDER BY identity_id")
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)
            .and_then(|rows| rows.iter().map(notice).collect());
        crate::done(tx, out).await
    }
}
