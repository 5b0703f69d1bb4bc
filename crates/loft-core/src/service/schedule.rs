//! Scheduled send (see [`crate::schedule`]): checking `send_at`, canceling and rescheduling a
//! scheduled mail, and releasing it when its job runs.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::messages::per_mailbox;
use super::oversight::plan_copies;
use super::{Actor, Loft, Principal};
use crate::address::EmailAddress;
use crate::audit::AuditEntry;
use crate::identity::Identity;
use crate::ids::{IdentityId, MessageId};
use crate::jobs::Job;
use crate::keys::Scope;
use crate::mail::{self, Delivery, DeliveryStatus, Message, MessageStatus};
use crate::oversight::Release;
use crate::runner::JobError;
use crate::schedule::{MAX_AHEAD_SECS, PAST_GRACE_SECS, ReleaseJob, ScheduledMail, ScheduledRelease};
use crate::time::Timestamp;
use crate::{Error, Result};

/// `POST /v0/messages/{id}/reschedule`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RescheduleRequest {
    /// The new time (RFC 3339), at most a year ahead; now (or a few seconds ago) sends at once.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub send_at: String,
}

impl Loft {
    /// A client's `send_at`: an RFC 3339 time no more than a year ahead and no more than a few
    /// seconds in the past (clocks differ). The caller sends at once when it is not ahead.
    pub(super) fn check_send_at(&self, send_at: Option<&str>) -> Result<Option<Timestamp>> {
        let Some(s) = send_at else { return Ok(None) };
        let t = Timestamp::parse_rfc3339(s.trim()).ok_or_else(|| {
            Error::invalid(
                "invalid_send_at",
                format!(
                    "`send_at` is not an RFC 3339 time: `{}`",
                    s.chars().take(80).collect::<String>()
                ),
            )
            .with_hint("write it like 2026-12-24T09:00:00Z (or with an offset, +01:00)")
        })?;
        let now = self.clock.now();
        if t < now.plus_secs(-PAST_GRACE_SECS) {
            return Err(Error::invalid(
                "send_at_in_past",
                format!("`send_at` {t} is in the past (it is {now} now)"),
            )
            .with_hint("give a time in the future, or leave `send_at` out to send now"));
        }
        if t > now.plus_secs(MAX_AHEAD_SECS) {
            return Err(
                Error::invalid("send_at_too_far", format!("`send_at` {t} is more than a year ahead"))
                    .with_hint("schedule at most 365 days ahead"),
            );
        }
        Ok(Some(t))
    }

    /// The mailbox a cancel or reschedule acts on: the caller's own (with `mail:send`), or, for
    /// the operator, whoever composed the message.
    async fn composer_of(&self, actor: &Actor, id: &MessageId) -> Result<IdentityId> {
        match &actor.principal {
            Principal::Operator => Ok(self
                .store
                .scheduled_mail(id)
                .await?
                .ok_or_else(|| Error::not_found("message"))?
                .owner),
            Principal::Identity { .. } => Ok(actor.require(Scope::MailSend)?.id.clone()),
        }
    }

    /// The caller's scheduled mail, as its composer sees it.
    async fn scheduled_copy(&self, owner: &IdentityId, id: &MessageId) -> Result<Message> {
        let m = self
            .store
            .get_message(owner, id)
            .await?
            .ok_or_else(|| per_mailbox(Error::not_found("message")))?;
        let m = self.attach_approval(m).await?;
        if m.status == MessageStatus::Scheduled {
            Ok(m)
        } else {
            Err(not_scheduled(&m.id, m.status))
        }
    }

    /// Cancels a scheduled mail before its time: it is never sent (`canceled`). For its composer
    /// (`mail:send`) or the operator.
    pub async fn cancel_scheduled(&self, actor: &Actor, id: &str) -> Result<Message> {
        let id = MessageId::parse(id)?;
        let owner = self.composer_of(actor, &id).await?;
        let m = self.scheduled_copy(&owner, &id).await?;
        let now = self.clock.now();
        let audit = actor.audit(
            now,
            "mail.cancel",
            Some(id.to_string()),
            serde_json::json!({ "composer": owner, "send_at": m.send_at }),
        );
        self.store
            .cancel_scheduled(&owner, &id, canceled(&m.delivery), now, audit)
            .await?;
        self.reload(&owner, &id).await
    }

    /// Moves a scheduled mail to another time. For its composer (`mail:send`) or the operator.
    pub async fn reschedule(&self, actor: &Actor, id: &str, req: RescheduleRequest) -> Result<Message> {
        let id = MessageId::parse(id)?;
        let owner = self.composer_of(actor, &id).await?;
        let send_at = self
            .check_send_at(Some(&req.send_at))?
            .ok_or_else(|| Error::internal("a given send_at was read as none"))?;
        let m = self.scheduled_copy(&owner, &id).await?;
        let now = self.clock.now();
        let run_at = send_at.max(now);
        let audit = actor.audit(
            now,
            "mail.reschedule",
            Some(id.to_string()),
            serde_json::json!({ "composer": owner, "from": m.send_at, "send_at": run_at }),
        );
        self.store
            .reschedule(&owner, &id, run_at, ReleaseJob::job(&owner, &id, run_at), audit)
            .await?;
        self.job_tick.send_modify(|t| *t += 1);
        self.reload(&owner, &id).await
    }

    async fn reload(&self, owner: &IdentityId, id: &MessageId) -> Result<Message> {
        let m = self
            .store
            .get_message(owner, id)
            .await?
            .ok_or_else(|| Error::internal(format!("message {id} is missing after it was changed")))?;
        self.attach_approval(m).await
    }

    /// The release job's work (see [`crate::schedule`]): checks what a send checks at the
    /// moment of release (the freeze, the sender paused or revoked, recipients, quotas), then
    /// releases the mail once. A frozen instance, a paused sender or a full mailbox make the
    /// job retry later; a revoked sender or a recipient gone for good cancel the mail.
    pub async fn release_scheduled(&self, job: &Job) -> std::result::Result<(), JobError> {
        let p: ReleaseJob = serde_json::from_str(&job.payload)
            .map_err(|e| JobError::Permanent(format!("job {} has a payload that is not a release: {e}", job.id)))?;
        let Some(s) = self.store.scheduled_mail(&p.message).await? else {
            return Ok(());
        };
        if s.status != MessageStatus::Scheduled || s.job != Some(job.id) {
            // Canceled, rescheduled (another job releases it) or released already.
            return Ok(());
        }
        let now = self.clock.now();
        if let Some(t) = s.send_at.filter(|t| *t > now) {
            return Err(JobError::Retry {
                after_secs: (t.as_secs() - now.as_secs()).max(1),
                reason: "not due yet".into(),
            });
        }
        if let Some(at) = self.store.outgoing_frozen().await? {
            return Err(JobError::Retry {
                after_secs: 60,
                reason: format!("outgoing mail is frozen (since {at}); the release waits for `loft unfreeze`"),
            });
        }
        let Some(composer) = self.store.get_identity(&s.owner).await?.filter(Identity::is_active) else {
            self.cancel_by_system(&s, "the identity that composed it was revoked")
                .await?;
            return Ok(());
        };
        if composer.paused_at.is_some() {
            return Err(JobError::Retry {
                after_secs: 60,
                reason: "the sender is paused; the release waits for `loft identity resume`".into(),
            });
        }
        let message = self
            .store
            .get_message(&s.owner, &s.message)
            .await?
            .ok_or_else(|| JobError::Permanent(format!("scheduled message {} is missing", s.message)))?;
        let all: Vec<EmailAddress> = message
            .to
            .iter()
            .chain(&message.cc)
            .chain(&message.bcc)
            .cloned()
            .collect();
        let local: HashMap<EmailAddress, IdentityId> = self.store.resolve_addresses(&all).await?.into_iter().collect();
        if let Some(gone) = all
            .iter()
            .find(|a| a.domain() == self.config.domain && !local.contains_key(*a))
        {
            self.cancel_by_system(&s, &format!("no active identity has the address {gone} any more"))
                .await?;
            return Ok(());
        }
        let (recipient_copies, delivery) = plan_copies(self, &all, &local);
        let local_recipients: Vec<(&EmailAddress, &IdentityId)> =
            all.iter().filter_map(|a| local.get(a).map(|id| (a, id))).collect();
        let queued = delivery.iter().filter(|d| d.status == DeliveryStatus::Queued).count() as u64;
        self.check_mail_quotas(&composer, &local_recipients, queued, message.size.max(0) as u64, now)
            .await?;
        // The caps as for a send, at the moment the mail goes out: its new recipients count
        // now (a cap reached makes the job retry when it frees); the mail itself was counted
        // when it was composed.
        self.check_caps_adding(&composer, &all, 0).await?;
        let mut jobs = mail::delivery_jobs(&composer.id, &message.id, &delivery, now);
        let (recipient_copies, held_copies) = self
            .hold_incoming(&message.from, true, recipient_copies, now, None, None)
            .await?;
        let contacts = super::inbound_holds::without_held(
            Self::contacts_of_mail(&composer.id, &composer.address, &all, &local, now),
            &held_copies,
        );
        let audit = AuditEntry::system(
            now,
            "mail.release",
            &s.message,
            serde_json::json!({
                "composer": s.owner, "send_at": s.send_at, "job": job.id,
                "delivered": recipient_copies.len(), "queued": queued,
            }),
        );
        let mut audit = audit;
        // A scheduled mail approved before its time was seen by a reviewer; one that was not
        // held goes out ungated now.
        audit.events = super::events::mail_out(
            &composer.id,
            composer.oversight_mode == crate::oversight::OversightMode::Monitored && message.approval.is_none(),
            &message.id,
            &message.from,
            &message.subject,
            &all,
            &recipient_copies,
        );
        audit.events.extend(super::inbound_holds::held_events(
            &held_copies,
            &message.from,
            &message.subject,
        ));
        self.link_approvals(&mut audit.events);
        jobs.extend(super::notices::notice_jobs(held_copies.iter().map(|h| &h.hold.id), now));
        let woken = super::events::raised_by(&audit);
        let release = ScheduledRelease {
            owner: s.owner.clone(),
            message: s.message.clone(),
            job: job.id,
            at: now,
            release: Release {
                recipient_copies,
                held_copies,
                delivery,
                jobs,
                contacts,
            },
        };
        if self.store.release_scheduled(release, audit).await? {
            self.wake(&woken);
        }
        Ok(())
    }

    /// Cancels a scheduled mail that can never go out, recording why.
    async fn cancel_by_system(&self, s: &ScheduledMail, why: &str) -> Result<()> {
        let now = self.clock.now();
        let Some(m) = self.store.get_message(&s.owner, &s.message).await? else {
            return Ok(());
        };
        let audit = AuditEntry::system(
            now,
            "mail.cancel",
            &s.message,
            serde_json::json!({ "composer": s.owner, "send_at": s.send_at, "reason": why }),
        );
        match self
            .store
            .cancel_scheduled(&s.owner, &s.message, canceled(&m.delivery), now, audit)
            .await
        {
            Ok(()) | Err(Error::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The delivery report of a canceled mail: nobody got it.
fn canceled(delivery: &[Delivery]) -> Vec<Delivery> {
    delivery
        .iter()
        .map(|d| Delivery {
            recipient: d.recipient.clone(),
            status: DeliveryStatus::Scheduled,
            detail: "canceled before its send_at; never sent".into(),
        })
        .collect()
}

/// The delivery report of a mail waiting for `at`.
pub(super) fn scheduled_delivery(delivery: &mut [Delivery], at: Timestamp) {
    for d in delivery {
        d.status = DeliveryStatus::Scheduled;
        d.detail = format!("scheduled to be sent at {at}");
    }
}

pub(super) fn not_scheduled(id: &MessageId, status: MessageStatus) -> Error {
    let hint = match status {
        MessageStatus::Sent => "it was sent already and cannot be called back",
        MessageStatus::PendingApproval => {
            "it waits for a reviewer; once approved it waits for its send_at, and can be canceled then"
        }
        MessageStatus::Received => "only mail you sent can be scheduled",
        _ => "only a scheduled mail can be canceled or rescheduled",
    };
    Error::conflict(
        "not_scheduled",
        format!("message {id} is {}, not scheduled", status.as_str()),
    )
    .with_hint(hint)
}
