//! Reading events, and waking whoever waits for them.
//!
//! [`EventHub`] is this process's switchboard: one watch per identity someone waits for, and
//! one for "any event". A change this process makes wakes the watches of the identities whose
//! events it raised, as soon as its transaction commits; a store that shares its database with
//! other nodes (PostgreSQL) signals the events they wrote, and the hub wakes their owners the
//! same way. Waiting therefore costs no query: `mail_wait` and the event stream sleep on a
//! watch and look at the database only when their own identity had news (or their timeout
//! or an approval's expiry comes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Actor, Loft, Principal};
use crate::audit::AuditEntry;
use crate::events::{self, Event, EventKind, EventQuery, EventSignal};
use crate::ids::IdentityId;
use crate::keys::Scope;
use crate::{Error, Result};

/// `GET /v0/events`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct EventParams {
    /// Events after this one (`evt_42` or `42`); without it, a JSON page starts at the oldest
    /// event and a stream at the next new one. A stream's `Last-Event-ID` header wins over it.
    pub after: Option<String>,
    /// Only these types, comma-separated (`message.received,approval.*`).
    pub types: Option<String>,
    /// Operator only: only this identity's events.
    pub identity: Option<String>,
    /// At most this many events in a JSON page (1 to 1000, default 100).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub limit: Option<u32>,
}

/// A page of events, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    pub items: Vec<Event>,
    /// Pass as `after` to continue (the last event read, shown or not).
    pub next_after: String,
}

/// Most events one page or one stream round returns.
const MAX_EVENTS: u32 = 1000;

/// Who may see which events, settled once per request or stream.
#[derive(Debug, Clone)]
pub struct EventScope {
    /// The caller's own identity (`None`: the operator).
    own: Option<IdentityId>,
    /// Types the caller asked for and may see (empty: all it may see).
    kinds: Vec<EventKind>,
    /// Whose events: an identity key's own, the operator's filter, or (reviewers) anyone's.
    filter: Option<IdentityId>,
    /// A reviewer key also sees approval and review events of every identity.
    reviewer: bool,
    /// Scopes of an identity key, which limit the types it sees.
    scopes: Option<crate::keys::ScopeSet>,
}

impl EventScope {
    fn allows(&self, e: &Event) -> bool {
        if !self.kinds.is_empty() && !self.kinds.contains(&e.kind) {
            return false;
        }
        let Some(own) = &self.own else {
            return true;
        };
        if self.reviewer && for_reviewers(e.kind) {
            return true;
        }
        if hidden_from_owner(e) {
            return false;
        }
        e.identity.as_ref() == Some(own) && self.scopes.as_ref().is_some_and(|s| kind_allowed(s, e.kind))
    }

    /// The identity whose watch wakes a stream with this scope (`None`: any event).
    fn watched(&self) -> Option<&IdentityId> {
        if self.reviewer { None } else { self.filter.as_ref() }
    }
}

/// The events a reviewer key sees of every identity: the held mail it decides on, and the
/// monitored mail it looks at after the fact.
fn for_reviewers(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::ApprovalRequested | EventKind::ApprovalDecided | EventKind::ReviewRequested
    )
}

/// Whether an event of an identity is kept from that identity's own keys (stream, pages and
/// webhooks): the approval events of mail held *for* it (held incoming mail, `direction:
/// receive`) name mail it may not see yet; they are the reviewers' business.
pub(super) fn hidden_from_owner(e: &Event) -> bool {
    for_reviewers(e.kind) && e.payload.get("direction").and_then(|d| d.as_str()) == Some("receive")
}

/// Which scope of an identity key lets it see events of a type (its own events only).
pub(crate) fn kind_allowed(scopes: &crate::keys::ScopeSet, kind: EventKind) -> bool {
    match kind {
        EventKind::MessageReceived
        | EventKind::MessageSent
        | EventKind::MessageDelivered
        | EventKind::MessageBounced
        | EventKind::ApprovalRequested
        | EventKind::ApprovalDecided
        | EventKind::ReviewRequested => scopes.contains(Scope::MailRead),
        EventKind::VaultUsed => scopes.contains(Scope::VaultRead),
        EventKind::IdentityRevoked
        | EventKind::IdentityPaused
        | EventKind::IdentityResumed
        | EventKind::WebhookDisabled => true,
    }
}

pub(crate) fn needed_scope(kind: EventKind) -> Option<Scope> {
    match kind {
        EventKind::VaultUsed => Some(Scope::VaultRead),
        EventKind::IdentityRevoked
        | EventKind::IdentityPaused
        | EventKind::IdentityResumed
        | EventKind::WebhookDisabled => None,
        _ => Some(Scope::MailRead),
    }
}

impl Loft {
    /// Settles who sees what for `GET /v0/events`, refusing what the caller may not ask for.
    pub fn event_scope(&self, actor: &Actor, params: &EventParams) -> Result<EventScope> {
        let kinds = events::parse_kinds(params.types.as_deref().unwrap_or(""))?;
        let identity = params
            .identity
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(IdentityId::parse)
            .transpose()?;
        match &actor.principal {
            Principal::Operator => Ok(EventScope {
                own: None,
                kinds,
                filter: identity,
                reviewer: false,
                scopes: None,
            }),
            Principal::Identity {
                identity: me, scopes, ..
            } => {
                if identity.as_ref().is_some_and(|i| *i != me.id) {
                    return Err(
                        Error::forbidden("operator_only", "only the operator reads another identity's events")
                            .with_hint("an identity key reads its own events: leave out `identity`"),
                    );
                }
                let reviewer = scopes.contains(Scope::Oversight);
                // Asking for a type the key can never see is a mistake worth naming.
                for k in &kinds {
                    if !(kind_allowed(scopes, *k) || reviewer && for_reviewers(*k))
                        && let Some(scope) = needed_scope(*k)
                    {
                        return Err(Error::MissingScope { scope });
                    }
                }
                Ok(EventScope {
                    own: Some(me.id.clone()),
                    kinds,
                    filter: Some(me.id.clone()),
                    reviewer,
                    scopes: Some(scopes.clone()),
                })
            }
        }
    }

    /// Up to `limit` events after `after` that `scope` may see, and the position to continue
    /// from (the last event read, whether shown or not).
    pub async fn events_after(&self, scope: &EventScope, after: i64, limit: u32) -> Result<(Vec<Event>, i64)> {
        let query = EventQuery {
            after,
            // A reviewer's approvals of anyone are filtered here, not in SQL.
            identity: if scope.reviewer { None } else { scope.filter.clone() },
            kinds: scope.kinds.clone(),
            limit,
        };
        let found = self.store.events_after(query).await?;
        let next = found.last().map_or(after, |e| e.seq);
        Ok((found.into_iter().filter(|e| scope.allows(e)).collect(), next))
    }

    /// `GET /v0/events` as JSON: a page of the caller's events.
    pub async fn list_events(&self, actor: &Actor, params: EventParams) -> Result<EventPage> {
        let scope = self.event_scope(actor, &params)?;
        let limit = params.limit.unwrap_or(100);
        if !(1..=MAX_EVENTS).contains(&limit) {
            return Err(Error::invalid(
                "invalid_limit",
                format!("limit must be between 1 and {MAX_EVENTS}, not {limit}"),
            ));
        }
        let after = Self::event_position(params.after.as_deref())?.unwrap_or(0);
        let (items, next) = self.events_after(&scope, after, limit).await?;
        Ok(EventPage {
            items,
            next_after: Event::id_for(next),
        })
    }

    /// Where a stream starts: after the given position, or after the newest event now.
    pub async fn stream_start(&self, after: Option<&str>) -> Result<i64> {
        match Self::event_position(after)? {
            Some(n) => Ok(n),
            None => self.store.latest_event_seq().await,
        }
    }

    fn event_position(after: Option<&str>) -> Result<Option<i64>> {
        after.filter(|a| !a.is_empty()).map(events::parse_position).transpose()
    }

    /// Waits until events `scope` may see follow `after`, or `wait` passes, or the server
    /// stops; returns them (at most a round's worth) and the position to continue from.
    /// Sleeps on the hub, so an idle stream costs no query.
    pub async fn next_events(&self, scope: &EventScope, after: i64, wait: Duration) -> Result<(Vec<Event>, i64)> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut woken = match scope.watched() {
            Some(id) => self.hub.watch(id),
            None => self.hub.watch_all(),
        };
        let mut stopping = self.stopping.subscribe();
        let mut after = after;
        loop {
            self.count_look();
            let (found, next) = self.events_after(scope, after, MAX_EVENTS).await?;
            let read_any = next > after;
            after = next;
            if !found.is_empty() || *stopping.borrow() {
                return Ok((found, after));
            }
            // Only rows the caller may not see were read: there may be more behind them.
            if read_any {
                continue;
            }
            tokio::select! {
                r = woken.changed() => if r.is_err() { return Ok((vec![], after)); },
                _ = stopping.changed() => {}
                () = tokio::time::sleep_until(deadline) => return Ok((vec![], after)),
            }
        }
    }

    /// Wakes the waiters of the identities whose events `entry` raised: call after the write
    /// that carried it committed (the store took the entry; pass [`raised_by`]'s answer).
    pub(crate) fn wake(&self, identities: &[IdentityId]) {
        self.hub.wake(identities);
    }
}

/// The identities whose events an audit entry carries (to wake after its write).
pub(crate) fn raised_by(entry: &AuditEntry) -> Vec<IdentityId> {
    let mut ids: Vec<IdentityId> = entry.events.iter().filter_map(|e| e.identity.clone()).collect();
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids.dedup();
    ids
}

/// This process's switchboard of waiters (see the module docs).
#[derive(Debug)]
pub(crate) struct EventHub {
    any: watch::Sender<u64>,
    identities: Mutex<HashMap<IdentityId, watch::Sender<u64>>>,
}

impl EventHub {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            any: watch::channel(0).0,
            identities: Mutex::new(HashMap::new()),
        })
    }

    /// A watch that changes when `identity` has news. Subscribe before looking at the
    /// database, so that news between the look and the wait is not missed.
    pub(crate) fn watch(&self, identity: &IdentityId) -> watch::Receiver<u64> {
        let mut map = self
            .identities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget identities nobody waits for any more, now and then.
        if map.len() > 64 && map.len().is_power_of_two() {
            map.retain(|_, w| w.receiver_count() > 0);
        }
        map.entry(identity.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// A watch that changes on every event.
    pub(crate) fn watch_all(&self) -> watch::Receiver<u64> {
        self.any.subscribe()
    }

    pub(crate) fn wake(&self, identities: &[IdentityId]) {
        {
            let map = self
                .identities
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for id in identities {
                if let Some(w) = map.get(id) {
                    w.send_modify(|n| *n += 1);
                }
            }
        }
        self.any.send_modify(|n| *n += 1);
    }

    /// Wakes every waiter (signals were lost: everyone looks).
    pub(crate) fn wake_everyone(&self) {
        {
            let map = self
                .identities
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for w in map.values() {
                w.send_modify(|n| *n += 1);
            }
        }
        self.any.send_modify(|n| *n += 1);
    }

    /// Relays a store's signals (events written by other nodes) until the store closes them.
    pub(crate) fn relay(hub: Weak<Self>, mut signals: tokio::sync::broadcast::Receiver<EventSignal>) {
        use tokio::sync::broadcast::error::RecvError;
        tokio::spawn(async move {
            loop {
                let signal = signals.recv().await;
                let Some(hub) = hub.upgrade() else { return };
                match signal {
                    Ok(EventSignal {
                        identities: Some(ids), ..
                    }) => hub.wake(&ids),
                    Ok(EventSignal { identities: None, .. }) | Err(RecvError::Lagged(_)) => hub.wake_everyone(),
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }
}

/// The events of mail going out: `message.sent` for its sender, `message.received` for each
/// identity of this server that gets a copy, and `review.requested` when `review` (the sender
/// is in `monitored` mode and no reviewer saw this mail before it left).
pub(crate) fn mail_out(
    sender: &IdentityId,
    review: bool,
    message: &crate::ids::MessageId,
    from: &crate::address::EmailAddress,
    subject: &str,
    recipients: &[crate::address::EmailAddress],
    copies: &[crate::mail::MailCopy],
) -> Vec<events::NewEvent> {
    let mut out = vec![events::NewEvent::new(
        EventKind::MessageSent,
        sender,
        serde_json::json!({
            "message_id": message, "subject": subject, "to": recipients,
            "delivered_here": copies.len(),
        }),
    )];
    if review {
        out.push(events::NewEvent::new(
            EventKind::ReviewRequested,
            sender,
            serde_json::json!({
                "message_id": message, "from": from, "subject": subject, "to": recipients,
                "mode": "monitored",
            }),
        ));
    }
    out.extend(copies.iter().map(|c| {
        events::NewEvent::new(
            EventKind::MessageReceived,
            &c.owner,
            serde_json::json!({ "message_id": c.id, "from": from, "subject": subject }),
        )
    }));
    out
}

/// `approval.decided` for the composer of held mail.
pub(crate) fn decided(
    approval: &crate::oversight::Approval,
    status: crate::oversight::ApprovalStatus,
    by: &crate::oversight::Decider,
    reason: Option<&str>,
) -> events::NewEvent {
    events::NewEvent::new(
        EventKind::ApprovalDecided,
        &approval.identity_id,
        serde_json::json!({
            "approval_id": approval.id, "message_id": approval.message_id,
            "direction": approval.direction.as_str(),
            "status": status.as_str(), "reason": reason,
            "decided_by": { "kind": by.kind, "address": by.address },
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, payload: serde_json::Value) -> Event {
        Event {
            id: "evt_1".into(),
            seq: 1,
            kind,
            at: crate::time::Timestamp::from_micros(0),
            identity: None,
            audit_seq: None,
            payload,
        }
    }

    /// The approval events of mail held for an identity are kept from its own keys and
    /// webhooks; those of mail it composed, and every other event, are not.
    #[test]
    fn held_incoming_mail_events_are_hidden_from_their_recipient() {
        let held = serde_json::json!({"direction": "receive", "subject": "secret plan"});
        assert!(hidden_from_owner(&event(EventKind::ApprovalRequested, held.clone())));
        assert!(hidden_from_owner(&event(EventKind::ApprovalDecided, held.clone())));
        assert!(!hidden_from_owner(&event(EventKind::MessageReceived, held)));
        let sent = serde_json::json!({"direction": "send"});
        assert!(!hidden_from_owner(&event(EventKind::ApprovalRequested, sent)));
        assert!(!hidden_from_owner(&event(
            EventKind::ApprovalRequested,
            serde_json::json!({})
        )));
    }
}
