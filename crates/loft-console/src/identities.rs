//! The identity pages (operator only): the delegation tree with each mailbox's last activity
//! and size, create, one identity's page (mode, scopes, status, keys; change mode and scopes,
//! pause and resume), and revoke. Every change goes through the same use case as REST
//! (`PATCH /v0/identities/{id}`, pause/resume, revoke), so the console can grant nothing the
//! core rules refuse, and each is audited as the operator.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, State};
use axum::response::Response;
use loft_core::identity::Identity;
use loft_core::ids::IdentityId;
use loft_core::keys::Scope;
use loft_core::oversight::OversightMode;
use loft_core::service::{CreateIdentityRequest, ListIdentitiesParams, UpdateIdentityRequest};
use loft_core::store::MailboxStats;
use maud::{Markup, html};
use serde::Deserialize;

use crate::ConsoleState;
use crate::pages::{Empty, Page, fail, operator_only, see_other};
use crate::session::{Post, User};
use crate::view::{self, Nav, time};

/// A value as its wire name (`gated_send`, `operator`, `inbox`).
pub(crate) fn wire<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Bytes for people: 1.2 MB.
pub(crate) fn bytes(n: u64) -> String {
    #[allow(clippy::cast_precision_loss, reason = "a display rounded to one decimal")]
    let f = n as f64;
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} kB", f / 1024.0)
    } else if n < 1024 * 1024 * 1024 {
        format!("{:.1} MB", f / (1024.0 * 1024.0))
    } else {
        format!("{:.1} GB", f / (1024.0 * 1024.0 * 1024.0))
    }
}

fn activity(s: Option<&MailboxStats>) -> Markup {
    html! {
        span.activity {
            @match s {
                Some(s) => {
                    "last mail " (time(s.last_mail_at)) " · " (s.messages) " message" @if s.messages != 1 { "s" } ", " (bytes(s.bytes))
                }
                None => { "no mail yet" }
            }
        }
    }
}

/// Every identity the person may see, revoked ones included (up to 1000).
pub(crate) async fn all_identities(
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
fn descendants<'a>(all: &'a [Identity], root: &IdentityId) -> Vec<&'a Identity> {
    let mut children: HashMap<&IdentityId, Vec<&Identity>> = HashMap::new();
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

fn tree(all: &[Identity], stats: &HashMap<IdentityId, MailboxStats>) -> Markup {
    fn level(
        children: &BTreeMap<Option<&IdentityId>, Vec<&Identity>>,
        stats: &HashMap<IdentityId, MailboxStats>,
        parent: Option<&IdentityId>,
    ) -> Markup {
        html! {
            @if let Some(list) = children.get(&parent) {
                ul.tree {
                    @for i in list {
                        li {
                            div.node {
                                a href={ "/identities/" (i.id) } { strong { (i.name) } } " "
                                code { (i.address) } " "
                                span.tag { (i.oversight_mode.as_str()) } " "
                                span.tag.status { (status_text(i)) } " "
                                span.scopes { (i.scopes.iter().map(loft_core::keys::Scope::as_str).collect::<Vec<_>>().join(" ")) } " "
                                (activity(stats.get(&i.id))) " "
                                @if i.is_active() {
                                    a href={ "/identities/" (i.id) "/revoke" } aria-label={ "Revoke " (i.name) } { "Revoke…" }
                                }
                            }
                            (level(children, stats, Some(&i.id)))
                        }
                    }
                }
            }
        }
    }
    let ids: std::collections::HashSet<&IdentityId> = all.iter().map(|i| &i.id).collect();
    let mut children: BTreeMap<Option<&IdentityId>, Vec<&Identity>> = BTreeMap::new();
    for i in all {
        // An identity whose parent is not listed is shown at the top.
        let parent = i.parent_id().filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(i);
    }
    level(&children, stats, None)
}

fn identities_body(
    user: &loft_core::service::ConsoleUser,
    all: &[Identity],
    stats: &HashMap<IdentityId, MailboxStats>,
    frozen: bool,
) -> Markup {
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
            p.note { "Last activity: the last mail the identity sent or received. Size: its messages and stored bytes." }
            (tree(all, stats))
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
    let ids: Vec<IdentityId> = all.iter().map(|i| i.id.clone()).collect();
    let sizes = state.loft.mailbox_stats(&user.actor, &ids).await.map_err(fail(&user))?;
    let body = identities_body(&user, &all, &sizes, frozen);
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

// ---- one identity ----

fn key_state(k: &loft_core::keys::KeyMeta, now: loft_core::time::Timestamp) -> &'static str {
    if k.revoked_at.is_some() {
        "revoked"
    } else if k.expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    }
}

/// `/identities/{id}`: mode, scopes, status, keys (ids and dates, never a secret), and the
/// forms that change them.
pub async fn identity_page(State(state): State<ConsoleState>, User(user): User, Path(id): Path<String>) -> Page {
    operator_only(&user)?;
    let i = state.loft.get_identity(&user.actor, &id).await.map_err(fail(&user))?;
    let keys = state
        .loft
        .list_keys(&user.actor, Some(i.id.as_str()))
        .await
        .map_err(fail(&user))?;
    let sizes = state
        .loft
        .mailbox_stats(&user.actor, std::slice::from_ref(&i.id))
        .await
        .map_err(fail(&user))?;
    let now = state.loft.now();
    let active = i.is_active();
    let csrf = &user.csrf;
    let pause_action = format!(
        "/identities/{}/{}",
        i.id,
        if i.paused_at.is_some() { "resume" } else { "pause" }
    );
    let body = html! {
        dl.meta {
            dt { "Address" } dd { code { (i.address) } }
            dt { "Id" } dd { code { (i.id) } }
            @if let Some(d) = &i.display_name { dt { "Display name" } dd { (d) } }
            dt { "Status" } dd { (status_text(&i))
                @if let Some(p) = i.paused_at { " since " (time(Some(p))) }
                @if let Some(r) = i.revoked_at { " at " (time(Some(r))) } }
            dt { "Oversight mode" } dd { (i.oversight_mode.as_str()) }
            dt { "Scopes" } dd { (i.scopes.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")) }
            dt { "Created" } dd { (time(Some(i.created_at))) " by " (wire(&i.created_by.kind))
                @if let Some(p) = &i.created_by.identity_id { " " a href={ "/identities/" (p) } { code { (p) } } } }
            dt { "Mailbox" } dd { (activity(sizes.get(&i.id))) }
        }
        nav.links aria-label="About this identity" {
            a href={ "/identities/" (i.id) "/mail" } { "Mailbox" } " · "
            a href={ "/identities/" (i.id) "/vault" } { "Vault (names only)" } " · "
            a href={ "/audit?identity=" (i.id) } { "Its audit rows" }
        }
        section aria-labelledby="keys" {
            h2 #keys { "Keys" }
            @if keys.is_empty() { p.empty { "No keys." } } @else {
                table.list tabindex="0" aria-label="Keys" {
                    thead { tr { th scope="col" { "Key id" } th scope="col" { "Kind" } th scope="col" { "Label" }
                        th scope="col" { "Scopes" } th scope="col" { "Created" } th scope="col" { "Expires" } th scope="col" { "State" } } }
                    tbody {
                        @for k in &keys {
                            tr {
                                td { code { (k.id) } }
                                td { (k.kind.as_str()) }
                                td { @if let Some(l) = &k.label { (l) } }
                                td { (k.scopes.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")) }
                                td { (time(Some(k.created_at))) }
                                td { @if k.expires_at.is_some() { (time(k.expires_at)) } @else { "never" } }
                                td { (key_state(k, now)) @if let Some(r) = k.revoked_at { " " (time(Some(r))) } }
                            }
                        }
                    }
                }
            }
        }
        @if active {
            section aria-labelledby="change" {
                h2 #change { "Change" }
                div.cards {
                    form.card method="post" action={ "/identities/" (i.id) "/mode" } {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="m-mode" { "Oversight mode" }
                        select #m-mode name="oversight_mode" {
                            @for m in OversightMode::ALL {
                                option value=(m.as_str()) selected[m == i.oversight_mode] { (m.as_str()) }
                            }
                        }
                        button type="submit" { "Change mode" }
                    }
                    form.card method="post" action={ "/identities/" (i.id) "/scopes" } {
                        input type="hidden" name="csrf" value=(csrf);
                        fieldset {
                            legend { "Scopes" }
                            @for s in Scope::ALL {
                                label.check {
                                    input type="checkbox" name="scope" value=(s.as_str()) checked[i.scopes.contains(s)];
                                    " " (s.as_str())
                                }
                            }
                        }
                        button type="submit" { "Change scopes" }
                    }
                    form.card method="post" action=(pause_action) {
                        input type="hidden" name="csrf" value=(csrf);
                        @if i.paused_at.is_some() {
                            p { "Paused: every key of it is refused." }
                            button.primary type="submit" { "Resume" }
                        } @else {
                            p { "Pausing refuses every key of it at once; mail to it is still kept." }
                            button.danger type="submit" { "Pause" }
                        }
                    }
                }
                p { a href={ "/identities/" (i.id) "/revoke" } { "Revoke…" } }
            }
        }
        p { a href="/identities" { "Back to identities" } }
    };
    Ok(view::page(&state, &user, Nav::Identities, &format!("Identity {}", i.name), body).await)
}

#[derive(Deserialize)]
pub struct ModeForm {
    oversight_mode: String,
}

pub async fn change_mode(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Post(user, f): Post<ModeForm>,
) -> Page {
    operator_only(&user)?;
    let mode = OversightMode::parse(&f.oversight_mode).map_err(fail(&user))?;
    let req = UpdateIdentityRequest {
        oversight_mode: Some(mode),
        ..Default::default()
    };
    state
        .loft
        .update_identity(&user.actor, &id, req)
        .await
        .map_err(fail(&user))?;
    Ok(see_other(&format!("/identities/{id}")))
}

/// The scopes form: the CSRF token and one `scope` field per ticked box (repeated fields,
/// so read as pairs).
pub async fn change_scopes(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Post(user, pairs): Post<Vec<(String, String)>>,
) -> Page {
    operator_only(&user)?;
    let scopes: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v)
        .collect();
    let req = UpdateIdentityRequest {
        scopes: Some(scopes),
        ..Default::default()
    };
    state
        .loft
        .update_identity(&user.actor, &id, req)
        .await
        .map_err(fail(&user))?;
    Ok(see_other(&format!("/identities/{id}")))
}

pub async fn pause(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Post(user, Empty {}): Post<Empty>,
) -> Page {
    operator_only(&user)?;
    state
        .loft
        .set_paused(&user.actor, &id, true)
        .await
        .map_err(fail(&user))?;
    Ok(see_other(&format!("/identities/{id}")))
}

pub async fn resume(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Post(user, Empty {}): Post<Empty>,
) -> Page {
    operator_only(&user)?;
    state
        .loft
        .set_paused(&user.actor, &id, false)
        .await
        .map_err(fail(&user))?;
    Ok(see_other(&format!("/identities/{id}")))
}
