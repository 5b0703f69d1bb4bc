//! Health, and JSON answers for unknown routes and methods.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` when the server can reach its database.
    pub status: String,
    pub version: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
}

/// Liveness and readiness: answers without a key.
#[utoipa::path(get, path = "/v0/health", tag = "meta", security(()),
    responses((status = 200, body = Health), (status = 503, body = crate::error::ErrorBody)))]
async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.loft.store().audit_head().await?;
    Ok(Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        backend: state.loft.store().backend().into(),
    }))
}

pub async fn no_route(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!("there is no route {}", uri.path()),
    )
    .hint("the API lives under /v0; its OpenAPI document is at /v0/openapi.json")
}

pub async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept this method", uri.path()),
    )
    .hint("see /v0/openapi.json for the methods of each route")
}
