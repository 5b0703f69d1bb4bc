//! Mail: sending and replying (validation, addresses, threading headers, quotas), listing,
//! waiting, reading and threads (labels, archive and trash: `mailbox.rs`).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{Actor, Loft, Page, SharedPage, cursor, decode_cursor, page, page_limit};
use crate::address::EmailAddress;
use crate::identity::Identity;
use crate::ids::{DraftId, IdentityId, MessageId, ThreadId};
use crate::keys::Scope;
use crate::mail::{
    self, Authentication, DeliveryStatus, Folder, MailContent, MailCopy, Message, MessageQuery, MessageSummary,
    NewMail, ReplyMail, SendMail, Thread, ThreadQuery, ThreadSummary,
};
use crate::oversight::{Approval, ApprovalQuery, ApprovalStatus, DecisionQuery};
use crate::text;
use crate::time::Timestamp;
use crate::{Error, Result};

/// Filters for `GET /v0/messages`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListMessagesParams {
    /// `inbox` (default: received mail, not archived), `sent`, `archive` (archived, received or
    /// sent), `trash` (trashed mail, hidden everywhere else) or `all` (everything but the
    /// trash).
    pub folder: Option<String>,
    /// Only unread messages.
    #[serde(skip_serializing_if = "crate::wire::is_not_true")]
    pub unread: Option<bool>,
    pub label: Option<String>,
    /// Only messages from this address.
    pub from: Option<String>,
    pub thread_id: Option<String>,
    /// 1 to 200, default 50.
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `GET /v0/threads/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct GetThreadParams {
    /// `all` (default: the thread's mail outside the trash) or `trash` (its trashed mail, to
    /// restore or delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
}

/// `GET /v0/messages/wait`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct WaitParams {
    /// How long to wait for mail, 0 to 300 seconds (default 30). 0 checks once.
    #[cfg_attr(feature = "openapi", param(maximum = 300))]
    pub timeout_seconds: Option<u32>,
    /// The `cursor` of a previous wait: return inbox mail newer than that, read or not.
    /// Without it, return the unread inbox mail.
    pub after: Option<String>,
    /// At most this many messages (1 to 200, default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
}

/// One attachment of a message, whole (`GET /v0/messages/{id}/attachments/{index}`).
#[derive(Debug, Clone)]
pub struct AttachmentFile {
    pub attachment: mail::Attachment,
    pub bytes: Vec<u8>,
}

/// What a wait returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaitResult {
    /// The mail that arrived (or was already unread), oldest first.
    pub items: Vec<MessageSummary>,
    /// Decisions on mail you sent that was held for a reviewer, oldest first: `approved`
    /// (it went out), `rejected` (with the reviewer's `reason`) or `expired`. Without `after`:
    /// the decisions whose message you have not read since; with it: those made since.
    #[serde(default)]
    pub decisions: Vec<Approval>,
    /// True when the time ran out with no mail and no decision.
    pub timed_out: bool,
    /// Pass as `after` to the next wait to get only mail and decisions newer than this call's.
    pub cursor: String,
}

pub const MAX_WAIT_SECONDS: u32 = 300;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListThreadsParams {
    /// `all` (default: the threads of the mail outside the trash) or `trash` (the threads of
    /// the trashed mail, counted over it alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    #[serde(skip_serializing_if = "crate::wire::is_not_true")]
    pub unread: Option<bool>,
    pub label: Option<String>,
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl Loft {
    pub async fn send(&self, actor: &Actor, req: SendMail) -> Result<Message> {
        let me = actor.require(Scope::MailSend)?.clone();
        let idem = self.idempotency(req.idempotency_key.as_deref(), &("mail.send", &req))?;
        if let Some(done) = self.replay(&me, idem.as_ref()).await? {
            return Ok(done);
        }
        Self::check_may_send(&me)?;
        let send_at = self.check_send_at(req.send_at.as_deref())?;
        let to = parse_addresses("to", &req.to)?;
        let cc = parse_addresses("cc", &req.cc)?;
        let bcc = parse_addresses("bcc", &req.bcc)?;
        let files = mail::parse_attachments(&req.attachments, self.config.max_attachment_bytes)?;
        let out = Outgoing {
            to,
            cc,
            bcc,
            subject: req.subject,
            text: req.text,
            html: req.html,
            in_reply_to: None,
            references: vec![],
            draft: None,
            send_at,
            files,
        };
        self.deliver(actor, &me, out, "mail.send", idem).await
    }

    pub async fn reply(&self, actor: &Actor, id: &str, req: ReplyMail) -> Result<Message> {
        let me = actor.require(Scope::MailSend)?.clone();
        let idem = self.idempotency(req.idempotency_key.as_deref(), &("mail.reply", id, &req))?;
        if let Some(done) = self.replay(&me, idem.as_ref()).await? {
            return Ok(done);
        }
        Self::check_may_send(&me)?;
        let send_at = self.check_send_at(req.send_at.as_deref())?;
        let files = mail::parse_attachments(&req.attachments, self.config.max_attachment_bytes)?;
        let id = MessageId::parse(id)?;
        let original = self
            .store
            .get_message(&me.id, &id)
            .await?
            .ok_or_else(|| per_mailbox(Error::not_found("message")))?;
        let (to, cc) = reply_recipients(&original, &me, req.reply_all);
        let references = reply_references(&original);
        let out = Outgoing {
            to,
            cc,
            bcc: vec![],
            subject: mail::reply_subject(&original.subject),
            text: req.text,
            html: req.html,
            in_reply_to: Some(original.message_id.clone()),
            references,
            draft: None,
            send_at,
            files,
        };
        self.deliver(actor, &me, out, "mail.reply", idem).await
    }

    /// The idempotency record a request with `key` would leave: the key checked, and a
    /// fingerprint of `what` was asked (the request without its key).
    pub(super) fn idempotency<T: Serialize>(&self, key: Option<&str>, what: &T) -> Result<Option<mail::Idempotency>> {
        let Some(key) = key else { return Ok(None) };
        let key = key.trim();
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(Error::invalid(
                "invalid_idempotency_key",
                "an idempotency key is 1 to 255 visible ASCII characters",
            )
            .with_hint("use a UUID or another unique string per intended send"));
        }
        let mut json = serde_json::to_value(what).map_err(Error::internal)?;
        strip_key(&mut json);
        let fingerprint = crate::keys::sha256_hex(json.to_string().as_bytes());
        let now = self.clock.now();
        Ok(Some(mail::Idempotency {
            key: key.to_owned(),
            fingerprint,
            created_at: now,
            stale_before: now.plus_secs(-mail::IDEMPOTENCY_TTL_SECS),
        }))
    }

    /// The result of an earlier request with the same idempotency key and content, if any;
    /// `409 idempotency_key_reused` when the key was used for other content.
    pub(super) async fn replay(&self, me: &Identity, idem: Option<&mail::Idempotency>) -> Result<Option<Message>> {
        let Some(idem) = idem else { return Ok(None) };
        let Some((fingerprint, id)) = self
            .store
            .find_idempotency(&me.id, &idem.key, idem.stale_before)
            .await?
        else {
            return Ok(None);
        };
        if fingerprint != idem.fingerprint {
            return Err(Error::conflict(
                "idempotency_key_reused",
                "this idempotency key was used in the last 24 hours for a different request",
            )
            .with_hint("use a new key for a new mail; reuse a key only to retry the very same request"));
        }
        let m = self
            .store
            .get_message(&me.id, &id)
            .await?
            .ok_or_else(|| Error::internal("an idempotency record names a missing message"))?;
        Ok(Some(self.attach_approval(m).await?))
    }

    pub(super) async fn deliver(
        &self,
        actor: &Actor,
        me: &Identity,
        draft: Outgoing,
        action: &str,
        idempotency: Option<mail::Idempotency>,
    ) -> Result<Message> {
        // Validate everything before anything is written.
        let mut draft = draft;
        let (all, local) = self.check_outgoing(&mut draft).await?;

        // The operator's allow / block / hold rules (service/rules.rs): refuse here, or hold.
        let (rule_holds, rules) = self
            .check_rules(actor, me, &all, &local, action == "mail.reply", action)
            .await?;

        self.check_not_frozen().await?;
        self.check_caps(me, &all).await?;
        let mut reasons = self
            .hold_reasons(
                me,
                &all,
                &draft.subject,
                &draft.text,
                draft.html.as_deref(),
                &draft.files,
            )
            .await?;
        reasons.extend(rule_holds);
        let now = self.clock.now();
        let r = self.random.as_ref();
        let content = MailContent {
            message_id: format!("{}@{}", crate::random::base32_string(r, 26), self.config.domain),
            in_reply_to: draft.in_reply_to,
            references: draft.references,
            from: me.address.clone(),
            from_name: me.display_name.clone(),
            to: draft.to,
            cc: draft.cc,
            bcc: draft.bcc,
            subject: draft.subject,
            extracted_text: text::extract_reply(&draft.text),
            text: draft.text,
            html: draft.html,
            authentication: Authentication::internal(),
            created_at: now,
        };
        let draft_id = draft.draft;
        // A time ahead schedules the mail; one not ahead (a few seconds ago) sends it now.
        let later = draft.send_at.filter(|t| *t > now);
        let raw = mail::build_rfc5322(&content, &draft.files)?;
        // Listed as the recipient's parser lists them, so the indices match the download's.
        let attachments = if draft.files.is_empty() {
            vec![]
        } else {
            crate::inbound::parse(&raw).attachments
        };
        let sender_copy = MailCopy {
            id: MessageId::generate(r),
            owner: me.id.clone(),
            folder: Folder::Sent,
            new_thread_id: ThreadId::generate(r),
        };
        let (mut recipient_copies, mut delivery) = super::oversight::plan_copies(self, &all, &local);
        let held = (!reasons.is_empty()).then(|| crate::oversight::NewHold {
            id: crate::oversight::ApprovalId::generate(r),
            reasons,
            expires_at: now.plus_secs(self.config.approval_ttl_secs),
        });
        if held.is_some() {
            // Nothing reaches a recipient until a reviewer approves: the decision writes the
            // copies and jobs. Only the sender's mailbox must have room now.
            recipient_copies.clear();
            for d in &mut delivery {
                d.status = DeliveryStatus::Held;
                d.detail = "held for a reviewer's approval".into();
            }
            self.check_mail_quotas(me, &[], 0, raw.len() as u64, now).await?;
        } else if let Some(at) = later {
            // Nothing reaches a recipient before `send_at`: the release writes the copies and
            // jobs, and checks the recipients' quotas then.
            recipient_copies.clear();
            super::schedule::scheduled_delivery(&mut delivery, at);
            self.check_mail_quotas(me, &[], 0, raw.len() as u64, now).await?;
        } else {
            let local_recipients: Vec<(&EmailAddress, &IdentityId)> =
                all.iter().filter_map(|a| local.get(a).map(|id| (a, id))).collect();
            let queued = delivery.iter().filter(|d| d.status == DeliveryStatus::Queued).count() as u64;
            self.check_mail_quotas(me, &local_recipients, queued, raw.len() as u64, now)
                .await?;
        }
        // Local recipients who hold incoming mail get their copy once a reviewer releases it.
        let (recipient_copies, held_copies) = self
            .hold_incoming(&content.from, true, recipient_copies, now, Some(&rules), None)
            .await?;
        let mut details = serde_json::json!({
                "message_id": content.message_id,
                "attachments": attachments.iter().map(|a| serde_json::json!({"name": a.name, "content_type": a.content_type, "size": a.size})).collect::<Vec<_>>(),
                "to": content.to, "cc": content.cc, "bcc_count": content.bcc.len(),
                "delivered": recipient_copies.len(),
                "held_for_recipients": held_copies.iter().map(|h| serde_json::json!({"message": h.copy.id, "approval": h.hold.id})).collect::<Vec<_>>(),
                "queued": delivery.iter().filter(|d| d.status == DeliveryStatus::Queued).count(),
                "size": raw.len(),
                "oversight_mode": me.oversight_mode,
                "held": held.as_ref().map(|h| serde_json::json!({
                    "approval": h.id,
                    "reasons": h.reasons.iter().map(|r| serde_json::json!({"kind": r.kind, "credential": r.credential, "rule": r.rule.as_ref().map(|x| &x.id)})).collect::<Vec<_>>(),
                })),
        });
        if let Some(d) = &draft_id {
            details["draft"] = serde_json::json!(d);
        }
        if let Some(t) = later {
            details["send_at"] = serde_json::json!(t);
        }
        let mut audit = actor.audit(now, action, Some(sender_copy.id.to_string()), details);
        audit.events = match (&held, later) {
            (Some(h), _) => vec![crate::events::NewEvent::new(
                crate::events::EventKind::ApprovalRequested,
                &me.id,
                serde_json::json!({
                    "approval_id": h.id, "message_id": sender_copy.id, "subject": content.subject,
                    "to": all, "reasons": h.reasons.iter().map(|r| r.kind).collect::<Vec<_>>(),
                }),
            )],
            // A scheduled mail raises its events when it is released.
            (None, Some(_)) => vec![],
            (None, None) => super::events::mail_out(
                &me.id,
                me.oversight_mode == crate::oversight::OversightMode::Monitored,
                &sender_copy.id,
                &content.from,
                &content.subject,
                &all,
                &recipient_copies,
            ),
        };
        audit.events.extend(super::inbound_holds::held_events(
            &held_copies,
            &content.from,
            &content.subject,
        ));
        self.link_approvals(&mut audit.events);
        let woken = super::events::raised_by(&audit);
        let mut jobs = mail::delivery_jobs(&me.id, &sender_copy.id, &delivery, now);
        // Reviewers who asked are told by mail, later: the hold does not wait for it.
        jobs.extend(super::notices::notice_jobs(
            held.iter().map(|h| &h.id).chain(held_copies.iter().map(|h| &h.hold.id)),
            now,
        ));
        // A held mail records its contacts when it is approved, a scheduled one when it is
        // released; neither now.
        let contacts = if held.is_some() || later.is_some() {
            vec![]
        } else {
            super::inbound_holds::without_held(
                Self::contacts_of_mail(&me.id, &me.address, &all, &local, now),
                &held_copies,
            )
        };
        let mail = NewMail {
            content,
            raw,
            sender_copy,
            recipient_copies,
            held_copies,
            delivery,
            jobs,
            hold: held,
            idempotency: idempotency.clone(),
            consumes_draft: draft_id.clone(),
            send_at: later,
            schedule: None,
            contacts,
            attachments,
        };
        let mut mail = mail;
        if mail.hold.is_none() {
            mail.schedule = later.map(|t| crate::schedule::ReleaseJob::job(&me.id, &mail.sender_copy.id, t));
        }
        let scheduled = mail.schedule.is_some();
        let approval = mail.hold.as_ref().map(|h| h.id.clone());
        let mut sent = match self.store.send_mail(mail, audit).await {
            Ok(m) => m,
            // A concurrent request with the same key won: answer as a retry would be.
            Err(Error::Conflict(d)) if d.code == "idempotency_key_in_use" => {
                return self
                    .replay(me, idempotency.as_ref())
                    .await?
                    .ok_or_else(|| Error::Unavailable("an idempotent send raced with another; retry".into()));
            }
            Err(e) => return Err(e),
        };
        self.wake(&woken);
        if scheduled {
            self.job_tick.send_modify(|t| *t += 1);
        }
        if let Some(id) = approval {
            sent.approval = self.store.get_approval(&id).await?;
        }
        Ok(sent)
    }

    /// The checks every mail passes before anything is written, whoever composed or edited it
    /// (a send, a reply, a reviewer's edit of held mail): each address once, in the first field
    /// that names it (to, then cc, then bcc), at least one and at most
    /// [`mail::MAX_RECIPIENTS`]; the subject one line; no NUL; a body that is not blank and not
    /// too large; every address on this server an active identity; remote ones only when
    /// outbound mail is configured, and none on the suppression list. Returns every recipient and the local ones' identities.
    pub(super) async fn check_outgoing(
        &self,
        draft: &mut Outgoing,
    ) -> Result<(Vec<EmailAddress>, std::collections::HashMap<EmailAddress, IdentityId>)> {
        // Each address once, in the first field that names it (to, then cc, then bcc): before
        // the cap is counted and before the headers are built, so a repeated address can
        // neither grow the headers nor be counted twice.
        let mut seen = HashSet::new();
        let mut once = |list: Vec<EmailAddress>| -> Vec<EmailAddress> {
            list.into_iter().filter(|a| seen.insert(a.clone())).collect()
        };
        draft.to = once(std::mem::take(&mut draft.to));
        draft.cc = once(std::mem::take(&mut draft.cc));
        draft.bcc = once(std::mem::take(&mut draft.bcc));
        let all: Vec<EmailAddress> = draft.to.iter().chain(&draft.cc).chain(&draft.bcc).cloned().collect();
        if all.is_empty() {
            return Err(Error::invalid("no_recipients", "the message has no recipients")
                .with_hint("give at least one address in `to`"));
        }
        if all.len() > mail::MAX_RECIPIENTS {
            return Err(Error::invalid(
                "too_many_recipients",
                format!(
                    "at most {} recipients per message, not {}",
                    mail::MAX_RECIPIENTS,
                    all.len()
                ),
            ));
        }
        if draft.subject.chars().count() > mail::MAX_SUBJECT || draft.subject.contains(['\r', '\n']) {
            return Err(Error::invalid(
                "invalid_subject",
                format!(
                    "the subject must be one line of at most {} characters",
                    mail::MAX_SUBJECT
                ),
            ));
        }
        text::refuse_nul("subject", &draft.subject)?;
        text::refuse_nul("text", &draft.text)?;
        text::refuse_nul("html", draft.html.as_deref().unwrap_or_default())?;
        if draft.text.trim().is_empty() && draft.html.as_deref().is_none_or(|h| h.trim().is_empty()) {
            return Err(Error::invalid("empty_body", "the message has no body")
                .with_hint("give `text` (and optionally `html`)"));
        }
        let body_bytes = draft.text.len() + draft.html.as_ref().map_or(0, String::len);
        if body_bytes > self.config.max_body_bytes {
            return Err(Error::invalid(
                "message_too_large",
                format!(
                    "the body is {body_bytes} bytes; the limit is {}",
                    self.config.max_body_bytes
                ),
            ));
        }
        let local: std::collections::HashMap<EmailAddress, IdentityId> =
            self.store.resolve_addresses(&all).await?.into_iter().collect();
        if let Some(unknown) = all
            .iter()
            .find(|a| a.domain() == self.config.domain && !local.contains_key(*a))
        {
            return Err(Error::invalid(
                "unknown_recipient",
                format!("no active identity has the address {unknown} on this server"),
            )
            .with_hint(
                "check the address for typos: each identity's address has a random suffix (e.g. writer-a1b2c@...); \
                 the operator lists them with `loft identity list`",
            ));
        }
        let remote: Vec<&EmailAddress> = all.iter().filter(|a| !local.contains_key(*a)).collect();
        if !remote.is_empty() && !self.outbound {
            return Err(Error::policy_denied(
                "outbound_not_configured",
                format!(
                    "this server does not send mail outside (outbound SMTP is not configured), so it cannot deliver to {}",
                    remote.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )
            .with_hint(format!(
                "send only to identities on this server (addresses @{}), or ask the operator to configure outbound mail",
                self.config.domain
            )));
        }
        let remote: Vec<EmailAddress> = remote.into_iter().cloned().collect();
        self.check_not_suppressed(&remote).await?;
        Ok((all, local))
    }

    /// Every mailbox the message lands in (the sender's and each local recipient's) must have
    /// room for it under the `stored_bytes` quota, and the sender's hourly budget of remote
    /// recipients must cover the queued ones. Checked after everything else, before writing.
    pub(super) async fn check_mail_quotas(
        &self,
        me: &Identity,
        local: &[(&EmailAddress, &IdentityId)],
        queued: u64,
        size: u64,
        now: Timestamp,
    ) -> Result<()> {
        if let Some(limit) = self.quotas.stored_bytes {
            let mut owners = vec![me.id.clone()];
            owners.extend(local.iter().map(|(_, id)| (*id).clone()));
            let used: std::collections::HashMap<IdentityId, u64> =
                self.store.mailbox_bytes(&owners).await?.into_iter().collect();
            let mailboxes = std::iter::once((None, &me.id)).chain(local.iter().map(|(a, id)| (Some(*a), *id)));
            for (address, owner) in mailboxes {
                let have = used.get(owner).copied().unwrap_or(0);
                if have.saturating_add(size) > limit {
                    let whose =
                        address.map_or_else(|| "the sender's mailbox".to_owned(), |a| format!("the mailbox of {a}"));
                    return Err(Error::forbidden(
                        "quota_exceeded",
                        format!(
                            "{whose} is full: it holds {have} bytes of mail, the quota `stored_bytes` is {limit}, and this message is {size} bytes"
                        ),
                    )
                    .with_hint("the operator can raise it with `--quota stored_bytes=N`"));
                }
            }
        }
        if let Some(per_hour) = self.quotas.queued_recipients_per_hour {
            self.recipient_budget.take(me.id.as_str(), per_hour, queued, now)?;
        }
        Ok(())
    }

    pub async fn list_messages(
        &self,
        actor: &Actor,
        params: ListMessagesParams,
    ) -> Result<std::sync::Arc<SharedPage<MessageSummary>>> {
        let me = actor.require(Scope::MailRead)?;
        let query = message_query(&params)?;
        self.mailbox_page(&me.id, query).await
    }

    /// Blocks until inbox mail is there, or a reviewer decided on mail this identity sent, or
    /// the timeout passes: the inbox as a queue, without a polling loop in the agent. Sleeps on
    /// the identity's watch in the event hub (`service/events.rs`), which changes only when
    /// this identity has news, written by this process or (PostgreSQL) any node: an idle wait
    /// costs no query. A held mail whose time runs out during the wait is recorded as expired
    /// then, and reported.
    pub async fn wait_for_mail(&self, actor: &Actor, params: WaitParams) -> Result<WaitResult> {
        let me = actor.require(Scope::MailRead)?.clone();
        let timeout = params.timeout_seconds.unwrap_or(30);
        if timeout > MAX_WAIT_SECONDS {
            return Err(Error::invalid(
                "invalid_timeout",
                format!("timeout_seconds must be between 0 and {MAX_WAIT_SECONDS}, not {timeout}"),
            ));
        }
        let after = params
            .after
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(decode_wait_cursor)
            .transpose()?;
        let limit = page_limit(params.limit)?;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(u64::from(timeout));
        // Subscribe before looking, so that a delivery between the look and the wait is seen.
        let mut news = self.hub.watch(&me.id);
        let mut stopping = self.stopping.subscribe();
        let mut next_expiry = self.expire_overdue(&me.id).await?;
        loop {
            if next_expiry.is_some_and(|t| t <= self.clock.now()) {
                next_expiry = self.expire_overdue(&me.id).await?;
            }
            self.count_look();
            let upto = self.store.latest_mail_seq(&me.id).await?;
            let decided_upto = self.store.latest_decision_seq(&me.id).await?;
            let query = MessageQuery {
                folder: Some(Folder::Inbox),
                archived: Some(false),
                unread_only: after.is_none(),
                after_seq: after.map(|a| a.mail),
                before_seq: Some(upto + 1),
                oldest_first: true,
                limit,
                ..MessageQuery::default()
            };
            let page = self.store.list_messages(&me.id, query).await?;
            let decided = self
                .store
                .list_decisions(DecisionQuery {
                    identity: me.id.clone(),
                    after_seq: after.and_then(|a| a.decisions),
                    upto_seq: decided_upto,
                    limit,
                })
                .await?;
            let now = tokio::time::Instant::now();
            if !page.items.is_empty() || !decided.is_empty() || now >= deadline || *stopping.borrow() {
                // With more than `limit` new messages, continue after the last one returned.
                let mail = page.next_before.unwrap_or(upto);
                let decisions = if decided.len() as u32 >= limit {
                    decided.last().map_or(decided_upto, |(seq, _)| *seq)
                } else {
                    decided_upto
                };
                return Ok(WaitResult {
                    timed_out: page.items.is_empty() && decided.is_empty(),
                    items: page.items,
                    decisions: decided.into_iter().map(|(_, a)| a).collect(),
                    cursor: encode_wait_cursor(mail, decisions),
                });
            }
            let mut poll = deadline - now;
            if let Some(at) = next_expiry {
                let micros = at.as_micros().saturating_sub(self.clock.now().as_micros()).max(0);
                poll = poll.min(std::time::Duration::from_micros(micros as u64));
            }
            tokio::select! {
                _ = news.changed() => {}
                _ = stopping.changed() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Records the expiry of `identity`'s held mail whose time has run out; returns when the
    /// next of its pending approvals runs out, if any.
    async fn expire_overdue(&self, identity: &IdentityId) -> Result<Option<Timestamp>> {
        let now = self.clock.now();
        let pending = self
            .store
            .list_approvals(ApprovalQuery {
                identity: Some(identity.clone()),
                status: Some(ApprovalStatus::Expired),
                now,
                limit: crate::service::MAX_PAGE,
                ..ApprovalQuery::default()
            })
            .await?;
        for a in pending.items.iter().filter(|a| a.status == ApprovalStatus::Pending) {
            self.expire(a, now).await?;
        }
        let next = self
            .store
            .list_approvals(ApprovalQuery {
                identity: Some(identity.clone()),
                status: Some(ApprovalStatus::Pending),
                now,
                limit: crate::service::MAX_PAGE,
                ..ApprovalQuery::default()
            })
            .await?;
        Ok(next.items.iter().map(|a| a.expires_at).min())
    }

    pub async fn get_message(&self, actor: &Actor, id: &str) -> Result<Message> {
        let me = actor.require(Scope::MailRead)?;
        let id = MessageId::parse(id)?;
        let audit = actor.audit(
            self.clock.now(),
            "mail.read",
            Some(id.to_string()),
            serde_json::json!({}),
        );
        let m = self.store.read_message(&me.id, &id, audit).await.map_err(per_mailbox)?;
        let m = self.attach_sender_contact(&me.id, found_in(m)).await?;
        self.attach_approval(m).await
    }

    pub async fn raw_message(&self, actor: &Actor, id: &str) -> Result<Vec<u8>> {
        let me = actor.require(Scope::MailRead)?;
        let id = MessageId::parse(id)?;
        self.store
            .raw_message(&me.id, &id)
            .await?
            .ok_or_else(|| per_mailbox(Error::not_found("message")))
    }

    /// Attachment `index` (0-based, as `attachments` lists them) of one of the caller's
    /// messages: what the listing says of it, and its decoded bytes.
    pub async fn get_attachment(&self, actor: &Actor, id: &str, index: u32) -> Result<AttachmentFile> {
        let me = actor.require(Scope::MailRead)?;
        let id = MessageId::parse(id)?;
        let raw = self
            .store
            .raw_message(&me.id, &id)
            .await?
            .ok_or_else(|| per_mailbox(Error::not_found("message")))?;
        let (attachment, bytes) = crate::inbound::attachment(&raw, index as usize).ok_or_else(|| {
            let listed = crate::inbound::parse(&raw).attachments.len();
            Error::not_found("attachment").with_hint(if listed == 0 {
                format!("message {id} has no attachments")
            } else {
                format!("message {id} has {listed} attachment(s): index 0 to {}", listed - 1)
            })
        })?;
        Ok(AttachmentFile { attachment, bytes })
    }

    pub async fn list_threads(&self, actor: &Actor, params: ListThreadsParams) -> Result<Page<ThreadSummary>> {
        let me = actor.require(Scope::MailRead)?;
        let query = thread_query(&params)?;
        Ok(page(self.store.list_threads(&me.id, query).await?))
    }

    /// A whole thread: its copies outside the trash, or (`folder=trash`) its trashed ones.
    pub async fn get_thread(&self, actor: &Actor, id: &str, params: GetThreadParams) -> Result<Thread> {
        let me = actor.require(Scope::MailRead)?;
        let id = ThreadId::parse(id)?;
        let trashed = thread_folder(params.folder.as_deref())?;
        let audit = actor.audit(
            self.clock.now(),
            "mail.read_thread",
            Some(id.to_string()),
            if trashed {
                serde_json::json!({ "folder": "trash" })
            } else {
                serde_json::json!({})
            },
        );
        let mut thread = self
            .store
            .read_thread(&me.id, &id, trashed, audit)
            .await
            .map_err(per_mailbox)?;
        thread.messages = thread.messages.into_iter().map(found_in).collect();
        Ok(thread)
    }
}

/// The store query of a `GET /v0/messages` (shared with the operator's read-only look at a
/// mailbox, `service/inspect.rs`).
pub(super) fn message_query(params: &ListMessagesParams) -> Result<MessageQuery> {
    // inbox: received, not archived; archive: archived (received or sent); trash: in the
    // trash; all: everything but the trash.
    let (folder, archived, trashed) = match params.folder.as_deref() {
        None | Some("inbox") => (Some(Folder::Inbox), Some(false), false),
        Some("sent") => (Some(Folder::Sent), None, false),
        Some("archive") => (None, Some(true), false),
        Some("trash") => (None, None, true),
        Some("all") => (None, None, false),
        Some(other) => {
            return Err(Error::invalid("invalid_folder", format!("unknown folder `{other}`"))
                .with_hint("use inbox, sent, archive, trash or all"));
        }
    };
    Ok(MessageQuery {
        folder,
        archived,
        trashed,
        unread_only: params.unread.unwrap_or(false),
        label: params.label.as_deref().map(mail::parse_label).transpose()?,
        from: params.from.as_deref().map(EmailAddress::parse).transpose()?,
        thread_id: params.thread_id.as_deref().map(ThreadId::parse).transpose()?,
        after_seq: None,
        before_seq: cursor(params.cursor.as_deref())?,
        oldest_first: false,
        limit: page_limit(params.limit)?,
    })
}

/// The store query of a `GET /v0/threads` (shared with `service/inspect.rs`).
pub(super) fn thread_query(params: &ListThreadsParams) -> Result<ThreadQuery> {
    Ok(ThreadQuery {
        trashed: thread_folder(params.folder.as_deref())?,
        unread_only: params.unread.unwrap_or(false),
        label: params.label.as_deref().map(mail::parse_label).transpose()?,
        before_seq: cursor(params.cursor.as_deref())?,
        limit: page_limit(params.limit)?,
    })
}

/// Whether a thread `folder` asks for trashed copies: `all` (the default: outside the trash)
/// or `trash`.
fn thread_folder(folder: Option<&str>) -> Result<bool> {
    match folder {
        None | Some("all") => Ok(false),
        Some("trash") => Ok(true),
        Some(other) => Err(
            Error::invalid("invalid_folder", format!("unknown thread folder `{other}`"))
                .with_hint("use all (the mail outside the trash) or trash"),
        ),
    }
}

/// A received message with the codes and links found in it (`crate::extract`) and its
/// screening label (`crate::screening`).
fn found_in(mut m: Message) -> Message {
    if m.folder == Folder::Inbox {
        m.codes = crate::extract::codes(&m.subject, &m.text);
        m.links = crate::extract::links(&m.text, m.html.as_deref());
        m.screening = Some(crate::screening::screen(
            &m.subject,
            &m.text,
            m.html.as_deref(),
            &m.links,
        ));
    }
    m
}

/// A mail about to be sent: from a send, a reply or a draft.
pub(super) struct Outgoing {
    pub(super) to: Vec<EmailAddress>,
    pub(super) cc: Vec<EmailAddress>,
    pub(super) bcc: Vec<EmailAddress>,
    pub(super) subject: String,
    pub(super) text: String,
    pub(super) html: Option<String>,
    pub(super) in_reply_to: Option<String>,
    pub(super) references: Vec<String>,
    /// The draft this mail is sent from: the store deletes it with the send.
    pub(super) draft: Option<DraftId>,
    /// Send later (checked by `check_send_at`); not ahead of now means now.
    pub(super) send_at: Option<Timestamp>,
    /// Files sent with it (checked by [`mail::parse_attachments`]).
    pub(super) files: Vec<mail::OutgoingFile>,
}

/// Where a wait left off: the mailbox's sequence number and, in cursors this server issued
/// since waits report decisions, the composer's decision number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WaitCursor {
    mail: i64,
    decisions: Option<i64>,
}

fn encode_wait_cursor(mail: i64, decisions: i64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("w1:{mail}:{decisions}"))
}

/// A wait cursor, or a plain mailbox cursor (from a list, or from a server before decisions
/// were reported: its decisions are then those not yet read).
fn decode_wait_cursor(cursor: &str) -> Result<WaitCursor> {
    use base64::Engine as _;
    let parsed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (mail, decisions) = s.strip_prefix("w1:")?.split_once(':')?;
            Some(WaitCursor {
                mail: mail.parse().ok().filter(|n: &i64| *n >= 0)?,
                decisions: Some(decisions.parse().ok().filter(|n: &i64| *n >= 0)?),
            })
        });
    match parsed {
        Some(c) => Ok(c),
        None => decode_cursor(cursor).map(|mail| WaitCursor { mail, decisions: None }),
    }
}

/// Who a reply to `original` goes to: its sender (or, for one's own sent mail, its
/// recipients), and with `reply_all` everyone else on it too, never oneself.
pub(super) fn reply_recipients(
    original: &Message,
    me: &Identity,
    reply_all: bool,
) -> (Vec<EmailAddress>, Vec<EmailAddress>) {
    let (to, mut cc) = match original.folder {
        Folder::Inbox => (
            vec![original.from.clone()],
            [original.to.clone(), original.cc.clone()].concat(),
        ),
        Folder::Sent => (original.to.clone(), original.cc.clone()),
    };
    if !reply_all {
        cc.clear();
    }
    cc.retain(|a| a != &me.address && !to.contains(a));
    (to, cc)
}

/// The `References` of a reply to `original`.
pub(super) fn reply_references(original: &Message) -> Vec<String> {
    let mut references = original.references.clone();
    references.push(original.message_id.clone());
    // Keep headers bounded on very long threads: the root and the most recent ones.
    if references.len() > 20 {
        let root = references[0].clone();
        references.drain(..references.len() - 19);
        references.insert(0, root);
    }
    references
}

pub(super) fn parse_addresses(field: &str, list: &[String]) -> Result<Vec<EmailAddress>> {
    list.iter()
        .map(|a| {
            EmailAddress::parse(a).map_err(|e| match e {
                Error::Invalid(mut d) => {
                    d.message = format!("`{field}`: {}", d.message);
                    Error::Invalid(d)
                }
                other => other,
            })
        })
        .collect()
}

/// Removes `idempotency_key` wherever it is in a request's JSON: the fingerprint is of what
/// was asked, not of the key.
fn strip_key(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(o) => {
            o.remove("idempotency_key");
            o.values_mut().for_each(strip_key);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_key),
        _ => {}
    }
}

/// A message or thread that is not in the caller's mailbox: say that ids are per mailbox,
/// since the usual cause is a recipient using the id its sender was given.
pub(super) fn per_mailbox(e: Error) -> Error {
    match e {
        Error::NotFound(d) if d.hint.is_none() => Error::NotFound(d).with_hint(
            "ids are per mailbox: each recipient's copy has its own id, and the id a send returns is the sender's copy; \
             find yours in your own list (GET /v0/messages, `loft mail list`, or the MCP tool mail_list_messages)",
        ),
        other => other,
    }
}
