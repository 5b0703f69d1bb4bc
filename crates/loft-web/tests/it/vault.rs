//! `/v0/vault`: every route, its refusals, isolation between identities, and brokered HTTP
//! against a local test server.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use crate::{App, assert_error};

const MARKER: &str = "vault-marker-7f3a9c1e";

/// A local HTTP server: `/echo` answers with the headers it got (the secret echoed back),
/// `/redirect` sends the client to another host, `/steal` records any visit, `/big` is large.
struct Peer {
    port: u16,
    seen_auth: Arc<Mutex<Vec<String>>>,
    stolen: Arc<Mutex<u32>>,
}

async fn peer() -> Peer {
    let seen_auth = Arc::new(Mutex::new(Vec::new()));
    let stolen = Arc::new(Mutex::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (s1, s2) = (seen_auth.clone(), stolen.clone());
    let app = axum::Router::new()
        .route(
            "/echo",
            axum::routing::any(move |headers: HeaderMap| {
                let s1 = s1.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .or_else(|| headers.get("x-api-key"))
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    s1.lock().unwrap().push(auth.clone());
                    ([("x-echo", auth.clone())], format!("you sent: {auth}"))
                }
            }),
        )
        .route(
            "/redirect",
            axum::routing::get(move || async move {
                (
                    StatusCode::FOUND,
                    [("location", format!("http://localhost:{port}/steal"))],
                    "",
                )
            }),
        )
        .route(
            "/steal",
            axum::routing::any(move || {
                let s2 = s2.clone();
                async move {
                    *s2.lock().unwrap() += 1;
                    "stolen"
                }
            }),
        )
        .route("/big", axum::routing::get(|| async { "x".repeat(3 * 1024 * 1024) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Peer {
        port,
        seen_auth,
        stolen,
    }
}

async fn store(app: &App, key: &str, body: Value) -> Value {
    let r = app.post("/v0/vault", key, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body
}

#[tokio::test]
async fn store_list_get_update_delete() {
    let app = App::new().await;
    let (_, _, a) = app.identity("alpha").await;
    let meta = store(&app, &a, json!({ "label": "crm", "value": MARKER })).await;
    assert_eq!(meta["name"], "crm");
    assert_eq!(meta["type"], "api_key");
    assert!(!meta.to_string().contains(MARKER));
    let r = app.post("/v0/vault", &a, json!({ "label": "crm", "value": "x" })).await;
    assert_error(&r, StatusCode::CONFLICT, "credential_exists");
    store(
        &app,
        &a,
        json!({ "name": "site", "type": "login", "username": "bob", "password": "pw-1234", "url": "https://site.test" }),
    )
    .await;
    let r = app.get("/v0/vault", &a).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    assert!(!r.text.contains(MARKER) && !r.text.contains("pw-1234"));
    let r = app.get("/v0/vault/site", &a).await;
    assert_eq!(r.body["username"], "bob");
    assert!(r.body.get("secrets").is_none(), "{}", r.text);
    let r = app.patch("/v0/vault/site", &a, json!({ "notes": "main login" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["notes"], "main login");
    let r = app.call(Method::DELETE, "/v0/vault/site", Some(&a), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.get("/v0/vault/site", &a).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    // Bad input.
    let r = app
        .post("/v0/vault", &a, json!({ "label": "bad name!", "value": "x" }))
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_name");
    let r = app
        .post("/v0/vault", &a, json!({ "label": "x", "type": "nope", "value": "x" }))
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_type");
    let r = app.post("/v0/vault", &a, json!({ "label": "x" })).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "missing_field");
    // A body without Content-Type is accepted, as elsewhere.
    let req = axum::http::Request::post("/v0/vault")
        .header("authorization", format!("Bearer {a}"))
        .body(axum::body::Body::from(r#"{"label":"nocontent","value":"v-123456"}"#))
        .unwrap();
    assert_eq!(app.raw(req).await.status, StatusCode::CREATED);
    // No secret in any audit row.
    let audit = app.get("/v0/audit?action=vault.&limit=200", &app.admin).await;
    assert!(audit.body["items"].as_array().unwrap().len() >= 6, "{}", audit.text);
    assert!(!audit.text.contains(MARKER) && !audit.text.contains("pw-1234"));
}

#[tokio::test]
async fn refusals_and_isolation() {
    let app = App::new().await;
    let (_, _, a) = app.identity("alpha").await;
    let (_, _, b) = app.identity("beta").await;
    store(
        &app,
        &a,
        json!({ "label": "crm", "value": MARKER, "allowed_hosts": ["127.0.0.1"] }),
    )
    .await;
    store(
        &app,
        &a,
        json!({ "name": "otp", "type": "totp", "secret": "GEZDGNBVGY3TQOJQ", "backup_codes": ["b1-xyz"] }),
    )
    .await;
    // No key; the operator is not an identity.
    let r = app.call(Method::GET, "/v0/vault", None, None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    let r = app.get("/v0/vault", &app.admin).await;
    assert_error(&r, StatusCode::FORBIDDEN, "identity_key_required");
    // B sees nothing of A's: every route is 404, like a missing name.
    for (m, path, body) in [
        (Method::GET, "/v0/vault/crm", None),
        (Method::GET, "/v0/vault/crm?reveal=true", None),
        (Method::PATCH, "/v0/vault/crm", Some(json!({ "notes": "mine" }))),
        (Method::DELETE, "/v0/vault/crm", None),
        (Method::GET, "/v0/vault/otp/totp", None),
        (Method::POST, "/v0/vault/otp/totp/backup", None),
        (
            Method::POST,
            "/v0/vault/crm/http",
            Some(json!({ "url": "http://127.0.0.1:9/" })),
        ),
    ] {
        let r = app.call(m.clone(), path, Some(&b), body).await;
        if path.ends_with("reveal=true") {
            // B lacks vault:reveal, which is checked first.
            assert_error(&r, StatusCode::FORBIDDEN, "missing_scope");
        } else {
            assert_error(&r, StatusCode::NOT_FOUND, "not_found");
        }
        assert!(!r.text.contains(MARKER));
    }
    let r = app.get("/v0/vault", &b).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 0);
    // A's credential is untouched.
    let r = app.get("/v0/vault/crm", &a).await;
    assert_eq!(r.status, StatusCode::OK);
    // Reveal needs vault:reveal; the operator grants it.
    let r = app.get("/v0/vault/crm?reveal=true", &a).await;
    assert_error(&r, StatusCode::FORBIDDEN, "missing_scope");
    assert!(!r.text.contains(MARKER));
    let me = app.get("/v0/whoami", &a).await;
    let id = me.body["identity"]["id"].as_str().unwrap().to_owned();
    let r = app
        .patch(
            &format!("/v0/identities/{id}"),
            &app.admin,
            json!({ "scopes": ["mail:read", "vault:read", "vault:write", "vault:reveal"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.get("/v0/vault/crm?reveal=true", &a).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["secrets"]["value"], MARKER);
    // A key without vault:write cannot store.
    let r = app
        .patch(
            &format!("/v0/identities/{id}"),
            &app.admin,
            json!({ "scopes": ["vault:read"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .post("/v0/vault", &a, json!({ "label": "x", "value": "y-123456" }))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "missing_scope");
    // Denials are audited.
    let audit = app
        .get("/v0/audit?outcome=denied&action=vault.&limit=200", &app.admin)
        .await;
    assert!(audit.body["items"].as_array().unwrap().len() >= 8, "{}", audit.text);
    // Rotation is the operator's.
    let r = app.post("/v0/vault/rotate-master-key", &a, json!({})).await;
    assert_error(&r, StatusCode::FORBIDDEN, "operator_only");
    let r = app.post("/v0/vault/rotate-master-key", &app.admin, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["rewrapped"], 0);
    // Revoking A makes its vault unusable at once.
    let r = app
        .post(&format!("/v0/identities/{id}/revoke"), &app.admin, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.get("/v0/vault/crm", &a).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn totp_and_backup_codes() {
    let app = App::new().await;
    let (_, _, a) = app.identity("alpha").await;
    store(
        &app,
        &a,
        json!({ "name": "gh", "type": "totp",
                "otpauth_uri": "otpauth://totp/GitHub:bot?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=GitHub&digits=8&period=60",
                "backup_codes": ["one-1111", "two-2222"] }),
    )
    .await;
    let r = app.get("/v0/vault/gh/totp", &a).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let code = r.body["code"].as_str().unwrap();
    assert_eq!(code.len(), 8);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(r.body["period"], 60);
    assert_eq!(r.body["digits"], 8);
    let left = r.body["seconds_remaining"].as_u64().unwrap();
    assert!((1..=60).contains(&left));
    let r1 = app.post("/v0/vault/gh/totp/backup", &a, json!({})).await;
    let r2 = app.post("/v0/vault/gh/totp/backup", &a, json!({})).await;
    assert_eq!(r1.body["code"], "one-1111", "{}", r1.text);
    assert_eq!(r2.body["code"], "two-2222");
    assert_eq!(r2.body["remaining"], 0);
    let r = app.post("/v0/vault/gh/totp/backup", &a, json!({})).await;
    assert_error(&r, StatusCode::CONFLICT, "no_backup_codes");
    let r = app
        .post(
            "/v0/vault",
            &a,
            json!({ "name": "bad", "type": "totp", "secret": "GEZDGNBV", "digits": 9 }),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_totp_digits");
    let audit = app.get("/v0/audit?action=vault.totp&limit=50", &app.admin).await;
    assert!(!audit.text.contains(code), "a TOTP code is in the audit log");
}

#[tokio::test]
async fn brokered_http() {
    let app = App::new().await;
    let p = peer().await;
    let (_, _, a) = app.identity("alpha").await;
    store(
        &app,
        &a,
        json!({ "label": "crm", "value": MARKER, "allowed_hosts": [format!("127.0.0.1:{}", p.port)] }),
    )
    .await;
    // The header arrives; the echoed secret comes back redacted, in body and headers.
    let r = app
        .post(
            "/v0/vault/crm/http",
            &a,
            json!({ "method": "GET", "url": format!("http://127.0.0.1:{}/echo", p.port) }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(p.seen_auth.lock().unwrap().last().unwrap(), &format!("Bearer {MARKER}"));
    assert_eq!(r.body["status"], 200);
    assert!(!r.text.contains(MARKER), "{}", r.text);
    assert!(r.body["body"].as_str().unwrap().contains("[REDACTED]"), "{}", r.text);
    assert!(r.body["headers"]["x-echo"].as_str().unwrap().contains("[REDACTED]"));
    assert!(r.body["redactions"].as_u64().unwrap() >= 2);
    // A host not on the allow-list is refused (localhost is another host than 127.0.0.1).
    let r = app
        .post(
            "/v0/vault/crm/http",
            &a,
            json!({ "url": format!("http://localhost:{}/echo", p.port) }),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "host_not_allowed");
    let r = app
        .post(
            "/v0/vault/crm/http",
            &a,
            json!({ "url": format!("http://127.0.0.1:{}/echo", p.port + 1) }),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "host_not_allowed");
    // A redirect to another host is returned, not followed.
    let r = app
        .post(
            "/v0/vault/crm/http",
            &a,
            json!({ "url": format!("http://127.0.0.1:{}/redirect", p.port) }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], 302);
    assert_eq!(*p.stolen.lock().unwrap(), 0, "the redirect was followed");
    // The response size is capped.
    let r = app
        .post(
            "/v0/vault/crm/http",
            &a,
            json!({ "url": format!("http://127.0.0.1:{}/big", p.port) }),
        )
        .await;
    assert_eq!(r.body["truncated"], true);
    assert_eq!(r.body["body"].as_str().unwrap().len(), 1024 * 1024);
    // The caller cannot set the credential's header itself.
    let r = app
        .post(
            "/v0/vault/crm/http",
            &a,
            json!({ "url": format!("http://127.0.0.1:{}/echo", p.port), "headers": { "Authorization": "x" } }),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_header");
    // Basic auth and a named header.
    store(
        &app,
        &a,
        json!({ "name": "site", "type": "login", "username": "bob", "password": MARKER,
                "allowed_hosts": ["127.0.0.1"], "inject": "basic" }),
    )
    .await;
    let r = app
        .post(
            "/v0/vault/site/http",
            &a,
            json!({ "url": format!("http://127.0.0.1:{}/echo", p.port) }),
        )
        .await;
    assert_eq!(r.body["status"], 200, "{}", r.text);
    assert!(p.seen_auth.lock().unwrap().last().unwrap().starts_with("Basic "));
    assert!(!r.text.contains(MARKER) && r.text.contains("[REDACTED]"), "{}", r.text);
    store(
        &app,
        &a,
        json!({ "label": "hdr", "value": MARKER, "allowed_hosts": ["127.0.0.1"], "inject": "header:X-Api-Key" }),
    )
    .await;
    let r = app
        .post(
            "/v0/vault/hdr/http",
            &a,
            json!({ "url": format!("http://127.0.0.1:{}/echo", p.port), "method": "POST", "body": "hi" }),
        )
        .await;
    assert_eq!(p.seen_auth.lock().unwrap().last().unwrap(), MARKER);
    assert!(!r.text.contains(MARKER), "{}", r.text);
    // Each call is audited with its host and status; never the secret.
    let audit = app.get("/v0/audit?action=vault.http&limit=50", &app.admin).await;
    let items = audit.body["items"].as_array().unwrap();
    assert!(items.iter().any(|i| i["details"]["status"] == 302));
    assert!(
        items
            .iter()
            .any(|i| i["outcome"] == "denied" && i["details"]["host"] == format!("localhost:{}", p.port))
    );
    assert!(!audit.text.contains(MARKER));
}

#[tokio::test]
async fn brokered_http_to_a_dead_host_is_502_and_names_only_the_host() {
    let app = App::new().await;
    let (_, _, a) = app.identity("alpha").await;
    // Nothing listens on port 1.
    store(
        &app,
        &a,
        json!({ "label": "crm", "value": MARKER, "allowed_hosts": ["127.0.0.1:1"] }),
    )
    .await;
    let r = app
        .post(
            "/v0/vault/crm/http",
            &a,
            json!({ "method": "GET", "url": "http://127.0.0.1:1/x" }),
        )
        .await;
    assert_error(&r, StatusCode::BAD_GATEWAY, "upstream_failed");
    assert!(r.text.contains("127.0.0.1"), "{}", r.text);
    assert!(!r.text.contains(MARKER) && !r.text.contains("database"), "{}", r.text);
}
