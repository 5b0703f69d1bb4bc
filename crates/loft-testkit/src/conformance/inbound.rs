//! Mail from outside (the SMTP door's use cases): recipients checked at RCPT, one inbox copy
//! per local recipient written with its audit row, threading of replies from outside into
//! the thread of the mail they answer, attachments listed, verdicts, rules, pause and quota.

use std::sync::Arc;

use loft_core::address::EmailAddress;
use loft_core::audit::{AuditQuery, Outcome};
use loft_core::inbound::Envelope;
use loft_core::mail::Verdict;
use loft_core::quota::Quotas;
use loft_core::rules::{RuleAction, RuleDirection};
use loft_core::service::CreateRuleRequest;
use loft_core::store::Store;

use crate::conformance::mail::folder;
use crate::{TEST_DOMAIN, test_loft, test_loft_with_quotas};

fn envelope(from: Option<&str>, to: &[&str]) -> Envelope {
    Envelope {
        client_ip: Some("127.0.0.1".into()),
        helo: "mx.outside.test".into(),
        mail_from: from.map(|f| EmailAddress::parse(f).unwrap()),
        recipients: to.iter().map(|a| EmailAddress::parse(a).unwrap()).collect(),
    }
}

fn raw(from: &str, to: &str, subject: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!("From: Outside Person <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\n{extra_headers}\r\n{body}").into_bytes()
}

pub async fn inbound_mail_is_stored_threaded_and_audited(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let (a_addr, b_addr) = (a.identity.address.as_str(), b.identity.address.as_str());

    // Alice writes to someone outside; the answer comes back by SMTP.
    let sent = t.send(&aa, &["carol@outside.test"], "Proposal", "Shall we?").await;
    let env = envelope(Some("carol@outside.test"), &[a_addr, b_addr]);
    let check = t.loft.check_inbound_recipient(&env, a_addr).await.unwrap();
    assert_eq!(check.as_str(), a_addr);
    let body = "--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYes, let's.\r\n\r\nOn Monday Alice wrote:\r\n> Shall we?\r\n\
--B\r\nContent-Type: application/pdf; name=\"terms.pdf\"\r\nContent-Disposition: attachment; filename=\"terms.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n--B--\r\n";
    let headers = format!(
        "Message-ID: <reply-1@outside.test>\r\nIn-Reply-To: <{}>\r\nReferences: <{}>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"B\"\r\nCc: {b_addr}\r\n",
        sent.message_id, sent.message_id
    );
    let mail = raw("carol@outside.test", a_addr, "Re: Proposal", &headers, body);
    let receipt = t.loft.receive_inbound(&env, &mail).await.unwrap();
    assert_eq!(receipt.message_id, "reply-1@outside.test");
    assert_eq!(receipt.copies.len(), 2);
    assert!(receipt.refused.is_empty());

    // Each recipient learns of it as an event (and a waiter would have woken).
    let events = t
        .loft
        .list_events(
            &ba,
            loft_core::service::EventParams {
                types: Some("message.received".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].payload["from"], "carol@outside.test");
    assert_eq!(events[0].payload["verdict"], "external_unverified");

    // Alice's copy: in her inbox, in the thread of what she sent, external and not verified.
    let inbox = t.all_messages(&aa, folder("inbox")).await;
    assert_eq!(inbox.len(), 1);
    let got = t.loft.get_message(&aa, inbox[0].id.as_str()).await.unwrap();
    assert_eq!(
        got.thread_id, sent.thread_id,
        "a reply from outside joins the thread it answers"
    );
    assert_eq!(got.from.as_str(), "carol@outside.test");
    assert_eq!(got.from_name.as_deref(), Some("Outside Person"));
    assert_eq!(got.subject, "Re: Proposal");
    assert_eq!(got.extracted_text, "Yes, let's.");
    assert_eq!(got.authentication.verdict, Verdict::ExternalUnverified);
    assert!(!got.authentication.internal);
    assert_eq!(got.attachments.len(), 1);
    assert_eq!(got.attachments[0].name.as_deref(), Some("terms.pdf"));
    assert_eq!(got.attachments[0].content_type, "application/pdf");
    assert_eq!(got.attachments[0].size, 11);
    assert!(got.unread || !got.labels.is_empty() || got.folder == loft_core::mail::Folder::Inbox);
    let stored = t.loft.raw_message(&aa, got.id.as_str()).await.unwrap();
    assert!(stored.starts_with(b"Received: from mx.outside.test ([127.0.0.1])"));
    assert!(stored.ends_with(&mail));
    assert_eq!(got.size, stored.len() as i64);

    // Bob's copy: his own thread, same content.
    let bob_inbox = t.all_messages(&ba, folder("inbox")).await;
    assert_eq!(bob_inbox.len(), 1);
    assert_ne!(bob_inbox[0].thread_id, sent.thread_id);
    assert_eq!(bob_inbox[0].authentication.verdict, Verdict::ExternalUnverified);

    // Both mailboxes counted the bytes; one audit row for the whole mail.
    let usage = t
        .store()
        .mailbox_bytes(&[a.identity.id.clone(), b.identity.id.clone()])
        .await
        .unwrap();
    let bytes = |id: &loft_core::ids::IdentityId| usage.iter().find(|(o, _)| o == id).map_or(0, |(_, n)| *n);
    assert_eq!(bytes(&b.identity.id), stored.len() as u64);
    assert_eq!(bytes(&a.identity.id), stored.len() as u64 + sent.size as u64);
    let rows = t
        .store()
        .list_audit(AuditQuery {
            action: Some("mail.receive".into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].entry.outcome, Outcome::Ok);
    assert_eq!(rows[0].entry.remote_addr.as_deref(), Some("127.0.0.1"));
    assert_eq!(rows[0].entry.details["recipients"].as_array().map(Vec::len), Some(2));

    // A mail without a Message-ID gets one; an HTML-only mail gets readable text.
    let html = raw(
        "shop@outside.test",
        a_addr,
        "Your code",
        "Content-Type: text/html; charset=utf-8\r\n",
        "<html><body><p>Your code is <b>771203</b></p></body></html>\r\n",
    );
    let r = t
        .loft
        .receive_inbound(&envelope(Some("shop@outside.test"), &[a_addr]), &html)
        .await
        .unwrap();
    assert!(r.message_id.ends_with(&format!("@{TEST_DOMAIN}")));
    let m = t.loft.get_message(&aa, r.copies[0].1.as_str()).await.unwrap();
    assert!(m.text.contains("771203") && !m.text.contains('<'), "{:?}", m.text);
    assert!(m.extracted_text.contains("771203"), "{:?}", m.extracted_text);
    assert!(m.html.as_deref().is_some_and(|h| h.contains("<b>771203</b>")));
}

pub async fn inbound_refusals_store_nothing(store: Arc<dyn Store>) {
    let t = test_loft_with_quotas(
        store,
        Quotas {
            stored_bytes: Some(4000),
            ..Quotas::off()
        },
    );
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let (a_addr, b_addr) = (a.identity.address.as_str(), b.identity.address.as_str());
    let env = envelope(Some("someone@outside.test"), &[]);
    let code = |r: loft_core::Result<EmailAddress>| r.map(|_| ()).unwrap_err().code().into_owned();

    // Never an open relay; unknown and malformed addresses refused.
    assert_eq!(
        code(t.loft.check_inbound_recipient(&env, "x@elsewhere.test").await),
        "relay_denied"
    );
    assert_eq!(
        code(
            t.loft
                .check_inbound_recipient(&env, &format!("nobody@{TEST_DOMAIN}"))
                .await
        ),
        "unknown_recipient"
    );
    let upper = t
        .loft
        .check_inbound_recipient(&env, &a_addr.to_uppercase())
        .await
        .unwrap();
    assert_eq!(upper.as_str(), a_addr, "addresses are case-insensitive");
    assert_eq!(
        code(t.loft.check_inbound_recipient(&env, "not an address").await),
        "invalid_address"
    );

    // Alice blocks a sender: refused at RCPT by envelope, and at DATA by the header From.
    let op = t.operator().await;
    t.loft
        .add_rule(
            &op,
            CreateRuleRequest {
                identity: Some(a.identity.id.to_string()),
                instance: None,
                direction: RuleDirection::Receive,
                action: RuleAction::Block,
                pattern: "*@spam.test".into(),
                note: None,
            },
        )
        .await
        .unwrap();
    let spam_env = envelope(Some("boss@spam.test"), &[]);
    let e = t.loft.check_inbound_recipient(&spam_env, a_addr).await.unwrap_err();
    assert_eq!(e.code(), "sender_refused");
    assert!(
        !e.to_string().contains("spam.test") && !e.to_string().contains("rule"),
        "{e}"
    );
    assert!(t.loft.check_inbound_recipient(&spam_env, b_addr).await.is_ok());
    // Envelope from elsewhere, From header blocked: only Bob gets it; to Alice alone: refused.
    let forged = raw("boss@spam.test", a_addr, "hi", "", "hello\r\n");
    let r = t
        .loft
        .receive_inbound(&envelope(Some("bounce@relay.test"), &[a_addr, b_addr]), &forged)
        .await
        .unwrap();
    assert_eq!(r.copies.len(), 1);
    assert_eq!(r.copies[0].0.as_str(), b_addr);
    assert_eq!(r.refused.len(), 1);
    let e = t
        .loft
        .receive_inbound(&envelope(Some("bounce@relay.test"), &[a_addr]), &forged)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "sender_refused");
    assert!(t.all_messages(&aa, folder("inbox")).await.is_empty());
    assert_eq!(t.all_messages(&ba, folder("inbox")).await.len(), 1);

    // Mail claiming this server's domain from outside is marked as suspected spoofing.
    let spoof = raw(b_addr, a_addr, "from bob?", "", "trust me\r\n");
    let r = t
        .loft
        .receive_inbound(&envelope(None, &[a_addr]), &spoof)
        .await
        .unwrap();
    let m = t.loft.get_message(&aa, r.copies[0].1.as_str()).await.unwrap();
    assert_eq!(m.authentication.verdict, Verdict::SpoofedSuspect);
    assert!(!m.authentication.internal);

    // A paused identity still receives: its mail is kept.
    t.loft.set_paused(&op, a.identity.id.as_str(), true).await.unwrap();
    assert!(t.loft.check_inbound_recipient(&env, a_addr).await.is_ok());
    let kept = raw("friend@outside.test", a_addr, "while paused", "", "kept\r\n");
    t.loft
        .receive_inbound(&envelope(Some("friend@outside.test"), &[a_addr]), &kept)
        .await
        .unwrap();
    t.loft.set_paused(&op, a.identity.id.as_str(), false).await.unwrap();
    assert_eq!(t.all_messages(&aa, folder("inbox")).await.len(), 2);

    // A mailbox that cannot take the mail: a temporary refusal, nothing stored.
    let big = raw("friend@outside.test", b_addr, "big", "", &"x".repeat(5000));
    let before = t.all_messages(&ba, folder("inbox")).await.len();
    let e = t
        .loft
        .receive_inbound(&envelope(Some("friend@outside.test"), &[b_addr]), &big)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "quota_exceeded");
    assert_eq!(t.all_messages(&ba, folder("inbox")).await.len(), before);
    // Once full, RCPT itself says so. Fill Bob's mailbox to the byte: a probe tells the size
    // a mail of this shape is stored at (body plus headers, the Received line included).
    let bob_mail = |n: usize| raw("friend@outside.test", b_addr, "fill", "", &"y".repeat(n));
    let from_friend = envelope(Some("friend@outside.test"), &[b_addr]);
    let probe = t.loft.receive_inbound(&from_friend, &bob_mail(10)).await.unwrap();
    let probe_size = t.loft.get_message(&ba, probe.copies[0].1.as_str()).await.unwrap().size as u64;
    let used = t
        .store()
        .mailbox_bytes(std::slice::from_ref(&b.identity.id))
        .await
        .unwrap()[0]
        .1;
    let fill = usize::try_from(4000 - used - (probe_size - 10)).unwrap();
    assert!(
        t.loft.check_inbound_recipient(&env, b_addr).await.is_ok(),
        "not full yet"
    );
    t.loft.receive_inbound(&from_friend, &bob_mail(fill)).await.unwrap();
    let used = t
        .store()
        .mailbox_bytes(std::slice::from_ref(&b.identity.id))
        .await
        .unwrap()[0]
        .1;
    assert_eq!(used, 4000);
    let e = t.loft.check_inbound_recipient(&env, b_addr).await.unwrap_err();
    assert_eq!(e.code(), "quota_exceeded");
}

/// A sign-up mail from outside, HTML only (a table layout, as common senders write it): the
/// reader gets the code and the links, each with its kind, when it reads the mail whole, and a
/// look-alike link is marked.
pub async fn inbound_codes_and_links_are_found(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alice").await;
    let a_addr = a.identity.address.as_str();
    let env = envelope(Some("no-reply@service.test"), &[a_addr]);
    let html = "<html><body><table><tr><td><h1>Confirm your account</h1></td></tr>\
<tr><td>Your verification code is</td></tr><tr><td style=\"font-size:32px\"><b>839 204</b></td></tr>\
<tr><td><a href=\"https://service.test/verify?t=Zx81&amp;u=7\">Verify email</a></td></tr>\
<tr><td><a href=\"https://login.evil.test/\">https://service.test/account</a> \
<a href=\"https://service.test/unsubscribe\">Unsubscribe</a></td></tr>\
<tr><td>&copy; 2026 Service Inc.</td></tr></table></body></html>";
    let mail = raw(
        "no-reply@service.test",
        a_addr,
        "Confirm your account",
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n",
        html,
    );
    t.loft.receive_inbound(&env, &mail).await.unwrap();
    let inbox = t.all_messages(&aa, folder("inbox")).await;
    let m = t.loft.get_message(&aa, inbox[0].id.as_str()).await.unwrap();
    assert_eq!(m.codes, ["839204"], "{:?}", m.text);
    let kinds: Vec<(&str, loft_core::extract::LinkKind, bool)> =
        m.links.iter().map(|l| (l.url.as_str(), l.kind, l.deceptive)).collect();
    assert_eq!(
        kinds,
        [
            (
                "https://service.test/verify?t=Zx81&u=7",
                loft_core::extract::LinkKind::Verify,
                false
            ),
            // A sign-in link (its host says `login`), whose text shows another site.
            ("https://login.evil.test/", loft_core::extract::LinkKind::Verify, true),
            (
                "https://service.test/unsubscribe",
                loft_core::extract::LinkKind::Unsubscribe,
                false
            ),
            // The address the deceptive anchor shows is in the text too, as written.
            (
                "https://service.test/account",
                loft_core::extract::LinkKind::Other,
                false
            ),
        ]
    );
    let screening = m.screening.as_ref().unwrap();
    assert_eq!(screening.label, loft_core::screening::ScreeningLabel::Suspicious);
    assert_eq!(screening.reasons[0].kind, "deceptive_link", "{screening:?}");
    // The sender's own copy of internal mail gets none: only received mail is searched.
    let (_, bb) = t.identity("bob").await;
    let sent = t.send(&bb, &[a_addr], "Your login code", "Code: 551903").await;
    let own = t.loft.get_message(&bb, sent.id.as_str()).await.unwrap();
    assert!(own.codes.is_empty() && own.screening.is_none());
    let inbox = t.all_messages(&aa, folder("inbox")).await;
    let got = inbox.iter().find(|s| s.subject == "Your login code").unwrap();
    let got = t.loft.get_message(&aa, got.id.as_str()).await.unwrap();
    assert_eq!(got.codes, ["551903"]);
}
