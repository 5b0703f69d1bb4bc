//! `/v0/audit`.

use axum::http::StatusCode;
use serde_json::json;

use crate::{App, assert_error};

#[tokio::test]
async fn every_action_is_audited_and_the_chain_verifies() {
    let app = App::new().await;
    let (a_id, a_addr, a_key) = app.identity("a").await;
    let (b_id, _, b_key) = app.identity("b").await;
    let sent = app.send(&b_key, &a_addr, "hello").await;
    let id = app.get("/v0/messages", &a_key).await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get(&format!("/v0/messages/{id}"), &a_key).await;
    app.post(&format!("/v0/identities/{b_id}/revoke"), &app.admin, json!({}))
        .await;
    app.get("/v0/whoami", &b_key).await; // refused
    app.loft.flush_auth_refusals(true).await.unwrap(); // auth.refused, aggregated

    let all = app.get("/v0/audit?limit=200", &app.admin).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let actions: Vec<&str> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "auth.refused",
            "identity.revoke",
            "mail.read",
            "mail.send",
            "identity.create",
            "identity.create"
        ]
    );
    let send_row = &all.body["items"][3];
    assert_eq!(send_row["actor_identity_id"], b_id.as_str());
    assert_eq!(send_row["target"], sent["id"]);
    assert!(send_row["key_id"].as_str().unwrap().starts_with("key_"));
    assert!(send_row["hash"].as_str().unwrap().len() == 64);
    assert!(!all.text.contains("loft_sk_"), "keys never reach the audit log");

    // Filters.
    let mail = app.get("/v0/audit?action=mail.", &app.admin).await;
    assert_eq!(mail.body["items"].as_array().unwrap().len(), 2);
    let denied = app.get("/v0/audit?outcome=denied", &app.admin).await;
    assert_eq!(denied.body["items"].as_array().unwrap().len(), 1);
    let by_a = app.get(&format!("/v0/audit?identity={a_id}"), &app.admin).await;
    assert_eq!(by_a.body["items"][0]["action"], "mail.read");
    let r = app.get("/v0/audit?since=yesterday", &app.admin).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_time");
    let future = app.get("/v0/audit?since=2999-01-01T00:00:00Z", &app.admin).await;
    assert_eq!(future.body["items"].as_array().unwrap().len(), 0);

    // An identity sees only its own rows, and cannot ask for others'.
    let mine = app.get("/v0/audit", &a_key).await;
    assert!(
        mine.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["actor_identity_id"] == a_id.as_str())
    );
    let r = app.get(&format!("/v0/audit?identity={b_id}"), &a_key).await;
    assert_error(&r, StatusCode::FORBIDDEN, "own_audit_only");
    assert_error(
        &app.get("/v0/audit/export", &a_key).await,
        StatusCode::FORBIDDEN,
        "operator_only",
    );
    assert_error(
        &app.get("/v0/audit/verify", &a_key).await,
        StatusCode::FORBIDDEN,
        "operator_only",
    );

    // Export is the whole chain, oldest first, as JSON lines; it verifies locally and remotely.
    let export = app.get("/v0/audit/export", &app.admin).await;
    assert_eq!(export.status, StatusCode::OK);
    assert_eq!(export.headers["content-type"], "application/x-ndjson");
    let rows: Vec<loft_core::audit::AuditRecord> =
        export.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 6);
    let head: Option<loft_core::audit::ChainHead> =
        serde_json::from_value(app.get("/v0/audit/head", &app.admin).await.body).unwrap();
    let report = loft_core::audit::verify_chain(&rows, head);
    assert!(report.ok, "{report:?}");
    let page = app.get("/v0/audit/export?after=4&limit=1", &app.admin).await;
    assert_eq!(page.text.lines().count(), 1);
    assert!(page.text.contains("\"seq\":5"));
    let server = app.get("/v0/audit/verify", &app.admin).await;
    assert_eq!(server.body["ok"], true, "{}", server.text);
    assert_eq!(server.body["rows_checked"], 6);
}
