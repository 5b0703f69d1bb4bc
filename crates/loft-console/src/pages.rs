//! The pages. Each handler is: who is asking ([`User`] or [`Post`]), one use case on `Loft`,
//! one page. What a person may see or do is decided by the use case, never here.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use loft_core::identity::Identity;
use loft_core::oversight::Approval;
use loft_core::service::{EditHeldMail, ListApprovalsParams, RejectRequest};
use maud::{Markup, PreEscaped, html};
use secrecy::ExposeSecret as _;
use serde::Deserialize;

use crate::ConsoleState;
use crate::session::{self, Post, User};
use crate::view::{self, Nav, time};

pub(crate) type Page = Result<Response, Response>;

pub(crate) fn fail(user: &loft_core::service::ConsoleUser) -> impl Fn(loft_core::Error) -> Response + '_ {
    move |e| view::error_page(Some(user), &e)
}

pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The identity pages and the kill switch are the operator's: a reviewer gets a 403 page
/// (the use cases would refuse most of it anyway; this keeps the pages one audience's).
pub(crate) fn operator_only(user: &loft_core::service::ConsoleUser) -> Result<(), Response> {
    if user.is_operator() {
        Ok(())
    } else {
        Err(view::message_page(
            Some(user),
            StatusCode::FORBIDDEN,
            "Not allowed",
            "This page is for the operator.",
        ))
    }
}

/// No fields besides the CSRF token.
#[derive(Deserialize)]
pub struct Empty {}

// ---- sign-in, sign-out, invites ----

pub async fn home(User(_): User) -> Response {
    see_other("/approvals")
}

fn sign_in_form(error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        div.cards {
            section.card aria-labelledby="person" {
                h2 #person { "Reviewer" }
                form method="post" action="/sign-in" {
                    input type="hidden" name="method" value="password";
                    label for="address" { "Address" }
                    input #address type="email" name="address" autocomplete="username" required;
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required;
                    button type="submit" { "Sign in" }
                }
            }
            section.card aria-labelledby="operator" {
                h2 #operator { "Operator" }
                form method="post" action="/sign-in" {
                    input type="hidden" name="method" value="operator";
                    label for="key" { "Operator key" }
                    input #key type="password" name="key" autocomplete="off" required;
                    button type="submit" { "Sign in with the operator key" }
                }
            }
        }
    }
}

pub async fn sign_in_page() -> Response {
    Html(view::bare("Sign in", &sign_in_form(None)).into_string()).into_response()
}

#[derive(Deserialize)]
pub struct SignInForm {
    method: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    key: String,
}

pub async fn sign_in(State(state): State<ConsoleState>, parts: Parts, Form(f): Form<SignInForm>) -> Response {
    if let Err(r) = session::same_origin(&parts.headers) {
        return r;
    }
    let ctx = session::context(&parts);
    let result = if f.method == "operator" {
        state.loft.console_sign_in_operator(&f.key, ctx).await
    } else {
        state.loft.console_sign_in_password(&f.address, &f.password, ctx).await
    };
    match result {
        Ok(s) => {
            let max_age = (s.expires_at.as_micros() - state.loft.now().as_micros()) / 1_000_000;
            let cookie = session::set_cookie(s.token.expose_secret(), max_age, state.config.secure_cookies);
            ([(header::SET_COOKIE, cookie)], Redirect::to("/approvals")).into_response()
        }
        Err(e) => {
            let status = match &e {
                loft_core::Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
                loft_core::Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
                _ => return view::error_page(None, &e),
            };
            let body = sign_in_form(Some(&e.to_string()));
            (status, Html(view::bare("Sign in", &body).into_string())).into_response()
        }
    }
}

pub async fn sign_out(State(state): State<ConsoleState>, Post(user, Empty {}): Post<Empty>) -> Response {
    if let Err(e) = state.loft.console_sign_out(&user).await {
        return view::error_page(Some(&user), &e);
    }
    (
        [(header::SET_COOKIE, session::clear_cookie(state.config.secure_cookies))],
        Redirect::to("/sign-in"),
    )
        .into_response()
}

fn invite_form(token: &str, identity: &Identity, error: Option<&str>) -> Markup {
    html! {
        p { "Set the console password of " strong { (identity.name) } " (" (identity.address) "). "
            "The link works once." }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form.card method="post" action={ "/invite/" (token) } {
            label for="password" { "New password (at least " (loft_core::console::MIN_PASSWORD_CHARS) " characters)" }
            input #password type="password" name="password" autocomplete="new-password" required
                minlength=(loft_core::console::MIN_PASSWORD_CHARS);
            label for="confirm" { "The same again" }
            input #confirm type="password" name="confirm" autocomplete="new-password" required;
            button type="submit" { "Set password" }
        }
    }
}

pub async fn invite_page(State(state): State<ConsoleState>, Path(token): Path<String>) -> Response {
    match state.loft.console_invite_for(&token).await {
        Ok(identity) => {
            Html(view::bare("Set your password", &invite_form(&token, &identity, None)).into_string()).into_response()
        }
        Err(e) => view::error_page(None, &e),
    }
}

#[derive(Deserialize)]
pub struct InviteForm {
    password: String,
    confirm: String,
}

pub async fn accept_invite(
    State(state): State<ConsoleState>,
    Path(token): Path<String>,
    parts: Parts,
    Form(f): Form<InviteForm>,
) -> Response {
    if let Err(r) = session::same_origin(&parts.headers) {
        return r;
    }
    let identity = match state.loft.console_invite_for(&token).await {
        Ok(i) => i,
        Err(e) => return view::error_page(None, &e),
    };
    if f.password != f.confirm {
        let body = invite_form(&token, &identity, Some("The two passwords differ."));
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(view::bare("Set your password", &body).into_string()),
        )
            .into_response();
    }
    match state
        .loft
        .console_accept_invite(&token, &f.password, session::context(&parts))
        .await
    {
        Ok(identity) => {
            let body = html! {
                p { "The password of " (identity.address) " is set. " a href="/sign-in" { "Sign in" } }
            };
            Html(view::bare("Password set", &body).into_string()).into_response()
        }
        Err(e @ loft_core::Error::Invalid(_)) => {
            let body = invite_form(&token, &identity, Some(&e.to_string()));
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Html(view::bare("Set your password", &body).into_string()),
            )
                .into_response()
        }
        Err(e) => view::error_page(None, &e),
    }
}

// ---- approvals ----

#[derive(Deserialize, Default, Clone)]
pub struct QueueQuery {
    #[serde(default)]
    identity: String,
    #[serde(default)]
    direction: String,
    #[serde(default)]
    status: String,
    /// `newest` (default) or `oldest`.
    #[serde(default)]
    order: String,
}

impl QueueQuery {
    fn params(&self) -> ListApprovalsParams {
        let opt = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        ListApprovalsParams {
            identity: opt(&self.identity),
            direction: opt(&self.direction),
            status: Some(opt(&self.status).unwrap_or_else(|| "pending".into())),
            limit: Some(200),
            ..Default::default()
        }
    }

    fn query_string(&self) -> String {
        serde_urlencoded::to_string([
            ("identity", self.identity.as_str()),
            ("direction", self.direction.as_str()),
            ("status", self.status.as_str()),
            ("order", self.order.as_str()),
        ])
        .unwrap_or_default()
    }
}

async fn queue(
    state: &ConsoleState,
    user: &loft_core::service::ConsoleUser,
    q: &QueueQuery,
) -> Result<Markup, Response> {
    let mut items = state
        .loft
        .list_approvals(&user.actor, q.params())
        .await
        .map_err(fail(user))?
        .items;
    // The store pages newest first.
    if q.order == "oldest" {
        items.reverse();
    }
    Ok(queue_table(&items))
}

fn direction_label(a: &Approval) -> &'static str {
    match a.direction {
        loft_core::oversight::HoldDirection::Send => "outgoing",
        loft_core::oversight::HoldDirection::Receive => "incoming",
    }
}

fn kind(k: loft_core::oversight::HoldKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_default()
}

fn queue_table(items: &[Approval]) -> Markup {
    html! {
        @if items.is_empty() {
            p.empty { "Nothing waiting." }
        } @else {
            table.list {
                caption { (items.len()) " held" }
                thead { tr { th scope="col" { "Held" } th scope="col" { "Direction" } th scope="col" { "From" }
                    th scope="col" { "To" } th scope="col" { "Subject" } th scope="col" { "Why" } th scope="col" { "Status" } } }
                tbody {
                    @for a in items {
                        tr {
                            td { (time(Some(a.created_at))) }
                            td { (direction_label(a)) }
                            td { (a.from) }
                            td { @for (i, t) in a.to.iter().enumerate() { @if i > 0 { ", " } (t) } }
                            td { a href={ "/approvals/" (a.id) } { @if a.subject.is_empty() { "(no subject)" } @else { (a.subject) } } }
                            td { @for (i, r) in a.reasons.iter().enumerate() { @if i > 0 { ", " } (kind(r.kind)) } }
                            td { (a.status.as_str()) }
                        }
                    }
                }
            }
        }
    }
}

pub async fn approvals(State(state): State<ConsoleState>, User(user): User, Query(q): Query<QueueQuery>) -> Page {
    let table = queue(&state, &user, &q).await?;
    let sel = |v: &str, cur: &str| v == cur;
    let body = html! {
        form.filters method="get" action="/approvals" {
            label for="f-identity" { "Identity id" }
            input #f-identity type="text" name="identity" value=(q.identity) placeholder="idt_…";
            label for="f-direction" { "Direction" }
            select #f-direction name="direction" {
                option value="" selected[sel("", &q.direction)] { "both" }
                option value="send" selected[sel("send", &q.direction)] { "outgoing" }
                option value="receive" selected[sel("receive", &q.direction)] { "incoming" }
            }
            label for="f-status" { "Status" }
            select #f-status name="status" {
                @for s in ["pending", "approved", "rejected", "expired"] {
                    option value=(s) selected[sel(s, &q.status) || (s == "pending" && q.status.is_empty())] { (s) }
                }
            }
            label for="f-order" { "Order" }
            select #f-order name="order" {
                option value="newest" selected[q.order != "oldest"] { "newest first" }
                option value="oldest" selected[q.order == "oldest"] { "oldest first" }
            }
            button type="submit" { "Show" }
        }
        // Refreshed every 5 s: a newly held mail appears without a reload.
        div #queue hx-get={ "/approvals/queue?" (q.query_string()) } hx-trigger="every 5s" hx-swap="innerHTML"
            aria-live="polite" {
            (table)
        }
    };
    Ok(view::page(&state, &user, Nav::Approvals, "Approvals", body).await)
}

pub async fn approvals_queue(State(state): State<ConsoleState>, User(user): User, Query(q): Query<QueueQuery>) -> Page {
    Ok(Html(queue(&state, &user, &q).await?.into_string()).into_response())
}

pub async fn approval(State(state): State<ConsoleState>, User(user): User, Path(id): Path<String>) -> Page {
    let view = state.loft.get_approval(&user.actor, &id).await.map_err(fail(&user))?;
    let (a, m) = (&view.approval, &view.message);
    let safe = m.html.as_deref().map(crate::mail::sanitize);
    let pending = a.status == loft_core::oversight::ApprovalStatus::Pending;
    let csrf = &user.csrf;
    let body = html! {
        dl.meta {
            dt { "Status" } dd { (a.status.as_str()) @if let Some(r) = &a.reason { " — " (r) } }
            dt { "Direction" } dd { (direction_label(a)) }
            dt { "From" } dd { (m.from) }
            dt { "To" } dd { @for (i, t) in m.to.iter().enumerate() { @if i > 0 { ", " } (t) } }
            @if !m.cc.is_empty() { dt { "Cc" } dd { @for (i, t) in m.cc.iter().enumerate() { @if i > 0 { ", " } (t) } } }
            @if !m.bcc.is_empty() { dt { "Bcc" } dd { @for (i, t) in m.bcc.iter().enumerate() { @if i > 0 { ", " } (t) } } }
            dt { "Subject" } dd { (m.subject) }
            dt { "Held at" } dd { (time(Some(a.created_at))) }
            dt { "Expires" } dd { (time(Some(a.expires_at))) }
            @if a.edit_count > 0 { dt { "Edited" } dd { (a.edit_count) " time(s), last at " (time(a.edited_at)) } }
        }
        section aria-labelledby="why" {
            h2 #why { "Why it is held" }
            ul.reasons {
                @for r in &a.reasons {
                    li { strong { (kind(r.kind)) } ": " (r.detail)
                        @if let Some(c) = &r.credential { " (credential " code { (c) } @if let Some(e) = &r.encoding { ", " (e) } ")" } }
                }
            }
        }
        section aria-labelledby="text" {
            h2 #text { "Text" }
            pre.body { (m.text) }
        }
        @if let Some(s) = &safe {
            section aria-labelledby="html" {
                h2 #html { "HTML (made inert)" }
                @if s.blocked_images > 0 {
                    p.note { (s.blocked_images) " remote image(s) not loaded." }
                }
                div.mailhtml { (PreEscaped(&s.html)) }
                @if !s.links.is_empty() {
                    h3 { "Where its links go" }
                    ul.links { @for l in &s.links { li { code { (l) } } } }
                }
            }
        }
        @if pending {
            section.decide aria-labelledby="decide" {
                h2 #decide { "Decide" }
                div.cards {
                    form.card method="post" action={ "/approvals/" (a.id) "/approve" } {
                        input type="hidden" name="csrf" value=(csrf);
                        p { "Send it as it stands." }
                        button.primary type="submit" { "Approve" }
                    }
                    form.card method="post" action={ "/approvals/" (a.id) "/reject" } {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="reason" { "Reason (the agent reads it)" }
                        textarea #reason name="reason" rows="3" required maxlength="1000" {}
                        button.danger type="submit" { "Reject" }
                    }
                }
                form.card.edit method="post" action={ "/approvals/" (a.id) "/edit" } {
                    input type="hidden" name="csrf" value=(csrf);
                    h3 { "Edit before sending" }
                    label for="e-subject" { "Subject" }
                    input #e-subject type="text" name="subject" value=(m.subject);
                    label for="e-text" { "Text" }
                    textarea #e-text name="text" rows="12" { (m.text) }
                    @if let Some(h) = &m.html {
                        label for="e-html" { "HTML (empty removes it)" }
                        textarea #e-html name="html" rows="8" { (h) }
                    }
                    div.buttons {
                        button type="submit" name="then" value="save" { "Save edit" }
                        button.primary type="submit" name="then" value="approve" { "Save and approve" }
                    }
                }
            }
        }
        p { a href="/approvals" { "Back to the queue" } }
    };
    let title = if m.subject.is_empty() {
        "Held mail".to_owned()
    } else {
        format!("Held: {}", m.subject)
    };
    Ok(view::page(&state, &user, Nav::Approvals, &title, body).await)
}

pub async fn approve(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Post(user, Empty {}): Post<Empty>,
) -> Page {
    state.loft.approve(&user.actor, &id).await.map_err(fail(&user))?;
    Ok(see_other(&format!("/approvals/{id}")))
}

#[derive(Deserialize)]
pub struct RejectForm {
    #[serde(default)]
    reason: String,
}

pub async fn reject(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Post(user, f): Post<RejectForm>,
) -> Page {
    state
        .loft
        .reject(&user.actor, &id, RejectRequest { reason: f.reason })
        .await
        .map_err(fail(&user))?;
    Ok(see_other(&format!("/approvals/{id}")))
}

#[derive(Deserialize)]
pub struct EditForm {
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
    #[serde(default)]
    then: String,
}

pub async fn edit(State(state): State<ConsoleState>, Path(id): Path<String>, Post(user, f): Post<EditForm>) -> Page {
    let current = state.loft.get_approval(&user.actor, &id).await.map_err(fail(&user))?;
    let m = &current.message;
    // Browsers send textarea lines with CRLF; the mail keeps the line ends it had.
    let norm = |s: String| {
        if m.text.contains("\r\n") {
            s
        } else {
            s.replace("\r\n", "\n")
        }
    };
    let changed = |new: Option<String>, old: &str| new.map(norm).filter(|n| n != old);
    let req = EditHeldMail {
        subject: changed(f.subject, &m.subject),
        text: changed(f.text, &m.text),
        html: changed(f.html, m.html.as_deref().unwrap_or("")),
        ..Default::default()
    };
    if req.subject.is_some() || req.text.is_some() || req.html.is_some() {
        state
            .loft
            .edit_approval(&user.actor, &id, req)
            .await
            .map_err(fail(&user))?;
    }
    if f.then == "approve" {
        state.loft.approve(&user.actor, &id).await.map_err(fail(&user))?;
    }
    Ok(see_other(&format!("/approvals/{id}")))
}

// ---- kill switch ----

pub async fn freeze(State(state): State<ConsoleState>, Post(user, Empty {}): Post<Empty>) -> Page {
    operator_only(&user)?;
    state.loft.set_frozen(&user.actor, true).await.map_err(fail(&user))?;
    Ok(see_other("/identities"))
}

pub async fn unfreeze(State(state): State<ConsoleState>, Post(user, Empty {}): Post<Empty>) -> Page {
    operator_only(&user)?;
    state.loft.set_frozen(&user.actor, false).await.map_err(fail(&user))?;
    Ok(see_other("/identities"))
}
