//! An identity's vault, for the operator: credential names, types, hosts, the secret fields'
//! names, created, last use. Never a value: the use case reads metadata only and decrypts
//! nothing, and this page has no reveal. The listing is audited (`vault.inspect`).

use axum::extract::{Path, State};
use maud::html;

use crate::ConsoleState;
use crate::pages::{Page, fail, operator_only};
use crate::session::User;
use crate::view::{self, Nav, time};

pub async fn vault(State(state): State<ConsoleState>, User(user): User, Path(id): Path<String>) -> Page {
    operator_only(&user)?;
    let who = state.loft.get_identity(&user.actor, &id).await.map_err(fail(&user))?;
    let items = state.loft.inspect_vault(&user.actor, &id).await.map_err(fail(&user))?;
    let body = html! {
        p { "The credentials of " strong { (who.name) } " " code { (who.address) } ": names and metadata only, "
            "never a value. This listing is recorded in the audit log under your name." }
        @if items.is_empty() { p.empty { "No credentials." } } @else {
            table.list tabindex="0" aria-label="Credentials" {
                caption { (items.len()) " credential" @if items.len() != 1 { "s" } }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Host or account" }
                    th scope="col" { "Allowed hosts" } th scope="col" { "Secret fields" } th scope="col" { "Created" }
                    th scope="col" { "Updated" } th scope="col" { "Last use" } } }
                tbody {
                    @for c in &items {
                        @let m = &c.meta;
                        tr {
                            td { code { (m.name) } }
                            td { (m.kind.as_str()) }
                            td {
                                @if let Some(u) = &m.url { (u) " " }
                                @if let Some(u) = &m.username { "user " (u) " " }
                                @if let Some(i) = &m.issuer { (i) " " }
                                @if let Some(a) = &m.account { (a) }
                            }
                            td { @if m.allowed_hosts.is_empty() { "none" } @else { (m.allowed_hosts.join(", ")) } }
                            td { (m.secret_fields.join(", "))
                                @if m.backup_codes_remaining > 0 { " (" (m.backup_codes_remaining) " backup codes left)" } }
                            td { (time(Some(m.created_at))) }
                            td { (time(Some(m.updated_at))) }
                            td { @match (&c.last_used_at, &c.last_used_action) {
                                (Some(t), Some(a)) => { (time(Some(*t))) " (" code { (a) } ")" }
                                _ => { "not in its recent log" }
                            } }
                        }
                    }
                }
            }
            p.note { "Last use: the newest use (brokered request, TOTP code, reveal, read) among the identity's last 200 vault audit rows." }
        }
        p { a href={ "/identities/" (who.id) } { "Back to " (who.name) } }
    };
    Ok(view::page(&state, &user, Nav::Identities, &format!("Vault of {}", who.name), body).await)
}
