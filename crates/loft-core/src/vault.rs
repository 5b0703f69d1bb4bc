//! The credential vault: typed credentials, envelope encryption under a master keyring, TOTP
//! codes, the brokered-HTTP port and redaction.
//!
//! # Encryption
//!
//! Every credential's secret fields (a JSON object) are encrypted with XChaCha20-Poly1305
//! under a **fresh 256-bit data key**; the associated data binds the version tag, the owning
//! identity and the credential name, so a ciphertext copied to another row or identity does
//! not decrypt. The data key is itself encrypted ("wrapped") with XChaCha20-Poly1305 under a
//! **master key**, with associated data binding the same identity and name plus the master
//! key's id. Each row records that id (`mk_` + 16 hex digits of a SHA-256 fingerprint of the
//! key), so a keyring of several master keys (current + previous) can open every row during a
//! rotation, and rotation only re-wraps the 32-byte data keys. Nonces are 192-bit and random.
//!
//! A decryption failure (tampered row, wrong key) is `Error::Internal` with a message that
//! names the credential only, never a wrong plaintext. Plaintext lives in [`SecretFields`]
//! (zeroized on drop, redacting `Debug`) only for as long as a use case needs it.
//!
//! This module does no I/O: the store keeps the sealed bytes, the binary loads the keys, and
//! outbound HTTP goes through the [`HttpBroker`] port.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::ids::IdentityId;
use crate::random::Random;
use crate::time::Timestamp;
use crate::{Error, Result};

/// Bound into every associated data: a format change gets a new tag.
pub const FORMAT_VERSION: &str = "loft-vault-v1";
pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 24;
pub const MAX_NAME_LEN: usize = 64;
/// The largest secret payload (all secret fields as JSON) a credential may hold.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;
pub const MAX_BACKUP_CODES: usize = 100;
pub const MAX_ALLOWED_HOSTS: usize = 32;
/// The shortest primary secret (the one brokered HTTP injects) a credential usable in brokered
/// HTTP may hold. Below this, redaction either misses the secret's forms or eats ordinary text.
pub const MIN_INJECTABLE_SECRET_CHARS: usize = 8;

// ----- master keys ----------------------------------------------------------------------

/// One 256-bit master key and its id. `Debug` shows the id only.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, key: ..)", self.id)
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let mut h = Sha256::new();
        h.update(b"loft-master-key-id-v1\0");
        h.update(bytes);
        let id = format!("mk_{}", &hex::encode(h.finalize())[..16]);
        Self {
            id,
            key: Zeroizing::new(bytes),
        }
    }

    pub fn generate(random: &dyn Random) -> Self {
        let mut bytes = [0u8; KEY_LEN];
        random.fill(&mut bytes);
        let k = Self::from_bytes(bytes);
        bytes.zeroize();
        k
    }

    /// Parses 32 bytes given as base64 (standard or URL-safe, padded or not) or 64 hex digits.
    /// The error never repeats the input.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        let mut decoded = Zeroizing::new(Vec::new());
        if t.len() == 2 * KEY_LEN && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            *decoded = hex::decode(t).unwrap_or_default();
        } else {
            for engine in [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                &base64::engine::general_purpose::URL_SAFE,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ] {
                if let Ok(d) = engine.decode(t) {
                    *decoded = d;
                    break;
                }
            }
        }
        let bytes: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| {
            Error::invalid(
                "invalid_master_key",
                "a master key must be 32 bytes, as base64 (44 characters) or hex (64 digits)",
            )
            .with_hint("generate one with `openssl rand -base64 32`")
        })?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as base64, for writing it to the key file.
    pub fn to_base64(&self) -> SecretString {
        base64::engine::general_purpose::STANDARD
            .encode(self.key.as_slice())
            .into()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&(*self.key).into())
    }
}

/// The master keys a server holds: the current one (wraps everything new) and previous ones
/// (still open rows not yet re-wrapped).
#[derive(Debug, Clone)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Keyring {
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        let previous = previous.into_iter().filter(|k| k.id != current.id).collect();
        Self { current, previous }
    }
    pub fn current(&self) -> &MasterKey {
        &self.current
    }
    pub fn previous(&self) -> &[MasterKey] {
        &self.previous
    }
    pub fn get(&self, id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
    }
    pub fn ids(&self) -> Vec<String> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|k| k.id.clone())
            .collect()
    }
    pub fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }
}

/// Persists a new master key where the keys came from (the data-dir key file). Without one,
/// rotation needs the operator to restart with the new key (`LOFT_MASTER_KEY`) and the old one
/// (`LOFT_MASTER_KEY_PREVIOUS`).
pub trait KeySource: Send + Sync + 'static {
    /// Stores `keyring` (its current key first) durably before it is used.
    fn store(&self, keyring: &Keyring) -> Result<()>;
}

/// A key-check value: a known constant sealed under one master key, kept in the database so
/// that a server started with the wrong key says so instead of failing row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterKeyCheck {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub check: Vec<u8>,
    pub created_at: Timestamp,
}

const CHECK_PLAINTEXT: &[u8] = b"loft master key check";

impl MasterKeyCheck {
    pub fn create(key: &MasterKey, random: &dyn Random, at: Timestamp) -> Result<Self> {
        let nonce = random_nonce(random);
        let aad = format!("{FORMAT_VERSION}|check|{}", key.id);
        let check = key
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: CHECK_PLAINTEXT,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Error::internal("sealing the master key check failed"))?;
        Ok(Self {
            key_id: key.id.clone(),
            nonce: nonce.to_vec(),
            check,
            created_at: at,
        })
    }

    pub fn verify(&self, key: &MasterKey) -> bool {
        let Ok(nonce) = <[u8; NONCE_LEN]>::try_from(self.nonce.as_slice()) else {
            return false;
        };
        let aad = format!("{FORMAT_VERSION}|check|{}", key.id);
        key.cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &self.check,
                    aad: aad.as_bytes(),
                },
            )
            .is_ok_and(|p| p == CHECK_PLAINTEXT)
    }
}

// ----- envelope ---------------------------------------------------------------------------

/// What the store keeps of a credential's secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    pub wrapped_key: Vec<u8>,
    pub wrap_nonce: Vec<u8>,
    pub master_key_id: String,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Sealed({} bytes, master key {})",
            self.ciphertext.len(),
            self.master_key_id
        )
    }
}

fn random_nonce(random: &dyn Random) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    random.fill(&mut n);
    n
}

/// Length-prefixed parts, so that no two different (identity, name) pairs give the same bytes.
fn aad(kind: &str, owner: &str, name: &str, key_id: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [FORMAT_VERSION, kind, owner, name, key_id.unwrap_or("")] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

fn tampered(name: &str) -> Error {
    Error::internal(format!(
        "the vault entry `{name}` cannot be decrypted: it was altered, moved, or sealed under another master key"
    ))
}

/// Encrypts `plaintext` for (identity, name) under a fresh data key wrapped by the current key.
pub fn seal(
    keyring: &Keyring,
    random: &dyn Random,
    identity: &IdentityId,
    name: &str,
    plaintext: &[u8],
) -> Result<Sealed> {
    seal_for(keyring, random, identity.as_str(), name, plaintext)
}

/// The owner string of a hosted domain's DKIM keys in the envelope's associated data:
/// `domain:` and the domain. An identity id never has this form, so a domain key can never be
/// opened as a credential or the other way round.
fn domain_owner(domain: &str) -> String {
    format!("domain:{domain}")
}

/// Seals a hosted domain's DKIM private key (`selector` of `domain`), as credentials are sealed.
pub fn seal_domain_key(
    keyring: &Keyring,
    random: &dyn Random,
    domain: &str,
    selector: &str,
    plaintext: &[u8],
) -> Result<Sealed> {
    seal_for(keyring, random, &domain_owner(domain), selector, plaintext)
}

/// Opens a sealed DKIM private key of `domain`.
pub fn open_domain_key(keyring: &Keyring, domain: &str, selector: &str, s: &Sealed) -> Result<Zeroizing<Vec<u8>>> {
    open_for(keyring, &domain_owner(domain), selector, s)
}

/// Re-wraps a DKIM private key's data key under the current master key.
pub fn rewrap_domain_key(
    keyring: &Keyring,
    random: &dyn Random,
    domain: &str,
    selector: &str,
    s: &Sealed,
) -> Result<Sealed> {
    rewrap_for(keyring, random, &domain_owner(domain), selector, s)
}

/// [`seal`] for an owner that is not an identity: a webhook endpoint's signing secret is
/// sealed for (its `whk_` id, its name), which no credential's (`idt_` id, name) can equal.
pub fn seal_for(keyring: &Keyring, random: &dyn Random, owner: &str, name: &str, plaintext: &[u8]) -> Result<Sealed> {
    let identity = owner;
    let mut dek = Zeroizing::new([0u8; KEY_LEN]);
    random.fill(dek.as_mut_slice());
    let nonce = random_nonce(random);
    let ciphertext = XChaCha20Poly1305::new(&(*dek).into())
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad("data", identity, name, None),
            },
        )
        .map_err(|_| Error::internal("sealing a vault entry failed"))?;
    let (wrapped_key, wrap_nonce) = wrap(keyring.current(), random, identity, name, &dek)?;
    Ok(Sealed {
        ciphertext,
        nonce: nonce.to_vec(),
        wrapped_key,
        wrap_nonce,
        master_key_id: keyring.current().id.clone(),
    })
}

fn wrap(
    key: &MasterKey,
    random: &dyn Random,
    identity: &str,
    name: &str,
    dek: &[u8; KEY_LEN],
) -> Result<(Vec<u8>, Vec<u8>)> {
    let nonce = random_nonce(random);
    let wrapped = key
        .cipher()
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: dek,
                aad: &aad("wrap", identity, name, Some(&key.id)),
            },
        )
        .map_err(|_| Error::internal("wrapping a data key failed"))?;
    Ok((wrapped, nonce.to_vec()))
}

fn unwrap_key(keyring: &Keyring, identity: &str, name: &str, s: &Sealed) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let key = keyring.get(&s.master_key_id).ok_or_else(|| {
        Error::internal(format!(
            "the vault entry `{name}` is wrapped under master key {} which this server does not hold",
            s.master_key_id
        ))
    })?;
    let nonce = <[u8; NONCE_LEN]>::try_from(s.wrap_nonce.as_slice()).map_err(|_| tampered(name))?;
    let dek = Zeroizing::new(
        key.cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &s.wrapped_key,
                    aad: &aad("wrap", identity, name, Some(&s.master_key_id)),
                },
            )
            .map_err(|_| tampered(name))?,
    );
    let arr: [u8; KEY_LEN] = dek.as_slice().try_into().map_err(|_| tampered(name))?;
    Ok(Zeroizing::new(arr))
}

/// Decrypts a sealed entry of (identity, name). Any change to any part is an error.
pub fn open(keyring: &Keyring, identity: &IdentityId, name: &str, s: &Sealed) -> Result<Zeroizing<Vec<u8>>> {
    open_for(keyring, identity.as_str(), name, s)
}

/// [`open`] for an owner that is not an identity (see [`seal_for`]).
pub fn open_for(keyring: &Keyring, identity: &str, name: &str, s: &Sealed) -> Result<Zeroizing<Vec<u8>>> {
    let dek = unwrap_key(keyring, identity, name, s)?;
    let nonce = <[u8; NONCE_LEN]>::try_from(s.nonce.as_slice()).map_err(|_| tampered(name))?;
    XChaCha20Poly1305::new(&(*dek).into())
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &s.ciphertext,
                aad: &aad("data", identity, name, None),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| tampered(name))
}

/// Re-wraps the data key under the keyring's current key; the ciphertext is unchanged.
pub fn rewrap(keyring: &Keyring, random: &dyn Random, identity: &IdentityId, name: &str, s: &Sealed) -> Result<Sealed> {
    rewrap_for(keyring, random, identity.as_str(), name, s)
}

/// [`rewrap`] for an owner that is not an identity (see [`seal_for`]).
pub fn rewrap_for(keyring: &Keyring, random: &dyn Random, identity: &str, name: &str, s: &Sealed) -> Result<Sealed> {
    let dek = unwrap_key(keyring, identity, name, s)?;
    let (wrapped_key, wrap_nonce) = wrap(keyring.current(), random, identity, name, &dek)?;
    Ok(Sealed {
        ciphertext: s.ciphertext.clone(),
        nonce: s.nonce.clone(),
        wrapped_key,
        wrap_nonce,
        master_key_id: keyring.current().id.clone(),
    })
}

// ----- credentials ------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CredentialType {
    Login,
    ApiKey,
    Totp,
    Oauth,
    SshKey,
    Database,
    Custom,
}

impl CredentialType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::ApiKey => "api_key",
            Self::Totp => "totp",
            Self::Oauth => "oauth",
            Self::SshKey => "ssh_key",
            Self::Database => "database",
            Self::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
            Error::invalid("invalid_type", format!("unknown credential type `{}`", truncate(s, 40)))
                .with_hint("use login, api_key, totp, oauth, ssh_key, database or custom")
        })
    }

    /// The secret fields this type holds, the first being the one injected by default.
    pub fn secret_fields(self) -> &'static [&'static str] {
        match self {
            Self::Login => &["password"],
            Self::ApiKey => &["value"],
            Self::Totp => &["secret"],
            Self::Oauth => &["access_token", "refresh_token", "client_secret"],
            Self::SshKey => &["private_key", "passphrase"],
            Self::Database => &["connection_string"],
            Self::Custom => &[],
        }
    }
}

/// How a brokered request carries the credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Injection {
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `Authorization: Basic base64(username:secret)`.
    Basic,
    /// `<name>: <secret>`.
    Header { name: String },
}

impl Injection {
    /// Compares header names case-insensitively (HTTP header names are).
    fn same_as(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Header { name: a }, Self::Header { name: b }) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TotpAlgorithm {
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "SHA512")]
    Sha512,
}

impl TotpAlgorithm {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Ok(Self::Sha1),
            "SHA256" => Ok(Self::Sha256),
            "SHA512" => Ok(Self::Sha512),
            _ => Err(Error::invalid(
                "invalid_totp_algorithm",
                "the TOTP algorithm must be SHA1, SHA256 or SHA512",
            )),
        }
    }
    fn to_lib(self) -> totp_rs::Algorithm {
        match self {
            Self::Sha1 => totp_rs::Algorithm::SHA1,
            Self::Sha256 => totp_rs::Algorithm::SHA256,
            Self::Sha512 => totp_rs::Algorithm::SHA512,
        }
    }
}

/// The descriptive, unencrypted part of a credential: what listing shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CredentialMeta {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: CredentialType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<TotpAlgorithm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digits: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Hosts (`host` or `host:port`) brokered requests may go to.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inject: Option<Injection>,
    /// Names of the secret fields held (never their values).
    #[serde(default)]
    pub secret_fields: Vec<String>,
    #[serde(default)]
    pub backup_codes_remaining: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Bumped by every change (optimistic concurrency).
    pub version: i64,
}

impl CredentialMeta {
    /// A new credential's metadata: no descriptive fields, no allow-list, version 1.
    pub fn new(name: &str, kind: CredentialType, now: Timestamp) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            username: None,
            url: None,
            issuer: None,
            account: None,
            algorithm: None,
            digits: None,
            period: None,
            client_id: None,
            notes: None,
            expires_at: None,
            allowed_hosts: Vec::new(),
            inject: None,
            secret_fields: Vec::new(),
            backup_codes_remaining: 0,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    /// How brokered HTTP injects this credential: its `inject`, else the type's default (bearer
    /// for `api_key` and `oauth`, basic for `login`); `None` when it cannot be injected.
    pub fn effective_injection(&self) -> Option<Injection> {
        self.inject.clone().or(match self.kind {
            CredentialType::ApiKey | CredentialType::Oauth => Some(Injection::Bearer),
            CredentialType::Login => Some(Injection::Basic),
            _ => None,
        })
    }
}

/// Whether `new` lets a credential's secret go somewhere `old` did not: another type, another
/// way of injecting it (mode or header name, or injectable at all), or a host `old`'s
/// allow-list does not cover. Such a change is as good as revealing the secret (point it at
/// a server you control and read the header), so it needs `vault:reveal`.
///
/// Narrowing is not widening: dropping hosts, or pinning a port on a host allowed on any port.
/// The user name (the non-secret half of `basic`) and the plain metadata change nothing about
/// where the secret goes.
pub fn reach_widened(old: &CredentialMeta, new: &CredentialMeta) -> bool {
    let injection_changed = match (old.effective_injection(), new.effective_injection()) {
        (None, None) => false,
        (Some(a), Some(b)) => !a.same_as(&b),
        _ => true,
    };
    old.kind != new.kind || injection_changed || !hosts_within(&new.allowed_hosts, &old.allowed_hosts)
}

/// Whether every entry of the allow-list `new` allows only what some entry of `old` allows
/// (`host:port` is within `host`, never the other way round).
pub fn hosts_within(new: &[String], old: &[String]) -> bool {
    new.iter().all(|n| {
        let (nh, np) = split_allowed_host(n);
        old.iter().any(|o| {
            let (oh, op) = split_allowed_host(o);
            oh == nh && (op.is_none() || op == np)
        })
    })
}

/// `host:port` → (host, Some(port)); `host` → (host, None); IPv6 hosts keep their brackets.
/// The same reading as [`host_allowed`].
fn split_allowed_host(a: &str) -> (&str, Option<&str>) {
    match a.rsplit_once(':') {
        Some((h, p)) if !a.starts_with('[') || a.contains("]:") => (h, Some(p)),
        _ => (a, None),
    }
}

/// The plaintext secret fields of one credential. Zeroized on drop; `Debug` shows field names.
#[derive(Default, Clone, Serialize, Deserialize)]
pub struct SecretFields {
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup_codes: Vec<String>,
}

impl Drop for SecretFields {
    fn drop(&mut self) {
        for v in self.fields.values_mut() {
            v.zeroize();
        }
        self.backup_codes.zeroize();
    }
}

impl fmt::Debug for SecretFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SecretFields({:?}, {} backup codes, values: ..)",
            self.fields.keys().collect::<Vec<_>>(),
            self.backup_codes.len()
        )
    }
}

impl SecretFields {
    pub fn to_json(&self) -> Result<Zeroizing<Vec<u8>>> {
        serde_json::to_vec(self)
            .map(Zeroizing::new)
            .map_err(|_| Error::internal("encoding vault secret fields failed"))
    }
    pub fn from_json(bytes: &[u8], name: &str) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|_| tampered(name))
    }
    /// The name of the field brokered HTTP injects: the type's first secret field, or a custom
    /// credential's first field (by name).
    pub fn primary_field(&self, kind: CredentialType) -> Option<&str> {
        match kind {
            CredentialType::Custom => self.fields.keys().next().map(String::as_str),
            k => k
                .secret_fields()
                .first()
                .copied()
                .filter(|f| self.fields.contains_key(*f)),
        }
    }

    /// Every secret value, for redaction.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.fields
            .values()
            .map(String::as_str)
            .chain(self.backup_codes.iter().map(String::as_str))
    }
}

/// A credential as the store keeps it.
#[derive(Debug, Clone)]
pub struct StoredCredential {
    pub owner: IdentityId,
    pub meta: CredentialMeta,
    pub sealed: Sealed,
}

/// Validates a credential name: 1 to 64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<String> {
    let n = name.trim();
    let ok = !n.is_empty()
        && n.len() <= MAX_NAME_LEN
        && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(n.to_owned())
    } else {
        Err(Error::invalid(
            "invalid_name",
            format!("`{}` is not a valid credential name", truncate(n, 80)),
        )
        .with_hint("1 to 64 characters: letters, digits, `.`, `_` and `-`, starting with a letter or digit"))
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Parses an allow-list entry: `host` or `host:port` (lowercased; no scheme, path or wildcard).
pub fn parse_allowed_host(entry: &str) -> Result<String> {
    let e = entry.trim().to_ascii_lowercase();
    let bad = || {
        Error::invalid(
            "invalid_allowed_host",
            format!("`{}` is not a host or host:port", truncate(entry, 80)),
        )
        .with_hint("e.g. `api.example.com` or `127.0.0.1:8080`, without scheme or path")
    };
    if e.is_empty() || e.contains('/') || e.contains('*') || e.contains('@') {
        return Err(bad());
    }
    let parsed = url::Url::parse(&format!("http://{e}/")).map_err(|_| bad())?;
    let host = parsed.host_str().ok_or_else(bad)?;
    Ok(match parsed.port() {
        Some(p) => format!("{host}:{p}"),
        None if e.ends_with(":80") => format!("{host}:80"),
        None => host.to_owned(),
    })
}

/// Whether `url` may be called with a credential allowing `allowed`: an entry `host` allows
/// that host on any port, `host:port` that port only. Only http and https.
pub fn host_allowed(url: &url::Url, allowed: &[String]) -> bool {
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let port = url.port_or_known_default();
    allowed.iter().any(|a| match a.rsplit_once(':') {
        Some((h, p)) if !a.starts_with('[') || a.contains("]:") => h == host && p.parse::<u16>().ok() == port,
        _ => *a == host,
    })
}

// ----- TOTP ----------------------------------------------------------------------------------

/// What a TOTP code needs besides the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpParams {
    pub algorithm: TotpAlgorithm,
    pub digits: u32,
    pub period: u64,
}

impl Default for TotpParams {
    fn default() -> Self {
        Self {
            algorithm: TotpAlgorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

impl TotpParams {
    pub fn validate(self) -> Result<Self> {
        if !(6..=8).contains(&self.digits) {
            return Err(Error::invalid("invalid_totp_digits", "TOTP digits must be 6, 7 or 8"));
        }
        if self.period == 0 || self.period > 86_400 {
            return Err(Error::invalid(
                "invalid_totp_period",
                "the TOTP period must be between 1 and 86400 seconds",
            ));
        }
        Ok(self)
    }
}

/// A TOTP code and how long it stays current.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpCode {
    pub code: String,
    pub seconds_remaining: u64,
    pub period: u64,
    pub digits: u32,
}

impl fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TotpCode(.., {} s left)", self.seconds_remaining)
    }
}

/// Decodes a base32 TOTP secret (spaces and case ignored, padding optional).
pub fn decode_totp_secret(text: &str) -> Result<Zeroizing<Vec<u8>>> {
    let cleaned: Zeroizing<String> = Zeroizing::new(
        text.chars()
            .filter(|c| !c.is_whitespace() && *c != '-' && *c != '=')
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    );
    let secret = totp_rs::Secret::try_from_base32(cleaned.as_str())
        .map_err(|_| Error::invalid("invalid_totp_secret", "the TOTP secret is not valid base32"))?;
    let bytes = Zeroizing::new(secret.as_ref().to_vec());
    if bytes.is_empty() {
        return Err(Error::invalid("invalid_totp_secret", "the TOTP secret is empty"));
    }
    Ok(bytes)
}

/// The RFC 6238 code at `unix_secs`.
pub fn totp_code(secret: &[u8], params: TotpParams, unix_secs: u64) -> Result<TotpCode> {
    let params = params.validate()?;
    let totp = totp_rs::Builder::new()
        .with_algorithm(params.algorithm.to_lib())
        .with_digits(params.digits as u8)
        .with_step_duration(params.period)
        .with_skew(0)
        .with_secret(secret.to_vec())
        // Many services issue 80-bit secrets, below RFC 4226's recommended 128; they work.
        .build_noncompliant();
    let code = totp.generate(unix_secs).to_string();
    Ok(TotpCode {
        code,
        seconds_remaining: params.period - unix_secs % params.period,
        period: params.period,
        digits: params.digits,
    })
}

/// What an `otpauth://totp/...` URI holds.
pub struct OtpAuth {
    pub secret_base32: SecretString,
    pub issuer: Option<String>,
    pub account: Option<String>,
    pub params: TotpParams,
}

impl fmt::Debug for OtpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OtpAuth({:?}, {:?}, {:?}, secret: ..)",
            self.issuer, self.account, self.params
        )
    }
}

/// Parses an `otpauth://totp/LABEL?secret=...&issuer=...&algorithm=...&digits=...&period=...`
/// URI. The error never repeats the URI (it holds the secret).
pub fn parse_otpauth(uri: &str) -> Result<OtpAuth> {
    let bad = |what: &str| {
        Error::invalid("invalid_otpauth_uri", format!("the otpauth URI is not valid: {what}"))
            .with_hint("expected otpauth://totp/Issuer:account?secret=BASE32&issuer=Issuer")
    };
    let u = url::Url::parse(uri.trim()).map_err(|_| bad("not a URI"))?;
    if u.scheme() != "otpauth" {
        return Err(bad("the scheme is not otpauth"));
    }
    if u.host_str().map(str::to_ascii_lowercase).as_deref() != Some("totp") {
        return Err(bad("only totp is supported (not hotp)"));
    }
    let label = percent_decode(u.path().trim_start_matches('/'));
    let (label_issuer, account) = match label.split_once(':') {
        Some((i, a)) => (Some(i.trim().to_owned()), a.trim().to_owned()),
        None => (None, label.trim().to_owned()),
    };
    let mut params = TotpParams::default();
    let mut secret = None;
    let mut issuer = None;
    for (k, v) in u.query_pairs() {
        match k.to_ascii_lowercase().as_str() {
            "secret" => secret = Some(SecretString::from(v.into_owned())),
            "issuer" => issuer = Some(v.into_owned()),
            "algorithm" => params.algorithm = TotpAlgorithm::parse(&v)?,
            "digits" => params.digits = v.parse().map_err(|_| bad("digits is not a number"))?,
            "period" => params.period = v.parse().map_err(|_| bad("period is not a number"))?,
            _ => {}
        }
    }
    let secret = secret.ok_or_else(|| bad("it has no secret"))?;
    decode_totp_secret(secret.expose_secret())?;
    Ok(OtpAuth {
        secret_base32: secret,
        issuer: issuer.or(label_issuer).filter(|s| !s.is_empty()),
        account: Some(account).filter(|s| !s.is_empty()),
        params: params.validate()?,
    })
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

// ----- redaction -----------------------------------------------------------------------------

pub const REDACTED: &str = "[REDACTED]";

/// Secrets at least this long are also redacted in their derived forms (hex, base32, reversed,
/// spaced out, base64 at any alignment); shorter ones (of at least 4 bytes) only as is and in
/// the common encodings, since short derived forms would match ordinary text.
const MIN_DERIVED_FORM_BYTES: usize = 8;
/// Characters put between every two characters of a secret in a "spaced" form.
const SEPARATORS: [char; 6] = [' ', '-', '.', ',', ':', '_'];

/// Every form in which `secrets` could come back from a server: as is, percent-encoded,
/// form-encoded, base64 (standard and URL-safe, padded or not) and base64 of
/// `username:secret`; and for secrets of 8 bytes or more also hex (lower and upper case),
/// RFC 4648 base32 (upper and lower case, padded or not), reversed, with one of
/// `" -.,:_"` between every two characters, and the part of the base64/base32 encoding that
/// depends only on the secret at each alignment (so a secret inside a larger encoded blob is
/// found too). Longest first. Build them once per call and pass them to [`redact_bytes`].
pub fn redaction_needles(secrets: &[&str], username: Option<&str>) -> Vec<Zeroizing<Vec<u8>>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut out: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut push = |s: String| out.push(Zeroizing::new(s.into_bytes()));
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        let b = s.as_bytes();
        push((*s).to_owned());
        push(percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string());
        push(form_urlencoded_byte(s));
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            push(engine.encode(b));
        }
        if let Some(u) = username {
            let pair = Zeroizing::new(format!("{u}:{s}"));
            push(STANDARD.encode(pair.as_bytes()));
            push(STANDARD_NO_PAD.encode(pair.as_bytes()));
        }
        if b.len() < MIN_DERIVED_FORM_BYTES {
            continue;
        }
        push(hex::encode(b));
        push(hex::encode_upper(b));
        for pad in [true, false] {
            let upper = base32(b, pad);
            push(upper.to_ascii_lowercase());
            push(upper);
        }
        push(s.chars().rev().collect());
        for sep in SEPARATORS {
            let mut spaced = String::with_capacity(s.len() * 2);
            for (i, c) in s.chars().enumerate() {
                if i > 0 {
                    spaced.push(sep);
                }
                spaced.push(c);
            }
            push(spaced);
        }
        // Inside a larger base64/base32 text the secret starts at any offset in a group; the
        // characters made of its bits alone are the same whatever surrounds it.
        for k in 0..3 {
            for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                push(encoded_core(b, k, 6, |d| engine.encode(d)));
            }
        }
        for k in 0..5 {
            let core = encoded_core(b, k, 5, |d| base32(d, false));
            push(core.to_ascii_lowercase());
            push(core);
        }
    }
    // Longest first, so that a needle containing another is replaced whole.
    out.retain(|n| !n.is_empty());
    out.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    out.dedup();
    out
}

/// The characters of `encode(k zero bytes ‖ secret)` (`bits` bits per character, no padding)
/// whose bits all come from the secret.
fn encoded_core(secret: &[u8], k: usize, bits: usize, encode: impl Fn(&[u8]) -> String) -> String {
    let mut data = Zeroizing::new(vec![0u8; k]);
    data.extend_from_slice(secret);
    let text = Zeroizing::new(encode(&data));
    let start = (8 * k).div_ceil(bits);
    let end = (8 * data.len()) / bits;
    text.get(start..end).unwrap_or_default().to_owned()
}

/// RFC 4648 base32 (upper case).
fn base32(data: &[u8], pad: bool) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    for chunk in data.chunks(5) {
        let mut group = [0u8; 8];
        group[3..3 + chunk.len()].copy_from_slice(chunk);
        let bits = u64::from_be_bytes(group);
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(char::from(ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize]));
            } else if pad {
                out.push('=');
            }
        }
        group.zeroize();
    }
    out
}

fn form_urlencoded_byte(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Replaces every occurrence of every needle in `data` with `[REDACTED]`: every byte covered
/// by any occurrence (overlapping ones included) is removed, and each run of covered bytes
/// becomes one `[REDACTED]`. Returns how many runs were replaced. One pass over `data`, with
/// the needles indexed by their first bytes, so a 1 MiB body and thousands of needles (a
/// credential with 100 backup codes) stay cheap.
pub fn redact_bytes(data: &mut Vec<u8>, needles: &[Zeroizing<Vec<u8>>]) -> usize {
    redact(data, needles, false)
}

/// [`redact_bytes`] for a body that was cut at a size cap: an occurrence split by the cut
/// would leave its beginning, so a tail of `data` that is the beginning of any needle is
/// removed too (at the price of sometimes redacting a few innocent bytes at the cut).
pub fn redact_bytes_cut(data: &mut Vec<u8>, needles: &[Zeroizing<Vec<u8>>]) -> usize {
    redact(data, needles, true)
}

fn redact(data: &mut Vec<u8>, needles: &[Zeroizing<Vec<u8>>], cut: bool) -> usize {
    const KEY: usize = 4;
    let n = data.len();
    // Needles of 4 bytes or more are looked up by their first 4 bytes (after a cheap filter
    // on the first 2); shorter ones, which `redaction_needles` never makes, are tried at
    // every position.
    let mut filter = vec![0u64; 1 << 10];
    let mut index: std::collections::HashMap<[u8; KEY], Vec<&[u8]>> = std::collections::HashMap::new();
    let mut short: Vec<&[u8]> = Vec::new();
    for needle in needles.iter().map(|v| v.as_slice()).filter(|v| !v.is_empty()) {
        if let Some(key) = needle.first_chunk::<KEY>() {
            let f = usize::from(u16::from_be_bytes([key[0], key[1]]));
            filter[f / 64] |= 1 << (f % 64);
            index.entry(*key).or_default().push(needle);
        } else {
            short.push(needle);
        }
    }
    // Covered ranges, in order of their start, merged when they touch or overlap.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut cover = |start: usize, end: usize| match runs.last_mut() {
        Some(last) if start <= last.1 => last.1 = last.1.max(end),
        _ => runs.push((start, end)),
    };
    for i in 0..n {
        let rest = &data[i..];
        let mut longest = short
            .iter()
            .filter(|s| rest.starts_with(s))
            .map(|s| s.len())
            .max()
            .unwrap_or(0);
        if let Some(key) = rest.first_chunk::<KEY>() {
            let f = usize::from(u16::from_be_bytes([key[0], key[1]]));
            if filter[f / 64] & (1 << (f % 64)) != 0
                && let Some(candidates) = index.get(key)
            {
                for c in candidates {
                    if c.len() > longest && rest.starts_with(c) {
                        longest = c.len();
                    }
                }
            }
        }
        if longest > 0 {
            cover(i, i + longest);
        }
    }
    if cut {
        // The longest tail of `data` that a needle starts with (shorter than the needle: whole
        // occurrences were found above).
        let tail = needles
            .iter()
            .map(|needle| tail_overlap(data, needle))
            .max()
            .unwrap_or(0);
        if tail > 0 {
            // It may start before runs already found: it swallows those it reaches.
            let mut start = n - tail;
            while let Some(&(s, e)) = runs.last()
                && e >= start
            {
                start = start.min(s);
                runs.pop();
            }
            runs.push((start, n));
        }
    }
    if runs.is_empty() {
        return 0;
    }
    let mut out = Vec::with_capacity(n);
    let mut at = 0;
    for &(start, end) in &runs {
        out.extend_from_slice(&data[at..start]);
        out.extend_from_slice(REDACTED.as_bytes());
        at = end;
    }
    out.extend_from_slice(&data[at..]);
    data.zeroize();
    *data = out;
    runs.len()
}

/// The length of the longest proper prefix of `needle` that `data` ends with (Knuth-Morris-
/// Pratt over the last `needle.len() - 1` bytes: linear, whatever the needle repeats).
fn tail_overlap(data: &[u8], needle: &[u8]) -> usize {
    let m = needle.len();
    if m < 2 || data.is_empty() {
        return 0;
    }
    let mut fail = vec![0usize; m];
    let mut k = 0;
    for i in 1..m {
        while k > 0 && needle[i] != needle[k] {
            k = fail[k - 1];
        }
        if needle[i] == needle[k] {
            k += 1;
        }
        fail[i] = k;
    }
    let mut state = 0;
    for &b in &data[data.len().saturating_sub(m - 1)..] {
        while state > 0 && b != needle[state] {
            state = fail[state - 1];
        }
        if b == needle[state] {
            state += 1;
        }
        if state == m {
            state = fail[m - 1];
        }
    }
    state
}

pub fn redact_string(s: &str, needles: &[Zeroizing<Vec<u8>>]) -> (String, usize) {
    let mut b = s.as_bytes().to_vec();
    let n = redact_bytes(&mut b, needles);
    (String::from_utf8_lossy(&b).into_owned(), n)
}

// ----- the brokered HTTP port -------------------------------------------------------------------

/// An outbound request with the credential already injected. The broker must not follow any
/// redirect, must give up after `timeout`, and may read a little past `max_response_bytes`
/// (marking the response `truncated`): the core redacts the whole body it got and only then
/// cuts it at the cap, so a secret that straddles the cap is never returned in part.
pub struct BrokerRequest {
    pub method: String,
    pub url: url::Url,
    /// Includes the injected credential header; never log them.
    pub headers: Vec<(String, SecretString)>,
    pub body: Option<Vec<u8>>,
    pub max_response_bytes: usize,
    pub timeout: std::time::Duration,
}

impl fmt::Debug for BrokerRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerRequest({} {}, headers: ..)", self.method, self.url)
    }
}

/// What came back, before redaction.
#[derive(Clone)]
pub struct BrokerResponse {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The body was cut at the size cap.
    pub truncated: bool,
}

impl fmt::Debug for BrokerResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerResponse({}, {} bytes)", self.status, self.body.len())
    }
}

/// The outbound HTTP port (implemented by `loft-broker`).
#[async_trait]
pub trait HttpBroker: Send + Sync + 'static {
    /// Errors: `Unavailable` when the peer cannot be reached or times out (the message names
    /// the host, never a header or the body).
    async fn send(&self, request: BrokerRequest) -> Result<BrokerResponse>;

    /// Refuses, before anything is stored, a target the egress policy refuses for certain
    /// without resolving a name (an IP literal, `localhost`): webhook registration calls it.
    /// The default allows everything (the connection is judged again when it is made).
    fn check_target(&self, url: &url::Url) -> Result<()> {
        let _ = url;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::random::{OsRandom, SeededRandom};

    fn id() -> IdentityId {
        IdentityId::from_trusted("idt_aaaaaaaaaaaaaaaaaaaa".into())
    }

    fn ring() -> Keyring {
        Keyring::new(MasterKey::generate(&OsRandom), vec![])
    }

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let sha1 = b"12345678901234567890";
        let sha256 = b"12345678901234567890123456789012";
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234";
        let cases: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (t, c1, c256, c512) in cases {
            for (secret, alg, want) in [
                (&sha1[..], TotpAlgorithm::Sha1, c1),
                (&sha256[..], TotpAlgorithm::Sha256, c256),
                (&sha512[..], TotpAlgorithm::Sha512, c512),
            ] {
                let p = TotpParams {
                    algorithm: alg,
                    digits: 8,
                    period: 30,
                };
                assert_eq!(totp_code(secret, p, t).unwrap().code, want, "{alg:?} at {t}");
            }
        }
        let p6 = TotpParams::default();
        assert_eq!(totp_code(sha1, p6, 59).unwrap().code, "287082");
        assert_eq!(totp_code(sha1, p6, 59).unwrap().seconds_remaining, 1);
        assert!(totp_code(sha1, TotpParams { digits: 9, ..p6 }, 59).is_err());
        assert!(totp_code(sha1, TotpParams { period: 0, ..p6 }, 59).is_err());
    }

    #[test]
    fn otpauth_import() {
        let o = parse_otpauth(
            "otpauth://totp/ACME%20Co:john@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Co&algorithm=SHA256&digits=8&period=60",
        )
        .unwrap();
        assert_eq!(o.issuer.as_deref(), Some("ACME Co"));
        assert_eq!(o.account.as_deref(), Some("john@example.com"));
        assert_eq!(o.params.algorithm, TotpAlgorithm::Sha256);
        assert_eq!((o.params.digits, o.params.period), (8, 60));
        let e = parse_otpauth("otpauth://hotp/x?secret=GEZDGNBV").unwrap_err();
        assert!(!e.to_string().contains("GEZDGNBV"));
        assert!(parse_otpauth("otpauth://totp/x?secret=!!!").is_err());
    }

    #[test]
    fn master_key_parsing_and_ids() {
        let k = MasterKey::generate(&OsRandom);
        let b64 = k.to_base64();
        let again = MasterKey::parse(b64.expose_secret()).unwrap();
        assert_eq!(again.id(), k.id());
        let hex_form = hex::encode(*k.key);
        assert_eq!(MasterKey::parse(&hex_form).unwrap().id(), k.id());
        let e = MasterKey::parse("short").unwrap_err();
        assert!(!e.to_string().contains("short"));
        assert!(format!("{k:?}").contains(k.id()) && !format!("{k:?}").contains(b64.expose_secret()));
        let check = MasterKeyCheck::create(&k, &OsRandom, Timestamp::from_micros(0)).unwrap();
        assert!(check.verify(&k));
        assert!(!check.verify(&MasterKey::generate(&OsRandom)));
    }

    #[test]
    fn moved_or_rewrapped_entries() {
        let r = ring();
        let s = seal(&r, &OsRandom, &id(), "crm", b"hunter2").unwrap();
        assert_eq!(open(&r, &id(), "crm", &s).unwrap().as_slice(), b"hunter2");
        assert!(open(&r, &id(), "crm2", &s).is_err());
        let other = IdentityId::from_trusted("idt_bbbbbbbbbbbbbbbbbbbb".into());
        assert!(open(&r, &other, "crm", &s).is_err());
        // Rotation: a new current key, the old one kept as previous.
        let r2 = Keyring::new(MasterKey::generate(&OsRandom), vec![r.current().clone()]);
        assert_eq!(open(&r2, &id(), "crm", &s).unwrap().as_slice(), b"hunter2");
        let s2 = rewrap(&r2, &OsRandom, &id(), "crm", &s).unwrap();
        assert_eq!(s2.master_key_id, r2.current().id());
        let only_new = Keyring::new(r2.current().clone(), vec![]);
        assert_eq!(open(&only_new, &id(), "crm", &s2).unwrap().as_slice(), b"hunter2");
        let e = open(&only_new, &id(), "crm", &s).unwrap_err();
        assert!(matches!(e, Error::Internal(_)));
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn secrets_never_in_debug() {
        let mut f = SecretFields::default();
        f.fields.insert("value".into(), "marker-s3cret".into());
        f.backup_codes.push("bk-123456".into());
        let d = format!("{f:?}");
        assert!(!d.contains("marker-s3cret") && !d.contains("bk-123456"), "{d}");
        let r = ring();
        let s = seal(&r, &OsRandom, &id(), "x", b"marker-s3cret").unwrap();
        assert!(!format!("{s:?}").contains("marker"));
    }

    #[test]
    fn redaction_covers_encodings() {
        let needles = redaction_needles(&["p@ss w0rd/+"], Some("bob"));
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = format!(
            "raw=p@ss w0rd/+ enc=p%40ss%20w0rd%2F%2B form=p%40ss+w0rd%2F%2B b={} basic={}",
            b64.encode("p@ss w0rd/+"),
            b64.encode("bob:p@ss w0rd/+")
        );
        let (out, n) = redact_string(&body, &needles);
        assert_eq!(n, 5, "{out}");
        assert!(!out.contains("w0rd"), "{out}");
    }

    #[test]
    fn allow_list() {
        let allowed = vec![
            parse_allowed_host("API.example.com").unwrap(),
            parse_allowed_host("127.0.0.1:8080").unwrap(),
        ];
        let ok = |u: &str| host_allowed(&url::Url::parse(u).unwrap(), &allowed);
        assert!(ok("https://api.example.com/v1"));
        assert!(ok("http://api.example.com:9999/"));
        assert!(ok("http://127.0.0.1:8080/x"));
        assert!(!ok("http://127.0.0.1:8081/x"));
        assert!(!ok("https://evil.example.com/"));
        assert!(!ok("https://api.example.com.evil.com/"));
        assert!(!ok("ftp://api.example.com/"));
        assert!(parse_allowed_host("https://x.com/").is_err());
        assert!(parse_allowed_host("*.x.com").is_err());
    }

    #[test]
    fn base32_is_rfc4648() {
        // RFC 4648 section 10, and totp-rs (another implementation) decodes ours.
        let vectors = [
            ("", ""),
            ("f", "MY======"),
            ("fo", "MZXQ===="),
            ("foo", "MZXW6==="),
            ("foob", "MZXW6YQ="),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI======"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base32(plain.as_bytes(), true), encoded);
            assert_eq!(base32(plain.as_bytes(), false), encoded.trim_end_matches('='));
        }
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_totp_secret(&base32(&bytes, true)).unwrap().as_slice(), bytes);
    }

    #[test]
    fn redaction_covers_transformed_forms() {
        let secret = "Tok3n-secret_42";
        let needles = redaction_needles(&[secret], None);
        let b64 = base64::engine::general_purpose::STANDARD;
        let spaced = |sep: &str| secret.chars().map(String::from).collect::<Vec<_>>().join(sep);
        let forms = [
            hex::encode(secret),
            hex::encode_upper(secret),
            base32(secret.as_bytes(), true),
            base32(secret.as_bytes(), false),
            base32(secret.as_bytes(), true).to_ascii_lowercase(),
            base32(secret.as_bytes(), false).to_ascii_lowercase(),
            secret.chars().rev().collect(),
            spaced(" "),
            spaced("-"),
            spaced("."),
            spaced(","),
            spaced(":"),
            spaced("_"),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
            // Inside a larger base64 text, at each alignment.
            b64.encode(format!("{{\"token\": \"{secret}\"}}")),
            b64.encode(format!("x{secret}yz")),
            b64.encode(format!("xy{secret}")),
            base32(format!("ab{secret}cd").as_bytes(), true),
        ];
        for form in &forms {
            let body = format!("<p>{form}</p>");
            let (out, n) = redact_string(&body, &needles);
            assert_eq!(n, 1, "{form} -> {out}");
            assert!(!out.contains(form.as_str()), "{form} -> {out}");
            assert!(
                out.starts_with("<p>") && out.ends_with("</p>") && out.contains(REDACTED),
                "{out}"
            );
        }
        // Short secrets keep only the plain forms: their hex or reversed forms are common text.
        let short = redaction_needles(&["abcd"], None);
        assert_eq!(
            redact_string("dcba 61626364 abcd", &short).0,
            "dcba 61626364 [REDACTED]"
        );
        assert!(redaction_needles(&["abc"], Some("u")).is_empty());
    }

    #[test]
    fn a_body_cut_inside_a_secret_loses_the_cut_part() {
        let needles = redaction_needles(&["s3cret-value-xyz"], None);
        // Uncut, a tail that merely looks like the start of a secret is kept.
        let mut whole = b"hello s3cret-va".to_vec();
        assert_eq!(redact_bytes(&mut whole, &needles), 0);
        let mut cut = b"hello s3cret-va".to_vec();
        assert_eq!(redact_bytes_cut(&mut cut, &needles), 1);
        assert_eq!(cut, b"hello [REDACTED]");
        // Reversed and hex forms cut short are removed too; an unrelated tail stays.
        for tail in ["zyx-eu", "73336372", "s 3 c"] {
            let mut cut = format!("ok {tail}").into_bytes();
            redact_bytes_cut(&mut cut, &needles);
            assert_eq!(cut, b"ok [REDACTED]", "{tail}");
        }
        let mut plain = b"nothing to see ".to_vec();
        assert_eq!(redact_bytes_cut(&mut plain, &needles), 0);
        assert_eq!(plain, b"nothing to see ");
    }

    #[test]
    fn tail_overlap_is_the_longest_proper_prefix_at_the_end() {
        let naive = |data: &[u8], needle: &[u8]| {
            (1..needle.len().min(data.len() + 1))
                .rev()
                .find(|&k| data.ends_with(&needle[..k]))
                .unwrap_or(0)
        };
        for (data, needle) in [
            ("xxabab", "ababc"),
            ("aaaa", "aaaaa"),
            ("aaaaa", "aaaaa"),
            ("abcab", "abcabd"),
            ("zz", "abc"),
            ("", "abc"),
            ("a", "a"),
            ("abaabaab", "abaabaabx"),
        ] {
            let (d, n) = (data.as_bytes(), needle.as_bytes());
            assert_eq!(tail_overlap(d, n), naive(d, n), "{data} / {needle}");
        }
        // Linear: a long repetitive secret against a long repetitive tail.
        let needle = vec![b'a'; 64 * 1024];
        let mut data = vec![b'a'; 256 * 1024];
        data.push(b'b');
        data.extend(vec![b'a'; 1000]);
        assert_eq!(tail_overlap(&data, &needle), 1000);
    }

    #[test]
    fn redaction_of_a_large_body_with_many_secrets_is_one_pass() {
        // 100 backup codes and a few fields: thousands of needles over 1 MiB.
        let codes: Vec<String> = (0..100).map(|i| format!("backup-code-{i:04}")).collect();
        let mut secrets: Vec<&str> = codes.iter().map(String::as_str).collect();
        secrets.extend(["the-primary-api-key-0001", "refresh-token-abcdef"]);
        let needles = redaction_needles(&secrets, Some("bot"));
        assert!(needles.len() > 2000, "{}", needles.len());
        let chunk = "lorem ipsum dolor sit amet, consectetur adipiscing elit 0123456789\n";
        let mut body = String::new();
        while body.len() < 1024 * 1024 {
            body.push_str(chunk);
            if body.len() % 100_000 < chunk.len() {
                body.push_str(&hex::encode("the-primary-api-key-0001"));
                body.push_str(" backup-code-0099 ");
            }
        }
        let started = std::time::Instant::now();
        let (out, n) = redact_string(&body, &needles);
        let took = started.elapsed();
        assert!(n >= 20, "{n}");
        assert!(!out.contains("backup-code-0099") && !out.contains(&hex::encode("the-primary")));
        // Generous (an unoptimised build on a busy machine); a pass per needle took minutes.
        assert!(took < std::time::Duration::from_secs(20), "{took:?}");
    }

    #[test]
    fn widening_and_narrowing() {
        let meta = |kind: CredentialType, hosts: &[&str], inject: Option<Injection>| CredentialMeta {
            allowed_hosts: hosts.iter().map(|h| parse_allowed_host(h).unwrap()).collect(),
            inject,
            ..CredentialMeta::new("crm", kind, Timestamp::from_micros(0))
        };
        let api = CredentialType::ApiKey;
        let old = meta(api, &["api.x.test", "[::1]:8080", "b.test:443"], None);
        let widened = |hosts: &[&str], inject: Option<Injection>| reach_widened(&old, &meta(api, hosts, inject));
        // Narrowing, or the same reach said differently.
        assert!(!widened(&["api.x.test"], None));
        assert!(!widened(&["api.x.test:8443", "[::1]:8080"], None));
        assert!(!widened(&[], Some(Injection::Bearer)));
        assert!(!widened(&["b.test:443", "api.x.test", "[::1]:8080"], None));
        // Widening: a new host, any port where one was pinned, another injection.
        assert!(widened(&["evil.test"], None));
        assert!(widened(&["api.x.test", "evil.test"], None));
        assert!(widened(&["b.test"], None));
        assert!(widened(&["b.test:80"], None));
        assert!(widened(&["[::1]"], None));
        assert!(widened(&["x.test"], None));
        assert!(widened(&["api.x.test"], Some(Injection::Basic)));
        let header = |n: &str| Some(Injection::Header { name: n.into() });
        assert!(widened(&["api.x.test"], header("X-Api-Key")));
        let with_header = meta(api, &["api.x.test"], header("X-Api-Key"));
        assert!(!reach_widened(
            &with_header,
            &meta(api, &["api.x.test"], header("x-api-key"))
        ));
        assert!(reach_widened(
            &with_header,
            &meta(api, &["api.x.test"], header("X-Other"))
        ));
        // A type that is not injectable becoming injectable, and a type change.
        let custom = meta(CredentialType::Custom, &["api.x.test"], None);
        assert!(reach_widened(
            &custom,
            &meta(CredentialType::Custom, &["api.x.test"], header("X-K"))
        ));
        assert!(reach_widened(&old, &meta(CredentialType::Oauth, &["api.x.test"], None)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trip_and_any_byte_change_is_rejected(
            plaintext in proptest::collection::vec(any::<u8>(), 0..256),
            name in "[a-z][a-z0-9_.-]{0,20}",
            seed in 1u64..u64::MAX,
            which in 0usize..5,
            pos in any::<usize>(),
            flip in 1u8..=255,
        ) {
            let r = Keyring::new(MasterKey::generate(&SeededRandom::new(seed)), vec![]);
            let rnd = SeededRandom::new(seed ^ 0x5555);
            let s = seal(&r, &rnd, &id(), &name, &plaintext).unwrap();
            let opened = open(&r, &id(), &name, &s).unwrap();
            prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
            let mut t = s.clone();
            let mut aad_name = name.clone();
            match which {
                0 => { let i = pos % t.ciphertext.len(); t.ciphertext[i] ^= flip; }
                1 => { let i = pos % t.nonce.len(); t.nonce[i] ^= flip; }
                2 => { let i = pos % t.wrapped_key.len(); t.wrapped_key[i] ^= flip; }
                3 => { let i = pos % t.wrap_nonce.len(); t.wrap_nonce[i] ^= flip; }
                _ => {
                    // The associated data: one byte of the name changed.
                    let mut b = aad_name.into_bytes();
                    let i = pos % b.len();
                    b[i] ^= flip;
                    aad_name = String::from_utf8_lossy(&b).into_owned();
                    prop_assume!(aad_name != name);
                }
            }
            let e = open(&r, &id(), &aad_name, &t);
            prop_assert!(matches!(e, Err(Error::Internal(_))));
        }

        #[test]
        fn every_form_of_a_secret_is_redacted_whole_or_cut(
            secret in "[A-Za-z0-9]{8,40}",
            prefix in "[ {};\n]{0,12}",
            suffix in "[ {};\n]{0,12}",
            which in any::<prop::sample::Index>(),
            cut in any::<prop::sample::Index>(),
        ) {
            use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
            let spaced = |sep: char| secret.chars().map(String::from).collect::<Vec<_>>().join(&sep.to_string());
            let mut forms = vec![
                secret.clone(),
                STANDARD.encode(&secret),
                STANDARD_NO_PAD.encode(&secret),
                URL_SAFE_NO_PAD.encode(&secret),
                STANDARD.encode(format!("bot:{secret}")),
                hex::encode(&secret),
                hex::encode_upper(&secret),
                base32(secret.as_bytes(), true),
                base32(secret.as_bytes(), false),
                base32(secret.as_bytes(), true).to_ascii_lowercase(),
                base32(secret.as_bytes(), false).to_ascii_lowercase(),
                secret.chars().rev().collect(),
            ];
            forms.extend(SEPARATORS.map(spaced));
            let form = which.get(&forms);
            let needles = redaction_needles(&[&secret], Some("bot"));
            let (out, n) = redact_string(&format!("{prefix}{form}{suffix}"), &needles);
            prop_assert_eq!(n, 1);
            prop_assert_eq!(out, format!("{prefix}{REDACTED}{suffix}"));
            // Cut anywhere inside the form (a capped body): nothing of it is left either.
            let k = 1 + cut.index(form.len() - 1);
            let mut body = format!("{prefix}{}", &form[..k]).into_bytes();
            prop_assert_eq!(redact_bytes_cut(&mut body, &needles), 1);
            prop_assert_eq!(String::from_utf8(body).unwrap(), format!("{prefix}{REDACTED}"));
        }

        #[test]
        fn a_secret_inside_a_larger_encoded_text_is_redacted(
            secret in "[ -~]{8,40}",
            before in proptest::collection::vec(any::<u8>(), 0..12),
            after in proptest::collection::vec(any::<u8>(), 0..12),
            form in 0u8..3,
        ) {
            let mut data = before.clone();
            data.extend_from_slice(secret.as_bytes());
            data.extend_from_slice(&after);
            let (text, bits) = match form {
                0 => (base64::engine::general_purpose::STANDARD.encode(&data), 6),
                1 => (base32(&data, true), 5),
                _ => (base32(&data, false).to_ascii_lowercase(), 5),
            };
            // The characters made of the secret's bits alone must go.
            let start = (8 * before.len()).div_ceil(bits);
            let end = 8 * (before.len() + secret.len()) / bits;
            let core = &text[start..end];
            let needles = redaction_needles(&[&secret], None);
            let (out, n) = redact_string(&text, &needles);
            prop_assert!(n >= 1, "{} -> {}", text, out);
            prop_assert!(!out.contains(core), "{} -> {}", text, out);
            prop_assert!(out.len() + core.len() <= text.len() + n * REDACTED.len(), "{} -> {}", text, out);
        }
    }
}
