//! The job runner: claims due jobs of the kinds it knows from the jobs table
//! ([`crate::jobs`]), runs each through its handler, and completes or fails it (with a retry
//! time, or for good).
//!
//! It is generic: a handler is a [`JobHandler`] for one job kind, and [`JobRunner::new`] holds
//! the ones Loft has ([`crate::schedule::RELEASE_JOB`], [`crate::webhooks::DELIVER_JOB`] and
//! [`crate::notices::NOTICE_JOB`];
//! the SMTP delivery worker adds its own). Jobs of kinds it does not know stay queued for whoever does. Every node
//! may run one: claims take a lease and never hand one job to two runners, and a handler whose
//! work must happen once guards it in its own transaction as well (the release of a scheduled
//! mail is conditional on the mail still waiting for that job), so a job taken over after a
//! lease expired cannot act twice. `loft serve` runs it ([`JobRunner::run_until`]): it looks
//! about once a second, at once when this process queued a job ([`Loft::job_ticks`]), and stops
//! when told to.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::jobs::{Job, Retry};
use crate::service::Loft;
use crate::{Error, Result};

/// How often a runner deletes expired console sessions
/// ([`Loft::purge_expired_console_sessions`]): housekeeping, not a job of the table, since
/// every node may do it and doing it twice is harmless.
pub const PURGE_EVERY_SECS: i64 = 600;

/// How a job's run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// Try again in `after_secs` seconds (if attempts are left).
    Retry { after_secs: i64, reason: String },
    /// Give up: the job fails for good.
    Permanent(String),
}

impl From<Error> for JobError {
    /// An error from the use cases or the store: the database being away is worth a retry soon,
    /// anything else later.
    fn from(e: Error) -> Self {
        let after_secs = match &e {
            Error::Unavailable(_) => 5,
            Error::TooManyRequests { retry_after_secs, .. } => i64::try_from(*retry_after_secs).unwrap_or(60),
            _ => 60,
        };
        JobError::Retry {
            after_secs,
            reason: e.to_string(),
        }
    }
}

/// Runs the jobs of one kind.
#[async_trait]
pub trait JobHandler: Send + Sync {
    fn kind(&self) -> &'static str;
    async fn run(&self, loft: &Loft, job: &Job) -> std::result::Result<(), JobError>;
}

/// Releases scheduled mail ([`crate::schedule`]).
struct ReleaseScheduled;

#[async_trait]
impl JobHandler for ReleaseScheduled {
    fn kind(&self) -> &'static str {
        crate::schedule::RELEASE_JOB
    }
    async fn run(&self, loft: &Loft, job: &Job) -> std::result::Result<(), JobError> {
        loft.release_scheduled(job).await
    }
}

/// Delivers webhooks ([`crate::webhooks`]).
struct DeliverWebhooks;

#[async_trait]
impl JobHandler for DeliverWebhooks {
    fn kind(&self) -> &'static str {
        crate::webhooks::DELIVER_JOB
    }
    async fn run(&self, loft: &Loft, job: &Job) -> std::result::Result<(), JobError> {
        loft.deliver_webhook(job).await
    }
}

/// Writes held-mail notices ([`crate::notices`]).
struct HeldMailNotices;

#[async_trait]
impl JobHandler for HeldMailNotices {
    fn kind(&self) -> &'static str {
        crate::notices::NOTICE_JOB
    }
    async fn run(&self, loft: &Loft, job: &Job) -> std::result::Result<(), JobError> {
        loft.run_notice_job(job).await
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    pub completed: usize,
    pub retried: usize,
    pub failed: usize,
}

/// Claims and runs due jobs; see the module docs.
pub struct JobRunner {
    loft: Arc<Loft>,
    handlers: Vec<Box<dyn JobHandler>>,
    worker: String,
    /// How long a claim is leased for: a runner that dies gives its jobs back after this.
    lease_secs: i64,
    /// Jobs claimed at once.
    batch: u32,
    /// When this runner last purged expired console sessions (by the Loft clock).
    last_purge: std::sync::Mutex<Option<crate::time::Timestamp>>,
}

impl JobRunner {
    /// A runner named `worker` (unique per process: it owns the leases it takes) with Loft's
    /// handlers.
    pub fn new(loft: Arc<Loft>, worker: impl Into<String>) -> Self {
        Self {
            loft,
            handlers: vec![
                Box::new(ReleaseScheduled),
                Box::new(DeliverWebhooks),
                Box::new(HeldMailNotices),
            ],
            worker: worker.into(),
            lease_secs: 60,
            batch: 20,
            last_purge: std::sync::Mutex::new(None),
        }
    }

    /// Adds a handler (for a kind no other handler has).
    #[must_use]
    pub fn with_handler(mut self, handler: Box<dyn JobHandler>) -> Self {
        self.handlers.push(handler);
        self
    }

    /// Runs every job that is due now, batch after batch, until none is left.
    pub async fn run_due(&self) -> Result<RunReport> {
        let kinds: Vec<&str> = self.handlers.iter().map(|h| h.kind()).collect();
        if kinds.contains(&crate::webhooks::DELIVER_JOB) {
            self.loft.queue_webhook_jobs().await?;
        }
        let mut report = RunReport::default();
        loop {
            let now = self.loft.now();
            let jobs = self
                .loft
                .store()
                .claim_jobs(&kinds, &self.worker, now, now.plus_secs(self.lease_secs), self.batch)
                .await?;
            if jobs.is_empty() {
                self.housekeeping().await?;
                return Ok(report);
            }
            for job in jobs {
                let Some(handler) = self.handlers.iter().find(|h| h.kind() == job.kind) else {
                    continue;
                };
                let outcome = handler.run(&self.loft, &job).await;
                let store = self.loft.store();
                let now = self.loft.now();
                match outcome {
                    Ok(()) => {
                        store.complete_job(job.id, &self.worker, now).await?;
                        report.completed += 1;
                    }
                    Err(JobError::Retry { after_secs, reason }) => {
                        let retry = Retry::At(now.plus_secs(after_secs.max(1)));
                        store.fail_job(job.id, &self.worker, &reason, retry, now).await?;
                        report.retried += 1;
                    }
                    Err(JobError::Permanent(reason)) => {
                        store.fail_job(job.id, &self.worker, &reason, Retry::Never, now).await?;
                        report.failed += 1;
                    }
                }
            }
        }
    }

    /// Periodic upkeep that is not a job of the table: expired console sessions deleted at
    /// most every [`PURGE_EVERY_SECS`] (on the first pass, then on the first pass after that).
    async fn housekeeping(&self) -> Result<()> {
        let now = self.loft.now();
        let due = {
            let last = self
                .last_purge
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            last.is_none_or(|t| now.as_micros() >= t.plus_secs(PURGE_EVERY_SECS).as_micros())
        };
        if due {
            self.loft.purge_expired_console_sessions().await?;
            *self
                .last_purge
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(now);
        }
        Ok(())
    }

    /// Runs due jobs about every `poll`, and at once when this process queues one, until `stop`
    /// turns true; `on_error` hears of a pass that failed (the database away), and the next
    /// pass tries again.
    pub async fn run_until(
        &self,
        mut stop: watch::Receiver<bool>,
        poll: Duration,
        on_error: impl Fn(&Error) + Send + Sync,
    ) {
        let mut ticks = self.loft.job_ticks();
        // Events becoming visible may give a webhook endpoint something to deliver.
        let mut events = self.loft.event_ticks();
        loop {
            if *stop.borrow() {
                return;
            }
            if let Err(e) = self.run_due().await {
                on_error(&e);
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = ticks.changed() => {}
                _ = events.changed() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }
}
