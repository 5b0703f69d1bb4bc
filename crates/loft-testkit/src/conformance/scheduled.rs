//! Scheduled send: stored now, invisible to recipients until `send_at`, released exactly once by
//! the job runner (also when held and approved first, across restarts, with two runners, and
//! racing a cancel), canceled and rescheduled by its composer or the operator.

use std::sync::Arc;

use loft_core::identity::CreatedIdentity;
use loft_core::mail::{DeliveryStatus, Message, MessageStatus, ReplyMail, SendMail};
use loft_core::oversight::OversightMode;
use loft_core::runner::JobRunner;
use loft_core::service::{Actor, CreateDraftRequest, CreateIdentityRequest, RescheduleRequest, SendDraftRequest};
use loft_core::store::Store;
use loft_core::time::Timestamp;

use crate::conformance::mail::folder;
use crate::{TestLoft, expect_err, mail, test_loft};

fn addr(c: &CreatedIdentity) -> &str {
    c.identity.address.as_str()
}

fn at(t: &TestLoft, secs_from_now: i64) -> String {
    t.loft.now().plus_secs(secs_from_now).to_rfc3339()
}

fn later(to: &str, subject: &str, send_at: String) -> SendMail {
    SendMail {
        send_at: Some(send_at),
        ..mail(&[to], subject, "see you then")
    }
}

async fn inbox_len(t: &TestLoft, who: &Actor) -> usize {
    t.all_messages(who, folder("inbox")).await.len()
}

async fn agent(t: &TestLoft, name: &str, mode: OversightMode) -> (CreatedIdentity, Actor) {
    t.identity_with(CreateIdentityRequest {
        name: name.into(),
        oversight_mode: Some(mode),
        ..Default::default()
    })
    .await
}

async fn mine(t: &TestLoft, who: &Actor, m: &Message) -> Message {
    t.loft.get_message(who, m.id.as_str()).await.unwrap()
}

/// Nothing reaches the recipient before `send_at`; the runner releases it once after.
pub async fn scheduled_send_waits_then_goes_once(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = t.identity("a").await;
    let (b_c, b) = t.identity("b").await;
    let runner = JobRunner::new(t.loft.clone(), "runner-1");

    let m = t.loft.send(&a, later(addr(&b_c), "Later", at(&t, 3600))).await.unwrap();
    assert_eq!(m.status, MessageStatus::Scheduled);
    let send_at = m.send_at.expect("the send_at is shown");
    assert!(
        m.delivery.iter().all(|d| d.status == DeliveryStatus::Scheduled),
        "{m:?}"
    );
    assert_eq!(runner.run_due().await.unwrap().completed, 0, "not due");
    assert_eq!(inbox_len(&t, &b).await, 0, "invisible before its time");
    let listed = t.all_messages(&a, folder("sent")).await;
    assert_eq!(listed[0].status, MessageStatus::Scheduled);

    t.clock.set(send_at.plus_secs(1));
    assert_eq!(runner.run_due().await.unwrap().completed, 1);
    assert_eq!(inbox_len(&t, &b).await, 1);
    let sent = mine(&t, &a, &m).await;
    assert_eq!(sent.status, MessageStatus::Sent);
    assert_eq!(sent.send_at, Some(send_at), "the send_at stays on the copy");
    assert!(
        sent.delivery.iter().all(|d| d.status == DeliveryStatus::Delivered),
        "{sent:?}"
    );
    assert_eq!(runner.run_due().await.unwrap().completed, 0);
    assert_eq!(inbox_len(&t, &b).await, 1, "released once");
    assert_eq!(t.audit_count("mail.release").await, 1);
    let e = expect_err(t.loft.cancel_scheduled(&a, m.id.as_str()).await);
    assert_eq!(e.code(), "not_scheduled");
    assert!(e.hint().unwrap_or_default().contains("sent already"), "{e:?}");

    // A reply and a draft are scheduled the same way.
    let inbox = t.all_messages(&b, folder("inbox")).await;
    let r = t
        .loft
        .reply(
            &b,
            inbox[0].id.as_str(),
            ReplyMail {
                text: "ok".into(),
                send_at: Some(at(&t, 60)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.status, MessageStatus::Scheduled);
    let d = t
        .loft
        .create_draft(
            &a,
            CreateDraftRequest {
                to: vec![addr(&b_c).to_owned()],
                subject: "drafted".into(),
                text: "x".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ds = t
        .loft
        .send_draft(
            &a,
            d.id.as_str(),
            SendDraftRequest {
                send_at: Some(at(&t, 60)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ds.status, MessageStatus::Scheduled);
    t.clock.advance_secs(61);
    assert_eq!(runner.run_due().await.unwrap().completed, 2);
    assert_eq!(inbox_len(&t, &b).await, 2);
    let back = t.all_messages(&a, folder("inbox")).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].thread_id, m.thread_id, "a scheduled reply threads as a reply");

    // send_at is checked: not a time, too far, in the past; a few seconds ago is now.
    for (send_at, code) in [
        ("next tuesday".to_owned(), "invalid_send_at"),
        (at(&t, 366 * 24 * 3600), "send_at_too_far"),
        (at(&t, -3600), "send_at_in_past"),
    ] {
        let e = expect_err(t.loft.send(&a, later(addr(&b_c), "bad", send_at)).await);
        assert_eq!(e.code(), code, "{e:?}");
    }
    let now = t.loft.send(&a, later(addr(&b_c), "now", at(&t, -2))).await.unwrap();
    assert_eq!(now.status, MessageStatus::Sent);
    assert_eq!(inbox_len(&t, &b).await, 3);
    t.assert_chain_ok().await;
}

/// A gated mail with `send_at` is approved first, then waits for its time; approved after its
/// time, it goes at once.
pub async fn scheduled_gated_approve_then_waits(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, g) = agent(&t, "g", OversightMode::GatedSend).await;
    let (b_c, b) = t.identity("b").await;
    let op = t.operator().await;
    let runner = JobRunner::new(t.loft.clone(), "runner-1");

    let held = t.loft.send(&g, later(addr(&b_c), "Gated", at(&t, 3600))).await.unwrap();
    assert_eq!(held.status, MessageStatus::PendingApproval);
    let send_at = held.send_at.expect("a held mail shows its send_at");
    let approval = held.approval.clone().unwrap().id;
    t.loft.approve(&op, approval.as_str()).await.unwrap();
    let after = mine(&t, &g, &held).await;
    assert_eq!(after.status, MessageStatus::Scheduled, "approved, now waiting");
    assert_eq!(inbox_len(&t, &b).await, 0);
    runner.run_due().await.unwrap();
    assert_eq!(inbox_len(&t, &b).await, 0, "still not its time");
    t.clock.set(send_at.plus_secs(1));
    assert_eq!(runner.run_due().await.unwrap().completed, 1);
    assert_eq!(inbox_len(&t, &b).await, 1);
    assert_eq!(mine(&t, &g, &held).await.status, MessageStatus::Sent);

    // Approved only after its time: released by the approval itself.
    let held = t.loft.send(&g, later(addr(&b_c), "Late", at(&t, 60))).await.unwrap();
    t.clock.advance_secs(120);
    t.loft
        .approve(&op, held.approval.clone().unwrap().id.as_str())
        .await
        .unwrap();
    assert_eq!(inbox_len(&t, &b).await, 2);
    assert_eq!(mine(&t, &g, &held).await.status, MessageStatus::Sent);
    runner.run_due().await.unwrap();
    assert_eq!(inbox_len(&t, &b).await, 2);
}

/// Cancel and reschedule: by the composer or the operator, never by another identity, never
/// once sent; a canceled or moved mail is released only as it now says.
pub async fn scheduled_cancel_and_reschedule(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = t.identity("a").await;
    let (b_c, b) = t.identity("b").await;
    let op = t.operator().await;
    let runner = JobRunner::new(t.loft.clone(), "runner-1");

    let m = t
        .loft
        .send(&a, later(addr(&b_c), "Cancel me", at(&t, 600)))
        .await
        .unwrap();
    let e = expect_err(t.loft.cancel_scheduled(&b, m.id.as_str()).await);
    assert_eq!(e.code(), "not_found", "another identity's mail is not found");
    let c = t.loft.cancel_scheduled(&a, m.id.as_str()).await.unwrap();
    assert_eq!(c.status, MessageStatus::Canceled);
    let e = expect_err(t.loft.cancel_scheduled(&a, m.id.as_str()).await);
    assert_eq!(e.code(), "not_scheduled");
    let e = expect_err(
        t.loft
            .reschedule(&a, m.id.as_str(), RescheduleRequest { send_at: at(&t, 60) })
            .await,
    );
    assert_eq!(e.code(), "not_scheduled");
    t.clock.advance_secs(601);
    runner.run_due().await.unwrap();
    assert_eq!(inbox_len(&t, &b).await, 0, "a canceled mail never goes");
    assert_eq!(mine(&t, &a, &m).await.status, MessageStatus::Canceled);

    // Earlier: goes at the new time, once.
    let m = t
        .loft
        .send(&a, later(addr(&b_c), "Sooner", at(&t, 3600)))
        .await
        .unwrap();
    let moved = t
        .loft
        .reschedule(&a, m.id.as_str(), RescheduleRequest { send_at: at(&t, 60) })
        .await
        .unwrap();
    assert_eq!(moved.status, MessageStatus::Scheduled);
    assert!(moved.send_at < m.send_at);
    t.clock.advance_secs(61);
    assert_eq!(runner.run_due().await.unwrap().completed, 1);
    assert_eq!(inbox_len(&t, &b).await, 1);
    t.clock.advance_secs(3600);
    runner.run_due().await.unwrap();
    assert_eq!(inbox_len(&t, &b).await, 1, "the old time releases nothing");

    // Later: the old time releases nothing; the operator may move or cancel anyone's.
    let m = t.loft.send(&a, later(addr(&b_c), "Later", at(&t, 60))).await.unwrap();
    t.loft
        .reschedule(&op, m.id.as_str(), RescheduleRequest { send_at: at(&t, 7200) })
        .await
        .unwrap();
    t.clock.advance_secs(120);
    runner.run_due().await.unwrap();
    assert_eq!(inbox_len(&t, &b).await, 1);
    let c = t.loft.cancel_scheduled(&op, m.id.as_str()).await.unwrap();
    assert_eq!(c.status, MessageStatus::Canceled);
    let e = expect_err(t.loft.cancel_scheduled(&op, "msg_nosuchmessage").await);
    assert_eq!(e.code(), "not_found");
    let actions = t.audit_actions().await;
    for want in ["mail.cancel", "mail.reschedule", "mail.release"] {
        assert!(actions.iter().any(|x| x == want), "{want} missing from {actions:?}");
    }
}

/// A cancel racing the release: whichever wins, the outcome is consistent (sent once and the
/// cancel refused, or canceled and never sent).
pub async fn scheduled_cancel_races_release(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = t.identity("a").await;
    let (b_c, b) = t.identity("b").await;
    let mut delivered = 0;
    for round in 0..8 {
        let m = t
            .loft
            .send(&a, later(addr(&b_c), &format!("race {round}"), at(&t, 1)))
            .await
            .unwrap();
        t.clock.advance_secs(2);
        let runner = JobRunner::new(t.loft.clone(), format!("runner-{round}"));
        let (loft, who, id) = (t.loft.clone(), a.clone(), m.id.to_string());
        let cancel = tokio::spawn(async move { loft.cancel_scheduled(&who, &id).await });
        let run = tokio::spawn(async move { runner.run_due().await });
        let canceled = cancel.await.unwrap();
        run.await.unwrap().unwrap();
        let now = mine(&t, &a, &m).await;
        match canceled {
            Ok(c) => {
                assert_eq!(c.status, MessageStatus::Canceled);
                assert_eq!(now.status, MessageStatus::Canceled);
            }
            Err(e) => {
                assert_eq!(e.code(), "not_scheduled", "{e:?}");
                assert_eq!(now.status, MessageStatus::Sent);
                delivered += 1;
            }
        }
        assert_eq!(inbox_len(&t, &b).await, delivered, "round {round}");
    }
}

/// The schedule is in the database: a restarted server (a new Loft on the same store) releases
/// it, and two runners (two nodes) release it once.
pub async fn scheduled_survives_restart_and_runs_once_on_two_nodes(store: Arc<dyn Store>) {
    let t = test_loft(store.clone());
    let (_, a) = t.identity("a").await;
    let (b_c, b) = t.identity("b").await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let m = t
            .loft
            .send(&a, later(addr(&b_c), &format!("m{i}"), at(&t, 60)))
            .await
            .unwrap();
        ids.push(m);
    }
    let restarted = t.another_node(store.clone());
    let other = t.another_node(store);
    t.clock.advance_secs(61);
    let r1 = JobRunner::new(restarted.loft.clone(), "node-1");
    let r2 = JobRunner::new(other.loft.clone(), "node-2");
    let (x, y) = tokio::join!(r1.run_due(), r2.run_due());
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.completed + y.completed, 6, "{x:?} {y:?}");
    assert_eq!(inbox_len(&restarted, &b).await, 6, "each released once");
    assert_eq!(restarted.audit_count("mail.release").await, 6);
    for m in &ids {
        assert_eq!(mine(&restarted, &a, m).await.status, MessageStatus::Sent);
    }
}

/// A frozen instance or a paused sender at release time: the job retries later, and the mail
/// goes once the switch is off. A revoked sender's scheduled mail is canceled.
pub async fn scheduled_release_waits_for_kill_switches(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a_c, a) = t.identity("a").await;
    let (b_c, b) = t.identity("b").await;
    let op = t.operator().await;
    let runner = JobRunner::new(t.loft.clone(), "runner-1");

    let m = t.loft.send(&a, later(addr(&b_c), "Frozen", at(&t, 60))).await.unwrap();
    t.loft.set_frozen(&op, true).await.unwrap();
    t.clock.advance_secs(61);
    assert_eq!(runner.run_due().await.unwrap().retried, 1);
    assert_eq!(inbox_len(&t, &b).await, 0);
    t.loft.set_frozen(&op, false).await.unwrap();
    t.loft.set_paused(&op, a_c.identity.id.as_str(), true).await.unwrap();
    t.clock.advance_secs(61);
    assert_eq!(runner.run_due().await.unwrap().retried, 1, "a paused sender waits too");
    assert_eq!(inbox_len(&t, &b).await, 0);
    t.loft.set_paused(&op, a_c.identity.id.as_str(), false).await.unwrap();
    t.clock.advance_secs(61);
    assert_eq!(runner.run_due().await.unwrap().completed, 1);
    assert_eq!(inbox_len(&t, &b).await, 1);
    assert_eq!(mine(&t, &a, &m).await.status, MessageStatus::Sent);

    let m = t.loft.send(&a, later(addr(&b_c), "Orphan", at(&t, 60))).await.unwrap();
    t.loft.revoke_identity(&op, a_c.identity.id.as_str()).await.unwrap();
    t.clock.advance_secs(61);
    assert_eq!(runner.run_due().await.unwrap().completed, 1);
    assert_eq!(inbox_len(&t, &b).await, 1, "a revoked sender's mail is not sent");
    let status = t.store().scheduled_mail(&m.id).await.unwrap().map(|s| s.status);
    assert_eq!(status, Some(MessageStatus::Canceled));
    let _: Option<Timestamp> = m.send_at;
}
