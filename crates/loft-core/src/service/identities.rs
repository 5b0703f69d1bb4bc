//! Identities and their delegation chain: create, see, change and revoke, and `whoami`.

use serde::{Deserialize, Serialize};

use super::{Actor, Loft, Page, Principal, cursor, page, page_limit};
use crate::address::{self, EmailAddress};
use crate::identity::{
    self, ChainLink, CreatedIdentity, Creator, CreatorKind, Identity, IdentityStatus, NewIdentity, WhoAmI,
};
use crate::ids::IdentityId;
use crate::keys::{ApiKey, KeyKind, KeyMeta, Scope, ScopeSet, StoredKey};
use crate::oversight::OversightMode;
use crate::quota;
use crate::store::{IdentityQuery, IdentityUpdate};
use crate::{Error, Result};

/// `POST /v0/identities`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateIdentityRequest {
    /// What the agent is called, e.g. `researcher`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub display_name: Option<String>,
    /// The part of the address before `@`; default: a slug of the name plus a random suffix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_part: Option<String>,
    /// Default: mail:read, mail:send, mail:manage, keys:manage, vault:read, vault:write.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<crate::keys::Scope>>))]
    pub scopes: Option<Vec<String>>,
    /// `read_only`, `gated_all`, `gated_send`, `monitored` or `autonomous`. Default: the
    /// server's default (`gated_send` unless the operator set another), and never more
    /// trusting than the creating identity's own mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oversight_mode: Option<OversightMode>,
}

/// `PATCH /v0/identities/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateIdentityRequest {
    /// An empty string clears it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<crate::keys::Scope>>))]
    pub scopes: Option<Vec<String>>,
    /// The oversight mode (operator only). An identity may only make the identities below it
    /// less trusted, never more than itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oversight_mode: Option<OversightMode>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokedIdentities {
    /// Every identity revoked by this call: the one named and all below it.
    pub revoked: Vec<IdentityId>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListIdentitiesParams {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_revoked: bool,
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl Loft {
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
        let oversight_mode = self.mode_for_new(actor, req.oversight_mode, &scopes)?;
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
                oversight_mode,
                status: IdentityStatus::Active,
                paused_at: None,
                caps: crate::caps::IdentityCaps::default(),
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
                    "oversight_mode": oversight_mode,
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
    pub(super) async fn visible_identity(&self, actor: &Actor, id: &IdentityId) -> Result<Identity> {
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
    pub(super) async fn managed_identity(&self, actor: &Actor, id: &IdentityId, allow_self: bool) -> Result<Identity> {
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
        // Below the operator, modes only ever tighten: no identity makes another more trusted
        // than it is itself, or than the target was.
        if let (Some(mode), Some(me)) = (req.oversight_mode, actor.identity())
            && (mode > me.oversight_mode || mode > target.oversight_mode)
        {
            return Err(Error::forbidden(
                "operator_only",
                format!(
                    "only the operator can make an identity more trusted (from {} to {mode})",
                    target.oversight_mode
                ),
            )
            .with_hint("ask the operator: `loft identity mode ID MODE`"));
        }
        // A reviewer (holding `oversight`) stays read_only, whichever of the two changes.
        let final_scopes = scopes.as_ref().unwrap_or(&target.scopes);
        let final_mode = req.oversight_mode.unwrap_or(target.oversight_mode);
        if final_scopes.contains(Scope::Oversight) && final_mode != OversightMode::ReadOnly {
            return Err(reviewer_mode());
        }
        if display_name.is_none() && scopes.is_none() && req.oversight_mode.is_none() {
            return Err(Error::invalid("empty_update", "nothing to change")
                .with_hint("send `display_name`, `scopes` and/or `oversight_mode`"));
        }
        if !target.is_active() {
            return Err(Error::conflict(
                "identity_revoked",
                "a revoked identity cannot be changed",
            ));
        }
        // The operator setting a mode answers the identity's mode request (granting it, or
        // choosing otherwise): the request is cleared with the change.
        let answered = if actor.is_operator() && req.oversight_mode.is_some() {
            self.store.get_mode_request(&id).await?
        } else {
            None
        };
        let audit = actor.audit(
            self.clock.now(),
            "identity.update",
            Some(id.to_string()),
            serde_json::json!({
                "display_name": display_name, "scopes": scopes,
                "oversight_mode": req.oversight_mode, "previous_oversight_mode": req.oversight_mode.map(|_| target.oversight_mode),
                "mode_request": answered.as_ref().map(|r| serde_json::json!({
                    "mode": r.mode, "status": r.status, "granted": Some(r.mode) == req.oversight_mode,
                })),
            }),
        );
        let update = IdentityUpdate {
            display_name,
            scopes,
            oversight_mode: req.oversight_mode,
            paused_at: None,
            caps: None,
            clear_mode_request: answered.is_some(),
        };
        self.store.update_identity(&id, update, audit).await
    }

    pub async fn revoke_identity(&self, actor: &Actor, id: &str) -> Result<RevokedIdentities> {
        let id = IdentityId::parse(id)?;
        self.managed_identity(actor, &id, true).await?;
        actor.require_keys_manage()?;
        let now = self.clock.now();
        let audit = actor
            .audit(now, "identity.revoke", Some(id.to_string()), serde_json::json!({}))
            .with_event(crate::events::NewEvent::new(
                crate::events::EventKind::IdentityRevoked,
                &id,
                serde_json::json!({ "identity_id": id, "with_descendants": true }),
            ));
        let revoked = self.store.revoke_identity(&id, now, audit).await?;
        // Streams of the revoked identities end: their keys no longer authenticate.
        self.wake(&revoked);
        Ok(RevokedIdentities { revoked })
    }

    pub async fn whoami(&self, actor: &Actor) -> Result<WhoAmI> {
        self.whoami_shared(actor).await.map(super::Shared::into_inner)
    }

    /// [`Self::whoami`], shared: an identity's answer is kept by `service/reads.rs` (with its
    /// JSON) while nothing is written, unless it counts sending usage (which the clock
    /// changes).
    pub async fn whoami_shared(&self, actor: &Actor) -> Result<std::sync::Arc<super::Shared<WhoAmI>>> {
        match &actor.principal {
            Principal::Operator => Ok(std::sync::Arc::new(super::Shared::new(WhoAmI {
                kind: CreatorKind::Operator,
                identity: None,
                address: None,
                scopes: actor.scopes(),
                key_id: actor.key_id(),
                key_expires_at: None,
                chain: vec![ChainLink::operator()],
                mode_request: None,
                sending: None,
            }))),
            Principal::Identity { identity, key, scopes } => self.identity_whoami(identity, key, scopes).await,
        }
    }

    /// An identity's `whoami`, built from its key, its identity and its context as read under
    /// one epoch; kept by key only while it counts no usage, and used again only for the same
    /// identity, scopes and expiry as the caller's (which authentication read, perhaps before
    /// the epoch).
    async fn identity_whoami(
        &self,
        identity: &Identity,
        key: &crate::keys::KeyMeta,
        scopes: &crate::keys::ScopeSet,
    ) -> Result<std::sync::Arc<super::Shared<WhoAmI>>> {
        let build = async {
            let context = self.whoami_context(identity).await?;
            let mut chain = vec![link(identity)];
            chain.extend(context.ancestors.iter().map(link));
            chain.push(ChainLink::operator());
            let (sending, counted) = self.sending_status_counted(identity, context.instance_caps).await?;
            let me = WhoAmI {
                kind: CreatorKind::Identity,
                address: Some(identity.address.clone()),
                identity: Some(identity.clone()),
                scopes: scopes.clone(),
                key_id: key.id.to_string(),
                key_expires_at: key.expires_at,
                chain,
                mode_request: context.mode_request.clone(),
                sending: Some(sending),
            };
            Ok((super::Shared::new(me), !counted))
        };
        let same_caller = |w: &super::Shared<WhoAmI>| {
            w.identity.as_ref() == Some(identity) && w.scopes == *scopes && w.key_expires_at == key.expires_at
        };
        self.kept_for(&self.reads.whoamis, key.id.clone(), same_caller, build)
            .await
    }
}

/// A reviewer (an identity holding `oversight`) sends nothing; its mode says so.
fn reviewer_mode() -> Error {
    Error::invalid(
        "reviewer_mode",
        "an identity holding `oversight` is a reviewer and must be in oversight mode read_only",
    )
    .with_hint("set `oversight_mode` to read_only (reviewers never send mail)")
}

impl Loft {
    /// The mode of a new identity: the one asked for, else the server's default; a creating
    /// identity's children are never more trusted than it is; reviewers are `read_only`.
    fn mode_for_new(&self, actor: &Actor, asked: Option<OversightMode>, scopes: &ScopeSet) -> Result<OversightMode> {
        let reviewer = scopes.contains(Scope::Oversight);
        let mode = match asked {
            Some(m) => m,
            None if reviewer => OversightMode::ReadOnly,
            None => self.config.default_oversight_mode,
        };
        if reviewer && mode != OversightMode::ReadOnly {
            return Err(reviewer_mode());
        }
        match actor.identity() {
            Some(parent) if mode > parent.oversight_mode => match asked {
                None => Ok(parent.oversight_mode),
                Some(_) => Err(Error::forbidden(
                    "mode_escalation",
                    format!(
                        "a sub-identity cannot be more trusted than its creator: asked for {mode}, the creator is {}",
                        parent.oversight_mode
                    ),
                )
                .with_hint("omit `oversight_mode`, or ask the operator")),
            },
            _ => Ok(mode),
        }
    }
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
