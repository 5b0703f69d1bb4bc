//! Human output: aligned tables for lists, `key: value` lines for single objects, and mail
//! bodies under their headers.
//!
//! Everything shown here may come from outside (a subject, a display name, a body written by
//! another agent or a stranger), so control characters are neutralised before they reach the
//! terminal: an escape sequence in a subject must not be able to rewrite the screen. Pure
//! functions returning strings, so they are tested without a server.

use std::fmt::Write as _;

use loft_core::audit::{AuditRecord, VerifyReport};
use loft_core::identity::{ChainLink, CreatedIdentity, CreatedKey, CreatorKind, Identity, WhoAmI};
use loft_core::keys::{KeyMeta, ScopeSet};
use loft_core::mail::{Folder, Message, MessageSummary, Thread, ThreadSummary};
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
        .add("created", time(i.created_at))
        .add("created by", creator(i));
    if let Some(t) = i.revoked_at {
        f.add("revoked", time(t));
    }
    f
}

fn status(i: &Identity) -> &'static str {
    if i.is_active() { "active" } else { "revoked" }
}

pub fn identity(i: &Identity) -> String {
    identity_fields(i).render()
}

pub fn created_identity(c: &CreatedIdentity) -> String {
    let mut f = identity_fields(&c.identity);
    f.add("key id", c.key_id.to_string()).add("api key", c.api_key.clone());
    format!("{}\n{}\n", f.render(), shown_once_note())
}

fn shown_once_note() -> String {
    format!("The API key above is the identity's only copy: {SHOWN_ONCE}.")
}

pub fn identities(items: &[Identity]) -> String {
    if items.is_empty() {
        return "no identities\n".into();
    }
    let mut t = Table::new(&["ID", "ADDRESS", "NAME", "STATUS", "CREATED"]);
    for i in items {
        t.row(vec![
            i.id.to_string(),
            i.address.to_string(),
            ellipsize(&clean(&i.name), 40),
            status(i).into(),
            time(i.created_at),
        ]);
    }
    t.render()
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
        }
        _ => {
            f.add("acting as", "operator");
        }
    }
    f.add("key id", clean(&w.key_id))
        .add("key expires", w.key_expires_at.map_or_else(|| "never".into(), time))
        .add("scopes", scopes(&w.scopes))
        .add("chain", w.chain.iter().map(link).collect::<Vec<_>>().join(" <- "));
    f.render()
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

fn message_headers(m: &Message, full: bool) -> Fields {
    let mut f = Fields::default();
    f.add("id", m.id.to_string());
    if full {
        f.add("thread", m.thread_id.to_string())
            .add("folder", m.folder.as_str());
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
    let mut out = format!("sent {} (thread {})\n", m.id, m.thread_id);
    let mut f = Fields::default();
    f.add("subject", clean(&m.subject));
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
    f.render()
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
            created_at: T0,
            size: 10,
            delivery: vec![],
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

        let list = identities(&[ident("researcher"), ident("w")]);
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID  ") && lines[0].contains("ADDRESS") && lines[0].ends_with("CREATED"));
        assert_eq!(lines[1].find("researcher-abcde"), lines[0].find("ADDRESS"));
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
                ChainLink {
                    kind: CreatorKind::Operator,
                    identity_id: None,
                    name: None,
                    address: None,
                    created_with_key: None,
                },
            ],
        };
        let out = whoami(&w);
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
