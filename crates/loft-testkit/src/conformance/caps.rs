//! Sending controls: caps per identity and per instance counted from the store (with the time
//! to wait), contacts recorded by the mail they come from, and the first-contact hold.

use std::sync::Arc;

use loft_core::Error;
use loft_core::address::EmailAddress;
use loft_core::caps::{CapCounter, FirstContact};
use loft_core::identity::CreatedIdentity;
use loft_core::mail::{MessageStatus, ReplyMail};
use loft_core::oversight::{HoldKind, OversightMode};
use loft_core::service::{Actor, CreateIdentityRequest, RejectRequest, SetIdentityCapsRequest, SetInstanceCapsRequest};
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

fn addr(c: &CreatedIdentity) -> &str {
    c.identity.address.as_str()
}

/// Sets an identity's caps as the operator and returns an actor that sees them (an actor
/// carries the identity as it was when its key was checked, as a request does).
async fn set_caps(t: &TestLoft, who: &CreatedIdentity, req: SetIdentityCapsRequest) -> Actor {
    let op = t.operator().await;
    t.loft
        .set_identity_caps(&op, who.identity.id.as_str(), req)
        .await
        .unwrap();
    t.actor(&who.api_key).await
}

fn retry_after(e: &Error) -> u64 {
    match e {
        Error::TooManyRequests { retry_after_secs, .. } => *retry_after_secs,
        other => panic!("expected 429 cap_reached, got {other:?}"),
    }
}

async fn sent_count(t: &TestLoft, who: &Actor) -> usize {
    t.all_messages(who, folder("sent")).await.len()
}

/// `mails_per_hour`: the N+1th mail in an hour is refused with the seconds until the oldest
/// leaves the window, writes nothing, and goes through once that time has passed; held mail
/// counts too.
pub async fn caps_hourly_cap_refuses_then_allows(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, _) = agent(&t, "a", OversightMode::Autonomous).await;
    let (b, _) = agent(&t, "b", OversightMode::Autonomous).await;
    let aa = set_caps(
        &t,
        &a,
        SetIdentityCapsRequest {
            mails_per_hour: Some(Some(3)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(aa.identity().unwrap().caps.mails_per_hour, Some(3));

    t.send(&aa, &[addr(&b)], "1", "one").await;
    t.clock.advance_secs(10);
    t.send(&aa, &[addr(&b)], "2", "two").await;
    t.clock.advance_secs(10);
    t.send(&aa, &[addr(&b)], "3", "three").await;
    t.clock.advance_secs(10);
    let before = t.audit_len().await;
    let e = expect_err(t.loft.send(&aa, mail(&[addr(&b)], "4", "four")).await);
    assert_eq!(e.code(), "cap_reached");
    // The first mail was composed 30 s ago: it leaves the hour in 3570 s.
    assert_eq!(retry_after(&e), 3570);
    let text = e.to_string();
    assert!(
        text.contains("identity cap `mails_per_hour` (3)") && text.contains("3 mails"),
        "{text}"
    );
    assert!(e.hint().unwrap().contains("wait 3570 s"), "{e:?}");
    assert_eq!(sent_count(&t, &aa).await, 3, "a refused send writes nothing");
    assert_eq!(t.audit_len().await, before);
    // A reply counts the same; b, uncapped, still sends.
    let bb = t.actor(&b.api_key).await;
    t.send(&bb, &[addr(&a)], "question", "?").await;
    let inbox = t.all_messages(&aa, folder("inbox")).await;
    let e = expect_err(
        t.loft
            .reply(
                &aa,
                inbox[0].id.as_str(),
                ReplyMail {
                    idempotency_key: None,
                    text: "answer".into(),
                    html: None,
                    reply_all: false,
                    send_at: None,
                    attachments: vec![],
                },
            )
            .await,
    );
    assert_eq!(e.code(), "cap_reached");

    // One second early, still refused; at the time said, one more fits.
    t.clock.advance_secs(3569);
    let e = expect_err(t.loft.send(&aa, mail(&[addr(&b)], "4", "four")).await);
    assert_eq!(retry_after(&e), 1);
    t.clock.advance_secs(1);
    t.send(&aa, &[addr(&b)], "4", "four").await;
    let e = expect_err(t.loft.send(&aa, mail(&[addr(&b)], "5", "five")).await);
    assert_eq!(retry_after(&e), 10, "the second mail leaves 10 s later");

    // Held mail counts: it was an attempt.
    t.clock.advance_secs(3600);
    let op = t.operator().await;
    t.loft
        .update_identity(
            &op,
            a.identity.id.as_str(),
            loft_core::service::UpdateIdentityRequest {
                oversight_mode: Some(OversightMode::GatedSend),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let aa = t.actor(&a.api_key).await;
    for n in 0..3 {
        let m = t.send(&aa, &[addr(&b)], &format!("held {n}"), "held").await;
        assert_eq!(m.status, MessageStatus::PendingApproval);
    }
    let e = expect_err(t.loft.send(&aa, mail(&[addr(&b)], "held 4", "held")).await);
    assert_eq!(e.code(), "cap_reached");
}

/// `mails_per_day` counts 24 hours, and the refusal names the day's cap.
pub async fn caps_daily_cap(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, _) = agent(&t, "a", OversightMode::Autonomous).await;
    let (b, _) = agent(&t, "b", OversightMode::Autonomous).await;
    let aa = set_caps(
        &t,
        &a,
        SetIdentityCapsRequest {
            mails_per_hour: Some(Some(10)),
            mails_per_day: Some(Some(2)),
            ..Default::default()
        },
    )
    .await;
    t.send(&aa, &[addr(&b)], "1", "one").await;
    t.clock.advance_secs(2 * 3600);
    t.send(&aa, &[addr(&b)], "2", "two").await;
    t.clock.advance_secs(2 * 3600);
    let e = expect_err(t.loft.send(&aa, mail(&[addr(&b)], "3", "three")).await);
    assert!(e.to_string().contains("`mails_per_day` (2)"), "{e}");
    assert_eq!(retry_after(&e), 20 * 3600);
    t.clock.advance_secs(20 * 3600);
    t.send(&aa, &[addr(&b)], "3", "three").await;

    // Removing the cap (null) lets mail through at once.
    let e = expect_err(t.loft.send(&aa, mail(&[addr(&b)], "4", "four")).await);
    assert_eq!(e.code(), "cap_reached");
    let aa = set_caps(
        &t,
        &a,
        SetIdentityCapsRequest {
            mails_per_day: Some(None),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(aa.identity().unwrap().caps.mails_per_day, None);
    assert_eq!(aa.identity().unwrap().caps.mails_per_hour, Some(10), "left out: kept");
    t.send(&aa, &[addr(&b)], "4", "four").await;
}

/// `new_recipients_per_day` counts addresses first written to in 24 hours (this mail's new
/// ones included); writing again to a known one is free.
pub async fn caps_new_recipients_cap(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, _) = agent(&t, "a", OversightMode::Autonomous).await;
    let aa = set_caps(
        &t,
        &a,
        SetIdentityCapsRequest {
            new_recipients_per_day: Some(Some(3)),
            ..Default::default()
        },
    )
    .await;
    t.send(&aa, &["x1@example.com", "x2@example.com"], "hi", "hello").await;
    t.clock.advance_secs(60);
    // Known addresses again: nothing new.
    t.send(&aa, &["x1@example.com", "x2@example.com"], "again", "hello")
        .await;
    // Two new ones would make four.
    let e = expect_err(
        t.loft
            .send(
                &aa,
                mail(&["x1@example.com", "x3@example.com", "x4@example.com"], "more", "hi"),
            )
            .await,
    );
    assert!(e.to_string().contains("`new_recipients_per_day` (3)"), "{e}");
    assert_eq!(retry_after(&e), 24 * 3600 - 60);
    // One fits.
    t.send(&aa, &["x1@example.com", "x3@example.com"], "one more", "hi")
        .await;
    // More new recipients in one mail than the whole cap: never fits (403).
    let e = expect_err(
        t.loft
            .send(
                &aa,
                mail(
                    &["y1@example.com", "y2@example.com", "y3@example.com", "y4@example.com"],
                    "x",
                    "x",
                ),
            )
            .await,
    );
    assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
    assert_eq!(e.code(), "cap_reached");
    // The window moves on.
    t.clock.advance_secs(24 * 3600);
    t.send(
        &aa,
        &["x5@example.com", "x6@example.com", "x7@example.com"],
        "next day",
        "hi",
    )
    .await;

    // The store's counts, directly.
    let s = t.store();
    let since = t.loft.now().plus_secs(-24 * 3600);
    let w = s
        .cap_window(CapCounter::NewRecipients, Some(&a.identity.id), since, 1)
        .await
        .unwrap();
    assert_eq!(w.count, 3);
    // The second oldest of the three, all first written to a moment ago.
    let at = w.frees_at.expect("more than `keep`: the entry that frees a place");
    assert!(at > since.plus_secs(24 * 3600 - 1) && at <= t.loft.now(), "{at:?}");
    let w = s
        .cap_window(CapCounter::Mails, Some(&a.identity.id), since, u64::MAX)
        .await
        .unwrap();
    assert_eq!((w.count, w.frees_at), (1, None));
}

/// Instance caps count every identity's mail together; the refusal says so.
pub async fn caps_instance_cap_across_identities(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = agent(&t, "a", OversightMode::Autonomous).await;
    let (b, bb) = agent(&t, "b", OversightMode::Autonomous).await;
    let op = t.operator().await;
    let before = t.audit_count("instance.caps").await;
    let status = t
        .loft
        .set_instance_caps(
            &op,
            SetInstanceCapsRequest {
                mails_per_hour: Some(Some(3)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(status.caps.mails_per_hour, Some(3));
    assert_eq!(status.used.mails_last_hour, Some(0));
    assert_eq!(status.used.mails_last_day, None, "no day cap, not counted");
    assert_eq!(t.audit_count("instance.caps").await, before + 1);

    t.send(&aa, &[addr(&b)], "1", "x").await;
    t.clock.advance_secs(5);
    t.send(&bb, &[addr(&a)], "2", "x").await;
    t.send(&aa, &[addr(&b)], "3", "x").await;
    t.clock.advance_secs(5);
    for who in [&aa, &bb] {
        let e = expect_err(t.loft.send(who, mail(&["z@example.com"], "4", "x")).await);
        assert_eq!(retry_after(&e), 3590);
        assert!(e.to_string().contains("instance cap `mails_per_hour` (3)"), "{e}");
        assert!(e.hint().unwrap().contains("loft caps --per-hour"), "{e:?}");
    }
    let status = t.loft.instance_caps(&op).await.unwrap();
    assert_eq!(status.used.mails_last_hour, Some(3));
    // whoami shows the agent its budget: the instance cap, and what it sent.
    let me = t.loft.whoami(&bb).await.unwrap().sending.unwrap();
    assert_eq!(me.instance_caps.mails_per_hour, Some(3));
    crate::assert_whoami_context(t.store().as_ref(), &b.identity).await;
    assert_eq!(me.used.mails_last_hour, Some(1));
    assert_eq!(me.caps.mails_per_hour, None);

    // Only the operator sets caps; agents cannot read the instance's directly.
    let e = expect_err(t.loft.set_instance_caps(&aa, SetInstanceCapsRequest::default()).await);
    assert_eq!(e.code(), "operator_only");
    let e = expect_err(
        t.loft
            .set_identity_caps(
                &aa,
                a.identity.id.as_str(),
                SetIdentityCapsRequest {
                    mails_per_hour: Some(None),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "operator_only");
    let e = expect_err(t.loft.instance_caps(&aa).await);
    assert_eq!(e.code(), "operator_only");
    // Bad values and empty changes are refused, naming the field.
    let e = expect_err(
        t.loft
            .set_instance_caps(
                &op,
                SetInstanceCapsRequest {
                    mails_per_day: Some(Some(0)),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "invalid_cap");
    assert!(e.to_string().contains("mails_per_day"), "{e}");
    let e = expect_err(t.loft.set_instance_caps(&op, SetInstanceCapsRequest::default()).await);
    assert_eq!(e.code(), "empty_update");

    // Cleared, mail flows again.
    t.loft
        .set_instance_caps(
            &op,
            SetInstanceCapsRequest {
                mails_per_hour: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    t.send(&aa, &[addr(&b)], "5", "x").await;
    assert_eq!(t.store().instance_caps().await.unwrap().mails_per_hour, None);
}

/// `first_contact: hold` holds mail to a new address in autonomous mode, naming the address;
/// an address becomes known by mail received from it or an approved send to it, never by a
/// held, rejected mail.
pub async fn caps_first_contact_hold(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, _) = agent(&t, "a", OversightMode::Autonomous).await;
    let (b, bb) = agent(&t, "b", OversightMode::Autonomous).await;
    let (c, _) = agent(&t, "c", OversightMode::Autonomous).await;
    let (_, alice) = t
        .identity_with_scopes("alice", &["oversight", "mail:read", "keys:manage"])
        .await;
    let op = t.operator().await;
    let before = t.audit_count("identity.caps").await;
    let aa = set_caps(
        &t,
        &a,
        SetIdentityCapsRequest {
            first_contact: Some(FirstContact::Hold),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(t.audit_count("identity.caps").await, before + 1);
    let shown = t.loft.identity_caps(&op, a.identity.id.as_str()).await.unwrap();
    assert_eq!(shown.caps.first_contact, FirstContact::Hold);
    assert_eq!(
        t.loft.whoami(&aa).await.unwrap().sending.unwrap().caps.first_contact,
        FirstContact::Hold
    );

    // A new address: held, whatever the mode, naming it.
    let held = t.send(&aa, &[addr(&c)], "hello", "first").await;
    assert_eq!(held.status, MessageStatus::PendingApproval);
    let approval = held.approval.clone().unwrap();
    assert_eq!(approval.reasons.len(), 1, "{approval:?}");
    assert_eq!(approval.reasons[0].kind, HoldKind::FirstContact);
    assert_eq!(approval.reasons[0].addresses, vec![c.identity.address.clone()]);
    assert!(approval.reasons[0].detail.contains(addr(&c)), "{approval:?}");
    // Rejected: still unknown, the next mail is held again.
    t.loft
        .reject(
            &alice,
            approval.id.as_str(),
            RejectRequest {
                reason: "not yet".into(),
            },
        )
        .await
        .unwrap();
    let again = t.send(&aa, &[addr(&c)], "hello", "second").await;
    assert_eq!(again.status, MessageStatus::PendingApproval);
    // Approved: known from then on.
    t.loft
        .approve(&alice, again.approval.unwrap().id.as_str())
        .await
        .unwrap();
    let third = t.send(&aa, &[addr(&c)], "hello", "third").await;
    assert_eq!(third.status, MessageStatus::Sent, "{third:?}");

    // Mail received from an address makes it known too.
    let to_b = t.send(&aa, &[addr(&b)], "b?", "x").await;
    assert_eq!(to_b.status, MessageStatus::PendingApproval);
    t.send(&bb, &[addr(&a)], "from b", "hi a").await;
    let to_b = t.send(&aa, &[addr(&b)], "b!", "x").await;
    assert_eq!(to_b.status, MessageStatus::Sent);
    // Mail to a known and a new address is held for the new one only.
    let mixed = t.send(&aa, &[addr(&b), "new@example.com"], "mixed", "x").await;
    let reasons = mixed.approval.unwrap().reasons;
    assert_eq!(reasons[0].addresses.len(), 1);
    assert_eq!(reasons[0].addresses[0].as_str(), "new@example.com");

    // The store's contacts: what a knows, and what b learnt from a's mail.
    let s = t.store();
    let known = s
        .contacts(
            &a.identity.id,
            &[
                b.identity.address.clone(),
                c.identity.address.clone(),
                loft_core::address::EmailAddress::parse("new@example.com").unwrap(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(known.len(), 2, "{known:?}");
    let kb = known.iter().find(|k| k.address == b.identity.address).unwrap();
    assert!(kb.first_sent_at.is_some() && kb.first_received_at.is_some(), "{kb:?}");
    let kc = known.iter().find(|k| k.address == c.identity.address).unwrap();
    assert!(kc.first_sent_at.is_some() && kc.first_received_at.is_none(), "{kc:?}");
    let c_knows = s
        .contacts(&c.identity.id, std::slice::from_ref(&a.identity.address))
        .await
        .unwrap();
    assert_eq!(c_knows.len(), 1);
    assert!(c_knows[0].first_received_at.is_some() && c_knows[0].first_sent_at.is_none());

    // Back to allow: nothing held.
    let aa = set_caps(
        &t,
        &a,
        SetIdentityCapsRequest {
            first_contact: Some(FirstContact::Allow),
            ..Default::default()
        },
    )
    .await;
    let free = t.send(&aa, &["other@example.com"], "free", "x").await;
    assert_eq!(free.status, MessageStatus::Sent);
}

/// Mail of every kind that leaves contacts behind, for the stores' tests of the migration's
/// backfill (which must find the contacts the live code recorded): sends to local and remote
/// addresses with cc and bcc, a reply, mail to oneself, and held mail approved, rejected and
/// left pending.
pub async fn contacts_story(t: &TestLoft) {
    let (a, aa) = agent(t, "a", OversightMode::Autonomous).await;
    let (b, bb) = agent(t, "b", OversightMode::Autonomous).await;
    let (c, _) = agent(t, "c", OversightMode::Autonomous).await;
    let (_, gg) = agent(t, "g", OversightMode::GatedSend).await;
    let op = t.operator().await;
    let m = loft_core::mail::SendMail {
        cc: vec![addr(&c).to_owned()],
        bcc: vec!["hidden@example.com".to_owned()],
        ..mail(&[addr(&b), "x@example.com"], "hello", "all of you")
    };
    t.loft.send(&aa, m).await.unwrap();
    t.clock.advance_secs(7);
    let inbox = t.all_messages(&bb, folder("inbox")).await;
    t.loft
        .reply(
            &bb,
            inbox[0].id.as_str(),
            ReplyMail {
                idempotency_key: None,
                text: "thanks".into(),
                html: None,
                reply_all: true,
                send_at: None,
                attachments: vec![],
            },
        )
        .await
        .unwrap();
    t.send(&aa, &[addr(&a)], "note to self", "x").await;
    t.clock.advance_secs(7);
    let approved = t.send(&gg, &[addr(&b), "y@example.com"], "approve me", "x").await;
    let rejected = t.send(&gg, &[addr(&c)], "reject me", "x").await;
    t.send(&gg, &["pending@example.com"], "leave me", "x").await;
    t.clock.advance_secs(7);
    t.loft
        .approve(&op, approved.approval.unwrap().id.as_str())
        .await
        .unwrap();
    t.loft
        .reject(
            &op,
            rejected.approval.unwrap().id.as_str(),
            RejectRequest { reason: "no".into() },
        )
        .await
        .unwrap();
    // A scheduled mail records its contacts when it is released, not when it is scheduled.
    let runner = loft_core::runner::JobRunner::new(t.loft.clone(), "contacts-story");
    let soon = t
        .loft
        .send(&aa, scheduled(t, &["released@example.com"], 60))
        .await
        .unwrap();
    t.loft
        .send(&aa, scheduled(t, &["waiting@example.com"], 3600))
        .await
        .unwrap();
    // The held-mail notice jobs of the mails held before run first (decided already, they
    // write nothing); then only the release is due.
    runner.run_due().await.unwrap();
    t.clock.set(soon.send_at.expect("a scheduled mail shows its send_at"));
    assert_eq!(runner.run_due().await.unwrap().completed, 1);
    let known: Vec<String> = t
        .store()
        .contacts(
            &a.identity.id,
            &[
                EmailAddress::parse("released@example.com").unwrap(),
                EmailAddress::parse("waiting@example.com").unwrap(),
            ],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.address.to_string())
        .collect();
    assert_eq!(known, ["released@example.com"], "only the released mail's recipient");
}

/// A mail to `to` scheduled `secs` ahead.
fn scheduled(t: &TestLoft, to: &[&str], secs: i64) -> loft_core::mail::SendMail {
    loft_core::mail::SendMail {
        send_at: Some(t.loft.now().plus_secs(secs).to_rfc3339()),
        ..mail(to, "later", "see you then")
    }
}

/// A scheduled mail counts as a mail when it is composed, and its new recipients when it is
/// released: a release over a cap waits (the job retries) until the window frees, and records
/// its contacts then.
pub async fn caps_scheduled_release_counts(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, _) = agent(&t, "a", OversightMode::Autonomous).await;
    let aa = set_caps(
        &t,
        &a,
        SetIdentityCapsRequest {
            mails_per_hour: Some(Some(2)),
            new_recipients_per_day: Some(Some(1)),
            ..Default::default()
        },
    )
    .await;
    let runner = loft_core::runner::JobRunner::new(t.loft.clone(), "caps");
    // Scheduling counts against the mail caps at once.
    let first = t.loft.send(&aa, scheduled(&t, &["n1@example.com"], 60)).await.unwrap();
    let second = t.loft.send(&aa, scheduled(&t, &["n2@example.com"], 60)).await.unwrap();
    assert_eq!(first.status, MessageStatus::Scheduled);
    let e = expect_err(t.loft.send(&aa, scheduled(&t, &["n1@example.com"], 60)).await);
    assert_eq!(e.code(), "cap_reached");
    assert!(e.to_string().contains("`mails_per_hour` (2)"), "{e}");
    // Each is one new recipient, and nothing was written to either yet: both were accepted.
    // At release the first takes the day's one new recipient; the second waits.
    t.clock.set(first.send_at.unwrap());
    let report = runner.run_due().await.unwrap();
    assert_eq!((report.completed, report.retried), (1, 1), "{report:?}");
    let status = |m: &loft_core::mail::Message| {
        let t = &t;
        let aa = &aa;
        let id = m.id.clone();
        async move { t.loft.get_message(aa, id.as_str()).await.unwrap().status }
    };
    let (s1, s2) = (status(&first).await, status(&second).await);
    let released = if s1 == MessageStatus::Sent { &first } else { &second };
    assert_eq!(
        [s1, s2].iter().filter(|s| **s == MessageStatus::Sent).count(),
        1,
        "one released, one waiting: {s1:?} {s2:?}"
    );
    let window = t
        .store()
        .cap_window(
            CapCounter::NewRecipients,
            Some(&a.identity.id),
            t.loft.now().plus_secs(-10),
            u64::MAX,
        )
        .await
        .unwrap();
    assert_eq!(window.count, 1, "the release recorded its new recipient");
    let to = released.to[0].clone();
    let contacts = t.store().contacts(&a.identity.id, &[to]).await.unwrap();
    assert_eq!(contacts.len(), 1);
    let sent_at = contacts[0].first_sent_at.expect("written to");
    assert!(
        sent_at >= first.send_at.unwrap() && sent_at <= t.loft.now(),
        "recorded at the release, not when it was scheduled"
    );
    // A day later the window has room and the retried release goes out.
    t.clock.advance_secs(24 * 3600 + 1);
    assert_eq!(runner.run_due().await.unwrap().completed, 1);
    assert_eq!(status(&first).await, MessageStatus::Sent);
    assert_eq!(status(&second).await, MessageStatus::Sent);
}

/// Sending a draft is a send: it counts against the caps and records its contacts.
pub async fn caps_draft_send_counts(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, _) = agent(&t, "a", OversightMode::Autonomous).await;
    let aa = set_caps(
        &t,
        &a,
        SetIdentityCapsRequest {
            mails_per_hour: Some(Some(1)),
            ..Default::default()
        },
    )
    .await;
    let draft = |to: &str| loft_core::service::CreateDraftRequest {
        to: vec![to.to_owned()],
        subject: "draft".into(),
        text: "x".into(),
        ..Default::default()
    };
    let d1 = t.loft.create_draft(&aa, draft("d1@example.com")).await.unwrap();
    let d2 = t.loft.create_draft(&aa, draft("d2@example.com")).await.unwrap();
    t.loft
        .send_draft(&aa, d1.id.as_str(), loft_core::service::SendDraftRequest::default())
        .await
        .unwrap();
    let known = t
        .store()
        .contacts(&a.identity.id, &[EmailAddress::parse("d1@example.com").unwrap()])
        .await
        .unwrap();
    assert_eq!(known.len(), 1, "the draft's recipient is a contact");
    let e = expect_err(
        t.loft
            .send_draft(&aa, d2.id.as_str(), loft_core::service::SendDraftRequest::default())
            .await,
    );
    assert_eq!(e.code(), "cap_reached");
    // The refused draft is still there to send later.
    t.clock.advance_secs(3601);
    t.loft
        .send_draft(&aa, d2.id.as_str(), loft_core::service::SendDraftRequest::default())
        .await
        .unwrap();
}

/// A mail a `hold` rule holds is still checked for first contact, as any send is: the
/// approval names both reasons, and approving it records the contact.
pub async fn caps_first_contact_with_rule_hold(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, _) = agent(&t, "a", OversightMode::Autonomous).await;
    let aa = set_caps(
        &t,
        &a,
        SetIdentityCapsRequest {
            first_contact: Some(FirstContact::Hold),
            ..Default::default()
        },
    )
    .await;
    let op = t.operator().await;
    t.loft
        .add_rule(
            &op,
            loft_core::service::CreateRuleRequest {
                identity: None,
                instance: Some(true),
                direction: loft_core::rules::RuleDirection::Send,
                action: loft_core::rules::RuleAction::Hold,
                pattern: "*@held.example".into(),
                note: None,
            },
        )
        .await
        .unwrap();
    let held = t.send(&aa, &["new@held.example"], "hi", "x").await;
    assert_eq!(held.status, MessageStatus::PendingApproval);
    let approval = held.approval.expect("held mail shows its approval");
    let kinds: Vec<HoldKind> = approval.reasons.iter().map(|r| r.kind).collect();
    assert!(kinds.contains(&HoldKind::Rule), "{kinds:?}");
    assert!(kinds.contains(&HoldKind::FirstContact), "{kinds:?}");
    t.loft.approve(&op, approval.id.as_str()).await.unwrap();
    let known = t
        .store()
        .contacts(&a.identity.id, &[EmailAddress::parse("new@held.example").unwrap()])
        .await
        .unwrap();
    assert_eq!(known.len(), 1, "approval records the contact");
    // Known now: only the rule holds the next one.
    let again = t.send(&aa, &["new@held.example"], "again", "x").await;
    let kinds: Vec<HoldKind> = again.approval.unwrap().reasons.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [HoldKind::Rule]);
}

/// `whoami` shows every write whose call has returned and, once a cap applies, what the clock
/// did to the usage counted over the last hour: where the store keeps answers while nothing is
/// written (SQLite), the same answer is served again to the same key until a write ends, and
/// each key gets its own (its scopes, its expiry).
pub async fn whoami_shows_each_change_and_the_clock(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let (a, aa) = t.identity("alice").await;
    let (b, _) = t.identity("bob").await;
    let first = t.loft.whoami_shared(&aa).await.unwrap();
    let again = t.loft.whoami_shared(&aa).await.unwrap();
    if t.store().data_epoch().is_some() {
        assert!(Arc::ptr_eq(&first, &again), "nothing was written: the answer is kept");
    }
    assert_eq!(first.json().unwrap(), again.json().unwrap());
    let json: serde_json::Value = serde_json::from_slice(&first.json().unwrap()).unwrap();
    assert_eq!(json, serde_json::to_value(t.loft.whoami(&aa).await.unwrap()).unwrap());

    // A narrower key of the same identity gets its own answer.
    let narrow = t
        .loft
        .create_key(
            &aa,
            None,
            loft_core::service::CreateKeyRequest {
                scopes: Some(vec!["mail:read".into()]),
                expires_in_seconds: Some(600),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let na = t.actor(&narrow.api_key).await;
    let n = t.loft.whoami(&na).await.unwrap();
    assert_eq!(n.key_id, narrow.key.id.to_string());
    assert_eq!(
        n.scopes,
        loft_core::keys::ScopeSet::parse_names(&["mail:read"]).unwrap()
    );
    assert!(n.key_expires_at.is_some());
    let w = t.loft.whoami(&aa).await.unwrap();
    assert_eq!(w.key_id, a.key_id.to_string());
    assert!(w.key_expires_at.is_none());

    // The operator renames her: the next request (a fresh actor) sees it.
    t.loft
        .update_identity(
            &op,
            a.identity.id.as_str(),
            loft_core::service::UpdateIdentityRequest {
                display_name: Some("Alice A.".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let aa = t.actor(&a.api_key).await;
    let w = t.loft.whoami(&aa).await.unwrap();
    assert_eq!(w.identity.unwrap().display_name.as_deref(), Some("Alice A."));

    // A cap: usage is counted, each send shows, and so does the clock with nothing written.
    let aa = set_caps(
        &t,
        &a,
        SetIdentityCapsRequest {
            mails_per_hour: Some(Some(5)),
            ..Default::default()
        },
    )
    .await;
    let used = |w: loft_core::identity::WhoAmI| w.sending.unwrap().used.mails_last_hour;
    assert_eq!(used(t.loft.whoami(&aa).await.unwrap()), Some(0));
    t.send(&aa, &[addr(&b)], "1", "x").await;
    assert_eq!(used(t.loft.whoami(&aa).await.unwrap()), Some(1));
    assert_eq!(used(t.loft.whoami(&aa).await.unwrap()), Some(1));
    t.clock.advance_secs(3601);
    assert_eq!(
        used(t.loft.whoami(&aa).await.unwrap()),
        Some(0),
        "an hour later, with nothing written, the send has left the window"
    );
}
