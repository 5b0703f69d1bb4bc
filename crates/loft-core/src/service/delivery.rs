//! Outbound delivery's use cases (`crate::delivery`): what the SMTP delivery worker sends for a
//! job and how it records each outcome (delivered, retried, bounced with a notice in the
//! sender's inbox and, for a hard bounce, the address suppressed), and the suppression list
//! for the operator. The network side (MX, smarthost, SMTP) is `loft-smtp/src/outbound.rs`.

use serde::{Deserialize, Serialize};

use super::{Actor, Loft, Page, page_limit};
use crate::address::EmailAddress;
use crate::audit::AuditEntry;
use crate::delivery::{DeliveryUpdate, MAILER_DAEMON, Suppression};
use crate::events::{EventKind, NewEvent};
use crate::ids::{IdentityId, MessageId, ThreadId};
use crate::jobs::Job;
use crate::mail::{
    self, Authentication, Delivery, DeliveryJob, DeliveryStatus, Folder, InboundMail, MailContent, MailCopy, Verdict,
};
use crate::oversight::{ApprovalQuery, ApprovalStatus, OversightMode};
use crate::time::Timestamp;
use crate::{Error, Result};

/// `GET /v0/suppressions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListSuppressionsParams {
    /// 1 to 200, default 50.
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// One remote recipient's mail, ready for the SMTP worker.
#[derive(Debug, Clone)]
pub struct OutgoingDelivery {
    /// The sending identity (the sender copy's owner).
    pub owner: IdentityId,
    /// The sender's copy, which carries the delivery report.
    pub message: MessageId,
    /// The envelope sender (`MAIL FROM`): the identity's address, so bounces come back here.
    pub from: EmailAddress,
    pub recipient: EmailAddress,
    /// The RFC 5322 message as stored, with `X-Loft-Identity` and `X-Loft-Oversight` in front;
    /// DKIM signing (the `seal_outgoing` step of the worker) comes after.
    pub bytes: Vec<u8>,
    /// When the mail was sent (the delivery lifetime counts from here).
    pub sent_at: Timestamp,
    /// The mail's `Message-ID` and subject, for the notice of a bounce.
    pub message_id: String,
    pub subject: String,
}

impl Loft {
    /// What to send for a delivery job, or `None` when there is nothing to do (the sender copy
    /// is gone, or the recipient's entry is no longer `queued`: another worker finished it; or
    /// the recipient was suppressed since the mail was written: it is recorded `bounced`
    /// here, with its notice).
    pub async fn prepare_delivery(&self, job: &Job) -> Result<Option<OutgoingDelivery>> {
        let payload: DeliveryJob = serde_json::from_str(&job.payload)
            .map_err(|e| Error::internal(format!("delivery job {} has a bad payload: {e}", job.id)))?;
        let Some(owner) = job.owner.clone() else {
            return Err(Error::internal(format!("delivery job {} names no sender", job.id)));
        };
        let Some(copy) = self.store.get_message(&owner, &payload.message).await? else {
            return Ok(None);
        };
        if !copy
            .delivery
            .iter()
            .any(|d| d.recipient == payload.recipient && d.status == DeliveryStatus::Queued)
        {
            return Ok(None);
        }
        let Some(raw) = self.store.raw_message(&owner, &payload.message).await? else {
            return Ok(None);
        };
        let identity = self.store.get_identity(&owner).await?;
        let oversight = self
            .oversight_header(&copy.id, identity.as_ref().map(|i| i.oversight_mode))
            .await?;
        let mut bytes = format!(
            "X-Loft-Identity: {} ({})\r\nX-Loft-Oversight: {}\r\n",
            copy.from,
            owner.as_str(),
            oversight
        )
        .into_bytes();
        bytes.extend_from_slice(&raw);
        let d = OutgoingDelivery {
            owner,
            message: copy.id,
            from: copy.from,
            recipient: payload.recipient,
            bytes,
            sent_at: copy.created_at,
            message_id: copy.message_id,
            subject: copy.subject,
        };
        // The send checked the suppression list, but mail held for a reviewer, scheduled, or
        // waiting for a retry may reach its delivery after the address was suppressed: checked
        // again here, where every path to the network passes, it bounces without a try.
        if let Some(s) = self
            .store
            .suppressed(std::slice::from_ref(&d.recipient))
            .await?
            .into_iter()
            .next()
        {
            let reason = format!(
                "not sent: {} was put on the suppression list at {} (its server refused mail for good: {}) \
                 before this mail went out; the operator lifts a suppression with `loft suppressions remove`",
                s.address,
                s.created_at.to_rfc3339(),
                clip(&s.reason).chars().take(200).collect::<String>()
            );
            self.delivery_bounced(&d, &reason, false).await?;
            return Ok(None);
        }
        Ok(Some(d))
    }

    /// `approved-by <reviewer>` when a reviewer approved the mail, else the sender's mode
    /// (`monitored`, `autonomous`, ...). Header-safe: addresses are plain ASCII.
    async fn oversight_header(&self, message: &MessageId, mode: Option<OversightMode>) -> Result<String> {
        let query = ApprovalQuery {
            message: Some(message.clone()),
            now: self.clock.now(),
            limit: 1,
            ..ApprovalQuery::default()
        };
        if let Some(a) = self.store.list_approvals(query).await?.items.pop()
            && a.status == ApprovalStatus::Approved
        {
            let who = a.decided_by.as_ref().map_or_else(
                || "a reviewer".to_owned(),
                |d| match (&d.address, d.kind.as_str()) {
                    (Some(addr), _) => addr.to_string(),
                    (None, kind) => kind.to_owned(),
                },
            );
            return Ok(format!("approved-by {who}"));
        }
        Ok(mode.map_or("unknown", OversightMode::as_str).to_owned())
    }

    /// The remote server accepted the mail (`reply`, e.g. `250 2.0.0 queued as ...`): the
    /// recipient becomes `delivered`, with `message.delivered` for the sender. `false` when
    /// another worker recorded an outcome first.
    pub async fn delivery_succeeded(&self, d: &OutgoingDelivery, reply: &str) -> Result<bool> {
        let now = self.clock.now();
        let detail = format!("accepted by the recipient's server: {}", clip(reply));
        let audit = AuditEntry::system(
            now,
            "mail.delivered",
            &d.message,
            serde_json::json!({"recipient": d.recipient, "reply": clip(reply)}),
        )
        .with_event(NewEvent::new(
            EventKind::MessageDelivered,
            &d.owner,
            serde_json::json!({"message_id": d.message, "recipient": d.recipient, "reply": clip(reply)}),
        ));
        let update = DeliveryUpdate {
            owner: d.owner.clone(),
            message: d.message.clone(),
            delivery: Delivery {
                recipient: d.recipient.clone(),
                status: DeliveryStatus::Delivered,
                detail,
            },
            notice: None,
            suppress: None,
        };
        self.record(update, Some(audit)).await
    }

    /// A temporary failure: the recipient stays `queued`, its detail says what happened and
    /// when the next attempt is. No audit row (attempts are in the jobs table).
    pub async fn delivery_deferred(&self, d: &OutgoingDelivery, reason: &str, retry_at: Timestamp) -> Result<bool> {
        let update = DeliveryUpdate {
            owner: d.owner.clone(),
            message: d.message.clone(),
            delivery: Delivery {
                recipient: d.recipient.clone(),
                status: DeliveryStatus::Queued,
                detail: format!(
                    "not delivered yet: {}; next attempt at {}",
                    clip(reason),
                    retry_at.to_rfc3339()
                ),
            },
            notice: None,
            suppress: None,
        };
        self.record(update, None).await
    }

    /// The mail cannot be delivered: refused for good (`hard`, a `5xx` reply: the address is
    /// also suppressed) or out of time. The recipient becomes `bounced`, a delivery-status
    /// notification lands in the sender's inbox, and `message.bounced` is raised.
    pub async fn delivery_bounced(&self, d: &OutgoingDelivery, reason: &str, hard: bool) -> Result<bool> {
        let now = self.clock.now();
        let reason = clip(reason);
        let notice = self.bounce_notice(d, &reason, now)?;
        let notice_id = notice.copies[0].id.clone();
        let audit = AuditEntry::system(
            now,
            "mail.bounced",
            &d.message,
            serde_json::json!({
                "recipient": d.recipient, "reason": reason, "permanent": hard,
                "notice": notice_id, "suppressed": hard,
            }),
        )
        .with_event(NewEvent::new(
            EventKind::MessageBounced,
            &d.owner,
            serde_json::json!({
                "message_id": d.message, "recipient": d.recipient, "reason": reason,
                "permanent": hard, "notice_id": notice_id,
            }),
        ))
        .with_event(NewEvent::new(
            EventKind::MessageReceived,
            &d.owner,
            serde_json::json!({
                "message_id": notice_id, "from": notice.content.from, "subject": notice.content.subject,
                "verdict": notice.content.authentication.verdict,
            }),
        ));
        let update = DeliveryUpdate {
            owner: d.owner.clone(),
            message: d.message.clone(),
            delivery: Delivery {
                recipient: d.recipient.clone(),
                status: DeliveryStatus::Bounced,
                detail: reason.clone(),
            },
            notice: Some(notice),
            suppress: hard.then(|| Suppression {
                address: d.recipient.clone(),
                reason: reason.clone(),
                identity_id: d.owner.clone(),
                message_id: d.message.clone(),
                created_at: now,
            }),
        };
        self.record(update, Some(audit)).await
    }

    async fn record(&self, update: DeliveryUpdate, audit: Option<AuditEntry>) -> Result<bool> {
        let woken = audit.as_ref().map(super::events::raised_by).unwrap_or_default();
        let done = self.store.record_delivery(update, audit).await?;
        if done {
            self.wake(&woken);
        }
        Ok(done)
    }

    /// The delivery-status notification of a bounce (RFC 3464 `multipart/report`): a
    /// human-readable part naming the recipient and the reason, the machine-readable status,
    /// and the bounced mail's headers. From `mailer-daemon@<domain>`, threaded under the
    /// bounced mail in the sender's mailbox.
    fn bounce_notice(&self, d: &OutgoingDelivery, reason: &str, now: Timestamp) -> Result<InboundMail> {
        use mail_builder::MessageBuilder;
        use mail_builder::headers::address::Address;
        use mail_builder::headers::content_type::ContentType;
        use mail_builder::mime::MimePart;
        let r = self.random.as_ref();
        let domain = &self.config.domain;
        let from = EmailAddress::parse(&format!("{MAILER_DAEMON}@{domain}"))?;
        let subject = mail::bounce_subject(&d.subject);
        let text = format!(
            "Your mail could not be delivered to {rcpt}.\n\n\
             Subject: {subject}\n\
             Reason: {reason}\n\n\
             The remote server's reply is above. {advice}\n",
            rcpt = d.recipient,
            subject = d.subject,
            advice = if reason.starts_with('5') {
                "The address is now on this server's suppression list: later mail to it is refused until the operator lifts it."
            } else {
                "Loft tried for the whole delivery lifetime without success."
            },
        );
        let status = if reason.starts_with('5') { "5.0.0" } else { "4.0.0" };
        let status = reason
            .split_whitespace()
            .nth(1)
            .filter(|s| s.len() <= 9 && s.split('.').count() == 3 && s.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
            .unwrap_or(status);
        let machine = format!(
            "Reporting-MTA: dns; {domain}\r\n\r\nFinal-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: {status}\r\nDiagnostic-Code: smtp; {diag}\r\n",
            rcpt = d.recipient,
            diag = reason.replace(['\r', '\n'], " "),
        );
        let headers_end = d
            .bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(d.bytes.len(), |p| p + 2);
        let original_headers = String::from_utf8_lossy(&d.bytes[..headers_end]).into_owned();
        let message_id = format!("{}@{}", crate::random::base32_string(r, 26), domain);
        let raw = MessageBuilder::new()
            .message_id(message_id.as_str())
            .from(Address::new_address(Some("Mail Delivery System"), from.as_str()))
            .to(Address::new_address(None::<&str>, d.from.as_str()))
            .subject(subject.as_str())
            .in_reply_to(d.message_id.as_str())
            .date(now.as_secs())
            .body(MimePart::new(
                ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
                vec![
                    MimePart::new("text/plain", text.as_str()),
                    MimePart::new(ContentType::new("message/delivery-status"), machine.into_bytes())
                        .transfer_encoding("7bit"),
                    MimePart::new(ContentType::new("text/rfc822-headers"), original_headers.into_bytes())
                        .transfer_encoding("7bit"),
                ],
            ))
            .write_to_vec()
            .map_err(|e| Error::internal(format!("building a bounce notice: {e}")))?;
        let content = MailContent {
            message_id,
            in_reply_to: Some(d.message_id.clone()),
            references: vec![d.message_id.clone()],
            from,
            from_name: Some("Mail Delivery System".into()),
            to: vec![d.from.clone()],
            cc: vec![],
            bcc: vec![],
            subject,
            extracted_text: text.clone(),
            text,
            html: None,
            authentication: Authentication {
                verdict: Verdict::InternalVerified,
                internal: true,
                summary: "delivery-status notification written by this Loft server about mail you sent".into(),
                checks: None,
            },
            created_at: now,
        };
        Ok(InboundMail {
            content,
            raw,
            copies: vec![MailCopy {
                id: MessageId::generate(r),
                owner: d.owner.clone(),
                folder: Folder::Inbox,
                new_thread_id: ThreadId::generate(r),
            }],
            // A notice about the identity's own mail: never held for a reviewer.
            held_copies: vec![],
            attachments: vec![],
            jobs: vec![],
        })
    }

    /// Refuses a send to a suppressed address, before anything is written.
    pub(super) async fn check_not_suppressed(&self, remote: &[EmailAddress]) -> Result<()> {
        if remote.is_empty() {
            return Ok(());
        }
        let found = self.store.suppressed(remote).await?;
        if let Some(s) = found.first() {
            return Err(Error::policy_denied(
                "recipient_suppressed",
                format!(
                    "{} is on this server's suppression list: its server refused mail for good ({})",
                    s.address,
                    clip(&s.reason)
                ),
            )
            .with_hint(
                "leave the address out (check it for typos); the operator lifts a suppression with \
                 `loft suppressions remove ADDRESS` (DELETE /v0/suppressions/{address})",
            ));
        }
        Ok(())
    }

    /// `GET /v0/suppressions` (operator only): the suppressed addresses in address order.
    pub async fn list_suppressions(&self, actor: &Actor, params: ListSuppressionsParams) -> Result<Page<Suppression>> {
        Self::require_operator(actor, "reading the suppression list")?;
        let limit = page_limit(params.limit)?;
        let after = params
            .cursor
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| {
                EmailAddress::parse(c)
                    .map_err(|_| Error::invalid("invalid_cursor", "the cursor is not one this server gave"))
            })
            .transpose()?;
        let mut items = self.store.list_suppressions(after.as_ref(), limit + 1).await?;
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_cursor = if more {
            items.last().map(|s| s.address.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// `DELETE /v0/suppressions/{address}` (operator only): mail to the address is accepted
    /// again.
    pub async fn remove_suppression(&self, actor: &Actor, address: &str) -> Result<Suppression> {
        Self::require_operator(actor, "lifting a suppression")?;
        let address = EmailAddress::parse(address)?;
        let audit = actor.audit(
            self.clock.now(),
            "suppression.remove",
            Some(address.to_string()),
            serde_json::json!({"address": address}),
        );
        self.store.remove_suppression(&address, audit).await
    }
}

/// A remote reply as kept: one line, at most 500 characters.
fn clip(s: &str) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect();
    one.trim().to_owned()
}
