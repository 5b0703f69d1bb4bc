//! Sending attachments (`SendMail.attachments`, `ReplyMail.attachments`): the files reach a
//! local recipient, listed and downloadable on both copies exactly as sent; bad files are
//! refused with a precise code and nothing written; the total size limit is `413
//! attachment_too_large`; the files count in the `stored_bytes` quota; the exfiltration guard
//! reads them; a reviewer's edit of held mail keeps them.

use std::sync::Arc;

use base64::Engine as _;
use loft_core::Error;
use loft_core::mail::{MessageStatus, NewAttachment, SendMail};
use loft_core::oversight::{HoldKind, OversightMode};
use loft_core::service::{CreateIdentityRequest, EditHeldMail, StoreCredentialRequest};
use loft_core::store::Store;

use crate::conformance::mail::folder;
use crate::{expect_err, mail, test_loft, test_loft_with_quotas};

fn file(name: &str, content_type: Option<&str>, bytes: &[u8]) -> NewAttachment {
    NewAttachment {
        filename: name.into(),
        content_type: content_type.map(Into::into),
        content_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

fn with_files(to: &str, subject: &str, files: Vec<NewAttachment>) -> SendMail {
    SendMail {
        attachments: files,
        ..mail(&[to], subject, "see the files")
    }
}

/// Every byte value, so that no encoding step may lose one.
fn binary() -> Vec<u8> {
    (0..=255u8).cycle().take(3000).collect()
}

/// Sent with a text file and a binary one: both copies list them (name, type, size) and
/// serve their bytes unchanged; the recipient's reply can carry a file back; the raw message
/// is `multipart/mixed`.
pub async fn attachments_reach_local_recipients_intact(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = t.identity("a").await;
    let (bc, b) = t.identity("b").await;
    let csv = "name,amount\nÉlise,12\n".as_bytes();
    let sent = t
        .loft
        .send(
            &a,
            with_files(
                bc.identity.address.as_str(),
                "Figures",
                vec![
                    file("figures.csv", Some("Text/CSV"), csv),
                    file("blob.bin", None, &binary()),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(sent.status, MessageStatus::Sent);
    let names: Vec<_> = sent.attachments.iter().map(|x| x.name.clone().unwrap()).collect();
    assert_eq!(names, ["figures.csv", "blob.bin"], "{:?}", sent.attachments);
    assert_eq!(sent.attachments[0].content_type, "text/csv");
    assert_eq!(sent.attachments[1].content_type, "application/octet-stream");
    assert_eq!(sent.attachments[1].size, 3000);

    let inbox = t.all_messages(&b, folder("inbox")).await;
    assert_eq!(inbox.len(), 1);
    let got = t.loft.get_message(&b, inbox[0].id.as_str()).await.unwrap();
    assert_eq!(
        got.attachments, sent.attachments,
        "the recipient's copy lists the same files"
    );
    assert_eq!(got.text.trim_end(), "see the files");
    for (who, id) in [(&a, sent.id.as_str()), (&b, got.id.as_str())] {
        let f0 = t.loft.get_attachment(who, id, 0).await.unwrap();
        assert_eq!(f0.bytes, csv);
        let f1 = t.loft.get_attachment(who, id, 1).await.unwrap();
        assert_eq!(f1.bytes, binary());
        assert_eq!(expect_err(t.loft.get_attachment(who, id, 2).await).code(), "not_found");
    }
    let raw = String::from_utf8_lossy(&t.loft.raw_message(&b, got.id.as_str()).await.unwrap()).into_owned();
    assert!(raw.contains("multipart/mixed"), "{raw}");

    // A reply carries a file back, in the same thread.
    let reply = t
        .loft
        .reply(
            &b,
            got.id.as_str(),
            loft_core::mail::ReplyMail {
                text: "signed".into(),
                attachments: vec![file("signed.txt", Some("text/plain"), b"ok")],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let back = t.all_messages(&a, folder("inbox")).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].thread_id, sent.thread_id);
    let f = t.loft.get_attachment(&a, back[0].id.as_str(), 0).await.unwrap();
    assert_eq!(
        (f.attachment.name.as_deref(), f.bytes.as_slice()),
        (Some("signed.txt"), &b"ok"[..])
    );
    assert_eq!(reply.attachments.len(), 1);
}

/// Bad files are refused with a precise code, and nothing is written.
pub async fn attachments_refusals_write_nothing(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = t.identity("a").await;
    let (bc, b) = t.identity("b").await;
    let to = bc.identity.address.as_str();
    let ok = || file("a.txt", Some("text/plain"), b"x");
    let mut bad_base64 = ok();
    bad_base64.content_base64 = "not base64!".into();
    let cases: Vec<(Vec<NewAttachment>, &str, &str)> = vec![
        (vec![bad_base64], "invalid_attachment", "not base64"),
        (
            vec![file("../etc/passwd", None, b"x")],
            "invalid_attachment_name",
            "path separator",
        ),
        (
            vec![file("a\\b.txt", None, b"x")],
            "invalid_attachment_name",
            "path separator",
        ),
        (
            vec![file("a\u{0}b", None, b"x")],
            "invalid_attachment_name",
            "control character",
        ),
        (
            vec![file("new\r\nline", None, b"x")],
            "invalid_attachment_name",
            "control character",
        ),
        (vec![file("", None, b"x")], "invalid_attachment_name", "empty"),
        (vec![file("..", None, b"x")], "invalid_attachment_name", "`..`"),
        (
            vec![file(&"n".repeat(256), None, b"x")],
            "invalid_attachment_name",
            "255",
        ),
        (
            vec![file("a", Some("text"), b"x")],
            "invalid_content_type",
            "not a content type",
        ),
        (
            vec![file("a", Some("text/plain; charset=utf-8"), b"x")],
            "invalid_content_type",
            "not a content type",
        ),
        (
            vec![file("a", Some("text/pl ain"), b"x")],
            "invalid_content_type",
            "not a content type",
        ),
        ((0..21).map(|_| ok()).collect(), "too_many_attachments", "at most 20"),
    ];
    for (files, code, says) in cases {
        let e = expect_err(t.loft.send(&a, with_files(to, "bad", files.clone())).await);
        assert_eq!(e.code(), code, "{files:?}: {e:?}");
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains(says), "{e}");
    }
    // Over the total limit (1 MiB by default), counted decoded, across the files.
    let limit = t.loft.config().max_attachment_bytes;
    let half = vec![7u8; limit / 2 + 1];
    let e = expect_err(
        t.loft
            .send(
                &a,
                with_files(to, "big", vec![file("1", None, &half), file("2", None, &half)]),
            )
            .await,
    );
    assert_eq!(e.code(), "attachment_too_large");
    assert!(matches!(e, Error::TooLarge(_)), "{e:?}");
    assert!(e.to_string().contains(&limit.to_string()), "names the limit: {e}");
    assert!(e.hint().unwrap().contains("--max-attachment-bytes"));
    // Exactly at the limit is fine.
    let exact = vec![7u8; limit];
    t.loft
        .send(&a, with_files(to, "exact", vec![file("exact.bin", None, &exact)]))
        .await
        .unwrap();

    assert_eq!(
        t.all_messages(&a, folder("sent")).await.len(),
        1,
        "only the good send is stored"
    );
    assert_eq!(t.all_messages(&b, folder("inbox")).await.len(), 1);
    // Padding and line breaks in the base64 are accepted.
    let mut wrapped = file("w.txt", None, b"hello world");
    wrapped.content_base64 = "aGVsbG8g\r\nd29ybGQ=".into();
    let m = t.loft.send(&a, with_files(to, "wrapped", vec![wrapped])).await.unwrap();
    assert_eq!(
        t.loft.get_attachment(&a, m.id.as_str(), 0).await.unwrap().bytes,
        b"hello world"
    );
}

/// The files count in the `stored_bytes` quota of every mailbox they land in.
pub async fn attachments_count_in_the_quota(store: Arc<dyn Store>) {
    let t = test_loft_with_quotas(
        store,
        loft_core::quota::Quotas {
            stored_bytes: Some(20_000),
            ..loft_core::quota::Quotas::off()
        },
    );
    let (ac, a) = t.identity("a").await;
    let (bc, _) = t.identity("b").await;
    let to = bc.identity.address.as_str();
    // A short body, and a file whose base64 alone is over the quota.
    let e = expect_err(
        t.loft
            .send(&a, with_files(to, "q", vec![file("big.bin", None, &[1u8; 16_000])]))
            .await,
    );
    assert_eq!(e.code(), "quota_exceeded", "{e:?}");
    let m = t
        .loft
        .send(&a, with_files(to, "q", vec![file("small.bin", None, &[1u8; 8_000])]))
        .await
        .unwrap();
    assert!(m.size > 8_000, "the stored size counts the file: {}", m.size);
    assert_eq!(
        t.store().usage(&ac.identity.id).await.unwrap().stored_bytes,
        m.size as u64
    );
}

/// A vault value inside an attached file holds the mail like one in the body, whatever the
/// file's declared type; a reviewer's edit of the held mail keeps its files.
pub async fn attachments_are_read_by_the_exfiltration_guard(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = t
        .identity_with(CreateIdentityRequest {
            name: "a".into(),
            oversight_mode: Some(OversightMode::Autonomous),
            ..Default::default()
        })
        .await;
    let (bc, b) = t.identity("b").await;
    let to = bc.identity.address.as_str();
    let op = t.operator().await;
    let secret = "sk-live-attached-4f2a9c";
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
    for (name, ct) in [("keys.txt", Some("text/plain")), ("dump.bin", None)] {
        let body = format!("user,key\nbot,{secret}\n");
        let m = t
            .loft
            .send(&a, with_files(to, name, vec![file(name, ct, body.as_bytes())]))
            .await
            .unwrap();
        assert_eq!(m.status, MessageStatus::PendingApproval, "{name}");
        let approval = m.approval.unwrap();
        let guard = approval
            .reasons
            .iter()
            .find(|r| r.kind == HoldKind::ExfiltrationGuard)
            .expect("held by the guard");
        assert_eq!(guard.credential.as_deref(), Some("crm"));
        assert!(!serde_json::to_string(&approval).unwrap().contains(secret));
    }
    assert!(
        t.all_messages(&b, folder("inbox")).await.is_empty(),
        "nothing reached b"
    );

    // A clean file goes out at once.
    let clean = t
        .loft
        .send(
            &a,
            with_files(to, "clean", vec![file("ok.txt", Some("text/plain"), b"nothing")]),
        )
        .await
        .unwrap();
    assert_eq!(clean.status, MessageStatus::Sent);

    // The reviewer edits the text of the first held mail: its file stays, and is still seen.
    let held = t.all_messages(&a, folder("sent")).await;
    let first = held.iter().find(|m| m.subject == "keys.txt").unwrap();
    let m = t.loft.get_message(&a, first.id.as_str()).await.unwrap();
    let approval = m.approval.unwrap();
    let edited = t
        .loft
        .edit_approval(
            &op,
            approval.id.as_str(),
            EditHeldMail {
                text: Some("see the file (edited)".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        edited
            .approval
            .reasons
            .iter()
            .any(|r| r.kind == HoldKind::ExfiltrationGuard),
        "the file still holds the secret: {:?}",
        edited.approval.reasons
    );
    assert_eq!(edited.message.attachments.len(), 1);
    t.loft.approve(&op, approval.id.as_str()).await.unwrap();
    let inbox = t.all_messages(&b, folder("inbox")).await;
    let got = inbox.iter().find(|m| m.subject == "keys.txt").expect("released");
    let f = t.loft.get_attachment(&b, got.id.as_str(), 0).await.unwrap();
    assert_eq!(f.attachment.name.as_deref(), Some("keys.txt"));
    assert!(String::from_utf8_lossy(&f.bytes).contains(secret));
    let got = t.loft.get_message(&b, got.id.as_str()).await.unwrap();
    assert_eq!(got.text.trim_end(), "see the file (edited)");
}

/// A forward carries the forwarded message's files (names, types and bytes as received),
/// then the forwarder's own; `keep_attachments: false` forwards the text only; the limits of
/// a send apply to them together (count, then total size: 413), checked before anything is
/// written.
pub async fn attachments_go_along_with_a_forward(store: Arc<dyn Store>) {
    use loft_core::mail::ForwardMail;
    let t = test_loft(store);
    let (_, a) = t.identity("a").await;
    let (bc, b) = t.identity("b").await;
    let (cc, c) = t.identity("c").await;
    let csv = "name,amount\nÉlise,12\n".as_bytes();
    t.loft
        .send(
            &a,
            with_files(
                bc.identity.address.as_str(),
                "Figures",
                vec![
                    file("figures.csv", Some("text/csv"), csv),
                    file("blob.bin", None, &binary()),
                ],
            ),
        )
        .await
        .unwrap();
    let original = t.all_messages(&b, folder("inbox")).await[0].id.clone();
    let to_c = |attachments: Vec<NewAttachment>, keep: Option<bool>| ForwardMail {
        to: vec![cc.identity.address.to_string()],
        text: "FYI".into(),
        keep_attachments: keep,
        attachments,
        ..Default::default()
    };

    let fwd = t
        .loft
        .forward(
            &b,
            original.as_str(),
            to_c(vec![file("notes.txt", Some("text/plain"), b"my notes")], None),
        )
        .await
        .unwrap();
    let names: Vec<_> = fwd.attachments.iter().map(|x| x.name.clone().unwrap()).collect();
    assert_eq!(names, ["figures.csv", "blob.bin", "notes.txt"], "{:?}", fwd.attachments);
    let got = t.all_messages(&c, folder("inbox")).await;
    assert_eq!(got.len(), 1);
    let got = t.loft.get_message(&c, got[0].id.as_str()).await.unwrap();
    assert_eq!(got.attachments, fwd.attachments);
    assert_eq!(got.attachments[0].content_type, "text/csv");
    assert_eq!(t.loft.get_attachment(&c, got.id.as_str(), 0).await.unwrap().bytes, csv);
    assert_eq!(
        t.loft.get_attachment(&c, got.id.as_str(), 1).await.unwrap().bytes,
        binary()
    );
    assert_eq!(
        t.loft.get_attachment(&c, got.id.as_str(), 2).await.unwrap().bytes,
        b"my notes"
    );
    assert!(got.text.contains("FYI"), "{}", got.text);

    // The text only.
    let bare = t
        .loft
        .forward(&b, original.as_str(), to_c(vec![], Some(false)))
        .await
        .unwrap();
    assert!(bare.attachments.is_empty(), "{:?}", bare.attachments);

    // The limits count the carried files with the added ones; nothing is written.
    let before = t.audit_len().await;
    let many: Vec<NewAttachment> = (0..19).map(|i| file(&format!("f{i}.txt"), None, b"x")).collect();
    let e = expect_err(t.loft.forward(&b, original.as_str(), to_c(many.clone(), None)).await);
    assert_eq!(e.code(), "too_many_attachments", "{e:?}");
    // Without the carried two, 19 fit.
    let big = vec![file("big.bin", None, &vec![7u8; 1024 * 1024 - 1000])];
    let e = expect_err(t.loft.forward(&b, original.as_str(), to_c(big.clone(), None)).await);
    assert!(matches!(e, Error::TooLarge(_)), "{e:?}");
    assert_eq!(e.code(), "attachment_too_large", "{e:?}");
    // An added file is checked as for a send.
    let e = expect_err(
        t.loft
            .forward(&b, original.as_str(), to_c(vec![file("../x", None, b"x")], None))
            .await,
    );
    assert_eq!(e.code(), "invalid_attachment_name", "{e:?}");
    assert_eq!(t.audit_len().await, before, "a refused forward writes nothing");
    assert_eq!(t.all_messages(&c, folder("inbox")).await.len(), 2);
    let ok = t
        .loft
        .forward(&b, original.as_str(), to_c(many, Some(false)))
        .await
        .unwrap();
    assert_eq!(ok.attachments.len(), 19);
    let ok = t
        .loft
        .forward(&b, original.as_str(), to_c(big, Some(false)))
        .await
        .unwrap();
    assert_eq!(ok.attachments.len(), 1);
}
