//! Background work: one jobs table with leases, shared by everything that runs later or
//! elsewhere (outbound delivery, webhooks, scheduled sends).
//!
//! A worker claims due jobs of the kinds it runs; a claim takes a lease (`lease_until`) and
//! counts an attempt. The worker then completes the job or fails it (with a retry time, or for
//! good once `max_attempts` are spent). A worker that dies leaves its lease to expire, and the
//! job is claimed again. Completing or failing needs the current lease: a worker whose lease
//! expired and was taken over cannot complete the job a second time, so every job completes
//! exactly once. On PostgreSQL claims use `FOR UPDATE SKIP LOCKED`, so concurrent workers on
//! several nodes never wait on each other, and no job state change takes the audit chain's lock.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::ids::IdentityId;
use crate::time::Timestamp;

/// What a job is, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for `run_at`.
    Queued,
    /// Claimed by a worker until `lease_until`.
    Running,
    Done,
    /// Failed for good (attempts spent, or a permanent error).
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    /// A status as stored for job `id`; an unknown one is an error naming the job.
    pub fn parse_stored(s: &str, id: i64) -> Result<Self> {
        match s {
            "queued" => Ok(JobStatus::Queued),
            "running" => Ok(JobStatus::Running),
            "done" => Ok(JobStatus::Done),
            "failed" => Ok(JobStatus::Failed),
            other => Err(crate::Error::internal(format!(
                "job {id} has the unknown status `{other}` (written by a newer version?)"
            ))),
        }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// What to do, e.g. `smtp.deliver`; workers claim by kind.
    pub kind: String,
    /// The job's arguments (JSON text; never a secret).
    pub payload: String,
    /// The identity it acts for, if any.
    pub owner: Option<IdentityId>,
    /// Not before this time.
    pub run_at: Timestamp,
    /// Attempts before the job fails for good (at least 1).
    pub max_attempts: u32,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub owner: Option<IdentityId>,
    pub status: JobStatus,
    /// Claims so far (the current one included while running).
    pub attempts: u32,
    pub max_attempts: u32,
    pub run_at: Timestamp,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Timestamp>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// How a failed attempt ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again at this time, if attempts are left; else the job fails for good.
    At(Timestamp),
    /// A permanent failure: no retry.
    Never,
}

/// The storage of jobs, identical on every backend (conformance module `jobs`).
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a job (status `queued`) and returns its id.
    async fn enqueue_job(&self, job: NewJob) -> Result<i64>;

    /// Claims up to `limit` jobs of these kinds that are due at `now` (queued with `run_at` at
    /// or before `now`, or running with a lease that expired before `now`), oldest `run_at`
    /// first: each becomes `running`, leased to `worker` until `lease_until`, with one more
    /// attempt counted. Concurrent claimers never get the same job.
    async fn claim_jobs(
        &self,
        kinds: &[&str],
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Job>>;

    /// Marks job `id` done, if `worker` still holds its lease; `false` if it does not (the
    /// lease expired and another worker claimed the job, or it was finished already).
    async fn complete_job(&self, id: i64, worker: &str, now: Timestamp) -> Result<bool>;

    /// Records a failed attempt of job `id`, if `worker` still holds its lease: queued again
    /// for `retry` when attempts are left, else `failed` for good. `false` without the lease.
    async fn fail_job(&self, id: i64, worker: &str, error: &str, retry: Retry, now: Timestamp) -> Result<bool>;

    async fn get_job(&self, id: i64) -> Result<Option<Job>>;
}
