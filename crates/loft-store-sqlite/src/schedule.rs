//! Scheduled send (`loft_core::schedule`). A sender copy waiting for its time carries
//! `schedule_state = 'scheduled'` and the id of its release job; the release, a cancel and a
//! reschedule each move it with one conditional `UPDATE` inside their writer job, so whichever
//! comes first wins and the others find nothing to do.

use loft_core::audit::AuditEntry;
use loft_core::ids::{IdentityId, MessageId};
use loft_core::jobs::NewJob;
use loft_core::mail::{Delivery, MessageStatus};
use loft_core::schedule::{ScheduleStore, ScheduledMail, ScheduledRelease};
use loft_core::time::Timestamp;
use loft_core::{Error, Result};

use crate::audit;
use crate::db::{Db, args, at_once};
use crate::error::map_err;
use crate::rows::to_json;

/// Records a sender copy's `send_at` and, for a scheduled one, its release job.
pub(crate) async fn mark(
    conn: &mut impl Db,
    id: &MessageId,
    send_at: Option<Timestamp>,
    job: Option<i64>,
) -> Result<()> {
    conn.exec(
        "UPDATE messages SET send_at = ?, schedule_job = ?,
         schedule_state = CASE WHEN ? IS NULL THEN NULL ELSE 'scheduled' END WHERE id = ?",
        &args![send_at.map(Timestamp::as_micros), job, job, id.as_str().to_owned()],
    )
    .await?;
    Ok(())
}

/// Finishes a queued or running release job that no longer has anything to release.
async fn finish_job(conn: &mut impl Db, job: Option<i64>, at: Timestamp) -> Result<()> {
    let Some(job) = job else { return Ok(()) };
    conn.exec(
        "UPDATE jobs SET status = 'done', finished_at = ?, lease_owner = NULL, lease_until = NULL
         WHERE id = ? AND status IN ('queued', 'running')",
        &args![at.as_micros(), job],
    )
    .await?;
    Ok(())
}

/// The copy's current job if it is `owner`'s and scheduled; `NotFound` / `not_scheduled`.
async fn scheduled_job(conn: &mut impl Db, owner: &IdentityId, id: &MessageId) -> Result<Option<i64>> {
    let row: Option<(Option<String>, Option<i64>)> = conn
        .first(
            "SELECT schedule_state, schedule_job FROM messages WHERE owner_id = ? AND id = ?",
            &args![owner.as_str().to_owned(), id.as_str().to_owned()],
        )
        .await?;
    match row {
        None => Err(Error::not_found("message")),
        Some((Some(state), job)) if state == "scheduled" => Ok(job),
        Some(_) => Err(Error::conflict(
            "not_scheduled",
            format!("message {id} is not scheduled (any more)"),
        )),
    }
}

async fn release(conn: &mut impl Db, r: ScheduledRelease, audit_entry: AuditEntry) -> Result<bool> {
    let n = conn
        .exec(
            "UPDATE messages SET status = 'sent', delivery = ?, schedule_state = NULL, schedule_job = NULL
         WHERE id = ? AND owner_id = ? AND schedule_state = 'scheduled' AND schedule_job = ? AND send_at <= ?",
            &args![
                to_json(&r.release.delivery, "delivery")?,
                r.message.as_str().to_owned(),
                r.owner.as_str().to_owned(),
                r.job,
                r.at.as_micros()
            ],
        )
        .await?
        .rows;
    if n != 1 {
        return Ok(false);
    }
    crate::oversight::write_copies(conn, r.message.as_str(), &r.release).await?;
    audit::append(conn, audit_entry).await?;
    Ok(true)
}

async fn cancel(
    conn: &mut impl Db,
    owner: IdentityId,
    id: MessageId,
    delivery: Vec<Delivery>,
    at: Timestamp,
    audit_entry: AuditEntry,
) -> Result<()> {
    let job = scheduled_job(conn, &owner, &id).await?;
    conn.exec(
        "UPDATE messages SET schedule_state = 'canceled', schedule_job = NULL, delivery = ?
         WHERE id = ? AND schedule_state = 'scheduled'",
        &args![to_json(&delivery, "delivery")?, id.as_str().to_owned()],
    )
    .await?;
    finish_job(conn, job, at).await?;
    audit::append(conn, audit_entry).await?;
    Ok(())
}

async fn reschedule(
    conn: &mut impl Db,
    owner: IdentityId,
    id: MessageId,
    send_at: Timestamp,
    job: NewJob,
    audit_entry: AuditEntry,
) -> Result<()> {
    let old = scheduled_job(conn, &owner, &id).await?;
    finish_job(conn, old, audit_entry.at).await?;
    let new = crate::jobs::insert(conn, &job).await?;
    conn.exec(
        "UPDATE messages SET send_at = ?, schedule_job = ? WHERE id = ? AND schedule_state = 'scheduled'",
        &args![send_at.as_micros(), new, id.as_str().to_owned()],
    )
    .await?;
    audit::append(conn, audit_entry).await?;
    Ok(())
}

#[async_trait::async_trait]
impl ScheduleStore for crate::SqliteStore {
    async fn scheduled_mail(&self, id: &MessageId) -> Result<Option<ScheduledMail>> {
        let mut tx = self.reading().await?;
        let row: std::result::Result<Option<(String, String, Option<i64>, Option<i64>)>, _> = sqlx::query_as(
            "SELECT owner_id, COALESCE(schedule_state, status), send_at, schedule_job FROM messages WHERE id = ?",
        )
        .bind(id.as_str().to_owned())
        .fetch_optional(&mut *tx)
        .await;
        let row = crate::done(tx, row.map_err(map_err)).await?;
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
        self.write_native(move |c| at_once(release(c, r, audit))).await
    }

    async fn cancel_scheduled(
        &self,
        owner: &IdentityId,
        id: &MessageId,
        delivery: Vec<Delivery>,
        at: Timestamp,
        audit: AuditEntry,
    ) -> Result<()> {
        let (owner, id) = (owner.clone(), id.clone());
        self.write_native(move |c| at_once(cancel(c, owner, id, delivery, at, audit)))
            .await
    }

    async fn reschedule(
        &self,
        owner: &IdentityId,
        id: &MessageId,
        send_at: Timestamp,
        job: NewJob,
        audit: AuditEntry,
    ) -> Result<()> {
        let (owner, id) = (owner.clone(), id.clone());
        self.write_native(move |c| at_once(reschedule(c, owner, id, send_at, job, audit)))
            .await
    }
}
