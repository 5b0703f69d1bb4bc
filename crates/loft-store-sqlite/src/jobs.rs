//! The jobs table (`loft_core::jobs`). Claims, completions and failures go through the single
//! writer, so two claimers in this process are serialised by it; across processes SQLite's
//! write lock does the same.

use async_trait::async_trait;
use loft_core::ids::IdentityId;
use loft_core::jobs::{Job, JobStatus, JobStore, NewJob, Retry};
use loft_core::time::Timestamp;
use loft_core::{Error, Result};

use crate::SqliteStore;
use crate::db::{Db, Select, args, at_once};
use crate::error::map_err;
use crate::rows::to_json;

const COLUMNS: &str = "id, kind, payload, owner_id, status, attempts, max_attempts, run_at, lease_owner, lease_until, \
                       last_error, created_at, finished_at";

crate::rows::sql_row! {
struct JobRow {
    id: i64,
    kind: String,
    payload: String,
    owner_id: Option<String>,
    status: String,
    attempts: i64,
    max_attempts: i64,
    run_at: i64,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    finished_at: Option<i64>,
}}

impl JobRow {
    fn into_job(self) -> Result<Job> {
        Ok(Job {
            status: JobStatus::parse_stored(&self.status, self.id)?,
            id: self.id,
            kind: self.kind,
            payload: self.payload,
            owner: self.owner_id.map(IdentityId::from_trusted),
            attempts: self.attempts as u32,
            max_attempts: self.max_attempts as u32,
            run_at: Timestamp::from_micros(self.run_at),
            lease_owner: self.lease_owner,
            lease_until: self.lease_until.map(Timestamp::from_micros),
            last_error: self.last_error,
            created_at: Timestamp::from_micros(self.created_at),
            finished_at: self.finished_at.map(Timestamp::from_micros),
        })
    }
}

/// Queues `job` on this connection (inside the caller's transaction, e.g. a send's).
pub(crate) async fn insert(conn: &mut impl Db, job: &NewJob) -> Result<i64> {
    Ok(conn
        .exec(
            "INSERT INTO jobs (kind, payload, owner_id, status, attempts, max_attempts, run_at, created_at)
         VALUES (?, ?, ?, 'queued', 0, ?, ?, ?)",
            &args![
                job.kind.clone(),
                job.payload.clone(),
                job.owner.as_ref().map(|o| o.as_str().to_owned()),
                i64::from(job.max_attempts),
                job.run_at.as_micros(),
                job.run_at.as_micros()
            ],
        )
        .await?
        .last_id)
}

/// The jobs of the kinds in `?1` (a JSON array) that are due at `?2`: queued and due, or
/// running with an expired lease.
macro_rules! due_jobs {
    () => {
        "FROM jobs WHERE kind IN (SELECT value FROM json_each(?1)) \
           AND ((status = 'queued' AND run_at <= ?2) OR (status = 'running' AND lease_until < ?2))"
    };
}

/// Claims up to `limit` due jobs of the kinds `?1` at `?2` for worker `?3` until `?4`. The
/// page size is written into the SQL: SQLite plans with a bound `LIMIT` and would then
/// prepare the statement again at every run (one statement per page size the runner uses).
pub(crate) fn claim_sql(limit: u32) -> String {
    format!(
        "UPDATE jobs SET status = 'running', lease_owner = ?3, lease_until = ?4, attempts = attempts + 1
         WHERE id IN (SELECT id {} ORDER BY run_at, id LIMIT {limit})
         RETURNING {COLUMNS}",
        due_jobs!()
    )
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue_job(&self, job: NewJob) -> Result<i64> {
        if job.max_attempts == 0 {
            return Err(Error::internal("a job needs at least one attempt"));
        }
        self.write_native(move |c| at_once(insert(c, &job))).await
    }

    async fn claim_jobs(
        &self,
        kinds: &[&str],
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Job>> {
        let kinds = to_json(&kinds, "kinds")?;
        // Most passes of the runner find nothing due: a look on a read connection first spares
        // the writer a transaction then. The claim below decides; a job that becomes due after
        // the look is found by the next pass, which its enqueueing or its time triggers.
        let look = kinds.clone();
        let any_due = self
            .hot(crate::hot::Cost::Short, move |c| {
                c.prepare_cached(concat!("SELECT 1 ", due_jobs!(), " LIMIT 1"))
                    .and_then(|mut st| st.exists(rusqlite::params![look, now.as_micros()]))
                    .map_err(crate::error::map_rusqlite)
            })
            .await?;
        if !any_due {
            return Ok(Vec::new());
        }
        let worker = worker.to_owned();
        let claim = Select {
            sql: claim_sql(limit),
            args: args![kinds, now.as_micros(), worker, lease_until.as_micros()].to_vec(),
        };
        let rows: Vec<JobRow> = self.write_native(move |c| claim.rows(c)).await?;
        let mut jobs = rows.into_iter().map(JobRow::into_job).collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|j| (j.run_at, j.id));
        Ok(jobs)
    }

    async fn complete_job(&self, id: i64, worker: &str, now: Timestamp) -> Result<bool> {
        let worker = worker.to_owned();
        self.write_native(move |c| {
            at_once(c.exec(
                "UPDATE jobs SET status = 'done', finished_at = ?, lease_owner = NULL, lease_until = NULL
                 WHERE id = ? AND status = 'running' AND lease_owner = ?",
                &args![now.as_micros(), id, worker],
            ))
            .map(|done| done.rows == 1)
        })
        .await
    }

    async fn fail_job(&self, id: i64, worker: &str, error: &str, retry: Retry, now: Timestamp) -> Result<bool> {
        let (worker, error) = (worker.to_owned(), error.to_owned());
        let retry_at = match retry {
            Retry::At(t) => Some(t.as_micros()),
            Retry::Never => None,
        };
        self.write_native(move |c| {
            at_once(c.exec(
                "UPDATE jobs SET
                   status = CASE WHEN ?1 IS NOT NULL AND attempts < max_attempts THEN 'queued' ELSE 'failed' END,
                   finished_at = CASE WHEN ?1 IS NOT NULL AND attempts < max_attempts THEN NULL ELSE ?2 END,
                   run_at = CASE WHEN ?1 IS NOT NULL AND attempts < max_attempts THEN ?1 ELSE run_at END,
                   last_error = ?3, lease_owner = NULL, lease_until = NULL
                 WHERE id = ?4 AND status = 'running' AND lease_owner = ?5",
                &args![retry_at, now.as_micros(), error, id, worker],
            ))
            .map(|done| done.rows == 1)
        })
        .await
    }

    async fn get_job(&self, id: i64) -> Result<Option<Job>> {
        let mut tx = self.reading().await?;
        let row: Option<JobRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM jobs WHERE id = ?")))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        row.map(JobRow::into_job).transpose()
    }
}
