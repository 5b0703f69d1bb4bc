//! What a reviewer sees beside a held mail: the mail that came before it, so that "reply to
//! the invoice thread with the bank details" can be judged against the thread it answers.
//!
//! Allowed to whoever may see the held mail itself (the operator, and keys holding the
//! `oversight` scope): the earlier mail of a thread is no more private than the held mail,
//! which quotes it most of the time, and a reviewer cannot judge a reply without it. It is
//! bounded to that mail's own context, never a mailbox: for held outgoing mail, the earlier
//! messages of its own thread in the sender's mailbox; for held incoming mail (not threaded
//! until released), the last mail its recipient got from the same sender.

use super::{Actor, Loft};
use crate::Result;
use crate::mail::{Message, MessageQuery};
use crate::oversight::HoldDirection;

/// Most earlier messages shown beside a held mail.
pub const CONTEXT_MESSAGES: u32 = 10;

/// The mail before a held mail, oldest first.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalContext {
    /// `thread` (held outgoing mail: the earlier messages of its thread) or `sender` (held
    /// incoming mail: the last mail its recipient got from the same sender).
    pub basis: String,
    /// Oldest first, at most [`CONTEXT_MESSAGES`]; trashed copies left out.
    pub messages: Vec<Message>,
}

impl Loft {
    /// The earlier mail beside held mail `id` (see the module docs); the same permission as
    /// [`Loft::get_approval`].
    pub async fn approval_context(&self, actor: &Actor, id: &str) -> Result<ApprovalContext> {
        let view = self.get_approval(actor, id).await?;
        let (a, held) = (&view.approval, &view.message);
        let (basis, query) = match a.direction {
            HoldDirection::Send => (
                "thread",
                MessageQuery {
                    thread_id: Some(held.thread_id.clone()),
                    limit: CONTEXT_MESSAGES + 1,
                    ..Default::default()
                },
            ),
            HoldDirection::Receive => (
                "sender",
                MessageQuery {
                    from: Some(held.from.clone()),
                    limit: CONTEXT_MESSAGES + 1,
                    ..Default::default()
                },
            ),
        };
        let page = self.store.list_messages(&a.identity_id, query).await?;
        let mut messages = Vec::new();
        // Newest first from the store: keep the ones before the held mail.
        for s in page
            .items
            .into_iter()
            .filter(|s| s.id != held.id && s.created_at <= held.created_at)
            .take(CONTEXT_MESSAGES as usize)
        {
            if let Some(m) = self.store.get_message(&a.identity_id, &s.id).await? {
                messages.push(m);
            }
        }
        messages.reverse();
        Ok(ApprovalContext {
            basis: basis.into(),
            messages,
        })
    }
}
