//! The use cases: what an authenticated caller may do, checked and carried out.
//!
//! [`Loft`] is what every door holds. A door authenticates a request into an [`Actor`]
//! ([`Loft::authenticate`]) and calls one method per use case. This module decides *whether*
//! an action is allowed (scopes, ownership, delegation) and *what* it means (addresses,
//! threading, message building); the store carries it out in one transaction with its audit
//! row. Nothing here knows about HTTP or SQL.

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::address::{self, EmailAddress};
use crate::audit::{ActorKind, AuditEntry, AuditQuery, AuditRecord, ChainHead, Outcome, VerifyReport};
use crate::identity::{
    self, ChainLink, CreatedIdentity, CreatedKey, Creator, CreatorKind, Identity, IdentityStatus, NewIdentity, WhoAmI,
};
use crate::ids::{IdentityId, KeyId, MessageId, ThreadId};
use crate::keys::{ApiKey, KEY_PREFIX, KeyKind, KeyMeta, OperatorKey, Scope, ScopeSet, StoredKey};
use crate::limits::{self, Limits, LimitsConfig};
use crate::mail::{
    self, Authentication, Delivery, DeliveryStatus, Folder, MailContent, MailCopy, Message, MessagePatch, MessageQuery,
    MessageSummary, NewMail, ReplyMail, SendMail, Thread, ThreadQuery, ThreadSummary,
};
use crate::quota::{self, Quotas, RecipientBudget};
use crate::random::Random;
use crate::store::{IdentityQuery, IdentityUpdate, Store};
use crate::text;
use crate::time::{Clock, Timestamp};
use crate::{Error, Result};

mod vault;

pub use vault::{
    BackupCode, BrokeredHttpRequest, BrokeredHttpResponse, CredentialView, GetCredentialParams, InjectInput,
    ListCredentialsParams, RotationReport, StoreCredentialRequest,
};

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Deploy-time settings the use cases need.
#[derive(Debug, Clone)]
pub struct LoftConfig {
    /// Mail domain of new identities.
    pub domain: String,
    /// Largest text + HTML body accepted for one message.
    pub max_body_bytes: usize,
}

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub remote_addr: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Principal {
    Operator,
    Identity {
        identity: Box<Identity>,
        key: Box<KeyMeta>,
        /// Key scopes within the identity's scopes.
        scopes: ScopeSet,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Actor {
    pub principal: Principal,
    pub ctx: RequestContext,
}

impl Actor {
    pub fn is_operator(&self) -> bool {
        matches!(self.principal, Principal::Operator)
    }

    pub fn identity(&self) -> Option<&Identity> {
        match &self.principal {
            Principal::Identity { identity, .. } => Some(identity),
            Principal::Operator => None,
        }
    }

    pub fn scopes(&self) -> ScopeSet {
        match &self.principal {
            Principal::Operator => ScopeSet::new(Scope::ALL),
            Principal::Identity { scopes, .. } => scopes.clone(),
        }
    }

    pub fn key_id(&self) -> String {
        match &self.principal {
            Principal::Operator => "operator".into(),
            Principal::Identity { key, .. } => key.id.to_string(),
        }
    }

    /// The identity acting, holding `scope`. The operator is not an identity: routes that act
    /// as one (mail, vault) need an identity key.
    pub fn require(&self, scope: Scope) -> Result<&Identity> {
        match &self.principal {
            Principal::Operator => Err(Error::forbidden(
                "identity_key_required",
                "this route acts as an identity; the operator key is not one",
            )
            .with_hint("use the API key of the identity that should act (returned by `POST /v0/identities`)")),
            Principal::Identity { identity, scopes, .. } => {
                if scopes.contains(scope) {
                    Ok(identity)
                } else {
                    Err(Error::MissingScope { scope })
                }
            }
        }
    }

    /// The calling key's own id, when it is an identity key.
    fn own_key(&self) -> Option<&KeyMeta> {
        match &self.principal {
            Principal::Identity { key, .. } => Some(key),
            Principal::Operator => None,
        }
    }

    /// Key management (listing, minting, revoking keys; revoking identities) needs
    /// `keys:manage` on an identity key; the operator always may.
    fn require_keys_manage(&self) -> Result<()> {
        match &self.principal {
            Principal::Operator => Ok(()),
            Principal::Identity { scopes, .. } if scopes.contains(Scope::KeysManage) => Ok(()),
            Principal::Identity { .. } => Err(Error::MissingScope {
                scope: Scope::KeysManage,
            }),
        }
    }

    /// What any key this actor mints may hold at most: see [`MintCeiling`].
    fn mint_ceiling(&self) -> MintCeiling {
        match &self.principal {
            Principal::Operator => MintCeiling {
                scopes: ScopeSet::new(Scope::ALL),
                expires_at: None,
            },
            Principal::Identity { key, scopes, .. } => MintCeiling {
                scopes: scopes.clone(),
                expires_at: key.expires_at,
            },
        }
    }

    fn audit(&self, at: Timestamp, action: &str, target: Option<String>, details: serde_json::Value) -> AuditEntry {
        let (kind, id) = match &self.principal {
            Principal::Operator => (ActorKind::Operator, None),
            Principal::Identity { identity, .. } => (ActorKind::Identity, Some(identity.id.clone())),
        };
        AuditEntry {
            at,
            actor_kind: kind,
            actor_identity_id: id,
            key_id: Some(self.key_id()),
            action: action.into(),
            target,
            outcome: Outcome::Ok,
            request_id: self.ctx.request_id.clone(),
            remote_addr: self.ctx.remote_addr.clone(),
            details,
        }
    }
}

/// The one rule of every key-minting path (a key created, a key rotated, a sub-identity's
/// primary key, and any path added later): the new key never holds a scope the minting key
/// lacks, and never expires later than the minting key. The operator's ceiling is everything,
/// never expiring.
#[derive(Debug, Clone)]
struct MintCeiling {
    scopes: ScopeSet,
    expires_at: Option<Timestamp>,
}

impl MintCeiling {
    /// Refuses `scopes` and `expires_at` unless both are within the ceiling; `what` names the
    /// thing being minted in the error.
    fn check(&self, what: &str, scopes: &ScopeSet, expires_at: Option<Timestamp>) -> Result<()> {
        let escalation = scopes.missing_from(&self.scopes);
        if !escalation.is_empty() {
            return Err(Error::forbidden(
                "scope_escalation",
                format!(
                    "{what} cannot have scopes the calling key lacks: {}",
                    escalation.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )
            .with_hint("ask for fewer scopes, or use a key that holds them"));
        }
        if let Some(max) = self.expires_at
            && expires_at.is_none_or(|t| t > max)
        {
            return Err(Error::forbidden(
                "expiry_escalation",
                format!("{what} cannot outlive the calling key, which expires at {max}"),
            )
            .with_hint("give an expiry no later than the calling key's, or use a key that does not expire"));
        }
        Ok(())
    }
}

/// The longest lifetime a key may be given: ten years.
pub const MAX_KEY_LIFETIME_SECS: i64 = 10 * 366 * 24 * 3600;

/// A page of results and the cursor for the next one.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

pub fn encode_cursor(seq: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{seq}"))
}

pub fn decode_cursor(cursor: &str) -> Result<i64> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("v1:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| {
            Error::invalid("invalid_cursor", "the cursor is not one this server issued")
                .with_hint("pass `next_cursor` from the previous page unchanged")
        })
}

fn page<T>(p: mail::StorePage<T>) -> Page<T> {
    Page {
        items: p.items,
        next_cursor: p.next_before.map(encode_cursor),
    }
}

fn page_limit(limit: Option<u32>) -> Result<u32> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(Error::invalid(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_PAGE}, not {n}"),
        )),
    }
}

fn cursor(c: Option<&str>) -> Result<Option<i64>> {
    c.filter(|c| !c.is_empty()).map(decode_cursor).transpose()
}

/// `POST /v0/identities`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIdentityRequest {
    /// What the agent is called, e.g. `researcher`.
    pub name: String,
    pub display_name: Option<String>,
    /// The part of the address before `@`; default: a slug of the name plus a random suffix.
    pub local_part: Option<String>,
    /// Default: mail:read, mail:send, mail:manage, vault:read, vault:write.
    pub scopes: Option<Vec<String>>,
}

/// `PATCH /v0/identities/{id}`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateIdentityRequest {
    /// An empty string clears it.
    pub display_name: Option<String>,
    pub scopes: Option<Vec<String>>,
}

/// `POST /v0/keys` and `POST /v0/identities/{id}/keys`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// Default: the scopes of the key making the request (or of the identity, for the operator).
    pub scopes: Option<Vec<String>>,
    /// Lifetime in seconds from now.
    pub expires_in_seconds: Option<i64>,
    pub label: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevokedIdentities {
    /// Every identity revoked by this call: the one named and all below it.
    pub revoked: Vec<IdentityId>,
}

/// Filters for `GET /v0/messages`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListMessagesParams {
    /// `inbox` (default), `sent` or `all`.
    pub folder: Option<String>,
    /// Only unread messages.
    pub unread: Option<bool>,
    pub label: Option<String>,
    /// Only messages from this address.
    pub from: Option<String>,
    pub thread_id: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `GET /v0/messages/wait`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WaitParams {
    /// How long to wait for mail, 0 to 300 seconds (default 30). 0 checks once.
    pub timeout_seconds: Option<u32>,
    /// The `cursor` of a previous wait: return inbox mail newer than that, read or not.
    /// Without it, return the unread inbox mail.
    pub after: Option<String>,
    /// At most this many messages (1 to 200, default 50).
    pub limit: Option<u32>,
}

/// What a wait returns.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WaitResult {
    /// The mail that arrived (or was already unread), oldest first.
    pub items: Vec<MessageSummary>,
    /// True when the time ran out with no mail.
    pub timed_out: bool,
    /// Pass as `after` to the next wait to get only mail newer than this call's.
    pub cursor: String,
}

pub const MAX_WAIT_SECONDS: u32 = 300;

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListThreadsParams {
    pub unread: Option<bool>,
    pub label: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListIdentitiesParams {
    #[serde(default)]
    pub include_revoked: bool,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAuditParams {
    /// Only rows whose actor is this identity (identity keys always see only their own).
    pub identity: Option<String>,
    /// An action (`mail.send`) or a prefix ending in `.` (`mail.`).
    pub action: Option<String>,
    /// `ok`, `denied` or `error`.
    pub outcome: Option<String>,
    /// RFC 3339; rows at or after.
    pub since: Option<String>,
    /// RFC 3339; rows before.
    pub until: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The service every door holds.
pub struct Loft {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    operator: OperatorKey,
    config: LoftConfig,
    /// Bumped whenever this process delivers mail, so that waiters can look again.
    mail_tick: watch::Sender<u64>,
    /// Set when the server is stopping: waits answer at once.
    stopping: watch::Sender<bool>,
    /// The master keyring; `None` until [`Loft::with_vault`] (vault routes then refuse).
    vault: Option<vault::VaultKeys>,
    /// Outbound HTTP for brokered calls; `None` until [`Loft::with_broker`].
    broker: Option<Arc<dyn crate::vault::HttpBroker>>,
    /// Request limits and refused-key counts; off until [`Loft::with_limits`].
    limits: Limits,
    /// Per-identity quotas ([`Quotas::default`] unless [`Loft::with_quotas`]).
    quotas: Quotas,
    /// This process's hourly budgets of queued remote recipients.
    recipient_budget: RecipientBudget,
}

impl Loft {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
        operator: OperatorKey,
        config: LoftConfig,
    ) -> Result<Self> {
        address::validate_domain(&config.domain)?;
        Ok(Self {
            store,
            clock,
            random,
            operator,
            config,
            mail_tick: watch::channel(0).0,
            stopping: watch::channel(false).0,
            vault: None,
            broker: None,
            limits: Limits::new(LimitsConfig::off()),
            quotas: Quotas::default(),
            recipient_budget: RecipientBudget::default(),
        })
    }

    /// Sets the per-identity quotas (deploy-time: `loft serve --quota NAME=N`).
    #[must_use]
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// Limits requests per key and per address, and locks out addresses that present too
    /// many refused keys (`loft serve` turns them on with generous defaults).
    #[must_use]
    pub fn with_limits(mut self, config: LimitsConfig) -> Self {
        self.limits = Limits::new(config);
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn config(&self) -> &LoftConfig {
        &self.config
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The server is stopping: long polls return now (as timed out) so that shutdown is not
    /// held up by them.
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
    }

    /// Subscribes to this process's mail deliveries (a hint to look again, not the mail).
    pub fn mail_ticks(&self) -> watch::Receiver<u64> {
        self.mail_tick.subscribe()
    }

    // ----- authentication -------------------------------------------------------------

    /// Turns a bearer token into an [`Actor`], or refuses it.
    ///
    /// Before the key is looked at, the client address must not be locked out (too many
    /// refused keys in this window) nor over its request rate; after, the key must be within
    /// its own rate. Refusals are counted per address and written as aggregated audit rows by
    /// [`Loft::flush_auth_refusals`], never one row per request (a flood of bad keys would
    /// otherwise grow the log and slow every writer), and never naming a key id taken from a
    /// token that did not verify.
    pub async fn authenticate(&self, bearer: Option<&str>, ctx: RequestContext) -> Result<Actor> {
        let now = self.clock.now();
        let address = limits::address_key(ctx.remote_addr.as_deref());
        if let Err(wait) = self.limits.check_lockout(&address, now) {
            return Err(Error::too_many(
                "too_many_refused_keys",
                format!("too many refused API keys from this address; try again in {wait} s"),
                wait,
            )
            .with_hint("check that the key is copied whole and not revoked or expired before retrying"));
        }
        if let Err(wait) = self.limits.check_address(&address, now) {
            return Err(Error::too_many(
                "rate_limited",
                format!("too many requests from this address; try again in {wait} s"),
                wait,
            )
            .with_hint("slow down; the operator sets the limit with `--rate-limit-per-address`"));
        }
        match self.check_key(bearer).await {
            Ok(principal) => {
                if let Principal::Identity { key, .. } = &principal
                    && let Err(wait) = self.limits.check_key(key.id.as_str(), now)
                {
                    return Err(Error::too_many(
                        "rate_limited",
                        format!("too many requests with this key; try again in {wait} s"),
                        wait,
                    )
                    .with_hint("slow down, e.g. wait for mail with `mail_wait` instead of polling; the operator sets the limit with `--rate-limit-per-key`"));
                }
                Ok(Actor { principal, ctx })
            }
            Err((Some(reason), err)) => {
                self.limits.record_refusal(&address, reason, now);
                Err(err)
            }
            Err((None, err)) => Err(err),
        }
    }

    /// Writes the refused authentications of every window that has ended (every window, the
    /// current one included, when `everything`: at shutdown) as one `auth.refused` audit row
    /// per address and window, with the count and the reasons. Returns the rows written.
    pub async fn flush_auth_refusals(&self, everything: bool) -> Result<usize> {
        let rows = self.limits.take_refusals(self.clock.now(), everything);
        let n = rows.len();
        for r in rows {
            let entry = AuditEntry {
                at: self.clock.now(),
                actor_kind: ActorKind::Anonymous,
                actor_identity_id: None,
                key_id: None,
                action: "auth.refused".into(),
                target: None,
                outcome: Outcome::Denied,
                request_id: None,
                remote_addr: Some(r.address.clone()),
                details: serde_json::json!({
                    "count": r.count, "locked_out": r.locked_out, "reasons": r.reasons,
                    "window_start": r.window_start, "window_end": r.window_end,
                }),
            };
            self.store.append_audit(entry).await?;
        }
        Ok(n)
    }

    /// `Err((Some(reason), error))` is a refused key, counted against the client address;
    /// `Err((None, error))` is a failure to check it (the database), not the client's fault.
    async fn check_key(&self, bearer: Option<&str>) -> std::result::Result<Principal, (Option<&'static str>, Error)> {
        let unknown = || {
            Error::unauthenticated("the API key is not valid").with_hint(
                "check that the whole key was copied; keys are shown only once, so mint a new one if it is lost",
            )
        };
        let Some(token) = bearer.map(str::trim).filter(|t| !t.is_empty()) else {
            return Err((
                Some("missing_key"),
                Error::unauthenticated("an API key is required").with_hint("send `Authorization: Bearer <key>`"),
            ));
        };
        if !token.starts_with(KEY_PREFIX) {
            return if self.operator.matches(token) {
                Ok(Principal::Operator)
            } else {
                Err((Some("unknown_key"), unknown()))
            };
        }
        let key = ApiKey::parse(token).map_err(|e| (Some("malformed_key"), e))?;
        let found = self.store.find_key(key.id()).await.map_err(|e| (None, e))?;
        let Some((stored, identity)) = found else {
            return Err((Some("unknown_key"), unknown()));
        };
        if !stored.digest.matches(&key.digest()) {
            return Err((Some("unknown_key"), unknown()));
        }
        if stored.meta.revoked_at.is_some() {
            return Err((
                Some("revoked_key"),
                Error::unauthenticated("this API key has been revoked"),
            ));
        }
        if !identity.is_active() {
            return Err((
                Some("revoked_identity"),
                Error::unauthenticated("the identity of this API key has been revoked"),
            ));
        }
        if stored.meta.expires_at.is_some_and(|t| t <= self.clock.now()) {
            return Err((
                Some("expired_key"),
                Error::unauthenticated("this API key has expired").with_hint("mint a new key with `loft key create`"),
            ));
        }
        // The primary key follows its identity's scopes (so `identity update --scopes` takes
        // effect at once, widening included); extra keys keep their own, within the identity's.
        let scopes = match stored.meta.kind {
            KeyKind::Primary => identity.scopes.clone(),
            KeyKind::Extra => stored.meta.scopes.intersection(&identity.scopes),
        };
        Ok(Principal::Identity {
            identity: Box::new(identity),
            key: Box::new(stored.meta),
            scopes,
        })
    }

    // ----- identities -----------------------------------------------------------------

    pub async fn create_identity(&self, actor: &Actor, req: CreateIdentityRequest) -> Result<CreatedIdentity> {
        let creator = match &actor.principal {
            Principal::Operator => Creator {
                kind: CreatorKind::Operator,
                identity_id: None,
                key_id: Some(actor.key_id()),
            },
            Principal::Identity { identity, .. } => {
                actor.require(Scope::IdentityCreate)?;
                Creator {
                    kind: CreatorKind::Identity,
                    identity_id: Some(identity.id.clone()),
                    key_id: Some(actor.key_id()),
                }
            }
        };
        // The sub-identity's primary key is minted by the calling key: same rule as any key.
        let ceiling = actor.mint_ceiling();
        if let Some(parent) = actor.identity() {
            let usage = self.store.usage(&parent.id).await?;
            quota::check(
                "sub_identities",
                "active sub-identities",
                self.quotas.sub_identities,
                usage.sub_identities,
                1,
            )?;
        }
        let name = identity::validate_name(&req.name)?;
        let display_name = req
            .display_name
            .as_deref()
            .map(identity::validate_display_name)
            .transpose()?
            .filter(|d| !d.is_empty());
        let scopes = match &req.scopes {
            Some(names) => ScopeSet::parse_names(names)?,
            None => ScopeSet::default_for_identity().intersection(&ceiling.scopes),
        };
        ceiling.check("a sub-identity", &scopes, ceiling.expires_at)?;
        let explicit = req.local_part.as_deref().map(str::trim).filter(|l| !l.is_empty());
        if let Some(l) = explicit {
            address::validate_local_part(l)?;
        }
        // A generated address can collide with an existing one; try a few suffixes.
        let attempts = if explicit.is_some() { 1 } else { 4 };
        for attempt in 1..=attempts {
            let local = explicit.map_or_else(
                || identity::default_local_part(&name, self.random.as_ref()),
                str::to_ascii_lowercase,
            );
            let address = EmailAddress::from_parts(&local, &self.config.domain)?;
            let now = self.clock.now();
            let id = IdentityId::generate(self.random.as_ref());
            let key = ApiKey::generate(self.random.as_ref());
            let identity = Identity {
                id: id.clone(),
                name: name.clone(),
                display_name: display_name.clone(),
                address: address.clone(),
                scopes: scopes.clone(),
                status: IdentityStatus::Active,
                created_at: now,
                revoked_at: None,
                created_by: creator.clone(),
            };
            let stored = StoredKey {
                id: key.id().clone(),
                identity_id: id.clone(),
                digest: key.digest(),
                meta: KeyMeta {
                    id: key.id().clone(),
                    identity_id: id.clone(),
                    kind: KeyKind::Primary,
                    label: None,
                    scopes: scopes.clone(),
                    created_at: now,
                    expires_at: ceiling.expires_at,
                    revoked_at: None,
                    created_by_key: Some(actor.key_id()),
                },
            };
            let audit = actor.audit(
                now,
                "identity.create",
                Some(id.to_string()),
                serde_json::json!({
                    "name": name, "address": address, "scopes": scopes,
                    "parent": creator.identity_id, "key_id": key.id(),
                }),
            );
            match self
                .store
                .create_identity(
                    NewIdentity {
                        identity: identity.clone(),
                        key: stored,
                    },
                    audit,
                )
                .await
            {
                Ok(()) => {
                    return Ok(CreatedIdentity {
                        identity,
                        api_key: key.reveal(),
                        key_id: key.id().clone(),
                    });
                }
                Err(Error::Conflict(d)) if d.code == "address_taken" && attempt < attempts => {}
                Err(Error::Conflict(d)) if d.code == "address_taken" => {
                    return Err(
                        Error::conflict("address_taken", format!("the address {address} is already taken"))
                            .with_hint("choose another `local_part`, or omit it to get a generated address"),
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::internal("could not find a free address"))
    }

    /// The identity, if the actor may see it: the operator sees all, an identity sees itself
    /// and the identities below it. Anything else is `NotFound`.
    async fn visible_identity(&self, actor: &Actor, id: &IdentityId) -> Result<Identity> {
        let identity = self
            .store
            .get_identity(id)
            .await?
            .ok_or_else(|| Error::not_found("identity"))?;
        match &actor.principal {
            Principal::Operator => Ok(identity),
            Principal::Identity { identity: me, .. } => {
                if &me.id == id || self.store.ancestors(id).await?.iter().any(|a| a.id == me.id) {
                    Ok(identity)
                } else {
                    Err(Error::not_found("identity"))
                }
            }
        }
    }

    /// Like [`Self::visible_identity`], but for changes: an identity needs `identity:create`
    /// to act on the identities below it, and may act on itself only where `allow_self`.
    async fn managed_identity(&self, actor: &Actor, id: &IdentityId, allow_self: bool) -> Result<Identity> {
        let target = self.visible_identity(actor, id).await?;
        if let Some(me) = actor.identity() {
            if me.id == target.id {
                if !allow_self {
                    return Err(Error::forbidden(
                        "cannot_manage_self",
                        "an identity cannot change its own scopes or settings",
                    )
                    .with_hint("ask the identity that created it, or the operator"));
                }
            } else {
                actor.require(Scope::IdentityCreate)?;
            }
        }
        Ok(target)
    }

    pub async fn get_identity(&self, actor: &Actor, id: &str) -> Result<Identity> {
        let id = IdentityId::parse(id)?;
        self.visible_identity(actor, &id).await
    }

    pub async fn list_identities(&self, actor: &Actor, params: ListIdentitiesParams) -> Result<Page<Identity>> {
        let query = IdentityQuery {
            within: actor.identity().map(|i| i.id.clone()),
            include_revoked: params.include_revoked,
            before_seq: cursor(params.cursor.as_deref())?,
            limit: page_limit(params.limit)?,
        };
        Ok(page(self.store.list_identities(query).await?))
    }

    pub async fn update_identity(&self, actor: &Actor, id: &str, req: UpdateIdentityRequest) -> Result<Identity> {
        let id = IdentityId::parse(id)?;
        let target = self.managed_identity(actor, &id, false).await?;
        let display_name = req
            .display_name
            .as_deref()
            .map(identity::validate_display_name)
            .transpose()?;
        let scopes = req.scopes.as_deref().map(ScopeSet::parse_names).transpose()?;
        if let Some(s) = &scopes {
            // Widening an identity widens its primary key, which may live longer than the
            // calling key: granting is minting, so the same ceiling applies. Narrowing is free.
            let ceiling = actor.mint_ceiling();
            ceiling.check("an identity", s, ceiling.expires_at)?;
            let added = s.missing_from(&target.scopes);
            if let (Some(max), false) = (ceiling.expires_at, added.is_empty()) {
                return Err(Error::forbidden(
                    "expiry_escalation",
                    format!("a key that expires (at {max}) cannot grant an identity lasting scopes"),
                )
                .with_hint("use a key that does not expire, or ask the operator"));
            }
        }
        if display_name.is_none() && scopes.is_none() {
            return Err(
                Error::invalid("empty_update", "nothing to change").with_hint("send `display_name` and/or `scopes`")
            );
        }
        if !target.is_active() {
            return Err(Error::conflict(
                "identity_revoked",
                "a revoked identity cannot be changed",
            ));
        }
        let audit = actor.audit(
            self.clock.now(),
            "identity.update",
            Some(id.to_string()),
            serde_json::json!({ "display_name": display_name, "scopes": scopes }),
        );
        self.store
            .update_identity(&id, IdentityUpdate { display_name, scopes }, audit)
            .await
    }

    pub async fn revoke_identity(&self, actor: &Actor, id: &str) -> Result<RevokedIdentities> {
        let id = IdentityId::parse(id)?;
        self.managed_identity(actor, &id, true).await?;
        actor.require_keys_manage()?;
        let now = self.clock.now();
        let audit = actor.audit(now, "identity.revoke", Some(id.to_string()), serde_json::json!({}));
        let revoked = self.store.revoke_identity(&id, now, audit).await?;
        Ok(RevokedIdentities { revoked })
    }

    pub async fn whoami(&self, actor: &Actor) -> Result<WhoAmI> {
        let operator_link = ChainLink {
            kind: CreatorKind::Operator,
            identity_id: None,
            name: None,
            address: None,
            created_with_key: None,
        };
        match &actor.principal {
            Principal::Operator => Ok(WhoAmI {
                kind: CreatorKind::Operator,
                identity: None,
                address: None,
                scopes: actor.scopes(),
                key_id: actor.key_id(),
                key_expires_at: None,
                chain: vec![operator_link],
            }),
            Principal::Identity { identity, key, scopes } => {
                let mut chain = vec![link(identity)];
                chain.extend(self.store.ancestors(&identity.id).await?.iter().map(link));
                chain.push(operator_link);
                Ok(WhoAmI {
                    kind: CreatorKind::Identity,
                    address: Some(identity.address.clone()),
                    identity: Some((**identity).clone()),
                    scopes: scopes.clone(),
                    key_id: key.id.to_string(),
                    key_expires_at: key.expires_at,
                    chain,
                })
            }
        }
    }

    // ----- keys -----------------------------------------------------------------------

    /// The identity whose keys a request is about: the caller's own by default.
    async fn key_owner(&self, actor: &Actor, identity: Option<&str>) -> Result<Identity> {
        match (identity, actor.identity()) {
            (Some(id), _) => {
                let id = IdentityId::parse(id)?;
                self.managed_identity(actor, &id, true).await
            }
            (None, Some(me)) => Ok(me.clone()),
            (None, None) => Err(
                Error::invalid("identity_required", "the operator must name the identity")
                    .with_hint("use `/v0/identities/{id}/keys`, or `--identity` on the CLI"),
            ),
        }
    }

    pub async fn create_key(&self, actor: &Actor, identity: Option<&str>, req: CreateKeyRequest) -> Result<CreatedKey> {
        actor.require_keys_manage()?;
        let owner = self.key_owner(actor, identity).await?;
        if !owner.is_active() {
            return Err(Error::conflict(
                "identity_revoked",
                "a revoked identity cannot get new keys",
            ));
        }
        let now = self.clock.now();
        // The ceiling: what the calling key may do and how long it lives, within what the
        // owner may do at all.
        let mut ceiling = actor.mint_ceiling();
        ceiling.scopes = ceiling.scopes.intersection(&owner.scopes);
        let scopes = match &req.scopes {
            Some(names) => ScopeSet::parse_names(names)?,
            // An extra key manages keys only when asked for by name: a key handed out for a
            // narrow job should not also be able to mint and revoke keys.
            None => ScopeSet::new(ceiling.scopes.iter().filter(|s| *s != Scope::KeysManage)),
        };
        let expires_at = match req.expires_in_seconds {
            Some(s) if !(1..=MAX_KEY_LIFETIME_SECS).contains(&s) => {
                return Err(Error::invalid(
                    "invalid_expiry",
                    format!("expires_in_seconds must be between 1 and {MAX_KEY_LIFETIME_SECS} (ten years), not {s}"),
                ));
            }
            Some(s) => Some(now.plus_secs(s)),
            None => ceiling.expires_at,
        };
        ceiling.check("a new key", &scopes, expires_at)?;
        let usage = self.store.usage(&owner.id).await?;
        quota::check("keys", "active keys", self.quotas.keys, usage.active_keys, 1)?;
        let label = req
            .label
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned);
        if label
            .as_ref()
            .is_some_and(|l| l.chars().count() > 64 || l.chars().any(char::is_control))
        {
            return Err(Error::invalid(
                "invalid_label",
                "a key label is at most 64 printable characters",
            ));
        }
        self.mint_key(actor, &owner, now, KeyKind::Extra, scopes, expires_at, label, None)
            .await
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one private constructor shared by create and rotate"
    )]
    async fn mint_key(
        &self,
        actor: &Actor,
        owner: &Identity,
        now: Timestamp,
        kind: KeyKind,
        scopes: ScopeSet,
        expires_at: Option<Timestamp>,
        label: Option<String>,
        replaces: Option<KeyId>,
    ) -> Result<CreatedKey> {
        let key = ApiKey::generate(self.random.as_ref());
        let meta = KeyMeta {
            id: key.id().clone(),
            identity_id: owner.id.clone(),
            kind,
            label,
            scopes,
            created_at: now,
            expires_at,
            revoked_at: None,
            created_by_key: Some(actor.key_id()),
        };
        let action = if replaces.is_some() { "key.rotate" } else { "key.create" };
        let audit = actor.audit(
            now,
            action,
            Some(key.id().to_string()),
            serde_json::json!({
                "identity": owner.id, "kind": kind.as_str(), "scopes": meta.scopes,
                "expires_at": expires_at, "replaces": replaces,
            }),
        );
        let stored = StoredKey {
            id: key.id().clone(),
            identity_id: owner.id.clone(),
            digest: key.digest(),
            meta: meta.clone(),
        };
        self.store.create_key(stored, replaces, audit).await?;
        Ok(CreatedKey {
            key: meta,
            api_key: key.reveal(),
        })
    }

    /// Replaces a key with a new one that works at once while the old one stops working.
    /// With an identity key and no identity named: the calling key. Otherwise (operator, or a
    /// parent naming a sub-identity): that identity's primary key.
    pub async fn rotate_key(&self, actor: &Actor, identity: Option<&str>) -> Result<CreatedKey> {
        let owner = self.key_owner(actor, identity).await?;
        if !owner.is_active() {
            return Err(Error::conflict(
                "identity_revoked",
                "a revoked identity cannot get new keys",
            ));
        }
        let old = match (&actor.principal, identity) {
            // Any key may replace itself: same scopes, same expiry, and it stops working.
            (Principal::Identity { key, .. }, None) => (**key).clone(),
            // Naming an identity rotates its primary key, which carries every scope of the
            // identity and usually no expiry: only the operator, or that primary key itself.
            (Principal::Identity { key, .. }, Some(_))
                if key.identity_id == owner.id && key.kind == KeyKind::Primary =>
            {
                (**key).clone()
            }
            (Principal::Identity { .. }, Some(_)) => {
                return Err(Error::forbidden(
                    "primary_rotation_forbidden",
                    "only the operator, or the primary key itself, can rotate an identity's primary key",
                )
                .with_hint(
                    "rotate the calling key with `POST /v0/keys/rotate`, or mint a narrower key with \
                     `POST /v0/identities/{id}/keys` and revoke the old one",
                ));
            }
            (Principal::Operator, _) => self
                .store
                .list_keys(&owner.id)
                .await?
                .into_iter()
                .find(|k| k.kind == KeyKind::Primary && k.revoked_at.is_none())
                .ok_or_else(|| {
                    Error::conflict("no_primary_key", "this identity has no active primary key to rotate")
                        .with_hint("mint a key with `POST /v0/identities/{id}/keys` instead")
                })?,
        };
        let scopes = if old.kind == KeyKind::Primary {
            owner.scopes.clone()
        } else {
            old.scopes.clone()
        };
        // Rotation keeps the replaced key's scopes and expiry: it never exceeds the key it
        // replaces, which is the calling key itself or (for the operator) any key.
        let now = self.clock.now();
        self.mint_key(
            actor,
            &owner,
            now,
            old.kind,
            scopes,
            old.expires_at,
            old.label.clone(),
            Some(old.id),
        )
        .await
    }

    pub async fn list_keys(&self, actor: &Actor, identity: Option<&str>) -> Result<Vec<KeyMeta>> {
        actor.require_keys_manage()?;
        let owner = self.key_owner(actor, identity).await?;
        self.store.list_keys(&owner.id).await
    }

    pub async fn revoke_key(&self, actor: &Actor, key_id: &str) -> Result<KeyMeta> {
        let kid = KeyId::parse(key_id)?;
        let Some((stored, owner)) = self.store.find_key(&kid).await? else {
            return Err(Error::not_found("key"));
        };
        // Visible only if the caller may manage the owner; otherwise it does not exist.
        self.managed_identity(actor, &owner.id, true).await.map_err(|e| {
            if matches!(e, Error::NotFound(_)) {
                Error::not_found("key")
            } else {
                e
            }
        })?;
        // Any key may revoke itself; revoking another key is key management.
        if actor.own_key().is_none_or(|k| k.id != kid) {
            actor.require_keys_manage()?;
        }
        let now = self.clock.now();
        let audit = actor.audit(
            now,
            "key.revoke",
            Some(kid.to_string()),
            serde_json::json!({ "identity": owner.id }),
        );
        self.store.revoke_key(&stored.identity_id, &kid, now, audit).await
    }

    // ----- mail -----------------------------------------------------------------------

    pub async fn send(&self, actor: &Actor, req: SendMail) -> Result<Message> {
        let me = actor.require(Scope::MailSend)?.clone();
        let to = parse_addresses("to", &req.to)?;
        let cc = parse_addresses("cc", &req.cc)?;
        let bcc = parse_addresses("bcc", &req.bcc)?;
        let draft = Draft {
            to,
            cc,
            bcc,
            subject: req.subject,
            text: req.text,
            html: req.html,
            in_reply_to: None,
            references: vec![],
        };
        self.deliver(actor, &me, draft, "mail.send").await
    }

    pub async fn reply(&self, actor: &Actor, id: &str, req: ReplyMail) -> Result<Message> {
        let me = actor.require(Scope::MailSend)?.clone();
        let id = MessageId::parse(id)?;
        let original = self
            .store
            .get_message(&me.id, &id)
            .await?
            .ok_or_else(|| Error::not_found("message"))?;
        let (to, mut cc) = match original.folder {
            Folder::Inbox => (
                vec![original.from.clone()],
                [original.to.clone(), original.cc.clone()].concat(),
            ),
            Folder::Sent => (original.to.clone(), original.cc.clone()),
        };
        if !req.reply_all {
            cc.clear();
        }
        cc.retain(|a| a != &me.address && !to.contains(a));
        let mut references = original.references.clone();
        references.push(original.message_id.clone());
        // Keep headers bounded on very long threads: the root and the most recent ones.
        if references.len() > 20 {
            let root = references[0].clone();
            references.drain(..references.len() - 19);
            references.insert(0, root);
        }
        let draft = Draft {
            to,
            cc,
            bcc: vec![],
            subject: mail::reply_subject(&original.subject),
            text: req.text,
            html: req.html,
            in_reply_to: Some(original.message_id.clone()),
            references,
        };
        self.deliver(actor, &me, draft, "mail.reply").await
    }

    async fn deliver(&self, actor: &Actor, me: &Identity, draft: Draft, action: &str) -> Result<Message> {
        // Validate everything before anything is written.
        // Each address once, in the first field that names it (to, then cc, then bcc): before
        // the cap is counted and before the headers are built, so a repeated address can
        // neither grow the headers nor be counted twice.
        let mut seen = HashSet::new();
        let mut once = |list: Vec<EmailAddress>| -> Vec<EmailAddress> {
            list.into_iter().filter(|a| seen.insert(a.clone())).collect()
        };
        let mut draft = draft;
        draft.to = once(std::mem::take(&mut draft.to));
        draft.cc = once(std::mem::take(&mut draft.cc));
        draft.bcc = once(std::mem::take(&mut draft.bcc));
        let all: Vec<EmailAddress> = draft.to.iter().chain(&draft.cc).chain(&draft.bcc).cloned().collect();
        if all.is_empty() {
            return Err(Error::invalid("no_recipients", "the message has no recipients")
                .with_hint("give at least one address in `to`"));
        }
        if all.len() > mail::MAX_RECIPIENTS {
            return Err(Error::invalid(
                "too_many_recipients",
                format!(
                    "at most {} recipients per message, not {}",
                    mail::MAX_RECIPIENTS,
                    all.len()
                ),
            ));
        }
        if draft.subject.chars().count() > mail::MAX_SUBJECT || draft.subject.contains(['\r', '\n']) {
            return Err(Error::invalid(
                "invalid_subject",
                format!(
                    "the subject must be one line of at most {} characters",
                    mail::MAX_SUBJECT
                ),
            ));
        }
        if draft.text.trim().is_empty() && draft.html.as_deref().is_none_or(|h| h.trim().is_empty()) {
            return Err(Error::invalid("empty_body", "the message has no body")
                .with_hint("give `text` (and optionally `html`)"));
        }
        let body_bytes = draft.text.len() + draft.html.as_ref().map_or(0, String::len);
        if body_bytes > self.config.max_body_bytes {
            return Err(Error::invalid(
                "message_too_large",
                format!(
                    "the body is {body_bytes} bytes; the limit is {}",
                    self.config.max_body_bytes
                ),
            ));
        }
        let local: std::collections::HashMap<EmailAddress, IdentityId> =
            self.store.resolve_addresses(&all).await?.into_iter().collect();
        if let Some(unknown) = all
            .iter()
            .find(|a| a.domain() == self.config.domain && !local.contains_key(*a))
        {
            return Err(Error::invalid(
                "unknown_recipient",
                format!("no active identity has the address {unknown} on this server"),
            )
            .with_hint("check the address with `loft identity list`"));
        }

        let now = self.clock.now();
        let r = self.random.as_ref();
        let content = MailContent {
            message_id: format!("{}@{}", crate::random::base32_string(r, 26), self.config.domain),
            in_reply_to: draft.in_reply_to,
            references: draft.references,
            from: me.address.clone(),
            from_name: me.display_name.clone(),
            to: draft.to,
            cc: draft.cc,
            bcc: draft.bcc,
            subject: draft.subject,
            extracted_text: text::extract_reply(&draft.text),
            text: draft.text,
            html: draft.html,
            authentication: Authentication::internal(),
            created_at: now,
        };
        let raw = mail::build_rfc5322(&content)?;
        let sender_copy = MailCopy {
            id: MessageId::generate(r),
            owner: me.id.clone(),
            folder: Folder::Sent,
            new_thread_id: ThreadId::generate(r),
        };
        let mut recipient_copies = Vec::new();
        let mut delivery = Vec::new();
        for a in &all {
            if let Some(owner) = local.get(a) {
                recipient_copies.push(MailCopy {
                    id: MessageId::generate(r),
                    owner: owner.clone(),
                    folder: Folder::Inbox,
                    new_thread_id: ThreadId::generate(r),
                });
                delivery.push(Delivery {
                    recipient: a.clone(),
                    status: DeliveryStatus::Delivered,
                    detail: "delivered to an identity on this server".into(),
                });
            } else {
                delivery.push(Delivery {
                    recipient: a.clone(),
                    status: DeliveryStatus::Queued,
                    detail: "queued for SMTP delivery; outbound SMTP is not enabled on this server yet".into(),
                });
            }
        }
        let local_recipients: Vec<(&EmailAddress, &IdentityId)> =
            all.iter().filter_map(|a| local.get(a).map(|id| (a, id))).collect();
        let queued = delivery.iter().filter(|d| d.status == DeliveryStatus::Queued).count() as u64;
        self.check_mail_quotas(me, &local_recipients, queued, raw.len() as u64, now)
            .await?;
        let audit = actor.audit(
            now,
            action,
            Some(sender_copy.id.to_string()),
            serde_json::json!({
                "message_id": content.message_id,
                "to": content.to, "cc": content.cc, "bcc_count": content.bcc.len(),
                "delivered": recipient_copies.len(),
                "queued": delivery.iter().filter(|d| d.status == DeliveryStatus::Queued).count(),
                "size": raw.len(),
            }),
        );
        let mail = NewMail {
            content,
            raw,
            sender_copy,
            recipient_copies,
            delivery,
        };
        let sent = self.store.send_mail(mail, audit).await?;
        self.mail_tick.send_modify(|t| *t += 1);
        Ok(sent)
    }

    /// Every mailbox the message lands in (the sender's and each local recipient's) must have
    /// room for it under the `stored_bytes` quota, and the sender's hourly budget of remote
    /// recipients must cover the queued ones. Checked after everything else, before writing.
    async fn check_mail_quotas(
        &self,
        me: &Identity,
        local: &[(&EmailAddress, &IdentityId)],
        queued: u64,
        size: u64,
        now: Timestamp,
    ) -> Result<()> {
        if let Some(limit) = self.quotas.stored_bytes {
            let mut owners = vec![me.id.clone()];
            owners.extend(local.iter().map(|(_, id)| (*id).clone()));
            let used: std::collections::HashMap<IdentityId, u64> =
                self.store.mailbox_bytes(&owners).await?.into_iter().collect();
            let mailboxes = std::iter::once((None, &me.id)).chain(local.iter().map(|(a, id)| (Some(*a), *id)));
            for (address, owner) in mailboxes {
                let have = used.get(owner).copied().unwrap_or(0);
                if have.saturating_add(size) > limit {
                    let whose =
                        address.map_or_else(|| "the sender's mailbox".to_owned(), |a| format!("the mailbox of {a}"));
                    return Err(Error::forbidden(
                        "quota_exceeded",
                        format!(
                            "{whose} is full: it holds {have} bytes of mail, the quota `stored_bytes` is {limit}, and this message is {size} bytes"
                        ),
                    )
                    .with_hint("the operator can raise it with `--quota stored_bytes=N`"));
                }
            }
        }
        if let Some(per_hour) = self.quotas.queued_recipients_per_hour {
            self.recipient_budget.take(me.id.as_str(), per_hour, queued, now)?;
        }
        Ok(())
    }

    pub async fn list_messages(&self, actor: &Actor, params: ListMessagesParams) -> Result<Page<MessageSummary>> {
        let me = actor.require(Scope::MailRead)?;
        let folder = match params.folder.as_deref() {
            None | Some("inbox") => Some(Folder::Inbox),
            Some("sent") => Some(Folder::Sent),
            Some("all") => None,
            Some(other) => {
                return Err(Error::invalid("invalid_folder", format!("unknown folder `{other}`"))
                    .with_hint("use inbox, sent or all"));
            }
        };
        let query = MessageQuery {
            folder,
            unread_only: params.unread.unwrap_or(false),
            label: params.label.as_deref().map(mail::parse_label).transpose()?,
            from: params.from.as_deref().map(EmailAddress::parse).transpose()?,
            thread_id: params.thread_id.as_deref().map(ThreadId::parse).transpose()?,
            after_seq: None,
            before_seq: cursor(params.cursor.as_deref())?,
            oldest_first: false,
            limit: page_limit(params.limit)?,
        };
        Ok(page(self.store.list_messages(&me.id, query).await?))
    }

    /// Blocks until inbox mail is there, or the timeout passes: the inbox as a queue, without
    /// a polling loop in the agent. Wakes on deliveries in this process at once, and looks
    /// again every second for mail delivered by other nodes sharing the database.
    pub async fn wait_for_mail(&self, actor: &Actor, params: WaitParams) -> Result<WaitResult> {
        let me = actor.require(Scope::MailRead)?.clone();
        let timeout = params.timeout_seconds.unwrap_or(30);
        if timeout > MAX_WAIT_SECONDS {
            return Err(Error::invalid(
                "invalid_timeout",
                format!("timeout_seconds must be between 0 and {MAX_WAIT_SECONDS}, not {timeout}"),
            ));
        }
        let after = params
            .after
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(decode_cursor)
            .transpose()?;
        let limit = page_limit(params.limit)?;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(u64::from(timeout));
        // Subscribe before looking, so that a delivery between the look and the wait is seen.
        let mut ticks = self.mail_tick.subscribe();
        let mut stopping = self.stopping.subscribe();
        loop {
            let upto = self.store.latest_mail_seq(&me.id).await?;
            let query = MessageQuery {
                folder: Some(Folder::Inbox),
                unread_only: after.is_none(),
                after_seq: after,
                before_seq: Some(upto + 1),
                oldest_first: true,
                limit,
                ..MessageQuery::default()
            };
            let page = self.store.list_messages(&me.id, query).await?;
            let now = tokio::time::Instant::now();
            if !page.items.is_empty() || now >= deadline || *stopping.borrow() {
                // With more than `limit` new messages, continue after the last one returned.
                let cursor = encode_cursor(page.next_before.unwrap_or(upto));
                return Ok(WaitResult {
                    timed_out: page.items.is_empty(),
                    items: page.items,
                    cursor,
                });
            }
            let poll = (deadline - now).min(std::time::Duration::from_secs(1));
            tokio::select! {
                _ = ticks.changed() => {}
                _ = stopping.changed() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    pub async fn get_message(&self, actor: &Actor, id: &str) -> Result<Message> {
        let me = actor.require(Scope::MailRead)?;
        let id = MessageId::parse(id)?;
        let audit = actor.audit(
            self.clock.now(),
            "mail.read",
            Some(id.to_string()),
            serde_json::json!({}),
        );
        self.store.read_message(&me.id, &id, audit).await
    }

    pub async fn raw_message(&self, actor: &Actor, id: &str) -> Result<Vec<u8>> {
        let me = actor.require(Scope::MailRead)?;
        let id = MessageId::parse(id)?;
        self.store
            .raw_message(&me.id, &id)
            .await?
            .ok_or_else(|| Error::not_found("message"))
    }

    pub async fn update_message(&self, actor: &Actor, id: &str, patch: MessagePatch) -> Result<Message> {
        let me = actor.require(Scope::MailManage)?;
        let id = MessageId::parse(id)?;
        let add = patch
            .add_labels
            .iter()
            .map(|l| mail::parse_label(l))
            .collect::<Result<Vec<_>>>()?;
        let remove = patch
            .remove_labels
            .iter()
            .map(|l| mail::parse_label(l))
            .collect::<Result<Vec<_>>>()?;
        if add.is_empty() && remove.is_empty() && patch.unread.is_none() {
            return Err(Error::invalid("empty_update", "nothing to change")
                .with_hint("send `add_labels`, `remove_labels` and/or `unread`"));
        }
        if add.len() > mail::MAX_LABELS_PER_MESSAGE {
            return Err(Error::invalid(
                "too_many_labels",
                format!("at most {} labels per message", mail::MAX_LABELS_PER_MESSAGE),
            ));
        }
        if let (Some(limit), false) = (self.quotas.labels, add.is_empty()) {
            let (used, new) = self.store.mailbox_labels(&me.id, &add).await?;
            if new > 0 {
                quota::check("labels", "distinct labels in the mailbox", Some(limit), used, new)?;
            }
        }
        let patch = MessagePatch {
            add_labels: add,
            remove_labels: remove,
            unread: patch.unread,
        };
        let audit = actor.audit(
            self.clock.now(),
            "mail.update",
            Some(id.to_string()),
            serde_json::json!({ "add_labels": patch.add_labels, "remove_labels": patch.remove_labels, "unread": patch.unread }),
        );
        self.store.update_message(&me.id, &id, patch, audit).await
    }

    pub async fn list_threads(&self, actor: &Actor, params: ListThreadsParams) -> Result<Page<ThreadSummary>> {
        let me = actor.require(Scope::MailRead)?;
        let query = ThreadQuery {
            unread_only: params.unread.unwrap_or(false),
            label: params.label.as_deref().map(mail::parse_label).transpose()?,
            before_seq: cursor(params.cursor.as_deref())?,
            limit: page_limit(params.limit)?,
        };
        Ok(page(self.store.list_threads(&me.id, query).await?))
    }

    pub async fn get_thread(&self, actor: &Actor, id: &str) -> Result<Thread> {
        let me = actor.require(Scope::MailRead)?;
        let id = ThreadId::parse(id)?;
        let audit = actor.audit(
            self.clock.now(),
            "mail.read_thread",
            Some(id.to_string()),
            serde_json::json!({}),
        );
        self.store.read_thread(&me.id, &id, audit).await
    }

    // ----- audit ----------------------------------------------------------------------

    pub async fn list_audit(&self, actor: &Actor, params: ListAuditParams) -> Result<Page<AuditRecord>> {
        let asked = params.identity.as_deref().map(IdentityId::parse).transpose()?;
        let actor_identity_id = match actor.identity() {
            None => asked,
            Some(me) => {
                if asked.as_ref().is_some_and(|a| a != &me.id) {
                    return Err(Error::forbidden(
                        "own_audit_only",
                        "an identity key sees only its own audit rows",
                    ));
                }
                Some(me.id.clone())
            }
        };
        let ts = |s: Option<&str>, field: &str| -> Result<Option<Timestamp>> {
            s.map(|s| {
                Timestamp::parse_rfc3339(s).ok_or_else(|| {
                    Error::invalid("invalid_time", format!("`{field}` is not an RFC 3339 time"))
                        .with_hint("e.g. 2026-11-22T14:00:00Z")
                })
            })
            .transpose()
        };
        let outcome = params
            .outcome
            .as_deref()
            .map(|o| {
                crate::audit::Outcome::parse(o).ok_or_else(|| {
                    Error::invalid("invalid_outcome", format!("unknown outcome `{o}`"))
                        .with_hint("use ok, denied or error")
                })
            })
            .transpose()?;
        let query = AuditQuery {
            actor_identity_id,
            action: params.action.filter(|a| !a.is_empty()),
            outcome,
            since: ts(params.since.as_deref(), "since")?,
            until: ts(params.until.as_deref(), "until")?,
            before_seq: cursor(params.cursor.as_deref())?,
            after_seq: None,
            limit: page_limit(params.limit)?,
        };
        Ok(page(self.store.list_audit(query).await?))
    }

    fn require_operator(actor: &Actor, what: &str) -> Result<()> {
        if actor.is_operator() {
            Ok(())
        } else {
            Err(Error::forbidden(
                "operator_only",
                format!("{what} needs the operator key"),
            ))
        }
    }

    /// Rows after `after_seq`, oldest first (the whole chain, for export and verification).
    pub async fn audit_export(&self, actor: &Actor, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        Self::require_operator(actor, "exporting the whole audit log")?;
        self.store.audit_after(after_seq, limit.clamp(1, 10_000)).await
    }

    pub async fn audit_head(&self, actor: &Actor) -> Result<Option<ChainHead>> {
        Self::require_operator(actor, "reading the audit chain head")?;
        self.store.audit_head().await
    }

    /// Recomputes the whole chain on the server.
    pub async fn audit_verify(&self, actor: &Actor) -> Result<VerifyReport> {
        Self::require_operator(actor, "verifying the audit log")?;
        // Read the head first: rows appended while we read are after it and not checked.
        let head = self.store.audit_head().await?;
        let mut v = crate::audit::ChainVerifier::default();
        let mut after = 0;
        let end = head.as_ref().map_or(0, |h| h.seq);
        'outer: while after < end {
            let rows = self.store.audit_after(after, 1000).await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                if row.seq > end {
                    break 'outer;
                }
                if !v.push(row) {
                    break 'outer;
                }
                after = row.seq;
            }
        }
        Ok(v.finish(head))
    }
}

struct Draft {
    to: Vec<EmailAddress>,
    cc: Vec<EmailAddress>,
    bcc: Vec<EmailAddress>,
    subject: String,
    text: String,
    html: Option<String>,
    in_reply_to: Option<String>,
    references: Vec<String>,
}

fn parse_addresses(field: &str, list: &[String]) -> Result<Vec<EmailAddress>> {
    list.iter()
        .map(|a| {
            EmailAddress::parse(a).map_err(|e| match e {
                Error::Invalid(mut d) => {
                    d.message = format!("`{field}`: {}", d.message);
                    Error::Invalid(d)
                }
                other => other,
            })
        })
        .collect()
}

fn link(i: &Identity) -> ChainLink {
    ChainLink {
        kind: CreatorKind::Identity,
        identity_id: Some(i.id.clone()),
        name: Some(i.name.clone()),
        address: Some(i.address.clone()),
        created_with_key: i.created_by.key_id.clone(),
    }
}
