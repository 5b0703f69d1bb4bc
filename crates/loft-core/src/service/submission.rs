//! Submission: mail a client that is not an agent (a mail program, a legacy script) hands to
//! Loft's SMTP submission listener, authenticated as one identity. The listener is
//! `loft-smtp`; here the credentials are checked ([`Loft::authenticate_submission`]) and the
//! submitted RFC 5322 message becomes a send ([`Loft::submit`]) through the very use case of
//! `POST /v0/messages/send`: the rules, the mode's gate, the caps, the exfiltration guard, the
//! quotas and the audit row (action `mail.submit`).

use super::messages::Outgoing;
use super::{Actor, Loft, Principal, RequestContext};
use crate::address::EmailAddress;
use crate::keys::Scope;
use crate::mail::{self, Message};
use crate::{Error, Result};

impl Loft {
    /// SMTP AUTH: `username` must be the address of the identity whose API key `password` is.
    /// A refused key counts towards the address's lockout as a refused bearer key does over
    /// HTTP, and so does a key presented with another identity's address; the operator key
    /// is refused (it has no address to send from).
    pub async fn authenticate_submission(&self, username: &str, password: &str, ctx: RequestContext) -> Result<Actor> {
        let address = crate::limits::address_key(ctx.remote_addr.as_deref());
        let actor = self.authenticate(Some(password), ctx).await?;
        let own = match &actor.principal {
            Principal::Identity { identity, .. } => identity.address.as_str().eq_ignore_ascii_case(username.trim()),
            Principal::Operator => false,
        };
        if !own {
            self.limits
                .record_refusal(&address, "submission_address_mismatch", self.clock.now());
            return Err(Error::unauthenticated(
                "the user name must be the address of the identity whose API key is the password",
            ));
        }
        Ok(actor)
    }

    /// Sends a message submitted by SMTP: from the authenticated identity (the `From` header
    /// is its address whatever the client wrote), to the envelope's recipients (those in the
    /// `To` and `Cc` headers stay there, the others are Bcc), with the message's subject,
    /// text, HTML, attachments and threading headers. A new `Message-ID` is given, as for
    /// every send.
    pub async fn submit(&self, actor: &Actor, recipients: &[EmailAddress], raw: &[u8]) -> Result<Message> {
        let me = actor.require(Scope::MailSend)?.clone();
        Self::check_may_send(&me)?;
        let parsed = crate::inbound::parse(raw);
        let in_envelope = |list: &[EmailAddress]| -> Vec<EmailAddress> {
            list.iter().filter(|a| recipients.contains(a)).cloned().collect()
        };
        let to = in_envelope(&parsed.to);
        let cc = in_envelope(&parsed.cc);
        let bcc = recipients
            .iter()
            .filter(|a| !to.contains(a) && !cc.contains(a))
            .cloned()
            .collect();
        let files = (0..parsed.attachments.len())
            .filter_map(|i| crate::inbound::attachment(raw, i).map(|f| (i, f)))
            .map(|(i, (a, bytes))| mail::NewAttachment {
                filename: a.name.unwrap_or_else(|| format!("attachment-{}", i + 1)),
                content_type: Some(a.content_type),
                content_base64: {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.encode(bytes)
                },
            })
            .collect::<Vec<_>>();
        let files = mail::parse_attachments(&files, self.config.max_attachment_bytes)?;
        let mut references = parsed.references;
        if let Some(irt) = &parsed.in_reply_to
            && !references.contains(irt)
        {
            references.push(irt.clone());
        }
        let out = Outgoing {
            to,
            cc,
            bcc,
            subject: parsed.subject,
            text: parsed.text,
            html: parsed.html,
            in_reply_to: parsed.in_reply_to,
            references,
            draft: None,
            send_at: None,
            files,
        };
        self.deliver(actor, &me, out, "mail.submit", None).await
    }
}
