//! Held-mail notice settings (`held_mail_notices`, migration 20261227000000).

use loft_core::Result;
use loft_core::address::EmailAddress;
use loft_core::audit::AuditEntry;
use loft_core::ids::IdentityId;
use loft_core::notices::HeldMailNotice;
use loft_core::time::Timestamp;
use sqlx::Row;

use crate::{WriteTx, db_err as map_err};

fn notice(row: &sqlx::postgres::PgRow) -> Result<HeldMailNotice> {
    Ok(HeldMailNotice {
        identity_id: IdentityId::from_trusted(row.try_get("identity_id").map_err(map_err)?),
        address: EmailAddress::from_trusted(row.try_get("address").map_err(map_err)?),
        updated_at: Timestamp::from_micros(row.try_get("updated_at").map_err(map_err)?),
    })
}

#[async_trait::async_trait]
impl loft_core::notices::NoticeStore for crate::PostgresStore {
    async fn set_held_mail_notice(
        &self,
        identity: &IdentityId,
        address: Option<&EmailAddress>,
        audit: AuditEntry,
    ) -> Result<()> {
        let mut w = WriteTx::begin(&self.pool).await?;
        match address {
            Some(a) => {
                sqlx::query(
                    "INSERT INTO held_mail_notices (identity_id, address, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (identity_id) DO UPDATE SET address = $2, updated_at = $3",
                )
                .bind(identity.to_string())
                .bind(a.to_string())
                .bind(audit.at.as_micros())
                .execute(w.conn())
                .await
                .map_err(map_err)?;
            }
            None => {
                sqlx::query("DELETE FROM held_mail_notices WHERE identity_id = $1")
                    .bind(identity.to_string())
                    .execute(w.conn())
                    .await
                    .map_err(map_err)?;
            }
        }
        w.audit(audit).await?;
        self.wrote(w.commit().await)
    }

    async fn held_mail_notice(&self, identity: &IdentityId) -> Result<Option<HeldMailNotice>> {
        sqlx::query("SELECT identity_id, address, updated_at FROM held_mail_notices WHERE identity_id = $1")
            .bind(identity.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(notice)
            .transpose()
    }

    async fn held_mail_notices(&self) -> Result<Vec<HeldMailNotice>> {
        sqlx::query("SELECT identity_id, address, updated_at FROM held_mail_notices ORDER BY identity_id")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(notice)
            .collect()
    }
}
