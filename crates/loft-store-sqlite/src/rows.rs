//! Rows as SQLite returns them, and their conversion into domain types.
//!
//! Values read back are trusted (Loft wrote them), so ids and addresses are wrapped with
//! `from_trusted` rather than parsed again; JSON columns that do not decode are `Internal`.

use loft_core::address::EmailAddress;
use loft_core::audit::{ActorKind, AuditEntry, AuditRecord, Outcome};
use loft_core::identity::{Creator, CreatorKind, Identity, IdentityStatus};
use loft_core::ids::{IdentityId, KeyId, MessageId, ThreadId};
use loft_core::keys::{KeyDigest, KeyKind, KeyMeta, ScopeSet, StoredKey};
use loft_core::mail::{Authentication, Delivery, Folder, Message, MessageStatus, MessageSummary};
use loft_core::oversight::OversightMode;
use loft_core::time::Timestamp;
use loft_core::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::bad_json;

/// A row read by name by sqlx (`FromRow`) and by position by `rusqlite` ([`ReadRow`]): its
/// fields must come in the order its column list selects them, which debug builds (the
/// tests) check against each column's name.
macro_rules! sql_row {
    ($(#[$m:meta])* $vis:vis struct $name:ident { $($fvis:vis $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(sqlx::FromRow)]
        $vis struct $name { $($fvis $field: $ty),* }

        impl $crate::rows::ReadRow for $name {
            fn read(row: &rusqlite::Row<'_>, at: &mut usize) -> rusqlite::Result<Self> {
                Ok(Self { $($field: $crate::rows::column(row, at, stringify!($field))?),* })
            }
        }
    };
}
pub(crate) use sql_row;

/// A row type a `rusqlite` read maps, reading its columns from position `at` on (so that one
/// result row can hold several, side by side).
pub(crate) trait ReadRow: Sized {
    fn read(row: &rusqlite::Row<'_>, at: &mut usize) -> rusqlite::Result<Self>;

    /// Reads the whole row.
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Self::read(row, &mut 0)
    }
}

/// The column at `*at`, which is named `name`, and moves `at` on.
pub(crate) fn column<T: rusqlite::types::FromSql>(
    row: &rusqlite::Row<'_>,
    at: &mut usize,
    name: &str,
) -> rusqlite::Result<T> {
    debug_assert_eq!(
        row.as_ref().column_name(*at).ok(),
        Some(name),
        "column {} of the statement is not the field it is read into",
        *at
    );
    let value = row.get(*at)?;
    *at += 1;
    Ok(value)
}

pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T, column: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| bad_json(column, &e))
}

pub(crate) fn from_json<T: DeserializeOwned>(text: &str, column: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| bad_json(column, &e))
}

fn addresses(text: &str, column: &str) -> Result<Vec<EmailAddress>> {
    Ok(from_json::<Vec<String>>(text, column)?
        .into_iter()
        .map(EmailAddress::from_trusted)
        .collect())
}

fn ts(micros: Option<i64>) -> Option<Timestamp> {
    micros.map(Timestamp::from_micros)
}

/// A stored cap (never negative: Loft writes 1 to `MAX_CAP`).
pub(crate) fn cap(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

/// A cap to store.
pub(crate) fn cap_col(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// The identity columns, in the order [`IdentityRow`] reads them.
macro_rules! identity_columns {
    () => {
        "i.seq, i.id, i.name, i.display_name, i.address, i.scopes, i.status, \
     i.created_at, i.revoked_at, i.creator_kind, i.parent_id, i.creator_key_id, i.oversight_mode, i.paused_at, \
     i.cap_mails_per_hour, i.cap_mails_per_day, i.cap_new_recipients_per_day, i.first_contact, \
     i.exfiltration_guard, i.internal_mail"
    };
}
pub(crate) use identity_columns;

sql_row! {
pub(crate) struct IdentityRow {
    pub seq: i64,
    id: String,
    name: String,
    display_name: Option<String>,
    address: String,
    scopes: String,
    status: String,
    created_at: i64,
    revoked_at: Option<i64>,
    creator_kind: String,
    parent_id: Option<String>,
    creator_key_id: Option<String>,
    oversight_mode: String,
    paused_at: Option<i64>,
    cap_mails_per_hour: Option<i64>,
    cap_mails_per_day: Option<i64>,
    cap_new_recipients_per_day: Option<i64>,
    first_contact: String,
    exfiltration_guard: String,
    internal_mail: String,
}}

impl IdentityRow {
    pub(crate) fn into_identity(self) -> Result<Identity> {
        Ok(Identity {
            oversight_mode: OversightMode::parse_stored(&self.oversight_mode, &self.id)?,
            paused_at: ts(self.paused_at),
            caps: loft_core::caps::IdentityCaps {
                mails_per_hour: cap(self.cap_mails_per_hour),
                mails_per_day: cap(self.cap_mails_per_day),
                new_recipients_per_day: cap(self.cap_new_recipients_per_day),
                first_contact: loft_core::caps::FirstContact::parse_stored(&self.first_contact, &self.id)?,
                exfiltration_guard: loft_core::caps::Guard::parse_stored(&self.exfiltration_guard, &self.id)?,
                internal_mail: loft_core::caps::InternalMail::parse_stored(&self.internal_mail, &self.id)?,
            },
            id: IdentityId::from_trusted(self.id),
            name: self.name,
            display_name: self.display_name,
            address: EmailAddress::from_trusted(self.address),
            scopes: ScopeSet::from_json(&self.scopes)?,
            status: if self.status == "revoked" {
                IdentityStatus::Revoked
            } else {
                IdentityStatus::Active
            },
            created_at: Timestamp::from_micros(self.created_at),
            revoked_at: ts(self.revoked_at),
            created_by: Creator {
                kind: if self.creator_kind == "identity" {
                    CreatorKind::Identity
                } else {
                    CreatorKind::Operator
                },
                identity_id: self.parent_id.map(IdentityId::from_trusted),
                key_id: self.creator_key_id,
            },
        })
    }
}

pub(crate) fn status_str(s: IdentityStatus) -> &'static str {
    match s {
        IdentityStatus::Active => "active",
        IdentityStatus::Revoked => "revoked",
    }
}

pub(crate) fn creator_kind_str(k: CreatorKind) -> &'static str {
    match k {
        CreatorKind::Operator => "operator",
        CreatorKind::Identity => "identity",
    }
}

/// The key columns (without the digest), in the order [`KeyRow`] reads them.
macro_rules! key_columns {
    () => {
        "k.id, k.identity_id, k.kind, k.label, k.scopes, k.created_at, k.expires_at, k.revoked_at, k.created_by_key"
    };
}
pub(crate) use key_columns;

sql_row! {
pub(crate) struct KeyRow {
    id: String,
    identity_id: String,
    kind: String,
    label: Option<String>,
    scopes: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    created_by_key: Option<String>,
}}

impl KeyRow {
    pub(crate) fn into_meta(self) -> Result<KeyMeta> {
        Ok(KeyMeta {
            kind: KeyKind::parse_stored(&self.kind, &self.id)?,
            id: KeyId::from_trusted(self.id),
            identity_id: IdentityId::from_trusted(self.identity_id),
            label: self.label,
            scopes: ScopeSet::from_json(&self.scopes)?,
            created_at: Timestamp::from_micros(self.created_at),
            expires_at: ts(self.expires_at),
            revoked_at: ts(self.revoked_at),
            created_by_key: self.created_by_key,
        })
    }

    pub(crate) fn into_stored(self, digest_hex: &str) -> Result<StoredKey> {
        let meta = self.into_meta()?;
        Ok(StoredKey {
            id: meta.id.clone(),
            identity_id: meta.identity_id.clone(),
            digest: KeyDigest::from_hex(digest_hex)?,
            meta,
        })
    }
}

/// The key's columns under `k_` names, for reading a key and its identity in one statement
/// (`identity_columns!()` and `key_columns!()` share names such as `id` and `scopes`).
macro_rules! prefixed_key_columns {
    () => {
        "k.id AS k_id, k.identity_id AS k_identity_id, k.kind AS k_kind, k.label AS k_label, \
     k.scopes AS k_scopes, k.created_at AS k_created_at, k.expires_at AS k_expires_at, \
     k.revoked_at AS k_revoked_at, k.created_by_key AS k_created_by_key, k.digest AS k_digest"
    };
}
pub(crate) use prefixed_key_columns;

sql_row! {
/// A key as [`prefixed_key_columns`] reads it, with its digest.
#[expect(
    clippy::struct_field_names,
    reason = "the prefix keeps the key's columns apart from the identity's in the joined row"
)]
pub(crate) struct PrefixedKeyRow {
    k_id: String,
    k_identity_id: String,
    k_kind: String,
    k_label: Option<String>,
    k_scopes: String,
    k_created_at: i64,
    k_expires_at: Option<i64>,
    k_revoked_at: Option<i64>,
    k_created_by_key: Option<String>,
    k_digest: String,
}}

impl PrefixedKeyRow {
    pub(crate) fn into_stored(self) -> Result<StoredKey> {
        let digest = self.k_digest;
        KeyRow {
            id: self.k_id,
            identity_id: self.k_identity_id,
            kind: self.k_kind,
            label: self.k_label,
            scopes: self.k_scopes,
            created_at: self.k_created_at,
            expires_at: self.k_expires_at,
            revoked_at: self.k_revoked_at,
            created_by_key: self.k_created_by_key,
        }
        .into_stored(&digest)
    }
}

/// The columns of a message in a list (no bodies), in the order [`SummaryRow`] reads them.
macro_rules! summary_columns {
    () => {
        "m.seq, m.id, m.thread_id, m.folder, m.message_id, m.from_addr, \
     m.from_name, m.to_addrs, m.cc_addrs, m.subject, m.snippet, m.authentication, m.unread, m.created_at, \
     COALESCE(m.schedule_state, m.status) AS status, m.archived, m.trashed_at"
    };
}
pub(crate) use summary_columns;

sql_row! {
pub(crate) struct SummaryRow {
    pub seq: i64,
    id: String,
    thread_id: String,
    folder: String,
    message_id: String,
    from_addr: String,
    from_name: Option<String>,
    to_addrs: String,
    cc_addrs: String,
    subject: String,
    snippet: String,
    authentication: String,
    unread: bool,
    created_at: i64,
    status: String,
    archived: bool,
    trashed_at: Option<i64>,
}}

impl SummaryRow {
    pub(crate) fn into_summary(self, labels: Vec<String>) -> Result<MessageSummary> {
        Ok(MessageSummary {
            status: MessageStatus::parse_stored(&self.status, &self.id)?,
            folder: Folder::parse_stored(&self.folder, &self.id)?,
            id: MessageId::from_trusted(self.id),
            thread_id: ThreadId::from_trusted(self.thread_id),
            message_id: self.message_id,
            from: EmailAddress::from_trusted(self.from_addr),
            from_name: self.from_name,
            to: addresses(&self.to_addrs, "to_addrs")?,
            cc: addresses(&self.cc_addrs, "cc_addrs")?,
            subject: self.subject,
            snippet: self.snippet,
            authentication: from_json::<Authentication>(&self.authentication, "authentication")?,
            unread: self.unread,
            labels,
            archived: self.archived,
            trashed_at: ts(self.trashed_at),
            created_at: Timestamp::from_micros(self.created_at),
        })
    }
}

/// The columns of a whole message (bodies, not the raw bytes), in the order [`MessageRow`]
/// reads them; `c` is the joined `mail_contents` row.
macro_rules! message_columns {
    () => {
        "m.seq, m.id, m.thread_id, m.folder, m.message_id, m.in_reply_to, m.refs, \
     m.from_addr, m.from_name, m.to_addrs, m.cc_addrs, m.bcc_addrs, m.subject, c.text, c.html, c.extracted_text, \
     m.authentication, m.unread, m.created_at, m.size, m.delivery, COALESCE(m.schedule_state, m.status) AS status, \
     m.send_at, m.archived, m.trashed_at, c.attachments"
    };
}
pub(crate) use message_columns;

sql_row! {
pub(crate) struct MessageRow {
    pub seq: i64,
    id: String,
    thread_id: String,
    folder: String,
    message_id: String,
    in_reply_to: Option<String>,
    refs: String,
    from_addr: String,
    from_name: Option<String>,
    to_addrs: String,
    cc_addrs: String,
    bcc_addrs: String,
    subject: String,
    text: String,
    html: Option<String>,
    extracted_text: String,
    authentication: String,
    unread: bool,
    created_at: i64,
    size: i64,
    delivery: String,
    status: String,
    send_at: Option<i64>,
    archived: bool,
    trashed_at: Option<i64>,
    attachments: String,
}}

impl MessageRow {
    pub(crate) fn into_message(self, labels: Vec<String>) -> Result<Message> {
        Ok(Message {
            status: MessageStatus::parse_stored(&self.status, &self.id)?,
            send_at: ts(self.send_at),
            approval: None,
            sender_contact: None,
            folder: Folder::parse_stored(&self.folder, &self.id)?,
            id: MessageId::from_trusted(self.id),
            thread_id: ThreadId::from_trusted(self.thread_id),
            message_id: self.message_id,
            in_reply_to: self.in_reply_to,
            references: from_json(&self.refs, "refs")?,
            from: EmailAddress::from_trusted(self.from_addr),
            from_name: self.from_name,
            to: addresses(&self.to_addrs, "to_addrs")?,
            cc: addresses(&self.cc_addrs, "cc_addrs")?,
            bcc: addresses(&self.bcc_addrs, "bcc_addrs")?,
            subject: self.subject,
            text: self.text,
            html: self.html,
            extracted_text: self.extracted_text,
            authentication: from_json::<Authentication>(&self.authentication, "authentication")?,
            unread: self.unread,
            labels,
            archived: self.archived,
            trashed_at: ts(self.trashed_at),
            created_at: Timestamp::from_micros(self.created_at),
            size: self.size,
            delivery: from_json::<Vec<Delivery>>(&self.delivery, "delivery")?,
            attachments: from_json(&self.attachments, "attachments")?,
            codes: vec![],
            links: vec![],
            screening: None,
        })
    }
}

/// The audit columns, in the order [`AuditRow`] reads them.
macro_rules! audit_columns {
    () => {
        "seq, at, actor_kind, actor_identity_id, key_id, action, target, outcome, \
     request_id, remote_addr, details, prev_hash, hash"
    };
}
pub(crate) use audit_columns;

sql_row! {
pub(crate) struct AuditRow {
    seq: i64,
    at: i64,
    actor_kind: String,
    actor_identity_id: Option<String>,
    key_id: Option<String>,
    action: String,
    target: Option<String>,
    outcome: String,
    request_id: Option<String>,
    remote_addr: Option<String>,
    details: String,
    prev_hash: String,
    hash: String,
}}

impl AuditRow {
    pub(crate) fn into_record(self) -> Result<AuditRecord> {
        let outcome = Outcome::parse(&self.outcome)
            .ok_or_else(|| Error::Internal(format!("audit row {} has an unknown outcome", self.seq)))?;
        Ok(AuditRecord {
            seq: self.seq,
            entry: AuditEntry {
                at: Timestamp::from_micros(self.at),
                actor_kind: ActorKind::parse_stored(&self.actor_kind, self.seq)?,
                actor_identity_id: self.actor_identity_id.map(IdentityId::from_trusted),
                key_id: self.key_id,
                action: self.action,
                target: self.target,
                outcome,
                request_id: self.request_id,
                remote_addr: self.remote_addr,
                details: from_json(&self.details, "details")?,
                events: Vec::new(),
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}
