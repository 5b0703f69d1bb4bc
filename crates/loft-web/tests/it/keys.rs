//! `/v0/keys` and `/v0/identities/{id}/keys`.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::{App, assert_error};

#[tokio::test]
async fn extra_keys_carry_fewer_scopes_and_cannot_escalate() {
    let app = App::new().await;
    let (_, addr, key) = app.identity("writer").await;
    let r = app
        .post(
            "/v0/keys",
            &key,
            json!({ "scopes": ["mail:read", "keys:manage"], "expires_in_seconds": 3600, "label": "ro" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["kind"], "extra");
    assert!(r.body["expires_at"].is_string());
    let ro = r.body["api_key"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/v0/messages", &ro).await.status, StatusCode::OK);
    let r = app
        .post(
            "/v0/messages/send",
            &ro,
            json!({ "to": addr, "subject": "s", "text": "t" }),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "missing_scope");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("mail:send"));

    // The read-only key cannot mint a key with more scopes, or one that outlives it.
    let r = app
        .post(
            "/v0/keys",
            &ro,
            json!({ "scopes": ["mail:read", "keys:manage", "mail:send"] }),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "scope_escalation");
    let r = app.post("/v0/keys", &ro, json!({ "expires_in_seconds": 7200 })).await;
    assert_error(&r, StatusCode::FORBIDDEN, "expiry_escalation");
    let r = app.post("/v0/keys", &ro, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(
        r.body["expires_at"].is_string(),
        "an unexpiring child of an expiring key: {}",
        r.text
    );
    let r = app.post("/v0/keys", &key, json!({ "expires_in_seconds": 0 })).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_expiry");

    let list = app.get("/v0/keys", &key).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 3, "{}", list.text);
    assert!(!list.text.contains("loft_sk_"));
}

#[tokio::test]
async fn rotation_invalidates_the_old_key_at_once() {
    let app = App::new().await;
    let (id, _, key) = app.identity("writer").await;
    let r = app.post("/v0/keys/rotate", &key, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new_key = r.body["api_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(r.body["kind"], "primary");
    assert_error(
        &app.get("/v0/whoami", &key).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_eq!(app.get("/v0/whoami", &new_key).await.status, StatusCode::OK);

    // The operator rotates an identity's primary key.
    let r = app
        .post(&format!("/v0/identities/{id}/keys/rotate"), &app.admin, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let third = r.body["api_key"].as_str().unwrap().to_owned();
    assert_error(
        &app.get("/v0/whoami", &new_key).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_eq!(app.get("/v0/whoami", &third).await.status, StatusCode::OK);

    let audit = app.get("/v0/audit?action=key.rotate", &app.admin).await;
    assert_eq!(audit.body["items"].as_array().unwrap().len(), 2, "{}", audit.text);
}

#[tokio::test]
async fn revoking_one_key_leaves_the_others() {
    let app = App::new().await;
    let (id, _, key) = app.identity("writer").await;
    let extra = app
        .post(
            &format!("/v0/identities/{id}/keys"),
            &app.admin,
            json!({ "label": "ci" }),
        )
        .await;
    assert_eq!(extra.status, StatusCode::CREATED, "{}", extra.text);
    let extra_key = extra.body["api_key"].as_str().unwrap().to_owned();
    let extra_id = extra.body["id"].as_str().unwrap().to_owned();
    let r = app
        .call(Method::DELETE, &format!("/v0/keys/{extra_id}"), Some(&key), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["revoked_at"].is_string());
    assert_error(
        &app.get("/v0/whoami", &extra_key).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_eq!(app.get("/v0/whoami", &key).await.status, StatusCode::OK);

    // Another identity's key does not exist for this one.
    let (_, _, other) = app.identity("other").await;
    let keys = app.get(&format!("/v0/identities/{id}/keys"), &app.admin).await;
    let primary = keys.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "primary")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .call(Method::DELETE, &format!("/v0/keys/{primary}"), Some(&other), None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = app.get(&format!("/v0/identities/{id}/keys"), &other).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.get("/v0/whoami", &key).await.status, StatusCode::OK);
}

#[tokio::test]
async fn operator_must_name_the_identity() {
    let app = App::new().await;
    let r = app.post("/v0/keys", &app.admin, json!({})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "identity_required");
}

/// The probe's findings 1, 4 and 5 through REST: a narrow key cannot rotate the primary key,
/// cannot manage keys or revoke its identity, and a key about to expire mints nothing that
/// outlives it.
#[tokio::test]
async fn a_narrow_key_stays_narrow() {
    let app = App::new().await;
    let (id, _, primary) = app.identity("writer").await;
    let r = app
        .post("/v0/keys", &primary, json!({ "scopes": [], "expires_in_seconds": 60 }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let narrow = r.body["api_key"].as_str().unwrap().to_owned();
    let narrow_id = r.body["id"].as_str().unwrap().to_owned();
    let primary_id = app.get("/v0/whoami", &primary).await.body["key_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // 1: rotating the identity's primary key.
    let r = app
        .post(&format!("/v0/identities/{id}/keys/rotate"), &narrow, json!({}))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "primary_rotation_forbidden");
    // 5: listing, minting, deleting the primary key, revoking the identity.
    assert_error(
        &app.get("/v0/keys", &narrow).await,
        StatusCode::FORBIDDEN,
        "missing_scope",
    );
    assert_error(
        &app.post("/v0/keys", &narrow, json!({})).await,
        StatusCode::FORBIDDEN,
        "missing_scope",
    );
    let r = app
        .call(Method::DELETE, &format!("/v0/keys/{primary_id}"), Some(&narrow), None)
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "missing_scope");
    let r = app
        .post(&format!("/v0/identities/{id}/revoke"), &narrow, json!({}))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "missing_scope");
    // Nothing happened: the primary key works. The narrow key may revoke itself.
    assert_eq!(app.get("/v0/whoami", &primary).await.status, StatusCode::OK);
    let r = app
        .call(Method::DELETE, &format!("/v0/keys/{narrow_id}"), Some(&narrow), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get("/v0/whoami", &narrow).await.status, StatusCode::UNAUTHORIZED);

    // 4: a key that expires soon creates a sub-identity whose key expires with it.
    let r = app
        .patch(
            &format!("/v0/identities/{id}"),
            &app.admin,
            json!({ "scopes": ["mail:read", "identity:create", "keys:manage"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .post(
            "/v0/keys",
            &primary,
            json!({ "scopes": ["mail:read", "identity:create"], "expires_in_seconds": 2 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let short = r.body["api_key"].as_str().unwrap().to_owned();
    let expires = r.body["expires_at"].clone();
    let r = app
        .post(
            "/v0/identities",
            &short,
            json!({ "name": "child", "scopes": ["mail:read"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let child_key = r.body["api_key"].as_str().unwrap().to_owned();
    let who = app.get("/v0/whoami", &child_key).await;
    assert_eq!(who.body["key_expires_at"], expires, "{}", who.text);
    // Expiries beyond ten years are refused, not stored as a broken timestamp.
    let r = app
        .post("/v0/keys", &primary, json!({ "expires_in_seconds": i64::MAX }))
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_expiry");
}

/// The default quota of 50 active keys per identity, through REST: a precise 403 with a hint,
/// and revoking a key frees its slot.
#[tokio::test]
async fn the_key_quota_is_a_403_with_a_hint() {
    let app = App::new().await;
    let (_, _, primary) = app.identity("minter").await;
    let mut last = String::new();
    for _ in 1..50 {
        let r = app.post("/v0/keys", &primary, json!({ "scopes": ["mail:read"] })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_str().unwrap().clone_into(&mut last);
    }
    let r = app.post("/v0/keys", &primary, json!({ "scopes": ["mail:read"] })).await;
    assert_error(&r, StatusCode::FORBIDDEN, "quota_exceeded");
    assert!(
        r.text.contains("50 of 50") && r.text.contains("--quota keys="),
        "{}",
        r.text
    );
    let r = app
        .call(Method::DELETE, &format!("/v0/keys/{last}"), Some(&primary), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.post("/v0/keys", &primary, json!({ "scopes": ["mail:read"] })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}
