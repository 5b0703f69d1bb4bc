//! The signed-in reviewer's "Notifications" page: where to be told, by mail, that mail is
//! held ([`loft_core::notices`]), and how webhooks do the same.

use axum::extract::State;
use maud::html;
use serde::Deserialize;

use crate::ConsoleState;
use crate::pages::{Page, fail, see_other};
use crate::session::{Post, User};
use crate::view::{self, Nav, time};

pub async fn page(State(state): State<ConsoleState>, User(user): User) -> Page {
    let current = if user.is_operator() {
        None
    } else {
        Some(state.loft.held_mail_notice(&user.actor).await.map_err(fail(&user))?)
    };
    let address = current.as_ref().and_then(|n| n.address.as_ref());
    let pending = current.as_ref().and_then(|n| n.pending.as_ref());
    let body = html! {
        section aria-labelledby="by-mail" {
            h2 #by-mail { "By mail" }
            @if user.is_operator() {
                p { "Held-mail notices by mail are for reviewers, who sign in as themselves. "
                    "The operator can follow held mail through webhooks (below)." }
            } @else {
                p { "When mail is held, a short notice goes to the address you choose: the held mail's subject, sender, "
                    "recipients, why it is held and a link to its page here (you sign in first). "
                    "Never the mail itself, and never a link that decides anything." }
                p { "Your own mailbox here is used at once. An address outside this server gets a code first; "
                    "notices go there once you type the code below." }
                @if let (Some(a), Some(n)) = (address, current.as_ref()) {
                    p.ok role="status" { "Notices go to " strong { (a) } " (since " (time(n.updated_at)) ")." }
                } @else {
                    p role="status" { "Notices by mail are off." }
                }
                @if let Some(p) = pending {
                    form.card method="post" action="/notifications/confirm" aria-labelledby="confirm-title" {
                        h3 #confirm-title { "Confirm " (p.address) }
                        input type="hidden" name="csrf" value=(user.csrf);
                        p.note { "A code went to " strong { (p.address) } "; it works until " (time(Some(p.expires_at))) "." }
                        label for="n-code" { "Code from the mail" }
                        input #n-code type="text" name="code" inputmode="numeric" autocomplete="one-time-code"
                            maxlength="32" required;
                        div.buttons { button.primary type="submit" { "Confirm" } }
                    }
                }
                form.card method="post" action="/notifications" {
                    input type="hidden" name="csrf" value=(user.csrf);
                    label for="n-address" { "Address (your own mailbox here, or one outside)" }
                    input #n-address type="email" name="address" autocomplete="email"
                        value=[address.map(loft_core::address::EmailAddress::as_str)];
                    div.buttons {
                        button.primary type="submit" name="then" value="save" { "Save" }
                        @if address.is_some() || pending.is_some() {
                            button type="submit" name="then" value="off" { "Turn notices off" }
                        }
                    }
                }
            }
        }
        section aria-labelledby="by-webhook" {
            h2 #by-webhook { "By webhook" }
            p { "A webhook of a reviewer key (or the operator's) that takes " code { "approval.*" }
                " receives " code { "approval.requested" } " for each held mail; its " code { "console_url" }
                " is this console's page of the approval, which asks for sign-in. "
                "Add one with " code { "loft webhooks add URL --type 'approval.*'" } " or " code { "POST /v0/webhooks" } "." }
        }
    };
    Ok(view::page(&state, &user, Nav::Notifications, "Notifications", body).await)
}

#[derive(Deserialize)]
pub struct NoticeForm {
    #[serde(default)]
    address: String,
    #[serde(default)]
    then: String,
}

pub async fn save(State(state): State<ConsoleState>, Post(user, f): Post<NoticeForm>) -> Page {
    let address = if f.then == "off" {
        None
    } else {
        Some(f.address.as_str())
    };
    state
        .loft
        .set_held_mail_notice(&user.actor, address)
        .await
        .map_err(fail(&user))?;
    Ok(see_other("/notifications"))
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

pub async fn confirm(State(state): State<ConsoleState>, Post(user, f): Post<CodeForm>) -> Page {
    state
        .loft
        .confirm_held_mail_notice(&user.actor, &f.code)
        .await
        .map_err(fail(&user))?;
    Ok(see_other("/notifications"))
}
