//! Oversight: held mail and its life cycle (held, approved and sent once; rejected with a
//! reason; expired), reviewers and the separation of sending from approving, modes and who
//! may change them, and the exfiltration guard.

use std::sync::Arc;

use base64::Engine as _;
use loft_core::Error;
use loft_core::identity::CreatedIdentity;
use loft_core::mail::{DeliveryStatus, MessageStatus};
use loft_core::oversight::{ApprovalStatus, HoldKind, ModeRequestStatus, OversightMode};
use loft_core::service::{
    Actor, CreateIdentityRequest, DecideRequest, DenyModeRequest, EditHeldMail, ListApprovalsParams,
    ListModeRequestsParams, RejectRequest, RequestModeRequest, StoreCredentialRequest, UpdateIdentityRequest,
};
use loft_core::store::Store;

use crate::conformance::mail::folder;
use crate::{TestLoft, expect_err, mail, test_loft};

async fn agent(t: &TestLoft, name: &str, mode: OversightMode) -> (CreatedIdentity, Actor) {
    t.identity_with(CreateIdentityRequest {
        name: name.into(),
        oversight_mode: Some(mode),
        ..Default::default()
    })
    .await
}

/// A reviewer as `loft reviewer create` makes one.
async fn reviewer(t: &TestLoft, name: &str) -> (CreatedIdentity, Actor) {
    t.identity_with_scopes(name, &["oversight", "mail:read", "keys:manage"])
        .await
}

fn addr(c: &CreatedIdentity) -> &str {
    c.identity.address.as_str()
}

async fn inbox_len(t: &TestLoft, who: &Actor) -> usize {
    t.all_messages(who, folder("inbox")).await.len()
}

fn pending() -> ListApprovalsParams {
    ListApprovalsParams {
        status: Some("pending".into()),
        ..Default::default()
    }
}

/// `gated_send`: the mail waits, is visible to reviewers (not to the agent's recipients),
/// and an approval releases it exactly once; the sender sees the decision on its copy.
pub async fn oversight_gated_send_life_cycle(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, researcher) = agent(&t, "researcher", OversightMode::GatedSend).await;
    let (w, writer) = agent(&t, "writer", OversightMode::Autonomous).await;
    let (alice_c, alice) = reviewer(&t, "alice").await;

    let held = t
        .loft
        .send(&researcher, mail(&[addr(&w)], "Brief", "The Q4 brief."))
        .await
        .unwrap();
    assert_eq!(held.status, MessageStatus::PendingApproval);
    assert!(
        held.delivery.iter().all(|d| d.status == DeliveryStatus::Held),
        "{held:?}"
    );
    let approval = held.approval.clone().expect("a held send names its approval");
    assert_eq!(approval.status, ApprovalStatus::Pending);
    assert_eq!(approval.reasons[0].kind, HoldKind::Mode);
    assert_eq!(
        inbox_len(&t, &writer).await,
        0,
        "nothing reaches a recipient before approval"
    );

    // The reviewer's queue; the agent's key cannot see it.
    let queue = t.loft.list_approvals(&alice, pending()).await.unwrap();
    assert_eq!(queue.items.len(), 1);
    assert_eq!(queue.items[0].id, approval.id);
    let whole = t.loft.get_approval(&alice, approval.id.as_str()).await.unwrap();
    assert_eq!(whole.message.text, "The Q4 brief.");
    assert_eq!(whole.message.to, held.to);
    let e = expect_err(t.loft.list_approvals(&researcher, pending()).await);
    assert!(matches!(e, Error::MissingScope { .. }), "{e:?}");

    let decided = t.loft.approve(&alice, approval.id.as_str()).await.unwrap();
    assert_eq!(decided.status, ApprovalStatus::Approved);
    let by = decided.decided_by.expect("a decision names its reviewer");
    assert_eq!(by.identity_id.as_ref(), Some(&alice_c.identity.id));
    assert_eq!(by.kind, "identity");
    assert_eq!(inbox_len(&t, &writer).await, 1);
    let again = expect_err(t.loft.approve(&alice, approval.id.as_str()).await);
    assert_eq!(again.code(), "already_decided");
    assert_eq!(inbox_len(&t, &writer).await, 1, "a second approval sends nothing");

    // The sender sees it sent, with the decision.
    let mine = t.loft.get_message(&researcher, held.id.as_str()).await.unwrap();
    assert_eq!(mine.status, MessageStatus::Sent);
    assert!(
        mine.delivery.iter().all(|d| d.status == DeliveryStatus::Delivered),
        "{mine:?}"
    );
    assert_eq!(mine.approval.unwrap().status, ApprovalStatus::Approved);

    // The writer's reply threads with the released mail in both mailboxes (writer is
    // autonomous, so it goes at once).
    let inbox = t.all_messages(&writer, folder("inbox")).await;
    let reply = t
        .loft
        .reply(
            &writer,
            inbox[0].id.as_str(),
            loft_core::mail::ReplyMail {
                idempotency_key: None,
                send_at: None,
                text: "Thanks".into(),
                html: None,
                reply_all: false,
                attachments: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!(reply.status, MessageStatus::Sent);
    assert_eq!(reply.thread_id, inbox[0].thread_id);
    let back = t.all_messages(&researcher, folder("inbox")).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].thread_id, held.thread_id);

    // Every step is in the audit log, naming the reviewer.
    let actions: Vec<String> = t.audit_actions().await;
    for want in ["mail.send", "approval.approve", "mail.reply"] {
        assert!(actions.iter().any(|a| a == want), "{want} missing from {actions:?}");
    }
}

/// Rejection needs a reason, sends nothing, and the agent reads the reason.
pub async fn oversight_reject_with_reason(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = agent(&t, "a", OversightMode::GatedSend).await;
    let (b, bb) = agent(&t, "b", OversightMode::Autonomous).await;
    let op = t.operator().await;
    let held = t.loft.send(&a, mail(&[addr(&b)], "Offer", "50% off")).await.unwrap();
    let id = held.approval.unwrap().id;
    let e = expect_err(
        t.loft
            .reject(&op, id.as_str(), RejectRequest { reason: "  ".into() })
            .await,
    );
    assert_eq!(e.code(), "invalid_reason");
    let r = t
        .loft
        .reject(
            &op,
            id.as_str(),
            RejectRequest {
                reason: "No discounts without sales approval.".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(r.status, ApprovalStatus::Rejected);
    assert_eq!(r.decided_by.unwrap().kind, "operator");
    assert_eq!(inbox_len(&t, &bb).await, 0);
    let e = expect_err(t.loft.approve(&op, id.as_str()).await);
    assert_eq!(e.code(), "already_decided");
    let mine = t.loft.get_message(&a, held.id.as_str()).await.unwrap();
    assert_eq!(mine.status, MessageStatus::Rejected);
    assert_eq!(
        mine.approval.unwrap().reason.as_deref(),
        Some("No discounts without sales approval.")
    );
}

/// Pending mail expires after the configured time: listed as expired, refused, never sent.
pub async fn oversight_expiry(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = agent(&t, "a", OversightMode::GatedAll).await;
    let (b, bb) = agent(&t, "b", OversightMode::Autonomous).await;
    let op = t.operator().await;
    let held = t.loft.send(&a, mail(&[addr(&b)], "Late", "x")).await.unwrap();
    let id = held.approval.unwrap().id;
    t.clock.advance_secs(t.loft.config().approval_ttl_secs + 1);
    assert!(t.loft.list_approvals(&op, pending()).await.unwrap().items.is_empty());
    let expired = t
        .loft
        .list_approvals(
            &op,
            ListApprovalsParams {
                status: Some("expired".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(expired.items.len(), 1);
    assert_eq!(expired.items[0].status, ApprovalStatus::Expired);
    let e = expect_err(t.loft.approve(&op, id.as_str()).await);
    assert_eq!(e.code(), "approval_expired");
    assert_eq!(inbox_len(&t, &bb).await, 0);
    let mine = t.loft.get_message(&a, held.id.as_str()).await.unwrap();
    assert_eq!(mine.status, MessageStatus::Expired);
    // The expiry was recorded once, by whoever found it.
    let e = expect_err(t.loft.approve(&op, id.as_str()).await);
    assert_eq!(e.code(), "approval_expired");
    assert_eq!(t.audit_count("approval.expire").await, 1);
}

/// The composer's `mail_wait` reports each decision on its held mail once: without a cursor
/// those it has not read, with one those made since; a wait blocked on nothing returns as soon
/// as a reviewer decides; an expiry during the wait is recorded and reported.
pub async fn oversight_wait_reports_decisions(store: Arc<dyn Store>) {
    use loft_core::service::WaitParams;
    let t = test_loft(store);
    let (_, a) = agent(&t, "a", OversightMode::GatedSend).await;
    let (b, _) = agent(&t, "b", OversightMode::Autonomous).await;
    let (_, alice) = reviewer(&t, "alice").await;
    let now = WaitParams {
        timeout_seconds: Some(0),
        ..Default::default()
    };
    let first = t.loft.send(&a, mail(&[addr(&b)], "One", "first")).await.unwrap();
    let second = t.loft.send(&a, mail(&[addr(&b)], "Two", "second")).await.unwrap();
    let w = t.loft.wait_for_mail(&a, now.clone()).await.unwrap();
    assert!(w.timed_out && w.decisions.is_empty(), "nothing decided yet: {w:?}");
    let cursor = w.cursor;

    // A wait blocked on nothing wakes when a reviewer decides.
    let waiter = {
        let (loft, a) = (t.loft.clone(), a.clone());
        let cursor = cursor.clone();
        tokio::spawn(async move {
            loft.wait_for_mail(
                &a,
                WaitParams {
                    timeout_seconds: Some(30),
                    after: Some(cursor),
                    ..Default::default()
                },
            )
            .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let id1 = first.approval.clone().unwrap().id;
    t.loft.approve(&alice, id1.as_str()).await.unwrap();
    let woke = tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
        .await
        .expect("the decision wakes the wait")
        .unwrap()
        .unwrap();
    assert!(!woke.timed_out);
    assert_eq!(woke.decisions.len(), 1, "{woke:?}");
    assert_eq!(woke.decisions[0].id, id1);
    assert_eq!(woke.decisions[0].status, ApprovalStatus::Approved);

    // From its cursor: only what was decided since.
    let id2 = second.approval.clone().unwrap().id;
    t.loft
        .reject(
            &alice,
            id2.as_str(),
            RejectRequest {
                reason: "Too long.".into(),
            },
        )
        .await
        .unwrap();
    let next = t
        .loft
        .wait_for_mail(
            &a,
            WaitParams {
                after: Some(woke.cursor.clone()),
                ..now.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(next.decisions.len(), 1, "{next:?}");
    assert_eq!(next.decisions[0].status, ApprovalStatus::Rejected);
    assert_eq!(next.decisions[0].reason.as_deref(), Some("Too long."));
    let again = t
        .loft
        .wait_for_mail(
            &a,
            WaitParams {
                after: Some(next.cursor.clone()),
                ..now.clone()
            },
        )
        .await
        .unwrap();
    assert!(
        again.timed_out && again.decisions.is_empty(),
        "each decision once: {again:?}"
    );

    // Without a cursor: the decisions whose message is unread; reading it acknowledges it.
    let unread = t.loft.wait_for_mail(&a, now.clone()).await.unwrap();
    assert_eq!(unread.decisions.len(), 2, "{unread:?}");
    t.loft.get_message(&a, first.id.as_str()).await.unwrap();
    let unread = t.loft.wait_for_mail(&a, now.clone()).await.unwrap();
    assert_eq!(unread.decisions.len(), 1);
    assert_eq!(unread.decisions[0].id, id2);

    // A held mail whose time runs out is reported as expired by the composer's wait.
    let third = t.loft.send(&a, mail(&[addr(&b)], "Three", "third")).await.unwrap();
    t.clock.advance_secs(t.loft.config().approval_ttl_secs + 1);
    let expired = t
        .loft
        .wait_for_mail(
            &a,
            WaitParams {
                after: Some(next.cursor),
                ..now
            },
        )
        .await
        .unwrap();
    assert_eq!(expired.decisions.len(), 1, "{expired:?}");
    assert_eq!(expired.decisions[0].message_id, third.id);
    assert_eq!(expired.decisions[0].status, ApprovalStatus::Expired);
    // Another identity's wait never sees them.
    let (_, c) = agent(&t, "c", OversightMode::GatedSend).await;
    let theirs = t
        .loft
        .wait_for_mail(
            &c,
            WaitParams {
                timeout_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(theirs.decisions.is_empty());
}

/// Sending and approving never meet in one principal: `oversight` with `mail:send` is refused
/// on identities and keys, a reviewer cannot send, and an identity can never decide on its own
/// mail (even after the operator turns it into a reviewer).
pub async fn oversight_separation_of_duties(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let e = expect_err(
        t.loft
            .create_identity(
                &op,
                CreateIdentityRequest {
                    name: "both".into(),
                    scopes: Some(vec!["oversight".into(), "mail:send".into()]),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "conflicting_scopes");
    let (rv, alice) = reviewer(&t, "alice").await;
    assert_eq!(rv.identity.oversight_mode, OversightMode::ReadOnly);
    let e = expect_err(t.loft.send(&alice, mail(&[addr(&rv)], "x", "y")).await);
    assert!(matches!(e, Error::MissingScope { .. }), "{e:?}");
    // A reviewer's keys cannot add `mail:send` either.
    let e = expect_err(
        t.loft
            .create_key(
                &alice,
                None,
                loft_core::service::CreateKeyRequest {
                    scopes: Some(vec!["mail:send".into()]),
                    ..Default::default()
                },
            )
            .await,
    );
    assert!(matches!(e, Error::Forbidden(_) | Error::Invalid(_)), "{e:?}");

    // Self-approval: an agent's mail, then the operator makes the agent a reviewer.
    let (agent_c, agent_a) = agent(&t, "agent", OversightMode::GatedSend).await;
    let held = t.loft.send(&agent_a, mail(&[addr(&rv)], "mine", "x")).await.unwrap();
    t.loft
        .update_identity(
            &op,
            agent_c.identity.id.as_str(),
            UpdateIdentityRequest {
                scopes: Some(vec!["oversight".into(), "mail:read".into()]),
                oversight_mode: Some(OversightMode::ReadOnly),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let turned = t.actor(&agent_c.api_key).await;
    let e = expect_err(t.loft.approve(&turned, held.approval.unwrap().id.as_str()).await);
    assert_eq!(e.code(), "self_approval");
    // A reviewer scope set with a trusting mode is refused.
    let e = expect_err(
        t.loft
            .update_identity(
                &op,
                agent_c.identity.id.as_str(),
                UpdateIdentityRequest {
                    oversight_mode: Some(OversightMode::Autonomous),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "reviewer_mode");
}

/// `read_only` refuses to send, naming the mode; `monitored` and `autonomous` send at once;
/// modes only tighten below the operator.
pub async fn oversight_modes(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let (ro, roa) = agent(&t, "ro", OversightMode::ReadOnly).await;
    let (m, ma) = agent(&t, "m", OversightMode::Monitored).await;
    let e = expect_err(t.loft.send(&roa, mail(&[addr(&m)], "x", "y")).await);
    assert_eq!(e.code(), "read_only_mode");
    assert!(e.to_string().contains("read_only"), "{e}");
    let sent = t.loft.send(&ma, mail(&[addr(&ro)], "hi", "there")).await.unwrap();
    assert_eq!(sent.status, MessageStatus::Sent);
    assert_eq!(inbox_len(&t, &roa).await, 1, "read_only still reads");

    // whoami shows the mode.
    let who = t.loft.whoami(&ma).await.unwrap();
    assert_eq!(who.identity.unwrap().oversight_mode, OversightMode::Monitored);

    // A parent in gated_send creates children no more trusted than itself.
    let (_, parent) = t
        .identity_with(CreateIdentityRequest {
            name: "parent".into(),
            scopes: Some(vec!["identity:create".into(), "mail:send".into(), "mail:read".into()]),
            oversight_mode: Some(OversightMode::GatedSend),
            ..Default::default()
        })
        .await;
    let e = expect_err(
        t.loft
            .create_identity(
                &parent,
                CreateIdentityRequest {
                    name: "kid".into(),
                    oversight_mode: Some(OversightMode::Autonomous),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "mode_escalation");
    let kid = t
        .loft
        .create_identity(
            &parent,
            CreateIdentityRequest {
                name: "kid".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // The test server's default is autonomous; the child is capped at its parent's mode.
    assert_eq!(kid.identity.oversight_mode, OversightMode::GatedSend);
    let e = expect_err(
        t.loft
            .update_identity(
                &parent,
                kid.identity.id.as_str(),
                UpdateIdentityRequest {
                    oversight_mode: Some(OversightMode::Monitored),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "operator_only");
    let tighter = t
        .loft
        .update_identity(
            &parent,
            kid.identity.id.as_str(),
            UpdateIdentityRequest {
                oversight_mode: Some(OversightMode::ReadOnly),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tighter.oversight_mode, OversightMode::ReadOnly);
    let freed = t
        .loft
        .update_identity(
            &op,
            kid.identity.id.as_str(),
            UpdateIdentityRequest {
                oversight_mode: Some(OversightMode::Autonomous),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(freed.oversight_mode, OversightMode::Autonomous);
}

/// The exfiltration guard holds mail quoting one of the sender's vault values (raw, base64,
/// URL-encoded, hex) in any mode, naming the credential and never the value.
pub async fn oversight_exfiltration_guard(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = agent(&t, "a", OversightMode::Autonomous).await;
    let (b, _) = agent(&t, "b", OversightMode::Autonomous).await;
    let secret = "sk-live-8c1f/93+aa";
    t.loft
        .vault_store(
            &a,
            StoreCredentialRequest {
                label: Some("crm".into()),
                value: Some(secret.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let encoded = [
        secret.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(secret),
        "sk-live-8c1f%2F93%2Baa".to_owned(),
        hex::encode(secret),
    ];
    for (i, body) in encoded.iter().enumerate() {
        let m = t
            .loft
            .send(&a, mail(&[addr(&b)], &format!("leak {i}"), &format!("here: {body}")))
            .await
            .unwrap();
        assert_eq!(m.status, MessageStatus::PendingApproval, "form {i}: {body}");
        let approval = m.approval.unwrap();
        let guard = approval
            .reasons
            .iter()
            .find(|r| r.kind == HoldKind::ExfiltrationGuard)
            .expect("held by the guard");
        assert_eq!(guard.credential.as_deref(), Some("crm"));
        let shown = serde_json::to_string(&approval).unwrap();
        assert!(!shown.contains(secret), "the approval shows the value: {shown}");
    }
    let clean = t
        .loft
        .send(&a, mail(&[addr(&b)], "fine", "nothing secret"))
        .await
        .unwrap();
    assert_eq!(clean.status, MessageStatus::Sent);
}

/// Many reviewers approving one mail at once send it once; the others get 409. A batch
/// decision reports each id on its own.
pub async fn oversight_concurrent_approvals_send_once(store: Arc<dyn Store>) {
    let t = Arc::new(test_loft(store));
    let (_, a) = agent(&t, "a", OversightMode::GatedSend).await;
    let (b, bb) = agent(&t, "b", OversightMode::Autonomous).await;
    let (_, r1) = reviewer(&t, "r1").await;
    let (_, r2) = reviewer(&t, "r2").await;
    let held = t.loft.send(&a, mail(&[addr(&b)], "once", "x")).await.unwrap();
    let id = held.approval.unwrap().id.to_string();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (t, id) = (t.clone(), id.clone());
        let who = if i % 2 == 0 { r1.clone() } else { r2.clone() };
        tasks.push(tokio::spawn(async move { t.loft.approve(&who, &id).await }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.code(), "already_decided", "{e:?}"),
        }
    }
    assert_eq!(ok, 1, "exactly one approval wins");
    assert_eq!(inbox_len(&t, &bb).await, 1, "sent exactly once");

    let h2 = t.loft.send(&a, mail(&[addr(&b)], "two", "x")).await.unwrap();
    let h3 = t.loft.send(&a, mail(&[addr(&b)], "three", "x")).await.unwrap();
    let batch = t
        .loft
        .decide_many(
            &r1,
            DecideRequest {
                ids: vec![
                    h2.approval.unwrap().id.to_string(),
                    id.clone(),
                    h3.approval.unwrap().id.to_string(),
                ],
                decision: "approve".into(),
                reason: None,
            },
        )
        .await
        .unwrap();
    let codes: Vec<Option<String>> = batch
        .results
        .iter()
        .map(|r| r.error.as_ref().map(|e| e.code.clone()))
        .collect();
    assert_eq!(codes, [None, Some("already_decided".into()), None]);
    assert_eq!(inbox_len(&t, &bb).await, 3);
}

/// The kill switches: a paused identity's keys are refused at once, on another node too, while
/// mail to it is kept; a freeze refuses every send and approval on every node; both are
/// reversible, operator-only and audited.
pub async fn oversight_kill_switches(store: Arc<dyn Store>) {
    let t = test_loft(store.clone());
    let node_b = t.another_node(store);
    let op = t.operator().await;
    let (a, aa) = agent(&t, "a", OversightMode::Autonomous).await;
    let (b, _) = agent(&t, "b", OversightMode::Autonomous).await;
    let (_, gated) = agent(&t, "g", OversightMode::GatedSend).await;
    let held = t.loft.send(&gated, mail(&[addr(&a)], "held", "x")).await.unwrap();

    // Pause: only the operator.
    let e = expect_err(t.loft.set_paused(&aa, b.identity.id.as_str(), true).await);
    assert_eq!(e.code(), "operator_only");
    let paused = t.loft.set_paused(&op, a.identity.id.as_str(), true).await.unwrap();
    assert!(paused.paused_at.is_some());
    for node in [&t, &node_b] {
        let e = expect_err(node.authenticate(&a.api_key).await);
        assert_eq!(e.code(), "identity_paused", "{e:?}");
    }
    // Mail to a paused identity is delivered and kept.
    let ba = t.actor(&b.api_key).await;
    t.loft
        .send(&ba, mail(&[addr(&a)], "while paused", "kept"))
        .await
        .unwrap();
    let resumed = node_b
        .loft
        .set_paused(&op, a.identity.id.as_str(), false)
        .await
        .unwrap();
    assert!(resumed.paused_at.is_none());
    let aa = t.actor(&a.api_key).await;
    let inbox = t.all_messages(&aa, folder("inbox")).await;
    assert!(inbox.iter().any(|m| m.subject == "while paused"), "{inbox:?}");

    // Freeze: sends and approvals refused on every node, whatever the mode.
    let e = expect_err(t.loft.set_frozen(&aa, true).await);
    assert_eq!(e.code(), "operator_only");
    let status = t.loft.set_frozen(&op, true).await.unwrap();
    assert!(status.outgoing_frozen);
    for node in [&t, &node_b] {
        let e = expect_err(node.loft.send(&aa, mail(&[addr(&b)], "frozen", "x")).await);
        assert_eq!(e.code(), "outgoing_frozen", "{e:?}");
        let e = expect_err(
            node.loft
                .approve(&op, held.approval.as_ref().unwrap().id.as_str())
                .await,
        );
        assert_eq!(e.code(), "outgoing_frozen", "{e:?}");
        assert!(node.loft.instance_status(&op).await.unwrap().outgoing_frozen);
    }
    let status = node_b.loft.set_frozen(&op, false).await.unwrap();
    assert!(!status.outgoing_frozen);
    t.loft.send(&aa, mail(&[addr(&b)], "thawed", "x")).await.unwrap();
    t.loft
        .approve(&op, held.approval.as_ref().unwrap().id.as_str())
        .await
        .unwrap();
    for action in [
        "identity.pause",
        "identity.resume",
        "instance.freeze",
        "instance.unfreeze",
    ] {
        assert_eq!(t.audit_count(action).await, 1, "{action}");
    }
}

/// Idempotent sends: a retry with the same key and content returns the first result and sends
/// nothing more (concurrent retries too); the key with other content is 409; keys expire after
/// 24 hours; a held send's retry returns the held copy.
pub async fn oversight_idempotent_sends(store: Arc<dyn Store>) {
    let t = Arc::new(test_loft(store));
    let (_, a) = agent(&t, "a", OversightMode::Autonomous).await;
    let (b, bb) = agent(&t, "b", OversightMode::Autonomous).await;
    let keyed = |subject: &str, key: &str| loft_core::mail::SendMail {
        idempotency_key: Some(key.into()),
        ..mail(&[addr(&b)], subject, "x")
    };
    let first = t.loft.send(&a, keyed("once", "k-1")).await.unwrap();
    let again = t.loft.send(&a, keyed("once", "k-1")).await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(inbox_len(&t, &bb).await, 1);
    assert_eq!(t.audit_count("mail.send").await, 1);
    let e = expect_err(t.loft.send(&a, keyed("other", "k-1")).await);
    assert_eq!(e.code(), "idempotency_key_reused");
    let e = expect_err(t.loft.send(&a, keyed("x", "has space")).await);
    assert_eq!(e.code(), "invalid_idempotency_key");

    // Concurrent retries of one request: one mail.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (t, a, req) = (t.clone(), a.clone(), keyed("raced", "k-2"));
        tasks.push(tokio::spawn(async move { t.loft.send(&a, req).await }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap().unwrap().id);
    }
    assert_eq!(ids.len(), 1, "every retry answers with the one sent copy");
    assert_eq!(inbox_len(&t, &bb).await, 2);

    // A reply, retried.
    let inbox = t.all_messages(&bb, folder("inbox")).await;
    let reply = |key: &str| loft_core::mail::ReplyMail {
        text: "thanks".into(),
        html: None,
        reply_all: false,
        idempotency_key: Some(key.into()),
        send_at: None,
        attachments: vec![],
    };
    let r1 = t.loft.reply(&bb, inbox[0].id.as_str(), reply("r-1")).await.unwrap();
    let r2 = t.loft.reply(&bb, inbox[0].id.as_str(), reply("r-1")).await.unwrap();
    assert_eq!(r1.id, r2.id);
    assert_eq!(inbox_len(&t, &a).await, 1);

    // A held send's retry returns the held copy, not a second hold.
    let (_, g) = agent(&t, "g", OversightMode::GatedSend).await;
    let h1 = t.loft.send(&g, keyed("held", "k-3")).await.unwrap();
    let h2 = t.loft.send(&g, keyed("held", "k-3")).await.unwrap();
    assert_eq!(h1.id, h2.id);
    assert_eq!(h2.status, MessageStatus::PendingApproval);
    assert_eq!(h2.approval.unwrap().id, h1.approval.unwrap().id);

    // After 24 hours the key is forgotten: the same request sends again.
    t.clock.advance_secs(loft_core::mail::IDEMPOTENCY_TTL_SECS + 1);
    let later = t.loft.send(&a, keyed("once", "k-1")).await.unwrap();
    assert_ne!(later.id, first.id);
    assert_eq!(inbox_len(&t, &bb).await, 3);
}

/// The whole policy as a model-based test: random sequences of sends in every mode, approvals
/// and rejections by reviewers and the operator, time passing past expiries, mode changes,
/// pauses and freezes. Each operation's outcome is checked against a model of the rules, and
/// after every step the invariants are checked against the store, written once:
/// - nothing reaches a mailbox from a gated sender without an approval by someone other than
///   its composer, and every delivered mail's sender copy says `sent`;
/// - mail to an agent in `gated_all` reaches its inbox only once a reviewer releases it;
/// - nothing is delivered twice;
/// - a paused identity can do nothing;
/// - every decision is in the audit log.
pub async fn oversight_policy_holds_on_random_sequences(store: Arc<dyn Store>) {
    use std::collections::{BTreeMap, BTreeSet};

    use super::security::Gen;

    const SEQUENCES: u64 = 10;
    const STEPS: usize = 60;
    let modes = OversightMode::ALL;
    let mut steps_run = 0;
    // What the sequences did, to show they reach every branch.
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    // Decisions of earlier sequences (one store, one audit log).
    let mut decided_before = 0;
    for seq in 0..SEQUENCES {
        let mut t = test_loft(store.clone());
        let mut g = Gen(0x5851_f42d_4c95_7f2d_u64.wrapping_mul(seq + 1) | 1);
        let op = t.operator().await;
        let mut agents = Vec::new();
        let mut mode = Vec::new();
        for i in 0..3 {
            let m = modes[g.below(modes.len())];
            agents.push(agent(&t, &format!("s{seq}a{i}"), m).await.0);
            mode.push(m);
        }
        let reviewers = [reviewer(&t, &format!("s{seq}r1")).await.1, op.clone()];
        let mut paused = [false; 3];
        let mut frozen = false;
        // Model: every approval's composer (for held incoming mail: its recipient), whether it
        // holds incoming mail, and whether it was decided.
        let mut approvals: Vec<(String, usize, bool)> = Vec::new();
        let mut decided: BTreeSet<String> = BTreeSet::new();
        let mut expired: BTreeSet<String> = BTreeSet::new();
        let mut delivered_expected: BTreeMap<usize, usize> = BTreeMap::new();
        let ttl = t.loft.config().approval_ttl_secs;
        for step in 0..STEPS {
            steps_run += 1;
            let ctx = format!("sequence {seq} step {step}");
            match g.below(10) {
                0..=3 => {
                    let (from, to) = (g.below(3), g.below(3));
                    let subject = ctx.clone();
                    let auth = t.authenticate(&agents[from].api_key).await;
                    if paused[from] {
                        assert_eq!(expect_err(auth).code(), "identity_paused", "{ctx}");
                        *tally.entry("send refused: paused").or_default() += 1;
                        continue;
                    }
                    let actor = auth.unwrap();
                    let r = t.loft.send(&actor, mail(&[addr(&agents[to])], &subject, "x")).await;
                    if mode[from] == OversightMode::ReadOnly {
                        assert_eq!(expect_err(r).code(), "read_only_mode", "{ctx}");
                        *tally.entry("send refused: read_only").or_default() += 1;
                    } else if frozen {
                        assert_eq!(expect_err(r).code(), "outgoing_frozen", "{ctx}");
                        *tally.entry("send refused: frozen").or_default() += 1;
                    } else if mode[from].gates_outgoing() {
                        let m = r.unwrap();
                        assert_eq!(m.status, MessageStatus::PendingApproval, "{ctx}");
                        approvals.push((m.approval.unwrap().id.to_string(), from, false));
                        *tally.entry("send held").or_default() += 1;
                    } else {
                        assert_eq!(r.unwrap().status, MessageStatus::Sent, "{ctx}");
                        *tally.entry("send sent").or_default() += 1;
                        arrive(
                            &t,
                            &agents,
                            &mode,
                            to,
                            &mut approvals,
                            &mut delivered_expected,
                            &mut tally,
                        )
                        .await;
                    }
                }
                4 | 5 if !approvals.is_empty() => {
                    let (id, _, incoming) = approvals[g.below(approvals.len())].clone();
                    let who = &reviewers[g.below(2)];
                    let approve = g.chance(70);
                    let r = if approve {
                        t.loft.approve(who, &id).await
                    } else {
                        let reason = RejectRequest { reason: "no".into() };
                        t.loft.reject(who, &id, reason).await
                    };
                    // Releasing incoming mail sends nothing: the freeze does not stop it.
                    if frozen && approve && !incoming && !decided.contains(&id) && !expired.contains(&id) {
                        assert_eq!(expect_err(r).code(), "outgoing_frozen", "{ctx}");
                        *tally.entry("approve refused: frozen").or_default() += 1;
                    } else if decided.contains(&id) {
                        assert_eq!(expect_err(r).code(), "already_decided", "{ctx}");
                        *tally.entry("decision refused: already decided").or_default() += 1;
                    } else if expired.contains(&id) {
                        assert_eq!(expect_err(r).code(), "approval_expired", "{ctx}");
                        *tally.entry("decision refused: expired").or_default() += 1;
                    } else {
                        let a = r.unwrap();
                        decided.insert(id.clone());
                        *tally.entry(if approve { "approved" } else { "rejected" }).or_default() += 1;
                        if approve {
                            let to = agents.iter().position(|c| c.identity.address == a.to[0]).unwrap();
                            if incoming {
                                *tally.entry("released").or_default() += 1;
                                *delivered_expected.entry(to).or_default() += 1;
                            } else {
                                arrive(
                                    &t,
                                    &agents,
                                    &mode,
                                    to,
                                    &mut approvals,
                                    &mut delivered_expected,
                                    &mut tally,
                                )
                                .await;
                            }
                        }
                    }
                }
                6 => {
                    // Time passes: sometimes past every pending approval's expiry.
                    let secs = if g.chance(30) { ttl + 1 } else { 60 };
                    t.clock.advance_secs(secs);
                    if secs > ttl {
                        for (id, _, _) in &approvals {
                            if !decided.contains(id) {
                                expired.insert(id.clone());
                            }
                        }
                    }
                }
                7 => {
                    let i = g.below(3);
                    let m = modes[g.below(modes.len())];
                    let req = UpdateIdentityRequest {
                        oversight_mode: Some(m),
                        ..Default::default()
                    };
                    t.loft
                        .update_identity(&op, agents[i].identity.id.as_str(), req)
                        .await
                        .unwrap();
                    mode[i] = m;
                }
                8 => {
                    let i = g.below(3);
                    let p = !paused[i];
                    t.loft.set_paused(&op, agents[i].identity.id.as_str(), p).await.unwrap();
                    paused[i] = p;
                }
                _ if g.chance(50) => {
                    // A restart: a new node on the same database (holds live in the store).
                    t = t.another_node(store.clone());
                }
                _ => {
                    frozen = !frozen;
                    t.loft.set_frozen(&op, frozen).await.unwrap();
                }
            }
            check_policy_invariants(&t, &agents, &delivered_expected, decided_before + decided.len(), &ctx).await;
        }
        decided_before += decided.len();
        // The freeze is instance-wide: the next sequence starts thawed.
        t.loft.set_frozen(&op, false).await.unwrap();
    }
    assert_eq!(steps_run, SEQUENCES as usize * STEPS);
    eprintln!(
        "oversight policy: {SEQUENCES} random sequences, {steps_run} steps, invariants checked after each ({} backend): {tally:?}",
        store.backend()
    );
    for branch in [
        "send held",
        "send sent",
        "approved",
        "rejected",
        "send refused: frozen",
        "decision refused: expired",
        "incoming held",
        "released",
    ] {
        assert!(
            tally.contains_key(branch),
            "the sequences never reached `{branch}`: {tally:?}"
        );
    }
}

/// The model's view of mail reaching agent `to`: in its inbox, or held for a reviewer when it
/// is in `gated_all` (then the new approval joins the model's list).
async fn arrive(
    t: &TestLoft,
    agents: &[CreatedIdentity],
    mode: &[OversightMode],
    to: usize,
    approvals: &mut Vec<(String, usize, bool)>,
    delivered: &mut std::collections::BTreeMap<usize, usize>,
    tally: &mut std::collections::BTreeMap<&'static str, usize>,
) {
    if mode[to] != OversightMode::GatedAll {
        *delivered.entry(to).or_default() += 1;
        return;
    }
    let q = loft_core::oversight::ApprovalQuery {
        direction: Some(loft_core::oversight::HoldDirection::Receive),
        identity: Some(agents[to].identity.id.clone()),
        limit: 1,
        ..Default::default()
    };
    let newest = t.store().list_approvals(q).await.unwrap().items.pop().unwrap();
    assert!(
        approvals.iter().all(|(id, _, _)| id != newest.id.as_str()),
        "no new incoming hold"
    );
    approvals.push((newest.id.to_string(), to, true));
    *tally.entry("incoming held").or_default() += 1;
}

/// The invariants of [`oversight_policy_holds_on_random_sequences`], read from the store.
async fn check_policy_invariants(
    t: &TestLoft,
    agents: &[CreatedIdentity],
    expected: &std::collections::BTreeMap<usize, usize>,
    decisions: usize,
    ctx: &str,
) {
    use loft_core::mail::{Folder, MessageQuery};
    let store = t.store();
    let all = |folder| MessageQuery {
        folder: Some(folder),
        limit: 1000,
        ..MessageQuery::default()
    };
    for (i, who) in agents.iter().enumerate() {
        let inbox = store
            .list_messages(&who.identity.id, all(Folder::Inbox))
            .await
            .unwrap()
            .items;
        assert_eq!(
            inbox.len(),
            expected.get(&i).copied().unwrap_or(0),
            "{ctx}: {} inbox",
            who.identity.name
        );
        let mut seen = std::collections::BTreeSet::new();
        for m in &inbox {
            assert!(
                seen.insert(m.message_id.clone()),
                "{ctx}: delivered twice: {}",
                m.message_id
            );
            // Its sender copy is `sent`; if it was held, a reviewer other than its composer
            // approved it.
            let sender = agents.iter().find(|a| a.identity.address == m.from).unwrap();
            let sent = store
                .list_messages(&sender.identity.id, all(Folder::Sent))
                .await
                .unwrap()
                .items;
            let copy = sent.iter().find(|s| s.message_id == m.message_id).unwrap();
            assert_eq!(
                copy.status,
                MessageStatus::Sent,
                "{ctx}: delivered but {:?}",
                copy.status
            );
            let q = loft_core::oversight::ApprovalQuery {
                message: Some(copy.id.clone()),
                limit: 1,
                ..Default::default()
            };
            if let Some(a) = store.list_approvals(q).await.unwrap().items.pop() {
                assert_eq!(a.status, ApprovalStatus::Approved, "{ctx}");
                let by = a.decided_by.unwrap();
                assert_ne!(by.identity_id.as_ref(), Some(&a.identity_id), "{ctx}: self-approved");
            }
        }
    }
    let audited = t.audit_count("approval.approve").await + t.audit_count("approval.reject").await;
    assert_eq!(audited, decisions, "{ctx}: every decision audited");
}

fn edit() -> EditHeldMail {
    EditHeldMail::default()
}

/// A reviewer edits held mail before approving: the sender's copy is rewritten in place (same
/// Message-ID, rebuilt raw document, recipients and delivery planned again), the agent sees
/// the edited mail and who edited it, and the approval sends the edited version. The edit is
/// checked as a send is, and never by the identity that composed the mail.
pub async fn oversight_reviewer_edits_held_mail(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = agent(&t, "a", OversightMode::GatedSend).await;
    let (b, bb) = agent(&t, "b", OversightMode::Autonomous).await;
    let (c, cc) = agent(&t, "c", OversightMode::Autonomous).await;
    let (alice_c, alice) = reviewer(&t, "alice").await;
    let mut m = mail(&[addr(&b)], "Offer", "We give you 50% off.\nRegards");
    m.html = Some("<p>50% off</p>".into());
    let held = t.loft.send(&a, m).await.unwrap();
    let id = held.approval.clone().unwrap().id.to_string();

    // Refusals, each checked as a send would be, none writing anything.
    let cases: [(EditHeldMail, &str); 6] = [
        (edit(), "empty_edit"),
        (
            EditHeldMail {
                subject: Some("Offer".into()),
                ..edit()
            },
            "edit_changes_nothing",
        ),
        (
            EditHeldMail {
                subject: Some("two\nlines".into()),
                ..edit()
            },
            "invalid_subject",
        ),
        (
            EditHeldMail {
                to: Some(vec![format!("nobody-zzzzz@{}", crate::TEST_DOMAIN)]),
                ..edit()
            },
            "unknown_recipient",
        ),
        (
            EditHeldMail {
                text: Some(" ".into()),
                html: Some(String::new()),
                ..edit()
            },
            "empty_body",
        ),
        (
            EditHeldMail {
                text: Some("a\0b".into()),
                ..edit()
            },
            "invalid_text",
        ),
    ];
    for (req, code) in cases {
        let e = expect_err(t.loft.edit_approval(&alice, &id, req).await);
        assert_eq!(e.code(), code, "{e:?}");
    }
    // An agent (no `oversight`) cannot edit.
    let e = expect_err(
        t.loft
            .edit_approval(
                &bb,
                &id,
                EditHeldMail {
                    subject: Some("x".into()),
                    ..edit()
                },
            )
            .await,
    );
    assert!(matches!(e, Error::MissingScope { .. }), "{e:?}");

    let edited = t
        .loft
        .edit_approval(
            &alice,
            &id,
            EditHeldMail {
                subject: Some("Offer (revised)".into()),
                text: Some("We give you 10% off.\nRegards".into()),
                html: Some(String::new()),
                to: Some(vec![addr(&c).to_owned()]),
                bcc: Some(vec![addr(&b).to_owned(), addr(&c).to_owned()]),
                ..edit()
            },
        )
        .await
        .unwrap();
    assert_eq!(edited.approval.status, ApprovalStatus::Pending);
    assert_eq!(edited.approval.edit_count, 1);
    let by = edited.approval.edited_by.clone().unwrap();
    assert_eq!(by.identity_id.as_ref(), Some(&alice_c.identity.id));
    assert!(edited.approval.edited_at.is_some());
    assert_eq!(edited.approval.subject, "Offer (revised)");
    assert_eq!(edited.message.message_id, held.message_id, "rewritten in place");
    assert_eq!(edited.message.html, None);
    // c is in `to` already: each address once, in the first field naming it.
    assert_eq!(edited.message.to, vec![c.identity.address.clone()]);
    assert_eq!(edited.message.bcc, vec![b.identity.address.clone()]);
    assert_eq!(edited.approval.reasons[0].kind, HoldKind::Mode);

    // The agent sees the mail as it will be sent, and who edited it.
    let mine = t.loft.get_message(&a, held.id.as_str()).await.unwrap();
    assert_eq!(mine.status, MessageStatus::PendingApproval);
    assert_eq!(mine.subject, "Offer (revised)");
    assert_eq!(mine.text, "We give you 10% off.\nRegards");
    assert_eq!(mine.id, held.id);
    assert_eq!(mine.thread_id, held.thread_id);
    let recipients: Vec<_> = mine.delivery.iter().map(|d| d.recipient.clone()).collect();
    assert_eq!(recipients, [c.identity.address.clone(), b.identity.address.clone()]);
    assert!(mine.delivery.iter().all(|d| d.status == DeliveryStatus::Held));
    assert_eq!(mine.approval.as_ref().unwrap().edit_count, 1);
    let raw = String::from_utf8(t.loft.raw_message(&a, held.id.as_str()).await.unwrap()).unwrap();
    assert!(raw.contains("Subject: Offer (revised)"), "{raw}");
    assert!(raw.contains(&format!("Message-ID: <{}>", held.message_id)), "{raw}");
    assert!(!raw.contains("50%"), "{raw}");
    let summary = t.all_messages(&a, folder("sent")).await;
    assert_eq!(summary[0].subject, "Offer (revised)");
    // Search sees the mail as edited: the index follows the rewrite.
    let search = |q: &str| loft_core::service::SearchParams {
        q: q.into(),
        ..Default::default()
    };
    let found = t.loft.search_messages(&a, search("revised 10")).await.unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].message.id, held.id);
    assert!(t.loft.search_messages(&a, search("50")).await.unwrap().items.is_empty());

    // The composer never edits its own mail, even once made a reviewer.
    let op = t.operator().await;
    let (a2_c, a2) = agent(&t, "a2", OversightMode::GatedSend).await;
    let own = t.loft.send(&a2, mail(&[addr(&b)], "mine", "x")).await.unwrap();
    t.loft
        .update_identity(
            &op,
            a2_c.identity.id.as_str(),
            UpdateIdentityRequest {
                scopes: Some(vec!["oversight".into(), "mail:read".into()]),
                oversight_mode: Some(OversightMode::ReadOnly),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let turned = t.actor(&a2_c.api_key).await;
    let e = expect_err(
        t.loft
            .edit_approval(
                &turned,
                own.approval.unwrap().id.as_str(),
                EditHeldMail {
                    text: Some("changed".into()),
                    ..edit()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "self_approval");

    // Approval sends the edited version to the edited recipients, once.
    let decided = t.loft.approve(&op, &id).await.unwrap();
    assert_eq!(decided.status, ApprovalStatus::Approved);
    assert_eq!(decided.edit_count, 1);
    for who in [&bb, &cc] {
        let inbox = t.all_messages(who, folder("inbox")).await;
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox[0].subject, "Offer (revised)");
        let got = t.loft.get_message(who, inbox[0].id.as_str()).await.unwrap();
        assert_eq!(got.text, "We give you 10% off.\nRegards");
        assert_eq!(got.message_id, held.message_id);
        assert!(got.bcc.is_empty());
    }
    let mine = t.loft.get_message(&a, held.id.as_str()).await.unwrap();
    assert_eq!(mine.status, MessageStatus::Sent);
    assert!(mine.delivery.iter().all(|d| d.status == DeliveryStatus::Delivered));
    assert_eq!(
        mine.approval.unwrap().edited_by.unwrap().identity_id,
        Some(alice_c.identity.id.clone())
    );
    assert_eq!(t.audit_count("approval.edit").await, 1);
    t.assert_chain_ok().await;
}

/// Editing is only for pending mail: after an approval, a rejection or expiry it is refused
/// exactly as a decision is, and nothing changes.
pub async fn oversight_edit_after_decision_is_refused(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = agent(&t, "a", OversightMode::GatedSend).await;
    let (b, _) = agent(&t, "b", OversightMode::Autonomous).await;
    let op = t.operator().await;
    let change = || EditHeldMail {
        text: Some("changed".into()),
        ..edit()
    };
    let approved = t.loft.send(&a, mail(&[addr(&b)], "one", "x")).await.unwrap();
    let id = approved.approval.unwrap().id.to_string();
    t.loft.approve(&op, &id).await.unwrap();
    let e = expect_err(t.loft.edit_approval(&op, &id, change()).await);
    assert_eq!(e.code(), "already_decided");
    assert_eq!(t.loft.get_message(&a, approved.id.as_str()).await.unwrap().text, "x");

    let rejected = t.loft.send(&a, mail(&[addr(&b)], "two", "x")).await.unwrap();
    let id = rejected.approval.unwrap().id.to_string();
    t.loft
        .reject(&op, &id, RejectRequest { reason: "no".into() })
        .await
        .unwrap();
    let e = expect_err(t.loft.edit_approval(&op, &id, change()).await);
    assert_eq!(e.code(), "already_decided");

    let late = t.loft.send(&a, mail(&[addr(&b)], "three", "x")).await.unwrap();
    let id = late.approval.unwrap().id.to_string();
    t.clock.advance_secs(t.loft.config().approval_ttl_secs + 1);
    let e = expect_err(t.loft.edit_approval(&op, &id, change()).await);
    assert_eq!(e.code(), "approval_expired");
    assert_eq!(t.loft.get_message(&a, late.id.as_str()).await.unwrap().text, "x");
    assert_eq!(t.audit_count("approval.edit").await, 0);

    // The store itself: an unknown approval is NotFound.
    let missing = loft_core::oversight::ApprovalId::generate(&loft_core::random::OsRandom);
    let e = expect_err(t.loft.edit_approval(&op, missing.as_str(), change()).await);
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
}

/// An edit and an approval at the same moment, on one node or two: whatever the order, the
/// mail released is the version the approval planned for. Either the approval wins (the edit
/// gets `already_decided` and the original goes out) or the edit does (the approval then sends
/// the edited mail, or is refused with `approval_edited` and sends nothing).
pub async fn oversight_concurrent_edit_and_approve_agree(store: Arc<dyn Store>) {
    let t = Arc::new(test_loft(store.clone()));
    let other = Arc::new(t.another_node(store));
    let (_, a) = agent(&t, "a", OversightMode::GatedSend).await;
    let (b, bb) = agent(&t, "b", OversightMode::Autonomous).await;
    let (c, cc) = agent(&t, "c", OversightMode::Autonomous).await;
    let (_, r1) = reviewer(&t, "r1").await;
    let (_, r2) = reviewer(&t, "r2").await;
    let mut seen = std::collections::HashSet::new();
    for round in 0..12 {
        let held = t
            .loft
            .send(&a, mail(&[addr(&b)], &format!("round {round}"), "original"))
            .await
            .unwrap();
        let id = held.approval.unwrap().id.to_string();
        let (t1, t2) = (t.clone(), if round % 2 == 0 { other.clone() } else { t.clone() });
        let (id1, id2, r1c, r2c) = (id.clone(), id.clone(), r1.clone(), r2.clone());
        let to_c = addr(&c).to_owned();
        let editing = tokio::spawn(async move {
            t1.loft
                .edit_approval(
                    &r1c,
                    &id1,
                    EditHeldMail {
                        text: Some("edited".into()),
                        to: Some(vec![to_c]),
                        ..EditHeldMail::default()
                    },
                )
                .await
        });
        let approving = tokio::spawn(async move { t2.loft.approve(&r2c, &id2).await });
        let (edited, approved) = (editing.await.unwrap(), approving.await.unwrap());
        let mine = t.loft.get_message(&a, held.id.as_str()).await.unwrap();
        let b_got = t.all_messages(&bb, folder("inbox")).await;
        let c_got = t.all_messages(&cc, folder("inbox")).await;
        let b_got: Vec<_> = b_got.iter().filter(|m| m.message_id == held.message_id).collect();
        let c_got: Vec<_> = c_got.iter().filter(|m| m.message_id == held.message_id).collect();
        match (&edited, &approved) {
            (Err(e), Ok(_)) => {
                assert_eq!(e.code(), "already_decided", "round {round}: {e:?}");
                assert_eq!(mine.text, "original");
                assert_eq!((b_got.len(), c_got.len()), (1, 0), "round {round}");
                seen.insert("approve first");
            }
            (Ok(_), Ok(_)) => {
                assert_eq!(mine.text, "edited");
                assert_eq!((b_got.len(), c_got.len()), (0, 1), "round {round}");
                let got = t.loft.get_message(&cc, c_got[0].id.as_str()).await.unwrap();
                assert_eq!(got.text, "edited", "round {round}: the edited version is sent");
                seen.insert("edit first");
            }
            (Ok(_), Err(e)) => {
                assert_eq!(e.code(), "approval_edited", "round {round}: {e:?}");
                assert_eq!(mine.status, MessageStatus::PendingApproval);
                assert_eq!((b_got.len(), c_got.len()), (0, 0), "round {round}: nothing sent");
                // Deciding again sends the edited mail.
                t.loft.approve(&r2, &id).await.unwrap();
                let got = t.all_messages(&cc, folder("inbox")).await;
                assert!(got.iter().any(|m| m.message_id == held.message_id), "round {round}");
                seen.insert("edited under the approval");
            }
            (Err(e1), Err(e2)) => panic!("round {round}: both failed: {e1:?} / {e2:?}"),
        }
        assert_eq!(mine.status == MessageStatus::Sent, approved.is_ok(), "round {round}");
    }
    assert!(!seen.is_empty());
}

/// The audit row of an edit records what changed (subject, recipients, a line diff of each
/// body) but never a value of the composer's vault: each appears as `[credential NAME]`, in
/// whatever encoding the mail carried it. The guard is re-run on the edited mail.
pub async fn oversight_edit_audit_redacts_vault_secrets(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = agent(&t, "a", OversightMode::Autonomous).await;
    let (b, bb) = agent(&t, "b", OversightMode::Autonomous).await;
    let (_, alice) = reviewer(&t, "alice").await;
    let secret = "sk-live-77aa/91+zz";
    t.loft
        .vault_store(
            &a,
            StoreCredentialRequest {
                label: Some("crm".into()),
                value: Some(secret.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    let body = format!("Hello,\nthe key is {secret}\nor {b64}\nor {}\nBye", hex::encode(secret));
    let held = t
        .loft
        .send(&a, mail(&[addr(&b)], &format!("key {secret}"), &body))
        .await
        .unwrap();
    assert_eq!(held.status, MessageStatus::PendingApproval);
    let id = held.approval.unwrap().id.to_string();
    let edited = t
        .loft
        .edit_approval(
            &alice,
            &id,
            EditHeldMail {
                subject: Some("the key".into()),
                text: Some("Hello,\nthe key is in the vault\nBye".into()),
                ..edit()
            },
        )
        .await
        .unwrap();
    // Autonomous, and the secret is gone: nothing holds it now but the pending approval.
    assert!(edited.approval.reasons.is_empty(), "{:?}", edited.approval.reasons);

    let row = t
        .audit_rows()
        .await
        .into_iter()
        .find(|r| r.entry.action == "approval.edit")
        .expect("an approval.edit row");
    let details = row.entry.details.to_string();
    for form in [
        secret.to_owned(),
        b64.trim_end_matches('=').to_owned(),
        hex::encode(secret),
    ] {
        assert!(
            !details.contains(&form),
            "the audit row holds the secret ({form}): {details}"
        );
    }
    let changed = &row.entry.details["changed"];
    assert_eq!(changed["subject"]["before"], "key [credential crm]");
    assert_eq!(changed["subject"]["after"], "the key");
    let diff = changed["text"]["diff"].as_str().unwrap();
    assert!(diff.contains("-the key is [credential crm]\n"), "{diff}");
    assert!(diff.contains("+the key is in the vault\n"), "{diff}");
    assert!(diff.contains(" Hello,\n"), "{diff}");
    assert!(changed.get("to").is_none(), "{changed}");
    assert_eq!(row.entry.details["edit"], 1);

    // Edited back to quote the secret (say the reviewer pasted the agent's draft again): the
    // guard holds it again, and the audit still carries no value.
    let again = t
        .loft
        .edit_approval(
            &alice,
            &id,
            EditHeldMail {
                text: Some(format!("Hello,\nthe key is {secret}\nBye")),
                ..edit()
            },
        )
        .await
        .unwrap();
    assert_eq!(again.approval.edit_count, 2);
    assert!(
        again
            .approval
            .reasons
            .iter()
            .any(|r| r.kind == HoldKind::ExfiltrationGuard),
        "{:?}",
        again.approval.reasons
    );
    let all = serde_json::to_string(&t.audit_rows().await).unwrap();
    assert!(!all.contains(secret), "an audit row holds the secret");
    assert_eq!(inbox_len(&t, &bb).await, 0);
}

/// Mode requests: an identity asks for another mode with a reason (one open request per
/// identity, a new one replaces it), sees it in whoami; only the operator lists and answers:
/// denying (the identity sees the reason until it asks again) or setting the mode (which
/// clears it). Reviewers and the identity's parent cannot answer.
pub async fn oversight_mode_requests(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let (a_c, a) = agent(&t, "a", OversightMode::GatedSend).await;
    let (_, b) = agent(&t, "b", OversightMode::ReadOnly).await;
    let (_, alice) = reviewer(&t, "alice").await;
    let ask = |mode: OversightMode, reason: &str| RequestModeRequest {
        mode,
        reason: reason.into(),
    };
    assert!(t.loft.whoami(&a).await.unwrap().mode_request.is_none());
    for (req, code) in [
        (ask(OversightMode::GatedSend, "same"), "mode_unchanged"),
        (ask(OversightMode::Autonomous, "  "), "invalid_reason"),
        (ask(OversightMode::Autonomous, &"x".repeat(1001)), "invalid_reason"),
    ] {
        let e = expect_err(t.loft.request_mode(&a, req).await);
        assert_eq!(e.code(), code, "{e:?}");
    }
    let e = expect_err(t.loft.request_mode(&op, ask(OversightMode::Autonomous, "x")).await);
    assert_eq!(e.code(), "identity_key_required");
    let e = expect_err(t.loft.request_mode(&alice, ask(OversightMode::Autonomous, "x")).await);
    assert_eq!(e.code(), "reviewer_mode");

    let first = t
        .loft
        .request_mode(&a, ask(OversightMode::Monitored, "I send the daily report"))
        .await
        .unwrap();
    assert_eq!(first.status, ModeRequestStatus::Open);
    assert_eq!(
        (first.mode, first.current_mode),
        (OversightMode::Monitored, OversightMode::GatedSend)
    );
    let req = t
        .loft
        .request_mode(&a, ask(OversightMode::Autonomous, " 40 reviews a day are too many "))
        .await
        .unwrap();
    assert_eq!(req.reason, "40 reviews a day are too many");
    t.loft
        .request_mode(&b, ask(OversightMode::GatedSend, "I need to answer mail"))
        .await
        .unwrap();
    let me = t.loft.whoami(&a).await.unwrap().mode_request.unwrap();
    assert_eq!(
        (me.mode, me.status),
        (OversightMode::Autonomous, ModeRequestStatus::Open)
    );
    crate::assert_whoami_context(t.store().as_ref(), &a_c.identity).await;

    // Only the operator lists and answers.
    for who in [&alice, &a] {
        let e = expect_err(t.loft.list_mode_requests(who, ListModeRequestsParams::default()).await);
        assert_eq!(e.code(), "operator_only");
        let e = expect_err(
            t.loft
                .deny_mode_request(who, a_c.identity.id.as_str(), DenyModeRequest { reason: "no".into() })
                .await,
        );
        assert_eq!(e.code(), "operator_only");
    }
    let open = t
        .loft
        .list_mode_requests(&op, ListModeRequestsParams::default())
        .await
        .unwrap();
    assert_eq!(open.items.len(), 2, "a new request replaces the last: {:?}", open.items);
    assert_eq!(open.items[0].identity_id, b.identity().unwrap().id, "newest first");
    assert_eq!(open.items[1].mode, OversightMode::Autonomous);
    assert_eq!(open.items[1].address, a_c.identity.address);
    let page = t
        .loft
        .list_mode_requests(
            &op,
            ListModeRequestsParams {
                limit: Some(1),
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let rest = t
        .loft
        .list_mode_requests(
            &op,
            ListModeRequestsParams {
                limit: Some(1),
                cursor: page.next_cursor,
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items[0].identity_id, a_c.identity.id);

    // Denied: the agent reads why, until it asks again.
    let e = expect_err(
        t.loft
            .deny_mode_request(&op, a_c.identity.id.as_str(), DenyModeRequest { reason: " ".into() })
            .await,
    );
    assert_eq!(e.code(), "invalid_reason");
    let denied = t
        .loft
        .deny_mode_request(
            &op,
            a_c.identity.id.as_str(),
            DenyModeRequest {
                reason: "Not before the audit in January.".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(denied.status, ModeRequestStatus::Denied);
    let e = expect_err(
        t.loft
            .deny_mode_request(&op, a_c.identity.id.as_str(), DenyModeRequest { reason: "x".into() })
            .await,
    );
    assert_eq!(e.code(), "mode_request_not_open");
    let me = t.loft.whoami(&a).await.unwrap().mode_request.unwrap();
    assert_eq!(me.status, ModeRequestStatus::Denied);
    assert_eq!(me.denial_reason.as_deref(), Some("Not before the audit in January."));
    assert!(me.decided_at.is_some());
    assert_eq!(
        t.loft
            .list_mode_requests(&op, ListModeRequestsParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // Asked again, then granted by the operator setting the mode: the request is cleared.
    t.loft
        .request_mode(&a, ask(OversightMode::Monitored, "monitored, then?"))
        .await
        .unwrap();
    assert_eq!(
        t.loft.whoami(&a).await.unwrap().mode_request.unwrap().status,
        ModeRequestStatus::Open
    );
    let granted = t
        .loft
        .update_identity(
            &op,
            a_c.identity.id.as_str(),
            UpdateIdentityRequest {
                oversight_mode: Some(OversightMode::Monitored),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(granted.oversight_mode, OversightMode::Monitored);
    let a = t.actor(&a_c.api_key).await;
    assert!(t.loft.whoami(&a).await.unwrap().mode_request.is_none());
    let left = t
        .loft
        .list_mode_requests(&op, ListModeRequestsParams::default())
        .await
        .unwrap();
    assert_eq!(left.items.len(), 1);
    let e = expect_err(
        t.loft
            .deny_mode_request(&op, a_c.identity.id.as_str(), DenyModeRequest { reason: "x".into() })
            .await,
    );
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
    let actions = t.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "mode_request.create").count(), 4);
    assert_eq!(actions.iter().filter(|a| *a == "mode_request.deny").count(), 1);
}

/// An edit of the recipients is checked against the sender's rules and first contact, as a send
/// is: a blocked address refuses the edit (audited as a denied `approval.edit`, nothing written);
/// a held one and a new one become the approval's reasons, and approving the edited mail makes
/// its recipient a known contact.
pub async fn oversight_edit_checks_rules_and_first_contact(store: Arc<dyn Store>) {
    use loft_core::rules::{RuleAction, RuleDirection};
    let t = test_loft(store);
    let (a_c, _) = agent(&t, "a", OversightMode::GatedSend).await;
    let (_, alice) = reviewer(&t, "alice").await;
    let op = t.operator().await;
    t.loft
        .set_identity_caps(
            &op,
            a_c.identity.id.as_str(),
            loft_core::service::SetIdentityCapsRequest {
                first_contact: Some(loft_core::caps::FirstContact::Hold),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let a = t.actor(&a_c.api_key).await;
    for (action, pattern) in [
        (RuleAction::Block, "*@blocked.example"),
        (RuleAction::Hold, "*@held.example"),
    ] {
        t.loft
            .add_rule(
                &op,
                loft_core::service::CreateRuleRequest {
                    identity: None,
                    instance: Some(true),
                    direction: RuleDirection::Send,
                    action,
                    pattern: pattern.into(),
                    note: None,
                },
            )
            .await
            .unwrap();
    }
    let held = t.send(&a, &["x@example.com"], "hi", "hello").await;
    let id = held.approval.clone().unwrap().id.to_string();
    let kinds =
        |v: &loft_core::service::ApprovalView| -> Vec<HoldKind> { v.approval.reasons.iter().map(|r| r.kind).collect() };

    let before = t.audit_len().await;
    let e = expect_err(
        t.loft
            .edit_approval(
                &alice,
                &id,
                EditHeldMail {
                    to: Some(vec!["y@blocked.example".into()]),
                    ..edit()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "recipient_blocked", "{e:?}");
    assert_eq!(t.audit_len().await, before + 1, "only the refusal is written");
    let last = t.audit_rows().await.pop().unwrap();
    assert_eq!(
        (last.entry.action.as_str(), last.entry.outcome),
        ("approval.edit", loft_core::audit::Outcome::Denied)
    );
    let view = t.loft.get_approval(&alice, &id).await.unwrap();
    assert_eq!(view.message.to[0].as_str(), "x@example.com", "nothing was changed");

    let edited = t
        .loft
        .edit_approval(
            &alice,
            &id,
            EditHeldMail {
                to: Some(vec!["z@held.example".into()]),
                ..edit()
            },
        )
        .await
        .unwrap();
    let now = kinds(&edited);
    assert!(now.contains(&HoldKind::Mode), "{now:?}");
    assert!(now.contains(&HoldKind::Rule), "{now:?}");
    let first = edited
        .approval
        .reasons
        .iter()
        .find(|r| r.kind == HoldKind::FirstContact)
        .expect("z@held.example is a first contact");
    assert_eq!(first.addresses.len(), 1);
    assert_eq!(first.addresses[0].as_str(), "z@held.example");

    t.loft.approve(&alice, &id).await.unwrap();
    let known = t
        .store()
        .contacts(
            &a_c.identity.id,
            &[loft_core::address::EmailAddress::parse("z@held.example").unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(known.len(), 1, "the approved edit's recipient is a contact now");
}

/// `gated_all` holds incoming mail: a copy for the agent waits apart from its mailbox until a
/// reviewer releases it. Until then no read path shows it (list, thread, get, search, wait,
/// events); the reviewer sees it whole; release puts it in the inbox (and wakes the agent);
/// rejection keeps it out for good. Mail from outside (SMTP), mail released by a reviewer and
/// a `receive` hold rule in any mode pass the same gate.
pub async fn oversight_gated_all_holds_incoming_mail(store: Arc<dyn Store>) {
    use loft_core::oversight::HoldDirection;
    use loft_core::rules::{RuleAction, RuleDirection};
    use loft_core::service::{CreateRuleRequest, EventParams, SearchParams, WaitParams};
    let t = test_loft(store);
    let (g_c, g) = agent(&t, "guarded", OversightMode::GatedAll).await;
    let (s_c, s) = agent(&t, "sender", OversightMode::Autonomous).await;
    let (_, alice) = reviewer(&t, "alice").await;
    let op = t.operator().await;
    let incoming = || ListApprovalsParams {
        status: Some("pending".into()),
        direction: Some("receive".into()),
        ..Default::default()
    };

    let sent = t
        .send(&s, &[addr(&g_c)], "Zebra plan", "The zebra plan, in full.")
        .await;
    assert_eq!(sent.status, MessageStatus::Sent, "the sender's mail went out");
    assert_eq!(sent.delivery[0].status, DeliveryStatus::Delivered);

    // The agent sees nothing of it, by any path.
    assert_eq!(inbox_len(&t, &g).await, 0);
    let threads = t
        .loft
        .list_threads(&g, loft_core::service::ListThreadsParams::default())
        .await
        .unwrap();
    assert!(threads.items.is_empty(), "{threads:?}");
    let search = t
        .loft
        .search_messages(
            &g,
            SearchParams {
                q: "zebra".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(search.items.is_empty());
    let waited = t
        .loft
        .wait_for_mail(
            &g,
            WaitParams {
                timeout_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(waited.items.is_empty() && waited.decisions.is_empty(), "{waited:?}");
    let events = t.loft.list_events(&g, EventParams::default()).await.unwrap().items;
    assert!(events.is_empty(), "the agent learns nothing of held mail: {events:?}");

    // The reviewer's queue has it, whole; the agent cannot release it, nobody can edit it.
    let queue = t.loft.list_approvals(&alice, incoming()).await.unwrap().items;
    assert_eq!(queue.len(), 1, "{queue:?}");
    let held = &queue[0];
    assert_eq!(held.direction, HoldDirection::Receive);
    assert_eq!(held.identity_id, g_c.identity.id);
    assert_eq!(held.from.as_str(), addr(&s_c));
    assert_eq!(held.subject, "Zebra plan");
    assert_eq!(held.reasons[0].kind, HoldKind::Mode);
    let outgoing = ListApprovalsParams {
        direction: Some("send".into()),
        ..Default::default()
    };
    assert!(t.loft.list_approvals(&alice, outgoing).await.unwrap().items.is_empty());
    let view = t.loft.get_approval(&alice, held.id.as_str()).await.unwrap();
    assert!(view.message.text.contains("zebra plan"), "{:?}", view.message);
    assert_eq!(
        expect_err(t.loft.get_message(&g, held.message_id.as_str()).await).code(),
        "not_found"
    );
    assert_eq!(
        expect_err(t.loft.approve(&g, held.id.as_str()).await).code(),
        "missing_scope"
    );
    let edit = EditHeldMail {
        subject: Some("changed".into()),
        ..Default::default()
    };
    assert_eq!(
        expect_err(t.loft.edit_approval(&alice, held.id.as_str(), edit).await).code(),
        "received_mail_not_editable"
    );
    // Freezing outgoing mail does not stop a release: nothing leaves the server.
    t.loft.set_frozen(&op, true).await.unwrap();
    let decided = t.loft.approve(&alice, held.id.as_str()).await.unwrap();
    t.loft.set_frozen(&op, false).await.unwrap();
    assert_eq!(decided.status, ApprovalStatus::Approved);
    assert_eq!(decided.direction, HoldDirection::Receive);

    // Released: in the inbox, searchable, announced, under the id the reviewer saw.
    assert_eq!(inbox_len(&t, &g).await, 1);
    let got = t.loft.get_message(&g, held.message_id.as_str()).await.unwrap();
    assert_eq!(got.subject, "Zebra plan");
    assert_eq!(got.status, MessageStatus::Received);
    let search = t
        .loft
        .search_messages(
            &g,
            SearchParams {
                q: "zebra".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(search.items.len(), 1);
    let events = t.loft.list_events(&g, EventParams::default()).await.unwrap().items;
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["message.received"],
        "{events:?}"
    );
    // The reviewer still reads what it released.
    let view = t.loft.get_approval(&alice, held.id.as_str()).await.unwrap();
    assert_eq!(view.approval.status, ApprovalStatus::Approved);
    assert_eq!(view.message.subject, "Zebra plan");

    // A rejected one never reaches the agent; the reviewer can still read it.
    t.send(&s, &[addr(&g_c)], "Second", "No.").await;
    let second = t.loft.list_approvals(&alice, incoming()).await.unwrap().items;
    assert_eq!(second.len(), 1);
    t.loft
        .reject(
            &alice,
            second[0].id.as_str(),
            RejectRequest {
                reason: "not for this agent".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(inbox_len(&t, &g).await, 1);
    let view = t.loft.get_approval(&alice, second[0].id.as_str()).await.unwrap();
    assert_eq!(view.approval.status, ApprovalStatus::Rejected);
    assert_eq!(view.message.text.trim(), "No.");
    let waited = t
        .loft
        .wait_for_mail(
            &g,
            WaitParams {
                timeout_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        waited.decisions.is_empty(),
        "decisions on mail held for it are not the agent's: {waited:?}"
    );

    // Mail from outside passes the same gate.
    let env = loft_core::inbound::Envelope {
        client_ip: Some("127.0.0.1".into()),
        helo: "mx.outside.test".into(),
        mail_from: Some(loft_core::address::EmailAddress::parse("eve@outside.test").unwrap()),
        recipients: vec![g_c.identity.address.clone(), s_c.identity.address.clone()],
    };
    let raw = format!(
        "From: Eve <eve@outside.test>\r\nTo: {}\r\nCc: {}\r\nSubject: From outside\r\nMessage-ID: <out-1@outside.test>\r\n\r\nHello there.\r\n",
        addr(&g_c),
        addr(&s_c)
    );
    let receipt = t.loft.receive_inbound(&env, raw.as_bytes()).await.unwrap();
    assert_eq!(receipt.copies.len(), 2, "accepted for both: {receipt:?}");
    assert_eq!(inbox_len(&t, &g).await, 1, "held for the gated agent");
    assert_eq!(inbox_len(&t, &s).await, 1, "delivered to the other");
    let outside = t.loft.list_approvals(&alice, incoming()).await.unwrap().items;
    assert_eq!(outside.len(), 1);
    assert_eq!(outside[0].from.as_str(), "eve@outside.test");
    t.loft.approve(&op, outside[0].id.as_str()).await.unwrap();
    let got = t.loft.get_message(&g, outside[0].message_id.as_str()).await.unwrap();
    assert_eq!(got.subject, "From outside");
    assert_eq!(inbox_len(&t, &g).await, 2);

    // Held outgoing mail, once approved, meets the recipient's gate too.
    let (_, careful) = agent(&t, "careful", OversightMode::GatedSend).await;
    let out = t
        .loft
        .send(&careful, mail(&[addr(&g_c)], "Twice held", "x"))
        .await
        .unwrap();
    t.loft.approve(&alice, out.approval.unwrap().id.as_str()).await.unwrap();
    assert_eq!(inbox_len(&t, &g).await, 2);
    let again = t.loft.list_approvals(&alice, incoming()).await.unwrap().items;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].subject, "Twice held");
    t.loft.approve(&alice, again[0].id.as_str()).await.unwrap();
    assert_eq!(inbox_len(&t, &g).await, 3);

    // A `receive` hold rule holds in any mode, naming the rule.
    t.loft
        .add_rule(
            &op,
            CreateRuleRequest {
                identity: Some(s_c.identity.id.to_string()),
                instance: None,
                direction: RuleDirection::Receive,
                action: RuleAction::Hold,
                pattern: addr(&g_c).into(),
                note: None,
            },
        )
        .await
        .unwrap();
    t.send(&g, &[addr(&s_c)], "Ruled", "y").await;
    // The guarded agent's own send is held first (gated_all gates outgoing mail too).
    let out = t.loft.list_approvals(&alice, pending()).await.unwrap().items;
    let send_hold = out.iter().find(|a| a.direction == HoldDirection::Send).unwrap();
    t.loft.approve(&alice, send_hold.id.as_str()).await.unwrap();
    assert_eq!(
        inbox_len(&t, &s).await,
        1,
        "the rule holds the autonomous recipient's copy"
    );
    let ruled = t.loft.list_approvals(&alice, incoming()).await.unwrap().items;
    assert_eq!(ruled.len(), 1);
    assert_eq!(ruled[0].identity_id, s_c.identity.id);
    assert_eq!(ruled[0].reasons[0].kind, HoldKind::Rule);
    assert!(ruled[0].reasons[0].rule.is_some());
    t.assert_chain_ok().await;
}

/// The operator's per-identity oversight settings: the exfiltration guard can be turned off for
/// one identity (on by default), and mail between an identity and others of this server can be
/// exempted from its mode's gate (gated by default), in both directions; mail with any outside
/// recipient, and mail from outside, stay gated. Only the operator sets them.
pub async fn oversight_guard_and_internal_mail_settings(store: Arc<dyn Store>) {
    use loft_core::caps::{Guard, InternalMail};
    use loft_core::service::SetIdentityCapsRequest;
    let t = test_loft(store);
    let op = t.operator().await;
    let (a_c, a) = agent(&t, "a", OversightMode::GatedSend).await;
    let (b_c, b) = agent(&t, "b", OversightMode::Autonomous).await;
    let (g_c, g) = agent(&t, "g", OversightMode::GatedAll).await;
    let set = |internal: Option<InternalMail>, guard: Option<Guard>| SetIdentityCapsRequest {
        internal_mail: internal,
        exfiltration_guard: guard,
        ..Default::default()
    };
    // Defaults, and only the operator changes them.
    assert_eq!(a_c.identity.caps.exfiltration_guard, Guard::On);
    assert_eq!(a_c.identity.caps.internal_mail, InternalMail::Gated);
    let e = expect_err(
        t.loft
            .set_identity_caps(&a, a_c.identity.id.as_str(), set(Some(InternalMail::Exempt), None))
            .await,
    );
    assert_eq!(e.code(), "operator_only", "{e:?}");

    // Exempt: mail only to identities of this server goes at once; with an outside
    // recipient it is held as the mode says.
    let gated = t.loft.send(&a, mail(&[addr(&b_c)], "Before", "x")).await.unwrap();
    assert_eq!(gated.status, MessageStatus::PendingApproval);
    t.loft
        .set_identity_caps(&op, a_c.identity.id.as_str(), set(Some(InternalMail::Exempt), None))
        .await
        .unwrap();
    // Each request authenticates anew: the key's next request sees the setting.
    let a = t.actor(&a_c.api_key).await;
    let internal = t.loft.send(&a, mail(&[addr(&b_c)], "Internal", "x")).await.unwrap();
    assert_eq!(internal.status, MessageStatus::Sent);
    let mixed = t
        .loft
        .send(&a, mail(&[addr(&b_c), "client@outside.test"], "Mixed", "x"))
        .await
        .unwrap();
    assert_eq!(
        mixed.status,
        MessageStatus::PendingApproval,
        "an outside recipient keeps the gate"
    );

    // A gated_all recipient exempt for internal mail gets mail from colleagues at once, and
    // mail from outside only once released.
    t.loft
        .set_identity_caps(&op, g_c.identity.id.as_str(), set(Some(InternalMail::Exempt), None))
        .await
        .unwrap();
    t.send(&b, &[addr(&g_c)], "From a colleague", "x").await;
    assert_eq!(inbox_len(&t, &g).await, 1);
    let env = loft_core::inbound::Envelope {
        client_ip: Some("127.0.0.1".into()),
        helo: "mx.outside.test".into(),
        mail_from: Some(loft_core::address::EmailAddress::parse("eve@outside.test").unwrap()),
        recipients: vec![g_c.identity.address.clone()],
    };
    let raw = format!(
        "From: eve@outside.test\r\nTo: {}\r\nSubject: Outside\r\nMessage-ID: <o-1@outside.test>\r\n\r\nHi.\r\n",
        addr(&g_c)
    );
    t.loft.receive_inbound(&env, raw.as_bytes()).await.unwrap();
    assert_eq!(inbox_len(&t, &g).await, 1, "mail from outside is still held");

    // The guard off: a mail quoting the identity's secret is not held for it.
    let secret = "sk-live-8c1f/93+aa";
    t.loft
        .vault_store(
            &b,
            StoreCredentialRequest {
                label: Some("crm".into()),
                value: Some(secret.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let held = t
        .loft
        .send(&b, mail(&[addr(&a_c)], "Key", &format!("it is {secret}")))
        .await
        .unwrap();
    assert_eq!(held.status, MessageStatus::PendingApproval);
    t.loft
        .set_identity_caps(&op, b_c.identity.id.as_str(), set(None, Some(Guard::Off)))
        .await
        .unwrap();
    let b = t.actor(&b_c.api_key).await;
    let sent = t
        .loft
        .send(&b, mail(&[addr(&a_c)], "Key again", &format!("it is {secret}")))
        .await
        .unwrap();
    assert_eq!(sent.status, MessageStatus::Sent, "the guard is off for b");
    let shown = t.loft.get_identity(&op, b_c.identity.id.as_str()).await.unwrap();
    assert_eq!(shown.caps.exfiltration_guard, Guard::Off);
    assert!(t.audit_count("identity.caps").await >= 3);
}
