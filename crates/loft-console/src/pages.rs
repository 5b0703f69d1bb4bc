//! The pages. Each handler is: who is asking ([`User`] or [`Post`]), one use case on `Loft`,
//! one page. What a person may see or do is decided by the use case, never here.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use loft_core::identity::Identity;
use maud::{Markup, html};
use secrecy::ExposeSecret as _;
use serde::Deserialize;

use crate::ConsoleState;
use crate::session::{self, Post, User};
use crate::view;

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
