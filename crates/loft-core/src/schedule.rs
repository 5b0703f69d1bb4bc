//! Scheduled send: mail stored now and released to its recipients at its `send_at`.
//!
//! A send, reply or draft send with `send_at` in the future writes the sender's copy with
//! status `scheduled` (nothing else: no recipient copy, no delivery job) and one release job
//! ([`RELEASE_JOB`], run at `send_at`) in the same transaction, and records the job's id on the
//! copy. A held mail with `send_at` is approved first: the approval then schedules it instead of
//! releasing it, if its time is still ahead. When the job runs, the release writes the
//! recipients' copies and delivery jobs in one transaction that moves the copy out of
//! `scheduled` only if it is still scheduled, due, and waiting for *this* job (the conditional
//! update is the exactly-once guard, as for approvals): a canceled, rescheduled or already
//! released mail is never released (again), on any number of nodes. A cancel or reschedule
//! finishes the job it replaces in its own transaction.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::audit::AuditEntry;
use crate::ids::{IdentityId, MessageId};
use crate::jobs::NewJob;
use crate::mail::{Delivery, MessageStatus};
use crate::oversight::Release;
use crate::time::Timestamp;

/// The job kind that releases a scheduled mail; its payload is [`ReleaseJob`].
pub const RELEASE_JOB: &str = "mail.release_scheduled";

/// A release that cannot happen yet (the instance is frozen, the sender paused, a mailbox
/// full) is retried, not dropped: at one retry a minute or less this is years of attempts.
pub const RELEASE_ATTEMPTS: u32 = 1_000_000;

/// The furthest ahead a mail may be scheduled.
pub const MAX_AHEAD_SECS: i64 = 365 * 24 * 3600;

/// How far in the past a `send_at` may be (clocks differ a little) and still be taken as
/// "now" rather than refused.
pub const PAST_GRACE_SECS: i64 = 30;

/// The payload of a [`RELEASE_JOB`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseJob {
    /// The sender's copy.
    pub message: MessageId,
    pub owner: IdentityId,
}

impl ReleaseJob {
    /// The job that releases `message` of `owner` at `at`.
    pub fn job(owner: &IdentityId, message: &MessageId, at: Timestamp) -> NewJob {
        NewJob {
            kind: RELEASE_JOB.into(),
            payload: serde_json::to_string(&ReleaseJob {
                message: message.clone(),
                owner: owner.clone(),
            })
            .unwrap_or_default(),
            owner: Some(owner.clone()),
            run_at: at,
            max_attempts: RELEASE_ATTEMPTS,
        }
    }
}

/// What an approval writes for mail whose time is still ahead (see
/// [`crate::oversight::StoredDecision::schedule`]).
#[derive(Debug, Clone)]
pub struct Schedule {
    pub job: NewJob,
    pub delivery: Vec<Delivery>,
}

/// Where a sender copy stands as far as scheduling goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledMail {
    pub owner: IdentityId,
    pub message: MessageId,
    /// The effective status (`scheduled`, `canceled`, `sent`, `pending_approval`, ...).
    pub status: MessageStatus,
    pub send_at: Option<Timestamp>,
    /// The job that will release it, while it is scheduled.
    pub job: Option<i64>,
}

/// A release as the store writes it.
#[derive(Debug, Clone)]
pub struct ScheduledRelease {
    pub owner: IdentityId,
    pub message: MessageId,
    /// The job releasing it: only the copy's current job may.
    pub job: i64,
    pub at: Timestamp,
    pub release: Release,
}

/// Scheduled mail (conformance: `scheduled`). The scheduled send itself is written by
/// [`crate::store::MailStore::send_mail`] with [`crate::mail::NewMail::schedule`].
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// The scheduling state of a sender copy, whoever owns it (`None`: no such message).
    async fn scheduled_mail(&self, id: &MessageId) -> Result<Option<ScheduledMail>>;

    /// Releases a scheduled mail, exactly once: if `release.message` is still `scheduled`,
    /// waiting for `release.job` and due at `release.at`, writes the recipient copies (sharing
    /// the sender copy's content), the delivery report and jobs, the copy's status `sent`, and
    /// the audit row, in one transaction, and returns `true`; otherwise writes nothing and
    /// returns `false`.
    async fn release_scheduled(&self, release: ScheduledRelease, audit: AuditEntry) -> Result<bool>;

    /// Cancels `owner`'s scheduled mail `id`: status `canceled`, this delivery report, its
    /// release job finished, and the audit row. `NotFound` when the owner has no such message,
    /// `Conflict("not_scheduled")` (nothing written) when it is not scheduled (any more).
    async fn cancel_scheduled(
        &self,
        owner: &IdentityId,
        id: &MessageId,
        delivery: Vec<Delivery>,
        at: Timestamp,
        audit: AuditEntry,
    ) -> Result<()>;

    /// Moves `owner`'s scheduled mail `id` to `job.run_at`: records it as `send_at`, finishes
    /// the old release job, queues `job` and records it on the copy, with the audit row.
    /// `NotFound` / `Conflict("not_scheduled")` as for [`Self::cancel_scheduled`].
    async fn reschedule(
        &self,
        owner: &IdentityId,
        id: &MessageId,
        send_at: Timestamp,
        job: NewJob,
        audit: AuditEntry,
    ) -> Result<()>;
}
