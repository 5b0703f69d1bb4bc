//! The vault use cases: storing, listing, revealing, updating and deleting credentials, TOTP
//! codes and backup codes, brokered HTTP, and master key rotation.
//!
//! Every access is an audit row (values never are); refusals (a missing scope, a reveal
//! without `vault:reveal`, a host off the allow-list, another identity's name) are rows with
//! outcome `denied`. Decryption happens here, in memory, for the length of one call.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Actor, Loft, Page, cursor, page, page_limit};
use crate::audit::{ActorKind, AuditEntry, Outcome};
use crate::ids::IdentityId;
use crate::keys::Scope;
use crate::quota;
use crate::vault::{
    self as v, BrokerRequest, CredentialMeta, CredentialType, HttpBroker, Injection, KeySource, Keyring, MasterKey,
    MasterKeyCheck, SecretFields, StoredCredential, TotpAlgorithm, TotpCode, TotpParams,
};
use crate::{Error, Result};

/// Largest response body a brokered call returns.
pub const BROKER_MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// How long a brokered call may take.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(30);
/// Credentials re-wrapped per transaction during a rotation.
pub const REWRAP_BATCH: u32 = 100;
/// Attempts of an optimistic update (backup codes) before giving up.
const MAX_ATTEMPTS: usize = 16;

/// The keyring a running server holds, and where new keys are persisted.
pub(crate) struct VaultKeys {
    keyring: RwLock<Arc<Keyring>>,
    source: Option<Arc<dyn KeySource>>,
}

/// How a brokered call injects the credential: `"bearer"`, `"basic"`, `"header:X-Api-Key"`,
/// or the object form `{"kind": "header", "name": "X-Api-Key"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum InjectInput {
    Short(String),
    Full(Injection),
}

impl InjectInput {
    fn parse(&self) -> Result<Injection> {
        let inj = match self {
            Self::Full(i) => i.clone(),
            Self::Short(s) => {
                let s = s.trim();
                match s.to_ascii_lowercase().as_str() {
                    "bearer" => Injection::Bearer,
                    "basic" => Injection::Basic,
                    _ => match s.split_once(':') {
                        Some((k, name)) if k.eq_ignore_ascii_case("header") => Injection::Header {
                            name: name.trim().to_owned(),
                        },
                        _ => {
                            return Err(Error::invalid(
                                "invalid_inject",
                                "`inject` must be bearer, basic or header:NAME",
                            ));
                        }
                    },
                }
            }
        };
        if let Injection::Header { name } = &inj {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok || name.eq_ignore_ascii_case("host") {
                return Err(Error::invalid(
                    "invalid_inject",
                    "the header name must be 1 to 64 letters, digits, `-` or `_` (not Host)",
                ));
            }
        }
        Ok(inj)
    }
}

/// `POST /v0/vault` (and `PATCH /v0/vault/{name}`, where every field is optional and only the
/// ones given change). The short form is `{"label": "crm", "value": "..."}`: an `api_key`.
// Also the MCP tool `vault_store`'s arguments as they are (with `json-schema`; `label` is left
// out of that schema, the tool asks for `name`), so each field's doc, on one line, is read by
// a model as well as by the OpenAPI document. `Serialize` is for clients, which send only the
// fields given: the server never writes one out, and `Debug` shows no secret.
#[derive(Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StoreCredentialRequest {
    /// The name to store it under (`label` is accepted instead): letters, digits, `.`, `_` and `-`, starting with a letter or digit, at most 64 characters (e.g. `crm`, `github-token`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::credential_name))]
    pub name: Option<String>,
    /// The short form's word for `name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "json-schema", schemars(skip))]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::credential_name))]
    pub label: Option<String>,
    /// `api_key` (the default), `login`, `totp`, `oauth`, `ssh_key`, `database` or `custom`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::vault::CredentialType>))]
    pub kind: Option<String>,
    /// The secret of an `api_key` (the key or token itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The user name of a `login` (also used for basic auth).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub username: Option<String>,
    /// Where the credential is used, e.g. the login page (informational).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub url: Option<String>,
    /// The password of a `login`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The base32 secret of a `totp` (as shown under the QR code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// A `totp` as an `otpauth://totp/...` URI, instead of `secret` and its settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otpauth_uri: Option<String>,
    /// The `totp` issuer (e.g. the service's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub issuer: Option<String>,
    /// The `totp` account (e.g. the login it protects).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub account: Option<String>,
    /// The `totp` algorithm: SHA1 (default), SHA256 or SHA512.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::totp_algorithm))]
    pub algorithm: Option<String>,
    /// The `totp` code length, 6 (default) to 8.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 6, maximum = 8))]
    pub digits: Option<u32>,
    /// The `totp` period in seconds, 1 to 86400 (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86_400))]
    pub period: Option<u64>,
    /// One-time backup (recovery) codes of a `totp` (secret); one code as a string works too.
    #[serde(
        default,
        deserialize_with = "crate::wire::opt_one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "json-schema", schemars(with = "Option<crate::wire::OneOrMany>"))]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::backup_codes))]
    pub backup_codes: Option<Vec<String>>,
    /// The access token of an `oauth` credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// The refresh token of an `oauth` credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The client secret of an `oauth` credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The client id of an `oauth` credential (not secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub client_id: Option<String>,
    /// The private key of an `ssh_key` (PEM/OpenSSH text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// The passphrase of an `ssh_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<String>,
    /// The connection string of a `database` credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
    /// The secret fields of a `custom` credential, as an object of names to values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
    /// A note (not secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub notes: Option<String>,
    /// When the credential expires (RFC 3339), if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::expires_at))]
    pub expires_at: Option<String>,
    /// Hosts (`host` or `host:port`) that brokered requests with this credential may reach, e.g. `["api.example.com"]`; one host as a string works too.
    #[serde(
        default,
        deserialize_with = "crate::wire::opt_one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "json-schema", schemars(with = "Option<crate::wire::OneOrMany>"))]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::allowed_hosts))]
    pub allowed_hosts: Option<Vec<String>>,
    /// How brokered requests inject it: `bearer`, `basic` or `header:NAME` (e.g. `header:X-Api-Key`). Default: bearer for `api_key` and `oauth`, basic for `login`.
    #[serde(skip_serializing_if = "Option::is_none")]
    // The object form is accepted too, but a model is offered the short one only.
    #[cfg_attr(feature = "json-schema", schemars(with = "Option<String>"))]
    pub inject: Option<InjectInput>,
    /// Overwrite a credential of the same name (default false: an existing name is refused with `credential_exists`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace: Option<bool>,
}

/// The OpenAPI schema of `PATCH /v0/vault/{name}`'s body: a [`StoreCredentialRequest`] without
/// `name`, `label` and `replace`, which an update refuses (`invalid_update`: a credential is not
/// renamed, and only the fields given change). Documentation only; the server reads the request
/// type itself.
#[cfg(feature = "openapi")]
pub struct UpdateCredentialSchema;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for UpdateCredentialSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::Schema;
        let mut schema = <StoreCredentialRequest as utoipa::PartialSchema>::schema();
        if let RefOr::T(Schema::Object(o)) = &mut schema {
            let refused = ["name", "label", "replace"];
            o.properties.retain(|k, _| !refused.contains(&k.as_str()));
            o.required.retain(|k| !refused.contains(&k.as_str()));
            o.description = Some(
                "The fields to change (descriptive and/or secret); those left out stay. The name and the type \
                 stay too: `name`, `label` and `replace` are refused, and `type`, if given, must be the \
                 credential's."
                    .into(),
            );
        }
        schema
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for UpdateCredentialSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "UpdateCredentialRequest".into()
    }

    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        <StoreCredentialRequest as utoipa::ToSchema>::schemas(schemas);
    }
}

impl fmt::Debug for StoreCredentialRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreCredentialRequest")
            .field("name", &self.name.as_ref().or(self.label.as_ref()))
            .field("type", &self.kind)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListCredentialsParams {
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct GetCredentialParams {
    /// Include the plaintext secret fields (needs `vault:reveal`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reveal: bool,
}

/// A credential's metadata, and its secret fields when revealed.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CredentialView {
    #[serde(flatten)]
    pub meta: CredentialMeta,
    /// Only with `?reveal=true` and `vault:reveal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_codes: Option<Vec<String>>,
}

impl fmt::Debug for CredentialView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CredentialView({:?}, revealed: {})",
            self.meta.name,
            self.secrets.is_some()
        )
    }
}

/// One backup code, removed from the credential.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupCode {
    pub code: String,
    pub remaining: u32,
}

impl fmt::Debug for BackupCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackupCode(.., {} left)", self.remaining)
    }
}

/// `POST /v0/vault/{name}/http`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BrokeredHttpRequest {
    /// GET (default), POST, PUT, PATCH, DELETE, HEAD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// An http(s) URL whose host is on the credential's allow-list.
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Sent as is (text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// What the server answered, with every occurrence of the credential's secrets redacted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BrokeredHttpResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    /// The body as text (invalid UTF-8 replaced).
    pub body: String,
    /// The body was cut at the size cap.
    pub truncated: bool,
    /// How many occurrences of a secret were replaced by `[REDACTED]` (touching or overlapping
    /// ones count once).
    pub redactions: usize,
}

/// What `POST /v0/vault/rotate-master-key` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RotationReport {
    /// The key every credential is now wrapped under.
    pub current_key_id: String,
    /// Whether this call generated a new master key (keys kept in the data dir).
    pub generated: bool,
    pub rewrapped: u64,
    /// Key ids still wrapping credentials (empty when the rotation is complete).
    pub still_in_use: Vec<String>,
}

fn vault_disabled() -> Error {
    Error::policy_denied("vault_disabled", "the vault is not configured on this server")
}

fn cred_not_found() -> Error {
    Error::not_found("credential")
}

fn clean(s: Option<&String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn secret_field(s: Option<&String>, field: &str) -> Result<Option<String>> {
    match s {
        None => Ok(None),
        Some(v) if v.is_empty() => Err(Error::invalid("invalid_secret", format!("`{field}` must not be empty"))),
        Some(v) => Ok(Some(v.clone())),
    }
}

impl Loft {
    /// Gives this server a vault: `keyring` opens and seals credentials; with `source`,
    /// rotation generates the new key itself and persists it there.
    #[must_use]
    pub fn with_vault(mut self, keyring: Keyring, source: Option<Arc<dyn KeySource>>) -> Self {
        self.vault = Some(VaultKeys {
            keyring: RwLock::new(Arc::new(keyring)),
            source,
        });
        self
    }

    /// Gives this server outbound HTTP for brokered calls.
    #[must_use]
    pub fn with_broker(mut self, broker: Arc<dyn HttpBroker>) -> Self {
        self.broker = Some(broker);
        self
    }

    pub(super) fn keyring(&self) -> Result<Arc<Keyring>> {
        let vk = self.vault.as_ref().ok_or_else(vault_disabled)?;
        Ok(vk
            .keyring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }

    /// The start-up check: every master key this server holds must pass its check value
    /// (registered on first use), and every key id wrapping a credential must be held.
    /// Returns the ids of the keys held.
    pub async fn verify_vault_keys(&self) -> Result<Vec<String>> {
        let ring = self.keyring()?;
        let checks = self.store.vault_key_checks().await?;
        for key in ring.keys() {
            match checks.iter().find(|c| c.key_id == key.id()) {
                Some(c) if !c.verify(key) => {
                    return Err(Error::invalid(
                        "wrong_master_key",
                        format!(
                            "the master key {} does not match the check value stored for it",
                            key.id()
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    let at = self.clock.now();
                    let check = MasterKeyCheck::create(key, self.random.as_ref(), at)?;
                    self.store.vault_register_key(check, system_audit(at, key.id())).await?;
                }
            }
        }
        let mut missing: Vec<String> = self
            .store
            .vault_key_ids_in_use()
            .await?
            .into_iter()
            .filter(|id| ring.get(id).is_none())
            .collect();
        missing.sort();
        if !missing.is_empty() {
            return Err(Error::invalid(
                "wrong_master_key",
                format!(
                    "the database holds vault secrets wrapped under master key(s) {} which this server does not have (it has {})",
                    missing.join(", "),
                    ring.ids().join(", ")
                ),
            )
            .with_hint(
                "start with the master key that wrapped them (LOFT_MASTER_KEY / LOFT_MASTER_KEY_FILE, or the previous one in LOFT_MASTER_KEY_PREVIOUS)",
            ));
        }
        Ok(ring.ids())
    }

    /// Runs `f`; a refusal (scope, policy, not found) is recorded as a `denied` row.
    async fn audited<T>(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let out = f.await;
        if let Err(e) = &out
            && matches!(
                e,
                Error::MissingScope { .. } | Error::Forbidden(_) | Error::PolicyDenied(_) | Error::NotFound(_)
            )
        {
            // The name trimmed, as the credential is stored and as the other rows name it.
            let mut entry = actor.audit(
                self.clock.now(),
                action,
                Some(crate::text::printable(target.trim(), 128)),
                serde_json::json!({ "reason": e.code() }),
            );
            entry.outcome = Outcome::Denied;
            self.store.append_audit(entry).await?;
        }
        out
    }

    async fn load(&self, owner: &IdentityId, name: &str) -> Result<StoredCredential> {
        // A name no credential can have is not looked up (PostgreSQL refuses some bytes).
        let name = v::validate_name(name).map_err(|_| cred_not_found())?;
        self.store.vault_get(owner, &name).await?.ok_or_else(cred_not_found)
    }

    pub(super) fn open_secrets(ring: &Keyring, c: &StoredCredential) -> Result<SecretFields> {
        let plain = v::open(ring, &c.owner, &c.meta.name, &c.sealed)?;
        SecretFields::from_json(&plain, &c.meta.name)
    }

    fn seal_secrets(&self, ring: &Keyring, owner: &IdentityId, name: &str, s: &SecretFields) -> Result<v::Sealed> {
        let json = s.to_json()?;
        if json.len() > v::MAX_SECRET_BYTES {
            return Err(Error::invalid(
                "secret_too_large",
                format!(
                    "the secret fields are {} bytes; the limit is {}",
                    json.len(),
                    v::MAX_SECRET_BYTES
                ),
            ));
        }
        v::seal(ring, self.random.as_ref(), owner, name, &json)
    }

    // ----- store, list, get, update, delete -----------------------------------------------

    /// Stores a new credential (or replaces one with `replace: true`).
    pub async fn vault_store(&self, actor: &Actor, req: StoreCredentialRequest) -> Result<CredentialMeta> {
        let target = req.name.clone().or_else(|| req.label.clone()).unwrap_or_default();
        self.audited(actor, "vault.store", &target, self.vault_store_inner(actor, req))
            .await
    }

    async fn vault_store_inner(&self, actor: &Actor, req: StoreCredentialRequest) -> Result<CredentialMeta> {
        let me = actor.require(Scope::VaultWrite)?;
        let ring = self.keyring()?;
        if req.name.is_some() && req.label.is_some() {
            return Err(Error::invalid("invalid_name", "give `name` or `label`, not both"));
        }
        let name = v::validate_name(req.name.as_deref().or(req.label.as_deref()).ok_or_else(|| {
            Error::invalid("missing_name", "a credential needs a `name` (or `label`)")
                .with_hint(r#"e.g. {"label": "crm", "value": "..."}"#)
        })?)?;
        let kind = req
            .kind
            .as_deref()
            .map_or(Ok(CredentialType::ApiKey), CredentialType::parse)?;
        let now = self.clock.now();
        let (meta, secrets) = build(&name, kind, &req, None, now)?;
        let sealed = self.seal_secrets(&ring, &me.id, &name, &secrets)?;
        let details = serde_json::json!({
            "name": name, "type": kind.as_str(), "secret_fields": meta.secret_fields,
            "allowed_hosts": meta.allowed_hosts, "master_key_id": sealed.master_key_id,
        });
        let mut cred = StoredCredential {
            owner: me.id.clone(),
            meta,
            sealed,
        };
        let audit = actor.audit(now, "vault.store", Some(name.clone()), details);
        if req.replace == Some(true)
            && let Some(existing) = self.store.vault_get(&me.id, &name).await?
        {
            cred.meta.created_at = existing.meta.created_at;
            cred.meta.version = existing.meta.version + 1;
            self.store
                .vault_update(cred.clone(), existing.meta.version, audit)
                .await?;
            return Ok(cred.meta);
        }
        let usage = self.store.usage(&me.id).await?;
        quota::check(
            "vault_items",
            "vault items",
            self.quotas.vault_items,
            usage.vault_items,
            1,
        )?;
        match self.store.vault_create(cred.clone(), audit).await {
            Ok(()) => Ok(cred.meta),
            Err(Error::Conflict(_)) => Err(Error::conflict(
                "credential_exists",
                format!("a credential named `{name}` exists already"),
            )
            .with_hint(
                "update it with PATCH /v0/vault/{name}, or replace it whole: `\"replace\": true` in REST, \
                 `loft vault put --replace`, or the MCP argument `replace`",
            )),
            Err(e) => Err(e),
        }
    }

    /// Metadata of the caller's credentials, newest first. Recorded as `vault.list`.
    pub async fn vault_list(&self, actor: &Actor, params: ListCredentialsParams) -> Result<Page<CredentialMeta>> {
        self.audited(actor, "vault.list", "", async {
            let me = actor.require(Scope::VaultRead)?;
            self.keyring()?;
            let p = self
                .store
                .vault_list(&me.id, cursor(params.cursor.as_deref())?, page_limit(params.limit)?)
                .await?;
            let entry = actor.audit(
                self.clock.now(),
                "vault.list",
                None,
                serde_json::json!({ "count": p.items.len() }),
            );
            self.store.append_audit(entry).await?;
            Ok(page(p))
        })
        .await
    }

    /// Metadata; with `reveal`, the plaintext secret fields too (needs `vault:reveal`).
    pub async fn vault_get(&self, actor: &Actor, name: &str, reveal: bool) -> Result<CredentialView> {
        let action = if reveal { "vault.reveal" } else { "vault.get" };
        self.audited(actor, action, name, async {
            let me = actor.require(Scope::VaultRead)?;
            if reveal {
                actor.require(Scope::VaultReveal)?;
            }
            let ring = self.keyring()?;
            let c = self.load(&me.id, name).await?;
            let (secrets, backup_codes) = if reveal {
                let s = Self::open_secrets(&ring, &c)?;
                (Some(s.fields.clone()), Some(s.backup_codes.clone()))
            } else {
                (None, None)
            };
            if reveal {
                let entry = actor
                    .audit(
                        self.clock.now(),
                        "vault.reveal",
                        Some(c.meta.name.clone()),
                        serde_json::json!({ "type": c.meta.kind.as_str(), "fields": c.meta.secret_fields }),
                    )
                    .with_event(used(&me.id, &c.meta.name, "reveal", serde_json::json!({})));
                self.store.append_audit(entry).await?;
            } else {
                let entry = actor.audit(
                    self.clock.now(),
                    "vault.get",
                    Some(c.meta.name.clone()),
                    serde_json::json!({}),
                );
                self.store.append_audit(entry).await?;
            }
            Ok(CredentialView {
                meta: c.meta,
                secrets,
                backup_codes,
            })
        })
        .await
    }

    /// Changes the fields given (metadata and/or secrets); the type stays.
    pub async fn vault_update(&self, actor: &Actor, name: &str, req: StoreCredentialRequest) -> Result<CredentialMeta> {
        self.audited(actor, "vault.update", name, async {
            let me = actor.require(Scope::VaultWrite)?;
            let ring = self.keyring()?;
            if req.name.is_some() || req.label.is_some() || req.replace.is_some() {
                return Err(Error::invalid(
                    "invalid_update",
                    "a credential cannot be renamed; `name`, `label` and `replace` are not accepted here",
                ));
            }
            for _ in 0..MAX_ATTEMPTS {
                let c = self.load(&me.id, name).await?;
                if let Some(k) = &req.kind
                    && CredentialType::parse(k)? != c.meta.kind
                {
                    return Err(Error::invalid("invalid_update", "the type of a credential cannot change")
                        .with_hint("delete it and store it again"));
                }
                let old = Self::open_secrets(&ring, &c)?;
                let now = self.clock.now();
                let (meta, secrets) = build(&c.meta.name, c.meta.kind, &req, Some((&c.meta, &old)), now)?;
                // Re-pointing the stored secret (another host, header or way of injecting it;
                // see `v::reach_widened`) is as good as revealing it: point it at a server you
                // control and read the header. So it needs `vault:reveal`, unless this update
                // gives a new value for every secret field, leaving no old secret to send.
                // Narrowing (dropping hosts, pinning a port) needs only `vault:write`: it can
                // only keep the secret from places it could already go.
                if v::reach_widened(&c.meta, &meta)
                    && !actor.scopes().contains(Scope::VaultReveal)
                    && !old.fields.keys().all(|f| supplies(&req, c.meta.kind, f))
                {
                    return Err(Error::forbidden(
                        "reveal_required_to_widen",
                        format!(
                            "sending `{}`'s secret to new hosts or in another way (allowed_hosts, inject) needs the scope vault:reveal, since it would expose the secret",
                            c.meta.name
                        ),
                    )
                    .with_hint(
                        "removing hosts needs only vault:write; to re-point the credential without vault:reveal, give new values for all its secret fields in the same update",
                    ));
                }
                let sealed = self.seal_secrets(&ring, &me.id, &c.meta.name, &secrets)?;
                let audit = actor.audit(
                    now,
                    "vault.update",
                    Some(c.meta.name.clone()),
                    serde_json::json!({ "type": c.meta.kind.as_str(), "secret_fields": meta.secret_fields, "allowed_hosts": meta.allowed_hosts }),
                );
                let cred = StoredCredential {
                    owner: me.id.clone(),
                    meta,
                    sealed,
                };
                match self.store.vault_update(cred.clone(), c.meta.version, audit).await {
                    Ok(()) => return Ok(cred.meta),
                    Err(Error::Conflict(d)) if d.code == "version_conflict" => {}
                    Err(e) => return Err(e),
                }
            }
            Err(Error::conflict("version_conflict", "the credential kept changing; try again"))
        })
        .await
    }

    pub async fn vault_delete(&self, actor: &Actor, name: &str) -> Result<()> {
        self.audited(actor, "vault.delete", name, async {
            let me = actor.require(Scope::VaultWrite)?;
            self.keyring()?;
            let name = v::validate_name(name).map_err(|_| cred_not_found())?;
            let audit = actor.audit(
                self.clock.now(),
                "vault.delete",
                Some(name.clone()),
                serde_json::json!({}),
            );
            self.store.vault_delete(&me.id, &name, audit).await
        })
        .await
    }

    // ----- TOTP --------------------------------------------------------------------------------

    /// The current code of a totp credential and the seconds it stays current.
    pub async fn vault_totp(&self, actor: &Actor, name: &str) -> Result<TotpCode> {
        self.audited(actor, "vault.totp", name, async {
            let me = actor.require(Scope::VaultRead)?;
            let ring = self.keyring()?;
            let c = self.load(&me.id, name).await?;
            let params = totp_params(&c.meta)?;
            let s = Self::open_secrets(&ring, &c)?;
            let secret = v::decode_totp_secret(s.fields.get("secret").map_or("", String::as_str))?;
            let now = self.clock.now();
            let code = v::totp_code(&secret, params, u64::try_from(now.as_secs()).unwrap_or(0))?;
            let entry = actor
                .audit(
                    now,
                    "vault.totp",
                    Some(c.meta.name.clone()),
                    serde_json::json!({ "seconds_remaining": code.seconds_remaining }),
                )
                .with_event(used(&me.id, &c.meta.name, "totp", serde_json::json!({})));
            self.store.append_audit(entry).await?;
            Ok(code)
        })
        .await
    }

    /// Removes and returns one backup code. Two concurrent calls never get the same code:
    /// the removal is an optimistic update on the credential's version, retried on conflict.
    pub async fn vault_totp_backup(&self, actor: &Actor, name: &str) -> Result<BackupCode> {
        self.audited(actor, "vault.totp_backup", name, async {
            let me = actor.require(Scope::VaultWrite)?;
            let ring = self.keyring()?;
            for _ in 0..MAX_ATTEMPTS {
                let c = self.load(&me.id, name).await?;
                if c.meta.kind != CredentialType::Totp {
                    return Err(Error::invalid(
                        "not_totp",
                        format!("`{}` is not a totp credential", c.meta.name),
                    ));
                }
                let mut s = Self::open_secrets(&ring, &c)?;
                if s.backup_codes.is_empty() {
                    return Err(Error::conflict(
                        "no_backup_codes",
                        "this credential has no backup codes left",
                    ));
                }
                let code = Zeroizing::new(s.backup_codes.remove(0));
                let now = self.clock.now();
                let mut meta = c.meta.clone();
                meta.backup_codes_remaining = s.backup_codes.len() as u32;
                meta.updated_at = now;
                meta.version = c.meta.version + 1;
                let sealed = self.seal_secrets(&ring, &me.id, &c.meta.name, &s)?;
                let audit = actor
                    .audit(
                        now,
                        "vault.totp_backup",
                        Some(c.meta.name.clone()),
                        serde_json::json!({ "remaining": meta.backup_codes_remaining }),
                    )
                    .with_event(used(
                        &me.id,
                        &c.meta.name,
                        "backup_code",
                        serde_json::json!({ "remaining": meta.backup_codes_remaining }),
                    ));
                let remaining = meta.backup_codes_remaining;
                let cred = StoredCredential {
                    owner: me.id.clone(),
                    meta,
                    sealed,
                };
                match self.store.vault_update(cred, c.meta.version, audit).await {
                    Ok(()) => {
                        return Ok(BackupCode {
                            code: code.to_string(),
                            remaining,
                        });
                    }
                    Err(Error::Conflict(d)) if d.code == "version_conflict" => {
                        tokio::task::yield_now().await;
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(Error::Unavailable("backup code: too many concurrent changes".into()))
        })
        .await
    }

    // ----- brokered HTTP -----------------------------------------------------------------------

    /// Makes an HTTP request with the credential injected, only to a host on its allow-list,
    /// never following redirects, and returns the response with every secret redacted.
    pub async fn vault_http(
        &self,
        actor: &Actor,
        name: &str,
        req: BrokeredHttpRequest,
    ) -> Result<BrokeredHttpResponse> {
        self.audited(actor, "vault.http", name, self.vault_http_inner(actor, name, req))
            .await
    }

    async fn vault_http_inner(
        &self,
        actor: &Actor,
        name: &str,
        req: BrokeredHttpRequest,
    ) -> Result<BrokeredHttpResponse> {
        let me = actor.require(Scope::VaultRead)?;
        let ring = self.keyring()?;
        let broker = self
            .broker
            .clone()
            .ok_or_else(|| Error::policy_denied("broker_disabled", "brokered HTTP is not configured on this server"))?;
        let c = self.load(&me.id, name).await?;
        let method = req.method.as_deref().unwrap_or("GET").trim().to_ascii_uppercase();
        if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].contains(&method.as_str()) {
            return Err(Error::invalid(
                "invalid_method",
                "method must be GET, POST, PUT, PATCH, DELETE or HEAD",
            ));
        }
        let url = url::Url::parse(req.url.trim())
            .map_err(|_| Error::invalid("invalid_url", "`url` is not an absolute http(s) URL"))?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let host_port = url.port().map_or_else(|| host.clone(), |p| format!("{host}:{p}"));
        if !v::host_allowed(&url, &c.meta.allowed_hosts) || !url.username().is_empty() || url.password().is_some() {
            let mut entry = actor.audit(
                self.clock.now(),
                "vault.http",
                Some(c.meta.name.clone()),
                serde_json::json!({ "host": host_port, "method": method, "reason": "host_not_allowed" }),
            );
            entry.outcome = Outcome::Denied;
            self.store.append_audit(entry).await?;
            return Err(Error::forbidden(
                "host_not_allowed",
                format!("`{host_port}` is not on the allow-list of `{}`", c.meta.name),
            )
            .with_hint("the allow-list is set when the credential is stored (`allowed_hosts`)"));
        }
        let Some(injection) = c.meta.effective_injection() else {
            return Err(Error::invalid(
                "not_injectable",
                format!(
                    "a {} credential cannot be injected into a request",
                    c.meta.kind.as_str()
                ),
            )
            .with_hint("set `inject` when storing it (bearer, basic or header:NAME)"));
        };
        let s = Self::open_secrets(&ring, &c)?;
        let primary = s
            .primary_field(c.meta.kind)
            .and_then(|f| s.fields.get(f))
            .cloned()
            .map(Zeroizing::new)
            .ok_or_else(|| Error::invalid("not_injectable", "the credential has no secret to inject"))?;
        let (header_name, header_value): (String, SecretString) = match &injection {
            Injection::Bearer => ("authorization".into(), format!("Bearer {}", primary.as_str()).into()),
            Injection::Basic => {
                use base64::Engine as _;
                let user = c.meta.username.clone().unwrap_or_default();
                let pair = Zeroizing::new(format!("{user}:{}", primary.as_str()));
                (
                    "authorization".into(),
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
                    )
                    .into(),
                )
            }
            Injection::Header { name } => (name.to_ascii_lowercase(), primary.to_string().into()),
        };
        let mut headers = Vec::with_capacity(req.headers.len() + 1);
        for (k, val) in &req.headers {
            let lk = k.trim().to_ascii_lowercase();
            if lk == header_name || lk == "host" || lk == "authorization" || lk.starts_with("proxy-") {
                return Err(Error::invalid(
                    "invalid_header",
                    format!("the header `{lk}` cannot be set on a brokered request"),
                ));
            }
            headers.push((lk, SecretString::from(val.clone())));
        }
        headers.push((header_name, header_value));
        let started = std::time::Instant::now();
        let sent = broker
            .send(BrokerRequest {
                method: method.clone(),
                url: url.clone(),
                headers,
                body: req.body.map(String::into_bytes),
                max_response_bytes: BROKER_MAX_RESPONSE_BYTES,
                timeout: BROKER_TIMEOUT,
            })
            .await;
        let secrets: Vec<&str> = s.values().collect();
        let needles = v::redaction_needles(&secrets, c.meta.username.as_deref());
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let mut entry = actor.audit(
                    self.clock.now(),
                    "vault.http",
                    Some(c.meta.name.clone()),
                    serde_json::json!({ "host": host_port, "method": method, "error": e.code() }),
                );
                // A refusal by policy (the egress policy's `egress_denied`) is a denial, not a
                // failure of the remote service.
                entry.outcome = if matches!(e, Error::Forbidden(_) | Error::PolicyDenied(_)) {
                    Outcome::Denied
                } else {
                    Outcome::Error
                };
                self.store.append_audit(entry).await?;
                // The message names the host only, but redact anyway.
                return Err(match e {
                    Error::Upstream(mut d) => {
                        d.message = v::redact_string(&d.message, &needles).0;
                        Error::Upstream(d)
                    }
                    other => other,
                });
            }
        };
        let mut redactions = 0;
        let mut out_headers = BTreeMap::new();
        for (k, val) in &resp.headers {
            let (text, n) = v::redact_string(&String::from_utf8_lossy(val), &needles);
            redactions += n;
            out_headers
                .entry(k.clone())
                .and_modify(|e: &mut String| {
                    e.push_str(", ");
                    e.push_str(&text);
                })
                .or_insert(text);
        }
        let mut body = resp.body.clone();
        // Redact before anything is cut: a body cut at the cap (by the broker) may end inside a
        // secret, so its tail is redacted if it begins one; a body longer than the cap is cut
        // only after redaction, so the cut never splits a secret still in clear.
        let over_cap = body.len() > BROKER_MAX_RESPONSE_BYTES;
        redactions += if resp.truncated || over_cap {
            v::redact_bytes_cut(&mut body, &needles)
        } else {
            v::redact_bytes(&mut body, &needles)
        };
        if over_cap {
            body.truncate(BROKER_MAX_RESPONSE_BYTES);
        }
        let truncated = resp.truncated || over_cap;
        let entry = actor
            .audit(
                self.clock.now(),
                "vault.http",
                Some(c.meta.name.clone()),
                serde_json::json!({
                    "host": host_port, "method": method, "status": resp.status,
                    "bytes": body.len(), "truncated": truncated, "redactions": redactions,
                    "ms": started.elapsed().as_millis() as u64,
                }),
            )
            .with_event(used(
                &c.owner,
                &c.meta.name,
                "http",
                serde_json::json!({ "host": host_port, "method": method, "status": resp.status }),
            ));
        self.store.append_audit(entry).await?;
        Ok(BrokeredHttpResponse {
            status: resp.status,
            headers: out_headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            truncated,
            redactions,
        })
    }

    // ----- rotation ------------------------------------------------------------------------------

    /// Re-wraps every data key under the current master key, in batches, while the server
    /// keeps serving. When the keys live in the data dir, first generates a new current key
    /// (the old ones stay in the keyring, so nothing is unreadable at any moment). Operator only.
    pub async fn vault_rotate_master_key(&self, actor: &Actor) -> Result<RotationReport> {
        Self::require_operator(actor, "rotating the vault master key")?;
        let vk = self.vault.as_ref().ok_or_else(vault_disabled)?;
        let mut generated = false;
        if let Some(source) = &vk.source {
            let old = self.keyring()?;
            let new_key = MasterKey::generate(self.random.as_ref());
            let mut previous = vec![old.current().clone()];
            previous.extend(old.previous().iter().cloned());
            let ring = Keyring::new(new_key.clone(), previous);
            // Persist first: a crash after this leaves a keyring that still opens everything.
            source.store(&ring)?;
            let at = self.clock.now();
            let check = MasterKeyCheck::create(&new_key, self.random.as_ref(), at)?;
            self.store
                .vault_register_key(check, system_audit(at, new_key.id()))
                .await?;
            *vk.keyring.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(ring);
            generated = true;
        }
        let ring = self.keyring()?;
        let current = ring.current().id().to_owned();
        let mut rewrapped = 0;
        // Each pass takes rows still under another key; rows skipped for a version conflict
        // were rewritten by their own update (sealed under the current key) or come back.
        for _ in 0..100_000 {
            let stale = self.store.vault_stale(&current, REWRAP_BATCH).await?;
            if stale.is_empty() {
                break;
            }
            let mut batch = Vec::with_capacity(stale.len());
            for c in stale {
                let sealed = v::rewrap(&ring, self.random.as_ref(), &c.owner, &c.meta.name, &c.sealed)?;
                let expected = c.meta.version;
                let mut meta = c.meta;
                meta.version = expected + 1;
                batch.push((
                    StoredCredential {
                        owner: c.owner,
                        meta,
                        sealed,
                    },
                    expected,
                ));
            }
            let n = batch.len();
            let audit = actor.audit(
                self.clock.now(),
                "vault.rewrap",
                None,
                serde_json::json!({ "master_key_id": current, "batch": n }),
            );
            rewrapped += self.store.vault_rewrap(batch, audit).await?;
        }
        // The DKIM keys of hosted domains and webhook signing secrets are sealed by the same
        // keyring.
        rewrapped += self.rewrap_domain_keys(actor, &ring).await?;
        rewrapped += self.rewrap_webhook_secrets(actor, &ring).await?;
        let still_in_use: Vec<String> = self
            .store
            .vault_key_ids_in_use()
            .await?
            .into_iter()
            .filter(|id| *id != current)
            .collect();

        let entry = actor.audit(
            self.clock.now(),
            "vault.rotate_master_key",
            Some(current.clone()),
            serde_json::json!({ "generated": generated, "rewrapped": rewrapped }),
        );
        self.store.append_audit(entry).await?;
        Ok(RotationReport {
            current_key_id: current,
            generated,
            rewrapped,
            still_in_use,
        })
    }
}

/// `vault.used`: which credential, how; never a value.
fn used(owner: &IdentityId, name: &str, how: &str, details: serde_json::Value) -> crate::events::NewEvent {
    let mut payload = serde_json::json!({ "credential": name, "use": how });
    if let (Some(p), serde_json::Value::Object(d)) = (payload.as_object_mut(), details) {
        p.extend(d);
    }
    crate::events::NewEvent::new(crate::events::EventKind::VaultUsed, owner, payload)
}

fn system_audit(at: crate::time::Timestamp, key_id: &str) -> AuditEntry {
    AuditEntry {
        at,
        actor_kind: ActorKind::System,
        actor_identity_id: None,
        key_id: None,
        action: "vault.register_master_key".into(),
        target: Some(key_id.to_owned()),
        outcome: Outcome::Ok,
        request_id: None,
        remote_addr: None,
        details: serde_json::json!({}),
        events: Vec::new(),
    }
}

fn totp_params(meta: &CredentialMeta) -> Result<TotpParams> {
    if meta.kind != CredentialType::Totp {
        return Err(Error::invalid(
            "not_totp",
            format!("`{}` is not a totp credential", meta.name),
        ));
    }
    Ok(TotpParams {
        algorithm: meta.algorithm.unwrap_or(TotpAlgorithm::Sha1),
        digits: meta.digits.unwrap_or(6),
        period: meta.period.unwrap_or(30),
    })
}

/// Builds metadata and secret fields from a request, on top of an existing credential when
/// updating (fields not given are kept).
fn build(
    name: &str,
    kind: CredentialType,
    req: &StoreCredentialRequest,
    existing: Option<(&CredentialMeta, &SecretFields)>,
    now: crate::time::Timestamp,
) -> Result<(CredentialMeta, SecretFields)> {
    use CredentialType as T;
    // Plain metadata is stored as text: no NULs (secrets are sealed bytes and may hold any).
    for (field, value) in [
        ("username", &req.username),
        ("url", &req.url),
        ("issuer", &req.issuer),
        ("account", &req.account),
        ("client_id", &req.client_id),
        ("notes", &req.notes),
        ("expires_at", &req.expires_at),
        ("algorithm", &req.algorithm),
    ] {
        crate::text::refuse_nul(field, value.as_deref().unwrap_or_default())?;
    }
    for name in req.fields.iter().flat_map(BTreeMap::keys) {
        crate::text::refuse_nul("fields", name)?;
    }
    let mut secrets = existing.map(|(_, s)| s.clone()).unwrap_or_default();
    let mut meta = existing.map_or_else(
        || CredentialMeta::new(name, kind, now),
        |(m, _)| {
            let mut m = m.clone();
            m.updated_at = now;
            m.version += 1;
            m
        },
    );
    let set = |f: &mut SecretFields, key: &str, val: Option<&String>| -> Result<()> {
        if let Some(v) = secret_field(val, key)? {
            f.fields.insert(key.to_owned(), v);
        }
        Ok(())
    };
    // Fields that do not belong to the type are refused, so a typo never stores a secret as
    // (or next to) the wrong thing.
    let foreign = |given: bool, field: &str, allowed: &[CredentialType]| -> Result<()> {
        if given && !allowed.contains(&kind) {
            return Err(Error::invalid(
                "invalid_field",
                format!("`{field}` does not belong to a {} credential", kind.as_str()),
            ));
        }
        Ok(())
    };
    foreign(req.value.is_some(), "value", &[T::ApiKey])?;
    foreign(req.password.is_some(), "password", &[T::Login])?;
    foreign(req.secret.is_some(), "secret", &[T::Totp])?;
    foreign(req.otpauth_uri.is_some(), "otpauth_uri", &[T::Totp])?;
    foreign(req.issuer.is_some(), "issuer", &[T::Totp])?;
    foreign(req.account.is_some(), "account", &[T::Totp])?;
    foreign(req.algorithm.is_some(), "algorithm", &[T::Totp])?;
    foreign(req.digits.is_some(), "digits", &[T::Totp])?;
    foreign(req.period.is_some(), "period", &[T::Totp])?;
    foreign(req.backup_codes.is_some(), "backup_codes", &[T::Totp])?;
    foreign(req.access_token.is_some(), "access_token", &[T::Oauth])?;
    foreign(req.refresh_token.is_some(), "refresh_token", &[T::Oauth])?;
    foreign(req.client_secret.is_some(), "client_secret", &[T::Oauth])?;
    foreign(req.client_id.is_some(), "client_id", &[T::Oauth])?;
    foreign(req.private_key.is_some(), "private_key", &[T::SshKey])?;
    foreign(req.passphrase.is_some(), "passphrase", &[T::SshKey])?;
    foreign(req.connection_string.is_some(), "connection_string", &[T::Database])?;
    foreign(req.fields.is_some(), "fields", &[T::Custom])?;

    set(&mut secrets, "value", req.value.as_ref())?;
    set(&mut secrets, "password", req.password.as_ref())?;
    set(&mut secrets, "access_token", req.access_token.as_ref())?;
    set(&mut secrets, "refresh_token", req.refresh_token.as_ref())?;
    set(&mut secrets, "client_secret", req.client_secret.as_ref())?;
    set(&mut secrets, "private_key", req.private_key.as_ref())?;
    set(&mut secrets, "passphrase", req.passphrase.as_ref())?;
    set(&mut secrets, "connection_string", req.connection_string.as_ref())?;
    if let Some(fields) = &req.fields {
        for (k, val) in fields {
            let k = k.trim();
            if k.is_empty() || k.len() > 64 {
                return Err(Error::invalid(
                    "invalid_field",
                    "custom field names are 1 to 64 characters",
                ));
            }
            secrets.fields.insert(k.to_owned(), val.clone());
        }
    }
    if let Some(u) = req.username.as_ref() {
        meta.username = clean(Some(u));
    }
    if let Some(u) = req.url.as_ref() {
        meta.url = clean(Some(u));
    }
    if let Some(n) = req.notes.as_ref() {
        meta.notes = clean(Some(n));
    }
    if let Some(c) = req.client_id.as_ref() {
        meta.client_id = clean(Some(c));
    }
    if let Some(e) = req.expires_at.as_deref() {
        meta.expires_at = if e.trim().is_empty() {
            None
        } else {
            Some(crate::time::Timestamp::parse_rfc3339(e).ok_or_else(|| {
                Error::invalid("invalid_time", "`expires_at` is not an RFC 3339 time")
                    .with_hint("e.g. 2027-01-01T00:00:00Z")
            })?)
        };
    }
    if let Some(hosts) = &req.allowed_hosts {
        if hosts.len() > v::MAX_ALLOWED_HOSTS {
            return Err(Error::invalid(
                "too_many_hosts",
                format!("at most {} allowed hosts", v::MAX_ALLOWED_HOSTS),
            ));
        }
        let mut parsed = hosts
            .iter()
            .map(|h| v::parse_allowed_host(h))
            .collect::<Result<Vec<_>>>()?;
        parsed.sort();
        parsed.dedup();
        meta.allowed_hosts = parsed;
    }
    if let Some(i) = &req.inject {
        meta.inject = Some(i.parse()?);
    }
    if kind == T::Totp {
        if let Some(uri) = &req.otpauth_uri {
            if req.secret.is_some() {
                return Err(Error::invalid(
                    "invalid_field",
                    "give `secret` or `otpauth_uri`, not both",
                ));
            }
            let o = v::parse_otpauth(uri)?;
            // The URI's issuer and account are plain metadata, as the arguments are: no NULs
            // (a `%00` in the URI decodes to one), trimmed.
            for part in [&o.issuer, &o.account] {
                crate::text::refuse_nul("otpauth_uri", part.as_deref().unwrap_or_default())?;
            }
            secrets
                .fields
                .insert("secret".into(), o.secret_base32.expose_secret().to_owned());
            meta.issuer = clean(o.issuer.as_ref());
            meta.account = clean(o.account.as_ref());
            meta.algorithm = Some(o.params.algorithm);
            meta.digits = Some(o.params.digits);
            meta.period = Some(o.params.period);
        }
        if let Some(sec) = &req.secret {
            v::decode_totp_secret(sec)?;
        }
        if let Some(i) = &req.issuer {
            meta.issuer = clean(Some(i));
        }
        if let Some(a) = &req.account {
            meta.account = clean(Some(a));
        }
        if let Some(a) = &req.algorithm {
            meta.algorithm = Some(TotpAlgorithm::parse(a)?);
        }
        if let Some(d) = req.digits {
            meta.digits = Some(d);
        }
        if let Some(p) = req.period {
            meta.period = Some(p);
        }
        set(&mut secrets, "secret", req.secret.as_ref())?;
        let params = TotpParams {
            algorithm: meta.algorithm.unwrap_or(TotpAlgorithm::Sha1),
            digits: meta.digits.unwrap_or(6),
            period: meta.period.unwrap_or(30),
        }
        .validate()?;
        meta.algorithm = Some(params.algorithm);
        meta.digits = Some(params.digits);
        meta.period = Some(params.period);
        if let Some(codes) = &req.backup_codes {
            if codes.len() > v::MAX_BACKUP_CODES {
                return Err(Error::invalid(
                    "too_many_backup_codes",
                    format!("at most {} backup codes", v::MAX_BACKUP_CODES),
                ));
            }
            secrets.backup_codes = codes
                .iter()
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect();
        }
    }
    if kind == T::Login && meta.username.is_none() && existing.is_none() && req.password.is_none() {
        return Err(Error::invalid("missing_field", "a login needs `password`"));
    }
    // The type's main secret must be there.
    let required = match kind {
        T::Custom => None,
        k => k.secret_fields().first().copied(),
    };
    if let Some(f) = required
        && !secrets.fields.contains_key(f)
    {
        let hint = match kind {
            T::ApiKey => r#"e.g. {"label": "crm", "value": "..."}"#.to_owned(),
            T::Totp => "give `secret` (base32) or `otpauth_uri`".to_owned(),
            _ => format!("a {} credential needs `{f}`", kind.as_str()),
        };
        return Err(
            Error::invalid("missing_field", format!("a {} credential needs `{f}`", kind.as_str())).with_hint(hint),
        );
    }
    if kind == T::Custom && secrets.fields.is_empty() {
        return Err(Error::invalid("missing_field", "a custom credential needs `fields`"));
    }
    if matches!(meta.inject, Some(Injection::Basic)) && meta.username.is_none() && kind != T::Login {
        // Basic auth with an empty user name is legal (`:token`), so allowed.
    }
    // The secret brokered HTTP injects must be long enough to be redacted reliably from the
    // responses. Checked whenever it is given, and when an update makes the credential
    // injectable; an older, shorter one stays usable for changes that do neither.
    if meta.effective_injection().is_some()
        && let Some(field) = secrets.primary_field(kind)
        && secrets.fields[field].chars().count() < v::MIN_INJECTABLE_SECRET_CHARS
        && existing.is_none_or(|(m, _)| supplies(req, kind, field) || m.effective_injection().is_none())
    {
        let label = if kind == T::Custom {
            format!("fields.{field}")
        } else {
            field.to_owned()
        };
        return Err(Error::invalid(
            "secret_too_short",
            format!(
                "`{label}` must be at least {} characters: brokered HTTP injects it, and a shorter secret cannot be redacted reliably from responses",
                v::MIN_INJECTABLE_SECRET_CHARS
            ),
        )
        .with_hint("store the whole secret; a secret never used for brokered HTTP can be a `custom` credential without `inject`"));
    }
    meta.secret_fields = secrets.fields.keys().cloned().collect();
    meta.backup_codes_remaining = secrets.backup_codes.len() as u32;
    Ok((meta, secrets))
}

/// Whether `req` gives a value for the secret field `field` of a `kind` credential.
fn supplies(req: &StoreCredentialRequest, kind: CredentialType, field: &str) -> bool {
    if kind == CredentialType::Custom {
        return req.fields.as_ref().is_some_and(|f| f.keys().any(|k| k.trim() == field));
    }
    match field {
        "value" => req.value.is_some(),
        "password" => req.password.is_some(),
        "secret" => req.secret.is_some() || req.otpauth_uri.is_some(),
        "access_token" => req.access_token.is_some(),
        "refresh_token" => req.refresh_token.is_some(),
        "client_secret" => req.client_secret.is_some(),
        "private_key" => req.private_key.is_some(),
        "passphrase" => req.passphrase.is_some(),
        "connection_string" => req.connection_string.is_some(),
        _ => false,
    }
}
