//! `ApiKey::parse` never panics, accepted keys round-trip, and a refusal never echoes the
//! input (which may be a real secret pasted in the wrong place).
#![no_main]

use libfuzzer_sys::fuzz_target;
use loft_core::keys::ApiKey;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    match ApiKey::parse(s) {
        Ok(k) => assert_eq!(k.reveal(), s),
        Err(e) => {
            // The part after the prefix is what would be secret in a mistyped real key.
            if let Some(rest) = s.strip_prefix("loft_sk_").filter(|r| r.len() > 16) {
                let shown = format!("{e} {}", e.hint().unwrap_or_default());
                assert!(!shown.contains(rest), "the error echoes the key");
            }
        }
    }
});
