//! `/v0/webhooks` over HTTP, delivering to a real receiver on 127.0.0.1 through the real
//! broker (the egress policy allows 127.0.0.1 here, explicitly): signed, in order, retried
//! after a timeout and a 500, logged, replayed; refused targets; isolation between identities.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use loft_broker::EgressPolicy;
use loft_core::runner::JobRunner;
use loft_core::webhooks::{SigningSecret, WebhookSettings, verify};
use serde_json::{Value, json};

use crate::App;

#[derive(Debug, Clone)]
struct Got {
    id: String,
    timestamp: i64,
    signature: String,
    body: Vec<u8>,
}

/// A receiver on 127.0.0.1: each request is recorded, then answered by the next scripted
/// `(status, delay)` (then 200 at once).
async fn receiver(script: &[(u16, u64)]) -> (String, Arc<Mutex<Vec<Got>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
    let (g, s) = (got.clone(), script.clone());
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
        let (g, s) = (g.clone(), s.clone());
        async move {
            let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            g.lock().unwrap().push(Got {
                id: h("webhook-id"),
                timestamp: h("webhook-timestamp").parse().unwrap_or(0),
                signature: h("webhook-signature"),
                body: body.to_vec(),
            });
            let (status, delay) = s.lock().unwrap().pop_front().unwrap_or((200, 0));
            tokio::time::sleep(Duration::from_millis(delay)).await;
            StatusCode::from_u16(status).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}/hook"), got)
}

fn fast() -> WebhookSettings {
    WebhookSettings {
        timeout: Duration::from_millis(500),
        retry_base_secs: 1,
        retry_max_secs: 2,
        disable_after_secs: 3600,
    }
}

/// Runs due jobs until `done` holds (at most ~15 s).
async fn run_until(app: &App, done: impl Fn() -> bool) {
    let runner = JobRunner::new(app.loft.clone(), "http-test");
    for _ in 0..150 {
        runner.run_due().await.unwrap();
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the deliveries did not happen in time");
}

#[tokio::test]
async fn webhooks_deliver_signed_in_order_after_a_timeout_and_a_500() {
    let app = App::with_webhooks(EgressPolicy::parse(["127.0.0.1"]).unwrap(), fast()).await;
    let (url, got) = receiver(&[(200, 2000), (500, 0)]).await;
    let (alice, alice_addr, a) = app.identity("alice").await;
    let (_, _, b) = app.identity("bob").await;
    let r = app
        .post(
            "/v0/webhooks",
            &a,
            json!({ "url": url, "types": ["message.received"], "description": "inbox hook" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(r.body["identity"], alice.as_str());
    let shown = app.get(&format!("/v0/webhooks/{id}"), &a).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.body.get("secret").is_none() && !shown.text.contains(&secret));

    for n in 1..=3 {
        app.send(&b, &alice_addr, &format!("mail {n}")).await;
    }
    run_until(&app, || got.lock().unwrap().len() >= 5).await;
    let got = got.lock().unwrap().clone();
    let ids: Vec<&str> = got.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids[0], ids[1], "timed out: the same event again");
    assert_eq!(ids[1], ids[2], "a 500: the same event again");
    let seqs: Vec<i64> = ids
        .iter()
        .map(|i| i.trim_start_matches("evt_").parse().unwrap())
        .collect();
    assert!(seqs[2] < seqs[3] && seqs[3] < seqs[4], "in order: {ids:?}");
    let secret = SigningSecret::parse(&secret).unwrap();
    let mut subjects = Vec::new();
    for g in &got {
        assert!(verify(&secret, &g.signature, &g.id, g.timestamp, &g.body), "{g:?}");
        let event: Value = serde_json::from_slice(&g.body).unwrap();
        assert_eq!(event["id"], g.id.as_str());
        assert_eq!(event["type"], "message.received");
        subjects.push(event["payload"]["subject"].as_str().unwrap().to_owned());
    }
    assert_eq!(subjects, ["mail 1", "mail 1", "mail 1", "mail 2", "mail 3"]);

    // The log, newest first: three successes, a 500, a timeout without a status.
    let log = app.get(&format!("/v0/webhooks/{id}/deliveries"), &a).await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    let items = log.body["items"].as_array().unwrap();
    let statuses: Vec<Value> = items.iter().map(|d| d["status_code"].clone()).collect();
    assert_eq!(statuses, [json!(200), json!(200), json!(200), json!(500), Value::Null]);
    let attempts: Vec<u64> = items.iter().map(|d| d["attempt"].as_u64().unwrap()).collect();
    assert_eq!(attempts, [1, 1, 3, 2, 1]);
    assert!(
        items[4]["error"].as_str().unwrap().contains("timed out"),
        "{}",
        items[4]
    );
    assert!(items[4]["duration_ms"].as_u64().unwrap() >= 400);

    // Replay the timed-out one: the same webhook-id, logged as a replay.
    let first = items[4]["id"].as_str().unwrap();
    let r = app
        .post(&format!("/v0/webhooks/{id}/deliveries/{first}/replay"), &a, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (r.body["replay"].clone(), r.body["ok"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(r.body["event_id"], items[4]["event_id"]);

    // Bob sees none of it.
    assert_eq!(
        app.get(&format!("/v0/webhooks/{id}"), &b).await.status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .post(&format!("/v0/webhooks/{id}/deliveries/{first}/replay"), &b, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.get("/v0/webhooks", &b).await;
    assert_eq!(r.body["items"], json!([]));
    let r = app
        .post(
            "/v0/webhooks",
            &b,
            json!({ "url": "http://127.0.0.1:9/x", "identity": alice }),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "operator_only"));

    // Pause, change, rotate, remove.
    let r = app
        .patch(
            &format!("/v0/webhooks/{id}"),
            &a,
            json!({ "enabled": false, "types": ["message.*"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["enabled"], false);
    let r = app
        .post(&format!("/v0/webhooks/{id}/rotate-secret"), &a, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["secret"].as_str().unwrap().starts_with("whsec_"));
    assert!(r.body["previous_secret_expires_at"].is_string());
    let r = app
        .call(Method::DELETE, &format!("/v0/webhooks/{id}"), Some(&a), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        app.get(&format!("/v0/webhooks/{id}"), &a).await.status,
        StatusCode::NOT_FOUND
    );
    // The audit log names the changes, never the secret.
    let audit = app.get("/v0/audit?action=webhook.", &app.admin).await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    assert!(audit.text.contains("webhook.rotate_secret") && !audit.text.contains("whsec_"));
}

#[tokio::test]
async fn webhook_targets_obey_the_egress_policy() {
    let strict = App::with_egress(EgressPolicy::default()).await;
    let (_, _, a) = strict.identity("alice").await;
    for (url, rule) in [
        ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
        ("http://10.1.2.3/hook", "private"),
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://localhost:8080/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
    ] {
        let r = strict.post("/v0/webhooks", &a, json!({ "url": url })).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "egress_denied"),
            "{url}: {}",
            r.text
        );
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("rule `{rule}`")), "{url}: {message}");
        assert!(r.body["error"]["hint"].as_str().unwrap().contains("--egress-allow"));
    }
    assert_eq!(
        strict.get("/v0/webhooks", &a).await.body["items"],
        json!([]),
        "nothing stored"
    );
    // Bad input is a precise 422.
    for bad in ["ftp://example.com/", "https://u:p@example.com/", "nope"] {
        let r = strict.post("/v0/webhooks", &a, json!({ "url": bad })).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_url"),
            "{bad}"
        );
    }
    let r = strict
        .post(
            "/v0/webhooks",
            &a,
            json!({ "url": "https://example.com/", "types": ["mail.received"] }),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_event_type")
    );
    // With the operator's allowance, loopback is allowed (and only the allowed address).
    let allowed = App::with_egress(EgressPolicy::parse(["127.0.0.1"]).unwrap()).await;
    let (_, _, a) = allowed.identity("alice").await;
    let r = allowed
        .post("/v0/webhooks", &a, json!({ "url": "http://127.0.0.1:8080/hook" }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = allowed
        .post("/v0/webhooks", &a, json!({ "url": "http://169.254.169.254/" }))
        .await;
    assert_eq!(r.code(), "egress_denied");
}
