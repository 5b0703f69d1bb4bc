//! The pages. Each handler is: who is asking ([`User`] or [`Post`]), one use case on `Loft`,
//! one page. What a person may see or do is decided by the use case, never here.

use std::collections::{BTreeMap, HashMap};

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use loft_core::audit::AuditRecord;
use loft_core::identity::Identity;
use loft_core::oversight::OversightMode;
use loft_core::service::{CreateIdentityRequest, ListAuditParams, ListIdentitiesParams};
use maud::{Markup, html};
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
fn operator_only(user: &loft_core::service::ConsoleUser) -> Result<(), Response> {
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

/// `?next=`: the page to land on after sign-in (kept only when a local path).
#[derive(Deserialize, Default)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

fn sign_in_form(error: Option<&str>, next: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        div.cards {
            section.card aria-labelledby="person" {
                h2 #person { "Reviewer" }
                form method="post" action="/sign-in" {
                    input type="hidden" name="method" value="password";
                    @if let Some(n) = next { input type="hidden" name="next" value=(n); }
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
                    @if let Some(n) = next { input type="hidden" name="next" value=(n); }
                    label for="key" { "Operator key" }
                    input #key type="password" name="key" autocomplete="off" required;
                    button type="submit" { "Sign in with the operator key" }
                }
            }
        }
    }
}

pub async fn sign_in_page(Query(q): Query<NextQuery>) -> Response {
    let next = session::safe_next(&q.next);
    Html(view::bare("Sign in", &sign_in_form(None, next)).into_string()).into_response()
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
    /// Where to go once signed in (a local path; anything else is ignored).
    #[serde(default)]
    next: String,
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
            let to = session::safe_next(&f.next).unwrap_or("/approvals");
            ([(header::SET_COOKIE, cookie)], Redirect::to(to)).into_response()
        }
        Err(e) => {
            let status = match &e {
                loft_core::Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
                loft_core::Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
                _ => return view::error_page(None, &e),
            };
            let body = sign_in_form(Some(&e.to_string()), session::safe_next(&f.next));
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

// ---- identities ----

/// Every identity the person may see, revoked ones included (up to 1000).
async fn all_identities(
    state: &ConsoleState,
    user: &loft_core::service::ConsoleUser,
) -> Result<Vec<Identity>, Response> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..5 {
        let page = state
            .loft
            .list_identities(
                &user.actor,
                ListIdentitiesParams {
                    include_revoked: true,
                    limit: Some(200),
                    cursor,
                },
            )
            .await
            .map_err(fail(user))?;
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(out)
}

/// The identities below `root` in the delegation tree.
fn descendants<'a>(all: &'a [Identity], root: &loft_core::ids::IdentityId) -> Vec<&'a Identity> {
    let mut children: HashMap<&loft_core::ids::IdentityId, Vec<&Identity>> = HashMap::new();
    for i in all {
        if let Some(p) = i.parent_id() {
            children.entry(p).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        for c in children.get(id).into_iter().flatten() {
            out.push(*c);
            stack.push(&c.id);
        }
    }
    out
}

fn status_text(i: &Identity) -> &'static str {
    if !i.is_active() {
        "revoked"
    } else if i.paused_at.is_some() {
        "paused"
    } else {
        "active"
    }
}

fn tree(all: &[Identity]) -> Markup {
    fn level(
        children: &BTreeMap<Option<&loft_core::ids::IdentityId>, Vec<&Identity>>,
        parent: Option<&loft_core::ids::IdentityId>,
    ) -> Markup {
        html! {
            @if let Some(list) = children.get(&parent) {
                ul.tree {
                    @for i in list {
                        li {
                            div.node {
                                strong { (i.name) } " "
                                code { (i.address) } " "
                                span.tag { (i.oversight_mode.as_str()) } " "
                                span.tag.status { (status_text(i)) } " "
                                span.scopes { (i.scopes.iter().map(loft_core::keys::Scope::as_str).collect::<Vec<_>>().join(" ")) } " "
                                @if i.is_active() {
                                    a href={ "/identities/" (i.id) "/revoke" } aria-label={ "Revoke " (i.name) } { "Revoke…" }
                                }
                            }
                            (level(children, Some(&i.id)))
                        }
                    }
                }
            }
        }
    }
    let ids: std::collections::HashSet<&loft_core::ids::IdentityId> = all.iter().map(|i| &i.id).collect();
    let mut children: BTreeMap<Option<&loft_core::ids::IdentityId>, Vec<&Identity>> = BTreeMap::new();
    for i in all {
        // An identity whose parent is not listed is shown at the top.
        let parent = i.parent_id().filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(i);
    }
    level(&children, None)
}

fn identities_body(user: &loft_core::service::ConsoleUser, all: &[Identity], frozen: bool) -> Markup {
    html! {
        section aria-labelledby="kill" {
            h2 #kill { "Kill switch" }
            @if frozen {
                p { "Outgoing mail is frozen (see the banner)." }
            } @else {
                form.inline method="post" action="/instance/freeze" {
                    input type="hidden" name="csrf" value=(user.csrf);
                    button.danger type="submit" data-confirm="Freeze all outgoing mail on this server?" { "Freeze all outgoing mail" }
                }
            }
        }
        section aria-labelledby="create" {
            h2 #create { "Create an identity" }
            form.card.row method="post" action="/identities" {
                input type="hidden" name="csrf" value=(user.csrf);
                label for="c-name" { "Name" }
                input #c-name type="text" name="name" required maxlength="100";
                label for="c-mode" { "Oversight mode" }
                select #c-mode name="oversight_mode" {
                    @for m in OversightMode::ALL {
                        option value=(m.as_str()) selected[m == OversightMode::DEFAULT] { (m.as_str()) }
                    }
                }
                button type="submit" { "Create" }
            }
        }
        section aria-labelledby="tree" {
            h2 #tree { "Delegation tree" }
            (tree(all))
        }
    }
}

pub async fn identities(State(state): State<ConsoleState>, User(user): User) -> Page {
    operator_only(&user)?;
    let all = all_identities(&state, &user).await?;
    let frozen = state
        .loft
        .instance_status(&user.actor)
        .await
        .map_err(fail(&user))?
        .outgoing_frozen;
    let body = identities_body(&user, &all, frozen);
    Ok(view::page(&state, &user, Nav::Identities, "Identities", body).await)
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
    oversight_mode: String,
}

pub async fn create_identity(State(state): State<ConsoleState>, Post(user, f): Post<CreateForm>) -> Page {
    operator_only(&user)?;
    let mode = OversightMode::parse(&f.oversight_mode).map_err(fail(&user))?;
    let created = state
        .loft
        .create_identity(
            &user.actor,
            CreateIdentityRequest {
                name: f.name,
                oversight_mode: Some(mode),
                ..Default::default()
            },
        )
        .await
        .map_err(fail(&user))?;
    let body = html! {
        p { "Created " strong { (created.identity.name) } ", " code { (created.identity.address) } "." }
        div.card.secret {
            label for="new-key" { "Its API key, shown only now:" }
            input #new-key type="text" readonly value=(created.api_key);
            button type="button" data-copy="new-key" { "Copy" }
        }
        p { a href="/identities" { "Back to identities" } }
    };
    Ok(view::page(&state, &user, Nav::Identities, "Identity created", body).await)
}

pub async fn revoke_page(State(state): State<ConsoleState>, User(user): User, Path(id): Path<String>) -> Page {
    operator_only(&user)?;
    let target = state.loft.get_identity(&user.actor, &id).await.map_err(fail(&user))?;
    let all = all_identities(&state, &user).await?;
    let below: Vec<&Identity> = descendants(&all, &target.id)
        .into_iter()
        .filter(|i| i.is_active())
        .collect();
    let body = html! {
        p { "Revoking " strong { (target.name) } " (" code { (target.address) } ") refuses its keys at once, everywhere." }
        @if below.is_empty() {
            p { "Nothing is below it in the delegation tree." }
        } @else {
            p { "These " (below.len()) " identities below it are revoked with it:" }
            ul { @for i in &below { li { strong { (i.name) } " " code { (i.address) } } } }
        }
        form.card method="post" action={ "/identities/" (target.id) "/revoke" } {
            input type="hidden" name="csrf" value=(user.csrf);
            button.danger type="submit" { "Revoke " (1 + below.len()) " identit" @if below.is_empty() { "y" } @else { "ies" } }
            " "
            a href="/identities" { "Cancel" }
        }
    };
    Ok(view::page(&state, &user, Nav::Identities, &format!("Revoke {}", target.name), body).await)
}

pub async fn revoke(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Post(user, Empty {}): Post<Empty>,
) -> Page {
    operator_only(&user)?;
    let done = state
        .loft
        .revoke_identity(&user.actor, &id)
        .await
        .map_err(fail(&user))?;
    let body = html! {
        p { "Revoked:" }
        ul { @for i in &done.revoked { li { code { (i) } } } }
        p { a href="/identities" { "Back to identities" } }
    };
    Ok(view::page(&state, &user, Nav::Identities, "Revoked", body).await)
}

// ---- audit ----

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    identity: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    cursor: String,
}

fn audit_table(rows: &[AuditRecord]) -> Markup {
    html! {
        table.list {
            thead { tr { th scope="col" { "#" } th scope="col" { "At" } th scope="col" { "Actor" } th scope="col" { "Action" }
                th scope="col" { "Target" } th scope="col" { "Outcome" } th scope="col" { "Details" } } }
            tbody {
                @for r in rows {
                    tr {
                        td { (r.seq) }
                        td { (time(Some(r.entry.at))) }
                        td { (r.entry.actor_kind.as_str()) @if let Some(i) = &r.entry.actor_identity_id { " " code { (i) } } }
                        td { code { (r.entry.action) } }
                        td { @if let Some(t) = &r.entry.target { code { (t) } } }
                        td { (r.entry.outcome.as_str()) }
                        td { details { summary { "details" } pre { (serde_json::to_string_pretty(&r.entry.details).unwrap_or_default()) } } }
                    }
                }
            }
        }
    }
}

pub async fn audit(State(state): State<ConsoleState>, User(user): User, Query(q): Query<AuditQuery>) -> Page {
    let opt = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let page = state
        .loft
        .list_audit(
            &user.actor,
            ListAuditParams {
                identity: opt(&q.identity),
                action: opt(&q.action),
                outcome: opt(&q.outcome),
                cursor: opt(&q.cursor),
                limit: Some(100),
                ..Default::default()
            },
        )
        .await
        .map_err(fail(&user))?;
    let next = page.next_cursor.map(|c| {
        serde_urlencoded::to_string([
            ("identity", q.identity.as_str()),
            ("action", q.action.as_str()),
            ("outcome", q.outcome.as_str()),
            ("cursor", c.as_str()),
        ])
        .unwrap_or_default()
    });
    let body = html! {
        @if user.is_operator() {
            form.inline method="post" action="/audit/verify" {
                input type="hidden" name="csrf" value=(user.csrf);
                button.primary type="submit" { "Verify the chain" }
            }
        } @else {
            p.note { "You see the rows of your own actions." }
        }
        form.filters method="get" action="/audit" {
            label for="a-identity" { "Identity id" }
            input #a-identity type="text" name="identity" value=(q.identity);
            label for="a-action" { "Action (or prefix ending in .)" }
            input #a-action type="text" name="action" value=(q.action) placeholder="mail.";
            label for="a-outcome" { "Outcome" }
            select #a-outcome name="outcome" {
                option value="" selected[q.outcome.is_empty()] { "any" }
                @for o in ["ok", "denied", "error"] { option value=(o) selected[q.outcome == o] { (o) } }
            }
            button type="submit" { "Filter" }
        }
        (audit_table(&page.items))
        @if let Some(n) = next { p { a href={ "/audit?" (n) } { "Older rows" } } }
    };
    Ok(view::page(&state, &user, Nav::Audit, "Audit", body).await)
}

pub async fn verify_audit(State(state): State<ConsoleState>, Post(user, Empty {}): Post<Empty>) -> Page {
    let report = state.loft.audit_verify(&user.actor).await.map_err(fail(&user))?;
    let body = html! {
        @if report.ok {
            p.ok role="status" { "The chain verifies: " (report.rows_checked) " rows checked." }
        } @else {
            p.error role="alert" { "The chain does NOT verify"
                @if let Some(s) = report.first_bad_seq { " at row " (s) }
                @if let Some(p) = &report.problem { ": " (p) } "." }
        }
        @if let Some(h) = &report.head {
            dl.meta { dt { "Head row" } dd { (h.seq) } dt { "Head hash" } dd { code.hash { (h.hash) } } }
        }
        p { a href="/audit" { "Back to the audit log" } }
    };
    Ok(view::page(&state, &user, Nav::Audit, "Audit chain", body).await)
}
