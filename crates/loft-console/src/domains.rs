//! The hosted domains (operator only): each with the DNS records to publish (the use case of
//! `loft domain show`) and a button running the live check (`loft domain check`'s use case,
//! through the server's resolver; in tests, the injected answers).

use axum::extract::{Path, State};
use loft_core::domains::{DnsRecord, DomainView};
use maud::{Markup, html};

use crate::ConsoleState;
use crate::identities::wire;
use crate::pages::{Empty, Page, fail, operator_only};
use crate::session::{Post, User};
use crate::view::{self, Nav, time};

fn records_table(records: &[DnsRecord]) -> Markup {
    html! {
        table.list tabindex="0" aria-label="DNS records to publish" {
            thead { tr { th scope="col" { "Purpose" } th scope="col" { "Type" } th scope="col" { "Name" } th scope="col" { "Value" } } }
            tbody {
                @for r in records {
                    tr {
                        td { (wire(&r.purpose)) }
                        td { (wire(&r.record_type)) }
                        td { code { (r.name) } }
                        td { code.wrap { (r.value) } }
                    }
                }
            }
        }
    }
}

fn domain_section(v: &DomainView, csrf: &str, idx: usize) -> Markup {
    let d = &v.domain;
    html! {
        section.domain aria-labelledby={ "d-" (idx) } {
            h2 id={ "d-" (idx) } { (d.name) @if d.default { " " span.tag { "default" } } }
            p {
                @if let Some(c) = d.created_at { "Added " (time(Some(c))) ". " }
                @if d.dkim.is_empty() { "No DKIM key yet (" code { "loft domain add " (d.name) } " gives it keys)." }
                @else { "DKIM selectors: " (d.dkim.iter().map(|s| s.selector.as_str()).collect::<Vec<_>>().join(", ")) "." }
            }
            h3 { "Records to publish" }
            (records_table(&v.records))
            form.inline method="post" action={ "/domains/" (d.name) "/check" } {
                input type="hidden" name="csrf" value=(csrf);
                button.primary type="submit" aria-label={ "Check DNS now for " (d.name) } { "Check DNS now" }
            }
        }
    }
}

pub async fn domains(State(state): State<ConsoleState>, User(user): User) -> Page {
    operator_only(&user)?;
    let list = state.loft.list_domains(&user.actor).await.map_err(fail(&user))?;
    let mut views = Vec::with_capacity(list.len());
    for d in &list {
        views.push(
            state
                .loft
                .show_domain(&user.actor, &d.name)
                .await
                .map_err(fail(&user))?,
        );
    }
    let body = html! {
        p { "The mail domains this server hosts, and the DNS records each needs. "
            "Add or remove one with " code { "loft domain add" } " / " code { "loft domain remove" } "." }
        @for (i, v) in views.iter().enumerate() { (domain_section(v, &user.csrf, i)) }
    };
    Ok(view::page(&state, &user, Nav::Domains, "Domains", body).await)
}

/// The live check: a POST (it queries DNS now), answered with the result page.
pub async fn check(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    Post(user, Empty {}): Post<Empty>,
) -> Page {
    operator_only(&user)?;
    let c = state.loft.check_domain(&user.actor, &name).await.map_err(fail(&user))?;
    let body = html! {
        @if c.ok {
            p.ok role="status" { "Every record of " (c.name) " is published as expected." }
        } @else {
            p.error role="alert" { "Some records of " (c.name) " are missing or differ." }
        }
        table.list tabindex="0" aria-label="DNS check" {
            thead { tr { th scope="col" { "Type" } th scope="col" { "Name" } th scope="col" { "Expected" }
                th scope="col" { "Found" } th scope="col" { "Result" } } }
            tbody {
                @for r in &c.records {
                    tr {
                        td { (wire(&r.record.record_type)) }
                        td { code { (r.record.name) } }
                        td { code.wrap { (r.record.value) } }
                        td { @if r.found.is_empty() { "nothing" } @else { @for (i, f) in r.found.iter().enumerate() {
                            @if i > 0 { br; } code.wrap { (f) } } } }
                        td { strong { (wire(&r.status)) } }
                    }
                }
            }
        }
        p { a href="/domains" { "Back to domains" } }
    };
    Ok(view::page(&state, &user, Nav::Domains, &format!("DNS check of {}", c.name), body).await)
}
