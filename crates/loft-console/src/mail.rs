//! Showing a mail's HTML safely: `ammonia` keeps only inert markup (no script, no event
//! handlers, no style, no forms, no frames), links only to `http`, `https` and `mailto` (a
//! `javascript:` link loses its target), and images only when inline (`data:`): a remote
//! image would tell the sender that and when the mail was read, so it is dropped and counted.
//! Every link's real target is listed beside the mail, since link text can claim anything.
//! The page's Content-Security-Policy (no inline script, images from here only) stands behind
//! this as a second wall.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// A mail's HTML, made inert, with what was taken out or should be looked at.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SafeHtml {
    pub html: String,
    /// Every link's target, in order.
    pub links: Vec<String>,
    /// Remote images not loaded.
    pub blocked_images: usize,
}

#[derive(Default)]
struct Seen {
    links: Vec<String>,
    blocked_images: usize,
}

pub fn sanitize(html: &str) -> SafeHtml {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    let cleaned = ammonia::Builder::default()
        .url_schemes(HashSet::from(["http", "https", "mailto", "data"]))
        .link_rel(Some("noopener noreferrer nofollow"))
        .attribute_filter(move |element, attribute, value| {
            let mut s = record.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match (element, attribute) {
                ("img", "src") => {
                    if value.trim_start().to_ascii_lowercase().starts_with("data:image/") {
                        Some(value.into())
                    } else {
                        s.blocked_images += 1;
                        None
                    }
                }
                ("a", "href") => {
                    let v = value.trim();
                    if v.to_ascii_lowercase().starts_with("data:") {
                        None
                    } else {
                        s.links.push(v.to_owned());
                        Some(value.into())
                    }
                }
                // No image source of any other kind (srcset would fetch too).
                (_, "srcset") => None,
                _ => Some(value.into()),
            }
        })
        .clean(html)
        .to_string();
    let cleaned = empty_alt_where_missing(&cleaned);
    let s = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    SafeHtml {
        html: cleaned,
        // ammonia drops a `javascript:` href before the filter sees it; the rest are real
        // targets, shown as text.
        links: s.links.clone(),
        blocked_images: s.blocked_images,
    }
}

/// A mail's text, and its HTML made inert with where its links go: the body of every page
/// that shows a mail (a held mail, an operator's look into a mailbox).
pub fn body(m: &loft_core::mail::Message) -> maud::Markup {
    let safe = m.html.as_deref().map(sanitize);
    maud::html! {
        section aria-labelledby="text" {
            h2 #text { "Text" }
            pre.body { (m.text) }
        }
        @if let Some(s) = &safe {
            section aria-labelledby="html" {
                h2 #html { "HTML (made inert)" }
                @if s.blocked_images > 0 {
                    p.note { (s.blocked_images) " remote image(s) not loaded." }
                }
                div.mailhtml { (maud::PreEscaped(&s.html)) }
                @if !s.links.is_empty() {
                    h3 { "Where its links go" }
                    ul.links { @for l in &s.links { li { code { (l) } } } }
                }
            }
        }
    }
}

/// `alt=""` on every image of `clean` (ammonia's output) that has none: a mail's image without
/// one would leave the page without a text alternative (axe's `image-alt`), and ammonia can
/// only set an attribute on every image, overwriting the sender's text. ammonia serialises
/// every attribute value in double quotes with `"` escaped, and text `<` as `&lt;`, so a tag
/// ends at the first `>` outside quotes and `<img` begins only a tag.
fn empty_alt_where_missing(clean: &str) -> String {
    let mut out = String::with_capacity(clean.len());
    let mut rest = clean;
    while let Some(at) = rest.find("<img") {
        out.push_str(&rest[..at]);
        let tag = &rest[at..];
        let mut quoted = false;
        let end = tag
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    quoted = !quoted;
                }
                c == '>' && !quoted
            })
            .map_or(tag.len(), |(i, _)| i);
        let (head, tail) = tag.split_at(end);
        out.push_str(head);
        let mut quoted = false;
        let has_alt = head.char_indices().any(|(i, c)| {
            if c == '"' {
                quoted = !quoted;
            }
            !quoted && c == ' ' && head[i + 1..].starts_with("alt=")
        });
        if !has_alt {
            out.push_str(" alt=\"\"");
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// A mail as plain text for the thread beside a held mail: its text, or for an HTML-only mail
/// the text Loft extracted from it. Shown escaped: no markup of the mail reaches the page.
pub fn plain_text(m: &loft_core::mail::Message) -> &str {
    if m.text.trim().is_empty() {
        &m.extracted_text
    } else {
        &m.text
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_image_gets_a_text_alternative_and_keeps_its_own() {
        let s = super::sanitize(
            r#"<p>a <img src="https://t.example/p.gif"> b <img alt="x > y" src="data:image/png;base64,AA=="> <img title="alt= no"></p>"#,
        );
        assert_eq!(s.html.matches("<img").count(), 3, "{}", s.html);
        assert_eq!(s.html.matches(" alt=").count(), 3, "{}", s.html);
        assert!(
            s.html.contains(r#"alt="x > y""#) || s.html.contains(r#"alt="x &gt; y""#),
            "{}",
            s.html
        );
    }

    use super::*;

    #[test]
    fn hostile_html_is_inert() {
        let s = sanitize(
            r#"<p onclick="steal()">Hi <b>there</b></p>
               <script>alert(1)</script>
               <img src="https://tracker.example/pixel.gif" onerror="alert(2)">
               <img src="data:image/png;base64,iVBORw0KGgo=" alt="inline">
               <a href="javascript:alert(3)">click me</a>
               <a href="https://real.example/path">https://bank.example</a>
               <iframe src="https://evil.example"></iframe>
               <style>body{display:none}</style>
               <form action="https://evil.example"><input name="x"></form>"#,
        );
        let h = s.html.to_ascii_lowercase();
        for bad in [
            "<script",
            "onclick",
            "onerror",
            "javascript:",
            "tracker.example",
            "<iframe",
            "<style",
            "<form",
            "<input",
        ] {
            assert!(!h.contains(bad), "{bad} survived in {h}");
        }
        assert!(h.contains("<b>there</b>"));
        assert!(h.contains("data:image/png"));
        assert!(h.contains("rel=\"noopener noreferrer nofollow\""));
        assert_eq!(s.blocked_images, 1);
        assert_eq!(s.links, vec!["https://real.example/path".to_owned()]);
    }
}
