//! The storage port.
//!
//! Methods are shaped like use cases, not tables: each mutating method receives the audit
//! entry that records it and writes the change, its audit row and anything queued by it in
//! **one transaction**, so a failure leaves nothing half-written.
//! Implementations live in `loft-store-sqlite` and `loft-store-postgres` and must pass the
//! shared conformance suite in `loft-testkit`. Only store crates contain SQL.
//!
//! Conventions every implementation follows:
//! - Lookups scoped by an owner (`owner: &IdentityId`) never return another owner's rows;
//!   a foreign id behaves exactly like a missing one.
//! - `NotFound` / `Conflict` use the codes documented on each method; anything unexpected is
//!   `Error::Internal` (logged by the door, never shown) or `Error::Unavailable`.
//! - The audit log is one hash chain, across processes too. A store may chain a write's rows in
//!   its transaction (SQLite's single writer) or later, in batches (PostgreSQL's sealer), but
//!   `list_audit`, `audit_after` and `audit_head` return every row committed before the call,
//!   chained.
//! - Within one mailbox, a message with a higher `seq` never becomes visible before one with a
//!   lower `seq`: a reader that has seen `seq` n will never later find a new message below n.

use async_trait::async_trait;

use crate::Result;
use crate::address::EmailAddress;
use crate::audit::{AuditEntry, AuditQuery, AuditRecord, ChainHead};
use crate::contacts::ContactStore;
use crate::drafts::DraftStore;
use crate::identity::{Identity, NewIdentity};
use crate::ids::{IdentityId, KeyId, MessageId, ThreadId};
use crate::jobs::JobStore;
use crate::keys::{KeyMeta, ScopeSet, StoredKey};
use crate::mail::{
    Message, MessagePatch, MessageQuery, MessageSummary, NewMail, StorePage, Thread, ThreadQuery, ThreadSummary,
};
use crate::oversight::{
    Approval, ApprovalId, ApprovalQuery, DecisionQuery, ModeRequest, NewModeRequest, StoredDecision, StoredEdit,
};
use crate::rules::{Rule, RuleId};
use crate::schedule::ScheduleStore;
use crate::search::{SearchQuery, SearchRow};
use crate::time::Timestamp;
use crate::vault::{CredentialMeta, MasterKeyCheck, StoredCredential};

#[derive(Debug, Clone, Default)]
pub struct IdentityQuery {
    /// Only this identity and the identities below it in the delegation chain.
    pub within: Option<IdentityId>,
    pub include_revoked: bool,
    pub before_seq: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct IdentityUpdate {
    /// `Some("")` clears the display name.
    pub display_name: Option<String>,
    pub scopes: Option<ScopeSet>,
    pub oversight_mode: Option<crate::oversight::OversightMode>,
    /// `Some(Some(t))` pauses at `t`, `Some(None)` resumes.
    pub paused_at: Option<Option<Timestamp>>,
    /// Replaces its sending caps and first-contact setting.
    pub caps: Option<crate::caps::IdentityCaps>,
    /// Deletes the identity's mode request, open or denied, in the same transaction (the
    /// operator set its mode: that answers it).
    pub clear_mode_request: bool,
}

/// Identities, their delegation tree, and their API keys (conformance: `identities`, `keys`,
/// `security`).
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// The key with this id and the identity it belongs to, revoked or not.
    async fn find_key(&self, id: &KeyId) -> Result<Option<(StoredKey, Identity)>>;

    /// A counter this store handle (and its clones) increments after every change to an
    /// identity or a key it commits (or attempts): `create_identity`, `update_identity`,
    /// `revoke_identity`, `create_key`, `revoke_key`, and any later method that writes the
    /// identities or keys tables. [`crate::service::Loft`]'s key cache trusts an entry only
    /// while this is unchanged, so a revocation through this node is refused by this node
    /// before its call returns. It must be incremented *after* the commit: a lookup that
    /// read the old rows then sees a newer epoch than its entry's.
    fn key_epoch(&self) -> u64;

    /// Creates the identity and its first key. `Conflict("address_taken")` when the address
    /// belongs to any identity, revoked ones included (addresses are never reused).
    async fn create_identity(&self, new: NewIdentity, audit: AuditEntry) -> Result<()>;

    async fn get_identity(&self, id: &IdentityId) -> Result<Option<Identity>>;

    /// Newest first.
    async fn list_identities(&self, query: IdentityQuery) -> Result<StorePage<Identity>>;

    /// `NotFound` when the identity does not exist.
    async fn update_identity(&self, id: &IdentityId, update: IdentityUpdate, audit: AuditEntry) -> Result<Identity>;

    /// Revokes the identity, every identity below it in the delegation chain, and all their
    /// keys, at `at`. Returns the ids newly revoked (empty when all already were). The audit
    /// entry's `details.revoked` is set to that list. `NotFound` when it does not exist.
    async fn revoke_identity(&self, id: &IdentityId, at: Timestamp, audit: AuditEntry) -> Result<Vec<IdentityId>>;

    /// The identities above `id`, parent first, up to one created by the operator.
    async fn ancestors(&self, id: &IdentityId) -> Result<Vec<Identity>>;

    /// What `identity` holds now, for quotas (see [`crate::quota::Usage`]).
    async fn usage(&self, identity: &IdentityId) -> Result<crate::quota::Usage>;

    /// Active identities owning these addresses.
    async fn resolve_addresses(&self, addresses: &[EmailAddress]) -> Result<Vec<(EmailAddress, IdentityId)>>;

    /// Stores a new key. With `replaces`, revokes that key of the same identity at the new
    /// key's `created_at`, in the same transaction (rotation); `NotFound` if it is not the
    /// identity's active key.
    async fn create_key(&self, key: StoredKey, replaces: Option<KeyId>, audit: AuditEntry) -> Result<()>;

    async fn list_keys(&self, identity: &IdentityId) -> Result<Vec<KeyMeta>>;

    /// Revokes one key of `identity`. `NotFound` when it is not that identity's key.
    async fn revoke_key(&self, identity: &IdentityId, key: &KeyId, at: Timestamp, audit: AuditEntry)
    -> Result<KeyMeta>;
}

/// One mailbox at a glance (the console's identity tree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxStats {
    pub owner: IdentityId,
    /// Copies it holds, sent and received, trash included.
    pub messages: u64,
    /// Their RFC 5322 bytes (the quota's running total).
    pub bytes: u64,
    /// When its newest copy was stored: the last mail it sent or received.
    pub last_mail_at: Option<Timestamp>,
}

/// Mailboxes: every copy of every message, threads, labels and read state, and the running
/// totals quotas read (conformance: `mail`).
#[async_trait]
pub trait MailStore: Send + Sync {
    /// The bytes of mail in each of these mailboxes (absent: none), for the mailbox quota.
    /// Kept as a running total by `send_mail`, so this is a key lookup, not a scan.
    async fn mailbox_bytes(&self, owners: &[IdentityId]) -> Result<Vec<(IdentityId, u64)>>;

    /// [`MailboxStats`] of each of these mailboxes that holds mail (absent: empty), in one
    /// query: a count over the `(owner_id, seq)` index and the newest copy's time.
    async fn mailbox_stats(&self, owners: &[IdentityId]) -> Result<Vec<MailboxStats>>;

    /// How many distinct labels `owner`'s mailbox uses, and how many of `labels` it does not
    /// use yet, for the labels quota.
    async fn mailbox_labels(&self, owner: &IdentityId, labels: &[String]) -> Result<(u64, u64)>;

    /// Stores every copy of a message, threads each copy in its owner's mailbox (joining the
    /// thread of the newest copy in that mailbox whose Message-ID is the new message's own,
    /// its `In-Reply-To` or one of its `References`, so mail to oneself is one thread), queues
    /// remote recipients, and returns the sender's copy.
    async fn send_mail(&self, mail: NewMail, audit: AuditEntry) -> Result<Message>;

    /// Stores a mail received from outside (SMTP): one inbox copy per local recipient, each
    /// threaded in its owner's mailbox as `send_mail` threads, added to each mailbox's byte
    /// total, with the audit row, in one transaction. Durable when this returns: the SMTP
    /// session answers 250 only then.
    async fn receive_mail(&self, mail: crate::mail::InboundMail, audit: AuditEntry) -> Result<()>;

    /// Newest first, or oldest first with `query.oldest_first`.
    async fn list_messages(&self, owner: &IdentityId, query: MessageQuery) -> Result<StorePage<MessageSummary>>;

    /// One message without side effects (used to look up what a reply answers).
    async fn get_message(&self, owner: &IdentityId, id: &MessageId) -> Result<Option<Message>>;

    /// Reads one message, marks it read, and records the read. `NotFound` otherwise.
    async fn read_message(&self, owner: &IdentityId, id: &MessageId, audit: AuditEntry) -> Result<Message>;

    /// The stored RFC 5322 bytes of one message.
    async fn raw_message(&self, owner: &IdentityId, id: &MessageId) -> Result<Option<Vec<u8>>>;

    /// Applies label, read-state, archive and trash changes (label additions first, then
    /// removals). A message carries at most `MAX_LABELS_PER_MESSAGE` labels:
    /// `Invalid("too_many_labels")`, nothing changed. Trashing records `audit.at` as
    /// `trashed_at` (an earlier one is kept) after [`crate::mail::check_trashable`] passed on
    /// the copy as it is in the transaction. `NotFound` otherwise.
    async fn update_message(
        &self,
        owner: &IdentityId,
        id: &MessageId,
        patch: MessagePatch,
        audit: AuditEntry,
    ) -> Result<Message>;

    /// [`MailStore::update_message`] for every copy of `owner`'s thread `id`, trashed or not,
    /// in one transaction (one copy over the label cap, or not trashable, changes none);
    /// returns the whole thread, trashed copies included. `NotFound("thread")` otherwise.
    async fn update_thread(
        &self,
        owner: &IdentityId,
        id: &ThreadId,
        patch: MessagePatch,
        audit: AuditEntry,
    ) -> Result<Thread>;

    /// Deletes for ever `owner`'s copy `target` (a message, or every copy of a thread) once
    /// [`crate::mail::check_deletable`] passed on the copies as they are in the transaction
    /// (`audit.at` is the time it is judged at): the message rows, their labels, search rows
    /// and idempotency records, the shared content and raw bytes when no other copy refers
    /// to them, and their bytes from the mailbox's usage. Returns the ids deleted.
    /// `NotFound("message" | "thread")` otherwise.
    async fn delete_for_ever(
        &self,
        owner: &IdentityId,
        target: &crate::mail::MailTarget,
        audit: AuditEntry,
    ) -> Result<Vec<MessageId>>;

    /// Threads by last activity, newest first.
    async fn list_threads(&self, owner: &IdentityId, query: ThreadQuery) -> Result<StorePage<ThreadSummary>>;

    /// A whole thread, oldest first, without its trashed copies, and records the read.
    /// `NotFound` otherwise (also when every copy is in the trash).
    async fn read_thread(&self, owner: &IdentityId, id: &ThreadId, trashed: bool, audit: AuditEntry) -> Result<Thread>;

    /// The live idempotency record of `owner`'s `key` (created after `not_before`): the
    /// request's fingerprint and the sender copy it produced.
    async fn find_idempotency(
        &self,
        owner: &IdentityId,
        key: &str,
        not_before: Timestamp,
    ) -> Result<Option<(String, MessageId)>>;

    /// The highest mail sequence number in `owner`'s mailbox (0 when empty).
    async fn latest_mail_seq(&self, owner: &IdentityId) -> Result<i64>;

    /// The copies in `owner`'s mailbox in which every term occurs (in the subject, the people
    /// or the body, as `search` describes), best match first, then newest first; `query.offset`
    /// of them skipped, at most `query.limit` returned.
    async fn search_messages(&self, owner: &IdentityId, query: &SearchQuery) -> Result<Vec<SearchRow>>;
}

/// The hash-chained audit log (conformance: `audit`).
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one audit row on its own (refused authentications, denials).
    async fn append_audit(&self, entry: AuditEntry) -> Result<()>;

    /// Newest first, filtered.
    async fn list_audit(&self, query: AuditQuery) -> Result<StorePage<AuditRecord>>;

    /// Oldest first, the rows after `after_seq` (export and verification).
    async fn audit_after(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>>;

    /// The chain head pointer (`None` before the first row).
    async fn audit_head(&self) -> Result<Option<ChainHead>>;
}

/// The vault. Every credential is scoped by its owner: another owner's credential behaves
/// exactly like a missing one. Only sealed bytes and descriptive metadata reach the store
/// (conformance: `vault`).
#[async_trait]
pub trait VaultStore: Send + Sync {
    /// The key-check values of every master key ever registered.
    async fn vault_key_checks(&self) -> Result<Vec<MasterKeyCheck>>;

    /// Registers a master key's check value and its audit row, unless a check for that key id
    /// exists already (then nothing is written and `false` is returned).
    async fn vault_register_key(&self, check: MasterKeyCheck, audit: AuditEntry) -> Result<bool>;

    /// The distinct master key ids that wrap at least one credential.
    async fn vault_key_ids_in_use(&self) -> Result<Vec<String>>;

    /// Stores a new credential. `Conflict("credential_exists")` when the owner has one of
    /// that name.
    async fn vault_create(&self, credential: StoredCredential, audit: AuditEntry) -> Result<()>;

    async fn vault_get(&self, owner: &IdentityId, name: &str) -> Result<Option<StoredCredential>>;

    /// Every credential of `owner`, sealed (for the exfiltration guard, which looks for their
    /// values in outgoing mail). Bounded by the `credentials` quota.
    async fn vault_all(&self, owner: &IdentityId) -> Result<Vec<StoredCredential>>;

    /// Metadata only, newest first; the cursor is a sequence number.
    async fn vault_list(
        &self,
        owner: &IdentityId,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<StorePage<CredentialMeta>>;

    /// Replaces the stored credential `(credential.owner, credential.meta.name)` if its version
    /// is still `expected_version` (optimistic concurrency). `NotFound` when it does not exist,
    /// `Conflict("version_conflict")` when someone changed it since it was read.
    async fn vault_update(&self, credential: StoredCredential, expected_version: i64, audit: AuditEntry) -> Result<()>;

    /// `NotFound` when the owner has no credential of that name.
    async fn vault_delete(&self, owner: &IdentityId, name: &str, audit: AuditEntry) -> Result<()>;

    /// Up to `limit` credentials (of any owner) wrapped under a key other than `current_key_id`.
    async fn vault_stale(&self, current_key_id: &str, limit: u32) -> Result<Vec<StoredCredential>>;

    /// Writes re-wrapped credentials, each only if its version is still the one paired with
    /// it (others are skipped and picked up again), and the audit row, in one transaction.
    /// Returns how many were written.
    async fn vault_rewrap(&self, batch: Vec<(StoredCredential, i64)>, audit: AuditEntry) -> Result<u64>;
}

/// Held mail and reviewers' decisions (conformance: `oversight`). A held send itself is
/// written by [`MailStore::send_mail`] with [`NewMail::hold`].
#[async_trait]
pub trait OversightStore: Send + Sync {
    /// One approval, whoever composed it.
    async fn get_approval(&self, id: &ApprovalId) -> Result<Option<Approval>>;

    /// A held incoming copy (see [`crate::oversight::HeldCopy`]) as its recipient would see it
    /// once released, for the reviewer: found until it is released (then it is the owner's
    /// inbox copy), and kept after a rejection or expiry. `None` for any other id.
    async fn held_message(&self, id: &MessageId) -> Result<Option<Message>>;

    /// Newest first, filtered; the cursor is a sequence number. Statuses are as stored:
    /// the service turns a pending approval past `expires_at` into `expired` (and
    /// `query.status = Pending` leaves those out).
    async fn list_approvals(&self, query: ApprovalQuery) -> Result<StorePage<Approval>>;

    /// Decides a pending approval, exactly once, in one transaction with its audit row:
    /// the approval's status, decider and reason; the sender copy's status (`sent`,
    /// `rejected` or `expired`); and for an approval the release (recipient copies sharing
    /// the sender copy's content, their threads, the delivery report and jobs). For an approval
    /// of direction `receive` there is no sender copy: approving writes the held copy into its
    /// owner's inbox (threaded then) and `release.contacts`; deciding it gives it no decision
    /// number (the recipient's `mail_wait` reports decisions on mail it composed only).
    /// `NotFound` when it does not exist; `Conflict("already_decided")` when it is no longer
    /// pending; `Conflict("approval_expired")` when approving one whose `expires_at` is at or
    /// before `decision.at`. Returns the approval as decided.
    async fn decide_approval(&self, decision: StoredDecision, audit: AuditEntry) -> Result<Approval>;

    /// Decisions on `query.identity`'s mail, oldest first, each with its decision number.
    /// Deciding gives the approval the composer's next number (in commit order: a reader never
    /// sees number n+1 before n) and marks the sender copy unread.
    async fn list_decisions(&self, query: DecisionQuery) -> Result<Vec<(i64, Approval)>>;

    /// The number of the latest decision on `identity`'s mail; 0 when there is none.
    async fn latest_decision_seq(&self, identity: &IdentityId) -> Result<i64>;

    /// Rewrites a pending held mail in place, in one transaction with its audit row (see
    /// [`StoredEdit`]): the sender copy's content, raw bytes, snippet, size (and its mailbox's
    /// byte total), recipients and planned delivery report; the approval's reasons, editor, edit
    /// time and count. Exactly once against a concurrent decision or edit: `NotFound` when the
    /// approval does not exist; `Conflict("already_decided")` when it is no longer pending;
    /// `Conflict("approval_expired")` when `expires_at` is at or before `edit.at`;
    /// `Conflict("approval_edited")` when its edit count is not `edit.expected_edits`.
    /// Returns the approval as edited.
    async fn edit_held_mail(&self, edit: StoredEdit, audit: AuditEntry) -> Result<Approval>;

    /// Records an identity's request for another oversight mode with its audit row, replacing
    /// its previous request (open or denied).
    async fn put_mode_request(&self, request: NewModeRequest, audit: AuditEntry) -> Result<ModeRequest>;

    /// The identity's mode request (open or denied), if any.
    async fn get_mode_request(&self, identity: &IdentityId) -> Result<Option<ModeRequest>>;

    /// Open mode requests of active identities, newest first; the cursor is a sequence number.
    async fn list_mode_requests(&self, before_seq: Option<i64>, limit: u32) -> Result<StorePage<ModeRequest>>;

    /// Denies the identity's open mode request, with its audit row. `NotFound("mode_request")`
    /// when it has none; `Conflict("mode_request_not_open")` when it was already denied.
    async fn deny_mode_request(
        &self,
        identity: &IdentityId,
        at: Timestamp,
        reason: String,
        audit: AuditEntry,
    ) -> Result<ModeRequest>;

    /// When the operator froze all outgoing mail on the instance (`None`: not frozen). Read on
    /// every send, so a freeze through one node holds on every node at once.
    async fn outgoing_frozen(&self) -> Result<Option<Timestamp>>;

    /// Freezes (`Some(at)`) or unfreezes (`None`) outgoing mail, with its audit row.
    async fn set_outgoing_frozen(&self, at: Option<Timestamp>, audit: AuditEntry) -> Result<()>;
}

/// Which rules a list shows.
#[derive(Debug, Clone)]
pub enum RuleScope {
    /// Every rule: the instance's and every identity's.
    All,
    /// The instance rules only.
    Instance,
    /// The rules in effect for one identity: its own and the instance's.
    InEffectFor(IdentityId),
}

/// Filters for listing rules (newest first).
#[derive(Debug, Clone)]
pub struct RuleQuery {
    pub scope: RuleScope,
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// The operator's allow, block and hold rules (conformance: `rules`).
#[async_trait]
pub trait RuleStore: Send + Sync {
    /// Stores a new rule with its audit row. `Conflict("rule_exists")`, naming the existing
    /// rule's id, when the same identity (or the instance, for an instance rule) already has a
    /// rule with the same direction, action and pattern; nothing is written then.
    async fn add_rule(&self, rule: Rule, audit: AuditEntry) -> Result<()>;

    /// Removes a rule with its audit row and returns it. `NotFound` when no rule has this id.
    async fn remove_rule(&self, id: &RuleId, audit: AuditEntry) -> Result<Rule>;

    async fn get_rule(&self, id: &RuleId) -> Result<Option<Rule>>;

    /// Newest first; the cursor is a sequence number.
    async fn list_rules(&self, query: RuleQuery) -> Result<StorePage<Rule>>;

    /// Every rule in effect for any of `identities` (theirs, and the instance's), in one query:
    /// it runs on every send. With no identities, the instance rules.
    async fn rules_in_effect(&self, identities: &[IdentityId]) -> Result<Vec<Rule>>;
}

/// Sending controls: the instance's caps, the counts caps are checked against, and each
/// identity's contacts (conformance: `caps`). An identity's own caps are stored on it
/// ([`IdentityUpdate::caps`]); contact rows are written by the mail they come from
/// ([`NewMail::contacts`], [`crate::oversight::Release::contacts`]).
#[async_trait]
pub trait SendingStore: Send + Sync {
    /// The instance's caps (none set: all `None`). Read on every send.
    async fn instance_caps(&self) -> Result<crate::caps::SendCaps>;

    /// Replaces the instance's caps, with its audit row.
    async fn set_instance_caps(&self, caps: crate::caps::SendCaps, audit: AuditEntry) -> Result<()>;

    /// Counts the entries of `counter` strictly after `since`: sender copies composed
    /// ([`crate::caps::CapCounter::Mails`]) or contacts first written to
    /// ([`crate::caps::CapCounter::NewRecipients`]), of `identity` or, with `None`, of every
    /// identity. When more than `keep` are counted, also returns the time of the entry whose
    /// leaving the window brings the count down to `keep` (oldest first, the
    /// `count - keep`-th). Indexed so that it reads only the window's entries.
    async fn cap_window(
        &self,
        counter: crate::caps::CapCounter,
        identity: Option<&IdentityId>,
        since: Timestamp,
        keep: u64,
    ) -> Result<crate::caps::CapWindow>;

    /// `identity`'s contact rows for those of `addresses` it has one for (any order).
    async fn contacts(
        &self,
        identity: &IdentityId,
        addresses: &[EmailAddress],
    ) -> Result<Vec<crate::caps::Correspondence>>;
}

/// See [`Store::whoami_context`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoAmIContext {
    /// Parent first, as [`IdentityStore::ancestors`].
    pub ancestors: Vec<Identity>,
    pub instance_caps: crate::caps::SendCaps,
    pub mode_request: Option<ModeRequest>,
}

/// The storage port: the sum of the area traits, each with its own conformance module in
/// `loft-testkit` run on both backends. A new area (oversight, domains, events) adds a trait
/// here and to this sum.
#[async_trait]
pub trait Store:
    IdentityStore
    + MailStore
    + AuditStore
    + VaultStore
    + OversightStore
    + RuleStore
    + SendingStore
    + ContactStore
    + JobStore
    + crate::delivery::DeliveryStore
    + DraftStore
    + ScheduleStore
    + crate::events::EventStore
    + crate::domains::DomainStore
    + crate::webhooks::WebhookStore
    + crate::console::ConsoleStore
    + crate::notices::NoticeStore
    + Send
    + Sync
    + 'static
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// A number that changes whenever what the store holds may have changed, when the store
    /// can tell: it is read before a read, and the read's result stays true for as long as the
    /// number is the same (Loft keeps such results of hot reads, `service/reads.rs`). It must
    /// change after a write commits and before the write's call returns, whichever caller made
    /// it. `None` (the default) when the store cannot know of every write: PostgreSQL, where
    /// other nodes write. SQLite, one process with one writer, counts the writer's batches.
    fn data_epoch(&self) -> Option<u64> {
        None
    }

    /// What `whoami` shows of the store besides the caller's key and identity, read together
    /// (one read transaction where the backend gains by it: SQLite, where each read
    /// transaction takes the database file's shared lock). Must equal what
    /// [`IdentityStore::ancestors`], [`SendingStore::instance_caps`] and
    /// [`OversightStore::get_mode_request`] return; the chain of an identity without a parent
    /// (created by the operator) is empty without a read.
    async fn whoami_context(&self, identity: &Identity) -> Result<WhoAmIContext> {
        let chain = async {
            match identity.parent_id() {
                Some(_) => self.ancestors(&identity.id).await,
                None => Ok(Vec::new()),
            }
        };
        let (ancestors, instance_caps, mode_request) =
            tokio::try_join!(chain, self.instance_caps(), self.get_mode_request(&identity.id))?;
        Ok(WhoAmIContext {
            ancestors,
            instance_caps,
            mode_request,
        })
    }

    /// Finishes pending writes and closes connections (graceful shutdown). Calls after it may
    /// fail with `Unavailable`.
    async fn close(&self) {}
}
