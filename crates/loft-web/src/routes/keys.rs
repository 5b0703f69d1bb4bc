//! `/v0/keys` (the caller's own keys) and `/v0/identities/{id}/keys` (someone else's).

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use loft_core::identity::CreatedKey;
use loft_core::keys::KeyMeta;
use loft_core::service::CreateKeyRequest;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Items, created};
use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, Auth};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_own_keys, create_own_key))
        .routes(routes!(rotate_own_key))
        .routes(routes!(revoke_key))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(rotate_key))
}

/// The calling identity's keys (metadata only; secrets are never shown again). Needs `keys:manage`.
/// An identity key only: the operator key is no identity and is answered 422
/// `identity_required` (it lists an identity's keys at `/v0/identities/{id}/keys`).
#[utoipa::path(get, path = "/v0/keys", tag = "keys", responses((status = 200, body = Items<KeyMeta>),
    (status = 422, description = "`identity_required`: called with the operator key", body = ErrorBody)))]
async fn list_own_keys(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<Items<KeyMeta>>> {
    Ok(Json(Items {
        items: s.loft.list_keys(&actor, None).await?,
    }))
}

/// Mint an extra key for the calling identity, with at most the caller's scopes and lifetime.
/// Needs `keys:manage`; the new key holds `keys:manage` only when it is named in `scopes`. An
/// identity key only: the operator key is answered 422 `identity_required` (it mints keys at
/// `/v0/identities/{id}/keys`).
#[utoipa::path(post, path = "/v0/keys", tag = "keys", request_body = CreateKeyRequest,
    responses((status = 201, body = CreatedKey), (status = 403, body = ErrorBody),
        (status = 422, description = "invalid input, or `identity_required`: called with the operator key", body = ErrorBody)))]
async fn create_own_key(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppJson(req): AppJson<CreateKeyRequest>,
) -> ApiResult<Response> {
    Ok(created(s.loft.create_key(&actor, None, req).await?))
}

/// Replace the calling key: the new key works at once and the calling key stops working.
#[utoipa::path(post, path = "/v0/keys/rotate", tag = "keys", responses((status = 200, body = CreatedKey)))]
async fn rotate_own_key(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<CreatedKey>> {
    Ok(Json(s.loft.rotate_key(&actor, None).await?))
}

/// Revoke one key. Any key may revoke itself; another key needs `keys:manage`.
#[utoipa::path(delete, path = "/v0/keys/{key_id}", tag = "keys",
    params(("key_id" = String, Path, description = "key id (`key_...`)", pattern = r"^key_[a-z2-7]{1,64}$")),
    responses((status = 200, body = KeyMeta), (status = 404, body = ErrorBody)))]
async fn revoke_key(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(key_id): AppPath<String>,
) -> ApiResult<Json<KeyMeta>> {
    Ok(Json(s.loft.revoke_key(&actor, &key_id).await?))
}

/// An identity's keys (operator, or a parent holding `identity:create` and `keys:manage`).
#[utoipa::path(get, path = "/v0/identities/{id}/keys", tag = "keys",
    params(("id" = String, Path, description = "identity id", pattern = r"^idt_[a-z2-7]{1,64}$")),
    responses((status = 200, body = Items<KeyMeta>), (status = 404, body = ErrorBody)))]
async fn list_keys(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<Items<KeyMeta>>> {
    Ok(Json(Items {
        items: s.loft.list_keys(&actor, Some(&id)).await?,
    }))
}

/// Mint an extra key for an identity.
#[utoipa::path(post, path = "/v0/identities/{id}/keys", tag = "keys", request_body = CreateKeyRequest,
    params(("id" = String, Path, description = "identity id", pattern = r"^idt_[a-z2-7]{1,64}$")),
    responses((status = 201, body = CreatedKey), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_key(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<CreateKeyRequest>,
) -> ApiResult<Response> {
    Ok(created(s.loft.create_key(&actor, Some(&id), req).await?))
}

/// Rotate an identity's primary key: the new key works at once, the old one stops. Only the
/// operator, or that primary key itself, may.
#[utoipa::path(post, path = "/v0/identities/{id}/keys/rotate", tag = "keys",
    params(("id" = String, Path, description = "identity id", pattern = r"^idt_[a-z2-7]{1,64}$")),
    responses((status = 200, body = CreatedKey), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn rotate_key(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<CreatedKey>> {
    Ok(Json(s.loft.rotate_key(&actor, Some(&id)).await?))
}
