//! Full-text search: words in the subject, the people and the body, ranking, prefixes,
//! highlights, paging, scoping to the caller's own mailbox, and refused queries.

use std::sync::Arc;

use loft_core::identity::CreatedIdentity;
use loft_core::search::{SearchField, SearchHit};
use loft_core::service::{Actor, SearchParams};
use loft_core::store::Store;

use crate::{TestLoft, expect_err, test_loft};

fn addr(c: &CreatedIdentity) -> &str {
    c.identity.address.as_str()
}

fn q(words: &str) -> SearchParams {
    SearchParams {
        q: words.into(),
        ..Default::default()
    }
}

async fn hits(t: &TestLoft, who: &Actor, params: SearchParams) -> Vec<SearchHit> {
    t.loft.search_messages(who, params).await.unwrap().items
}

async fn subjects(t: &TestLoft, who: &Actor, words: &str) -> Vec<String> {
    hits(t, who, q(words))
        .await
        .into_iter()
        .map(|h| h.message.subject)
        .collect()
}

/// The matched text of a highlight, as the client would cut it out by its offsets.
fn matched(h: &SearchHit, field: SearchField) -> Vec<String> {
    h.highlights
        .iter()
        .filter(|x| x.field == field)
        .flat_map(|x| {
            x.matches.iter().map(|[s, e]| {
                x.text
                    .chars()
                    .skip(*s as usize)
                    .take((*e - *s) as usize)
                    .collect::<String>()
            })
        })
        .collect()
}

/// Words are found in subject, body and addresses, in any case, all of them required; a
/// prefix matches word beginnings; subject matches rank first; highlights point at the words.
pub async fn search_finds_words_in_every_field(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    t.send(
        &aa,
        &[addr(&b)],
        "Invoice for March",
        "Hello Bob,\nplease find the numbers attached.",
    )
    .await;
    t.send(
        &aa,
        &[addr(&b)],
        "Lunch",
        "Shall we talk about the invoice over lunch?\nAlice",
    )
    .await;
    t.send(
        &aa,
        &[addr(&b)],
        "Weekly report",
        "Everything is fine. Café crème at 10:30.",
    )
    .await;

    // Subject, then body: both found, the subject match first.
    assert_eq!(subjects(&t, &ba, "invoice").await, ["Invoice for March", "Lunch"]);
    // Case does not matter, and every word must occur (in any field).
    assert_eq!(subjects(&t, &ba, "INVOICE numbers").await, ["Invoice for March"]);
    assert!(subjects(&t, &ba, "invoice holiday").await.is_empty());
    // A prefix.
    assert_eq!(subjects(&t, &ba, "invo*").await, ["Invoice for March", "Lunch"]);
    assert_eq!(subjects(&t, &ba, "repo*").await, ["Weekly report"]);
    // Accented words, and numbers.
    assert_eq!(subjects(&t, &ba, "café").await, ["Weekly report"]);
    assert_eq!(subjects(&t, &ba, "crème 30").await, ["Weekly report"]);
    // The people: the sender's address as words, or a part of it.
    assert_eq!(subjects(&t, &ba, "alice").await.len(), 3);
    // Bob's own address finds the mail he received (he is in To).
    assert_eq!(subjects(&t, &ba, addr(&b)).await.len(), 3);

    // Highlights name the field and point at the words.
    let h = hits(&t, &ba, q("invoice")).await;
    assert_eq!(matched(&h[0], SearchField::Subject), ["Invoice"]);
    assert_eq!(matched(&h[1], SearchField::Body), ["invoice"]);
    assert!(matched(&h[1], SearchField::Subject).is_empty());
    let h = hits(&t, &ba, q("café")).await;
    assert_eq!(matched(&h[0], SearchField::Body), ["Café"]);
}

/// A search sees only the caller's own copies, in the folder asked for, and needs `mail:read`.
pub async fn search_is_scoped_to_the_callers_mailbox(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let (_, ca) = t.identity("carol").await;
    t.send(&aa, &[addr(&b)], "Secret plan", "zebra crossing at noon").await;
    t.send(&ca, &[addr(&a)], "Other news", "nothing about animals").await;

    // Alice sent it: in her sent folder, not her inbox.
    assert_eq!(subjects(&t, &aa, "zebra").await, ["Secret plan"]);
    let sent = SearchParams {
        folder: Some("sent".into()),
        ..q("zebra")
    };
    assert_eq!(hits(&t, &aa, sent).await.len(), 1);
    let inbox = SearchParams {
        folder: Some("inbox".into()),
        ..q("zebra")
    };
    assert!(hits(&t, &aa, inbox).await.is_empty());
    // Bob received it; Carol never saw it.
    assert_eq!(subjects(&t, &ba, "zebra").await, ["Secret plan"]);
    assert!(subjects(&t, &ca, "zebra").await.is_empty());
    assert!(subjects(&t, &ca, "secret").await.is_empty());
    // Bcc is not searchable by the recipients (they do not know it).
    let (d, da) = t.identity("dave").await;
    let mut m = crate::mail(&[addr(&b)], "Quiet", "hello");
    m.bcc = vec![addr(&d).to_owned()];
    t.loft.send(&aa, m).await.unwrap();
    assert!(subjects(&t, &ba, "dave").await.is_empty());
    assert_eq!(subjects(&t, &da, "quiet").await, ["Quiet"]);

    // A key without mail:read cannot search.
    let (_, send_only) = t.identity_with_scopes("erin", &["mail:send"]).await;
    let e = expect_err(t.loft.search_messages(&send_only, q("news")).await);
    assert_eq!(e.code(), "missing_scope", "{e:?}");
}

/// Pages of a search follow one another without gaps or repeats, and bad input is refused
/// with a precise error.
pub async fn search_pages_and_refuses_bad_queries(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    for i in 0..7 {
        t.send(&aa, &[addr(&b)], &format!("Status {i}"), "the quarterly numbers")
            .await;
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = t
            .loft
            .search_messages(
                &ba,
                SearchParams {
                    q: "quarterly".into(),
                    limit: Some(3),
                    cursor,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.into_iter().map(|h| h.message.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 7, "no message twice");

    for (bad, code) in [
        ("", "invalid_query"),
        ("  *** ", "invalid_query"),
        ("x*", "invalid_query"),
        ("nul\0byte", "invalid_text"),
    ] {
        let e = expect_err(t.loft.search_messages(&ba, q(bad)).await);
        assert_eq!(e.code(), code, "{bad:?}: {e:?}");
    }
    let e = expect_err(
        t.loft
            .search_messages(
                &ba,
                SearchParams {
                    folder: Some("trash".into()),
                    ..q("x")
                },
            )
            .await,
    );
    assert_eq!(e.code(), "invalid_folder");
    let e = expect_err(
        t.loft
            .search_messages(
                &ba,
                SearchParams {
                    limit: Some(101),
                    ..q("x")
                },
            )
            .await,
    );
    assert_eq!(e.code(), "invalid_limit");
    let e = expect_err(
        t.loft
            .search_messages(
                &ba,
                SearchParams {
                    cursor: Some("djE6NQ".into()),
                    ..q("x")
                },
            )
            .await,
    );
    assert_eq!(e.code(), "invalid_cursor");
    // Query syntax of either backend is only words here: nothing breaks, nothing leaks.
    for q_text in [
        "\"quarterly",
        "quarterly OR x",
        "NEAR(a b)",
        "ab:*",
        "'; DROP TABLE messages; --",
        "!x & y | z",
        "quarterly)",
    ] {
        t.loft.search_messages(&ba, q(q_text)).await.unwrap();
    }
    assert_eq!(subjects(&t, &ba, "\"quarterly\"").await.len(), 7);
}
