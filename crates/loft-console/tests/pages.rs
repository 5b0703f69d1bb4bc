//! HTTP tests of the console's identity, mail, vault, domains and audit pages (issue 11,
//! part A), through the real routers on a real SQLite file without sockets, as `loft serve`
//! composes them: reviewers refused on every operator page, the vault page never showing a
//! value, each mail opening audited and leaving the mail unread, mode and scope changes held to
//! the core rules, pause refusing the key at `/v0` and resume restoring it, the domains'
//! records and live check, the audit page's time filters and export.

#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::too_many_lines,
    reason = "tests"
)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use loft_core::keys::Scope;
use loft_core::mail::SendMail;
use loft_core::service::{Actor, CreateIdentityRequest, StoreCredentialRequest};
use loft_testkit::{StaticDns, TEST_DOMAIN, TestLoft};
use tower::ServiceExt;

struct App {
    router: Router,
    t: TestLoft,
    _dir: tempfile::TempDir,
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

async fn app_with_dns(dns: StaticDns) -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = loft_store_sqlite::SqliteStore::open(&dir.path().join("loft.db"))
        .await
        .unwrap();
    let t = loft_testkit::test_loft_with_dns(Arc::new(store), dns);
    let state = loft_web::AppState {
        loft: t.loft.clone(),
        config: Arc::new(loft_web::WebConfig::default()),
    };
    let router = loft_web::router(state).merge(loft_console::router(
        t.loft.clone(),
        loft_console::ConsoleConfig::default(),
    ));
    App { router, t, _dir: dir }
}

async fn app() -> App {
    app_with_dns(StaticDns::default()).await
}

impl App {
    async fn call(&self, method: Method, path: &str, cookie: Option<&str>, form: Option<&[(&str, &str)]>) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, format!("loft_session={c}"));
        }
        let body = match form {
            Some(f) => {
                req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(serde_urlencoded::to_string(f).unwrap())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    async fn send(&self, req: Request<Body>) -> Resp {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        Resp {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, path: &str, cookie: &str) -> Resp {
        self.call(Method::GET, path, Some(cookie), None).await
    }

    /// A form post with the session's CSRF token added.
    async fn post(&self, path: &str, cookie: &str, form: &[(&str, &str)]) -> Resp {
        let csrf = loft_core::console::csrf_token(cookie);
        let mut f = vec![("csrf", csrf.as_str())];
        f.extend_from_slice(form);
        self.call(Method::POST, path, Some(cookie), Some(&f)).await
    }

    /// `GET /v0/whoami` with a bearer key: its status.
    async fn whoami(&self, key: &str) -> StatusCode {
        let req = Request::builder()
            .uri("/v0/whoami")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        self.send(req).await.status
    }

    async fn sign_in(&self, form: &[(&str, &str)]) -> String {
        let r = self.call(Method::POST, "/sign-in", None, Some(form)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
        let cookie = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
        cookie
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("loft_session=")
            .unwrap()
            .to_owned()
    }

    async fn operator(&self) -> String {
        let key = self.t.operator_key.clone();
        self.sign_in(&[("method", "operator"), ("key", &key)]).await
    }

    /// A reviewer signed in with a password; answers its session token and identity id.
    async fn reviewer(&self) -> (String, String) {
        let (alice, _) = self
            .t
            .identity_with(CreateIdentityRequest {
                name: "alice".into(),
                scopes: Some(Scope::REVIEWER.iter().map(|s| s.as_str().to_owned()).collect()),
                ..Default::default()
            })
            .await;
        let op = self.t.operator().await;
        let invite = self
            .t
            .loft
            .console_invite(&op, alice.identity.id.as_str())
            .await
            .unwrap();
        let path = format!("/invite/{}", invite.token);
        let pw = "reviewer password 1";
        let set = self
            .call(Method::POST, &path, None, Some(&[("password", pw), ("confirm", pw)]))
            .await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.text);
        let token = self
            .sign_in(&[
                ("method", "password"),
                ("address", alice.identity.address.as_str()),
                ("password", pw),
            ])
            .await;
        (token, alice.identity.id.to_string())
    }

    /// Audit rows with this action.
    async fn audit_rows(&self, action: &str) -> Vec<loft_core::audit::AuditRecord> {
        self.t
            .store()
            .list_audit(loft_core::audit::AuditQuery {
                action: Some(action.into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .items
    }
}

async fn send(t: &TestLoft, from: &Actor, to: &str, subject: &str, text: &str, html: Option<&str>) {
    t.loft
        .send(
            from,
            SendMail {
                to: vec![to.into()],
                subject: subject.into(),
                text: text.into(),
                html: html.map(str::to_owned),
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn reviewers_are_refused_every_new_operator_page() {
    let a = app().await;
    let (bob, ba) = a.t.identity("bob").await;
    send(&a.t, &ba, bob.identity.address.as_str(), "to myself", "hello", None).await;
    let msg =
        a.t.loft
            .list_messages(&ba, loft_core::service::ListMessagesParams::default())
            .await
            .unwrap()
            .items[0]
            .clone();
    let (rev, _) = a.reviewer().await;
    let id = bob.identity.id.as_str();
    for path in [
        format!("/identities/{id}"),
        format!("/identities/{id}/mail"),
        format!("/identities/{id}/mail?view=threads"),
        format!("/identities/{id}/mail/{}", msg.id),
        format!("/identities/{id}/vault"),
        "/domains".to_owned(),
    ] {
        let r = a.get(&path, &rev).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        assert!(!r.text.contains("hello"), "{path}");
    }
    for (path, form) in [
        (format!("/identities/{id}/mode"), vec![("oversight_mode", "autonomous")]),
        (format!("/identities/{id}/scopes"), vec![("scope", "mail:read")]),
        (format!("/identities/{id}/pause"), vec![]),
        (format!("/identities/{id}/resume"), vec![]),
        (format!("/domains/{TEST_DOMAIN}/check"), vec![]),
    ] {
        let r = a.post(&path, &rev, &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
    }
    // Nothing was opened, changed or paused.
    assert!(a.audit_rows("mail.inspect").await.is_empty());
    assert!(
        a.audit_rows("identity.")
            .await
            .iter()
            .all(|r| r.entry.action == "identity.create")
    );
    assert_eq!(a.whoami(&bob.api_key).await, StatusCode::OK);
    let unchanged = a.t.loft.get_identity(&a.t.operator().await, id).await.unwrap();
    assert_eq!(unchanged.oversight_mode, bob.identity.oversight_mode);
    assert_eq!(unchanged.scopes, bob.identity.scopes);
}

#[tokio::test]
async fn the_tree_and_the_identity_page_show_activity_size_and_keys_never_a_secret() {
    let a = app().await;
    let (bob, ba) = a.t.identity("bob").await;
    let (carol, _) = a.t.identity("carol").await;
    send(&a.t, &ba, carol.identity.address.as_str(), "hi", "one", None).await;
    send(&a.t, &ba, carol.identity.address.as_str(), "hi again", "two", None).await;
    let op = a.operator().await;
    let tree = a.get("/identities", &op).await;
    assert_eq!(tree.status, StatusCode::OK);
    assert!(
        tree.text.contains(&format!("href=\"/identities/{}\"", bob.identity.id)),
        "{}",
        tree.text
    );
    assert_eq!(tree.text.matches("2 messages").count(), 2, "{}", tree.text);
    assert!(tree.text.contains("last mail 2026-11-18"), "{}", tree.text);

    let page = a.get(&format!("/identities/{}", bob.identity.id), &op).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains(bob.key_id.as_str()), "the key id is listed");
    assert!(!page.text.contains(&bob.api_key), "never the key itself");
    for s in ["mail:send", "Change mode", "Change scopes", "Pause", "Revoke"] {
        assert!(page.text.contains(s), "{s}");
    }
    assert!(page.text.contains(&format!("/identities/{}/mail", bob.identity.id)));
    assert_eq!(a.get("/identities/idt_nope", &op).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn opening_a_mail_is_audited_rendered_inert_and_left_unread() {
    let a = app().await;
    let (bob, ba) = a.t.identity("bob").await;
    let (carol, ca) = a.t.identity("carol").await;
    let hostile = r#"<p onclick="steal()">Hi</p><script>alert(1)</script><img src="https://tracker.example/p.gif"><a href="javascript:alert(2)">x</a>"#;
    send(
        &a.t,
        &ba,
        carol.identity.address.as_str(),
        "Quarterly",
        "The numbers",
        Some(hostile),
    )
    .await;
    let op = a.operator().await;
    let base = format!("/identities/{}/mail", carol.identity.id);
    let list = a.get(&base, &op).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert!(list.text.contains("Quarterly") && list.text.contains("unread"));
    let threads = a.get(&format!("{base}?view=threads"), &op).await;
    assert_eq!(threads.status, StatusCode::OK);
    assert!(threads.text.contains("Quarterly"));
    let sent = a
        .get(&format!("/identities/{}/mail?folder=sent", bob.identity.id), &op)
        .await;
    assert!(sent.text.contains("Quarterly"));
    assert!(a.audit_rows("mail.inspect").await.is_empty(), "listing is not opening");

    let msg =
        a.t.loft
            .list_messages(&ca, loft_core::service::ListMessagesParams::default())
            .await
            .unwrap()
            .items[0]
            .clone();
    let page = a.get(&format!("{base}/{}", msg.id), &op).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("The numbers"));
    let low = page.text.to_ascii_lowercase();
    for bad in ["<script>alert", "onclick", "tracker.example", "javascript:"] {
        assert!(!low.contains(bad), "{bad} survived");
    }
    let rows = a.audit_rows("mail.inspect").await;
    assert_eq!(rows.len(), 1);
    let r = &rows[0].entry;
    assert_eq!(r.actor_kind, loft_core::audit::ActorKind::Operator);
    assert_eq!(r.target.as_deref(), Some(msg.id.as_str()));
    assert_eq!(r.details["identity"], carol.identity.id.as_str());
    // Still unread for carol; no form on the page (read-only).
    let again =
        a.t.loft
            .list_messages(&ca, loft_core::service::ListMessagesParams::default())
            .await
            .unwrap();
    assert!(again.items[0].unread);
    assert!(
        !page.text.contains("method=\"post\" action=\"/identities"),
        "no action on a mail"
    );
    // Another mailbox's message is not found through this one.
    let other = a
        .get(&format!("/identities/{}/mail/{}", bob.identity.id, msg.id), &op)
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(a.audit_rows("mail.inspect").await.len(), 1);
}

#[tokio::test]
async fn the_vault_page_shows_names_and_metadata_never_a_value() {
    let a = app().await;
    let (bob, ba) = a.t.identity("bob").await;
    let password = "correct-horse-battery-staple-42";
    let totp = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let token = "sk_live_do_not_show_0123456789";
    let store = |req: StoreCredentialRequest| {
        let loft = a.t.loft.clone();
        let ba = ba.clone();
        async move { loft.vault_store(&ba, req).await.unwrap() }
    };
    store(StoreCredentialRequest {
        name: Some("crm-login".into()),
        kind: Some("login".into()),
        username: Some("bob@crm".into()),
        password: Some(password.into()),
        url: Some("https://crm.example.com/login".into()),
        ..Default::default()
    })
    .await;
    store(StoreCredentialRequest {
        name: Some("crm-2fa".into()),
        kind: Some("totp".into()),
        secret: Some(totp.into()),
        issuer: Some("CRM".into()),
        backup_codes: Some(vec!["backup-code-111".into()]),
        ..Default::default()
    })
    .await;
    store(StoreCredentialRequest {
        name: Some("billing-api".into()),
        value: Some(token.into()),
        allowed_hosts: Some(vec!["api.billing.example".into()]),
        ..Default::default()
    })
    .await;
    let code = a.t.loft.vault_totp(&ba, "crm-2fa").await.unwrap();

    let op = a.operator().await;
    let page = a.get(&format!("/identities/{}/vault", bob.identity.id), &op).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    for shown in [
        "crm-login",
        "crm-2fa",
        "billing-api",
        "totp",
        "login",
        "api.billing.example",
        "bob@crm",
        "vault.totp",
    ] {
        assert!(page.text.contains(shown), "{shown} missing");
    }
    let code = serde_json::to_value(&code).unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    for secret in [password, totp, token, "backup-code-111", code.as_str()] {
        assert!(!page.text.contains(secret), "a secret value is on the page");
    }
    // Not in the audit log either.
    let rows = a.audit_rows("vault.").await;
    assert!(
        rows.iter()
            .any(|r| r.entry.action == "vault.inspect" && r.entry.actor_kind == loft_core::audit::ActorKind::Operator)
    );
    let all = serde_json::to_string(&rows).unwrap();
    for secret in [password, totp, token] {
        assert!(!all.contains(secret));
    }
}

#[tokio::test]
async fn mode_and_scope_changes_go_through_the_core_rules() {
    let a = app().await;
    let (bob, _) = a.t.identity("bob").await;
    let op = a.operator().await;
    let id = bob.identity.id.as_str();
    let page = format!("/identities/{id}");

    let r = a
        .post(&format!("{page}/mode"), &op, &[("oversight_mode", "gated_all")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let r = a
        .post(
            &format!("{page}/scopes"),
            &op,
            &[("scope", "mail:read"), ("scope", "mail:send")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let now = a.t.loft.get_identity(&a.t.operator().await, id).await.unwrap();
    assert_eq!(now.oversight_mode, loft_core::oversight::OversightMode::GatedAll);
    assert_eq!(
        now.scopes.iter().map(Scope::as_str).collect::<Vec<_>>(),
        ["mail:read", "mail:send"]
    );
    let rows = a.audit_rows("identity.update").await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r.entry.actor_kind == loft_core::audit::ActorKind::Operator)
    );

    // The rules of the core hold: a reviewer's `oversight` scope needs read_only, unknown
    // scopes and modes are refused, and nothing changes.
    let r = a.post(&format!("{page}/scopes"), &op, &[("scope", "oversight")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("read_only"), "{}", r.text);
    let r = a.post(&format!("{page}/scopes"), &op, &[("scope", "root")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = a
        .post(&format!("{page}/mode"), &op, &[("oversight_mode", "godlike")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let (_, rev_id) = a.reviewer().await;
    let r = a
        .post(
            &format!("/identities/{rev_id}/mode"),
            &op,
            &[("oversight_mode", "autonomous")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("read_only"), "{}", r.text);
    let after = a.t.loft.get_identity(&a.t.operator().await, id).await.unwrap();
    assert_eq!(after.scopes, now.scopes);
    assert_eq!(after.oversight_mode, now.oversight_mode);
    // No CSRF token: refused.
    let r = a
        .call(
            Method::POST,
            &format!("{page}/mode"),
            Some(&op),
            Some(&[("oversight_mode", "autonomous")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(a.audit_rows("identity.update").await.len(), 2);
}

#[tokio::test]
async fn pause_refuses_the_key_at_v0_and_resume_restores_it() {
    let a = app().await;
    let (bob, _) = a.t.identity("bob").await;
    let op = a.operator().await;
    let page = format!("/identities/{}", bob.identity.id);
    assert_eq!(a.whoami(&bob.api_key).await, StatusCode::OK);
    let r = a.post(&format!("{page}/pause"), &op, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let refused = a.whoami(&bob.api_key).await;
    assert!(
        refused == StatusCode::FORBIDDEN || refused == StatusCode::UNAUTHORIZED,
        "{refused}"
    );
    let shown = a.get(&page, &op).await;
    assert!(shown.text.contains("paused") && shown.text.contains("Resume"));
    let r = a.post(&format!("{page}/resume"), &op, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(a.whoami(&bob.api_key).await, StatusCode::OK);
    assert_eq!(a.audit_rows("identity.pause").await.len(), 1);
    assert_eq!(a.audit_rows("identity.resume").await.len(), 1);
}

#[tokio::test]
async fn the_domains_page_lists_records_and_checks_them_live() {
    let a = app_with_dns(StaticDns::default().mx(TEST_DOMAIN, 10, TEST_DOMAIN)).await;
    let op = a.operator().await;
    let page = a.get("/domains", &op).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains(TEST_DOMAIN));
    for s in ["mx", "txt", "v=spf1", "_dmarc.", "Check DNS now"] {
        assert!(page.text.to_ascii_lowercase().contains(&s.to_ascii_lowercase()), "{s}");
    }
    let check = a.post(&format!("/domains/{TEST_DOMAIN}/check"), &op, &[]).await;
    assert_eq!(check.status, StatusCode::OK, "{}", check.text);
    assert!(check.text.contains(">ok<"), "{}", check.text);
    assert!(check.text.contains(">missing<"), "{}", check.text);
    assert!(check.text.contains("missing or differ"));
    let nope = a.post("/domains/nope.example/check", &op, &[]).await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn audit_filters_by_time_and_exports_only_what_the_person_may_see() {
    let a = app().await;
    let (_bob, _) = a.t.identity("bob").await; // TEST_START: 2026-11-18T11:06:40Z
    a.t.clock.advance_secs(3600);
    let (_carol, _) = a.t.identity("carol").await; // an hour later
    let op = a.operator().await;
    let all = a.get("/audit?action=identity.create", &op).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(
        all.text.matches("<code>identity.create</code>").count(),
        2,
        "{}",
        all.text
    );
    let late = a.get("/audit?action=identity.create&from=2026-11-18T12:00", &op).await;
    assert_eq!(
        late.text.matches("<code>identity.create</code>").count(),
        1,
        "{}",
        late.text
    );
    let early = a
        .get("/audit?action=identity.create&to=2026-11-18T12:00:00Z", &op)
        .await;
    assert_eq!(early.text.matches("<code>identity.create</code>").count(), 1);
    let bad = a.get("/audit?from=yesterday", &op).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(all.text.contains("/audit/export?"));

    let jl = a
        .get(
            "/audit/export?action=identity.create&from=2026-11-18T12:00&format=jsonl",
            &op,
        )
        .await;
    assert_eq!(jl.status, StatusCode::OK);
    assert!(
        jl.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let lines: Vec<serde_json::Value> = jl.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["action"], "identity.create");
    let csv = a.get("/audit/export?action=identity.&format=csv", &op).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.text.starts_with("seq,at,actor_kind"));
    assert_eq!(csv.text.lines().count(), 3, "{}", csv.text);
    assert_eq!(
        a.get("/audit/export?format=xml", &op).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // A reviewer's export holds their own rows only, whatever the filter asks.
    let (rev, rev_id) = a.reviewer().await;
    let mine = a.get("/audit/export?format=jsonl", &rev).await;
    assert_eq!(mine.status, StatusCode::OK);
    let rows: Vec<serde_json::Value> = mine.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r["actor_identity_id"] == rev_id.as_str()),
        "{}",
        mine.text
    );
    let other = a
        .get("/audit/export?identity=idt_00000000000000000000000000", &rev)
        .await;
    assert_ne!(other.status, StatusCode::OK);
}
