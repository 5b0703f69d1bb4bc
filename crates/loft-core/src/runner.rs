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
//!
//! It runs up to `concurrency` jobs at once (`loft serve --job-concurrency`, default
//! [`DEFAULT_CONCURRENCY`]), each in its own task, so a slow webhook receiver or a slow MX
//! holds one place, not the queue. A claim takes only as many jobs as there are free places
//! (a claimed job never waits for a place while its lease runs), and a place freed is filled
//! at once. Running jobs of one runner side by side is no new hazard: two runners (two
//! processes on one PostgreSQL) already did, and the claim hands each job to one of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinSet;

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

/// How one job ended, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Completed,
    Retried,
    Failed,
}

impl RunReport {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Completed => self.completed += 1,
            Outcome::Retried => self.retried += 1,
            Outcome::Failed => self.failed += 1,
        }
    }
}

/// The jobs this runner has in hand: one task each, at most `concurrency` of them.
#[derive(Default)]
struct InHand {
    tasks: JoinSet<Result<Outcome>>,
    /// Which job each task runs, to give it back if the task is abandoned or panics.
    jobs: HashMap<tokio::task::Id, i64>,
}

impl InHand {
    fn len(&self) -> usize {
        self.tasks.len()
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// The default number of jobs one runner runs at once (`loft serve --job-concurrency`).
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Claims and runs due jobs; see the module docs.
pub struct JobRunner {
    loft: Arc<Loft>,
    handlers: Vec<Arc<dyn JobHandler>>,
    worker: Arc<str>,
    /// How long a claim is leased for: a runner that dies gives its jobs back after this.
    lease_secs: i64,
    /// Jobs run at once; a claim never takes more than the free places, so no claimed job
    /// waits for a place while its lease runs.
    concurrency: usize,
    /// On shutdown, how long running jobs may take to finish before they are abandoned.
    shutdown_grace: Duration,
    /// When this runner last purged expired console sessions (by the Loft clock).
    last_purge: std::sync::Mutex<Option<crate::time::Timestamp>>,
}

impl JobRunner {
    /// A runner named `worker` (unique per process: it owns the leases it takes) with Loft's
    /// handlers, running up to [`DEFAULT_CONCURRENCY`] jobs at once.
    pub fn new(loft: Arc<Loft>, worker: impl Into<String>) -> Self {
        Self {
            loft,
            handlers: vec![
                Arc::new(ReleaseScheduled),
                Arc::new(DeliverWebhooks),
                Arc::new(HeldMailNotices),
            ],
            worker: Arc::from(worker.into()),
            lease_secs: 60,
            concurrency: DEFAULT_CONCURRENCY,
            shutdown_grace: Duration::from_secs(20),
            last_purge: std::sync::Mutex::new(None),
        }
    }

    /// Adds a handler (for a kind no other handler has).
    #[must_use]
    pub fn with_handler(mut self, handler: Box<dyn JobHandler>) -> Self {
        self.handlers.push(Arc::from(handler));
        self
    }

    /// Runs up to `n` jobs at once (at least 1).
    #[must_use]
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// On shutdown ([`JobRunner::run_until`]), waits this long for running jobs to finish
    /// before abandoning the rest.
    #[must_use]
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.handlers.iter().map(|h| h.kind()).collect()
    }

    /// Claims as many due jobs as there are free places and starts each in its own task;
    /// the number claimed.
    async fn fill(&self, in_hand: &mut InHand) -> Result<usize> {
        let free = self.concurrency.saturating_sub(in_hand.len());
        if free == 0 {
            return Ok(0);
        }
        let kinds = self.kinds();
        let now = self.loft.now();
        let jobs = self
            .loft
            .store()
            .claim_jobs(
                &kinds,
                &self.worker,
                now,
                now.plus_secs(self.lease_secs),
                u32::try_from(free).unwrap_or(u32::MAX),
            )
            .await?;
        let claimed = jobs.len();
        for job in jobs {
            let Some(handler) = self.handlers.iter().find(|h| h.kind() == job.kind).cloned() else {
                // Not claimable by kind, so not reached; its lease would give it back.
                continue;
            };
            let loft = self.loft.clone();
            let worker = self.worker.clone();
            let id = job.id;
            let task = in_hand
                .tasks
                .spawn(async move { run_one(&loft, handler.as_ref(), &worker, &job).await });
            in_hand.jobs.insert(task.id(), id);
        }
        Ok(claimed)
    }

    /// Takes the result of a finished task: its outcome, or, for a task that panicked, the job
    /// given back for a retry soon (it was not recorded), counted as retried.
    async fn settle(
        &self,
        in_hand: &mut InHand,
        joined: std::result::Result<(tokio::task::Id, Result<Outcome>), tokio::task::JoinError>,
    ) -> Result<Outcome> {
        match joined {
            Ok((id, outcome)) => {
                in_hand.jobs.remove(&id);
                outcome
            }
            Err(e) => {
                let job = in_hand.jobs.remove(&e.id());
                if let Some(job) = job {
                    let now = self.loft.now();
                    // A panic is retried later (it may well panic again); a job abandoned at
                    // shutdown is given back at once.
                    let (reason, retry) = if e.is_panic() {
                        ("the job's handler panicked", Retry::At(now.plus_secs(60)))
                    } else {
                        ("abandoned: the server shut down while it ran", Retry::At(now))
                    };
                    self.loft
                        .store()
                        .fail_job(job, &self.worker, reason, retry, now)
                        .await?;
                }
                Ok(Outcome::Retried)
            }
        }
    }

    /// Waits for every job in hand to be recorded; the first error, after all are settled.
    async fn drain(&self, in_hand: &mut InHand, report: &mut RunReport) -> Result<()> {
        let mut first_error = None;
        while let Some(joined) = in_hand.tasks.join_next_with_id().await {
            match self.settle(in_hand, joined).await {
                Ok(o) => report.count(o),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Runs every job that is due now, up to the concurrency at once (a place freed is
    /// filled at once), until none is left and none is running.
    pub async fn run_due(&self) -> Result<RunReport> {
        if self.kinds().contains(&crate::webhooks::DELIVER_JOB) {
            self.loft.queue_webhook_jobs().await?;
        }
        let mut report = RunReport::default();
        let mut in_hand = InHand::default();
        loop {
            if let Err(e) = self.fill(&mut in_hand).await {
                self.drain(&mut in_hand, &mut report).await.ok();
                return Err(e);
            }
            let Some(joined) = in_hand.tasks.join_next_with_id().await else {
                self.housekeeping().await?;
                return Ok(report);
            };
            match self.settle(&mut in_hand, joined).await {
                Ok(o) => report.count(o),
                Err(e) => {
                    self.drain(&mut in_hand, &mut report).await.ok();
                    return Err(e);
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

    /// Runs due jobs, up to the concurrency at once, until `stop` turns true: it claims when
    /// a place frees, about every `poll`, and at once when this process queues a job or an
    /// event becomes visible. `on_error` hears of a claim or a record that failed (the
    /// database away); the next pass tries again. On stop it claims nothing more and waits
    /// for the jobs in hand up to the shutdown grace ([`JobRunner::with_shutdown_grace`]);
    /// any still running then are abandoned and given back to the queue at once (their
    /// attempt counted), so another node or the next start runs them.
    pub async fn run_until(
        &self,
        mut stop: watch::Receiver<bool>,
        poll: Duration,
        on_error: impl Fn(&Error) + Send + Sync,
    ) {
        let mut ticks = self.loft.job_ticks();
        // Events becoming visible may give a webhook endpoint something to deliver.
        let mut events = self.loft.event_ticks();
        let webhooks = self.kinds().contains(&crate::webhooks::DELIVER_JOB);
        let mut in_hand = InHand::default();
        // Whether to look for due work before waiting: after a tick, a poll, or a place freed.
        let mut look = true;
        loop {
            if *stop.borrow() {
                break;
            }
            if look {
                if webhooks && let Err(e) = self.loft.queue_webhook_jobs().await {
                    on_error(&e);
                }
                // Fill the free places (a claim takes at most that many).
                if let Err(e) = self.fill(&mut in_hand).await {
                    on_error(&e);
                }
                if let Err(e) = self.housekeeping().await {
                    on_error(&e);
                }
            }
            tokio::select! {
                _ = stop.changed() => { look = false; }
                _ = ticks.changed() => { look = true; }
                _ = events.changed() => { look = true; }
                () = tokio::time::sleep(poll) => { look = true; }
                Some(joined) = in_hand.tasks.join_next_with_id(), if !in_hand.is_empty() => {
                    if let Err(e) = self.settle(&mut in_hand, joined).await {
                        on_error(&e);
                    }
                    look = true;
                }
            }
        }
        // Shutdown: let the jobs in hand finish, for a while.
        let deadline = tokio::time::Instant::now() + self.shutdown_grace;
        while !in_hand.is_empty() {
            match tokio::time::timeout_at(deadline, in_hand.tasks.join_next_with_id()).await {
                Ok(Some(joined)) => {
                    if let Err(e) = self.settle(&mut in_hand, joined).await {
                        on_error(&e);
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    // Abandon the rest: aborted, then given back (`settle` on a cancelled task).
                    in_hand.tasks.abort_all();
                    while let Some(joined) = in_hand.tasks.join_next_with_id().await {
                        if let Err(e) = self.settle(&mut in_hand, joined).await {
                            on_error(&e);
                        }
                    }
                }
            }
        }
    }
}

/// Runs one claimed job through its handler and records the outcome (with the lease this
/// runner holds: a job taken over after its lease expired is not recorded twice).
async fn run_one(loft: &Loft, handler: &dyn JobHandler, worker: &str, job: &Job) -> Result<Outcome> {
    let outcome = handler.run(loft, job).await;
    let store = loft.store();
    let now = loft.now();
    match outcome {
        Ok(()) => {
            store.complete_job(job.id, worker, now).await?;
            Ok(Outcome::Completed)
        }
        Err(JobError::Retry { after_secs, reason }) => {
            let retry = Retry::At(now.plus_secs(after_secs.max(1)));
            store.fail_job(job.id, worker, &reason, retry, now).await?;
            Ok(Outcome::Retried)
        }
        Err(JobError::Permanent(reason)) => {
            store.fail_job(job.id, worker, &reason, Retry::Never, now).await?;
            Ok(Outcome::Failed)
        }
    }
}
