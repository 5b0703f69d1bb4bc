//! Outbound delivery: what the SMTP delivery worker (`loft-smtp/src/outbound.rs`) records about
//! each remote recipient of a sent mail, and the suppression list of addresses that bounced
//! for good.
//!
//! A sent mail's remote recipients are [`crate::mail::DELIVERY_JOB`] jobs, one per recipient,
//! queued in the send's transaction (or when held or scheduled mail is released). The worker
//! connects, and records the outcome with one conditional store call
//! ([`DeliveryStore::record_delivery`]): the recipient's entry in the sender copy's delivery
//! report moves from `queued` to `delivered` or `bounced` only if it is still `queued`, so a
//! worker whose lease expired and was taken over cannot record a second outcome (SMTP itself
//! may still have carried the mail twice: a crash between the remote `250` and the record makes
//! the next worker send again; it is never lost). A bounce writes its delivery-status
//! notification into the sender's inbox and, for a permanent refusal (`5xx`), puts the address
//! on the suppression list, in the same transaction.
//!
//! The suppression list is per instance: an address that a remote server refused for good is
//! refused for every identity here (`recipient_suppressed`, before anything is written), until
//! the operator lifts it. Per instance because a dead mailbox is dead whoever writes to it, and
//! the list then names addresses other identities wrote to, which is why only the operator reads
//! and changes it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::address::EmailAddress;
use crate::audit::AuditEntry;
use crate::ids::{IdentityId, MessageId};
use crate::mail::{Delivery, InboundMail};
use crate::time::Timestamp;

/// The default time a remote recipient's mail is retried before it bounces (five days, as
/// RFC 5321 section 4.5.4.1 suggests at least four or five).
pub const DEFAULT_DELIVERY_LIFETIME_SECS: i64 = 5 * 24 * 3600;

/// The address the delivery-status notifications come from (`mailer-daemon@<domain>`).
pub const MAILER_DAEMON: &str = "mailer-daemon";

/// An address on the suppression list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Suppression {
    pub address: EmailAddress,
    /// The remote server's reply that refused it, e.g. `550 5.1.1 no such user`.
    pub reason: String,
    /// The identity whose mail bounced.
    pub identity_id: IdentityId,
    /// That mail (the sender's copy).
    pub message_id: MessageId,
    pub created_at: Timestamp,
}

/// The outcome of one delivery attempt to one remote recipient, as the store writes it.
#[derive(Debug, Clone)]
pub struct DeliveryUpdate {
    /// The sender, whose copy carries the delivery report.
    pub owner: IdentityId,
    /// The sender's copy.
    pub message: MessageId,
    /// The recipient's new entry in the report (its `recipient` names the entry to replace).
    pub delivery: Delivery,
    /// A bounce: the delivery-status notification for the sender's inbox.
    pub notice: Option<InboundMail>,
    /// A hard bounce: the address goes on the suppression list (kept as it is when there
    /// already).
    pub suppress: Option<Suppression>,
}

/// The storage of delivery outcomes and of the suppression list, identical on every backend
/// (conformance module `delivery`).
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Replaces the recipient's entry in the delivery report of `owner`'s copy `message`, if
    /// that entry is still `queued`, and writes the notice, the suppression and the audit row
    /// (with its events) in the same transaction. `false`, writing nothing, when the copy is
    /// gone or the entry is not `queued` any more (another worker recorded an outcome first).
    async fn record_delivery(&self, update: DeliveryUpdate, audit: Option<AuditEntry>) -> Result<bool>;

    /// The suppressed addresses among `addresses`.
    async fn suppressed(&self, addresses: &[EmailAddress]) -> Result<Vec<Suppression>>;

    /// The suppression list in address order, after `after`, at most `limit`.
    async fn list_suppressions(&self, after: Option<&EmailAddress>, limit: u32) -> Result<Vec<Suppression>>;

    /// Lifts `address` from the list, with its audit row; `NotFound("suppression")` when it is
    /// not on it.
    async fn remove_suppression(&self, address: &EmailAddress, audit: AuditEntry) -> Result<Suppression>;
}
