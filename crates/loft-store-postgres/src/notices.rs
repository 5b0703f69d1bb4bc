//! Held-mail notice settings (`held_mail_notices`, migration 20261227000000) and the pending
//! confirmations of outside addresses (`notice_confirmations`, migration 20261230000000).

use loft_core::Result;
use loft_core::address::EmailAddress;
use loft_core::audit::AuditEntry;
use loft_core::ids::IdentityId;
use loft_core::notices::{Confirmed, HeldMailNotice, NoticeConfirmation};
use loft_core::time::Timestamp;
use sqlx::{PgConnection, Row};

use crate::{WriteTx, db_err as map_err};

fn notice(row: &sqlx::postgres::PgRow) -> Result<HeldMailNotice> {
    Ok(HeldMailNotice {
        identity_id: IdentityId::from_trusted(row.try_get("identity_id").map_err(map_err)?),
        address: EmailAddress::from_trusted(row.try_get("address").map_err(map_err)?),
        updated_at: Timestamp::from_micros(row.try_get("updated_at").map_err(map_err)?),
    })
}

fn confirmation(row: &sqlx::postgres::PgRow) -> Result<NoticeConfirmation> {
    Ok(NoticeConfirmation {
        identity_id: IdentityId::from_trusted(row.try_get("identity_id").map_err(map_err)?),
        address: EmailAddress::from_trusted(row.try_get("address").map_err(map_err)?),
        code_hash: row.try_get("code_hash").map_err(map_err)?,
        created_at: Timestamp::from_micros(row.try_get("created_at").map_err(map_err)?),
        expires_at: Timestamp::from_micros(row.try_get("expires_at").map_err(map_err)?),
        attempts: row
            .try_get::<i32, _>("attempts")
            .map_err(map_err)?
            .try_into()
            .unwrap_or(u32::MAX),
    })
}

/// Sets or clears the address and ends any confirmation still waiting (no audit row).
async fn set(conn: &mut PgConnection, identity: &str, address: Option<&str>, at: Timestamp) -> Result<()> {
    match address {
        Some(a) => {
            sqlx::query(
                "INSERT INTO held_mail_notices (identity_id, address, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (identity_id) DO UPDATE SET address = $2, updated_at = $3",
            )
            .bind(identity)
            .bind(a)
            .bind(at.as_micros())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        }
        None => {
            sqlx::query("DELETE FROM held_mail_notices WHERE identity_id = $1")
                .bind(identity)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
        }
    }
    delete_confirmation(conn, identity).await
}

async fn delete_confirmation(conn: &mut PgConnection, identity: &str) -> Result<()> {
    sqlx::query("DELETE FROM notice_confirmations WHERE identity_id = $1")
        .bind(identity)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(())
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
        let address = address.map(ToString::to_string);
        set(w.conn(), identity.as_str(), address.as_deref(), audit.at).await?;
        w.audit(audit).await?;
        self.wrote(w.commit().await)
    }

    async fn put_notice_confirmation(&self, c: NoticeConfirmation, audit: AuditEntry) -> Result<()> {
        let mut w = WriteTx::begin(&self.pool).await?;
        sqlx::query(
            "INSERT INTO notice_confirmations (identity_id, address, code_hash, created_at, expires_at, attempts)
             VALUES ($1, $2, $3, $4, $5, 0)
             ON CONFLICT (identity_id) DO UPDATE SET address = $2, code_hash = $3, created_at = $4,
                 expires_at = $5, attempts = 0",
        )
        .bind(c.identity_id.to_string())
        .bind(c.address.to_string())
        .bind(c.code_hash)
        .bind(c.created_at.as_micros())
        .bind(c.expires_at.as_micros())
        .execute(w.conn())
        .await
        .map_err(map_err)?;
        w.audit(audit).await?;
        self.wrote(w.commit().await)
    }

    async fn notice_confirmation(&self, identity: &IdentityId) -> Result<Option<NoticeConfirmation>> {
        sqlx::query(
            "SELECT identity_id, address, code_hash, created_at, expires_at, attempts FROM notice_confirmations \
         WHERE identity_id = $1",
        )
        .bind(identity.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(confirmation)
        .transpose()
    }

    async fn confirm_notice_address(
        &self,
        identity: &IdentityId,
        code_hash: &str,
        max_attempts: u32,
        audit_ok: AuditEntry,
        audit_failed: AuditEntry,
    ) -> Result<Confirmed> {
        let mut w = WriteTx::begin(&self.pool).await?;
        // The row is locked: two guesses at once count as two.
        let row = sqlx::query(
            "SELECT identity_id, address, code_hash, created_at, expires_at, attempts FROM notice_confirmations \
         WHERE identity_id = $1 FOR UPDATE",
        )
        .bind(identity.as_str())
        .fetch_optional(w.conn())
        .await
        .map_err(map_err)?;
        let Some(c) = row.as_ref().map(confirmation).transpose()? else {
            return Ok(Confirmed::NoneWaiting);
        };
        let out = if c.expires_at <= audit_ok.at {
            delete_confirmation(w.conn(), identity.as_str()).await?;
            w.audit(audit_failed).await?;
            Confirmed::Expired
        } else if c.code_hash != code_hash {
            let attempts = c.attempts.saturating_add(1);
            if attempts >= max_attempts {
                delete_confirmation(w.conn(), identity.as_str()).await?;
            } else {
                sqlx::query("UPDATE notice_confirmations SET attempts = $1 WHERE identity_id = $2")
                    .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
                    .bind(identity.as_str())
                    .execute(w.conn())
                    .await
                    .map_err(map_err)?;
            }
            w.audit(audit_failed).await?;
            Confirmed::WrongCode {
                attempts_left: max_attempts.saturating_sub(attempts),
            }
        } else {
            let at = audit_ok.at;
            set(w.conn(), identity.as_str(), Some(c.address.as_str()), at).await?;
            w.audit(audit_ok).await?;
            Confirmed::Yes(HeldMailNotice {
                identity_id: c.identity_id,
                address: c.address,
                updated_at: at,
            })
        };
        self.wrote(w.commit().await)?;
        Ok(out)
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
