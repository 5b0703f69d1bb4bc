//! The audit log page: filters (identity, action or prefix, outcome, time from/to), each
//! row's details, "verify the chain" (operator), and an export of the filtered rows as JSON
//! lines or CSV. Rows come from the same use case as `GET /v0/audit`, so the access rule is
//! the same: the operator sees every row, a reviewer only the rows of their own actions.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use loft_core::audit::AuditRecord;
use loft_core::service::{ConsoleUser, ListAuditParams};
use maud::{Markup, html};
use serde::Deserialize;

use crate::ConsoleState;
use crate::pages::{Empty, Page, fail};
use crate::session::{Post, User};
use crate::view::{self, Nav, time};

/// Most rows one export holds (newest first); a larger log is exported in time slices.
pub const EXPORT_MAX_ROWS: usize = 10_000;

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    identity: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    /// Rows at or after this time (UTC): RFC 3339, or the browser's `2026-12-05T21:00`.
    #[serde(default)]
    from: String,
    /// Rows before this time (UTC).
    #[serde(default)]
    to: String,
    #[serde(default)]
    cursor: String,
    /// Export only: `jsonl` (default) or `csv`.
    #[serde(default)]
    format: String,
}

fn opt(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// A time field as RFC 3339: a `datetime-local` value (no zone) is taken as UTC; anything
/// else is passed on for the use case to accept or refuse with its own message.
fn rfc3339(s: &str) -> Option<String> {
    let s = opt(s)?;
    let b = s.as_bytes();
    let local = |n: usize| b.len() == n && b.get(10) == Some(&b'T') && !s.ends_with('Z');
    Some(if b.len() == 10 {
        format!("{s}T00:00:00Z")
    } else if local(16) {
        format!("{s}:00Z")
    } else if local(19) {
        format!("{s}Z")
    } else {
        s
    })
}

impl AuditQuery {
    fn params(&self, cursor: Option<String>, limit: u32) -> ListAuditParams {
        ListAuditParams {
            identity: opt(&self.identity),
            action: opt(&self.action),
            outcome: opt(&self.outcome),
            since: rfc3339(&self.from),
            until: rfc3339(&self.to),
            cursor,
            limit: Some(limit),
        }
    }

    fn query_string(&self, extra: &[(&str, &str)]) -> String {
        let mut pairs = vec![
            ("identity", self.identity.as_str()),
            ("action", self.action.as_str()),
            ("outcome", self.outcome.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
        ];
        pairs.extend_from_slice(extra);
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

fn audit_table(rows: &[AuditRecord]) -> Markup {
    html! {
        @if rows.is_empty() { p.empty { "No rows match." } } @else {
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
                        td { details {
                            summary { "details" }
                            dl.meta {
                                @if let Some(k) = &r.entry.key_id { dt { "Key" } dd { code { (k) } } }
                                @if let Some(a) = &r.entry.remote_addr { dt { "From address" } dd { (a) } }
                                @if let Some(q) = &r.entry.request_id { dt { "Request" } dd { code { (q) } } }
                                dt { "Row hash" } dd { code.hash { (r.hash) } }
                            }
                            pre { (serde_json::to_string_pretty(&r.entry.details).unwrap_or_default()) }
                        } }
                    }
                }
            }
        }
        }
    }
}

pub async fn audit(State(state): State<ConsoleState>, User(user): User, Query(q): Query<AuditQuery>) -> Page {
    let page = state
        .loft
        .list_audit(&user.actor, q.params(opt(&q.cursor), 100))
        .await
        .map_err(fail(&user))?;
    let next = page.next_cursor.map(|c| q.query_string(&[("cursor", c.as_str())]));
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
            label for="a-from" { "From (UTC)" }
            input #a-from type="datetime-local" name="from" value=(q.from) step="1";
            label for="a-to" { "To (UTC)" }
            input #a-to type="datetime-local" name="to" value=(q.to) step="1";
            button type="submit" { "Filter" }
        }
        p.export {
            "Export these rows (newest first, at most " (EXPORT_MAX_ROWS) "): "
            a href={ "/audit/export?" (q.query_string(&[("format", "jsonl")])) } download { "JSON lines" } " · "
            a href={ "/audit/export?" (q.query_string(&[("format", "csv")])) } download { "CSV" }
        }
        (audit_table(&page.items))
        @if let Some(n) = next { p { a href={ "/audit?" (n) } { "Older rows" } } }
    };
    Ok(view::page(&state, &user, Nav::Audit, "Audit", body).await)
}

/// One CSV field, quoted when it must be (RFC 4180); a leading `=`, `+`, `-` or `@` is
/// prefixed with `'` so that a spreadsheet does not run it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv_row(r: &AuditRecord) -> String {
    let e = &r.entry;
    let fields = [
        r.seq.to_string(),
        e.at.to_rfc3339(),
        e.actor_kind.as_str().to_owned(),
        e.actor_identity_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        e.key_id.clone().unwrap_or_default(),
        e.action.clone(),
        e.target.clone().unwrap_or_default(),
        e.outcome.as_str().to_owned(),
        e.request_id.clone().unwrap_or_default(),
        e.remote_addr.clone().unwrap_or_default(),
        e.details.to_string(),
        r.hash.clone(),
    ];
    let mut line = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// The rows matching the filters, as a download: paged through the same use case as the page.
pub async fn export(State(state): State<ConsoleState>, User(user): User, Query(q): Query<AuditQuery>) -> Page {
    let csv = match q.format.as_str() {
        "" | "jsonl" => false,
        "csv" => true,
        other => {
            return Err(fail(&user)(loft_core::Error::invalid(
                "invalid_format",
                format!("unknown export format `{other}`: use jsonl or csv"),
            )));
        }
    };
    let rows = collect(&state, &user, &q).await?;
    let truncated = rows.len() > EXPORT_MAX_ROWS;
    let mut out = String::new();
    if csv {
        out.push_str(
            "seq,at,actor_kind,actor_identity_id,key_id,action,target,outcome,request_id,remote_addr,details,hash\r\n",
        );
    }
    for r in rows.iter().take(EXPORT_MAX_ROWS) {
        if csv {
            out.push_str(&csv_row(r));
        } else {
            out.push_str(
                &serde_json::to_string(r).map_err(|e| fail(&user)(loft_core::Error::internal(e.to_string())))?,
            );
            out.push('\n');
        }
    }
    let (ty, ext) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson; charset=utf-8", "jsonl")
    };
    let disposition = format!("attachment; filename=\"loft-audit.{ext}\"");
    Ok((
        [
            (header::CONTENT_TYPE, ty.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::HeaderName::from_static("x-loft-truncated"),
                truncated.to_string(),
            ),
        ],
        out,
    )
        .into_response())
}

/// Up to one row more than [`EXPORT_MAX_ROWS`] (to tell a truncated export).
async fn collect(
    state: &ConsoleState,
    user: &ConsoleUser,
    q: &AuditQuery,
) -> Result<Vec<AuditRecord>, axum::response::Response> {
    let mut rows = Vec::new();
    let mut cursor = None;
    loop {
        let page = state
            .loft
            .list_audit(&user.actor, q.params(cursor, 200))
            .await
            .map_err(fail(user))?;
        rows.extend(page.items);
        match page.next_cursor {
            Some(c) if rows.len() <= EXPORT_MAX_ROWS => cursor = Some(c),
            _ => break,
        }
    }
    Ok(rows)
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
