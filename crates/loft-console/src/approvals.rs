//! The approval queue and one held mail: the reviewer's pages. Listing, one mail shown whole
//! and safely with the earlier mail of its thread, decisions one by one or several at once
//! (each through the same use case, audited per approval), and edits.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use loft_core::oversight::Approval;
use loft_core::service::{DecideRequest, EditHeldMail, ListApprovalsParams, RejectRequest};
use maud::{Markup, html};
use serde::Deserialize;

use crate::ConsoleState;
use crate::pages::{Empty, Page, fail, see_other};
use crate::session::{Post, User};
use crate::view::{self, Nav, time};

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
                thead { tr { th scope="col" {
                    @if items.iter().any(|a| a.status == loft_core::oversight::ApprovalStatus::Pending) {
                        // Ticks or clears every box of the bulk form (console.js); kept across
                        // refreshes like the boxes themselves.
                        input type="checkbox" #sel-all data-select-all="bulk" hx-preserve="true"
                            aria-label="Select every pending mail in this list";
                    } @else { span.visually-hidden { "Select" } }
                } th scope="col" { "Held" } th scope="col" { "Direction" } th scope="col" { "From" }
                    th scope="col" { "To" } th scope="col" { "Subject" } th scope="col" { "Why" } th scope="col" { "Status" } } }
                tbody {
                    @for a in items {
                        tr {
                            td {
                                @if a.status == loft_core::oversight::ApprovalStatus::Pending {
                                    // Belongs to the bulk form outside the refreshed fragment;
                                    // `hx-preserve` keeps a ticked box ticked across refreshes.
                                    input type="checkbox" name="id" value=(a.id) form="bulk"
                                        id={ "sel-" (a.id) } hx-preserve="true"
                                        aria-label={ "Select “" (subject_of(a)) "” from " (a.from) };
                                }
                            }
                            td { (time(Some(a.created_at))) }
                            td { (direction_label(a)) }
                            td { (a.from) }
                            td { @for (i, t) in a.to.iter().enumerate() { @if i > 0 { ", " } (t) } }
                            td { a href={ "/approvals/" (a.id) } { (subject_of(a)) } }
                            td { @for (i, r) in a.reasons.iter().enumerate() { @if i > 0 { ", " } (kind(r.kind)) } }
                            td { (a.status.as_str()) }
                        }
                    }
                }
            }
        }
    }
}

fn subject_of(a: &Approval) -> &str {
    if a.subject.is_empty() {
        "(no subject)"
    } else {
        &a.subject
    }
}

/// The form the queue's checkboxes belong to: approve or reject the ticked mail at once.
fn bulk_form(csrf: &str) -> Markup {
    html! {
        form.card.bulk #bulk method="post" action="/approvals/decide" aria-labelledby="bulk-title" {
            h2 #bulk-title { "Decide the selected mail" }
            input type="hidden" name="csrf" value=(csrf);
            p.note { "Tick mail in the queue below, then approve or reject them together. Each is decided and audited on its own." }
            label for="bulk-reason" { "Reason for rejecting (the agents read it)" }
            textarea #bulk-reason name="reason" rows="2" maxlength="1000" {}
            div.buttons {
                button.primary type="submit" name="decision" value="approve" { "Approve selected" }
                button.danger type="submit" name="decision" value="reject" { "Reject selected with the reason" }
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
        @if q.status.is_empty() || q.status == "pending" { (bulk_form(&user.csrf)) }
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
    let context = state
        .loft
        .approval_context(&user.actor, &id)
        .await
        .map_err(fail(&user))?;
    let (a, m) = (&view.approval, &view.message);
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
        (crate::mail::body(m))
        (context_section(&context))
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

/// `POST /approvals/decide`: the ticked approvals (`id`, repeated), `decision` (`approve` or
/// `reject`) and, to reject, a `reason`, through the batch use case of `POST
/// /v0/approvals/decide`: each approval is decided by the same use case as one decision (its
/// own checks, its own audit row); one refused leaves the others decided, and the page says
/// which went through and why the others did not (decided meanwhile by someone else, say).
pub async fn decide_many(State(state): State<ConsoleState>, Post(user, pairs): Post<Vec<(String, String)>>) -> Page {
    let mut ids: Vec<String> = Vec::new();
    let mut decision = String::new();
    let mut reason = String::new();
    for (k, v) in pairs {
        match k.as_str() {
            "id" => {
                let v = v.trim().to_owned();
                if !v.is_empty() && !ids.contains(&v) {
                    ids.push(v);
                }
            }
            "decision" => decision = v,
            "reason" => reason = v,
            _ => {}
        }
    }
    if ids.is_empty() {
        return Err(view::message_page(
            Some(&user),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not accepted",
            "No mail was selected: tick at least one in the queue.",
        ));
    }
    let approve = decision.trim() == "approve";
    let batch = state
        .loft
        .decide_many(
            &user.actor,
            DecideRequest {
                ids,
                decision,
                reason: Some(reason).filter(|r| !r.is_empty()),
            },
        )
        .await
        .map_err(fail(&user))?;
    let outcomes = &batch.results;
    let done = outcomes.iter().filter(|o| o.approval.is_some()).count();
    let failed = outcomes.len() - done;
    let body = html! {
        p role="status" {
            (done) " of " (outcomes.len()) " " (if approve { "approved" } else { "rejected" }) "."
            @if failed > 0 { " " (failed) " could not be: see why below." }
        }
        table.list.batch {
            caption { "What happened to each" }
            thead { tr { th scope="col" { "Held mail" } th scope="col" { "Result" } } }
            tbody {
                @for o in outcomes {
                    tr.failed[o.error.is_some()] {
                        td { a href={ "/approvals/" (o.id) } {
                            @match &o.approval { Some(a) => (subject_of(a)), None => code { (o.id) } }
                        } }
                        td {
                            @if let Some(a) = &o.approval { (a.status.as_str()) }
                            @if let Some(e) = &o.error { "not done: " (e.message) @if let Some(h) = &e.hint { " (" (h) ")" } }
                        }
                    }
                }
            }
        }
        p { a href="/approvals" { "Back to the queue" } }
    };
    let status = if done == 0 {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    let mut res = view::page(&state, &user, Nav::Approvals, "Decided", body).await;
    *res.status_mut() = status;
    Ok(res)
}

/// The mail before the held one, oldest first, as text only (escaped; an HTML-only mail
/// shows the text Loft extracted from it), so nothing in it runs or loads.
fn context_section(c: &loft_core::service::ApprovalContext) -> Markup {
    let title = if c.basis == "sender" {
        "Earlier mail from this sender"
    } else {
        "Earlier in this thread"
    };
    html! {
        section.context aria-labelledby="context" {
            h2 #context { (title) }
            @if c.messages.is_empty() {
                p.empty { "Nothing before this mail." }
            } @else {
                @for m in &c.messages {
                    article aria-label={ "Mail of " (time(Some(m.created_at))) } {
                        h3 { @if m.subject.is_empty() { "(no subject)" } @else { (m.subject) } }
                        p.note { (time(Some(m.created_at))) " · from " (m.from) " to "
                            @for (i, t) in m.to.iter().enumerate() { @if i > 0 { ", " } (t) } }
                        pre.body { (crate::mail::plain_text(m)) }
                    }
                }
            }
        }
    }
}
