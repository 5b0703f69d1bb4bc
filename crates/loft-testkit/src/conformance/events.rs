//! Events: raised by the change they report, in its transaction; numbered in one sequence;
//! each identity reads its own, the operator everyone's; a waiter wakes when its identity
//! has news.

use std::sync::Arc;
use std::time::Duration;

use loft_core::events::Event;
use loft_core::oversight::OversightMode;
use loft_core::service::{Actor, CreateIdentityRequest, EventParams, RejectRequest};
use loft_core::store::Store;

use crate::{TestLoft, expect_err, test_loft};

async fn agent(t: &TestLoft, name: &str, mode: OversightMode) -> (loft_core::identity::CreatedIdentity, Actor) {
    t.identity_with(CreateIdentityRequest {
        name: name.into(),
        oversight_mode: Some(mode),
        ..Default::default()
    })
    .await
}

async fn events(t: &TestLoft, who: &Actor, params: EventParams) -> Vec<Event> {
    t.loft.list_events(who, params).await.unwrap().items
}

fn kinds(items: &[Event]) -> Vec<&'static str> {
    items.iter().map(|e| e.kind.as_str()).collect()
}

/// Mail, holds, decisions, pauses and revocations raise their events; each identity reads
/// only its own; the operator reads all, in one increasing sequence, and filters them.
pub async fn events_follow_mail_and_decisions(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let (a, aa) = agent(&t, "alice", OversightMode::Autonomous).await;
    let (b, bb) = agent(&t, "bob", OversightMode::Autonomous).await;
    let (_c, cc) = agent(&t, "carol", OversightMode::GatedSend).await;
    let start = t.loft.list_events(&op, EventParams::default()).await.unwrap();

    let sent = t
        .send(&aa, &[b.identity.address.as_str()], "status report", "body text")
        .await;
    let mine = events(&t, &aa, EventParams::default()).await;
    assert_eq!(kinds(&mine), ["message.sent"]);
    assert_eq!(mine[0].payload["message_id"], sent.id.as_str());
    assert_eq!(mine[0].payload["subject"], "status report");
    assert_eq!(mine[0].identity.as_ref(), Some(&a.identity.id));
    assert!(!mine[0].payload.to_string().contains("body text"), "no body in events");
    let theirs = events(&t, &bb, EventParams::default()).await;
    assert_eq!(kinds(&theirs), ["message.received"]);
    assert_eq!(theirs[0].payload["from"], a.identity.address.as_str());
    let bobs_copy = theirs[0].payload["message_id"].as_str().unwrap().to_owned();
    t.loft.get_message(&bb, &bobs_copy).await.unwrap();

    // Held mail: requested, then decided with the reviewer's reason.
    let held = t.send(&cc, &[b.identity.address.as_str()], "needs a look", "x").await;
    let carols = events(&t, &cc, EventParams::default()).await;
    assert_eq!(kinds(&carols), ["approval.requested"]);
    let approval = carols[0].payload["approval_id"].as_str().unwrap().to_owned();
    assert_eq!(carols[0].payload["message_id"], held.id.as_str());
    t.loft
        .reject(
            &op,
            &approval,
            RejectRequest {
                reason: "not this week".into(),
            },
        )
        .await
        .unwrap();
    let carols = events(&t, &cc, EventParams::default()).await;
    assert_eq!(kinds(&carols), ["approval.requested", "approval.decided"]);
    assert_eq!(carols[1].payload["status"], "rejected");
    assert_eq!(carols[1].payload["reason"], "not this week");
    assert_eq!(
        kinds(&events(&t, &bb, EventParams::default()).await),
        ["message.received"],
        "a rejected mail reaches nobody"
    );

    // A send that fails writes nothing, its events included.
    let before = events(&t, &op, EventParams::default()).await.len();
    expect_err(
        t.loft
            .send(&aa, crate::mail(&["nobody@agents.test"], "lost", "x"))
            .await,
    );
    assert_eq!(events(&t, &op, EventParams::default()).await.len(), before);

    t.loft.set_paused(&op, b.identity.id.as_str(), true).await.unwrap();
    t.loft.set_paused(&op, b.identity.id.as_str(), true).await.unwrap();
    t.loft.set_paused(&op, b.identity.id.as_str(), false).await.unwrap();
    t.loft.revoke_identity(&op, a.identity.id.as_str()).await.unwrap();

    // The operator sees everything since it looked, in order, numbered without gaps.
    let all = events(
        &t,
        &op,
        EventParams {
            after: Some(start.next_after.clone()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        kinds(&all),
        [
            "message.sent",
            "message.received",
            "approval.requested",
            "approval.decided",
            "identity.paused",
            "identity.resumed",
            "identity.revoked"
        ]
    );
    for w in all.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "one sequence, in order");
    }
    for e in &all {
        assert_eq!(e.id, format!("evt_{}", e.seq));
        assert!(e.audit_seq.is_some(), "each event names its audit row");
    }
    // Filters: by type (an area with `.*`), by identity; `after` continues without repeats.
    let approvals = events(
        &t,
        &op,
        EventParams {
            types: Some("approval.*".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(kinds(&approvals), ["approval.requested", "approval.decided"]);
    let bobs = events(
        &t,
        &op,
        EventParams {
            identity: Some(b.identity.id.to_string()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        kinds(&bobs),
        ["message.received", "identity.paused", "identity.resumed"]
    );
    let page = t
        .loft
        .list_events(
            &op,
            EventParams {
                after: Some(start.next_after.clone()),
                limit: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    let rest = events(
        &t,
        &op,
        EventParams {
            after: Some(page.next_after),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(rest.len(), all.len() - 3);
    assert_eq!(rest[0].seq, all[3].seq);
}

/// An identity key never reads another identity's events, nor types its scopes do not allow;
/// bad filters are precise 422s.
pub async fn events_are_private_and_checked(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = agent(&t, "alice", OversightMode::Autonomous).await;
    let (b, _) = agent(&t, "bob", OversightMode::Autonomous).await;
    t.send(&aa, &[b.identity.address.as_str()], "hi", "x").await;

    let e = expect_err(
        t.loft
            .list_events(
                &aa,
                EventParams {
                    identity: Some(b.identity.id.to_string()),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "operator_only");
    // Its own id is fine.
    let own = t
        .loft
        .list_events(
            &aa,
            EventParams {
                identity: Some(a.identity.id.to_string()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(kinds(&own.items), ["message.sent"]);

    let (_, vault_only) = t.identity_with_scopes("vaulted", &["vault:read"]).await;
    let e = expect_err(
        t.loft
            .list_events(
                &vault_only,
                EventParams {
                    types: Some("message.received".into()),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "missing_scope");
    for (params, code) in [
        (
            EventParams {
                types: Some("mail.received".into()),
                ..Default::default()
            },
            "invalid_event_type",
        ),
        (
            EventParams {
                after: Some("evt_x".into()),
                ..Default::default()
            },
            "invalid_event_id",
        ),
        (
            EventParams {
                limit: Some(0),
                ..Default::default()
            },
            "invalid_limit",
        ),
    ] {
        assert_eq!(expect_err(t.loft.list_events(&aa, params).await).code(), code);
    }
}

/// A waiter for events sleeps until its identity has news, then gets it at once; news of
/// another identity does not satisfy it.
pub async fn events_wake_their_waiters(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = agent(&t, "alice", OversightMode::Autonomous).await;
    let (b, bb) = agent(&t, "bob", OversightMode::Autonomous).await;
    let (c, _) = agent(&t, "carol", OversightMode::Autonomous).await;
    let scope = t.loft.event_scope(&bb, &EventParams::default()).unwrap();
    let start = t.loft.stream_start(None).await.unwrap();
    let loft = t.loft.clone();
    let waiter = tokio::spawn(async move { loft.next_events(&scope, start, Duration::from_secs(20)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // News for carol only: bob's waiter keeps waiting.
    t.send(&aa, &[c.identity.address.as_str()], "not for bob", "x").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiter.is_finished(),
        "another identity's mail does not answer bob's wait"
    );
    let sent_at = std::time::Instant::now();
    t.send(&aa, &[b.identity.address.as_str()], "for bob", "x").await;
    let (found, next) = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter wakes at once")
        .unwrap()
        .unwrap();
    assert!(sent_at.elapsed() < Duration::from_secs(5));
    assert_eq!(kinds(&found), ["message.received"]);
    assert_eq!(found[0].payload["subject"], "for bob");
    assert_eq!(found[0].identity.as_ref(), Some(&b.identity.id));
    assert!(next >= found[0].seq);
    let _ = a;
}

/// 1,000 idle `mail_wait`s cost no query while nothing happens; mail for one identity wakes
/// that identity's waiters only.
pub async fn events_idle_waiters_cost_no_queries(store: Arc<dyn Store>) {
    const WAITERS: usize = 1000;
    const IDENTITIES: usize = 10;
    let t = test_loft(store);
    let (_, sender) = agent(&t, "sender", OversightMode::Autonomous).await;
    let mut people = Vec::new();
    for i in 0..IDENTITIES {
        people.push(agent(&t, &format!("waiter {i}"), OversightMode::Autonomous).await);
    }
    let mut tasks = Vec::new();
    for n in 0..WAITERS {
        let loft = t.loft.clone();
        let actor = people[n % IDENTITIES].1.clone();
        tasks.push(tokio::spawn(async move {
            loft.wait_for_mail(
                &actor,
                loft_core::service::WaitParams {
                    timeout_seconds: Some(60),
                    ..Default::default()
                },
            )
            .await
        }));
    }
    // Every waiter looks once, then sleeps.
    let settled = settle(&t, WAITERS as u64).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(t.loft.waiter_looks(), settled, "idle waiters looked at the database");

    t.send(&sender, &[people[0].0.identity.address.as_str()], "for waiter 0", "x")
        .await;
    // Wait for the 100 to look (a missing one times the case out), then check none other did.
    let woken = settle(&t, settled + (WAITERS / IDENTITIES) as u64).await - settled;
    assert_eq!(
        woken,
        (WAITERS / IDENTITIES) as u64,
        "only the waiters of the identity with mail looked again"
    );
    let mut answered = 0;
    for (n, task) in tasks.into_iter().enumerate() {
        if n % IDENTITIES == 0 {
            let r = tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(r.items.len(), 1);
            answered += 1;
        } else {
            assert!(!task.is_finished());
            task.abort();
        }
    }
    assert_eq!(answered, WAITERS / IDENTITIES);
}

/// Waits until the waiters' looks reach at least `at_least` and stop growing; returns them.
async fn settle(t: &TestLoft, at_least: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
    let mut last = t.loft.waiter_looks();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = t.loft.waiter_looks();
        if now >= at_least && now == last {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waiters never settled ({now} looks)"
        );
        last = now;
    }
}

/// `monitored` mail goes out at once and lands in the reviewers' feed (`review.requested`,
/// which every reviewer key sees); mail a reviewer approved, or from other modes, does not.
pub async fn events_monitored_mail_feeds_reviewers(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (m, mm) = agent(&t, "watched", OversightMode::Monitored).await;
    let (b, bb) = agent(&t, "bob", OversightMode::Autonomous).await;
    let (_, reviewer) = t
        .identity_with_scopes("reviewer", &["oversight", "mail:read", "keys:manage"])
        .await;
    let feed = || EventParams {
        types: Some("review.*".into()),
        ..Default::default()
    };
    let sent = t.send(&mm, &[b.identity.address.as_str()], "went out", "x").await;
    t.send(&bb, &[m.identity.address.as_str()], "autonomous: no review", "x")
        .await;
    let seen = events(&t, &reviewer, feed()).await;
    assert_eq!(kinds(&seen), ["review.requested"]);
    assert_eq!(seen[0].identity.as_ref(), Some(&m.identity.id));
    assert_eq!(seen[0].payload["message_id"], sent.id.as_str());
    assert_eq!(seen[0].payload["subject"], "went out");
    // The sender sees its own; another identity cannot ask for the feed's types of others.
    assert_eq!(kinds(&events(&t, &mm, feed()).await), ["review.requested"]);
    assert!(events(&t, &bb, feed()).await.is_empty());
    // The reviewer's stream is not the sender's: it does not see bob's mail.
    let all = events(&t, &reviewer, EventParams::default()).await;
    assert_eq!(kinds(&all), ["review.requested"]);
}
