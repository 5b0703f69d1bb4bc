//! The credential vault: storing and listing, isolation between identities, reveal and its
//! scope, TOTP codes, atomic backup codes, tampering, key checks and master key rotation.

use std::collections::HashSet;
use std::sync::Arc;

use loft_core::Error;
use loft_core::audit::Outcome;
use loft_core::random::OsRandom;
use loft_core::service::{InjectInput, ListCredentialsParams, StoreCredentialRequest};
use loft_core::store::Store;
use loft_core::vault::{Injection, Keyring, MasterKey};

use crate::{TestLoft, expect_err, test_loft};

fn api_key(name: &str, value: &str) -> StoreCredentialRequest {
    StoreCredentialRequest {
        label: Some(name.into()),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn totp(name: &str, codes: usize) -> StoreCredentialRequest {
    StoreCredentialRequest {
        name: Some(name.into()),
        kind: Some("totp".into()),
        // RFC 6238's SHA-1 seed, "12345678901234567890".
        secret: Some("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ".into()),
        digits: Some(8),
        issuer: Some("ACME".into()),
        backup_codes: Some((0..codes).map(|i| format!("backup-{i:04}")).collect()),
        ..Default::default()
    }
}

async fn actions(t: &TestLoft) -> Vec<(String, Outcome)> {
    t.audit_rows()
        .await
        .into_iter()
        .filter(|r| r.entry.action.starts_with("vault."))
        .map(|r| (r.entry.action, r.entry.outcome))
        .collect()
}

/// Store, list (metadata only), get, update, delete; names are per identity.
pub async fn vault_store_list_get_update_delete(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = t.identity("alpha").await;
    let meta = t.loft.vault_store(&a, api_key("crm", "marker-value-1")).await.unwrap();
    assert_eq!(meta.name, "crm");
    assert_eq!(meta.kind.as_str(), "api_key");
    assert_eq!(meta.secret_fields, vec!["value".to_owned()]);
    let e = expect_err(t.loft.vault_store(&a, api_key("crm", "other-value")).await);
    assert_eq!(e.code(), "credential_exists");
    let mut replace = api_key("crm", "marker-value-2");
    replace.replace = Some(true);
    let replaced = t.loft.vault_store(&a, replace).await.unwrap();
    assert_eq!(replaced.version, 2);
    t.loft.vault_store(&a, totp("bank", 2)).await.unwrap();
    let page = t.loft.vault_list(&a, ListCredentialsParams::default()).await.unwrap();
    assert_eq!(
        page.items.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["bank", "crm"]
    );
    let json = serde_json::to_string(&page).unwrap();
    assert!(!json.contains("marker-value") && !json.contains("backup-0"), "{json}");
    let got = t.loft.vault_get(&a, "crm", false).await.unwrap();
    assert!(got.secrets.is_none());
    let updated = t
        .loft
        .vault_update(
            &a,
            "crm",
            StoreCredentialRequest {
                // A new value with the new hosts: the old secret is not re-pointed.
                value: Some("marker-value-3".into()),
                notes: Some("the CRM".into()),
                allowed_hosts: Some(vec!["api.crm.test".into()]),
                inject: Some(loft_core::service::InjectInput::Short("header:X-Api-Key".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.notes.as_deref(), Some("the CRM"));
    assert_eq!(updated.allowed_hosts, vec!["api.crm.test".to_owned()]);
    assert_eq!(updated.version, 3);
    let e = expect_err(
        t.loft
            .vault_store(
                &a,
                StoreCredentialRequest {
                    label: Some("bad".into()),
                    password: Some("x".into()),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "invalid_field");
    t.loft.vault_delete(&a, "crm").await.unwrap();
    assert!(matches!(
        expect_err(t.loft.vault_get(&a, "crm", false).await),
        Error::NotFound(_)
    ));
    let acts = actions(&t).await;
    for want in ["vault.store", "vault.list", "vault.get", "vault.update", "vault.delete"] {
        assert!(
            acts.iter().any(|(a, o)| a == want && *o == Outcome::Ok),
            "{want} in {acts:?}"
        );
    }
    let all = serde_json::to_string(&t.audit_rows().await).unwrap();
    assert!(!all.contains("marker-value"), "an audit row holds a secret");
}

/// B can never read, list, use, overwrite or delete A's credentials: 404, like a missing one.
pub async fn vault_isolation(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = t.identity("alpha").await;
    let (_, b) = t
        .identity_with_scopes("beta", &["vault:read", "vault:write", "vault:reveal"])
        .await;
    t.loft.vault_store(&a, api_key("crm", "marker-a")).await.unwrap();
    t.loft.vault_store(&a, totp("bank", 3)).await.unwrap();
    let nf = |e: Error| assert!(matches!(e, Error::NotFound(_)), "{e:?}");
    nf(expect_err(t.loft.vault_get(&b, "crm", false).await));
    nf(expect_err(t.loft.vault_get(&b, "crm", true).await));
    nf(expect_err(t.loft.vault_totp(&b, "bank").await));
    nf(expect_err(t.loft.vault_totp_backup(&b, "bank").await));
    nf(expect_err(t.loft.vault_delete(&b, "crm").await));
    nf(expect_err(
        t.loft
            .vault_update(
                &b,
                "crm",
                StoreCredentialRequest {
                    notes: Some("x".into()),
                    ..Default::default()
                },
            )
            .await,
    ));
    // The same name is B's own, separate credential.
    t.loft.vault_store(&b, api_key("crm", "marker-b")).await.unwrap();
    let revealed = t.loft.vault_get(&b, "crm", true).await.unwrap();
    assert_eq!(revealed.secrets.unwrap()["value"], "marker-b");
    assert_eq!(
        t.loft
            .vault_list(&b, ListCredentialsParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        t.loft
            .vault_list(&a, ListCredentialsParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    // A still has its own, unchanged.
    assert_eq!(t.loft.vault_totp_backup(&a, "bank").await.unwrap().remaining, 2);
    // Refusals were recorded.
    let acts = actions(&t).await;
    assert!(
        acts.iter().filter(|(_, o)| *o == Outcome::Denied).count() >= 6,
        "{acts:?}"
    );
}

/// Reveal needs `vault:reveal` (not in the defaults); the operator grants it per identity.
pub async fn vault_reveal_needs_scope(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (ca, a) = t.identity("alpha").await;
    t.loft.vault_store(&a, api_key("crm", "marker-r")).await.unwrap();
    let e = expect_err(t.loft.vault_get(&a, "crm", true).await);
    assert!(matches!(e, Error::MissingScope { .. }), "{e:?}");
    assert!(!e.to_string().contains("marker-r"));
    let op = t.operator().await;
    let mut scopes: Vec<String> = ca.identity.scopes.iter().map(|s| s.as_str().to_owned()).collect();
    scopes.push("vault:reveal".into());
    t.loft
        .update_identity(
            &op,
            ca.identity.id.as_str(),
            loft_core::service::UpdateIdentityRequest {
                scopes: Some(scopes),
                display_name: None,
                oversight_mode: None,
            },
        )
        .await
        .unwrap();
    let a = t.actor(&ca.api_key).await;
    let v = t.loft.vault_get(&a, "crm", true).await.unwrap();
    assert_eq!(v.secrets.unwrap()["value"], "marker-r");
    let acts = actions(&t).await;
    assert!(acts.contains(&("vault.reveal".into(), Outcome::Denied)), "{acts:?}");
    assert!(acts.contains(&("vault.reveal".into(), Outcome::Ok)), "{acts:?}");
    // A revoked identity's vault is unusable at once.
    t.loft.revoke_identity(&op, ca.identity.id.as_str()).await.unwrap();
    assert!(matches!(
        expect_err(t.authenticate(&ca.api_key).await),
        Error::Unauthenticated(_)
    ));
}

/// TOTP codes follow RFC 6238 at the server's clock; otpauth import works.
pub async fn vault_totp_codes(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = t.identity("alpha").await;
    t.loft.vault_store(&a, totp("bank", 0)).await.unwrap();
    t.clock
        .set(loft_core::time::Timestamp::from_micros(1_111_111_109_000_000));
    let c = t.loft.vault_totp(&a, "bank").await.unwrap();
    assert_eq!(c.code, "07081804");
    assert_eq!((c.digits, c.period, c.seconds_remaining), (8, 30, 1));
    t.loft
        .vault_store(
            &a,
            StoreCredentialRequest {
                name: Some("gh".into()),
                kind: Some("totp".into()),
                otpauth_uri: Some(
                    "otpauth://totp/GitHub:bot?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA&issuer=GitHub&algorithm=SHA256&digits=8"
                        .into(),
                ),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t.loft.vault_totp(&a, "gh").await.unwrap().code, "68084774");
    let meta = t.loft.vault_get(&a, "gh", false).await.unwrap().meta;
    assert_eq!(meta.issuer.as_deref(), Some("GitHub"));
    assert_eq!(meta.account.as_deref(), Some("bot"));
    t.loft.vault_store(&a, api_key("crm", "x-value-1")).await.unwrap();
    assert_eq!(expect_err(t.loft.vault_totp(&a, "crm").await).code(), "not_totp");
}

/// Concurrent pops never hand out the same backup code; the last pop empties the list.
pub async fn vault_backup_codes_are_popped_atomically(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = t.identity("alpha").await;
    t.loft.vault_store(&a, totp("bank", 12)).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (loft, a) = (t.loft.clone(), a.clone());
        tasks.push(tokio::spawn(async move { loft.vault_totp_backup(&a, "bank").await }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        let code = task.await.unwrap().unwrap();
        assert!(
            seen.insert(code.code.clone()),
            "the code {} was handed out twice",
            code.code
        );
    }
    assert_eq!(seen.len(), 12);
    assert_eq!(
        expect_err(t.loft.vault_totp_backup(&a, "bank").await).code(),
        "no_backup_codes"
    );
}

/// A changed byte in a stored row is an error, never a wrong secret; so is a row moved to
/// another identity.
pub async fn vault_tampered_rows_fail(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (ca, a) = t
        .identity_with_scopes("alpha", &["vault:read", "vault:write", "vault:reveal"])
        .await;
    let (cb, b) = t
        .identity_with_scopes("beta", &["vault:read", "vault:write", "vault:reveal"])
        .await;
    t.loft.vault_store(&a, api_key("crm", "marker-t")).await.unwrap();
    t.loft.vault_store(&b, api_key("crm", "other-b-value")).await.unwrap();
    let st = t.store();
    let mut row = st.vault_get(&ca.identity.id, "crm").await.unwrap().unwrap();
    let v = row.meta.version;
    row.sealed.ciphertext[3] ^= 1;
    row.meta.version = v + 1;
    st.vault_update(row.clone(), v, audit_entry()).await.unwrap();
    let e = expect_err(t.loft.vault_get(&a, "crm", true).await);
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    assert!(!e.to_string().contains("marker-t"));
    // A's sealed bytes put into B's row do not open either.
    let mut moved = st.vault_get(&cb.identity.id, "crm").await.unwrap().unwrap();
    row.sealed.ciphertext[3] ^= 1;
    let vb = moved.meta.version;
    moved.sealed = row.sealed.clone();
    moved.meta.version = vb + 1;
    st.vault_update(moved, vb, audit_entry()).await.unwrap();
    assert!(matches!(
        expect_err(t.loft.vault_get(&b, "crm", true).await),
        Error::Internal(_)
    ));
    // A stale version is a conflict, a missing name NotFound.
    let fresh = st.vault_get(&ca.identity.id, "crm").await.unwrap().unwrap();
    let e = expect_err(st.vault_update(fresh.clone(), 999, audit_entry()).await);
    assert_eq!(e.code(), "version_conflict");
    let mut gone = fresh;
    gone.meta.name = "nope".into();
    assert!(matches!(
        expect_err(st.vault_update(gone, 1, audit_entry()).await),
        Error::NotFound(_)
    ));
}

fn audit_entry() -> loft_core::audit::AuditEntry {
    loft_core::audit::AuditEntry {
        at: crate::TEST_START,
        actor_kind: loft_core::audit::ActorKind::System,
        actor_identity_id: None,
        key_id: None,
        action: "test.tamper".into(),
        target: None,
        outcome: Outcome::Ok,
        request_id: None,
        remote_addr: None,
        details: serde_json::json!({}),
        events: Vec::new(),
    }
}

/// Key checks at start-up, and rotation to a new key with the old one as previous.
pub async fn vault_key_check_and_rotation(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let old_id = t.keyring.current().id().to_owned();
    assert_eq!(t.loft.verify_vault_keys().await.unwrap(), vec![old_id.clone()]);
    let (ca, a) = t
        .identity_with_scopes("alpha", &["vault:read", "vault:write", "vault:reveal"])
        .await;
    for i in 0..5 {
        t.loft
            .vault_store(&a, api_key(&format!("k{i}"), &format!("marker-{i}")))
            .await
            .unwrap();
    }
    // A server with another key refuses to start, naming the key it lacks.
    let wrong = t.with_keyring(Keyring::new(MasterKey::generate(&OsRandom), vec![]));
    let e = expect_err(wrong.loft.verify_vault_keys().await);
    assert_eq!(e.code(), "wrong_master_key");
    assert!(e.to_string().contains(&old_id), "{e}");
    // Restarted with a new key and the old one as previous: everything opens, then rotates.
    let new_key = MasterKey::generate(&OsRandom);
    let rotated = t.with_keyring(Keyring::new(new_key.clone(), vec![t.keyring.current().clone()]));
    rotated.loft.verify_vault_keys().await.unwrap();
    let a2 = rotated.actor(&ca.api_key).await;
    assert_eq!(
        rotated.loft.vault_get(&a2, "k1", true).await.unwrap().secrets.unwrap()["value"],
        "marker-1"
    );
    let op = rotated.operator().await;
    let report = rotated.loft.vault_rotate_master_key(&op).await.unwrap();
    assert_eq!(report.rewrapped, 5);
    assert_eq!(report.current_key_id, new_key.id());
    assert!(report.still_in_use.is_empty());
    assert_eq!(
        t.store().vault_key_ids_in_use().await.unwrap(),
        vec![new_key.id().to_owned()]
    );
    // Now the new key alone suffices, and the old one alone is refused.
    let only_new = t.with_keyring(Keyring::new(new_key, vec![]));
    only_new.loft.verify_vault_keys().await.unwrap();
    let a3 = only_new.actor(&ca.api_key).await;
    assert_eq!(
        only_new.loft.vault_get(&a3, "k4", true).await.unwrap().secrets.unwrap()["value"],
        "marker-4"
    );
    assert_eq!(expect_err(t.loft.verify_vault_keys().await).code(), "wrong_master_key");
    // Only the operator rotates.
    assert_eq!(
        expect_err(only_new.loft.vault_rotate_master_key(&a3).await).code(),
        "operator_only"
    );
}

fn hosts(list: &[&str]) -> Vec<String> {
    list.iter().map(|h| (*h).to_owned()).collect()
}

fn inject(how: &str) -> InjectInput {
    InjectInput::Short(how.into())
}

/// A key with `vault:read` and `vault:write` (every new identity's) cannot re-point a stored
/// secret (a new host, a host on any port where one port was allowed, another header or way of
/// injecting it): that is as good as revealing it, so it is refused (403, audited) and nothing
/// changes. Narrowing is allowed, and so is re-pointing with a new value for every secret field
/// (no old secret left); with `vault:reveal` widening is allowed. Storing anew with `replace`
/// never keeps the old secret.
pub async fn vault_widening_needs_reveal(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (ca, a) = t.identity("alpha").await;
    let mut req = api_key("crm", "marker-widen-1");
    req.allowed_hosts = Some(hosts(&["api.crm.test", "backup.crm.test"]));
    t.loft.vault_store(&a, req).await.unwrap();
    let st = t.store().clone();
    let before = st.vault_get(&ca.identity.id, "crm").await.unwrap().unwrap();
    let widen = |allowed: Option<&[&str]>, how: Option<&str>| StoreCredentialRequest {
        allowed_hosts: allowed.map(hosts),
        inject: how.map(inject),
        notes: Some("changed".into()),
        ..Default::default()
    };
    let attempts: [(Option<&[&str]>, Option<&str>); 5] = [
        (Some(&["evil.test"]), None),
        (Some(&["api.crm.test", "evil.test"]), None),
        (None, Some("header:X-Leak")),
        (None, Some("basic")),
        (Some(&["api.crm.test"]), Some("header:X-Api-Key")),
    ];
    for (allowed, how) in attempts {
        let e = expect_err(t.loft.vault_update(&a, "crm", widen(allowed, how)).await);
        assert!(matches!(e, Error::Forbidden(_)), "{allowed:?} {how:?}: {e:?}");
        assert_eq!(e.code(), "reveal_required_to_widen");
        assert!(!e.to_string().contains("marker-widen"));
    }
    // Nothing changed: not the hosts, not the notes given alongside, not the sealed secret.
    let after = st.vault_get(&ca.identity.id, "crm").await.unwrap().unwrap();
    assert_eq!(after.meta, before.meta);
    assert_eq!(after.sealed, before.sealed);
    let denied: Vec<_> = t
        .audit_rows()
        .await
        .into_iter()
        .filter(|r| r.entry.action == "vault.update" && r.entry.outcome == Outcome::Denied)
        .collect();
    assert_eq!(denied.len(), 5);
    assert!(
        denied.iter().all(
            |r| r.entry.details["reason"] == "reveal_required_to_widen" && r.entry.target.as_deref() == Some("crm")
        ),
        "{denied:?}"
    );
    // Narrowing needs only vault:write: fewer hosts, a port pinned, the default injection named.
    let m = t
        .loft
        .vault_update(
            &a,
            "crm",
            StoreCredentialRequest {
                allowed_hosts: Some(hosts(&["api.crm.test:443"])),
                inject: Some(inject("bearer")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(m.allowed_hosts, ["api.crm.test:443"]);
    // Any port again is wider than one port.
    let e = expect_err(
        t.loft
            .vault_update(&a, "crm", widen(Some(&["api.crm.test"]), None))
            .await,
    );
    assert_eq!(e.code(), "reveal_required_to_widen");
    // New hosts with a new value for every secret field: no old secret is left to re-point.
    let m = t
        .loft
        .vault_update(
            &a,
            "crm",
            StoreCredentialRequest {
                value: Some("marker-widen-2".into()),
                allowed_hosts: Some(hosts(&["new.crm.test"])),
                inject: Some(inject("header:X-Api-Key")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(m.allowed_hosts, ["new.crm.test"]);
    // An oauth credential: a new access token alone leaves the old refresh token, so no.
    t.loft
        .vault_store(
            &a,
            StoreCredentialRequest {
                name: Some("oa".into()),
                kind: Some("oauth".into()),
                access_token: Some("marker-access-1".into()),
                refresh_token: Some("marker-refresh-1".into()),
                allowed_hosts: Some(hosts(&["api.oauth.test"])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut partial = StoreCredentialRequest {
        access_token: Some("marker-access-2".into()),
        allowed_hosts: Some(hosts(&["evil.test"])),
        ..Default::default()
    };
    let e = expect_err(t.loft.vault_update(&a, "oa", partial.clone()).await);
    assert_eq!(e.code(), "reveal_required_to_widen");
    partial.refresh_token = Some("marker-refresh-2".into());
    assert_eq!(
        t.loft.vault_update(&a, "oa", partial).await.unwrap().allowed_hosts,
        ["evil.test"]
    );
    // Storing anew over a name (`replace`) builds the credential from the request alone: without
    // a value it is refused, and the stored one stays as it was.
    let e = expect_err(
        t.loft
            .vault_store(
                &a,
                StoreCredentialRequest {
                    label: Some("crm".into()),
                    allowed_hosts: Some(hosts(&["evil.test"])),
                    replace: Some(true),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "missing_field");
    let kept = t.loft.vault_get(&a, "crm", false).await.unwrap().meta;
    assert_eq!(kept.allowed_hosts, ["new.crm.test"]);
    // With vault:reveal, widening is allowed.
    let op = t.operator().await;
    let mut scopes: Vec<String> = ca.identity.scopes.iter().map(|s| s.as_str().to_owned()).collect();
    scopes.push("vault:reveal".into());
    t.loft
        .update_identity(
            &op,
            ca.identity.id.as_str(),
            loft_core::service::UpdateIdentityRequest {
                scopes: Some(scopes),
                display_name: None,
                oversight_mode: None,
            },
        )
        .await
        .unwrap();
    let a = t.actor(&ca.api_key).await;
    let m = t
        .loft
        .vault_update(&a, "crm", widen(Some(&["new.crm.test", "evil.test"]), Some("basic")))
        .await
        .unwrap();
    assert_eq!(m.allowed_hosts, ["evil.test", "new.crm.test"]);
    assert_eq!(m.inject, Some(Injection::Basic));
    assert_eq!(m.notes.as_deref(), Some("changed"));
    let all = serde_json::to_string(&t.audit_rows().await).unwrap();
    assert!(!all.contains("marker-"), "an audit row holds a secret");
}

/// A secret that brokered HTTP injects must be at least 8 characters (a shorter one cannot be
/// redacted reliably): storing or updating one is refused with `secret_too_short` naming the
/// field, and nothing is stored. Secrets that are never injected may be shorter.
pub async fn vault_short_secrets_are_refused(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, a) = t.identity("alpha").await;
    let too_short = |e: Error, field: &str| {
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        assert_eq!(e.code(), "secret_too_short");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("`{field}`")) && msg.contains("at least 8"),
            "{msg}"
        );
    };
    too_short(
        expect_err(t.loft.vault_store(&a, api_key("k", "1234567")).await),
        "value",
    );
    // Characters, not bytes: 7 Cyrillic letters are 14 bytes and still too short.
    too_short(
        expect_err(t.loft.vault_store(&a, api_key("k", "ключклю")).await),
        "value",
    );
    t.loft.vault_store(&a, api_key("k", "ключключ")).await.unwrap();
    t.loft.vault_store(&a, api_key("k8", "12345678")).await.unwrap();
    too_short(
        expect_err(
            t.loft
                .vault_store(
                    &a,
                    StoreCredentialRequest {
                        name: Some("site".into()),
                        kind: Some("login".into()),
                        username: Some("bob".into()),
                        password: Some("pw-1234".into()),
                        ..Default::default()
                    },
                )
                .await,
        ),
        "password",
    );
    too_short(
        expect_err(
            t.loft
                .vault_store(
                    &a,
                    StoreCredentialRequest {
                        name: Some("oa".into()),
                        kind: Some("oauth".into()),
                        access_token: Some("tok".into()),
                        refresh_token: Some("a-long-refresh-token".into()),
                        ..Default::default()
                    },
                )
                .await,
        ),
        "access_token",
    );
    // A custom credential injects its first field (by name), when it has `inject`.
    let custom = |how: Option<&str>| StoreCredentialRequest {
        name: Some("c".into()),
        kind: Some("custom".into()),
        fields: Some(
            [
                ("a".to_owned(), "pin1".to_owned()),
                ("token".to_owned(), "long-enough-token".to_owned()),
            ]
            .into(),
        ),
        inject: how.map(inject),
        ..Default::default()
    };
    too_short(
        expect_err(t.loft.vault_store(&a, custom(Some("header:X-Key"))).await),
        "fields.a",
    );
    t.loft.vault_store(&a, custom(None)).await.unwrap();
    // Updates: a short new value, and `inject` on a credential whose first field is short.
    let v = t.loft.vault_get(&a, "k8", false).await.unwrap().meta.version;
    too_short(
        expect_err(
            t.loft
                .vault_update(
                    &a,
                    "k8",
                    StoreCredentialRequest {
                        value: Some("short".into()),
                        ..Default::default()
                    },
                )
                .await,
        ),
        "value",
    );
    assert_eq!(t.loft.vault_get(&a, "k8", false).await.unwrap().meta.version, v);
    too_short(
        expect_err(
            t.loft
                .vault_update(
                    &a,
                    "c",
                    StoreCredentialRequest {
                        inject: Some(inject("header:X-Key")),
                        ..Default::default()
                    },
                )
                .await,
        ),
        "fields.a",
    );
    let names: Vec<String> = t
        .loft
        .vault_list(&a, ListCredentialsParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["c", "k8", "k"]);
}
