//! The web console's sessions and passwords (`console_sessions`, `console_logins`, migration
//! 20261224000000). Tokens arrive here as digests, passwords as argon2id hashes.

use loft_core::Result;
use loft_core::audit::AuditEntry;
use loft_core::console::{ConsoleLogin, ConsoleSession, Person};
use loft_core::ids::IdentityId;
use loft_core::time::Timestamp;
use sqlx::Row;

use crate::{WriteTx, db_err as map_err};

fn login(row: &sqlx::postgres::PgRow) -> Result<ConsoleLogin> {
    Ok(ConsoleLogin {
        identity_id: IdentityId::from_trusted(row.try_get("identity_id").map_err(map_err)?),
        password_hash: row.try_get("password_hash").map_err(map_err)?,
        invite_digest: row.try_get("invite_digest").map_err(map_err)?,
        invite_expires_at: row
            .try_get::<Option<i64>, _>("invite_expires_at")
            .map_err(map_err)?
            .map(Timestamp::from_micros),
    })
}

const LOGIN_COLUMNS: &str = "identity_id, password_hash, invite_digest, invite_expires_at";

#[async_trait::async_trait]
impl loft_core::console::ConsoleStore for crate::PostgresStore {
    async fn create_console_session(&self, session: ConsoleSession, audit: AuditEntry) -> Result<()> {
        let identity = match session.person {
            Person::Operator => None,
            Person::Identity(id) => Some(id.to_string()),
        };
        let mut w = WriteTx::begin(&self.pool).await?;
        sqlx::query(
            "INSERT INTO console_sessions (digest, identity_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(session.digest)
        .bind(identity)
        .bind(session.created_at.as_micros())
        .bind(session.expires_at.as_micros())
        .execute(w.conn())
        .await
        .map_err(map_err)?;
        w.audit(audit).await?;
        self.wrote(w.commit().await)
    }

    async fn find_console_session(&self, digest: &str) -> Result<Option<ConsoleSession>> {
        let row =
            sqlx::query("SELECT digest, identity_id, created_at, expires_at FROM console_sessions WHERE digest = $1")
                .bind(digest.to_owned())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.map(|r| {
            let identity: Option<String> = r.try_get("identity_id").map_err(map_err)?;
            Ok(ConsoleSession {
                digest: r.try_get("digest").map_err(map_err)?,
                person: identity.map_or(Person::Operator, |i| Person::Identity(IdentityId::from_trusted(i))),
                created_at: Timestamp::from_micros(r.try_get("created_at").map_err(map_err)?),
                expires_at: Timestamp::from_micros(r.try_get("expires_at").map_err(map_err)?),
            })
        })
        .transpose()
    }

    async fn delete_console_session(&self, digest: &str, audit: AuditEntry) -> Result<()> {
        let mut w = WriteTx::begin(&self.pool).await?;
        let n = sqlx::query("DELETE FROM console_sessions WHERE digest = $1")
            .bind(digest.to_owned())
            .execute(w.conn())
            .await
            .map_err(map_err)?
            .rows_affected();
        if n == 0 {
            return Err(loft_core::Error::not_found("session"));
        }
        w.audit(audit).await?;
        self.wrote(w.commit().await)
    }

    async fn purge_console_sessions(&self, now: Timestamp) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(now.as_micros())
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected())
    }

    async fn put_console_invite(
        &self,
        identity: &IdentityId,
        digest: &str,
        expires_at: Timestamp,
        audit: AuditEntry,
    ) -> Result<()> {
        let mut w = WriteTx::begin(&self.pool).await?;
        sqlx::query(
            "INSERT INTO console_logins (identity_id, password_hash, invite_digest, invite_expires_at, updated_at)
             VALUES ($1, NULL, $2, $3, $4)
             ON CONFLICT (identity_id) DO UPDATE SET invite_digest = $2, invite_expires_at = $3, updated_at = $4",
        )
        .bind(identity.to_string())
        .bind(digest.to_owned())
        .bind(expires_at.as_micros())
        .bind(audit.at.as_micros())
        .execute(w.conn())
        .await
        .map_err(map_err)?;
        w.audit(audit).await?;
        self.wrote(w.commit().await)
    }

    async fn console_login(&self, identity: &IdentityId) -> Result<Option<ConsoleLogin>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LOGIN_COLUMNS} FROM console_logins WHERE identity_id = $1"
        )))
        .bind(identity.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(login)
        .transpose()
    }

    async fn console_login_by_invite(&self, digest: &str) -> Result<Option<ConsoleLogin>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LOGIN_COLUMNS} FROM console_logins WHERE invite_digest = $1"
        )))
        .bind(digest.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(login)
        .transpose()
    }

    async fn accept_console_invite(&self, digest: &str, password_hash: &str, audit: AuditEntry) -> Result<IdentityId> {
        let mut w = WriteTx::begin(&self.pool).await?;
        let id: Option<String> = sqlx::query_scalar(
            "UPDATE console_logins SET password_hash = $1, invite_digest = NULL, invite_expires_at = NULL, updated_at = $2
             WHERE invite_digest = $3 RETURNING identity_id",
        )
        .bind(password_hash.to_owned())
        .bind(audit.at.as_micros())
        .bind(digest.to_owned())
        .fetch_optional(w.conn())
        .await
        .map_err(map_err)?;
        let id = id.ok_or_else(|| loft_core::Error::not_found("invite"))?;
        sqlx::query("DELETE FROM console_sessions WHERE identity_id = $1")
            .bind(id.clone())
            .execute(w.conn())
            .await
            .map_err(map_err)?;
        w.audit(audit).await?;
        self.wrote(w.commit().await)?;
        Ok(IdentityId::from_trusted(id))
    }
}
