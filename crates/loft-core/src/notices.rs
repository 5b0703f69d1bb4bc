//! Held-mail notices by mail: a reviewer names an address (console page "Notifications"), and
//! each time mail is held for a reviewer a short notice goes there: the held mail's subject,
//! sender, recipients, why it is held and the console link to its page (which asks for
//! sign-in). Never the held mail's body, never a link that decides anything.
//!
//! The work goes through the jobs table, so the hold itself never waits for it: the send that
//! holds a mail queues one [`NOTICE_JOB`] for the approval in its own transaction; the runner
//! splits it into one job per reviewer who asked for notices, and each of those delivers one
//! notice. Notices go to addresses hosted on this server only, delivered straight into that
//! mailbox from `loft-console@<domain>` (like a bounce notice): an outside address would need
//! the outbound queue under the egress rules, which notices do not use yet, so it is refused
//! when set rather than sent around those rules.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::address::EmailAddress;
use crate::audit::AuditEntry;
use crate::ids::IdentityId;
use crate::jobs::NewJob;
use crate::time::Timestamp;

/// The job kind of held-mail notices; its payload is [`NoticeJob`].
pub const NOTICE_JOB: &str = "approval.notice";

/// The local part notices come from (`loft-console@<domain>`).
pub const NOTICE_SENDER: &str = "loft-console";

/// A reviewer's choice to be told of held mail by mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeldMailNotice {
    /// The reviewer.
    pub identity_id: IdentityId,
    /// Where notices go (an address hosted on this server).
    pub address: EmailAddress,
    pub updated_at: Timestamp,
}

/// A [`NOTICE_JOB`]'s payload: the approval, and the reviewer to tell (`None`: split into one
/// job per reviewer who asked for notices).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeJob {
    pub approval_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<IdentityId>,
}

impl NoticeJob {
    /// The job that tells every reviewer who asked.
    pub fn for_approval(approval_id: &str, now: Timestamp) -> NewJob {
        Self {
            approval_id: approval_id.to_owned(),
            reviewer: None,
        }
        .job(now)
    }

    pub fn job(&self, now: Timestamp) -> NewJob {
        NewJob {
            kind: NOTICE_JOB.into(),
            payload: serde_json::to_string(self).unwrap_or_default(),
            owner: self.reviewer.clone(),
            run_at: now,
            max_attempts: 5,
        }
    }
}

/// The storage of notice settings, identical on every backend (conformance module
/// `approvals_console`).
#[async_trait]
pub trait NoticeStore: Send + Sync {
    /// Sets (`Some`) or clears (`None`) `identity`'s notice address, with the audit row, in
    /// one transaction; `updated_at` is the audit row's time.
    async fn set_held_mail_notice(
        &self,
        identity: &IdentityId,
        address: Option<&EmailAddress>,
        audit: AuditEntry,
    ) -> Result<()>;

    /// `identity`'s notice address, if set.
    async fn held_mail_notice(&self, identity: &IdentityId) -> Result<Option<HeldMailNotice>>;

    /// Every notice address set, by identity id.
    async fn held_mail_notices(&self) -> Result<Vec<HeldMailNotice>>;
}
