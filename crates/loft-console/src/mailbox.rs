//! An identity's mailbox, read-only, for the operator: its messages (by folder) or threads,
//! paged, and one message opened. Opening a message is audited (`mail.inspect`, naming the
//! operator, the identity and the message) by the use case before the page is built, and
//! does not mark it read. No send, no label change: there is no form here.

use axum::extract::{Path, Query, State};
use loft_core::service::{ListMessagesParams, ListThreadsParams};
use maud::html;
use serde::Deserialize;

use crate::ConsoleState;
use crate::identities::{bytes, wire};
use crate::pages::{Page, fail, operator_only};
use crate::session::User;
use crate::view::{self, Nav, time};

const PAGE_SIZE: u32 = 50;
const FOLDERS: [&str; 5] = ["inbox", "sent", "archive", "trash", "all"];

#[derive(Deserialize, Default)]
pub struct MailQuery {
    /// `messages` (default) or `threads`.
    #[serde(default)]
    view: String,
    #[serde(default)]
    folder: String,
    #[serde(default)]
    thread: String,
    #[serde(default)]
    cursor: String,
}

fn opt(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn join<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

pub async fn mailbox(
    State(state): State<ConsoleState>,
    User(user): User,
    Path(id): Path<String>,
    Query(q): Query<MailQuery>,
) -> Page {
    operator_only(&user)?;
    let who = state.loft.get_identity(&user.actor, &id).await.map_err(fail(&user))?;
    let threads = q.view == "threads";
    let folder = opt(&q.folder).unwrap_or_else(|| if threads { "all".into() } else { "inbox".into() });
    let base = format!("/identities/{}/mail", who.id);
    let more = |cursor: &str| {
        let qs = serde_urlencoded::to_string([
            ("view", q.view.as_str()),
            ("folder", folder.as_str()),
            ("thread", q.thread.as_str()),
            ("cursor", cursor),
        ])
        .unwrap_or_default();
        format!("{base}?{qs}")
    };
    let (list, next) = if threads {
        let p = state
            .loft
            .inspect_threads(
                &user.actor,
                &id,
                ListThreadsParams {
                    folder: Some(if folder == "trash" {
                        "trash".into()
                    } else {
                        "all".into()
                    }),
                    limit: Some(PAGE_SIZE),
                    cursor: opt(&q.cursor),
                    ..Default::default()
                },
            )
            .await
            .map_err(fail(&user))?;
        let list = html! {
            @if p.items.is_empty() { p.empty { "No threads." } } @else {
                table.list {
                    caption { "Threads, newest first" }
                    thead { tr { th scope="col" { "Last mail" } th scope="col" { "Subject" } th scope="col" { "Messages" }
                        th scope="col" { "Unread" } th scope="col" { "Participants" } } }
                    tbody {
                        @for t in &p.items {
                            tr {
                                td { (time(Some(t.last_message_at))) }
                                td { a href={ (base) "?view=messages&folder=all&thread=" (t.id) } {
                                    @if t.subject.is_empty() { "(no subject)" } @else { (t.subject) } } }
                                td { (t.message_count) }
                                td { (t.unread_count) }
                                td { (join(&t.participants)) }
                            }
                        }
                    }
                }
            }
        };
        (list, p.next_cursor)
    } else {
        let p = state
            .loft
            .inspect_messages(
                &user.actor,
                &id,
                ListMessagesParams {
                    folder: Some(if opt(&q.thread).is_some() {
                        "all".into()
                    } else {
                        folder.clone()
                    }),
                    thread_id: opt(&q.thread),
                    limit: Some(PAGE_SIZE),
                    cursor: opt(&q.cursor),
                    ..Default::default()
                },
            )
            .await
            .map_err(fail(&user))?;
        let list = html! {
            @if p.items.is_empty() { p.empty { "No messages." } } @else {
                table.list {
                    caption { "Messages, newest first" }
                    thead { tr { th scope="col" { "At" } th scope="col" { "Folder" } th scope="col" { "From" } th scope="col" { "To" }
                        th scope="col" { "Subject" } th scope="col" { "Status" } } }
                    tbody {
                        @for m in &p.items {
                            tr {
                                td { (time(Some(m.created_at))) }
                                td { (wire(&m.folder)) @if m.trashed_at.is_some() { " (trash)" } }
                                td { (m.from) }
                                td { (join(&m.to)) }
                                td { a href={ (base) "/" (m.id) } {
                                    @if m.subject.is_empty() { "(no subject)" } @else { (m.subject) } }
                                    @if m.unread { " " span.tag { "unread" } } }
                                td { (wire(&m.status)) }
                            }
                        }
                    }
                }
            }
        };
        (list, p.next_cursor)
    };
    let body = html! {
        p { "The mailbox of " strong { (who.name) } " " code { (who.address) } ", read-only. "
            "Opening a message is recorded in the audit log under your name; it stays unread for the identity." }
        form.filters method="get" action=(base) {
            label for="mb-view" { "Show" }
            select #mb-view name="view" {
                option value="messages" selected[!threads] { "messages" }
                option value="threads" selected[threads] { "threads" }
            }
            label for="mb-folder" { "Folder" }
            select #mb-folder name="folder" {
                @for f in FOLDERS { option value=(f) selected[f == folder] { (f) } }
            }
            button type="submit" { "Show" }
        }
        @if let Some(t) = opt(&q.thread) { p.note { "One thread: " code { (t) } " · " a href=(base) { "whole mailbox" } } }
        (list)
        @if let Some(c) = next { p { a href=(more(&c)) { "Older" } } }
        p { a href={ "/identities/" (who.id) } { "Back to " (who.name) } }
    };
    Ok(view::page(
        &state,
        &user,
        Nav::Identities,
        &format!("Mailbox of {}", who.name),
        body,
    )
    .await)
}

pub async fn message(
    State(state): State<ConsoleState>,
    User(user): User,
    Path((id, message)): Path<(String, String)>,
) -> Page {
    operator_only(&user)?;
    let who = state.loft.get_identity(&user.actor, &id).await.map_err(fail(&user))?;
    let m = state
        .loft
        .inspect_message(&user.actor, &id, &message)
        .await
        .map_err(fail(&user))?;
    let base = format!("/identities/{}/mail", who.id);
    let body = html! {
        p.note { "Read-only. This opening is recorded in the audit log under your name." }
        dl.meta {
            dt { "From" } dd { @if let Some(n) = &m.from_name { (n) " " } code { (m.from) } }
            dt { "To" } dd { (join(&m.to)) }
            @if !m.cc.is_empty() { dt { "Cc" } dd { (join(&m.cc)) } }
            @if !m.bcc.is_empty() { dt { "Bcc" } dd { (join(&m.bcc)) } }
            dt { "Subject" } dd { (m.subject) }
            dt { "At" } dd { (time(Some(m.created_at))) }
            dt { "Folder" } dd { (wire(&m.folder)) @if m.archived { ", archived" } @if m.trashed_at.is_some() { ", in the trash" } }
            dt { "Status" } dd { (wire(&m.status)) }
            @if !m.labels.is_empty() { dt { "Labels" } dd { (m.labels.join(", ")) } }
            dt { "Size" } dd { (bytes(u64::try_from(m.size).unwrap_or(0))) }
            dt { "Thread" } dd { a href={ (base) "?view=messages&folder=all&thread=" (m.thread_id) } { "the whole thread" } }
        }
        (crate::mail::body(&m))
        p { a href=(base) { "Back to the mailbox" } }
    };
    let title = if m.subject.is_empty() {
        "(no subject)".to_owned()
    } else {
        m.subject.clone()
    };
    Ok(view::page(&state, &user, Nav::Identities, &title, body).await)
}
