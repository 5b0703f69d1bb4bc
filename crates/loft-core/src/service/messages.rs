//! Mail: sending and replying (validation, addresses, threading headers, quotas), listing,
//! waiting, reading, labels and threads.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{Actor, Loft, Page, cursor, decode_cursor, encode_cursor, page, page_limit};
use crate::address::EmailAddress;
use crate::identity::Identity;
use crate::ids::{IdentityId, MessageId, ThreadId};
use crate::keys::Scope;
use crate::mail::{
    self, Authentication, Delivery, DeliveryStatus, Folder, MailContent, MailCopy, Message, MessagePatch, MessageQuery,
    MessageSummary, NewMail, ReplyMail, SendMail, Thread, ThreadQuery, ThreadSummary,
};
use crate::quota;
use crate::text;
use crate::time::Timestamp;
use crate::{Error, Result};

/// Filters for `GET /v0/messages`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListMessagesParams {
    /// `inbox` (default), `sent` or `all`.
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

/// What a wait returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaitResult {
    /// The mail that arrived (or was already unread), oldest first.
    pub items: Vec<MessageSummary>,
    /// True when the time ran out with no mail.
    pub timed_out: bool,
    /// Pass as `after` to the next wait to get only mail newer than this call's.
    pub cursor: String,
}

pub const MAX_WAIT_SECONDS: u32 = 300;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListThreadsParams {
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
        let to = parse_addresses("to", &req.to)?;
        let cc = parse_addresses("cc", &req.cc)?;
        let bcc = parse_addresses("bcc", &req.bcc)?;
        let draft = Draft {
            to,
            cc,
            bcc,
            subject: req.subject,
            text: req.text,
            html: req.html,
            in_reply_to: None,
            references: vec![],
        };
        self.deliver(actor, &me, draft, "mail.send").await
    }

    pub async fn reply(&self, actor: &Actor, id: &str, req: ReplyMail) -> Result<Message> {
        let me = actor.require(Scope::MailSend)?.clone();
        let id = MessageId::parse(id)?;
        let original = self
            .store
            .get_message(&me.id, &id)
            .await?
            .ok_or_else(|| per_mailbox(Error::not_found("message")))?;
        let (to, mut cc) = match original.folder {
            Folder::Inbox => (
                vec![original.from.clone()],
                [original.to.clone(), original.cc.clone()].concat(),
            ),
            Folder::Sent => (original.to.clone(), original.cc.clone()),
        };
        if !req.reply_all {
            cc.clear();
        }
        cc.retain(|a| a != &me.address && !to.contains(a));
        let mut references = original.references.clone();
        references.push(original.message_id.clone());
        // Keep headers bounded on very long threads: the root and the most recent ones.
        if references.len() > 20 {
            let root = references[0].clone();
            references.drain(..references.len() - 19);
            references.insert(0, root);
        }
        let draft = Draft {
            to,
            cc,
            bcc: vec![],
            subject: mail::reply_subject(&original.subject),
            text: req.text,
            html: req.html,
            in_reply_to: Some(original.message_id.clone()),
            references,
        };
        self.deliver(actor, &me, draft, "mail.reply").await
    }

    async fn deliver(&self, actor: &Actor, me: &Identity, draft: Draft, action: &str) -> Result<Message> {
        // Validate everything before anything is written.
        // Each address once, in the first field that names it (to, then cc, then bcc): before
        // the cap is counted and before the headers are built, so a repeated address can
        // neither grow the headers nor be counted twice.
        let mut seen = HashSet::new();
        let mut once = |list: Vec<EmailAddress>| -> Vec<EmailAddress> {
            list.into_iter().filter(|a| seen.insert(a.clone())).collect()
        };
        let mut draft = draft;
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
        let raw = mail::build_rfc5322(&content)?;
        let sender_copy = MailCopy {
            id: MessageId::generate(r),
            owner: me.id.clone(),
            folder: Folder::Sent,
            new_thread_id: ThreadId::generate(r),
        };
        let mut recipient_copies = Vec::new();
        let mut delivery = Vec::new();
        for a in &all {
            if let Some(owner) = local.get(a) {
                recipient_copies.push(MailCopy {
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
        let local_recipients: Vec<(&EmailAddress, &IdentityId)> =
            all.iter().filter_map(|a| local.get(a).map(|id| (a, id))).collect();
        let queued = delivery.iter().filter(|d| d.status == DeliveryStatus::Queued).count() as u64;
        self.check_mail_quotas(me, &local_recipients, queued, raw.len() as u64, now)
            .await?;
        let audit = actor.audit(
            now,
            action,
            Some(sender_copy.id.to_string()),
            serde_json::json!({
                "message_id": content.message_id,
                "to": content.to, "cc": content.cc, "bcc_count": content.bcc.len(),
                "delivered": recipient_copies.len(),
                "queued": delivery.iter().filter(|d| d.status == DeliveryStatus::Queued).count(),
                "size": raw.len(),
            }),
        );
        let jobs = mail::delivery_jobs(&me.id, &sender_copy.id, &delivery, now);
        let mail = NewMail {
            content,
            raw,
            sender_copy,
            recipient_copies,
            delivery,
            jobs,
        };
        let sent = self.store.send_mail(mail, audit).await?;
        self.mail_tick.send_modify(|t| *t += 1);
        Ok(sent)
    }

    /// Every mailbox the message lands in (the sender's and each local recipient's) must have
    /// room for it under the `stored_bytes` quota, and the sender's hourly budget of remote
    /// recipients must cover the queued ones. Checked after everything else, before writing.
    async fn check_mail_quotas(
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

    pub async fn list_messages(&self, actor: &Actor, params: ListMessagesParams) -> Result<Page<MessageSummary>> {
        let me = actor.require(Scope::MailRead)?;
        let folder = match params.folder.as_deref() {
            None | Some("inbox") => Some(Folder::Inbox),
            Some("sent") => Some(Folder::Sent),
            Some("all") => None,
            Some(other) => {
                return Err(Error::invalid("invalid_folder", format!("unknown folder `{other}`"))
                    .with_hint("use inbox, sent or all"));
            }
        };
        let query = MessageQuery {
            folder,
            unread_only: params.unread.unwrap_or(false),
            label: params.label.as_deref().map(mail::parse_label).transpose()?,
            from: params.from.as_deref().map(EmailAddress::parse).transpose()?,
            thread_id: params.thread_id.as_deref().map(ThreadId::parse).transpose()?,
            after_seq: None,
            before_seq: cursor(params.cursor.as_deref())?,
            oldest_first: false,
            limit: page_limit(params.limit)?,
        };
        Ok(page(self.store.list_messages(&me.id, query).await?))
    }

    /// Blocks until inbox mail is there, or the timeout passes: the inbox as a queue, without
    /// a polling loop in the agent. Wakes on deliveries in this process at once, and looks
    /// again every second for mail delivered by other nodes sharing the database.
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
            .map(decode_cursor)
            .transpose()?;
        let limit = page_limit(params.limit)?;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(u64::from(timeout));
        // Subscribe before looking, so that a delivery between the look and the wait is seen.
        let mut ticks = self.mail_tick.subscribe();
        let mut stopping = self.stopping.subscribe();
        loop {
            let upto = self.store.latest_mail_seq(&me.id).await?;
            let query = MessageQuery {
                folder: Some(Folder::Inbox),
                unread_only: after.is_none(),
                after_seq: after,
                before_seq: Some(upto + 1),
                oldest_first: true,
                limit,
                ..MessageQuery::default()
            };
            let page = self.store.list_messages(&me.id, query).await?;
            let now = tokio::time::Instant::now();
            if !page.items.is_empty() || now >= deadline || *stopping.borrow() {
                // With more than `limit` new messages, continue after the last one returned.
                let cursor = encode_cursor(page.next_before.unwrap_or(upto));
                return Ok(WaitResult {
                    timed_out: page.items.is_empty(),
                    items: page.items,
                    cursor,
                });
            }
            let poll = (deadline - now).min(std::time::Duration::from_secs(1));
            tokio::select! {
                _ = ticks.changed() => {}
                _ = stopping.changed() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
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
        self.store.read_message(&me.id, &id, audit).await.map_err(per_mailbox)
    }

    pub async fn raw_message(&self, actor: &Actor, id: &str) -> Result<Vec<u8>> {
        let me = actor.require(Scope::MailRead)?;
        let id = MessageId::parse(id)?;
        self.store
            .raw_message(&me.id, &id)
            .await?
            .ok_or_else(|| per_mailbox(Error::not_found("message")))
    }

    pub async fn update_message(&self, actor: &Actor, id: &str, patch: MessagePatch) -> Result<Message> {
        let me = actor.require(Scope::MailManage)?;
        let id = MessageId::parse(id)?;
        let add = patch
            .add_labels
            .iter()
            .map(|l| mail::parse_label(l))
            .collect::<Result<Vec<_>>>()?;
        let remove = patch
            .remove_labels
            .iter()
            .map(|l| mail::parse_label(l))
            .collect::<Result<Vec<_>>>()?;
        if add.is_empty() && remove.is_empty() && patch.unread.is_none() {
            return Err(Error::invalid("empty_update", "nothing to change")
                .with_hint("send `add_labels`, `remove_labels` and/or `unread`"));
        }
        if add.len() > mail::MAX_LABELS_PER_MESSAGE {
            return Err(Error::invalid(
                "too_many_labels",
                format!("at most {} labels per message", mail::MAX_LABELS_PER_MESSAGE),
            ));
        }
        if let (Some(limit), false) = (self.quotas.labels, add.is_empty()) {
            let (used, new) = self.store.mailbox_labels(&me.id, &add).await?;
            if new > 0 {
                quota::check("labels", "distinct labels in the mailbox", Some(limit), used, new)?;
            }
        }
        let patch = MessagePatch {
            add_labels: add,
            remove_labels: remove,
            unread: patch.unread,
        };
        let audit = actor.audit(
            self.clock.now(),
            "mail.update",
            Some(id.to_string()),
            serde_json::json!({ "add_labels": patch.add_labels, "remove_labels": patch.remove_labels, "unread": patch.unread }),
        );
        self.store
            .update_message(&me.id, &id, patch, audit)
            .await
            .map_err(per_mailbox)
    }

    pub async fn list_threads(&self, actor: &Actor, params: ListThreadsParams) -> Result<Page<ThreadSummary>> {
        let me = actor.require(Scope::MailRead)?;
        let query = ThreadQuery {
            unread_only: params.unread.unwrap_or(false),
            label: params.label.as_deref().map(mail::parse_label).transpose()?,
            before_seq: cursor(params.cursor.as_deref())?,
            limit: page_limit(params.limit)?,
        };
        Ok(page(self.store.list_threads(&me.id, query).await?))
    }

    pub async fn get_thread(&self, actor: &Actor, id: &str) -> Result<Thread> {
        let me = actor.require(Scope::MailRead)?;
        let id = ThreadId::parse(id)?;
        let audit = actor.audit(
            self.clock.now(),
            "mail.read_thread",
            Some(id.to_string()),
            serde_json::json!({}),
        );
        self.store.read_thread(&me.id, &id, audit).await.map_err(per_mailbox)
    }
}

struct Draft {
    to: Vec<EmailAddress>,
    cc: Vec<EmailAddress>,
    bcc: Vec<EmailAddress>,
    subject: String,
    text: String,
    html: Option<String>,
    in_reply_to: Option<String>,
    references: Vec<String>,
}

fn parse_addresses(field: &str, list: &[String]) -> Result<Vec<EmailAddress>> {
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

/// A message or thread that is not in the caller's mailbox: say that ids are per mailbox,
/// since the usual cause is a recipient using the id its sender was given.
fn per_mailbox(e: Error) -> Error {
    match e {
        Error::NotFound(d) if d.hint.is_none() => Error::NotFound(d).with_hint(
            "ids are per mailbox: each recipient's copy has its own id, and the id a send returns is the sender's copy; \
             find yours in your own list (GET /v0/messages, `loft mail list`, or the MCP tool mail_list_messages)",
        ),
        other => other,
    }
}
