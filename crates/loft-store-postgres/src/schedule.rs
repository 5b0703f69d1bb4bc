//! Scheduled send (`loft_core::schedule`). A sender copy waiting for its time carries
//! `schedule_state = 'scheduled'` and the id of its release job. The release, a cancel and a
//! reschedule each begin with one conditional `UPDATE ... WHERE schedule_state = 'scheduled'`
//! of that row: its row lock makes a concurrent one (on any node) wait and then find nothing,
//! so a mail is released at most once, and never after it was canceled.

use loft_core::audit::AuditEntry;
use loft_core::ids::{IdentityId, MessageId};
use loft_core::jobs::NewJob;
use loft_core::mail::{Delivery, MessageStatus};
use loft_core::schedule::{ScheduleStore, ScheduledMail, ScheduledRelease};
use loft_core::time::Timestamp;
use loft_core::{Error, Result};
use sqlx::postgres::PgConnection;

use crate::rows;
use crate::{WriteTx, db_err};

/// Records a sender copy's `send_at` and, for a scheduled one, its release job.
pub(crate) async fn mark(
    conn: &mut PgConnection,
    id: &MessageId,
    send_at: Option<Timestamp>,
    job: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "UPDATE messages SET send_at = $2, schedule_job = $3, \
         schedule_state = CASE WHEN $3::BIGINT IS NULL THEN NULL ELSE 'scheduled' END WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(send_at.map(Timestamp::as_micros))
    .bind(job)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Finishes a queued or running release job that no longer has anything to release.
async fn finish_job(conn: &mut PgConnection, job: Option<i64>, at: Timestamp) -> Result<()> {
    let Some(job) = job else { return Ok(()) };
    sqlx::query(
        "UPDATE jobs SET status = 'done', finished_at = $2, lease_owner = NULL, lease_until = NULL \
         WHERE id = $1 AND status IN ('queued', 'running')",
    )
    .bind(job)
    .bind(at.as_micros())
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Why a conditional update of `owner`'s copy `id` found nothing.
async fn why_not(conn: &mut PgConnection, owner: &IdentityId, id: &MessageId) -> Error {
    let found: std::result::Result<Option<i64>, _> =
        sqlx::query_scalar("SELECT seq FROM messages WHERE owner_id = $1 AND id = $2")
            .bind(owner.as_str())
            .bind(id.as_str())
            .fetch_optional(conn)
            .await;
    match found {
        Ok(None) => Error::not_found("message"),
        Ok(Some(_)) => Error::conflict("not_scheduled", format!("message {id} is not scheduled (any more)")),
        Err(e) => db_err(e),
    }
}

#[async_trait::async_trait]
impl ScheduleStore for crate::PostgresStore {
    async fn scheduled_mail(&self, id: &MessageId) -> Result<Option<ScheduledMail>> {
        let row: Option<(String, String, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT owner_id, COALESCE(schedule_state, status), send_at, schedule_job FROM messages WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|(owner, status, send_at, job)| {
            Ok(ScheduledMail {
                status: MessageStatus::parse_stored(&status, id.as_str())?,
                owner: IdentityId::from_trusted(owner),
                message: id.clone(),
                send_at: send_at.map(Timestamp::from_micros),
                job: job.filter(|_| status == "scheduled"),
            })
        })
        .transpose()
    }

    async fn release_scheduled(&self, r: ScheduledRelease, audit: AuditEntry) -> Result<bool> {
        let mut w = WriteTx::begin(&self.pool).await?;
        let n = sqlx::query(
            "UPDATE messages SET status = 'sent', delivery = $5, schedule_state = NULL, schedule_job = NULL \
             WHERE id = $1 AND owner_id = $2 AND schedule_state = 'scheduled' AND schedule_job = $3 AND send_at <= $4",
        )
        .bind(r.message.as_str())
        .bind(r.owner.as_str())
        .bind(r.job)
        .bind(r.at.as_micros())
        .bind(rows::to_json(&r.release.delivery)?)
        .execute(w.conn())
        .await
        .map_err(db_err)?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        crate::oversight::write_copies(w.conn(), r.message.as_str(), &r.release).await?;
        // Last before the audit row, in (identity, address) order: see the migration
        // `caps_contacts`.
        crate::caps::touch_contacts(w.conn(), &r.release.contacts).await?;
        w.audit(audit).await?;
        self.wrote(w.commit().await)?;
        Ok(true)
    }

    async fn cancel_scheduled(
        &self,
        owner: &IdentityId,
        id: &MessageId,
        delivery: Vec<Delivery>,
        at: Timestamp,
        audit: AuditEntry,
    ) -> Result<()> {
        let mut w = WriteTx::begin(&self.pool).await?;
        let job: Option<Option<i64>> = sqlx::query_scalar(
            "UPDATE messages SET schedule_state = 'canceled', delivery = $3 \
             WHERE owner_id = $1 AND id = $2 AND schedule_state = 'scheduled' RETURNING schedule_job",
        )
        .bind(owner.as_str())
        .bind(id.as_str())
        .bind(rows::to_json(&delivery)?)
        .fetch_optional(w.conn())
        .await
        .map_err(db_err)?;
        let Some(job) = job else {
            return Err(why_not(w.conn(), owner, id).await);
        };
        finish_job(w.conn(), job, at).await?;
        w.audit(audit).await?;
        self.wrote(w.commit().await)
    }

    async fn reschedule(
        &self,
        owner: &IdentityId,
        id: &MessageId,
        send_at: Timestamp,
        job: NewJob,
        audit: AuditEntry,
    ) -> Result<()> {
        let mut w = WriteTx::begin(&self.pool).await?;
        let old: Option<Option<i64>> = sqlx::query_scalar(
            "UPDATE messages SET send_at = $3 \
             WHERE owner_id = $1 AND id = $2 AND schedule_state = 'scheduled' RETURNING schedule_job",
        )
        .bind(owner.as_str())
        .bind(id.as_str())
        .bind(send_at.as_micros())
        .fetch_optional(w.conn())
        .await
        .map_err(db_err)?;
        let Some(old) = old else {
            return Err(why_not(w.conn(), owner, id).await);
        };
        finish_job(w.conn(), old, audit.at).await?;
        let new = crate::jobs::insert(w.conn(), &job).await?;
        sqlx::query("UPDATE messages SET schedule_job = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(new)
            .execute(w.conn())
            .await
            .map_err(db_err)?;
        w.audit(audit).await?;
        self.wrote(w.commit().await)
    }
}
