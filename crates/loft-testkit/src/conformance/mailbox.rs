//! The rest of the mailbox: forwarding, archive, trash and restore, delete for ever, labels on
//! whole threads (docs/mailbox.md).

use std::sync::Arc;

use loft_core::identity::CreatedIdentity;
use loft_core::mail::{Folder, ForwardMail, MessagePatch, MessageStatus, MessageSummary, SendMail};
use loft_core::oversight::OversightMode;
use loft_core::service::{Actor, CreateIdentityRequest, ListThreadsParams, SearchParams};
use loft_core::store::Store;
use loft_core::time::Clock as _;

use crate::conformance::mail::folder;
use crate::{TestLoft, expect_err, test_loft};

fn addr(c: &CreatedIdentity) -> &str {
    c.identity.address.as_str()
}

fn fwd(to: &str, note: &str) -> ForwardMail {
    ForwardMail {
        to: vec![to.to_owned()],
        text: note.into(),
        ..Default::default()
    }
}

/// A forward quotes the original below the note with a `Fwd:` subject, joins the original's
/// conversation in the forwarder's mailbox, starts one for a recipient without the original,
/// replays on its idempotency key, and only ever forwards the caller's own copy.
pub async fn mailbox_forward_quotes_and_threads(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let (c, ca) = t.identity("carol").await;
    t.send(&ca, &[addr(&a)], "Quarterly numbers", "Revenue is up 12%.")
        .await;
    let original = t.all_messages(&aa, folder("inbox")).await.remove(0);

    let sent = t
        .loft
        .forward(&aa, original.id.as_str(), fwd(addr(&b), "FYI, see below."))
        .await
        .unwrap();
    assert_eq!(sent.subject, "Fwd: Quarterly numbers");
    assert_eq!(sent.to, vec![b.identity.address.clone()]);
    assert!(
        sent.text
            .starts_with("FYI, see below.\n\n---------- Forwarded message ----------\n"),
        "{}",
        sent.text
    );
    assert!(
        sent.text.contains(&format!("From: {}\n", c.identity.address)),
        "{}",
        sent.text
    );
    assert!(sent.text.contains("Subject: Quarterly numbers\n") && sent.text.ends_with("Revenue is up 12%."));
    assert_eq!(sent.references.last(), Some(&original.message_id));
    assert_eq!(sent.in_reply_to, None);
    // In Alice's mailbox, the forward is part of the original's conversation.
    assert_eq!(sent.thread_id, original.thread_id);
    // Bob gets it, in a conversation of his own.
    let got = t.all_messages(&ba, folder("inbox")).await.remove(0);
    assert_eq!(
        (got.subject.as_str(), got.folder),
        ("Fwd: Quarterly numbers", Folder::Inbox)
    );
    assert_ne!(got.thread_id, original.thread_id);
    // Forwarding a forward does not stack prefixes.
    let again = t.loft.forward(&ba, got.id.as_str(), fwd(addr(&c), "")).await.unwrap();
    assert_eq!(again.subject, "Fwd: Quarterly numbers");
    assert!(
        again.text.starts_with("---------- Forwarded message ----------\n"),
        "{}",
        again.text
    );

    // An idempotency key replays the first forward.
    let keyed = ForwardMail {
        idempotency_key: Some("fwd-1".into()),
        ..fwd(addr(&b), "once")
    };
    let one = t.loft.forward(&aa, original.id.as_str(), keyed.clone()).await.unwrap();
    let two = t.loft.forward(&aa, original.id.as_str(), keyed).await.unwrap();
    assert_eq!(one.id, two.id);
    assert_eq!(t.audit_count("mail.forward").await, 3);

    // Only one's own copy: Bob cannot forward Alice's copy, nor can a key without mail:send.
    let e = expect_err(t.loft.forward(&ba, original.id.as_str(), fwd(addr(&c), "")).await);
    assert_eq!(e.code(), "not_found", "{e:?}");
    let (_, reader) = t.identity_with_scopes("reader", &["mail:read"]).await;
    let e = expect_err(t.loft.forward(&reader, original.id.as_str(), fwd(addr(&c), "")).await);
    assert_eq!(e.code(), "missing_scope", "{e:?}");
    // Bad recipients and NUL in the note are refused before anything is written.
    let before = t.audit_len().await;
    for (req, code) in [
        (fwd("not an address", ""), "invalid_address"),
        (fwd(addr(&b), "a\0b"), "invalid_text"),
        (
            ForwardMail {
                to: vec![],
                ..fwd(addr(&b), "")
            },
            "no_recipients",
        ),
    ] {
        let e = expect_err(t.loft.forward(&aa, original.id.as_str(), req).await);
        assert_eq!(e.code(), code, "{e:?}");
    }
    assert_eq!(t.audit_len().await, before, "a refused forward writes nothing");
}

/// A forward goes through the gate like a send: held in `gated_send`, nothing delivered.
pub async fn mailbox_forward_is_gated_like_a_send(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (g, ga) = t
        .identity_with(CreateIdentityRequest {
            name: "gated".into(),
            oversight_mode: Some(OversightMode::GatedSend),
            ..Default::default()
        })
        .await;
    let (b, ba) = t.identity("bob").await;
    let (_, ca) = t.identity("carol").await;
    t.send(&ca, &[addr(&g)], "Contract", "Signed copy attached.").await;
    let original = t.all_messages(&ga, folder("inbox")).await.remove(0);
    let sent = t
        .loft
        .forward(&ga, original.id.as_str(), fwd(addr(&b), "For your files."))
        .await
        .unwrap();
    assert_eq!(sent.status, MessageStatus::PendingApproval);
    assert!(sent.approval.is_some());
    assert!(
        t.all_messages(&ba, folder("inbox")).await.is_empty(),
        "held: nothing delivered"
    );
}

fn archive(on: bool) -> MessagePatch {
    MessagePatch {
        archived: Some(on),
        ..MessagePatch::default()
    }
}

fn trash(on: bool) -> MessagePatch {
    MessagePatch {
        trashed: Some(on),
        ..MessagePatch::default()
    }
}

fn ids(list: &[MessageSummary]) -> Vec<String> {
    list.iter().map(|m| m.id.to_string()).collect()
}

async fn listed(t: &TestLoft, who: &Actor, f: &str) -> Vec<String> {
    ids(&t.all_messages(who, folder(f)).await)
}

async fn found(t: &TestLoft, who: &Actor, words: &str) -> Vec<String> {
    let page = t
        .loft
        .search_messages(
            who,
            SearchParams {
                q: words.into(),
                ..SearchParams::default()
            },
        )
        .await
        .unwrap();
    page.items.iter().map(|h| h.message.id.to_string()).collect()
}

async fn threads(t: &TestLoft, who: &Actor, f: Option<&str>) -> Vec<(String, i64)> {
    let page = t
        .loft
        .list_threads(
            who,
            ListThreadsParams {
                folder: f.map(str::to_owned),
                ..ListThreadsParams::default()
            },
        )
        .await
        .unwrap();
    page.items
        .iter()
        .map(|th| (th.id.to_string(), th.message_count))
        .collect()
}

/// Archive takes a copy out of the inbox view only (threads, search, `archive` and `all` still
/// show it); trash takes it out of every list, thread and search (only `trash` shows it, with
/// when it was trashed) until it is restored, labels and read state intact. Only the caller's
/// copy changes, and another identity's id is a 404.
pub async fn mailbox_archive_trash_and_restore(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    t.send(&aa, &[addr(&b)], "Pelican report", "The pelicans migrated early.")
        .await;
    let copy = t.all_messages(&ba, folder("inbox")).await.remove(0);
    let id = copy.id.to_string();
    t.loft
        .update_message(
            &ba,
            &id,
            MessagePatch {
                add_labels: vec!["birds".into()],
                ..MessagePatch::default()
            },
        )
        .await
        .unwrap();

    // Archive.
    let m = t.loft.update_message(&ba, &id, archive(true)).await.unwrap();
    assert!(m.archived && m.trashed_at.is_none());
    assert!(listed(&t, &ba, "inbox").await.is_empty());
    assert_eq!(listed(&t, &ba, "archive").await, [id.as_str()]);
    assert_eq!(listed(&t, &ba, "all").await, [id.as_str()]);
    assert_eq!(found(&t, &ba, "pelicans").await, [id.as_str()]);
    assert_eq!(threads(&t, &ba, None).await, [(copy.thread_id.to_string(), 1)]);
    let thread = t
        .loft
        .get_thread(
            &ba,
            copy.thread_id.as_str(),
            loft_core::service::GetThreadParams::default(),
        )
        .await
        .unwrap();
    assert!(thread.messages[0].archived);
    // Unarchive.
    let m = t.loft.update_message(&ba, &id, archive(false)).await.unwrap();
    assert!(!m.archived);
    assert_eq!(listed(&t, &ba, "inbox").await, [id.as_str()]);
    assert!(listed(&t, &ba, "archive").await.is_empty());

    // Trash: out of everything but `trash`, with the time it was trashed (kept when trashed
    // again).
    let before = t.clock.now();
    let m = t.loft.update_message(&ba, &id, trash(true)).await.unwrap();
    let trashed_at = m.trashed_at.expect("trashed_at is set");
    assert!(trashed_at > before, "the time of the change");
    t.clock.advance_secs(60);
    let m = t.loft.update_message(&ba, &id, trash(true)).await.unwrap();
    assert_eq!(m.trashed_at, Some(trashed_at), "trashing again keeps the first time");
    for f in ["inbox", "sent", "archive", "all"] {
        assert!(listed(&t, &ba, f).await.is_empty(), "{f}");
    }
    let in_trash = t.all_messages(&ba, folder("trash")).await;
    assert_eq!(ids(&in_trash), [id.as_str()]);
    assert_eq!(in_trash[0].trashed_at, Some(trashed_at));
    assert!(
        found(&t, &ba, "pelicans").await.is_empty(),
        "trashed mail is out of search"
    );
    assert!(threads(&t, &ba, None).await.is_empty());
    assert_eq!(threads(&t, &ba, Some("trash")).await, [(copy.thread_id.to_string(), 1)]);
    let e = expect_err(
        t.loft
            .get_thread(
                &ba,
                copy.thread_id.as_str(),
                loft_core::service::GetThreadParams::default(),
            )
            .await,
    );
    assert_eq!(e.code(), "not_found", "a thread whose copies are all trashed: {e:?}");
    // The trash's view of it opens, with the trashed copies only.
    let in_trash = loft_core::service::GetThreadParams {
        folder: Some("trash".into()),
    };
    let th = t.loft.get_thread(&ba, copy.thread_id.as_str(), in_trash).await.unwrap();
    assert_eq!(th.messages.len(), 1);
    assert_eq!(th.messages[0].trashed_at, Some(trashed_at));
    let e = expect_err(
        t.loft
            .get_thread(
                &ba,
                copy.thread_id.as_str(),
                loft_core::service::GetThreadParams {
                    folder: Some("bin".into()),
                },
            )
            .await,
    );
    assert_eq!(e.code(), "invalid_folder", "{e:?}");
    // Opening it by id still works, and says where it is.
    let m = t.loft.get_message(&ba, &id).await.unwrap();
    assert_eq!(m.trashed_at, Some(trashed_at));
    let e = expect_err(
        t.loft
            .list_messages(
                &ba,
                loft_core::service::ListMessagesParams {
                    folder: Some("bin".into()),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "invalid_folder");

    // Alice's copy of the same mail is untouched.
    let sent = t.all_messages(&aa, folder("sent")).await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0].trashed_at.is_none() && !sent[0].archived);
    assert_eq!(found(&t, &aa, "pelicans").await.len(), 1);

    // Restore: back in the inbox with its labels.
    let m = t.loft.update_message(&ba, &id, trash(false)).await.unwrap();
    assert!(m.trashed_at.is_none());
    assert_eq!(m.labels, ["birds"]);
    assert_eq!(listed(&t, &ba, "inbox").await, [id.as_str()]);
    assert!(listed(&t, &ba, "trash").await.is_empty());
    assert_eq!(found(&t, &ba, "pelicans").await, [id.as_str()]);

    // Another identity's copy is a 404, whatever the change; so is a key without mail:manage's
    // scope refused.
    for patch in [archive(true), trash(true), trash(false)] {
        let e = expect_err(t.loft.update_message(&aa, &id, patch).await);
        assert_eq!(e.code(), "not_found", "{e:?}");
    }
    let e = expect_err(t.loft.update_thread(&aa, copy.thread_id.as_str(), trash(true)).await);
    assert_eq!(e.code(), "not_found", "{e:?}");
    let (_, reader) = t.identity_with_scopes("reader", &["mail:read"]).await;
    let e = expect_err(t.loft.update_message(&reader, &id, trash(true)).await);
    assert_eq!(e.code(), "missing_scope", "{e:?}");
    let e = expect_err(t.loft.update_message(&ba, &id, MessagePatch::default()).await);
    assert_eq!(e.code(), "empty_update", "{e:?}");
    let _ = a;
    // Every change is audited with what it changed.
    let rows = t.audit_rows().await;
    let trashes = rows
        .iter()
        .filter(|r| r.entry.action == "mail.update" && r.entry.details["trashed"] == serde_json::json!(true))
        .count();
    assert_eq!(trashes, 2);
    t.assert_chain_ok().await;
}

/// One call changes every copy of a thread (labels, read state, archive, trash, restore), all
/// or nothing: one copy over the label cap, or not yet sent, changes none.
pub async fn mailbox_thread_changes_every_copy(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    t.send(&aa, &[addr(&b)], "Plan", "First draft.").await;
    let first = t.all_messages(&ba, folder("inbox")).await.remove(0);
    t.loft
        .reply(
            &ba,
            first.id.as_str(),
            loft_core::mail::ReplyMail {
                text: "Looks good.".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let sent_first = t.all_messages(&aa, folder("sent")).await.remove(0);
    t.loft
        .reply(
            &aa,
            sent_first.id.as_str(),
            loft_core::mail::ReplyMail {
                text: "Thanks.".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let thread = first.thread_id.to_string();
    // Bob's thread: his inbox copy, his sent reply, Alice's answer.
    let th = t
        .loft
        .get_thread(&ba, &thread, loft_core::service::GetThreadParams::default())
        .await
        .unwrap();
    assert_eq!(th.messages.len(), 3);

    let changed = t
        .loft
        .update_thread(
            &ba,
            &thread,
            MessagePatch {
                add_labels: vec!["Project".into()],
                unread: Some(false),
                ..MessagePatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.messages.len(), 3);
    assert!(changed.messages.iter().all(|m| m.labels == ["project"] && !m.unread));

    // All or nothing: one copy at the label cap refuses the whole change.
    let cap = loft_core::mail::MAX_LABELS_PER_MESSAGE;
    let last = th.messages[2].id.to_string();
    t.loft
        .update_message(
            &ba,
            &last,
            MessagePatch {
                add_labels: (1..cap).map(|i| format!("l{i}")).collect(),
                ..MessagePatch::default()
            },
        )
        .await
        .unwrap();
    let e = expect_err(
        t.loft
            .update_thread(
                &ba,
                &thread,
                MessagePatch {
                    add_labels: vec!["one-more".into()],
                    unread: Some(true),
                    ..MessagePatch::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "too_many_labels", "{e:?}");
    let th = t
        .loft
        .get_thread(&ba, &thread, loft_core::service::GetThreadParams::default())
        .await
        .unwrap();
    assert!(
        th.messages
            .iter()
            .all(|m| !m.labels.contains(&"one-more".to_owned()) && !m.unread),
        "nothing of a refused thread change stays"
    );

    // Archive, trash and restore the whole thread.
    let changed = t.loft.update_thread(&ba, &thread, archive(true)).await.unwrap();
    assert!(changed.messages.iter().all(|m| m.archived));
    assert!(listed(&t, &ba, "inbox").await.is_empty());
    assert_eq!(listed(&t, &ba, "archive").await.len(), 3);
    let changed = t.loft.update_thread(&ba, &thread, trash(true)).await.unwrap();
    assert_eq!(changed.messages.len(), 3, "the answer shows the trashed copies");
    assert!(changed.messages.iter().all(|m| m.trashed_at.is_some()));
    assert!(listed(&t, &ba, "all").await.is_empty());
    assert_eq!(listed(&t, &ba, "trash").await.len(), 3);
    assert_eq!(threads(&t, &ba, Some("trash")).await, [(thread.clone(), 3)]);
    let changed = t.loft.update_thread(&ba, &thread, trash(false)).await.unwrap();
    assert!(changed.messages.iter().all(|m| m.trashed_at.is_none() && m.archived));
    // Alice's copies of the thread never moved.
    let alice = t.all_messages(&aa, folder("all")).await;
    assert_eq!(alice.len(), 3);
    assert!(
        alice
            .iter()
            .all(|m| m.labels.is_empty() && !m.archived && m.trashed_at.is_none())
    );
    let _ = a;

    // Mail not yet sent stays out of the trash: a scheduled one refuses the whole thread.
    let later = t.clock.now().plus_secs(3600).to_rfc3339();
    let scheduled = t
        .loft
        .send(
            &aa,
            SendMail {
                to: vec![addr(&b).to_owned()],
                subject: "Later".into(),
                text: "Tomorrow.".into(),
                send_at: Some(later),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(scheduled.status, MessageStatus::Scheduled);
    let e = expect_err(t.loft.update_message(&aa, scheduled.id.as_str(), trash(true)).await);
    assert_eq!(e.code(), "message_not_final", "{e:?}");
    let e = expect_err(
        t.loft
            .update_thread(&aa, scheduled.thread_id.as_str(), trash(true))
            .await,
    );
    assert_eq!(e.code(), "message_not_final", "{e:?}");
    // Archiving it is fine.
    t.loft
        .update_message(&aa, scheduled.id.as_str(), archive(true))
        .await
        .unwrap();
    let audited = t.audit_count("mail.update_thread").await;
    assert_eq!(audited, 4, "each successful thread change is audited once");
}

/// Deleting for ever: only from the trash; removes the caller's copy (message, labels, search
/// entry, idempotency record) and its bytes from the mailbox's usage, and leaves the other
/// copies of the same mail alone; a sent copy waits a day (the sending caps count it) and one
/// still being delivered waits for its delivery; the audit row names the id only.
pub async fn mailbox_delete_for_ever(store: Arc<dyn Store>) {
    let t = test_loft(store.clone());
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let sent = t
        .loft
        .send(
            &aa,
            SendMail {
                idempotency_key: Some("k1".into()),
                ..crate::mail(&[addr(&b)], "Walrus census", "Forty walruses counted.")
            },
        )
        .await
        .unwrap();
    let copy = t.all_messages(&ba, folder("inbox")).await.remove(0);
    let id = copy.id.to_string();
    t.loft
        .update_message(
            &ba,
            &id,
            MessagePatch {
                add_labels: vec!["zoo".into()],
                ..MessagePatch::default()
            },
        )
        .await
        .unwrap();
    let bytes = |who: loft_core::ids::IdentityId| {
        let store = store.clone();
        async move { store.usage(&who).await.unwrap().stored_bytes }
    };
    let (a_before, b_before) = (bytes(a.identity.id.clone()).await, bytes(b.identity.id.clone()).await);
    assert!(b_before > 0);

    // Not from outside the trash.
    let e = expect_err(t.loft.delete_message(&ba, &id).await);
    assert_eq!(e.code(), "not_in_trash", "{e:?}");
    assert!(e.hint().is_some_and(|h| h.contains("trash")), "{e:?}");
    t.loft.update_message(&ba, &id, trash(true)).await.unwrap();
    // Not someone else's: Alice cannot delete Bob's copy, even from his trash.
    let e = expect_err(t.loft.delete_message(&aa, &id).await);
    assert_eq!(e.code(), "not_found", "{e:?}");
    let e = expect_err(t.loft.delete_thread(&aa, copy.thread_id.as_str()).await);
    assert_eq!(e.code(), "not_found", "{e:?}");
    let (_, reader) = t.identity_with_scopes("reader", &["mail:read"]).await;
    let e = expect_err(t.loft.delete_message(&reader, &id).await);
    assert_eq!(e.code(), "missing_scope", "{e:?}");

    // A draft answering it, written before it goes.
    let draft = t
        .loft
        .create_draft(
            &ba,
            loft_core::service::CreateDraftRequest {
                reply_to: Some(id.clone()),
                text: "thanks".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let gone = t.loft.delete_message(&ba, &id).await.unwrap();
    assert_eq!(
        gone.deleted.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [id.as_str()]
    );
    // The draft is refused precisely (not a 500) and stays, to be sent as a new conversation.
    let e = expect_err(
        t.loft
            .send_draft(&ba, draft.id.as_str(), loft_core::service::SendDraftRequest::default())
            .await,
    );
    assert_eq!(e.code(), "reply_to_deleted", "{e:?}");
    assert!(t.loft.get_draft(&ba, draft.id.as_str()).await.is_ok());
    t.loft.delete_draft(&ba, draft.id.as_str()).await.unwrap();
    for e in [
        expect_err(t.loft.get_message(&ba, &id).await),
        expect_err(t.loft.raw_message(&ba, &id).await),
        expect_err(t.loft.delete_message(&ba, &id).await),
        expect_err(t.loft.update_message(&ba, &id, trash(false)).await),
    ] {
        assert_eq!(e.code(), "not_found", "{e:?}");
    }
    assert!(listed(&t, &ba, "trash").await.is_empty());
    assert!(found(&t, &ba, "walruses").await.is_empty());
    assert_eq!(
        bytes(b.identity.id.clone()).await,
        b_before - copy_size(&t, &aa, &sent.id).await
    );
    assert_eq!(
        store.mailbox_labels(&b.identity.id, &[]).await.unwrap().0,
        0,
        "its labels are gone"
    );
    // Alice's copy is whole: readable, raw bytes, searchable, her usage unchanged.
    assert_eq!(bytes(a.identity.id.clone()).await, a_before);
    let mine = t.loft.get_message(&aa, sent.id.as_str()).await.unwrap();
    assert_eq!(mine.text, "Forty walruses counted.");
    assert!(!t.loft.raw_message(&aa, sent.id.as_str()).await.unwrap().is_empty());
    assert_eq!(found(&t, &aa, "walruses").await, [sent.id.to_string()]);
    // The audit row names the id, nothing of the mail.
    let rows = t.audit_rows().await;
    let row = rows.iter().rev().find(|r| r.entry.action == "mail.delete").unwrap();
    assert_eq!(row.entry.target.as_deref(), Some(id.as_str()));
    assert_eq!(row.entry.details, serde_json::json!({}));

    // Alice's sent copy: the sending caps count it for a day.
    t.loft.update_message(&aa, sent.id.as_str(), trash(true)).await.unwrap();
    let e = expect_err(t.loft.delete_message(&aa, sent.id.as_str()).await);
    assert_eq!(e.code(), "sent_recently", "{e:?}");
    t.clock.advance_secs(loft_core::mail::KEEP_SENT_SECS + 1);
    t.loft.delete_message(&aa, sent.id.as_str()).await.unwrap();
    assert_eq!(bytes(a.identity.id.clone()).await, 0);
    assert!(found(&t, &aa, "walruses").await.is_empty());
    // Its idempotency record went with it: the key sends anew.
    let again = t
        .loft
        .send(
            &aa,
            SendMail {
                idempotency_key: Some("k1".into()),
                ..crate::mail(&[addr(&b)], "Walrus census", "Forty walruses counted.")
            },
        )
        .await
        .unwrap();
    assert_ne!(again.id, sent.id);

    // A thread goes only when every copy of it is in the trash.
    let first = t.all_messages(&ba, folder("inbox")).await.remove(0);
    t.loft
        .reply(
            &ba,
            first.id.as_str(),
            loft_core::mail::ReplyMail {
                text: "Noted.".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let thread = first.thread_id.to_string();
    t.loft
        .update_message(&ba, first.id.as_str(), trash(true))
        .await
        .unwrap();
    let e = expect_err(t.loft.delete_thread(&ba, &thread).await);
    assert_eq!(e.code(), "not_in_trash", "{e:?}");
    t.loft.update_thread(&ba, &thread, trash(true)).await.unwrap();
    // Bob's reply is a sent copy younger than a day.
    let e = expect_err(t.loft.delete_thread(&ba, &thread).await);
    assert_eq!(e.code(), "sent_recently", "{e:?}");
    t.clock.advance_secs(loft_core::mail::KEEP_SENT_SECS + 1);
    let gone = t.loft.delete_thread(&ba, &thread).await.unwrap();
    assert_eq!(gone.deleted.len(), 2);
    assert!(listed(&t, &ba, "trash").await.is_empty());
    assert_eq!(bytes(b.identity.id.clone()).await, 0);
    let e = expect_err(
        t.loft
            .get_thread(&ba, &thread, loft_core::service::GetThreadParams::default())
            .await,
    );
    assert_eq!(e.code(), "not_found", "{e:?}");
    // Alice still has hers (her resend and Bob's reply).
    assert_eq!(listed(&t, &aa, "all").await.len(), 2);

    // Mail still being delivered to a remote recipient stays until its delivery ends.
    let remote = t
        .loft
        .send(&aa, crate::mail(&["someone@example.com"], "Out", "To the world."))
        .await
        .unwrap();
    t.loft
        .update_message(&aa, remote.id.as_str(), trash(true))
        .await
        .unwrap();
    t.clock.advance_secs(loft_core::mail::KEEP_SENT_SECS + 1);
    let e = expect_err(t.loft.delete_message(&aa, remote.id.as_str()).await);
    assert_eq!(e.code(), "delivery_pending", "{e:?}");
    t.assert_chain_ok().await;
}

/// The stored size of `id` in `who`'s mailbox.
async fn copy_size(t: &TestLoft, who: &Actor, id: &loft_core::ids::MessageId) -> u64 {
    u64::try_from(t.loft.get_message(who, id.as_str()).await.unwrap().size).unwrap()
}

/// A story for the stores' own tests, which count rows: Alice sends one mail to Bob, Bob deletes
/// his copy for ever (`after_first` runs then, with the content still shared), then Alice
/// deletes hers a day later (the content should be gone after that).
pub async fn delete_content_story<F, Fut>(t: &TestLoft, after_first: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (_, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let sent = t.send(&aa, &[addr(&b)], "Narwhal tusks", "Tusks are teeth.").await;
    let copy = t.all_messages(&ba, folder("inbox")).await.remove(0);
    t.loft
        .update_message(
            &ba,
            copy.id.as_str(),
            MessagePatch {
                add_labels: vec!["sea".into()],
                trashed: Some(true),
                ..MessagePatch::default()
            },
        )
        .await
        .unwrap();
    t.loft.delete_message(&ba, copy.id.as_str()).await.unwrap();
    after_first().await;
    t.loft.update_message(&aa, sent.id.as_str(), trash(true)).await.unwrap();
    t.clock.advance_secs(loft_core::mail::KEEP_SENT_SECS + 1);
    t.loft.delete_message(&aa, sent.id.as_str()).await.unwrap();
}

/// The operator's look at a mailbox (the console): per-mailbox stats in one call (copies,
/// bytes, newest copy's time; an empty mailbox absent), the identity's messages listed, one
/// opened without marking it read and recorded as `mail.inspect`; an identity key is refused.
pub async fn mailbox_operator_inspects_read_only(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let (c, _) = t.identity("carol").await;
    t.send(&aa, &[addr(&b)], "One", "first").await;
    t.clock.advance_secs(60);
    let last = t.send(&aa, &[addr(&b)], "Two", "second").await;

    let ids = [a.identity.id.clone(), b.identity.id.clone(), c.identity.id.clone()];
    let stats = t.loft.mailbox_stats(&op, &ids).await.unwrap();
    assert!(!stats.contains_key(&c.identity.id), "an empty mailbox has no stats");
    let bytes = t.store().mailbox_bytes(&ids).await.unwrap();
    for who in [&a, &b] {
        let s = &stats[&who.identity.id];
        assert_eq!(s.messages, 2);
        let want = bytes.iter().find(|(o, _)| o == &who.identity.id).unwrap().1;
        assert_eq!(s.bytes, want);
        assert!(s.bytes > 0);
        assert_eq!(s.last_mail_at, Some(last.created_at));
    }
    assert_eq!(
        expect_err(t.loft.mailbox_stats(&aa, &ids).await).code(),
        "operator_only"
    );

    let listed = t
        .loft
        .inspect_messages(
            &op,
            b.identity.id.as_str(),
            loft_core::service::ListMessagesParams::default(),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    assert!(listed.items.iter().all(|m| m.unread));
    let threads = t
        .loft
        .inspect_threads(&op, b.identity.id.as_str(), ListThreadsParams::default())
        .await
        .unwrap();
    assert_eq!(threads.items.len(), 2);
    let id = listed.items[0].id.clone();
    let m = t
        .loft
        .inspect_message(&op, b.identity.id.as_str(), id.as_str())
        .await
        .unwrap();
    assert_eq!(m.subject, "Two");
    // Still unread for bob.
    let again = t.all_messages(&ba, folder("inbox")).await;
    assert!(again.iter().all(|m| m.unread), "inspecting must not mark read");
    let rows = t
        .store()
        .list_audit(loft_core::audit::AuditQuery {
            action: Some("mail.inspect".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.items.len(), 1);
    let row = &rows.items[0].entry;
    assert_eq!(row.actor_kind, loft_core::audit::ActorKind::Operator);
    assert_eq!(row.target.as_deref(), Some(id.as_str()));
    assert_eq!(row.details["identity"], b.identity.id.as_str());
    // A message of another mailbox is not found through this one; identity keys are refused.
    let alices = t.all_messages(&aa, folder("sent")).await.remove(0);
    let e = expect_err(
        t.loft
            .inspect_message(&op, b.identity.id.as_str(), alices.id.as_str())
            .await,
    );
    assert_eq!(e.code(), "not_found");
    let e = expect_err(t.loft.inspect_message(&aa, b.identity.id.as_str(), id.as_str()).await);
    assert_eq!(e.code(), "operator_only");
    let e = expect_err(t.loft.inspect_vault(&aa, a.identity.id.as_str()).await);
    assert_eq!(e.code(), "operator_only");
}
