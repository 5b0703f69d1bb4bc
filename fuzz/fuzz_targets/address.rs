//! `EmailAddress::parse` never panics, and what it accepts parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loft_core::address::EmailAddress;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(a) = EmailAddress::parse(s) {
        let again = EmailAddress::parse(a.as_str()).expect("a parsed address parses again");
        assert_eq!(again, a);
    }
});
