//! Allow, block and hold rules: the operator adds and removes them (for one identity or the
//! whole instance), an identity reads the rules in effect for it (so that an agent can learn
//! why it was refused), and the send path applies them ([`Loft::check_rules`]).
//!
//! What a set of rules says about one address is decided by [`crate::rules::evaluate`]; this
//! file only gathers the rules, asks it, and turns its answer into a refusal or hold reasons.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Actor, Loft, Page, Principal, cursor, page, page_limit};
use crate::address::EmailAddress;
use crate::audit::Outcome;
use crate::identity::Identity;
use crate::ids::IdentityId;
use crate::oversight::{HoldKind, HoldReason};
use crate::rules::{
    self, MAX_RULES_PER_LEVEL, Rule, RuleAction, RuleDirection, RuleId, RulePattern, Verdict, evaluate,
};
use crate::store::{RuleQuery, RuleScope};
use crate::{Error, Result};

/// `GET /v0/rules`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListRulesParams {
    /// Only the rules in effect for this identity: its own and the instance's (operator). An
    /// identity key always gets the rules in effect for itself, and may name only itself here.
    pub identity: Option<String>,
    /// Only the instance rules (those for every identity).
    #[serde(skip_serializing_if = "crate::wire::is_not_true")]
    pub instance: Option<bool>,
    /// 1 to 200, default 50.
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `POST /v0/rules` (operator): a rule for one identity (`identity`) or for every identity on
/// the server (`instance: true`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRuleRequest {
    /// The identity the rule is for (`idt_...`). Give this or `instance: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// `true`: the rule is for every identity on this server. Give this or `identity`.
    #[serde(default, skip_serializing_if = "crate::wire::is_not_true")]
    pub instance: Option<bool>,
    /// `send` (every outgoing mail, replies included), `reply` (replies only, on top of the
    /// send rules) or `receive` (mail delivered to the identity; the pattern matches the
    /// sender).
    pub direction: RuleDirection,
    /// `allow`, `block` or `hold` (for `receive`: the recipient's copy waits for a reviewer).
    pub action: RuleAction,
    /// An exact address (`bob@example.com`), every address of one domain (`*@example.com`), or
    /// `*` (everyone).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 320, example = "*@example.com")
    )]
    pub pattern: String,
    /// Why, for the people and agents who read it (at most 500 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 500))]
    pub note: Option<String>,
}

const ASK_OPERATOR: &str = "rules are set by the operator: ask them if this mail must go; `loft rules list` (GET /v0/rules) \
                            shows the rules in effect for this identity";

/// Who the audit log says acted: `operator`, or the identity's id.
fn principal_name(actor: &Actor) -> String {
    match &actor.principal {
        Principal::Operator => "operator".into(),
        Principal::Identity { identity, .. } => identity.id.to_string(),
    }
}

/// Notes that `r` holds mail to `a` (each rule once, with every address it holds).
fn add_hold<'a>(holds: &mut Vec<(&'a Rule, Vec<&'a EmailAddress>)>, r: &'a Rule, a: &'a EmailAddress) {
    match holds.iter_mut().find(|(h, _)| h.id == r.id) {
        Some((_, addresses)) => {
            if !addresses.contains(&a) {
                addresses.push(a);
            }
        }
        None => holds.push((r, vec![a])),
    }
}

fn rule_details(r: &Rule) -> serde_json::Value {
    serde_json::json!({
        "identity": r.identity, "level": r.level(), "direction": r.direction, "action": r.action,
        "pattern": r.pattern, "note": r.note,
    })
}

impl Loft {
    /// The operator lists every rule, the instance rules (`instance`), or the rules in effect
    /// for one identity (`identity`); an identity key lists the rules in effect for itself.
    pub async fn list_rules(&self, actor: &Actor, params: ListRulesParams) -> Result<Page<Rule>> {
        let instance = params.instance.unwrap_or(false);
        let identity = params
            .identity
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(IdentityId::parse)
            .transpose()?;
        if instance && identity.is_some() {
            return Err(
                Error::invalid("invalid_rule_filter", "give `identity` or `instance=true`, not both")
                    .with_hint("the rules in effect for an identity include the instance rules"),
            );
        }
        let scope = match (&actor.principal, identity) {
            _ if instance => RuleScope::Instance,
            (Principal::Operator, None) => RuleScope::All,
            (Principal::Operator, Some(id)) => {
                self.store
                    .get_identity(&id)
                    .await?
                    .ok_or_else(|| Error::not_found("identity"))?;
                RuleScope::InEffectFor(id)
            }
            (Principal::Identity { identity: me, .. }, None) => RuleScope::InEffectFor(me.id.clone()),
            (Principal::Identity { identity: me, .. }, Some(id)) if id == me.id => RuleScope::InEffectFor(id),
            (Principal::Identity { .. }, Some(_)) => {
                return Err(Error::not_found("identity")
                    .with_hint("an identity key lists the rules in effect for itself only: leave out `identity`"));
            }
        };
        let query = RuleQuery {
            scope,
            before_seq: cursor(params.cursor.as_deref())?,
            limit: page_limit(params.limit)?,
        };
        Ok(page(self.store.list_rules(query).await?))
    }

    /// Adds a rule (operator only).
    pub async fn add_rule(&self, actor: &Actor, req: CreateRuleRequest) -> Result<Rule> {
        Self::require_operator(actor, "adding a rule").map_err(|e| {
            e.with_hint(
                "rules are set by the operator; an identity lists the rules in effect for it with GET /v0/rules",
            )
        })?;
        let named = req.identity.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let identity = match (named, req.instance.unwrap_or(false)) {
            (Some(_), true) => {
                return Err(
                    Error::invalid("invalid_rule_scope", "give `identity` or `instance: true`, not both")
                        .with_hint("an instance rule applies to every identity; an identity rule to that one only"),
                );
            }
            (None, false) => {
                return Err(Error::invalid(
                    "invalid_rule_scope",
                    "say whom the rule is for: `identity` (an identity id) or `instance: true` (every identity on this server)",
                )
                .with_hint("`loft rules add --identity ID ...` or `loft rules add --instance ...`"));
            }
            (None, true) => None,
            (Some(id), false) => {
                let id = IdentityId::parse(id)?;
                let target = self
                    .store
                    .get_identity(&id)
                    .await?
                    .ok_or_else(|| Error::not_found("identity"))?;
                if !target.is_active() {
                    return Err(Error::conflict(
                        "identity_revoked",
                        format!(
                            "identity {id} is revoked: it sends and receives nothing, so a rule for it would never apply"
                        ),
                    ));
                }
                Some(id)
            }
        };
        let pattern = RulePattern::parse(&req.pattern)?;
        let note = rules::parse_note(req.note.as_deref())?;
        let existing = self.store.rules_in_effect(identity.as_slice()).await?;
        let at_level = existing.iter().filter(|r| r.identity == identity).count();
        if at_level >= MAX_RULES_PER_LEVEL {
            let whose = identity
                .as_ref()
                .map_or_else(|| "the instance".to_owned(), |id| format!("identity {id}"));
            return Err(Error::conflict(
                "too_many_rules",
                format!("{whose} has {at_level} rules, the most it may have ({MAX_RULES_PER_LEVEL})"),
            )
            .with_hint("remove rules no longer needed (`loft rules remove RULE_ID`); one `*@domain` rule covers a whole domain"));
        }
        let now = self.clock.now();
        let rule = Rule {
            id: RuleId::generate(self.random.as_ref()),
            identity,
            direction: req.direction,
            action: req.action,
            pattern,
            note,
            created_at: now,
            created_by: principal_name(actor),
        };
        let audit = actor.audit(now, "rule.add", Some(rule.id.to_string()), rule_details(&rule));
        self.store.add_rule(rule.clone(), audit).await?;
        Ok(rule)
    }

    /// Removes a rule (operator only); returns it as it was.
    pub async fn remove_rule(&self, actor: &Actor, id: &str) -> Result<Rule> {
        Self::require_operator(actor, "removing a rule")?;
        let id = RuleId::parse(id)?;
        let rule = self
            .store
            .get_rule(&id)
            .await?
            .ok_or_else(|| Error::not_found("rule").with_hint("`loft rules list` shows the rules and their ids"))?;
        let audit = actor.audit(
            self.clock.now(),
            "rule.remove",
            Some(id.to_string()),
            rule_details(&rule),
        );
        self.store.remove_rule(&id, audit).await
    }

    /// What the rules say about a mail from `me` to `all` (`local`: the recipients that are
    /// identities on this server; `reply`: the `reply` rules bind it too): `403` when a `send`
    /// (or `reply`) rule of the sender blocks a recipient or leaves it off an allow list, or
    /// when a local recipient's `receive` rules refuse the sender; else the hold reasons of the
    /// `hold` rules that match (empty: the rules hold nothing), with the rules it loaded (those
    /// in effect for `me` and every local recipient), so that a send can hand them to
    /// [`Self::hold_incoming`] instead of reading them again. A refusal is audited as `actor`
    /// doing `action` with outcome `denied` (a reviewer editing held mail is the actor of
    /// `approval.edit`); nothing else is written. One store query.
    pub(super) async fn check_rules(
        &self,
        actor: &Actor,
        me: &Identity,
        all: &[EmailAddress],
        local: &HashMap<EmailAddress, IdentityId>,
        reply: bool,
        action: &str,
    ) -> Result<(Vec<HoldReason>, Vec<Rule>)> {
        let mut identities = vec![me.id.clone()];
        identities.extend(local.values().cloned());
        identities.sort();
        identities.dedup();
        let rules = self.store.rules_in_effect(&identities).await?;
        if rules.is_empty() {
            return Ok((Vec::new(), rules));
        }
        let directions: &[RuleDirection] = if reply {
            &[RuleDirection::Send, RuleDirection::Reply]
        } else {
            &[RuleDirection::Send]
        };
        // Each holding rule once, with the addresses it holds.
        let mut holds: Vec<(&Rule, Vec<&EmailAddress>)> = Vec::new();
        for to in all {
            for &d in directions {
                match evaluate(&rules, &me.id, d, to) {
                    Verdict::Allowed(_) => {}
                    Verdict::Held(r) => add_hold(&mut holds, r, to),
                    Verdict::Blocked(r) => {
                        let e = Error::policy_denied(
                            "recipient_blocked",
                            format!("mail to {to} is refused: {} blocks it", r.describe()),
                        )
                        .with_hint(ASK_OPERATOR);
                        return Err(self.refused(actor, action, e, to, Some(r)).await);
                    }
                    Verdict::NotAllowed(r) => {
                        let e = Error::policy_denied(
                            "recipient_not_allowed",
                            format!(
                                "{to} is not on the {d} allow list of {}: no rule allows it, and {} makes an allow list",
                                me.address,
                                r.describe()
                            ),
                        )
                        .with_hint(format!(
                            "only the addresses the {d} allow rules name may be mailed; {ASK_OPERATOR}"
                        ));
                        return Err(self.refused(actor, action, e, to, Some(r)).await);
                    }
                }
            }
        }
        for (to, recipient) in all.iter().filter_map(|a| local.get(a).map(|id| (a, id))) {
            match evaluate(&rules, recipient, RuleDirection::Receive, &me.address) {
                // A hold holds the recipient's copy for a reviewer (service/inbound_holds.rs),
                // not the send itself.
                Verdict::Allowed(_) | Verdict::Held(_) => {}
                Verdict::Blocked(_) | Verdict::NotAllowed(_) => {
                    let e = Error::policy_denied(
                        "recipient_refuses_sender",
                        format!(
                            "{to} does not accept mail from {}: its receive rules refuse it",
                            me.address
                        ),
                    )
                    .with_hint(
                        "the recipient's rules are set by the operator: ask them if this mail must go \
                         (`loft rules list --identity ID` shows the rules in effect for an identity)",
                    );
                    return Err(self.refused(actor, action, e, to, None).await);
                }
            }
        }
        let holds = holds
            .into_iter()
            .map(|(r, addresses)| HoldReason {
                kind: HoldKind::Rule,
                detail: format!(
                    "{} holds mail to {}: a reviewer must approve it",
                    r.describe(),
                    addresses.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
                ),
                credential: None,
                encoding: None,
                rule: Some(r.reference()),
                addresses: vec![],
            })
            .collect();
        Ok((holds, rules))
    }

    /// Records a send refused by a rule (outcome `denied`) and returns the refusal.
    async fn refused(&self, actor: &Actor, action: &str, e: Error, to: &EmailAddress, rule: Option<&Rule>) -> Error {
        let mut entry = actor.audit(
            self.clock.now(),
            action,
            None,
            serde_json::json!({
                "code": e.code(), "recipient": to,
                "rule": rule.map(|r| &r.id), "pattern": rule.map(|r| &r.pattern),
            }),
        );
        entry.outcome = Outcome::Denied;
        match self.store.append_audit(entry).await {
            Ok(()) => e,
            Err(audit_failed) => audit_failed,
        }
    }
}
