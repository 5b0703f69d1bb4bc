//! Unit tests of the SQLite store, each on a fresh file. The shared conformance suite (in
//! `loft-testkit`, run from `tests/`) checks the contract on every backend; these check what is
//! particular to this one (group commit, the writer's failure handling, the file) and the
//! behaviour the use cases rely on most.

#![allow(
    clippy::unwrap_used,
    clippy::too_many_lines,
    reason = "tests: an unexpected error must fail the test that hit it, with its message"
)]

use std::sync::Arc;

use loft_core::address::EmailAddress;
use loft_core::audit::{ActorKind, AuditEntry, AuditQuery, Outcome, verify_chain};
use loft_core::identity::{Creator, CreatorKind, Identity, IdentityStatus, NewIdentity};
use loft_core::ids::{IdentityId, KeyId, MessageId, ThreadId};
use loft_core::keys::{ApiKey, KeyKind, KeyMeta, Scope, ScopeSet, StoredKey};
use loft_core::mail::{
    Authentication, Delivery, DeliveryStatus, Folder, MailContent, MailCopy, Message, MessagePatch, MessageQuery,
    NewMail, ThreadQuery,
};
use loft_core::random::{OsRandom, Random, SeededRandom};
use loft_core::store::{AuditStore, IdentityQuery, IdentityStore, IdentityUpdate, MailStore};
use loft_core::time::Timestamp;
use loft_core::{Error, mail as core_mail};
use tempfile::TempDir;

use crate::SqliteStore;

const T0: i64 = 1_795_000_000_000_000;

struct Fixture {
    _dir: TempDir,
    store: SqliteStore,
    random: SeededRandom,
    clock: std::sync::atomic::AtomicI64,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::open(&dir.path().join("loft.db")).await.unwrap();
        Self {
            _dir: dir,
            store,
            random: SeededRandom::new(42),
            clock: T0.into(),
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.clock.fetch_add(1_000, std::sync::atomic::Ordering::SeqCst))
    }

    fn entry(&self, action: &str) -> AuditEntry {
        AuditEntry {
            at: self.now(),
            actor_kind: ActorKind::Operator,
            actor_identity_id: None,
            key_id: Some("operator".into()),
            action: action.into(),
            target: None,
            outcome: Outcome::Ok,
            request_id: None,
            remote_addr: None,
            details: serde_json::json!({ "z": 1, "a": [1, 2], "m": { "y": true, "b": null } }),
        }
    }

    fn new_identity(&self, name: &str, parent: Option<&Identity>) -> (NewIdentity, ApiKey) {
        let id = IdentityId::generate(&self.random);
        let key = ApiKey::generate(&self.random);
        let now = self.now();
        let scopes = ScopeSet::default_for_identity();
        let identity = Identity {
            id: id.clone(),
            name: name.into(),
            display_name: Some(format!("{name} bot")),
            address: EmailAddress::parse(&format!("{name}@agents.localhost")).unwrap(),
            scopes: scopes.clone(),
            status: IdentityStatus::Active,
            created_at: now,
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
        let stored = Self::stored_key(&id, &key, KeyKind::Primary, now);
        (NewIdentity { identity, key: stored }, key)
    }

    fn stored_key(identity: &IdentityId, key: &ApiKey, kind: KeyKind, at: Timestamp) -> StoredKey {
        StoredKey {
            id: key.id().clone(),
            identity_id: identity.clone(),
            digest: key.digest(),
            meta: KeyMeta {
                id: key.id().clone(),
                identity_id: identity.clone(),
                kind,
                label: None,
                scopes: ScopeSet::new([Scope::MailRead]),
                created_at: at,
                expires_at: None,
                revoked_at: None,
                created_by_key: None,
            },
        }
    }

    async fn identity(&self, name: &str) -> Identity {
        self.child(name, None).await
    }

    async fn child(&self, name: &str, parent: Option<&Identity>) -> Identity {
        let (new, _) = self.new_identity(name, parent);
        let identity = new.identity.clone();
        self.store
            .create_identity(new, self.entry("identity.create"))
            .await
            .unwrap();
        identity
    }

    /// A message from `from` to `to` (all local), answering `parent` if given.
    fn mail(&self, from: &Identity, to: &[&Identity], subject: &str, parent: Option<&Message>) -> NewMail {
        let r: &dyn Random = &self.random;
        let content = MailContent {
            message_id: format!("{}@agents.localhost", loft_core::random::base32_string(r, 26)),
            in_reply_to: parent.map(|p| p.message_id.clone()),
            references: parent
                .map(|p| {
                    let mut refs = p.references.clone();
                    refs.push(p.message_id.clone());
                    refs
                })
                .unwrap_or_default(),
            from: from.address.clone(),
            from_name: from.display_name.clone(),
            to: to.iter().map(|i| i.address.clone()).collect(),
            cc: vec![],
            bcc: vec![EmailAddress::parse("hidden@elsewhere.example").unwrap()],
            subject: subject.into(),
            text: format!("Body of {subject}\n\nOn Mon, someone wrote:\n> old text"),
            html: None,
            extracted_text: format!("Body of {subject}"),
            authentication: Authentication::internal(),
            created_at: self.now(),
        };
        let raw = core_mail::build_rfc5322(&content).unwrap();
        let mut delivery: Vec<Delivery> = to
            .iter()
            .map(|i| Delivery {
                recipient: i.address.clone(),
                status: DeliveryStatus::Delivered,
                detail: "delivered".into(),
            })
            .collect();
        delivery.push(Delivery {
            recipient: content.bcc[0].clone(),
            status: DeliveryStatus::Queued,
            detail: "queued".into(),
        });
        let sender_id = MessageId::generate(r);
        let created_at = content.created_at;
        NewMail {
            content,
            raw,
            sender_copy: MailCopy {
                id: sender_id.clone(),
                owner: from.id.clone(),
                folder: Folder::Sent,
                new_thread_id: ThreadId::generate(r),
            },
            recipient_copies: to
                .iter()
                .map(|i| MailCopy {
                    id: MessageId::generate(r),
                    owner: i.id.clone(),
                    folder: Folder::Inbox,
                    new_thread_id: ThreadId::generate(r),
                })
                .collect(),
            jobs: core_mail::delivery_jobs(&from.id, &sender_id, &delivery, created_at),
            delivery,
        }
    }

    async fn send(&self, from: &Identity, to: &[&Identity], subject: &str, parent: Option<&Message>) -> Message {
        let mail = self.mail(from, to, subject, parent);
        self.store.send_mail(mail, self.entry("mail.send")).await.unwrap()
    }

    /// The newest message in `owner`'s inbox.
    async fn newest_inbox(&self, owner: &Identity) -> Message {
        let page = self
            .store
            .list_messages(
                &owner.id,
                MessageQuery {
                    folder: Some(Folder::Inbox),
                    limit: 1,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        self.store
            .get_message(&owner.id, &page.items[0].id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn assert_chain_ok(&self) -> i64 {
        let head = self.store.audit_head().await.unwrap();
        let rows = self.store.audit_after(0, 10_000).await.unwrap();
        let report = verify_chain(&rows, head);
        assert!(report.ok, "{report:?}");
        report.rows_checked
    }
}

fn is_not_found(e: &Error, what: &str) -> bool {
    matches!(e, Error::NotFound(d) if d.message == format!("{what} not found"))
}

#[tokio::test]
async fn send_between_two_identities_and_thread_the_reply_in_both_mailboxes() {
    let f = Fixture::new().await;
    let ann = f.identity("ann").await;
    let bob = f.identity("bob").await;

    let sent = f.send(&ann, &[&bob], "Brief", None).await;
    assert_eq!(sent.folder, Folder::Sent);
    assert!(!sent.unread, "the sender's own copy is read");
    assert_eq!(sent.bcc.len(), 1, "the sender's copy keeps bcc");
    assert_eq!(sent.delivery.len(), 2);
    assert_eq!(sent.subject, "Brief");
    assert_eq!(sent.extracted_text, "Body of Brief");
    let raw = f.store.raw_message(&ann.id, &sent.id).await.unwrap().unwrap();
    assert_eq!(sent.size, raw.len() as i64);
    assert!(String::from_utf8_lossy(&raw).contains("Subject: Brief"));

    let got = f.newest_inbox(&bob).await;
    assert_eq!(got.folder, Folder::Inbox);
    assert!(got.unread, "a recipient's copy starts unread");
    assert!(got.bcc.is_empty(), "inbox copies never carry bcc");
    assert!(got.delivery.is_empty());
    assert_eq!(got.message_id, sent.message_id);
    assert_ne!(got.id, sent.id);
    assert_ne!(got.thread_id, sent.thread_id, "threads are per mailbox");

    // Bob answers; the reply joins the original's thread in both mailboxes.
    let reply = f.send(&bob, &[&ann], "Re: Brief", Some(&got)).await;
    assert_eq!(
        reply.thread_id, got.thread_id,
        "bob's sent reply threads with his inbox copy"
    );
    let reply_in = f.newest_inbox(&ann).await;
    assert_eq!(
        reply_in.thread_id, sent.thread_id,
        "ann's inbox copy threads with her sent copy"
    );
    assert_eq!(reply_in.in_reply_to.as_deref(), Some(sent.message_id.as_str()));
    assert_eq!(reply_in.references, vec![sent.message_id.clone()]);

    // An unrelated message starts a new thread.
    let other = f.send(&ann, &[&bob], "Other", None).await;
    assert_ne!(other.thread_id, sent.thread_id);

    // Ann's threads: the newest activity first.
    let threads = f
        .store
        .list_threads(
            &ann.id,
            ThreadQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(threads.items.len(), 2);
    assert_eq!(threads.next_before, None);
    assert_eq!(threads.items[0].id, other.thread_id);
    let t = &threads.items[1];
    assert_eq!(t.id, sent.thread_id);
    assert_eq!(t.subject, "Brief", "the subject of the first message");
    assert_eq!(t.message_count, 2);
    assert_eq!(t.unread_count, 1);
    assert_eq!(t.participants, vec![ann.address.clone(), bob.address.clone()]);
    assert_eq!(t.last_message_id, reply_in.id);
    assert_eq!(t.last_message_at, reply_in.created_at);
    assert_eq!(t.snippet, "Body of Re: Brief");

    let unread = f
        .store
        .list_threads(
            &ann.id,
            ThreadQuery {
                unread_only: true,
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        unread.items.iter().map(|t| &t.id).collect::<Vec<_>>(),
        vec![&sent.thread_id]
    );

    // Reading the thread records the read but does not mark anything read.
    let before = f.store.audit_head().await.unwrap().unwrap().seq;
    let thread = f
        .store
        .read_thread(&bob.id, &got.thread_id, f.entry("mail.read_thread"))
        .await
        .unwrap();
    assert_eq!(thread.subject, "Brief");
    assert_eq!(
        thread.messages.iter().map(|m| &m.id).collect::<Vec<_>>(),
        vec![&got.id, &reply.id]
    );
    assert!(thread.messages[0].unread);
    assert_eq!(f.store.audit_head().await.unwrap().unwrap().seq, before + 1);

    // Reading a message marks it read and records it.
    let read = f
        .store
        .read_message(&bob.id, &got.id, f.entry("mail.read"))
        .await
        .unwrap();
    assert!(!read.unread);
    assert!(!f.store.get_message(&bob.id, &got.id).await.unwrap().unwrap().unread);
    assert_eq!(f.store.audit_head().await.unwrap().unwrap().seq, before + 2);

    assert!(f.store.latest_mail_seq(&bob.id).await.unwrap() > 0);
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'smtp.deliver' AND status = 'queued'")
        .fetch_one(&f.store.reader)
        .await
        .unwrap();
    assert_eq!(queued, 3, "one delivery job per remote recipient of each message");
    f.assert_chain_ok().await;
}

#[tokio::test]
async fn owners_never_see_each_others_mail() {
    let f = Fixture::new().await;
    let ann = f.identity("ann").await;
    let bob = f.identity("bob").await;
    let eve = f.identity("eve").await;
    let sent = f.send(&ann, &[&bob], "Private", None).await;

    assert!(f.store.get_message(&eve.id, &sent.id).await.unwrap().is_none());
    assert!(f.store.raw_message(&eve.id, &sent.id).await.unwrap().is_none());
    let head = f.store.audit_head().await.unwrap();
    let e = f
        .store
        .read_message(&eve.id, &sent.id, f.entry("mail.read"))
        .await
        .unwrap_err();
    assert!(is_not_found(&e, "message"), "{e:?}");
    let patch = MessagePatch {
        add_labels: vec!["x".into()],
        ..Default::default()
    };
    let e = f
        .store
        .update_message(&eve.id, &sent.id, patch, f.entry("mail.update"))
        .await
        .unwrap_err();
    assert!(is_not_found(&e, "message"), "{e:?}");
    let e = f
        .store
        .read_thread(&eve.id, &sent.thread_id, f.entry("mail.read_thread"))
        .await
        .unwrap_err();
    assert!(is_not_found(&e, "thread"), "{e:?}");
    assert_eq!(
        f.store.audit_head().await.unwrap(),
        head,
        "refused reads leave no audit row"
    );

    let q = MessageQuery {
        thread_id: Some(sent.thread_id.clone()),
        limit: 50,
        ..Default::default()
    };
    assert!(f.store.list_messages(&eve.id, q).await.unwrap().items.is_empty());
    assert!(
        f.store
            .list_threads(
                &eve.id,
                ThreadQuery {
                    limit: 50,
                    ..Default::default()
                }
            )
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(f.store.latest_mail_seq(&eve.id).await.unwrap(), 0);

    // Bob's copy is bob's: ann's id for it does not work for bob either.
    assert!(f.store.get_message(&bob.id, &sent.id).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_chain_verifies_after_200_concurrent_writes_sharing_commits() {
    let f = Arc::new(Fixture::new().await);
    let ann = f.identity("ann").await;
    let bob = f.identity("bob").await;
    let first = f.send(&ann, &[&bob], "Seed", None).await;
    let setup_rows = f.assert_chain_ok().await;
    let commits_before = f.store.committed_batches();

    let mut tasks = Vec::new();
    for i in 0..200 {
        let (f, ann, bob, first) = (Arc::clone(&f), ann.clone(), bob.clone(), first.clone());
        tasks.push(tokio::spawn(async move {
            match i % 4 {
                0 => f.store.append_audit(f.entry("auth.refused")).await,
                1 => {
                    f.send(&ann, &[&bob], &format!("n{i}"), Some(&first)).await;
                    Ok(())
                }
                2 => {
                    let patch = MessagePatch {
                        add_labels: vec![format!("l{i}")],
                        ..Default::default()
                    };
                    f.store
                        .update_message(&ann.id, &first.id, patch, f.entry("mail.update"))
                        .await
                        .map(|_| ())
                }
                _ => {
                    f.child(&format!("c{i}"), Some(&ann)).await;
                    Ok(())
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let rows = f.assert_chain_ok().await;
    assert_eq!(rows, setup_rows + 200);
    let commits = f.store.committed_batches() - commits_before;
    eprintln!("200 concurrent writes: {commits} commits");
    assert!(
        commits < 200,
        "200 concurrent writes took {commits} commits: nothing was grouped"
    );
    // Every write landed.
    assert_eq!(
        f.store
            .get_message(&ann.id, &first.id)
            .await
            .unwrap()
            .unwrap()
            .labels
            .len(),
        50
    );
    let children = f
        .store
        .list_identities(IdentityQuery {
            within: Some(ann.id.clone()),
            limit: 200,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(children.items.len(), 51);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_keep_one_chain() {
    // Two `SqliteStore`s on one file stand for two processes: each has its own writer, and
    // BEGIN IMMEDIATE (with the busy timeout) serialises their batches on the file lock.
    let f = Arc::new(Fixture::new().await);
    let other = Arc::new(crate::open(f.store.path()).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (f, other) = (Arc::clone(&f), Arc::clone(&other));
        tasks.push(tokio::spawn(async move {
            let entry = f.entry("node.write");
            if i % 2 == 0 {
                f.store.append_audit(entry).await
            } else {
                other.append_audit(entry).await
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(f.assert_chain_ok().await, 100);
    assert_eq!(other.audit_head().await.unwrap(), f.store.audit_head().await.unwrap());
    other.close().await;
}

#[tokio::test]
async fn a_failing_job_does_not_spoil_the_other_jobs_of_its_batch() {
    let f = Fixture::new().await;
    f.store.append_audit(f.entry("setup")).await.unwrap();
    let commits_before = f.store.committed_batches();

    // On this single-threaded runtime the writer cannot run until this task yields, and
    // `join!` first polls each future in order, which queues its job: the three jobs are
    // queued, in this order, before the writer takes any, so they form one batch.
    let good1 = f.store.append_audit(f.entry("good.one"));
    let bad_entry = f.entry("bad");
    let bad = f.store.write(move |c| {
        Box::pin(async move {
            // Writes an audit row and moves the head, then fails: all of it must go.
            crate::audit::append(c, bad_entry).await?;
            sqlx::query("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, 'x')")
                .execute(&mut *c)
                .await
                .map_err(crate::error::map_err)?;
            Ok(())
        })
    });
    let good2 = f.store.append_audit(f.entry("good.two"));
    let (good1, bad, good2) = tokio::join!(good1, bad, good2);

    good1.unwrap();
    let e = bad.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    good2.unwrap();
    assert_eq!(f.store.committed_batches() - commits_before, 1, "one batch of three");

    let rows = f.store.audit_after(0, 100).await.unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(actions, vec!["setup", "good.one", "good.two"]);
    f.assert_chain_ok().await;
}

#[tokio::test]
async fn connections_are_set_up_as_designed() {
    let f = Fixture::new().await;
    let (journal, sync, fk, busy): (String, i64, i64, i64) = f
        .store
        .write(|c| {
            Box::pin(async move {
                let q = |sql: &'static str| sqlx::query_scalar::<_, String>(sql);
                let journal = q("PRAGMA journal_mode")
                    .fetch_one(&mut *c)
                    .await
                    .map_err(crate::error::map_err)?;
                let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(&mut *c)
                    .await
                    .map_err(crate::error::map_err)?;
                let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                    .fetch_one(&mut *c)
                    .await
                    .map_err(crate::error::map_err)?;
                let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                    .fetch_one(&mut *c)
                    .await
                    .map_err(crate::error::map_err)?;
                Ok((journal, sync, fk, busy))
            })
        })
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    assert_eq!(sync, 2, "synchronous=FULL");
    assert_eq!(fk, 1);
    assert_eq!(busy, 5000);

    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&f.store.reader)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let write = sqlx::query("INSERT INTO mail_contents (text, extracted_text) VALUES ('a', 'a')")
        .execute(&f.store.reader)
        .await
        .unwrap_err();
    assert!(write.to_string().contains("readonly"), "{write}");
}

#[tokio::test]
async fn a_panicking_job_is_an_error_and_the_writer_carries_on() {
    let f = Fixture::new().await;
    let e = f
        .store
        .write(|_c| -> futures::future::BoxFuture<'_, loft_core::Result<()>> { Box::pin(async { panic!("boom") }) })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    f.store.append_audit(f.entry("after.panic")).await.unwrap();
    assert_eq!(f.assert_chain_ok().await, 1);
}

#[tokio::test]
async fn audit_details_keep_their_bytes_and_lists_filter() {
    let f = Fixture::new().await;
    let ann = f.identity("ann").await;
    let mut e = f.entry("mail.send");
    e.actor_kind = ActorKind::Identity;
    e.actor_identity_id = Some(ann.id.clone());
    f.store.append_audit(e.clone()).await.unwrap();
    let mut denied = f.entry("mail_x.send");
    denied.outcome = Outcome::Denied;
    f.store.append_audit(denied).await.unwrap();
    f.store.append_audit(f.entry("mailbox.open")).await.unwrap();
    f.store.append_audit(f.entry("Mail.send")).await.unwrap();

    let all = f.store.audit_after(0, 100).await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[1].entry, e, "an entry reads back exactly as written");

    let store = &f.store;
    let list = |q: AuditQuery| async move { store.list_audit(AuditQuery { limit: 50, ..q }).await.unwrap() };
    let actions = |p: &loft_core::mail::StorePage<loft_core::audit::AuditRecord>| {
        p.items.iter().map(|r| r.entry.action.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        actions(
            &list(AuditQuery {
                action: Some("mail.".into()),
                ..Default::default()
            })
            .await
        ),
        vec!["mail.send"]
    );
    assert_eq!(
        actions(
            &list(AuditQuery {
                action: Some("mail_.".into()),
                ..Default::default()
            })
            .await
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        actions(
            &list(AuditQuery {
                action: Some("mail%".into()),
                ..Default::default()
            })
            .await
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        actions(
            &list(AuditQuery {
                action: Some("mail.send".into()),
                ..Default::default()
            })
            .await
        ),
        vec!["mail.send"]
    );
    assert_eq!(
        actions(
            &list(AuditQuery {
                outcome: Some(Outcome::Denied),
                ..Default::default()
            })
            .await
        ),
        vec!["mail_x.send"]
    );
    assert_eq!(
        actions(
            &list(AuditQuery {
                actor_identity_id: Some(ann.id.clone()),
                ..Default::default()
            })
            .await
        ),
        vec!["mail.send"]
    );
    let since = all[2].entry.at;
    let until = all[4].entry.at;
    assert_eq!(
        actions(
            &list(AuditQuery {
                since: Some(since),
                until: Some(until),
                ..Default::default()
            })
            .await
        ),
        vec!["mailbox.open", "mail_x.send"]
    );

    // Pages: newest first, cursor is the last seq returned.
    let p1 = f
        .store
        .list_audit(AuditQuery {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(p1.items.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![5, 4]);
    assert_eq!(p1.next_before, Some(4));
    let p2 = f
        .store
        .list_audit(AuditQuery {
            limit: 2,
            before_seq: Some(4),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(p2.items.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 2]);
    let p3 = f
        .store
        .list_audit(AuditQuery {
            limit: 2,
            before_seq: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(p3.items.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1]);
    assert_eq!(p3.next_before, None);

    assert_eq!(
        f.store
            .audit_after(3, 100)
            .await
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>(),
        vec![4, 5]
    );
    // The log is append-only, even to SQL run on the store's own connection.
    let e = f
        .store
        .write(|c| {
            Box::pin(async move {
                sqlx::query("DELETE FROM audit_log")
                    .execute(c)
                    .await
                    .map_err(crate::error::map_err)
                    .map(|_| ())
            })
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    assert_eq!(f.assert_chain_ok().await, 5);
}

#[tokio::test]
async fn identities_addresses_tree_and_revocation() {
    let f = Fixture::new().await;
    assert_eq!(f.store.audit_head().await.unwrap(), None);
    let root = f.identity("root").await;
    let child = f.child("child", Some(&root)).await;
    let grandchild = f.child("grandchild", Some(&child)).await;
    let other = f.identity("other").await;

    assert_eq!(f.store.get_identity(&child.id).await.unwrap().unwrap(), child);
    assert!(
        f.store
            .get_identity(&IdentityId::generate(&OsRandom))
            .await
            .unwrap()
            .is_none()
    );

    // Addresses are unique, whatever the case they were given in.
    let (mut dup, _) = f.new_identity("root", None);
    dup.identity.address = EmailAddress::parse("ROOT@agents.localhost").unwrap();
    let e = f
        .store
        .create_identity(dup, f.entry("identity.create"))
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::Conflict(d) if d.code == "address_taken"), "{e:?}");

    let up = f.store.ancestors(&grandchild.id).await.unwrap();
    assert_eq!(up.iter().map(|i| &i.id).collect::<Vec<_>>(), vec![&child.id, &root.id]);
    assert!(f.store.ancestors(&root.id).await.unwrap().is_empty());

    let within = f
        .store
        .list_identities(IdentityQuery {
            within: Some(child.id.clone()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        within.items.iter().map(|i| &i.id).collect::<Vec<_>>(),
        vec![&grandchild.id, &child.id]
    );

    // Pages of everyone, newest first.
    let p1 = f
        .store
        .list_identities(IdentityQuery {
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        p1.items.iter().map(|i| &i.id).collect::<Vec<_>>(),
        vec![&other.id, &grandchild.id, &child.id]
    );
    let p2 = f
        .store
        .list_identities(IdentityQuery {
            limit: 3,
            before_seq: p1.next_before,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(p2.items.iter().map(|i| &i.id).collect::<Vec<_>>(), vec![&root.id]);
    assert_eq!(p2.next_before, None);

    let resolved = f
        .store
        .resolve_addresses(&[
            other.address.clone(),
            EmailAddress::parse("nobody@x.example").unwrap(),
            root.address.clone(),
        ])
        .await
        .unwrap();
    assert_eq!(
        resolved,
        vec![
            (other.address.clone(), other.id.clone()),
            (root.address.clone(), root.id.clone())
        ]
    );

    // Revoking the child takes the grandchild and all their keys with it, at `at`.
    let at = f.now();
    let revoked = f
        .store
        .revoke_identity(&child.id, at, f.entry("identity.revoke"))
        .await
        .unwrap();
    assert_eq!(revoked, vec![child.id.clone(), grandchild.id.clone()]);
    let row = f.store.audit_after(0, 100).await.unwrap().pop().unwrap();
    assert_eq!(
        row.entry.details["revoked"],
        serde_json::json!([child.id.as_str(), grandchild.id.as_str()])
    );
    assert_eq!(row.entry.details["z"], 1, "the rest of the details stays");
    let g = f.store.get_identity(&grandchild.id).await.unwrap().unwrap();
    assert_eq!(g.status, IdentityStatus::Revoked);
    assert_eq!(g.revoked_at, Some(at));
    for k in f.store.list_keys(&grandchild.id).await.unwrap() {
        assert_eq!(k.revoked_at, Some(at));
    }
    assert!(
        f.store
            .resolve_addresses(std::slice::from_ref(&child.address))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        f.store.get_identity(&root.id).await.unwrap().unwrap().status,
        IdentityStatus::Active
    );

    // Again: nothing new; the whole tree from the root: only the root is new.
    assert!(
        f.store
            .revoke_identity(&child.id, f.now(), f.entry("identity.revoke"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        f.store
            .revoke_identity(&root.id, f.now(), f.entry("identity.revoke"))
            .await
            .unwrap(),
        vec![root.id.clone()]
    );
    let e = f
        .store
        .revoke_identity(&IdentityId::generate(&OsRandom), f.now(), f.entry("identity.revoke"))
        .await
        .unwrap_err();
    assert!(is_not_found(&e, "identity"), "{e:?}");

    // Revoked identities keep their addresses, and are hidden unless asked for.
    let (again, _) = f.new_identity("child", None);
    let e = f
        .store
        .create_identity(again, f.entry("identity.create"))
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::Conflict(d) if d.code == "address_taken"), "{e:?}");
    let active = f
        .store
        .list_identities(IdentityQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(active.items.iter().map(|i| &i.id).collect::<Vec<_>>(), vec![&other.id]);
    let everyone = f
        .store
        .list_identities(IdentityQuery {
            include_revoked: true,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(everyone.items.len(), 4);

    // Display names: set, then cleared with "".
    let upd = IdentityUpdate {
        display_name: Some("Other One".into()),
        scopes: Some(ScopeSet::new([Scope::MailRead])),
    };
    let o = f
        .store
        .update_identity(&other.id, upd, f.entry("identity.update"))
        .await
        .unwrap();
    assert_eq!(o.display_name.as_deref(), Some("Other One"));
    assert_eq!(o.scopes, ScopeSet::new([Scope::MailRead]));
    let o = f
        .store
        .update_identity(
            &other.id,
            IdentityUpdate {
                display_name: Some(String::new()),
                scopes: None,
            },
            f.entry("identity.update"),
        )
        .await
        .unwrap();
    assert_eq!(o.display_name, None);
    assert_eq!(o.scopes, ScopeSet::new([Scope::MailRead]));
    let e = f
        .store
        .update_identity(
            &IdentityId::generate(&OsRandom),
            IdentityUpdate::default(),
            f.entry("identity.update"),
        )
        .await
        .unwrap_err();
    assert!(is_not_found(&e, "identity"), "{e:?}");
    f.assert_chain_ok().await;
}

#[tokio::test]
async fn keys_find_rotate_and_revoke() {
    let f = Fixture::new().await;
    let (new, first_key) = f.new_identity("ann", None);
    let ann = new.identity.clone();
    f.store.create_identity(new, f.entry("identity.create")).await.unwrap();
    let bob = f.identity("bob").await;

    let (stored, owner) = f.store.find_key(first_key.id()).await.unwrap().unwrap();
    assert_eq!(owner, ann);
    assert!(stored.digest.matches(&first_key.digest()));
    assert_eq!(stored.meta.kind, KeyKind::Primary);
    assert!(f.store.find_key(&KeyId::generate(&OsRandom)).await.unwrap().is_none());

    // Rotation: the new key in, the old one revoked at the new one's creation.
    let second = ApiKey::generate(&OsRandom);
    let at = f.now();
    let k2 = Fixture::stored_key(&ann.id, &second, KeyKind::Primary, at);
    f.store
        .create_key(k2, Some(first_key.id().clone()), f.entry("key.rotate"))
        .await
        .unwrap();
    let keys = f.store.list_keys(&ann.id).await.unwrap();
    assert_eq!(
        keys.iter().map(|k| &k.id).collect::<Vec<_>>(),
        vec![first_key.id(), second.id()]
    );
    assert_eq!(keys[0].revoked_at, Some(at));
    assert_eq!(keys[1].revoked_at, None);

    // Replacing a key that is already revoked, or another identity's key, writes nothing.
    let head = f.store.audit_head().await.unwrap();
    let third = ApiKey::generate(&OsRandom);
    let k3 = Fixture::stored_key(&ann.id, &third, KeyKind::Extra, f.now());
    let e = f
        .store
        .create_key(k3.clone(), Some(first_key.id().clone()), f.entry("key.rotate"))
        .await
        .unwrap_err();
    assert!(is_not_found(&e, "key"), "{e:?}");
    let bobs = f.store.list_keys(&bob.id).await.unwrap().remove(0);
    let e = f
        .store
        .create_key(k3.clone(), Some(bobs.id.clone()), f.entry("key.rotate"))
        .await
        .unwrap_err();
    assert!(is_not_found(&e, "key"), "{e:?}");
    assert!(f.store.find_key(third.id()).await.unwrap().is_none());
    assert_eq!(f.store.audit_head().await.unwrap(), head);
    assert_eq!(f.store.list_keys(&bob.id).await.unwrap()[0].revoked_at, None);

    // Revoke: only the identity's own key; again returns it unchanged (and is recorded).
    let e = f
        .store
        .revoke_key(&bob.id, second.id(), f.now(), f.entry("key.revoke"))
        .await
        .unwrap_err();
    assert!(is_not_found(&e, "key"), "{e:?}");
    let at = f.now();
    let r = f
        .store
        .revoke_key(&ann.id, second.id(), at, f.entry("key.revoke"))
        .await
        .unwrap();
    assert_eq!(r.revoked_at, Some(at));
    let r2 = f
        .store
        .revoke_key(&ann.id, second.id(), f.now(), f.entry("key.revoke"))
        .await
        .unwrap();
    assert_eq!(r2, r);
    assert_eq!(
        f.store.find_key(second.id()).await.unwrap().unwrap().0.meta.revoked_at,
        Some(at)
    );
    let n = f.assert_chain_ok().await;
    assert_eq!(n, 5, "2 creations, 1 rotation, 2 revocations");
}

#[tokio::test]
async fn labels_read_state_filters_and_pages() {
    let f = Fixture::new().await;
    let ann = f.identity("ann").await;
    let bob = f.identity("bob").await;
    let carol = f.identity("carol").await;
    let m1 = f.send(&ann, &[&bob], "one", None).await;
    let _m2 = f.send(&carol, &[&bob], "two", None).await;
    let m3 = f.send(&ann, &[&bob], "three", Some(&m1)).await;
    let (store, bob_id) = (&f.store, &bob.id);
    let inbox = |q: MessageQuery| async move {
        store
            .list_messages(
                bob_id,
                MessageQuery {
                    folder: Some(Folder::Inbox),
                    limit: 50,
                    ..q
                },
            )
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|m| m.subject)
            .collect::<Vec<_>>()
    };
    assert_eq!(inbox(MessageQuery::default()).await, vec!["three", "two", "one"]);
    let ids = f
        .store
        .list_messages(
            &bob.id,
            MessageQuery {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items;
    let (b3, b2, b1) = (&ids[0], &ids[1], &ids[2]);
    assert_eq!(b1.snippet, "Body of one");

    // Labels: normalised by the core, deduplicated and idempotent here.
    let patch = MessagePatch {
        add_labels: vec!["work".into(), "todo".into(), "work".into()],
        ..Default::default()
    };
    let m = f
        .store
        .update_message(&bob.id, &b1.id, patch.clone(), f.entry("mail.update"))
        .await
        .unwrap();
    assert_eq!(m.labels, vec!["todo", "work"]);
    let m = f
        .store
        .update_message(&bob.id, &b1.id, patch, f.entry("mail.update"))
        .await
        .unwrap();
    assert_eq!(m.labels, vec!["todo", "work"]);
    let patch = MessagePatch {
        remove_labels: vec!["todo".into(), "absent".into()],
        unread: Some(false),
        ..Default::default()
    };
    let m = f
        .store
        .update_message(&bob.id, &b1.id, patch, f.entry("mail.update"))
        .await
        .unwrap();
    assert_eq!(m.labels, vec!["work"]);
    assert!(!m.unread);
    let m = f
        .store
        .update_message(
            &bob.id,
            &b1.id,
            MessagePatch {
                unread: Some(true),
                ..Default::default()
            },
            f.entry("mail.update"),
        )
        .await
        .unwrap();
    assert!(m.unread);
    f.store
        .read_message(&bob.id, &b2.id, f.entry("mail.read"))
        .await
        .unwrap();

    // Too many labels on one message: refused, and nothing of the patch stays.
    let many = MessagePatch {
        add_labels: (0..50).map(|i| format!("l{i}")).collect(),
        ..Default::default()
    };
    let e = f
        .store
        .update_message(&bob.id, &b1.id, many, f.entry("mail.update"))
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::Invalid(d) if d.code == "too_many_labels"), "{e:?}");
    assert_eq!(
        f.store.get_message(&bob.id, &b1.id).await.unwrap().unwrap().labels,
        vec!["work"]
    );

    assert_eq!(
        inbox(MessageQuery {
            label: Some("work".into()),
            ..Default::default()
        })
        .await,
        vec!["one"]
    );
    assert_eq!(
        inbox(MessageQuery {
            unread_only: true,
            ..Default::default()
        })
        .await,
        vec!["three", "one"]
    );
    let from_ann = MessageQuery {
        from: Some(ann.address.clone()),
        ..Default::default()
    };
    assert_eq!(inbox(from_ann).await, vec!["three", "one"]);
    let thread = MessageQuery {
        thread_id: Some(b1.thread_id.clone()),
        ..Default::default()
    };
    assert_eq!(inbox(thread).await, vec!["three", "one"]);
    assert_eq!(b3.thread_id, b1.thread_id);
    let seqs: Vec<i64> = {
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT seq FROM messages WHERE owner_id = ? ORDER BY seq")
            .bind(bob.id.as_str().to_owned())
            .fetch_all(&f.store.reader)
            .await
            .unwrap();
        rows.into_iter().map(|r| r.0).collect()
    };
    assert_eq!(
        inbox(MessageQuery {
            after_seq: Some(seqs[0]),
            ..Default::default()
        })
        .await,
        vec!["three", "two"]
    );
    assert_eq!(
        inbox(MessageQuery {
            before_seq: Some(seqs[2]),
            ..Default::default()
        })
        .await,
        vec!["two", "one"]
    );
    assert_eq!(f.store.latest_mail_seq(&bob.id).await.unwrap(), seqs[2]);
    let sent = f
        .store
        .list_messages(
            &ann.id,
            MessageQuery {
                folder: Some(Folder::Sent),
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        sent.items.iter().map(|m| &m.id).collect::<Vec<_>>(),
        vec![&m3.id, &m1.id]
    );

    // Pages of one.
    let p1 = f
        .store
        .list_messages(
            &bob.id,
            MessageQuery {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(p1.items[0].id, b3.id);
    assert_eq!(p1.next_before, Some(seqs[2]));
    let p2 = f
        .store
        .list_messages(
            &bob.id,
            MessageQuery {
                limit: 2,
                before_seq: p1.next_before,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(p2.items.iter().map(|m| &m.id).collect::<Vec<_>>(), vec![&b2.id, &b1.id]);
    assert_eq!(p2.next_before, None);

    // Threads by label and pages of threads.
    let labelled = f
        .store
        .list_threads(
            &bob.id,
            ThreadQuery {
                label: Some("work".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        labelled.items.iter().map(|t| &t.id).collect::<Vec<_>>(),
        vec![&b1.thread_id]
    );
    let t1 = f
        .store
        .list_threads(
            &bob.id,
            ThreadQuery {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t1.items[0].id, b1.thread_id);
    assert_eq!(t1.next_before, Some(seqs[2]));
    let t2 = f
        .store
        .list_threads(
            &bob.id,
            ThreadQuery {
                limit: 1,
                before_seq: t1.next_before,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t2.items[0].id, b2.thread_id);
    assert_eq!(t2.next_before, None);

    // A limit of 0 is taken literally, as on PostgreSQL.
    let none = f.store.list_messages(&bob.id, MessageQuery::default()).await.unwrap();
    assert!(none.items.is_empty());
    assert_eq!(none.next_before, None);
    f.assert_chain_ok().await;
}

#[tokio::test]
async fn urls_files_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let url = format!("sqlite://{}", path.display());
    let store = crate::open_url(&url).await.unwrap();
    assert_eq!(store.path(), path.as_path());
    store.append_audit(Fixture::new().await.entry("one")).await.unwrap();
    store.close().await;
    store.close().await;
    let e = store.append_audit(Fixture::new().await.entry("two")).await.unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    let e = store.audit_head().await.unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");

    // Reopened (the other URL form): the row is there, and migrations do not run twice.
    let store = crate::open_url(&format!("sqlite:{}", path.display())).await.unwrap();
    assert_eq!(store.audit_head().await.unwrap().unwrap().seq, 1);
    store.close().await;

    assert!(
        crate::open(&dir.path().join("missing-dir/x.db")).await.is_err(),
        "parent directories are not created"
    );
    for bad in ["postgres://x", "sqlite://", "sqlite::memory:", "sqlite://x.db?mode=rwc"] {
        let e = crate::open_url(bad).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{bad}: {e:?}");
    }
}

#[tokio::test]
async fn the_use_cases_run_on_this_store() {
    use loft_core::keys::OperatorKey;
    use loft_core::mail::{ReplyMail, SendMail};
    use loft_core::service::{CreateIdentityRequest, Loft, LoftConfig, RequestContext};
    use loft_core::time::ManualClock;

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(crate::open(&dir.path().join("loft.db")).await.unwrap());
    let admin = OperatorKey::generate(&OsRandom);
    let loft = Loft::new(
        store.clone(),
        Arc::new(ManualClock::new(Timestamp::from_micros(T0))),
        Arc::new(OsRandom),
        OperatorKey::from_secret(&admin).unwrap(),
        LoftConfig {
            domain: "agents.localhost".into(),
            max_body_bytes: 1 << 20,
        },
    )
    .unwrap();
    let ctx = RequestContext::default();
    let op = loft.authenticate(Some(&admin), ctx.clone()).await.unwrap();
    let mut actors = Vec::new();
    for name in ["ann", "bob"] {
        let req = CreateIdentityRequest {
            name: name.into(),
            local_part: Some(name.into()),
            ..Default::default()
        };
        let created = loft.create_identity(&op, req).await.unwrap();
        actors.push(loft.authenticate(Some(&created.api_key), ctx.clone()).await.unwrap());
    }
    let (ann, bob) = (&actors[0], &actors[1]);
    let req = SendMail {
        to: vec!["bob@agents.localhost".into()],
        cc: vec![],
        bcc: vec![],
        subject: "Hello".into(),
        text: "Hi Bob".into(),
        html: None,
    };
    let sent = loft.send(ann, req).await.unwrap();
    let inbox = loft
        .list_messages(bob, loft_core::service::ListMessagesParams::default())
        .await
        .unwrap();
    let reply = loft
        .reply(
            bob,
            inbox.items[0].id.as_str(),
            ReplyMail {
                text: "Hi Ann".into(),
                html: None,
                reply_all: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(reply.subject, "Re: Hello");
    let thread = loft.get_thread(ann, sent.thread_id.as_str()).await.unwrap();
    assert_eq!(thread.messages.len(), 2);
    assert_eq!(thread.messages[1].text, "Hi Ann");
    let report = loft.audit_verify(&op).await.unwrap();
    assert!(report.ok, "{report:?}");
    store.close().await;
}
