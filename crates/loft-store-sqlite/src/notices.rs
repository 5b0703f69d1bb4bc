//! Held-mail notice settings (`held_mail_notices`, migration 0031) and the pending
//! confirmations of outside addresses (`notice_confirmations`, migration 0034).

use loft_core::Result;
use loft_core::address::EmailAddress;
use loft_core::audit::AuditEntry;
use loft_core::ids::IdentityId;
use loft_core::notices::{Confirmed, HeldMailNotice, NoticeConfirmation};
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
            .bind(&identity)
            .bind(a)
            .bind(entry.at.as_micros())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        }
        None => {
            sqlx::query("DELETE FROM held_mail_notices WHERE identity_id = ?")
                .bind(&identity)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
        }
    }
    // A new choice ends any confirmation still waiting for its code.
    delete_confirmation(conn, &identity).await?;
    audit::append(conn, entry).await?;
    Ok(())
}

async fn delete_confirmation(conn: &mut SqliteConnection, identity: &str) -> Result<()> {
    sqlx::query("DELETE FROM notice_confirmations WHERE identity_id = ?")
        .bind(identity)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

fn confirmation(row: &sqlx::sqlite::SqliteRow) -> Result<NoticeConfirmation> {
    Ok(NoticeConfirmation {
        identity_id: IdentityId::from_trusted(row.try_get("identity_id").map_err(map_err)?),
        address: EmailAddress::from_trusted(row.try_get("address").map_err(map_err)?),
        code_hash: row.try_get("code_hash").map_err(map_err)?,
        created_at: Timestamp::from_micros(row.try_get("created_at").map_err(map_err)?),
        expires_at: Timestamp::from_micros(row.try_get("expires_at").map_err(map_err)?),
        attempts: row
            .try_get::<i64, _>("attempts")
            .map_err(map_err)?
            .try_into()
            .unwrap_or(u32::MAX),
    })
}

async fn put_confirmation(conn: &mut SqliteConnection, c: NoticeConfirmation, entry: AuditEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO notice_confirmations (identity_id, address, code_hash, created_at, expires_at, attempts)
         VALUES (?1, ?2, ?3, ?4, ?5, 0)
         ON CONFLICT (identity_id) DO UPDATE SET address = ?2, code_hash = ?3, created_at = ?4, expires_at = ?5,
             attempts = 0",
    )
    .bind(c.identity_id.to_string())
    .bind(c.address.to_string())
    .bind(c.code_hash)
    .bind(c.created_at.as_micros())
    .bind(c.expires_at.as_micros())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    audit::append(conn, entry).await?;
    Ok(())
}

async fn confirm(
    conn: &mut SqliteConnection,
    identity: String,
    code_hash: String,
    max_attempts: u32,
    ok: AuditEntry,
    failed: AuditEntry,
) -> Result<Confirmed> {
    let row = sqlx::query(
        "SELECT identity_id, address, code_hash, created_at, expires_at, attempts FROM notice_confirmations \
         WHERE identity_id = ?",
    )
    .bind(&identity)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    let Some(c) = row.as_ref().map(confirmation).transpose()? else {
        return Ok(Confirmed::NoneWaiting);
    };
    if c.expires_at <= ok.at {
        delete_confirmation(conn, &identity).await?;
        audit::append(conn, failed).await?;
        return Ok(Confirmed::Expired);
    }
    if c.code_hash != code_hash {
        let attempts = c.attempts.saturating_add(1);
        if attempts >= max_attempts {
            delete_confirmation(conn, &identity).await?;
        } else {
            sqlx::query("UPDATE notice_confirmations SET attempts = ? WHERE identity_id = ?")
                .bind(i64::from(attempts))
                .bind(&identity)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
        }
        audit::append(conn, failed).await?;
        return Ok(Confirmed::WrongCode {
            attempts_left: max_attempts.saturating_sub(attempts),
        });
    }
    let at = ok.at;
    set(conn, identity.clone(), Some(c.address.to_string()), ok).await?;
    Ok(Confirmed::Yes(HeldMailNotice {
        identity_id: c.identity_id,
        address: c.address,
        updated_at: at,
    }))
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

    async fn put_notice_confirmation(&self, c: NoticeConfirmation, audit: AuditEntry) -> Result<()> {
        self.write(move |conn| Box::pin(put_confirmation(conn, c, audit))).await
    }

    async fn notice_confirmation(&self, identity: &IdentityId) -> Result<Option<NoticeConfirmation>> {
        let mut tx = self.reading().await?;
        let out = sqlx::query(
            "SELECT identity_id, address, code_hash, created_at, expires_at, attempts FROM notice_confirmations \
         WHERE identity_id = ?",
        )
        .bind(identity.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)
        .and_then(|r| r.as_ref().map(confirmation).transpose());
        crate::done(tx, out).await
    }

    async fn confirm_notice_address(
        &self,
        identity: &IdentityId,
        code_hash: &str,
        max_attempts: u32,
        audit_ok: AuditEntry,
        audit_failed: AuditEntry,
    ) -> Result<Confirmed> {
        let (identity, code_hash) = (identity.to_string(), code_hash.to_owned());
        self.write(move |c| Box::pin(confirm(c, identity, code_hash, max_attempts, audit_ok, audit_failed)))
            .await
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
