//! The operator's read-only look at an identity (the console's identity, mail and vault pages):
//! its mailbox at a glance, its messages and threads, one message opened, and its vault's
//! metadata. Operator only; nothing here changes the identity's data (opening a message does
//! not mark it read), and every opening and vault listing is audited as the operator, naming
//! the identity. Never a secret value: the vault part reads metadata only, never decrypts.

use std::collections::HashMap;

use serde::Serialize;

use super::messages::{ListMessagesParams, ListThreadsParams, message_query, per_mailbox, thread_query};
use super::{Actor, Loft, Page, page};
use crate::audit::AuditQuery;
use crate::ids::{IdentityId, MessageId};
use crate::mail::{Message, MessageSummary, ThreadSummary};
use crate::store::MailboxStats;
use crate::time::Timestamp;
use crate::vault::CredentialMeta;
use crate::{Error, Result};

/// The vault actions that use a credential (a listing or metadata read is not a use).
const VAULT_USES: [&str; 5] = [
    "vault.http",
    "vault.totp",
    "vault.totp_backup",
    "vault.reveal",
    "vault.get",
];
/// How many of an identity's newest vault audit rows are searched for last uses.
const VAULT_USE_WINDOW: u32 = 200;

/// One credential's metadata and when it was last used.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialOverview {
    #[serde(flatten)]
    pub meta: CredentialMeta,
    /// The newest use found among the identity's last [`VAULT_USE_WINDOW`] vault audit rows.
    pub last_used_at: Option<Timestamp>,
    pub last_used_action: Option<String>,
}

impl Loft {
    /// [`MailboxStats`] per identity (only those whose mailbox holds mail), for the tree.
    pub async fn mailbox_stats(&self, actor: &Actor, ids: &[IdentityId]) -> Result<HashMap<IdentityId, MailboxStats>> {
        Self::require_operator(actor, "reading mailbox sizes")?;
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            for s in self.store.mailbox_stats(chunk).await? {
                out.insert(s.owner.clone(), s);
            }
        }
        Ok(out)
    }

    /// One identity's messages, as its own `GET /v0/messages` would list them.
    pub async fn inspect_messages(
        &self,
        actor: &Actor,
        identity: &str,
        params: ListMessagesParams,
    ) -> Result<Page<MessageSummary>> {
        Self::require_operator(actor, "reading an identity's mailbox")?;
        let owner = self.visible_identity(actor, &IdentityId::parse(identity)?).await?;
        let query = message_query(&params)?;
        Ok(page(self.store.list_messages(&owner.id, query).await?))
    }

    /// One identity's threads, as its own `GET /v0/threads` would list them.
    pub async fn inspect_threads(
        &self,
        actor: &Actor,
        identity: &str,
        params: ListThreadsParams,
    ) -> Result<Page<ThreadSummary>> {
        Self::require_operator(actor, "reading an identity's mailbox")?;
        let owner = self.visible_identity(actor, &IdentityId::parse(identity)?).await?;
        let query = thread_query(&params)?;
        Ok(page(self.store.list_threads(&owner.id, query).await?))
    }

    /// One message of an identity's mailbox, left unread, recorded as `mail.inspect` (target:
    /// the message; details: the identity). The row is written before the message is
    /// returned: no opening goes unrecorded.
    pub async fn inspect_message(&self, actor: &Actor, identity: &str, message: &str) -> Result<Message> {
        Self::require_operator(actor, "reading an identity's mail")?;
        let owner = self.visible_identity(actor, &IdentityId::parse(identity)?).await?;
        let id = MessageId::parse(message)?;
        let m = self
            .store
            .get_message(&owner.id, &id)
            .await?
            .ok_or_else(|| per_mailbox(Error::not_found("message")))?;
        let entry = actor.audit(
            self.clock.now(),
            "mail.inspect",
            Some(id.to_string()),
            serde_json::json!({ "identity": owner.id, "address": owner.address, "subject": crate::text::printable(&m.subject, 128) }),
        );
        self.store.append_audit(entry).await?;
        Ok(m)
    }

    /// The metadata of one identity's credentials (never a value: nothing is decrypted), with
    /// their last use, recorded as `vault.inspect`.
    pub async fn inspect_vault(&self, actor: &Actor, identity: &str) -> Result<Vec<CredentialOverview>> {
        Self::require_operator(actor, "reading an identity's vault")?;
        let owner = self.visible_identity(actor, &IdentityId::parse(identity)?).await?;
        let mut metas = Vec::new();
        let mut before = None;
        loop {
            let p = self.store.vault_list(&owner.id, before, 200).await?;
            metas.extend(p.items);
            match p.next_before {
                Some(b) if metas.len() < 5000 => before = Some(b),
                _ => break,
            }
        }
        let uses = self
            .store
            .list_audit(AuditQuery {
                actor_identity_id: Some(owner.id.clone()),
                action: Some("vault.".into()),
                outcome: Some(crate::audit::Outcome::Ok),
                since: None,
                until: None,
                before_seq: None,
                after_seq: None,
                limit: VAULT_USE_WINDOW,
            })
            .await?;
        // Newest first: the first row naming a credential is its last use.
        let mut last: HashMap<String, (Timestamp, String)> = HashMap::new();
        for r in uses.items {
            if let Some(t) = &r.entry.target
                && VAULT_USES.contains(&r.entry.action.as_str())
            {
                last.entry(t.clone()).or_insert((r.entry.at, r.entry.action.clone()));
            }
        }
        let entry = actor.audit(
            self.clock.now(),
            "vault.inspect",
            Some(owner.id.to_string()),
            serde_json::json!({ "count": metas.len() }),
        );
        self.store.append_audit(entry).await?;
        Ok(metas
            .into_iter()
            .map(|meta| {
                let found = last.remove(&meta.name);
                CredentialOverview {
                    last_used_at: found.as_ref().map(|u| u.0),
                    last_used_action: found.map(|u| u.1),
                    meta,
                }
            })
            .collect())
    }
}
