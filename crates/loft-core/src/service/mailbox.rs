//! The rest of the mailbox: labels, read state, archive and trash on one copy or a whole
//! thread, and deleting for ever from the trash (docs/mailbox.md). Every change touches only
//! the caller's own copies; another identity's copy of the same mail is never changed.

use super::messages::per_mailbox;
use super::{Actor, Loft};
use crate::ids::{MessageId, ThreadId};
use crate::keys::Scope;
use crate::mail::{self, MailTarget, Message, MessagePatch, Thread};
use crate::quota;
use crate::{Error, Result};

/// What `DELETE /v0/messages/{id}` and `DELETE /v0/threads/{id}` answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deleted {
    /// The ids of the copies deleted for ever from the caller's mailbox.
    pub deleted: Vec<MessageId>,
}

impl Loft {
    /// Labels, read state, archive and trash of one copy (`mail:manage`).
    pub async fn update_message(&self, actor: &Actor, id: &str, patch: MessagePatch) -> Result<Message> {
        let me = actor.require(Scope::MailManage)?;
        let id = MessageId::parse(id)?;
        let patch = self.checked_patch(&me.id, patch).await?;
        let audit = actor.audit(
            self.clock.now(),
            "mail.update",
            Some(id.to_string()),
            patch_details(&patch),
        );
        self.store
            .update_message(&me.id, &id, patch, audit)
            .await
            .map_err(per_mailbox)
    }

    /// The same change on every copy of a thread in the caller's mailbox, trashed ones
    /// included (so that restoring a thread brings all of it back), in one transaction.
    pub async fn update_thread(&self, actor: &Actor, id: &str, patch: MessagePatch) -> Result<Thread> {
        let me = actor.require(Scope::MailManage)?;
        let id = ThreadId::parse(id)?;
        let patch = self.checked_patch(&me.id, patch).await?;
        let audit = actor.audit(
            self.clock.now(),
            "mail.update_thread",
            Some(id.to_string()),
            patch_details(&patch),
        );
        self.store
            .update_thread(&me.id, &id, patch, audit)
            .await
            .map_err(per_mailbox)
    }

    /// Deletes the caller's copy for ever, from the trash only (`mail:manage`, like trashing:
    /// see docs/mailbox.md for why no narrower scope).
    pub async fn delete_message(&self, actor: &Actor, id: &str) -> Result<Deleted> {
        let id = MessageId::parse(id)?;
        self.delete_for_ever(actor, MailTarget::Message(id)).await
    }

    /// Deletes every copy of a thread in the caller's mailbox for ever; all must be in the trash.
    pub async fn delete_thread(&self, actor: &Actor, id: &str) -> Result<Deleted> {
        let id = ThreadId::parse(id)?;
        self.delete_for_ever(actor, MailTarget::Thread(id)).await
    }

    async fn delete_for_ever(&self, actor: &Actor, target: MailTarget) -> Result<Deleted> {
        let me = actor.require(Scope::MailManage)?;
        let action = match target {
            MailTarget::Message(_) => "mail.delete",
            MailTarget::Thread(_) => "mail.delete_thread",
        };
        // The id only: what was in the mail is gone, and the audit log must not keep it.
        let audit = actor.audit(
            self.clock.now(),
            action,
            Some(target.as_str().to_owned()),
            serde_json::json!({}),
        );
        let deleted = self
            .store
            .delete_for_ever(&me.id, &target, audit)
            .await
            .map_err(per_mailbox)?;
        Ok(Deleted { deleted })
    }

    /// The patch with its labels normalised, refused when empty or over the limits (the
    /// labels quota counts labels new to the mailbox).
    async fn checked_patch(&self, me: &crate::ids::IdentityId, patch: MessagePatch) -> Result<MessagePatch> {
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
        if patch.is_empty() {
            return Err(Error::invalid("empty_update", "nothing to change")
                .with_hint("send `add_labels`, `remove_labels`, `unread`, `archived` and/or `trashed`"));
        }
        if add.len() > mail::MAX_LABELS_PER_MESSAGE {
            return Err(Error::invalid(
                "too_many_labels",
                format!("at most {} labels per message", mail::MAX_LABELS_PER_MESSAGE),
            ));
        }
        if let (Some(limit), false) = (self.quotas.labels, add.is_empty()) {
            let (used, new) = self.store.mailbox_labels(me, &add).await?;
            if new > 0 {
                quota::check("labels", "distinct labels in the mailbox", Some(limit), used, new)?;
            }
        }
        Ok(MessagePatch {
            add_labels: add,
            remove_labels: remove,
            ..patch
        })
    }
}

fn patch_details(patch: &MessagePatch) -> serde_json::Value {
    let mut d = serde_json::json!({
        "add_labels": patch.add_labels, "remove_labels": patch.remove_labels, "unread": patch.unread,
    });
    if let Some(a) = patch.archived {
        d["archived"] = serde_json::json!(a);
    }
    if let Some(t) = patch.trashed {
        d["trashed"] = serde_json::json!(t);
    }
    d
}
