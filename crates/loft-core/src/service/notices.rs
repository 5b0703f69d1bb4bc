//! Held-mail notices by mail ([`crate::notices`]): a reviewer's setting, and the job that
//! writes and delivers the notices.

use super::{Actor, Loft};
use crate::address::EmailAddress;
use crate::audit::{ActorKind, AuditEntry, Outcome};
use crate::events::{EventKind, NewEvent};
use crate::identity::Identity;
use crate::ids::{IdentityId, MessageId, ThreadId};
use crate::jobs::Job;
use crate::keys::Scope;
use crate::mail::{Authentication, Folder, InboundMail, MailContent, MailCopy, Verdict};
use crate::notices::{HeldMailNotice, NOTICE_SENDER, NoticeJob};
use crate::oversight::{Approval, ApprovalStatus, HoldDirection};
use crate::runner::JobError;
use crate::time::Timestamp;
use crate::{Error, Result};

/// Whether `i` may still be told of held mail: active, not paused, holding `oversight`.
fn still_reviewer(i: &Identity) -> bool {
    i.is_active() && i.paused_at.is_none() && i.scopes.contains(Scope::Oversight)
}

impl Loft {
    /// The signed-in reviewer's notice address, if set. Reviewers only (an identity key with
    /// `oversight`): the operator is not an identity and has no notices.
    pub async fn held_mail_notice(&self, actor: &Actor) -> Result<Option<HeldMailNotice>> {
        let me = actor.require(Scope::Oversight)?;
        self.store.held_mail_notice(&me.id).await
    }

    /// Sets the reviewer's notice address (`Some`: the reviewer's own address, the only mailbox
    /// that may receive what reviewers see of every held mail) or turns notices off (`None` or
    /// blank); audited as `console.notices`.
    pub async fn set_held_mail_notice(&self, actor: &Actor, address: Option<&str>) -> Result<Option<HeldMailNotice>> {
        let me = actor.require(Scope::Oversight)?.clone();
        let address = match address.map(str::trim).filter(|a| !a.is_empty()) {
            None => None,
            Some(a) => {
                let parsed = EmailAddress::parse(a)?;
                if parsed != me.address {
                    // Another identity's mailbox would hand what reviewers see of every held
                    // mail (subjects, senders, the guard's findings) to whoever reads it, an
                    // agent included; an outside address needs the outbound path.
                    let hosted = !self
                        .store
                        .resolve_addresses(std::slice::from_ref(&parsed))
                        .await?
                        .is_empty();
                    return Err(if hosted {
                        Error::invalid(
                            "notice_address_not_yours",
                            format!("{parsed} is another identity's address: notices go to your own mailbox"),
                        )
                        .with_hint(format!("use your own address, {}", me.address))
                    } else {
                        Error::invalid(
                            "notice_address_not_hosted",
                            format!("{parsed} is not an address hosted on this server"),
                        )
                        .with_hint(format!(
                            "notices go to your own mailbox on this server ({}); outside addresses are not supported yet",
                            me.address
                        ))
                    });
                }
                Some(parsed)
            }
        };
        let audit = actor.audit(
            self.clock.now(),
            "console.notices",
            Some(me.id.to_string()),
            serde_json::json!({ "address": address }),
        );
        self.store.set_held_mail_notice(&me.id, address.as_ref(), audit).await?;
        self.store.held_mail_notice(&me.id).await
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
        if !self
            .store
            .get_identity(&reviewer)
            .await?
            .is_some_and(|i| still_reviewer(&i))
        {
            return Ok(());
        }
        let Some((_, owner)) = self
            .store
            .resolve_addresses(std::slice::from_ref(&setting.address))
            .await?
            .into_iter()
            .next()
        else {
            return Err(JobError::Permanent(format!(
                "{} is no longer hosted on this server",
                setting.address
            )));
        };
        let notice = self.held_mail_notice_mail(&approval, &setting.address, &owner, now)?;
        let notice_id = notice.copies[0].id.clone();
        let audit = AuditEntry {
            at: now,
            actor_kind: ActorKind::System,
            actor_identity_id: None,
            key_id: None,
            action: "approval.notice".into(),
            target: Some(approval.id.to_string()),
            outcome: Outcome::Ok,
            request_id: None,
            remote_addr: None,
            details: serde_json::json!({ "reviewer": reviewer, "to": setting.address, "notice": notice_id }),
            events: Vec::new(),
        }
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
        let subject: String = format!("Held for review: {}", one_line(&a.subject))
            .chars()
            .take(200)
            .collect();
        let text = notice_text(a, self.config.console_url.as_deref());
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

/// The notice's text: subject, sender, recipients, reasons, the console link.
pub(crate) fn notice_text(a: &Approval, console_url: Option<&str>) -> String {
    use std::fmt::Write as _;
    let list = |v: &[EmailAddress]| v.iter().map(EmailAddress::as_str).collect::<Vec<_>>().join(", ");
    let mut t = String::new();
    let direction = match a.direction {
        HoldDirection::Send => "An outgoing mail",
        HoldDirection::Receive => "An incoming mail",
    };
    let _ = writeln!(t, "{direction} is held until a reviewer decides.\n");
    let _ = writeln!(t, "Subject: {}", one_line(&a.subject));
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
