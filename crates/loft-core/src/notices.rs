//! Held-mail notices by mail: a reviewer names an address (console page "Notifications"), and
//! each time mail is held for a reviewer a short notice goes there: the held mail's subject,
//! sender, recipients, why it is held and the console link to its page (which asks for
//! sign-in). Never the held mail's body, never a link that decides anything.
//!
//! The work goes through the jobs table, so the hold itself never waits for it: the send that
//! holds a mail queues one [`NOTICE_JOB`] for the approval in its own transaction; the runner
//! splits it into one job per reviewer who asked for notices, and each of those delivers one
//! notice.
//!
//! Where a notice may go: the reviewer's own mailbox here (delivered straight into it from
//! `loft-console@<domain>`, like a bounce notice), or an outside address the reviewer proved to
//! read: naming one mails a code there ([`NoticeConfirmation`]; only its hash is stored), and
//! the address is used once the code comes back. Outside notices are mail from the reviewer's
//! own address through the outbound queue (a copy in their `sent` folder, DKIM, retries,
//! bounces to their inbox), and pass what any mail to that address passes: not while outgoing
//! mail is frozen, not when the reviewer's send rules hold or block the address, not to a
//! suppressed address. Another identity's address is never accepted: its mailbox would learn
//! what reviewers see of every held mail.

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
    /// Where notices go: the reviewer's own address, or an outside address they confirmed.
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

    /// Records `c` as `c.identity_id`'s pending confirmation (replacing any earlier one), with
    /// the audit row, in one transaction.
    async fn put_notice_confirmation(&self, c: NoticeConfirmation, audit: AuditEntry) -> Result<()>;

    /// `identity`'s pending confirmation, if any (expired ones included).
    async fn notice_confirmation(&self, identity: &IdentityId) -> Result<Option<NoticeConfirmation>>;

    /// Checks a code against `identity`'s pending confirmation, in one transaction:
    /// - none: [`Confirmed::NoneWaiting`], nothing written;
    /// - expired at `audit_ok.at`: deleted, [`Confirmed::Expired`], `audit_failed` appended;
    /// - `code_hash` matches: the address becomes the notice address (as
    ///   [`NoticeStore::set_held_mail_notice`] sets it), the confirmation is deleted,
    ///   `audit_ok` appended, [`Confirmed::Yes`];
    /// - otherwise: one more attempt counted (the confirmation deleted when it reaches
    ///   `max_attempts`), `audit_failed` appended, [`Confirmed::WrongCode`] with the attempts
    ///   left.
    async fn confirm_notice_address(
        &self,
        identity: &IdentityId,
        code_hash: &str,
        max_attempts: u32,
        audit_ok: AuditEntry,
        audit_failed: AuditEntry,
    ) -> Result<Confirmed>;
}

/// A reviewer's outside notice address waiting for its code (see
/// [`NoticeStore::put_notice_confirmation`]). The code is never stored: `code_hash` is
/// [`confirmation_code_hash`] of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeConfirmation {
    pub identity_id: IdentityId,
    pub address: EmailAddress,
    pub code_hash: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub attempts: u32,
}

/// What [`NoticeStore::confirm_notice_address`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    Yes(HeldMailNotice),
    NoneWaiting,
    Expired,
    WrongCode { attempts_left: u32 },
}

/// How long a confirmation code works.
pub const CONFIRMATION_TTL_SECS: i64 = 30 * 60;
/// Wrong codes before the confirmation is dropped (a new code must be asked for).
pub const CONFIRMATION_ATTEMPTS: u32 = 5;
/// Least time between two confirmation mails of one reviewer (each goes to an outside address).
pub const CONFIRMATION_INTERVAL_SECS: i64 = 60;

/// The stored form of a confirmation code: SHA-256 (hex) of the reviewer's id and the code, so
/// the same code of two reviewers differs and the database never holds the code.
pub fn confirmation_code_hash(identity: &IdentityId, code: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(identity.as_str().as_bytes());
    h.update(b"\0");
    h.update(code.trim().as_bytes());
    hex::encode(h.finalize())
}
