//! Page cursors from clients: decoding never panics, and a cursor this server issued decodes
//! to what was encoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loft_core::service::{decode_cursor, encode_cursor};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = decode_cursor(s);
    }
    if data.len() >= 8 {
        let n = i64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        assert_eq!(decode_cursor(&encode_cursor(n)).expect("our own cursor"), n);
    }
});
