//! `/v0/identities` and `/v0/whoami`.

use axum::http::StatusCode;
use serde_json::json;

use crate::{App, assert_error};

#[tokio::test]
async fn operator_creates_an_identity_with_address_and_key() {
    let app = App::new().await;
    let r = app
        .post(
            "/v0/identities",
            &app.admin,
            json!({ "name": "Researcher", "display_name": "Res" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let address = r.body["address"].as_str().unwrap();
    let (local, domain) = address.split_once('@').unwrap();
    assert_eq!(domain, "agents.test");
    assert!(
        local.starts_with("researcher-") && local.len() == "researcher-".len() + 5,
        "{address}"
    );
    assert!(r.body["id"].as_str().unwrap().starts_with("idt_"));
    assert!(r.body["api_key"].as_str().unwrap().starts_with("loft_sk_"));
    assert!(r.body["key_id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["created_by"]["kind"], "operator");
    let scopes: Vec<&str> = r.body["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(scopes.contains(&"mail:send") && !scopes.contains(&"vault:reveal") && !scopes.contains(&"identity:create"));

    // The key is shown once: reading the identity back never shows it.
    let id = r.body["id"].as_str().unwrap();
    let shown = app.get(&format!("/v0/identities/{id}"), &app.admin).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.body.get("api_key").is_none());
    assert_eq!(shown.body["address"], address);
}

#[tokio::test]
async fn explicit_local_part_and_conflicts() {
    let app = App::new().await;
    let r = app
        .post(
            "/v0/identities",
            &app.admin,
            json!({ "name": "sales", "local_part": "Sales" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["address"], "sales@agents.test");
    let r = app
        .post(
            "/v0/identities",
            &app.admin,
            json!({ "name": "other", "local_part": "sales" }),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "address_taken");
    assert!(r.body["error"]["hint"].is_string());
    let r = app
        .post(
            "/v0/identities",
            &app.admin,
            json!({ "name": "x", "local_part": "a b" }),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_address");
    let r = app.post("/v0/identities", &app.admin, json!({ "name": "" })).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_name");
    let r = app
        .post(
            "/v0/identities",
            &app.admin,
            json!({ "name": "x", "scopes": ["mail:write"] }),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_scope");
    assert!(r.body["error"]["hint"].as_str().unwrap().contains("mail:read"));
    let list = app.get("/v0/identities", &app.admin).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn identity_without_identity_create_is_refused_by_scope() {
    let app = App::new().await;
    let (_, _, key) = app.identity("worker").await;
    let r = app.post("/v0/identities", &key, json!({ "name": "child" })).await;
    assert_error(&r, StatusCode::FORBIDDEN, "missing_scope");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("identity:create"));
}

#[tokio::test]
async fn delegation_chain_whoami_and_cascading_revocation() {
    let app = App::new().await;
    let r = app
        .post(
            "/v0/identities",
            &app.admin,
            json!({ "name": "lead", "scopes": ["mail:read", "mail:send", "identity:create", "keys:manage"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let lead_key = r.body["api_key"].as_str().unwrap().to_owned();
    let lead_id = r.body["id"].as_str().unwrap().to_owned();

    // A child may not get scopes its creator lacks.
    let r = app
        .post(
            "/v0/identities",
            &lead_key,
            json!({ "name": "c", "scopes": ["mail:manage"] }),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "scope_escalation");

    let child = app
        .post(
            "/v0/identities",
            &lead_key,
            json!({ "name": "child", "scopes": ["mail:read", "mail:send", "identity:create"] }),
        )
        .await;
    assert_eq!(child.status, StatusCode::CREATED, "{}", child.text);
    assert_eq!(child.body["created_by"]["identity_id"], lead_id.as_str());
    let child_key = child.body["api_key"].as_str().unwrap().to_owned();
    let child_id = child.body["id"].as_str().unwrap().to_owned();
    let grandchild = app
        .post("/v0/identities", &child_key, json!({ "name": "grandchild" }))
        .await;
    assert_eq!(grandchild.status, StatusCode::CREATED, "{}", grandchild.text);
    let gc_key = grandchild.body["api_key"].as_str().unwrap().to_owned();
    let sibling = app
        .post("/v0/identities", &lead_key, json!({ "name": "sibling" }))
        .await;
    let sibling_key = sibling.body["api_key"].as_str().unwrap().to_owned();

    let who = app.get("/v0/whoami", &gc_key).await;
    assert_eq!(who.status, StatusCode::OK, "{}", who.text);
    let chain = who.body["chain"].as_array().unwrap();
    assert_eq!(chain.len(), 4, "{}", who.text);
    assert_eq!(chain[1]["identity_id"], child_id.as_str());
    assert_eq!(chain[2]["identity_id"], lead_id.as_str());
    assert_eq!(chain[3]["kind"], "operator");
    assert!(who.body["key_id"].as_str().unwrap().starts_with("key_"));

    // The lead sees itself and everything below it; the child does not see its sibling.
    let seen = app.get("/v0/identities", &lead_key).await;
    assert_eq!(seen.body["items"].as_array().unwrap().len(), 4, "{}", seen.text);
    let sib_id = sibling.body["id"].as_str().unwrap();
    let r = app.get(&format!("/v0/identities/{sib_id}"), &child_key).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    // Revoking the child revokes the grandchild; the lead and the sibling keep working.
    let r = app
        .post(&format!("/v0/identities/{child_id}/revoke"), &lead_key, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["revoked"].as_array().unwrap().len(), 2);
    for k in [&child_key, &gc_key] {
        assert_error(
            &app.get("/v0/whoami", k).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        );
        assert_error(
            &app.get("/v0/messages", k).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        );
    }
    for k in [&lead_key, &sibling_key] {
        assert_eq!(app.get("/v0/whoami", k).await.status, StatusCode::OK);
    }
    let r = app.get(&format!("/v0/identities/{child_id}"), &app.admin).await;
    assert_eq!(r.body["status"], "revoked");
    assert!(r.body["revoked_at"].is_string());
    // Revoked identities are hidden from lists unless asked for.
    let all = app.get("/v0/identities", &app.admin).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 2, "{}", all.text);
    let all = app.get("/v0/identities?include_revoked=true", &app.admin).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn update_identity_display_name_and_scopes() {
    let app = App::new().await;
    let (id, _, key) = app.identity("writer").await;
    let r = app
        .patch(
            &format!("/v0/identities/{id}"),
            &app.admin,
            json!({ "display_name": "Writer Bot", "scopes": ["mail:read"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["display_name"], "Writer Bot");
    // Narrowed scopes apply to the existing key at once.
    let r = app
        .post(
            "/v0/messages/send",
            &key,
            json!({ "to": "x@agents.test", "subject": "s", "text": "t" }),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "missing_scope");
    // An identity cannot widen its own scopes.
    let r = app
        .patch(
            &format!("/v0/identities/{id}"),
            &key,
            json!({ "scopes": ["mail:read", "mail:send"] }),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "cannot_manage_self");
    // Widening reaches the primary key too.
    let r = app
        .patch(
            &format!("/v0/identities/{id}"),
            &app.admin,
            json!({ "scopes": ["mail:read", "identity:create"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .post(
            "/v0/identities",
            &key,
            json!({ "name": "child", "scopes": ["mail:read"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = app.patch(&format!("/v0/identities/{id}"), &app.admin, json!({})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "empty_update");
    let r = app
        .patch(
            "/v0/identities/idt_doesnotexist",
            &app.admin,
            json!({ "display_name": "x" }),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = app.get("/v0/identities/nope", &app.admin).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_id");
}

#[tokio::test]
async fn operator_whoami() {
    let app = App::new().await;
    let r = app.get("/v0/whoami", &app.admin).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["kind"], "operator");
    assert_eq!(r.body["key_id"], "operator");
}
