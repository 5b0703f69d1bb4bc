//! Reply stripping: the part of a mail body a model should read.
//!
//! Mail bodies carry quoted history ("On ... wrote:" and `>` lines), forwarded originals and
//! signatures. Feeding all of that to a model wastes context and invites it to act on old text.
//! No maintained Rust crate does this (the known ones are ports of GitHub's
//! `email_reply_parser`, unmaintained), so this is a small, tested heuristic of our own:
//! cut at the first quote header or original-message marker, drop trailing `>` blocks and a
//! `-- ` signature.

/// Returns the new text of a message body, without quoted history or signature.
pub fn extract_reply(body: &str) -> String {
    let body = body.replace("\r\n", "\n");
    let mut kept: Vec<&str> = Vec::new();
    for line in body.lines() {
        let t = line.trim();
        if is_quote_header(t) || is_original_marker(t) || line == "-- " || t == "--" {
            break;
        }
        kept.push(line);
    }
    // Drop a trailing block of quoted lines (bottom-posted history without a header).
    while let Some(last) = kept.last() {
        let t = last.trim();
        if t.is_empty() || t.starts_with('>') {
            kept.pop();
        } else {
            break;
        }
    }
    // Leading blank lines carry nothing.
    let start = kept.iter().position(|l| !l.trim().is_empty()).unwrap_or(kept.len());
    kept[start..].join("\n")
}

fn is_quote_header(t: &str) -> bool {
    // "On Mon, 1 Jan 2026 at 10:00, Ann <ann@x> wrote:" and its usual variants.
    (t.starts_with("On ") && (t.ends_with("wrote:") || t.ends_with("écrit :")))
        || (t.starts_with("Le ") && t.ends_with("a écrit :"))
        || (t.starts_with("Am ") && t.ends_with("schrieb:"))
}

fn is_original_marker(t: &str) -> bool {
    let lower = t.to_ascii_lowercase();
    lower.starts_with("-----original message-----")
        || lower.starts_with("---------- forwarded message")
        || lower.starts_with("begin forwarded message:")
}

/// The first `max` characters of a text on one line, for list views.
pub fn snippet(text: &str, max: usize) -> String {
    // Word by word, stopping at `max` characters: a long body is not joined whole first
    // (every received mail's snippet is made on the path that answers SMTP's 250).
    let mut out = String::new();
    let mut chars = 0;
    for word in text.split_whitespace() {
        let sep = usize::from(chars > 0);
        let len = word.chars().count();
        if chars + sep + len > max {
            let room = max - chars;
            if sep == 1 && room > 0 {
                out.push(' ');
            }
            out.extend(word.chars().take(room.saturating_sub(sep)));
            out.push('…');
            return out;
        }
        if sep == 1 {
            out.push(' ');
        }
        out.push_str(word);
        chars += sep + len;
    }
    out
}

/// Refuses a NUL byte in text a client sends. PostgreSQL cannot store U+0000 in text at all,
/// so SQLite must not either: both backends accept and refuse the same inputs.
pub fn refuse_nul(field: &str, value: &str) -> crate::Result<()> {
    if value.contains('\0') {
        Err(crate::Error::invalid(
            "invalid_text",
            format!("`{field}` contains a NUL character (U+0000), which Loft does not store"),
        )
        .with_hint("remove the NUL characters; any other Unicode text is fine"))
    } else {
        Ok(())
    }
}

/// `text` made safe to record (in the audit log, say) when it came from a client and may not
/// be valid for storage: NULs replaced, at most `max` characters.
pub fn printable(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c == '\0' { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_is_the_first_words_on_one_line() {
        // What it always meant: the words joined by one space, cut at `max` characters.
        let joined = |text: &str, max: usize| {
            let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
            if one_line.chars().count() <= max {
                one_line
            } else {
                one_line.chars().take(max).chain(['…']).collect::<String>()
            }
        };
        let texts = [
            "",
            "   ",
            "one",
            "one two",
            "  one\n\ttwo   three  ",
            "héllo wörld ünïcode ✓ done",
            "a b c d e f g h i j k l m n o p",
            "word",
            "exactly ten",
        ];
        for text in texts {
            for max in 0..30 {
                assert_eq!(snippet(text, max), joined(text, max), "{text:?} at {max}");
            }
        }
    }

    #[test]
    fn strips_quote_header_and_history() {
        let body = "Thanks, draft attached.\n\nOn Sun, 22 Nov 2026 at 10:00, Researcher <r@x> wrote:\n> Please write the brief.\n> Regards";
        assert_eq!(extract_reply(body), "Thanks, draft attached.");
    }

    #[test]
    fn strips_signature_and_trailing_quotes() {
        let body = "\nShort answer: yes.\n> earlier text\n>\n\n-- \nWriter bot\nACME";
        assert_eq!(extract_reply(body), "Short answer: yes.");
    }

    #[test]
    fn keeps_inline_quotes_followed_by_answers() {
        let body = "> question one?\nAnswer one.\n> question two?\nAnswer two.";
        assert_eq!(extract_reply(body), body);
    }

    #[test]
    fn outlook_style_original() {
        let body = "Yes.\r\n-----Original Message-----\r\nFrom: a@b";
        assert_eq!(extract_reply(body), "Yes.");
    }

    #[test]
    fn snippets() {
        assert_eq!(snippet("a\n b   c", 10), "a b c");
        assert_eq!(snippet("abcdef", 3), "abc…");
    }
}
