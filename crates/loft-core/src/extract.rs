//! Verification codes and links found in received mail, so that an agent finishing a sign-up
//! need not parse HTML or guess which number is the code.
//!
//! Both are heuristics, and say so where they are shown: a code is a run of 4 to 8 digits (or a
//! 6-to-8 character mix of capitals and digits) near a word that announces one ("code",
//! "verification", "OTP", "Bestätigungscode", "código", "验证码", ...); a number that is a year,
//! a price, a time, a date, part of a phone number or of a link is not one. Links are the
//! `http(s)` targets of the HTML's anchors and of the text, each with its anchor text, its host
//! and a kind (`verify`, `unsubscribe`, `other`); an anchor whose text names another host than
//! its target is marked `deceptive` (what a phishing mail does).
//!
//! Pure functions over the stored text: computed when a message is read, never stored.

use serde::{Deserialize, Serialize};

/// Most codes and links reported for one message.
pub const MAX_CODES: usize = 5;
pub const MAX_LINKS: usize = 20;
const MAX_LINK_TEXT: usize = 200;

/// A link found in a mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MailLink {
    pub url: String,
    /// The host the link really goes to.
    pub host: String,
    /// The anchor's text (HTML), or empty for a link written out in the text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// `verify` (confirm, activate, sign in, reset...), `unsubscribe`, or `other`.
    pub kind: LinkKind,
    /// The anchor's text names a host other than the one the link goes to.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deceptive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    Verify,
    Unsubscribe,
    Other,
}

/// Words that announce a code, lower-cased; several languages.
const CODE_WORDS: &[&str] = &[
    "code",
    "verification",
    "verify",
    "otp",
    "one-time",
    "one time",
    "passcode",
    "pin",
    "security",
    "login",
    "confirmation",
    "token",
    "código",
    "codigo",
    "vérification",
    "bestätigung",
    "verifizierung",
    "sicherheitscode",
    "codice",
    "verifica",
    "kod",
    "код",
    "验证码",
    "驗證碼",
    "校验码",
    "認証",
    "確認コード",
    "コード",
    "인증",
    "코드",
];

const VERIFY_WORDS: &[&str] = &[
    "verify",
    "verification",
    "confirm",
    "activate",
    "activation",
    "validate",
    "magic",
    "sign in",
    "sign-in",
    "signin",
    "log in",
    "login",
    "reset",
    "bestätig",
    "confirmer",
    "vérifi",
    "verificar",
    "confirmar",
    "conferma",
    "подтверд",
    "验证",
    "確認",
    "認証",
];

const UNSUBSCRIBE_WORDS: &[&str] = &[
    "unsubscribe",
    "opt-out",
    "opt out",
    "abmelden",
    "désinscri",
    "desuscrib",
    "baja",
];

/// The codes in a mail's subject and text, most likely first (at most [`MAX_CODES`]).
pub fn codes(subject: &str, text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let subject_announces = announces(subject);
    // The subject itself often carries the code ("Your code: 123456").
    if subject_announces {
        found.extend(candidates(subject));
    }
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut loose = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let near = announces(line)
            || lines[..i]
                .iter()
                .rev()
                .filter(|l| !l.is_empty())
                .take(2)
                .any(|l| announces(l));
        let here = candidates(line);
        if near {
            found.extend(here);
        } else if here.len() == 1 && here[0].len() == line.chars().filter(|c| !c.is_whitespace()).count() {
            // A line that is nothing but a code-like token: a code when the mail speaks of one.
            loose.extend(here);
        }
    }
    if found.is_empty() && (subject_announces || lines.iter().any(|l| announces(l))) {
        found = loose;
    }
    let mut out = Vec::new();
    for c in found {
        if !out.contains(&c) && out.len() < MAX_CODES {
            out.push(c);
        }
    }
    out
}

fn announces(line: &str) -> bool {
    let l = line.to_lowercase();
    CODE_WORDS.iter().any(|w| {
        // ASCII words must stand alone ("pin" is not in "spinning"); CJK ones need not.
        if w.is_ascii() {
            l.match_indices(w).any(|(i, _)| {
                let before = l[..i].chars().next_back();
                let after = l[i + w.len()..].chars().next();
                !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(|c| c.is_alphanumeric() && c != 's')
            })
        } else {
            l.contains(w)
        }
    })
}

/// Code-like tokens in one line, links removed first.
fn candidates(line: &str) -> Vec<String> {
    let line = strip_urls(line);
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let mut token: String = chars[start..i].iter().collect();
        let mut end = i;
        // "123 456" / "123-456": two groups of digits make one code.
        if token.bytes().all(|b| b.is_ascii_digit())
            && matches!(chars.get(end), Some(' ' | '-'))
            && chars.get(end + 1).is_some_and(char::is_ascii_digit)
        {
            let mut j = end + 1;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            let second: String = chars[end + 1..j].iter().collect();
            let third = matches!(chars.get(j), Some(' ' | '-')) && chars.get(j + 1).is_some_and(char::is_ascii_digit);
            if (3..=4).contains(&token.len()) && (3..=4).contains(&second.len()) && !third {
                token.push_str(&second);
                end = j;
                i = j;
            } else if third || token.len() < 4 {
                // A phone number or a longer run of groups: none of it is a code.
                while i < chars.len() && (chars[i].is_ascii_digit() || matches!(chars[i], ' ' | '-')) {
                    i += 1;
                }
                continue;
            }
        }
        if !joined(&chars, start, end) && is_code(&token) {
            out.push(token);
        }
    }
    out
}

/// Whether the token at `start..end` is part of something larger: a price, a percentage, an
/// order number, a time, a date, a decimal, a version. A full stop or comma that ends a
/// sentence does not join.
fn joined(chars: &[char], start: usize, end: usize) -> bool {
    let before = start.checked_sub(1).map(|k| chars[k]);
    let before2 = start.checked_sub(2).map(|k| chars[k]);
    let after = chars.get(end).copied();
    let after2 = chars.get(end + 1).copied();
    let always = |c: Option<char>| matches!(c, Some('$' | '€' | '£' | '¥' | '%' | '+' | '#' | '@' | '_' | '='));
    let between = |c: Option<char>, next: Option<char>| {
        matches!(c, Some(':' | '/' | '.' | ',' | '-')) && next.is_some_and(|n| n.is_ascii_alphanumeric())
    };
    always(before) || always(after) || between(before, before2) || between(after, after2)
}

fn is_code(token: &str) -> bool {
    let digits = token.bytes().filter(u8::is_ascii_digit).count();
    if digits == token.len() {
        if !(4..=8).contains(&token.len()) {
            return false;
        }
        // A year.
        if token.len() == 4 && matches!(token.parse::<u32>(), Ok(1900..=2099)) {
            return false;
        }
        return true;
    }
    // Mixed: capitals and digits, 6 to 8 long, at least two digits and one letter.
    (6..=8).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && digits >= 2
        && digits < token.len()
}

/// The line without its `http(s)://` links (their digits are never codes).
fn strip_urls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = find_url_start(rest) {
        out.push_str(&rest[..i]);
        let end = url_end(&rest[i..]);
        out.push(' ');
        rest = &rest[i + end..];
    }
    out.push_str(rest);
    out
}

fn find_url_start(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    match (lower.find("http://"), lower.find("https://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Where a URL written in text ends: at white space or a bracket, without trailing
/// punctuation.
fn url_end(s: &str) -> usize {
    let mut end = s
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | ')' | ']' | '}'))
        .map_or(s.len(), |(i, _)| i);
    while end > 0 && matches!(s.as_bytes()[end - 1], b'.' | b',' | b';' | b':' | b'!' | b'?') {
        end -= 1;
    }
    end
}

/// The links of a mail: the HTML's anchors first (with their text), then those written out in
/// the text; each URL once, at most [`MAX_LINKS`].
pub fn links(text: &str, html: Option<&str>) -> Vec<MailLink> {
    let mut out: Vec<MailLink> = Vec::new();
    let mut push = |url: &str, label: &str| {
        if out.len() >= MAX_LINKS || out.iter().any(|l| l.url == url) {
            return;
        }
        if let Some(link) = link(url, label) {
            out.push(link);
        }
    };
    if let Some(html) = html {
        for (href, label) in anchors(html) {
            push(&href, &label);
        }
    }
    let mut rest = text;
    while let Some(i) = find_url_start(rest) {
        let end = url_end(&rest[i..]);
        push(&rest[i..i + end], "");
        rest = &rest[i + end..];
    }
    out
}

fn link(url: &str, label: &str) -> Option<MailLink> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let host = parsed.host_str()?.to_ascii_lowercase();
    let text: String = label.split_whitespace().collect::<Vec<_>>().join(" ");
    let text: String = text.chars().take(MAX_LINK_TEXT).collect();
    let hay = format!("{} {}", parsed.as_str().to_lowercase(), text.to_lowercase());
    let kind = if UNSUBSCRIBE_WORDS.iter().any(|w| hay.contains(w)) {
        LinkKind::Unsubscribe
    } else if VERIFY_WORDS.iter().any(|w| hay.contains(w)) {
        LinkKind::Verify
    } else {
        LinkKind::Other
    };
    let deceptive = shown_host(&text).is_some_and(|shown| !same_site(&shown, &host));
    Some(MailLink {
        url: parsed.to_string(),
        host,
        text,
        kind,
        deceptive,
    })
}

/// The host an anchor's text shows, if it looks like a URL or a domain (`www.bank.com`,
/// `https://bank.com/login`).
fn shown_host(text: &str) -> Option<String> {
    let t = text.trim().to_ascii_lowercase();
    let t = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .unwrap_or(&t);
    let host: String = t
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .collect();
    let rest = &t[host.len()..];
    let looks_like_domain = host.contains('.')
        && !host.starts_with('.')
        && !host.ends_with('.')
        && host
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()))
        && (rest.is_empty() || rest.starts_with('/'));
    looks_like_domain.then_some(host)
}

/// Whether two hosts are the same site: equal, or one a subdomain of the other.
fn same_site(a: &str, b: &str) -> bool {
    let a = a.strip_prefix("www.").unwrap_or(a);
    let b = b.strip_prefix("www.").unwrap_or(b);
    a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}"))
}

/// `(href, text)` of each `<a href=...>...</a>`, entities in the href decoded.
fn anchors(html: &str) -> Vec<(String, String)> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find("<a") {
        let start = from + i;
        from = start + 2;
        if !lower[from..].starts_with(|c: char| c.is_ascii_whitespace()) {
            continue;
        }
        let Some(gt) = lower[start..].find('>') else { break };
        let tag = &html[start..start + gt];
        let tag_lower = &lower[start..start + gt];
        let Some(h) = tag_lower.find("href") else { continue };
        let after = tag[h + 4..].trim_start();
        let Some(after) = after.strip_prefix('=') else { continue };
        let after = after.trim_start();
        let href = match after.chars().next() {
            Some(q @ ('"' | '\'')) => after[1..].split(q).next().unwrap_or(""),
            _ => after
                .split(|c: char| c.is_whitespace() || c == '>')
                .next()
                .unwrap_or(""),
        };
        let body_start = start + gt + 1;
        let body_end = lower[body_start..].find("</a").map_or(html.len(), |e| body_start + e);
        let label = crate::inbound::html_to_text(&html[body_start..body_end]);
        out.push((decode_entities(href), label));
        from = body_end;
    }
    out
}

fn decode_entities(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&#38;", "&")
        .replace("&quot;", "\"")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn codes_in_common_formats() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "Your verification code",
                "Hi,\n\nYour code is 482913. It expires in 10 minutes.",
                &["482913"],
            ),
            (
                "Sign in to Example",
                "Use this code to sign in:\n\n  731 904  \n\nIf this wasn't you, ignore it.",
                &["731904"],
            ),
            ("123456 is your Instagram code", "Someone tried to log in.", &["123456"]),
            (
                "Security alert",
                "Your one-time passcode: AB12CD9\nValid until 14:30 on 05/12/2026.",
                &["AB12CD9"],
            ),
            (
                "Bestätigungscode",
                "Ihr Bestätigungscode lautet 552081.\nMit freundlichen Grüßen",
                &["552081"],
            ),
            ("Tu código de verificación", "Tu código es: 902-114", &["902114"]),
            ("【Example】验证码", "您的验证码是 660512，5分钟内有效。", &["660512"]),
            (
                "認証コードのお知らせ",
                "認証コード：\n418275\n有効期限は10分です。",
                &["418275"],
            ),
            (
                "Order 2026 shipped",
                "Your order #48213 of $1299 ships in 2026. Call +1 555 123 4567.",
                &[],
            ),
            (
                "Welcome",
                "Thanks for joining. Your code 4821 is inside https://x.test/v/991827 .",
                &["4821"],
            ),
            ("Invoice", "Total: 1250.00 EUR, due 2026-12-31.", &[]),
        ];
        for (subject, text, want) in cases {
            assert_eq!(codes(subject, text), *want, "{subject} / {text}");
        }
    }

    #[test]
    fn a_year_alone_is_not_a_code_but_a_lone_code_line_is() {
        assert!(codes("Login code", "Copyright 2025").is_empty());
        assert_eq!(
            codes(
                "Login code",
                "Hello,\n\nPlease enter it below\n\n\n\n\n990077\n\nThanks"
            ),
            ["990077"]
        );
        assert!(codes("Newsletter", "990077").is_empty(), "no word announces a code");
    }

    #[test]
    fn links_from_html_tables_and_text() {
        let html = r#"<table><tr><td><a href="https://example.com/verify?token=abc&amp;u=1" style="x">Confirm your email</a></td></tr>
            <tr><td><a href='https://example.com/unsub'>Unsubscribe</a> <a href="mailto:x@y.test">mail</a>
            <a href="https://evil.test/login">https://www.mybank.com/login</a>
            <a href="https://mail.mybank.com/x">www.mybank.com</a></td></tr></table>"#;
        let text = "Or paste https://example.com/verify?token=abc&u=1 or see https://docs.example.com/help.";
        let got = links(text, Some(html));
        let urls: Vec<&str> = got.iter().map(|l| l.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://example.com/verify?token=abc&u=1",
                "https://example.com/unsub",
                "https://evil.test/login",
                "https://mail.mybank.com/x",
                "https://docs.example.com/help"
            ]
        );
        assert_eq!(got[0].kind, LinkKind::Verify);
        assert_eq!(got[0].text, "Confirm your email");
        assert_eq!(got[1].kind, LinkKind::Unsubscribe);
        assert!(got[2].deceptive, "the text shows a bank, the link goes elsewhere");
        assert!(!got[3].deceptive, "a subdomain of what it shows");
        assert_eq!(got[4].kind, LinkKind::Other);
        assert!(!got[4].deceptive);
    }

    #[test]
    fn bounded_and_safe_on_odd_input() {
        let many = (0..100)
            .map(|i| format!("https://x.test/{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(links(&many, None).len(), MAX_LINKS);
        assert!(links("", Some("<a href=")).is_empty());
        assert!(links("http://", Some("<a href=\"javascript:alert(1)\">x</a><a")).is_empty());
        let _ = codes("code", "ü😀 1234\u{0}5678 -- 12-");
    }
}
