//! Arbitrary Unicode through the REST door (issue 13), on SQLite: the strings of
//! [`loft_testkit::unicode`] in JSON bodies, percent-encoded query values and percent-encoded
//! path segments of the send, reply, label, identity, key, vault and audit routes.
//!
//! Every answer must be a 2xx or a 4xx (never a 5xx, never a dropped connection: a panic
//! would surface as the panic layer's 500); a 4xx carries Loft's error body
//! (`{"error": {"code", "message", ...}}`); a 2xx's JSON echoes the text as stored (subjects
//! and bodies byte for byte, names and notes trimmed); and a message accepted with a subject
//! can be replied to. Each answer is also checked against the OpenAPI document (by
//! [`App::raw`]). The core-level test on both backends side by side is
//! `crates/loft/tests/unicode_differential.rs`.

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use loft_core::mail::reply_subject;
use loft_testkit::unicode::{CaseResult, TestCaseError, fail, percent_encode as pct, run_cases};
use serde_json::{Value, json};

use crate::{App, Resp};

/// Generated cases per run (each is some 45 requests).
const CASES: u32 = 48;

struct Fixture {
    app: App,
    alice_id: String,
    alice: String,
    bob_addr: String,
    bob: String,
    /// Alice's sent copy of a message to Bob (labels go on it).
    alice_copy: String,
    /// Bob's copy of it (Bob replies to it).
    bob_copy: String,
}

impl Fixture {
    async fn new() -> Self {
        let app = App::new().await;
        let scopes = json!([
            "mail:read",
            "mail:send",
            "mail:manage",
            "keys:manage",
            "vault:read",
            "vault:write",
            "vault:reveal"
        ]);
        let mut ids = Vec::new();
        for name in ["alice", "bob"] {
            let r = app
                .post("/v0/identities", &app.admin, json!({ "name": name, "scopes": scopes }))
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
            ids.push((
                str_of(&r.body["id"]),
                str_of(&r.body["address"]),
                str_of(&r.body["api_key"]),
            ));
        }
        let [(alice_id, _, alice), (_, bob_addr, bob)] = <[_; 2]>::try_from(ids).unwrap();
        let sent = app.send(&alice, &bob_addr, "seed").await;
        let inbox = app.get("/v0/messages?limit=1", &bob).await;
        let r = app
            .post(
                "/v0/vault",
                &alice,
                json!({ "name": "fixed", "value": "fixed-secret-value" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        Self {
            alice_copy: str_of(&sent["id"]),
            bob_copy: str_of(&inbox.body["items"][0]["id"]),
            app,
            alice_id,
            alice,
            bob_addr,
            bob,
        }
    }

    async fn call(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Resp {
        self.app.call(method, path, Some(key), body).await
    }

    /// The newest message in the inbox of `key`, read whole.
    async fn newest(&self, what: &str, s: &str, key: &str) -> Result<Value, TestCaseError> {
        let list = self.app.get("/v0/messages?limit=1", key).await;
        ok(what, s, &list, StatusCode::OK)?;
        let id = str_of(&list.body["items"][0]["id"]);
        let got = self.app.get(&format!("/v0/messages/{id}"), key).await;
        ok(what, s, &got, StatusCode::OK)?;
        Ok(got.body)
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// A 2xx, or a 4xx with Loft's error body; never a 5xx.
fn well_formed(what: &str, s: &str, r: &Resp) -> CaseResult {
    if !(r.status.is_success() || r.status.is_client_error()) {
        return Err(fail(what, s, format!("answered {}: {}", r.status, r.text)));
    }
    if r.status.is_client_error() {
        let e = &r.body["error"];
        let text = |v: &Value| v.as_str().is_some_and(|t| !t.is_empty());
        if !(text(&e["code"]) && text(&e["message"])) {
            return Err(fail(
                what,
                s,
                format!("a {} without Loft's error body: {:?}", r.status, r.text),
            ));
        }
    } else if r.status != StatusCode::NO_CONTENT && r.body.is_null() {
        return Err(fail(
            what,
            s,
            format!("a {} without a JSON body: {:?}", r.status, r.text),
        ));
    }
    Ok(())
}

/// [`well_formed`], and accepted with `status`.
fn ok(what: &str, s: &str, r: &Resp, status: StatusCode) -> CaseResult {
    well_formed(what, s, r)?;
    if r.status == status {
        Ok(())
    } else {
        Err(fail(
            what,
            s,
            format!("expected {status}, got {}: {}", r.status, r.text),
        ))
    }
}

/// A field of an accepted answer holds what it should.
fn echo(what: &str, s: &str, got: &Value, want: &Value) -> CaseResult {
    if got == want {
        Ok(())
    } else {
        Err(fail(what, s, format!("answered {got}, not {want}")))
    }
}

/// Plain metadata as stored: trimmed, empty meaning none.
fn cleaned(s: &str) -> Value {
    let t = s.trim();
    if t.is_empty() { Value::Null } else { json!(t) }
}

async fn case(f: &Fixture, s: &str, n: usize) -> CaseResult {
    mail(f, s).await?;
    labels(f, s).await?;
    identities(f, s).await?;
    vault(f, s, n).await?;
    queries_and_paths(f, s).await
}

async fn mail(f: &Fixture, s: &str) -> CaseResult {
    // The subject: echoed, received intact, and a reply to it works.
    let send = |subject: &str, text: &str, html: Option<&str>| json!({ "to": f.bob_addr, "subject": subject, "text": text, "html": html });
    let r = f
        .call(Method::POST, "/v0/messages/send", &f.alice, Some(send(s, "body", None)))
        .await;
    well_formed("send: subject", s, &r)?;
    if r.status.is_success() {
        echo("send: subject", s, &r.body["subject"], &json!(s))?;
        let got = f.newest("send: the recipient's copy", s, &f.bob).await?;
        echo("send: the subject received", s, &got["subject"], &json!(s))?;
        let id = str_of(&got["id"]);
        let r = f
            .call(
                Method::POST,
                &format!("/v0/messages/{id}/reply"),
                &f.bob,
                Some(json!({ "text": "re" })),
            )
            .await;
        ok("reply to that subject", s, &r, StatusCode::CREATED)?;
        echo("reply: its subject", s, &r.body["subject"], &json!(reply_subject(s)))?;
    }

    // The bodies.
    for (what, body) in [
        ("send: text", send("t", s, None)),
        ("send: html", send("h", "x", Some(s))),
    ] {
        let r = f.call(Method::POST, "/v0/messages/send", &f.alice, Some(body)).await;
        well_formed(what, s, &r)?;
        if r.status.is_success() {
            let field = if what.ends_with("text") { "text" } else { "html" };
            echo(what, s, &r.body[field], &json!(s))?;
            let got = f.newest(what, s, &f.bob).await?;
            echo(what, s, &got[field], &json!(s))?;
        }
    }

    // A reply's text and HTML.
    let path = format!("/v0/messages/{}/reply", f.bob_copy);
    for (what, body) in [
        ("reply: text", json!({ "text": s })),
        ("reply: html", json!({ "text": "x", "html": s })),
    ] {
        let r = f.call(Method::POST, &path, &f.bob, Some(body)).await;
        well_formed(what, s, &r)?;
        if r.status.is_success() {
            let field = if what.ends_with("text") { "text" } else { "html" };
            echo(what, s, &r.body[field], &json!(s))?;
        }
    }
    Ok(())
}

async fn labels(f: &Fixture, s: &str) -> CaseResult {
    let path = format!("/v0/messages/{}", f.alice_copy);
    let r = f
        .call(Method::PATCH, &path, &f.alice, Some(json!({ "add_labels": [s] })))
        .await;
    well_formed("label: add", s, &r)?;
    let added = r.status.is_success();
    if added {
        let label = json!(s.trim().to_ascii_lowercase());
        let has = r.body["labels"].as_array().is_some_and(|l| l.contains(&label));
        echo("label: the message's labels", s, &json!(has), &json!(true))?;
    }
    for route in ["/v0/messages?folder=all&label=", "/v0/threads?label="] {
        let r = f.app.get(&format!("{route}{}", pct(s)), &f.alice).await;
        well_formed("label: filter", s, &r)?;
        if added {
            ok("label: filter by a label just added", s, &r, StatusCode::OK)?;
            let found = r.body["items"].as_array().map_or(0, Vec::len);
            echo("label: filter finds it", s, &json!(found > 0), &json!(true))?;
        }
    }
    let r = f
        .call(Method::PATCH, &path, &f.alice, Some(json!({ "remove_labels": [s] })))
        .await;
    well_formed("label: remove", s, &r)?;
    Ok(())
}

async fn identities(f: &Fixture, s: &str) -> CaseResult {
    let admin = f.app.admin.as_str();
    let r = f
        .call(Method::POST, "/v0/identities", admin, Some(json!({ "name": s })))
        .await;
    well_formed("identity: name", s, &r)?;
    if r.status.is_success() {
        echo("identity: name", s, &r.body["name"], &json!(s.trim()))?;
    }
    let r = f
        .call(
            Method::POST,
            "/v0/identities",
            admin,
            Some(json!({ "name": "dn", "display_name": s })),
        )
        .await;
    well_formed("identity: display name", s, &r)?;
    if r.status.is_success() {
        echo("identity: display name", s, &r.body["display_name"], &cleaned(s))?;
    }
    let r = f
        .call(
            Method::POST,
            "/v0/identities",
            admin,
            Some(json!({ "name": "lp", "local_part": s })),
        )
        .await;
    well_formed("identity: local part", s, &r)?;
    let r = f
        .call(
            Method::PATCH,
            &format!("/v0/identities/{}", f.alice_id),
            admin,
            Some(json!({ "display_name": s })),
        )
        .await;
    well_formed("identity: display name update", s, &r)?;
    if r.status.is_success() {
        echo("identity: display name update", s, &r.body["display_name"], &cleaned(s))?;
        // Mail from it, with the name in `From:`, is delivered with the name intact.
        let body = json!({ "to": f.bob_addr, "subject": "from", "text": "body" });
        let r = f.call(Method::POST, "/v0/messages/send", &f.alice, Some(body)).await;
        ok("send: with that display name", s, &r, StatusCode::CREATED)?;
        let got = f.newest("send: with that display name", s, &f.bob).await?;
        echo("send: the sender's name received", s, &got["from_name"], &cleaned(s))?;
    }
    let r = f
        .call(
            Method::POST,
            &format!("/v0/identities/{}/keys", f.alice_id),
            admin,
            Some(json!({ "label": s })),
        )
        .await;
    well_formed("key: label", s, &r)?;
    if r.status.is_success() {
        echo("key: label", s, &r.body["label"], &cleaned(s))?;
    }
    Ok(())
}

async fn vault(f: &Fixture, s: &str, n: usize) -> CaseResult {
    // The name, in the body and then in the path.
    let r = f
        .call(
            Method::POST,
            "/v0/vault",
            &f.alice,
            Some(json!({ "name": s, "value": "a-secret-value" })),
        )
        .await;
    well_formed("vault: name", s, &r)?;
    if r.status.is_success() {
        echo("vault: name", s, &r.body["name"], &json!(s.trim()))?;
        let path = format!("/v0/vault/{}", pct(s));
        let r = f.app.get(&path, &f.alice).await;
        ok("vault: get by that name", s, &r, StatusCode::OK)?;
        echo("vault: get by that name", s, &r.body["name"], &json!(s.trim()))?;
        let r = f.call(Method::DELETE, &path, &f.alice, None).await;
        ok("vault: delete by that name", s, &r, StatusCode::NO_CONTENT)?;
    }

    // A secret, kept as it is and revealed intact.
    let name = format!("value-{n}");
    let r = f
        .call(
            Method::POST,
            "/v0/vault",
            &f.alice,
            Some(json!({ "name": name, "value": s })),
        )
        .await;
    well_formed("vault: value", s, &r)?;
    if r.status.is_success() {
        let r = f.app.get(&format!("/v0/vault/{name}?reveal=true"), &f.alice).await;
        ok("vault: reveal", s, &r, StatusCode::OK)?;
        echo("vault: the revealed value", s, &r.body["secrets"]["value"], &json!(s))?;
        // Gone again: the exfiltration guard would hold a later case's mail that quotes it.
        let r = f
            .call(Method::DELETE, &format!("/v0/vault/{name}"), &f.alice, None)
            .await;
        ok("vault: delete the value", s, &r, StatusCode::NO_CONTENT)?;
    }

    // Plain metadata.
    for (field, body) in [
        ("notes", json!({ "value": "a-secret-value", "notes": s })),
        (
            "username",
            json!({ "type": "login", "password": "a-secret-password", "username": s }),
        ),
        (
            "url",
            json!({ "type": "login", "password": "a-secret-password", "username": "me", "url": s }),
        ),
    ] {
        let mut body = body;
        body["name"] = json!(format!("{field}-{n}"));
        let what = format!("vault: {field}");
        let r = f.call(Method::POST, "/v0/vault", &f.alice, Some(body)).await;
        well_formed(&what, s, &r)?;
        if r.status.is_success() {
            echo(&what, s, &r.body[field], &cleaned(s))?;
        }
    }
    let r = f
        .call(Method::PATCH, "/v0/vault/fixed", &f.alice, Some(json!({ "notes": s })))
        .await;
    well_formed("vault: notes update", s, &r)?;
    if r.status.is_success() {
        echo("vault: notes update", s, &r.body["notes"], &cleaned(s))?;
    }
    Ok(())
}

async fn queries_and_paths(f: &Fixture, s: &str) -> CaseResult {
    let admin = f.app.admin.as_str();
    let e = pct(s);
    // Query values.
    for (what, path, key) in [
        ("audit: action", format!("/v0/audit?action={e}"), admin),
        ("audit: action prefix", format!("/v0/audit?action={e}."), admin),
        ("audit: identity", format!("/v0/audit?identity={e}"), admin),
        ("audit: outcome", format!("/v0/audit?outcome={e}"), admin),
        ("audit: since", format!("/v0/audit?since={e}"), admin),
        ("audit: cursor", format!("/v0/audit?cursor={e}"), admin),
        ("messages: from", format!("/v0/messages?from={e}"), &f.bob),
        ("messages: folder", format!("/v0/messages?folder={e}"), &f.bob),
        ("threads: folder", format!("/v0/threads?folder={e}"), &f.bob),
        ("messages: thread_id", format!("/v0/messages?thread_id={e}"), &f.bob),
        ("messages: cursor", format!("/v0/messages?cursor={e}"), &f.bob),
        ("messages: limit", format!("/v0/messages?limit={e}"), &f.bob),
        ("messages: unknown parameter", format!("/v0/messages?{e}=1"), &f.bob),
        (
            "wait: after",
            format!("/v0/messages/wait?timeout_seconds=0&after={e}"),
            &f.bob,
        ),
        ("vault: reveal", format!("/v0/vault/fixed?reveal={e}"), &f.alice),
    ] {
        let r = f.app.get(&path, key).await;
        well_formed(what, s, &r)?;
    }
    // Ids and names in paths: never one of ours, so a 4xx.
    for (what, method, path, key, body) in [
        (
            "message id: get",
            Method::GET,
            format!("/v0/messages/{e}"),
            f.bob.as_str(),
            None,
        ),
        (
            "message id: raw",
            Method::GET,
            format!("/v0/messages/{e}/raw"),
            &f.bob,
            None,
        ),
        (
            "message id: reply",
            Method::POST,
            format!("/v0/messages/{e}/reply"),
            &f.bob,
            Some(json!({ "text": "x" })),
        ),
        (
            "message id: update",
            Method::PATCH,
            format!("/v0/messages/{e}"),
            &f.bob,
            Some(json!({ "unread": true })),
        ),
        ("thread id: get", Method::GET, format!("/v0/threads/{e}"), &f.bob, None),
        (
            "thread id: update",
            Method::PATCH,
            format!("/v0/threads/{e}"),
            &f.bob,
            Some(json!({ "archived": true })),
        ),
        (
            "thread id: delete",
            Method::DELETE,
            format!("/v0/threads/{e}"),
            &f.bob,
            None,
        ),
        (
            "message id: delete",
            Method::DELETE,
            format!("/v0/messages/{e}"),
            &f.bob,
            None,
        ),
        (
            "identity id: get",
            Method::GET,
            format!("/v0/identities/{e}"),
            admin,
            None,
        ),
        (
            "identity id: update",
            Method::PATCH,
            format!("/v0/identities/{e}"),
            admin,
            Some(json!({ "display_name": "x" })),
        ),
        (
            "identity id: keys",
            Method::GET,
            format!("/v0/identities/{e}/keys"),
            admin,
            None,
        ),
        ("key id: revoke", Method::DELETE, format!("/v0/keys/{e}"), admin, None),
    ] {
        let r = f.call(method, &path, key, body).await;
        well_formed(what, s, &r)?;
        if r.status.is_success() {
            return Err(fail(what, s, format!("accepted an id that is not ours: {}", r.text)));
        }
    }
    // A vault name in the path may name a credential (`fixed`, `value-1`): no 5xx.
    for (what, method, path, body) in [
        ("vault name: get", Method::GET, format!("/v0/vault/{e}"), None),
        ("vault name: totp", Method::GET, format!("/v0/vault/{e}/totp"), None),
        (
            "vault name: update",
            Method::PATCH,
            format!("/v0/vault/{e}"),
            Some(json!({ "notes": "n" })),
        ),
    ] {
        let r = f.call(method, &path, &f.alice, body).await;
        well_formed(what, s, &r)?;
    }
    // The key itself, where a header can carry it.
    if let Ok(v) = HeaderValue::from_bytes(format!("Bearer {s}").as_bytes()) {
        let req = Request::builder()
            .uri("/v0/whoami")
            .header(header::AUTHORIZATION, v)
            .body(Body::empty())
            .unwrap();
        let r = f.app.raw(req).await;
        ok("authenticate: the key", s, &r, StatusCode::UNAUTHORIZED)?;
    }
    Ok(())
}

#[test]
fn unicode_through_every_text_field_gets_a_well_formed_answer() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fixture = rt.block_on(Fixture::new());
    let started = std::time::Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let ran = run_cases(CASES, |s| {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        rt.block_on(case(&fixture, s, n))
    });
    let verified = rt.block_on(fixture.app.get("/v0/audit/verify", &fixture.app.admin));
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.text);
    assert_eq!(verified.body["ok"], true, "{}", verified.text);
    eprintln!(
        "{ran} inputs through the REST door in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Bytes that are not UTF-8 at all, where a client can send them: percent-encoded in a path
/// (400 `invalid_path`; this used to be axum's plain-text 400) or a query (decoded with
/// U+FFFD in their place, as form decoding does), and raw in a JSON body (400
/// `malformed_json`). Never the framework's plain text, never a 5xx.
#[tokio::test]
async fn bytes_that_are_not_utf8_get_loft_errors() {
    let app = App::new().await;
    let (_, _, key) = app.identity("agent").await;
    for path in [
        "/v0/messages/%FF",
        "/v0/messages/msg_%C3/reply",
        "/v0/vault/%FF%FE",
        "/v0/identities/%E2%82",
        "/v0/keys/%C0%80",
    ] {
        let method = if path.ends_with("reply") {
            Method::POST
        } else if path.starts_with("/v0/keys") {
            Method::DELETE
        } else {
            Method::GET
        };
        let r = app.call(method, path, Some(&key), Some(json!({ "text": "x" }))).await;
        crate::assert_error(&r, StatusCode::BAD_REQUEST, "invalid_path");
    }
    for path in [
        "/v0/messages?label=%FF",
        "/v0/audit?action=%C3",
        "/v0/messages?from=%FF%FE",
    ] {
        let r = app.get(path, &key).await;
        assert!(
            r.status.is_success() || r.body["error"]["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{path}: {} {:?}",
            r.status,
            r.text
        );
        assert!(!r.status.is_server_error(), "{path}: {} {}", r.status, r.text);
    }
    let mut body = br#"{"to": "a@agents.test", "subject": ""#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(br#"", "text": "x"}"#);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v0/messages/send")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    let r = app.raw(req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "malformed_json", "{}", r.text);
}
