//! Reading rows back into domain types, and the small encodings shared by every module.
//!
//! Values read here come from our own database, so ids and addresses are wrapped with
//! `from_trusted` rather than re-validated; a value that cannot be decoded at all is a bug or
//! corruption and becomes `Error::Internal` naming the column (never its content).

use loft_core::address::EmailAddress;
use loft_core::identity::{Creator, CreatorKind, Identity, IdentityStatus};
use loft_core::ids::{IdentityId, KeyId};
use loft_core::keys::{KeyDigest, KeyKind, KeyMeta, ScopeSet, StoredKey};
use loft_core::mail::StorePage;
use loft_core::time::Timestamp;
use loft_core::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::{Decode, Postgres, Row, Type};

/// One column of a row.
pub(crate) fn col<'r, T>(row: &'r PgRow, name: &str) -> Result<T>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(name)
        .map_err(|e| Error::internal(format!("reading column `{name}`: {e}")))
}

pub(crate) fn ts(row: &PgRow, name: &str) -> Result<Timestamp> {
    col::<i64>(row, name).map(Timestamp::from_micros)
}

pub(crate) fn opt_ts(row: &PgRow, name: &str) -> Result<Option<Timestamp>> {
    Ok(col::<Option<i64>>(row, name)?.map(Timestamp::from_micros))
}

/// A stored cap (never negative: Loft writes 1 to `MAX_CAP`).
pub(crate) fn cap(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

/// A cap to store.
pub(crate) fn cap_col(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// A JSON-in-TEXT column.
pub(crate) fn json_col<T: DeserializeOwned>(row: &PgRow, name: &str) -> Result<T> {
    let text: String = col(row, name)?;
    serde_json::from_str(&text).map_err(|e| Error::internal(format!("decoding JSON column `{name}`: {e}")))
}

/// An address list stored as a JSON array of strings.
pub(crate) fn addresses_col(row: &PgRow, name: &str) -> Result<Vec<EmailAddress>> {
    let list: Vec<String> = json_col(row, name)?;
    Ok(list.into_iter().map(EmailAddress::from_trusted).collect())
}

pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::internal(format!("encoding JSON: {e}")))
}

/// A page from rows fetched with `LIMIT limit + 1`, each with its cursor sequence number.
pub(crate) fn page<T>(mut rows: Vec<(i64, T)>, limit: u32) -> StorePage<T> {
    let limit = limit as usize;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_before = if more { rows.last().map(|(seq, _)| *seq) } else { None };
    StorePage {
        items: rows.into_iter().map(|(_, item)| item).collect(),
        next_before,
    }
}

/// `LIMIT` for a page: one more row than asked, to know whether there is a next page.
pub(crate) fn fetch_limit(limit: u32) -> i64 {
    i64::from(limit) + 1
}

// ----- identities and keys -------------------------------------------------------------------

/// Identity columns, unprefixed names, from `identities i`.
macro_rules! identity_cols {
    () => {
        "i.seq, i.id, i.name, i.display_name, i.address, i.scopes, i.status, i.created_at, \
         i.revoked_at, i.creator_kind, i.parent_id, i.creator_key_id, i.oversight_mode, i.paused_at, \
         i.cap_mails_per_hour, i.cap_mails_per_day, i.cap_new_recipients_per_day, i.first_contact, \
         i.exfiltration_guard, i.internal_mail"
    };
}
pub(crate) use identity_cols;

/// Key columns, prefixed `k_`, from `api_keys k`.
macro_rules! key_cols {
    () => {
        "k.id AS k_id, k.identity_id AS k_identity_id, k.digest AS k_digest, k.kind AS k_kind, \
         k.label AS k_label, k.scopes AS k_scopes, k.created_at AS k_created_at, \
         k.expires_at AS k_expires_at, k.revoked_at AS k_revoked_at, k.created_by_key AS k_created_by_key"
    };
}
pub(crate) use key_cols;

pub(crate) fn status_str(status: IdentityStatus) -> &'static str {
    match status {
        IdentityStatus::Active => "active",
        IdentityStatus::Revoked => "revoked",
    }
}

pub(crate) fn creator_kind_str(kind: CreatorKind) -> &'static str {
    match kind {
        CreatorKind::Operator => "operator",
        CreatorKind::Identity => "identity",
    }
}

pub(crate) fn identity(row: &PgRow) -> Result<Identity> {
    let status: String = col(row, "status")?;
    let creator_kind: String = col(row, "creator_kind")?;
    let scopes: String = col(row, "scopes")?;
    let id: String = col(row, "id")?;
    let mode: String = col(row, "oversight_mode")?;
    let first_contact: String = col(row, "first_contact")?;
    let guard: String = col(row, "exfiltration_guard")?;
    let internal: String = col(row, "internal_mail")?;
    Ok(Identity {
        oversight_mode: loft_core::oversight::OversightMode::parse_stored(&mode, &id)?,
        paused_at: opt_ts(row, "paused_at")?,
        caps: loft_core::caps::IdentityCaps {
            mails_per_hour: cap(col(row, "cap_mails_per_hour")?),
            mails_per_day: cap(col(row, "cap_mails_per_day")?),
            new_recipients_per_day: cap(col(row, "cap_new_recipients_per_day")?),
            first_contact: loft_core::caps::FirstContact::parse_stored(&first_contact, &id)?,
            exfiltration_guard: loft_core::caps::Guard::parse_stored(&guard, &id)?,
            internal_mail: loft_core::caps::InternalMail::parse_stored(&internal, &id)?,
        },
        id: IdentityId::from_trusted(id),
        name: col(row, "name")?,
        display_name: col(row, "display_name")?,
        address: EmailAddress::from_trusted(col(row, "address")?),
        scopes: ScopeSet::from_json(&scopes)?,
        status: if status == "revoked" {
            IdentityStatus::Revoked
        } else {
            IdentityStatus::Active
        },
        created_at: ts(row, "created_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
        created_by: Creator {
            kind: if creator_kind == "identity" {
                CreatorKind::Identity
            } else {
                CreatorKind::Operator
            },
            identity_id: col::<Option<String>>(row, "parent_id")?.map(IdentityId::from_trusted),
            key_id: col(row, "creator_key_id")?,
        },
    })
}

/// An identity with its cursor.
pub(crate) fn identity_with_seq(row: &PgRow) -> Result<(i64, Identity)> {
    Ok((col(row, "seq")?, identity(row)?))
}

pub(crate) fn key_meta(row: &PgRow) -> Result<KeyMeta> {
    let kind: String = col(row, "k_kind")?;
    let scopes: String = col(row, "k_scopes")?;
    let id: String = col(row, "k_id")?;
    Ok(KeyMeta {
        kind: KeyKind::parse_stored(&kind, &id)?,
        id: KeyId::from_trusted(id),
        identity_id: IdentityId::from_trusted(col(row, "k_identity_id")?),
        label: col(row, "k_label")?,
        scopes: ScopeSet::from_json(&scopes)?,
        created_at: ts(row, "k_created_at")?,
        expires_at: opt_ts(row, "k_expires_at")?,
        revoked_at: opt_ts(row, "k_revoked_at")?,
        created_by_key: col(row, "k_created_by_key")?,
    })
}

pub(crate) fn stored_key(row: &PgRow) -> Result<StoredKey> {
    let meta = key_meta(row)?;
    let digest: String = col(row, "k_digest")?;
    Ok(StoredKey {
        id: meta.id.clone(),
        identity_id: meta.identity_id.clone(),
        digest: KeyDigest::from_hex(&digest)?,
        meta,
    })
}
