//! Allow, block and hold rules: whom an identity may mail, reply to and hear from, set by the
//! operator for one identity or for the whole instance.
//!
//! A [`Rule`] says, for one direction (`send`, `receive`, `reply`), what happens to mail whose
//! other party matches its [`RulePattern`] (an exact address, `*@domain`, or `*`): `allow`,
//! `block` or `hold` (for a reviewer). [`evaluate`] is the one place that decides what a set of
//! rules says about one address; it is pure, so the send path, tests and any later door
//! (inbound SMTP) agree on it. The use cases that apply it are in `service/rules.rs`.
//!
//! This module must not read the store or the clock.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::address::{EmailAddress, validate_domain};
use crate::ids::IdentityId;
pub use crate::ids::RuleId;
use crate::time::Timestamp;
use crate::{Error, Result};

/// The longest note a rule keeps.
pub const MAX_NOTE: usize = 500;

/// How many rules one identity may have, and how many the instance may have. Every send reads
/// the rules in effect for its sender and local recipients, so they stay bounded.
pub const MAX_RULES_PER_LEVEL: usize = 1000;

/// Which mail a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RuleDirection {
    /// Every outgoing mail (replies included); the pattern matches each recipient.
    Send,
    /// Mail delivered to the identity; the pattern matches the sender.
    Receive,
    /// Replies only, on top of the `send` rules; the pattern matches each recipient.
    Reply,
}

impl RuleDirection {
    pub const ALL: [RuleDirection; 3] = [RuleDirection::Send, RuleDirection::Receive, RuleDirection::Reply];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleDirection::Send => "send",
            RuleDirection::Receive => "receive",
            RuleDirection::Reply => "reply",
        }
    }

    /// A direction as stored in rule `id`; an unknown one is an error naming it.
    pub fn parse_stored(s: &str, id: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| stored_error(id, "direction", s))
    }
}

impl fmt::Display for RuleDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule does to mail that matches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Let it through. Any `allow` rule of a direction makes an allow list: an address no rule
    /// matches is then refused.
    Allow,
    /// Hold it for a reviewer's approval, in any oversight mode.
    Hold,
    /// Refuse it.
    Block,
}

impl RuleAction {
    pub const ALL: [RuleAction; 3] = [RuleAction::Allow, RuleAction::Hold, RuleAction::Block];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleAction::Allow => "allow",
            RuleAction::Hold => "hold",
            RuleAction::Block => "block",
        }
    }

    pub fn parse_stored(s: &str, id: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| stored_error(id, "action", s))
    }

    /// Which wins between two rules of equal specificity: block, then hold, then allow.
    fn strength(self) -> u8 {
        match self {
            RuleAction::Allow => 0,
            RuleAction::Hold => 1,
            RuleAction::Block => 2,
        }
    }
}

impl fmt::Display for RuleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whom a rule is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RuleLevel {
    /// One identity.
    Identity,
    /// Every identity on this server.
    Instance,
}

impl RuleLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleLevel::Identity => "identity",
            RuleLevel::Instance => "instance",
        }
    }
}

impl fmt::Display for RuleLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The other party a rule matches: one address, every address of one domain, or everyone.
/// Written `bob@example.com`, `*@example.com` or `*`; addresses and domains are lowercased as
/// [`EmailAddress`] does, and a domain pattern matches that domain only (not its subdomains).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RulePattern {
    Address(EmailAddress),
    /// A lowercased domain.
    Domain(String),
    Everyone,
}

const PATTERN_HINT: &str = "a pattern is an exact address (`bob@example.com`), every address of one domain (`*@example.com`), or `*` (everyone)";

impl RulePattern {
    /// Parses a pattern as a client wrote it; anything else is `422 invalid_rule_pattern`.
    pub fn parse(input: &str) -> Result<Self> {
        let s = input.trim();
        let shown: String = s.chars().take(80).collect();
        let bad = |why: String| Err(Error::invalid("invalid_rule_pattern", why).with_hint(PATTERN_HINT));
        if s.is_empty() {
            return bad("the pattern is empty".into());
        }
        if s == "*" {
            return Ok(Self::Everyone);
        }
        if let Some(domain) = s.strip_prefix("*@") {
            let domain = domain.to_ascii_lowercase();
            if domain.contains('*') {
                return bad(format!(
                    "`{shown}`: a domain pattern names one domain exactly; subdomain wildcards are not supported (add one rule per domain)"
                ));
            }
            if let Err(e) = validate_domain(&domain) {
                return bad(format!("`{shown}`: {}", e.public_message()));
            }
            return Ok(Self::Domain(domain));
        }
        if s.contains('*') {
            return bad(format!(
                "`{shown}`: `*` may stand only alone (`*`, everyone) or before the `@` of a domain (`*@example.com`)"
            ));
        }
        if let Some(domain) = s.strip_prefix('@') {
            return bad(format!(
                "`{shown}` has no mailbox name; for every address of a domain write `*@{}`",
                domain.chars().take(80).collect::<String>()
            ));
        }
        if !s.contains('@') {
            return bad(format!(
                "`{shown}` has no '@'; for every address of the domain write `*@{shown}`"
            ));
        }
        EmailAddress::parse(s)
            .map(Self::Address)
            .or_else(|e| bad(e.public_message()))
    }

    /// A pattern read back from our own database.
    pub fn parse_stored(s: &str, id: &str) -> Result<Self> {
        Self::parse(s).map_err(|_| stored_error(id, "pattern", s))
    }

    /// Whether `address` is one this pattern names.
    pub fn matches(&self, address: &EmailAddress) -> bool {
        match self {
            Self::Address(a) => a == address,
            Self::Domain(d) => address.domain() == d,
            Self::Everyone => true,
        }
    }

    /// 2 for an address, 1 for a domain, 0 for everyone.
    fn narrowness(&self) -> u8 {
        match self {
            Self::Address(_) => 2,
            Self::Domain(_) => 1,
            Self::Everyone => 0,
        }
    }
}

impl fmt::Display for RulePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(a) => write!(f, "{a}"),
            Self::Domain(d) => write!(f, "*@{d}"),
            Self::Everyone => f.write_str("*"),
        }
    }
}

impl Serialize for RulePattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RulePattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(e.public_message()))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for RulePattern {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "An exact address (`bob@example.com`), every address of one domain (`*@example.com`), or `*` (everyone).",
            ))
            .examples([serde_json::json!("*@example.com")])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for RulePattern {}

/// One allow, block or hold rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rule {
    pub id: RuleId,
    /// The identity the rule is for; absent: every identity on this server (an instance rule).
    pub identity: Option<IdentityId>,
    pub direction: RuleDirection,
    pub action: RuleAction,
    pub pattern: RulePattern,
    /// Why, for the people and agents reading it.
    pub note: Option<String>,
    pub created_at: Timestamp,
    /// Who added it, as the audit log names the actor: `operator`, or an identity id.
    pub created_by: String,
}

impl Rule {
    pub fn level(&self) -> RuleLevel {
        if self.identity.is_some() {
            RuleLevel::Identity
        } else {
            RuleLevel::Instance
        }
    }

    /// From 5 (an identity's rule for one address) down to 0 (an instance rule for everyone):
    /// identity rules are narrower than instance rules, and addresses than domains than `*`.
    pub fn specificity(&self) -> u8 {
        let level = if self.identity.is_some() { 3 } else { 0 };
        level + self.pattern.narrowness()
    }

    /// `identity rule rul_... (block *@example.com for send)`: what an error or a hold reason
    /// says about it.
    pub fn describe(&self) -> String {
        format!(
            "{} rule {} ({} {} for {})",
            self.level(),
            self.id,
            self.action,
            self.pattern,
            self.direction
        )
    }

    /// What a hold reason records of the rule.
    pub fn reference(&self) -> RuleRef {
        RuleRef {
            id: self.id.clone(),
            level: self.level(),
            direction: self.direction,
            action: self.action,
            pattern: self.pattern.clone(),
        }
    }
}

/// The rule behind a hold or a refusal, as a hold reason names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleRef {
    pub id: RuleId,
    pub level: RuleLevel,
    pub direction: RuleDirection,
    pub action: RuleAction,
    pub pattern: RulePattern,
}

/// What the rules say about one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// It may go: the most specific matching rule allows it, or no rule matches and no allow
    /// list is in effect (`None`).
    Allowed(Option<&'a Rule>),
    /// The most specific matching rule holds it for a reviewer.
    Held(&'a Rule),
    /// The most specific matching rule blocks it.
    Blocked(&'a Rule),
    /// No rule matches, and an allow list is in effect: the most specific `allow` rule of it.
    NotAllowed(&'a Rule),
}

impl Verdict<'_> {
    /// Whether the mail may go now or after a hold (neither blocked nor off the allow list).
    pub fn permits(&self) -> bool {
        matches!(self, Verdict::Allowed(_) | Verdict::Held(_))
    }
}

/// What `rules` say about mail in `direction` whose other party is `address`, for `identity`
/// (rules of other identities are ignored, so the rules in effect for several identities can
/// be passed at once).
///
/// The most specific matching rule wins (identity + address, identity + `*@domain`, identity +
/// `*`, then the same for instance rules); between rules of equal specificity, block wins over
/// hold over allow. If no rule matches and any `allow` rule of this direction is in effect for
/// the identity (its own or the instance's), the address is not on the allow list.
pub fn evaluate<'a>(
    rules: &'a [Rule],
    identity: &IdentityId,
    direction: RuleDirection,
    address: &EmailAddress,
) -> Verdict<'a> {
    let in_effect = rules
        .iter()
        .filter(|r| r.direction == direction && r.identity.as_ref().is_none_or(|i| i == identity));
    let mut best: Option<&Rule> = None;
    let mut allow_list: Option<&Rule> = None;
    for r in in_effect {
        if r.action == RuleAction::Allow && allow_list.is_none_or(|a| outranks(r, a)) {
            allow_list = Some(r);
        }
        if r.pattern.matches(address) && best.is_none_or(|b| outranks(r, b)) {
            best = Some(r);
        }
    }
    match (best, allow_list) {
        (Some(r), _) => match r.action {
            RuleAction::Allow => Verdict::Allowed(Some(r)),
            RuleAction::Hold => Verdict::Held(r),
            RuleAction::Block => Verdict::Blocked(r),
        },
        (None, Some(a)) => Verdict::NotAllowed(a),
        (None, None) => Verdict::Allowed(None),
    }
}

/// Whether `a` wins over `b`: more specific, else stronger, else (the same rule written twice,
/// which the stores refuse) the smaller id, so that the answer never depends on row order.
fn outranks(a: &Rule, b: &Rule) -> bool {
    (a.specificity(), a.action.strength(), std::cmp::Reverse(&a.id))
        > (b.specificity(), b.action.strength(), std::cmp::Reverse(&b.id))
}

/// A note as a client sent it: trimmed, empty is none, at most [`MAX_NOTE`] characters, no NUL.
pub fn parse_note(note: Option<&str>) -> Result<Option<String>> {
    let Some(n) = note.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if n.chars().count() > MAX_NOTE {
        return Err(Error::invalid(
            "invalid_note",
            format!("a rule's note is at most {MAX_NOTE} characters"),
        ));
    }
    crate::text::refuse_nul("note", n)?;
    Ok(Some(n.to_owned()))
}

/// What a store answers when the rule being added exists already (same identity or instance,
/// direction, action and pattern): `409 rule_exists`, naming it.
pub fn rule_exists(existing: &str) -> Error {
    Error::conflict("rule_exists", format!("the same rule exists already: {existing}"))
        .with_hint("`loft rules list` shows it; to change its note, remove it and add it again")
}

fn stored_error(id: &str, what: &str, value: &str) -> Error {
    Error::internal(format!(
        "rule {id} has the unknown {what} `{value}` (written by a newer version?)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn idt(n: u8) -> IdentityId {
        IdentityId::parse(&format!("idt_{}", "a".repeat(usize::from(n) + 1))).unwrap()
    }

    fn rule(n: usize, identity: Option<IdentityId>, direction: RuleDirection, action: RuleAction, p: &str) -> Rule {
        Rule {
            id: RuleId::parse(&format!("rul_{}", "b".repeat(n + 1))).unwrap(),
            identity,
            direction,
            action,
            pattern: RulePattern::parse(p).unwrap(),
            note: None,
            created_at: Timestamp::from_micros(0),
            created_by: "operator".into(),
        }
    }

    use RuleAction::{Allow, Block, Hold};
    use RuleDirection::{Receive, Reply, Send};

    #[test]
    fn patterns_parse_normalise_and_print() {
        for (input, shown) in [
            ("  Bob@Example.COM ", "bob@example.com"),
            ("*@Example.com", "*@example.com"),
            ("*", "*"),
            (" * ", "*"),
            ("*@sub.example.co.uk", "*@sub.example.co.uk"),
        ] {
            let p = RulePattern::parse(input).unwrap();
            assert_eq!(p.to_string(), shown);
            assert_eq!(RulePattern::parse(shown).unwrap(), p, "round trip");
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<RulePattern>(&json).unwrap(), p);
        }
    }

    #[test]
    fn bad_patterns_are_refused_precisely() {
        for (input, says) in [
            ("", "empty"),
            ("   ", "empty"),
            ("*@*.example.com", "subdomain wildcards"),
            ("*@*", "subdomain wildcards"),
            ("bob*@example.com", "may stand only alone"),
            ("**", "may stand only alone"),
            ("*.example.com", "may stand only alone"),
            ("@example.com", "write `*@example.com`"),
            ("example.com", "write `*@example.com`"),
            ("*@", "not a valid mail domain"),
            ("*@exa mple.com", "not a valid mail domain"),
            ("bob@", "not a valid mail domain"),
            ("a b@example.com", "not a valid mailbox name"),
            ("bob@example.com\r\nBcc: x@y.z", "not a valid mailbox name"),
        ] {
            let e = RulePattern::parse(input).unwrap_err();
            assert_eq!(e.code(), "invalid_rule_pattern", "{input:?}");
            assert!(e.to_string().contains(says), "{input:?}: {e}");
            assert!(e.hint().unwrap().contains("*@example.com"), "{input:?}");
        }
    }

    #[test]
    fn patterns_match_exactly_what_they_name() {
        let bob = addr("bob@example.com");
        assert!(RulePattern::parse("bob@example.com").unwrap().matches(&bob));
        assert!(!RulePattern::parse("alice@example.com").unwrap().matches(&bob));
        assert!(RulePattern::parse("*@example.com").unwrap().matches(&bob));
        assert!(!RulePattern::parse("*@example.org").unwrap().matches(&bob));
        // A domain pattern is that domain only: no subdomains, no parent domain.
        assert!(
            !RulePattern::parse("*@example.com")
                .unwrap()
                .matches(&addr("bob@mail.example.com"))
        );
        assert!(!RulePattern::parse("*@mail.example.com").unwrap().matches(&bob));
        assert!(!RulePattern::parse("*@ample.com").unwrap().matches(&bob));
        assert!(RulePattern::parse("*").unwrap().matches(&bob));
    }

    #[test]
    fn no_rules_allow_everything() {
        assert_eq!(evaluate(&[], &idt(1), Send, &addr("x@y.z")), Verdict::Allowed(None));
    }

    #[test]
    fn specificity_orders_all_six_levels() {
        let me = idt(1);
        let patterns = ["bob@example.com", "*@example.com", "*"];
        let mut ranks = Vec::new();
        for identity in [Some(me.clone()), None] {
            for p in patterns {
                ranks.push(rule(ranks.len(), identity.clone(), Send, Block, p).specificity());
            }
        }
        assert_eq!(ranks, vec![5, 4, 3, 2, 1, 0]);
    }

    #[test]
    fn the_narrowest_rule_wins_at_every_pair_of_levels() {
        // For every pair of levels, a narrower rule with one action beats a broader one with
        // the other action, whichever the actions are.
        let me = idt(1);
        let bob = addr("bob@example.com");
        let levels: Vec<(Option<IdentityId>, &str)> = vec![
            (Some(me.clone()), "bob@example.com"),
            (Some(me.clone()), "*@example.com"),
            (Some(me.clone()), "*"),
            (None, "bob@example.com"),
            (None, "*@example.com"),
            (None, "*"),
        ];
        for (i, (narrow_id, narrow_p)) in levels.iter().enumerate() {
            for (broad_id, broad_p) in &levels[i + 1..] {
                for (narrow_a, broad_a) in [
                    (Allow, Block),
                    (Block, Allow),
                    (Hold, Allow),
                    (Allow, Hold),
                    (Hold, Block),
                ] {
                    let rules = vec![
                        rule(1, broad_id.clone(), Send, broad_a, broad_p),
                        rule(2, narrow_id.clone(), Send, narrow_a, narrow_p),
                    ];
                    let v = evaluate(&rules, &me, Send, &bob);
                    let winner = match v {
                        Verdict::Allowed(Some(r)) | Verdict::Held(r) | Verdict::Blocked(r) => r,
                        other => panic!("{other:?}"),
                    };
                    assert_eq!(
                        winner.id, rules[1].id,
                        "{narrow_p} ({narrow_a}) vs {broad_p} ({broad_a})"
                    );
                }
            }
        }
    }

    #[test]
    fn instance_block_of_a_domain_and_identity_allow_of_one_address() {
        let me = idt(1);
        let rules = vec![
            rule(1, None, Send, Block, "*@example.com"),
            rule(2, Some(me.clone()), Send, Allow, "bob@example.com"),
        ];
        assert!(matches!(
            evaluate(&rules, &me, Send, &addr("bob@example.com")),
            Verdict::Allowed(Some(r)) if r.id == rules[1].id
        ));
        assert!(matches!(
            evaluate(&rules, &me, Send, &addr("carol@example.com")),
            Verdict::Blocked(r) if r.id == rules[0].id
        ));
        // The allow rule makes an allow list for this identity: other domains are refused.
        assert!(matches!(
            evaluate(&rules, &me, Send, &addr("dan@example.org")),
            Verdict::NotAllowed(r) if r.id == rules[1].id
        ));
        // Another identity has no allow list: only the instance block applies to it.
        let other = idt(2);
        assert_eq!(
            evaluate(&rules, &other, Send, &addr("dan@example.org")),
            Verdict::Allowed(None)
        );
        assert!(matches!(
            evaluate(&rules, &other, Send, &addr("bob@example.com")),
            Verdict::Blocked(_)
        ));
    }

    #[test]
    fn at_equal_specificity_block_beats_hold_beats_allow() {
        let me = idt(1);
        let bob = addr("bob@example.com");
        let all = [
            rule(1, Some(me.clone()), Send, Allow, "*@example.com"),
            rule(2, Some(me.clone()), Send, Hold, "*@example.com"),
            rule(3, Some(me.clone()), Send, Block, "*@example.com"),
        ];
        assert!(matches!(evaluate(&all, &me, Send, &bob), Verdict::Blocked(_)));
        assert!(matches!(evaluate(&all[..2], &me, Send, &bob), Verdict::Held(_)));
        assert!(matches!(
            evaluate(&all[..1], &me, Send, &bob),
            Verdict::Allowed(Some(_))
        ));
        // Order does not matter.
        let mut reversed = all.to_vec();
        reversed.reverse();
        assert!(matches!(evaluate(&reversed, &me, Send, &bob), Verdict::Blocked(_)));
    }

    #[test]
    fn directions_are_separate() {
        let me = idt(1);
        let bob = addr("bob@example.com");
        let rules = vec![
            rule(1, Some(me.clone()), Reply, Block, "*"),
            rule(2, Some(me.clone()), Receive, Allow, "alice@example.com"),
        ];
        assert_eq!(evaluate(&rules, &me, Send, &bob), Verdict::Allowed(None));
        assert!(matches!(evaluate(&rules, &me, Reply, &bob), Verdict::Blocked(_)));
        assert!(matches!(evaluate(&rules, &me, Receive, &bob), Verdict::NotAllowed(_)));
        assert!(matches!(
            evaluate(&rules, &me, Receive, &addr("alice@example.com")),
            Verdict::Allowed(Some(_))
        ));
    }

    #[test]
    fn an_instance_allow_list_binds_every_identity_and_names_the_narrowest_allow_rule() {
        let me = idt(1);
        let rules = vec![
            rule(1, None, Send, Allow, "*@partner.example"),
            rule(2, Some(me.clone()), Send, Allow, "bob@example.com"),
        ];
        assert!(matches!(
            evaluate(&rules, &me, Send, &addr("x@y.example")),
            Verdict::NotAllowed(r) if r.id == rules[1].id
        ));
        assert!(matches!(
            evaluate(&rules, &idt(2), Send, &addr("x@y.example")),
            Verdict::NotAllowed(r) if r.id == rules[0].id
        ));
        assert!(evaluate(&rules, &idt(2), Send, &addr("a@partner.example")).permits());
    }

    #[test]
    fn describe_names_level_id_action_pattern_and_direction() {
        let r = rule(1, None, Reply, Hold, "*@Example.com");
        assert_eq!(
            r.describe(),
            format!("instance rule {} (hold *@example.com for reply)", r.id)
        );
        assert_eq!(r.level(), RuleLevel::Instance);
    }

    #[test]
    fn notes_are_bounded() {
        assert_eq!(parse_note(None).unwrap(), None);
        assert_eq!(parse_note(Some("  ")).unwrap(), None);
        assert_eq!(parse_note(Some(" why ")).unwrap().as_deref(), Some("why"));
        assert_eq!(
            parse_note(Some(&"n".repeat(MAX_NOTE + 1))).unwrap_err().code(),
            "invalid_note"
        );
        assert_eq!(parse_note(Some("a\0b")).unwrap_err().code(), "invalid_text");
    }

    // ----- the property: `evaluate` agrees with a brute-force reading of the rules ---------

    const DOMAINS: [&str; 3] = ["example.com", "example.org", "mail.example.com"];
    const LOCALS: [&str; 3] = ["bob", "carol", "dan"];

    fn arb_pattern() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_owned()),
            (0..DOMAINS.len()).prop_map(|d| format!("*@{}", DOMAINS[d])),
            (0..LOCALS.len(), 0..DOMAINS.len()).prop_map(|(l, d)| format!("{}@{}", LOCALS[l], DOMAINS[d])),
        ]
    }

    fn arb_rules() -> impl Strategy<Value = Vec<Rule>> {
        let one = (
            prop::option::of(0u8..2),
            prop::sample::select(RuleDirection::ALL.to_vec()),
            prop::sample::select(RuleAction::ALL.to_vec()),
            arb_pattern(),
        );
        prop::collection::vec(one, 0..10).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (who, d, a, p))| rule(i, who.map(idt), d, a, &p))
                .collect()
        })
    }

    /// The rules as a table: for each of the six specificity levels from the narrowest, the
    /// strongest matching action decides; else an allow rule in effect refuses.
    fn brute_force(rules: &[Rule], me: &IdentityId, d: RuleDirection, to: &EmailAddress) -> (&'static str, bool) {
        let mine = |r: &&Rule| r.direction == d && r.identity.as_ref().is_none_or(|i| i == me);
        for level in (0..6u8).rev() {
            let matching: Vec<&Rule> = rules
                .iter()
                .filter(mine)
                .filter(|r| r.specificity() == level && r.pattern.matches(to))
                .collect();
            for (action, verdict) in [(Block, "blocked"), (Hold, "held"), (Allow, "allowed")] {
                if matching.iter().any(|r| r.action == action) {
                    return (verdict, true);
                }
            }
        }
        let allow_list = rules.iter().filter(mine).any(|r| r.action == Allow);
        (if allow_list { "not_allowed" } else { "allowed" }, false)
    }

    proptest! {
        #[test]
        fn evaluate_agrees_with_the_rule_table(
            rules in arb_rules(),
            me in 0u8..2,
            d in prop::sample::select(RuleDirection::ALL.to_vec()),
            l in 0..LOCALS.len(),
            dom in 0..DOMAINS.len(),
        ) {
            let me = idt(me);
            let to = addr(&format!("{}@{}", LOCALS[l], DOMAINS[dom]));
            let v = evaluate(&rules, &me, d, &to);
            let (want, matched) = brute_force(&rules, &me, d, &to);
            let (got, rule) = match v {
                Verdict::Allowed(r) => ("allowed", r),
                Verdict::Held(r) => ("held", Some(r)),
                Verdict::Blocked(r) => ("blocked", Some(r)),
                Verdict::NotAllowed(r) => ("not_allowed", Some(r)),
            };
            prop_assert_eq!(got, want);
            if let Some(r) = rule {
                // The rule named is one in effect for this identity and direction, and it
                // matches the address exactly when a rule decided.
                prop_assert_eq!(r.direction, d);
                prop_assert!(r.identity.as_ref().is_none_or(|i| i == &me));
                prop_assert_eq!(r.pattern.matches(&to), matched);
            } else {
                prop_assert!(!matched);
            }
            // Order never matters.
            let mut shuffled = rules.clone();
            shuffled.reverse();
            prop_assert_eq!(evaluate(&shuffled, &me, d, &to), v);
        }

        #[test]
        fn pattern_parse_never_panics_and_round_trips(s in ".{0,40}") {
            if let Ok(p) = RulePattern::parse(&s) {
                prop_assert_eq!(RulePattern::parse(&p.to_string()).unwrap(), p);
            }
        }
    }
}
