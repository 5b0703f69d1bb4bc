//! Mail received by SMTP, the MIME path: any bytes parse into a mail (mail-parser, our HTML to
//! text, reply stripping) without panicking; the text a model is handed is never empty, never
//! holds NUL (PostgreSQL could not store it), and the subject stays one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loft_core::inbound;

fuzz_target!(|data: &[u8]| {
    let parsed = inbound::parse(data);
    let extracted = inbound::extracted_text(&parsed);
    assert!(!extracted.trim().is_empty());
    assert!(!parsed.text.contains('\0') && !extracted.contains('\0'));
    assert!(!parsed.subject.contains(['\r', '\n', '\0']));
    assert!(parsed.html.as_deref().is_none_or(|h| !h.contains('\0')));
    let _ = inbound::html_to_text(&String::from_utf8_lossy(data));
});
