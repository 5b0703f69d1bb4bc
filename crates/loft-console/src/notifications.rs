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
        state.loft.held_mail_notice(&user.actor).await.map_err(fail(&user))?
    };
    let body = html! {
        section aria-labelledby="by-mail" {
            h2 #by-mail { "By mail" }
            @if user.is_operator() {
                p { "Held-mail notices by mail are for reviewers, who sign in as themselves. "
                    "The operator can follow held mail through webhooks (below)." }
            } @else {
                p { "When mail is held, a short notice goes to your own mailbox here: the held mail's subject, sender, "
                    "recipients, why it is held and a link to its page here (you sign in first). "
                    "Never the mail itself, and never a link that decides anything." }
                @if let Some(n) = &current {
                    p.ok role="status" { "Notices go to " strong { (n.address) } " (since " (time(Some(n.updated_at))) ")." }
                } @else {
                    p role="status" { "Notices by mail are off." }
                }
                form.card method="post" action="/notifications" {
                    input type="hidden" name="csrf" value=(user.csrf);
                    label for="n-address" { "Address (your own mailbox on this server)" }
                    input #n-address type="email" name="address" autocomplete="email"
                        value=[current.as_ref().map(|n| n.address.as_str())];
                    div.buttons {
                        button.primary type="submit" name="then" value="save" { "Save" }
                        @if current.is_some() {
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
