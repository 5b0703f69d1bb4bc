//! The rest of the mailbox: forwarding.

use std::sync::Arc;

use loft_core::identity::CreatedIdentity;
use loft_core::mail::{Folder, ForwardMail, MessageStatus};
use loft_core::oversight::OversightMode;
use loft_core::service::CreateIdentityRequest;
use loft_core::store::Store;

use crate::conformance::mail::folder;
use crate::{expect_err, test_loft};

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
