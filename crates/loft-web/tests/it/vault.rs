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
    let r = app
        .post("/v0/vault", &a, json!({ "label": "crm", "value": "x-value-1" }))
        .await;
    assert_error(&r, StatusCode::CONFLICT, "credential_exists");
    store(
        &app,
        &a,
        json!({ "name": "site", "type": "login", "username": "bob", "password": "pw-12345", "url": "https://site.test" }),
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

/// A local HTTP server on `addr` (a loopback address) that counts every request it gets and
/// answers `/v0/health` like Loft would; `/straddle` is a body over the size cap with the
/// secret across the cap. `None` where `addr` cannot be bound (no IPv6 loopback).
async fn counting_peer(addr: &str) -> Option<(u16, Arc<Mutex<u32>>)> {
    let hits = Arc::new(Mutex::new(0));
    let listener = tokio::net::TcpListener::bind(addr).await.ok()?;
    let port = listener.local_addr().unwrap().port();
    let h = hits.clone();
    let app = axum::Router::new()
        .route(
            "/straddle",
            axum::routing::get(|| async { format!("{}{MARKER}{}", "x".repeat(1024 * 1024 - 5), "y".repeat(100)) }),
        )
        .fallback(|| async { r#"{"status":"ok","internal":"only for this machine"}"# })
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                *h.lock().unwrap() += 1;
                next.run(req)
            },
        ));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Some((port, hits))
}

/// The live defect: a credential whose allow-list names loopback let an agent have the server
/// fetch its own loopback services. Under the default egress policy every loopback spelling is
/// refused with 403 `egress_denied` naming the host and rule, and nothing reaches the server;
/// with the operator's allowance the same calls work.
#[tokio::test]
async fn brokered_http_to_loopback_needs_the_operator_allowance() {
    let (v4_port, v4_hits) = counting_peer("127.0.0.1:0").await.unwrap();
    let v6 = counting_peer("[::1]:0").await;
    let v6_port = v6.as_ref().map_or(v4_port, |(p, _)| *p);
    let urls = [
        format!("http://127.0.0.1:{v4_port}/v0/health"),
        format!("http://localhost:{v4_port}/v0/health"),
        format!("http://[::ffff:127.0.0.1]:{v4_port}/v0/health"),
        format!("http://[::1]:{v6_port}/v0/health"),
    ];
    let hosts = json!(["127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0"]);
    let hits = || *v4_hits.lock().unwrap() + v6.as_ref().map_or(0, |(_, h)| *h.lock().unwrap());

    let strict = App::with_egress(loft_broker::EgressPolicy::default()).await;
    let (_, _, a) = strict.identity("alpha").await;
    store(
        &strict,
        &a,
        json!({ "label": "self", "value": MARKER, "allowed_hosts": hosts }),
    )
    .await;
    for url in &urls {
        let r = strict.post("/v0/vault/self/http", &a, json!({ "url": url })).await;
        assert_error(&r, StatusCode::FORBIDDEN, "egress_denied");
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("rule `loopback`"), "{url}: {message}");
        let hint = r.body["error"]["hint"].as_str().unwrap_or_default();
        assert!(
            hint.contains("--egress-allow") && hint.contains("LOFT_EGRESS_ALLOW"),
            "{hint}"
        );
        assert!(
            !r.text.contains(MARKER) && !r.text.contains("only for this machine"),
            "{}",
            r.text
        );
    }
    let r = strict
        .post(
            "/v0/vault/self/http",
            &a,
            json!({ "url": format!("http://0.0.0.0:{v4_port}/v0/health") }),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "egress_denied");
    assert!(r.text.contains("rule `unspecified`"), "{}", r.text);
    assert_eq!(hits(), 0, "a refused request reached the local server");
    let audit = strict.get("/v0/audit?action=vault.http&limit=50", &strict.admin).await;
    assert!(audit.text.contains("egress_denied"), "{}", audit.text);
    assert_eq!(audit.body["items"][0]["outcome"], "denied", "{}", audit.text);

    // The operator allows loopback: the same calls go through (and are still redacted).
    let allowed = App::with_egress(loft_broker::EgressPolicy::parse(["127.0.0.1", "::1", "localhost"]).unwrap()).await;
    let (_, _, b) = allowed.identity("beta").await;
    store(
        &allowed,
        &b,
        json!({ "label": "self", "value": MARKER, "allowed_hosts": hosts }),
    )
    .await;
    for url in urls.iter().filter(|u| v6.is_some() || !u.contains("[::1]")) {
        let r = allowed.post("/v0/vault/self/http", &b, json!({ "url": url })).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.text);
        assert_eq!(r.body["status"], 200, "{url}");
        assert!(
            r.body["body"].as_str().unwrap().contains("only for this machine"),
            "{}",
            r.text
        );
    }
    let expected = if v6.is_some() { 4 } else { 3 };
    assert_eq!(hits(), expected);
    // An allowance for 127.0.0.1 does not open 0.0.0.0 (which reaches this machine too).
    let r = allowed
        .post(
            "/v0/vault/self/http",
            &b,
            json!({ "url": format!("http://0.0.0.0:{v4_port}/v0/health") }),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "egress_denied");
    assert_eq!(hits(), expected);

    // A secret across the size cap is not split: no prefix of it is returned.
    let r = allowed
        .post(
            "/v0/vault/self/http",
            &b,
            json!({ "url": format!("http://127.0.0.1:{v4_port}/straddle") }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["truncated"], true);
    let body = r.body["body"].as_str().unwrap();
    assert!(body.len() <= 1024 * 1024, "{}", body.len());
    assert!(
        !body.contains("vault") && !body.contains('y'),
        "{}",
        &body[body.len() - 40..]
    );
}

/// The outside probe's attack, end to end: a key with the default scopes (`vault:read`,
/// `vault:write`) re-points a stored credential at a host it controls with a PATCH that does
/// not resend the secret, then makes a brokered call there to read the injected header. Every
/// such PATCH is 403 `reveal_required_to_widen` (audited), the credential is unchanged, and the
/// caller's server never sees the secret. Narrowing still works; re-pointing with a new value
/// only ever sends the caller's own value; with `vault:reveal` the change is allowed.
#[tokio::test]
async fn widening_a_credential_needs_vault_reveal() {
    let app = App::new().await;
    let api = peer().await;
    let mine = peer().await;
    let (_, _, a) = app.identity("alpha").await;
    let api_host = format!("127.0.0.1:{}", api.port);
    let my_host = format!("127.0.0.1:{}", mine.port);
    store(
        &app,
        &a,
        json!({ "label": "crm", "value": MARKER, "allowed_hosts": [api_host] }),
    )
    .await;
    for patch in [
        json!({ "allowed_hosts": [my_host] }),
        json!({ "allowed_hosts": [api_host, my_host] }),
        json!({ "allowed_hosts": ["127.0.0.1"] }),
        json!({ "inject": "header:X-Api-Key" }),
        json!({ "inject": "basic", "notes": "harmless" }),
    ] {
        let r = app.patch("/v0/vault/crm", &a, patch.clone()).await;
        assert_error(&r, StatusCode::FORBIDDEN, "reveal_required_to_widen");
        assert!(
            r.body["error"]["hint"].as_str().unwrap().contains("vault:write"),
            "{}",
            r.text
        );
        assert!(!r.text.contains(MARKER));
    }
    let r = app.get("/v0/vault/crm", &a).await;
    assert_eq!(r.body["allowed_hosts"], json!([api_host]), "{}", r.text);
    assert!(
        r.body.get("inject").is_none() && r.body.get("notes").is_none(),
        "{}",
        r.text
    );
    assert_eq!(r.body["version"], 1);
    let r = app
        .post(
            "/v0/vault/crm/http",
            &a,
            json!({ "url": format!("http://{my_host}/echo") }),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "host_not_allowed");
    assert!(
        mine.seen_auth.lock().unwrap().is_empty(),
        "the caller's server was called"
    );
    let audit = app
        .get("/v0/audit?action=vault.update&outcome=denied&limit=50", &app.admin)
        .await;
    let items = audit.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 5, "{}", audit.text);
    assert!(
        items
            .iter()
            .all(|i| i["details"]["reason"] == "reveal_required_to_widen" && i["target"] == "crm"),
        "{}",
        audit.text
    );
    // Narrowing needs only vault:write; putting the host back is widening again.
    let r = app.patch("/v0/vault/crm", &a, json!({ "allowed_hosts": [] })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .patch("/v0/vault/crm", &a, json!({ "allowed_hosts": [api_host] }))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "reveal_required_to_widen");
    // With a new value, the caller's server only ever gets what the caller sent itself.
    let own = "callers-own-value-123";
    let r = app
        .patch("/v0/vault/crm", &a, json!({ "value": own, "allowed_hosts": [my_host] }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .post(
            "/v0/vault/crm/http",
            &a,
            json!({ "url": format!("http://{my_host}/echo") }),
        )
        .await;
    assert_eq!(r.body["status"], 200, "{}", r.text);
    assert_eq!(mine.seen_auth.lock().unwrap().as_slice(), [format!("Bearer {own}")]);
    // With vault:reveal (the secret could be read anyway), widening is allowed.
    store(
        &app,
        &a,
        json!({ "label": "crm2", "value": MARKER, "allowed_hosts": [api_host] }),
    )
    .await;
    let me = app.get("/v0/whoami", &a).await;
    let id = me.body["identity"]["id"].as_str().unwrap().to_owned();
    let r = app
        .patch(
            &format!("/v0/identities/{id}"),
            &app.admin,
            json!({ "scopes": ["vault:read", "vault:write", "vault:reveal"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .patch(
            "/v0/vault/crm2",
            &a,
            json!({ "allowed_hosts": [api_host, my_host], "inject": "header:X-Api-Key" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Until then, no request to the caller's server carried the stored secret.
    assert!(!mine.seen_auth.lock().unwrap().iter().any(|s| s.contains(MARKER)));
    // A short secret is refused for a credential that brokered HTTP can inject.
    let r = app
        .post("/v0/vault", &a, json!({ "label": "pin", "value": "1234" }))
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "secret_too_short");
    assert!(
        r.text.contains("`value`") && r.text.contains("at least 8"),
        "{}",
        r.text
    );
}

/// An echo that transforms the secret it received (hex, upper-case hex, reversed, spaced out)
/// still comes back redacted.
#[tokio::test]
async fn brokered_responses_are_redacted_in_transformed_forms() {
    let app = axum::Router::new().route(
        "/transform",
        axum::routing::any(|headers: HeaderMap| async move {
            let key = headers["x-api-key"].to_str().unwrap().to_owned();
            let hex: String = key
                .bytes()
                .flat_map(|b| [b >> 4, b & 15])
                .map(|d| char::from_digit(d.into(), 16).unwrap())
                .collect();
            let reversed: String = key.chars().rev().collect();
            let spaced = key.chars().map(String::from).collect::<Vec<_>>().join(" ");
            let dotted = key.chars().map(String::from).collect::<Vec<_>>().join(".");
            format!(
                "hex={hex}\nHEX={}\nrev={reversed}\nspaced={spaced}\ndotted={dotted}\n",
                hex.to_uppercase()
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let loft = App::new().await;
    let (_, _, a) = loft.identity("alpha").await;
    store(
        &loft,
        &a,
        json!({ "label": "crm", "value": MARKER, "allowed_hosts": [format!("127.0.0.1:{port}")],
                "inject": "header:X-Api-Key" }),
    )
    .await;
    let r = loft
        .post(
            "/v0/vault/crm/http",
            &a,
            json!({ "url": format!("http://127.0.0.1:{port}/transform") }),
        )
        .await;
    assert_eq!(r.body["status"], 200, "{}", r.text);
    let body = r.body["body"].as_str().unwrap();
    assert_eq!(
        body,
        "hex=[REDACTED]\nHEX=[REDACTED]\nrev=[REDACTED]\nspaced=[REDACTED]\ndotted=[REDACTED]\n"
    );
    assert_eq!(r.body["redactions"], 5);
}
