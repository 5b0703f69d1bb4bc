//! Contacts: the addresses mail was exchanged with (written by mail) joined with the address
//! book (written by hand), per identity; what a message view says about its sender.

use std::sync::Arc;

use loft_core::caps::FirstContact;
use loft_core::contacts::Contact;
use loft_core::identity::CreatedIdentity;
use loft_core::mail::MessageStatus;
use loft_core::oversight::OversightMode;
use loft_core::service::{
    Actor, ContactParams, CreateIdentityRequest, ListContactsParams, SetIdentityCapsRequest, UpsertContact,
};
use loft_core::store::Store;

use crate::conformance::mail::folder;
use crate::{TestLoft, expect_err, test_loft};

fn addr(c: &CreatedIdentity) -> &str {
    c.identity.address.as_str()
}

async fn agent(t: &TestLoft, name: &str) -> (CreatedIdentity, Actor) {
    t.identity_with(CreateIdentityRequest {
        name: name.into(),
        oversight_mode: Some(OversightMode::Autonomous),
        ..Default::default()
    })
    .await
}

fn entry(address: &str, name: Option<&str>, tags: Option<&[&str]>) -> UpsertContact {
    UpsertContact {
        address: address.into(),
        name: name.map(Into::into),
        tags: tags.map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
        ..Default::default()
    }
}

async fn list(t: &TestLoft, who: &Actor, params: ListContactsParams) -> Vec<Contact> {
    t.loft.list_contacts(who, params).await.unwrap().items
}

fn addresses(items: &[Contact]) -> Vec<&str> {
    items.iter().map(|c| c.address.as_str()).collect()
}

/// Mail writes contacts (known, with when); the address book adds names, notes and tags, for
/// known addresses and new ones alike; filters, pages in address order; forgetting removes only
/// what was written by hand.
pub async fn contacts_join_mail_and_address_book(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = agent(&t, "alice").await;
    let (b, bb) = agent(&t, "bob").await;
    let (c, _) = agent(&t, "carol").await;
    assert!(list(&t, &aa, ListContactsParams::default()).await.is_empty());

    t.send(&aa, &[addr(&b)], "hi", "x").await;
    t.send(&bb, &[addr(&a)], "hello", "y").await;
    let got = t
        .loft
        .get_contact(&aa, addr(&b), ContactParams::default())
        .await
        .unwrap();
    assert!(got.known);
    assert!(got.first_sent_at.is_some() && got.first_received_at.is_some());
    assert!(got.first_sent_at <= got.first_received_at);
    assert_eq!((got.name.as_deref(), got.updated_at), (None, None));

    // Names and tags for a known address and for one never written to.
    let before = t.audit_count("contact.write").await;
    let saved = t
        .loft
        .upsert_contact(
            &aa,
            entry(addr(&b), Some("  Bob Builder "), Some(&["VIP", "client", "vip"])),
        )
        .await
        .unwrap();
    assert_eq!(saved.name.as_deref(), Some("Bob Builder"));
    assert_eq!(saved.tags, ["client", "vip"]);
    assert!(saved.known && saved.updated_at.is_some());
    let new = t
        .loft
        .upsert_contact(
            &aa,
            UpsertContact {
                notes: Some("met at the fair\nsecond line".into()),
                ..entry("zed@example.com", Some("Zed"), None)
            },
        )
        .await
        .unwrap();
    assert!(!new.known && new.first_sent_at.is_none() && new.last_mail_at.is_none());
    assert_eq!(t.audit_count("contact.write").await, before + 2);
    // A field left out keeps its value; "" clears; [] clears the tags.
    let kept = t
        .loft
        .upsert_contact(
            &aa,
            UpsertContact {
                notes: Some("builder".into()),
                ..entry(addr(&b), None, None)
            },
        )
        .await
        .unwrap();
    assert_eq!(kept.name.as_deref(), Some("Bob Builder"));
    assert_eq!(kept.tags, ["client", "vip"]);
    assert_eq!(kept.notes.as_deref(), Some("builder"));

    // Carol wrote to Alice too.
    t.send(&t.actor(&c.api_key).await, &[addr(&a)], "hey", "z").await;
    let all = list(&t, &aa, ListContactsParams::default()).await;
    let mut sorted = vec![addr(&b), addr(&c), "zed@example.com"];
    sorted.sort_unstable();
    assert_eq!(addresses(&all), sorted);
    // Filters: text in the address or the name (ASCII letters in either case), tag, known.
    let by_name = list(
        &t,
        &aa,
        ListContactsParams {
            q: Some("BUILDER".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(addresses(&by_name), [addr(&b)]);
    let by_address = list(
        &t,
        &aa,
        ListContactsParams {
            q: Some("ZED@".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(addresses(&by_address), ["zed@example.com"]);
    let vip = list(
        &t,
        &aa,
        ListContactsParams {
            tag: Some("VIP".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(addresses(&vip), [addr(&b)]);
    let unknown = list(
        &t,
        &aa,
        ListContactsParams {
            known: Some(false),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(addresses(&unknown), ["zed@example.com"]);
    assert_eq!(
        list(
            &t,
            &aa,
            ListContactsParams {
                known: Some(true),
                ..Default::default()
            }
        )
        .await
        .len(),
        2
    );
    // Pages of one walk every contact once, in order.
    let mut walked = vec![];
    let mut cursor = None;
    loop {
        let page = t
            .loft
            .list_contacts(
                &aa,
                ListContactsParams {
                    limit: Some(1),
                    cursor: cursor.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        walked.extend(page.items.into_iter().map(|c| c.address.to_string()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(walked, sorted);

    // Forgetting removes what was written by hand: an entry alone is gone, a known address
    // stays known.
    let gone = t
        .loft
        .forget_contact(&aa, "zed@example.com", ContactParams::default())
        .await
        .unwrap();
    assert_eq!(gone.name.as_deref(), Some("Zed"));
    let e = expect_err(
        t.loft
            .get_contact(&aa, "zed@example.com", ContactParams::default())
            .await,
    );
    assert_eq!(e.code(), "not_found");
    let was = t
        .loft
        .forget_contact(&aa, addr(&b), ContactParams::default())
        .await
        .unwrap();
    assert_eq!(was.name.as_deref(), Some("Bob Builder"));
    let now = t
        .loft
        .get_contact(&aa, addr(&b), ContactParams::default())
        .await
        .unwrap();
    assert!(now.known && now.name.is_none() && now.tags.is_empty() && now.updated_at.is_none());
    assert_eq!(now.first_sent_at, got.first_sent_at);
    let e = expect_err(t.loft.forget_contact(&aa, addr(&b), ContactParams::default()).await);
    assert_eq!(e.code(), "not_found");
    assert_eq!(t.audit_count("contact.forget").await, 2);
    t.assert_chain_ok().await;
}

/// Writing a contact never lets mail past first-contact gating, and forgetting one never makes
/// a known address new again (nor lowers the new-recipients count).
pub async fn contacts_do_not_open_the_gate(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, _) = agent(&t, "alice").await;
    let (b, bb) = agent(&t, "bob").await;
    let op = t.operator().await;
    t.loft
        .set_identity_caps(
            &op,
            a.identity.id.as_str(),
            SetIdentityCapsRequest {
                first_contact: Some(FirstContact::Hold),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let aa = t.actor(&a.api_key).await;
    t.loft
        .upsert_contact(&aa, entry("new@example.com", Some("New"), Some(&["trusted"])))
        .await
        .unwrap();
    let held = t.send(&aa, &["new@example.com"], "hello", "x").await;
    assert_eq!(held.status, MessageStatus::PendingApproval, "{held:?}");
    // Bob wrote first: known. Forgetting Bob's entry keeps him known.
    t.send(&bb, &[addr(&a)], "hi", "y").await;
    t.loft
        .upsert_contact(&aa, entry(addr(&b), Some("Bob"), None))
        .await
        .unwrap();
    t.loft
        .forget_contact(&aa, addr(&b), ContactParams::default())
        .await
        .unwrap();
    let sent = t.send(&aa, &[addr(&b)], "re", "z").await;
    assert_eq!(sent.status, MessageStatus::Sent, "{sent:?}");
}

/// One identity's contacts are its own: another's key gets 404 naming no data, the operator
/// names the identity, scopes hold, and bad input gets a precise 422 that writes nothing.
pub async fn contacts_are_private_and_checked(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = agent(&t, "alice").await;
    let (b, bb) = agent(&t, "bob").await;
    t.loft
        .upsert_contact(&aa, entry("x@example.com", Some("X"), None))
        .await
        .unwrap();
    // Bob sees nothing of Alice's, and cannot name her.
    assert!(list(&t, &bb, ListContactsParams::default()).await.is_empty());
    let named = ListContactsParams {
        identity: Some(a.identity.id.to_string()),
        ..Default::default()
    };
    assert_eq!(
        expect_err(t.loft.list_contacts(&bb, named.clone()).await).code(),
        "not_found"
    );
    let e = expect_err(
        t.loft
            .upsert_contact(
                &bb,
                UpsertContact {
                    identity: Some(a.identity.id.to_string()),
                    ..entry("x@example.com", Some("mine now"), None)
                },
            )
            .await,
    );
    assert_eq!(e.code(), "not_found");
    assert_eq!(
        expect_err(t.loft.get_contact(&bb, "x@example.com", ContactParams::default()).await).code(),
        "not_found"
    );
    assert_eq!(
        expect_err(
            t.loft
                .forget_contact(
                    &bb,
                    "x@example.com",
                    ContactParams {
                        identity: Some(a.identity.id.to_string())
                    }
                )
                .await
        )
        .code(),
        "not_found"
    );
    // The operator names whose contacts.
    let op = t.operator().await;
    assert_eq!(
        expect_err(t.loft.list_contacts(&op, ListContactsParams::default()).await).code(),
        "identity_required"
    );
    let seen = list(&t, &op, named).await;
    assert_eq!(seen[0].name.as_deref(), Some("X"));
    let by_op = t
        .loft
        .upsert_contact(
            &op,
            UpsertContact {
                identity: Some(b.identity.id.to_string()),
                ..entry("y@example.com", Some("Y"), None)
            },
        )
        .await
        .unwrap();
    assert_eq!(by_op.name.as_deref(), Some("Y"));
    assert_eq!(
        addresses(&list(&t, &bb, ListContactsParams::default()).await),
        ["y@example.com"]
    );
    // Scopes: reading needs mail:read, writing mail:manage.
    let (_, reader) = t.identity_with_scopes("reader", &["mail:read"]).await;
    assert!(list(&t, &reader, ListContactsParams::default()).await.is_empty());
    let e = expect_err(
        t.loft
            .upsert_contact(&reader, entry("z@example.com", Some("Z"), None))
            .await,
    );
    assert_eq!(e.code(), "missing_scope");
    // Bad input: precise, and nothing written.
    let before = t.audit_count("contact.write").await;
    for (bad, code) in [
        (entry("not an address", Some("N"), None), "invalid_address"),
        (entry("n@example.com", Some("two\nlines"), None), "invalid_contact"),
        (entry("n@example.com", Some("nul\0"), None), "invalid_text"),
        (entry("n@example.com", Some(&"é".repeat(201)), None), "invalid_contact"),
        (entry("n@example.com", None, Some(&["has space"])), "invalid_tag"),
        (
            UpsertContact {
                notes: Some("n".repeat(2001)),
                ..entry("n@example.com", None, None)
            },
            "invalid_contact",
        ),
    ] {
        let e = expect_err(t.loft.upsert_contact(&aa, bad.clone()).await);
        assert_eq!(e.code(), code, "{bad:?}: {e:?}");
    }
    let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    let e = expect_err(
        t.loft
            .upsert_contact(
                &aa,
                UpsertContact {
                    tags: Some(many),
                    ..entry("n@example.com", None, None)
                },
            )
            .await,
    );
    assert_eq!(e.code(), "invalid_contact");
    let e = expect_err(
        t.loft
            .list_contacts(
                &aa,
                ListContactsParams {
                    cursor: Some("bm90IG91cnM".into()),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "invalid_cursor");
    assert_eq!(t.audit_count("contact.write").await, before);
    assert_eq!(
        expect_err(t.loft.get_contact(&aa, "n@example.com", ContactParams::default()).await).code(),
        "not_found"
    );
}

/// A received message read whole says whether its sender is a known contact (mail exchanged
/// before it), since when, and what the reader's address book calls it.
pub async fn contacts_in_message_views(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = agent(&t, "alice").await;
    let (b, bb) = agent(&t, "bob").await;
    t.send(&aa, &[addr(&b)], "first", "x").await;
    let first = t.all_messages(&bb, folder("inbox")).await.remove(0);
    let m = t.loft.get_message(&bb, first.id.as_str()).await.unwrap();
    let c = m.sender_contact.unwrap();
    assert!(!c.known && c.since.is_none(), "{c:?}");
    t.loft
        .upsert_contact(&bb, entry(addr(&a), Some("Alice A."), Some(&["team"])))
        .await
        .unwrap();
    t.send(&aa, &[addr(&b)], "second", "y").await;
    let second = t
        .all_messages(&bb, folder("inbox"))
        .await
        .into_iter()
        .find(|m| m.subject == "second")
        .unwrap();
    let m = t.loft.get_message(&bb, second.id.as_str()).await.unwrap();
    let c = m.sender_contact.unwrap();
    assert!(c.known, "{c:?}");
    assert_eq!(c.since, Some(first.created_at));
    assert_eq!(
        (c.name.as_deref(), c.tags.as_slice()),
        (Some("Alice A."), &["team".to_owned()][..])
    );
    // Sent copies carry none.
    let sent = t.all_messages(&aa, folder("sent")).await.remove(0);
    assert!(
        t.loft
            .get_message(&aa, sent.id.as_str())
            .await
            .unwrap()
            .sender_contact
            .is_none()
    );
}
