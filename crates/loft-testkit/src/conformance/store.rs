//! Cases about the store contract itself: an empty store, `NotFound` for what is missing or
//! foreign, and nothing written when a mutating call fails.

use std::sync::Arc;

use loft_core::Error;
use loft_core::audit::{ActorKind, AuditEntry, Outcome};
use loft_core::ids::{IdentityId, KeyId, MessageId, ThreadId};
use loft_core::keys::{ApiKey, KeyKind, KeyMeta, ScopeSet, StoredKey};
use loft_core::mail::{MessagePatch, MessageQuery, ThreadQuery};
use loft_core::random::OsRandom;
use loft_core::service::CreateKeyRequest;
use loft_core::store::{IdentityQuery, IdentityUpdate, Store};
use loft_core::time::Timestamp;

use crate::{expect_err, test_loft};

/// A new key for `identity` and the row a store keeps for it (scopes as a new identity's).
pub(crate) fn new_stored_key(identity: &IdentityId, kind: KeyKind, at: Timestamp) -> (ApiKey, StoredKey) {
    let key = ApiKey::generate(&OsRandom);
    let stored = StoredKey {
        id: key.id().clone(),
        identity_id: identity.clone(),
        digest: key.digest(),
        meta: KeyMeta {
            id: key.id().clone(),
            identity_id: identity.clone(),
            kind,
            label: None,
            scopes: ScopeSet::default_for_identity(),
            created_at: at,
            expires_at: None,
            revoked_at: None,
            created_by_key: Some("operator".into()),
        },
    };
    (key, stored)
}

/// `e` is `NotFound` with the message every store gives for `what` ("message not found").
#[track_caller]
pub(crate) fn assert_not_found(e: &Error, what: &str, context: &str) {
    match e {
        Error::NotFound(d) => assert_eq!(d.message, format!("{what} not found"), "{context}"),
        other => panic!("{context}: expected NotFound({what}), got {other:?}"),
    }
}

pub(crate) fn op_entry(t: &crate::TestLoft, action: &str) -> AuditEntry {
    operator_entry(action, t.loft.now())
}

/// The operator's audit entry for `action` at `at` with empty details, for a test that calls
/// a store directly.
pub fn operator_entry(action: &str, at: Timestamp) -> AuditEntry {
    AuditEntry {
        at,
        actor_kind: ActorKind::Operator,
        actor_identity_id: None,
        key_id: Some("operator".into()),
        action: action.into(),
        target: None,
        outcome: Outcome::Ok,
        request_id: None,
        remote_addr: None,
        details: serde_json::json!({}),
        events: Vec::new(),
    }
}

/// A fresh store holds nothing, its chain is empty and verifies.
pub async fn store_fresh_is_empty(store: Arc<dyn Store>) {
    assert!(
        ["sqlite", "postgres"].contains(&store.backend()),
        "backend() must be `sqlite` or `postgres`, not {}",
        store.backend()
    );
    let t = test_loft(store);
    let s = t.store();
    assert_eq!(s.audit_head().await.unwrap(), None, "a fresh store has no chain head");
    assert!(s.audit_after(0, 10).await.unwrap().is_empty());
    let ids = s
        .list_identities(IdentityQuery {
            limit: 10,
            include_revoked: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(ids.items.is_empty() && ids.next_before.is_none());
    let nobody = IdentityId::generate(&OsRandom);
    assert_eq!(s.latest_mail_seq(&nobody).await.unwrap(), 0);
    assert!(s.get_identity(&nobody).await.unwrap().is_none());
    assert!(s.find_key(&KeyId::generate(&OsRandom)).await.unwrap().is_none());
    assert!(s.ancestors(&nobody).await.unwrap().is_empty());
    assert!(s.list_keys(&nobody).await.unwrap().is_empty());
    let report = t.assert_chain_ok().await;
    assert_eq!(report.rows_checked, 0);
    // Authenticating as the operator writes nothing.
    let _ = t.operator().await;
    assert_eq!(t.audit_len().await, 0);
}

/// Missing and foreign things are `NotFound`, and a failed mutation writes nothing, not even
/// its audit row (one transaction).
pub async fn store_missing_things_are_not_found(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a, aa) = t.identity("alpha").await;
    let (b, _) = t.identity("beta").await;
    let sent = t.send(&aa, &[b.identity.address.as_str()], "hello", "hi").await;
    let s = t.store().clone();
    let before = t.audit_len().await;
    let nobody = IdentityId::generate(&OsRandom);
    let now = t.loft.now();

    let e = expect_err(
        s.update_identity(
            &nobody,
            IdentityUpdate {
                display_name: Some("x".into()),
                scopes: None,
                oversight_mode: None,
                paused_at: None,
                caps: None,
                clear_mode_request: false,
            },
            op_entry(&t, "identity.update"),
        )
        .await,
    );
    assert_not_found(&e, "identity", "update_identity(unknown)");
    let e = expect_err(s.revoke_identity(&nobody, now, op_entry(&t, "identity.revoke")).await);
    assert_not_found(&e, "identity", "revoke_identity(unknown)");

    // b's key is not a's key.
    let e = expect_err(
        s.revoke_key(&a.identity.id, &b.key_id, now, op_entry(&t, "key.revoke"))
            .await,
    );
    assert_not_found(&e, "key", "revoke_key(foreign key)");
    let e = expect_err(
        s.revoke_key(
            &a.identity.id,
            &KeyId::generate(&OsRandom),
            now,
            op_entry(&t, "key.revoke"),
        )
        .await,
    );
    assert_not_found(&e, "key", "revoke_key(unknown key)");
    t.actor(&b.api_key).await;

    // Rotation replacing a key that is not the identity's: NotFound, and the new key is not
    // stored.
    let (new_key, stored) = new_stored_key(&a.identity.id, KeyKind::Primary, now);
    let e = expect_err(
        s.create_key(stored.clone(), Some(b.key_id.clone()), op_entry(&t, "key.rotate"))
            .await,
    );
    assert_not_found(&e, "key", "create_key replacing a foreign key");
    assert!(
        s.find_key(new_key.id()).await.unwrap().is_none(),
        "a failed rotation must not leave the new key behind"
    );
    t.actor(&b.api_key).await;

    // Mail lookups by a non-owner, or of unknown ids.
    let unknown_msg = MessageId::generate(&OsRandom);
    for (owner, id) in [
        (&b.identity.id, &unknown_msg),
        (&b.identity.id, &sent.id),
        (&nobody, &sent.id),
    ] {
        assert!(s.get_message(owner, id).await.unwrap().is_none());
        assert!(s.raw_message(owner, id).await.unwrap().is_none());
        let e = expect_err(s.read_message(owner, id, op_entry(&t, "mail.read")).await);
        assert_not_found(&e, "message", "read_message");
        let e = expect_err(
            s.update_message(
                owner,
                id,
                MessagePatch {
                    add_labels: vec!["x".into()],
                    ..Default::default()
                },
                op_entry(&t, "mail.update"),
            )
            .await,
        );
        assert_not_found(&e, "message", "update_message");
    }
    let e = expect_err(
        s.read_thread(
            &a.identity.id,
            &ThreadId::generate(&OsRandom),
            false,
            op_entry(&t, "mail.read_thread"),
        )
        .await,
    );
    assert_not_found(&e, "thread", "read_thread(unknown)");
    let e = expect_err(
        s.read_thread(&b.identity.id, &sent.thread_id, false, op_entry(&t, "mail.read_thread"))
            .await,
    );
    assert_not_found(&e, "thread", "read_thread(another owner's thread)");
    let page = s
        .list_messages(
            &nobody,
            MessageQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(page.items.is_empty());
    let page = s
        .list_threads(
            &nobody,
            ThreadQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(page.items.is_empty());

    assert_eq!(
        t.audit_len().await,
        before,
        "failed store calls must not append their audit rows"
    );
    // The owner's message is untouched.
    let still = s.get_message(&a.identity.id, &sent.id).await.unwrap().unwrap();
    assert_eq!(still, sent);
    t.assert_chain_ok().await;
}

/// `find_key` returns a key and its identity whether or not it is revoked.
pub async fn store_find_key_returns_revoked_keys(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let (a, aa) = t.identity("alpha").await;
    let extra = t
        .loft
        .create_key(
            &aa,
            None,
            CreateKeyRequest {
                label: Some("ci".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (found, owner) = t.store().find_key(&extra.key.id).await.unwrap().unwrap();
    assert_eq!(found.meta, extra.key, "find_key must return the key as stored");
    assert_eq!(found.id, extra.key.id);
    assert_eq!(found.identity_id, a.identity.id);
    assert!(found.digest.matches(&ApiKey::parse(&extra.api_key).unwrap().digest()));
    assert_eq!(owner, a.identity);

    let revoked = t.loft.revoke_key(&op, extra.key.id.as_str()).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    let (found, _) = t.store().find_key(&extra.key.id).await.unwrap().unwrap();
    assert_eq!(found.meta.revoked_at, revoked.revoked_at);

    t.loft.revoke_identity(&op, a.identity.id.as_str()).await.unwrap();
    let (found, owner) = t.store().find_key(&a.key_id).await.unwrap().unwrap();
    assert!(found.meta.revoked_at.is_some(), "revoking an identity revokes its keys");
    assert!(!owner.is_active());
    t.assert_chain_ok().await;
}
