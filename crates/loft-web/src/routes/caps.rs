//! Sending caps: per identity (`/v0/identities/{id}/caps`) and for the instance
//! (`/v0/instance/caps`). The operator sets them; a send over one is 429 `cap_reached`.

use axum::Json;
use axum::extract::State;
use loft_core::caps::{InstanceCapsStatus, SendingStatus};
use loft_core::service::{SetIdentityCapsRequest, SetInstanceCapsRequest};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, Auth};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_identity_caps, set_identity_caps))
        .routes(routes!(get_instance_caps, set_instance_caps))
}

/// An identity's sending caps and first-contact setting, the instance's caps, and what the
/// identity used of them (the operator, the identity itself, or an identity above it).
#[utoipa::path(get, path = "/v0/identities/{id}/caps", tag = "oversight",
    params(("id" = String, Path, description = "identity id", pattern = r"^idt_[a-z2-7]{1,64}$")),
    responses((status = 200, body = SendingStatus), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn get_identity_caps(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<SendingStatus>> {
    Ok(Json(s.loft.identity_caps(&actor, &id).await?))
}

/// Set an identity's caps (`null` removes one, a field left out is kept) and first-contact
/// setting (operator; audited as `identity.caps`).
#[utoipa::path(put, path = "/v0/identities/{id}/caps", tag = "oversight", request_body = SetIdentityCapsRequest,
    params(("id" = String, Path, description = "identity id", pattern = r"^idt_[a-z2-7]{1,64}$")),
    responses((status = 200, body = SendingStatus), (status = 401, body = ErrorBody),
        (status = 403, description = "not the operator", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "revoked", body = ErrorBody),
        (status = 422, description = "a cap out of range, or nothing to change", body = ErrorBody)))]
async fn set_identity_caps(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<SetIdentityCapsRequest>,
) -> ApiResult<Json<SendingStatus>> {
    Ok(Json(s.loft.set_identity_caps(&actor, &id, req).await?))
}

/// The instance's caps, which count every identity's mail together, and what the instance
/// used of them (operator).
#[utoipa::path(get, path = "/v0/instance/caps", tag = "oversight",
    responses((status = 200, body = InstanceCapsStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn get_instance_caps(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<InstanceCapsStatus>> {
    Ok(Json(s.loft.instance_caps(&actor).await?))
}

/// Set the instance's caps (`null` removes one, a field left out is kept; operator; audited
/// as `instance.caps`).
#[utoipa::path(put, path = "/v0/instance/caps", tag = "oversight", request_body = SetInstanceCapsRequest,
    responses((status = 200, body = InstanceCapsStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, description = "a cap out of range, or nothing to change", body = ErrorBody)))]
async fn set_instance_caps(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppJson(req): AppJson<SetInstanceCapsRequest>,
) -> ApiResult<Json<InstanceCapsStatus>> {
    Ok(Json(s.loft.set_instance_caps(&actor, req).await?))
}
