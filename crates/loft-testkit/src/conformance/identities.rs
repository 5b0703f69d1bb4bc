//! Identities: creation, visibility along the delegation chain, listing, address conflicts,
//! updates, revocation cascades and whoami.

use std::collections::BTreeSet;
use std::sync::Arc;

use loft_core::Error;
use loft_core::address::EmailAddress;
use loft_core::identity::{CreatedIdentity, CreatorKind, IdentityStatus};
use loft_core::ids::IdentityId;
use loft_core::keys::{KeyKind, Scope, ScopeSet};
use loft_core::random::OsRandom;
use loft_core::service::{
    Actor, CreateIdentityRequest, CreateKeyRequest, ListIdentitiesParams, Loft, UpdateIdentityRequest,
};
use loft_core::store::{IdentityUpdate, Store};

use crate::{TEST_DOMAIN, TestLoft, expect_err, mail, test_loft};

pub(crate) fn scopes(names: &[&str]) -> ScopeSet {
    ScopeSet::parse_names(names).unwrap()
}

fn ids(created: &[&CreatedIdentity]) -> Vec<IdentityId> {
    created.iter().map(|c| c.identity.id.clone()).collect()
}

/// Every identity `actor` can list, newest first, following cursors.
pub(crate) async fn list_all(loft: &Loft, actor: &Actor, include_revoked: bool) -> Vec<IdentityId> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = loft
            .list_identities(
                actor,
                ListIdentitiesParams {
                    include_revoked,
                    limit: Some(200),
                    cursor: cursor.take(),
                },
            )
            .await
            .unwrap();
        out.extend(page.items.into_iter().map(|i| i.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// Creates an identity and reads it back: every field round-trips, the first key is a primary
/// key with the identity's scopes, and the creation is audited.
pub async fn identity_create_and_get(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let created = t
        .loft
        .create_identity(
            &op,
            CreateIdentityRequest {
                name: "Research Bot".into(),
                display_name: Some("Research ✓".into()),
                local_part: None,
                scopes: None,
                oversight_mode: None,
            },
        )
        .await
        .unwrap();
    let i = &created.identity;
    assert_eq!(i.name, "Research Bot");
    assert_eq!(i.display_name.as_deref(), Some("Research ✓"));
    assert_eq!(i.address.domain(), TEST_DOMAIN);
    assert!(i.address.local_part().starts_with("research-bot-"), "{}", i.address);
    assert_eq!(i.scopes, ScopeSet::default_for_identity());
    assert_eq!(i.status, IdentityStatus::Active);
    assert!(i.revoked_at.is_none());
    assert_eq!(i.created_by.kind, CreatorKind::Operator);
    assert_eq!(i.created_by.identity_id, None);
    assert_eq!(i.created_by.key_id.as_deref(), Some("operator"));
    assert!(created.api_key.starts_with("loft_sk_"));

    // Every field round-trips through the store, exactly (timestamps to the microsecond).
    assert_eq!(&t.loft.get_identity(&op, i.id.as_str()).await.unwrap(), i);
    assert_eq!(&t.store().get_identity(&i.id).await.unwrap().unwrap(), i);
    let me = t.actor(&created.api_key).await;
    assert_eq!(me.identity(), Some(i), "the identity found through the key is the same");
    assert_eq!(me.scopes(), i.scopes);
    assert_eq!(&t.loft.get_identity(&me, i.id.as_str()).await.unwrap(), i);

    let keys = t.loft.list_keys(&op, Some(i.id.as_str())).await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let k = &keys[0];
    assert_eq!(k.id, created.key_id);
    assert_eq!(k.identity_id, i.id);
    assert_eq!(k.kind, KeyKind::Primary);
    assert_eq!(k.scopes, i.scopes);
    assert_eq!(k.created_at, i.created_at);
    assert_eq!(k.expires_at, None);
    assert_eq!(k.revoked_at, None);
    assert_eq!(k.created_by_key.as_deref(), Some("operator"));

    let e = expect_err(t.loft.get_identity(&op, IdentityId::generate(&OsRandom).as_str()).await);
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
    let e = expect_err(t.loft.get_identity(&op, "not-an-id").await);
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");

    let rows = t.audit_rows().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0].entry;
    assert_eq!(r.action, "identity.create");
    assert_eq!(r.target.as_deref(), Some(i.id.as_str()));
    assert_eq!(r.key_id.as_deref(), Some("operator"));
    assert_eq!(r.details["address"], i.address.as_str());
    assert!(
        !serde_json::to_string(&rows).unwrap().contains(&created.api_key[25..]),
        "the audit log must never hold a key's secret"
    );
}

/// The operator sees every identity; an identity sees itself and the identities below it.
pub async fn identity_list_visibility(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let (p, pa) = t
        .identity_with_scopes("parent", &["mail:read", "mail:send", "identity:create"])
        .await;
    let (q, qa) = t.identity("other").await;
    let (c, ca) = t.child(&pa, "child", None).await;
    assert_eq!(c.identity.created_by.kind, CreatorKind::Identity);
    assert_eq!(c.identity.created_by.identity_id.as_ref(), Some(&p.identity.id));
    assert_eq!(c.identity.created_by.key_id.as_ref(), Some(&p.key_id.to_string()));
    assert_eq!(
        c.identity.scopes,
        scopes(&["mail:read", "mail:send"]),
        "default scopes within the parent's"
    );

    assert_eq!(
        list_all(&t.loft, &op, false).await,
        ids(&[&c, &q, &p]),
        "operator: all, newest first"
    );
    assert_eq!(
        list_all(&t.loft, &pa, false).await,
        ids(&[&c, &p]),
        "parent: itself and its child"
    );
    assert_eq!(list_all(&t.loft, &ca, false).await, ids(&[&c]), "child: itself only");
    assert_eq!(
        list_all(&t.loft, &qa, false).await,
        ids(&[&q]),
        "unrelated: itself only"
    );

    assert_eq!(
        t.loft.get_identity(&pa, c.identity.id.as_str()).await.unwrap(),
        c.identity
    );
    for (who, whom) in [(&pa, &q), (&ca, &p), (&qa, &c), (&qa, &p), (&ca, &q)] {
        let e = expect_err(t.loft.get_identity(who, whom.identity.id.as_str()).await);
        assert!(
            matches!(e, Error::NotFound(_)),
            "an identity outside one's chain is not found: {e:?}"
        );
    }

    t.loft.revoke_identity(&op, q.identity.id.as_str()).await.unwrap();
    assert_eq!(
        list_all(&t.loft, &op, false).await,
        ids(&[&c, &p]),
        "revoked ones are hidden by default"
    );
    assert_eq!(list_all(&t.loft, &op, true).await, ids(&[&c, &q, &p]));
    let got = t.loft.get_identity(&op, q.identity.id.as_str()).await.unwrap();
    assert_eq!(got.status, IdentityStatus::Revoked);
    assert!(got.revoked_at.is_some());
}

/// Listing identities pages newest first with no duplicates or gaps.
pub async fn identity_list_pagination(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let mut made = Vec::new();
    for n in 0..5 {
        made.push(t.identity(&format!("agent {n}")).await.0.identity.id);
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    loop {
        let page = t
            .loft
            .list_identities(
                &op,
                ListIdentitiesParams {
                    include_revoked: false,
                    limit: Some(2),
                    cursor: cursor.take(),
                },
            )
            .await
            .unwrap();
        sizes.push(page.items.len());
        seen.extend(page.items.into_iter().map(|i| i.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(sizes.len() < 10, "pagination does not end");
    }
    assert_eq!(seen, made, "pages of 2, newest first, no duplicates, no gaps");
    assert_eq!(&sizes[..3], &[2, 2, 1]);
    for bad in [0, 201] {
        let e = expect_err(
            t.loft
                .list_identities(
                    &op,
                    ListIdentitiesParams {
                        limit: Some(bad),
                        ..Default::default()
                    },
                )
                .await,
        );
        assert_eq!(e.code(), "invalid_limit");
    }
}

/// An explicit local part that is taken is a `Conflict` with code `address_taken`, and leaves
/// no identity, key or audit row behind; revoked addresses stay taken.
pub async fn identity_local_part_conflict_leaves_nothing(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let req = |local: &str| CreateIdentityRequest {
        name: "writer".into(),
        local_part: Some(local.into()),
        ..Default::default()
    };
    let (w, _) = t.identity_with(req("Writer.One")).await;
    assert_eq!(w.identity.address.as_str(), format!("writer.one@{TEST_DOMAIN}"));

    let identities_before = list_all(&t.loft, &op, true).await;
    let audit_before = t.audit_len().await;
    for local in ["writer.one", "WRITER.ONE"] {
        let e = expect_err(t.loft.create_identity(&op, req(local)).await);
        assert!(matches!(e, Error::Conflict(_)), "{local}: {e:?}");
        assert_eq!(e.code(), "address_taken", "{local}: {e:?}");
    }
    // An identity creating a child on a taken address: the same.
    let (_, pa) = t
        .identity_with_scopes("parent", &["mail:read", "identity:create"])
        .await;
    let identities_before = {
        let mut v = identities_before;
        v.insert(0, pa.identity().unwrap().id.clone());
        v
    };
    let audit_before = audit_before + 1;
    let e = expect_err(t.loft.create_identity(&pa, req("writer.one")).await);
    assert_eq!(e.code(), "address_taken", "{e:?}");

    assert_eq!(
        list_all(&t.loft, &op, true).await,
        identities_before,
        "no identity left behind"
    );
    assert_eq!(t.audit_len().await, audit_before, "no audit row left behind");
    assert_eq!(t.audit_count("identity.create").await, 2);

    // Addresses are never reused, not even after revocation.
    t.loft.revoke_identity(&op, w.identity.id.as_str()).await.unwrap();
    let audit_before = t.audit_len().await;
    let e = expect_err(t.loft.create_identity(&op, req("writer.one")).await);
    assert_eq!(
        e.code(),
        "address_taken",
        "a revoked identity's address stays taken: {e:?}"
    );
    assert_eq!(t.audit_len().await, audit_before);
    t.assert_chain_ok().await;
}

/// Display name and scopes change; scopes shrink what existing keys may do; an identity cannot
/// change itself; a revoked one cannot change.
pub async fn identity_update(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let (a, aa) = t.identity("alpha").await;
    let (b, _) = t.identity("beta").await;
    let id = a.identity.id.as_str();
    let upd = |display_name: Option<&str>, scopes: Option<&[&str]>| UpdateIdentityRequest {
        display_name: display_name.map(str::to_owned),
        scopes: scopes.map(|s| s.iter().map(|s| (*s).to_owned()).collect()),
        oversight_mode: None,
    };

    let u = t
        .loft
        .update_identity(&op, id, upd(Some("Alpha Prime"), None))
        .await
        .unwrap();
    assert_eq!(u.display_name.as_deref(), Some("Alpha Prime"));
    assert_eq!(u.scopes, a.identity.scopes, "scopes unchanged");
    assert_eq!(t.loft.get_identity(&op, id).await.unwrap(), u);
    let u = t.loft.update_identity(&op, id, upd(Some(""), None)).await.unwrap();
    assert_eq!(u.display_name, None, "an empty display name clears it");
    assert_eq!(
        t.store()
            .get_identity(&a.identity.id)
            .await
            .unwrap()
            .unwrap()
            .display_name,
        None
    );

    // An identity cannot change itself.
    let e = expect_err(t.loft.update_identity(&aa, id, upd(Some("me"), None)).await);
    assert_eq!(e.code(), "cannot_manage_self", "{e:?}");

    let u = t
        .loft
        .update_identity(&op, id, upd(None, Some(&["mail:read"])))
        .await
        .unwrap();
    assert_eq!(u.scopes, scopes(&["mail:read"]));
    // The existing key now carries only what the identity may still do.
    let again = t.actor(&a.api_key).await;
    assert_eq!(again.scopes(), scopes(&["mail:read"]));
    let e = expect_err(
        t.loft
            .send(&again, mail(&[b.identity.address.as_str()], "s", "t"))
            .await,
    );
    assert!(matches!(e, Error::MissingScope { scope: Scope::MailSend }), "{e:?}");

    let e = expect_err(t.loft.update_identity(&op, id, upd(None, None)).await);
    assert_eq!(e.code(), "empty_update");

    // A parent cannot grant its child what it lacks.
    let (_, pa) = t
        .identity_with_scopes("parent", &["mail:read", "identity:create"])
        .await;
    let (c, _) = t.child(&pa, "child", None).await;
    let e = expect_err(
        t.loft
            .update_identity(
                &pa,
                c.identity.id.as_str(),
                upd(None, Some(&["mail:read", "vault:reveal"])),
            )
            .await,
    );
    assert_eq!(e.code(), "scope_escalation", "{e:?}");

    assert_eq!(t.audit_count("identity.update").await, 3);

    t.loft.revoke_identity(&op, id).await.unwrap();
    let e = expect_err(t.loft.update_identity(&op, id, upd(Some("x"), None)).await);
    assert_eq!(e.code(), "identity_revoked", "{e:?}");

    let e = expect_err(
        t.store()
            .update_identity(
                &IdentityId::generate(&OsRandom),
                IdentityUpdate {
                    display_name: Some("x".into()),
                    scopes: None,
                    oversight_mode: None,
                    paused_at: None,
                    caps: None,
                    clear_mode_request: false,
                },
                super::store::op_entry(&t, "identity.update"),
            )
            .await,
    );
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
    t.assert_chain_ok().await;
}

/// The store's side of revocation and addresses: `revoke_identity` revokes the identity, the
/// tree below it and all their keys at the time it is given, returns the ids it newly revoked
/// in creation order (none a second time, the first time kept) and adds them to the entry's
/// details; `resolve_addresses` answers active identities only, once each, in the order asked.
pub async fn identity_store_revocation_and_addresses(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let creator = &["mail:read", "identity:create"];
    let (root, ra) = t.identity_with_scopes("root", creator).await;
    let (child, ca) = t.child(&ra, "child", Some(creator)).await;
    let (grandchild, _) = t.child(&ca, "grandchild", None).await;
    let (other, _) = t.identity("other").await;
    let s = t.store().clone();
    let entry = |action: &str| {
        let mut e = super::store::op_entry(&t, action);
        e.details = serde_json::json!({ "z": 1 });
        e
    };
    let address = |c: &CreatedIdentity| c.identity.address.clone();
    assert!(s.ancestors(&root.identity.id).await.unwrap().is_empty());
    let nobody = EmailAddress::parse(&format!("nobody@{TEST_DOMAIN}")).unwrap();
    let asked = [address(&other), nobody, address(&root), address(&other)];
    assert_eq!(
        s.resolve_addresses(&asked).await.unwrap(),
        vec![
            (address(&other), other.identity.id.clone()),
            (address(&root), root.identity.id.clone())
        ]
    );

    let at = t.loft.now();
    let revoked = s
        .revoke_identity(&child.identity.id, at, entry("identity.revoke"))
        .await
        .unwrap();
    assert_eq!(revoked, ids(&[&child, &grandchild]), "in creation order");
    let row = t.audit_rows().await.pop().unwrap();
    assert_eq!(
        row.entry.details["revoked"],
        serde_json::json!([child.identity.id.as_str(), grandchild.identity.id.as_str()])
    );
    assert_eq!(row.entry.details["z"], 1, "the rest of the details stays");
    for c in [&child, &grandchild] {
        let i = s.get_identity(&c.identity.id).await.unwrap().unwrap();
        assert_eq!((i.status, i.revoked_at), (IdentityStatus::Revoked, Some(at)));
        for k in s.list_keys(&c.identity.id).await.unwrap() {
            assert_eq!(k.revoked_at, Some(at), "key {} of {}", k.id, c.identity.name);
        }
    }
    let root_now = s.get_identity(&root.identity.id).await.unwrap().unwrap();
    assert_eq!(root_now.status, IdentityStatus::Active);
    let gone = [address(&child), address(&grandchild)];
    assert!(s.resolve_addresses(&gone).await.unwrap().is_empty());

    // Again: nothing new. From the root: only the root is new; the child keeps its time.
    let again = s.revoke_identity(&child.identity.id, t.loft.now(), entry("identity.revoke"));
    assert!(again.await.unwrap().is_empty());
    let later = t.loft.now();
    let from_root = s.revoke_identity(&root.identity.id, later, entry("identity.revoke"));
    assert_eq!(from_root.await.unwrap(), ids(&[&root]));
    let child_now = s.get_identity(&child.identity.id).await.unwrap().unwrap();
    assert_eq!(child_now.revoked_at, Some(at), "the first revocation time is kept");
    let (key, owner) = s.find_key(&child.key_id).await.unwrap().unwrap();
    assert_eq!(key.meta.revoked_at, Some(at));
    assert_eq!(
        (owner.id, owner.status),
        (child.identity.id.clone(), IdentityStatus::Revoked)
    );
    let (key, _) = s.find_key(&root.key_id).await.unwrap().unwrap();
    assert_eq!(key.meta.revoked_at, Some(later));

    let nobody = IdentityId::generate(&OsRandom);
    let e = expect_err(s.revoke_identity(&nobody, later, entry("identity.revoke")).await);
    super::store::assert_not_found(&e, "identity", "revoke_identity(unknown)");
    t.assert_chain_ok().await;
}

struct Family {
    p: CreatedIdentity,
    pa: Actor,
    c: CreatedIdentity,
    ca: Actor,
    g: CreatedIdentity,
    ga: Actor,
    s: CreatedIdentity,
    sa: Actor,
}

/// parent → child → grandchild, and parent → sibling.
async fn family(t: &TestLoft) -> Family {
    let (p, pa) = t
        .identity_with_scopes(
            "parent",
            &[
                "mail:read",
                "mail:send",
                "mail:manage",
                "identity:create",
                "keys:manage",
            ],
        )
        .await;
    let (c, ca) = t
        .child(
            &pa,
            "child",
            Some(&["mail:read", "mail:send", "identity:create", "keys:manage"]),
        )
        .await;
    let (g, ga) = t.child(&ca, "grandchild", None).await;
    let (s, sa) = t.child(&pa, "sibling", None).await;
    Family {
        p,
        pa,
        c,
        ca,
        g,
        ga,
        s,
        sa,
    }
}

/// Revoking a child revokes it, its descendants and all their keys at once; the parent and a
/// sibling keep working.
pub async fn delegation_revoke_cascades(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let Family {
        p,
        pa,
        c,
        ca,
        g,
        ga,
        s,
        sa,
    } = family(&t).await;
    assert_eq!(g.identity.scopes, scopes(&["mail:read", "mail:send", "keys:manage"]));
    assert_eq!(g.identity.created_by.identity_id.as_ref(), Some(&c.identity.id));
    assert_eq!(list_all(&t.loft, &pa, false).await, ids(&[&s, &g, &c, &p]));
    assert_eq!(list_all(&t.loft, &ca, false).await, ids(&[&g, &c]));
    let ancestors: Vec<_> = t
        .store()
        .ancestors(&g.identity.id)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(
        ancestors,
        ids(&[&c, &p]),
        "ancestors, parent first, up to the operator's"
    );
    crate::assert_whoami_context(t.store().as_ref(), &g.identity).await;
    crate::assert_whoami_context(t.store().as_ref(), &p.identity).await;

    // A grandchild without identity:create cannot create.
    let e = expect_err(
        t.loft
            .create_identity(
                &ga,
                CreateIdentityRequest {
                    name: "x".into(),
                    ..Default::default()
                },
            )
            .await,
    );
    assert!(
        matches!(
            e,
            Error::MissingScope {
                scope: Scope::IdentityCreate
            }
        ),
        "{e:?}"
    );

    // Extra keys, minted by the identity itself and by the operator.
    let cx = t.loft.create_key(&ca, None, CreateKeyRequest::default()).await.unwrap();
    let gx = t
        .loft
        .create_key(&op, Some(g.identity.id.as_str()), CreateKeyRequest::default())
        .await
        .unwrap();
    t.actor(&cx.api_key).await;
    t.actor(&gx.api_key).await;

    // Nobody outside the chain above may revoke: a sibling, a descendant, the child itself
    // going upwards.
    for (who, whom) in [(&sa, &c), (&ga, &c), (&ca, &p)] {
        let e = expect_err(t.loft.revoke_identity(who, whom.identity.id.as_str()).await);
        assert!(matches!(e, Error::NotFound(_)), "{e:?}");
    }

    let revoked = t.loft.revoke_identity(&pa, c.identity.id.as_str()).await.unwrap();
    let revoked: BTreeSet<_> = revoked.revoked.into_iter().collect();
    let expected: BTreeSet<_> = ids(&[&c, &g]).into_iter().collect();
    assert_eq!(revoked, expected, "the child and everything below it");

    for (who, key) in [
        ("child", &c.api_key),
        ("child extra", &cx.api_key),
        ("grandchild", &g.api_key),
        ("grandchild extra", &gx.api_key),
    ] {
        let e = expect_err(t.authenticate(key).await);
        assert!(
            matches!(e, Error::Unauthenticated(_)),
            "{who}'s key must stop working: {e:?}"
        );
    }
    for i in [&c, &g] {
        let stored = t.store().get_identity(&i.identity.id).await.unwrap().unwrap();
        assert_eq!(stored.status, IdentityStatus::Revoked);
        assert!(stored.revoked_at.is_some());
        for k in t.store().list_keys(&i.identity.id).await.unwrap() {
            assert!(
                k.revoked_at.is_some(),
                "key {} of {} must be revoked",
                k.id,
                i.identity.name
            );
        }
    }
    let rows = t.audit_rows().await;
    let row = rows.iter().rev().find(|r| r.entry.action == "identity.revoke").unwrap();
    assert_eq!(row.entry.target.as_deref(), Some(c.identity.id.as_str()));
    let in_details: BTreeSet<IdentityId> =
        serde_json::from_value(row.entry.details["revoked"].clone()).unwrap_or_else(|e| {
            panic!(
                "details.revoked must list the revoked ids: {e}; {:?}",
                row.entry.details
            )
        });
    assert_eq!(in_details, expected);

    // Parent and sibling keep working, and can still mail each other.
    let pa = t.actor(&p.api_key).await;
    let sa = t.actor(&s.api_key).await;
    t.send(&pa, &[s.identity.address.as_str()], "still here", "yes").await;
    t.send(&sa, &[p.identity.address.as_str()], "me too", "yes").await;
    // A revoked address takes no mail.
    let e = expect_err(
        t.loft
            .send(&pa, mail(&[c.identity.address.as_str()], "hello?", "x"))
            .await,
    );
    assert_eq!(e.code(), "unknown_recipient", "{e:?}");

    // Revoking again revokes nothing new.
    let again = t.loft.revoke_identity(&op, c.identity.id.as_str()).await.unwrap();
    assert!(again.revoked.is_empty(), "{again:?}");
    assert_eq!(list_all(&t.loft, &pa, false).await, ids(&[&s, &p]));
    assert_eq!(list_all(&t.loft, &pa, true).await, ids(&[&s, &g, &c, &p]));
    t.assert_chain_ok().await;
}

/// whoami names the caller, its scopes and key, and the chain up to the operator.
pub async fn whoami_chain(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let Family { p, c, g, ga, .. } = family(&t).await;
    let w = t.loft.whoami(&ga).await.unwrap();
    assert_eq!(w.kind, CreatorKind::Identity);
    assert_eq!(w.identity.as_ref(), Some(&g.identity));
    assert_eq!(w.address.as_ref(), Some(&g.identity.address));
    assert_eq!(w.scopes, scopes(&["mail:read", "mail:send", "keys:manage"]));
    assert_eq!(w.key_id, g.key_id.to_string());
    assert_eq!(w.key_expires_at, None);
    let chain: Vec<_> = w
        .chain
        .iter()
        .map(|l| (l.kind, l.identity_id.clone(), l.created_with_key.clone()))
        .collect();
    assert_eq!(
        chain,
        vec![
            (
                CreatorKind::Identity,
                Some(g.identity.id.clone()),
                Some(c.key_id.to_string())
            ),
            (
                CreatorKind::Identity,
                Some(c.identity.id.clone()),
                Some(p.key_id.to_string())
            ),
            (
                CreatorKind::Identity,
                Some(p.identity.id.clone()),
                Some("operator".to_owned())
            ),
            (CreatorKind::Operator, None, None),
        ]
    );
    assert_eq!(w.chain[1].name.as_deref(), Some("child"));
    assert_eq!(w.chain[2].address.as_ref(), Some(&p.identity.address));

    let w = t.loft.whoami(&op).await.unwrap();
    assert_eq!(w.kind, CreatorKind::Operator);
    assert_eq!(w.key_id, "operator");
    assert_eq!(w.chain.len(), 1);

    // An expiring key says when it expires.
    let k = t
        .loft
        .create_key(
            &ga,
            None,
            CreateKeyRequest {
                expires_in_seconds: Some(600),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let w = t.loft.whoami(&t.actor(&k.api_key).await).await.unwrap();
    assert_eq!(w.key_expires_at, k.key.expires_at);
    assert!(w.key_expires_at.is_some());
    assert_eq!(w.key_id, k.key.id.to_string());
}
