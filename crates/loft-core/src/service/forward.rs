//! Forwarding one's own copy of a message to new recipients.

use super::messages::{Outgoing, parse_addresses, per_mailbox, reply_references};
use super::{Actor, Loft};
use crate::Result;
use crate::ids::MessageId;
use crate::keys::Scope;
use crate::mail::{self, ForwardMail, Message};

impl Loft {
    /// Sends the caller's copy `id`, quoted below the note, to new recipients with a `Fwd:`
    /// subject, with its attachments (unless `keep_attachments` is false) and any added, through the same checks, rules, guard and gate as any send (the exfiltration
    /// guard reads the forwarded text too). In the caller's mailbox the forward joins the
    /// original's conversation (its `References` name the original); recipients who do not
    /// hold the original see a new one.
    pub async fn forward(&self, actor: &Actor, id: &str, req: ForwardMail) -> Result<Message> {
        let me = actor.require(Scope::MailSend)?.clone();
        let idem = self.idempotency(req.idempotency_key.as_deref(), &("mail.forward", id, &req))?;
        if let Some(done) = self.replay(&me, idem.as_ref()).await? {
            return Ok(done);
        }
        Self::check_may_send(&me)?;
        let send_at = self.check_send_at(req.send_at.as_deref())?;
        let to = parse_addresses("to", &req.to)?;
        let cc = parse_addresses("cc", &req.cc)?;
        let bcc = parse_addresses("bcc", &req.bcc)?;
        crate::text::refuse_nul("text", &req.text)?;
        let id = MessageId::parse(id)?;
        let original = self
            .store
            .get_message(&me.id, &id)
            .await?
            .ok_or_else(|| per_mailbox(crate::Error::not_found("message")))?;
        let carried = if req.keep_attachments.unwrap_or(true) && !original.attachments.is_empty() {
            let raw = self
                .store
                .raw_message(&me.id, &id)
                .await?
                .ok_or_else(|| per_mailbox(crate::Error::not_found("message")))?;
            crate::inbound::all_attachments(&raw)
        } else {
            Vec::new()
        };
        let files = mail::forwarded_files(carried, &req.attachments, self.config.max_attachment_bytes)?;
        let out = Outgoing {
            to,
            cc,
            bcc,
            subject: mail::forward_subject(&original.subject),
            text: mail::forward_text(&req.text, &original),
            html: None,
            in_reply_to: None,
            references: reply_references(&original),
            draft: None,
            send_at,
            files,
        };
        self.deliver(actor, &me, out, "mail.forward", idem).await
    }
}
