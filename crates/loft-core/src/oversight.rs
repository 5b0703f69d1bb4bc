//! Human oversight: each identity's oversight mode, the mail held for a reviewer, and the
//! exfiltration guard's matcher.
//!
//! A held send is stored like any sent mail (the sender's copy in `sent`, with status
//! `pending_approval`) plus one [`Approval`] that says why it is held and, once a reviewer
//! decides, who decided what. Nothing reaches a recipient's mailbox or the outbound queue until
//! an approval: the recipients' copies and delivery jobs are written by the decision, in the
//! same transaction that moves the approval out of `pending`, so two reviewers (or two nodes)
//! deciding at the same moment cannot both release it.

use serde::{Deserialize, Serialize};

use crate::address::EmailAddress;
pub use crate::ids::ApprovalId;
use crate::ids::{IdentityId, MessageId};
use crate::jobs::NewJob;
use crate::mail::{Delivery, MailContent, MailCopy};
use crate::time::Timestamp;
use crate::{Error, Result};

/// How much a human oversees an identity's mail, from least to most trusting. Set by the
/// operator; shown in `whoami`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum OversightMode {
    /// Reads mail; cannot send or reply.
    ReadOnly,
    /// Every outgoing mail waits for a reviewer's approval, and every incoming mail waits for a
    /// reviewer's release before the identity can see it.
    GatedAll,
    /// Reading is free; every outgoing mail waits for a reviewer's approval. The default.
    GatedSend,
    /// Mail goes out at once and is recorded for review after the fact.
    Monitored,
    /// No gate; still audited, and still held by the exfiltration guard.
    Autonomous,
}

impl OversightMode {
    pub const ALL: [OversightMode; 5] = [
        OversightMode::ReadOnly,
        OversightMode::GatedAll,
        OversightMode::GatedSend,
        OversightMode::Monitored,
        OversightMode::Autonomous,
    ];

    /// The mode of a new identity unless the deployment or the request says otherwise.
    pub const DEFAULT: OversightMode = OversightMode::GatedSend;

    pub fn as_str(self) -> &'static str {
        match self {
            OversightMode::ReadOnly => "read_only",
            OversightMode::GatedAll => "gated_all",
            OversightMode::GatedSend => "gated_send",
            OversightMode::Monitored => "monitored",
            OversightMode::Autonomous => "autonomous",
        }
    }

    /// A mode a client sent.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        Self::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            Error::invalid("invalid_oversight_mode", format!("unknown oversight mode `{s}`")).with_hint(format!(
                "oversight modes, least to most trusting: {}",
                Self::ALL.map(Self::as_str).join(", ")
            ))
        })
    }

    /// A mode as stored for identity `id`; an unknown one is an error naming it.
    pub fn parse_stored(s: &str, id: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            Error::internal(format!(
                "identity {id} has the unknown oversight mode `{s}` (written by a newer version?)"
            ))
        })
    }

    /// Whether outgoing mail waits for a reviewer.
    pub fn gates_outgoing(self) -> bool {
        matches!(self, OversightMode::GatedAll | OversightMode::GatedSend)
    }
}

impl std::fmt::Display for OversightMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an approval stands. An agent reads it on its message as the message status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for a reviewer.
    Pending,
    /// Approved and released to its recipients.
    Approved,
    /// Rejected, with the reviewer's reason; never sent.
    Rejected,
    /// Nobody decided in time; never sent.
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Expired => "expired",
        }
    }

    /// A status a client sent (a list filter).
    pub fn parse(s: &str) -> Result<Self> {
        [Self::Pending, Self::Approved, Self::Rejected, Self::Expired]
            .into_iter()
            .find(|x| x.as_str() == s.trim())
            .ok_or_else(|| {
                Error::invalid("invalid_status", format!("unknown approval status `{s}`"))
                    .with_hint("use pending, approved, rejected or expired")
            })
    }

    pub fn parse_stored(s: &str, id: &str) -> Result<Self> {
        Self::parse(s).map_err(|_| {
            Error::internal(format!(
                "approval {id} has the unknown status `{s}` (written by a newer version?)"
            ))
        })
    }
}

/// Which way a held mail was going: out from the identity (a send waiting for approval) or
/// in to it (a received copy waiting for a reviewer's release, in `gated_all` or under a
/// `receive` hold rule).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HoldDirection {
    #[default]
    Send,
    Receive,
}

impl HoldDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldDirection::Send => "send",
            HoldDirection::Receive => "receive",
        }
    }

    /// A direction a client sent (a list filter).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "send" => Ok(HoldDirection::Send),
            "receive" => Ok(HoldDirection::Receive),
            other => Err(
                Error::invalid("invalid_direction", format!("unknown direction `{other}`"))
                    .with_hint("use send (held outgoing mail) or receive (held incoming mail)"),
            ),
        }
    }

    pub fn parse_stored(s: &str, id: &str) -> Result<Self> {
        Self::parse(s).map_err(|_| {
            Error::internal(format!(
                "approval {id} has the unknown direction `{s}` (written by a newer version?)"
            ))
        })
    }
}

/// Why a mail is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HoldKind {
    /// The sender's oversight mode gates outgoing mail (or, for held incoming mail, the
    /// recipient's mode, `gated_all`, gates incoming mail).
    Mode,
    /// The mail contains a value from the sender's own vault.
    ExfiltrationGuard,
    /// An operator's `hold` rule matches a recipient (see [`crate::rules`]), or, for held
    /// incoming mail, a `receive` hold rule of the recipient matches the sender.
    Rule,
    /// The sender holds first contact (`first_contact: hold`) and the mail goes to addresses it
    /// never exchanged mail with (`addresses`).
    FirstContact,
    /// Incoming mail failed DMARC for its From domain, whose policy is `quarantine`
    /// (`loft serve --dmarc enforce`, the default).
    Dmarc,
}

/// One reason a mail is held, in words a model and a reviewer can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HoldReason {
    pub kind: HoldKind,
    /// One sentence.
    pub detail: String,
    /// For the exfiltration guard: the name of the vault credential whose value the mail
    /// contains (never the value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// For the exfiltration guard: how the value appears (`raw`, `base64`, `url`, `hex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// For a rule: which rule holds it (id, level, pattern).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<crate::rules::RuleRef>,
    /// For a first-contact hold: the addresses the sender never exchanged mail with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<EmailAddress>,
}

/// Who decided an approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decider {
    /// `operator`, `identity` (a reviewer), or `system` (expiry).
    pub kind: String,
    /// The reviewer's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_id: Option<IdentityId>,
    /// The reviewer's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<EmailAddress>,
    /// The key the decision was made with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// A held mail and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Approval {
    pub id: ApprovalId,
    /// `pending` turns into `expired` in every view once `expires_at` has passed.
    pub status: ApprovalStatus,
    /// `send`: outgoing mail waiting for approval; `receive`: a received copy waiting for a
    /// reviewer's release before its recipient (`identity_id`) can see it.
    #[serde(default)]
    pub direction: HoldDirection,
    /// The identity that composed the mail (for `receive`: the recipient whose copy is held).
    pub identity_id: IdentityId,
    /// The mail's `From`.
    pub from: EmailAddress,
    /// The sender's copy of the mail (in its `sent` folder); for `receive`, the recipient's
    /// copy as it will be once released (its inbox copy afterwards).
    pub message_id: MessageId,
    pub subject: String,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub bcc: Vec<EmailAddress>,
    /// Why it is held.
    pub reasons: Vec<HoldReason>,
    pub created_at: Timestamp,
    /// When a pending approval expires.
    pub expires_at: Timestamp,
    pub decided_at: Option<Timestamp>,
    pub decided_by: Option<Decider>,
    /// The reviewer's reason (required to reject).
    pub reason: Option<String>,
    /// How many times a reviewer edited the held mail before the decision (0: as composed).
    #[serde(default)]
    pub edit_count: u32,
    /// When a reviewer last edited it; the mail shown (and sent on approval) is the edited one.
    #[serde(default)]
    pub edited_at: Option<Timestamp>,
    /// Who last edited it.
    #[serde(default)]
    pub edited_by: Option<Decider>,
}

impl Approval {
    /// The status as of `now`: a pending approval past its time is expired.
    #[must_use]
    pub fn as_of(mut self, now: Timestamp) -> Self {
        if self.status == ApprovalStatus::Pending && self.expires_at <= now {
            self.status = ApprovalStatus::Expired;
        }
        self
    }
}

/// What the store writes with a held send (see [`crate::mail::NewMail::hold`]).
#[derive(Debug, Clone)]
pub struct NewHold {
    pub id: ApprovalId,
    pub reasons: Vec<HoldReason>,
    pub expires_at: Timestamp,
}

/// A local recipient's copy held for a reviewer before its owner may see it (the owner is in
/// `gated_all`, or one of its `receive` hold rules matches the sender). The store writes it
/// apart from every mailbox, with an approval of direction `receive` (`identity_id`: the
/// owner, `message_id`: `copy.id`); an approval writes the copy into the owner's inbox. So no
/// read path of the owner can show held mail: it is not in the mailbox.
#[derive(Debug, Clone)]
pub struct HeldCopy {
    pub copy: MailCopy,
    pub hold: NewHold,
}

/// Filters for listing approvals (newest first).
#[derive(Debug, Clone, Default)]
pub struct ApprovalQuery {
    /// Only held outgoing (`send`) or held incoming (`receive`) mail.
    pub direction: Option<HoldDirection>,
    /// Only mail composed by this identity.
    pub identity: Option<IdentityId>,
    /// Only this status, as of `now` (pending means pending and not yet expired).
    pub status: Option<ApprovalStatus>,
    /// Only approvals created at or before this time (an age filter).
    pub created_before: Option<Timestamp>,
    /// Only the approval of this sender copy.
    pub message: Option<MessageId>,
    pub now: Timestamp,
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// Decisions on the mail one identity composed, oldest first (for its `mail_wait`). Each
/// decision has a sequence number per composing identity, in the order decisions were made.
#[derive(Debug, Clone)]
pub struct DecisionQuery {
    pub identity: IdentityId,
    /// Only decisions numbered after this; `None`: only those whose sender copy is unread
    /// (a decision marks the sender copy unread, and reading it marks it read).
    pub after_seq: Option<i64>,
    /// Only decisions numbered at most this (what `latest_decision_seq` said).
    pub upto_seq: i64,
    pub limit: u32,
}

/// A decision as the store writes it. The store moves the approval from `pending` to
/// `status` only if it is still pending and, for an approval, not yet expired at `at`; else
/// `Conflict("already_decided")` (or `Conflict("approval_expired")`), and nothing is written.
#[derive(Debug, Clone)]
pub struct StoredDecision {
    pub id: ApprovalId,
    pub status: ApprovalStatus,
    pub at: Timestamp,
    pub decided_by: Decider,
    pub reason: Option<String>,
    /// For an approval: the copies, delivery report and jobs that release the mail, written
    /// with the sender copy's existing content (the sender's copy then has status `sent` and
    /// this delivery report).
    pub release: Option<Release>,
    /// For an approval of mail whose `send_at` is still ahead: instead of a release, the
    /// sender copy becomes `scheduled` with this delivery report, and this release job is
    /// queued and recorded on it (see [`crate::schedule`]).
    pub schedule: Option<crate::schedule::Schedule>,
    /// For an approval: the [`Approval::edit_count`] of the mail the release was planned from.
    /// If a reviewer edited it since, the store refuses with `Conflict("approval_edited")`
    /// and writes nothing, so the recipients planned are always the mail's own.
    pub expected_edits: Option<u32>,
}

/// A reviewer's edit of a pending held mail, as the store writes it: the sender copy rewritten
/// in place (same `Message-ID`, same date), its planned delivery report and hold reasons
/// replaced, and the approval marked edited. The store writes it only if the approval is still
/// pending, not expired at `at`, and still at `expected_edits` edits; else
/// `Conflict("already_decided")`, `Conflict("approval_expired")` or
/// `Conflict("approval_edited")`, and nothing is written.
#[derive(Debug, Clone)]
pub struct StoredEdit {
    pub id: ApprovalId,
    pub at: Timestamp,
    pub edited_by: Decider,
    pub expected_edits: u32,
    /// The new content; `message_id`, threading headers, sender and date are the held mail's.
    pub content: MailContent,
    /// The rebuilt RFC 5322 document.
    pub raw: Vec<u8>,
    /// The planned delivery report (every recipient `held`).
    pub delivery: Vec<Delivery>,
    /// What the edited mail triggers now (the exfiltration guard re-run on it).
    pub reasons: Vec<HoldReason>,
}

/// Where an agent's request for another oversight mode stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ModeRequestStatus {
    /// Waiting for the operator (who grants it by setting the mode).
    Open,
    /// The operator denied it (see `denial_reason`).
    Denied,
}

impl ModeRequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ModeRequestStatus::Open => "open",
            ModeRequestStatus::Denied => "denied",
        }
    }

    pub fn parse_stored(s: &str, id: &str) -> Result<Self> {
        match s {
            "open" => Ok(Self::Open),
            "denied" => Ok(Self::Denied),
            other => Err(Error::internal(format!(
                "the mode request of {id} has the unknown status `{other}` (written by a newer version?)"
            ))),
        }
    }
}

/// An identity's request for another oversight mode (at most one per identity: a new one
/// replaces it). Only the operator answers: granting is setting the mode, which clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModeRequest {
    /// The identity asking.
    pub identity_id: IdentityId,
    pub address: EmailAddress,
    /// Its mode now.
    pub current_mode: OversightMode,
    /// The mode it asks for.
    pub mode: OversightMode,
    /// Why, in the agent's words (data, not instructions).
    pub reason: String,
    pub status: ModeRequestStatus,
    pub requested_at: Timestamp,
    /// When the operator denied it.
    #[serde(default)]
    pub decided_at: Option<Timestamp>,
    /// The operator's reason for a denial.
    #[serde(default)]
    pub denial_reason: Option<String>,
}

/// A new mode request as the store writes it, replacing the identity's previous one.
#[derive(Debug, Clone)]
pub struct NewModeRequest {
    pub identity_id: IdentityId,
    pub mode: OversightMode,
    pub reason: String,
    pub requested_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct Release {
    pub recipient_copies: Vec<MailCopy>,
    /// Copies of local recipients who hold incoming mail (see [`HeldCopy`]).
    pub held_copies: Vec<HeldCopy>,
    pub delivery: Vec<Delivery>,
    pub jobs: Vec<NewJob>,
    /// The contacts the released mail records (the composer's recipients, each local
    /// recipient's sender), as of the decision.
    pub contacts: Vec<crate::caps::ContactTouch>,
}

/// The exfiltration guard's matcher: does `haystack` contain `secret` raw or in a common
/// encoding? Returns the encoding's name. Values shorter than [`GUARD_MIN_LEN`] are not looked
/// for (they would match ordinary words).
pub fn find_secret(haystacks: &[&str], secret: &str) -> Option<&'static str> {
    // base64 of a value depends on its alignment in the encoded text; the unpadded encoding of
    // the value itself is what a mail quoting it contains when it starts the encoded run, which
    // is how a model (or a script) encodes a secret it was given.
    secret_forms(secret)?
        .into_iter()
        .find(|(_, form)| haystacks.iter().any(|h| h.contains(form.as_str())))
        .map(|(name, _)| name)
}

/// `text` with every occurrence of `secret`, in each form [`find_secret`] looks for, replaced
/// by `label` (e.g. `[credential crm]`), and how many were replaced. Values shorter than
/// [`GUARD_MIN_LEN`] are left alone, as the guard leaves them.
pub fn redact_secret(text: &str, secret: &str, label: &str) -> (String, usize) {
    let Some(forms) = secret_forms(secret) else {
        return (text.to_owned(), 0);
    };
    let mut out = text.to_owned();
    let mut count = 0;
    for (_, form) in &forms {
        if !form.is_empty() && out.contains(form.as_str()) {
            count += out.matches(form.as_str()).count();
            out = out.replace(form.as_str(), label);
        }
    }
    (out, count)
}

/// The forms of `secret` the guard looks for (raw first); `None` when it is too short.
fn secret_forms(secret: &str) -> Option<[(&'static str, String); 6]> {
    use base64::Engine as _;
    if secret.chars().count() < GUARD_MIN_LEN {
        return None;
    }
    let b = secret.as_bytes();
    Some([
        ("raw", secret.to_owned()),
        ("base64", trim_pad(&base64::engine::general_purpose::STANDARD.encode(b))),
        ("base64", trim_pad(&base64::engine::general_purpose::URL_SAFE.encode(b))),
        ("url", url_encode(secret)),
        ("hex", hex::encode(b)),
        ("hex", hex::encode_upper(b)),
    ])
}

/// The shortest vault value the exfiltration guard looks for.
pub const GUARD_MIN_LEN: usize = 6;

fn trim_pad(s: &str) -> String {
    s.trim_end_matches('=').to_owned()
}

/// Percent-encoding of everything but unreserved characters (RFC 3986), as `encodeURIComponent`
/// and most URL builders do.
fn url_encode(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn modes_order_from_least_to_most_trusting() {
        assert!(OversightMode::ReadOnly < OversightMode::GatedSend);
        assert!(OversightMode::GatedSend < OversightMode::Autonomous);
        assert_eq!(OversightMode::parse(" monitored ").unwrap(), OversightMode::Monitored);
        assert!(OversightMode::parse("yolo").is_err());
        for m in OversightMode::ALL {
            assert_eq!(OversightMode::parse_stored(m.as_str(), "idt_x").unwrap(), m);
        }
    }

    #[test]
    fn finds_secrets_raw_and_encoded() {
        let secret = "sk-live-4f9a2b7c/+x?";
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        let cases = [
            (format!("here it is: {secret}"), "raw"),
            (format!("token={b64}"), "base64"),
            (format!("https://x.example/?k={}", url_encode(secret)), "url"),
            (format!("0x{}", hex::encode(secret)), "hex"),
        ];
        for (text, want) in cases {
            assert_eq!(find_secret(&[&text], secret), Some(want), "{text}");
        }
        assert_eq!(find_secret(&["nothing to see"], secret), None);
        // Short values are not looked for.
        assert_eq!(find_secret(&["abc"], "abc"), None);
    }

    #[test]
    fn redacts_secrets_in_every_form_the_guard_finds() {
        let secret = "sk-live-4f9a2b7c/+x?";
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        let b64 = b64.trim_end_matches('=');
        let text = format!(
            "raw {secret}, b64 {b64}, url {}, hex {} and {}, twice {secret}",
            url_encode(secret),
            hex::encode(secret),
            hex::encode_upper(secret)
        );
        let (out, n) = redact_secret(&text, secret, "[credential crm]");
        assert_eq!(n, 6, "{out}");
        assert_eq!(find_secret(&[&out], secret), None, "{out}");
        assert_eq!(out.matches("[credential crm]").count(), 6, "{out}");
        assert!(out.starts_with("raw [credential crm], b64 [credential crm]"), "{out}");
        assert_eq!(redact_secret("abc abc", "abc", "[x]"), ("abc abc".to_owned(), 0));
    }
}
