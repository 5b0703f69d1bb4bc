//! The web console's people: sessions, personal passwords and the one-time invite links that
//! set them, and the limit on sign-in attempts. The use cases are in `service/console.rs`; the
//! HTML door is `loft-console`.
//!
//! Secrets here never reach the database in the clear: a session token and an invite token are
//! full-entropy random strings stored as SHA-256 digests (like API keys), a password is stored
//! only as an argon2id hash (PHC string, per-password salt). The CSRF token of a session is
//! derived from its token, so it needs no column and dies with the session.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::audit::AuditEntry;
use crate::ids::IdentityId;
use crate::random::{self, Random};
use crate::time::Timestamp;
use crate::{Error, Result};

/// Prefix of a console session token (the cookie's value).
pub const SESSION_PREFIX: &str = "lcs_";
/// Prefix of an invite token (in the link `loft console invite` prints).
pub const INVITE_PREFIX: &str = "lci_";
/// Random characters in a token (base32: 5 bits each, 160 bits).
const TOKEN_LEN: usize = 32;
/// How long a session lasts after sign-in, whatever its use (12 hours).
pub const SESSION_TTL_SECS: i64 = 12 * 3600;
/// How long an invite link stays good (7 days).
pub const INVITE_TTL_SECS: i64 = 7 * 24 * 3600;
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (argon2 takes any length; a bound keeps one request cheap).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Refused sign-ins from one address in one minute before 429 until the minute ends.
pub const SIGN_IN_FAILURES_PER_MINUTE: u32 = 10;

/// Who a console session belongs to: the operator, or a person with an identity of their own
/// (a reviewer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Person {
    Operator,
    Identity(IdentityId),
}

/// A session as stored (the token itself is not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// SHA-256 of the token, hex.
    pub digest: String,
    pub person: Person,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A person's console password and pending invite, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleLogin {
    pub identity_id: IdentityId,
    /// The argon2id PHC string; `None` until an invite was accepted.
    pub password_hash: Option<String>,
    /// SHA-256 of the pending invite token, hex; `None` once used.
    pub invite_digest: Option<String>,
    pub invite_expires_at: Option<Timestamp>,
}

/// Console sessions and passwords (conformance: `console`).
#[async_trait]
pub trait ConsoleStore: Send + Sync {
    /// Stores a new session with the audit row of the sign-in.
    async fn create_console_session(&self, session: ConsoleSession, audit: AuditEntry) -> Result<()>;

    /// The session with this digest, expired or not; `None` when there is none.
    async fn find_console_session(&self, digest: &str) -> Result<Option<ConsoleSession>>;

    /// Deletes the session (sign-out), with its audit row. `NotFound("session")` when absent.
    async fn delete_console_session(&self, digest: &str, audit: AuditEntry) -> Result<()>;

    /// Deletes every session that expired at or before `now`; answers how many.
    async fn purge_console_sessions(&self, now: Timestamp) -> Result<u64>;

    /// Sets a new invite for `identity` (replacing any earlier one, keeping its password until
    /// the invite is used), with the audit row.
    async fn put_console_invite(
        &self,
        identity: &IdentityId,
        digest: &str,
        expires_at: Timestamp,
        audit: AuditEntry,
    ) -> Result<()>;

    /// The login of an identity, or of the pending invite with this digest.
    async fn console_login(&self, identity: &IdentityId) -> Result<Option<ConsoleLogin>>;

    /// The login whose pending invite has this digest.
    async fn console_login_by_invite(&self, digest: &str) -> Result<Option<ConsoleLogin>>;

    /// Sets the password of the login whose invite has `digest` and uses the invite up, with
    /// the audit row, and deletes the identity's sessions (a new password ends them).
    /// `NotFound("invite")` when no login has that invite any more (used, or replaced).
    async fn accept_console_invite(&self, digest: &str, password_hash: &str, audit: AuditEntry) -> Result<IdentityId>;
}

/// SHA-256 of a token, hex.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token with `prefix`.
pub fn new_token(random: &dyn Random, prefix: &str) -> String {
    format!("{prefix}{}", random::base32_string(random, TOKEN_LEN))
}

/// Whether `s` has the shape of a token with `prefix` (checked before any lookup).
pub fn token_shape(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|r| r.len() == TOKEN_LEN && random::is_base32(r))
}

/// The CSRF token of a session: derived from its token, so a page can carry it while the
/// token stays in the `HttpOnly` cookie, and a forged form cannot know it.
pub fn csrf_token(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"loft-console-csrf-v1\0");
    h.update(session_token.as_bytes());
    hex::encode(h.finalize())
}

/// Compares two CSRF tokens in constant time.
pub fn csrf_matches(expected: &str, presented: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    expected.len() == presented.len() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// Checks a new password's length.
pub fn validate_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(
            "password_too_short",
            format!("the password must have at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid(
            "password_too_long",
            format!("the password must have at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// The argon2id hash (PHC string) of a password, with a fresh 128-bit salt.
pub fn hash_password(random: &dyn Random, password: &str) -> Result<String> {
    use argon2::password_hash::PasswordHasher as _;
    let mut salt = [0u8; 16];
    random.fill(&mut salt);
    argon2::Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("password hash: {e}")))
}

/// Whether `password` matches the stored PHC string (constant time inside argon2).
pub fn verify_password(stored: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordVerifier as _, phc::PasswordHash};
    PasswordHash::new(stored).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Refused sign-ins per client address and minute.
#[derive(Debug, Default)]
pub struct SignInLimiter {
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl SignInLimiter {
    fn minute(now: Timestamp) -> i64 {
        now.as_micros().div_euclid(60_000_000)
    }

    /// `Err(seconds to wait)` when `address` used up its refusals this minute.
    pub fn check(&self, address: &str, now: Timestamp) -> std::result::Result<(), u64> {
        let w = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match w.get(address) {
            Some((m, n)) if *m == Self::minute(now) && *n >= SIGN_IN_FAILURES_PER_MINUTE => {
                let into = now.as_micros().rem_euclid(60_000_000) / 1_000_000;
                Err((60 - into).max(1) as u64)
            }
            _ => Ok(()),
        }
    }

    /// Counts one refused sign-in.
    pub fn refused(&self, address: &str, now: Timestamp) {
        let mut w = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let minute = Self::minute(now);
        w.retain(|_, (m, _)| *m == minute);
        let e = w.entry(address.to_owned()).or_insert((minute, 0));
        e.1 += 1;
    }
}

/// The console page of approval `id` under the console's URL `base`: it asks for sign-in
/// first, and decides nothing by being opened.
pub fn approval_url(base: &str, id: &str) -> String {
    format!("{}/approvals/{id}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    #[test]
    fn passwords_hash_and_verify() {
        let r = SeededRandom::new(7);
        let h = hash_password(&r, "correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse battery!"));
        assert!(!verify_password("garbage", "x"));
        assert_ne!(h, hash_password(&r, "correct horse battery").unwrap(), "fresh salt");
    }

    #[test]
    fn tokens_and_csrf() {
        let r = SeededRandom::new(3);
        let t = new_token(&r, SESSION_PREFIX);
        assert!(token_shape(&t, SESSION_PREFIX));
        assert!(!token_shape(&t, INVITE_PREFIX));
        assert!(!token_shape("lcs_short", SESSION_PREFIX));
        let c = csrf_token(&t);
        assert!(csrf_matches(&c, &csrf_token(&t)));
        assert!(!csrf_matches(&c, &csrf_token(&new_token(&r, SESSION_PREFIX))));
        assert!(!csrf_matches(&c, ""));
        assert_ne!(digest(&t), c);
    }

    #[test]
    fn limiter_counts_per_minute() {
        let l = SignInLimiter::default();
        let t = Timestamp::from_micros(120_000_000);
        for _ in 0..SIGN_IN_FAILURES_PER_MINUTE {
            assert!(l.check("1.2.3.4", t).is_ok());
            l.refused("1.2.3.4", t);
        }
        assert_eq!(l.check("1.2.3.4", t), Err(60));
        assert!(l.check("5.6.7.8", t).is_ok());
        assert!(l.check("1.2.3.4", t.plus_secs(60)).is_ok());
    }

    #[test]
    fn passwords_have_a_length() {
        assert!(validate_password("short").is_err());
        assert!(validate_password("twelve chars").is_ok());
        assert!(validate_password(&"x".repeat(2000)).is_err());
    }
}
