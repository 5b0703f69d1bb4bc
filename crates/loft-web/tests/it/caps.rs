//! `/v0/identities/{id}/caps` and `/v0/instance/caps`, and the 429 a capped send gets.

use axum::http::{Method, StatusCode, header};
use serde_json::json;

use crate::App;

#[tokio::test]
async fn a_capped_send_is_429_with_retry_after() {
    let app = App::new().await;
    let (id, _, key) = app.identity("a").await;
    let (_, b_addr, _) = app.identity("b").await;
    let path = format!("/v0/identities/{id}/caps");

    let r = app.get(&path, &app.admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["caps"]["mails_per_hour"], serde_json::Value::Null);
    assert_eq!(r.body["caps"]["first_contact"], "allow");

    // Only the operator sets caps.
    let r = app
        .call(Method::PUT, &path, Some(&key), Some(json!({ "mails_per_hour": 1 })))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "operator_only"),
        "{}",
        r.text
    );
    let r = app
        .call(
            Method::PUT,
            &path,
            Some(&app.admin),
            Some(json!({ "mails_per_hour": 0 })),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_cap"),
        "{}",
        r.text
    );
    let r = app.call(Method::PUT, &path, Some(&app.admin), Some(json!({}))).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, "empty_update"));
    let r = app
        .call(
            Method::PUT,
            &path,
            Some(&app.admin),
            Some(json!({ "mails_per_hour": 1, "nope": 1 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = app
        .call(
            Method::PUT,
            &path,
            Some(&app.admin),
            Some(json!({ "mails_per_hour": 1, "first_contact": "allow" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["caps"]["mails_per_hour"], 1);
    assert_eq!(r.body["used"]["mails_last_hour"], 0);

    // The agent sees its budget in whoami, and on the identity.
    let me = app.get("/v0/whoami", &key).await;
    assert_eq!(me.body["sending"]["caps"]["mails_per_hour"], 1, "{}", me.text);
    assert_eq!(me.body["identity"]["caps"]["mails_per_hour"], 1, "{}", me.text);

    app.send(&key, &b_addr, "one").await;
    let r = app
        .post(
            "/v0/messages/send",
            &key,
            json!({ "to": b_addr, "subject": "two", "text": "hello" }),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "cap_reached"),
        "{}",
        r.text
    );
    let wait: u64 = r.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&wait), "{wait}");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("identity cap `mails_per_hour` (1)"), "{message}");
    assert!(message.contains(&format!("retry in {wait} s")), "{message}");
    assert!(r.body["error"]["hint"].as_str().unwrap().contains("loft identity caps"));

    // The instance's caps: operator only.
    let r = app.get("/v0/instance/caps", &key).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(
            Method::PUT,
            "/v0/instance/caps",
            Some(&app.admin),
            Some(json!({ "mails_per_day": 1000, "new_recipients_per_day": null })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["caps"]["mails_per_day"], 1000);
    assert_eq!(r.body["used"]["mails_last_day"], 1);
    let r = app
        .call(
            Method::PUT,
            "/v0/instance/caps",
            Some(&app.admin),
            Some(json!({ "first_contact": "hold" })),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "first_contact is per identity: {}",
        r.text
    );
    let r = app.get("/v0/instance/caps", &app.admin).await;
    assert_eq!(r.body["caps"]["mails_per_day"], 1000, "{}", r.text);
}
