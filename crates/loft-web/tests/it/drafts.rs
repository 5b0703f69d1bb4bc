//! `/v0/drafts` over HTTP: every answer checked against the document.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::{App, assert_error};

#[tokio::test]
async fn a_draft_is_written_edited_and_sent_once() {
    let app = App::new().await;
    let (_, _, a) = app.identity("a").await;
    let (_, b_addr, b) = app.identity("b").await;

    let r = app
        .post(
            "/v0/drafts",
            &a,
            json!({ "to": "not yet an address", "subject": "Plan" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("drf_"));
    assert_eq!(r.body["to"], json!(["not yet an address"]));

    let r = app.get("/v0/drafts", &a).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"][0]["id"], id.as_str());
    assert_error(
        &app.get(&format!("/v0/drafts/{id}"), &b).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &app.post(&format!("/v0/drafts/{id}/send"), &a, json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_address",
    );
    assert_error(
        &app.patch(&format!("/v0/drafts/{id}"), &a, json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "empty_update",
    );
    assert_error(
        &app.patch(&format!("/v0/drafts/{id}"), &a, json!({ "colour": "red" }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    let r = app
        .patch(
            &format!("/v0/drafts/{id}"),
            &a,
            json!({ "to": [b_addr], "text": "hello" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["subject"], "Plan");

    // The body of a draft send may be left out.
    let r = app
        .call(Method::POST, &format!("/v0/drafts/{id}/send"), Some(&a), None)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["subject"], "Plan");
    let inbox = app.get("/v0/messages", &b).await;
    assert_eq!(inbox.body["items"].as_array().unwrap().len(), 1);
    assert_error(
        &app.call(Method::POST, &format!("/v0/drafts/{id}/send"), Some(&a), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let r = app.post("/v0/drafts", &a, json!({})).await;
    let other = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .call(Method::DELETE, &format!("/v0/drafts/{other}"), Some(&a), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_error(
        &app.call(Method::DELETE, &format!("/v0/drafts/{other}"), Some(&a), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &app.get("/v0/drafts/msg_x", &a).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_id",
    );
}

#[tokio::test]
async fn a_scheduled_send_is_canceled_or_refused_precisely() {
    let app = App::new().await;
    let (_, _, a) = app.identity("a").await;
    let (_, b_addr, b) = app.identity("b").await;
    let soon = app.loft.now().plus_secs(3600).to_rfc3339();
    let r = app
        .post(
            "/v0/messages/send",
            &a,
            json!({ "to": b_addr, "subject": "Later", "text": "x", "send_at": soon }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["status"], "scheduled");
    assert_eq!(r.body["delivery"][0]["status"], "scheduled");
    assert!(r.body["send_at"].is_string());
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/v0/messages", &b).await.body["items"], json!([]));
    assert_error(
        &app.post(&format!("/v0/messages/{id}/cancel"), &b, json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &app.post(
            &format!("/v0/messages/{id}/reschedule"),
            &a,
            json!({ "send_at": "soon" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_send_at",
    );
    let later = app.loft.now().plus_secs(7200).to_rfc3339();
    let r = app
        .post(
            &format!("/v0/messages/{id}/reschedule"),
            &a,
            json!({ "send_at": later }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .call(Method::POST, &format!("/v0/messages/{id}/cancel"), Some(&a), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "canceled");
    assert_error(
        &app.call(
            Method::POST,
            &format!("/v0/messages/{id}/cancel"),
            Some(&app.admin),
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "not_scheduled",
    );
    let sent = app.send(&a, &b_addr, "Now").await;
    let sid = sent["id"].as_str().unwrap();
    assert_error(
        &app.call(Method::POST, &format!("/v0/messages/{sid}/cancel"), Some(&a), None)
            .await,
        StatusCode::CONFLICT,
        "not_scheduled",
    );
    let past = app.loft.now().plus_secs(-3600).to_rfc3339();
    assert_error(
        &app.post(
            "/v0/messages/send",
            &a,
            json!({ "to": b_addr, "subject": "x", "text": "x", "send_at": past }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "send_at_in_past",
    );
}

/// Files on a draft over REST: listed on the draft, checked as a send's (422 naming the
/// file, 413 over the limit), sent with it; a forward carries the files of the message
/// forwarded and the ones added. Every answer checked against the document.
#[tokio::test]
async fn drafts_and_forwards_carry_attachments() {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let app = crate::App::with_limit(4 * 1024 * 1024).await;
    let (_, _, alice) = app.identity("a").await;
    let (_, b_addr, bob) = app.identity("b").await;
    let (_, c_addr, carol) = app.identity("c").await;

    let r = app
        .post(
            "/v0/drafts",
            &alice,
            json!({ "to": b_addr, "subject": "Files", "text": "x",
                    "attachments": [{"filename": "data.csv", "content_type": "text/csv", "content_base64": b64(b"a,b\n")}] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.body["attachments"],
        json!([{"name": "data.csv", "content_type": "text/csv", "size": 4}])
    );
    assert!(!r.text.contains(&b64(b"a,b\n")), "the bytes are not echoed: {}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_error(
        &app.patch(
            &format!("/v0/drafts/{id}"),
            &alice,
            json!({ "attachments": [{"filename": "a/b", "content_base64": "eA=="}] }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_attachment_name",
    );
    let limit = app.loft.config().max_attachment_bytes;
    assert_error(
        &app.patch(
            &format!("/v0/drafts/{id}"),
            &alice,
            json!({ "attachments": [{"filename": "big.bin", "content_base64": b64(&vec![1u8; limit + 1])}] }),
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "attachment_too_large",
    );
    let r = app
        .call(Method::POST, &format!("/v0/drafts/{id}/send"), Some(&alice), None)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["attachments"][0]["name"], "data.csv");

    // Bob forwards it to Carol with a file of his.
    let inbox = app.get("/v0/messages", &bob).await;
    let mid = inbox.body["items"][0]["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/v0/messages/{mid}/forward"),
            &bob,
            json!({ "to": c_addr, "text": "FYI",
                    "attachments": [{"filename": "notes.txt", "content_base64": b64(b"mine")}] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let names: Vec<&str> = r.body["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["data.csv", "notes.txt"]);
    let got = app.get("/v0/messages", &carol).await;
    let cid = got.body["items"][0]["id"].as_str().unwrap().to_owned();
    let f = app.get(&format!("/v0/messages/{cid}/attachments/0"), &carol).await;
    assert_eq!(f.text, "a,b\n");
    let r = app
        .post(
            &format!("/v0/messages/{mid}/forward"),
            &bob,
            json!({ "to": c_addr, "keep_attachments": false }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(r.body.get("attachments").is_none_or(|x| x == &json!([])), "{}", r.text);

    let schema = &app.doc["components"]["schemas"];
    for name in ["CreateDraftRequest", "UpdateDraftRequest", "ForwardMail", "Draft"] {
        assert!(
            schema[name].to_string().contains("\"attachments\""),
            "{name}: {}",
            schema[name]
        );
    }
    assert!(
        !schema["Draft"].to_string().contains("\"files\""),
        "{}",
        schema["Draft"]
    );
}
