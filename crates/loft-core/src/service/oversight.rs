//! Oversight: the gate a send passes (mode and exfiltration guard), and the reviewers' side of
//! held mail: listing approvals, approving (which releases the mail), rejecting, expiring.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Actor, Loft, Page, Principal, cursor, page, page_limit};
use crate::address::EmailAddress;
use crate::error::ErrorDetail;
use crate::identity::Identity;
use crate::ids::{IdentityId, MessageId, ThreadId};
use crate::keys::Scope;
use crate::mail::{self, Delivery, DeliveryStatus, Folder, MailCopy, Message, MessageStatus};
use crate::oversight::{
    Approval, ApprovalId, ApprovalQuery, ApprovalStatus, Decider, HoldDirection, HoldKind, HoldReason, OversightMode,
    Release, StoredDecision,
};
use crate::time::Timestamp;
use crate::{Error, Result, text};

/// `GET /v0/approvals`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListApprovalsParams {
    /// Only mail composed by this identity (its id), or held for it (`direction=receive`).
    pub identity: Option<String>,
    /// `pending`, `approved`, `rejected` or `expired`.
    pub status: Option<String>,
    /// `send` (held outgoing mail) or `receive` (held incoming mail); default both.
    #[cfg_attr(feature = "openapi", param(pattern = "^(send|receive)$"))]
    pub direction: Option<String>,
    /// Only approvals at least this many seconds old.
    #[cfg_attr(feature = "openapi", param(minimum = 0, maximum = 315_360_000))]
    pub older_than_seconds: Option<u32>,
    /// 1 to 200, default 50.
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// One approval with the whole mail as it will be sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalView {
    #[serde(flatten)]
    pub approval: Approval,
    /// The held mail: recipients, subject, bodies, as it will be sent (held incoming mail: as
    /// its recipient will see it once released).
    pub message: Message,
}

/// Whether outgoing mail is frozen on this instance (`GET /v0/instance`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstanceStatus {
    /// True while the operator has frozen all outgoing mail: sends and approvals are refused.
    pub outgoing_frozen: bool,
    pub frozen_at: Option<Timestamp>,
}

/// `POST /v0/approvals/{id}/reject`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Why (required; the agent reads it).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1000))]
    pub reason: String,
}

/// `POST /v0/approvals/decide`: one decision over several approvals.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// The approvals (1 to 100).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub ids: Vec<String>,
    /// `approve` or `reject`.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\s*(approve|reject)\s*$"))]
    pub decision: String,
    /// Required to reject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a batch decision did, per approval, in the order given.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchDecision {
    pub results: Vec<BatchOutcome>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchOutcome {
    pub id: String,
    /// The approval as decided; absent when this one failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// Why this one failed (the others are decided regardless).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

pub const MAX_BATCH: usize = 100;
pub const MAX_REASON: usize = 1000;

/// The copies and delivery report of a message to `all`, for the addresses `local` resolves
/// to identities on this server (the rest are queued for SMTP).
pub(super) fn plan_copies(
    loft: &Loft,
    all: &[EmailAddress],
    local: &HashMap<EmailAddress, IdentityId>,
) -> (Vec<MailCopy>, Vec<Delivery>) {
    let r = loft.random.as_ref();
    let mut copies = Vec::new();
    let mut delivery = Vec::new();
    for a in all {
        if let Some(owner) = local.get(a) {
            copies.push(MailCopy {
                id: MessageId::generate(r),
                owner: owner.clone(),
                folder: Folder::Inbox,
                new_thread_id: ThreadId::generate(r),
            });
            delivery.push(Delivery {
                recipient: a.clone(),
                status: DeliveryStatus::Delivered,
                detail: "delivered to an identity on this server".into(),
            });
        } else {
            delivery.push(Delivery {
                recipient: a.clone(),
                status: DeliveryStatus::Queued,
                detail: "queued for delivery by SMTP".into(),
            });
        }
    }
    (copies, delivery)
}

impl Loft {
    /// Refuses a send outright where the sender's mode forbids sending.
    pub(super) fn check_may_send(me: &Identity) -> Result<()> {
        if me.oversight_mode == OversightMode::ReadOnly {
            return Err(Error::policy_denied(
                "read_only_mode",
                format!(
                    "{} is in oversight mode read_only: it can read mail but not send or reply",
                    me.address
                ),
            )
            .with_hint("ask the operator to change its oversight mode (`loft identity mode ID gated_send`)"));
        }
        Ok(())
    }

    /// Why this mail must wait for a reviewer (empty: it may go now): the sender's mode, the
    /// exfiltration guard (any mode), which looks for the sender's own vault values in the
    /// subject and bodies, raw and encoded, and the first-contact hold (any mode; see
    /// `service/caps.rs`).
    pub(super) async fn hold_reasons(
        &self,
        me: &Identity,
        recipients: &[EmailAddress],
        subject: &str,
        text: &str,
        html: Option<&str>,
        files: &[crate::mail::OutgoingFile],
    ) -> Result<Vec<HoldReason>> {
        let mut reasons = Vec::new();
        // An identity exempt from the gate for internal mail sends mail addressed only to
        // identities of this server at once (their own gates still apply to what they receive).
        let internal_only = !recipients.is_empty() && recipients.iter().all(|a| a.domain() == self.config.domain);
        let exempt = me.caps.internal_mail == crate::caps::InternalMail::Exempt && internal_only;
        if me.oversight_mode.gates_outgoing() && !exempt {
            reasons.push(HoldReason {
                kind: HoldKind::Mode,
                detail: format!(
                    "the sender is in oversight mode {}: every outgoing mail waits for a reviewer's approval",
                    me.oversight_mode
                ),
                credential: None,
                encoding: None,
                rule: None,
                addresses: vec![],
            });
        }
        if self.vault.is_some() && me.caps.exfiltration_guard == crate::caps::Guard::On {
            let ring = self.keyring()?;
            // Attached files are read as text whatever their declared type: a secret pasted
            // into a `.txt`, a CSV or a JSON file (or sent as `application/octet-stream`) is
            // held like one in the body. Compressed or encrypted files are not opened.
            let files: Vec<std::borrow::Cow<'_, str>> =
                files.iter().map(|f| String::from_utf8_lossy(&f.bytes)).collect();
            let haystacks: Vec<&str> = [Some(subject), Some(text), html]
                .into_iter()
                .flatten()
                .chain(files.iter().map(AsRef::as_ref))
                .collect();
            for c in self.store.vault_all(&me.id).await? {
                let secrets = Self::open_secrets(&ring, &c)?;
                let values = secrets.fields.values().chain(secrets.backup_codes.iter());
                if let Some(encoding) = values
                    .into_iter()
                    .find_map(|v| crate::oversight::find_secret(&haystacks, v))
                {
                    reasons.push(HoldReason {
                        kind: HoldKind::ExfiltrationGuard,
                        detail: format!(
                            "the mail contains the value of the sender's vault credential `{}` ({encoding})",
                            c.meta.name
                        ),
                        credential: Some(c.meta.name.clone()),
                        encoding: Some(encoding.to_owned()),
                        rule: None,
                        addresses: vec![],
                    });
                }
            }
        }
        reasons.extend(self.first_contact_hold(me, recipients).await?);
        Ok(reasons)
    }

    /// Who the actor is as a reviewer: the operator, or an identity holding `oversight`.
    pub(super) fn reviewer(actor: &Actor) -> Result<Decider> {
        match &actor.principal {
            Principal::Operator => Ok(Decider {
                kind: "operator".into(),
                identity_id: None,
                address: None,
                key_id: Some(actor.key_id()),
            }),
            Principal::Identity { identity, scopes, key } => {
                if !scopes.contains(Scope::Oversight) {
                    return Err(Error::MissingScope {
                        scope: Scope::Oversight,
                    });
                }
                Ok(Decider {
                    kind: "identity".into(),
                    identity_id: Some(identity.id.clone()),
                    address: Some(identity.address.clone()),
                    key_id: Some(key.id.to_string()),
                })
            }
        }
    }

    /// The kill switch for one identity (operator only): `pause` refuses every key of the
    /// identity at once, on every node (keys are checked against the database on every
    /// request); mail sent to it is still delivered and kept. `resume` undoes it.
    pub async fn set_paused(&self, actor: &Actor, id: &str, pause: bool) -> Result<Identity> {
        Self::require_operator(
            actor,
            if pause {
                "pausing an identity"
            } else {
                "resuming an identity"
            },
        )?;
        let id = IdentityId::parse(id)?;
        let target = self.visible_identity(actor, &id).await?;
        if !target.is_active() {
            return Err(Error::conflict(
                "identity_revoked",
                "a revoked identity cannot be paused or resumed",
            ));
        }
        let now = self.clock.now();
        let (action, paused_at) = if pause {
            ("identity.pause", Some(target.paused_at.unwrap_or(now)))
        } else {
            ("identity.resume", None)
        };
        let audit = actor.audit(
            now,
            action,
            Some(id.to_string()),
            serde_json::json!({ "was_paused": target.paused_at.is_some() }),
        );
        // An event only when the state changes (pausing a paused identity says nothing new).
        let mut audit = audit;
        if pause != target.paused_at.is_some() {
            let kind = if pause {
                crate::events::EventKind::IdentityPaused
            } else {
                crate::events::EventKind::IdentityResumed
            };
            audit.events.push(crate::events::NewEvent::new(
                kind,
                &id,
                serde_json::json!({ "identity_id": id, "address": target.address }),
            ));
        }
        let woken = super::events::raised_by(&audit);
        let update = crate::store::IdentityUpdate {
            paused_at: Some(paused_at),
            ..Default::default()
        };
        let updated = self.store.update_identity(&id, update, audit).await?;
        self.wake(&woken);
        Ok(updated)
    }

    /// The kill switch for the instance (operator only): while frozen, every send and every
    /// approval is refused on every node (each reads the flag from the database).
    pub async fn set_frozen(&self, actor: &Actor, freeze: bool) -> Result<InstanceStatus> {
        Self::require_operator(
            actor,
            if freeze {
                "freezing outgoing mail"
            } else {
                "unfreezing outgoing mail"
            },
        )?;
        let now = self.clock.now();
        let was = self.store.outgoing_frozen().await?;
        let at = if freeze { Some(was.unwrap_or(now)) } else { None };
        let audit = actor.audit(
            now,
            if freeze { "instance.freeze" } else { "instance.unfreeze" },
            None,
            serde_json::json!({ "was_frozen": was.is_some() }),
        );
        self.store.set_outgoing_frozen(at, audit).await?;
        Ok(InstanceStatus {
            outgoing_frozen: at.is_some(),
            frozen_at: at,
        })
    }

    /// Whether outgoing mail is frozen: the operator, and reviewers (whose approvals it
    /// refuses), may look.
    pub async fn instance_status(&self, actor: &Actor) -> Result<InstanceStatus> {
        if !actor.is_operator() {
            Self::reviewer(actor).map_err(|_| {
                Error::forbidden(
                    "operator_only",
                    "the instance status needs the operator key or a reviewer's key",
                )
            })?;
        }
        let at = self.store.outgoing_frozen().await?;
        Ok(InstanceStatus {
            outgoing_frozen: at.is_some(),
            frozen_at: at,
        })
    }

    /// Refuses while the operator has frozen outgoing mail.
    pub(super) async fn check_not_frozen(&self) -> Result<()> {
        if let Some(at) = self.store.outgoing_frozen().await? {
            return Err(Error::policy_denied(
                "outgoing_frozen",
                format!(
                    "the operator froze all outgoing mail on this server at {at}; nothing is sent until it is unfrozen"
                ),
            )
            .with_hint("try again later; the operator unfreezes with `loft unfreeze`"));
        }
        Ok(())
    }

    pub async fn list_approvals(&self, actor: &Actor, params: ListApprovalsParams) -> Result<Page<Approval>> {
        Self::reviewer(actor)?;
        let now = self.clock.now();
        let created_before = params.older_than_seconds.map(|s| now.plus_secs(-i64::from(s)));
        let query = ApprovalQuery {
            direction: params
                .direction
                .as_deref()
                .map(crate::oversight::HoldDirection::parse)
                .transpose()?,
            identity: params.identity.as_deref().map(IdentityId::parse).transpose()?,
            status: params.status.as_deref().map(ApprovalStatus::parse).transpose()?,
            created_before,
            message: None,
            now,
            before_seq: cursor(params.cursor.as_deref())?,
            limit: page_limit(params.limit)?,
        };
        let mut p = page(self.store.list_approvals(query).await?);
        p.items = p.items.into_iter().map(|a| a.as_of(now)).collect();
        Ok(p)
    }

    pub async fn get_approval(&self, actor: &Actor, id: &str) -> Result<ApprovalView> {
        Self::reviewer(actor)?;
        let approval = self.load_approval(&ApprovalId::parse(id)?).await?;
        // Held incoming mail is apart from the mailbox until released, and in it afterwards.
        let held = match approval.direction {
            HoldDirection::Receive => self.store.held_message(&approval.message_id).await?,
            HoldDirection::Send => None,
        };
        let found = match held {
            Some(m) => Some(m),
            None => {
                self.store
                    .get_message(&approval.identity_id, &approval.message_id)
                    .await?
            }
        };
        let mut message = found.ok_or_else(|| Error::internal(format!("approval {} has no message", approval.id)))?;
        message.status = status_of(&approval, message.status);
        Ok(ApprovalView { approval, message })
    }

    async fn load_approval(&self, id: &ApprovalId) -> Result<Approval> {
        Ok(self
            .store
            .get_approval(id)
            .await?
            .ok_or_else(|| Error::not_found("approval"))?
            .as_of(self.clock.now()))
    }

    /// The approval of a held sender copy, for the agent's own view of its message.
    pub(super) async fn attach_approval(&self, mut m: Message) -> Result<Message> {
        // Only a sender copy can have been held (one indexed lookup when reading sent mail).
        if m.folder != Folder::Sent {
            return Ok(m);
        }
        let query = ApprovalQuery {
            direction: Some(HoldDirection::Send),
            message: Some(m.id.clone()),
            now: self.clock.now(),
            limit: 1,
            ..ApprovalQuery::default()
        };
        if let Some(a) = self.store.list_approvals(query).await?.items.pop() {
            let a = a.as_of(self.clock.now());
            m.status = status_of(&a, m.status);
            m.approval = Some(a);
        }
        Ok(m)
    }

    pub async fn approve(&self, actor: &Actor, id: &str) -> Result<Approval> {
        let decider = Self::reviewer(actor)?;
        let approval = self.pending(actor, &ApprovalId::parse(id)?).await?;
        if approval.direction == HoldDirection::Receive {
            return self.release_incoming(actor, decider, approval).await;
        }
        self.check_not_frozen().await?;
        let composer = self.active_composer(&approval).await?;
        let message = self
            .store
            .get_message(&composer.id, &approval.message_id)
            .await?
            .ok_or_else(|| Error::internal(format!("approval {} has no message", approval.id)))?;
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
            return Err(Error::conflict(
                "unknown_recipient",
                format!("no active identity has the address {gone} on this server any more"),
            )
            .with_hint("reject this mail; the agent can send it again to the right recipients"));
        }
        let (recipient_copies, mut delivery) = plan_copies(self, &all, &local);
        let now = self.clock.now();
        if let Some(at) = message.send_at.filter(|t| *t > now) {
            // Approved before its time: it waits for its send_at, and the release checks the
            // recipients' quotas then.
            super::schedule::scheduled_delivery(&mut delivery, at);
            let audit = actor
                .audit(
                    now,
                    "approval.approve",
                    Some(approval.id.to_string()),
                    serde_json::json!({ "message": message.id, "composer": composer.id, "send_at": at }),
                )
                .with_event(super::events::decided(
                    &approval,
                    ApprovalStatus::Approved,
                    &decider,
                    None,
                ));
            let woken = super::events::raised_by(&audit);
            let decision = StoredDecision {
                id: approval.id.clone(),
                status: ApprovalStatus::Approved,
                at: now,
                decided_by: decider,
                reason: None,
                release: None,
                schedule: Some(crate::schedule::Schedule {
                    job: crate::schedule::ReleaseJob::job(&composer.id, &message.id, at),
                    delivery,
                }),
                // Planned from this version of the mail: an edit since refuses it.
                expected_edits: Some(approval.edit_count),
            };
            let outcome = self
                .store
                .decide_approval(decision, audit)
                .await
                .map_err(edited_meanwhile)?;
            self.wake(&woken);
            self.job_tick.send_modify(|t| *t += 1);
            return Ok(outcome);
        }
        let local_recipients: Vec<(&EmailAddress, &IdentityId)> =
            all.iter().filter_map(|a| local.get(a).map(|id| (a, id))).collect();
        let queued = delivery.iter().filter(|d| d.status == DeliveryStatus::Queued).count() as u64;
        self.check_mail_quotas(&composer, &local_recipients, queued, message.size.max(0) as u64, now)
            .await?;
        let mut jobs = mail::delivery_jobs(&composer.id, &message.id, &delivery, now);
        let (recipient_copies, held_copies) = self
            .hold_incoming(&message.from, true, recipient_copies, now, None, None)
            .await?;
        let contacts = super::inbound_holds::without_held(
            Self::contacts_of_mail(&composer.id, &composer.address, &all, &local, now),
            &held_copies,
        );
        let mut audit = actor.audit(
            now,
            "approval.approve",
            Some(approval.id.to_string()),
            serde_json::json!({
                "message": message.id, "composer": composer.id,
                "delivered": recipient_copies.len(), "queued": queued,
            }),
        );
        audit.events.push(super::events::decided(
            &approval,
            ApprovalStatus::Approved,
            &decider,
            None,
        ));
        // A reviewer saw this mail before it left: nothing to review after the fact.
        audit.events.extend(super::events::mail_out(
            &composer.id,
            false,
            &message.id,
            &message.from,
            &message.subject,
            &all,
            &recipient_copies,
        ));
        audit.events.extend(super::inbound_holds::held_events(
            &held_copies,
            &message.from,
            &message.subject,
        ));
        self.link_approvals(&mut audit.events);
        jobs.extend(super::notices::notice_jobs(held_copies.iter().map(|h| &h.hold.id), now));
        let woken = super::events::raised_by(&audit);
        let decision = StoredDecision {
            id: approval.id.clone(),
            status: ApprovalStatus::Approved,
            at: now,
            decided_by: decider,
            reason: None,
            release: Some(Release {
                recipient_copies,
                held_copies,
                delivery,
                jobs,
                contacts,
            }),
            schedule: None,
            // The release was planned from this version of the mail: an edit since refuses it.
            expected_edits: Some(approval.edit_count),
        };
        let outcome = self
            .store
            .decide_approval(decision, audit)
            .await
            .map_err(edited_meanwhile)?;
        self.wake(&woken);
        Ok(outcome)
    }

    /// The identity that composed a held mail, if it is still active (a revoked one's mail can
    /// be neither sent nor edited: `409 sender_revoked`).
    pub(super) async fn active_composer(&self, approval: &Approval) -> Result<Identity> {
        self.store
            .get_identity(&approval.identity_id)
            .await?
            .filter(Identity::is_active)
            .ok_or_else(|| {
                Error::conflict(
                    "sender_revoked",
                    "the identity that composed this mail has been revoked; it cannot be sent",
                )
                .with_hint("reject it instead")
            })
    }

    pub async fn reject(&self, actor: &Actor, id: &str, req: RejectRequest) -> Result<Approval> {
        let decider = Self::reviewer(actor)?;
        let reason = validate_reason(&req.reason)?;
        let approval = self.pending(actor, &ApprovalId::parse(id)?).await?;
        let now = self.clock.now();
        let audit = actor.audit(
            now,
            "approval.reject",
            Some(approval.id.to_string()),
            serde_json::json!({ "message": approval.message_id, "composer": approval.identity_id, "reason": reason }),
        )
        .with_event(super::events::decided(
            &approval,
            ApprovalStatus::Rejected,
            &decider,
            Some(&reason),
        ));
        let woken = super::events::raised_by(&audit);
        let decision = StoredDecision {
            id: approval.id.clone(),
            status: ApprovalStatus::Rejected,
            at: now,
            decided_by: decider,
            reason: Some(reason),
            release: None,
            schedule: None,
            expected_edits: None,
        };
        let outcome = self.store.decide_approval(decision, audit).await?;
        self.wake(&woken);
        Ok(outcome)
    }

    /// One decision over several approvals; each succeeds or fails on its own.
    pub async fn decide_many(&self, actor: &Actor, req: DecideRequest) -> Result<BatchDecision> {
        Self::reviewer(actor)?;
        if req.ids.is_empty() || req.ids.len() > MAX_BATCH {
            return Err(Error::invalid(
                "invalid_ids",
                format!("give 1 to {MAX_BATCH} approval ids, not {}", req.ids.len()),
            ));
        }
        let reject = match req.decision.trim() {
            "approve" => false,
            "reject" => true,
            other => {
                return Err(
                    Error::invalid("invalid_decision", format!("unknown decision `{other}`"))
                        .with_hint("use approve or reject"),
                );
            }
        };
        let reason = if reject {
            Some(validate_reason(req.reason.as_deref().unwrap_or(""))?)
        } else {
            None
        };
        let mut results = Vec::with_capacity(req.ids.len());
        for id in req.ids {
            let r = match &reason {
                Some(reason) => self.reject(actor, &id, RejectRequest { reason: reason.clone() }).await,
                None => self.approve(actor, &id).await,
            };
            let (approval, error) = match r {
                Ok(a) => (Some(a), None),
                Err(e @ (Error::Internal(_) | Error::Unavailable(_))) => return Err(e),
                Err(e) => (
                    None,
                    Some(ErrorDetail {
                        code: e.code().into_owned(),
                        message: e.public_message(),
                        hint: e.hint(),
                        request_id: actor.ctx.request_id.clone(),
                    }),
                ),
            };
            results.push(BatchOutcome { id, approval, error });
        }
        Ok(BatchDecision { results })
    }

    /// The approval, if a reviewer may decide it now: pending, not composed by the reviewer.
    /// A pending approval past its time is recorded as expired (once, by whoever finds it)
    /// and refused.
    pub(super) async fn pending(&self, actor: &Actor, id: &ApprovalId) -> Result<Approval> {
        let approval = self
            .store
            .get_approval(id)
            .await?
            .ok_or_else(|| Error::not_found("approval"))?;
        if actor.identity().is_some_and(|me| me.id == approval.identity_id) {
            return Err(Error::forbidden(
                "self_approval",
                "the identity that composed a mail can never decide on it",
            )
            .with_hint("another reviewer (or the operator) must decide"));
        }
        let now = self.clock.now();
        match approval.status {
            ApprovalStatus::Pending if approval.expires_at <= now => {
                self.expire(&approval, now).await?;
                Err(expired(&approval))
            }
            ApprovalStatus::Pending => Ok(approval),
            ApprovalStatus::Expired => Err(expired(&approval)),
            done => Err(Error::conflict(
                "already_decided",
                format!("approval {} was already decided: {}", approval.id, done.as_str()),
            )),
        }
    }

    /// Records that a pending approval expired (a no-op when someone else did first).
    pub(super) async fn expire(&self, approval: &Approval, now: Timestamp) -> Result<()> {
        let audit = crate::audit::AuditEntry {
            at: now,
            actor_kind: crate::audit::ActorKind::System,
            actor_identity_id: None,
            key_id: None,
            action: "approval.expire".into(),
            target: Some(approval.id.to_string()),
            outcome: crate::audit::Outcome::Ok,
            request_id: None,
            remote_addr: None,
            details: serde_json::json!({ "message": approval.message_id, "composer": approval.identity_id }),
            events: Vec::new(),
        };
        let by = Decider {
            kind: "system".into(),
            identity_id: None,
            address: None,
            key_id: None,
        };
        let reason = "nobody decided before it expired";
        let audit = audit.with_event(super::events::decided(
            approval,
            ApprovalStatus::Expired,
            &by,
            Some(reason),
        ));
        let woken = super::events::raised_by(&audit);
        let decision = StoredDecision {
            id: approval.id.clone(),
            status: ApprovalStatus::Expired,
            at: now,
            decided_by: by,
            reason: Some(reason.into()),
            release: None,
            schedule: None,
            expected_edits: None,
        };
        match self.store.decide_approval(decision, audit).await {
            Ok(_) => {
                self.wake(&woken);
                Ok(())
            }
            Err(Error::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A store's `approval_edited` refusal, with what to do about it.
pub(super) fn edited_meanwhile(e: Error) -> Error {
    match e {
        Error::Conflict(d) if d.code == "approval_edited" && d.hint.is_none() => Error::Conflict(d).with_hint(
            "another reviewer edited this mail a moment ago: read it again (GET /v0/approvals/{id}, \
             `loft approvals show ID`) and decide on what it says now",
        ),
        other => other,
    }
}

fn expired(a: &Approval) -> Error {
    Error::conflict(
        "approval_expired",
        format!("approval {} expired at {} without a decision", a.id, a.expires_at),
    )
    .with_hint("the agent can send the mail again")
}

/// The status a held sender copy shows for its approval (`stored`: as the store has it).
fn status_of(a: &Approval, stored: MessageStatus) -> MessageStatus {
    match a.status {
        ApprovalStatus::Pending => MessageStatus::PendingApproval,
        // Sent, or scheduled (and maybe canceled) when it was approved before its send_at.
        ApprovalStatus::Approved => stored,
        ApprovalStatus::Rejected => MessageStatus::Rejected,
        ApprovalStatus::Expired => MessageStatus::Expired,
    }
}

fn validate_reason(reason: &str) -> Result<String> {
    let r = reason.trim();
    if r.is_empty() || r.chars().count() > MAX_REASON {
        return Err(Error::invalid(
            "invalid_reason",
            format!("a rejection needs a reason of 1 to {MAX_REASON} characters"),
        )
        .with_hint("say why, in a sentence the agent can act on"));
    }
    text::refuse_nul("reason", r)?;
    Ok(r.to_owned())
}
