//! Text from mail: subjects, bodies and the RFC 5322 document built from them. Reply subjects
//! (once a panic on multi-byte letters), reply stripping, snippets, labels and the message
//! builder never panic on any Unicode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loft_core::address::EmailAddress;
use loft_core::mail::{self, Authentication, MailContent};
use loft_core::text;
use loft_core::time::Timestamp;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let _ = mail::reply_subject(&s);
    let _ = text::extract_reply(&s);
    let _ = text::snippet(&s, 120);
    let _ = mail::parse_label(&s);
    let (subject, body) = s.split_once('\n').unwrap_or((&s, ""));
    let content = MailContent {
        message_id: "fuzz@agents.test".into(),
        in_reply_to: None,
        references: vec![],
        from: EmailAddress::parse("a@agents.test").expect("address"),
        from_name: Some(subject.into()),
        to: vec![EmailAddress::parse("b@agents.test").expect("address")],
        cc: vec![],
        bcc: vec![],
        subject: subject.replace(['\r', '\n'], " "),
        text: body.into(),
        html: Some(body.into()),
        extracted_text: String::new(),
        authentication: Authentication::internal(),
        created_at: Timestamp::from_micros(1_795_000_000_000_000),
    };
    let _ = mail::build_rfc5322(&content, &[]);
});
