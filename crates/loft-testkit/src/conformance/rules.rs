//! Allow, block and hold rules: the store's contract (add, the `rule_exists` refusal, remove,
//! lists by scope, the rules in effect for several identities at once), who may manage and
//! read them, and what they do to a send: a block refuses naming the rule, an allow list
//! refuses everyone else, the narrowest rule wins, reply rules bind replies only, a
//! recipient's receive rules refuse a sender, and a hold holds even in autonomous mode.

use std::sync::Arc;

use loft_core::Error;
use loft_core::audit::Outcome;
use loft_core::identity::CreatedIdentity;
use loft_core::ids::IdentityId;
use loft_core::mail::{DeliveryStatus, MessageStatus, ReplyMail};
use loft_core::oversight::{ApprovalStatus, HoldKind, OversightMode};
use loft_core::random::OsRandom;
use loft_core::rules::{Rule, RuleAction, RuleDirection, RuleId, RuleLevel};
use loft_core::service::{Actor, CreateIdentityRequest, CreateRuleRequest, ListRulesParams};
use loft_core::store::{RuleQuery, RuleScope, Store};

use crate::conformance::mail::folder;
use crate::conformance::operator_entry;
use crate::{TestLoft, expect_err, mail, test_loft};

fn req(
    identity: Option<&IdentityId>,
    direction: RuleDirection,
    action: RuleAction,
    pattern: &str,
) -> CreateRuleRequest {
    CreateRuleRequest {
        identity: identity.map(ToString::to_string),
        instance: identity.is_none().then_some(true),
        direction,
        action,
        pattern: pattern.into(),
        note: None,
    }
}

async fn add(t: &TestLoft, identity: Option<&IdentityId>, d: RuleDirection, a: RuleAction, pattern: &str) -> Rule {
    let op = t.operator().await;
    t.loft
        .add_rule(&op, req(identity, d, a, pattern))
        .await
        .unwrap_or_else(|e| panic!("adding {a} {pattern} for {d} failed: {e:?}"))
}

async fn agent(t: &TestLoft, name: &str, mode: OversightMode) -> (CreatedIdentity, Actor) {
    t.identity_with(CreateIdentityRequest {
        name: name.into(),
        oversight_mode: Some(mode),
        ..Default::default()
    })
    .await
}

fn addr(c: &CreatedIdentity) -> &str {
    c.identity.address.as_str()
}

async fn listed(t: &TestLoft, who: &Actor, params: ListRulesParams) -> Vec<RuleId> {
    t.loft
        .list_rules(who, params)
        .await
        .unwrap_or_else(|e| panic!("listing rules failed: {e:?}"))
        .items
        .into_iter()
        .map(|r| r.id)
        .collect()
}

async fn sent_count(t: &TestLoft, who: &Actor) -> usize {
    t.all_messages(who, folder("sent")).await.len()
}

async fn inbox_count(t: &TestLoft, who: &Actor) -> usize {
    t.all_messages(who, folder("inbox")).await.len()
}

/// Rows of `action` with outcome `denied`, newest last.
async fn denied(t: &TestLoft, action: &str) -> Vec<serde_json::Value> {
    t.audit_rows()
        .await
        .into_iter()
        .filter(|r| r.entry.action == action && r.entry.outcome == Outcome::Denied)
        .map(|r| r.entry.details)
        .collect()
}

/// The store: rules are added with their audit rows, the same rule twice is `rule_exists`
/// (naming the first, writing nothing), lists filter by scope newest first with cursors,
/// the rules in effect for several identities come in one call, and removal is audited and
/// `NotFound` the second time.
pub async fn rules_store_add_list_remove(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, _) = t.identity("a").await;
    let (b, _) = t.identity("b").await;
    let (c, _) = t.identity("c").await;
    let (a_id, b_id) = (&a.identity.id, &b.identity.id);
    let inst = add(&t, None, RuleDirection::Send, RuleAction::Block, "*@Spam.example").await;
    assert_eq!(inst.pattern.to_string(), "*@spam.example", "patterns are normalised");
    assert_eq!(inst.level(), RuleLevel::Instance);
    assert_eq!(inst.created_by, "operator");
    let ra = add(
        &t,
        Some(a_id),
        RuleDirection::Send,
        RuleAction::Allow,
        "Bob@Example.com",
    )
    .await;
    let rb = add(&t, Some(b_id), RuleDirection::Receive, RuleAction::Block, "*").await;
    // Same pattern, other action or direction: a different rule.
    let ra2 = add(
        &t,
        Some(a_id),
        RuleDirection::Send,
        RuleAction::Block,
        "bob@example.com",
    )
    .await;
    let ra3 = add(
        &t,
        Some(a_id),
        RuleDirection::Reply,
        RuleAction::Allow,
        "bob@example.com",
    )
    .await;
    // The same pattern for the instance is not the identity's rule.
    let inst2 = add(&t, None, RuleDirection::Send, RuleAction::Allow, "bob@example.com").await;

    let audit_before = t.audit_len().await;
    let op = t.operator().await;
    let dup = expect_err(
        t.loft
            .add_rule(
                &op,
                req(Some(a_id), RuleDirection::Send, RuleAction::Allow, " BOB@example.com "),
            )
            .await,
    );
    assert_eq!(dup.code(), "rule_exists", "{dup:?}");
    assert!(
        dup.to_string().contains(ra.id.as_str()),
        "names the existing rule: {dup}"
    );
    let dup = expect_err(
        t.loft
            .add_rule(&op, req(None, RuleDirection::Send, RuleAction::Block, "*@spam.example"))
            .await,
    );
    assert_eq!(dup.code(), "rule_exists", "{dup:?}");
    assert_eq!(t.audit_len().await, audit_before, "a refused add writes nothing");

    // Stored as given, read back alike.
    let got = t.store().get_rule(&ra.id).await.unwrap().unwrap();
    assert_eq!(got, ra);
    assert!(
        t.store()
            .get_rule(&RuleId::generate(&OsRandom))
            .await
            .unwrap()
            .is_none()
    );

    // Scopes, newest first.
    let all = t
        .store()
        .list_rules(RuleQuery {
            scope: RuleScope::All,
            before_seq: None,
            limit: 50,
        })
        .await
        .unwrap();
    let ids: Vec<&RuleId> = all.items.iter().map(|r| &r.id).collect();
    assert_eq!(ids, vec![&inst2.id, &ra3.id, &ra2.id, &rb.id, &ra.id, &inst.id]);
    let only = |scope| RuleQuery {
        scope,
        before_seq: None,
        limit: 50,
    };
    let instance = t.store().list_rules(only(RuleScope::Instance)).await.unwrap();
    assert_eq!(
        instance.items.iter().map(|r| &r.id).collect::<Vec<_>>(),
        vec![&inst2.id, &inst.id]
    );
    let for_a = t
        .store()
        .list_rules(only(RuleScope::InEffectFor(a_id.clone())))
        .await
        .unwrap();
    assert_eq!(
        for_a.items.iter().map(|r| &r.id).collect::<Vec<_>>(),
        vec![&inst2.id, &ra3.id, &ra2.id, &ra.id, &inst.id]
    );
    let for_c = t
        .store()
        .list_rules(only(RuleScope::InEffectFor(c.identity.id.clone())))
        .await
        .unwrap();
    assert_eq!(for_c.items.len(), 2, "c has only the instance rules");

    // Pages of two follow the cursor to the end.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let p = t
            .store()
            .list_rules(RuleQuery {
                scope: RuleScope::All,
                before_seq: before,
                limit: 2,
            })
            .await
            .unwrap();
        assert!(p.items.len() <= 2);
        seen.extend(p.items.into_iter().map(|r| r.id));
        match p.next_before {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.iter().collect::<Vec<_>>(), ids);

    // In effect for several identities at once: theirs and the instance's, nobody else's.
    let mut effect: Vec<RuleId> = t
        .store()
        .rules_in_effect(&[a_id.clone(), b_id.clone()])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    effect.sort();
    let mut want = vec![
        inst.id.clone(),
        ra.id.clone(),
        rb.id.clone(),
        ra2.id.clone(),
        ra3.id.clone(),
        inst2.id.clone(),
    ];
    want.sort();
    assert_eq!(effect, want);
    let only_c = t
        .store()
        .rules_in_effect(std::slice::from_ref(&c.identity.id))
        .await
        .unwrap();
    assert_eq!(only_c.len(), 2);
    let instance_only = t.store().rules_in_effect(&[]).await.unwrap();
    assert!(instance_only.iter().all(|r| r.identity.is_none()) && instance_only.len() == 2);

    // Removal returns the rule, is audited, and a second removal is NotFound.
    let removed = t.loft.remove_rule(&op, ra.id.as_str()).await.unwrap();
    assert_eq!(removed, ra);
    assert!(t.store().get_rule(&ra.id).await.unwrap().is_none());
    let again = expect_err(t.loft.remove_rule(&op, ra.id.as_str()).await);
    assert!(matches!(again, Error::NotFound(_)), "{again:?}");
    let direct = expect_err(
        t.store()
            .remove_rule(&ra.id, operator_entry("rule.remove", t.loft.now()))
            .await,
    );
    assert!(matches!(direct, Error::NotFound(_)), "{direct:?}");
    // Removing it lets it be added again.
    add(
        &t,
        Some(a_id),
        RuleDirection::Send,
        RuleAction::Allow,
        "bob@example.com",
    )
    .await;

    let rows = t.audit_rows().await;
    let adds: Vec<_> = rows.iter().filter(|r| r.entry.action == "rule.add").collect();
    assert_eq!(adds.len(), 7);
    assert_eq!(adds[1].entry.target.as_deref(), Some(ra.id.as_str()));
    assert_eq!(adds[1].entry.details["pattern"], "bob@example.com");
    assert_eq!(adds[1].entry.details["level"], "identity");
    let removes: Vec<_> = rows.iter().filter(|r| r.entry.action == "rule.remove").collect();
    assert_eq!(removes.len(), 1);
    assert_eq!(removes[0].entry.target.as_deref(), Some(ra.id.as_str()));
    t.assert_chain_ok().await;
}

/// Only the operator adds and removes rules; bad input is refused precisely; an identity key
/// lists the rules in effect for itself, never another identity's.
pub async fn rules_management_is_for_the_operator(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("a").await;
    let (b, bb) = t.identity("b").await;
    let op = t.operator().await;
    let a_id = &a.identity.id;

    // An identity key, even with every scope, cannot add or remove rules.
    let e = expect_err(
        t.loft
            .add_rule(&aa, req(Some(a_id), RuleDirection::Send, RuleAction::Allow, "*"))
            .await,
    );
    assert_eq!(e.code(), "operator_only", "{e:?}");
    let rule = add(&t, Some(a_id), RuleDirection::Send, RuleAction::Block, "*@example.com").await;
    let e = expect_err(t.loft.remove_rule(&aa, rule.id.as_str()).await);
    assert_eq!(e.code(), "operator_only", "{e:?}");

    // Precise refusals.
    let cases: Vec<(CreateRuleRequest, &str)> = vec![
        (
            req(Some(a_id), RuleDirection::Send, RuleAction::Block, "*@*.example.com"),
            "invalid_rule_pattern",
        ),
        (
            req(Some(a_id), RuleDirection::Send, RuleAction::Block, "example.com"),
            "invalid_rule_pattern",
        ),
        (
            req(Some(a_id), RuleDirection::Send, RuleAction::Block, ""),
            "invalid_rule_pattern",
        ),
        (
            CreateRuleRequest {
                instance: None,
                ..req(None, RuleDirection::Send, RuleAction::Block, "*")
            },
            "invalid_rule_scope",
        ),
        (
            CreateRuleRequest {
                instance: Some(true),
                ..req(Some(a_id), RuleDirection::Send, RuleAction::Block, "*")
            },
            "invalid_rule_scope",
        ),
        (
            CreateRuleRequest {
                identity: Some("nonsense".into()),
                ..req(Some(a_id), RuleDirection::Send, RuleAction::Block, "*")
            },
            "invalid_id",
        ),
        (
            CreateRuleRequest {
                note: Some("n".repeat(501)),
                ..req(Some(a_id), RuleDirection::Send, RuleAction::Block, "*")
            },
            "invalid_note",
        ),
    ];
    let before = t.audit_len().await;
    for (r, code) in cases {
        let shown = format!("{r:?}");
        let e = expect_err(t.loft.add_rule(&op, r).await);
        assert_eq!(e.code(), code, "{shown}: {e:?}");
        assert!(matches!(e, Error::Invalid(_)), "{shown}: {e:?}");
    }
    let ghost = IdentityId::generate(&OsRandom);
    let e = expect_err(
        t.loft
            .add_rule(&op, req(Some(&ghost), RuleDirection::Send, RuleAction::Block, "*"))
            .await,
    );
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
    assert_eq!(t.audit_len().await, before, "refusals write nothing");
    let (gone, _) = t.identity("gone").await;
    t.loft.revoke_identity(&op, gone.identity.id.as_str()).await.unwrap();
    let e = expect_err(
        t.loft
            .add_rule(
                &op,
                req(Some(&gone.identity.id), RuleDirection::Send, RuleAction::Block, "*"),
            )
            .await,
    );
    assert_eq!(e.code(), "identity_revoked", "{e:?}");

    // A note is kept, trimmed.
    let noted = t
        .loft
        .add_rule(
            &op,
            CreateRuleRequest {
                note: Some("  partners only  ".into()),
                ..req(
                    Some(&b.identity.id),
                    RuleDirection::Send,
                    RuleAction::Allow,
                    "*@partner.example",
                )
            },
        )
        .await
        .unwrap();
    assert_eq!(noted.note.as_deref(), Some("partners only"));
    let inst = add(&t, None, RuleDirection::Receive, RuleAction::Block, "*@spam.example").await;

    // Each identity key sees the rules in effect for itself (its own and the instance's).
    assert_eq!(
        listed(&t, &aa, ListRulesParams::default()).await,
        vec![inst.id.clone(), rule.id.clone()]
    );
    assert_eq!(
        listed(&t, &bb, ListRulesParams::default()).await,
        vec![inst.id.clone(), noted.id.clone()]
    );
    let own = ListRulesParams {
        identity: Some(a_id.to_string()),
        ..Default::default()
    };
    assert_eq!(listed(&t, &aa, own.clone()).await.len(), 2);
    let e = expect_err(
        t.loft
            .list_rules(
                &bb,
                ListRulesParams {
                    identity: Some(a_id.to_string()),
                    ..Default::default()
                },
            )
            .await,
    );
    assert!(matches!(e, Error::NotFound(_)), "b cannot see a's rules: {e:?}");
    let instance_only = ListRulesParams {
        instance: Some(true),
        ..Default::default()
    };
    assert_eq!(listed(&t, &bb, instance_only.clone()).await, vec![inst.id.clone()]);

    // The operator sees everything, or one identity's rules in effect, or the instance's.
    assert_eq!(listed(&t, &op, ListRulesParams::default()).await.len(), 3);
    assert_eq!(listed(&t, &op, own).await, vec![inst.id.clone(), rule.id.clone()]);
    assert_eq!(listed(&t, &op, instance_only).await, vec![inst.id.clone()]);
    let both = ListRulesParams {
        identity: Some(a_id.to_string()),
        instance: Some(true),
        ..Default::default()
    };
    assert_eq!(
        expect_err(t.loft.list_rules(&op, both).await).code(),
        "invalid_rule_filter"
    );
    let e = expect_err(
        t.loft
            .list_rules(
                &op,
                ListRulesParams {
                    identity: Some(IdentityId::generate(&OsRandom).to_string()),
                    ..Default::default()
                },
            )
            .await,
    );
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
}

/// A block refuses the whole send with 403 `recipient_blocked` naming the address, the rule,
/// its pattern and level; nothing is written but a `denied` audit row. The narrowest rule
/// wins: an identity's `allow bob@example.com` beats the instance's `block *@example.com`, and
/// that allow rule makes an allow list that refuses other domains.
pub async fn rules_block_and_allow_lists_refuse_naming_the_rule(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = agent(&t, "a", OversightMode::Autonomous).await;
    let (_, bb) = agent(&t, "b", OversightMode::Autonomous).await;
    let (peer, peer_actor) = agent(&t, "peer", OversightMode::Autonomous).await;
    let block = add(&t, None, RuleDirection::Send, RuleAction::Block, "*@example.com").await;

    // Everyone is refused mail to example.com, with the rule named.
    for who in [&aa, &bb] {
        let e = expect_err(t.loft.send(who, mail(&["carol@example.com"], "hi", "x")).await);
        assert_eq!(e.code(), "recipient_blocked", "{e:?}");
        assert!(matches!(e, Error::PolicyDenied(_)), "403: {e:?}");
        let m = e.to_string();
        for part in ["carol@example.com", block.id.as_str(), "*@example.com", "instance"] {
            assert!(m.contains(part), "`{part}` missing from: {m}");
        }
        assert!(e.hint().unwrap().contains("loft rules list"), "{:?}", e.hint());
    }
    // A blocked address among allowed ones refuses the whole send: nothing is written.
    let e = expect_err(
        t.loft
            .send(&aa, mail(&[addr(&peer), "dave@example.com"], "hi", "x"))
            .await,
    );
    assert_eq!(e.code(), "recipient_blocked");
    assert_eq!(sent_count(&t, &aa).await, 0);
    assert_eq!(inbox_count(&t, &peer_actor).await, 0);
    let rows = denied(&t, "mail.send").await;
    assert_eq!(rows.len(), 3, "each refusal is audited as denied");
    assert_eq!(rows[2]["code"], "recipient_blocked");
    assert_eq!(rows[2]["rule"], block.id.as_str());
    assert_eq!(rows[2]["recipient"], "dave@example.com");

    // The narrowest rule wins: a's allow for bob beats the instance block ...
    let allow = add(
        &t,
        Some(&a.identity.id),
        RuleDirection::Send,
        RuleAction::Allow,
        "bob@example.com",
    )
    .await;
    let ok = t.loft.send(&aa, mail(&["Bob@example.com"], "hi", "x")).await.unwrap();
    assert_eq!(ok.status, MessageStatus::Sent);
    assert_eq!(ok.delivery[0].status, DeliveryStatus::Queued);
    // ... only for bob, only for a.
    assert_eq!(
        expect_err(t.loft.send(&aa, mail(&["carol@example.com"], "hi", "x")).await).code(),
        "recipient_blocked"
    );
    assert_eq!(
        expect_err(t.loft.send(&bb, mail(&["bob@example.com"], "hi", "x")).await).code(),
        "recipient_blocked"
    );
    // And a's allow rule makes an allow list: anyone no rule names is refused, local
    // identities included.
    let e = expect_err(t.loft.send(&aa, mail(&[addr(&peer)], "hi", "x")).await);
    assert_eq!(e.code(), "recipient_not_allowed", "{e:?}");
    assert!(matches!(e, Error::PolicyDenied(_)), "{e:?}");
    let m = e.to_string();
    for part in [
        addr(&peer),
        allow.id.as_str(),
        "bob@example.com",
        "identity",
        "allow list",
    ] {
        assert!(m.contains(part), "`{part}` missing from: {m}");
    }
    assert_eq!(inbox_count(&t, &peer_actor).await, 0);
    // b has no allow list: it still mails its peer.
    t.send(&bb, &[addr(&peer)], "hi", "x").await;
    // Removing the allow rule lifts the allow list.
    let op = t.operator().await;
    t.loft.remove_rule(&op, allow.id.as_str()).await.unwrap();
    t.send(&aa, &[addr(&peer)], "hi", "x").await;
    assert_eq!(inbox_count(&t, &peer_actor).await, 2);
}

/// `reply` rules bind replies only, on top of the `send` rules: both must permit a reply.
pub async fn rules_reply_rules_bind_replies(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = agent(&t, "a", OversightMode::Autonomous).await;
    let (b, bb) = agent(&t, "b", OversightMode::Autonomous).await;
    let no_replies = add(&t, Some(&a.identity.id), RuleDirection::Reply, RuleAction::Block, "*").await;
    t.send(&bb, &[addr(&a)], "question", "?").await;
    let inbox = t.all_messages(&aa, folder("inbox")).await;
    let answer = || ReplyMail {
        idempotency_key: None,
        text: "answer".into(),
        html: None,
        reply_all: false,
        send_at: None,
        attachments: vec![],
    };
    let e = expect_err(t.loft.reply(&aa, inbox[0].id.as_str(), answer()).await);
    assert_eq!(e.code(), "recipient_blocked", "{e:?}");
    assert!(e.to_string().contains(no_replies.id.as_str()), "{e}");
    assert!(e.to_string().contains("for reply"), "{e}");
    assert_eq!(denied(&t, "mail.reply").await.len(), 1);
    // A new mail to the same address is not a reply: it goes.
    t.send(&aa, &[addr(&b)], "new topic", "x").await;
    assert_eq!(inbox_count(&t, &bb).await, 1);

    // Send rules bind replies too: with the reply block gone, a send block still refuses.
    let op = t.operator().await;
    t.loft.remove_rule(&op, no_replies.id.as_str()).await.unwrap();
    let send_block = add(
        &t,
        Some(&a.identity.id),
        RuleDirection::Send,
        RuleAction::Block,
        addr(&b),
    )
    .await;
    let e = expect_err(t.loft.reply(&aa, inbox[0].id.as_str(), answer()).await);
    assert!(e.to_string().contains(send_block.id.as_str()), "{e}");
    t.loft.remove_rule(&op, send_block.id.as_str()).await.unwrap();

    // A reply allow list: replies only to b; a new mail to anyone still goes.
    add(
        &t,
        Some(&a.identity.id),
        RuleDirection::Reply,
        RuleAction::Allow,
        addr(&b),
    )
    .await;
    let r = t.loft.reply(&aa, inbox[0].id.as_str(), answer()).await.unwrap();
    assert_eq!(r.status, MessageStatus::Sent);
    assert_eq!(inbox_count(&t, &bb).await, 2);
}

/// A local recipient's `receive` rules apply to the sender's address: refused, the send is
/// 403 `recipient_refuses_sender` naming the recipient, and nothing is written.
pub async fn rules_receive_rules_refuse_senders(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = agent(&t, "a", OversightMode::Autonomous).await;
    let (b, bb) = agent(&t, "b", OversightMode::Autonomous).await;
    let (c, cc) = agent(&t, "c", OversightMode::Autonomous).await;
    let guard = add(
        &t,
        Some(&b.identity.id),
        RuleDirection::Receive,
        RuleAction::Block,
        addr(&a),
    )
    .await;
    let e = expect_err(t.loft.send(&aa, mail(&[addr(&c), addr(&b)], "hi", "x")).await);
    assert_eq!(e.code(), "recipient_refuses_sender", "{e:?}");
    assert!(matches!(e, Error::PolicyDenied(_)), "{e:?}");
    assert!(e.to_string().contains(addr(&b)), "names the recipient: {e}");
    assert!(
        !e.to_string().contains(guard.id.as_str()),
        "the sender cannot read the recipient's rules; the message does not name them: {e}"
    );
    assert_eq!(sent_count(&t, &aa).await, 0, "nothing written");
    assert_eq!(inbox_count(&t, &bb).await, 0);
    assert_eq!(inbox_count(&t, &cc).await, 0);
    // c may still mail b; the rule is b's, not a's.
    t.send(&cc, &[addr(&b)], "hi", "x").await;
    t.send(&aa, &[addr(&c)], "hi", "x").await;
    // A receive allow list on c: only b may mail it.
    add(
        &t,
        Some(&c.identity.id),
        RuleDirection::Receive,
        RuleAction::Allow,
        addr(&b),
    )
    .await;
    let e = expect_err(t.loft.send(&aa, mail(&[addr(&c)], "hi", "x")).await);
    assert_eq!(e.code(), "recipient_refuses_sender");
    t.send(&bb, &[addr(&c)], "hi", "x").await;
    // Instance receive rules bind every local recipient.
    add(
        &t,
        None,
        RuleDirection::Receive,
        RuleAction::Block,
        &format!("*@{}", crate::TEST_DOMAIN),
    )
    .await;
    assert_eq!(
        expect_err(t.loft.send(&cc, mail(&[addr(&a)], "hi", "x")).await).code(),
        "recipient_refuses_sender"
    );
}

/// A `hold` rule holds the mail for a reviewer even in autonomous mode; the approval names
/// the rule (id and pattern), and an approval releases it.
pub async fn rules_hold_holds_in_autonomous_mode(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = agent(&t, "a", OversightMode::Autonomous).await;
    let (b, bb) = agent(&t, "b", OversightMode::Autonomous).await;
    let (c, cc) = agent(&t, "c", OversightMode::Autonomous).await;
    let hold = add(
        &t,
        Some(&a.identity.id),
        RuleDirection::Send,
        RuleAction::Hold,
        addr(&b),
    )
    .await;
    let held = t.loft.send(&aa, mail(&[addr(&b), addr(&c)], "hi", "x")).await.unwrap();
    assert_eq!(held.status, MessageStatus::PendingApproval);
    assert!(
        held.delivery.iter().all(|d| d.status == DeliveryStatus::Held),
        "{held:?}"
    );
    let approval = held.approval.clone().unwrap();
    assert_eq!(approval.reasons.len(), 1, "{:?}", approval.reasons);
    let reason = &approval.reasons[0];
    assert_eq!(reason.kind, HoldKind::Rule);
    let named = reason.rule.as_ref().expect("the hold names its rule");
    assert_eq!(named.id, hold.id);
    assert_eq!(named.pattern, hold.pattern);
    assert_eq!(named.level, RuleLevel::Identity);
    assert!(
        reason.detail.contains(hold.id.as_str()) && reason.detail.contains(addr(&b)),
        "{}",
        reason.detail
    );
    assert_eq!(inbox_count(&t, &bb).await + inbox_count(&t, &cc).await, 0);

    // The reviewer sees the rule on the approval, and releases the mail.
    let op = t.operator().await;
    let view = t.loft.get_approval(&op, approval.id.as_str()).await.unwrap();
    assert_eq!(view.approval.reasons[0].rule.as_ref().unwrap().id, hold.id);
    let decided = t.loft.approve(&op, approval.id.as_str()).await.unwrap();
    assert_eq!(decided.status, ApprovalStatus::Approved);
    assert_eq!(inbox_count(&t, &bb).await, 1);
    assert_eq!(inbox_count(&t, &cc).await, 1);

    // Mail to c alone is not held; in a gated mode both reasons are given.
    assert_eq!(t.send(&aa, &[addr(&c)], "hi", "x").await.status, MessageStatus::Sent);
    let (_, gg) = agent(&t, "g", OversightMode::GatedSend).await;
    add(
        &t,
        None,
        RuleDirection::Send,
        RuleAction::Hold,
        &format!("*@{}", crate::TEST_DOMAIN),
    )
    .await;
    let held = t.loft.send(&gg, mail(&[addr(&b)], "hi", "x")).await.unwrap();
    let kinds: Vec<HoldKind> = held.approval.unwrap().reasons.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, vec![HoldKind::Mode, HoldKind::Rule]);
    // The send's audit row names the holding rule.
    let rows = t.audit_rows().await;
    let sent = rows
        .iter()
        .filter(|r| r.entry.action == "mail.send" && r.entry.outcome == Outcome::Ok)
        .find(|r| {
            r.entry.details["held"]["reasons"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["rule"] == hold.id.as_str()))
        });
    assert!(sent.is_some(), "the held send's audit row names rule {}", hold.id);
}
