//! `/v0/identities` and `/v0/whoami`.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use loft_core::identity::{CreatedIdentity, Identity, WhoAmI};
use loft_core::service::{
    ConsoleInviteLink, CreateIdentityRequest, ListIdentitiesParams, Page, RevokedIdentities, UpdateIdentityRequest,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::created;
use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, Auth};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_identity, list_identities))
        .routes(routes!(get_identity, update_identity))
        .routes(routes!(revoke_identity))
        .routes(routes!(console_invite))
        .routes(routes!(whoami))
}

/// Create an identity with its address and first API key (shown once).
///
/// With the operator key: any identity. With an identity key holding `identity:create`: a
/// sub-identity whose scopes are within the caller's.
#[utoipa::path(post, path = "/v0/identities", tag = "identities", request_body = CreateIdentityRequest,
    responses(
        (status = 201, body = CreatedIdentity),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "the address is taken", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_identity(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppJson(req): AppJson<CreateIdentityRequest>,
) -> ApiResult<Response> {
    Ok(created(s.loft.create_identity(&actor, req).await?))
}

/// List identities: all of them for the operator; an identity sees itself and those below it.
#[utoipa::path(get, path = "/v0/identities", tag = "identities", params(ListIdentitiesParams),
    responses((status = 200, body = Page<Identity>), (status = 401, body = ErrorBody)))]
async fn list_identities(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppQuery(params): AppQuery<ListIdentitiesParams>,
) -> ApiResult<Json<Page<Identity>>> {
    Ok(Json(s.loft.list_identities(&actor, params).await?))
}

/// One identity.
#[utoipa::path(get, path = "/v0/identities/{id}", tag = "identities",
    params(("id" = String, Path, description = "identity id (`idt_...`)", pattern = r"^idt_[a-z2-7]{1,64}$")),
    responses((status = 200, body = Identity), (status = 404, body = ErrorBody)))]
async fn get_identity(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<Identity>> {
    Ok(Json(s.loft.get_identity(&actor, &id).await?))
}

/// Change an identity's display name or scopes.
#[utoipa::path(patch, path = "/v0/identities/{id}", tag = "identities", request_body = UpdateIdentityRequest,
    params(("id" = String, Path, description = "identity id", pattern = r"^idt_[a-z2-7]{1,64}$")),
    responses((status = 200, body = Identity), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update_identity(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<UpdateIdentityRequest>,
) -> ApiResult<Json<Identity>> {
    Ok(Json(s.loft.update_identity(&actor, &id, req).await?))
}

/// Revoke an identity, every identity below it, and all their keys, at once.
#[utoipa::path(post, path = "/v0/identities/{id}/revoke", tag = "identities",
    params(("id" = String, Path, description = "identity id", pattern = r"^idt_[a-z2-7]{1,64}$")),
    responses((status = 200, body = RevokedIdentities), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_identity(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<RevokedIdentities>> {
    Ok(Json(s.loft.revoke_identity(&actor, &id).await?))
}

/// A one-time link for a reviewer to set their web console password (operator only; the
/// identity must hold `oversight`). Shown once; a new link replaces the previous one.
#[utoipa::path(post, path = "/v0/identities/{id}/console-invite", tag = "identities",
    params(("id" = String, Path, description = "identity id", pattern = r"^idt_[a-z2-7]{1,64}$")),
    responses((status = 201, body = ConsoleInviteLink), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "the identity is not a reviewer", body = ErrorBody)))]
async fn console_invite(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Response> {
    let invite = s.loft.console_invite(&actor, &id).await?;
    Ok(created(ConsoleInviteLink::from(invite)))
}

/// Who is calling: identity, address, scopes, key id, and the chain up to the operator.
#[utoipa::path(get, path = "/v0/whoami", tag = "identities",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
async fn whoami(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<axum::response::Response> {
    // An answer kept while nothing was written is served as the JSON it was serialised to once.
    Ok(crate::json_bytes(s.loft.whoami_shared(&actor).await?.json()?))
}
