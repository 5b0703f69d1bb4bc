//! Mail from outside: the SMTP envelope, and the parse of a received RFC 5322 message into
//! the fields a mailbox copy keeps (with `mail-parser`: MIME structure, transfer encodings,
//! charsets, HTML turned into text when there is no text part).
//!
//! This module is pure: it reads no store and no clock. The use case that checks recipients
//! and stores the mail is `service/inbound.rs`; the SMTP session that fills the envelope is
//! `loft-smtp`.

use mail_parser::MessageParser;

use crate::address::EmailAddress;
use crate::mail::{Attachment, MAX_SUBJECT};
use crate::text;

/// Most `References` kept from a received mail (the first and the newest ones), so that a
/// hostile header cannot make threading or storage unbounded.
pub const MAX_REFERENCES: usize = 50;
/// Most addresses kept from one of `To` / `Cc`.
pub const MAX_HEADER_ADDRESSES: usize = 100;
/// Most attachments listed for one mail.
pub const MAX_ATTACHMENTS: usize = 100;

/// What the SMTP session learnt before the data: who connected and what the envelope says.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// The client's IP address, for the audit log and the `Received` header.
    pub client_ip: Option<String>,
    /// The name the client gave in EHLO / HELO.
    pub helo: String,
    /// `MAIL FROM`; `None` for the null sender `<>` (bounces) or an address Loft cannot parse.
    pub mail_from: Option<EmailAddress>,
    /// `RCPT TO`, each accepted one once, in the order given.
    pub recipients: Vec<EmailAddress>,
}

/// A received message parsed into the fields a mailbox copy keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMail {
    /// `Message-ID` without angle brackets (`None` when the mail has none).
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// The first address of `From` (`None` when there is none Loft can read).
    pub from: Option<EmailAddress>,
    pub from_name: Option<String>,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub subject: String,
    /// The text body: the text parts, or the HTML converted to text when there are none.
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
}

/// Parses a received message. Never fails: whatever bytes arrived are a message of some kind
/// (headers missing or broken leave their fields empty).
pub fn parse(raw: &[u8]) -> ParsedMail {
    let Some(m) = MessageParser::default().parse(raw) else {
        // Not even a header block: keep the bytes as the text.
        return ParsedMail {
            message_id: None,
            in_reply_to: None,
            references: vec![],
            from: None,
            from_name: None,
            to: vec![],
            cc: vec![],
            subject: String::new(),
            text: clean(&String::from_utf8_lossy(raw)),
            html: None,
            attachments: vec![],
        };
    };
    let (from, from_name) = m
        .from()
        .and_then(|list| {
            list.mailboxes().find_map(|mb| {
                let a = EmailAddress::parse(mb.address()?).ok()?;
                Some((a, mb.name().map(clean).filter(|n| !n.trim().is_empty())))
            })
        })
        .map_or_else(
            // No From address Loft can keep (an internationalized one, say): keep what the
            // header says as the name, so the reader still sees who claims to write.
            || {
                let shown = m.from().and_then(|list| {
                    list.mailboxes().next().map(|mb| match (mb.name(), mb.address()) {
                        (Some(n), Some(a)) => format!("{n} <{a}>"),
                        (Some(n), None) => n.to_owned(),
                        (None, a) => a.unwrap_or_default().to_owned(),
                    })
                });
                (None, shown.map(|s| clean(&s)).filter(|s| !s.trim().is_empty()))
            },
            |(a, n)| (Some(a), n),
        );
    let addresses = |list: Option<mail_parser::AddressList<'_>>| -> Vec<EmailAddress> {
        let mut out: Vec<EmailAddress> = Vec::new();
        if let Some(list) = list {
            for a in list
                .mailboxes()
                .filter_map(|mb| EmailAddress::parse(mb.address()?).ok())
            {
                if !out.contains(&a) && out.len() < MAX_HEADER_ADDRESSES {
                    out.push(a);
                }
            }
        }
        out
    };
    let to = addresses(m.to());
    let cc = addresses(m.cc());
    let subject: String = m
        .subject()
        .map(|s| clean(s).replace(['\r', '\n'], " "))
        .unwrap_or_default()
        .chars()
        .take(MAX_SUBJECT)
        .collect();
    let message_id = m.message_id().and_then(msg_id);
    let in_reply_to = m.in_reply_to().and_then(|l| l.iter().find_map(msg_id));
    let mut references: Vec<String> = m
        .references()
        .map(|l| l.iter().filter_map(msg_id).collect())
        .unwrap_or_default();
    if references.len() > MAX_REFERENCES {
        let root = references[0].clone();
        references.drain(..=references.len() - MAX_REFERENCES);
        references.insert(0, root);
    }

    // Text parts (mail-parser converts HTML to text when a mail has no text alternative).
    let texts: Vec<String> = m.text_bodies().map(|t| clean(&t)).collect();
    let text = texts.join("\n").trim_end().to_owned();
    let html: Vec<String> = m
        .html_body()
        .filter(|p| p.is_content_type("text", "html"))
        .filter_map(|p| p.text().map(|t| clean(&t)))
        .collect();
    let html = (!html.is_empty()).then(|| html.join("\n"));
    // mail-parser's own reading of an HTML-only mail runs table cells and rows together
    // ("code is839 204"), which hides codes and words; ours keeps them apart.
    let plain = m.text_body().any(|p| p.is_content_type("text", "plain"));
    let text = if text.trim().is_empty() || !plain {
        // An HTML-only mail, an HTML part mail-parser did not turn into text, or no body at
        // all: never hand a model an empty string when there is something to read.
        match html.as_deref() {
            Some(h) if !h.trim().is_empty() => html_to_text(h),
            _ => text,
        }
    } else {
        text
    };

    let attachments = m.attachments().take(MAX_ATTACHMENTS).map(|p| describe(&p)).collect();

    ParsedMail {
        message_id,
        in_reply_to,
        references,
        from,
        from_name,
        to,
        cc,
        subject,
        text,
        html,
        attachments,
    }
}

/// An attachment as listed on a message.
fn describe(p: &mail_parser::MessagePart<'_>) -> Attachment {
    Attachment {
        name: p.attachment_name().map(clean),
        content_type: p.content_type().map_or_else(
            || "application/octet-stream".to_owned(),
            |ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
                None => ct.ctype().to_ascii_lowercase(),
            },
        ),
        size: p.decoded_len() as u64,
        inline: p.is_inline(),
    }
}

/// Every attachment of the raw message, in the order `attachments` lists them, with its
/// decoded bytes (what a forward carries).
pub fn all_attachments(raw: &[u8]) -> Vec<(Attachment, Vec<u8>)> {
    let Some(m) = MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    m.attachments()
        .take(MAX_ATTACHMENTS)
        .map(|part| (describe(&part), part.decoded().into_owned()))
        .collect()
}

/// Attachment `index` (0-based, in the order `attachments` lists them) of the raw message:
/// what the listing says of it, and its decoded bytes. `None` when there is no such attachment.
pub fn attachment(raw: &[u8], index: usize) -> Option<(Attachment, Vec<u8>)> {
    if index >= MAX_ATTACHMENTS {
        return None;
    }
    let m = MessageParser::default().parse(raw)?;
    let part = m.attachments().nth(index)?;
    Some((describe(&part), part.decoded().into_owned()))
}

/// The readable text of a mail: its text body, else a note that it has none (never empty, so
/// that what a model is handed always says something).
pub fn extracted_text(parsed: &ParsedMail) -> String {
    let reply = text::extract_reply(&parsed.text);
    if !reply.trim().is_empty() {
        return reply;
    }
    if !parsed.text.trim().is_empty() {
        return parsed.text.trim().to_owned();
    }
    if parsed.attachments.is_empty() {
        "(the mail has no text)".to_owned()
    } else {
        format!(
            "(the mail has no text; {} attachment(s): {})",
            parsed.attachments.len(),
            parsed
                .attachments
                .iter()
                .map(|a| a.name.as_deref().unwrap_or(a.content_type.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// A `Message-ID`-like value without angle brackets or white space, if it has anything left.
fn msg_id(s: &str) -> Option<String> {
    let id = s.trim().trim_start_matches('<').trim_end_matches('>').trim();
    (!id.is_empty() && id.len() <= 998 && !id.chars().any(|c| c.is_whitespace() || c == '\0')).then(|| id.to_owned())
}

/// Text as Loft stores it: no NUL (PostgreSQL cannot keep U+0000 in text; SQLite must store
/// the same), line ends as `\n`.
fn clean(s: &str) -> String {
    s.replace('\0', "").replace("\r\n", "\n")
}

/// A plain reading of HTML, for the rare mail whose HTML mail-parser kept as HTML only: tags
/// dropped (block ends as line breaks), `script` and `style` contents dropped, the common
/// entities decoded, blank runs collapsed.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        rest = &rest[lt..];
        let Some(gt) = rest.find('>') else {
            rest = "";
            break;
        };
        let tag = rest[1..gt].trim().to_ascii_lowercase();
        rest = &rest[gt + 1..];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        if !tag.starts_with('/') && (name == "script" || name == "style") {
            let close = format!("</{name}");
            rest = match rest.to_ascii_lowercase().find(&close) {
                Some(i) => &rest[i..],
                None => "",
            };
            continue;
        }
        if matches!(
            name.as_str(),
            "br" | "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table" | "blockquote"
        ) {
            out.push('\n');
        } else if matches!(name.as_str(), "td" | "th") {
            out.push(' ');
        }
    }
    out.push_str(rest);
    let out = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let mut lines: Vec<String> = Vec::new();
    for line in out.lines() {
        let l = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if l.is_empty() && lines.last().is_none_or(String::is_empty) {
            continue;
        }
        lines.push(l);
    }
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_mail() {
        let raw = b"From: Ann Example <Ann@Example.COM>\r\nTo: bot-abc12@agents.localhost, x@y.test\r\n\
Subject: Hello\r\nMessage-ID: <m1@example.com>\r\nIn-Reply-To: <p1@agents.localhost>\r\n\
References: <r0@agents.localhost> <p1@agents.localhost>\r\n\r\nHi there.\r\n\r\nOn Mon, Ann wrote:\r\n> old\r\n";
        let p = parse(raw);
        assert_eq!(p.from.as_ref().map(EmailAddress::as_str), Some("ann@example.com"));
        assert_eq!(p.from_name.as_deref(), Some("Ann Example"));
        assert_eq!(p.to.len(), 2);
        assert_eq!(p.subject, "Hello");
        assert_eq!(p.message_id.as_deref(), Some("m1@example.com"));
        assert_eq!(p.in_reply_to.as_deref(), Some("p1@agents.localhost"));
        assert_eq!(p.references, vec!["r0@agents.localhost", "p1@agents.localhost"]);
        assert!(p.text.starts_with("Hi there."), "{:?}", p.text);
        assert_eq!(extracted_text(&p), "Hi there.");
    }

    #[test]
    fn html_only_mail_gets_readable_text() {
        let raw = b"From: a@b.test\r\nSubject: Code\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<html><head><style>p{color:red}</style></head><body><p>Your code is <b>482913</b>.</p><p>Thanks&nbsp;&amp; bye</p></body></html>\r\n";
        let p = parse(raw);
        assert!(p.html.is_some());
        assert!(p.text.contains("482913"), "{:?}", p.text);
        assert!(!p.text.contains('<'), "{:?}", p.text);
        assert!(!p.text.contains("color"), "{:?}", p.text);
        assert!(extracted_text(&p).contains("482913"));
    }

    #[test]
    fn charsets_and_encoded_words() {
        let raw = b"From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.test>\r\nSubject: =?UTF-8?B?w6l0w6k=?=\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 cr=E8me\r\n";
        let p = parse(raw);
        assert_eq!(p.from_name.as_deref(), Some("André"));
        assert_eq!(p.subject, "été");
        assert_eq!(p.text, "Café crème");
        let jp = "From: a@b.test\r\nSubject: x\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n\r\n\x1b$B$3$s$K$A$O\x1b(B\r\n";
        assert_eq!(parse(jp.as_bytes()).text, "こんにちは");
    }

    #[test]
    fn attachments_are_listed() {
        let raw = b"From: a@b.test\r\nSubject: files\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n\
--XX\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
--XX\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\nContent-Disposition: attachment; filename=\"report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n--XX--\r\n";
        let p = parse(raw);
        assert_eq!(p.text, "see attached");
        assert_eq!(
            p.attachments,
            vec![Attachment {
                name: Some("report.pdf".into()),
                content_type: "application/pdf".into(),
                size: 11,
                inline: false
            }]
        );
    }

    #[test]
    fn garbage_and_empty_never_give_empty_extracted_text() {
        let p = parse(b"");
        assert!(!extracted_text(&p).is_empty());
        let p = parse(b"Subject: only headers\r\n\r\n");
        assert!(!extracted_text(&p).is_empty());
        let p = parse(b"From: a@b.test\r\nSubject: nul\r\n\r\nA\0B\r\n");
        assert_eq!(p.text, "AB");
    }

    #[test]
    fn an_internationalized_from_is_kept_as_the_name() {
        let p = parse("From: Jürgen <jürgen@bücher.example>\r\nSubject: x\r\n\r\nhi\r\n".as_bytes());
        assert_eq!(p.from, None);
        assert_eq!(p.from_name.as_deref(), Some("Jürgen <jürgen@bücher.example>"));
    }

    #[test]
    fn html_to_text_basics() {
        assert_eq!(
            html_to_text("<table><tr><td>Code</td><td>123</td></tr></table><script>x()</script>after"),
            "Code 123\n\nafter"
        );
    }
}
