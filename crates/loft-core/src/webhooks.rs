//! Webhook signatures, as the Standard Webhooks specification defines them
//! (<https://www.standardwebhooks.com>): what a receiver checks with any of its libraries.
//!
//! A delivery carries three headers: `webhook-id` (the event's id, the same on every retry, so
//! that a receiver can drop repeats), `webhook-timestamp` (seconds since the epoch, when this
//! attempt was signed, so that a receiver can refuse old replays) and `webhook-signature`:
//! `v1,` and the base64 HMAC-SHA256, under the endpoint's secret, of
//! `{webhook-id}.{webhook-timestamp}.{body}`. While a rotated secret overlaps the new one,
//! the header carries one signature per secret, separated by spaces, and a receiver holding
//! either accepts it. A secret is shown as `whsec_` and the base64 of its 32 random bytes.
//!
//! This module is pure: endpoints, deliveries and retries are built on it elsewhere.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::random::Random;
use crate::{Error, Result};

/// How a secret is shown (and how receivers' libraries expect it).
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret.
pub const SECRET_BYTES: usize = 32;

/// An endpoint's signing secret. Never logged: `Debug` shows no bytes.
#[derive(Clone)]
pub struct SigningSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(..)")
    }
}

impl SigningSecret {
    pub fn generate(random: &dyn Random) -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        random.fill(&mut bytes);
        Self(bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// `whsec_...`, as shown once to whoever registers or rotates the endpoint.
    pub fn to_whsec(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(self.as_bytes())))
    }

    /// Reads `whsec_...` (or the bare base64) back; the error never repeats the input.
    pub fn parse(s: &str) -> Result<Self> {
        let b64 = s.strip_prefix(SECRET_PREFIX).unwrap_or(s);
        let bytes = Zeroizing::new(
            STANDARD
                .decode(b64)
                .map_err(|_| Error::invalid("invalid_secret", "a webhook secret is `whsec_` followed by base64"))?,
        );
        if bytes.len() < 16 {
            return Err(Error::invalid(
                "invalid_secret",
                "a webhook secret must hold at least 16 bytes",
            ));
        }
        Ok(Self(bytes))
    }
}

/// `v1,` and the signature of one delivery under one secret.
pub fn sign(secret: &SigningSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per live secret (the new one first).
pub fn signature_header(secrets: &[&SigningSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| sign(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `header` carries a valid `v1` signature under `secret` (for tests and for
/// receivers written in Rust), compared in constant time.
pub fn verify(secret: &SigningSecret, header: &str, id: &str, timestamp: i64, body: &[u8]) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    header.split(' ').filter_map(|s| s.strip_prefix("v1,")).any(|sig| {
        STANDARD
            .decode(sig)
            .is_ok_and(|sig| mac.clone().verify_slice(&sig).is_ok())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    /// The example of the Standard Webhooks specification and its reference libraries.
    #[test]
    fn the_specifications_example() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            &secret,
            &sig,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            body
        ));
        assert!(!verify(
            &secret,
            &sig,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_331,
            body
        ));
    }

    #[test]
    fn rotation_overlap_signs_with_both() {
        let (old, new) = (SigningSecret::generate(&OsRandom), SigningSecret::generate(&OsRandom));
        let header = signature_header(&[&new, &old], "evt_1", 1, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&old, &header, "evt_1", 1, b"{}"));
        assert!(verify(&new, &header, "evt_1", 1, b"{}"));
        let other = SigningSecret::generate(&OsRandom);
        assert!(!verify(&other, &header, "evt_1", 1, b"{}"));
    }

    #[test]
    fn secrets_round_trip_and_never_show_in_debug_or_errors() {
        let s = SigningSecret::generate(&OsRandom);
        let shown = s.to_whsec();
        assert!(shown.starts_with(SECRET_PREFIX));
        assert_eq!(SigningSecret::parse(&shown).unwrap().as_bytes(), s.as_bytes());
        assert_eq!(format!("{s:?}"), "SigningSecret(..)");
        let e = SigningSecret::parse("whsec_!!not-base64-secret!!").unwrap_err();
        assert!(!e.to_string().contains("not-base64-secret"), "{e}");
        assert!(SigningSecret::parse("whsec_AAAA").is_err(), "too short");
    }
}
