//! Mail from outside, received by SMTP (the door is `loft-smtp`): whether a recipient is
//! accepted (`RCPT TO`), and storing an accepted mail in every local recipient's inbox.
//!
//! The refusals are [`Error`]s with stable codes that the SMTP door maps to reply codes once
//! (`loft-smtp/src/reply.rs`): `relay_denied` (a domain this server does not host: never an
//! open relay), `unknown_recipient`, `sender_refused` (the recipient's receive rules),
//! `quota_exceeded` (the recipient's mailbox is full: a temporary failure), `invalid_address`.
//! Outside parties can cause refusals at will, so they are logged by the door, not audited
//! (the audit log records what identities did and what reached them).

use std::collections::HashMap;

use super::Loft;
use crate::address::EmailAddress;
use crate::audit::{ActorKind, AuditEntry, Outcome};
use crate::ids::{IdentityId, MessageId, ThreadId};
use crate::inbound::{self, Envelope};
use crate::mail::{Authentication, Folder, InboundMail, MailContent, MailCopy};
use crate::mailauth::{CheckResult, DmarcEnforcement, DmarcPolicy};
use crate::oversight::{HoldKind, HoldReason};
use crate::rules::{RuleDirection, Verdict, evaluate};
use crate::time::Timestamp;
use crate::{Error, Result};

/// What became of an accepted mail.
#[derive(Debug, Clone)]
pub struct InboundReceipt {
    /// The mail's `Message-ID` (generated when it had none).
    pub message_id: String,
    /// One copy per recipient whose inbox got it.
    pub copies: Vec<(EmailAddress, MessageId)>,
    /// Recipients that got no copy, with the code saying why (a receive rule refused the
    /// `From` address). Empty when every recipient got it.
    pub refused: Vec<(EmailAddress, &'static str)>,
}

impl Loft {
    /// Whether `domain` is a mail domain this server hosts (case-insensitive).
    pub fn hosts_domain(&self, domain: &str) -> bool {
        domain.eq_ignore_ascii_case(&self.config.domain)
    }

    /// The mail domain this server hosts, for the SMTP greeting.
    pub fn mail_domain(&self) -> &str {
        &self.config.domain
    }

    /// Checks one `RCPT TO` of an SMTP session: the address parses, its domain is hosted
    /// (`relay_denied` otherwise), an active identity has it (`unknown_recipient`), its receive
    /// rules accept the envelope sender (`sender_refused`), and its mailbox is not full
    /// (`quota_exceeded`). A paused identity still receives (its mail is kept).
    pub async fn check_inbound_recipient(&self, envelope: &Envelope, rcpt: &str) -> Result<EmailAddress> {
        let address = EmailAddress::parse(rcpt)?;
        if !self.is_hosted(address.domain()).await? {
            return Err(Error::policy_denied(
                "relay_denied",
                format!(
                    "relaying denied: @{} is not a domain this server hosts",
                    address.domain()
                ),
            ));
        }
        let found = self.store.resolve_addresses(std::slice::from_ref(&address)).await?;
        let Some((_, id)) = found.into_iter().next() else {
            return Err(unknown_recipient(&address));
        };
        if let Some(sender) = &envelope.mail_from {
            let rules = self.store.rules_in_effect(std::slice::from_ref(&id)).await?;
            if refuses(&rules, &id, sender) {
                return Err(sender_refused());
            }
        }
        if let Some(limit) = self.quotas.stored_bytes {
            let used = self.store.mailbox_bytes(std::slice::from_ref(&id)).await?;
            if used.first().is_some_and(|(_, b)| *b >= limit) {
                return Err(mailbox_full());
            }
        }
        Ok(address)
    }

    /// Stores a mail received by SMTP for the envelope's recipients (each checked by
    /// [`Self::check_inbound_recipient`] during the session, and looked up again here): parsed
    /// with `mail-parser`, marked external and not verified (or suspected of spoofing when its
    /// `From` claims a hosted domain), with a `Received` header added, one inbox copy per
    /// recipient whose receive rules accept the `From` address, all in one transaction with
    /// its audit row. When this returns `Ok` the mail is durably stored.
    pub async fn receive_inbound(&self, envelope: &Envelope, raw: &[u8]) -> Result<InboundReceipt> {
        let now = self.clock.now();
        let r = self.random.as_ref();
        let parsed = inbound::parse(raw);

        // The recipients again: one may have been revoked since its RCPT.
        let mut recipients = envelope.recipients.clone();
        recipients.dedup();
        let local: HashMap<EmailAddress, IdentityId> =
            self.store.resolve_addresses(&recipients).await?.into_iter().collect();
        let recipients: Vec<(EmailAddress, IdentityId)> = recipients
            .into_iter()
            .filter_map(|a| local.get(&a).map(|id| (a, id.clone())))
            .collect();
        if recipients.is_empty() {
            return Err(Error::not_found("recipient").with_hint("no recipient of this mail is an identity here"));
        }

        // The identity sees the header From, so its receive rules judge that address (and the
        // envelope sender, judged at RCPT, once more).
        let ids: Vec<IdentityId> = recipients.iter().map(|(_, id)| id.clone()).collect();
        let rules = self.store.rules_in_effect(&ids).await?;
        let mut accepted = Vec::new();
        let mut refused = Vec::new();
        for (address, id) in recipients {
            let by_from = parsed.from.as_ref().is_some_and(|f| refuses(&rules, &id, f));
            let by_envelope = envelope.mail_from.as_ref().is_some_and(|f| refuses(&rules, &id, f));
            if by_from || by_envelope {
                refused.push((address, "sender_refused"));
            } else {
                accepted.push((address, id));
            }
        }
        if accepted.is_empty() {
            return Err(sender_refused());
        }

        let from = parsed
            .from
            .clone()
            .or_else(|| envelope.mail_from.clone())
            .map_or_else(|| EmailAddress::parse("unknown@unknown.invalid"), Ok)?;
        let authentication = self.authenticate_inbound(envelope, raw, &from).await?;
        let dmarc_hold = match self.dmarc_action(&authentication, from.domain()) {
            DmarcAction::Deliver => None,
            DmarcAction::Refuse(e) => return Err(e),
            DmarcAction::Hold(reason) => Some(reason),
        };
        let message_id = parsed
            .message_id
            .clone()
            .unwrap_or_else(|| format!("{}@{}", crate::random::base32_string(r, 26), self.config.domain));
        let stored = with_received_header(raw, envelope, &self.config.domain, &message_id, now);
        let size = stored.len() as u64;

        if let Some(limit) = self.quotas.stored_bytes {
            let used: HashMap<IdentityId, u64> = self
                .store
                .mailbox_bytes(&accepted.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>())
                .await?
                .into_iter()
                .collect();
            if accepted
                .iter()
                .any(|(_, id)| used.get(id).copied().unwrap_or(0).saturating_add(size) > limit)
            {
                return Err(mailbox_full());
            }
        }

        let extracted_text = inbound::extracted_text(&parsed);
        let content = MailContent {
            message_id: message_id.clone(),
            in_reply_to: parsed.in_reply_to,
            references: parsed.references,
            from,
            from_name: parsed.from_name,
            to: parsed.to,
            cc: parsed.cc,
            bcc: vec![],
            subject: parsed.subject,
            text: parsed.text,
            html: parsed.html,
            extracted_text,
            authentication,
            created_at: now,
        };
        let copies: Vec<MailCopy> = accepted
            .iter()
            .map(|(_, owner)| MailCopy {
                id: MessageId::generate(r),
                owner: owner.clone(),
                folder: Folder::Inbox,
                new_thread_id: ThreadId::generate(r),
            })
            .collect();
        // Recipients who hold incoming mail get their copy once a reviewer releases it; the
        // sender is told it was accepted either way (as any MTA's filters would).
        let (delivered, held_copies) = self
            .hold_incoming(
                &content.from,
                false,
                copies.clone(),
                now,
                Some(&rules),
                dmarc_hold.as_ref(),
            )
            .await?;
        let receipt = InboundReceipt {
            message_id: message_id.clone(),
            copies: accepted
                .iter()
                .zip(&copies)
                .map(|((a, _), c)| (a.clone(), c.id.clone()))
                .collect(),
            refused,
        };
        let details = serde_json::json!({
            "message_id": message_id,
            "from": content.from,
            "mail_from": envelope.mail_from,
            "helo": envelope.helo,
            "recipients": receipt.copies.iter().map(|(a, id)| serde_json::json!({"address": a, "message": id})).collect::<Vec<_>>(),
            "refused": receipt.refused.iter().map(|(a, code)| serde_json::json!({"address": a, "code": code})).collect::<Vec<_>>(),
            "verdict": content.authentication.verdict,
            "held": held_copies.iter().map(|h| serde_json::json!({"message": h.copy.id, "approval": h.hold.id})).collect::<Vec<_>>(),
            "size": size,
            "attachments": parsed.attachments.len(),
        });
        let mut audit = inbound_audit(
            now,
            envelope.client_ip.clone(),
            copies.first().map(|c| c.id.to_string()),
            details,
        );
        audit.events = delivered
            .iter()
            .map(|c| {
                crate::events::NewEvent::new(
                    crate::events::EventKind::MessageReceived,
                    &c.owner,
                    serde_json::json!({
                        "message_id": c.id, "from": content.from, "subject": content.subject,
                        "verdict": content.authentication.verdict,
                    }),
                )
            })
            .collect();
        audit.events.extend(super::inbound_holds::held_events(
            &held_copies,
            &content.from,
            &content.subject,
        ));
        self.link_approvals(&mut audit.events);
        let woken = super::events::raised_by(&audit);
        let jobs = super::notices::notice_jobs(held_copies.iter().map(|h| &h.hold.id), now);
        let mail = InboundMail {
            content,
            raw: stored,
            copies: delivered,
            held_copies,
            attachments: parsed.attachments,
            jobs,
        };
        self.store.receive_mail(mail, audit).await?;
        self.wake(&woken);
        Ok(receipt)
    }
}

impl Loft {
    /// The verdict on a mail from outside: SPF, DKIM, DMARC and ARC checked on the bytes as
    /// received (when mail authentication is configured), judged against the From domain.
    async fn authenticate_inbound(
        &self,
        envelope: &Envelope,
        raw: &[u8],
        from: &EmailAddress,
    ) -> Result<Authentication> {
        let hosted = self.is_hosted(from.domain()).await?;
        let Some(auth) = self.mail_auth.as_deref() else {
            return Ok(if hosted {
                Authentication::spoofed_suspect(from.domain())
            } else {
                Authentication::external()
            });
        };
        let mail_from = envelope.mail_from.as_ref().map(EmailAddress::as_str);
        let input = crate::mailauth::VerifyInput {
            client_ip: envelope.client_ip.as_deref().and_then(|ip| ip.parse().ok()),
            helo: &envelope.helo,
            mail_from,
            from_domain: from.domain(),
            host: &self.config.domain,
        };
        let checks = auth.verify(&input, raw).await;
        Ok(Authentication::from_checks(checks, from.domain(), hosted))
    }
}

/// What the From domain's DMARC policy makes of a mail (`loft serve --dmarc`).
enum DmarcAction {
    Deliver,
    /// `p=reject` and the mail failed: refused (`550 5.7.1`), nothing stored.
    Refuse(Error),
    /// `p=quarantine` and the mail failed: every copy waits for a reviewer.
    Hold(HoldReason),
}

impl Loft {
    /// DMARC enforcement: only a `fail` (a record was found and neither an aligned DKIM
    /// signature nor aligned SPF passed) with a `reject` or `quarantine` policy acts; an
    /// undecided DNS answer (`temperror`) never does, nor does anything under `--dmarc mark`.
    fn dmarc_action(&self, authentication: &Authentication, from_domain: &str) -> DmarcAction {
        let Some(checks) = &authentication.checks else {
            return DmarcAction::Deliver;
        };
        if self.config.dmarc != DmarcEnforcement::Enforce || checks.dmarc != CheckResult::Fail {
            return DmarcAction::Deliver;
        }
        match checks.dmarc_policy {
            Some(DmarcPolicy::Reject) => DmarcAction::Refuse(Error::policy_denied(
                "dmarc_rejected",
                format!("the mail fails DMARC for {from_domain}, whose policy is to reject such mail"),
            )),
            Some(DmarcPolicy::Quarantine) => DmarcAction::Hold(HoldReason {
                kind: HoldKind::Dmarc,
                detail: format!(
                    "the mail fails DMARC for {from_domain}, whose policy asks receivers to quarantine such mail: \
                     a reviewer must release it"
                ),
                credential: None,
                encoding: None,
                rule: None,
                addresses: vec![],
            }),
            Some(DmarcPolicy::None) | None => DmarcAction::Deliver,
        }
    }
}

/// Whether `identity`'s receive rules refuse mail from `sender` (a `hold` rule lets the mail in:
/// its copy waits for a reviewer, see `service/inbound_holds.rs`).
fn refuses(rules: &[crate::rules::Rule], identity: &IdentityId, sender: &EmailAddress) -> bool {
    matches!(
        evaluate(rules, identity, RuleDirection::Receive, sender),
        Verdict::Blocked(_) | Verdict::NotAllowed(_)
    )
}

fn unknown_recipient(address: &EmailAddress) -> Error {
    Error::invalid(
        "unknown_recipient",
        format!("no mailbox here has the address {address}"),
    )
}

/// Names no rule, identity or pattern: the sender learns only that it was refused.
fn sender_refused() -> Error {
    Error::policy_denied("sender_refused", "the recipient does not accept mail from this sender")
}

fn mailbox_full() -> Error {
    Error::forbidden("quota_exceeded", "the recipient's mailbox is full; try again later")
}

/// The audit row of a received mail: done by Loft itself (no identity acted), from the
/// client's address. The one place an inbound [`AuditEntry`] is written out field by field.
fn inbound_audit(
    at: Timestamp,
    remote_addr: Option<String>,
    target: Option<String>,
    details: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        at,
        actor_kind: ActorKind::System,
        actor_identity_id: None,
        key_id: None,
        action: "mail.receive".into(),
        target,
        outcome: Outcome::Ok,
        request_id: None,
        remote_addr,
        details,
        events: Vec::new(),
    }
}

/// `raw` with a `Received` trace header in front (RFC 5321 section 4.4), naming the client and
/// this server. Names and addresses that could break the header are left out.
fn with_received_header(raw: &[u8], envelope: &Envelope, domain: &str, id: &str, now: Timestamp) -> Vec<u8> {
    let safe = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii_graphic() && !matches!(c, '(' | ')' | ';' | '<' | '>'))
            .take(255)
            .collect::<String>()
    };
    let helo = safe(&envelope.helo);
    let ip = envelope.client_ip.as_deref().map(safe).unwrap_or_default();
    let date = chrono::DateTime::from_timestamp_micros(now.as_micros())
        .map(|t| t.to_rfc2822())
        .unwrap_or_default();
    let id: String = safe(id).chars().take(64).collect();
    let header = format!(
        "Received: from {} ([{}])\r\n\tby {} (Loft) with ESMTP id {};\r\n\t{}\r\n",
        if helo.is_empty() { "unknown" } else { helo.as_str() },
        ip,
        safe(domain),
        id,
        date
    );
    let mut out = Vec::with_capacity(header.len() + raw.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(raw);
    out
}
