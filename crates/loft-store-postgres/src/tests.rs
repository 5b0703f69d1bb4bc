//! Unit tests against a real Postgres server. Each test creates its own database with the
//! testkit's helper (`loft_testkit::pg`: `loft_test_<time>_<pid>_<n>_<random>` on the server
//! named by `LOFT_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`) and drops
//! it afterwards, also when the test fails.

use loft_core::Error;
use loft_core::address::EmailAddress;
use loft_core::audit::{self, ActorKind, AuditEntry, AuditQuery, Outcome};
use loft_core::identity::{Creator, CreatorKind, Identity, IdentityStatus, NewIdentity};
use loft_core::ids::{IdentityId, KeyId, MessageId, ThreadId};
use loft_core::keys::{ApiKey, KeyKind, KeyMeta, ScopeSet, StoredKey};
use loft_core::mail::{
    self as m, Authentication, Delivery, DeliveryStatus, Folder, MailContent, MailCopy, Message, MessagePatch,
    MessageQuery, NewMail, ThreadQuery,
};
use loft_core::random::{OsRandom, base32_string};
use loft_core::store::{AuditStore, IdentityQuery, IdentityStore, IdentityUpdate, MailStore, Store};
use loft_core::time::Timestamp;
use loft_testkit::pg::{self, with_database};
use sqlx::{Connection, PgConnection};

use crate::PostgresStore;

const DOMAIN: &str = "agents.test";

/// A database of our own for one test ([`pg::TestDb`]), dropped when this value is dropped.
/// Unlike the testkit's own callers these tests fail, rather than pass untested, when
/// PostgreSQL is not reachable.
struct TestDb {
    url: String,
    db: Option<pg::TestDb>,
}

impl TestDb {
    async fn create() -> Self {
        let db = pg::TestDb::create()
            .await
            .expect("PostgreSQL for tests (set LOFT_TEST_PG_URL)");
        Self {
            url: db.url.clone(),
            db: Some(db),
        }
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url).await.expect("connect the store")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            db.drop_db_blocking();
        }
    }
}

fn at(n: i64) -> Timestamp {
    Timestamp::from_micros(1_795_000_000_000_000 + n)
}

fn entry(action: &str, actor: Option<&IdentityId>) -> AuditEntry {
    AuditEntry {
        at: at(0),
        actor_kind: if actor.is_some() {
            ActorKind::Identity
        } else {
            ActorKind::Operator
        },
        actor_identity_id: actor.cloned(),
        key_id: Some("operator".into()),
        action: action.into(),
        target: None,
        outcome: Outcome::Ok,
        request_id: Some("req-1".into()),
        remote_addr: None,
        details: serde_json::json!({ "z": 1, "a": ["x", 2], "m": { "b": true, "a": null } }),
    }
}

fn key_for(identity: &IdentityId, kind: KeyKind, created_at: Timestamp) -> StoredKey {
    let key = ApiKey::generate(&OsRandom);
    StoredKey {
        id: key.id().clone(),
        identity_id: identity.clone(),
        digest: key.digest(),
        meta: KeyMeta {
            id: key.id().clone(),
            identity_id: identity.clone(),
            kind,
            label: None,
            scopes: ScopeSet::default_for_identity(),
            created_at,
            expires_at: None,
            revoked_at: None,
            created_by_key: Some("operator".into()),
        },
    }
}

/// Creates an identity (below `parent`, if any) with its first key.
async fn identity(store: &PostgresStore, name: &str, parent: Option<&Identity>) -> (Identity, StoredKey) {
    let id = IdentityId::generate(&OsRandom);
    let address =
        EmailAddress::from_parts(&format!("{name}-{}", base32_string(&OsRandom, 5)), DOMAIN).expect("valid address");
    let identity = Identity {
        id: id.clone(),
        name: name.into(),
        display_name: Some(format!("{name} bot")),
        address,
        scopes: ScopeSet::default_for_identity(),
        status: IdentityStatus::Active,
        created_at: at(1),
        revoked_at: None,
        created_by: Creator {
            kind: if parent.is_some() {
                CreatorKind::Identity
            } else {
                CreatorKind::Operator
            },
            identity_id: parent.map(|p| p.id.clone()),
            key_id: Some("operator".into()),
        },
    };
    let key = key_for(&id, KeyKind::Primary, at(1));
    store
        .create_identity(
            NewIdentity {
                identity: identity.clone(),
                key: key.clone(),
            },
            entry("identity.create", None),
        )
        .await
        .expect("create identity");
    (identity, key)
}

/// A message from `from` to `to` (local) and `remote` (queued), replying to `parent`.
fn mail(from: &Identity, to: &[&Identity], remote: &[&str], text: &str, parent: Option<&Message>) -> NewMail {
    let r = &OsRandom;
    let mut to_addrs: Vec<EmailAddress> = to.iter().map(|i| i.address.clone()).collect();
    to_addrs.extend(remote.iter().map(|a| EmailAddress::parse(a).expect("remote address")));
    let content = MailContent {
        message_id: format!("{}@{DOMAIN}", base32_string(r, 26)),
        in_reply_to: parent.map(|p| p.message_id.clone()),
        references: parent.map_or_else(Vec::new, |p| {
            let mut refs = p.references.clone();
            refs.push(p.message_id.clone());
            refs
        }),
        from: from.address.clone(),
        from_name: from.display_name.clone(),
        to: to_addrs.clone(),
        cc: vec![],
        bcc: vec![EmailAddress::parse("hidden@elsewhere.test").expect("bcc")],
        subject: parent.map_or_else(|| "Brief".to_owned(), |p| m::reply_subject(&p.subject)),
        text: format!("{text}\n\nOn Mon, someone wrote:\n> old"),
        html: None,
        extracted_text: text.into(),
        authentication: Authentication::internal(),
        created_at: at(10),
    };
    let raw = m::build_rfc5322(&content).expect("raw message");
    let delivery: Vec<Delivery> = to_addrs
        .iter()
        .map(|a| {
            let local = to.iter().any(|i| &i.address == a);
            Delivery {
                recipient: a.clone(),
                status: if local {
                    DeliveryStatus::Delivered
                } else {
                    DeliveryStatus::Queued
                },
                detail: "test".into(),
            }
        })
        .collect();
    let copy = |owner: &Identity, folder| MailCopy {
        id: MessageId::generate(r),
        owner: owner.id.clone(),
        folder,
        new_thread_id: ThreadId::generate(r),
    };
    let sender_copy = copy(from, Folder::Sent);
    let jobs = m::delivery_jobs(&from.id, &sender_copy.id, &delivery, content.created_at);
    NewMail {
        content,
        raw,
        sender_copy,
        recipient_copies: to.iter().map(|i| copy(i, Folder::Inbox)).collect(),
        delivery,
        jobs,
    }
}

fn query(limit: u32) -> MessageQuery {
    MessageQuery {
        limit,
        ..MessageQuery::default()
    }
}

async fn verify(store: &PostgresStore) -> audit::VerifyReport {
    let rows = store.audit_after(0, 100_000).await.expect("audit rows");
    let head = store.audit_head().await.expect("audit head");
    audit::verify_chain(&rows, head)
}

fn assert_not_found<T: std::fmt::Debug>(r: loft_core::Result<T>, what: &str) {
    match r {
        Err(Error::NotFound(d)) => assert_eq!(d.message, format!("{what} not found")),
        other => panic!("expected NotFound({what}), got {other:?}"),
    }
}

#[tokio::test]
async fn send_and_reply_thread_in_both_mailboxes() {
    let db = TestDb::create().await;
    let store = db.store().await;
    assert_eq!(store.backend(), "postgres");
    let (alice, _) = identity(&store, "alice", None).await;
    let (bob, _) = identity(&store, "bob", None).await;

    let first = mail(&alice, &[&bob], &["carol@remote.test"], "Please write the brief.", None);
    let raw = first.raw.clone();
    let sent = store
        .send_mail(first, entry("mail.send", Some(&alice.id)))
        .await
        .expect("send");
    assert_eq!(sent.folder, Folder::Sent);
    assert!(!sent.unread);
    assert_eq!(sent.bcc.len(), 1, "the sender's copy keeps Bcc");
    assert_eq!(sent.delivery.len(), 2);
    assert_eq!(sent.size, raw.len() as i64);
    assert_eq!(
        store.get_message(&alice.id, &sent.id).await.expect("get").as_ref(),
        Some(&sent)
    );
    assert_eq!(store.latest_mail_seq(&alice.id).await.expect("seq"), 1);

    let inbox = store.list_messages(&bob.id, query(10)).await.expect("bob's inbox");
    assert_eq!(inbox.items.len(), 1);
    assert_eq!(inbox.next_before, None);
    let got = &inbox.items[0];
    assert!(got.unread);
    assert_eq!(got.folder, Folder::Inbox);
    assert_eq!(got.snippet, "Please write the brief.");
    assert_eq!(got.message_id, sent.message_id);
    assert_ne!(got.thread_id, sent.thread_id, "threads are per mailbox");
    let bob_copy = store
        .get_message(&bob.id, &got.id)
        .await
        .expect("get")
        .expect("bob's copy");
    assert!(bob_copy.bcc.is_empty(), "inbox copies never carry Bcc");
    assert!(bob_copy.delivery.is_empty());
    assert!(bob_copy.unread);
    assert_eq!(store.raw_message(&bob.id, &got.id).await.expect("raw"), Some(raw));

    // The remote recipient is queued, once, as a delivery job.
    let queued: Vec<(String, String)> = sqlx::query_as("SELECT payload, status FROM jobs WHERE kind = 'smtp.deliver'")
        .fetch_all(store.pool())
        .await
        .expect("queue");
    assert_eq!(queued.len(), 1, "{queued:?}");
    let job: m::DeliveryJob = serde_json::from_str(&queued[0].0).expect("payload");
    assert_eq!(
        (job.recipient.as_str(), queued[0].1.as_str()),
        ("carol@remote.test", "queued")
    );

    // Bob replies: both copies of the reply join the existing threads.
    let reply = mail(&bob, &[&alice], &[], "Draft attached.", Some(&bob_copy));
    let reply_sent = store
        .send_mail(reply, entry("mail.reply", Some(&bob.id)))
        .await
        .expect("reply");
    assert_eq!(reply_sent.thread_id, bob_copy.thread_id);
    let alice_inbox = store
        .list_messages(
            &alice.id,
            MessageQuery {
                folder: Some(Folder::Inbox),
                ..query(10)
            },
        )
        .await
        .expect("alice's inbox");
    assert_eq!(alice_inbox.items.len(), 1);
    assert_eq!(alice_inbox.items[0].thread_id, sent.thread_id);
    assert_eq!(alice_inbox.items[0].subject, "Re: Brief");

    // An unrelated message starts a new thread.
    let other = store
        .send_mail(
            mail(&alice, &[&bob], &[], "Something else.", None),
            entry("mail.send", Some(&alice.id)),
        )
        .await
        .expect("send");
    assert_ne!(other.thread_id, sent.thread_id);

    // Alice's threads: newest activity first; the brief thread holds both messages.
    let threads = store
        .list_threads(
            &alice.id,
            ThreadQuery {
                limit: 10,
                ..ThreadQuery::default()
            },
        )
        .await
        .expect("threads");
    assert_eq!(threads.items.len(), 2);
    assert_eq!(threads.items[0].id, other.thread_id);
    let brief = &threads.items[1];
    assert_eq!(brief.id, sent.thread_id);
    assert_eq!(brief.subject, "Brief");
    assert_eq!(brief.message_count, 2);
    assert_eq!(brief.unread_count, 1);
    assert_eq!(brief.participants, vec![alice.address.clone(), bob.address.clone()]);
    assert_eq!(brief.last_message_id, alice_inbox.items[0].id);
    assert_eq!(brief.snippet, "Draft attached.");

    // Paging threads.
    let page1 = store
        .list_threads(
            &alice.id,
            ThreadQuery {
                limit: 1,
                ..ThreadQuery::default()
            },
        )
        .await
        .expect("page 1");
    assert_eq!(page1.items.len(), 1);
    let page2 = store
        .list_threads(
            &alice.id,
            ThreadQuery {
                limit: 1,
                before_seq: page1.next_before,
                ..ThreadQuery::default()
            },
        )
        .await
        .expect("page 2");
    assert_eq!(page2.items[0].id, sent.thread_id);
    assert_eq!(page2.next_before, None);

    // Unread filter, and reading a thread (which does not mark read).
    let unread = store
        .list_threads(
            &alice.id,
            ThreadQuery {
                unread_only: true,
                limit: 10,
                ..ThreadQuery::default()
            },
        )
        .await
        .expect("unread threads");
    assert_eq!(unread.items.len(), 1);
    let thread = store
        .read_thread(&alice.id, &sent.thread_id, entry("mail.read_thread", Some(&alice.id)))
        .await
        .expect("thread");
    assert_eq!(thread.subject, "Brief");
    assert_eq!(thread.messages.len(), 2);
    assert_eq!(thread.messages[0].id, sent.id, "oldest first");
    assert!(thread.messages[1].unread);

    // Reading marks read.
    let read = store
        .read_message(&alice.id, &thread.messages[1].id, entry("mail.read", Some(&alice.id)))
        .await
        .expect("read");
    assert!(!read.unread);
    let unread = store
        .list_threads(
            &alice.id,
            ThreadQuery {
                unread_only: true,
                limit: 10,
                ..ThreadQuery::default()
            },
        )
        .await
        .expect("unread threads");
    assert!(unread.items.is_empty());

    let report = verify(&store).await;
    assert!(report.ok, "{report:?}");
    // 2 identities, 3 sends, 1 thread read, 1 message read.
    assert_eq!(report.rows_checked, 7);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_pools_append_audit_concurrently_and_the_chain_verifies() {
    let db = TestDb::create().await;
    // Two "nodes" connecting (and migrating) at the same time.
    let (a, b) = tokio::join!(PostgresStore::connect(&db.url), PostgresStore::connect(&db.url));
    let (a, b) = (a.expect("node a"), b.expect("node b"));
    assert_eq!(a.audit_head().await.expect("head"), None);

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move {
            let mut e = entry("auth.refused", None);
            e.details = serde_json::json!({ "n": i, "node": if i % 2 == 0 { "a" } else { "b" } });
            store.append_audit(e).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task").expect("append");
    }
    let report = verify(&a).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.rows_checked, 200);
    assert_eq!(b.audit_head().await.expect("head").map(|h| h.seq), Some(200));
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_mail_from_two_nodes_keeps_one_chain() {
    let db = TestDb::create().await;
    let a = db.store().await;
    let b = db.store().await;
    let (alice, _) = identity(&a, "alice", None).await;
    let (bob, _) = identity(&b, "bob", None).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (store, from, to) = if i % 2 == 0 {
            (a.clone(), alice.clone(), bob.clone())
        } else {
            (b.clone(), bob.clone(), alice.clone())
        };
        tasks.spawn(async move {
            store
                .send_mail(
                    mail(&from, &[&to], &[], &format!("n{i}"), None),
                    entry("mail.send", Some(&from.id)),
                )
                .await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task").expect("send");
    }
    let report = verify(&b).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.rows_checked, 42);
    let all = a.list_messages(&alice.id, query(200)).await.expect("list");
    assert_eq!(all.items.len(), 40);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn other_owners_see_nothing() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let (alice, _) = identity(&store, "alice", None).await;
    let (bob, _) = identity(&store, "bob", None).await;
    let (eve, _) = identity(&store, "eve", None).await;
    let sent = store
        .send_mail(
            mail(&alice, &[&bob], &[], "for bob", None),
            entry("mail.send", Some(&alice.id)),
        )
        .await
        .expect("send");
    let head_before = store.audit_head().await.expect("head");

    assert_eq!(store.get_message(&eve.id, &sent.id).await.expect("get"), None);
    assert_eq!(store.raw_message(&eve.id, &sent.id).await.expect("raw"), None);
    assert_not_found(
        store
            .read_message(&eve.id, &sent.id, entry("mail.read", Some(&eve.id)))
            .await,
        "message",
    );
    assert_not_found(
        store
            .update_message(
                &eve.id,
                &sent.id,
                MessagePatch {
                    add_labels: vec!["x".into()],
                    ..MessagePatch::default()
                },
                entry("mail.update", Some(&eve.id)),
            )
            .await,
        "message",
    );
    assert_not_found(
        store
            .read_thread(&eve.id, &sent.thread_id, entry("mail.read_thread", Some(&eve.id)))
            .await,
        "thread",
    );
    // Bob's copy of the same message is Bob's only.
    assert_eq!(store.get_message(&bob.id, &sent.id).await.expect("get"), None);
    assert!(
        store
            .list_messages(&eve.id, query(10))
            .await
            .expect("list")
            .items
            .is_empty()
    );
    let threads = store
        .list_threads(
            &eve.id,
            ThreadQuery {
                limit: 10,
                ..ThreadQuery::default()
            },
        )
        .await
        .expect("threads");
    assert!(threads.items.is_empty());
    let filtered = store
        .list_messages(
            &eve.id,
            MessageQuery {
                thread_id: Some(sent.thread_id.clone()),
                ..query(10)
            },
        )
        .await
        .expect("list");
    assert!(filtered.items.is_empty());
    assert_eq!(store.latest_mail_seq(&eve.id).await.expect("seq"), 0);
    // Failed calls wrote nothing, audit included.
    assert_eq!(store.audit_head().await.expect("head"), head_before);
    store.close().await;
}

#[tokio::test]
async fn labels_read_state_filters_and_paging() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let (alice, _) = identity(&store, "alice", None).await;
    let (bob, _) = identity(&store, "bob", None).await;
    for i in 0..5 {
        store
            .send_mail(
                mail(&alice, &[&bob], &[], &format!("message {i}"), None),
                entry("mail.send", None),
            )
            .await
            .expect("send");
    }
    store
        .send_mail(mail(&bob, &[&bob], &[], "note to self", None), entry("mail.send", None))
        .await
        .expect("send");

    // Paging newest first with a seq cursor.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let p = store
            .list_messages(
                &bob.id,
                MessageQuery {
                    folder: Some(Folder::Inbox),
                    before_seq: before,
                    ..query(2)
                },
            )
            .await
            .expect("page");
        seen.extend(p.items.iter().map(|s| s.snippet.clone()));
        match p.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "note to self",
            "message 4",
            "message 3",
            "message 2",
            "message 1",
            "message 0"
        ]
    );
    let sent_only = store
        .list_messages(
            &bob.id,
            MessageQuery {
                folder: Some(Folder::Sent),
                ..query(10)
            },
        )
        .await
        .expect("sent");
    assert_eq!(sent_only.items.len(), 1);
    let everything = store.list_messages(&bob.id, query(10)).await.expect("all");
    assert_eq!(everything.items.len(), 7);
    let from_alice = store
        .list_messages(
            &bob.id,
            MessageQuery {
                from: Some(alice.address.clone()),
                ..query(10)
            },
        )
        .await
        .expect("from");
    assert_eq!(from_alice.items.len(), 5);
    let latest = store.latest_mail_seq(&bob.id).await.expect("seq");
    let newer = store
        .list_messages(
            &bob.id,
            MessageQuery {
                after_seq: Some(latest - 1),
                ..query(10)
            },
        )
        .await
        .expect("after");
    assert_eq!(newer.items.len(), 1);

    // Labels: idempotent add, dedup, remove; read state.
    let target = everything
        .items
        .iter()
        .find(|s| s.snippet == "message 2")
        .expect("message 2")
        .id
        .clone();
    let patched = store
        .update_message(
            &bob.id,
            &target,
            MessagePatch {
                add_labels: vec!["work".into(), "q4".into(), "work".into()],
                remove_labels: vec![],
                unread: Some(false),
            },
            entry("mail.update", None),
        )
        .await
        .expect("patch");
    assert_eq!(patched.labels, ["q4", "work"]);
    assert!(!patched.unread);
    let patched = store
        .update_message(
            &bob.id,
            &target,
            MessagePatch {
                add_labels: vec!["work".into()],
                remove_labels: vec!["q4".into()],
                unread: Some(true),
            },
            entry("mail.update", None),
        )
        .await
        .expect("patch again");
    assert_eq!(patched.labels, ["work"]);
    assert!(patched.unread);

    let labelled = store
        .list_messages(
            &bob.id,
            MessageQuery {
                label: Some("work".into()),
                ..query(10)
            },
        )
        .await
        .expect("label filter");
    assert_eq!(labelled.items.len(), 1);
    assert_eq!(labelled.items[0].labels, ["work"]);
    let labelled_threads = store
        .list_threads(
            &bob.id,
            ThreadQuery {
                label: Some("work".into()),
                limit: 10,
                ..ThreadQuery::default()
            },
        )
        .await
        .expect("label threads");
    assert_eq!(labelled_threads.items.len(), 1);
    assert_eq!(labelled_threads.items[0].last_message_id, target);

    // Unread: 5 from Alice plus the note to self (Bob's inbox copy).
    let unread = store
        .list_messages(
            &bob.id,
            MessageQuery {
                unread_only: true,
                ..query(10)
            },
        )
        .await
        .expect("unread");
    assert_eq!(unread.items.len(), 6);
    // Sending to oneself: the sent copy is read, the inbox copy unread.
    let self_threads = store
        .list_messages(
            &bob.id,
            MessageQuery {
                from: Some(bob.address.clone()),
                ..query(10)
            },
        )
        .await
        .expect("self");
    assert_eq!(self_threads.items.iter().filter(|s| s.unread).count(), 1);
    store.close().await;
}

#[tokio::test]
async fn identities_tree_revocation_and_listing() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let (root, root_key) = identity(&store, "root", None).await;
    let (child, child_key) = identity(&store, "child", Some(&root)).await;
    let (grandchild, _) = identity(&store, "grandchild", Some(&child)).await;
    let (other, _) = identity(&store, "other", None).await;

    assert_eq!(store.get_identity(&child.id).await.expect("get"), Some(child.clone()));
    assert_eq!(
        store.get_identity(&IdentityId::generate(&OsRandom)).await.expect("get"),
        None
    );
    let ancestors = store.ancestors(&grandchild.id).await.expect("ancestors");
    assert_eq!(
        ancestors.iter().map(|i| &i.id).collect::<Vec<_>>(),
        [&child.id, &root.id]
    );
    assert!(store.ancestors(&root.id).await.expect("ancestors").is_empty());

    // Listing: newest first, `within` is the subtree.
    let all = store
        .list_identities(IdentityQuery {
            limit: 10,
            ..IdentityQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(
        all.items.iter().map(|i| &i.id).collect::<Vec<_>>(),
        [&other.id, &grandchild.id, &child.id, &root.id]
    );
    let within = store
        .list_identities(IdentityQuery {
            within: Some(child.id.clone()),
            limit: 10,
            ..IdentityQuery::default()
        })
        .await
        .expect("within");
    assert_eq!(
        within.items.iter().map(|i| &i.id).collect::<Vec<_>>(),
        [&grandchild.id, &child.id]
    );
    let p1 = store
        .list_identities(IdentityQuery {
            limit: 3,
            ..IdentityQuery::default()
        })
        .await
        .expect("p1");
    assert_eq!(p1.items.len(), 3);
    let p2 = store
        .list_identities(IdentityQuery {
            limit: 3,
            before_seq: p1.next_before,
            ..IdentityQuery::default()
        })
        .await
        .expect("p2");
    assert_eq!(p2.items.iter().map(|i| &i.id).collect::<Vec<_>>(), [&root.id]);
    assert_eq!(p2.next_before, None);

    // Address uniqueness.
    let mut dup = child.clone();
    dup.id = IdentityId::generate(&OsRandom);
    let dup_key = key_for(&dup.id, KeyKind::Primary, at(2));
    let err = store
        .create_identity(
            NewIdentity {
                identity: dup.clone(),
                key: dup_key.clone(),
            },
            entry("identity.create", None),
        )
        .await
        .expect_err("taken");
    assert!(
        matches!(&err, Error::Conflict(d) if d.code == "address_taken"),
        "{err:?}"
    );
    assert_eq!(
        store.get_identity(&dup.id).await.expect("get"),
        None,
        "nothing half-written"
    );

    // Update: set and clear the display name, change scopes.
    let scopes = ScopeSet::parse_names(&["mail:read"]).expect("scopes");
    let updated = store
        .update_identity(
            &child.id,
            IdentityUpdate {
                display_name: Some("Kid".into()),
                scopes: Some(scopes.clone()),
            },
            entry("identity.update", None),
        )
        .await
        .expect("update");
    assert_eq!(updated.display_name.as_deref(), Some("Kid"));
    assert_eq!(updated.scopes, scopes);
    let cleared = store
        .update_identity(
            &child.id,
            IdentityUpdate {
                display_name: Some(String::new()),
                scopes: None,
            },
            entry("identity.update", None),
        )
        .await
        .expect("clear");
    assert_eq!(cleared.display_name, None);
    assert_eq!(cleared.scopes, scopes);
    assert_not_found(
        store
            .update_identity(
                &IdentityId::generate(&OsRandom),
                IdentityUpdate::default(),
                entry("identity.update", None),
            )
            .await,
        "identity",
    );

    // Revoking the child revokes the grandchild and all their keys, not the root.
    let revoked = store
        .revoke_identity(&child.id, at(50), entry("identity.revoke", None))
        .await
        .expect("revoke");
    assert_eq!(revoked, [child.id.clone(), grandchild.id.clone()]);
    let audit_row = store
        .audit_after(0, 1000)
        .await
        .expect("audit")
        .pop()
        .expect("last row");
    assert_eq!(
        audit_row.entry.details["revoked"],
        serde_json::json!([child.id.as_str(), grandchild.id.as_str()])
    );
    assert_eq!(audit_row.entry.details["z"], serde_json::json!(1), "other details kept");
    let again = store
        .revoke_identity(&root.id, at(60), entry("identity.revoke", None))
        .await
        .expect("revoke root");
    assert_eq!(
        again,
        std::slice::from_ref(&root.id),
        "already revoked ones are not listed again"
    );
    let empty = store
        .revoke_identity(&root.id, at(70), entry("identity.revoke", None))
        .await
        .expect("revoke again");
    assert!(empty.is_empty());
    assert_not_found(
        store
            .revoke_identity(&IdentityId::generate(&OsRandom), at(70), entry("identity.revoke", None))
            .await,
        "identity",
    );
    let child_now = store.get_identity(&child.id).await.expect("get").expect("child");
    assert_eq!(child_now.status, IdentityStatus::Revoked);
    assert_eq!(child_now.revoked_at, Some(at(50)), "first revocation time kept");
    let (key, owner) = store.find_key(&child_key.id).await.expect("find").expect("key");
    assert_eq!(key.meta.revoked_at, Some(at(50)));
    assert_eq!(owner.id, child.id);
    assert_eq!(owner.status, IdentityStatus::Revoked);
    let (root_key_now, _) = store.find_key(&root_key.id).await.expect("find").expect("key");
    assert_eq!(root_key_now.meta.revoked_at, Some(at(60)));

    // Revoked identities keep their addresses, are hidden by default, and resolve to nobody.
    let err = store
        .create_identity(
            NewIdentity {
                identity: Identity {
                    address: child.address.clone(),
                    ..dup
                },
                key: dup_key,
            },
            entry("identity.create", None),
        )
        .await
        .expect_err("revoked addresses are never reused");
    assert!(
        matches!(&err, Error::Conflict(d) if d.code == "address_taken"),
        "{err:?}"
    );
    let active = store
        .list_identities(IdentityQuery {
            limit: 10,
            ..IdentityQuery::default()
        })
        .await
        .expect("active");
    assert_eq!(active.items.iter().map(|i| &i.id).collect::<Vec<_>>(), [&other.id]);
    let with_revoked = store
        .list_identities(IdentityQuery {
            include_revoked: true,
            limit: 10,
            ..IdentityQuery::default()
        })
        .await
        .expect("all");
    assert_eq!(with_revoked.items.len(), 4);
    let resolved = store
        .resolve_addresses(&[child.address.clone(), other.address.clone(), other.address.clone()])
        .await
        .expect("resolve");
    assert_eq!(resolved, [(other.address.clone(), other.id.clone())]);

    let report = verify(&store).await;
    assert!(report.ok, "{report:?}");
    store.close().await;
}

#[tokio::test]
async fn keys_rotate_and_revoke() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let (alice, first) = identity(&store, "alice", None).await;
    let (bob, bob_key) = identity(&store, "bob", None).await;

    let (found, owner) = store.find_key(&first.id).await.expect("find").expect("key");
    assert!(found.digest.matches(&first.digest));
    assert_eq!(found.meta, first.meta);
    assert_eq!(owner, alice);
    assert!(
        store
            .find_key(&KeyId::from_trusted("key_missing".into()))
            .await
            .expect("find")
            .is_none()
    );

    // Rotation revokes the old key at the new key's creation time.
    let second = key_for(&alice.id, KeyKind::Primary, at(100));
    store
        .create_key(second.clone(), Some(first.id.clone()), entry("key.rotate", None))
        .await
        .expect("rotate");
    let keys = store.list_keys(&alice.id).await.expect("keys");
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].id, first.id);
    assert_eq!(keys[0].revoked_at, Some(at(100)));
    assert_eq!(keys[1].revoked_at, None);

    // Replacing a revoked key, or another identity's key, is NotFound and writes nothing.
    let third = key_for(&alice.id, KeyKind::Extra, at(200));
    assert_not_found(
        store
            .create_key(third.clone(), Some(first.id.clone()), entry("key.rotate", None))
            .await,
        "key",
    );
    assert_not_found(
        store
            .create_key(third.clone(), Some(bob_key.id.clone()), entry("key.rotate", None))
            .await,
        "key",
    );
    assert_eq!(store.list_keys(&alice.id).await.expect("keys").len(), 2);
    store
        .create_key(third.clone(), None, entry("key.create", None))
        .await
        .expect("extra key");

    // Revoking: someone else's key is NotFound; revoking twice keeps the first time.
    assert_not_found(
        store
            .revoke_key(&bob.id, &third.id, at(300), entry("key.revoke", None))
            .await,
        "key",
    );
    let revoked = store
        .revoke_key(&alice.id, &third.id, at(300), entry("key.revoke", None))
        .await
        .expect("revoke");
    assert_eq!(revoked.revoked_at, Some(at(300)));
    let head = store.audit_head().await.expect("head").expect("some").seq;
    let again = store
        .revoke_key(&alice.id, &third.id, at(400), entry("key.revoke", None))
        .await
        .expect("revoke again");
    assert_eq!(again.revoked_at, Some(at(300)));
    assert_eq!(
        store.audit_head().await.expect("head").expect("some").seq,
        head + 1,
        "still audited"
    );
    store.close().await;
}

#[tokio::test]
async fn audit_listing_filters() {
    let db = TestDb::create().await;
    let store = db.store().await;
    assert_eq!(store.audit_head().await.expect("head"), None);
    let who = IdentityId::generate(&OsRandom);
    let actions = [
        "mail.send",
        "mail.read",
        "mailbox.open",
        "mail_x.send",
        "key.create",
        "mail.send",
    ];
    for (i, action) in actions.iter().enumerate() {
        let mut e = entry(action, (i % 2 == 0).then_some(&who));
        e.at = at(i as i64 * 10);
        e.outcome = if i == 4 { Outcome::Denied } else { Outcome::Ok };
        store.append_audit(e).await.expect("append");
    }
    let list = |q: AuditQuery| {
        let store = store.clone();
        async move {
            store
                .list_audit(AuditQuery { limit: 100, ..q })
                .await
                .expect("list")
                .items
                .into_iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(AuditQuery::default()).await, [6, 5, 4, 3, 2, 1]);
    assert_eq!(
        list(AuditQuery {
            action: Some("mail.send".into()),
            ..AuditQuery::default()
        })
        .await,
        [6, 1]
    );
    assert_eq!(
        list(AuditQuery {
            action: Some("mail.".into()),
            ..AuditQuery::default()
        })
        .await,
        [6, 2, 1]
    );
    // `_` and `%` are literal in a prefix, not wildcards.
    assert_eq!(
        list(AuditQuery {
            action: Some("mail_.".into()),
            ..AuditQuery::default()
        })
        .await,
        Vec::<i64>::new()
    );
    assert_eq!(
        list(AuditQuery {
            action: Some("mail_x.".into()),
            ..AuditQuery::default()
        })
        .await,
        [4]
    );
    assert_eq!(
        list(AuditQuery {
            action: Some("%.".into()),
            ..AuditQuery::default()
        })
        .await,
        Vec::<i64>::new()
    );
    assert_eq!(
        list(AuditQuery {
            actor_identity_id: Some(who.clone()),
            ..AuditQuery::default()
        })
        .await,
        [5, 3, 1]
    );
    assert_eq!(
        list(AuditQuery {
            outcome: Some(Outcome::Denied),
            ..AuditQuery::default()
        })
        .await,
        [5]
    );
    assert_eq!(
        list(AuditQuery {
            since: Some(at(10)),
            until: Some(at(40)),
            ..AuditQuery::default()
        })
        .await,
        [4, 3, 2]
    );
    assert_eq!(
        list(AuditQuery {
            before_seq: Some(3),
            ..AuditQuery::default()
        })
        .await,
        [2, 1]
    );

    let page = store
        .list_audit(AuditQuery {
            limit: 4,
            ..AuditQuery::default()
        })
        .await
        .expect("page");
    assert_eq!(page.items.len(), 4);
    assert_eq!(page.next_before, Some(3));
    let rest = store
        .list_audit(AuditQuery {
            limit: 4,
            before_seq: page.next_before,
            ..AuditQuery::default()
        })
        .await
        .expect("rest");
    assert_eq!(rest.items.len(), 2);
    assert_eq!(rest.next_before, None);

    let after = store.audit_after(2, 3).await.expect("after");
    assert_eq!(after.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4, 5]);
    // Details come back exactly as hashed.
    assert_eq!(after[0].entry.details, entry("x", None).details);
    assert_eq!(crate::audit_log::prefix_pattern("a_b%c\\."), "a\\_b\\%c\\\\.%");
    let report = verify(&store).await;
    assert!(report.ok, "{report:?}");
    store.close().await;
}

#[tokio::test]
async fn unreachable_server_is_unavailable_and_names_host_without_password() {
    // Port 1 on loopback: nothing listens there.
    let err = PostgresStore::connect("postgres://loft:hunter2-secret@127.0.0.1:1/loft")
        .await
        .expect_err("nothing listens on port 1");
    let Error::Unavailable(msg) = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert!(msg.contains("127.0.0.1:1"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    let err = PostgresStore::connect("mysql://loft:hunter2-secret@db/loft")
        .await
        .expect_err("not a postgres url");
    assert!(
        matches!(&err, Error::Invalid(d) if d.code == "invalid_database_url"),
        "{err:?}"
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn database_urls_are_rewritten() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h:5432", "x"), "postgres://h:5432/x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_never_wait_for_the_sealer_and_readers_see_every_committed_row() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let setting: String = sqlx::query_scalar("SHOW lock_timeout")
        .fetch_one(store.pool())
        .await
        .expect("show");
    assert_eq!(setting, "30s");
    let setting: String = sqlx::query_scalar("SHOW idle_in_transaction_session_timeout")
        .fetch_one(store.pool())
        .await
        .expect("show");
    assert_eq!(setting, "30s");

    // Another "node" is sealing (it holds the sealer's lock and the chain head): writers go on
    // at once, with their audit rows pending; a reader of the log waits for that sealer and
    // then sees the rows, chained after what the other node sealed.
    let mut other = PgConnection::connect(&db.url).await.expect("connect");
    let mut tx = other.begin().await.expect("begin");
    sqlx::query("SELECT pg_advisory_xact_lock(x'4c4f46545345414c'::bigint)")
        .execute(&mut *tx)
        .await
        .expect("sealer lock");
    sqlx::query("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        .execute(&mut *tx)
        .await
        .expect("head");
    let write = async {
        store.append_audit(entry("auth.refused", None)).await.expect("append");
        identity(&store, "alice", None).await
    };
    let (alice, _) = tokio::time::timeout(std::time::Duration::from_secs(5), write)
        .await
        .expect("writers must not wait for the sealer");
    assert_eq!(store.unsealed_audit_rows().await.expect("pending"), 2);
    let reader = {
        let store = store.clone();
        tokio::spawn(async move { store.audit_head().await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !reader.is_finished(),
        "a reader of the log waits for the sealer at work"
    );
    tx.rollback().await.expect("release");
    let head = reader.await.expect("task").expect("head").expect("a head");
    assert_eq!(head.seq, 2);
    assert_eq!(store.unsealed_audit_rows().await.expect("pending"), 0);
    assert!(store.get_identity(&alice.id).await.expect("get").is_some());
    let report = verify(&store).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.rows_checked, 2);
    let _ = other.close().await;
    store.close().await;
}
