//! Authentication, scopes, minting and rotating keys.

use std::sync::Arc;

use loft_core::Error;
use loft_core::audit::{ActorKind, AuditRecord, Outcome};
use loft_core::keys::{ApiKey, KeyKind, OperatorKey, Scope};
use loft_core::mail::{MessagePatch, ReplyMail};
use loft_core::random::{self, OsRandom};
use loft_core::service::{CreateKeyRequest, ListMessagesParams};
use loft_core::store::Store;

use super::identities::scopes;
use crate::{TestLoft, expect_err, mail, test_loft};

/// Writes the pending refused-key counts to the log and checks that the last row is the
/// aggregated `auth.refused` row of this (address-less) client, counting `reason`, naming no
/// key id (a key id taken from a token that did not verify could name any real key), and
/// holding no part of the presented token.
async fn assert_refusal_recorded(t: &TestLoft, reason: &str, token: &str) -> AuditRecord {
    assert_eq!(t.loft.flush_auth_refusals(true).await.unwrap(), 1);
    let rows = t.audit_rows().await;
    let row = rows
        .last()
        .expect("a refused authentication must leave an audit row")
        .clone();
    assert_eq!(row.entry.action, "auth.refused", "{row:?}");
    assert_eq!(row.entry.outcome, Outcome::Denied);
    assert_eq!(row.entry.actor_kind, ActorKind::Anonymous);
    assert_eq!(row.entry.actor_identity_id, None);
    assert_eq!(row.entry.key_id, None);
    assert_eq!(row.entry.remote_addr.as_deref(), Some("unknown"));
    assert_eq!(row.entry.details["count"], 1, "{row:?}");
    assert_eq!(row.entry.details["reasons"][reason], 1, "{row:?}");
    if token.len() > 12 {
        let json = serde_json::to_string(&row).unwrap();
        assert!(
            !json.contains(&token[12..]),
            "the audit row must not hold the presented token: {json}"
        );
    }
    row
}

/// A valid identity key and the operator key authenticate, without writing to the log.
pub async fn auth_valid_key(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, _) = t.identity("alpha").await;
    let before = t.audit_len().await;
    let actor = t.authenticate(&a.api_key).await.unwrap();
    assert_eq!(actor.identity().map(|i| &i.id), Some(&a.identity.id));
    assert_eq!(actor.key_id(), a.key_id.to_string());
    assert_eq!(actor.scopes(), a.identity.scopes);
    assert!(!actor.is_operator());
    // Surrounding white space (a copied header) is tolerated.
    t.authenticate(&format!(" {} ", a.api_key)).await.unwrap();
    let op = t.authenticate(&t.operator_key.clone()).await.unwrap();
    assert!(op.is_operator());
    assert_eq!(
        t.audit_len().await,
        before,
        "successful authentication is not an audited action"
    );
}

/// Unknown keys (well-formed but never issued, or a known key id with the wrong secret, or a
/// wrong operator key, or none) are refused, each with an `auth.refused` row.
pub async fn auth_unknown_key(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, _) = t.identity("alpha").await;

    let never = ApiKey::generate(&OsRandom);
    let token = never.reveal();
    let e = expect_err(t.authenticate(&token).await);
    assert!(matches!(e, Error::Unauthenticated(_)), "{e:?}");
    assert_refusal_recorded(&t, "unknown_key", &token).await;

    // The real key id with another secret.
    let (prefix, _) = a.api_key.rsplit_once('_').unwrap();
    let forged = format!("{prefix}_{}", random::base32_string(&OsRandom, 52));
    let e = expect_err(t.authenticate(&forged).await);
    assert!(matches!(e, Error::Unauthenticated(_)), "{e:?}");
    assert_refusal_recorded(&t, "unknown_key", &forged).await;

    let wrong_op = OperatorKey::generate(&OsRandom);
    let e = expect_err(t.authenticate(&wrong_op).await);
    assert!(matches!(e, Error::Unauthenticated(_)), "{e:?}");
    assert_refusal_recorded(&t, "unknown_key", &wrong_op).await;

    let e = expect_err(
        t.loft
            .authenticate(None, loft_core::service::RequestContext::default())
            .await,
    );
    assert!(matches!(e, Error::Unauthenticated(_)), "{e:?}");
    assert_refusal_recorded(&t, "missing_key", "").await;

    assert_eq!(t.audit_count("auth.refused").await, 4);
    // The real key still works.
    t.actor(&a.api_key).await;
    t.assert_chain_ok().await;
}

/// Malformed keys are refused without echoing them, each with an `auth.refused` row.
pub async fn auth_malformed_key(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, _) = t.identity("alpha").await;
    let good = a.api_key.clone();
    let malformed = [
        "loft_sk_".to_owned(),
        "loft_sk_abc".to_owned(),
        good[..good.len() - 1].to_owned(),
        format!("{good}x"),
        good.to_uppercase().replace("LOFT_SK_", "loft_sk_"),
        good.replacen('_', "-", 3).replacen("loft-sk-", "loft_sk_", 1),
    ];
    for (n, token) in malformed.iter().enumerate() {
        let e = expect_err(t.authenticate(token).await);
        assert!(matches!(e, Error::Unauthenticated(_)), "{token}: {e:?}");
        if token.len() > 12 {
            assert!(
                !e.to_string().contains(&token[12..]),
                "the error must not echo the key: {e}"
            );
        }
        assert_refusal_recorded(&t, "malformed_key", token).await;
        assert_eq!(t.audit_count("auth.refused").await, n + 1);
    }
    t.actor(&a.api_key).await;
}

/// A revoked key is refused at once by the node that revoked it, although its key cache
/// holds the key (it was just used); the identity's other keys keep working.
pub async fn auth_revoked_key(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let (a, aa) = t.identity("alpha").await;
    let extra = t.loft.create_key(&aa, None, CreateKeyRequest::default()).await.unwrap();
    assert_eq!(extra.key.kind, KeyKind::Extra);
    t.actor(&extra.api_key).await;
    let epoch = t.store().key_epoch();

    let revoked = t.loft.revoke_key(&op, extra.key.id.as_str()).await.unwrap();
    assert!(
        t.store().key_epoch() > epoch,
        "a key revocation must move the store's key epoch"
    );
    assert_eq!(revoked.id, extra.key.id);
    assert!(revoked.revoked_at.is_some());
    let e = expect_err(t.authenticate(&extra.api_key).await);
    assert!(matches!(e, Error::Unauthenticated(_)), "{e:?}");
    assert!(e.to_string().contains("revoked"), "{e}");
    assert_refusal_recorded(&t, "revoked_key", &extra.api_key).await;

    let keys = t.loft.list_keys(&op, Some(a.identity.id.as_str())).await.unwrap();
    assert_eq!(keys.len(), 2);
    let k = keys.iter().find(|k| k.id == extra.key.id).unwrap();
    assert_eq!(k.revoked_at, revoked.revoked_at);
    t.actor(&a.api_key).await;

    // An identity may revoke its own extra key too.
    let extra2 = t.loft.create_key(&aa, None, CreateKeyRequest::default()).await.unwrap();
    t.loft.revoke_key(&aa, extra2.key.id.as_str()).await.unwrap();
    expect_err(t.authenticate(&extra2.api_key).await);
    t.loft.flush_auth_refusals(true).await.unwrap();
    assert_eq!(t.audit_count("key.revoke").await, 2);
    assert_eq!(t.audit_count("auth.refused").await, 2);
}

/// A key with an expiry works until then and is refused from then on.
pub async fn auth_expired_key(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alpha").await;
    let k = t
        .loft
        .create_key(
            &aa,
            None,
            CreateKeyRequest {
                expires_in_seconds: Some(60),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // 60 s from the request (the manual clock ticks a microsecond per read).
    let expires = k.key.expires_at.unwrap();
    let lifetime = expires.as_micros() - k.key.created_at.as_micros();
    assert!((59_999_990..=60_000_000).contains(&lifetime), "{lifetime} µs");
    let stored = t.loft.list_keys(&aa, None).await.unwrap();
    assert_eq!(
        stored.iter().find(|s| s.id == k.key.id).unwrap().expires_at,
        k.key.expires_at
    );

    t.actor(&k.api_key).await;
    t.clock.advance_secs(30);
    t.actor(&k.api_key).await;
    t.clock.advance_secs(31);
    let e = expect_err(t.authenticate(&k.api_key).await);
    assert!(matches!(e, Error::Unauthenticated(_)), "{e:?}");
    assert!(e.to_string().contains("expired"), "{e}");
    assert_refusal_recorded(&t, "expired_key", &k.api_key).await;
    // The primary key has no expiry.
    t.actor(&a.api_key).await;
}

/// A key without `mail:send` cannot send or reply; the operator is not an identity.
pub async fn scope_missing_mail_send(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let (b, ba) = t.identity("beta").await;
    let to = [b.identity.address.as_str()];

    let (_, ra) = t.identity_with_scopes("reader", &["mail:read"]).await;
    let e = expect_err(t.loft.send(&ra, mail(&to, "s", "t")).await);
    assert!(matches!(e, Error::MissingScope { scope: Scope::MailSend }), "{e:?}");
    assert_eq!(e.code(), "missing_scope");

    // A full identity's narrower key.
    let (a, aa) = t.identity("alpha").await;
    let narrow = t
        .loft
        .create_key(
            &aa,
            None,
            CreateKeyRequest {
                scopes: Some(vec!["mail:read".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let na = t.actor(&narrow.api_key).await;
    assert_eq!(na.scopes(), scopes(&["mail:read"]));
    let e = expect_err(t.loft.send(&na, mail(&to, "s", "t")).await);
    assert!(matches!(e, Error::MissingScope { scope: Scope::MailSend }), "{e:?}");
    // It can still read.
    t.loft.list_messages(&na, ListMessagesParams::default()).await.unwrap();

    // Reply and label changes need their scopes too.
    let m = t.send(&ba, &[a.identity.address.as_str()], "hi", "hello").await;
    let inbox = t.all_messages(&na, ListMessagesParams::default()).await;
    assert_eq!(inbox.len(), 1);
    let e = expect_err(
        t.loft
            .reply(
                &na,
                inbox[0].id.as_str(),
                ReplyMail {
                    idempotency_key: None,
                    send_at: None,
                    text: "x".into(),
                    html: None,
                    reply_all: false,
                    attachments: vec![],
                },
            )
            .await,
    );
    assert!(matches!(e, Error::MissingScope { scope: Scope::MailSend }), "{e:?}");
    let e = expect_err(
        t.loft
            .update_message(
                &na,
                inbox[0].id.as_str(),
                MessagePatch {
                    unread: Some(false),
                    ..Default::default()
                },
            )
            .await,
    );
    assert!(
        matches!(
            e,
            Error::MissingScope {
                scope: Scope::MailManage
            }
        ),
        "{e:?}"
    );

    let e = expect_err(t.loft.send(&op, mail(&to, "s", "t")).await);
    assert_eq!(e.code(), "identity_key_required", "{e:?}");

    assert_eq!(t.audit_count("mail.send").await, 1, "only the one allowed send");
    assert_eq!(t.audit_count("mail.reply").await, 0);
    assert_eq!(t.all_messages(&ba, ListMessagesParams::default()).await.len(), 0);
    let sent = t
        .all_messages(
            &ba,
            ListMessagesParams {
                folder: Some("sent".into()),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(sent.iter().map(|s| &s.id).collect::<Vec<_>>(), vec![&m.id]);
}

/// A key cannot mint a key, nor an identity create a sub-identity, with scopes it lacks.
pub async fn key_minting_cannot_escalate_scopes(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let (a, aa) = t.identity("alpha").await;
    let (b, _) = t.identity("beta").await;
    let with_scopes = |s: &[&str]| CreateKeyRequest {
        scopes: Some(s.iter().map(|s| (*s).to_owned()).collect()),
        ..Default::default()
    };

    for s in [
        &["identity:create"][..],
        &["vault:reveal"],
        &["mail:read", "identity:create"],
    ] {
        let e = expect_err(t.loft.create_key(&aa, None, with_scopes(s)).await);
        assert_eq!(e.code(), "scope_escalation", "{s:?}: {e:?}");
        assert!(matches!(e, Error::Forbidden(_)));
    }
    let narrow = t
        .loft
        .create_key(&aa, None, with_scopes(&["mail:read", "keys:manage"]))
        .await
        .unwrap();
    assert_eq!(narrow.key.scopes, scopes(&["mail:read", "keys:manage"]));
    let na = t.actor(&narrow.api_key).await;
    let e = expect_err(
        t.loft
            .create_key(&na, None, with_scopes(&["mail:read", "mail:send"]))
            .await,
    );
    assert_eq!(e.code(), "scope_escalation", "{e:?}");
    // By default a minted key carries the minting key's scopes, except key management.
    let inherited = t.loft.create_key(&na, None, CreateKeyRequest::default()).await.unwrap();
    assert_eq!(inherited.key.scopes, scopes(&["mail:read"]));
    assert_eq!(inherited.key.created_by_key.as_deref(), Some(narrow.key.id.as_str()));

    // Not even the operator can give a key more than its identity has.
    let e = expect_err(
        t.loft
            .create_key(&op, Some(a.identity.id.as_str()), with_scopes(&["identity:create"]))
            .await,
    );
    assert_eq!(e.code(), "scope_escalation", "{e:?}");

    // Another identity's keys are out of reach.
    let e = expect_err(
        t.loft
            .create_key(&aa, Some(b.identity.id.as_str()), CreateKeyRequest::default())
            .await,
    );
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");

    // Sub-identities: no scope the creator lacks; by default the defaults within the creator's.
    let (_, pa) = t
        .identity_with_scopes("parent", &["mail:read", "identity:create"])
        .await;
    let e = expect_err(
        t.loft
            .create_identity(
                &pa,
                loft_core::service::CreateIdentityRequest {
                    name: "c".into(),
                    scopes: Some(vec!["mail:send".into()]),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "scope_escalation", "{e:?}");
    let (c, _) = t.child(&pa, "c", None).await;
    assert_eq!(c.identity.scopes, scopes(&["mail:read"]));

    assert_eq!(t.audit_count("key.create").await, 2, "refused mints leave no rows");
    assert_eq!(t.store().list_keys(&a.identity.id).await.unwrap().len(), 3);
}

/// A key cannot mint a key that outlives it; without an expiry the new key inherits it.
pub async fn key_minting_cannot_escalate_expiry(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, aa) = t.identity("alpha").await;
    let expiring = |secs: Option<i64>| CreateKeyRequest {
        expires_in_seconds: secs,
        scopes: Some(vec!["mail:read".into(), "keys:manage".into()]),
        ..Default::default()
    };
    let k = t.loft.create_key(&aa, None, expiring(Some(100))).await.unwrap();
    let max = k.key.expires_at.unwrap();
    let ka = t.actor(&k.api_key).await;

    let e = expect_err(t.loft.create_key(&ka, None, expiring(Some(1000))).await);
    assert_eq!(e.code(), "expiry_escalation", "{e:?}");
    let inherited = t.loft.create_key(&ka, None, expiring(None)).await.unwrap();
    assert_eq!(
        inherited.key.expires_at,
        Some(max),
        "no expiry asked: the minting key's"
    );
    let shorter = t.loft.create_key(&ka, None, expiring(Some(50))).await.unwrap();
    assert!(shorter.key.expires_at.unwrap() <= max);

    for bad in [0, -5, 10 * 366 * 24 * 3600 + 1, i64::MAX] {
        let e = expect_err(t.loft.create_key(&aa, None, expiring(Some(bad))).await);
        assert_eq!(e.code(), "invalid_expiry", "{e:?}");
    }
    // The inherited expiry is enforced.
    t.clock.advance_secs(101);
    expect_err(t.authenticate(&inherited.api_key).await);
    expect_err(t.authenticate(&shorter.api_key).await);
}

/// Rotation: the new key works at once and the old one is refused at once.
pub async fn key_rotation(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let (a, aa) = t.identity("alpha").await;

    let r1 = t.loft.rotate_key(&aa, None).await.unwrap();
    assert_eq!(r1.key.kind, KeyKind::Primary);
    assert_eq!(r1.key.scopes, a.identity.scopes);
    assert_ne!(r1.api_key, a.api_key);
    let e = expect_err(t.authenticate(&a.api_key).await);
    assert!(
        matches!(e, Error::Unauthenticated(_)),
        "the old key is refused at once: {e:?}"
    );
    assert_refusal_recorded(&t, "revoked_key", &a.api_key).await;
    let r1a = t.actor(&r1.api_key).await;
    assert_eq!(r1a.key_id(), r1.key.id.to_string());

    let keys = t.store().list_keys(&a.identity.id).await.unwrap();
    let old = keys.iter().find(|k| k.id == a.key_id).unwrap();
    assert_eq!(
        old.revoked_at,
        Some(r1.key.created_at),
        "revoked at the new key's creation"
    );
    assert!(keys.iter().find(|k| k.id == r1.key.id).unwrap().revoked_at.is_none());

    let row = t
        .audit_rows()
        .await
        .into_iter()
        .find(|r| r.entry.action == "key.rotate")
        .unwrap();
    assert_eq!(row.entry.target.as_deref(), Some(r1.key.id.as_str()));
    assert_eq!(row.entry.details["replaces"], a.key_id.as_str());

    // The operator rotates the identity's primary key.
    let r2 = t.loft.rotate_key(&op, Some(a.identity.id.as_str())).await.unwrap();
    expect_err(t.authenticate(&r1.api_key).await);
    t.actor(&r2.api_key).await;

    // An extra key rotates into an extra key with the same scopes, expiry and label.
    let r2a = t.actor(&r2.api_key).await;
    let extra = t
        .loft
        .create_key(
            &r2a,
            None,
            CreateKeyRequest {
                scopes: Some(vec!["mail:read".into()]),
                expires_in_seconds: Some(3600),
                label: Some("ci".into()),
            },
        )
        .await
        .unwrap();
    let ea = t.actor(&extra.api_key).await;
    let r3 = t.loft.rotate_key(&ea, None).await.unwrap();
    assert_eq!(r3.key.kind, KeyKind::Extra);
    assert_eq!(r3.key.scopes, extra.key.scopes);
    assert_eq!(r3.key.expires_at, extra.key.expires_at);
    assert_eq!(r3.key.label.as_deref(), Some("ci"));
    expect_err(t.authenticate(&extra.api_key).await);
    t.actor(&r3.api_key).await;
    // The primary key is untouched by rotating an extra one.
    t.actor(&r2.api_key).await;

    assert_eq!(t.audit_count("key.rotate").await, 3);
    let active: Vec<_> = t
        .store()
        .list_keys(&a.identity.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.revoked_at.is_none())
        .map(|k| k.id)
        .collect();
    assert_eq!(active.len(), 2, "{active:?}");
    t.assert_chain_ok().await;
}

/// The store's side of keys: `list_keys` in creation order; `create_key` replacing a key
/// revokes it at the new key's creation time, and replacing a key that is already revoked or
/// another identity's is `NotFound("key")` and writes nothing; `revoke_key` returns the key
/// with its revocation time, and revoking it again returns it unchanged and is still recorded.
pub async fn key_store_rotate_and_revoke(store: Arc<dyn Store>) {
    use super::store::{assert_not_found, new_stored_key, op_entry};
    let t = test_loft(store);
    let (a, _) = t.identity("alpha").await;
    let (b, _) = t.identity("beta").await;
    let (s, alpha) = (t.store().clone(), &a.identity.id);

    let at = t.loft.now();
    let (second, k2) = new_stored_key(alpha, KeyKind::Primary, at);
    let rotate = s.create_key(k2, Some(a.key_id.clone()), op_entry(&t, "key.rotate"));
    rotate.await.unwrap();
    let keys = s.list_keys(alpha).await.unwrap();
    let ids: Vec<_> = keys.iter().map(|k| &k.id).collect();
    assert_eq!(ids, vec![&a.key_id, second.id()], "oldest first");
    assert_eq!((keys[0].revoked_at, keys[1].revoked_at), (Some(at), None));

    let before = t.audit_len().await;
    let (third, k3) = new_stored_key(alpha, KeyKind::Extra, t.loft.now());
    for (replaces, what) in [
        (&a.key_id, "an already revoked key"),
        (&b.key_id, "another identity's key"),
    ] {
        let e = expect_err(
            s.create_key(k3.clone(), Some(replaces.clone()), op_entry(&t, "key.rotate"))
                .await,
        );
        assert_not_found(&e, "key", &format!("create_key replacing {what}"));
    }
    assert!(s.find_key(third.id()).await.unwrap().is_none());
    assert_eq!(t.audit_len().await, before, "refused calls write nothing");
    assert_eq!(s.list_keys(alpha).await.unwrap().len(), 2);
    assert_eq!(s.list_keys(&b.identity.id).await.unwrap()[0].revoked_at, None);
    s.create_key(k3, None, op_entry(&t, "key.create")).await.unwrap();

    let e = expect_err(
        s.revoke_key(&b.identity.id, third.id(), t.loft.now(), op_entry(&t, "key.revoke"))
            .await,
    );
    assert_not_found(&e, "key", "revoke_key(another identity's key)");
    let at = t.loft.now();
    let revoked = s
        .revoke_key(alpha, third.id(), at, op_entry(&t, "key.revoke"))
        .await
        .unwrap();
    assert_eq!((&revoked.id, revoked.revoked_at), (third.id(), Some(at)));
    let before = t.audit_len().await;
    let again = s
        .revoke_key(alpha, third.id(), t.loft.now(), op_entry(&t, "key.revoke"))
        .await
        .unwrap();
    assert_eq!(again, revoked, "revoking again changes nothing");
    assert_eq!(t.audit_len().await, before + 1, "and is still recorded");
    let (found, _) = s.find_key(third.id()).await.unwrap().unwrap();
    assert_eq!(found.meta.revoked_at, Some(at));
    t.assert_chain_ok().await;
}
