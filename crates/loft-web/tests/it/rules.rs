//! `/v0/rules` and what rules do to a send, over HTTP: every answer checked against the
//! document.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::{App, assert_error};

#[tokio::test]
async fn the_operator_manages_rules_and_agents_read_theirs() {
    let app = App::new().await;
    let (a_id, _, a) = app.identity("a").await;
    let (b_id, _, b) = app.identity("b").await;

    // Only the operator adds rules.
    let body =
        json!({ "identity": a_id, "direction": "send", "action": "block", "pattern": "*@Example.com", "note": "no" });
    assert_error(
        &app.post("/v0/rules", &a, body.clone()).await,
        StatusCode::FORBIDDEN,
        "operator_only",
    );
    let r = app.post("/v0/rules", &app.admin, body.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["pattern"], "*@example.com");
    assert_eq!(r.body["identity"], a_id.as_str());
    assert_eq!(r.body["created_by"], "operator");
    let rule_id = r.body["id"].as_str().unwrap().to_owned();
    assert!(rule_id.starts_with("rul_"), "{rule_id}");
    assert_error(
        &app.post("/v0/rules", &app.admin, body).await,
        StatusCode::CONFLICT,
        "rule_exists",
    );
    let inst = app
        .post(
            "/v0/rules",
            &app.admin,
            json!({ "instance": true, "direction": "receive", "action": "block", "pattern": "*@spam.example" }),
        )
        .await;
    assert_eq!(inst.status, StatusCode::CREATED, "{}", inst.text);
    assert_eq!(inst.body["identity"], json!(null));

    // Precise refusals.
    for (bad, code) in [
        (
            json!({ "identity": a_id, "direction": "send", "action": "block", "pattern": "*@*.example.com" }),
            "invalid_rule_pattern",
        ),
        (
            json!({ "direction": "send", "action": "block", "pattern": "*" }),
            "invalid_rule_scope",
        ),
        (
            json!({ "identity": a_id, "direction": "sideways", "action": "block", "pattern": "*" }),
            "invalid_body",
        ),
    ] {
        assert_error(
            &app.post("/v0/rules", &app.admin, bad).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        );
    }

    // Each agent reads the rules in effect for itself, never another's.
    let mine = app.get("/v0/rules", &a).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 2);
    let theirs = app.get("/v0/rules", &b).await;
    assert_eq!(theirs.body["items"].as_array().unwrap().len(), 1, "{}", theirs.text);
    assert_eq!(theirs.body["items"][0]["id"], inst.body["id"]);
    assert_error(
        &app.get(&format!("/v0/rules?identity={a_id}"), &b).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let own = app.get(&format!("/v0/rules?identity={b_id}"), &b).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    let all = app.get("/v0/rules", &app.admin).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 2);
    let only = app.get("/v0/rules?instance=true", &app.admin).await;
    assert_eq!(only.body["items"].as_array().unwrap().len(), 1);
    assert_error(
        &app.get(&format!("/v0/rules?instance=true&identity={a_id}"), &app.admin)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_rule_filter",
    );

    // Only the operator removes; a second removal is 404.
    let path = format!("/v0/rules/{rule_id}");
    assert_error(
        &app.call(Method::DELETE, &path, Some(&a), None).await,
        StatusCode::FORBIDDEN,
        "operator_only",
    );
    let gone = app.call(Method::DELETE, &path, Some(&app.admin), None).await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.text);
    assert_eq!(gone.body["id"], rule_id.as_str());
    assert_error(
        &app.call(Method::DELETE, &path, Some(&app.admin), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &app.call(Method::DELETE, "/v0/rules/nonsense", Some(&app.admin), None)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_id",
    );
}

#[tokio::test]
async fn a_blocked_send_is_403_naming_the_rule_and_a_hold_holds() {
    let app = App::new().await;
    let (a_id, _, a) = app.identity("a").await;
    let (_, b_addr, _) = app.identity("b").await;
    let r = app
        .post(
            "/v0/rules",
            &app.admin,
            json!({ "identity": a_id, "direction": "send", "action": "block", "pattern": b_addr }),
        )
        .await;
    let block = r.body["id"].as_str().unwrap().to_owned();
    let refused = app
        .post(
            "/v0/messages/send",
            &a,
            json!({ "to": b_addr, "subject": "hi", "text": "x" }),
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "recipient_blocked");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&block) && message.contains(&b_addr), "{message}");
    assert!(
        refused.body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("loft rules list"),
        "{}",
        refused.text
    );

    // Replace it with a hold: the mail waits for a reviewer although `a` is autonomous.
    app.call(Method::DELETE, &format!("/v0/rules/{block}"), Some(&app.admin), None)
        .await;
    let r = app
        .post(
            "/v0/rules",
            &app.admin,
            json!({ "identity": a_id, "direction": "send", "action": "hold", "pattern": b_addr }),
        )
        .await;
    let hold_rule = r.body["id"].as_str().unwrap().to_owned();
    let held = app.send(&a, &b_addr, "hi").await;
    assert_eq!(held["status"], "pending_approval");
    let reason = &held["approval"]["reasons"][0];
    assert_eq!(reason["kind"], "rule");
    assert_eq!(reason["rule"]["id"], hold_rule.as_str());
    assert_eq!(reason["rule"]["pattern"], b_addr.as_str());
    assert_eq!(reason["rule"]["level"], "identity");
}
