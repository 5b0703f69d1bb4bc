//! Drafts: lenient while edited, bounded like a send, private to their identity, and sent
//! through the whole send path, becoming exactly one mail (the draft is deleted in the send's
//! transaction).

use std::sync::Arc;

use loft_core::Error;
use loft_core::identity::CreatedIdentity;
use loft_core::mail::MessageStatus;
use loft_core::oversight::OversightMode;
use loft_core::quota::Quotas;
use loft_core::service::{
    Actor, CreateDraftRequest, CreateIdentityRequest, ListDraftsParams, SendDraftRequest, UpdateDraftRequest,
};
use loft_core::store::Store;

use crate::conformance::mail::folder;
use crate::{TestLoft, expect_err, test_loft};

fn addr(c: &CreatedIdentity) -> String {
    c.identity.address.as_str().to_owned()
}

fn draft(to: &[&str], subject: &str, text: &str) -> CreateDraftRequest {
    CreateDraftRequest {
        to: to.iter().map(|s| (*s).to_owned()).collect(),
        subject: subject.into(),
        text: text.into(),
        ..Default::default()
    }
}

fn no_key() -> SendDraftRequest {
    SendDraftRequest::default()
}

async fn inbox_len(t: &TestLoft, who: &Actor) -> usize {
    t.all_messages(who, folder("inbox")).await.len()
}

async fn drafts_of(t: &TestLoft, who: &Actor) -> usize {
    t.loft
        .list_drafts(who, ListDraftsParams::default())
        .await
        .unwrap()
        .items
        .len()
}

/// Create (even with recipients that are not addresses yet), read, list, edit, send: the mail
/// goes out as a send would, the draft is gone, and every step is audited.
pub async fn drafts_life_cycle(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = t.identity("a").await;
    let (b, bb) = t.identity("b").await;

    let empty = t.loft.create_draft(&a, CreateDraftRequest::default()).await.unwrap();
    assert!(empty.id.as_str().starts_with("drf_"));
    assert!(empty.to.is_empty() && empty.subject.is_empty() && empty.reply_to.is_none());
    let d = t
        .loft
        .create_draft(&a, draft(&["someone, later"], "Plan", "first words"))
        .await
        .unwrap();
    assert_eq!(d.to, ["someone, later"], "recipients are kept as written");
    let got = t.loft.get_draft(&a, d.id.as_str()).await.unwrap();
    assert_eq!(got, d);
    let listed = t.loft.list_drafts(&a, ListDraftsParams::default()).await.unwrap();
    assert_eq!(
        listed.items.iter().map(|x| x.id.clone()).collect::<Vec<_>>(),
        [d.id.clone(), empty.id.clone()],
        "newest first"
    );
    // Paged like messages.
    let one = t
        .loft
        .list_drafts(
            &a,
            ListDraftsParams {
                limit: Some(1),
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    let rest = t
        .loft
        .list_drafts(
            &a,
            ListDraftsParams {
                limit: Some(1),
                cursor: one.next_cursor.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items[0].id, empty.id);
    assert!(rest.next_cursor.is_none());

    // Sending an invalid draft is refused like the send, and the draft stays.
    let e = expect_err(t.loft.send_draft(&a, d.id.as_str(), no_key()).await);
    assert_eq!(e.code(), "invalid_address");
    assert_eq!(drafts_of(&t, &a).await, 2);

    t.clock.advance_secs(5);
    let e = expect_err(
        t.loft
            .update_draft(&a, d.id.as_str(), UpdateDraftRequest::default())
            .await,
    );
    assert_eq!(e.code(), "empty_update");
    let edited = t
        .loft
        .update_draft(
            &a,
            d.id.as_str(),
            UpdateDraftRequest {
                to: Some(vec![addr(&b)]),
                html: Some("<p>final words</p>".into()),
                text: Some("final words".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(edited.subject, "Plan", "fields not given stay");
    assert!(edited.updated_at > d.updated_at);
    assert_eq!(edited.created_at, d.created_at);
    assert_eq!(t.loft.get_draft(&a, d.id.as_str()).await.unwrap(), edited);
    let cleared = t
        .loft
        .update_draft(
            &a,
            d.id.as_str(),
            UpdateDraftRequest {
                html: Some(String::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.html, None, "an empty html removes it");

    let sent = t.loft.send_draft(&a, d.id.as_str(), no_key()).await.unwrap();
    assert_eq!(sent.status, MessageStatus::Sent);
    assert_eq!(sent.subject, "Plan");
    assert_eq!(sent.text, "final words");
    assert_eq!(inbox_len(&t, &bb).await, 1);
    let e = expect_err(t.loft.get_draft(&a, d.id.as_str()).await);
    assert_eq!(e.code(), "not_found");
    assert!(e.hint().unwrap_or_default().contains("sent"), "{e:?}");
    let e = expect_err(t.loft.send_draft(&a, d.id.as_str(), no_key()).await);
    assert_eq!(e.code(), "not_found");
    assert_eq!(inbox_len(&t, &bb).await, 1, "a sent draft is not sent again");

    t.loft.delete_draft(&a, empty.id.as_str()).await.unwrap();
    let e = expect_err(t.loft.delete_draft(&a, empty.id.as_str()).await);
    assert_eq!(e.code(), "not_found");
    assert_eq!(drafts_of(&t, &a).await, 0);

    let actions = t.audit_actions().await;
    for want in ["draft.create", "draft.update", "draft.delete", "mail.send"] {
        assert!(actions.iter().any(|x| x == want), "{want} missing from {actions:?}");
    }
    let send_row = t
        .audit_rows()
        .await
        .into_iter()
        .find(|r| r.entry.action == "mail.send")
        .unwrap();
    assert_eq!(send_row.entry.details["draft"], d.id.as_str());
    t.assert_chain_ok().await;
}

/// Each field is bounded as a send is, NUL is refused, and nothing is stored when refused.
pub async fn drafts_bounds(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = t.identity("a").await;
    let too_many: Vec<String> = (0..101).map(|i| format!("r{i}@x.test")).collect();
    let cases: Vec<(CreateDraftRequest, &str)> = vec![
        (
            CreateDraftRequest {
                to: too_many,
                ..Default::default()
            },
            "too_many_recipients",
        ),
        (draft(&[], "two\nlines", ""), "invalid_subject"),
        (draft(&[], &"s".repeat(999), ""), "invalid_subject"),
        (draft(&[], "nul\0", ""), "invalid_text"),
        (draft(&[], "", "body\0"), "invalid_text"),
        (draft(&["a\0@x.test"], "", ""), "invalid_text"),
        (draft(&[&"x".repeat(400)], "", ""), "invalid_address"),
        (
            draft(&[], "", &"x".repeat(t.loft.config().max_body_bytes + 1)),
            "message_too_large",
        ),
        (
            CreateDraftRequest {
                reply_to: Some("msg_nosuchmessage".into()),
                ..Default::default()
            },
            "not_found",
        ),
        (
            CreateDraftRequest {
                reply_to: Some("thr_x".into()),
                ..Default::default()
            },
            "invalid_id",
        ),
    ];
    for (req, code) in cases {
        let e = expect_err(t.loft.create_draft(&a, req).await);
        assert_eq!(e.code(), code, "{e:?}");
    }
    assert_eq!(drafts_of(&t, &a).await, 0, "a refused draft leaves nothing");
    let d = t.loft.create_draft(&a, draft(&[], "ok", "")).await.unwrap();
    let e = expect_err(
        t.loft
            .update_draft(
                &a,
                d.id.as_str(),
                UpdateDraftRequest {
                    subject: Some("a\r\nb".into()),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "invalid_subject");
    assert_eq!(t.loft.get_draft(&a, d.id.as_str()).await.unwrap(), d, "unchanged");
    // An empty draft cannot be sent: it has no recipient.
    let e = expect_err(t.loft.send_draft(&a, d.id.as_str(), no_key()).await);
    assert_eq!(e.code(), "no_recipients");
    let e = expect_err(t.loft.get_draft(&a, "msg_x").await);
    assert_eq!(e.code(), "invalid_id");
}

/// A draft is its identity's alone: another identity's draft is 404 for every use, and the
/// scopes are `mail:send` to change or send, `mail:read` to read.
pub async fn drafts_isolation_and_scopes(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a_c, a) = t.identity("a").await;
    let (_, b) = t.identity("b").await;
    let d = t
        .loft
        .create_draft(&a, draft(&[&addr(&a_c)], "mine", "x"))
        .await
        .unwrap();
    let id = d.id.as_str();
    for e in [
        expect_err(t.loft.get_draft(&b, id).await),
        expect_err(
            t.loft
                .update_draft(
                    &b,
                    id,
                    UpdateDraftRequest {
                        text: Some("theirs".into()),
                        ..Default::default()
                    },
                )
                .await,
        ),
        expect_err(t.loft.send_draft(&b, id, no_key()).await),
        expect_err(t.loft.delete_draft(&b, id).await),
    ] {
        assert_eq!(e.code(), "not_found", "{e:?}");
    }
    assert_eq!(drafts_of(&t, &b).await, 0);
    assert_eq!(t.loft.get_draft(&a, id).await.unwrap(), d, "untouched");
    // Nor can one draft a reply to another identity's message.
    let m = t.send(&a, &[&addr(&a_c)], "to self", "x").await;
    let e = expect_err(
        t.loft
            .create_draft(
                &b,
                CreateDraftRequest {
                    reply_to: Some(m.id.to_string()),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "not_found");

    let (_, reader) = t.identity_with_scopes("reader", &["mail:read"]).await;
    let e = expect_err(t.loft.create_draft(&reader, CreateDraftRequest::default()).await);
    assert!(matches!(e, Error::MissingScope { .. }), "{e:?}");
    assert_eq!(drafts_of(&t, &reader).await, 0, "mail:read lists (its own, none)");
    let (_, sender) = t.identity_with_scopes("sender", &["mail:send"]).await;
    let mine = t
        .loft
        .create_draft(&sender, CreateDraftRequest::default())
        .await
        .unwrap();
    let e = expect_err(t.loft.get_draft(&sender, mine.id.as_str()).await);
    assert!(matches!(e, Error::MissingScope { .. }), "{e:?}");
    let op = t.operator().await;
    let e = expect_err(t.loft.list_drafts(&op, ListDraftsParams::default()).await);
    assert_eq!(e.code(), "identity_key_required");
}

/// A draft answering a message is addressed and titled as a reply, and sent threaded with it
/// in both mailboxes.
pub async fn drafts_reply_threads(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a_c, a) = t.identity("a").await;
    let (b_c, b) = t.identity("b").await;
    let first = t.send(&a, &[&addr(&b_c)], "Question", "what time?").await;
    let inbox = t.all_messages(&b, folder("inbox")).await;
    let d = t
        .loft
        .create_draft(
            &b,
            CreateDraftRequest {
                reply_to: Some(inbox[0].id.to_string()),
                text: "noon".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(d.to, [addr(&a_c)]);
    assert_eq!(d.subject, "Re: Question");
    assert_eq!(d.reply_to.as_ref(), Some(&inbox[0].id));
    let sent = t.loft.send_draft(&b, d.id.as_str(), no_key()).await.unwrap();
    assert_eq!(sent.in_reply_to.as_deref(), Some(first.message_id.as_str()));
    assert_eq!(sent.thread_id, inbox[0].thread_id);
    let back = t.all_messages(&a, folder("inbox")).await;
    assert_eq!(back.len(), 1);
    assert_eq!(
        back[0].thread_id, first.thread_id,
        "threaded in the sender's mailbox too"
    );
    assert!(t.audit_actions().await.iter().any(|x| x == "mail.reply"));

    // `reply_to: ""` turns a reply draft into a new conversation.
    let d = t
        .loft
        .create_draft(
            &b,
            CreateDraftRequest {
                reply_to: Some(inbox[0].id.to_string()),
                text: "again".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let d = t
        .loft
        .update_draft(
            &b,
            d.id.as_str(),
            UpdateDraftRequest {
                reply_to: Some(String::new()),
                subject: Some("Fresh".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(d.reply_to.is_none());
    let sent = t.loft.send_draft(&b, d.id.as_str(), no_key()).await.unwrap();
    assert!(sent.in_reply_to.is_none());
    assert_ne!(sent.thread_id, inbox[0].thread_id);
}

/// Two sends of one draft at once make one mail; the other is 404 (the draft is gone). With
/// the same idempotency key both get the one result.
pub async fn drafts_send_once_concurrently(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = t.identity("a").await;
    let (b_c, b) = t.identity("b").await;
    for round in 0..4 {
        let d = t
            .loft
            .create_draft(&a, draft(&[&addr(&b_c)], &format!("race {round}"), "x"))
            .await
            .unwrap();
        let key = (round % 2 == 1).then(|| format!("key-{round}"));
        let req = SendDraftRequest {
            idempotency_key: key.clone(),
            send_at: None,
        };
        let (l1, l2) = (t.loft.clone(), t.loft.clone());
        let (a1, a2) = (a.clone(), a.clone());
        let (id1, id2) = (d.id.to_string(), d.id.to_string());
        let (r1, r2) = (req.clone(), req);
        let one = tokio::spawn(async move { l1.send_draft(&a1, &id1, r1).await });
        let two = tokio::spawn(async move { l2.send_draft(&a2, &id2, r2).await });
        let results = [one.await.unwrap(), two.await.unwrap()];
        let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        if key.is_some() {
            assert_eq!(ok.len(), 2, "{results:?}");
            assert_eq!(ok[0].id, ok[1].id, "one mail, one result");
        } else {
            assert_eq!(ok.len(), 1, "{results:?}");
            let e = results.iter().find_map(|r| r.as_ref().err()).unwrap();
            assert_eq!(e.code(), "not_found", "{e:?}");
        }
        assert_eq!(inbox_len(&t, &b).await, round + 1, "round {round}: exactly one mail");
    }
    assert_eq!(drafts_of(&t, &a).await, 0);
}

/// A draft goes through the oversight gate like any send: held in a gated mode (the draft is
/// consumed into the held mail), refused in `read_only` (the draft stays); and the `drafts`
/// quota bounds how many an identity keeps.
pub async fn drafts_gate_and_quota(store: Arc<dyn Store>) {
    let t = crate::test_loft_with_quotas(
        store,
        Quotas {
            drafts: Some(2),
            ..Quotas::off()
        },
    );
    let gated = |name: &str, mode| CreateIdentityRequest {
        name: name.into(),
        oversight_mode: Some(mode),
        ..Default::default()
    };
    let (_, g) = t.identity_with(gated("g", OversightMode::GatedSend)).await;
    let (ro_c, ro) = t.identity_with(gated("ro", OversightMode::ReadOnly)).await;
    let (b_c, b) = t.identity("b").await;

    let d = t
        .loft
        .create_draft(&g, draft(&[&addr(&b_c)], "held", "x"))
        .await
        .unwrap();
    let held = t.loft.send_draft(&g, d.id.as_str(), no_key()).await.unwrap();
    assert_eq!(held.status, MessageStatus::PendingApproval);
    assert!(held.approval.is_some());
    assert_eq!(inbox_len(&t, &b).await, 0);
    assert_eq!(drafts_of(&t, &g).await, 0, "the held mail is what the draft became");

    let d = t
        .loft
        .create_draft(&ro, draft(&[&addr(&b_c)], "no", "x"))
        .await
        .unwrap();
    let e = expect_err(t.loft.send_draft(&ro, d.id.as_str(), no_key()).await);
    assert_eq!(e.code(), "read_only_mode");
    assert_eq!(drafts_of(&t, &ro).await, 1, "a refused send keeps the draft");
    let _ = ro_c;

    t.loft.create_draft(&b, CreateDraftRequest::default()).await.unwrap();
    t.loft.create_draft(&b, CreateDraftRequest::default()).await.unwrap();
    let e = expect_err(t.loft.create_draft(&b, CreateDraftRequest::default()).await);
    assert_eq!(e.code(), "quota_exceeded");
    assert!(e.to_string().contains("drafts"), "{e}");
    assert_eq!(drafts_of(&t, &b).await, 2);
}

/// A draft holds files, checked as a send's (name, type, base64, count, total size: 413) when
/// written; they are listed on the draft (name, type, size), kept as they are through edits
/// that do not name them, replaced by a list given (`[]` removes them), and go out with the
/// mail when the draft is sent, byte for byte.
pub async fn drafts_hold_attachments_and_send_them(store: Arc<dyn Store>) {
    use base64::Engine as _;
    use loft_core::mail::NewAttachment;
    let t = test_loft(store);
    let (_, a) = t.identity("a").await;
    let (b, bb) = t.identity("b").await;
    let file = |name: &str, ct: Option<&str>, bytes: &[u8]| NewAttachment {
        filename: name.into(),
        content_type: ct.map(Into::into),
        content_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
    };
    let blob: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let d = t
        .loft
        .create_draft(
            &a,
            CreateDraftRequest {
                attachments: vec![
                    file("figures.csv", Some("Text/CSV"), b"a,b\n1,2\n"),
                    file("blob.bin", None, &blob),
                ],
                ..draft(&[&addr(&b)], "Files", "see attached")
            },
        )
        .await
        .unwrap();
    let listed = |d: &loft_core::drafts::Draft| {
        d.attachments
            .iter()
            .map(|x| (x.name.clone().unwrap(), x.content_type.clone(), x.size))
            .collect::<Vec<_>>()
    };
    let want = vec![
        ("figures.csv".to_owned(), "text/csv".to_owned(), 8),
        ("blob.bin".to_owned(), "application/octet-stream".to_owned(), 3000),
    ];
    assert_eq!(listed(&d), want);
    let shown = t.loft.get_draft(&a, d.id.as_str()).await.unwrap();
    assert_eq!(listed(&shown), want, "read back from the store");
    let page = t.loft.list_drafts(&a, ListDraftsParams::default()).await.unwrap();
    assert_eq!(listed(&page.items[0]), want);
    let json = serde_json::to_value(&shown).unwrap();
    assert_eq!(json["attachments"][1]["size"], 3000);
    assert!(json.get("files").is_none(), "the bytes are not shown: {json}");

    // An edit that does not name them keeps them.
    let edited = t
        .loft
        .update_draft(
            &a,
            d.id.as_str(),
            UpdateDraftRequest {
                subject: Some("Files, edited".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed(&edited), want);

    // Refused files write nothing: the draft keeps its old ones.
    let before = t.audit_len().await;
    let huge = vec![7u8; 1024 * 1024 + 1];
    for (list, code) in [
        (vec![file("../x", None, b"x")], "invalid_attachment_name"),
        (vec![file("x.txt", Some("not a type"), b"x")], "invalid_content_type"),
        (
            vec![NewAttachment {
                content_base64: "not base64!".into(),
                ..file("x.txt", None, b"")
            }],
            "invalid_attachment",
        ),
        (
            (0..21).map(|i| file(&format!("f{i}"), None, b"x")).collect(),
            "too_many_attachments",
        ),
        (vec![file("huge.bin", None, &huge)], "attachment_too_large"),
    ] {
        let e = expect_err(
            t.loft
                .update_draft(
                    &a,
                    d.id.as_str(),
                    UpdateDraftRequest {
                        attachments: Some(list.clone()),
                        ..Default::default()
                    },
                )
                .await,
        );
        assert_eq!(e.code(), code, "{e:?}");
        if code == "attachment_too_large" {
            assert!(matches!(e, Error::TooLarge(_)), "413: {e:?}");
        }
        let e = expect_err(
            t.loft
                .create_draft(
                    &a,
                    CreateDraftRequest {
                        attachments: list,
                        ..CreateDraftRequest::default()
                    },
                )
                .await,
        );
        assert_eq!(e.code(), code, "{e:?}");
    }
    assert_eq!(t.audit_len().await, before, "refused drafts write nothing");
    assert_eq!(listed(&t.loft.get_draft(&a, d.id.as_str()).await.unwrap()), want);

    // Sent: the files go out with the mail.
    let sent = t.loft.send_draft(&a, d.id.as_str(), no_key()).await.unwrap();
    assert_eq!(sent.status, MessageStatus::Sent);
    let names: Vec<_> = sent.attachments.iter().map(|x| x.name.clone().unwrap()).collect();
    assert_eq!(names, ["figures.csv", "blob.bin"]);
    let got = t.all_messages(&bb, folder("inbox")).await;
    let got = t.loft.get_message(&bb, got[0].id.as_str()).await.unwrap();
    assert_eq!(got.attachments, sent.attachments);
    assert_eq!(
        t.loft.get_attachment(&bb, got.id.as_str(), 0).await.unwrap().bytes,
        b"a,b\n1,2\n"
    );
    assert_eq!(
        t.loft.get_attachment(&bb, got.id.as_str(), 1).await.unwrap().bytes,
        blob
    );

    // A list given replaces the files; `[]` removes them.
    let d = t
        .loft
        .create_draft(
            &a,
            CreateDraftRequest {
                attachments: vec![file("one.txt", None, b"1")],
                ..draft(&[&addr(&b)], "Replace", "x")
            },
        )
        .await
        .unwrap();
    let set = |list: Vec<NewAttachment>| UpdateDraftRequest {
        attachments: Some(list),
        ..Default::default()
    };
    let d2 = t
        .loft
        .update_draft(&a, d.id.as_str(), set(vec![file("two.txt", None, b"22")]))
        .await
        .unwrap();
    assert_eq!(
        listed(&d2),
        [("two.txt".to_owned(), "application/octet-stream".to_owned(), 2)]
    );
    let d3 = t.loft.update_draft(&a, d.id.as_str(), set(vec![])).await.unwrap();
    assert!(d3.attachments.is_empty() && d3.files.is_empty());
    let sent = t.loft.send_draft(&a, d.id.as_str(), no_key()).await.unwrap();
    assert!(sent.attachments.is_empty());
}
