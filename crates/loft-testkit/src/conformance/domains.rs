//! Hosted domains: adding one stores its DKIM keys sealed (never in clear), lists, shows the
//! DNS records, checks them against injected DNS answers, rewraps the keys with the vault
//! rotation, removes; inbound mail for a hosted domain is accepted; and the verdicts of mail
//! from outside from SPF / DKIM / DMARC (a mail signed by dkimpy passes, a tampered one
//! fails, a hosted From without authentication is spoofing).

use std::sync::Arc;

use loft_core::address::EmailAddress;
use loft_core::domains::{AddDomainRequest, CheckStatus, DkimAlgorithm, RecordPurpose};
use loft_core::inbound::Envelope;
use loft_core::mail::Verdict;
use loft_core::mailauth::{CheckResult, DmarcEnforcement, DmarcPolicy};
use loft_core::oversight::{HoldKind, OversightMode};
use loft_core::service::{CreateIdentityRequest, ListApprovalsParams};
use loft_core::store::Store;
use loft_core::vault::{Keyring, MasterKey};

use crate::conformance::mail::folder;
use crate::{StaticDns, TEST_DOMAIN, expect_err, test_loft, test_loft_with_dns};
use loft_core::service::ListAuditParams;

fn add(name: &str) -> AddDomainRequest {
    AddDomainRequest { name: name.into() }
}

pub async fn domains_add_list_show_check_remove(store: Arc<dyn Store>) {
    let t = test_loft(store.clone());
    let op = t.operator().await;
    let (_, agent) = t.identity("agent").await;

    // Only the operator manages domains; bad names are refused precisely.
    assert_eq!(
        expect_err(t.loft.add_domain(&agent, add("partner.test")).await).code(),
        "operator_only"
    );
    for bad in [
        "",
        "no_underscores.test",
        "localhost",
        "-x.test",
        &format!("{}.test", "a".repeat(64)),
    ] {
        assert_eq!(
            expect_err(t.loft.add_domain(&op, add(bad)).await).code(),
            "invalid_domain",
            "{bad:?}"
        );
    }

    // The default domain is listed before anything is added, without keys.
    let list = t.loft.list_domains(&op).await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].default && list[0].name == TEST_DOMAIN && list[0].dkim.is_empty());

    let view = t.loft.add_domain(&op, add("Mail.Example.TEST.")).await.unwrap();
    assert_eq!(view.domain.name, "mail.example.test");
    assert!(!view.domain.default);
    let algs: Vec<DkimAlgorithm> = view.domain.dkim.iter().map(|k| k.algorithm).collect();
    assert!(
        algs.contains(&DkimAlgorithm::Ed25519) && algs.contains(&DkimAlgorithm::Rsa),
        "{algs:?}"
    );
    let purposes: Vec<RecordPurpose> = view.records.iter().map(|r| r.purpose).collect();
    assert_eq!(
        purposes,
        [
            RecordPurpose::Mx,
            RecordPurpose::Spf,
            RecordPurpose::Dkim,
            RecordPurpose::Dkim,
            RecordPurpose::Dmarc
        ]
    );
    assert!(
        view.zone.contains("_dmarc.mail.example.test.\t3600\tIN\tTXT"),
        "{}",
        view.zone
    );
    assert!(
        view.zone
            .contains("._domainkey.mail.example.test.\t3600\tIN\tTXT\t\"v=DKIM1; k=rsa; p=")
    );
    assert_eq!(
        expect_err(t.loft.add_domain(&op, add("mail.example.test")).await).code(),
        "domain_exists"
    );
    assert!(t.loft.is_hosted("MAIL.example.test").await.unwrap());
    assert!(t.loft.is_hosted(TEST_DOMAIN).await.unwrap());
    assert!(!t.loft.is_hosted("elsewhere.test").await.unwrap());

    // The private keys are stored sealed, never in clear: the sealed bytes hold no PKCS#8.
    let keys = store.domain_keys("mail.example.test").await.unwrap();
    assert_eq!(keys.len(), 2);
    for k in &keys {
        assert_eq!(k.sealed.master_key_id, t.keyring.current().id());
        let plain = loft_core::vault::open_domain_key(&t.keyring, &k.domain, &k.selector.selector, &k.sealed).unwrap();
        assert_eq!(plain.first(), Some(&0x30), "a PKCS#8 document");
        assert!(!k.sealed.ciphertext.windows(plain.len()).any(|w| w == plain.as_slice()));
        // Sealed for this domain and selector only.
        assert!(loft_core::vault::open_domain_key(&t.keyring, "other.test", &k.selector.selector, &k.sealed).is_err());
    }

    let list = t.loft.list_domains(&op).await.unwrap();
    assert_eq!(
        list.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        [TEST_DOMAIN, "mail.example.test"]
    );
    let shown = t.loft.show_domain(&op, "mail.example.test").await.unwrap();
    assert_eq!(shown.records, view.records);
    assert_eq!(
        expect_err(t.loft.show_domain(&op, "nope.test").await).code(),
        "not_found"
    );

    // Check against DNS answers given by the test: published, missing, different, failing.
    let dkim = &view.records[2];
    let dns = StaticDns::default()
        .mx("mail.example.test", 10, TEST_DOMAIN)
        .txt("mail.example.test", "v=spf1 ip4:192.0.2.1 -all")
        .txt(&dkim.name, &dkim.value)
        .failing("_dmarc.mail.example.test");
    let report = t
        .with_dns(dns)
        .loft
        .check_domain(&op, "mail.example.test")
        .await
        .unwrap();
    let statuses: Vec<CheckStatus> = report.records.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            CheckStatus::Ok,
            CheckStatus::Different,
            CheckStatus::Ok,
            CheckStatus::Missing,
            CheckStatus::Temperror
        ]
    );
    assert!(!report.ok);
    assert_eq!(report.records[1].found, ["v=spf1 ip4:192.0.2.1 -all"]);

    // Signing: both selectors' signatures are put in front of the message.
    let msg =
        b"From: a@mail.example.test\r\nTo: b@outside.test\r\nSubject: hi\r\nX-Loft-Identity: idt_x\r\n\r\nHello.\r\n";
    let signed = t.loft.sign_outgoing("mail.example.test", msg).await.unwrap();
    let text = String::from_utf8_lossy(&signed);
    assert_eq!(text.matches("DKIM-Signature:").count(), 2, "{text}");
    assert!(text.contains("a=ed25519-sha256") && text.contains("a=rsa-sha256"));
    assert!(
        text.to_ascii_lowercase().contains("x-loft-identity"),
        "the identity header is signed: {text}"
    );
    assert!(signed.ends_with(msg));
    // A domain without keys gets the message back as it was.
    assert_eq!(t.loft.sign_outgoing("elsewhere.test", msg).await.unwrap(), msg);

    // The vault rotation rewraps the DKIM keys (a node restarted with a new current master
    // key and the old one as previous); signing then works with the new key alone.
    let newer = MasterKey::generate(&loft_core::random::OsRandom);
    let rotating = t.with_keyring(Keyring::new(newer.clone(), vec![t.keyring.current().clone()]));
    let report = rotating.loft.vault_rotate_master_key(&op).await.unwrap();
    assert_eq!(report.rewrapped, 2, "{report:?}");
    assert!(report.still_in_use.is_empty(), "{report:?}");
    assert!(store.domain_keys_stale(newer.id()).await.unwrap().is_empty());
    assert_eq!(store.vault_key_ids_in_use().await.unwrap(), [newer.id().to_owned()]);
    let t3 = t.with_keyring(Keyring::new(newer, vec![]));
    let again = t3.loft.sign_outgoing("mail.example.test", msg).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&again).matches("DKIM-Signature:").count(), 2);
    let actions: Vec<String> = t
        .loft
        .list_audit(&op, ListAuditParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.entry.action)
        .collect();
    assert!(actions.contains(&"domain.rewrap".to_owned()), "{actions:?}");

    // Removing: the default domain cannot go; the other goes with its keys.
    assert_eq!(
        expect_err(t.loft.remove_domain(&op, TEST_DOMAIN).await).code(),
        "default_domain"
    );
    let removed = t.loft.remove_domain(&op, "mail.example.test").await.unwrap();
    assert_eq!(removed.name, "mail.example.test");
    assert!(store.domain_keys("mail.example.test").await.unwrap().is_empty());
    assert!(!t.loft.is_hosted("mail.example.test").await.unwrap());
    assert_eq!(
        expect_err(t.loft.remove_domain(&op, "mail.example.test").await).code(),
        "not_found"
    );
    let actions: Vec<String> = t
        .loft
        .list_audit(&op, ListAuditParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.entry.action)
        .collect();
    assert!(actions.contains(&"domain.add".to_owned()) && actions.contains(&"domain.remove".to_owned()));
}

fn envelope(ip: &str, from: &str, to: &str) -> Envelope {
    Envelope {
        client_ip: Some(ip.into()),
        helo: "mx.partner.test".into(),
        mail_from: Some(EmailAddress::parse(from).unwrap()),
        recipients: vec![EmailAddress::parse(to).unwrap()],
    }
}

/// A mail signed by dkimpy (fixture made by `tests/python/make_dkim_fixture.py`) verified with
/// the DNS answers the test gives: DKIM passes and the verdict says authenticated; the same
/// mail tampered fails; SPF alone, aligned, authenticates; a hosted From without any of it is
/// spoofing; a DNS failure is `temperror`, never an error.
pub async fn inbound_dkim_verdicts(store: Arc<dyn Store>) {
    let signed: &[u8] = include_bytes!("fixtures/dkimpy_signed.eml");
    let keys: std::collections::HashMap<String, String> =
        serde_json::from_str(include_str!("fixtures/dkimpy_dns.json")).unwrap();
    let mut dns = StaticDns::default()
        .txt("partner.test", "v=spf1 ip4:192.0.2.10 -all")
        .txt("_dmarc.partner.test", "v=DMARC1; p=reject")
        .txt("other.test", "v=spf1 ip4:192.0.2.20 -all")
        .failing("flaky.test")
        .failing("_dmarc.flaky.test");
    for (name, value) in &keys {
        dns = dns.txt(name, value);
    }
    let t = test_loft_with_dns(store, dns.clone());
    let (w, wa) = t.identity("writer").await;
    let to = w.identity.address.as_str();
    // The To header (signed) names writer@agents.test; the envelope delivers it to the
    // identity, whatever its address.
    let signed = String::from_utf8_lossy(signed).into_owned();

    // From an address SPF does not authorise: DKIM (both dkimpy signatures) carries it.
    let env = envelope("198.51.100.7", "bounce@partner.test", to);
    t.loft.receive_inbound(&env, signed.as_bytes()).await.unwrap();
    // Tampered: one word of the body changed. partner.test publishes `p=reject`, so the
    // default (`--dmarc enforce`) refuses it; a server told only to mark (`--dmarc mark`)
    // stores it with its failing verdict.
    let tampered = signed.replace("Hello from outside", "Hello from inside");
    let mut env2 = env.clone();
    env2.recipients = vec![EmailAddress::parse(to).unwrap()];
    let tampered = tampered.replace("<dkimpy-fixture-1@partner.test>", "<dkimpy-fixture-2@partner.test>");
    assert_eq!(
        expect_err(t.loft.receive_inbound(&env2, tampered.as_bytes()).await).code(),
        "dmarc_rejected"
    );
    t.with_dmarc(dns.clone(), DmarcEnforcement::Mark)
        .loft
        .receive_inbound(&env2, tampered.as_bytes())
        .await
        .unwrap();
    // Unsigned, but from an address SPF authorises (aligned with From).
    let plain = format!(
        "From: <news@other.test>\r\nTo: {to}\r\nSubject: spf only\r\nMessage-ID: <spf-1@other.test>\r\n\r\nHi.\r\n"
    );
    t.loft
        .receive_inbound(&envelope("192.0.2.20", "news@other.test", to), plain.as_bytes())
        .await
        .unwrap();
    // Claims the hosted domain, from outside, nothing passes.
    let spoof = format!(
        "From: <ceo@{TEST_DOMAIN}>\r\nTo: {to}\r\nSubject: urgent\r\nMessage-ID: <spoof-1@x.test>\r\n\r\nWire money.\r\n"
    );
    t.loft
        .receive_inbound(&envelope("203.0.113.9", "ceo@outside.test", to), spoof.as_bytes())
        .await
        .unwrap();
    // DNS fails for the sender's domain: temperror, the mail is still stored.
    let flaky = format!(
        "From: <a@flaky.test>\r\nTo: {to}\r\nSubject: flaky\r\nMessage-ID: <flaky-1@flaky.test>\r\n\r\nHi.\r\n"
    );
    t.loft
        .receive_inbound(&envelope("192.0.2.30", "a@flaky.test", to), flaky.as_bytes())
        .await
        .unwrap();

    let inbox = t.all_messages(&wa, folder("inbox")).await;
    assert_eq!(inbox.len(), 5);
    let by_subject = |s: &str, n: usize| {
        let mut all: Vec<_> = inbox.iter().filter(|m| m.subject == s).collect();
        all.sort_by_key(|m| m.id.to_string());
        assert_eq!(all.len(), n, "{s}");
        all
    };
    let signed_msgs = by_subject("Signed by dkimpy", 2);
    let mut verdicts = Vec::new();
    for m in signed_msgs {
        let full = t.loft.get_message(&wa, m.id.as_str()).await.unwrap();
        verdicts.push(full.authentication);
    }
    let pass = verdicts
        .iter()
        .find(|a| a.verdict == Verdict::ExternalAuthenticated)
        .unwrap_or_else(|| panic!("the intact mail passes: {verdicts:#?}"));
    let checks = pass.checks.as_ref().unwrap();
    assert_eq!(checks.dkim.len(), 2);
    assert!(
        checks.dkim.iter().all(|d| d.result == CheckResult::Pass && d.aligned),
        "{checks:?}"
    );
    assert_eq!(checks.spf, CheckResult::Fail);
    assert_eq!(checks.dmarc, CheckResult::Pass);
    assert!(pass.summary.contains("dkim=pass"), "{}", pass.summary);
    let fail = verdicts
        .iter()
        .find(|a| a.verdict == Verdict::ExternalUnverified)
        .expect("the tampered mail fails");
    let checks = fail.checks.as_ref().unwrap();
    assert!(checks.dkim.iter().all(|d| d.result != CheckResult::Pass), "{checks:?}");
    assert_eq!(checks.dmarc, CheckResult::Fail);
    assert_eq!(checks.dmarc_policy, Some(DmarcPolicy::Reject));

    let spf = t
        .loft
        .get_message(&wa, by_subject("spf only", 1)[0].id.as_str())
        .await
        .unwrap();
    assert_eq!(spf.authentication.verdict, Verdict::ExternalAuthenticated);
    assert_eq!(spf.authentication.checks.as_ref().unwrap().spf, CheckResult::Pass);

    let spoof = t
        .loft
        .get_message(&wa, by_subject("urgent", 1)[0].id.as_str())
        .await
        .unwrap();
    assert_eq!(spoof.authentication.verdict, Verdict::SpoofedSuspect);

    let flaky = t
        .loft
        .get_message(&wa, by_subject("flaky", 1)[0].id.as_str())
        .await
        .unwrap();
    assert_eq!(flaky.authentication.verdict, Verdict::ExternalUnverified);
    let checks = flaky.authentication.checks.as_ref().unwrap();
    assert_eq!(checks.spf, CheckResult::Temperror);
    assert!(
        flaky.authentication.summary.contains("temperror"),
        "{}",
        flaky.authentication.summary
    );
}

/// Mail for a domain added to the table is accepted at RCPT (relaying to other domains is
/// still refused): the address decides (an unknown one is `unknown_recipient`).
pub async fn domains_are_hosted_for_inbound(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let env = Envelope {
        client_ip: Some("192.0.2.1".into()),
        helo: "mx.outside.test".into(),
        mail_from: None,
        recipients: vec![],
    };
    assert_eq!(
        expect_err(t.loft.check_inbound_recipient(&env, "bob@second.test").await).code(),
        "relay_denied"
    );
    t.loft.add_domain(&op, add("second.test")).await.unwrap();
    assert_eq!(
        expect_err(t.loft.check_inbound_recipient(&env, "bob@second.test").await).code(),
        "unknown_recipient"
    );
    assert_eq!(
        expect_err(t.loft.check_inbound_recipient(&env, "bob@third.test").await).code(),
        "relay_denied"
    );
}

/// DMARC enforced (the default, `--dmarc enforce`): mail that fails DMARC for a From domain
/// publishing `p=reject` is refused (`dmarc_rejected`, nothing stored), `p=quarantine` (or
/// `p=reject` in test mode, `t=y`) is accepted and held for a reviewer (alongside the
/// recipient's own gate), `p=none` is delivered; mail that passes, and mail whose DNS did not
/// answer (temperror), are delivered whatever the policy. `--dmarc mark` delivers everything.
pub async fn inbound_dmarc_policies(store: Arc<dyn Store>) {
    let dns = StaticDns::default()
        .txt("reject.test", "v=spf1 ip4:192.0.2.10 -all")
        .txt("_dmarc.reject.test", "v=DMARC1; p=reject")
        .txt("quarantine.test", "v=spf1 ip4:192.0.2.10 -all")
        .txt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine")
        .txt("trial.test", "v=spf1 ip4:192.0.2.10 -all")
        .txt("_dmarc.trial.test", "v=DMARC1; p=reject; t=y")
        .txt("lenient.test", "v=spf1 ip4:192.0.2.10 -all")
        .txt("_dmarc.lenient.test", "v=DMARC1; p=none")
        .failing("_dmarc.flaky.test")
        .failing("flaky.test");
    let t = test_loft_with_dns(store, dns.clone());
    let op = t.operator().await;
    let (r, ra) = t.identity("reader").await;
    let (gated, _) = t
        .identity_with(CreateIdentityRequest {
            name: "guarded".into(),
            oversight_mode: Some(OversightMode::GatedAll),
            ..Default::default()
        })
        .await;
    let to = r.identity.address.as_str();
    let mail = |from: &str, subject: &str| {
        format!("From: <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@x.test>\r\n\r\nHi.\r\n")
    };
    // 203.0.113.5 is not in any SPF record: unsigned mail from it fails DMARC.
    let from_outside = |from: &str| envelope("203.0.113.5", from, to);
    let incoming = ListApprovalsParams {
        direction: Some("receive".into()),
        status: Some("pending".into()),
        ..Default::default()
    };

    let e = expect_err(
        t.loft
            .receive_inbound(
                &from_outside("ceo@reject.test"),
                mail("ceo@reject.test", "rejected").as_bytes(),
            )
            .await,
    );
    assert_eq!(e.code(), "dmarc_rejected", "{e:?}");
    assert!(e.public_message().contains("reject.test"), "{e:?}");
    assert!(
        t.all_messages(&ra, folder("inbox")).await.is_empty(),
        "a refused mail leaves nothing"
    );
    assert!(
        t.loft
            .list_approvals(&op, incoming.clone())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Passing (SPF from the authorised address, aligned): delivered despite p=reject.
    t.loft
        .receive_inbound(
            &envelope("192.0.2.10", "ceo@reject.test", to),
            mail("ceo@reject.test", "passing").as_bytes(),
        )
        .await
        .unwrap();
    // p=none, and a DNS failure: delivered.
    for (from, subject) in [("news@lenient.test", "lenient"), ("a@flaky.test", "flaky")] {
        t.loft
            .receive_inbound(&from_outside(from), mail(from, subject).as_bytes())
            .await
            .unwrap();
    }
    let delivered = t.all_messages(&ra, folder("inbox")).await;
    let mut subjects: Vec<&str> = delivered.iter().map(|m| m.subject.as_str()).collect();
    subjects.sort_unstable();
    assert_eq!(subjects, ["flaky", "lenient", "passing"]);
    for m in &delivered {
        let full = t.loft.get_message(&ra, m.id.as_str()).await.unwrap();
        let checks = full.authentication.checks.unwrap();
        match m.subject.as_str() {
            "passing" => {
                assert_eq!(checks.dmarc, CheckResult::Pass);
                assert_eq!(checks.dmarc_policy, Some(DmarcPolicy::Reject));
            }
            "lenient" => {
                assert_eq!(checks.dmarc, CheckResult::Fail);
                assert_eq!(checks.dmarc_policy, Some(DmarcPolicy::None));
            }
            _ => assert_eq!(checks.dmarc, CheckResult::Temperror),
        }
    }

    // p=quarantine, and p=reject in test mode: accepted, held for a reviewer, for the
    // gated recipient with both reasons.
    for (from, subject) in [("ceo@quarantine.test", "quarantined"), ("ceo@trial.test", "trial")] {
        let mut env = from_outside(from);
        env.recipients.push(gated.identity.address.clone());
        let receipt = t
            .loft
            .receive_inbound(&env, mail(from, subject).as_bytes())
            .await
            .unwrap();
        assert_eq!(receipt.copies.len(), 2);
    }
    assert_eq!(
        t.all_messages(&ra, folder("inbox")).await.len(),
        3,
        "held mail is not in the inbox"
    );
    let held = t.loft.list_approvals(&op, incoming.clone()).await.unwrap().items;
    assert_eq!(held.len(), 4, "{held:#?}");
    for a in &held {
        let kinds: Vec<HoldKind> = a.reasons.iter().map(|r| r.kind).collect();
        if a.identity_id == gated.identity.id {
            assert_eq!(kinds, [HoldKind::Mode, HoldKind::Dmarc], "{a:#?}");
        } else {
            assert_eq!(kinds, [HoldKind::Dmarc], "{a:#?}");
            assert!(a.reasons[0].detail.contains("quarantine"), "{a:#?}");
        }
    }
    let mine = held
        .iter()
        .find(|a| a.identity_id == r.identity.id && a.subject == "quarantined")
        .unwrap();
    t.loft.approve(&op, mine.id.as_str()).await.unwrap();
    let released = t.loft.get_message(&ra, mine.message_id.as_str()).await.unwrap();
    let checks = released.authentication.checks.unwrap();
    assert_eq!(checks.dmarc, CheckResult::Fail);
    assert_eq!(checks.dmarc_policy, Some(DmarcPolicy::Quarantine));
    assert_eq!(released.authentication.verdict, Verdict::ExternalUnverified);

    // `--dmarc mark`: the same mails are delivered with their verdicts.
    let marking = t.with_dmarc(dns, DmarcEnforcement::Mark);
    for (from, subject) in [
        ("ceo@reject.test", "marked-reject"),
        ("ceo@quarantine.test", "marked-q"),
    ] {
        marking
            .loft
            .receive_inbound(&from_outside(from), mail(from, subject).as_bytes())
            .await
            .unwrap();
    }
    let now: Vec<String> = t
        .all_messages(&ra, folder("inbox"))
        .await
        .into_iter()
        .map(|m| m.subject)
        .collect();
    assert!(
        now.contains(&"marked-reject".to_owned()) && now.contains(&"marked-q".to_owned()),
        "{now:?}"
    );
    t.assert_chain_ok().await;
}
