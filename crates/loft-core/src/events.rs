//! Events: what happened that an agent, a person or another system may want to react to.
//!
//! An event is raised by the change it reports and written **in the same transaction**: a
//! service call attaches it to the change's audit entry ([`crate::audit::AuditEntry::events`])
//! and the store writes both, or neither. So no event ever announces a change that rolled back,
//! and no committed change lacks its event.
//!
//! Events are numbered by one sequence per database, in the order they become visible:
//! SQLite numbers them as it inserts them (one writer); PostgreSQL numbers them when its
//! sealer chains the audit rows that carry them (one sealer at a time, see the store's docs),
//! then notifies every node. A reader that has seen every event up to `seq` and asks for what
//! follows therefore never misses one and never sees one twice: that is what `Last-Event-ID`
//! resumes from.
//!
//! Payloads carry ids, addresses, names and outcomes; never a secret value, never a body.

use serde::{Deserialize, Serialize};

use crate::ids::IdentityId;
use crate::time::Timestamp;
use crate::{Error, Result};

/// Every kind of event, named `area.verb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventKind {
    /// Mail arrived in the identity's mailbox (from another identity, or from outside).
    #[serde(rename = "message.received")]
    MessageReceived,
    /// The identity's mail left its outbox: delivered to the identities of this server, and
    /// queued for the others.
    #[serde(rename = "message.sent")]
    MessageSent,
    /// A remote recipient's server accepted the mail (raised by SMTP delivery).
    #[serde(rename = "message.delivered")]
    MessageDelivered,
    /// A remote recipient's server refused the mail for good (raised by SMTP delivery).
    #[serde(rename = "message.bounced")]
    MessageBounced,
    /// The identity's mail is held for a reviewer.
    #[serde(rename = "approval.requested")]
    ApprovalRequested,
    /// A reviewer approved or rejected the identity's held mail, or its time ran out.
    #[serde(rename = "approval.decided")]
    ApprovalDecided,
    /// Mail of an identity in `monitored` mode went out without a gate: reviewers look at it
    /// after the fact (their feed: `GET /v0/events?types=review.requested`).
    #[serde(rename = "review.requested")]
    ReviewRequested,
    /// The identity was revoked (with everything it created).
    #[serde(rename = "identity.revoked")]
    IdentityRevoked,
    /// The identity was paused by the operator.
    #[serde(rename = "identity.paused")]
    IdentityPaused,
    /// The identity was resumed by the operator.
    #[serde(rename = "identity.resumed")]
    IdentityResumed,
    /// A credential of the identity's vault was used (a TOTP code, a brokered call).
    #[serde(rename = "vault.used")]
    VaultUsed,
    /// A webhook endpoint was disabled after failing for too long (payload: `webhook_id`,
    /// `url`, `failing_since`, `failures`). The endpoint's identity's event; instance-wide
    /// (operator only) for an operator's endpoint.
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::MessageReceived,
        EventKind::MessageSent,
        EventKind::MessageDelivered,
        EventKind::MessageBounced,
        EventKind::ApprovalRequested,
        EventKind::ApprovalDecided,
        EventKind::ReviewRequested,
        EventKind::IdentityRevoked,
        EventKind::IdentityPaused,
        EventKind::IdentityResumed,
        EventKind::VaultUsed,
        EventKind::WebhookDisabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::MessageReceived => "message.received",
            EventKind::MessageSent => "message.sent",
            EventKind::MessageDelivered => "message.delivered",
            EventKind::MessageBounced => "message.bounced",
            EventKind::ApprovalRequested => "approval.requested",
            EventKind::ApprovalDecided => "approval.decided",
            EventKind::ReviewRequested => "review.requested",
            EventKind::IdentityRevoked => "identity.revoked",
            EventKind::IdentityPaused => "identity.paused",
            EventKind::IdentityResumed => "identity.resumed",
            EventKind::VaultUsed => "vault.used",
            EventKind::WebhookDisabled => "webhook.disabled",
        }
    }

    /// A kind as a caller names it; an unknown name is a 422 listing the known ones.
    pub fn parse(s: &str) -> Result<Self> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            Error::invalid("invalid_event_type", format!("`{s}` is not an event type"))
                .with_hint(format!("event types: {}", kind_names()))
        })
    }

    /// A kind as stored; an unknown one (written by a newer version) is an internal error.
    pub fn parse_stored(s: &str, seq: i64) -> Result<Self> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            Error::internal(format!(
                "event {seq} has the unknown type `{s}` (written by a newer version?)"
            ))
        })
    }
}

fn kind_names() -> String {
    EventKind::ALL.map(EventKind::as_str).join(", ")
}

/// Parses a comma-separated list of event types (`message.received,approval.decided`), as
/// the `types` filter takes it. Empty means every type. `message.*` names every type of an area.
pub fn parse_kinds(list: &str) -> Result<Vec<EventKind>> {
    let mut kinds = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if let Some(area) = name.strip_suffix(".*") {
            let before = kinds.len();
            kinds.extend(
                EventKind::ALL
                    .into_iter()
                    .filter(|k| k.as_str().split_once('.').is_some_and(|(a, _)| a == area)),
            );
            if kinds.len() == before {
                return Err(
                    Error::invalid("invalid_event_type", format!("`{name}` names no event type"))
                        .with_hint(format!("event types: {}", kind_names())),
                );
            }
        } else {
            kinds.push(EventKind::parse(name)?);
        }
    }
    kinds.sort_by_key(|k| k.as_str());
    kinds.dedup();
    Ok(kinds)
}

/// An event a change raises; the store gives it its number when it becomes visible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub kind: EventKind,
    /// Whose event it is: the identity whose stream and webhooks receive it. `None` for an
    /// instance-wide event (only the operator sees it).
    pub identity: Option<IdentityId>,
    pub payload: serde_json::Value,
}

impl NewEvent {
    pub fn new(kind: EventKind, identity: &IdentityId, payload: serde_json::Value) -> Self {
        Self {
            kind,
            identity: Some(identity.clone()),
            payload,
        }
    }
}

/// An event as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// `evt_` and the sequence number: unique on this database, and what webhooks send as
    /// `webhook-id`.
    pub id: String,
    /// The position in the one sequence of events; what `Last-Event-ID` and `after` take.
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub identity: Option<IdentityId>,
    /// The audit row of the change that raised it.
    pub audit_seq: Option<i64>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
}

impl Event {
    pub fn id_for(seq: i64) -> String {
        format!("evt_{seq}")
    }
}

/// Reads a position as a caller gives it: `42` or `evt_42` (`Last-Event-ID`, `after`).
pub fn parse_position(s: &str) -> Result<i64> {
    let digits = s.trim().strip_prefix("evt_").unwrap_or(s.trim());
    digits.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
        Error::invalid("invalid_event_id", format!("`{s}` is not an event id"))
            .with_hint("an event id is `evt_` followed by its sequence number, as the stream sent it")
    })
}

/// What [`crate::store::Store::events_after`] reads.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Events numbered above this.
    pub after: i64,
    /// Only this identity's events (`None`: every identity's, and instance-wide ones).
    pub identity: Option<IdentityId>,
    /// Only these types (empty: all).
    pub kinds: Vec<EventKind>,
    pub limit: u32,
}

/// A store's word that events became visible: the highest number known now, and whose
/// events they were (so that only their waiters wake). `identities` is `None` when the store
/// cannot say (then every waiter looks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSignal {
    pub upto: i64,
    pub identities: Option<Vec<IdentityId>>,
}

/// Events as stored (conformance: `events`). Writing them is not a method: stores write the
/// events of every audit entry they append, in its transaction.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Visible events numbered above `query.after`, oldest first, at most `query.limit`.
    async fn events_after(&self, query: EventQuery) -> Result<Vec<Event>>;

    /// The highest event number visible now (0 when there is none).
    async fn latest_event_seq(&self) -> Result<i64>;

    /// Signals from the store when events become visible that this process did not write
    /// itself, on another node sharing the database (PostgreSQL's LISTEN/NOTIFY). `None` when
    /// every write happens in this process (SQLite), whose service wakes its own waiters.
    fn event_signals(&self) -> Option<tokio::sync::broadcast::Receiver<EventSignal>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_parse_lists() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()).unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(k.as_str()));
        }
        assert_eq!(
            parse_kinds("approval.*, message.received,message.received").unwrap(),
            vec![
                EventKind::ApprovalDecided,
                EventKind::ApprovalRequested,
                EventKind::MessageReceived
            ]
        );
        assert!(parse_kinds("").unwrap().is_empty());
        let e = parse_kinds("mail.received").unwrap_err();
        assert!(e.to_string().contains("mail.received"), "{e}");
        assert!(parse_kinds("nope.*").is_err());
    }

    #[test]
    fn positions() {
        assert_eq!(parse_position("evt_12").unwrap(), 12);
        assert_eq!(parse_position("12").unwrap(), 12);
        assert_eq!(parse_position(" 0 ").unwrap(), 0);
        assert!(parse_position("-1").is_err());
        assert!(parse_position("evt_x").is_err());
        assert!(parse_position("").is_err());
    }
}
