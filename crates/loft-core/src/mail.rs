//! The mail model: messages as real RFC 5322 documents plus the parsed fields the API needs,
//! one copy per mailbox, threaded per mailbox by `Message-ID` / `In-Reply-To` / `References`.

use serde::{Deserialize, Serialize};

use crate::address::EmailAddress;
use crate::ids::{IdentityId, MessageId, ThreadId};
use crate::time::Timestamp;
pub use crate::wire::one_or_many;
use crate::{Error, Result};

pub const MAX_SUBJECT: usize = 998;
pub const MAX_RECIPIENTS: usize = 100;
pub const MAX_LABEL: usize = 64;
pub const MAX_LABELS_PER_MESSAGE: usize = 50;
pub const SNIPPET_CHARS: usize = 160;
/// The most files one sent mail may carry.
pub const MAX_SENT_ATTACHMENTS: usize = 20;
/// The longest file name of a sent attachment, in bytes.
pub const MAX_FILENAME_BYTES: usize = 255;
/// The total decoded size of a sent mail's attachments unless the operator sets another
/// (`loft serve --max-attachment-bytes`): 1 MiB, whose base64 fits the default 2 MiB request.
pub const DEFAULT_MAX_ATTACHMENT_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Folder {
    /// Mail this identity received.
    Inbox,
    /// Mail this identity sent.
    Sent,
}

impl Folder {
    pub fn as_str(self) -> &'static str {
        match self {
            Folder::Inbox => "inbox",
            Folder::Sent => "sent",
        }
    }
    /// A folder as stored in message `row`; an unknown one (written by a newer version?) is
    /// an error naming the row, never read as some other folder.
    pub fn parse_stored(s: &str, row: &str) -> crate::Result<Self> {
        match s {
            "inbox" => Ok(Folder::Inbox),
            "sent" => Ok(Folder::Sent),
            other => Err(crate::Error::internal(format!(
                "message {row} has the unknown folder `{other}` (written by a newer version?)"
            ))),
        }
    }
}

/// How sure Loft is of who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Sent by another identity on this server, authenticated by its key: the sender is
    /// known for certain.
    InternalVerified,
    /// Not verified (mail from outside, until SMTP verdicts exist).
    Unverified,
    /// Received from outside over SMTP and not verified: SPF, DKIM and DMARC are not checked
    /// yet, so the From address is only what the sender wrote.
    ExternalUnverified,
    /// Received from outside over SMTP while its From address is on a domain this server
    /// hosts, and not authenticated (no DMARC pass, no aligned DKIM or SPF pass): probably
    /// forged.
    SpoofedSuspect,
    /// Received from outside over SMTP and authenticated for its From domain: DMARC passed,
    /// or a DKIM signature or SPF passed for a domain aligned with From. The sender controls
    /// that domain's mail; it is still an outside party.
    ExternalAuthenticated,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Authentication {
    pub verdict: Verdict,
    /// True when the sender is an identity on this server.
    pub internal: bool,
    /// One sentence a model can read.
    pub summary: String,
    /// SPF, DKIM, DMARC and ARC results of mail received by SMTP (absent on internal mail and
    /// on mail received before they were checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<crate::mailauth::AuthChecks>,
}

impl Authentication {
    pub fn internal() -> Self {
        Self {
            verdict: Verdict::InternalVerified,
            internal: true,
            summary: "verified internal mail: sent by an identity on this Loft server".into(),
            checks: None,
        }
    }
    pub fn unverified() -> Self {
        Self {
            verdict: Verdict::Unverified,
            internal: false,
            summary: "unverified: the sender could not be authenticated".into(),
            checks: None,
        }
    }
    /// Mail from outside, received over SMTP, whose sender nothing checked.
    pub fn external() -> Self {
        Self {
            verdict: Verdict::ExternalUnverified,
            internal: false,
            summary: "external, not verified: received from outside by SMTP; SPF, DKIM and DMARC were not checked, \
                      so the sender may not be who the From address claims"
                .into(),
            checks: None,
        }
    }
    /// Mail from outside, received over SMTP, whose From address claims a domain this server
    /// hosts (`domain`).
    pub fn spoofed_suspect(domain: &str) -> Self {
        Self {
            verdict: Verdict::SpoofedSuspect,
            internal: false,
            summary: format!(
                "suspected spoofing: the From address is on {domain}, a domain this server hosts, but the mail \
                 arrived from outside by SMTP, which mail from an identity here never does; treat the sender as \
                 unknown"
            ),
            checks: None,
        }
    }

    /// The verdict on mail received by SMTP from the checks' results: authenticated when
    /// DMARC passed or an aligned DKIM signature or SPF passed; otherwise spoofing is
    /// suspected when From claims a hosted domain (`hosted`), else not verified.
    pub fn from_checks(checks: crate::mailauth::AuthChecks, from_domain: &str, hosted: bool) -> Self {
        use crate::mailauth::CheckResult;
        let passed = checks.dmarc == CheckResult::Pass || checks.dkim_aligned_pass() || checks.spf_aligned_pass();
        let line = checks.line();
        let mut a = if passed {
            let how = if checks.dkim_aligned_pass() {
                "a DKIM signature of that domain verified"
            } else if checks.spf_aligned_pass() {
                "SPF authorised the sending server for that domain"
            } else {
                "DMARC passed"
            };
            Self {
                verdict: Verdict::ExternalAuthenticated,
                internal: false,
                summary: format!(
                    "external, authenticated: received from outside by SMTP and {how}, so the mail really \
                     comes from {from_domain} (an outside party) ({line})"
                ),
                checks: None,
            }
        } else if hosted {
            let mut a = Self::spoofed_suspect(from_domain);
            a.summary = format!(
                "suspected spoofing: the From address is on {from_domain}, a domain this server hosts, but the mail \
                 arrived from outside by SMTP without passing DKIM, SPF or DMARC for it; treat the sender as unknown \
                 ({line})"
            );
            a
        } else {
            let why = if checks.temperror() {
                "DNS did not answer in time for some checks (temperror)"
            } else {
                "neither DKIM nor SPF passed for the From domain"
            };
            Self {
                verdict: Verdict::ExternalUnverified,
                internal: false,
                summary: format!(
                    "external, not verified: received from outside by SMTP; {why}, so the sender may not be who \
                     the From address claims ({line})"
                ),
                checks: None,
            }
        };
        a.checks = Some(checks);
        a
    }
}

/// A part of a received mail that is an attachment (or an inline file): listed, not stored
/// apart (the bytes are in the raw message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attachment {
    /// The file name the sender gave, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `type/subtype`, lowercase (`application/octet-stream` when the part names none).
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: u64,
    /// Shown inline in the HTML body rather than offered as a file.
    #[serde(default, skip_serializing_if = "crate::wire::is_false")]
    pub inline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// In the recipient's inbox on this server.
    Delivered,
    /// Waiting for outbound SMTP delivery.
    Queued,
    /// Not sent: the mail waits for a reviewer's approval (or was rejected or expired).
    Held,
    /// Not sent yet: the mail goes out at its `send_at` (or was canceled).
    Scheduled,
    /// The remote recipient's server refused it for good, or it could not be delivered within
    /// the delivery lifetime (`detail` has the reply); the sender got a notice in its inbox.
    Bounced,
}

/// Where one copy of a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Mail this identity received.
    Received,
    /// Sent: delivered or queued for each recipient (see `delivery`).
    Sent,
    /// Held for a reviewer's approval (see `approval` for why); not sent yet.
    PendingApproval,
    /// A reviewer rejected it (see `approval.reason`); never sent.
    Rejected,
    /// Nobody approved it in time; never sent.
    Expired,
    /// Waiting for its `send_at`; nothing has reached a recipient yet.
    Scheduled,
    /// Canceled before its `send_at`; never sent.
    Canceled,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Received => "received",
            MessageStatus::Sent => "sent",
            MessageStatus::PendingApproval => "pending_approval",
            MessageStatus::Rejected => "rejected",
            MessageStatus::Expired => "expired",
            MessageStatus::Scheduled => "scheduled",
            MessageStatus::Canceled => "canceled",
        }
    }

    /// A status as stored in message `row`; an unknown one is an error naming the row.
    pub fn parse_stored(s: &str, row: &str) -> Result<Self> {
        [
            Self::Received,
            Self::Sent,
            Self::PendingApproval,
            Self::Rejected,
            Self::Expired,
            Self::Scheduled,
            Self::Canceled,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
        .ok_or_else(|| {
            Error::internal(format!(
                "message {row} has the unknown status `{s}` (written by a newer version?)"
            ))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    pub recipient: EmailAddress,
    pub status: DeliveryStatus,
    pub detail: String,
}

/// The content shared by every copy of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailContent {
    /// `Message-ID` without angle brackets.
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub from: EmailAddress,
    pub from_name: Option<String>,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub bcc: Vec<EmailAddress>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub extracted_text: String,
    pub authentication: Authentication,
    pub created_at: Timestamp,
}

/// One copy of a message in one mailbox, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    pub id: MessageId,
    pub thread_id: ThreadId,
    pub folder: Folder,
    /// `received`, `sent`, for held mail `pending_approval`, `rejected` or `expired`, and for
    /// mail sent later `scheduled` or `canceled`.
    pub status: MessageStatus,
    /// The RFC 5322 `Message-ID`, without angle brackets.
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub from: EmailAddress,
    pub from_name: Option<String>,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    /// Only on the sender's own copy.
    pub bcc: Vec<EmailAddress>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// The new text of the body without quoted history or signature: what to give a model.
    pub extracted_text: String,
    pub authentication: Authentication,
    pub unread: bool,
    pub labels: Vec<String>,
    /// Out of the inbox view (`folder=archive`); still in threads and search.
    #[serde(default)]
    pub archived: bool,
    /// When it was moved to the trash (`folder=trash`); trashed mail is left out of lists,
    /// threads and search until it is restored or deleted for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trashed_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// Size of the stored RFC 5322 message in bytes.
    pub size: i64,
    /// Per-recipient delivery, on sent copies.
    pub delivery: Vec<Delivery>,
    /// On a sender copy sent with `send_at`: when it goes (or went) out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at: Option<Timestamp>,
    /// On a held sender copy: why it is held, and the reviewer's decision once made. Filled by
    /// the service, not the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<crate::oversight::Approval>,
    /// On received mail read whole: what the reader's contacts say about the sender (mail
    /// exchanged before this one, the name and tags of the reader's address book). Filled by
    /// the service, not the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_contact: Option<crate::contacts::SenderContact>,
    /// On mail received by SMTP: its attachments (name, type, size); their bytes are in the
    /// raw message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// On received mail read whole: verification codes found in its subject and text (a
    /// heuristic, `crate::extract`), most likely first. Filled by the service, not stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<String>,
    /// On received mail read whole: its `http(s)` links with their text, host and kind
    /// (`verify`, `unsubscribe`, `other`), and whether the text shows another host than the
    /// link's (`deceptive`). Filled by the service, not stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<crate::extract::MailLink>,
    /// On received mail read whole: Loft's heuristic prompt-injection screening (words aimed at
    /// an AI, hidden text, deceptive links). Never hides the mail. Filled by the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screening: Option<crate::screening::Screening>,
}

/// A message in a list: no body, a snippet instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageSummary {
    pub id: MessageId,
    pub thread_id: ThreadId,
    pub folder: Folder,
    pub status: MessageStatus,
    pub message_id: String,
    pub from: EmailAddress,
    pub from_name: Option<String>,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub subject: String,
    pub snippet: String,
    pub authentication: Authentication,
    pub unread: bool,
    pub labels: Vec<String>,
    /// Out of the inbox view (`folder=archive`).
    #[serde(default)]
    pub archived: bool,
    /// When it was moved to the trash (only listed with `folder=trash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trashed_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ThreadSummary {
    pub id: ThreadId,
    /// Subject of the first message in the thread.
    pub subject: String,
    pub message_count: i64,
    pub unread_count: i64,
    pub participants: Vec<EmailAddress>,
    pub snippet: String,
    pub last_message_id: MessageId,
    pub last_message_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Thread {
    pub id: ThreadId,
    pub subject: String,
    /// Oldest first.
    pub messages: Vec<Message>,
}

/// Where a copy goes: whose mailbox, which folder, and the thread id to use if the message
/// starts a new conversation in that mailbox.
#[derive(Debug, Clone)]
pub struct MailCopy {
    pub id: MessageId,
    pub owner: IdentityId,
    pub folder: Folder,
    pub new_thread_id: ThreadId,
}

/// Everything the store writes for one sent message, in one transaction: the sender's copy,
/// one copy per local recipient (inbox copies never carry `bcc`), queue rows for remote
/// recipients, and the audit row.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub content: MailContent,
    pub raw: Vec<u8>,
    pub sender_copy: MailCopy,
    pub recipient_copies: Vec<MailCopy>,
    /// Copies of local recipients who hold incoming mail, kept out of their mailboxes until a
    /// reviewer releases them (see [`crate::oversight::HeldCopy`]).
    pub held_copies: Vec<crate::oversight::HeldCopy>,
    pub delivery: Vec<Delivery>,
    /// Background work the send queues in the same transaction: one [`DELIVERY_JOB`] per
    /// remote recipient.
    pub jobs: Vec<crate::jobs::NewJob>,
    /// A held send: the sender's copy is written with status `pending_approval` and this
    /// approval, and `recipient_copies` and `jobs` are empty (the decision writes them).
    pub hold: Option<crate::oversight::NewHold>,
    /// The idempotency key of the request, recorded with the send (see [`Idempotency`]).
    pub idempotency: Option<Idempotency>,
    /// The draft this mail is sent from: the store deletes it (the sender's draft) in the
    /// send's transaction, and writes nothing with `NotFound("draft")` when it is gone (sent or
    /// deleted meanwhile), so a draft becomes exactly one mail.
    pub consumes_draft: Option<crate::ids::DraftId>,
    /// When the mail was asked to go out (a scheduled send, held or not), shown on the sender
    /// copy.
    pub send_at: Option<Timestamp>,
    /// A scheduled send (not held): the sender's copy is written with status `scheduled`, this
    /// release job ([`crate::schedule::RELEASE_JOB`]) is queued and recorded on it, and
    /// `recipient_copies` and `jobs` are empty (the release writes them).
    pub schedule: Option<crate::jobs::NewJob>,
    /// The contacts this mail records (see [`crate::caps::contact_touches`]); empty for a held
    /// send, whose contacts are recorded when it is approved.
    pub contacts: Vec<crate::caps::ContactTouch>,
    /// The files sent with it, as `raw` lists them (listed on every copy, like received mail's).
    pub attachments: Vec<Attachment>,
}

/// Everything the store writes for one mail received from outside, in one transaction: one
/// inbox copy per local recipient (no sender copy: the sender is not on this server), and
/// the audit row.
#[derive(Debug, Clone)]
pub struct InboundMail {
    pub content: MailContent,
    pub raw: Vec<u8>,
    /// One per local recipient, each in folder `inbox`.
    pub copies: Vec<MailCopy>,
    /// Copies of local recipients who hold incoming mail (see [`crate::oversight::HeldCopy`]).
    pub held_copies: Vec<crate::oversight::HeldCopy>,
    /// The attachments found in `raw`, listed on every copy.
    pub attachments: Vec<Attachment>,
    /// Background work queued in the same transaction (the held-mail notices of its holds).
    pub jobs: Vec<crate::jobs::NewJob>,
}

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;

/// An idempotency key as the store records it with a send: per identity, with a fingerprint
/// of the request and the sender copy it produced. The store writes it in the send's
/// transaction, replacing a record of the same key older than `stale_before`; a live record
/// of the same key makes the send fail with `Conflict("idempotency_key_in_use")` and write
/// nothing (a concurrent retry won).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    /// SHA-256 (hex) of what was asked (action and content), never the content itself.
    pub fingerprint: String,
    pub created_at: Timestamp,
    pub stale_before: Timestamp,
}

/// The job kind of delivering one message to one remote recipient; its payload is
/// [`DeliveryJob`].
pub const DELIVERY_JOB: &str = "smtp.deliver";

/// Attempts at delivering to a remote recipient before it bounces (the SMTP issue sets the
/// backoff between them).
pub const DELIVERY_ATTEMPTS: u32 = 20;

/// The delivery jobs of a message: one per queued (remote) recipient, for its sender.
pub fn delivery_jobs(
    sender: &IdentityId,
    sender_copy: &MessageId,
    delivery: &[Delivery],
    now: Timestamp,
) -> Vec<crate::jobs::NewJob> {
    delivery
        .iter()
        .filter(|d| d.status == DeliveryStatus::Queued)
        .map(|d| crate::jobs::NewJob {
            kind: DELIVERY_JOB.into(),
            payload: serde_json::to_string(&DeliveryJob {
                message: sender_copy.clone(),
                recipient: d.recipient.clone(),
            })
            .unwrap_or_default(),
            owner: Some(sender.clone()),
            run_at: now,
            max_attempts: DELIVERY_ATTEMPTS,
        })
        .collect()
}

/// The payload of a [`DELIVERY_JOB`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryJob {
    /// The sender's copy, which carries the delivery report.
    pub message: MessageId,
    pub recipient: EmailAddress,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MessageQuery {
    pub folder: Option<Folder>,
    pub unread_only: bool,
    pub label: Option<String>,
    pub from: Option<EmailAddress>,
    pub thread_id: Option<ThreadId>,
    /// Only archived (`Some(true)`) or only not archived (`Some(false)`) copies.
    pub archived: Option<bool>,
    /// Only copies in the trash (`true`), or only those not in it (`false`, the default:
    /// trashed mail is left out unless asked for).
    pub trashed: bool,
    /// Only messages stored after this sequence number (for waiting on new mail).
    pub after_seq: Option<i64>,
    /// Cursor: only messages older than this sequence number.
    pub before_seq: Option<i64>,
    /// Oldest first instead of newest first; `next_before` then holds the sequence number of
    /// the last item returned, to continue *after* it.
    pub oldest_first: bool,
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct ThreadQuery {
    /// Threads made of the copies in the trash (`true`), or of those not in it (`false`, the
    /// default): a thread's counts, snippet and order come from those copies only.
    pub trashed: bool,
    pub unread_only: bool,
    pub label: Option<String>,
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// A page as the store returns it: items plus the sequence number to continue from (before it
/// when newest first, after it when oldest first); `None` on the last page.
#[derive(Debug, Clone)]
pub struct StorePage<T> {
    pub items: Vec<T>,
    pub next_before: Option<i64>,
}

/// A change to one copy's labels, read state, archive and trash state; on a thread
/// (`PATCH /v0/threads/{id}`), to every copy of the thread in the caller's mailbox.
// Empty lists are left out when sent: the server refuses `null` for them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MessagePatch {
    /// Labels to add (lowercase letters, digits and `_-:./`, at most 64 characters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::add_labels))]
    pub add_labels: Vec<String>,
    /// Labels to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::remove_labels))]
    pub remove_labels: Vec<String>,
    /// Mark read (`false`) or unread (`true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<bool>,
    /// Archive (`true`: out of the inbox view, still in threads and search) or move back to
    /// the inbox view (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
    /// Move to the trash (`true`: out of lists, threads and search) or restore from it
    /// (`false`). Mail not yet sent (held for a reviewer, or scheduled) cannot be trashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trashed: Option<bool>,
}

impl MessagePatch {
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.add_labels.is_empty()
            && self.remove_labels.is_empty()
            && self.unread.is_none()
            && self.archived.is_none()
            && self.trashed.is_none()
    }
}

/// One copy or a whole thread in one mailbox: what a mailbox change is applied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTarget {
    Message(MessageId),
    Thread(ThreadId),
}

impl MailTarget {
    pub fn as_str(&self) -> &str {
        match self {
            MailTarget::Message(id) => id.as_str(),
            MailTarget::Thread(id) => id.as_str(),
        }
    }
    /// The error for a target that is not in the mailbox.
    pub fn not_found(&self) -> Error {
        match self {
            MailTarget::Message(_) => Error::not_found("message"),
            MailTarget::Thread(_) => Error::not_found("thread"),
        }
    }
}

/// What the mailbox rules need to know of one copy before it is trashed or deleted for ever;
/// a store reads it inside the changing transaction and asks [`check_trashable`] or
/// [`check_deletable`].
#[derive(Debug, Clone)]
pub struct CopyState {
    pub id: MessageId,
    pub folder: Folder,
    pub status: MessageStatus,
    pub trashed: bool,
    /// It was held for a reviewer (an approval row names it), whatever the decision.
    pub held: bool,
    /// A remote recipient's delivery is still queued.
    pub delivery_pending: bool,
    pub created_at: Timestamp,
}

/// How long a sent copy must be kept before it can be deleted for ever: the sending caps
/// count sent copies over the last day, so deleting one sooner would let an agent send past
/// its cap.
pub const KEEP_SENT_SECS: i64 = crate::caps::DAY_SECS;

/// Mail that is not yet sent (held for a reviewer, or scheduled) stays out of the trash: it
/// is still going somewhere, and its sender should cancel it or see the decision first.
pub fn check_trashable(copies: &[CopyState]) -> Result<()> {
    if let Some(c) = copies
        .iter()
        .find(|c| matches!(c.status, MessageStatus::PendingApproval | MessageStatus::Scheduled))
    {
        let hint = if c.status == MessageStatus::Scheduled {
            "cancel it first (POST /v0/messages/{id}/cancel, `loft mail cancel`, mail_cancel_scheduled), then trash it"
        } else {
            "wait for the reviewer's decision (mail_wait reports it), then trash it"
        };
        return Err(Error::conflict(
            "message_not_final",
            format!("message {} is {} and cannot be trashed yet", c.id, c.status.as_str()),
        )
        .with_hint(hint));
    }
    Ok(())
}

/// Delete for ever only what is in the trash, never the record of held mail (the reviewers'
/// record), never a sent copy still being delivered or younger than [`KEEP_SENT_SECS`].
pub fn check_deletable(copies: &[CopyState], now: Timestamp) -> Result<()> {
    let outside = copies.iter().filter(|c| !c.trashed).count();
    if outside > 0 {
        let what = if copies.len() == 1 {
            format!("message {} is not in the trash", copies[0].id)
        } else {
            format!(
                "{outside} of the thread's {} messages are not in the trash",
                copies.len()
            )
        };
        return Err(
            Error::conflict("not_in_trash", format!("{what}: only trashed mail is deleted for ever")).with_hint(
                "trash it first (PATCH with {\"trashed\": true}, `loft mail trash`, mail_trash), then delete it",
            ),
        );
    }
    if let Some(c) = copies.iter().find(|c| c.held) {
        return Err(Error::conflict(
            "held_mail_kept",
            format!(
                "message {} was held for a reviewer and is kept as the reviewers' record",
                c.id
            ),
        )
        .with_hint("it can stay in the trash, out of every list, thread and search"));
    }
    if let Some(c) = copies.iter().find(|c| c.delivery_pending) {
        return Err(Error::conflict(
            "delivery_pending",
            format!("message {} is still being delivered to a remote recipient", c.id),
        )
        .with_hint("delete it once its delivery has finished (see `delivery` on the message)"));
    }
    if let Some(c) = copies
        .iter()
        .find(|c| c.folder == Folder::Sent && c.created_at > now.plus_secs(-KEEP_SENT_SECS))
    {
        let after = c.created_at.plus_secs(KEEP_SENT_SECS);
        return Err(Error::conflict(
            "sent_recently",
            format!(
                "message {} was sent less than a day ago; sending caps count it until {}",
                c.id,
                after.to_rfc3339()
            ),
        )
        .with_hint("keep it in the trash and delete it after that time"));
    }
    Ok(())
}

/// A file sent with a mail (`attachments` of a send or a reply).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewAttachment {
    /// The name the recipient sees: 1 to 255 bytes, no `/` or `\`, no control characters,
    /// not `.` or `..`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255))]
    pub filename: String,
    /// `type/subtype` (e.g. `application/pdf`, `text/csv`); default `application/octet-stream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = "text/csv"))]
    pub content_type: Option<String>,
    /// The file's bytes in base64 (standard alphabet; padding and line breaks optional).
    pub content_base64: String,
}

/// A sent attachment, checked and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingFile {
    pub filename: String,
    /// `type/subtype`, lowercase.
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Checks and decodes the attachments of a send: at most [`MAX_SENT_ATTACHMENTS`], each name
/// a plain file name, each content type `type/subtype`, each body base64, and all of them
/// together at most `max_bytes` decoded (`413 attachment_too_large` naming the limit).
pub fn parse_attachments(list: &[NewAttachment], max_bytes: usize) -> Result<Vec<OutgoingFile>> {
    use base64::Engine as _;
    if list.len() > MAX_SENT_ATTACHMENTS {
        return Err(Error::invalid(
            "too_many_attachments",
            format!(
                "at most {MAX_SENT_ATTACHMENTS} attachments per mail, not {}",
                list.len()
            ),
        )
        .with_hint("send the rest in another mail, or pack them into one archive"));
    }
    let mut total = 0usize;
    let mut out = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        let filename = check_filename(i, &a.filename)?;
        let content_type = check_content_type(i, a.content_type.as_deref())?;
        let compact: String = a.content_base64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let trimmed = compact.trim_end_matches('=');
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(trimmed)
            .map_err(|e| {
                Error::invalid(
                    "invalid_attachment",
                    format!("attachments[{i}] (`{filename}`): content_base64 is not base64: {e}"),
                )
                .with_hint("encode the file's bytes with the standard base64 alphabet (A-Z a-z 0-9 + /)")
            })?;
        total = total.saturating_add(bytes.len());
        if total > max_bytes {
            return Err(Error::too_large(
                "attachment_too_large",
                format!(
                    "the attachments come to more than {max_bytes} bytes (decoded) with attachments[{i}] (`{filename}`, {} bytes); the limit is {max_bytes} bytes per mail",
                    bytes.len()
                ),
            )
            .with_hint("send a link to the file instead, or ask the operator to raise `--max-attachment-bytes`"));
        }
        out.push(OutgoingFile {
            filename,
            content_type,
            bytes,
        });
    }
    Ok(out)
}

/// The files of a forward: the forwarded message's attachments (`carried`, as
/// [`crate::inbound::all_attachments`] reads them), then the forwarder's own (`added`, checked
/// as for a send), within the limits of a send: at most [`MAX_SENT_ATTACHMENTS`] and
/// `max_bytes` decoded together. A carried file keeps its name, made plain where it is not (a
/// path separator or control character becomes `_`; a part without a name is
/// `attachment-N`), and its content type.
pub fn forwarded_files(
    carried: Vec<(Attachment, Vec<u8>)>,
    added: &[NewAttachment],
    max_bytes: usize,
) -> Result<Vec<OutgoingFile>> {
    let added = parse_attachments(added, max_bytes)?;
    let count = carried.len() + added.len();
    if count > MAX_SENT_ATTACHMENTS {
        return Err(Error::invalid(
            "too_many_attachments",
            format!(
                "the forwarded message carries {} attachment(s) and {} are added: at most {MAX_SENT_ATTACHMENTS} per mail",
                carried.len(),
                added.len()
            ),
        )
        .with_hint("add fewer files, or forward with `keep_attachments: false` and attach what is needed"));
    }
    let carried_bytes: usize = carried.iter().map(|(_, b)| b.len()).sum();
    let added_bytes: usize = added.iter().map(|f| f.bytes.len()).sum();
    if carried_bytes.saturating_add(added_bytes) > max_bytes {
        return Err(Error::too_large(
            "attachment_too_large",
            format!(
                "the forwarded message's attachments ({carried_bytes} bytes) and the added ones ({added_bytes} bytes) come to more than {max_bytes} bytes (decoded); the limit is {max_bytes} bytes per mail"
            ),
        )
        .with_hint("forward with `keep_attachments: false` (the text only), or ask the operator to raise `--max-attachment-bytes`"));
    }
    let mut out: Vec<OutgoingFile> = carried
        .into_iter()
        .enumerate()
        .map(|(i, (a, bytes))| {
            let plain: Option<String> = a.name.as_deref().map(|n| {
                n.chars()
                    .map(|c| {
                        if c == '/' || c == '\\' || c.is_control() {
                            '_'
                        } else {
                            c
                        }
                    })
                    .collect()
            });
            let filename = plain
                .filter(|n| check_filename(i, n).is_ok())
                .unwrap_or_else(|| format!("attachment-{}", i + 1));
            let content_type =
                check_content_type(i, Some(&a.content_type)).unwrap_or_else(|_| "application/octet-stream".into());
            OutgoingFile {
                filename,
                content_type,
                bytes,
            }
        })
        .collect();
    out.extend(added);
    Ok(out)
}

fn check_filename(i: usize, name: &str) -> Result<String> {
    let why = if name.trim().is_empty() {
        Some("is empty")
    } else if name.len() > MAX_FILENAME_BYTES {
        Some("is longer than 255 bytes")
    } else if name.contains(['/', '\\']) {
        Some("contains a path separator (`/` or `\\`)")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else if name == "." || name == ".." {
        Some("is `.` or `..`")
    } else {
        None
    };
    match why {
        None => Ok(name.to_owned()),
        Some(why) => Err(Error::invalid(
            "invalid_attachment_name",
            format!(
                "attachments[{i}]: the filename `{}` {why}",
                name.chars().filter(|c| !c.is_control()).take(80).collect::<String>()
            ),
        )
        .with_hint("give a plain file name such as `report.pdf`, without a directory")),
    }
}

fn check_content_type(i: usize, ct: Option<&str>) -> Result<String> {
    let Some(ct) = ct.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok("application/octet-stream".into());
    };
    // RFC 2045 tokens: visible ASCII but tspecials.
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
    };
    match ct.split_once('/') {
        Some((t, sub)) if token(t) && token(sub) => Ok(ct.to_ascii_lowercase()),
        _ => Err(Error::invalid(
            "invalid_content_type",
            format!(
                "attachments[{i}]: `{}` is not a content type",
                ct.chars().filter(|c| !c.is_control()).take(80).collect::<String>()
            ),
        )
        .with_hint("use `type/subtype` without parameters, e.g. `application/pdf` or `text/plain`")),
    }
}

/// `POST /v0/messages/send`. It needs at least one recipient and a body (`text` or `html` that
/// is not blank).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendMail {
    /// Recipient addresses; a single string is accepted.
    #[serde(deserialize_with = "one_or_many")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::to))]
    pub to: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::cc))]
    pub cc: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::bcc))]
    pub bcc: Vec<String>,
    /// One line (no CR, LF or NUL) of at most 998 characters.
    #[cfg_attr(feature = "openapi", schema(max_length = 998, pattern = r"^[^\r\n\u0000]*$"))]
    pub subject: String,
    /// Plain-text body (no NUL). A message needs `text` or `html` that is not blank.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub text: String,
    /// Optional HTML body (no NUL), sent as an alternative to the text.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub html: Option<String>,
    /// Makes a retry safe: a send with the key of an earlier successful one and the same
    /// content returns that result without sending again; with other content, 409. Keys are
    /// per identity and live 24 hours. Also accepted as the `Idempotency-Key` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 255, pattern = r"^[\x21-\x7e]+$")
    )]
    pub idempotency_key: Option<String>,
    /// Send later: an RFC 3339 time at most a year ahead. The mail is stored now (status
    /// `scheduled`) and reaches nobody before then; a time now or in the last few seconds sends
    /// at once. Cancel with `POST /v0/messages/{id}/cancel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub send_at: Option<String>,
    /// Files to send with the mail (at most 20, together at most the server's
    /// `--max-attachment-bytes` decoded, 1 MiB by default). The exfiltration guard reads them
    /// as it reads the body.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<NewAttachment>,
}

/// `POST /v0/messages/{id}/reply`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReplyMail {
    /// Plain-text body (no NUL). A reply needs `text` or `html` that is not blank.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub text: String,
    /// Optional HTML body (no NUL).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub html: Option<String>,
    /// Reply to everyone on the original (To and Cc), not only its sender.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reply_all: bool,
    /// Makes a retry safe: a send with the key of an earlier successful one and the same
    /// content returns that result without sending again; with other content, 409. Keys are
    /// per identity and live 24 hours. Also accepted as the `Idempotency-Key` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 255, pattern = r"^[\x21-\x7e]+$")
    )]
    pub idempotency_key: Option<String>,
    /// Send later: an RFC 3339 time at most a year ahead. The mail is stored now (status
    /// `scheduled`) and reaches nobody before then; a time now or in the last few seconds sends
    /// at once. Cancel with `POST /v0/messages/{id}/cancel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub send_at: Option<String>,
    /// Files to send with the reply, as for a send.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<NewAttachment>,
}

/// `POST /v0/messages/{id}/forward`: the message, quoted below an optional note, to new
/// recipients, with a `Fwd:` subject. It goes through the same checks and gate as a send.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ForwardMail {
    /// Recipient addresses; a single string is accepted.
    #[serde(deserialize_with = "one_or_many")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::to))]
    pub to: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::cc))]
    pub cc: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::bcc))]
    pub bcc: Vec<String>,
    /// A note above the forwarded message (optional, no NUL).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub text: String,
    /// As for a send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 255, pattern = r"^[\x21-\x7e]+$")
    )]
    pub idempotency_key: Option<String>,
    /// Send later, as for a send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub send_at: Option<String>,
    /// Whether the forwarded message's attachments go along (default true); `false` forwards
    /// its text only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_attachments: Option<bool>,
    /// Files to add, as for a send; with the forwarded message's own, at most 20 and together
    /// at most the server's `--max-attachment-bytes` decoded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<NewAttachment>,
}

/// The subject of a forward: `Fwd: ` before the original's, unless it has one already.
pub fn forward_subject(subject: &str) -> String {
    prefixed_subject(subject, &["fwd:", "fw:"], "Fwd: ")
}

/// The text of a forward: the note, then the original's headers and text under a marker line.
pub fn forward_text(note: &str, original: &Message) -> String {
    let from = match original.from_name.as_deref().filter(|n| !n.trim().is_empty()) {
        Some(name) => format!("{name} <{}>", original.from),
        None => original.from.to_string(),
    };
    let list = |v: &[EmailAddress]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let note = if note.trim().is_empty() {
        String::new()
    } else {
        format!("{}\n\n", note.trim_end())
    };
    let cc = if original.cc.is_empty() {
        String::new()
    } else {
        format!("Cc: {}\n", list(&original.cc))
    };
    format!(
        "{note}---------- Forwarded message ----------\nFrom: {from}\nDate: {}\nSubject: {}\nTo: {}\n{cc}\n{}",
        original.created_at.to_rfc3339(),
        original.subject,
        list(&original.to),
        original.text,
    )
}

/// Normalises a label, or says precisely why it is not one.
pub fn parse_label(label: &str) -> Result<String> {
    let l = label.trim().to_ascii_lowercase();
    let ok =
        !l.is_empty() && l.len() <= MAX_LABEL && l.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-:./".contains(&b));
    if ok {
        Ok(l)
    } else {
        Err(Error::invalid(
            "invalid_label",
            format!("`{}` is not a valid label", label.chars().take(80).collect::<String>()),
        )
        .with_hint("labels are 1 to 64 characters: letters, digits and _-:./"))
    }
}

/// Subject for a reply: `Re: ` unless it already starts with it, cut to [`MAX_SUBJECT`]
/// characters, so that every stored subject can be replied to (one of 995 to 998 characters
/// used to give a reply subject over the limit, which the send then refused).
pub fn reply_subject(subject: &str) -> String {
    prefixed_subject(subject, &["re:"], "Re: ")
}

/// The subject of a bounce notice: `Undelivered mail returned to sender: ` before the
/// bounced mail's, cut to [`MAX_SUBJECT`] characters.
pub fn bounce_subject(subject: &str) -> String {
    prefixed_subject(subject, &[], "Undelivered mail returned to sender: ")
}

/// `subject` with `prefix` before it unless it starts with one of `already` (any case), cut to
/// [`MAX_SUBJECT`] characters.
fn prefixed_subject(subject: &str, already: &[&str], prefix: &str) -> String {
    let t = subject.trim_start();
    // `get` by bytes, not slicing: the subject may start with a multi-byte letter.
    let mut s = if already
        .iter()
        .any(|p| t.get(..p.len()).is_some_and(|x| x.eq_ignore_ascii_case(p)))
    {
        t.to_owned()
    } else {
        format!("{prefix}{t}")
    };
    if let Some((cut, _)) = s.char_indices().nth(MAX_SUBJECT) {
        s.truncate(cut);
    }
    s
}

/// Builds the RFC 5322 document for a message (Bcc is never written into the headers), with
/// its files as attachments (`multipart/mixed` around the body when there are any).
pub fn build_rfc5322(c: &MailContent, files: &[OutgoingFile]) -> Result<Vec<u8>> {
    use mail_builder::MessageBuilder;
    use mail_builder::headers::address::Address;
    fn list(addrs: &[EmailAddress]) -> Address<'_> {
        Address::new_list(
            addrs
                .iter()
                .map(|a| Address::new_address(None::<&str>, a.as_str()))
                .collect(),
        )
    }
    let mut b = MessageBuilder::new()
        .message_id(c.message_id.as_str())
        .from(Address::new_address(c.from_name.as_deref(), c.from.as_str()))
        .subject(c.subject.as_str())
        .date(c.created_at.as_secs());
    if !c.to.is_empty() {
        b = b.to(list(&c.to));
    }
    if !c.cc.is_empty() {
        b = b.cc(list(&c.cc));
    }
    if let Some(irt) = &c.in_reply_to {
        b = b.in_reply_to(irt.as_str());
    }
    if !c.references.is_empty() {
        b = b.references(mail_builder::headers::message_id::MessageId::new_list(
            c.references.iter().map(String::as_str),
        ));
    }
    b = b.text_body(c.text.as_str());
    if let Some(html) = &c.html {
        b = b.html_body(html.as_str());
    }
    for f in files {
        b = b.attachment(f.content_type.as_str(), f.filename.as_str(), f.bytes.as_slice());
    }
    b.write_to_vec()
        .map_err(|e| Error::internal(format!("building RFC 5322 message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> MailContent {
        MailContent {
            message_id: "abc@agents.localhost".into(),
            in_reply_to: Some("parent@agents.localhost".into()),
            references: vec!["root@x".into(), "parent@agents.localhost".into()],
            from: EmailAddress::parse("writer-aaaaa@agents.localhost").unwrap(),
            from_name: Some("Writer".into()),
            to: vec![EmailAddress::parse("r@agents.localhost").unwrap()],
            cc: vec![],
            bcc: vec![EmailAddress::parse("secret@agents.localhost").unwrap()],
            subject: "Re: brief ✓".into(),
            text: "Body".into(),
            html: Some("<p>Body</p>".into()),
            extracted_text: "Body".into(),
            authentication: Authentication::internal(),
            created_at: Timestamp::from_micros(1_795_000_000_000_000),
        }
    }

    #[test]
    fn builds_headers_and_hides_bcc() {
        let raw = String::from_utf8(build_rfc5322(&content(), &[]).unwrap()).unwrap();
        assert!(raw.contains("Message-ID: <abc@agents.localhost>"), "{raw}");
        assert!(raw.contains("In-Reply-To: <parent@agents.localhost>"), "{raw}");
        assert!(raw.contains("<root@x>"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("Date: "), "{raw}");
        // No Bcc header (the MIME boundary is random hex and may contain "bcc" itself).
        assert!(
            !raw.lines().any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
            "{raw}"
        );
        assert!(!raw.contains("secret@"), "{raw}");
    }

    #[test]
    fn reply_subjects() {
        assert_eq!(reply_subject("brief"), "Re: brief");
        assert_eq!(reply_subject("RE: brief"), "RE: brief");
        // Multi-byte first letters used to panic (byte slicing inside a character).
        for s in ["Grüße aus Köln", "Привет", "שלום עולם", "🙂 hi", "é", "ü", "Ré: x"] {
            assert_eq!(reply_subject(s), format!("Re: {s}"));
        }
        // A subject at the limit still gives a valid reply subject.
        let long = "ü".repeat(MAX_SUBJECT);
        assert_eq!(reply_subject(&long), format!("Re: {}", "ü".repeat(MAX_SUBJECT - 4)));
        assert_eq!(reply_subject(&format!("Re: {long}")).chars().count(), MAX_SUBJECT);
    }

    #[test]
    fn what_may_be_trashed_and_deleted() {
        let now = Timestamp::from_micros(1_795_000_000_000_000);
        let copy = |status, folder, trashed| CopyState {
            id: MessageId::from_trusted("msg_a".to_owned()),
            folder,
            status,
            trashed,
            held: false,
            delivery_pending: false,
            created_at: now.plus_secs(-2 * KEEP_SENT_SECS),
        };
        let received = copy(MessageStatus::Received, Folder::Inbox, true);
        check_trashable(std::slice::from_ref(&received)).unwrap();
        for status in [MessageStatus::PendingApproval, MessageStatus::Scheduled] {
            let e = check_trashable(&[received.clone(), copy(status, Folder::Sent, false)]).unwrap_err();
            assert_eq!(e.code(), "message_not_final");
        }
        for status in [MessageStatus::Rejected, MessageStatus::Expired, MessageStatus::Canceled] {
            check_trashable(&[copy(status, Folder::Sent, false)]).unwrap();
        }
        check_deletable(std::slice::from_ref(&received), now).unwrap();
        let code = |c: CopyState| check_deletable(&[received.clone(), c], now).unwrap_err().code();
        assert_eq!(
            code(copy(MessageStatus::Received, Folder::Inbox, false)),
            "not_in_trash"
        );
        let e = check_deletable(
            &[received.clone(), copy(MessageStatus::Received, Folder::Inbox, false)],
            now,
        )
        .unwrap_err();
        assert!(e.to_string().contains("1 of the thread's 2"), "{e}");
        let held = CopyState {
            held: true,
            ..copy(MessageStatus::Rejected, Folder::Sent, true)
        };
        assert_eq!(code(held), "held_mail_kept");
        let pending = CopyState {
            delivery_pending: true,
            ..copy(MessageStatus::Sent, Folder::Sent, true)
        };
        assert_eq!(code(pending), "delivery_pending");
        let recent = CopyState {
            created_at: now.plus_secs(-KEEP_SENT_SECS + 1),
            ..copy(MessageStatus::Sent, Folder::Sent, true)
        };
        assert_eq!(code(recent.clone()), "sent_recently");
        // A received copy may go at once; a sent one a day after it was sent.
        check_deletable(
            &[CopyState {
                folder: Folder::Inbox,
                ..recent.clone()
            }],
            now,
        )
        .unwrap();
        check_deletable(&[recent], now.plus_secs(1)).unwrap();
    }

    #[test]
    fn labels() {
        assert_eq!(parse_label(" Work/Q4 ").unwrap(), "work/q4");
        assert!(parse_label("").is_err());
        assert!(parse_label("a b").is_err());
        assert!(parse_label(&"x".repeat(65)).is_err());
    }

    #[test]
    fn to_accepts_one_or_many() {
        let one: SendMail = serde_json::from_str(r#"{"to":"a@b.c","subject":"s","text":"t"}"#).unwrap();
        assert_eq!(one.to, vec!["a@b.c"]);
        let many: SendMail = serde_json::from_str(r#"{"to":["a@b.c","d@e.f"],"cc":"g@h.i","subject":"s"}"#).unwrap();
        assert_eq!(many.to.len(), 2);
        assert_eq!(many.cc, vec!["g@h.i"]);
        assert!(serde_json::from_str::<SendMail>(r#"{"to":"a@b.c","subject":"s","bogus":1}"#).is_err());
    }
}
