//! Quotas per identity: how much one identity (and so one leaked key) can hold or do.
//!
//! Stock quotas (sub-identities, active keys, vault items, distinct labels and bytes of mail
//! in a mailbox, drafts) are counted by the store ([`Usage`], `Store::usage`, `Store::mailbox_bytes`,
//! `Store::mailbox_labels`) and checked before the write; a refusal is 403 `quota_exceeded`
//! naming the quota. The rate quota on remote recipients queued per
//! hour is a token bucket per identity in this process (like the request limits in
//! [`crate::limits`]); a refusal is 429 with the time to wait.
//!
//! The checks are not in the write's transaction: two concurrent writes may both pass at the
//! edge and exceed a stock quota by one each. Quotas bound abuse; they are not an accounting
//! system.

use crate::limits::Buckets;
use crate::time::Timestamp;
use crate::{Error, Result};

/// What an identity holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Active identities it created directly.
    pub sub_identities: u64,
    /// Keys not revoked (an expired key counts until it is revoked: revoke it to free its
    /// slot).
    pub active_keys: u64,
    pub vault_items: u64,
    /// Bytes of mail (RFC 5322 size) in its mailbox, sent and received copies alike.
    pub stored_bytes: u64,
}

/// Deploy-time quota settings; `None` is unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas {
    pub sub_identities: Option<u64>,
    pub keys: Option<u64>,
    pub vault_items: Option<u64>,
    /// Distinct labels in one mailbox.
    pub labels: Option<u64>,
    pub stored_bytes: Option<u64>,
    pub queued_recipients_per_hour: Option<u64>,
    /// Drafts one identity holds.
    pub drafts: Option<u64>,
}

impl Default for Quotas {
    /// Generous for an agent, small for a runaway: an agent rarely needs more than a handful
    /// of keys or sub-identities, and a human mailbox provider's sending limits are of the
    /// order of a thousand recipients a day.
    fn default() -> Self {
        Self {
            sub_identities: Some(100),
            keys: Some(50),
            vault_items: Some(1000),
            labels: Some(1000),
            stored_bytes: Some(1 << 30),
            queued_recipients_per_hour: Some(1000),
            drafts: Some(1000),
        }
    }
}

impl Quotas {
    /// No quotas at all.
    pub fn off() -> Self {
        Self {
            sub_identities: None,
            keys: None,
            vault_items: None,
            labels: None,
            stored_bytes: None,
            queued_recipients_per_hour: None,
            drafts: None,
        }
    }

    pub const NAMES: [&'static str; 7] = [
        "sub_identities",
        "keys",
        "vault_items",
        "labels",
        "stored_bytes",
        "queued_recipients_per_hour",
        "drafts",
    ];

    /// Applies `name=N` (or `name=off`) settings, as `--quota` takes them, to the defaults.
    pub fn parse<S: AsRef<str>>(settings: &[S]) -> std::result::Result<Self, String> {
        let mut q = Self::default();
        for s in settings {
            let s = s.as_ref().trim();
            if s.is_empty() {
                continue;
            }
            let (name, value) = s
                .split_once('=')
                .ok_or_else(|| format!("`{s}` is not NAME=N; names: {}", Self::NAMES.join(", ")))?;
            let value = match value.trim() {
                v if v.eq_ignore_ascii_case("off") => None,
                v => Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("`{s}`: the value must be a whole number or `off`"))?,
                ),
            };
            let slot = match name.trim() {
                "sub_identities" => &mut q.sub_identities,
                "keys" => &mut q.keys,
                "vault_items" => &mut q.vault_items,
                "labels" => &mut q.labels,
                "stored_bytes" => &mut q.stored_bytes,
                "queued_recipients_per_hour" => &mut q.queued_recipients_per_hour,
                "drafts" => &mut q.drafts,
                other => {
                    return Err(format!("unknown quota `{other}`; names: {}", Self::NAMES.join(", ")));
                }
            };
            *slot = value;
        }
        Ok(q)
    }
}

/// The refusal of a stock quota.
pub fn exceeded(name: &str, what: &str, have: u64, limit: u64) -> Error {
    Error::forbidden(
        "quota_exceeded",
        format!("the quota `{name}` is used up: {what} {have} of {limit}"),
    )
    .with_hint(format!(
        "free some (revoke or delete what is no longer needed), or ask the operator to raise it with `--quota {name}=N`"
    ))
}

/// Checks a stock quota: `have` in use, `adding` more.
pub fn check(name: &str, what: &str, limit: Option<u64>, have: u64, adding: u64) -> Result<()> {
    match limit {
        Some(limit) if have.saturating_add(adding) > limit => Err(exceeded(name, what, have, limit)),
        _ => Ok(()),
    }
}

/// The per-identity hourly budget of queued remote recipients, in this process.
#[derive(Default)]
pub struct RecipientBudget {
    buckets: Buckets,
}

impl RecipientBudget {
    /// Takes `n` recipients from `identity`'s budget of `per_hour` (which refills evenly over
    /// the hour); `Err` is the refusal, naming the seconds to wait, and takes nothing.
    pub fn take(&self, identity: &str, per_hour: u64, n: u64, now: Timestamp) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let capacity = per_hour as f64;
        let asked = n as f64;
        if asked > capacity {
            return Err(Error::forbidden(
                "quota_exceeded",
                format!("{n} remote recipients in one message is more than the quota `queued_recipients_per_hour` ({per_hour})"),
            )
            .with_hint("send to fewer remote recipients at once, or ask the operator to raise it with `--quota queued_recipients_per_hour=N`"));
        }
        let Err(wait) = self.buckets.take(identity, capacity, capacity / 3600.0, asked, now) else {
            return Ok(());
        };
        Err(Error::too_many(
            "quota_exceeded",
            format!(
                "the quota `queued_recipients_per_hour` ({per_hour}) is used up; {n} more remote recipients fit in {wait} s"
            ),
            wait,
        )
        .with_hint("wait and retry, or ask the operator to raise it with `--quota queued_recipients_per_hour=N`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_onto_the_defaults() {
        let q = Quotas::parse(&["keys=3", "stored_bytes=off", " "]).unwrap();
        assert_eq!(q.keys, Some(3));
        assert_eq!(q.stored_bytes, None);
        assert_eq!(q.vault_items, Quotas::default().vault_items);
        assert!(Quotas::parse(&["keys"]).unwrap_err().contains("NAME=N"));
        assert!(Quotas::parse(&["nope=1"]).unwrap_err().contains("unknown quota `nope`"));
        assert!(Quotas::parse(&["keys=-1"]).is_err());
    }

    #[test]
    fn stock_checks() {
        check("keys", "active keys", Some(2), 1, 1).unwrap();
        let e = check("keys", "active keys", Some(2), 2, 1).unwrap_err();
        assert_eq!(e.code(), "quota_exceeded");
        assert!(e.to_string().contains("2 of 2"), "{e}");
        check("keys", "active keys", None, u64::MAX, 1).unwrap();
    }

    #[test]
    fn the_hourly_recipient_budget_refills() {
        let b = RecipientBudget::default();
        let t0 = Timestamp::from_micros(1_800_000_000_000_000);
        b.take("a", 100, 60, t0).unwrap();
        b.take("a", 100, 40, t0).unwrap();
        let e = b.take("a", 100, 1, t0).unwrap_err();
        assert!(
            matches!(
                e,
                Error::TooManyRequests {
                    retry_after_secs: 36,
                    ..
                }
            ),
            "{e:?}"
        );
        // Another identity has its own budget; a message larger than the whole budget is 403.
        b.take("b", 100, 100, t0).unwrap();
        assert!(matches!(b.take("c", 100, 101, t0), Err(Error::Forbidden(_))));
        // Half an hour later, half the budget is back.
        let later = t0.plus_secs(1800);
        b.take("a", 100, 50, later).unwrap();
        assert!(b.take("a", 100, 1, later).is_err());
    }
}
