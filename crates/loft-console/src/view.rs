//! The one layout every page shares (header, navigation, the kill-switch banner), and the
//! mapping of core errors to pages, in one place.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use loft_core::Error;
use loft_core::service::{ConsoleUser, InstanceStatus};
use loft_core::time::Timestamp;
use maud::{DOCTYPE, Markup, html};

use crate::ConsoleState;

/// Where a page sits in the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Approvals,
    Notifications,
    Identities,
    Domains,
    Audit,
    None,
}

/// A whole page: layout around `body`, with the freeze banner when outgoing mail is frozen.
pub async fn page(state: &ConsoleState, user: &ConsoleUser, nav: Nav, title: &str, body: Markup) -> Response {
    let status = state.loft.instance_status(&user.actor).await.ok();
    Html(layout(Some(user), status.as_ref(), nav, title, &body).into_string()).into_response()
}

/// The layout without a signed-in person (sign-in, invite, errors before sign-in).
pub fn bare(title: &str, body: &Markup) -> Markup {
    layout(None, None, Nav::None, title, body)
}

fn layout(user: Option<&ConsoleUser>, status: Option<&InstanceStatus>, nav: Nav, title: &str, body: &Markup) -> Markup {
    let current = |n: Nav| if n == nav { Some("page") } else { None };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // htmx must not inject its indicator <style> (the CSP allows no inline style)
                // nor evaluate strings.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;
                title { (title) " · Loft console" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/htmx.min.js" defer {}
                script src="/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Loft" }
                    @if let Some(u) = user {
                        nav aria-label="Main" {
                            a href="/approvals" aria-current=[current(Nav::Approvals)] { "Approvals" }
                            a href="/notifications" aria-current=[current(Nav::Notifications)] { "Notifications" }
                            @if u.is_operator() {
                                a href="/identities" aria-current=[current(Nav::Identities)] { "Identities" }
                                a href="/domains" aria-current=[current(Nav::Domains)] { "Domains" }
                            }
                            a href="/audit" aria-current=[current(Nav::Audit)] { "Audit" }
                        }
                        form.signout method="post" action="/sign-out" {
                            input type="hidden" name="csrf" value=(u.csrf);
                            span.who { (u.name) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                @if let Some(s) = status.filter(|s| s.outgoing_frozen) {
                    div.banner.frozen role="alert" {
                        strong { "Outgoing mail is frozen" }
                        " since " (time(s.frozen_at)) ": nothing is sent and no approval goes out until it is unfrozen."
                        @if let Some(u) = user.filter(|u| u.is_operator()) {
                            form.inline method="post" action="/instance/unfreeze" {
                                input type="hidden" name="csrf" value=(u.csrf);
                                button type="submit" { "Unfreeze" }
                            }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
                footer { "Loft console · " a href="/assets/htmx-LICENSE.txt" { "htmx licence" } }
            }
        }
    }
}

pub fn time(t: Option<Timestamp>) -> String {
    t.map_or_else(String::new, |t| {
        let s = t.to_rfc3339();
        // 2026-12-05T18:04:28.123456Z -> 2026-12-05 18:04:28 UTC
        match (s.get(..10), s.get(11..19)) {
            (Some(d), Some(h)) => format!("{d} {h} UTC"),
            _ => s,
        }
    })
}

/// A page with one message.
pub fn message_page(user: Option<&ConsoleUser>, status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! {
        p.message { (message) }
        p { a href=(if user.is_some() { "/approvals" } else { "/sign-in" }) { "Back" } }
    };
    (status, Html(layout(user, None, Nav::None, title, &body).into_string())).into_response()
}

pub fn not_found() -> Response {
    message_page(None, StatusCode::NOT_FOUND, "Not found", "There is nothing here.")
}

/// A core error as a page: its status, and its message (never an internal one).
pub fn error_page(user: Option<&ConsoleUser>, e: &Error) -> Response {
    let (status, title) = match e {
        Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "Not signed in"),
        Error::MissingScope { .. } | Error::Forbidden(_) => (StatusCode::FORBIDDEN, "Not allowed"),
        Error::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
        Error::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
        Error::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Not accepted"),
        Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "Too large"),
        Error::PolicyDenied(_) => (StatusCode::FORBIDDEN, "Refused by policy"),
        Error::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "Too many attempts"),
        Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
        Error::Upstream(_) => (StatusCode::BAD_GATEWAY, "Upstream failure"),
        Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
    };
    let message = match e {
        Error::Internal(m) => {
            tracing::error!(error = %m, "console request failed");
            "Something went wrong; the server log has the details.".to_owned()
        }
        Error::Unavailable(m) => {
            tracing::warn!(error = %m, "console request: database unavailable");
            "The database cannot be reached right now.".to_owned()
        }
        other => match other.hint() {
            Some(h) => format!("{other} ({h})"),
            None => other.to_string(),
        },
    };
    message_page(user, status, title, &message)
}
