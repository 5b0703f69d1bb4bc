//! Loft's web console: pages for the people in charge (the operator, reviewers), served by
//! `loft serve` at `/` on the HTTP port, from the one binary.
//!
//! Server-rendered HTML (`maud`, checked at compile time, escaping by default) with a vendored
//! htmx embedded in the binary for the one live fragment (the approval queue). Each handler
//! turns the session cookie into the same [`loft_core::service::Actor`] a bearer key would
//! give ([`loft_core::service::Loft::console_session`]) and calls one use case on `Loft`: the
//! console has no SQL and no rules of its own, so what a person may do here is exactly what
//! their key may do through REST, and every action is audited as them.
//!
//! Security, in one place ([`security_headers`], [`session`]): the session cookie is `HttpOnly`,
//! `SameSite=Strict` and Secure when the public URL is https; every state change is a POST that
//! must carry the session's CSRF token (403 otherwise) and, when the browser sends one, an
//! `Origin` of this server; a strict Content-Security-Policy (`script-src 'self'`, no inline
//! script or style); mail HTML is sanitised with `ammonia` ([`mail`]). Cookies never
//! authenticate `/v0`: the REST door reads bearer keys only.

#![allow(
    clippy::result_large_err,
    reason = "a refusal is the page to answer (a Response), built once per request, never held"
)]

mod approvals;
mod audit_page;
mod domains;
mod identities;
mod mail;
mod mailbox;
mod notifications;
mod pages;
mod session;
mod vault;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use loft_core::service::Loft;

/// Console settings.
#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    /// Mark the session cookie `Secure` (the public URL is https).
    pub secure_cookies: bool,
}

#[derive(Clone)]
pub(crate) struct ConsoleState {
    pub loft: Arc<Loft>,
    pub config: Arc<ConsoleConfig>,
}

/// The Content-Security-Policy of every console answer: scripts and styles from this server
/// only, no inline script or style, no framing, forms posting only here; images only from
/// here or inline `data:` (a mail's remote images never load).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes (no fallback: it is merged with the REST router, which has one).
pub fn router(loft: Arc<Loft>, config: ConsoleConfig) -> Router {
    let state = ConsoleState {
        loft,
        config: Arc::new(config),
    };
    Router::new()
        .route("/", get(pages::home))
        .route("/sign-in", get(pages::sign_in_page).post(pages::sign_in))
        .route("/sign-out", post(pages::sign_out))
        .route("/invite/{token}", get(pages::invite_page).post(pages::accept_invite))
        .route("/approvals", get(approvals::approvals))
        .route("/approvals/queue", get(approvals::approvals_queue))
        .route("/approvals/decide", post(approvals::decide_many))
        .route("/approvals/{id}", get(approvals::approval))
        .route("/approvals/{id}/approve", post(approvals::approve))
        .route("/approvals/{id}/reject", post(approvals::reject))
        .route("/approvals/{id}/edit", post(approvals::edit))
        .route("/notifications", get(notifications::page).post(notifications::save))
        .route("/notifications/confirm", post(notifications::confirm))
        .route("/instance/freeze", post(pages::freeze))
        .route("/instance/unfreeze", post(pages::unfreeze))
        // Identities, mail, vault, domains, audit (issue 11, part A).
        .route(
            "/identities",
            get(identities::identities).post(identities::create_identity),
        )
        .route("/identities/{id}", get(identities::identity_page))
        .route("/identities/{id}/mode", post(identities::change_mode))
        .route("/identities/{id}/scopes", post(identities::change_scopes))
        .route("/identities/{id}/pause", post(identities::pause))
        .route("/identities/{id}/resume", post(identities::resume))
        .route(
            "/identities/{id}/revoke",
            get(identities::revoke_page).post(identities::revoke),
        )
        .route("/identities/{id}/mail", get(mailbox::mailbox))
        .route("/identities/{id}/mail/{message}", get(mailbox::message))
        .route("/identities/{id}/vault", get(vault::vault))
        .route("/domains", get(domains::domains))
        .route("/domains/{name}/check", post(domains::check))
        .route("/audit", get(audit_page::audit))
        .route("/audit/export", get(audit_page::export))
        .route("/audit/verify", post(audit_page::verify_audit))
        .route("/assets/{file}", get(asset))
        .with_state(state)
        .layer(middleware::from_fn(security_headers))
}

/// Strict headers on every console answer.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // `same-origin`, not `no-referrer`: with the latter Chromium sends `Origin: null` on the
    // console's own form posts, which the origin check would refuse. Other sites get nothing.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

const HTMX: &[u8] = include_bytes!("../assets/htmx.min.js");
const HTMX_LICENSE: &[u8] = include_bytes!("../assets/htmx-LICENSE");
const CSS: &[u8] = include_bytes!("../assets/console.css");
const JS: &[u8] = include_bytes!("../assets/console.js");

/// The embedded files: htmx (with its licence), the stylesheet and the small script.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, ty) = match file.as_str() {
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "htmx-LICENSE.txt" => (HTMX_LICENSE, "text/plain; charset=utf-8"),
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return view::not_found(),
    };
    (
        [
            (header::CONTENT_TYPE, ty),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
