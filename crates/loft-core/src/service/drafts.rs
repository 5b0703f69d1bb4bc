//! Drafts: composing a mail over several calls, then sending it through the same path as a
//! send or a reply (see [`crate::drafts`]).

use serde::{Deserialize, Serialize};

use super::messages::{Outgoing, parse_addresses, per_mailbox, reply_recipients, reply_references};
use super::{Actor, Loft, Page, cursor, page, page_limit};
use crate::drafts::{Draft, MAX_DRAFT_ADDRESS};
use crate::identity::Identity;
use crate::ids::{DraftId, MessageId};
use crate::keys::Scope;
use crate::mail::{self, Message};
use crate::wire::{one_or_many, opt_one_or_many};
use crate::{Error, Result, quota, text};

/// `POST /v0/drafts`. Every field is optional: a draft may start empty. With `reply_to` and
/// no recipients, the draft is addressed as a reply to that message would be (its sender),
/// and with no subject it takes the reply's `Re:` subject.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateDraftRequest {
    /// Recipients as written (checked only when the draft is sent); a single string works too.
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub to: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub cc: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub bcc: Vec<String>,
    /// One line (no CR, LF or NUL) of at most 998 characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_length = 998, pattern = r"^[^\r\n\u0000]*$"))]
    pub subject: String,
    /// Plain-text body (no NUL).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub text: String,
    /// HTML body (no NUL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub html: Option<String>,
    /// A message in your own mailbox (`msg_...`) that this draft answers: sending it is then a
    /// reply, threaded with that message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^msg_[a-z2-7]{1,64}$"))]
    pub reply_to: Option<String>,
    /// Files to send with it, as for a send (at most 20, together at most the server's
    /// `--max-attachment-bytes` decoded); checked now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<mail::NewAttachment>,
}

/// `PATCH /v0/drafts/{id}`: only the fields given change; a list given replaces the old one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateDraftRequest {
    #[serde(
        default,
        deserialize_with = "opt_one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub to: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "opt_one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub cc: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "opt_one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub bcc: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 998, pattern = r"^[^\r\n\u0000]*$"))]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub text: Option<String>,
    /// The HTML body; `""` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub html: Option<String>,
    /// The message answered (`msg_...`); `""` makes the draft a new conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^(msg_[a-z2-7]{1,64})?$"))]
    pub reply_to: Option<String>,
    /// The files, as for a send: the list given replaces the old one (`[]` removes them all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<mail::NewAttachment>>,
}

impl UpdateDraftRequest {
    fn is_empty(&self) -> bool {
        self.to.is_none()
            && self.cc.is_none()
            && self.bcc.is_none()
            && self.subject.is_none()
            && self.text.is_none()
            && self.html.is_none()
            && self.reply_to.is_none()
            && self.attachments.is_none()
    }
}

/// `POST /v0/drafts/{id}/send` (the body may be left out).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendDraftRequest {
    /// Makes a retry safe, as for a send: a retry with the key of an earlier successful send
    /// of this draft returns that result. Also accepted as the `Idempotency-Key` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 255, pattern = r"^[\x21-\x7e]+$")
    )]
    pub idempotency_key: Option<String>,
    /// Send later, as `send_at` of a send: an RFC 3339 time at most a year ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub send_at: Option<String>,
}

/// `GET /v0/drafts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListDraftsParams {
    /// 1 to 200, default 50.
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl Loft {
    pub async fn create_draft(&self, actor: &Actor, req: CreateDraftRequest) -> Result<Draft> {
        let me = actor.require(Scope::MailSend)?.clone();
        let reply_to = self.draft_reply_to(&me, req.reply_to.as_deref()).await?;
        let (mut to, mut cc, mut subject) = (req.to, req.cc, req.subject);
        if let Some(original) = &reply_to {
            if to.is_empty() && cc.is_empty() && req.bcc.is_empty() {
                let (t, _) = reply_recipients(original, &me, false);
                to = t.iter().map(|a| a.as_str().to_owned()).collect();
                cc = vec![];
            }
            if subject.is_empty() {
                subject = mail::reply_subject(&original.subject);
            }
        }
        let files = mail::parse_attachments(&req.attachments, self.config.max_attachment_bytes)?;
        if let Some(limit) = self.quotas.drafts {
            let have = self.store.count_drafts(&me.id).await?;
            quota::check("drafts", "drafts", Some(limit), have, 1)?;
        }
        let now = self.clock.now();
        let mut draft = Draft {
            id: DraftId::generate(self.random.as_ref()),
            to,
            cc,
            bcc: req.bcc,
            subject,
            text: req.text,
            html: req.html,
            reply_to: reply_to.map(|m| m.id),
            attachments: vec![],
            files: vec![],
            created_at: now,
            updated_at: now,
        };
        draft.set_files(files);
        self.check_draft(&draft)?;
        let audit = actor.audit(
            now,
            "draft.create",
            Some(draft.id.to_string()),
            draft_details(&draft, None),
        );
        self.store.create_draft(&me.id, draft.clone(), audit).await?;
        Ok(draft)
    }

    pub async fn list_drafts(&self, actor: &Actor, params: ListDraftsParams) -> Result<Page<Draft>> {
        let me = actor.require(Scope::MailRead)?;
        let p = self
            .store
            .list_drafts(&me.id, cursor(params.cursor.as_deref())?, page_limit(params.limit)?)
            .await?;
        Ok(page(p))
    }

    pub async fn get_draft(&self, actor: &Actor, id: &str) -> Result<Draft> {
        let me = actor.require(Scope::MailRead)?;
        self.load_draft(me, &DraftId::parse(id)?).await
    }

    pub async fn update_draft(&self, actor: &Actor, id: &str, req: UpdateDraftRequest) -> Result<Draft> {
        let me = actor.require(Scope::MailSend)?.clone();
        let id = DraftId::parse(id)?;
        if req.is_empty() {
            return Err(Error::invalid("empty_update", "nothing to change")
                .with_hint("send at least one of to, cc, bcc, subject, text, html, reply_to, attachments"));
        }
        let mut draft = self.load_draft(&me, &id).await?;
        let mut changed: Vec<&str> = Vec::new();
        if let Some(r) = req.reply_to.as_deref() {
            draft.reply_to = if r.trim().is_empty() {
                None
            } else {
                self.draft_reply_to(&me, Some(r)).await?.map(|m| m.id)
            };
            changed.push("reply_to");
        }
        if let Some(to) = req.to {
            draft.to = to;
            changed.push("to");
        }
        if let Some(cc) = req.cc {
            draft.cc = cc;
            changed.push("cc");
        }
        if let Some(bcc) = req.bcc {
            draft.bcc = bcc;
            changed.push("bcc");
        }
        if let Some(subject) = req.subject {
            draft.subject = subject;
            changed.push("subject");
        }
        if let Some(text) = req.text {
            draft.text = text;
            changed.push("text");
        }
        if let Some(html) = req.html {
            draft.html = (!html.is_empty()).then_some(html);
            changed.push("html");
        }
        if let Some(list) = req.attachments {
            draft.set_files(mail::parse_attachments(&list, self.config.max_attachment_bytes)?);
            changed.push("attachments");
        }
        let now = self.clock.now();
        draft.updated_at = now;
        self.check_draft(&draft)?;
        let audit = actor.audit(
            now,
            "draft.update",
            Some(id.to_string()),
            draft_details(&draft, Some(&changed)),
        );
        self.store
            .update_draft(&me.id, draft.clone(), audit)
            .await
            .map_err(per_draft)?;
        Ok(draft)
    }

    pub async fn delete_draft(&self, actor: &Actor, id: &str) -> Result<()> {
        let me = actor.require(Scope::MailSend)?;
        let id = DraftId::parse(id)?;
        let audit = actor.audit(
            self.clock.now(),
            "draft.delete",
            Some(id.to_string()),
            serde_json::json!({}),
        );
        self.store.delete_draft(&me.id, &id, audit).await.map_err(per_draft)
    }

    /// Sends a draft exactly as a send (or, with `reply_to`, a reply) of its content would be
    /// sent: the same checks, gate, guard and quotas. The store deletes the draft in the
    /// transaction that writes the mail.
    pub async fn send_draft(&self, actor: &Actor, id: &str, req: SendDraftRequest) -> Result<Message> {
        let me = actor.require(Scope::MailSend)?.clone();
        let id = DraftId::parse(id)?;
        let idem = self.idempotency(req.idempotency_key.as_deref(), &("drafts.send", id.as_str(), &req))?;
        if let Some(done) = self.replay(&me, idem.as_ref()).await? {
            return Ok(done);
        }
        Self::check_may_send(&me)?;
        let send_at = self.check_send_at(req.send_at.as_deref())?;
        let draft = match self.load_draft(&me, &id).await {
            Ok(d) => d,
            // A concurrent send with the same key may have consumed the draft since the
            // replay above looked: answer as its retry would be.
            Err(e) => return self.replay(&me, idem.as_ref()).await?.ok_or(e),
        };
        let to = parse_addresses("to", &draft.to)?;
        let cc = parse_addresses("cc", &draft.cc)?;
        let bcc = parse_addresses("bcc", &draft.bcc)?;
        let (action, in_reply_to, references) = match &draft.reply_to {
            Some(mid) => {
                let original = self
                    .store
                    .get_message(&me.id, mid)
                    .await?
                    // Deleted for ever since the draft was written (`DELETE /v0/messages/{id}`).
                    .ok_or_else(|| {
                        Error::conflict(
                            "reply_to_deleted",
                            format!("this draft answers {mid}, which was deleted for ever since"),
                        )
                        .with_hint("set reply_to to \"\" to send the draft as a new conversation, or delete the draft")
                    })?;
                (
                    "mail.reply",
                    Some(original.message_id.clone()),
                    reply_references(&original),
                )
            }
            None => ("mail.send", None, vec![]),
        };
        let out = Outgoing {
            to,
            cc,
            bcc,
            subject: draft.subject,
            text: draft.text,
            html: draft.html,
            in_reply_to,
            references,
            draft: Some(id),
            send_at,
            files: draft.files,
        };
        match self.deliver(actor, &me, out, action, idem.clone()).await {
            Ok(m) => Ok(m),
            // The draft went between the load and the write (the store consumes it last, after
            // the idempotency key): a concurrent send with the same key is answered as a retry.
            Err(e) => match self.replay(&me, idem.as_ref()).await? {
                Some(done) => Ok(done),
                None => Err(per_draft(e)),
            },
        }
    }

    async fn load_draft(&self, me: &Identity, id: &DraftId) -> Result<Draft> {
        self.store
            .get_draft(&me.id, id)
            .await?
            .ok_or_else(|| per_draft(Error::not_found("draft")))
    }

    /// The message a draft answers: one in the composer's own mailbox.
    async fn draft_reply_to(&self, me: &Identity, id: Option<&str>) -> Result<Option<Message>> {
        let Some(id) = id else { return Ok(None) };
        let id = MessageId::parse(id.trim())?;
        let m = self
            .store
            .get_message(&me.id, &id)
            .await?
            .ok_or_else(|| per_mailbox(Error::not_found("message")))?;
        Ok(Some(m))
    }

    /// The bounds of a send, on each field of a draft; recipients are kept as written.
    fn check_draft(&self, d: &Draft) -> Result<()> {
        let count = d.to.len() + d.cc.len() + d.bcc.len();
        if count > mail::MAX_RECIPIENTS {
            return Err(Error::invalid(
                "too_many_recipients",
                format!("at most {} recipients per message, not {count}", mail::MAX_RECIPIENTS),
            ));
        }
        for (field, list) in [("to", &d.to), ("cc", &d.cc), ("bcc", &d.bcc)] {
            for a in list {
                text::refuse_nul(field, a)?;
                if a.len() > MAX_DRAFT_ADDRESS || a.contains(['\r', '\n']) {
                    return Err(Error::invalid(
                        "invalid_address",
                        format!("`{field}`: a recipient is one line of at most {MAX_DRAFT_ADDRESS} bytes"),
                    ));
                }
            }
        }
        if d.subject.chars().count() > mail::MAX_SUBJECT || d.subject.contains(['\r', '\n']) {
            return Err(Error::invalid(
                "invalid_subject",
                format!(
                    "the subject must be one line of at most {} characters",
                    mail::MAX_SUBJECT
                ),
            ));
        }
        text::refuse_nul("subject", &d.subject)?;
        text::refuse_nul("text", &d.text)?;
        text::refuse_nul("html", d.html.as_deref().unwrap_or_default())?;
        let body_bytes = d.text.len() + d.html.as_ref().map_or(0, String::len);
        if body_bytes > self.config.max_body_bytes {
            return Err(Error::invalid(
                "message_too_large",
                format!(
                    "the body is {body_bytes} bytes; the limit is {}",
                    self.config.max_body_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// What the audit log records of a draft: counts and the message it answers, not its content.
fn draft_details(d: &Draft, changed: Option<&[&str]>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "recipients": d.to.len() + d.cc.len() + d.bcc.len(),
        "reply_to": d.reply_to,
    });
    if !d.files.is_empty() {
        v["attachments"] = serde_json::json!(d.files.len());
    }
    if let Some(changed) = changed {
        v["changed"] = serde_json::json!(changed);
    }
    v
}

/// A draft that is not the caller's: say that drafts are per identity and that a sent draft
/// is gone.
fn per_draft(e: Error) -> Error {
    match e {
        Error::NotFound(d) if d.hint.is_none() && d.message.starts_with("draft") => Error::NotFound(d).with_hint(
            "drafts are per identity, and a draft is gone once it is sent or deleted (a sent one is in your sent \
             folder); list yours with GET /v0/drafts, `loft drafts list` or the MCP tool drafts_list",
        ),
        other => other,
    }
}
