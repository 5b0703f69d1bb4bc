//! Human output: aligned tables for lists, `key: value` lines for single objects, and mail
//! bodies under their headers.
//!
//! Everything shown here may come from outside (a subject, a display name, a body written by
//! another agent or a stranger), so control characters are neutralised before they reach the
//! terminal: an escape sequence in a subject must not be able to rewrite the screen. Pure
//! functions returning strings, so they are tested without a server.

use std::fmt::Write as _;

use loft_core::audit::{AuditRecord, VerifyReport};
use loft_core::contacts::{Contact, SenderContact};
use loft_core::identity::{ChainLink, CreatedIdentity, CreatedKey, CreatorKind, Identity, WhoAmI};
use loft_core::keys::{KeyMeta, ScopeSet};
use loft_core::mail::{Folder, Message, MessageStatus, MessageSummary, Thread, ThreadSummary};
use loft_core::oversight::{
    Approval, ApprovalStatus, Decider, HoldDirection, HoldKind, HoldReason, ModeRequest, ModeRequestStatus,
    OversightMode,
};
use loft_core::rules::Rule;
use loft_core::search::{Highlight, SearchField, SearchHit};
use loft_core::service::{ApprovalView, BatchDecision};
use loft_core::time::Timestamp;

/// Printed under a key that is shown once.
pub const SHOWN_ONCE: &str = "store this now; it is shown only once";

const SUBJECT_WIDTH: usize = 60;
const ADDRESS_WIDTH: usize = 40;

fn is_dangerous(c: char) -> bool {
    // Bidi overrides and isolates can make text read differently from what it is.
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// One line of untrusted text: line breaks and tabs become spaces, other control characters `?`.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if is_dangerous(c) => '?',
            c => c,
        })
        .collect()
}

/// A body of untrusted text: keeps line breaks and tabs, drops carriage returns, and turns
/// other control characters into `?`.
pub fn clean_body(s: &str) -> String {
    s.chars()
        .filter(|&c| c != '\r')
        .map(|c| {
            if c != '\n' && c != '\t' && is_dangerous(c) {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// At most `max` characters, ending in `…` when cut.
pub fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// UTC to the second: `2026-11-22T14:51:07Z`.
pub fn time(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_micros(t.as_micros()).map_or_else(
        || t.to_rfc3339(),
        |d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

fn opt_time(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

pub fn scopes(s: &ScopeSet) -> String {
    if s.is_empty() {
        "(none)".into()
    } else {
        s.iter()
            .map(loft_core::keys::Scope::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn list<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| clean(&i.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Columns padded to the widest cell; the last column is not padded.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 < n {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count() + 2));
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key: value` lines with the values aligned.
#[derive(Default)]
pub struct Fields(Vec<(&'static str, String)>);

impl Fields {
    pub fn add(&mut self, key: &'static str, value: impl Into<String>) -> &mut Self {
        self.0.push((key, value.into()));
        self
    }

    pub fn render(&self) -> String {
        let width = self.0.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in &self.0 {
            let label = format!("{k}:");
            out.push_str(format!("{label:<width$}  {v}").trim_end());
            out.push('\n');
        }
        out
    }
}

// ----- identities -----

fn creator(i: &Identity) -> String {
    match i.created_by.kind {
        CreatorKind::Operator => "operator".into(),
        CreatorKind::Identity => {
            let mut s = format!(
                "identity {}",
                i.created_by.identity_id.as_ref().map_or("?", |id| id.as_str())
            );
            if let Some(k) = &i.created_by.key_id {
                let _ = write!(s, " (key {})", clean(k));
            }
            s
        }
    }
}

fn identity_fields(i: &Identity) -> Fields {
    let mut f = Fields::default();
    f.add("id", i.id.to_string())
        .add("name", clean(&i.name))
        .add(
            "display name",
            i.display_name.as_deref().map_or_else(|| "-".into(), clean),
        )
        .add("address", i.address.to_string())
        .add("status", status(i))
        .add("scopes", scopes(&i.scopes))
        .add("mode", i.oversight_mode.as_str())
        .add("created", time(i.created_at))
        .add("created by", creator(i));
    if let Some(t) = i.paused_at {
        f.add(
            "paused",
            format!("{} (its keys are refused; `loft identity resume`)", time(t)),
        );
    }
    if let Some(t) = i.revoked_at {
        f.add("revoked", time(t));
    }
    f
}

fn status(i: &Identity) -> &'static str {
    match (i.is_active(), i.paused_at) {
        (false, _) => "revoked",
        (true, Some(_)) => "paused",
        (true, None) => "active",
    }
}

/// The instance's outgoing mail: frozen or not.
pub fn instance(s: &loft_core::service::InstanceStatus) -> String {
    match s.frozen_at {
        Some(t) => format!(
            "outgoing mail FROZEN since {}: every send and approval is refused (`loft unfreeze` lifts it)\n",
            time(t)
        ),
        None => "outgoing mail flows (not frozen)\n".to_owned(),
    }
}

pub fn identity(i: &Identity) -> String {
    identity_fields(i).render()
}

pub fn created_identity(c: &CreatedIdentity) -> String {
    let mut f = identity_fields(&c.identity);
    f.add("key id", c.key_id.to_string()).add("api key", c.api_key.clone());
    format!(
        "{}\n{}\n{}\n",
        f.render(),
        shown_once_note(),
        mode_note(c.identity.oversight_mode)
    )
}

fn shown_once_note() -> String {
    format!("The API key above is the identity's only copy: {SHOWN_ONCE}.")
}

/// What an identity's oversight mode means for its mail, in one sentence.
fn mode_note(m: OversightMode) -> String {
    let what = match m {
        OversightMode::ReadOnly => "it can read mail but not send or reply",
        OversightMode::GatedAll | OversightMode::GatedSend => {
            "every mail it sends waits for a reviewer's approval (`loft approvals list`)"
        }
        OversightMode::Monitored => "its mail goes out at once and is recorded for review",
        OversightMode::Autonomous => "its mail goes out without review, except mail holding one of its vault values",
    };
    format!("Oversight mode {m}: {what}; change it with `loft identity mode ID MODE`.")
}

/// After `reviewer create`: the identity, its key once, and what the key may do.
pub fn created_reviewer(c: &CreatedIdentity) -> String {
    let mut f = identity_fields(&c.identity);
    f.add("key id", c.key_id.to_string()).add("api key", c.api_key.clone());
    format!(
        "{}\nThe API key above is the reviewer's only copy: {SHOWN_ONCE}.\n\
         It is a reviewer key (scope `oversight`): it lists, approves and rejects held mail, e.g. \
         `LOFT_API_KEY=<key> loft approvals list`; it cannot send mail.\n",
        f.render()
    )
}

pub fn identities(items: &[Identity]) -> String {
    if items.is_empty() {
        return "no identities\n".into();
    }
    let mut t = Table::new(&["ID", "ADDRESS", "NAME", "STATUS", "MODE", "CREATED"]);
    for i in items {
        t.row(vec![
            i.id.to_string(),
            i.address.to_string(),
            ellipsize(&clean(&i.name), 40),
            status(i).into(),
            i.oversight_mode.as_str().into(),
            time(i.created_at),
        ]);
    }
    t.render()
}

/// Identities holding the `oversight` scope.
pub fn reviewers(items: &[Identity]) -> String {
    if items.is_empty() {
        "no reviewers\n".into()
    } else {
        identities(items)
    }
}

pub fn revoked(ids: &[loft_core::ids::IdentityId]) -> String {
    match ids {
        [] => "nothing was revoked\n".into(),
        [one] => format!("revoked identity {one} and its keys\n"),
        [first, rest @ ..] => format!(
            "revoked identity {first} and its keys, and {} below it: {}\n",
            plural(rest.len(), "identity", "identities"),
            list(rest)
        ),
    }
}

pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

// ----- keys -----

fn key_state(k: &KeyMeta, now: Timestamp) -> &'static str {
    if k.revoked_at.is_some() {
        "revoked"
    } else if k.expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    }
}

fn key_fields(k: &KeyMeta, now: Timestamp) -> Fields {
    let mut f = Fields::default();
    f.add("key id", k.id.to_string())
        .add("identity", k.identity_id.to_string())
        .add("kind", k.kind.as_str())
        .add("label", k.label.as_deref().map_or_else(|| "-".into(), clean))
        .add("scopes", scopes(&k.scopes))
        .add("state", key_state(k, now))
        .add("created", time(k.created_at))
        .add("expires", k.expires_at.map_or_else(|| "never".into(), time));
    if let Some(t) = k.revoked_at {
        f.add("revoked", time(t));
    }
    if let Some(by) = &k.created_by_key {
        f.add("created by key", clean(by));
    }
    f
}

pub fn created_key(c: &CreatedKey, now: Timestamp) -> String {
    let mut f = key_fields(&c.key, now);
    f.add("api key", c.api_key.clone());
    format!("{}\nThe API key above: {SHOWN_ONCE}.\n", f.render())
}

pub fn keys(items: &[KeyMeta], now: Timestamp) -> String {
    if items.is_empty() {
        return "no keys\n".into();
    }
    let mut t = Table::new(&["KEY ID", "KIND", "STATE", "LABEL", "CREATED", "EXPIRES", "SCOPES"]);
    for k in items {
        t.row(vec![
            k.id.to_string(),
            k.kind.as_str().into(),
            key_state(k, now).into(),
            k.label
                .as_deref()
                .map_or_else(|| "-".into(), |l| ellipsize(&clean(l), 30)),
            time(k.created_at),
            opt_time(k.expires_at),
            scopes(&k.scopes),
        ]);
    }
    t.render()
}

// ----- whoami -----

fn link(l: &ChainLink) -> String {
    match l.kind {
        CreatorKind::Operator => "operator".into(),
        CreatorKind::Identity => {
            let name = l.name.as_deref().map_or_else(|| "?".into(), clean);
            match &l.address {
                Some(a) => format!("{name} <{a}>"),
                None => name,
            }
        }
    }
}

pub fn whoami(w: &WhoAmI) -> String {
    let mut f = Fields::default();
    match (&w.kind, &w.identity) {
        (CreatorKind::Identity, Some(i)) => {
            f.add("acting as", format!("identity {}", i.id))
                .add("name", clean(&i.name))
                .add(
                    "address",
                    w.address
                        .as_ref()
                        .map_or_else(|| i.address.to_string(), ToString::to_string),
                );
            if let Some(d) = &i.display_name {
                f.add("display name", clean(d));
            }
            f.add("mode", i.oversight_mode.as_str());
        }
        _ => {
            f.add("acting as", "operator");
        }
    }
    f.add("key id", clean(&w.key_id))
        .add("key expires", w.key_expires_at.map_or_else(|| "never".into(), time))
        .add("scopes", scopes(&w.scopes))
        .add("chain", w.chain.iter().map(link).collect::<Vec<_>>().join(" <- "));
    if let Some(sending) = &w.sending {
        f.add("sending", sending_summary(sending));
    }
    if let Some(r) = &w.mode_request {
        let status = match (r.status, &r.denial_reason) {
            (ModeRequestStatus::Denied, Some(why)) => format!("denied: {}", clean(why)),
            (s, _) => s.as_str().to_owned(),
        };
        f.add("mode request", format!("{} ({status})", r.mode.as_str()));
    }
    f.render()
}

// ----- sending caps -----

/// One cap and its use: `1 of 3`, `no cap`, `no cap (5)`; `min` of the identity's and the
/// instance's where both are set is what binds first, so both are shown.
fn cap_use(limit: Option<u64>, used: Option<u64>) -> String {
    match (limit, used) {
        (Some(l), Some(u)) => format!("{u} of {l}"),
        (Some(l), None) => format!("cap {l}"),
        (None, _) => "no cap".into(),
    }
}

fn first_contact_words(f: loft_core::caps::FirstContact) -> &'static str {
    match f {
        loft_core::caps::FirstContact::Allow => "allow",
        loft_core::caps::FirstContact::Hold => {
            "hold (mail to an address it never exchanged mail with waits for a reviewer)"
        }
    }
}

/// `whoami`'s one line: what the identity may still send.
fn sending_summary(s: &loft_core::caps::SendingStatus) -> String {
    let part = |what: &str, own: Option<u64>, instance: Option<u64>, used: Option<u64>| -> Option<String> {
        match (own, instance) {
            (None, None) => None,
            (o, i) => {
                let mut out = format!("{what} {}", cap_use(o.or(i).map(|x| x.min(i.unwrap_or(x))), used));
                if o.is_some() && i.is_some() {
                    out.push_str(" (identity and instance caps)");
                } else if i.is_some() {
                    out.push_str(" (instance cap, all identities together)");
                }
                Some(out)
            }
        }
    };
    let (c, i, u) = (&s.caps, &s.instance_caps, &s.used);
    let parts: Vec<String> = [
        part("mails this hour", c.mails_per_hour, i.mails_per_hour, u.mails_last_hour),
        part("mails today", c.mails_per_day, i.mails_per_day, u.mails_last_day),
        part(
            "new recipients today",
            c.new_recipients_per_day,
            i.new_recipients_per_day,
            u.new_recipients_last_day,
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    let caps = if parts.is_empty() {
        "no caps".to_owned()
    } else {
        parts.join("; ")
    };
    format!("{caps}; first contact: {}", s.caps.first_contact)
}

fn cap_or_none(v: Option<u64>) -> String {
    v.map_or_else(|| "none".into(), |v| v.to_string())
}

/// `loft identity caps ID`.
pub fn sending(s: &loft_core::caps::SendingStatus) -> String {
    let mut f = Fields::default();
    let (caps, inst, used) = (&s.caps, &s.instance_caps, &s.used);
    f.add("identity", s.identity_id.to_string())
        .add("mails per hour", cap_use(caps.mails_per_hour, used.mails_last_hour))
        .add("mails per day", cap_use(caps.mails_per_day, used.mails_last_day))
        .add(
            "new recipients per day",
            cap_use(caps.new_recipients_per_day, used.new_recipients_last_day),
        )
        .add("first contact", first_contact_words(caps.first_contact))
        .add(
            "exfiltration guard",
            match caps.exfiltration_guard {
                loft_core::caps::Guard::On => "on: a mail quoting one of its vault values is held for a reviewer",
                loft_core::caps::Guard::Off => "OFF: its mail is not checked for its vault values",
            },
        )
        .add(
            "internal mail",
            match caps.internal_mail {
                loft_core::caps::InternalMail::Gated => "gated by its mode, like mail to the outside",
                loft_core::caps::InternalMail::Exempt => "exempt from its mode's gate",
            },
        )
        .add(
            "instance caps",
            format!(
                "mails per hour {}, per day {}, new recipients per day {} (all identities together; `loft caps`)",
                cap_or_none(inst.mails_per_hour),
                cap_or_none(inst.mails_per_day),
                cap_or_none(inst.new_recipients_per_day),
            ),
        );
    f.render()
}

/// `loft caps`.
pub fn instance_caps(s: &loft_core::caps::InstanceCapsStatus) -> String {
    let mut f = Fields::default();
    let (c, u) = (&s.caps, &s.used);
    f.add("mails per hour", cap_use(c.mails_per_hour, u.mails_last_hour))
        .add("mails per day", cap_use(c.mails_per_day, u.mails_last_day))
        .add(
            "new recipients per day",
            cap_use(c.new_recipients_per_day, u.new_recipients_last_day),
        );
    format!(
        "{}(the whole instance's mail counts together; each identity may have its own caps too: `loft identity caps ID`)\n",
        f.render()
    )
}

// ----- mail -----

fn from_line(address: &loft_core::address::EmailAddress, name: Option<&str>) -> String {
    match name.filter(|n| !n.trim().is_empty()) {
        Some(n) => format!("{} <{address}>", clean(n)),
        None => address.to_string(),
    }
}

fn first_and_count<T: ToString>(items: &[T]) -> String {
    match items {
        [] => "-".into(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{} +{}", first.to_string(), rest.len()),
    }
}

/// `folder`: what was asked for (`None` = the server's default, the inbox).
pub fn messages(items: &[MessageSummary], folder: Option<&str>) -> String {
    if items.is_empty() {
        return "no messages\n".into();
    }
    let who = match folder {
        Some("sent") => "TO",
        Some("all") => "FROM / TO",
        _ => "FROM",
    };
    let mut t = Table::new(&["", "ID", "DATE", who, "SUBJECT", "LABELS"]);
    for m in items {
        let party = match m.folder {
            Folder::Inbox => from_line(&m.from, m.from_name.as_deref()),
            Folder::Sent => format!("to {}", first_and_count(&m.to)),
        };
        t.row(vec![
            if m.unread { "*".into() } else { String::new() },
            m.id.to_string(),
            time(m.created_at),
            ellipsize(&party, ADDRESS_WIDTH),
            ellipsize(&clean(&m.subject), SUBJECT_WIDTH),
            list(&m.labels),
        ]);
    }
    t.render()
}

/// Search results, best first: who, subject, and where the words matched in the body (or the
/// people, or the subject), the matched words in `[brackets]`.
pub fn search_hits(items: &[SearchHit]) -> String {
    if items.is_empty() {
        return "no messages match\n".into();
    }
    let mut t = Table::new(&["", "ID", "DATE", "FROM / TO", "SUBJECT", "MATCH"]);
    for h in items {
        let m = &h.message;
        let party = match m.folder {
            Folder::Inbox => from_line(&m.from, m.from_name.as_deref()),
            Folder::Sent => format!("to {}", first_and_count(&m.to)),
        };
        let best = [SearchField::Body, SearchField::People, SearchField::Subject]
            .iter()
            .find_map(|f| h.highlights.iter().find(|x| x.field == *f));
        t.row(vec![
            if m.unread { "*".into() } else { String::new() },
            m.id.to_string(),
            time(m.created_at),
            ellipsize(&party, ADDRESS_WIDTH),
            ellipsize(&clean(&m.subject), SUBJECT_WIDTH),
            best.map(|x| ellipsize(&clean(&bracketed(x)), SUBJECT_WIDTH))
                .unwrap_or_default(),
        ]);
    }
    t.render()
}

/// A highlight's text from a little before its first match, the matches in `[...]`.
fn bracketed(h: &Highlight) -> String {
    let start = h.matches.first().map_or(0, |[s, _]| (*s as usize).saturating_sub(15));
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    for (i, c) in h.text.chars().enumerate().skip(start) {
        if h.matches.iter().any(|[s, _]| *s as usize == i) {
            out.push('[');
        }
        out.push(c);
        if h.matches.iter().any(|[_, e]| *e as usize == i + 1) {
            out.push(']');
        }
    }
    out
}

fn message_headers(m: &Message, full: bool) -> Fields {
    let mut f = Fields::default();
    f.add("id", m.id.to_string());
    if full {
        f.add("thread", m.thread_id.to_string())
            .add("folder", m.folder.as_str());
        // Held mail says so (and why it was turned down); ordinary mail needs no status line.
        if !matches!(m.status, MessageStatus::Received | MessageStatus::Sent) {
            f.add("status", m.status.as_str());
            if let Some(r) = m.approval.as_ref().and_then(|a| a.reason.as_deref()) {
                f.add("reason", clean(r));
            }
            if let Some(a) = m.approval.as_ref().filter(|a| a.edit_count > 0) {
                f.add("edited", edited(a));
            }
        }
    }
    f.add("from", from_line(&m.from, m.from_name.as_deref()))
        .add("to", list(&m.to));
    if !m.cc.is_empty() {
        f.add("cc", list(&m.cc));
    }
    if !m.bcc.is_empty() {
        f.add("bcc", list(&m.bcc));
    }
    f.add("subject", clean(&m.subject)).add("date", time(m.created_at));
    if full {
        if !m.labels.is_empty() {
            f.add("labels", list(&m.labels));
        }
        f.add("sender", clean(&m.authentication.summary));
        if let Some(c) = &m.sender_contact {
            f.add("contact", sender_contact(c));
        }
        if let Some(sc) = m.screening.as_ref().filter(|s| !s.reasons.is_empty()) {
            let reasons: Vec<String> = sc
                .reasons
                .iter()
                .map(|r| format!("{} ({})", r.kind.replace('_', " "), clean(&r.detail)))
                .collect();
            f.add("screening", format!("SUSPICIOUS, a heuristic: {}", reasons.join("; ")));
        }
        for (i, a) in m.attachments.iter().enumerate() {
            f.add(
                "attachment",
                format!(
                    "{i}: {} ({}, {} bytes) — loft mail attachment {} {i} -o FILE",
                    clean(a.name.as_deref().unwrap_or("(no name)")),
                    clean(&a.content_type),
                    a.size,
                    m.id
                ),
            );
        }
        for c in &m.codes {
            f.add("code", clean(c));
        }
        for l in &m.links {
            let kind = serde_json::to_value(l.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let warn = if l.deceptive {
                " (its text shows another host)"
            } else {
                ""
            };
            f.add("link", format!("{kind}: {}{warn}", clean(&l.url)));
        }
        for d in &m.delivery {
            let status = serde_json::to_value(d.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            f.add("delivery", format!("{}: {status} ({})", d.recipient, clean(&d.detail)));
        }
    }
    f
}

fn body(m: &Message) -> String {
    if m.text.trim().is_empty() {
        match &m.html {
            Some(h) if !h.trim().is_empty() => {
                format!(
                    "(this message has only an HTML body; shown as sent)\n\n{}",
                    clean_body(h)
                )
            }
            _ => "(empty body)".into(),
        }
    } else {
        clean_body(&m.text)
    }
}

pub fn message(m: &Message) -> String {
    let mut out = message_headers(m, true).render();
    out.push('\n');
    out.push_str(body(m).trim_end());
    out.push('\n');
    out
}

/// After `mail send` / `mail reply`.
pub fn sent(m: &Message) -> String {
    let mut out = match m.status {
        MessageStatus::Scheduled => format!("scheduled {} (thread {})\n", m.id, m.thread_id),
        MessageStatus::Canceled => format!("canceled {} (never sent)\n", m.id),
        _ => format!("sent {} (thread {})\n", m.id, m.thread_id),
    };
    let mut f = Fields::default();
    f.add("subject", clean(&m.subject));
    if let Some(t) = m.send_at {
        f.add("send at", time(t));
    }
    for d in &m.delivery {
        let status = serde_json::to_value(d.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        f.add("delivery", format!("{}: {status}", d.recipient));
    }
    out.push_str(&f.render());
    out
}

/// After `mail label`.
pub fn labelled(m: &Message) -> String {
    let mut f = Fields::default();
    f.add("id", m.id.to_string())
        .add(
            "labels",
            if m.labels.is_empty() {
                "-".into()
            } else {
                list(&m.labels)
            },
        )
        .add("unread", if m.unread { "yes" } else { "no" });
    if m.archived {
        f.add("archived", "yes");
    }
    if let Some(t) = m.trashed_at {
        f.add("trashed", time(t));
    }
    f.render()
}

/// The state of every message of a thread after a change to all of them.
pub fn thread_state(t: &Thread) -> String {
    let mut table = Table::new(&["ID", "LABELS", "UNREAD", "ARCHIVED", "TRASHED"]);
    for m in &t.messages {
        table.row(vec![
            m.id.to_string(),
            if m.labels.is_empty() {
                "-".into()
            } else {
                list(&m.labels)
            },
            if m.unread { "yes" } else { "no" }.into(),
            if m.archived { "yes" } else { "no" }.into(),
            m.trashed_at.map_or_else(|| "-".into(), time),
        ]);
    }
    format!("thread {}\n{}", t.id, table.render())
}

/// What a delete for ever removed.
pub fn deleted(d: &loft_core::service::Deleted) -> String {
    let ids: Vec<String> = d.deleted.iter().map(ToString::to_string).collect();
    format!("deleted for ever: {}\n", ids.join(", "))
}

pub fn threads(items: &[ThreadSummary]) -> String {
    if items.is_empty() {
        return "no threads\n".into();
    }
    let mut t = Table::new(&["", "ID", "LAST", "MSGS", "SUBJECT", "PARTICIPANTS"]);
    for th in items {
        t.row(vec![
            if th.unread_count > 0 { "*".into() } else { String::new() },
            th.id.to_string(),
            time(th.last_message_at),
            th.message_count.to_string(),
            ellipsize(&clean(&th.subject), SUBJECT_WIDTH),
            ellipsize(&list(&th.participants), 60),
        ]);
    }
    t.render()
}

pub fn thread(t: &Thread) -> String {
    let n = t.messages.len();
    let mut out = format!(
        "thread {}: {} ({n} message{})\n",
        t.id,
        clean(&t.subject),
        if n == 1 { "" } else { "s" }
    );
    for m in &t.messages {
        out.push('\n');
        out.push_str(&"-".repeat(72));
        out.push('\n');
        out.push_str(&message_headers(m, false).render());
        out.push('\n');
        out.push_str(body(m).trim_end());
        out.push('\n');
    }
    out
}

// ----- approvals -----

/// A length of time in at most two units: `45s`, `12m`, `3h 5m`, `2d 4h`.
pub fn span(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn secs_between(from: Timestamp, to: Timestamp) -> i64 {
    to.as_secs() - from.as_secs()
}

/// Why a mail is held, in a few words: `mode`, `exfiltration guard (github)`,
/// `first contact (x@example.com)`, `DMARC quarantine`.
fn hold_kinds(reasons: &[HoldReason]) -> String {
    if reasons.is_empty() {
        return "-".into();
    }
    reasons
        .iter()
        .map(|r| match (r.kind, &r.credential) {
            (HoldKind::Mode, _) => "mode".to_owned(),
            (HoldKind::ExfiltrationGuard, Some(c)) => format!("exfiltration guard ({})", clean(c)),
            (HoldKind::ExfiltrationGuard, None) => "exfiltration guard".to_owned(),
            (HoldKind::Rule, _) => match &r.rule {
                Some(rule) => format!("rule {} ({})", rule.id, clean(&rule.pattern.to_string())),
                None => "rule".to_owned(),
            },
            (HoldKind::FirstContact, _) => format!(
                "first contact ({})",
                r.addresses
                    .iter()
                    .map(|a| clean(a.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (HoldKind::Dmarc, _) => "DMARC quarantine".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn recipients(a: &Approval) -> Vec<&loft_core::address::EmailAddress> {
    a.to.iter().chain(&a.cc).chain(&a.bcc).collect()
}

/// How old, and what became of it: `12m, expires in 23h 48m`, `2d, rejected 1d 3h ago`.
fn age_and_fate(a: &Approval, now: Timestamp) -> String {
    let age = span(secs_between(a.created_at, now));
    match (a.status, a.decided_at) {
        (ApprovalStatus::Pending, _) => format!("{age}, expires in {}", span(secs_between(now, a.expires_at))),
        (ApprovalStatus::Expired, _) => format!("{age}, expired"),
        (s, Some(t)) => format!("{age}, {} {} ago", s.as_str(), span(secs_between(t, now))),
        (s, None) => format!("{age}, {}", s.as_str()),
    }
}

/// `status`: the filter asked for (`None`: any).
pub fn approvals(items: &[Approval], status: Option<&str>, now: Timestamp) -> String {
    if items.is_empty() {
        return match status {
            Some(s) => format!("no {s} approvals\n"),
            None => "no approvals\n".into(),
        };
    }
    let mut t = Table::new(&[
        "ID",
        "STATUS",
        "WAY",
        "FROM",
        "TO",
        "SUBJECT",
        "HELD BECAUSE",
        "AGE / EXPIRES",
    ]);
    for a in items {
        t.row(vec![
            a.id.to_string(),
            a.status.as_str().into(),
            match a.direction {
                HoldDirection::Send => "out".into(),
                HoldDirection::Receive => "in".into(),
            },
            ellipsize(&a.from.to_string(), ADDRESS_WIDTH),
            ellipsize(&first_and_count(&recipients(a)), ADDRESS_WIDTH),
            ellipsize(&clean(&a.subject), 40),
            ellipsize(&hold_kinds(&a.reasons), 50),
            age_and_fate(a, now),
        ]);
    }
    t.render()
}

fn decider(d: &Decider) -> String {
    let mut s = match (&d.address, &d.identity_id) {
        (Some(a), Some(id)) => format!("reviewer {a} ({id})"),
        (Some(a), None) => format!("reviewer {a}"),
        (None, Some(id)) => format!("reviewer {id}"),
        (None, None) => clean(&d.kind),
    };
    if let Some(k) = d.key_id.as_deref().filter(|k| *k != d.kind) {
        let _ = write!(s, " with key {}", clean(k));
    }
    s
}

/// `approvals show`: where the approval stands and why the mail is held, then the whole mail
/// as it will be sent (both bodies: a reviewer must see everything that would leave).
pub fn approval(v: &ApprovalView, now: Timestamp) -> String {
    let a = &v.approval;
    let mut f = Fields::default();
    f.add("approval", a.id.to_string());
    let status = match a.status {
        ApprovalStatus::Pending => format!(
            "pending (expires {}, in {})",
            time(a.expires_at),
            span(secs_between(now, a.expires_at))
        ),
        ApprovalStatus::Expired => format!("expired (at {})", time(a.expires_at)),
        s => s.as_str().to_owned(),
    };
    match a.direction {
        HoldDirection::Send => f.add("status", status).add("composed by", a.identity_id.to_string()),
        HoldDirection::Receive => f.add("status", status).add(
            "held for",
            format!("{} (incoming mail, not yet seen by it)", a.identity_id),
        ),
    };
    for r in &a.reasons {
        f.add("held because", clean(&r.detail));
    }
    f.add(
        "held since",
        format!("{} ({} ago)", time(a.created_at), span(secs_between(a.created_at, now))),
    );
    if let Some(t) = a.decided_at {
        let by = a
            .decided_by
            .as_ref()
            .map_or_else(String::new, |d| format!(" by {}", decider(d)));
        f.add("decided", format!("{}{by}", time(t)));
    }
    if let Some(r) = &a.reason {
        f.add("reason", clean(r));
    }
    if a.edit_count > 0 {
        f.add("edited", edited(a));
    }
    let m = &v.message;
    let mut out = f.render();
    out.push('\n');
    out.push_str(&"-".repeat(72));
    out.push('\n');
    out.push_str(&message(m));
    if let Some(h) = m
        .html
        .as_deref()
        .filter(|h| !h.trim().is_empty() && !m.text.trim().is_empty())
    {
        out.push_str("\n--- HTML body, sent as an alternative to the text above ---\n\n");
        out.push_str(clean_body(h).trim_end());
        out.push('\n');
    }
    out
}

/// Who edited held mail, when, and how often: `by reviewer alice@... at ... (2 edits)`.
fn edited(a: &Approval) -> String {
    let mut s = a
        .edited_by
        .as_ref()
        .map_or_else(|| "by a reviewer".to_owned(), |d| format!("by {}", decider(d)));
    if let Some(t) = a.edited_at {
        let _ = write!(s, " at {}", time(t));
    }
    if a.edit_count > 1 {
        let _ = write!(s, " ({} edits)", a.edit_count);
    }
    s
}

/// `identity mode-requests`: the open requests, newest first.
pub fn mode_requests(items: &[ModeRequest], now: Timestamp) -> String {
    if items.is_empty() {
        return "no open mode requests\n".into();
    }
    let mut t = Table::new(&["IDENTITY", "ADDRESS", "MODE NOW", "ASKS FOR", "ASKED", "REASON"]);
    for r in items {
        t.row(vec![
            r.identity_id.to_string(),
            ellipsize(&r.address.to_string(), ADDRESS_WIDTH),
            r.current_mode.as_str().into(),
            r.mode.as_str().into(),
            format!("{} ago", span(secs_between(r.requested_at, now))),
            ellipsize(&clean(&r.reason), 60),
        ]);
    }
    t.render()
}

/// One mode request (after `identity deny-mode`, and in `whoami`).
pub fn mode_request(r: &ModeRequest) -> String {
    let mut f = Fields::default();
    f.add("identity", r.identity_id.to_string())
        .add("address", r.address.to_string())
        .add("mode now", r.current_mode.as_str())
        .add("asks for", r.mode.as_str())
        .add("reason", clean(&r.reason))
        .add("asked", time(r.requested_at))
        .add("status", r.status.as_str());
    if let Some(t) = r.decided_at {
        f.add("denied", time(t));
    }
    if let Some(d) = &r.denial_reason {
        f.add("denial reason", clean(d));
    }
    f.render()
}

/// After deciding one approval.
pub fn decided(a: &Approval) -> String {
    let mut out = format!(
        "{} {}: \"{}\" from {} to {}\n",
        a.status.as_str(),
        a.id,
        ellipsize(&clean(&a.subject), SUBJECT_WIDTH),
        a.from,
        first_and_count(&recipients(a))
    );
    if let Some(r) = a.reason.as_deref().filter(|_| a.status == ApprovalStatus::Rejected) {
        let _ = writeln!(out, "  reason: {}", clean(r));
    }
    out
}

/// After deciding several: what was decided (for stdout), and what failed as `error:` and
/// `hint:` lines (for stderr).
pub fn batch_decision(b: &BatchDecision) -> (String, String) {
    let (mut done, mut failed) = (String::new(), String::new());
    for r in &b.results {
        match (&r.approval, &r.error) {
            (Some(a), None) => done.push_str(&decided(a)),
            (_, Some(e)) => {
                let _ = writeln!(failed, "error: {}: {}", clean(&r.id), clean(&e.message));
                if let Some(h) = &e.hint {
                    let _ = writeln!(failed, "hint: {}", clean(h));
                }
            }
            (None, None) => {
                let _ = writeln!(failed, "error: {}: the server did not say what happened", clean(&r.id));
            }
        }
    }
    (done, failed)
}

// ----- rules -----

/// Whom a rule is for: `instance`, or the identity's id.
fn rule_for(r: &Rule) -> String {
    r.identity
        .as_ref()
        .map_or_else(|| "instance".to_owned(), ToString::to_string)
}

pub fn rules(items: &[Rule]) -> String {
    if items.is_empty() {
        return "no rules\n".into();
    }
    let mut t = Table::new(&["ID", "FOR", "DIRECTION", "ACTION", "PATTERN", "NOTE"]);
    for r in items {
        t.row(vec![
            r.id.to_string(),
            rule_for(r),
            r.direction.as_str().into(),
            r.action.as_str().into(),
            clean(&r.pattern.to_string()),
            r.note
                .as_deref()
                .map_or_else(|| "-".to_owned(), |n| ellipsize(&clean(n), 50)),
        ]);
    }
    t.render()
}

pub fn suppressions(items: &[loft_client::api::Suppression]) -> String {
    if items.is_empty() {
        return "no suppressed addresses\n".into();
    }
    let mut t = Table::new(&["ADDRESS", "SINCE", "IDENTITY", "REASON"]);
    for s in items {
        t.row(vec![
            s.address.to_string(),
            time(s.created_at),
            s.identity_id.to_string(),
            ellipsize(&clean(&s.reason), 70),
        ]);
    }
    t.render()
}

/// After lifting a suppression.
pub fn suppression(what: &str, s: &loft_client::api::Suppression) -> String {
    let mut f = Fields::default();
    f.add("address", format!("{} ({what})", s.address))
        .add("reason", clean(&s.reason))
        .add(
            "bounced",
            format!("{} (message {} of {})", time(s.created_at), s.message_id, s.identity_id),
        );
    f.render()
}

/// After adding or removing one rule (`what`: `added`, `removed`).
pub fn rule(what: &str, r: &Rule) -> String {
    let mut f = Fields::default();
    f.add("rule", format!("{} ({what})", r.id))
        .add("for", rule_for(r))
        .add("direction", r.direction.as_str())
        .add("action", r.action.as_str())
        .add("pattern", clean(&r.pattern.to_string()));
    if let Some(n) = &r.note {
        f.add("note", clean(n));
    }
    f.add("created", format!("{} by {}", time(r.created_at), clean(&r.created_by)));
    f.render()
}

// ----- contacts -----

fn sender_contact(c: &SenderContact) -> String {
    let mut line = match c.since {
        Some(since) if c.known => format!("known since {}", time(since)),
        _ => "first contact (no mail exchanged before)".to_owned(),
    };
    if let Some(n) = &c.name {
        let _ = write!(line, ", \"{}\"", clean(n));
    }
    if !c.tags.is_empty() {
        let _ = write!(line, " [{}]", list(&c.tags));
    }
    line
}

pub fn contacts(items: &[Contact]) -> String {
    if items.is_empty() {
        return "no contacts\n".into();
    }
    let mut t = Table::new(&["ADDRESS", "NAME", "TAGS", "KNOWN SINCE", "LAST MAIL"]);
    for c in items {
        t.row(vec![
            clean(c.address.as_str()),
            c.name
                .as_deref()
                .map_or_else(|| "-".to_owned(), |n| ellipsize(&clean(n), 30)),
            if c.tags.is_empty() {
                "-".to_owned()
            } else {
                list(&c.tags)
            },
            c.known_since().map_or_else(|| "-".to_owned(), time),
            c.last_mail_at.map_or_else(|| "-".to_owned(), time),
        ]);
    }
    t.render()
}

/// One contact (`what`: `saved`, `forgotten`, or empty for `show`).
pub fn contact(what: &str, c: &Contact) -> String {
    let mut f = Fields::default();
    if what.is_empty() {
        f.add("contact", clean(c.address.as_str()));
    } else {
        f.add("contact", format!("{} ({what})", clean(c.address.as_str())));
    }
    if let Some(n) = &c.name {
        f.add("name", clean(n));
    }
    if !c.tags.is_empty() {
        f.add("tags", list(&c.tags));
    }
    match c.known_since() {
        Some(since) => f.add("known", format!("since {}", time(since))),
        None => f.add(
            "known",
            "no: no mail exchanged yet (mail to it may be held as a first contact)",
        ),
    };
    if let Some(t) = c.first_sent_at {
        f.add("first sent", time(t));
    }
    if let Some(t) = c.first_received_at {
        f.add("first received", time(t));
    }
    if let Some(t) = c.last_mail_at {
        f.add("last mail", time(t));
    }
    if let Some(n) = &c.notes {
        f.add("notes", clean(n));
    }
    f.render()
}

// ----- audit -----

fn actor(r: &AuditRecord) -> String {
    r.entry
        .actor_identity_id
        .as_ref()
        .map_or_else(|| r.entry.actor_kind.as_str().to_owned(), ToString::to_string)
}

pub fn audit_rows(items: &[AuditRecord]) -> String {
    if items.is_empty() {
        return "no audit rows\n".into();
    }
    let mut t = Table::new(&["SEQ", "TIME", "ACTOR", "KEY", "ACTION", "OUTCOME", "TARGET"]);
    for r in items {
        t.row(vec![
            r.seq.to_string(),
            time(r.entry.at),
            actor(r),
            r.entry.key_id.as_deref().map_or_else(|| "-".into(), clean),
            clean(&r.entry.action),
            r.entry.outcome.as_str().into(),
            r.entry.target.as_deref().map_or_else(|| "-".into(), clean),
        ]);
    }
    t.render()
}

pub fn audit_row(r: &AuditRecord) -> String {
    let mut f = Fields::default();
    f.add("seq", r.seq.to_string())
        .add("time", r.entry.at.to_rfc3339())
        .add("actor", actor(r))
        .add("key", r.entry.key_id.as_deref().map_or_else(|| "-".into(), clean))
        .add("action", clean(&r.entry.action))
        .add("target", r.entry.target.as_deref().map_or_else(|| "-".into(), clean))
        .add("outcome", r.entry.outcome.as_str())
        .add("details", clean(&r.entry.details.to_string()))
        .add("prev hash", r.prev_hash.clone())
        .add("hash", r.hash.clone());
    f.render()
}

fn short_hash(h: &str) -> &str {
    h.get(..16).unwrap_or(h)
}

/// The verdict of a local chain check; `bad_row` is the row at `first_bad_seq`, when it exists.
pub fn verify_report(r: &VerifyReport, bad_row: Option<&AuditRecord>) -> String {
    if r.ok {
        return match &r.head {
            Some(h) => format!(
                "audit log intact: {} rows, head {} {}\n",
                r.rows_checked,
                h.seq,
                short_hash(&h.hash)
            ),
            None => "audit log intact: 0 rows (the log is empty)\n".into(),
        };
    }
    let mut out = format!(
        "audit log BROKEN at row {}: {}\n",
        r.first_bad_seq.map_or_else(|| "?".into(), |s| s.to_string()),
        clean(r.problem.as_deref().unwrap_or("unknown problem"))
    );
    let _ = write!(out, "rows checked: {}", r.rows_checked);
    if let Some(h) = &r.head {
        let _ = write!(out, ", head {} {}", h.seq, short_hash(&h.hash));
    }
    out.push('\n');
    if let Some(row) = bad_row {
        out.push_str("\nfirst bad row:\n");
        out.push_str(&audit_row(row));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::*;
    use loft_core::audit::{ActorKind, AuditEntry, ChainHead, Outcome};
    use loft_core::identity::{Creator, IdentityStatus};
    use loft_core::ids::{IdentityId, KeyId, MessageId, ThreadId};
    use loft_core::keys::{KeyKind, Scope};
    use loft_core::mail::Authentication;

    const T0: Timestamp = Timestamp::from_micros(1_795_000_000_123_456);

    fn ident(name: &str) -> Identity {
        Identity {
            id: IdentityId::parse("idt_aaaaaaaaaaaaaaaaaaaa").unwrap(),
            name: name.into(),
            display_name: None,
            address: loft_core::address::EmailAddress::parse("researcher-abcde@agents.localhost").unwrap(),
            scopes: ScopeSet::new([Scope::MailRead, Scope::MailSend]),
            oversight_mode: loft_core::oversight::OversightMode::GatedSend,
            paused_at: None,
            caps: loft_core::caps::IdentityCaps::default(),
            status: IdentityStatus::Active,
            created_at: T0,
            revoked_at: None,
            created_by: Creator {
                kind: CreatorKind::Operator,
                identity_id: None,
                key_id: Some("operator".into()),
            },
        }
    }

    fn msg(subject: &str, text: &str) -> Message {
        Message {
            id: MessageId::parse("msg_aaaaaaaaaaaaaaaaaaaa").unwrap(),
            thread_id: ThreadId::parse("thr_aaaaaaaaaaaaaaaaaaaa").unwrap(),
            folder: Folder::Inbox,
            status: loft_core::mail::MessageStatus::Received,
            send_at: None,
            approval: None,
            sender_contact: None,
            attachments: vec![],
            message_id: "x@agents.localhost".into(),
            in_reply_to: None,
            references: vec![],
            from: loft_core::address::EmailAddress::parse("writer-aaaaa@agents.localhost").unwrap(),
            from_name: Some("Writer".into()),
            to: vec![loft_core::address::EmailAddress::parse("researcher-abcde@agents.localhost").unwrap()],
            cc: vec![],
            bcc: vec![],
            subject: subject.into(),
            text: text.into(),
            html: None,
            extracted_text: text.into(),
            authentication: Authentication::internal(),
            unread: false,
            labels: vec!["work".into()],
            archived: false,
            trashed_at: None,
            created_at: T0,
            size: 10,
            delivery: vec![],
            codes: vec![],
            links: vec![],
            screening: None,
        }
    }

    #[test]
    fn tables_align_columns_and_do_not_pad_the_last() {
        let mut t = Table::new(&["ID", "NAME", "NOTE"]);
        t.row(vec!["a".into(), "longer name".into(), "x".into()]);
        t.row(vec!["bbbb".into(), "n".into(), String::new()]);
        assert_eq!(t.render(), "ID    NAME         NOTE\na     longer name  x\nbbbb  n\n");
    }

    #[test]
    fn fields_align_values() {
        let mut f = Fields::default();
        f.add("id", "1").add("display name", "x").add("empty", "");
        assert_eq!(f.render(), "id:            1\ndisplay name:  x\nempty:\n");
    }

    #[test]
    fn rules_say_whom_which_way_what_and_why() {
        use loft_core::rules::{RuleAction, RuleDirection, RuleId, RulePattern};
        let mut r = Rule {
            id: RuleId::parse("rul_aaaaaaaaaaaaaaaaaaaa").unwrap(),
            identity: None,
            direction: RuleDirection::Send,
            action: RuleAction::Block,
            pattern: RulePattern::parse("*@example.com").unwrap(),
            note: Some("no\x1b[2J mail".into()),
            created_at: T0,
            created_by: "operator".into(),
        };
        let out = rules(std::slice::from_ref(&r));
        let row = out.lines().nth(1).unwrap();
        for part in [
            "rul_aaaaaaaaaaaaaaaaaaaa",
            "instance",
            "send",
            "block",
            "*@example.com",
            "no?[2J mail",
        ] {
            assert!(row.contains(part), "{part}: {out}");
        }
        r.identity = Some(IdentityId::parse("idt_bbbbbbbbbbbbbbbbbbbb").unwrap());
        let one = rule("added", &r);
        assert!(
            one.contains("rul_aaaaaaaaaaaaaaaaaaaa (added)") && one.contains("idt_bbbbbbbbbbbbbbbbbbbb"),
            "{one}"
        );
        assert_eq!(rules(&[]), "no rules\n");
        let reason = HoldReason {
            kind: HoldKind::Rule,
            detail: "held".into(),
            credential: None,
            encoding: None,
            rule: Some(r.reference()),
            addresses: vec![],
        };
        assert_eq!(hold_kinds(&[reason]), "rule rul_aaaaaaaaaaaaaaaaaaaa (*@example.com)");
    }

    #[test]
    fn untrusted_text_cannot_drive_the_terminal() {
        assert_eq!(clean("a\x1b[31mred\r\nb\u{202e}c"), "a?[31mred  b?c");
        assert_eq!(clean_body("line 1\r\nline\t2\x07\n"), "line 1\nline\t2?\n");
        assert_eq!(ellipsize("abcdef", 4), "abc…");
        assert_eq!(ellipsize("abc", 4), "abc");
    }

    #[test]
    fn times_are_utc_to_the_second() {
        assert_eq!(
            time(Timestamp::from_micros(1_795_000_000_123_456)),
            "2026-11-18T11:06:40Z"
        );
    }

    #[test]
    fn identity_output() {
        let out = identity(&ident("researcher"));
        assert!(out.contains("id:            idt_aaaaaaaaaaaaaaaaaaaa\n"), "{out}");
        assert!(out.contains("scopes:        mail:read, mail:send\n"), "{out}");
        assert!(out.contains("created by:    operator\n"), "{out}");
        assert!(out.contains("\nmode:          gated_send\n"), "{out}");

        let list = identities(&[ident("researcher"), ident("w")]);
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID  ") && lines[0].contains("ADDRESS") && lines[0].ends_with("CREATED"));
        assert_eq!(lines[1].find("researcher-abcde"), lines[0].find("ADDRESS"));
        assert_eq!(lines[1].find("gated_send"), lines[0].find("MODE"));
        assert_eq!(identities(&[]), "no identities\n");
    }

    #[test]
    fn new_keys_are_printed_once_and_marked() {
        let c = CreatedIdentity {
            identity: ident("researcher"),
            api_key: "loft_sk_kkkkkkkkkkkkkkkk_ssss".into(),
            key_id: KeyId::parse("key_kkkkkkkkkkkkkkkk").unwrap(),
        };
        let out = created_identity(&c);
        assert_eq!(out.matches("loft_sk_kkkkkkkkkkkkkkkk_ssss").count(), 1, "{out}");
        assert!(out.contains(SHOWN_ONCE), "{out}");
        assert!(
            out.contains("Oversight mode gated_send: every mail it sends waits for a reviewer's approval"),
            "{out}"
        );

        let k = CreatedKey {
            key: KeyMeta {
                id: KeyId::parse("key_kkkkkkkkkkkkkkkk").unwrap(),
                identity_id: IdentityId::parse("idt_aaaaaaaaaaaaaaaaaaaa").unwrap(),
                kind: KeyKind::Extra,
                label: Some("ci".into()),
                scopes: ScopeSet::new([Scope::MailRead]),
                created_at: T0,
                expires_at: Some(T0.plus_secs(60)),
                revoked_at: None,
                created_by_key: None,
            },
            api_key: "loft_sk_kkkkkkkkkkkkkkkk_ssss".into(),
        };
        let out = created_key(&k, T0);
        assert_eq!(out.matches("loft_sk_").count(), 1, "{out}");
        assert!(
            out.contains(SHOWN_ONCE) && out.contains("\nstate:     active\n"),
            "{out}"
        );
        // Listing the same key later: never the secret, and expiry is visible.
        let out = keys(std::slice::from_ref(&k.key), T0.plus_secs(61));
        assert!(!out.contains("loft_sk_") && out.contains("expired"), "{out}");
    }

    #[test]
    fn message_output_has_headers_then_body() {
        let out = message(&msg("Brief", "Hello\r\nworld"));
        let (head, body) = out.split_once("\n\n").unwrap();
        assert!(
            head.contains("from:     Writer <writer-aaaaa@agents.localhost>"),
            "{out}"
        );
        assert!(head.contains("subject:  Brief"), "{out}");
        assert!(head.contains("sender:   verified internal mail"), "{out}");
        assert_eq!(body, "Hello\nworld\n");

        let mut html_only = msg("s", "");
        html_only.html = Some("<p>hi</p>".into());
        assert!(message(&html_only).contains("only an HTML body"));
    }

    #[test]
    fn message_lists_mark_unread_and_show_the_other_party() {
        let m = msg("Brief about the Q4 plan", "x");
        let mut s = MessageSummary {
            id: m.id.clone(),
            thread_id: m.thread_id.clone(),
            folder: Folder::Inbox,
            status: loft_core::mail::MessageStatus::Received,
            message_id: m.message_id.clone(),
            from: m.from.clone(),
            from_name: None,
            to: m.to.clone(),
            cc: vec![],
            subject: m.subject.clone(),
            snippet: "x".into(),
            authentication: m.authentication.clone(),
            unread: true,
            labels: vec![],
            archived: false,
            trashed_at: None,
            created_at: T0,
        };
        let out = messages(std::slice::from_ref(&s), None);
        let row = out.lines().nth(1).unwrap();
        assert!(row.starts_with("*  msg_"), "{out}");
        assert!(
            row.contains("writer-aaaaa@agents.localhost") && row.ends_with("Brief about the Q4 plan"),
            "{out}"
        );
        s.folder = Folder::Sent;
        s.unread = false;
        let out = messages(&[s], Some("sent"));
        assert!(out.lines().next().unwrap().contains("TO"), "{out}");
        assert!(out.contains("to researcher-abcde@agents.localhost"), "{out}");
    }

    #[test]
    fn threads_print_every_message() {
        let t = Thread {
            id: ThreadId::parse("thr_aaaaaaaaaaaaaaaaaaaa").unwrap(),
            subject: "Brief".into(),
            messages: vec![msg("Brief", "first"), msg("Re: Brief", "second")],
        };
        let out = thread(&t);
        assert!(
            out.starts_with("thread thr_aaaaaaaaaaaaaaaaaaaa: Brief (2 messages)\n"),
            "{out}"
        );
        assert!(out.find("first").unwrap() < out.find("second").unwrap());
    }

    fn approval_of(status: ApprovalStatus) -> Approval {
        let m = msg("Quarterly numbers", "see attached");
        Approval {
            direction: HoldDirection::Send,
            id: loft_core::ids::ApprovalId::parse("apr_aaaaaaaaaaaaaaaaaaaa").unwrap(),
            status,
            identity_id: IdentityId::parse("idt_wwwwwwwwwwwwwwwwwwww").unwrap(),
            from: m.from.clone(),
            message_id: m.id.clone(),
            subject: m.subject.clone(),
            to: m.to.clone(),
            cc: vec![loft_core::address::EmailAddress::parse("boss@example.com").unwrap()],
            bcc: vec![],
            reasons: vec![
                HoldReason {
                    kind: HoldKind::Mode,
                    detail: "the sender is in oversight mode gated_send".into(),
                    credential: None,
                    encoding: None,
                    rule: None,
                    addresses: vec![],
                },
                HoldReason {
                    kind: HoldKind::ExfiltrationGuard,
                    detail: "the mail contains the value of the sender's vault credential `github` (base64)".into(),
                    credential: Some("github\x1b[2J".into()),
                    encoding: Some("base64".into()),
                    rule: None,
                    addresses: vec![],
                },
            ],
            created_at: T0,
            expires_at: T0.plus_secs(86_400),
            decided_at: None,
            decided_by: None,
            reason: None,
            edit_count: 0,
            edited_at: None,
            edited_by: None,
        }
    }

    fn rejected() -> Approval {
        Approval {
            status: ApprovalStatus::Rejected,
            decided_at: Some(T0.plus_secs(600)),
            decided_by: Some(Decider {
                kind: "identity".into(),
                identity_id: Some(IdentityId::parse("idt_rrrrrrrrrrrrrrrrrrrr").unwrap()),
                address: Some(loft_core::address::EmailAddress::parse("alice@agents.localhost").unwrap()),
                key_id: Some("key_rrrrrrrrrrrrrrrr".into()),
            }),
            reason: Some("do not send the token".into()),
            ..approval_of(ApprovalStatus::Pending)
        }
    }

    #[test]
    fn spans_use_at_most_two_units() {
        assert_eq!(span(-5), "0s");
        assert_eq!(span(45), "45s");
        assert_eq!(span(720), "12m");
        assert_eq!(span(3600), "1h");
        assert_eq!(span(3 * 3600 + 5 * 60 + 9), "3h 5m");
        assert_eq!(span(2 * 86_400), "2d");
        assert_eq!(span(2 * 86_400 + 4 * 3600 + 59), "2d 4h");
    }

    #[test]
    fn approval_lists_say_who_what_why_and_when() {
        let now = T0.plus_secs(12 * 60);
        let out = approvals(
            &[approval_of(ApprovalStatus::Pending), rejected()],
            Some("pending"),
            now,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        for h in ["ID", "STATUS", "FROM", "TO", "SUBJECT", "HELD BECAUSE", "AGE / EXPIRES"] {
            assert!(lines[0].contains(h), "{h}: {out}");
        }
        let row = lines[1];
        assert!(row.starts_with("apr_aaaaaaaaaaaaaaaaaaaa  pending"), "{out}");
        // The first recipient and how many more (To, Cc and Bcc alike).
        assert!(row.contains("researcher-abcde@agents.localhost +1"), "{out}");
        assert_eq!(row.find("researcher-abcde"), lines[0].find("TO"));
        // The kinds of hold, with the credential's name (cleaned) for the guard.
        assert!(row.contains("mode, exfiltration guard (github?[2J)"), "{out}");
        assert!(row.ends_with("12m, expires in 23h 48m"), "{out}");
        assert!(lines[2].ends_with("12m, rejected 2m ago"), "{out}");

        let expired = approval_of(ApprovalStatus::Expired);
        assert!(approvals(&[expired], None, now).contains("12m, expired"));
        assert_eq!(approvals(&[], Some("pending"), now), "no pending approvals\n");
        assert_eq!(approvals(&[], None, now), "no approvals\n");
    }

    #[test]
    fn an_approval_shows_why_what_and_the_whole_mail() {
        let mut m = msg("Quarterly numbers", "see attached");
        m.folder = Folder::Sent;
        m.status = MessageStatus::PendingApproval;
        m.html = Some("<p>token: Z2hwX3NlY3JldA</p>".into());
        let v = ApprovalView {
            approval: approval_of(ApprovalStatus::Pending),
            message: m,
        };
        let out = approval(&v, T0.plus_secs(3600));
        let (head, mail) = out.split_once(&"-".repeat(72)).unwrap();
        assert!(head.starts_with("approval:      apr_aaaaaaaaaaaaaaaaaaaa\n"), "{out}");
        assert!(
            head.contains("status:        pending (expires 2026-11-19T11:06:40Z, in 23h)\n"),
            "{out}"
        );
        assert!(head.contains("composed by:   idt_wwwwwwwwwwwwwwwwwwww\n"), "{out}");
        assert_eq!(head.matches("held because:").count(), 2, "{out}");
        assert!(head.contains("vault credential `github` (base64)"), "{out}");
        assert!(head.contains("held since:    2026-11-18T11:06:40Z (1h ago)\n"), "{out}");
        assert!(!head.contains("decided:"), "{out}");
        // The mail as it will be sent, both bodies: the HTML could carry what the text does not.
        assert!(mail.contains("status:   pending_approval\n"), "{out}");
        assert!(mail.contains("cc:") || mail.contains("to:"), "{out}");
        assert!(mail.contains("see attached"), "{out}");
        assert!(mail.contains("HTML body") && mail.contains("Z2hwX3NlY3JldA"), "{out}");

        let v = ApprovalView {
            approval: rejected(),
            message: msg("Quarterly numbers", "see attached"),
        };
        let out = approval(&v, T0.plus_secs(3600));
        assert!(out.contains("status:        rejected\n"), "{out}");
        assert!(
            out.contains(
                "decided:       2026-11-18T11:16:40Z by reviewer alice@agents.localhost (idt_rrrrrrrrrrrrrrrrrrrr) with key key_rrrrrrrrrrrrrrrr\n"
            ),
            "{out}"
        );
        assert!(out.contains("reason:        do not send the token\n"), "{out}");
        assert!(!out.contains("HTML body"), "{out}");
    }

    #[test]
    fn held_mail_shows_its_status_when_read() {
        let mut m = msg("s", "t");
        m.folder = Folder::Sent;
        m.status = MessageStatus::Rejected;
        m.approval = Some(rejected());
        let out = message(&m);
        assert!(
            out.contains("status:   rejected\nreason:   do not send the token\n"),
            "{out}"
        );
        // Ordinary mail has no status line.
        assert!(!message(&msg("s", "t")).contains("status:"));
    }

    #[test]
    fn decisions_say_what_was_decided_and_what_failed() {
        let mut approved = approval_of(ApprovalStatus::Approved);
        approved.decided_at = Some(T0);
        assert_eq!(
            decided(&approved),
            "approved apr_aaaaaaaaaaaaaaaaaaaa: \"Quarterly numbers\" from writer-aaaaa@agents.localhost to researcher-abcde@agents.localhost +1\n"
        );
        assert!(decided(&rejected()).ends_with("\n  reason: do not send the token\n"));

        let b = BatchDecision {
            results: vec![
                loft_core::service::BatchOutcome {
                    id: "apr_aaaaaaaaaaaaaaaaaaaa".into(),
                    approval: Some(approved),
                    error: None,
                },
                loft_core::service::BatchOutcome {
                    id: "apr_bbbbbbbbbbbbbbbbbbbb".into(),
                    approval: None,
                    error: Some(loft_core::error::ErrorDetail {
                        code: "already_decided".into(),
                        message: "approval apr_bbbbbbbbbbbbbbbbbbbb was already decided: rejected".into(),
                        hint: Some("nothing to do".into()),
                        request_id: None,
                    }),
                },
            ],
        };
        let (done, failed) = batch_decision(&b);
        assert!(
            done.starts_with("approved apr_aaaaaaaaaaaaaaaaaaaa:") && done.lines().count() == 1,
            "{done}"
        );
        assert_eq!(
            failed,
            "error: apr_bbbbbbbbbbbbbbbbbbbb: approval apr_bbbbbbbbbbbbbbbbbbbb was already decided: rejected\nhint: nothing to do\n"
        );
    }

    #[test]
    fn reviewers_are_told_what_their_key_does() {
        let mut i = ident("alice");
        i.scopes = ScopeSet::new(Scope::REVIEWER);
        i.oversight_mode = OversightMode::ReadOnly;
        let c = CreatedIdentity {
            identity: i.clone(),
            api_key: "loft_sk_kkkkkkkkkkkkkkkk_ssss".into(),
            key_id: KeyId::parse("key_kkkkkkkkkkkkkkkk").unwrap(),
        };
        let out = created_reviewer(&c);
        assert_eq!(out.matches("loft_sk_kkkkkkkkkkkkkkkk_ssss").count(), 1, "{out}");
        assert!(
            out.contains(SHOWN_ONCE) && out.contains("reviewer key") && out.contains("cannot send"),
            "{out}"
        );
        assert!(out.contains("mode:          read_only\n"), "{out}");
        assert_eq!(reviewers(&[]), "no reviewers\n");
        assert!(reviewers(&[i]).contains("read_only"));
    }

    fn record(seq: i64) -> AuditRecord {
        AuditRecord {
            seq,
            entry: AuditEntry {
                at: T0,
                actor_kind: ActorKind::Operator,
                actor_identity_id: None,
                key_id: Some("operator".into()),
                action: "identity.create".into(),
                target: Some("idt_aaaaaaaaaaaaaaaaaaaa".into()),
                outcome: Outcome::Ok,
                request_id: None,
                remote_addr: None,
                details: serde_json::json!({}),
                events: Vec::new(),
            },
            prev_hash: "0".repeat(64),
            hash: "ab".repeat(32),
        }
    }

    #[test]
    fn verify_reports() {
        let ok = VerifyReport {
            ok: true,
            rows_checked: 12,
            first_bad_seq: None,
            problem: None,
            head: Some(ChainHead {
                seq: 12,
                hash: "abcdef0123456789ffff".into(),
            }),
        };
        assert_eq!(
            verify_report(&ok, None),
            "audit log intact: 12 rows, head 12 abcdef0123456789\n"
        );
        let bad = VerifyReport {
            ok: false,
            rows_checked: 3,
            first_bad_seq: Some(3),
            problem: Some("row 3 was altered: its content does not match its hash".into()),
            head: ok.head.clone(),
        };
        let out = verify_report(&bad, Some(&record(3)));
        assert!(out.starts_with("audit log BROKEN at row 3: row 3 was altered"), "{out}");
        assert!(out.contains("first bad row:\nseq:"), "{out}");
        assert!(out.contains("action:     identity.create"), "{out}");
    }

    #[test]
    fn audit_lists() {
        let out = audit_rows(&[record(2), record(1)]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("SEQ  TIME"), "{out}");
        assert!(lines[1].starts_with("2    2026-"), "{out}");
        assert!(
            lines[1].contains("operator") && lines[1].contains("identity.create"),
            "{out}"
        );
    }

    #[test]
    fn whoami_shows_the_chain() {
        let i = ident("researcher");
        let w = WhoAmI {
            kind: CreatorKind::Identity,
            identity: Some(i.clone()),
            address: Some(i.address.clone()),
            scopes: i.scopes.clone(),
            key_id: "key_kkkkkkkkkkkkkkkk".into(),
            key_expires_at: None,
            chain: vec![
                ChainLink {
                    kind: CreatorKind::Identity,
                    identity_id: Some(i.id.clone()),
                    name: Some("researcher".into()),
                    address: Some(i.address.clone()),
                    created_with_key: None,
                },
                ChainLink::operator(),
            ],
            mode_request: None,
            sending: Some(loft_core::caps::SendingStatus {
                identity_id: i.id.clone(),
                caps: loft_core::caps::IdentityCaps {
                    mails_per_hour: Some(10),
                    ..Default::default()
                },
                instance_caps: loft_core::caps::SendCaps {
                    mails_per_day: Some(100),
                    ..Default::default()
                },
                used: loft_core::caps::SendUsage {
                    mails_last_hour: Some(3),
                    mails_last_day: Some(7),
                    new_recipients_last_day: None,
                },
            }),
        };
        let out = whoami(&w);
        assert!(
            out.contains("sending:      mails this hour 3 of 10; mails today 7 of 100 (instance cap, all identities together); first contact: allow\n"),
            "{out}"
        );
        assert!(
            out.contains("acting as:    identity idt_aaaaaaaaaaaaaaaaaaaa\n"),
            "{out}"
        );
        assert!(
            out.contains("chain:        researcher <researcher-abcde@agents.localhost> <- operator\n"),
            "{out}"
        );
    }

    #[test]
    fn revocations() {
        let a = IdentityId::parse("idt_aaaaaaaaaaaaaaaaaaaa").unwrap();
        let b = IdentityId::parse("idt_bbbbbbbbbbbbbbbbbbbb").unwrap();
        assert_eq!(
            revoked(std::slice::from_ref(&a)),
            "revoked identity idt_aaaaaaaaaaaaaaaaaaaa and its keys\n"
        );
        assert!(revoked(&[a, b]).contains("and 1 identity below it: idt_bbbbbbbbbbbbbbbbbbbb"));
    }
}
