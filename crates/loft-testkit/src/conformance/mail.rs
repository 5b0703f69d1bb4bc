//! Mail: sending to local and remote recipients, bcc, threading and replies, ownership,
//! listing, labels, read state, threads and the stored RFC 5322 bytes.

use std::collections::BTreeSet;
use std::sync::Arc;

use loft_core::Error;
use loft_core::address::EmailAddress;
use loft_core::identity::CreatedIdentity;
use loft_core::ids::{MessageId, ThreadId};
use loft_core::mail::{
    DeliveryStatus, Folder, Message, MessagePatch, MessageQuery, MessageSummary, ReplyMail, SendMail, ThreadQuery,
    Verdict,
};
use loft_core::service::{Actor, CreateIdentityRequest, ListMessagesParams, ListThreadsParams};
use loft_core::store::Store;

use crate::{TEST_DOMAIN, TestLoft, expect_err, mail, test_loft};

fn addr(c: &CreatedIdentity) -> &str {
    c.identity.address.as_str()
}

fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

pub(crate) fn folder(f: &str) -> ListMessagesParams {
    ListMessagesParams {
        folder: Some(f.into()),
        ..Default::default()
    }
}

fn reply(text: &str, reply_all: bool) -> ReplyMail {
    ReplyMail {
        idempotency_key: None,
        send_at: None,
        text: text.into(),
        html: None,
        reply_all,
        attachments: vec![],
    }
}

fn label_patch(add: &[&str], remove: &[&str]) -> MessagePatch {
    MessagePatch {
        add_labels: add.iter().map(|s| (*s).to_owned()).collect(),
        remove_labels: remove.iter().map(|s| (*s).to_owned()).collect(),
        ..MessagePatch::default()
    }
}

fn sorted(labels: &[String]) -> Vec<String> {
    let mut v = labels.to_vec();
    v.sort();
    v
}

/// The one message in `actor`'s inbox with this RFC 5322 Message-ID (a store read, no side
/// effects).
async fn inbox_copy(t: &TestLoft, who: &CreatedIdentity, actor: &Actor, message_id: &str) -> Message {
    let copies: Vec<MessageSummary> = t
        .all_messages(actor, folder("inbox"))
        .await
        .into_iter()
        .filter(|m| m.message_id == message_id)
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "{} must hold exactly one inbox copy of <{message_id}>: {copies:?}",
        who.identity.name
    );
    t.store()
        .get_message(&who.identity.id, &copies[0].id)
        .await
        .unwrap()
        .expect("a listed message can be fetched")
}

/// One message to two local identities and one remote address: local copies are delivered
/// into inboxes, the remote one is queued, and the sender's copy records both.
pub async fn mail_send_local_and_remote(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let (c, ca) = t.identity("carol").await;
    let remote = "dave@example.com";
    let sent = t
        .send(
            &aa,
            &[addr(&b), addr(&c), remote],
            "Hello",
            "Hi all,\nthe plan is ready.",
        )
        .await;

    assert_eq!(sent.folder, Folder::Sent);
    assert_eq!(sent.from, a.identity.address);
    assert_eq!(
        sent.to,
        vec![b.identity.address.clone(), c.identity.address.clone(), email(remote)]
    );
    assert_eq!(sent.subject, "Hello");
    assert_eq!(sent.text, "Hi all,\nthe plan is ready.");
    assert!(!sent.unread, "the sender's own copy is not unread");
    assert!(sent.message_id.ends_with(&format!("@{TEST_DOMAIN}")));
    let status = |m: &Message, who: &str| {
        m.delivery
            .iter()
            .find(|d| d.recipient.as_str() == who)
            .unwrap_or_else(|| panic!("no delivery entry for {who}: {:?}", m.delivery))
            .status
    };
    assert_eq!(sent.delivery.len(), 3, "{:?}", sent.delivery);
    assert_eq!(status(&sent, addr(&b)), DeliveryStatus::Delivered);
    assert_eq!(status(&sent, addr(&c)), DeliveryStatus::Delivered);
    assert_eq!(status(&sent, remote), DeliveryStatus::Queued);

    // The remote recipient is one delivery job, queued in the send's transaction.
    let jobs = queued_deliveries(&t).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].owner.as_ref(), Some(&a.identity.id));
    let payload: loft_core::mail::DeliveryJob = serde_json::from_str(&jobs[0].payload).unwrap();
    assert_eq!((payload.message, payload.recipient), (sent.id.clone(), email(remote)));

    // What send returned is what is stored, delivery included.
    let stored = t.store().get_message(&a.identity.id, &sent.id).await.unwrap().unwrap();
    assert_eq!(
        stored, sent,
        "the stored sender copy must equal what send_mail returned"
    );
    let listed = t.all_messages(&aa, folder("sent")).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, sent.id);
    assert!(
        t.all_messages(&aa, folder("inbox")).await.is_empty(),
        "the sender's inbox is empty"
    );

    for (who, actor) in [(&b, &ba), (&c, &ca)] {
        let inbox = t.all_messages(actor, ListMessagesParams::default()).await;
        assert_eq!(inbox.len(), 1, "{} gets one copy", who.identity.name);
        let s = &inbox[0];
        assert_eq!(s.folder, Folder::Inbox);
        assert_eq!(s.message_id, sent.message_id);
        assert_eq!(s.from, a.identity.address);
        assert_eq!(s.to, sent.to);
        assert_eq!(s.subject, "Hello");
        assert!(s.snippet.contains("the plan is ready"), "{}", s.snippet);
        assert!(s.unread);
        assert!(s.labels.is_empty());
        assert_eq!(s.authentication.verdict, Verdict::InternalVerified);
        assert!(s.authentication.internal);
        assert_ne!(s.id, sent.id, "each mailbox has its own copy");
        let m = t.store().get_message(&who.identity.id, &s.id).await.unwrap().unwrap();
        assert_eq!(m.text, sent.text);
        assert_eq!(m.created_at, sent.created_at);
        assert_eq!(m.size, sent.size);
        assert!(m.delivery.is_empty(), "a recipient's copy has no delivery report");
        assert!(t.store().latest_mail_seq(&who.identity.id).await.unwrap() > 0);
    }

    let row = t
        .audit_rows()
        .await
        .into_iter()
        .find(|r| r.entry.action == "mail.send")
        .unwrap();
    assert_eq!(row.entry.target.as_deref(), Some(sent.id.as_str()));
    assert_eq!(row.entry.actor_identity_id.as_ref(), Some(&a.identity.id));
    assert_eq!(row.entry.details["delivered"], 2);
    assert_eq!(row.entry.details["queued"], 1);
    t.assert_chain_ok().await;
}

/// Bcc recipients get the message but nobody else sees them; only the sender's copy lists them.
pub async fn mail_bcc_hidden_from_recipients(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let (c, ca) = t.identity("carol").await;
    let sent = t
        .loft
        .send(
            &aa,
            SendMail {
                bcc: vec![addr(&c).to_owned(), "eve@example.org".into()],
                ..mail(&[addr(&b)], "Quiet", "between us")
            },
        )
        .await
        .unwrap();
    assert_eq!(
        sent.bcc,
        vec![c.identity.address.clone(), email("eve@example.org")],
        "the sender sees its bcc"
    );
    let stored = t.store().get_message(&a.identity.id, &sent.id).await.unwrap().unwrap();
    assert_eq!(stored.bcc, sent.bcc, "the sender's stored copy keeps its bcc");
    assert_eq!(sent.delivery.len(), 3);

    let b_copy = inbox_copy(&t, &b, &ba, &sent.message_id).await;
    let c_copy = inbox_copy(&t, &c, &ca, &sent.message_id).await;
    for m in [&b_copy, &c_copy] {
        assert!(m.bcc.is_empty(), "a recipient's copy must not show bcc: {:?}", m.bcc);
        assert_eq!(m.to, vec![b.identity.address.clone()]);
        assert!(m.cc.is_empty());
    }
    for (who, id) in [(&a, &sent.id), (&b, &b_copy.id), (&c, &c_copy.id)] {
        let raw = String::from_utf8(t.store().raw_message(&who.identity.id, id).await.unwrap().unwrap()).unwrap();
        assert!(
            !raw.contains(addr(&c)),
            "the raw message must not name a bcc recipient:\n{raw}"
        );
        assert!(!raw.to_ascii_lowercase().contains("\nbcc:"), "{raw}");
    }
    // The outside bcc recipient is still delivered to: one queued job.
    let jobs = queued_deliveries(&t).await;
    let recipients: Vec<EmailAddress> = jobs
        .iter()
        .map(|j| {
            serde_json::from_str::<loft_core::mail::DeliveryJob>(&j.payload)
                .unwrap()
                .recipient
        })
        .collect();
    assert_eq!(recipients, vec![email("eve@example.org")]);
}

/// A recipient at this server's domain that does not exist refuses the whole message, and
/// nothing is stored: no copy, no queue entry, no audit row.
pub async fn mail_unknown_local_recipient_stores_nothing(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let (gone, _) = t.identity("gone").await;
    t.loft.revoke_identity(&op, gone.identity.id.as_str()).await.unwrap();
    let before = t.audit_len().await;

    for to in [
        vec![addr(&b), "ghost@agents.test"],
        vec!["someone@example.com", "Ghost@AGENTS.TEST"],
        vec![addr(&b), addr(&gone)],
    ] {
        let e = expect_err(t.loft.send(&aa, mail(&to, "hello", "anyone?")).await);
        assert!(matches!(e, Error::Invalid(_)), "{to:?}: {e:?}");
        assert_eq!(e.code(), "unknown_recipient", "{to:?}: {e:?}");
    }
    assert_eq!(t.audit_len().await, before, "no audit row for a refused message");
    assert!(
        t.all_messages(&aa, folder("all")).await.is_empty(),
        "nothing in the sender's mailbox"
    );
    assert!(
        t.all_messages(&ba, folder("all")).await.is_empty(),
        "nothing in the recipient's"
    );
    assert_eq!(t.store().latest_mail_seq(&a.identity.id).await.unwrap(), 0);
    assert_eq!(t.store().latest_mail_seq(&b.identity.id).await.unwrap(), 0);
}

/// Mail to oneself lands in one's own inbox as well as in sent.
pub async fn mail_send_to_self(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let sent = t.send(&aa, &[addr(&a)], "note to self", "remember").await;
    let all = t.all_messages(&aa, folder("all")).await;
    assert_eq!(all.len(), 2, "a sent copy and an inbox copy: {all:?}");
    let folders: BTreeSet<_> = all.iter().map(|m| m.folder.as_str()).collect();
    assert_eq!(folders, BTreeSet::from(["inbox", "sent"]));
    assert!(all.iter().all(|m| m.message_id == sent.message_id));
    let inbox = inbox_copy(&t, &a, &aa, &sent.message_id).await;
    assert!(inbox.unread);
    assert_eq!(
        inbox.thread_id, sent.thread_id,
        "both copies of a note to self are one thread"
    );
    t.assert_chain_ok().await;
}

/// A repeated recipient is one recipient: once in the headers, once in the cap, one inbox copy.
pub async fn mail_duplicate_recipients_collapse(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let many = vec![addr(&b).to_owned(); 10_000];
    let sent = t
        .loft
        .send(
            &aa,
            SendMail {
                idempotency_key: None,
                send_at: None,
                to: many.clone(),
                cc: many.clone(),
                bcc: many,
                subject: "once".into(),
                text: "x".into(),
                html: None,
                attachments: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!(sent.to.len(), 1);
    assert!(sent.cc.is_empty() && sent.bcc.is_empty());
    let raw = String::from_utf8(t.loft.raw_message(&aa, sent.id.as_str()).await.unwrap()).unwrap();
    assert_eq!(raw.matches(addr(&b)).count(), 1, "{raw}");
    assert_eq!(t.all_messages(&ba, folder("inbox")).await.len(), 1);
}

/// A message carries at most `MAX_LABELS_PER_MESSAGE` labels; a patch that would exceed it
/// changes nothing.
pub async fn mail_label_cap(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let sent = t.send(&aa, &[addr(&b)], "Labels", "x").await;
    let copy = inbox_copy(&t, &b, &ba, &sent.message_id).await;
    let max = loft_core::mail::MAX_LABELS_PER_MESSAGE;
    let first: Vec<String> = (0..max).map(|i| format!("l{i}")).collect();
    let refs: Vec<&str> = first.iter().map(String::as_str).collect();
    let m = t
        .loft
        .update_message(&ba, copy.id.as_str(), label_patch(&refs, &[]))
        .await
        .unwrap();
    assert_eq!(m.labels.len(), max);
    let e = t
        .loft
        .update_message(
            &ba,
            copy.id.as_str(),
            MessagePatch {
                unread: Some(false),
                ..label_patch(&["one-more"], &[])
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "too_many_labels", "{e:?}");
    let stored = t.store().get_message(&b.identity.id, &copy.id).await.unwrap().unwrap();
    assert_eq!(stored.labels.len(), max, "nothing of the refused patch stays");
    assert!(stored.unread, "nothing of the refused patch stays");
    // Swapping one label for another within the cap is fine.
    let m = t
        .loft
        .update_message(&ba, copy.id.as_str(), label_patch(&["one-more"], &["l0"]))
        .await
        .unwrap();
    assert_eq!(m.labels.len(), max);
    let _ = a;
    t.assert_chain_ok().await;
}

/// `wait_for_mail` hands out every new message exactly once, oldest first, across calls, even
/// when more arrived than one call returns.
pub async fn mail_wait_pages_oldest_first(store: Arc<dyn Store>) {
    use loft_core::service::WaitParams;
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let first = t
        .loft
        .wait_for_mail(
            &ba,
            WaitParams {
                timeout_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(first.timed_out && first.items.is_empty());
    for i in 0..7 {
        t.send(&aa, &[addr(&b)], &format!("m{i}"), "x").await;
    }
    let mut cursor = first.cursor;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let w = t
            .loft
            .wait_for_mail(
                &ba,
                WaitParams {
                    timeout_seconds: Some(0),
                    after: Some(cursor.clone()),
                    limit: Some(3),
                },
            )
            .await
            .unwrap();
        cursor = w.cursor;
        if w.items.is_empty() {
            break;
        }
        seen.extend(w.items.into_iter().map(|m| m.subject));
    }
    assert_eq!(seen, ["m0", "m1", "m2", "m3", "m4", "m5", "m6"]);
    // Without a cursor: the unread inbox, oldest first.
    let unread = t
        .loft
        .wait_for_mail(
            &ba,
            WaitParams {
                timeout_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(unread.items.first().map(|m| m.subject.as_str()), Some("m0"));
    let _ = a;
}

/// A reply threads with the original in both mailboxes, with the right headers and subject.
pub async fn mail_reply_threads_in_both_mailboxes(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let orig = t.send(&aa, &[addr(&b)], "Plan", "Shall we?").await;
    let b_orig = inbox_copy(&t, &b, &ba, &orig.message_id).await;
    assert_ne!(
        b_orig.thread_id, orig.thread_id,
        "thread ids belong to one mailbox each"
    );

    let r1 = t
        .loft
        .reply(
            &ba,
            b_orig.id.as_str(),
            reply("Yes.\n\nOn Monday, Alice wrote:\n> Shall we?", false),
        )
        .await
        .unwrap();
    assert_eq!(r1.folder, Folder::Sent);
    assert_eq!(r1.to, vec![a.identity.address.clone()]);
    assert!(r1.cc.is_empty());
    assert_eq!(r1.subject, "Re: Plan");
    assert_eq!(r1.in_reply_to.as_deref(), Some(orig.message_id.as_str()));
    assert_eq!(r1.references, vec![orig.message_id.clone()]);
    assert_eq!(r1.extracted_text, "Yes.");
    assert_eq!(
        r1.thread_id, b_orig.thread_id,
        "the reply joins the original's thread in the replier's mailbox"
    );

    let a_r1 = inbox_copy(&t, &a, &aa, &r1.message_id).await;
    assert_eq!(a_r1.thread_id, orig.thread_id, "and in the original sender's mailbox");
    assert_eq!(a_r1.in_reply_to, r1.in_reply_to);
    assert_eq!(a_r1.references, r1.references);

    let r2 = t
        .loft
        .reply(&aa, a_r1.id.as_str(), reply("Great.", false))
        .await
        .unwrap();
    assert_eq!(r2.subject, "Re: Plan", "no `Re: Re:`");
    assert_eq!(r2.to, vec![b.identity.address.clone()]);
    assert_eq!(r2.in_reply_to.as_deref(), Some(r1.message_id.as_str()));
    assert_eq!(r2.references, vec![orig.message_id.clone(), r1.message_id.clone()]);
    assert_eq!(r2.thread_id, orig.thread_id);
    let b_r2 = inbox_copy(&t, &b, &ba, &r2.message_id).await;
    assert_eq!(b_r2.thread_id, b_orig.thread_id);

    // A new message with the same subject starts a new thread: threading follows headers.
    let other = t.send(&aa, &[addr(&b)], "Plan", "A different plan").await;
    assert_ne!(other.thread_id, orig.thread_id);
    let b_other = inbox_copy(&t, &b, &ba, &other.message_id).await;
    assert_ne!(b_other.thread_id, b_orig.thread_id);

    for (actor, thread, folders) in [
        (&aa, &orig.thread_id, [Folder::Sent, Folder::Inbox, Folder::Sent]),
        (&ba, &b_orig.thread_id, [Folder::Inbox, Folder::Sent, Folder::Inbox]),
    ] {
        let th = t
            .loft
            .get_thread(actor, thread.as_str(), loft_core::service::GetThreadParams::default())
            .await
            .unwrap();
        assert_eq!(th.id, *thread);
        assert_eq!(th.subject, "Plan");
        let got: Vec<_> = th.messages.iter().map(|m| (m.message_id.clone(), m.folder)).collect();
        let want: Vec<_> = [&orig.message_id, &r1.message_id, &r2.message_id]
            .into_iter()
            .cloned()
            .zip(folders)
            .collect();
        assert_eq!(got, want, "the whole thread, oldest first");
        let listed = t
            .all_messages(
                actor,
                ListMessagesParams {
                    folder: Some("all".into()),
                    thread_id: Some(thread.to_string()),
                    ..Default::default()
                },
            )
            .await;
        assert_eq!(listed.len(), 3);
    }

    // Replying to one's own sent copy goes to its recipients.
    let r3 = t
        .loft
        .reply(&aa, orig.id.as_str(), reply("One more thing.", false))
        .await
        .unwrap();
    assert_eq!(r3.to, vec![b.identity.address.clone()]);
    assert_eq!(r3.thread_id, orig.thread_id);

    let raw = String::from_utf8(t.loft.raw_message(&ba, b_r2.id.as_str()).await.unwrap()).unwrap();
    assert!(raw.contains(&format!("In-Reply-To: <{}>", r1.message_id)), "{raw}");
    let refs = raw
        .lines()
        .skip_while(|l| !l.starts_with("References:"))
        .take(3)
        .collect::<String>();
    assert!(
        refs.contains(&format!("<{}>", orig.message_id)) && refs.contains(&format!("<{}>", r1.message_id)),
        "{raw}"
    );
    assert_eq!(t.audit_count("mail.reply").await, 3);
}

/// Reply-all answers the sender and copies everyone else on the original, except oneself.
pub async fn mail_reply_all(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let (c, ca) = t.identity("carol").await;
    let (d, da) = t.identity("dan").await;
    let orig = t
        .loft
        .send(
            &aa,
            SendMail {
                cc: vec![addr(&d).to_owned(), "ext@example.net".into()],
                ..mail(&[addr(&b), addr(&c)], "Team", "Kick-off")
            },
        )
        .await
        .unwrap();
    let b_orig = inbox_copy(&t, &b, &ba, &orig.message_id).await;
    assert_eq!(b_orig.cc, vec![d.identity.address.clone(), email("ext@example.net")]);

    let all = t
        .loft
        .reply(&ba, b_orig.id.as_str(), reply("Count me in", true))
        .await
        .unwrap();
    assert_eq!(all.to, vec![a.identity.address.clone()]);
    let cc: BTreeSet<_> = all.cc.iter().cloned().collect();
    let want: BTreeSet<_> = [
        c.identity.address.clone(),
        d.identity.address.clone(),
        email("ext@example.net"),
    ]
    .into();
    assert_eq!(cc, want, "everyone on the original but the replier");
    assert_eq!(all.delivery.len(), 4);
    for (who, actor) in [(&a, &aa), (&c, &ca), (&d, &da)] {
        let copy = inbox_copy(&t, who, actor, &all.message_id).await;
        let orig_copy = t
            .all_messages(actor, folder("all"))
            .await
            .into_iter()
            .find(|m| m.message_id == orig.message_id)
            .unwrap();
        assert_eq!(
            copy.thread_id, orig_copy.thread_id,
            "{} threads the reply-all",
            who.identity.name
        );
    }

    let only = t
        .loft
        .reply(
            &ca,
            inbox_copy(&t, &c, &ca, &orig.message_id).await.id.as_str(),
            reply("Me too", false),
        )
        .await
        .unwrap();
    assert_eq!(only.to, vec![a.identity.address.clone()]);
    assert!(only.cc.is_empty(), "a plain reply goes to the sender only");
    assert!(
        t.all_messages(&ba, folder("inbox"))
            .await
            .iter()
            .all(|m| m.message_id != only.message_id)
    );

    // Reply-all on one's own sent copy: the original recipients and cc.
    let again = t
        .loft
        .reply(&aa, orig.id.as_str(), reply("Agenda attached", true))
        .await
        .unwrap();
    assert_eq!(again.to, orig.to);
    assert_eq!(again.cc, orig.cc);
}

/// Another mailbox's message id behaves like a missing one for every operation, and the
/// owner's copy is untouched.
pub async fn mail_foreign_message_is_not_found(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let (c, ca) = t.identity("carol").await;
    let sent = t.send(&aa, &[addr(&b)], "Private", "for bob only").await;
    let b_copy = inbox_copy(&t, &b, &ba, &sent.message_id).await;
    let before = t.audit_len().await;

    // Carol, and also Alice for Bob's copy (being the sender does not open the recipient's copy).
    for (who, actor, id, thread) in [
        ("carol", &ca, &b_copy.id, &b_copy.thread_id),
        ("carol", &ca, &sent.id, &sent.thread_id),
        ("alice", &aa, &b_copy.id, &b_copy.thread_id),
        ("bob", &ba, &sent.id, &sent.thread_id),
    ] {
        let id = id.as_str();
        let nf = |e: Error, op: &str| assert!(matches!(e, Error::NotFound(_)), "{who} {op} {id}: {e:?}");
        nf(expect_err(t.loft.get_message(actor, id).await), "get");
        nf(expect_err(t.loft.raw_message(actor, id).await), "raw");
        nf(
            expect_err(t.loft.reply(actor, id, reply("gotcha", true)).await),
            "reply",
        );
        nf(
            expect_err(
                t.loft
                    .update_message(
                        actor,
                        id,
                        MessagePatch {
                            add_labels: vec!["pwned".into()],
                            remove_labels: vec![],
                            unread: Some(false),
                            ..MessagePatch::default()
                        },
                    )
                    .await,
            ),
            "update",
        );
        nf(
            expect_err(
                t.loft
                    .get_thread(actor, thread.as_str(), loft_core::service::GetThreadParams::default())
                    .await,
            ),
            "get_thread",
        );
        let listed = t
            .all_messages(
                actor,
                ListMessagesParams {
                    folder: Some("all".into()),
                    thread_id: Some(thread.to_string()),
                    ..Default::default()
                },
            )
            .await;
        assert!(listed.is_empty(), "{who} lists another mailbox's thread: {listed:?}");
    }

    assert_eq!(t.audit_len().await, before, "nothing happened, nothing is audited");
    let still = t
        .store()
        .get_message(&b.identity.id, &b_copy.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still, b_copy, "the owner's copy is untouched");
    assert!(still.unread && still.labels.is_empty());
    let still = t.store().get_message(&a.identity.id, &sent.id).await.unwrap().unwrap();
    assert_eq!(still, sent);
    assert!(
        t.all_messages(&ca, folder("all")).await.is_empty(),
        "no reply went out from carol"
    );
    assert!(
        t.all_messages(&aa, folder("inbox")).await.is_empty(),
        "and none reached alice"
    );
    assert_eq!(t.all_messages(&ba, folder("all")).await.len(), 1);
    let _ = c;
}

/// Listing filters by folder, unread, label, sender and thread.
pub async fn mail_list_filters(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let (c, ca) = t.identity("carol").await;
    let m1 = t.send(&aa, &[addr(&b)], "one", "1").await;
    let m2 = t.send(&ca, &[addr(&b)], "two", "2").await;
    let m3 = t.send(&aa, &[addr(&b)], "three", "3").await;
    let b1 = inbox_copy(&t, &b, &ba, &m1.message_id).await;
    let b2 = inbox_copy(&t, &b, &ba, &m2.message_id).await;
    let b3 = inbox_copy(&t, &b, &ba, &m3.message_id).await;
    let r = t.loft.reply(&ba, b1.id.as_str(), reply("re one", false)).await.unwrap();
    t.loft.get_message(&ba, b3.id.as_str()).await.unwrap();
    t.loft
        .update_message(&ba, b2.id.as_str(), label_patch(&["todo"], &[]))
        .await
        .unwrap();

    let ids = |v: Vec<MessageSummary>| v.into_iter().map(|m| m.id).collect::<Vec<MessageId>>();
    let q = |f: &dyn Fn(&mut ListMessagesParams)| {
        let mut p = ListMessagesParams::default();
        f(&mut p);
        p
    };
    assert_eq!(
        ids(t.all_messages(&ba, q(&|_| {})).await),
        vec![b3.id.clone(), b2.id.clone(), b1.id.clone()],
        "inbox by default, newest first"
    );
    assert_eq!(ids(t.all_messages(&ba, folder("inbox")).await).len(), 3);
    assert_eq!(ids(t.all_messages(&ba, folder("sent")).await), vec![r.id.clone()]);
    assert_eq!(
        ids(t.all_messages(&ba, folder("all")).await),
        vec![r.id.clone(), b3.id.clone(), b2.id.clone(), b1.id.clone()]
    );
    assert_eq!(
        ids(t.all_messages(&ba, q(&|p| p.unread = Some(true))).await),
        vec![b2.id.clone(), b1.id.clone()]
    );
    assert_eq!(
        ids(t.all_messages(&ba, q(&|p| p.unread = Some(false))).await).len(),
        3,
        "unread=false means no filter"
    );
    assert_eq!(
        ids(t.all_messages(&ba, q(&|p| p.label = Some("todo".into()))).await),
        vec![b2.id.clone()]
    );
    assert_eq!(
        ids(t.all_messages(&ba, q(&|p| p.label = Some("TODO".into()))).await),
        vec![b2.id.clone()]
    );
    assert!(
        t.all_messages(&ba, q(&|p| p.label = Some("other".into())))
            .await
            .is_empty()
    );
    let from_a = a.identity.address.as_str().to_uppercase();
    assert_eq!(
        ids(t.all_messages(&ba, q(&|p| p.from = Some(from_a.clone()))).await),
        vec![b3.id.clone(), b1.id.clone()]
    );
    assert_eq!(
        ids(t
            .all_messages(
                &ba,
                q(&|p| {
                    p.from = Some(addr(&c).into());
                    p.folder = Some("all".into());
                })
            )
            .await),
        vec![b2.id.clone()]
    );
    assert_eq!(
        ids(t
            .all_messages(&ba, q(&|p| p.thread_id = Some(b1.thread_id.to_string())))
            .await),
        vec![b1.id.clone()]
    );
    assert_eq!(
        ids(t
            .all_messages(
                &ba,
                q(&|p| {
                    p.thread_id = Some(b1.thread_id.to_string());
                    p.folder = Some("all".into());
                })
            )
            .await),
        vec![r.id.clone(), b1.id.clone()]
    );
    assert_eq!(
        ids(t
            .all_messages(
                &ba,
                q(&|p| {
                    p.from = Some(addr(&a).into());
                    p.unread = Some(true);
                })
            )
            .await),
        vec![b1.id.clone()],
        "filters combine"
    );

    for (bad, code) in [
        (q(&|p| p.folder = Some("spam".into())), "invalid_folder"),
        (q(&|p| p.from = Some("not an address".into())), "invalid_address"),
        (q(&|p| p.thread_id = Some("msg_abc".into())), "invalid_id"),
        (q(&|p| p.label = Some("no spaces".into())), "invalid_label"),
    ] {
        let e = expect_err(t.loft.list_messages(&ba, bad).await);
        assert_eq!(e.code(), code, "{e:?}");
    }
}

/// Seven messages in pages of three: 3, 3, 1, newest first, no duplicates, no gaps.
pub async fn mail_cursor_pagination(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let mut sent = Vec::new();
    for n in 1..=7 {
        sent.push(t.send(&aa, &[addr(&b)], &format!("message {n}"), "x").await.message_id);
    }
    sent.reverse();

    for (actor, f) in [(&ba, "inbox"), (&aa, "sent"), (&ba, "all")] {
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        let mut cursor = None;
        loop {
            let page = t
                .loft
                .list_messages(
                    actor,
                    ListMessagesParams {
                        folder: Some(f.into()),
                        limit: Some(3),
                        cursor: cursor.take(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .into_inner();
            sizes.push(page.items.len());
            got.extend(page.items.into_iter().map(|m| m.message_id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
            assert!(sizes.len() <= 4, "pagination does not end: {sizes:?}");
        }
        assert_eq!(got, sent, "{f}: every message once, newest first");
        assert_eq!(sizes, vec![3, 3, 1], "{f}: page sizes");
    }

    // A cursor this server did not issue is refused.
    for bad in ["garbage", "djE6eHl6"] {
        let e = expect_err(
            t.loft
                .list_messages(
                    &ba,
                    ListMessagesParams {
                        cursor: Some(bad.into()),
                        ..Default::default()
                    },
                )
                .await,
        );
        assert_eq!(e.code(), "invalid_cursor", "{e:?}");
    }
    // New mail arriving between pages does not disturb the pages after the cursor.
    let first = t
        .loft
        .list_messages(
            &ba,
            ListMessagesParams {
                limit: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_inner();
    t.send(&aa, &[addr(&b)], "late", "x").await;
    let second = t
        .loft
        .list_messages(
            &ba,
            ListMessagesParams {
                limit: Some(3),
                cursor: first.next_cursor,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_inner();
    let second: Vec<_> = second.items.into_iter().map(|m| m.message_id).collect();
    assert_eq!(second, sent[3..6].to_vec());
}

/// The store's side of listing and labels: a page's `next_before` is the sequence number of
/// its last item (none on the last page), `before_seq` and `after_seq` select below and above
/// it, `latest_mail_seq` is the newest message's, threads page the same way, a `limit` of 0
/// is taken literally; labels come back sorted, once each, and a patch is idempotent.
pub async fn mail_store_labels_cursors_and_limits(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let (_, ca) = t.identity("carol").await;
    let mut copies = Vec::new();
    for (from, subject) in [(&aa, "one"), (&ca, "two"), (&aa, "three")] {
        let sent = t.send(from, &[addr(&b)], subject, subject).await;
        copies.push(inbox_copy(&t, &b, &ba, &sent.message_id).await);
    }
    let (s, owner) = (t.store().clone(), &b.identity.id);
    let list = |limit: u32, before_seq: Option<i64>, after_seq: Option<i64>| {
        let s = s.clone();
        async move {
            let q = MessageQuery {
                folder: Some(Folder::Inbox),
                limit,
                before_seq,
                after_seq,
                ..Default::default()
            };
            let page = s.list_messages(owner, q).await.unwrap();
            let subjects: Vec<String> = page.items.into_iter().map(|m| m.subject).collect();
            (subjects, page.next_before)
        }
    };
    let (newest, s3) = list(1, None, None).await;
    assert_eq!(newest, ["three"]);
    let s3 = s3.expect("more pages");
    assert_eq!(s.latest_mail_seq(owner).await.unwrap(), s3);
    let (middle, s2) = list(1, Some(s3), None).await;
    assert_eq!(middle, ["two"]);
    let s2 = s2.expect("more pages");
    assert!(s2 < s3);
    assert_eq!(list(2, Some(s3), None).await, (vec!["two".into(), "one".into()], None));
    assert_eq!(list(10, None, Some(s2)).await, (vec!["three".into()], None));
    assert_eq!(list(10, None, Some(0)).await.0, ["three", "two", "one"]);
    assert_eq!(
        list(0, None, None).await,
        (vec![], None),
        "a limit of 0 returns nothing"
    );

    let threads = |limit: u32, before_seq: Option<i64>| {
        let s = s.clone();
        async move {
            let q = ThreadQuery {
                limit,
                before_seq,
                ..Default::default()
            };
            let page = s.list_threads(owner, q).await.unwrap();
            (
                page.items.into_iter().map(|t| t.id).collect::<Vec<_>>(),
                page.next_before,
            )
        }
    };
    assert_eq!(threads(1, None).await, (vec![copies[2].thread_id.clone()], Some(s3)));
    assert_eq!(
        threads(1, Some(s3)).await,
        (vec![copies[1].thread_id.clone()], Some(s2))
    );

    let patch = |add: &[&str], remove: &[&str], unread: Option<bool>| MessagePatch {
        unread,
        ..label_patch(add, remove)
    };
    let entry = |action: &str| super::store::op_entry(&t, action);
    let first = &copies[0].id;
    let twice = patch(&["work", "todo", "work"], &[], None);
    for _ in 0..2 {
        let m = s.update_message(owner, first, twice.clone(), entry("mail.update"));
        assert_eq!(m.await.unwrap().labels, ["todo", "work"], "sorted, once each");
    }
    let m = s
        .update_message(
            owner,
            first,
            patch(&[], &["todo", "absent"], Some(false)),
            entry("mail.update"),
        )
        .await
        .unwrap();
    assert_eq!((m.labels, m.unread), (vec!["work".to_owned()], false));
    let labelled = ThreadQuery {
        label: Some("work".into()),
        limit: 10,
        ..Default::default()
    };
    let page = s.list_threads(owner, labelled).await.unwrap();
    let ids: Vec<_> = page.items.iter().map(|t| &t.id).collect();
    assert_eq!(ids, vec![&copies[0].thread_id]);
    t.assert_chain_ok().await;
}

/// A list filtered by a label pages through that mailbox's labelled copies only (newest or
/// oldest first, with the other filters), never another mailbox's copies with the same label;
/// the labels quota counts one mailbox's distinct labels.
pub async fn mail_label_list_pages_within_one_mailbox(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let mut copies = Vec::new();
    for subject in ["one", "two", "three", "four", "five"] {
        let sent = t.send(&aa, &[addr(&b), addr(&a)], subject, subject).await;
        copies.push(inbox_copy(&t, &b, &ba, &sent.message_id).await);
    }
    let (s, owner) = (t.store().clone(), &b.identity.id);
    let entry = |action: &str| super::store::op_entry(&t, action);
    // bob labels one, two, four and five `work` (and one `home`); alice labels all her copies `work`.
    for i in [0, 1, 3, 4] {
        s.update_message(owner, &copies[i].id, label_patch(&["work"], &[]), entry("mail.update"))
            .await
            .unwrap();
    }
    s.update_message(owner, &copies[0].id, label_patch(&["home"], &[]), entry("mail.update"))
        .await
        .unwrap();
    for m in t.all_messages(&aa, folder("all")).await {
        s.update_message(
            &a.identity.id,
            &m.id,
            label_patch(&["work", "alice-only"], &[]),
            entry("mail.update"),
        )
        .await
        .unwrap();
    }
    // four goes to the trash: out of the default list, in the trashed one.
    let trash = MessagePatch {
        trashed: Some(true),
        ..Default::default()
    };
    s.update_message(owner, &copies[3].id, trash, entry("mail.update"))
        .await
        .unwrap();

    let list = |label: &str, before_seq: Option<i64>, after_seq: Option<i64>, oldest_first: bool, trashed: bool| {
        let (s, label) = (s.clone(), label.to_owned());
        async move {
            let q = MessageQuery {
                label: Some(label),
                limit: 1,
                before_seq,
                after_seq,
                oldest_first,
                trashed,
                ..Default::default()
            };
            let page = s.list_messages(owner, q).await.unwrap();
            let subjects: Vec<String> = page.items.into_iter().map(|m| m.subject).collect();
            (subjects, page.next_before)
        }
    };
    let mut seen = Vec::new();
    let mut cursors = Vec::new();
    let mut before = None;
    loop {
        let (subjects, next) = list("work", before, None, false, false).await;
        seen.extend(subjects);
        match next {
            Some(n) => {
                cursors.push(n);
                before = Some(n);
            }
            None => break,
        }
    }
    assert_eq!(seen, ["five", "two", "one"], "newest first, page by page, bob's only");
    assert_eq!(
        list("work", None, Some(0), true, false).await.0,
        ["one"],
        "oldest first"
    );
    assert_eq!(
        list("work", None, Some(cursors[1]), true, false).await.0,
        ["five"],
        "oldest first after two: four is in the trash"
    );
    assert_eq!(list("work", None, None, false, true).await.0, ["four"], "the trash");
    assert_eq!(list("home", None, None, false, false).await.0, ["one"]);
    assert!(
        list("alice-only", None, None, false, false).await.0.is_empty(),
        "another mailbox's label"
    );
    let listed = s
        .list_messages(
            owner,
            MessageQuery {
                label: Some("work".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        listed.items[2].labels,
        ["home", "work"],
        "each copy with all its labels"
    );

    // Threads by label: each send is its own thread here.
    let threads = |label: &str, trashed: bool| {
        let (s, label) = (s.clone(), label.to_owned());
        async move {
            let q = ThreadQuery {
                label: Some(label),
                trashed,
                limit: 10,
                ..Default::default()
            };
            let page = s.list_threads(owner, q).await.unwrap();
            page.items.into_iter().map(|t| t.subject).collect::<Vec<_>>()
        }
    };
    assert_eq!(threads("work", false).await, ["five", "two", "one"]);
    assert_eq!(threads("work", true).await, ["four"]);
    assert_eq!(threads("home", false).await, ["one"]);
    assert!(threads("alice-only", false).await.is_empty());

    // The quota counts bob's distinct labels (work, home), not alice's.
    let asked = [
        "work".to_owned(),
        "alice-only".to_owned(),
        "new".to_owned(),
        "new".to_owned(),
    ];
    assert_eq!(s.mailbox_labels(owner, &asked).await.unwrap(), (2, 2));
    assert_eq!(s.mailbox_labels(&a.identity.id, &asked).await.unwrap(), (2, 1));
    let (c, _) = t.identity("carol").await;
    assert_eq!(
        s.mailbox_labels(&c.identity.id, &asked).await.unwrap(),
        (0, 3),
        "an empty mailbox"
    );
}

/// A label on more copies than the store lists threads from directly (2,048) is found by the
/// mailbox walk: the same threads, in the same order, page by page.
pub async fn mail_thread_list_by_a_common_label(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (b, ba) = t.identity("bob").await;
    let (s, owner) = (t.store().clone(), &b.identity.id);
    let entry = |action: &str| super::store::op_entry(&t, action);
    // 1,400 sends to self (two copies in one thread each); every thread but each 7th labelled:
    // 2,400 labelled copies.
    let mut subjects = Vec::new();
    for i in 0..1400 {
        let subject = format!("m{i:04}");
        let sent = t.send(&ba, &[addr(&b)], &subject, "x").await;
        if i % 7 != 0 {
            s.update_thread(
                owner,
                &sent.thread_id,
                label_patch(&["common"], &[]),
                entry("mail.update"),
            )
            .await
            .unwrap();
            subjects.push(subject);
        }
    }
    subjects.reverse();
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let q = ThreadQuery {
            label: Some("common".into()),
            limit: 300,
            before_seq: before,
            ..Default::default()
        };
        let page = s.list_threads(owner, q).await.unwrap();
        seen.extend(page.items.into_iter().map(|t| t.subject));
        match page.next_before {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, subjects);
}

/// Labels are normalised, added idempotently, removed, and belong to one copy.
pub async fn mail_labels(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let sent = t.send(&aa, &[addr(&b)], "Label me", "x").await;
    let copy = inbox_copy(&t, &b, &ba, &sent.message_id).await;
    let id = copy.id.as_str();

    let m = t
        .loft
        .update_message(&ba, id, label_patch(&["Work", "urgent"], &[]))
        .await
        .unwrap();
    assert_eq!(sorted(&m.labels), vec!["urgent", "work"]);
    assert!(m.unread, "labelling does not change read state");
    let m = t
        .loft
        .update_message(&ba, id, label_patch(&["work", "WORK"], &[]))
        .await
        .unwrap();
    assert_eq!(
        sorted(&m.labels),
        vec!["urgent", "work"],
        "adding again changes nothing"
    );
    let m = t
        .loft
        .update_message(&ba, id, label_patch(&["later"], &["work", "not-there"]))
        .await
        .unwrap();
    assert_eq!(sorted(&m.labels), vec!["later", "urgent"]);
    let stored = t.store().get_message(&b.identity.id, &copy.id).await.unwrap().unwrap();
    assert_eq!(sorted(&stored.labels), vec!["later", "urgent"], "labels persist");
    let listed = t
        .all_messages(
            &ba,
            ListMessagesParams {
                label: Some("urgent".into()),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(listed.len(), 1);
    assert_eq!(sorted(&listed[0].labels), vec!["later", "urgent"]);

    let m = t
        .loft
        .update_message(
            &ba,
            id,
            MessagePatch {
                unread: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!m.unread);
    assert_eq!(sorted(&m.labels), vec!["later", "urgent"]);
    let m = t
        .loft
        .update_message(
            &ba,
            id,
            MessagePatch {
                unread: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(m.unread);
    let m = t
        .loft
        .update_message(&ba, id, label_patch(&[], &["later", "urgent"]))
        .await
        .unwrap();
    assert!(m.labels.is_empty());

    let e = expect_err(t.loft.update_message(&ba, id, MessagePatch::default()).await);
    assert_eq!(e.code(), "empty_update");
    let e = expect_err(t.loft.update_message(&ba, id, label_patch(&["two words"], &[])).await);
    assert_eq!(e.code(), "invalid_label");

    let mine = t.store().get_message(&a.identity.id, &sent.id).await.unwrap().unwrap();
    assert!(mine.labels.is_empty(), "labels belong to one copy");
    assert_eq!(t.audit_count("mail.update").await, 6);
    t.assert_chain_ok().await;
}

/// Reading a message marks it read and records the read.
pub async fn mail_reading_marks_read(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let sent = t.send(&aa, &[addr(&b)], "Read me", "x").await;
    let copy = inbox_copy(&t, &b, &ba, &sent.message_id).await;
    assert!(copy.unread);

    let read = t.loft.get_message(&ba, copy.id.as_str()).await.unwrap();
    assert!(!read.unread, "the message returned by a read is marked read");
    assert_eq!(read.id, copy.id);
    assert_eq!(read.text, "x");
    assert!(
        !t.store()
            .get_message(&b.identity.id, &copy.id)
            .await
            .unwrap()
            .unwrap()
            .unread
    );
    assert!(
        t.all_messages(
            &ba,
            ListMessagesParams {
                unread: Some(true),
                ..Default::default()
            }
        )
        .await
        .is_empty()
    );
    let threads = t.loft.list_threads(&ba, ListThreadsParams::default()).await.unwrap();
    assert_eq!(threads.items[0].unread_count, 0);

    let row = t
        .audit_rows()
        .await
        .into_iter()
        .rev()
        .find(|r| r.entry.action == "mail.read")
        .unwrap();
    assert_eq!(row.entry.target.as_deref(), Some(copy.id.as_str()));
    assert_eq!(row.entry.actor_identity_id.as_ref(), Some(&b.identity.id));
    // Reading again is fine and recorded again.
    t.loft.get_message(&ba, copy.id.as_str()).await.unwrap();
    assert_eq!(t.audit_count("mail.read").await, 2);
}

/// A listed page shows every write whose call has returned, whoever made it: where the store
/// keeps pages while nothing was written (SQLite, `Store::data_epoch`), the same page is
/// served again until a write ends, and never after one (a delivery, reading, labels,
/// archive, trash, a refused write, another identity's send), nor to another identity.
pub async fn mail_list_shows_each_write_at_once(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let list = |actor: &Actor, params: ListMessagesParams| {
        let loft = Arc::clone(&t.loft);
        let actor = actor.clone();
        async move { loft.list_messages(&actor, params).await.unwrap() }
    };
    let inbox = || ListMessagesParams::default();
    let first = list(&ba, inbox()).await;
    assert!(first.items.is_empty());
    let again = list(&ba, inbox()).await;
    if t.store().data_epoch().is_some() {
        assert!(Arc::ptr_eq(&first, &again), "nothing was written: the page is kept");
    }
    // Another identity's empty inbox is its own page, even while nothing is written.
    assert!(list(&aa, inbox()).await.items.is_empty());

    let sent = t.send(&aa, &[addr(&b)], "One", "x").await;
    let page = list(&ba, inbox()).await;
    assert_eq!(page.items.len(), 1, "the delivery shows at once");
    assert!(page.items[0].unread);
    assert!(list(&aa, inbox()).await.items.is_empty(), "alice's inbox holds nothing");
    assert_eq!(list(&aa, folder("sent")).await.items[0].id, sent.id);

    let copy = page.items[0].id.clone();
    t.loft.get_message(&ba, copy.as_str()).await.unwrap();
    assert!(!list(&ba, inbox()).await.items[0].unread, "reading shows at once");

    t.loft
        .update_message(&ba, copy.as_str(), label_patch(&["todo"], &[]))
        .await
        .unwrap();
    let labelled = ListMessagesParams {
        label: Some("todo".into()),
        ..Default::default()
    };
    assert_eq!(list(&ba, labelled.clone()).await.items.len(), 1);
    assert_eq!(list(&ba, inbox()).await.items[0].labels, vec!["todo".to_owned()]);

    // A refused write changes nothing, and the page still shows what is stored.
    let bad = label_patch(&["NOT A LABEL"], &[]);
    expect_err(t.loft.update_message(&ba, copy.as_str(), bad).await);
    assert_eq!(list(&ba, labelled.clone()).await.items.len(), 1);

    t.loft
        .update_message(&ba, copy.as_str(), label_patch(&[], &["todo"]))
        .await
        .unwrap();
    assert!(
        list(&ba, labelled).await.items.is_empty(),
        "removing a label shows at once"
    );

    let archive = MessagePatch {
        archived: Some(true),
        ..MessagePatch::default()
    };
    t.loft.update_message(&ba, copy.as_str(), archive).await.unwrap();
    assert!(list(&ba, inbox()).await.items.is_empty(), "archiving shows at once");
    let archived = ListMessagesParams {
        folder: Some("archive".into()),
        ..Default::default()
    };
    assert_eq!(list(&ba, archived.clone()).await.items.len(), 1);

    let trash = MessagePatch {
        trashed: Some(true),
        ..MessagePatch::default()
    };
    t.loft.update_message(&ba, copy.as_str(), trash).await.unwrap();
    assert!(list(&ba, archived).await.items.is_empty(), "trashing shows at once");
    let trashed = ListMessagesParams {
        folder: Some("trash".into()),
        ..Default::default()
    };
    assert_eq!(list(&ba, trashed.clone()).await.items.len(), 1);
    t.loft.delete_message(&ba, copy.as_str()).await.unwrap();
    assert!(list(&ba, trashed).await.items.is_empty(), "deleting shows at once");

    // A second mail, then a page of one and the page after it.
    t.send(&aa, &[addr(&b)], "Two", "y").await;
    t.send(&aa, &[addr(&b)], "Three", "z").await;
    let one = ListMessagesParams {
        limit: Some(1),
        ..Default::default()
    };
    let top = list(&ba, one.clone()).await;
    assert_eq!(top.items[0].subject, "Three");
    let next = ListMessagesParams {
        cursor: top.next_cursor.clone(),
        ..one
    };
    assert_eq!(list(&ba, next).await.items[0].subject, "Two");
    assert_eq!(list(&ba, inbox()).await.items.len(), 2);
}

/// Threads list by last activity with counts and participants; a thread reads oldest first.
pub async fn mail_threads_list_and_get(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let first = t.send(&aa, &[addr(&b)], "first", "1").await;
    let second = t.send(&aa, &[addr(&b)], "second", "2").await;
    let b_first = inbox_copy(&t, &b, &ba, &first.message_id).await;
    let b_second = inbox_copy(&t, &b, &ba, &second.message_id).await;
    let r = t
        .loft
        .reply(&ba, b_first.id.as_str(), reply("re first", false))
        .await
        .unwrap();

    let page = t.loft.list_threads(&ba, ListThreadsParams::default()).await.unwrap();
    assert!(page.next_cursor.is_none());
    let list: Vec<ThreadId> = page.items.iter().map(|s| s.id.clone()).collect();
    assert_eq!(
        list,
        vec![b_first.thread_id.clone(), b_second.thread_id.clone()],
        "by last activity, newest first"
    );
    let t1 = &page.items[0];
    assert_eq!(t1.subject, "first");
    assert_eq!(t1.message_count, 2);
    assert_eq!(t1.unread_count, 1, "the inbox copy; one's own reply is not unread");
    assert_eq!(t1.last_message_id, r.id);
    assert_eq!(t1.last_message_at, r.created_at);
    assert_eq!(t1.snippet, "re first", "the newest message's snippet");
    assert_eq!(
        t1.participants,
        vec![a.identity.address.clone(), b.identity.address.clone()],
        "the senders, each once, in order of first appearance"
    );
    assert_eq!(page.items[1].message_count, 1);
    assert_eq!(page.items[1].subject, "second");

    // Paging one thread at a time.
    let p1 = t
        .loft
        .list_threads(
            &ba,
            ListThreadsParams {
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(p1.items.len(), 1);
    let p2 = t
        .loft
        .list_threads(
            &ba,
            ListThreadsParams {
                limit: Some(1),
                cursor: p1.next_cursor.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        p2.items.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![b_second.thread_id.clone()]
    );
    if let Some(c) = p2.next_cursor {
        let p3 = t
            .loft
            .list_threads(
                &ba,
                ListThreadsParams {
                    limit: Some(1),
                    cursor: Some(c),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(p3.items.is_empty() && p3.next_cursor.is_none());
    }

    // Filters.
    t.loft.get_message(&ba, b_second.id.as_str()).await.unwrap();
    let unread = t
        .loft
        .list_threads(
            &ba,
            ListThreadsParams {
                unread: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        unread.items.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![b_first.thread_id.clone()]
    );
    t.loft
        .update_message(&ba, b_second.id.as_str(), label_patch(&["keep"], &[]))
        .await
        .unwrap();
    let labelled = t
        .loft
        .list_threads(
            &ba,
            ListThreadsParams {
                label: Some("keep".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        labelled.items.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![b_second.thread_id.clone()]
    );

    let th = t
        .loft
        .get_thread(
            &ba,
            b_first.thread_id.as_str(),
            loft_core::service::GetThreadParams::default(),
        )
        .await
        .unwrap();
    assert_eq!(th.subject, "first");
    assert_eq!(
        th.messages.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        vec![b_first.id.clone(), r.id.clone()]
    );
    assert_eq!(th.messages[0].text, "1");
    assert!(th.messages[0].unread, "reading a thread marks nothing read");
    let stored = t.store().get_message(&b.identity.id, &b_first.id).await.unwrap();
    assert!(stored.unwrap().unread);
    assert_eq!(t.audit_count("mail.read_thread").await, 1);

    // The sender's mailbox threads the same conversation under its own id.
    let a_threads = t.loft.list_threads(&aa, ListThreadsParams::default()).await.unwrap();
    let a_ids: Vec<_> = a_threads.items.iter().map(|s| s.id.clone()).collect();
    assert_eq!(a_ids, vec![first.thread_id.clone(), second.thread_id.clone()]);
    assert_eq!(a_threads.items[0].message_count, 2);
}

/// The stored message is a real RFC 5322 document carrying the headers.
pub async fn mail_raw_is_rfc5322(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t
        .identity_with(CreateIdentityRequest {
            name: "alice".into(),
            display_name: Some("Alice A".into()),
            ..Default::default()
        })
        .await;
    let (b, ba) = t.identity("bob").await;
    let sent = t
        .loft
        .send(
            &aa,
            SendMail {
                cc: vec!["x@example.com".into()],
                html: Some("<p>Body <b>here</b></p>".into()),
                ..mail(&[addr(&b)], "Raw check", "Body here")
            },
        )
        .await
        .unwrap();
    let raw = t.loft.raw_message(&aa, sent.id.as_str()).await.unwrap();
    assert_eq!(sent.size, raw.len() as i64, "size is the stored document's length");
    let text = String::from_utf8(raw.clone()).expect("the document is UTF-8/ASCII");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("headers end with an empty CRLF line");
    let has = |name: &str| {
        head.lines().any(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
    };
    for h in [
        "Message-ID",
        "Date",
        "From",
        "To",
        "Cc",
        "Subject",
        "MIME-Version",
        "Content-Type",
    ] {
        assert!(has(h), "missing header {h}:\n{head}");
    }
    assert!(head.contains(&format!("<{}>", sent.message_id)), "{head}");
    assert!(
        head.contains(addr(&a)) && head.contains(addr(&b)) && head.contains("x@example.com"),
        "{head}"
    );
    assert!(head.contains("Raw check"), "{head}");
    assert!(head.contains("multipart/alternative"), "{head}");
    assert!(body.contains("Body here"), "{body}");
    assert!(!text.replace("\r\n", "").contains('\n'), "every line ends with CRLF");

    let b_copy = inbox_copy(&t, &b, &ba, &sent.message_id).await;
    let b_raw = t.loft.raw_message(&ba, b_copy.id.as_str()).await.unwrap();
    assert_eq!(b_raw, raw, "every copy stores the same document");
    assert_eq!(b_copy.size, sent.size);
}

/// Unicode, HTML and display names survive storage exactly.
pub async fn mail_content_round_trips(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, aa) = t
        .identity_with(CreateIdentityRequest {
            name: "ålice".into(),
            display_name: Some("Ålice Ünïcode 研究".into()),
            ..Default::default()
        })
        .await;
    let (b, ba) = t.identity("bob").await;
    let subject = "Bericht ✓ — 研究 \"quoted\" 'single' %_\\";
    let text = "Grüße!\n\nLine two with emoji 🚀 and a tab\tend.\n";
    let html = "<p>Grüße <b>🚀</b></p>";
    let sent = t
        .loft
        .send(
            &aa,
            SendMail {
                html: Some(html.into()),
                ..mail(&[addr(&b)], subject, text)
            },
        )
        .await
        .unwrap();
    let copy = inbox_copy(&t, &b, &ba, &sent.message_id).await;
    for m in [&sent, &copy] {
        assert_eq!(m.subject, subject);
        assert_eq!(m.text, text);
        assert_eq!(m.html.as_deref(), Some(html));
        assert_eq!(m.from_name.as_deref(), Some("Ålice Ünïcode 研究"));
        assert_eq!(m.extracted_text, "Grüße!\n\nLine two with emoji 🚀 and a tab\tend.");
    }
    let listed = t
        .all_messages(
            &ba,
            ListMessagesParams {
                label: None,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(listed[0].subject, subject);
    assert_eq!(listed[0].from_name.as_deref(), Some("Ålice Ünïcode 研究"));
    // The store keeps exactly what it was given.
    let stored = t.store().get_message(&b.identity.id, &copy.id).await.unwrap().unwrap();
    assert_eq!(stored, copy);
}

/// A server without outbound mail refuses a send to an outside address at once, naming it,
/// through the same use case every door calls; nothing is stored or queued.
pub async fn mail_outside_recipients_refused_without_outbound(store: Arc<dyn Store>) {
    let t = crate::test_loft_local_only(store);
    let (_, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let e = expect_err(
        t.loft
            .send(&aa, mail(&[addr(&b), "someone@example.com"], "hi", "x"))
            .await,
    );
    assert_eq!(e.code(), "outbound_not_configured", "{e:?}");
    assert!(e.to_string().contains("someone@example.com"), "{e}");
    assert!(t.all_messages(&ba, ListMessagesParams::default()).await.is_empty());
    assert!(t.all_messages(&aa, folder("all")).await.is_empty());
    let jobs = queued_deliveries(&t).await;
    assert!(jobs.is_empty());
    // Mail between identities of the server still works.
    t.send(&aa, &[addr(&b)], "hi", "x").await;
}

/// The delivery jobs waiting now (claimed, so a second call sees only newer ones).
async fn queued_deliveries(t: &crate::TestLoft) -> Vec<loft_core::jobs::Job> {
    t.store()
        .claim_jobs(
            &[loft_core::mail::DELIVERY_JOB],
            "test",
            t.loft.now(),
            t.loft.now().plus_secs(30),
            10,
        )
        .await
        .unwrap()
}
