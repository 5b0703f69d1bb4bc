//! Held incoming mail: a copy for a local recipient in `gated_all`, or whose `receive` hold
//! rule matches the sender, waits for a reviewer's release before its recipient can see it.
//!
//! The held copy is not in the recipient's mailbox at all: the store keeps it apart
//! ([`crate::oversight::HeldCopy`]) with an approval of direction `receive`, and a reviewer's
//! approval writes it into the inbox. So no read path of the recipient (list, get, thread,
//! search, wait, raw, attachments, counts) can show it, by construction rather than by a filter
//! each query must remember. Mail from inside (a send, a released or scheduled send) and from
//! outside (SMTP) pass through [`Loft::hold_incoming`] at the moment their copies are planned.

use crate::address::EmailAddress;
use crate::events::{EventKind, NewEvent};
use crate::ids::IdentityId;
use crate::mail::MailCopy;
use crate::oversight::{
    Approval, ApprovalId, ApprovalStatus, Decider, HeldCopy, HoldKind, HoldReason, NewHold, OversightMode, Release,
    StoredDecision,
};
use crate::rules::{Rule, RuleDirection, Verdict, evaluate};
use crate::time::Timestamp;
use crate::{Error, Result};

use super::{Actor, Loft};

impl Loft {
    /// Splits the local copies of a mail from `from` into those delivered now and those held
    /// for a reviewer. One query for the recipients' rules, unless the caller passes `rules`
    /// it already loaded (they must include every rule in effect for each copy's owner; more
    /// do no harm, `evaluate` keeps each owner's), and one per recipient for its mode.
    /// `internal`: the mail comes from an identity of this server (a send, or its release),
    /// which a recipient exempt for internal mail (`internal_mail: exempt`) lets through its
    /// mode's gate; mail from outside (SMTP) never is. `also`: a reason that holds every copy
    /// whatever its recipient's mode and rules (the From domain's DMARC quarantine).
    pub(super) async fn hold_incoming(
        &self,
        from: &EmailAddress,
        internal: bool,
        copies: Vec<MailCopy>,
        now: Timestamp,
        rules: Option<&[Rule]>,
        also: Option<&HoldReason>,
    ) -> Result<(Vec<MailCopy>, Vec<HeldCopy>)> {
        if copies.is_empty() {
            return Ok((copies, Vec::new()));
        }
        let mut owners: Vec<IdentityId> = copies.iter().map(|c| c.owner.clone()).collect();
        owners.sort();
        owners.dedup();
        let loaded;
        let rules = if let Some(rules) = rules {
            rules
        } else {
            loaded = self.store.rules_in_effect(&owners).await?;
            &loaded
        };
        let mut gated = Vec::new();
        for owner in &owners {
            if self.store.get_identity(owner).await?.is_some_and(|i| {
                i.oversight_mode == OversightMode::GatedAll
                    && !(internal && i.caps.internal_mail == crate::caps::InternalMail::Exempt)
            }) {
                gated.push(owner.clone());
            }
        }
        let mut delivered = Vec::with_capacity(copies.len());
        let mut held = Vec::new();
        for copy in copies {
            let mut reasons = Vec::new();
            if gated.contains(&copy.owner) {
                reasons.push(HoldReason {
                    kind: HoldKind::Mode,
                    detail: "the recipient is in oversight mode gated_all: incoming mail waits for a reviewer's \
                             release before it can see it"
                        .into(),
                    credential: None,
                    encoding: None,
                    rule: None,
                    addresses: vec![],
                });
            }
            if let Verdict::Held(rule) = evaluate(rules, &copy.owner, RuleDirection::Receive, from) {
                reasons.push(HoldReason {
                    kind: HoldKind::Rule,
                    detail: format!("{} holds mail from {from}: a reviewer must release it", rule.describe()),
                    credential: None,
                    encoding: None,
                    rule: Some(rule.reference()),
                    addresses: vec![],
                });
            }
            reasons.extend(also.cloned());
            if reasons.is_empty() {
                delivered.push(copy);
            } else {
                held.push(HeldCopy {
                    copy,
                    hold: NewHold {
                        id: ApprovalId::generate(self.random.as_ref()),
                        reasons,
                        expires_at: now.plus_secs(self.config.approval_ttl_secs),
                    },
                });
            }
        }
        Ok((delivered, held))
    }

    /// Releases held incoming mail into its recipient's inbox (a reviewer's approval of an
    /// approval of direction `receive`). The freeze of outgoing mail does not apply: nothing
    /// leaves the server.
    pub(super) async fn release_incoming(
        &self,
        actor: &Actor,
        decider: Decider,
        approval: Approval,
    ) -> Result<Approval> {
        let recipient = self
            .store
            .get_identity(&approval.identity_id)
            .await?
            .filter(crate::identity::Identity::is_active)
            .ok_or_else(|| {
                Error::conflict(
                    "recipient_revoked",
                    "the identity this mail was held for has been revoked; it cannot receive it",
                )
                .with_hint("reject it instead")
            })?;
        let now = self.clock.now();
        let held = self
            .store
            .held_message(&approval.message_id)
            .await?
            .ok_or_else(|| Error::internal(format!("approval {} has no held mail", approval.id)))?;
        // The recipient's mailbox must have room now: the copy counts from its release.
        if let Some(limit) = self.quotas.stored_bytes {
            let size = held.size.max(0) as u64;
            let have = self
                .store
                .mailbox_bytes(std::slice::from_ref(&recipient.id))
                .await?
                .first()
                .map_or(0, |(_, b)| *b);
            if have.saturating_add(size) > limit {
                return Err(Error::forbidden(
                    "quota_exceeded",
                    format!(
                        "the mailbox of {} is full: it holds {have} bytes of mail, the quota `stored_bytes` is {limit}, \
                         and this message is {size} bytes",
                        recipient.address
                    ),
                )
                .with_hint("release it once the recipient has made room, or the operator raises `--quota stored_bytes=N`"));
            }
        }
        let mut audit = actor.audit(
            now,
            "approval.approve",
            Some(approval.id.to_string()),
            serde_json::json!({
                "message": approval.message_id, "recipient": recipient.id, "direction": "receive",
            }),
        );
        audit.events.push(super::events::decided(
            &approval,
            ApprovalStatus::Approved,
            &decider,
            None,
        ));
        audit.events.push(NewEvent::new(
            EventKind::MessageReceived,
            &recipient.id,
            serde_json::json!({
                "message_id": approval.message_id, "from": held.from, "subject": held.subject,
                "verdict": held.authentication.verdict,
            }),
        ));
        let woken = super::events::raised_by(&audit);
        // The recipient's correspondence with the sender starts when it can see the mail.
        let contacts = vec![crate::caps::ContactTouch {
            identity: recipient.id.clone(),
            address: held.from.clone(),
            sent_at: None,
            received_at: Some(now),
            at: now,
        }];
        let decision = StoredDecision {
            id: approval.id.clone(),
            status: ApprovalStatus::Approved,
            at: now,
            decided_by: decider,
            reason: None,
            release: Some(Release {
                recipient_copies: vec![],
                held_copies: vec![],
                delivery: vec![],
                jobs: vec![],
                contacts,
            }),
            schedule: None,
            expected_edits: None,
        };
        let outcome = self.store.decide_approval(decision, audit).await?;
        self.wake(&woken);
        Ok(outcome)
    }
}

impl Loft {
    /// Adds `console_url` (the approval's page in the web console, when the server knows its
    /// URL) to every `approval.requested` event in `events`. The page asks for sign-in: the
    /// link shows the mail to a reviewer, it never decides anything by itself.
    pub(super) fn link_approvals(&self, events: &mut [NewEvent]) {
        let Some(base) = self.config.console_url.as_deref() else {
            return;
        };
        for e in events.iter_mut().filter(|e| e.kind == EventKind::ApprovalRequested) {
            if let Some(id) = e.payload.get("approval_id").and_then(|v| v.as_str()).map(str::to_owned)
                && let Some(p) = e.payload.as_object_mut()
            {
                p.insert(
                    "console_url".into(),
                    serde_json::json!(crate::console::approval_url(base, &id)),
                );
            }
        }
    }
}

/// `approval.requested` for each held incoming copy. Its identity is the recipient (so the
/// operator can filter by it), but the recipient's own keys never see it: it names a mail the
/// recipient may not see yet ([`super::events`] leaves `receive` approvals to reviewers).
pub(super) fn held_events(held: &[HeldCopy], from: &EmailAddress, subject: &str) -> Vec<NewEvent> {
    held.iter()
        .map(|h| {
            NewEvent::new(
                EventKind::ApprovalRequested,
                &h.copy.owner,
                serde_json::json!({
                    "approval_id": h.hold.id, "message_id": h.copy.id, "direction": "receive",
                    "from": from, "subject": subject,
                    "reasons": h.hold.reasons.iter().map(|r| r.kind).collect::<Vec<_>>(),
                }),
            )
        })
        .collect()
}

/// The contact touches of a mail without the received ones of recipients whose copy is held:
/// their correspondence with the sender starts when a reviewer releases it.
pub(super) fn without_held(
    mut contacts: Vec<crate::caps::ContactTouch>,
    held: &[HeldCopy],
) -> Vec<crate::caps::ContactTouch> {
    contacts.retain(|t| t.sent_at.is_some() || !held.iter().any(|h| h.copy.owner == t.identity));
    contacts
}
