//! The append-only, hash-chained audit log.
//!
//! Every row's `hash` is SHA-256 over the previous row's hash and a canonical JSON encoding of
//! the row's own content (sequence number included), so changing, removing or inserting a row
//! breaks the chain from that row on. Stores append rows inside the same transaction as the
//! change they record and must serialise appends (one chain head), also across processes.
//! [`verify_chain`] is pure, so the CLI can check an export on its own machine.
//!
//! Details never hold secret values: only ids, addresses, counts and outcomes.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::IdentityId;
use crate::time::Timestamp;

/// The `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Denied,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(Outcome::Ok),
            "denied" => Some(Outcome::Denied),
            "error" => Some(Outcome::Error),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Operator,
    Identity,
    /// A request whose key could not be authenticated.
    Anonymous,
    /// Loft itself (start-up, background work).
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Operator => "operator",
            ActorKind::Identity => "identity",
            ActorKind::Anonymous => "anonymous",
            ActorKind::System => "system",
        }
    }
    /// An actor kind as stored in audit row `seq`; an unknown one is an error naming the
    /// row, never read as anonymous.
    pub fn parse_stored(s: &str, seq: i64) -> crate::Result<Self> {
        match s {
            "operator" => Ok(ActorKind::Operator),
            "identity" => Ok(ActorKind::Identity),
            "anonymous" => Ok(ActorKind::Anonymous),
            "system" => Ok(ActorKind::System),
            other => Err(crate::Error::internal(format!(
                "audit row {seq} has the unknown actor kind `{other}` (written by a newer version?)"
            ))),
        }
    }
}

/// A row about to be appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub at: crate::time::Timestamp,
    pub actor_kind: ActorKind,
    pub actor_identity_id: Option<IdentityId>,
    pub key_id: Option<String>,
    /// `area.verb`, e.g. `mail.send`, `identity.revoke`, `auth.refused`.
    pub action: String,
    /// The id the action was about, if any.
    pub target: Option<String>,
    pub outcome: Outcome,
    pub request_id: Option<String>,
    pub remote_addr: Option<String>,
    /// Structured facts about the action; never secret values.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Value,
    /// The events the change raises ([`crate::events`]): written with this row, in the same
    /// transaction, but not part of the row, its hash or its JSON.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub events: Vec<crate::events::NewEvent>,
}

impl AuditEntry {
    /// The row of something the server did by itself (the job runner, the delivery worker):
    /// no identity or key acted; outcome `ok`.
    pub fn system(at: Timestamp, action: &str, target: &impl std::fmt::Display, details: serde_json::Value) -> Self {
        Self {
            at,
            actor_kind: ActorKind::System,
            actor_identity_id: None,
            key_id: None,
            action: action.into(),
            target: Some(target.to_string()),
            outcome: Outcome::Ok,
            request_id: None,
            remote_addr: None,
            details,
            events: Vec::new(),
        }
    }

    /// Adds an event the change raises.
    #[must_use]
    pub fn with_event(mut self, event: crate::events::NewEvent) -> Self {
        self.events.push(event);
        self
    }
}

/// A row as stored: the entry, its place in the chain, and the chain hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    pub seq: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// The canonical bytes a row's hash covers. Field order is fixed by this struct; `details`
/// is serialised by `serde_json` with sorted keys (its default map), and stores keep `details`
/// as text so that nothing reorders it.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: i64,
    at: i64,
    actor_kind: &'a str,
    actor_identity_id: Option<&'a str>,
    key_id: Option<&'a str>,
    action: &'a str,
    target: Option<&'a str>,
    outcome: &'a str,
    request_id: Option<&'a str>,
    remote_addr: Option<&'a str>,
    details: &'a serde_json::Value,
}

pub fn compute_hash(seq: i64, entry: &AuditEntry, prev_hash: &str) -> String {
    let canonical = Canonical {
        seq,
        at: entry.at.as_micros(),
        actor_kind: entry.actor_kind.as_str(),
        actor_identity_id: entry.actor_identity_id.as_ref().map(IdentityId::as_str),
        key_id: entry.key_id.as_deref(),
        action: &entry.action,
        target: entry.target.as_deref(),
        outcome: entry.outcome.as_str(),
        request_id: entry.request_id.as_deref(),
        remote_addr: entry.remote_addr.as_deref(),
        details: &entry.details,
    };
    let body = serde_json::to_vec(&canonical).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(&body);
    hex::encode(h.finalize())
}

impl AuditRecord {
    /// Places `entry` after the row with `prev_seq`/`prev_hash` (0 and [`GENESIS_HASH`] for the
    /// first row).
    pub fn seal(entry: AuditEntry, prev_seq: i64, prev_hash: &str) -> Self {
        let seq = prev_seq + 1;
        let hash = compute_hash(seq, &entry, prev_hash);
        Self {
            seq,
            entry,
            prev_hash: prev_hash.to_owned(),
            hash,
        }
    }
}

/// The last row of the chain, as the store's head pointer records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyReport {
    pub ok: bool,
    pub rows_checked: i64,
    /// The sequence number of the first row found altered, removed or inserted.
    pub first_bad_seq: Option<i64>,
    pub problem: Option<String>,
    pub head: Option<ChainHead>,
}

/// Incremental verifier: feed rows in sequence order, then [`ChainVerifier::finish`].
#[derive(Debug)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
    checked: i64,
    failure: Option<(i64, String)>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            checked: 0,
            failure: None,
        }
    }
}

impl ChainVerifier {
    /// Checks one row; returns false once a problem has been found.
    pub fn push(&mut self, row: &AuditRecord) -> bool {
        if self.failure.is_some() {
            return false;
        }
        self.checked += 1;
        let problem = if row.seq < self.expected_seq {
            Some((
                row.seq,
                format!("row {} appears twice or out of order (inserted)", row.seq),
            ))
        } else if row.seq > self.expected_seq {
            Some((
                self.expected_seq,
                format!(
                    "row {} is missing (removed); the next row is {}",
                    self.expected_seq, row.seq
                ),
            ))
        } else if row.prev_hash != self.prev_hash {
            Some((
                row.seq,
                format!(
                    "row {} does not follow row {} (a row was inserted, or the previous row was altered)",
                    row.seq,
                    row.seq - 1
                ),
            ))
        } else if compute_hash(row.seq, &row.entry, &row.prev_hash) != row.hash {
            Some((
                row.seq,
                format!("row {} was altered: its content does not match its hash", row.seq),
            ))
        } else {
            None
        };
        if let Some(p) = problem {
            self.failure = Some(p);
            return false;
        }
        self.expected_seq += 1;
        self.prev_hash.clone_from(&row.hash);
        true
    }

    /// Ends the check, comparing the last row seen with the store's head pointer (which catches
    /// removal of rows at the end).
    pub fn finish(self, head: Option<ChainHead>) -> VerifyReport {
        let mut failure = self.failure;
        if failure.is_none()
            && let Some(h) = &head
        {
            let last_seq = self.expected_seq - 1;
            if h.seq > last_seq {
                failure = Some((
                    last_seq + 1,
                    format!("rows {} to {} are missing (removed from the end)", last_seq + 1, h.seq),
                ));
            } else if h.seq < last_seq || (h.seq > 0 && h.hash != self.prev_hash) {
                failure = Some((
                    h.seq.max(1),
                    "the chain head does not match the last row (rows were appended outside Loft)".into(),
                ));
            }
        }
        VerifyReport {
            ok: failure.is_none(),
            rows_checked: self.checked,
            first_bad_seq: failure.as_ref().map(|f| f.0),
            problem: failure.map(|f| f.1),
            head,
        }
    }
}

/// Verifies a whole chain held in memory.
pub fn verify_chain<'a>(rows: impl IntoIterator<Item = &'a AuditRecord>, head: Option<ChainHead>) -> VerifyReport {
    let mut v = ChainVerifier::default();
    for row in rows {
        if !v.push(row) {
            break;
        }
    }
    v.finish(head)
}

/// Filters for listing the log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor_identity_id: Option<IdentityId>,
    /// Exact action, or a prefix ending in `.` (`mail.` matches all mail actions).
    pub action: Option<String>,
    pub outcome: Option<Outcome>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Newest first, older than this sequence number.
    pub before_seq: Option<i64>,
    /// Oldest first, newer than this sequence number (used by export).
    pub after_seq: Option<i64>,
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: i64) -> AuditEntry {
        AuditEntry {
            at: Timestamp::from_micros(n),
            actor_kind: ActorKind::Operator,
            actor_identity_id: None,
            key_id: Some("operator".into()),
            action: "identity.create".into(),
            target: Some(format!("idt_{n}")),
            outcome: Outcome::Ok,
            request_id: None,
            remote_addr: None,
            details: serde_json::json!({"b": 1, "a": [n]}),
            events: Vec::new(),
        }
    }

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut rows: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let (s, h) = rows
                .last()
                .map_or((0, GENESIS_HASH.to_owned()), |r| (r.seq, r.hash.clone()));
            rows.push(AuditRecord::seal(entry(i), s, &h));
        }
        rows
    }

    fn head(rows: &[AuditRecord]) -> Option<ChainHead> {
        rows.last().map(|r| ChainHead {
            seq: r.seq,
            hash: r.hash.clone(),
        })
    }

    #[test]
    fn intact_chain_verifies() {
        let rows = chain(5);
        let r = verify_chain(&rows, head(&rows));
        assert!(r.ok, "{r:?}");
        assert_eq!(r.rows_checked, 5);
    }

    #[test]
    fn alteration_is_named() {
        let mut rows = chain(5);
        rows[2].entry.action = "identity.revoke".into();
        let r = verify_chain(&rows, head(&rows));
        assert_eq!(r.first_bad_seq, Some(3));
        assert!(r.problem.unwrap().contains("altered"));
    }

    #[test]
    fn removal_is_named() {
        let mut rows = chain(5);
        let h = head(&rows);
        rows.remove(1);
        assert_eq!(verify_chain(&rows, h.clone()).first_bad_seq, Some(2));
        let mut rows = chain(5);
        rows.pop();
        let r = verify_chain(&rows, h);
        assert_eq!(r.first_bad_seq, Some(5));
    }

    #[test]
    fn insertion_is_named() {
        let mut rows = chain(5);
        let h = head(&rows);
        // An inserted row with a recomputed hash still cannot fit: the next row's prev_hash
        // points at the original row.
        let fake = AuditRecord::seal(entry(99), rows[1].seq, &rows[1].hash);
        rows.insert(2, fake);
        for r in rows.iter_mut().skip(3) {
            r.seq += 1;
        }
        let r = verify_chain(&rows, h);
        assert!(!r.ok);
        assert_eq!(r.first_bad_seq, Some(4));
    }

    #[test]
    fn hash_is_stable_across_serialisation() {
        let rows = chain(3);
        let json = serde_json::to_string(&rows).unwrap();
        let back: Vec<AuditRecord> = serde_json::from_str(&json).unwrap();
        assert!(verify_chain(&back, head(&back)).ok);
    }
}
