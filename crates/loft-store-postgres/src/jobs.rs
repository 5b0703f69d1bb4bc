//! The jobs table (`loft_core::jobs`). Claims take due rows with `FOR UPDATE SKIP LOCKED`, so
//! concurrent workers on any number of nodes skip each other's rows instead of waiting; no job
//! statement touches the audit chain head.

use async_trait::async_trait;
use loft_core::ids::IdentityId;
use loft_core::jobs::{Job, JobStatus, JobStore, NewJob, Retry};
use loft_core::time::Timestamp;
use loft_core::{Error, Result};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use crate::rows::col;
use crate::{PostgresStore, db_err};

const COLUMNS: &str = "id, kind, payload, owner_id, status, attempts, max_attempts, run_at, lease_owner, lease_until, \
                       last_error, created_at, finished_at";

fn job(row: &PgRow) -> Result<Job> {
    let id: i64 = col(row, "id")?;
    let status: String = col(row, "status")?;
    let attempts: i32 = col(row, "attempts")?;
    let max_attempts: i32 = col(row, "max_attempts")?;
    Ok(Job {
        id,
        kind: col(row, "kind")?,
        payload: col(row, "payload")?,
        owner: col::<Option<String>>(row, "owner_id")?.map(IdentityId::from_trusted),
        status: JobStatus::parse_stored(&status, id)?,
        attempts: attempts as u32,
        max_attempts: max_attempts as u32,
        run_at: Timestamp::from_micros(col(row, "run_at")?),
        lease_owner: col(row, "lease_owner")?,
        lease_until: col::<Option<i64>>(row, "lease_until")?.map(Timestamp::from_micros),
        last_error: col(row, "last_error")?,
        created_at: Timestamp::from_micros(col(row, "created_at")?),
        finished_at: col::<Option<i64>>(row, "finished_at")?.map(Timestamp::from_micros),
    })
}

/// Queues `job` on this connection (inside the caller's transaction, e.g. a send's).
pub(crate) async fn insert(conn: &mut PgConnection, job: &NewJob) -> Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO jobs (kind, payload, owner_id, status, attempts, max_attempts, run_at, created_at) \
         VALUES ($1, $2, $3, 'queued', 0, $4, $5, $5) RETURNING id",
    )
    .bind(&job.kind)
    .bind(&job.payload)
    .bind(job.owner.as_ref().map(IdentityId::as_str))
    .bind(i32::try_from(job.max_attempts).unwrap_or(i32::MAX))
    .bind(job.run_at.as_micros())
    .fetch_one(conn)
    .await
    .map_err(db_err)
}

#[async_trait]
impl JobStore for PostgresStore {
    async fn enqueue_job(&self, new: NewJob) -> Result<i64> {
        if new.max_attempts == 0 {
            return Err(Error::internal("a job needs at least one attempt"));
        }
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        insert(&mut conn, &new).await
    }

    async fn claim_jobs(
        &self,
        kinds: &[&str],
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Job>> {
        let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
             WHERE id IN ( \
                 SELECT id FROM jobs \
                 WHERE kind = ANY($3) \
                   AND ((status = 'queued' AND run_at <= $4) OR (status = 'running' AND lease_until < $4)) \
                 ORDER BY run_at, id LIMIT $5 \
                 FOR UPDATE SKIP LOCKED) \
             RETURNING {COLUMNS}"
        )))
        .bind(worker)
        .bind(lease_until.as_micros())
        .bind(&kinds)
        .bind(now.as_micros())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut jobs = rows.iter().map(job).collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|j| (j.run_at, j.id));
        Ok(jobs)
    }

    async fn complete_job(&self, id: i64, worker: &str, now: Timestamp) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE jobs SET status = 'done', finished_at = $1, lease_owner = NULL, lease_until = NULL \
             WHERE id = $2 AND status = 'running' AND lease_owner = $3",
        )
        .bind(now.as_micros())
        .bind(id)
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn fail_job(&self, id: i64, worker: &str, error: &str, retry: Retry, now: Timestamp) -> Result<bool> {
        let retry_at = match retry {
            Retry::At(t) => Some(t.as_micros()),
            Retry::Never => None,
        };
        let n = sqlx::query(
            "UPDATE jobs SET \
               status = CASE WHEN $1::BIGINT IS NOT NULL AND attempts < max_attempts THEN 'queued' ELSE 'failed' END, \
               finished_at = CASE WHEN $1::BIGINT IS NOT NULL AND attempts < max_attempts THEN NULL ELSE $2 END, \
               run_at = CASE WHEN $1::BIGINT IS NOT NULL AND attempts < max_attempts THEN $1::BIGINT ELSE run_at END, \
               last_error = $3, lease_owner = NULL, lease_until = NULL \
             WHERE id = $4 AND status = 'running' AND lease_owner = $5",
        )
        .bind(retry_at)
        .bind(now.as_micros())
        .bind(error)
        .bind(id)
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn get_job(&self, id: i64) -> Result<Option<Job>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM jobs WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(job).transpose()
    }
}
