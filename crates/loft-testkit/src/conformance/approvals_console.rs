//! What the console's approval pages stand on: the earlier mail shown beside a held mail (its
//! own thread only, reviewers only), and expired console sessions purged by the job runner.

use std::sync::Arc;

use loft_core::console;
use loft_core::mail::ReplyMail;
use loft_core::oversight::OversightMode;
use loft_core::runner::{JobRunner, PURGE_EVERY_SECS};
use loft_core::service::{CreateIdentityRequest, EventParams, ListMessagesParams, NoticeSetting, RequestContext};
use loft_core::store::Store;
use secrecy::ExposeSecret as _;

use crate::{expect_err, test_loft};

pub async fn approvals_context_is_the_held_mails_own_thread(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t
        .identity_with(CreateIdentityRequest {
            name: "a".into(),
            oversight_mode: Some(OversightMode::GatedSend),
            ..Default::default()
        })
        .await;
    let (b, bb) = t.identity("b").await;
    let (_, alice) = t
        .identity_with_scopes("alice", &["oversight", "mail:read", "keys:manage"])
        .await;
    let to_a = [a.identity.address.as_str()];
    t.send(&bb, &to_a, "Invoice 42", "Please pay invoice 42.").await;
    t.send(&bb, &to_a, "Unrelated", "A secret of another thread.").await;
    let inbox = t.all_messages(&aa, ListMessagesParams::default()).await;
    let invoice = inbox.iter().find(|m| m.subject == "Invoice 42").unwrap();
    let held = t
        .loft
        .reply(
            &aa,
            invoice.id.as_str(),
            ReplyMail {
                text: "Paid: here are the bank details.".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let id = held.approval.clone().unwrap().id.to_string();

    // Its event links to the console page (which asks for sign-in), and nothing else new.
    let events = t
        .loft
        .list_events(
            &alice,
            EventParams {
                types: Some("approval.requested".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items;
    let requested = events.iter().find(|e| e.payload["approval_id"] == id.as_str()).unwrap();
    assert_eq!(
        requested.payload["console_url"],
        format!("{}/approvals/{id}", crate::TEST_CONSOLE_URL)
    );
    let payload = requested.payload.to_string();
    assert!(
        !payload.contains("bank details") && !payload.contains("/approve"),
        "{payload}"
    );

    let ctx = t.loft.approval_context(&alice, &id).await.unwrap();
    assert_eq!(ctx.basis, "thread");
    let subjects: Vec<&str> = ctx.messages.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(subjects, ["Invoice 42"], "only the held mail's own thread, without it");
    assert_eq!(ctx.messages[0].text, "Please pay invoice 42.");
    assert_eq!(ctx.messages[0].from, b.identity.address);
    // The operator may look too; the agents themselves (no `oversight`) may not.
    let op = t.operator().await;
    assert_eq!(t.loft.approval_context(&op, &id).await.unwrap().messages.len(), 1);
    assert_eq!(
        expect_err(t.loft.approval_context(&aa, &id).await).code(),
        "missing_scope"
    );
    assert_eq!(
        expect_err(t.loft.approval_context(&bb, &id).await).code(),
        "missing_scope"
    );
    assert_eq!(
        expect_err(t.loft.approval_context(&alice, "apr_nothere").await).code(),
        expect_err(t.loft.get_approval(&alice, "apr_nothere").await).code(),
    );
}

pub async fn approvals_expired_console_sessions_are_purged_by_the_runner(store: Arc<dyn Store>) {
    let t = test_loft(store.clone());
    let runner = JobRunner::new(t.loft.clone(), "purger");
    let ctx = || RequestContext::default();
    let sign_in = || t.loft.console_sign_in_operator(&t.operator_key, ctx());

    // A pass keeps open sessions.
    let s1 = sign_in().await.unwrap();
    runner.run_due().await.unwrap();
    t.loft.console_session(s1.token.expose_secret(), ctx()).await.unwrap();

    // Once expired, the next pass (more than PURGE_EVERY_SECS later) deletes it: nothing is
    // left to purge, and the newer session still works.
    t.clock.advance_secs(console::SESSION_TTL_SECS + 1);
    let s2 = sign_in().await.unwrap();
    runner.run_due().await.unwrap();
    assert_eq!(store.purge_console_sessions(t.loft.now()).await.unwrap(), 0);
    t.loft.console_session(s2.token.expose_secret(), ctx()).await.unwrap();

    // Passes closer together than PURGE_EVERY_SECS do not purge again: s2, expired just
    // after a purge, is still in the table after the next pass.
    t.clock.advance_secs(console::SESSION_TTL_SECS - 60);
    runner.run_due().await.unwrap();
    t.clock.advance_secs(120);
    const { assert!(120 < PURGE_EVERY_SECS) };
    runner.run_due().await.unwrap();
    expect_err(t.loft.console_session(s2.token.expose_secret(), ctx()).await);
    assert_eq!(store.purge_console_sessions(t.loft.now()).await.unwrap(), 1);
}

pub async fn approvals_held_mail_notices_by_mail(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t
        .identity_with(CreateIdentityRequest {
            name: "a".into(),
            oversight_mode: Some(OversightMode::GatedSend),
            ..Default::default()
        })
        .await;
    let (b, _) = t.identity("b").await;
    let reviewer_scopes = ["oversight", "mail:read", "keys:manage"];
    let (alice, al) = t.identity_with_scopes("alice", &reviewer_scopes).await;
    let (_, quiet) = t.identity_with_scopes("quiet", &reviewer_scopes).await;
    let op = t.operator().await;
    let runner = JobRunner::new(t.loft.clone(), "notices");
    let alice_addr = alice.identity.address.as_str();
    let notices = |who: &'static str| {
        let actor = if who == "alice" { al.clone() } else { quiet.clone() };
        let t = &t;
        async move {
            t.all_messages(&actor, ListMessagesParams::default())
                .await
                .into_iter()
                .filter(|m| m.subject.starts_with("Held for review: "))
                .collect::<Vec<_>>()
        }
    };

    // Reviewers only, and only to an address hosted here; a refusal stores nothing.
    assert_eq!(
        expect_err(t.loft.set_held_mail_notice(&op, Some(alice_addr)).await).code(),
        "identity_key_required"
    );
    assert_eq!(
        expect_err(t.loft.set_held_mail_notice(&aa, Some(alice_addr)).await).code(),
        "missing_scope"
    );
    assert_eq!(
        expect_err(
            t.loft
                .set_held_mail_notice(&al, Some(&format!("nobody@{}", crate::TEST_DOMAIN)))
                .await
        )
        .code(),
        "notice_address_not_hosted"
    );
    // Another identity's mailbox (an agent's, the held mail's sender's) would learn of every
    // held mail.
    assert_eq!(
        expect_err(
            t.loft
                .set_held_mail_notice(&al, Some(b.identity.address.as_str()))
                .await
        )
        .code(),
        "notice_address_not_yours"
    );
    assert_eq!(
        expect_err(t.loft.set_held_mail_notice(&al, Some("not an address")).await).code(),
        expect_err(loft_core::address::EmailAddress::parse("not an address")).code()
    );
    assert_eq!(t.loft.held_mail_notice(&al).await.unwrap(), NoticeSetting::default());

    let set = t.loft.set_held_mail_notice(&al, Some(alice_addr)).await.unwrap();
    assert_eq!(
        set.address.as_ref().map(loft_core::address::EmailAddress::as_str),
        Some(alice_addr)
    );
    assert_eq!(t.loft.held_mail_notice(&al).await.unwrap(), set);
    assert_eq!(t.loft.held_mail_notice(&quiet).await.unwrap(), NoticeSetting::default());

    // A held mail: the hold is done at once; the next runner pass writes the notice.
    let held = t
        .loft
        .send(
            &aa,
            crate::mail(&[b.identity.address.as_str()], "Quarterly numbers", "SECRET BODY LINE"),
        )
        .await
        .unwrap();
    let approval = held.approval.clone().unwrap();
    assert!(notices("alice").await.is_empty());
    runner.run_due().await.unwrap();
    let got = notices("alice").await;
    assert_eq!(got.len(), 1, "one notice");
    let notice = t.loft.get_message(&al, got[0].id.as_str()).await.unwrap();
    assert_eq!(notice.subject, "Held for review: Quarterly numbers");
    assert_eq!(notice.from.as_str(), format!("loft-console@{}", crate::TEST_DOMAIN));
    let link = format!("{}/approvals/{}", crate::TEST_CONSOLE_URL, approval.id);
    for want in [
        a.identity.address.as_str(),
        b.identity.address.as_str(),
        "Why it is held",
        link.as_str(),
    ] {
        assert!(notice.text.contains(want), "{want} missing from {}", notice.text);
    }
    assert!(notice.html.is_none());
    for never in ["SECRET BODY LINE", "/approve", "/reject", "/edit", "token"] {
        assert!(!notice.text.contains(never), "{never} in {}", notice.text);
    }
    assert!(notices("quiet").await.is_empty(), "only reviewers who asked");
    let audit = t.audit_rows().await;
    assert!(audit.iter().any(|r| r.entry.action == "console.notices"));
    let sent = audit.iter().find(|r| r.entry.action == "approval.notice").unwrap();
    assert_eq!(sent.entry.target.as_deref(), Some(approval.id.as_str()));

    // Decided before the runner came round: no notice needed. Turned off: none either.
    let second = t
        .loft
        .send(&aa, crate::mail(&[b.identity.address.as_str()], "Second", "x"))
        .await
        .unwrap();
    t.loft.approve(&al, second.approval.unwrap().id.as_str()).await.unwrap();
    runner.run_due().await.unwrap();
    assert_eq!(notices("alice").await.len(), 1);
    assert_eq!(
        t.loft.set_held_mail_notice(&al, Some(" ")).await.unwrap(),
        NoticeSetting::default()
    );
    t.loft
        .send(&aa, crate::mail(&[b.identity.address.as_str()], "Third", "x"))
        .await
        .unwrap();
    runner.run_due().await.unwrap();
    assert_eq!(notices("alice").await.len(), 1);
}

/// A reviewer's outside notice address: used only after the code mailed there comes back;
/// the code and the notices go out as mail from the reviewer's own address through the
/// outbound queue, under the freeze, the reviewer's send rules and the suppression list.
pub async fn approvals_held_mail_notices_to_an_outside_address(store: Arc<dyn Store>) {
    use loft_core::mail::DeliveryStatus;
    let t = test_loft(store.clone());
    let (_, aa) = t
        .identity_with(CreateIdentityRequest {
            name: "a".into(),
            oversight_mode: Some(OversightMode::GatedSend),
            ..Default::default()
        })
        .await;
    let (b, _) = t.identity("b").await;
    let (alice, al) = t
        .identity_with_scopes("alice", &["oversight", "mail:read", "keys:manage"])
        .await;
    let op = t.operator().await;
    let runner = JobRunner::new(t.loft.clone(), "notices");
    let outside = "alice@corp.example";
    let sent_to_outside = || {
        let t = &t;
        let al = al.clone();
        async move {
            let mut out = Vec::new();
            for m in t
                .all_messages(
                    &al,
                    ListMessagesParams {
                        folder: Some("sent".into()),
                        ..Default::default()
                    },
                )
                .await
            {
                out.push(t.loft.get_message(&al, m.id.as_str()).await.unwrap());
            }
            out
        }
    };

    // Naming it sends a code there, from alice's own address, queued for SMTP; the setting is
    // unchanged until the code comes back.
    let set = t.loft.set_held_mail_notice(&al, Some(outside)).await.unwrap();
    assert_eq!(set.address, None);
    assert_eq!(set.pending.as_ref().map(|p| p.address.as_str()), Some(outside));
    let sent = sent_to_outside().await;
    assert_eq!(sent.len(), 1);
    let mail = &sent[0];
    assert_eq!(mail.from, alice.identity.address);
    assert_eq!(mail.to[0].as_str(), outside);
    assert_eq!(mail.delivery[0].status, DeliveryStatus::Queued);
    let code: String = mail
        .text
        .split("The code: ")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert_eq!(code.len(), 8, "{}", mail.text);
    let stored = store.notice_confirmation(&alice.identity.id).await.unwrap().unwrap();
    assert_ne!(stored.code_hash, code, "only a hash of the code is kept");
    assert!(!stored.code_hash.contains(&code));
    assert!(
        !t.audit_rows()
            .await
            .iter()
            .any(|r| r.entry.details.to_string().contains(&code)),
        "the code is in no audit row"
    );

    // Again within a minute: refused, nothing sent.
    assert_eq!(
        expect_err(t.loft.set_held_mail_notice(&al, Some(outside)).await).code(),
        "too_many_requests"
    );
    assert_eq!(sent_to_outside().await.len(), 1);

    // A wrong code is counted and audited; the right one makes the address the setting.
    let wrong = if code == "00000000" { "00000001" } else { "00000000" };
    assert_eq!(
        expect_err(t.loft.confirm_held_mail_notice(&al, wrong).await).code(),
        "wrong_code"
    );
    assert_eq!(
        expect_err(t.loft.confirm_held_mail_notice(&aa, &code).await).code(),
        "missing_scope"
    );
    let confirmed = t.loft.confirm_held_mail_notice(&al, &code).await.unwrap();
    assert_eq!(
        confirmed.address.as_ref().map(loft_core::address::EmailAddress::as_str),
        Some(outside)
    );
    assert_eq!(confirmed.pending, None);
    assert_eq!(
        expect_err(t.loft.confirm_held_mail_notice(&al, &code).await).code(),
        "no_pending_address"
    );
    let audit = t.audit_rows().await;
    assert!(
        audit.iter().any(
            |r| r.entry.action == "console.notices.confirm" && r.entry.outcome == loft_core::audit::Outcome::Denied
        )
    );

    // A held mail: its notice goes out the same way.
    t.loft
        .send(
            &aa,
            crate::mail(&[b.identity.address.as_str()], "Quarterly numbers", "SECRET BODY LINE"),
        )
        .await
        .unwrap();
    runner.run_due().await.unwrap();
    let sent = sent_to_outside().await;
    let notice = sent
        .iter()
        .find(|m| m.subject == "Held for review: Quarterly numbers")
        .expect("the notice, queued to the outside address");
    assert_eq!(notice.to[0].as_str(), outside);
    assert_eq!(notice.delivery[0].status, DeliveryStatus::Queued);
    assert!(!notice.text.contains("SECRET BODY LINE"));

    // A mail the exfiltration guard holds: its subject (where the value may be) stays in.
    let secret = "sk-live-notice-7c1d0e";
    t.loft
        .vault_store(
            &aa,
            loft_core::service::StoreCredentialRequest {
                label: Some("crm".into()),
                value: Some(secret.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    t.loft
        .send(
            &aa,
            crate::mail(&[b.identity.address.as_str()], &format!("key {secret}"), "x"),
        )
        .await
        .unwrap();
    runner.run_due().await.unwrap();
    let sent = sent_to_outside().await;
    let guarded = sent
        .iter()
        .find(|m| m.subject.contains("subject withheld"))
        .expect("the guarded mail's notice");
    assert!(!guarded.subject.contains(secret) && !guarded.text.contains(secret));
    assert!(guarded.text.contains("credential crm"), "{}", guarded.text);

    // Frozen: no notice leaves, and none is queued for later; setting a new address is refused.
    t.loft
        .send(&aa, crate::mail(&[b.identity.address.as_str()], "While frozen", "x"))
        .await
        .unwrap();
    t.loft.set_frozen(&op, true).await.unwrap();
    runner.run_due().await.unwrap();
    assert!(
        !sent_to_outside()
            .await
            .iter()
            .any(|m| m.subject.contains("While frozen"))
    );
    assert!(
        t.audit_rows()
            .await
            .iter()
            .any(|r| r.entry.action == "approval.notice" && r.entry.outcome == loft_core::audit::Outcome::Denied)
    );
    assert_eq!(
        expect_err(t.loft.set_held_mail_notice(&al, Some("other@corp.example")).await).code(),
        "outgoing_frozen"
    );
    t.loft.set_frozen(&op, false).await.unwrap();

    // A rule that blocks the domain for alice keeps a new outside address out.
    t.loft
        .add_rule(
            &op,
            loft_core::service::CreateRuleRequest {
                identity: Some(alice.identity.id.to_string()),
                direction: loft_core::rules::RuleDirection::Send,
                instance: None,
                pattern: "*@blocked.example".into(),
                action: loft_core::rules::RuleAction::Block,
                note: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        expect_err(t.loft.set_held_mail_notice(&al, Some("me@blocked.example")).await).code(),
        "notice_address_not_allowed"
    );
    // A code works for 30 minutes; five wrong ones end it.
    t.clock.advance_secs(loft_core::notices::CONFIRMATION_INTERVAL_SECS);
    t.loft
        .set_held_mail_notice(&al, Some("late@corp.example"))
        .await
        .unwrap();
    t.clock.advance_secs(loft_core::notices::CONFIRMATION_TTL_SECS);
    assert_eq!(
        expect_err(t.loft.confirm_held_mail_notice(&al, &code).await).code(),
        "code_expired"
    );
    t.loft
        .set_held_mail_notice(&al, Some("late@corp.example"))
        .await
        .unwrap();
    for _ in 1..loft_core::notices::CONFIRMATION_ATTEMPTS {
        assert_eq!(
            expect_err(t.loft.confirm_held_mail_notice(&al, "1").await).code(),
            "wrong_code"
        );
    }
    assert_eq!(
        expect_err(t.loft.confirm_held_mail_notice(&al, "1").await).code(),
        "code_attempts_exhausted"
    );
    assert_eq!(
        t.loft
            .held_mail_notice(&al)
            .await
            .unwrap()
            .address
            .map(|a| a.to_string()),
        Some(outside.to_owned()),
        "the confirmed address stays meanwhile"
    );
    // Turning notices off ends them, and the confirmed address with them.
    assert_eq!(
        t.loft.set_held_mail_notice(&al, None).await.unwrap(),
        NoticeSetting::default()
    );
}
