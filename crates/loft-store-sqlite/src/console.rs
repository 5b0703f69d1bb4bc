//! The web console's sessions and passwords (`console_sessions`, `console_logins`, migration
//! 0028). Tokens arrive here as digests, passwords as argon2id hashes.

use loft_core::Result;
use loft_core::audit::AuditEntry;
use loft_core::console::{ConsoleLogin, ConsoleSession, Person};
use loft_core::ids::IdentityId;
use loft_core::time::Timestamp;
use sqlx::{Row, SqliteConnection};

use crate::audit;
use crate::error::map_err;

fn login(row: &sqlx::sqlite::SqliteRow) -> Result<ConsoleLogin> {
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

async fn insert_session(conn: &mut SqliteConnection, s: ConsoleSession, entry: AuditEntry) -> Result<()> {
    let identity = match s.person {
        Person::Operator => None,
        Person::Identity(id) => Some(id.to_string()),
    };
    sqlx::query("INSERT INTO console_sessions (digest, identity_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
        .bind(s.digest)
        .bind(identity)
        .bind(s.created_at.as_micros())
        .bind(s.expires_at.as_micros())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    audit::append(conn, entry).await?;
    Ok(())
}

async fn delete_session(conn: &mut SqliteConnection, digest: String, entry: AuditEntry) -> Result<()> {
    let n = sqlx::query("DELETE FROM console_sessions WHERE digest = ?")
        .bind(digest)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected();
    if n == 0 {
        return Err(loft_core::Error::not_found("session"));
    }
    audit::append(conn, entry).await?;
    Ok(())
}

async fn put_invite(
    conn: &mut SqliteConnection,
    identity: String,
    digest: String,
    expires_at: Timestamp,
    entry: AuditEntry,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO console_logins (identity_id, password_hash, invite_digest, invite_expires_at, updated_at)
         VALUES (?1, NULL, ?2, ?3, ?4)
         ON CONFLICT (identity_id) DO UPDATE SET invite_digest = ?2, invite_expires_at = ?3, updated_at = ?4",
    )
    .bind(identity)
    .bind(digest)
    .bind(expires_at.as_micros())
    .bind(entry.at.as_micros())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    audit::append(conn, entry).await?;
    Ok(())
}

async fn accept_invite(
    conn: &mut SqliteConnection,
    digest: String,
    hash: String,
    entry: AuditEntry,
) -> Result<IdentityId> {
    let id: Option<String> = sqlx::query_scalar(
        "UPDATE console_logins SET password_hash = ?, invite_digest = NULL, invite_expires_at = NULL, updated_at = ?
         WHERE invite_digest = ? RETURNING identity_id",
    )
    .bind(hash)
    .bind(entry.at.as_micros())
    .bind(digest)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    let id = id.ok_or_else(|| loft_core::Error::not_found("invite"))?;
    sqlx::query("DELETE FROM console_sessions WHERE identity_id = ?")
        .bind(id.clone())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    audit::append(conn, entry).await?;
    Ok(IdentityId::from_trusted(id))
}

#[async_trait::async_trait]
impl loft_core::console::ConsoleStore for crate::SqliteStore {
    async fn create_console_session(&self, session: ConsoleSession, audit: AuditEntry) -> Result<()> {
        self.write(move |c| Box::pin(insert_session(c, session, audit))).await
    }

    async fn find_console_session(&self, digest: &str) -> Result<Option<ConsoleSession>> {
        let mut tx = self.reading().await?;
        let out =
            sqlx::query("SELECT digest, identity_id, created_at, expires_at FROM console_sessions WHERE digest = ?")
                .bind(digest.to_owned())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)
                .and_then(|row| {
                    row.map(|r| {
                        let identity: Option<String> = r.try_get("identity_id").map_err(map_err)?;
                        Ok(ConsoleSession {
                            digest: r.try_get("digest").map_err(map_err)?,
                            person: identity
                                .map_or(Person::Operator, |i| Person::Identity(IdentityId::from_trusted(i))),
                            created_at: Timestamp::from_micros(r.try_get("created_at").map_err(map_err)?),
                            expires_at: Timestamp::from_micros(r.try_get("expires_at").map_err(map_err)?),
                        })
                    })
                    .transpose()
                });
        crate::done(tx, out).await
    }

    async fn delete_console_session(&self, digest: &str, audit: AuditEntry) -> Result<()> {
        let digest = digest.to_owned();
        self.write(move |c| Box::pin(delete_session(c, digest, audit))).await
    }

    async fn purge_console_sessions(&self, now: Timestamp) -> Result<u64> {
        self.write(move |c| {
            Box::pin(async move {
                Ok(sqlx::query("DELETE FROM console_sessions WHERE expires_at <= ?")
                    .bind(now.as_micros())
                    .execute(&mut *c)
                    .await
                    .map_err(map_err)?
                    .rows_affected())
            })
        })
        .await
    }

    async fn put_console_invite(
        &self,
        identity: &IdentityId,
        digest: &str,
        expires_at: Timestamp,
        audit: AuditEntry,
    ) -> Result<()> {
        let (identity, digest) = (identity.to_string(), digest.to_owned());
        self.write(move |c| Box::pin(put_invite(c, identity, digest, expires_at, audit)))
            .await
    }

    async fn console_login(&self, identity: &IdentityId) -> Result<Option<ConsoleLogin>> {
        let mut tx = self.reading().await?;
        let out = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LOGIN_COLUMNS} FROM console_logins WHERE identity_id = ?"
        )))
        .bind(identity.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)
        .and_then(|r| r.as_ref().map(login).transpose());
        crate::done(tx, out).await
    }

    async fn console_login_by_invite(&self, digest: &str) -> Result<Option<ConsoleLogin>> {
        let mut tx = self.reading().await?;
        let out = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LOGIN_COLUMNS} FROM console_logins WHERE invite_digest = ?"
        )))
        .bind(digest.to_owned())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)
        .and_then(|r| r.as_ref().map(login).transpose());
        crate::done(tx, out).await
    }

    async fn accept_console_invite(&self, digest: &str, password_hash: &str, audit: AuditEntry) -> Result<IdentityId> {
        let (digest, hash) = (digest.to_owned(), password_hash.to_owned());
        self.write(move |c| Box::pin(accept_invite(c, digest, hash, audit)))
            .await
    }
}
