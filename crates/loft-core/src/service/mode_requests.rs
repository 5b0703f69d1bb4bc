//! Requests for another oversight mode: an agent asks (with a reason), only the operator
//! answers. Granting is setting the mode (`PATCH /v0/identities/{id}`, `loft identity mode`),
//! which clears the request; denying records a reason the agent reads in `whoami` until it asks
//! again. One request per identity: a new one replaces the last.

use serde::{Deserialize, Serialize};

use super::{Actor, Loft, Page, cursor, page, page_limit};
use crate::ids::IdentityId;
use crate::keys::Scope;
use crate::oversight::{ModeRequest, NewModeRequest, OversightMode};
use crate::{Error, Result, text};

/// `POST /v0/oversight/mode-request`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestModeRequest {
    /// The mode asked for (it must differ from the current one): `read_only`, `gated_all`,
    /// `gated_send`, `monitored` or `autonomous`.
    pub mode: OversightMode,
    /// Why, for the operator (1 to 1000 characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1000))]
    pub reason: String,
}

/// `POST /v0/oversight/mode-requests/{identity_id}/deny`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DenyModeRequest {
    /// Why not (required; the agent reads it).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1000))]
    pub reason: String,
}

/// `GET /v0/oversight/mode-requests`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListModeRequestsParams {
    /// 1 to 200, default 50.
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The longest reason for a mode request or its denial.
pub const MAX_MODE_REASON: usize = 1000;

impl Loft {
    /// An identity asks the operator for another oversight mode (any identity key; no scope
    /// needed). Replaces its previous request, open or denied.
    pub async fn request_mode(&self, actor: &Actor, req: RequestModeRequest) -> Result<ModeRequest> {
        let Some(me) = actor.identity() else {
            return Err(Error::forbidden(
                "identity_key_required",
                "an oversight mode request is made by an identity for itself; the operator sets modes directly",
            )
            .with_hint("the operator uses `loft identity mode ID MODE`"));
        };
        let reason = mode_reason(&req.reason, "a mode request")?;
        if req.mode == me.oversight_mode {
            return Err(Error::invalid(
                "mode_unchanged",
                format!("{} is already in oversight mode {}", me.address, me.oversight_mode),
            )
            .with_hint("ask for another mode, or nothing"));
        }
        if me.scopes.contains(Scope::Oversight) {
            return Err(Error::invalid(
                "reviewer_mode",
                "an identity holding `oversight` is a reviewer and stays in oversight mode read_only",
            ));
        }
        let now = self.clock.now();
        let previous = self.store.get_mode_request(&me.id).await?;
        let audit = actor.audit(
            now,
            "mode_request.create",
            Some(me.id.to_string()),
            serde_json::json!({
                "mode": req.mode, "current_mode": me.oversight_mode, "reason": reason,
                "replaces": previous.map(|p| serde_json::json!({"mode": p.mode, "status": p.status})),
            }),
        );
        let new = NewModeRequest {
            identity_id: me.id.clone(),
            mode: req.mode,
            reason,
            requested_at: now,
        };
        self.store.put_mode_request(new, audit).await
    }

    /// The open mode requests (operator only; reviewers decide on mail, not on trust).
    pub async fn list_mode_requests(&self, actor: &Actor, params: ListModeRequestsParams) -> Result<Page<ModeRequest>> {
        Self::require_operator(actor, "listing mode requests")?;
        let before = cursor(params.cursor.as_deref())?;
        Ok(page(
            self.store.list_mode_requests(before, page_limit(params.limit)?).await?,
        ))
    }

    /// Denies an identity's open mode request with a reason it reads (operator only).
    pub async fn deny_mode_request(&self, actor: &Actor, identity: &str, req: DenyModeRequest) -> Result<ModeRequest> {
        Self::require_operator(actor, "denying a mode request")?;
        let id = IdentityId::parse(identity)?;
        let reason = mode_reason(&req.reason, "a denial")?;
        let now = self.clock.now();
        let open = self
            .store
            .get_mode_request(&id)
            .await?
            .ok_or_else(|| Error::not_found("mode_request"))?;
        let audit = actor.audit(
            now,
            "mode_request.deny",
            Some(id.to_string()),
            serde_json::json!({ "mode": open.mode, "current_mode": open.current_mode, "reason": reason }),
        );
        self.store
            .deny_mode_request(&id, now, reason, audit)
            .await
            .map_err(|e| match e {
                Error::Conflict(d) if d.code == "mode_request_not_open" => Error::Conflict(d)
                    .with_hint("it was denied already; the identity sees the denial until it asks again"),
                other => other,
            })
    }
}

fn mode_reason(reason: &str, what: &str) -> Result<String> {
    let r = reason.trim();
    if r.is_empty() || r.chars().count() > MAX_MODE_REASON {
        return Err(Error::invalid(
            "invalid_reason",
            format!("{what} needs a reason of 1 to {MAX_MODE_REASON} characters"),
        )
        .with_hint("say why, in a sentence or two"));
    }
    text::refuse_nul("reason", r)?;
    Ok(r.to_owned())
}
