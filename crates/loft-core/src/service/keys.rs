//! API keys: minting, rotating, listing and revoking, under the one minting rule
//! ([`MintCeiling`]).

use serde::{Deserialize, Serialize};

use super::{Actor, Loft, Principal};
use crate::identity::{CreatedKey, Identity};
use crate::ids::{IdentityId, KeyId};
use crate::keys::{ApiKey, KeyKind, KeyMeta, Scope, ScopeSet, StoredKey};
use crate::quota;
use crate::time::Timestamp;
use crate::{Error, Result};

/// The one rule of every key-minting path (a key created, a key rotated, a sub-identity's
/// primary key, and any path added later): the new key never holds a scope the minting key
/// lacks, and never expires later than the minting key. The operator's ceiling is everything,
/// never expiring.
#[derive(Debug, Clone)]
pub(super) struct MintCeiling {
    pub(super) scopes: ScopeSet,
    pub(super) expires_at: Option<Timestamp>,
}

impl MintCeiling {
    /// Refuses `scopes` and `expires_at` unless both are within the ceiling; `what` names the
    /// thing being minted in the error.
    pub(super) fn check(&self, what: &str, scopes: &ScopeSet, expires_at: Option<Timestamp>) -> Result<()> {
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
// The OpenAPI bound on `expires_in_seconds` below is a literal: keep them equal.
const _: () = assert!(MAX_KEY_LIFETIME_SECS == 316_224_000);

/// `POST /v0/keys` and `POST /v0/identities/{id}/keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// Default: the scopes of the key making the request (or of the identity, for the operator).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<crate::keys::Scope>>))]
    pub scopes: Option<Vec<String>>,
    /// Lifetime in seconds from now, at most ten years.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 316_224_000))]
    pub expires_in_seconds: Option<i64>,
    /// At most 64 printable characters (no control characters) once trimmed; blank is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::wire::openapi::key_label))]
    pub label: Option<String>,
}

impl Loft {
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
}
