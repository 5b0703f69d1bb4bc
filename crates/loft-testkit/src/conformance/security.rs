//! The key model as an attacker holding a narrow key would probe it: no key mints or turns
//! into more than itself (scopes, expiry), key management needs `keys:manage`, and a flood of
//! bad keys is limited and leaves a bounded trace. Each case reproduces a finding of the
//! outside probe of the first release.

use std::sync::Arc;

use loft_core::Error;
use loft_core::keys::{KeyKind, Scope, ScopeSet};
use loft_core::limits::LimitsConfig;
use loft_core::mail::MessagePatch;
use loft_core::service::{Actor, CreateIdentityRequest, CreateKeyRequest, UpdateIdentityRequest};
use loft_core::store::Store;
use loft_core::time::Timestamp;

use crate::{expect_err, test_loft, test_loft_with_limits};

fn key_req(scopes: &[&str], expires_in: Option<i64>) -> CreateKeyRequest {
    CreateKeyRequest {
        scopes: Some(scopes.iter().map(|s| (*s).to_owned()).collect()),
        expires_in_seconds: expires_in,
        label: None,
    }
}

/// Finding 1: an extra key with no scopes and a short expiry rotating its identity's primary
/// key got a full, never-expiring primary key; a parent's narrow key could do the same to a
/// sub-identity. Now only the operator or the primary key itself rotates a primary key.
pub async fn security_narrow_key_cannot_rotate_the_primary_key(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alpha").await;
    let narrow = t.loft.create_key(&aa, None, key_req(&[], Some(60))).await.unwrap();
    let na = t.actor(&narrow.api_key).await;
    let e = expect_err(t.loft.rotate_key(&na, Some(a.identity.id.as_str())).await);
    assert_eq!(e.code(), "primary_rotation_forbidden", "{e:?}");
    // The real primary key still works, and no key was minted.
    t.actor(&a.api_key).await;
    assert_eq!(t.audit_count("key.rotate").await, 0);

    // A narrow key rotating itself gets exactly itself again.
    let again = t.loft.rotate_key(&na, None).await.unwrap();
    assert_eq!(again.key.kind, KeyKind::Extra);
    assert!(again.key.scopes.is_empty());
    assert_eq!(again.key.expires_at, narrow.key.expires_at);

    // A parent, even with its primary key, cannot rotate a sub-identity's primary key.
    let (_, pa) = t
        .identity_with_scopes("parent", &["mail:read", "identity:create", "keys:manage"])
        .await;
    let (c, _) = t.child(&pa, "child", None).await;
    let e = expect_err(t.loft.rotate_key(&pa, Some(c.identity.id.as_str())).await);
    assert_eq!(e.code(), "primary_rotation_forbidden", "{e:?}");
    t.actor(&c.api_key).await;

    // The primary key itself and the operator still can.
    let r = t.loft.rotate_key(&aa, Some(a.identity.id.as_str())).await.unwrap();
    assert_eq!(r.key.kind, KeyKind::Primary);
    let op = t.operator().await;
    t.loft.rotate_key(&op, Some(c.identity.id.as_str())).await.unwrap();
    expect_err(t.authenticate(&c.api_key).await);
}

/// Finding 4: a key about to expire created a sub-identity (or a key) that outlived it. Now
/// every minted key expires no later than the key that minted it.
pub async fn security_minted_keys_never_outlive_their_minter(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, pa) = t
        .identity_with_scopes("parent", &["mail:read", "mail:send", "identity:create", "keys:manage"])
        .await;
    let short = t
        .loft
        .create_key(
            &pa,
            None,
            key_req(&["mail:read", "identity:create", "keys:manage"], Some(2)),
        )
        .await
        .unwrap();
    let sa = t.actor(&short.api_key).await;
    let (child, ca) = t.child(&sa, "child", Some(&["mail:read"])).await;
    let child_key = t
        .store()
        .list_keys(&child.identity.id)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.kind == KeyKind::Primary)
        .unwrap();
    assert_eq!(child_key.expires_at, short.key.expires_at);
    // A key minted for the child by the short key cannot outlive it either.
    let e = expect_err(
        t.loft
            .create_key(
                &sa,
                Some(child.identity.id.as_str()),
                key_req(&["mail:read"], Some(3600)),
            )
            .await,
    );
    assert_eq!(e.code(), "expiry_escalation", "{e:?}");
    // Nor can the expiring key grant the child lasting new scopes.
    let e = expect_err(
        t.loft
            .update_identity(
                &sa,
                child.identity.id.as_str(),
                UpdateIdentityRequest {
                    scopes: Some(vec!["mail:read".into(), "identity:create".into()]),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(e.code(), "expiry_escalation", "{e:?}");
    drop(ca);
    t.clock.advance_secs(3);
    expect_err(t.authenticate(&short.api_key).await);
    let e = expect_err(t.authenticate(&child.api_key).await);
    assert!(e.to_string().contains("expired"), "{e}");
}

/// Finding 5: a zero-scope key could list keys, delete the primary key and revoke its own
/// identity. Key management now needs `keys:manage`; any key may still revoke itself.
pub async fn security_key_management_needs_its_scope(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alpha").await;
    assert!(a.identity.scopes.contains(Scope::KeysManage), "a default of identities");
    // Minted without naming it, a key does not manage keys.
    let plain = t.loft.create_key(&aa, None, CreateKeyRequest::default()).await.unwrap();
    assert!(!plain.key.scopes.contains(Scope::KeysManage));
    let zero = t.loft.create_key(&aa, None, key_req(&[], None)).await.unwrap();
    for key in [&plain.api_key, &zero.api_key] {
        let k = t.actor(key).await;
        let missing = |e: Error| {
            assert!(
                matches!(
                    e,
                    Error::MissingScope {
                        scope: Scope::KeysManage
                    }
                ),
                "{e:?}"
            );
        };
        missing(expect_err(t.loft.list_keys(&k, None).await));
        missing(expect_err(t.loft.create_key(&k, None, key_req(&[], None)).await));
        missing(expect_err(t.loft.revoke_key(&k, a.key_id.as_str()).await));
        missing(expect_err(t.loft.revoke_identity(&k, a.identity.id.as_str()).await));
    }
    // Nothing changed: the primary key and the identity work.
    t.actor(&a.api_key).await;
    // A narrow key can revoke itself, and nothing else.
    let z = t.actor(&zero.api_key).await;
    t.loft.revoke_key(&z, zero.key.id.as_str()).await.unwrap();
    expect_err(t.authenticate(&zero.api_key).await);
    // With the scope named, an extra key manages keys.
    let manager = t
        .loft
        .create_key(&aa, None, key_req(&["mail:read", "keys:manage"], None))
        .await
        .unwrap();
    let m = t.actor(&manager.api_key).await;
    assert_eq!(t.loft.list_keys(&m, None).await.unwrap().len(), 4);
    t.loft.revoke_key(&m, plain.key.id.as_str()).await.unwrap();
    // An identity stripped of keys:manage by the operator loses it on its primary key too.
    let op = t.operator().await;
    t.loft
        .update_identity(
            &op,
            a.identity.id.as_str(),
            UpdateIdentityRequest {
                scopes: Some(vec!["mail:read".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let aa = t.actor(&a.api_key).await;
    expect_err(t.loft.list_keys(&aa, None).await);
    let m = t.actor(&manager.api_key).await;
    expect_err(t.loft.list_keys(&m, None).await);
}

/// Finding 6: every refused key appended its own hash-chained row naming the key id parsed
/// from the token. Now refusals are limited per address and written as one aggregated row
/// per address and window, naming no key id; other clients keep working during a flood.
pub async fn security_bad_key_flood_is_limited_and_bounded(store: Arc<dyn Store>) {
    let t = test_loft_with_limits(
        store,
        LimitsConfig {
            auth_failures: 10,
            ..LimitsConfig::off()
        },
    );
    let (a, _) = t.identity("alpha").await;
    let before = t.audit_len().await;
    let attacker = "203.0.113.9";
    // Tokens that name the real key id with a wrong secret.
    let (prefix, _) = a.api_key.rsplit_once('_').unwrap();
    let forged = format!("{prefix}_{}", "a".repeat(52));
    let mut limited = 0;
    for _ in 0..500 {
        match t.authenticate_from(&forged, attacker).await {
            Err(Error::Unauthenticated(_)) => {}
            Err(Error::TooManyRequests { retry_after_secs, .. }) => {
                assert!(retry_after_secs >= 1);
                limited += 1;
            }
            other => panic!("a forged key must be refused: {other:?}"),
        }
    }
    assert_eq!(limited, 490, "after 10 refusals the address is locked out");
    // The real key from another address works; from the attacker's address, it waits too.
    t.authenticate_from(&a.api_key, "198.51.100.1").await.unwrap();
    assert!(matches!(
        t.authenticate_from(&a.api_key, attacker).await,
        Err(Error::TooManyRequests { .. })
    ));
    assert_eq!(t.audit_len().await, before, "no row per refused request");
    assert_eq!(t.loft.flush_auth_refusals(true).await.unwrap(), 1);
    let rows = t.audit_rows().await;
    let row = rows.last().unwrap();
    assert_eq!(row.entry.action, "auth.refused");
    assert_eq!(row.entry.key_id, None, "never a key id from an unverified token");
    assert_eq!(row.entry.remote_addr.as_deref(), Some(attacker));
    assert_eq!(row.entry.details["count"], 501);
    assert_eq!(row.entry.details["locked_out"], 491);
    assert!(!serde_json::to_string(row).unwrap().contains(a.key_id.as_str()));
    // A minute later the address may try again.
    t.clock.advance_secs(61);
    t.authenticate_from(&a.api_key, attacker).await.unwrap();
    t.assert_chain_ok().await;
}

/// Request rates per key: a key over its rate gets 429, another key of the same identity
/// does not, and the bucket refills with time.
pub async fn security_per_key_rate_limit(store: Arc<dyn Store>) {
    let t = test_loft_with_limits(
        store,
        LimitsConfig {
            per_key: Some(loft_core::limits::Rate {
                per_second: 5,
                burst: 10,
            }),
            ..LimitsConfig::off()
        },
    );
    let (a, aa) = t.identity("alpha").await;
    let other = t.loft.create_key(&aa, None, CreateKeyRequest::default()).await.unwrap();
    for _ in 0..9 {
        t.authenticate(&a.api_key).await.unwrap();
    }
    let e = expect_err(t.authenticate(&a.api_key).await);
    assert_eq!(e.code(), "rate_limited", "{e:?}");
    t.authenticate(&other.api_key).await.unwrap();
    t.clock.advance_secs(1);
    t.authenticate(&a.api_key).await.unwrap();
    // The operator key is not limited per key.
    for _ in 0..30 {
        t.operator().await;
    }
}

/// A tiny deterministic generator (xorshift64*), so that a failing sequence can be replayed
/// from the seed printed with the failure.
/// A small seeded generator (xorshift*): the same seed, the same sequence, on every backend.
pub(super) struct Gen(pub(super) u64);

impl Gen {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub(super) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn scopes(&mut self) -> Vec<String> {
        Scope::ALL
            .iter()
            .filter(|_| self.chance(50))
            .map(|s| s.as_str().to_owned())
            .collect()
    }
    fn expiry(&mut self) -> Option<i64> {
        if self.chance(40) {
            None
        } else {
            Some(1 + self.below(400) as i64)
        }
    }
}

/// What a key could do when it was minted.
#[derive(Clone)]
struct Held {
    token: String,
    identity: String,
}

fn within(what: &str, seed: u64, minter: &Actor, scopes: &ScopeSet, expires_at: Option<Timestamp>) {
    let ceiling = minter.scopes();
    assert!(
        scopes.is_subset(&ceiling),
        "seed {seed}: {what} got {scopes:?}, more than the minting key's {ceiling:?}"
    );
    if let Some(key) = minter_key_expiry(minter) {
        assert!(
            expires_at.is_some_and(|t| t <= key),
            "seed {seed}: {what} expires at {expires_at:?}, after the minting key ({key})"
        );
    }
}

fn minter_key_expiry(actor: &Actor) -> Option<Timestamp> {
    match &actor.principal {
        loft_core::service::Principal::Identity { key, .. } => key.expires_at,
        loft_core::service::Principal::Operator => None,
    }
}

/// The rule of every minting path, as a property: over random key trees grown by random
/// sequences of creating keys and sub-identities, rotating, widening identities and letting
/// time pass, no key ever holds a scope its minter lacked or expires later than its minter.
pub async fn security_minting_rule_holds_on_random_sequences(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let seeds: Vec<u64> = (0..6).map(|i| 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(i + 1)).collect();
    for (round, seed) in seeds.into_iter().enumerate() {
        let mut g = Gen(seed | 1);
        let (root, _) = t
            .identity_with(CreateIdentityRequest {
                name: format!("root{round}"),
                // Every scope an agent can hold (`oversight` is a reviewer's, never with `mail:send`).
                scopes: Some(
                    Scope::ALL
                        .iter()
                        .filter(|s| **s != Scope::Oversight)
                        .map(|s| s.as_str().to_owned())
                        .collect(),
                ),
                ..Default::default()
            })
            .await;
        let mut held = vec![Held {
            token: root.api_key.clone(),
            identity: root.identity.id.to_string(),
        }];
        for step in 0..40 {
            let pick = held[g.below(held.len())].clone();
            let Ok(actor) = t.authenticate(&pick.token).await else {
                continue; // expired or revoked by an earlier step
            };
            let what = format!("step {step}");
            match g.below(6) {
                0 => {
                    let req = CreateKeyRequest {
                        scopes: g.chance(70).then(|| g.scopes()),
                        expires_in_seconds: g.expiry(),
                        label: None,
                    };
                    if let Ok(k) = t.loft.create_key(&actor, None, req).await {
                        within(&what, seed, &actor, &k.key.scopes, k.key.expires_at);
                        held.push(Held {
                            token: k.api_key,
                            identity: pick.identity.clone(),
                        });
                    }
                }
                1 => {
                    let req = CreateIdentityRequest {
                        name: format!("r{round}s{step}"),
                        scopes: g.chance(70).then(|| g.scopes()),
                        ..Default::default()
                    };
                    if let Ok(c) = t.loft.create_identity(&actor, req).await {
                        let primary = t
                            .store()
                            .list_keys(&c.identity.id)
                            .await
                            .unwrap()
                            .into_iter()
                            .find(|k| k.kind == KeyKind::Primary)
                            .unwrap();
                        within(&what, seed, &actor, &c.identity.scopes, primary.expires_at);
                        held.push(Held {
                            token: c.api_key,
                            identity: c.identity.id.to_string(),
                        });
                    }
                }
                2 => {
                    let named = g.chance(50).then_some(pick.identity.as_str());
                    if let Ok(k) = t.loft.rotate_key(&actor, named).await {
                        // Rotation replaces the calling key with one exactly like it.
                        let after = t.actor(&k.api_key).await;
                        assert_eq!(after.scopes(), actor.scopes(), "seed {seed}: {what}");
                        assert_eq!(
                            minter_key_expiry(&after),
                            minter_key_expiry(&actor),
                            "seed {seed}: {what}"
                        );
                        held.push(Held {
                            token: k.api_key,
                            identity: pick.identity.clone(),
                        });
                    }
                }
                3 => {
                    // Mint for another identity this key may reach (its sub-identities).
                    let target = held[g.below(held.len())].identity.clone();
                    let req = CreateKeyRequest {
                        scopes: g.chance(70).then(|| g.scopes()),
                        expires_in_seconds: g.expiry(),
                        label: None,
                    };
                    if let Ok(k) = t.loft.create_key(&actor, Some(&target), req).await {
                        within(&what, seed, &actor, &k.key.scopes, k.key.expires_at);
                        held.push(Held {
                            token: k.api_key,
                            identity: target,
                        });
                    }
                }
                4 => {
                    let target = held[g.below(held.len())].identity.clone();
                    let before = t.loft.get_identity(&op, &target).await.unwrap().scopes;
                    let req = UpdateIdentityRequest {
                        scopes: Some(g.scopes()),
                        ..Default::default()
                    };
                    if let Ok(i) = t.loft.update_identity(&actor, &target, req).await {
                        within(&what, seed, &actor, &i.scopes, minter_key_expiry(&actor));
                        if minter_key_expiry(&actor).is_some() {
                            assert!(
                                i.scopes.is_subset(&before),
                                "seed {seed}: {what}: an expiring key widened an identity"
                            );
                        }
                    }
                }
                _ => t.clock.advance_secs(g.below(120) as i64),
            }
        }
        // Every key still working holds no more than the identity it belongs to.
        for h in &held {
            if let Ok(a) = t.authenticate(&h.token).await {
                let identity = a.identity().unwrap();
                assert!(a.scopes().is_subset(&identity.scopes), "seed {seed}");
            }
        }
    }
    t.assert_chain_ok().await;
}

fn api_key_cred(name: &str) -> loft_core::service::StoreCredentialRequest {
    loft_core::service::StoreCredentialRequest {
        name: Some(name.into()),
        value: Some("a-long-enough-secret-value".into()),
        ..Default::default()
    }
}

/// The store's usage counts, which the quotas read: active sub-identities, keys not revoked,
/// vault items, and a running total of mail bytes per mailbox (sender and recipients).
pub async fn quota_usage_is_counted(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let (p, pa) = t
        .identity_with_scopes(
            "parent",
            &[
                "mail:read",
                "mail:send",
                "identity:create",
                "keys:manage",
                "vault:write",
            ],
        )
        .await;
    let (b, _) = t.identity("bob").await;
    let u = t.store().usage(&p.identity.id).await.unwrap();
    assert_eq!(
        u,
        loft_core::quota::Usage {
            active_keys: 1,
            ..Default::default()
        }
    );

    let (c1, _) = t.child(&pa, "c1", None).await;
    t.child(&pa, "c2", None).await;
    t.loft.revoke_identity(&op, c1.identity.id.as_str()).await.unwrap();
    let k = t
        .loft
        .create_key(&pa, None, key_req(&["mail:read"], None))
        .await
        .unwrap();
    t.loft
        .create_key(&pa, None, key_req(&["mail:read"], None))
        .await
        .unwrap();
    t.loft.revoke_key(&pa, k.key.id.as_str()).await.unwrap();
    t.loft.vault_store(&pa, api_key_cred("one")).await.unwrap();
    let sent = t.send(&pa, &[b.identity.address.as_str()], "size", "some text").await;
    let size = sent.size as u64;
    let u = t.store().usage(&p.identity.id).await.unwrap();
    assert_eq!(u.sub_identities, 1, "the revoked child does not count");
    assert_eq!(
        u.active_keys, 2,
        "the primary and one extra; the revoked one does not count"
    );
    assert_eq!(u.vault_items, 1);
    assert_eq!(u.stored_bytes, size);
    t.send(
        &pa,
        &[b.identity.address.as_str(), "someone@example.com"],
        "again",
        "more text here",
    )
    .await;
    let bytes: std::collections::HashMap<_, _> = t
        .store()
        .mailbox_bytes(&[p.identity.id.clone(), b.identity.id.clone(), c1.identity.id.clone()])
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert!(bytes[&p.identity.id] > size);
    assert_eq!(bytes[&p.identity.id], bytes[&b.identity.id], "both hold a copy of each");
    assert!(!bytes.contains_key(&c1.identity.id), "an empty mailbox has no row");
}

/// Each quota refuses with a precise error and leaves nothing written; freeing room (revoking
/// a key) makes room again.
pub async fn security_quotas_refuse_and_leave_nothing(store: Arc<dyn Store>) {
    let t = crate::test_loft_with_quotas(
        store,
        loft_core::quota::Quotas {
            sub_identities: Some(1),
            keys: Some(2),
            vault_items: Some(1),
            labels: Some(2),
            stored_bytes: Some(4000),
            queued_recipients_per_hour: Some(3),
            drafts: Some(2),
        },
    );
    let (p, pa) = t
        .identity_with_scopes(
            "parent",
            &[
                "mail:read",
                "mail:send",
                "identity:create",
                "keys:manage",
                "vault:write",
            ],
        )
        .await;
    let (b, ba) = t.identity("bob").await;
    let quota = |e: Error| {
        assert_eq!(e.code(), "quota_exceeded", "{e:?}");
        e
    };

    // Keys: the primary and one extra; a third is refused until one is revoked.
    let k = t
        .loft
        .create_key(&pa, None, key_req(&["mail:read"], None))
        .await
        .unwrap();
    let e = quota(expect_err(
        t.loft.create_key(&pa, None, key_req(&["mail:read"], None)).await,
    ));
    assert!(e.to_string().contains("`keys`"), "{e}");
    assert!(matches!(e, Error::Forbidden(_)));
    t.loft.revoke_key(&pa, k.key.id.as_str()).await.unwrap();
    t.loft
        .create_key(&pa, None, key_req(&["mail:read"], None))
        .await
        .unwrap();

    // Sub-identities and vault items.
    t.child(&pa, "c1", None).await;
    let before = t.store().usage(&p.identity.id).await.unwrap();
    quota(expect_err(
        t.loft
            .create_identity(
                &pa,
                CreateIdentityRequest {
                    name: "c2".into(),
                    ..Default::default()
                },
            )
            .await,
    ));
    t.loft.vault_store(&pa, api_key_cred("one")).await.unwrap();
    quota(expect_err(t.loft.vault_store(&pa, api_key_cred("two")).await));
    assert_eq!(
        t.store().usage(&p.identity.id).await.unwrap(),
        loft_core::quota::Usage {
            vault_items: 1,
            ..before
        },
        "the refusals wrote nothing"
    );

    // Remote recipients per hour: 2 now, then 2 more is over the budget of 3 (429, with the
    // time to wait), and nothing of the refused send is stored.
    t.send(&pa, &["x1@example.com", "x2@example.com"], "two", "x").await;
    let sent_before = t.all_messages(&pa, folder_all()).await.len();
    let e = quota(expect_err(
        t.loft
            .send(&pa, crate::mail(&["x3@example.com", "x4@example.com"], "two more", "x"))
            .await,
    ));
    assert!(matches!(e, Error::TooManyRequests { .. }), "{e:?}");
    assert_eq!(t.all_messages(&pa, folder_all()).await.len(), sent_before);
    t.clock.advance_secs(3600);
    t.send(&pa, &["x3@example.com", "x4@example.com"], "two more", "x")
        .await;

    // Labels: two distinct ones per mailbox; reusing one is free, a third is refused.
    let m = t.send(&ba, &[p.identity.address.as_str()], "labels", "x").await;
    let label = |add: &[&str]| MessagePatch {
        add_labels: add.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    };
    t.loft
        .update_message(&ba, m.id.as_str(), label(&["a", "b"]))
        .await
        .unwrap();
    let e = quota(expect_err(
        t.loft.update_message(&ba, m.id.as_str(), label(&["a", "c"])).await,
    ));
    assert!(e.to_string().contains("`labels`"), "{e}");
    t.loft.update_message(&ba, m.id.as_str(), label(&["B"])).await.unwrap();

    // Stored bytes: bob's mailbox fills up; a message that would overflow it is refused,
    // naming bob's address, and lands nowhere.
    let big = "y".repeat(1500);
    loop {
        match t
            .loft
            .send(&ba, crate::mail(&[b.identity.address.as_str()], "to self", &big))
            .await
        {
            Ok(_) => {}
            Err(e) => {
                quota(e);
                break;
            }
        }
    }
    let bob_before = t.all_messages(&ba, folder_all()).await.len();
    let e = quota(expect_err(
        t.loft
            .send(&pa, crate::mail(&[b.identity.address.as_str()], "hello", &big))
            .await,
    ));
    assert!(e.to_string().contains(b.identity.address.as_str()), "{e}");
    assert_eq!(t.all_messages(&ba, folder_all()).await.len(), bob_before);
    t.assert_chain_ok().await;
}

fn folder_all() -> loft_core::service::ListMessagesParams {
    loft_core::service::ListMessagesParams {
        folder: Some("all".into()),
        ..Default::default()
    }
}
