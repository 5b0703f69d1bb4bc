//! API keys and scopes.
//!
//! An identity key looks like `loft_sk_<key id>_<secret>`: the prefix makes a leaked key easy to
//! recognise (and to scan for), the key id is public and names the key in the audit log, and
//! the secret is 52 base32 characters (260 bits). Only a SHA-256 digest of the secret is stored
//! (keys are full-entropy, so a slow password hash would add nothing); digests are compared in
//! constant time. The operator key is either `LOFT_ADMIN_KEY` as given or a generated
//! `loft_admin_<secret>`; it lives in the server's configuration, never in the database.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ids::KeyId;
use crate::random::{self, Random};
use crate::time::Timestamp;
use crate::{Error, Result};

pub const KEY_PREFIX: &str = "loft_sk_";
pub const ADMIN_KEY_PREFIX: &str = "loft_admin_";
const KID_LEN: usize = 16;
const SECRET_LEN: usize = 52;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Scope {
    /// List and read the identity's own mail.
    #[serde(rename = "mail:read")]
    MailRead,
    /// Send and reply.
    #[serde(rename = "mail:send")]
    MailSend,
    /// Change labels and read state.
    #[serde(rename = "mail:manage")]
    MailManage,
    /// Create (and revoke) sub-identities below this one.
    #[serde(rename = "identity:create")]
    IdentityCreate,
    /// List, mint and revoke the identity's keys (and those of its sub-identities, with
    /// `identity:create`), and revoke identities. Primary keys hold it by default; an extra
    /// key holds it only when it was asked for by name.
    #[serde(rename = "keys:manage")]
    KeysManage,
    /// List vault entries, get TOTP codes, make brokered calls (vault issue).
    #[serde(rename = "vault:read")]
    VaultRead,
    /// Store and delete vault entries.
    #[serde(rename = "vault:write")]
    VaultWrite,
    /// Read plaintext secrets. Never granted by default.
    #[serde(rename = "vault:reveal")]
    VaultReveal,
    /// Review held mail: list, approve, reject and edit approvals. Reviewers' keys hold it;
    /// never together with `mail:send` (whoever may send may not approve), never by default.
    #[serde(rename = "oversight")]
    Oversight,
}

impl Scope {
    pub const ALL: [Scope; 9] = [
        Scope::MailRead,
        Scope::MailSend,
        Scope::MailManage,
        Scope::IdentityCreate,
        Scope::KeysManage,
        Scope::VaultRead,
        Scope::VaultWrite,
        Scope::VaultReveal,
        Scope::Oversight,
    ];

    /// What a reviewer (a human principal created with `loft reviewer create`) gets: reviewing
    /// held mail, reading the mail it is told of, and managing its own keys.
    pub const REVIEWER: [Scope; 3] = [Scope::Oversight, Scope::MailRead, Scope::KeysManage];

    /// What a new identity gets when no scopes are named.
    pub const DEFAULT: [Scope; 6] = [
        Scope::MailRead,
        Scope::MailSend,
        Scope::MailManage,
        Scope::KeysManage,
        Scope::VaultRead,
        Scope::VaultWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::MailRead => "mail:read",
            Scope::MailSend => "mail:send",
            Scope::MailManage => "mail:manage",
            Scope::IdentityCreate => "identity:create",
            Scope::KeysManage => "keys:manage",
            Scope::VaultRead => "vault:read",
            Scope::VaultWrite => "vault:write",
            Scope::VaultReveal => "vault:reveal",
            Scope::Oversight => "oversight",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s).ok_or_else(|| {
            Error::invalid("invalid_scope", format!("unknown scope `{s}`"))
                .with_hint(format!("known scopes: {}", Scope::ALL.map(Scope::as_str).join(", ")))
        })
    }
}

/// A set of scopes, kept sorted so that it serialises the same way every time.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Self(scopes.into_iter().collect())
    }
    pub fn default_for_identity() -> Self {
        Self::new(Scope::DEFAULT)
    }
    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }
    #[must_use]
    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        Self(self.0.intersection(&other.0).copied().collect())
    }
    /// The scopes in `self` that `other` lacks.
    pub fn missing_from(&self, other: &ScopeSet) -> Vec<Scope> {
        self.0.difference(&other.0).copied().collect()
    }
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Stable text form for storage: a JSON array of scope names.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "[]".into())
    }
    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| Error::internal(format!("stored scopes: {e}")))
    }
    /// Parses names as a client sent them, with a precise error for an unknown one.
    /// A set holding both `oversight` and `mail:send` is refused: a principal that may send
    /// mail may not also approve it.
    pub fn parse_names<S: AsRef<str>>(names: &[S]) -> Result<Self> {
        let set = names
            .iter()
            .map(|n| n.as_ref().trim().parse())
            .collect::<Result<BTreeSet<_>>>()
            .map(Self)?;
        set.check_separation()?;
        Ok(set)
    }

    /// Refuses `oversight` together with `mail:send` (see [`Scope::Oversight`]).
    pub fn check_separation(&self) -> Result<()> {
        if self.contains(Scope::Oversight) && self.contains(Scope::MailSend) {
            return Err(Error::invalid(
                "conflicting_scopes",
                "`oversight` and `mail:send` cannot be held together: whoever may send mail may not approve it",
            )
            .with_hint("give reviewers `oversight` (with `mail:read` and `keys:manage` if wanted) and agents `mail:send`, never both"));
        }
        Ok(())
    }
}

/// SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The SHA-256 digest of a key's secret, the only form in which a key is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Result<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| Error::internal(format!("stored key digest: {e}")))?;
        Ok(Self(out))
    }
    /// Constant-time comparison.
    pub fn matches(&self, other: &KeyDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(..)")
    }
}

/// An identity key as presented by a client or just generated. Its `Debug` never shows the
/// secret.
pub struct ApiKey {
    id: KeyId,
    secret: SecretString,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}, secret: ..)", self.id)
    }
}

impl ApiKey {
    pub fn generate(random: &dyn Random) -> Self {
        let kid = random::base32_string(random, KID_LEN);
        let secret = random::base32_string(random, SECRET_LEN);
        Self {
            id: KeyId::from_trusted(format!("{}{kid}", KeyId::PREFIX)),
            secret: secret.into(),
        }
    }

    /// Parses `loft_sk_<16 base32>_<52 base32>`. The error never echoes the input, which may
    /// be a real secret pasted in the wrong place.
    pub fn parse(token: &str) -> Result<Self> {
        let bad = || {
            Error::unauthenticated("the API key is malformed").with_hint(
                "identity keys look like `loft_sk_<16 characters>_<52 characters>`; check for a truncated copy",
            )
        };
        let rest = token.strip_prefix(KEY_PREFIX).ok_or_else(bad)?;
        let (kid, secret) = rest.split_once('_').ok_or_else(bad)?;
        if kid.len() != KID_LEN || secret.len() != SECRET_LEN || !random::is_base32(kid) || !random::is_base32(secret) {
            return Err(bad());
        }
        Ok(Self {
            id: KeyId::from_trusted(format!("{}{kid}", KeyId::PREFIX)),
            secret: secret.to_owned().into(),
        })
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(self.secret.expose_secret())
    }

    /// The full token, for showing once to whoever created the key.
    pub fn reveal(&self) -> String {
        let kid = self.id.as_str().trim_start_matches(KeyId::PREFIX);
        format!("{KEY_PREFIX}{kid}_{}", self.secret.expose_secret())
    }
}

/// The operator key, held by the server's configuration.
pub struct OperatorKey(KeyDigest);

impl OperatorKey {
    /// Minimum length of an operator key given in `LOFT_ADMIN_KEY`.
    pub const MIN_LEN: usize = 24;

    pub fn from_secret(secret: &str) -> Result<Self> {
        let secret = secret.trim();
        if secret.len() < Self::MIN_LEN {
            return Err(Error::invalid(
                "weak_admin_key",
                format!("the operator key must be at least {} characters", Self::MIN_LEN),
            )
            .with_hint("unset LOFT_ADMIN_KEY to have Loft generate one"));
        }
        if secret.starts_with(KEY_PREFIX) {
            return Err(Error::invalid(
                "admin_key_prefix",
                format!("the operator key may not start with `{KEY_PREFIX}`, which marks identity keys"),
            ));
        }
        Ok(Self(KeyDigest::of(secret)))
    }

    pub fn generate(random: &dyn Random) -> String {
        format!("{ADMIN_KEY_PREFIX}{}", random::base32_string(random, SECRET_LEN))
    }

    pub fn matches(&self, presented: &str) -> bool {
        self.0.matches(&KeyDigest::of(presented))
    }
}

/// A key as stored: everything but the secret.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub id: KeyId,
    pub identity_id: crate::ids::IdentityId,
    pub digest: KeyDigest,
    pub meta: KeyMeta,
}

/// What anyone may see about a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyMeta {
    pub id: KeyId,
    pub identity_id: crate::ids::IdentityId,
    /// `primary` is the key issued with the identity or by a rotation; `extra` keys are minted
    /// next to it and may carry fewer scopes and an expiry.
    pub kind: KeyKind,
    pub label: Option<String>,
    pub scopes: ScopeSet,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// The key that minted this one, when an identity key did.
    pub created_by_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    Primary,
    Extra,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Primary => "primary",
            KeyKind::Extra => "extra",
        }
    }
    /// A key kind as stored for key `row`; an unknown one is an error naming the key, never
    /// read as some other kind.
    pub fn parse_stored(s: &str, row: &str) -> Result<Self> {
        match s {
            "primary" => Ok(KeyKind::Primary),
            "extra" => Ok(KeyKind::Extra),
            other => Err(Error::internal(format!(
                "key {row} has the unknown kind `{other}` (written by a newer version?)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;
    use proptest::prelude::*;

    #[test]
    fn generated_keys_parse_back_with_the_same_digest() {
        let key = ApiKey::generate(&OsRandom);
        let token = key.reveal();
        assert!(token.starts_with("loft_sk_"));
        let parsed = ApiKey::parse(&token).unwrap();
        assert_eq!(parsed.id(), key.id());
        assert!(parsed.digest().matches(&key.digest()));
        assert!(!format!("{key:?}").contains(&token[25..]));
    }

    #[test]
    fn malformed_keys_are_refused_without_echo() {
        let good = ApiKey::generate(&OsRandom).reveal();
        for bad in [
            String::new(),
            "loft_sk_".into(),
            good[..good.len() - 1].to_string(),
            format!("{good}x"),
            good.replace("loft_sk_", "loft_pk_"),
            good.to_uppercase(),
        ] {
            let err = ApiKey::parse(&bad).unwrap_err();
            if bad.len() > 10 {
                assert!(!err.to_string().contains(&bad[10..]));
            }
        }
    }

    #[test]
    fn scopes_parse_and_order_stably() {
        let s = ScopeSet::parse_names(&["mail:send", "mail:read"]).unwrap();
        assert_eq!(s.to_json(), r#"["mail:read","mail:send"]"#);
        assert_eq!(ScopeSet::from_json(&s.to_json()).unwrap(), s);
        let err = ScopeSet::parse_names(&["mail:write"]).unwrap_err();
        assert!(err.to_string().contains("mail:write"));
    }

    #[test]
    fn unknown_stored_values_are_errors_naming_the_row() {
        assert_eq!(KeyKind::parse_stored("primary", "key_a").unwrap(), KeyKind::Primary);
        let e = KeyKind::parse_stored("robot", "key_a").unwrap_err();
        assert!(
            e.to_string().contains("key_a") && e.to_string().contains("robot"),
            "{e}"
        );
        let e = crate::mail::Folder::parse_stored("archive", "msg_b").unwrap_err();
        assert!(
            e.to_string().contains("msg_b") && e.to_string().contains("archive"),
            "{e}"
        );
        let e = crate::audit::ActorKind::parse_stored("robot", 42).unwrap_err();
        assert!(e.to_string().contains("42"), "{e}");
        assert_eq!(
            crate::audit::ActorKind::parse_stored("anonymous", 1).unwrap(),
            crate::audit::ActorKind::Anonymous
        );
    }

    #[test]
    fn operator_key_rules() {
        assert!(OperatorKey::from_secret("short").is_err());
        let generated = OperatorKey::generate(&OsRandom);
        let k = OperatorKey::from_secret(&generated).unwrap();
        assert!(k.matches(&generated));
        assert!(!k.matches("loft_admin_wrong"));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,100}") {
            let _ = ApiKey::parse(&s);
        }

        #[test]
        fn well_formed_keys_round_trip(kid in "[a-z2-7]{16}", secret in "[a-z2-7]{52}") {
            let token = format!("loft_sk_{kid}_{secret}");
            let key = ApiKey::parse(&token).unwrap();
            prop_assert_eq!(key.reveal(), token);
            let expected = format!("key_{kid}");
            prop_assert_eq!(key.id().as_str(), expected.as_str());
        }
    }
}
