//! `/v0/contacts` over HTTP: every answer checked against the document.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::{App, assert_error};

#[tokio::test]
async fn contacts_are_listed_written_and_forgotten_over_http() {
    let app = App::new().await;
    let (a_id, a_addr, a) = app.identity("a").await;
    let (_, b_addr, b) = app.identity("b").await;
    app.send(&b, &a_addr, "hello").await;

    // Mail made Bob a known contact of Alice's.
    let listed = app.get("/v0/contacts", &a).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.body["items"][0]["address"], b_addr.as_str());
    assert_eq!(listed.body["items"][0]["known"], true);

    // Written by hand: a name and tags; read back by address (the `@` as written or encoded).
    let written = app
        .post(
            "/v0/contacts",
            &a,
            json!({"address": b_addr, "name": "Bob", "tags": ["Team"]}),
        )
        .await;
    assert_eq!(written.status, StatusCode::OK, "{}", written.text);
    assert_eq!(written.body["tags"], json!(["team"]));
    let one = app.get(&format!("/v0/contacts/{b_addr}"), &a).await;
    assert_eq!(one.body["name"], "Bob", "{}", one.text);
    let encoded = b_addr.replace('@', "%40");
    let one = app.get(&format!("/v0/contacts/{encoded}"), &a).await;
    assert_eq!(one.body["name"], "Bob", "{}", one.text);
    let filtered = app.get("/v0/contacts?tag=team&known=true&q=BOB", &a).await;
    assert_eq!(filtered.body["items"].as_array().unwrap().len(), 1, "{}", filtered.text);

    // Precise refusals.
    assert_error(
        &app.post("/v0/contacts", &a, json!({"address": "nope", "name": "x"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_address",
    );
    assert_error(
        &app.post("/v0/contacts", &a, json!({"address": b_addr, "colour": "red"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    assert_error(
        &app.get("/v0/contacts/nobody@example.com", &a).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &app.get("/v0/contacts?known=maybe", &a).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    assert_error(
        &app.get("/v0/contacts", &app.admin).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "identity_required",
    );
    // Another identity's: 404, never its data.
    assert_error(
        &app.get(&format!("/v0/contacts?identity={a_id}"), &b).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let seen = app.get(&format!("/v0/contacts?identity={a_id}"), &app.admin).await;
    assert_eq!(seen.body["items"][0]["name"], "Bob", "{}", seen.text);

    // Forgotten: the entry goes, the mail exchanged stays.
    let forgot = app
        .call(Method::DELETE, &format!("/v0/contacts/{b_addr}"), Some(&a), None)
        .await;
    assert_eq!(forgot.status, StatusCode::OK, "{}", forgot.text);
    assert_eq!(forgot.body["name"], "Bob");
    let after = app.get(&format!("/v0/contacts/{b_addr}"), &a).await;
    assert_eq!(
        (after.body["name"].clone(), after.body["known"].clone()),
        (json!(null), json!(true))
    );
    assert_error(
        &app.call(Method::DELETE, &format!("/v0/contacts/{b_addr}"), Some(&a), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}
