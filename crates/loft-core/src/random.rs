//! The randomness port, and the encodings Loft uses for random identifiers.
//!
//! Keys and ids are drawn from [`Random`]; production uses the operating system's CSPRNG,
//! tests may use a seeded source. Identifiers use lowercase RFC 4648 base32 (`a-z2-7`): safe in
//! URLs, mail addresses and shells, and unambiguous to parse next to `_`.

use std::sync::Mutex;

pub const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

pub trait Random: Send + Sync + 'static {
    fn fill(&self, buf: &mut [u8]);
}

/// The operating system's CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        // Failure here means the OS cannot provide randomness at all; nothing safe can go on.
        getrandom::fill(buf).expect("the operating system's random source failed");
    }
}

/// A deterministic source for tests (xorshift; never for keys in production).
#[derive(Debug)]
pub struct SeededRandom(Mutex<u64>);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(seed.max(1)))
    }
}

impl Random for SeededRandom {
    fn fill(&self, buf: &mut [u8]) {
        let mut s = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for b in buf {
            *s ^= *s << 13;
            *s ^= *s >> 7;
            *s ^= *s << 17;
            *b = (*s >> 24) as u8;
        }
    }
}

/// `n` random base32 characters (5 bits of entropy each).
pub fn base32_string(random: &dyn Random, n: usize) -> String {
    let mut bytes = vec![0u8; n];
    random.fill(&mut bytes);
    bytes.iter().map(|b| BASE32[(b & 31) as usize] as char).collect()
}

pub fn is_base32(s: &str) -> bool {
    s.bytes().all(|b| BASE32.contains(&b))
}
