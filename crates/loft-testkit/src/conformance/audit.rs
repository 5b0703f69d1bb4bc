//! The audit log: what is recorded, who may see it, that the chain verifies, filters and
//! pagination, exact round trips, and appends serialised under concurrency.

use std::collections::BTreeSet;
use std::sync::Arc;

use loft_core::Error;
use loft_core::audit::{self, ActorKind, AuditEntry, AuditQuery, AuditRecord, GENESIS_HASH, Outcome};
use loft_core::identity::CreatedIdentity;
use loft_core::mail::{MessagePatch, ReplyMail};
use loft_core::service::{
    Actor, CreateKeyRequest, ListAuditParams, ListMessagesParams, RequestContext, UpdateIdentityRequest,
};
use loft_core::store::Store;
use loft_core::time::Timestamp;

use crate::{TEST_START, TestLoft, expect_err, mail, test_loft};

struct Story {
    a: CreatedIdentity,
    aa: Actor,
    b: CreatedIdentity,
    ba: Actor,
}

/// Every kind of audited action at least once.
async fn story(t: &TestLoft) -> Story {
    let op = t.operator().await;
    let (a, aa) = t.identity("alice").await; // identity.create
    let (b, _) = t.identity("bob").await;
    let extra = t.loft.create_key(&aa, None, CreateKeyRequest::default()).await.unwrap(); // key.create
    t.loft.revoke_key(&op, extra.key.id.as_str()).await.unwrap(); // key.revoke
    let rotated = t.loft.rotate_key(&aa, None).await.unwrap(); // key.rotate
    let aa = t.actor(&rotated.api_key).await;
    let _ = t.authenticate(&a.api_key).await.unwrap_err();
    t.loft.flush_auth_refusals(true).await.unwrap(); // auth.refused
    t.loft
        .update_identity(
            &op,
            b.identity.id.as_str(),
            UpdateIdentityRequest {
                display_name: Some("Bob".into()),
                scopes: None,
                oversight_mode: None,
            },
        )
        .await
        .unwrap(); // identity.update
    let ba = t.actor(&b.api_key).await;
    let sent = t.send(&aa, &[b.identity.address.as_str()], "hello", "hi").await; // mail.send
    let copy = t.all_messages(&ba, ListMessagesParams::default()).await.remove(0);
    assert_eq!(copy.message_id, sent.message_id);
    t.loft.get_message(&ba, copy.id.as_str()).await.unwrap(); // mail.read
    t.loft
        .update_message(
            &ba,
            copy.id.as_str(),
            MessagePatch {
                add_labels: vec!["x".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap(); // mail.update
    t.loft
        .get_thread(
            &ba,
            copy.thread_id.as_str(),
            loft_core::service::GetThreadParams::default(),
        )
        .await
        .unwrap(); // mail.read_thread
    t.loft
        .reply(
            &ba,
            copy.id.as_str(),
            ReplyMail {
                idempotency_key: None,
                send_at: None,
                text: "hello back".into(),
                html: None,
                reply_all: false,
                attachments: vec![],
            },
        )
        .await
        .unwrap(); // mail.reply
    let (gone, _) = t.identity("gone").await;
    t.loft.revoke_identity(&op, gone.identity.id.as_str()).await.unwrap(); // identity.revoke
    Story { a, aa, b, ba }
}

/// Every action above produced its row, with the right actor, target and outcome.
pub async fn audit_actions_recorded(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let Story { a, b, .. } = story(&t).await;
    let rows = t.audit_rows().await;
    let actions: Vec<&str> = rows.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "identity.create",
            "identity.create",
            "key.create",
            "key.revoke",
            "key.rotate",
            "auth.refused",
            "identity.update",
            "mail.send",
            "mail.read",
            "mail.update",
            "mail.read_thread",
            "mail.reply",
            "identity.create",
            "identity.revoke",
        ],
        "one row per action, in order"
    );
    let by = |action: &str| rows.iter().find(|r| r.entry.action == action).unwrap().entry.clone();

    let e = by("identity.create");
    assert_eq!(
        (e.actor_kind, e.actor_identity_id.as_ref(), e.key_id.as_deref()),
        (ActorKind::Operator, None, Some("operator"))
    );
    assert_eq!(e.target.as_deref(), Some(a.identity.id.as_str()));
    let e = by("key.rotate");
    assert_eq!(e.actor_kind, ActorKind::Identity);
    assert_eq!(e.actor_identity_id.as_ref(), Some(&a.identity.id));
    assert_eq!(e.key_id.as_deref(), Some(a.key_id.as_str()), "the key that acted");
    let e = by("auth.refused");
    assert_eq!((e.actor_kind, e.outcome), (ActorKind::Anonymous, Outcome::Denied));
    let e = by("mail.send");
    assert_eq!(e.actor_identity_id.as_ref(), Some(&a.identity.id));
    assert_eq!(e.outcome, Outcome::Ok);
    let e = by("mail.read");
    assert_eq!(e.actor_identity_id.as_ref(), Some(&b.identity.id));
    assert!(
        rows.iter()
            .filter(|r| r.entry.action != "auth.refused")
            .all(|r| r.entry.outcome == Outcome::Ok)
    );

    // Filters through the service.
    let op = t.operator().await;
    let list = |params: ListAuditParams| {
        let t = &t;
        let op = &op;
        async move { t.loft.list_audit(op, params).await.unwrap().items }
    };
    let mail_rows = list(ListAuditParams {
        action: Some("mail.".into()),
        limit: Some(200),
        ..Default::default()
    })
    .await;
    assert_eq!(mail_rows.len(), 5);
    assert!(mail_rows.iter().all(|r| r.entry.action.starts_with("mail.")));
    let denied = list(ListAuditParams {
        outcome: Some("denied".into()),
        limit: Some(200),
        ..Default::default()
    })
    .await;
    assert_eq!(
        denied.iter().map(|r| r.entry.action.as_str()).collect::<Vec<_>>(),
        vec!["auth.refused"]
    );
    let exact = list(ListAuditParams {
        action: Some("identity.create".into()),
        limit: Some(200),
        ..Default::default()
    })
    .await;
    assert_eq!(exact.len(), 3);
    let of_b = list(ListAuditParams {
        identity: Some(b.identity.id.to_string()),
        limit: Some(200),
        ..Default::default()
    })
    .await;
    assert_eq!(
        of_b.iter().map(|r| r.entry.action.as_str()).collect::<Vec<_>>(),
        vec!["mail.reply", "mail.read_thread", "mail.update", "mail.read"],
        "newest first"
    );
    let e = expect_err(
        t.loft
            .list_audit(
                &op,
                ListAuditParams {
                    outcome: Some("maybe".into()),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "invalid_outcome");
}

/// An identity key sees only its own rows; export, head and verify are for the operator.
pub async fn audit_identity_sees_own_rows_only(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let Story { a, aa, b, ba } = story(&t).await;
    for (who, actor) in [(&a, &aa), (&b, &ba)] {
        let rows = t
            .loft
            .list_audit(
                actor,
                ListAuditParams {
                    limit: Some(200),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .items;
        assert!(!rows.is_empty());
        assert!(
            rows.iter()
                .all(|r| r.entry.actor_identity_id.as_ref() == Some(&who.identity.id)),
            "{} sees only its own rows: {rows:?}",
            who.identity.name
        );
        let all_own = t
            .audit_rows()
            .await
            .into_iter()
            .filter(|r| r.entry.actor_identity_id.as_ref() == Some(&who.identity.id))
            .count();
        assert_eq!(rows.len(), all_own, "and all of them");
        let own = t
            .loft
            .list_audit(
                actor,
                ListAuditParams {
                    identity: Some(who.identity.id.to_string()),
                    limit: Some(200),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(own.items.len(), all_own);
    }
    let e = expect_err(
        t.loft
            .list_audit(
                &aa,
                ListAuditParams {
                    identity: Some(b.identity.id.to_string()),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "own_audit_only", "{e:?}");
    assert!(matches!(e, Error::Forbidden(_)));
    for e in [
        expect_err(t.loft.audit_verify(&aa).await),
        expect_err(t.loft.audit_export(&aa, 0, 10).await),
        expect_err(t.loft.audit_head(&aa).await),
    ] {
        assert_eq!(e.code(), "operator_only", "{e:?}");
    }
}

/// After the whole story the chain is intact: contiguous sequence numbers, each row linked to
/// the previous one, the head on the last row, and both the server and the pure verifier agree.
pub async fn audit_verify_after_story(store: Arc<dyn Store>) {
    let t = test_loft(store);
    story(&t).await;
    let rows = t.audit_rows().await;
    assert_chain_shape(&rows);
    let op = t.operator().await;
    let head = t.loft.audit_head(&op).await.unwrap().unwrap();
    assert_eq!(head.seq, rows.last().unwrap().seq);
    assert_eq!(head.hash, rows.last().unwrap().hash);
    let report = t.assert_chain_ok().await;
    assert_eq!(report.rows_checked, rows.len() as i64);
    assert_eq!(report.first_bad_seq, None);
    assert_eq!(report.head, Some(head.clone()));
    let offline = audit::verify_chain(&rows, Some(head));
    assert!(offline.ok, "{offline:?}");
    // An export survives a JSON round trip and still verifies (what the CLI does).
    let json = serde_json::to_string(&rows).unwrap();
    let back: Vec<AuditRecord> = serde_json::from_str(&json).unwrap();
    assert!(audit::verify_chain(&back, t.store().audit_head().await.unwrap()).ok);
}

pub(crate) fn assert_chain_shape(rows: &[AuditRecord]) {
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(
            r.seq,
            i as i64 + 1,
            "sequence numbers are 1, 2, 3, ... with no gap or duplicate"
        );
        let prev = if i == 0 {
            GENESIS_HASH
        } else {
            rows[i - 1].hash.as_str()
        };
        assert_eq!(r.prev_hash, prev, "row {} links to the row before", r.seq);
        assert_eq!(
            r.hash,
            audit::compute_hash(r.seq, &r.entry, &r.prev_hash),
            "row {} hash",
            r.seq
        );
    }
}

fn entry(at: i64, kind: ActorKind, who: Option<&CreatedIdentity>, action: &str, outcome: Outcome) -> AuditEntry {
    AuditEntry {
        at: Timestamp::from_micros(TEST_START.as_micros() + 86_400_000_000 + at),
        actor_kind: kind,
        actor_identity_id: who.map(|c| c.identity.id.clone()),
        key_id: who.map_or(Some("operator".to_owned()), |c| Some(c.key_id.to_string())),
        action: action.into(),
        target: Some(format!("target-{at}")),
        outcome,
        request_id: Some(format!("req-{at}")),
        remote_addr: Some("192.0.2.7:5555".into()),
        details: serde_json::json!({ "n": at }),
        events: Vec::new(),
    }
}

/// Rows appended on their own come back exactly as given (every field, details JSON
/// included), and the store's filters select what they say.
pub async fn audit_append_round_trip_and_filters(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, _) = t.identity("alice").await;
    let (b, _) = t.identity("bob").await;
    let base = t.audit_len().await;
    let s = t.store().clone();

    let rich = AuditEntry {
        at: Timestamp::from_micros(TEST_START.as_micros() + 86_400_000_000),
        actor_kind: ActorKind::System,
        actor_identity_id: None,
        key_id: None,
        action: "system.start".into(),
        target: None,
        outcome: Outcome::Ok,
        request_id: None,
        remote_addr: None,
        details: serde_json::json!({
            "zeta": 1,
            "alpha": { "nested": [1, 2.5, "ü✓ 研究", null, true, { "b": [], "a": {} }] },
            "big": 9_007_199_254_740_993_u64,
            "negative": -42,
            "quote": "\"'\\\n\t\u{0001}",
            "empty": "",
        }),
        events: Vec::new(),
    };
    let entries = vec![
        rich,
        entry(1, ActorKind::Operator, None, "identity.create", Outcome::Ok),
        entry(2, ActorKind::Identity, Some(&a), "mail.send", Outcome::Ok),
        entry(3, ActorKind::Identity, Some(&b), "mail.read", Outcome::Ok),
        entry(4, ActorKind::Anonymous, None, "auth.refused", Outcome::Denied),
        entry(5, ActorKind::Identity, Some(&a), "a_b.x", Outcome::Ok),
        entry(6, ActorKind::Identity, Some(&a), "acb.x", Outcome::Ok),
        entry(7, ActorKind::Identity, Some(&a), "mail.sendx", Outcome::Error),
    ];
    for e in &entries {
        s.append_audit(e.clone()).await.unwrap();
    }
    let rows = s.audit_after(base, 100).await.unwrap();
    let got: Vec<AuditEntry> = rows.iter().map(|r| r.entry.clone()).collect();
    assert_eq!(got, entries, "rows come back exactly as appended");
    assert_eq!(rows[0].seq, base + 1);
    assert_eq!(
        s.audit_after(base + 3, 2)
            .await
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>(),
        vec![base + 4, base + 5]
    );
    t.assert_chain_ok().await;

    // `seq` of the entry appended at relative position n (1-based; the rich one is 0).
    let seq = |n: i64| base + 1 + n;
    let q = |f: &dyn Fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            limit: 100,
            since: Some(entries[0].at),
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let seqs = |query: AuditQuery| {
        let s = s.clone();
        async move {
            s.list_audit(query)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        seqs(q(&|_| {})).await,
        (0..=7).rev().map(seq).collect::<Vec<_>>(),
        "newest first"
    );
    assert_eq!(
        seqs(q(&|q| q.actor_identity_id = Some(a.identity.id.clone()))).await,
        vec![seq(7), seq(6), seq(5), seq(2)]
    );
    assert_eq!(
        seqs(q(&|q| q.action = Some("mail.send".into()))).await,
        vec![seq(2)],
        "an exact action is exact"
    );
    assert_eq!(
        seqs(q(&|q| q.action = Some("mail.".into()))).await,
        vec![seq(7), seq(3), seq(2)],
        "a prefix ending in `.`"
    );
    assert_eq!(
        seqs(q(&|q| q.action = Some("a_b.".into()))).await,
        vec![seq(5)],
        "`_` in a prefix is not a wildcard"
    );
    for (action, why) in [
        ("%.", "`%` in a prefix is not a wildcard"),
        ("mail%", "without a closing `.` an action is exact"),
        ("MAIL.", "actions match case-sensitively"),
        ("MAIL.SEND", "actions match case-sensitively"),
    ] {
        assert_eq!(
            seqs(q(&|q| q.action = Some(action.into()))).await,
            Vec::<i64>::new(),
            "{why}"
        );
    }
    assert_eq!(seqs(q(&|q| q.outcome = Some(Outcome::Denied))).await, vec![seq(4)]);
    assert_eq!(seqs(q(&|q| q.outcome = Some(Outcome::Error))).await, vec![seq(7)]);
    assert_eq!(
        seqs(q(&|q| q.since = Some(entries[3].at))).await,
        (3..=7).rev().map(seq).collect::<Vec<_>>(),
        "since: at or after"
    );
    assert_eq!(
        seqs(q(&|q| q.until = Some(entries[3].at))).await,
        vec![seq(2), seq(1), seq(0)],
        "until: before"
    );
    assert_eq!(
        seqs(q(&|q| {
            q.since = Some(entries[2].at);
            q.until = Some(entries[5].at);
        }))
        .await,
        vec![seq(4), seq(3), seq(2)]
    );
    assert_eq!(
        seqs(q(&|q| {
            q.actor_identity_id = Some(a.identity.id.clone());
            q.action = Some("mail.".into());
        }))
        .await,
        vec![seq(7), seq(2)],
        "filters combine"
    );
    assert_eq!(
        seqs(q(&|q| q.before_seq = Some(seq(4)))).await,
        vec![seq(3), seq(2), seq(1), seq(0)]
    );
    assert_eq!(
        seqs(q(&|q| q.after_seq = Some(seq(5))))
            .await
            .into_iter()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([seq(6), seq(7)])
    );
}

/// Listing the log pages newest first with no duplicates or gaps.
pub async fn audit_pagination(store: Arc<dyn Store>) {
    let t = test_loft(store);
    story(&t).await;
    let all: Vec<i64> = t.audit_rows().await.iter().rev().map(|r| r.seq).collect();
    let op = t.operator().await;
    let mut got = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = t
            .loft
            .list_audit(
                &op,
                ListAuditParams {
                    limit: Some(4),
                    cursor: cursor.take(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(page.items.len() <= 4);
        got.extend(page.items.iter().map(|r| r.seq));
        pages += 1;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 20, "pagination does not end");
    }
    assert_eq!(got, all, "every row once, newest first");
    // Store-level: next_before continues exactly where the page ended.
    let page = t
        .store()
        .list_audit(AuditQuery {
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.iter().map(|r| r.seq).collect::<Vec<_>>(), all[..3].to_vec());
    let next = t
        .store()
        .list_audit(AuditQuery {
            limit: 3,
            before_seq: page.next_before,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next.items.iter().map(|r| r.seq).collect::<Vec<_>>(), all[3..6].to_vec());
}

/// 8 tasks × 25 sends (and some refused authentications) at once: every row is in the chain
/// exactly once, and the chain verifies.
pub async fn audit_concurrent_sends(store: Arc<dyn Store>) {
    const TASKS: usize = 8;
    const SENDS: usize = 25;
    let t = test_loft(store);
    let (sink, sink_actor) = t.identity("sink").await;
    let mut senders = Vec::new();
    for i in 0..TASKS {
        senders.push(t.identity(&format!("sender {i}")).await);
    }
    let before = t.audit_len().await;
    let mut handles = Vec::new();
    for (i, (_, actor)) in senders.iter().enumerate() {
        let loft = t.loft.clone();
        let actor = actor.clone();
        let to = sink.identity.address.to_string();
        handles.push(tokio::spawn(async move {
            for n in 0..SENDS {
                loft.send(&actor, mail(&[&to], &format!("s{i}-{n}"), "x"))
                    .await
                    .unwrap_or_else(|e| panic!("send {i}-{n} failed under concurrency: {e:?}"));
                if n % 5 == 0 {
                    let e = loft.authenticate(Some("loft_sk_bad"), RequestContext::default()).await;
                    assert!(matches!(e, Err(Error::Unauthenticated(_))), "{e:?}");
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    // Refused keys are counted, not logged one by one: one aggregated row for them all.
    assert_eq!(t.loft.flush_auth_refusals(true).await.unwrap(), 1);
    let rows = t.audit_rows().await;
    assert_chain_shape(&rows);
    let new = &rows[before as usize..];
    assert_eq!(
        new.iter().filter(|r| r.entry.action == "mail.send").count(),
        TASKS * SENDS
    );
    let refused: Vec<_> = new.iter().filter(|r| r.entry.action == "auth.refused").collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].entry.details["count"], TASKS * SENDS / 5);
    assert_eq!(new.len(), TASKS * SENDS + 1);
    let report = t.assert_chain_ok().await;
    assert_eq!(report.rows_checked, rows.len() as i64);

    let inbox = t
        .all_messages(
            &sink_actor,
            ListMessagesParams {
                limit: Some(200),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(inbox.len(), TASKS * SENDS);
    let subjects: BTreeSet<_> = inbox.iter().map(|m| m.subject.clone()).collect();
    assert_eq!(subjects.len(), TASKS * SENDS, "every message once");
    let ids: BTreeSet<_> = inbox.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids.len(), TASKS * SENDS);
    for (c, actor) in &senders {
        let sent = t
            .all_messages(
                actor,
                ListMessagesParams {
                    folder: Some("sent".into()),
                    ..Default::default()
                },
            )
            .await;
        assert_eq!(sent.len(), SENDS, "{}", c.identity.name);
    }
}
