//! Held-mail notices by mail ([`crate::notices`]): a reviewer's setting, and the job that
//! writes and delivers the notices.

use super::{Actor, Loft};
use crate::address::EmailAddress;
use crate::audit::{AuditEntry, Outcome};
use crate::events::{EventKind, NewEvent};
use crate::identity::Identity;
use crate::ids::{IdentityId, MessageId, ThreadId};
use crate::jobs::Job;
use crate::keys::Scope;
use crate::mail::{
    Authentication, Delivery, DeliveryStatus, Folder, InboundMail, MailContent, MailCopy, NewMail, Verdict,
};
use crate::notices::{
    CONFIRMATION_ATTEMPTS, CONFIRMATION_INTERVAL_SECS, CONFIRMATION_TTL_SECS, Confirmed, NOTICE_SENDER,
    NoticeConfirmation, NoticeJob, confirmation_code_hash,
};
use crate::oversight::{Approval, ApprovalStatus, HoldDirection, HoldKind};
use crate::runner::JobError;
use crate::time::Timestamp;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// `GET` and `PUT /v0/oversight/notices`: where the reviewer's notices of held mail go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NoticeSetting {
    /// Where notices go: the reviewer's own mailbox here, or an outside address they confirmed;
    /// `null`: notices by mail are off.
    pub address: Option<EmailAddress>,
    /// When the setting last changed (`null` when never set).
    pub updated_at: Option<Timestamp>,
    /// An outside address waiting for the code mailed there; until it is confirmed, notices
    /// keep going to `address`.
    pub pending: Option<PendingAddress>,
}

/// An outside notice address waiting for its code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingAddress {
    pub address: EmailAddress,
    /// The code works until then.
    pub expires_at: Timestamp,
}

/// `PUT /v0/oversight/notices`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetNoticeRequest {
    /// The reviewer's own address here (used at once), or an outside address (a code is mailed
    /// there first; `POST /v0/oversight/notices/confirm` with it makes it the address); `null`
    /// or blank turns notices off.
    #[cfg_attr(feature = "openapi", schema(max_length = 254))]
    pub address: Option<String>,
}

/// `POST /v0/oversight/notices/confirm`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConfirmNoticeRequest {
    /// The code from the confirmation mail.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 32))]
    pub code: String,
}

/// Whether `i` may still be told of held mail: active, not paused, holding `oversight`.
fn still_reviewer(i: &Identity) -> bool {
    i.is_active() && i.paused_at.is_none() && i.scopes.contains(Scope::Oversight)
}

impl Loft {
    /// The signed-in reviewer's notice setting. Reviewers only (an identity key with
    /// `oversight`): the operator is not an identity and has no notices.
    pub async fn held_mail_notice(&self, actor: &Actor) -> Result<NoticeSetting> {
        let me = actor.require(Scope::Oversight)?;
        self.notice_setting(&me.id).await
    }

    async fn notice_setting(&self, me: &IdentityId) -> Result<NoticeSetting> {
        let now = self.clock.now();
        let current = self.store.held_mail_notice(me).await?;
        let pending = self
            .store
            .notice_confirmation(me)
            .await?
            .filter(|c| c.expires_at > now)
            .map(|c| PendingAddress {
                address: c.address,
                expires_at: c.expires_at,
            });
        Ok(NoticeSetting {
            address: current.as_ref().map(|n| n.address.clone()),
            updated_at: current.map(|n| n.updated_at),
            pending,
        })
    }

    /// Sets where the reviewer is told of held mail, or turns notices off (`None` or blank).
    /// - The reviewer's own address here: used at once (audited `console.notices`).
    /// - Another identity's address: refused (`notice_address_not_yours`): its mailbox would
    ///   learn what reviewers see of every held mail.
    /// - An address at a hosted domain that no identity has: refused
    ///   (`notice_address_not_hosted`).
    /// - An outside address: a code goes there, as mail from the reviewer's own address through
    ///   the outbound queue, and the address is used once the code comes back
    ///   ([`Loft::confirm_held_mail_notice`]); meanwhile the setting is unchanged. Refused while
    ///   outgoing mail is frozen, when the reviewer's send rules do not allow the address plainly
    ///   (`notice_address_not_allowed`), when it is suppressed, and within a minute of the
    ///   previous code (`too_many_requests`).
    pub async fn set_held_mail_notice(&self, actor: &Actor, address: Option<&str>) -> Result<NoticeSetting> {
        let me = actor.require(Scope::Oversight)?.clone();
        let now = self.clock.now();
        let Some(a) = address.map(str::trim).filter(|a| !a.is_empty()) else {
            let audit = actor.audit(
                now,
                "console.notices",
                Some(me.id.to_string()),
                serde_json::json!({ "address": null }),
            );
            self.store.set_held_mail_notice(&me.id, None, audit).await?;
            return self.notice_setting(&me.id).await;
        };
        let parsed = EmailAddress::parse(a)?;
        if parsed == me.address {
            let audit = actor.audit(
                now,
                "console.notices",
                Some(me.id.to_string()),
                serde_json::json!({ "address": parsed }),
            );
            self.store.set_held_mail_notice(&me.id, Some(&parsed), audit).await?;
            return self.notice_setting(&me.id).await;
        }
        if !self
            .store
            .resolve_addresses(std::slice::from_ref(&parsed))
            .await?
            .is_empty()
        {
            // Another identity's mailbox would hand what reviewers see of every held mail
            // (subjects, senders, the guard's findings) to whoever reads it, an agent included.
            return Err(Error::invalid(
                "notice_address_not_yours",
                format!("{parsed} is another identity's address: notices go to your own mailbox or an outside address you confirm"),
            )
            .with_hint(format!("use your own address, {}, or an address outside this server", me.address)));
        }
        if self.is_hosted(parsed.domain()).await? {
            return Err(Error::invalid(
                "notice_address_not_hosted",
                format!("{parsed} is at a domain of this server but no identity has it"),
            )
            .with_hint(format!("use your own address, {}", me.address)));
        }
        self.outside_notices_allowed(&me, &parsed).await?;
        if let Some(c) = self.store.notice_confirmation(&me.id).await?
            && c.expires_at > now
            && now.as_secs() - c.created_at.as_secs() < CONFIRMATION_INTERVAL_SECS
        {
            let wait = CONFIRMATION_INTERVAL_SECS - (now.as_secs() - c.created_at.as_secs());
            return Err(Error::too_many(
                "too_many_requests",
                format!("a code went to {} less than a minute ago", c.address),
                u64::try_from(wait.max(1)).unwrap_or(1),
            ));
        }
        let code = confirmation_code(self.random.as_ref());
        let text = format!(
            "Someone signed in to the Loft console at {console} as the reviewer {me} asked for notices of held \
             mail to go to this address.\n\nThe code: {code}\n\nType it on the console's Notifications page \
             within {minutes} minutes. If it was not you, ignore this mail: nothing will be sent here.\n",
            console = self.config.console_url.as_deref().unwrap_or("this server"),
            me = me.address,
            minutes = CONFIRMATION_TTL_SECS / 60,
        );
        let mail = self.notice_out(
            &me,
            &parsed,
            "Confirm where Loft sends notices of held mail".into(),
            text,
            now,
        )?;
        let sent = mail.sender_copy.id.clone();
        let send_audit = actor.audit(
            now,
            "console.notices.code_sent",
            Some(me.id.to_string()),
            serde_json::json!({ "address": parsed, "message": sent }),
        );
        self.store.send_mail(mail, send_audit).await?;
        self.bump_job_tick();
        let c = NoticeConfirmation {
            identity_id: me.id.clone(),
            address: parsed.clone(),
            code_hash: confirmation_code_hash(&me.id, &code),
            created_at: now,
            expires_at: now.plus_secs(CONFIRMATION_TTL_SECS),
            attempts: 0,
        };
        let audit = actor.audit(
            now,
            "console.notices.pending",
            Some(me.id.to_string()),
            serde_json::json!({ "address": parsed, "expires_at": c.expires_at }),
        );
        self.store.put_notice_confirmation(c, audit).await?;
        self.notice_setting(&me.id).await
    }

    /// Confirms the pending outside address with the code mailed there: it becomes the notice
    /// address (audited `console.notices`). A wrong code is audited `console.notices.confirm`
    /// (denied); after [`CONFIRMATION_ATTEMPTS`] wrong codes, or after
    /// [`CONFIRMATION_TTL_SECS`], a new code must be asked for.
    pub async fn confirm_held_mail_notice(&self, actor: &Actor, code: &str) -> Result<NoticeSetting> {
        let me = actor.require(Scope::Oversight)?.clone();
        let code = code.trim();
        if code.is_empty() || code.len() > 32 {
            return Err(Error::invalid(
                "invalid_code",
                "the code is the digits from the confirmation mail",
            ));
        }
        let now = self.clock.now();
        let Some(pending) = self.store.notice_confirmation(&me.id).await? else {
            return Err(Error::conflict(
                "no_pending_address",
                "no outside address is waiting for a code: set one first",
            ));
        };
        let ok = actor.audit(
            now,
            "console.notices",
            Some(me.id.to_string()),
            serde_json::json!({ "address": pending.address, "confirmed": true }),
        );
        let mut failed = actor.audit(
            now,
            "console.notices.confirm",
            Some(me.id.to_string()),
            serde_json::json!({ "address": pending.address }),
        );
        failed.outcome = Outcome::Denied;
        match self
            .store
            .confirm_notice_address(
                &me.id,
                &confirmation_code_hash(&me.id, code),
                CONFIRMATION_ATTEMPTS,
                ok,
                failed,
            )
            .await?
        {
            Confirmed::Yes(_) => self.notice_setting(&me.id).await,
            Confirmed::NoneWaiting => Err(Error::conflict(
                "no_pending_address",
                "no outside address is waiting for a code: set one first",
            )),
            Confirmed::Expired => Err(Error::conflict(
                "code_expired",
                format!(
                    "the code for {} has expired: set the address again for a new one",
                    pending.address
                ),
            )),
            Confirmed::WrongCode { attempts_left: 0 } => Err(Error::conflict(
                "code_attempts_exhausted",
                format!(
                    "too many wrong codes for {}: set the address again for a new one",
                    pending.address
                ),
            )),
            Confirmed::WrongCode { attempts_left } => Err(Error::invalid(
                "wrong_code",
                format!(
                    "that is not the code sent to {} ({attempts_left} tries left)",
                    pending.address
                ),
            )),
        }
    }

    /// Whether notices may go to `to`, outside, now: outbound mail is configured, outgoing mail
    /// is not frozen, the
    /// reviewer's send rules allow the address plainly (a rule that holds or blocks it, or an
    /// allow list without it, keeps notices in), and it is not suppressed.
    async fn outside_notices_allowed(&self, me: &Identity, to: &EmailAddress) -> Result<()> {
        if !self.outbound {
            return Err(Error::policy_denied(
                "outbound_not_configured",
                format!("this server does not send mail outside (outbound SMTP is not configured), so it cannot send to {to}"),
            )
            .with_hint(format!("use your own address here, {}", me.address)));
        }
        if self.store.outgoing_frozen().await?.is_some() {
            return Err(Error::forbidden(
                "outgoing_frozen",
                "outgoing mail is frozen: no notice goes outside until it is unfrozen",
            ));
        }
        let rules = self.store.rules_in_effect(std::slice::from_ref(&me.id)).await?;
        if !matches!(
            crate::rules::evaluate(&rules, &me.id, crate::rules::RuleDirection::Send, to),
            crate::rules::Verdict::Allowed(_)
        ) {
            return Err(Error::policy_denied(
                "notice_address_not_allowed",
                format!(
                    "the send rules in effect for {} do not let mail go to {to} without a reviewer",
                    me.address
                ),
            ));
        }
        self.check_not_suppressed(std::slice::from_ref(to)).await
    }

    /// A mail from the reviewer's own address (sender name "Loft console") to an outside
    /// address, through the outbound queue like any send: a copy in the reviewer's `sent`
    /// folder carries its delivery report, a bounce comes back to the reviewer's inbox.
    fn notice_out(
        &self,
        me: &Identity,
        to: &EmailAddress,
        subject: String,
        text: String,
        now: Timestamp,
    ) -> Result<NewMail> {
        let r = self.random.as_ref();
        let content = MailContent {
            message_id: format!("{}@{}", crate::random::base32_string(r, 26), self.config.domain),
            in_reply_to: None,
            references: vec![],
            from: me.address.clone(),
            from_name: Some("Loft console".into()),
            to: vec![to.clone()],
            cc: vec![],
            bcc: vec![],
            subject,
            extracted_text: text.clone(),
            text,
            html: None,
            authentication: Authentication::internal(),
            created_at: now,
        };
        let raw = crate::mail::build_rfc5322(&content, &[])?;
        let sender_copy = MailCopy {
            id: MessageId::generate(r),
            owner: me.id.clone(),
            folder: Folder::Sent,
            new_thread_id: ThreadId::generate(r),
        };
        let delivery = vec![Delivery {
            recipient: to.clone(),
            status: DeliveryStatus::Queued,
            detail: "queued for delivery by SMTP".into(),
        }];
        let jobs = crate::mail::delivery_jobs(&me.id, &sender_copy.id, &delivery, now);
        Ok(NewMail {
            content,
            raw,
            sender_copy,
            recipient_copies: vec![],
            held_copies: vec![],
            delivery,
            jobs,
            hold: None,
            idempotency: None,
            consumes_draft: None,
            send_at: None,
            schedule: None,
            contacts: vec![],
            attachments: vec![],
        })
    }

    /// The [`crate::notices::NOTICE_JOB`]: splits an approval's job into one per reviewer who
    /// asked, or delivers one reviewer's notice. A mail decided before its notice went needs
    /// none.
    pub(crate) async fn run_notice_job(&self, job: &Job) -> std::result::Result<(), JobError> {
        let p: NoticeJob = serde_json::from_str(&job.payload)
            .map_err(|e| JobError::Permanent(format!("a notice job's payload does not parse: {e}")))?;
        let id = crate::ids::ApprovalId::parse(&p.approval_id).map_err(|e| JobError::Permanent(e.to_string()))?;
        let now = self.clock.now();
        let Some(approval) = self.store.get_approval(&id).await? else {
            return Ok(());
        };
        let approval = approval.as_of(now);
        if approval.status != ApprovalStatus::Pending {
            return Ok(());
        }
        let Some(reviewer) = p.reviewer else {
            for n in self.store.held_mail_notices().await? {
                if self
                    .store
                    .get_identity(&n.identity_id)
                    .await?
                    .is_some_and(|i| still_reviewer(&i))
                {
                    let one = NoticeJob {
                        approval_id: p.approval_id.clone(),
                        reviewer: Some(n.identity_id),
                    };
                    self.store.enqueue_job(one.job(now)).await?;
                }
            }
            self.bump_job_tick();
            return Ok(());
        };
        let Some(setting) = self.store.held_mail_notice(&reviewer).await? else {
            return Ok(()); // turned off meanwhile
        };
        let Some(me) = self.store.get_identity(&reviewer).await?.filter(still_reviewer) else {
            return Ok(());
        };
        let hosted = self
            .store
            .resolve_addresses(std::slice::from_ref(&setting.address))
            .await?
            .into_iter()
            .next();
        let owner = match hosted {
            Some((_, owner)) if owner == me.id => owner,
            Some(_) => {
                return Err(JobError::Permanent(format!(
                    "{} is another identity's address now; no notice goes there",
                    setting.address
                )));
            }
            None if self.is_hosted(setting.address.domain()).await? => {
                return Err(JobError::Permanent(format!(
                    "{} is at a domain of this server but no identity has it",
                    setting.address
                )));
            }
            None => return self.notice_outside(&approval, &me, &setting.address, now).await,
        };
        let notice = self.held_mail_notice_mail(&approval, &setting.address, &owner, now)?;
        let notice_id = notice.copies[0].id.clone();
        let audit = AuditEntry::system(
            now,
            "approval.notice",
            &approval.id,
            serde_json::json!({ "reviewer": reviewer, "to": setting.address, "notice": notice_id }),
        )
        .with_event(NewEvent::new(
            EventKind::MessageReceived,
            &owner,
            serde_json::json!({
                "message_id": notice_id, "from": notice.content.from, "subject": notice.content.subject,
                "verdict": notice.content.authentication.verdict,
            }),
        ));
        let woken = super::events::raised_by(&audit);
        self.store.receive_mail(notice, audit).await?;
        self.wake(&woken);
        Ok(())
    }

    /// A notice to the reviewer's confirmed outside address, as mail from their own address
    /// through the outbound queue. Not sent (and audited as denied) while outgoing mail is
    /// frozen, or when the reviewer's send rules or the suppression list now keep the address
    /// out.
    async fn notice_outside(
        &self,
        approval: &Approval,
        me: &Identity,
        to: &EmailAddress,
        now: Timestamp,
    ) -> std::result::Result<(), JobError> {
        let mut audit = AuditEntry::system(
            now,
            "approval.notice",
            &approval.id,
            serde_json::json!({ "reviewer": me.id, "to": to }),
        );
        if let Err(e) = self.outside_notices_allowed(me, to).await {
            audit.outcome = Outcome::Denied;
            audit.details["error"] = serde_json::json!(e.code());
            self.store.append_audit(audit).await?;
            return Ok(());
        }
        let subject: String = format!("Held for review: {}", shown_subject(approval, true))
            .chars()
            .take(200)
            .collect();
        let text = notice_text(approval, self.config.console_url.as_deref(), true);
        let mail = self
            .notice_out(me, to, subject, text, now)
            .map_err(|e| JobError::Permanent(format!("building a held-mail notice: {e}")))?;
        audit.details["notice"] = serde_json::json!(mail.sender_copy.id);
        self.store.send_mail(mail, audit).await?;
        self.bump_job_tick();
        Ok(())
    }

    /// The notice itself: what is held and why, and where to look; nothing of the held mail's
    /// body, and no link but the console page (which asks for sign-in).
    fn held_mail_notice_mail(
        &self,
        a: &Approval,
        to: &EmailAddress,
        owner: &IdentityId,
        now: Timestamp,
    ) -> std::result::Result<InboundMail, JobError> {
        use mail_builder::MessageBuilder;
        use mail_builder::headers::address::Address;
        let r = self.random.as_ref();
        let domain = &self.config.domain;
        let from = EmailAddress::parse(&format!("{NOTICE_SENDER}@{domain}"))
            .map_err(|e| JobError::Permanent(e.to_string()))?;
        let subject: String = format!("Held for review: {}", shown_subject(a, false))
            .chars()
            .take(200)
            .collect();
        let text = notice_text(a, self.config.console_url.as_deref(), false);
        let message_id = format!("{}@{}", crate::random::base32_string(r, 26), domain);
        let raw = MessageBuilder::new()
            .message_id(message_id.as_str())
            .from(Address::new_address(Some("Loft console"), from.as_str()))
            .to(Address::new_address(None::<&str>, to.as_str()))
            .subject(subject.as_str())
            .date(now.as_secs())
            .text_body(text.as_str())
            .write_to_vec()
            .map_err(|e| JobError::Permanent(format!("building a held-mail notice: {e}")))?;
        let content = MailContent {
            message_id,
            in_reply_to: None,
            references: vec![],
            from,
            from_name: Some("Loft console".into()),
            to: vec![to.clone()],
            cc: vec![],
            bcc: vec![],
            subject,
            extracted_text: text.clone(),
            text,
            html: None,
            authentication: Authentication {
                verdict: Verdict::InternalVerified,
                internal: true,
                summary: "held-mail notice written by this Loft server for a reviewer".into(),
                checks: None,
            },
            created_at: now,
        };
        Ok(InboundMail {
            content,
            raw,
            copies: vec![MailCopy {
                id: MessageId::generate(r),
                owner: owner.clone(),
                folder: Folder::Inbox,
                new_thread_id: ThreadId::generate(r),
            }],
            // A notice to a reviewer: never itself held.
            held_copies: vec![],
            attachments: vec![],
            jobs: vec![],
        })
    }
}

/// A confirmation code: 8 decimal digits.
fn confirmation_code(r: &dyn crate::random::Random) -> String {
    let mut b = [0u8; 8];
    r.fill(&mut b);
    format!("{:08}", u64::from_le_bytes(b) % 100_000_000)
}

/// The notice jobs of new holds (one per approval; the runner finds who to tell).
pub(super) fn notice_jobs<'a>(
    holds: impl Iterator<Item = &'a crate::ids::ApprovalId>,
    now: Timestamp,
) -> Vec<crate::jobs::NewJob> {
    holds.map(|id| NoticeJob::for_approval(id.as_str(), now)).collect()
}

/// A header value on one line (a subject is one already; this is belt and braces).
fn one_line(s: &str) -> String {
    let s = s.replace(['\r', '\n'], " ");
    if s.trim().is_empty() { "(no subject)".into() } else { s }
}

/// The held mail's subject as a notice shows it. A notice leaving the server (`outside`) for
/// a mail the exfiltration guard holds shows none: the guard found a credential's value in
/// that mail, and a subject can be where it is.
fn shown_subject(a: &Approval, outside: bool) -> String {
    if outside && a.reasons.iter().any(|r| r.kind == HoldKind::ExfiltrationGuard) {
        "(subject withheld: the mail contains a credential's value)".into()
    } else {
        one_line(&a.subject)
    }
}

/// The notice's text: subject (see [`shown_subject`]), sender, recipients, reasons, the
/// console link.
pub(crate) fn notice_text(a: &Approval, console_url: Option<&str>, outside: bool) -> String {
    use std::fmt::Write as _;
    let list = |v: &[EmailAddress]| v.iter().map(EmailAddress::as_str).collect::<Vec<_>>().join(", ");
    let mut t = String::new();
    let direction = match a.direction {
        HoldDirection::Send => "An outgoing mail",
        HoldDirection::Receive => "An incoming mail",
    };
    let _ = writeln!(t, "{direction} is held until a reviewer decides.\n");
    let _ = writeln!(t, "Subject: {}", shown_subject(a, outside));
    let _ = writeln!(t, "From: {}", a.from);
    let _ = writeln!(t, "To: {}", list(&a.to));
    if !a.cc.is_empty() {
        let _ = writeln!(t, "Cc: {}", list(&a.cc));
    }
    let _ = writeln!(t, "Expires: {}\n", a.expires_at.to_rfc3339());
    let _ = writeln!(t, "Why it is held:");
    for r in &a.reasons {
        let kind = serde_json::to_value(r.kind)
            .ok()
            .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
            .unwrap_or_default();
        let _ = write!(t, "- {kind}: {}", one_line(&r.detail));
        if let Some(c) = &r.credential {
            let _ = write!(t, " (credential {c})");
        }
        t.push('\n');
    }
    match console_url {
        Some(base) => {
            let _ = writeln!(
                t,
                "\nOpen it in the console (you will be asked to sign in):\n{}",
                crate::console::approval_url(base, a.id.as_str())
            );
        }
        None => {
            let _ = writeln!(t, "\nOpen the Approvals page of the console to see it.");
        }
    }
    let _ = writeln!(
        t,
        "\nThe mail itself is not in this notice. You get this because you asked for held-mail \
         notices on the console's Notifications page; turn them off there."
    );
    t
}
