//! `ApiKey::parse` never panics, accepted keys round-trip, and a refusal never echoes the
//! input (which may be a real secret pasted in the wrong place): every refusal says the same
//! words, whatever was presented.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loft_core::keys::ApiKey;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    match ApiKey::parse(s) {
        Ok(k) => assert_eq!(k.reveal(), s),
        Err(e) => {
            let reference = ApiKey::parse("loft_sk_short").expect_err("malformed");
            assert_eq!(e.to_string(), reference.to_string(), "the message depends on the input");
            assert_eq!(e.hint(), reference.hint(), "the hint depends on the input");
        }
    }
});
