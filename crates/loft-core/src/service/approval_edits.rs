//! A reviewer's edit of held mail before deciding on it (`POST /v0/approvals/{id}/edit`): the
//! subject, bodies or recipients changed, checked as a send is, and the sender's copy
//! rewritten in place, so that the agent sees the mail as it will be sent and an approval sends
//! the edited version. The audit row records what changed, with every value of the composer's
//! vault redacted: the log is append-only and must never hold a secret.

use serde::{Deserialize, Serialize};

use super::messages::{Outgoing, parse_addresses};
use super::oversight::{ApprovalView, plan_copies};
use super::{Actor, Loft};
use crate::address::EmailAddress;
use crate::identity::Identity;
use crate::mail::{self, DeliveryStatus, MailContent, Message};
use crate::oversight::{ApprovalId, StoredEdit};
use crate::vault::SecretFields;
use crate::{Error, Result, diff, text};

/// `POST /v0/approvals/{id}/edit`: what to change in a held mail (at least one field). Each
/// field given replaces the mail's; the result is checked as a send is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EditHeldMail {
    /// The new subject: one line (no CR, LF or NUL) of at most 998 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 998, pattern = r"^[^\r\n\u0000]*$"))]
    pub subject: Option<String>,
    /// The new plain-text body (no NUL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub text: Option<String>,
    /// The new HTML body (no NUL); an empty string removes the HTML version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub html: Option<String>,
    /// The new `to` recipients (replacing them all); a single string is accepted.
    #[serde(
        default,
        deserialize_with = "crate::wire::opt_one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::to))]
    pub to: Option<Vec<String>>,
    /// The new `cc` recipients; `[]` removes them.
    #[serde(
        default,
        deserialize_with = "crate::wire::opt_one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::cc))]
    pub cc: Option<Vec<String>>,
    /// The new `bcc` recipients; `[]` removes them.
    #[serde(
        default,
        deserialize_with = "crate::wire::opt_one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::bcc))]
    pub bcc: Option<Vec<String>>,
}

impl EditHeldMail {
    fn is_empty(&self) -> bool {
        self.subject.is_none()
            && self.text.is_none()
            && self.html.is_none()
            && self.to.is_none()
            && self.cc.is_none()
            && self.bcc.is_none()
    }
}

/// Lines of context around each change in the audit row's body diffs.
const DIFF_CONTEXT: usize = 2;
/// The most bytes of one body diff kept in the audit row (the rest is cut, and said so).
const MAX_DIFF_BYTES: usize = 64 * 1024;

impl Loft {
    /// Edits a pending held mail (reviewers and the operator; never the identity that composed
    /// it): the sender's copy is rewritten in place, keeping its `Message-ID`, threading
    /// headers and date; its recipients' delivery is planned again and the exfiltration guard
    /// re-run, so the approval shows what the mail triggers now. Returns the approval with the
    /// mail as it now stands.
    pub async fn edit_approval(&self, actor: &Actor, id: &str, req: EditHeldMail) -> Result<ApprovalView> {
        let editor = Self::reviewer(actor)?;
        if req.is_empty() {
            return Err(Error::invalid("empty_edit", "nothing to change").with_hint(
                "give at least one of `subject`, `text`, `html`, `to`, `cc`, `bcc`; to send it as it is, approve it",
            ));
        }
        let approval = self.pending(actor, &ApprovalId::parse(id)?).await?;
        if approval.direction == crate::oversight::HoldDirection::Receive {
            return Err(Error::conflict(
                "received_mail_not_editable",
                "held incoming mail is released as it arrived or rejected: a reviewer edits only mail an agent sends",
            )
            .with_hint("approve it to release it to its recipient, or reject it with a reason"));
        }
        let composer = self.active_composer(&approval).await?;
        let before = self
            .store
            .get_message(&composer.id, &approval.message_id)
            .await?
            .ok_or_else(|| Error::internal(format!("approval {} has no message", approval.id)))?;
        let mut draft = Outgoing {
            to: match &req.to {
                Some(list) => parse_addresses("to", list)?,
                None => before.to.clone(),
            },
            cc: match &req.cc {
                Some(list) => parse_addresses("cc", list)?,
                None => before.cc.clone(),
            },
            bcc: match &req.bcc {
                Some(list) => parse_addresses("bcc", list)?,
                None => before.bcc.clone(),
            },
            subject: req.subject.unwrap_or_else(|| before.subject.clone()),
            text: req.text.unwrap_or_else(|| before.text.clone()),
            html: match req.html {
                Some(h) if h.is_empty() => None,
                Some(h) => Some(h),
                None => before.html.clone(),
            },
            in_reply_to: before.in_reply_to.clone(),
            references: before.references.clone(),
            draft: None,
            // The held mail keeps its send_at (on the sender copy, which the edit leaves).
            send_at: None,
            // and its files: a reviewer edits the words and the recipients, not the attachments.
            files: self.sent_files(&composer.id, &before).await?,
        };
        let (all, local) = self.check_outgoing(&mut draft).await?;
        if draft.to == before.to
            && draft.cc == before.cc
            && draft.bcc == before.bcc
            && draft.subject == before.subject
            && draft.text == before.text
            && draft.html == before.html
        {
            return Err(
                Error::invalid("edit_changes_nothing", "the held mail already reads exactly so")
                    .with_hint("change something, or approve it as it is"),
            );
        }
        // The rules bind the edited recipients as they bind a send (a reply's `reply` rules
        // too): a blocked address refuses the edit, audited as `approval.edit`; a hold rule
        // is one of the reasons the mail is held now.
        let (rule_holds, _) = self
            .check_rules(
                actor,
                &composer,
                &all,
                &local,
                before.in_reply_to.is_some(),
                "approval.edit",
            )
            .await?;
        // What the edited mail triggers now: the mode, the exfiltration guard, first contact
        // (for the recipients it has now) and the rules.
        let mut reasons = self
            .hold_reasons(
                &composer,
                &all,
                &draft.subject,
                &draft.text,
                draft.html.as_deref(),
                &draft.files,
            )
            .await?;
        reasons.extend(rule_holds);
        let now = self.clock.now();
        let content = MailContent {
            message_id: before.message_id.clone(),
            in_reply_to: draft.in_reply_to,
            references: draft.references,
            from: before.from.clone(),
            from_name: before.from_name.clone(),
            to: draft.to,
            cc: draft.cc,
            bcc: draft.bcc,
            subject: draft.subject,
            extracted_text: text::extract_reply(&draft.text),
            text: draft.text,
            html: draft.html,
            authentication: before.authentication.clone(),
            created_at: before.created_at,
        };
        let raw = mail::build_rfc5322(&content, &draft.files)?;
        // The delivery report the sender sees while it waits: every recipient held.
        let (_, mut delivery) = plan_copies(self, &all, &local);
        for d in &mut delivery {
            d.status = DeliveryStatus::Held;
            d.detail = "held for a reviewer's approval".into();
        }
        // Only the sender's mailbox holds the mail until it is approved: it must have room for
        // what the edit adds.
        let grows = (raw.len() as u64).saturating_sub(before.size.max(0) as u64);
        if grows > 0 {
            self.check_mail_quotas(&composer, &[], 0, grows, now).await?;
        }
        let secrets = self.vault_values(&composer).await?;
        let mut details = edit_details(&before, &content, &secrets);
        details["message"] = serde_json::json!(before.id);
        details["composer"] = serde_json::json!(composer.id);
        details["edit"] = serde_json::json!(approval.edit_count + 1);
        details["size"] = serde_json::json!({ "before": before.size, "after": raw.len() });
        details["reasons"] = serde_json::json!(
            reasons
                .iter()
                .map(|r| serde_json::json!({"kind": r.kind, "credential": r.credential, "rule": r.rule.as_ref().map(|x| &x.id)}))
                .collect::<Vec<_>>()
        );
        drop(secrets);
        let audit = actor.audit(now, "approval.edit", Some(approval.id.to_string()), details);
        let edit = StoredEdit {
            id: approval.id.clone(),
            at: now,
            edited_by: editor,
            expected_edits: approval.edit_count,
            content,
            raw,
            delivery,
            reasons,
        };
        let approval = self
            .store
            .edit_held_mail(edit, audit)
            .await
            .map_err(super::oversight::edited_meanwhile)?
            .as_of(now);
        let mut message = self
            .store
            .get_message(&composer.id, &approval.message_id)
            .await?
            .ok_or_else(|| Error::internal(format!("approval {} has no message", approval.id)))?;
        message.status = mail::MessageStatus::PendingApproval;
        message.approval = Some(approval.clone());
        Ok(ApprovalView { approval, message })
    }

    /// The files attached to a mail `owner` sent, read back from its stored bytes.
    async fn sent_files(&self, owner: &crate::ids::IdentityId, m: &mail::Message) -> Result<Vec<mail::OutgoingFile>> {
        if m.attachments.is_empty() {
            return Ok(vec![]);
        }
        let raw = self
            .store
            .raw_message(owner, &m.id)
            .await?
            .ok_or_else(|| Error::internal(format!("message {} has no stored bytes", m.id)))?;
        Ok((0..m.attachments.len())
            .filter_map(|i| crate::inbound::attachment(&raw, i))
            .map(|(a, bytes)| mail::OutgoingFile {
                filename: a.name.unwrap_or_else(|| "attachment".into()),
                content_type: a.content_type,
                bytes,
            })
            .collect())
    }

    /// Every secret value in `me`'s vault, with its credential's name, longest first (so that a
    /// value containing another is redacted whole). Empty without a vault.
    async fn vault_values(&self, me: &Identity) -> Result<Vec<(String, SecretFields)>> {
        if self.vault.is_none() {
            return Ok(Vec::new());
        }
        let ring = self.keyring()?;
        let mut out = Vec::new();
        for c in self.store.vault_all(&me.id).await? {
            out.push((c.meta.name.clone(), Self::open_secrets(&ring, &c)?));
        }
        Ok(out)
    }
}

/// `text` with every value of `secrets` (raw or in any encoding the guard knows) replaced by
/// `[credential NAME]`.
fn redact(text: &str, secrets: &[(String, SecretFields)]) -> String {
    let mut values: Vec<(&str, &str)> = secrets
        .iter()
        .flat_map(|(name, s)| {
            s.fields
                .values()
                .chain(s.backup_codes.iter())
                .map(move |v| (name.as_str(), v.as_str()))
        })
        .collect();
    values.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    let mut out = text.to_owned();
    for (name, value) in values {
        out = crate::oversight::redact_secret(&out, value, &format!("[credential {name}]")).0;
    }
    out
}

/// What an edit changed, for its audit row: the subject and each recipient list before and
/// after, and a unified line diff of each body, only for what changed, with the composer's
/// vault values redacted everywhere (bodies before they are compared, so that a secret
/// across lines is still found whole).
fn edit_details(before: &Message, after: &MailContent, secrets: &[(String, SecretFields)]) -> serde_json::Value {
    let r = |s: &str| redact(s, secrets);
    let list = |l: &[EmailAddress]| l.iter().map(|a| r(a.as_str())).collect::<Vec<_>>();
    let mut changed = serde_json::Map::new();
    if before.subject != after.subject {
        changed.insert(
            "subject".into(),
            serde_json::json!({ "before": r(&before.subject), "after": r(&after.subject) }),
        );
    }
    for (field, old, new) in [
        ("to", &before.to, &after.to),
        ("cc", &before.cc, &after.cc),
        ("bcc", &before.bcc, &after.bcc),
    ] {
        if old != new {
            changed.insert(
                field.into(),
                serde_json::json!({ "before": list(old), "after": list(new) }),
            );
        }
    }
    let bodies = [
        ("text", Some(before.text.as_str()), Some(after.text.as_str())),
        ("html", before.html.as_deref(), after.html.as_deref()),
    ];
    for (field, old, new) in bodies {
        if old != new {
            let d = diff::unified(&r(old.unwrap_or_default()), &r(new.unwrap_or_default()), DIFF_CONTEXT);
            changed.insert(
                field.into(),
                serde_json::json!({
                    "diff": cut(d),
                    "before_present": old.is_some(),
                    "after_present": new.is_some(),
                }),
            );
        }
    }
    serde_json::json!({ "changed": changed })
}

/// At most [`MAX_DIFF_BYTES`] of `d`, cut at a character boundary, saying so.
fn cut(mut d: String) -> String {
    if d.len() > MAX_DIFF_BYTES {
        let mut at = MAX_DIFF_BYTES;
        while !d.is_char_boundary(at) {
            at -= 1;
        }
        d.truncate(at);
        d.push_str("\n[diff cut at 64 KiB]\n");
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(name: &str, value: &str) -> Vec<(String, SecretFields)> {
        let mut s = SecretFields::default();
        s.fields.insert("value".into(), value.into());
        vec![(name.into(), s)]
    }

    #[test]
    fn redaction_covers_encodings_and_keeps_the_longest_value_whole() {
        use base64::Engine as _;
        let secret = "sk-live-9f8e7d6c";
        let mut s = secrets("crm", secret);
        // A second credential whose value is part of the first one's.
        s.extend(secrets("short", "sk-live"));
        let text = format!(
            "a {secret} b {} c sk-live",
            base64::engine::general_purpose::STANDARD.encode(secret)
        );
        let out = redact(&text, &s);
        // (The base64 padding stays: it carries nothing of the value.)
        assert_eq!(out, "a [credential crm] b [credential crm]== c [credential short]");
    }

    #[test]
    fn cut_keeps_characters_whole() {
        let d = "é".repeat(MAX_DIFF_BYTES);
        let c = cut(d);
        assert!(c.ends_with("[diff cut at 64 KiB]\n"));
        assert!(c.len() <= MAX_DIFF_BYTES + 30);
    }
}
