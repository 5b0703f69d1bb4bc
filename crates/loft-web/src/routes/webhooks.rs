//! `/v0/webhooks`: endpoints that receive events as signed HTTP posts (Standard Webhooks),
//! their delivery log, replay and secret rotation.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use loft_core::service::{CreateWebhookRequest, ListWebhooksParams, Page, UpdateWebhookRequest};
use loft_core::webhooks::{WebhookCreated, WebhookDelivery, WebhookEndpoint};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, Auth};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_webhook_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(replay_delivery))
}

/// Register an endpoint. An identity key registers for its own events (of the types its
/// scopes let it see); the operator for everyone's, or one identity's (`identity`). The answer
/// carries the signing secret (`whsec_...`) this once.
#[utoipa::path(post, path = "/v0/webhooks", tag = "events", request_body = CreateWebhookRequest,
    responses((status = 201, body = WebhookCreated), (status = 401, body = ErrorBody),
        (status = 403, description = "a type the key may not see (`missing_scope`), another identity's events (`operator_only`), or a target the egress policy refuses (`egress_denied`)", body = ErrorBody),
        (status = 404, description = "no such identity", body = ErrorBody),
        (status = 409, description = "too many endpoints", body = ErrorBody),
        (status = 422, description = "a bad URL, type or description", body = ErrorBody)))]
async fn create_webhook(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppJson(req): AppJson<CreateWebhookRequest>,
) -> ApiResult<Response> {
    Ok(super::created(s.loft.create_webhook(&actor, req).await?))
}

/// Endpoints, newest first: an identity key's own; the operator's view is every endpoint.
#[utoipa::path(get, path = "/v0/webhooks", tag = "events", params(ListWebhooksParams),
    responses((status = 200, body = Page<WebhookEndpoint>), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list_webhooks(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppQuery(params): AppQuery<ListWebhooksParams>,
) -> ApiResult<Json<Page<WebhookEndpoint>>> {
    Ok(Json(s.loft.list_webhooks(&actor, params).await?))
}

/// One endpoint (another identity's is a 404).
#[utoipa::path(get, path = "/v0/webhooks/{id}", tag = "events",
    params(("id" = String, Path, description = "webhook id (`whk_...`)", pattern = r"^whk_[a-z2-7]{1,64}$")),
    responses((status = 200, body = WebhookEndpoint), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_webhook(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<WebhookEndpoint>> {
    Ok(Json(s.loft.get_webhook(&actor, &id).await?))
}

/// Change an endpoint's URL, types, description, or pause and resume it (`enabled`).
#[utoipa::path(patch, path = "/v0/webhooks/{id}", tag = "events", request_body = UpdateWebhookRequest,
    params(("id" = String, Path, description = "webhook id (`whk_...`)", pattern = r"^whk_[a-z2-7]{1,64}$")),
    responses((status = 200, body = WebhookEndpoint), (status = 401, body = ErrorBody),
        (status = 403, description = "a type the key may not see, or a refused target", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "changed at the same moment", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update_webhook(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<UpdateWebhookRequest>,
) -> ApiResult<Json<WebhookEndpoint>> {
    Ok(Json(s.loft.update_webhook(&actor, &id, req).await?))
}

/// Remove an endpoint and its delivery log; answers it as it was.
#[utoipa::path(delete, path = "/v0/webhooks/{id}", tag = "events",
    params(("id" = String, Path, description = "webhook id (`whk_...`)", pattern = r"^whk_[a-z2-7]{1,64}$")),
    responses((status = 200, body = WebhookEndpoint), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn delete_webhook(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<WebhookEndpoint>> {
    Ok(Json(s.loft.delete_webhook(&actor, &id).await?))
}

/// A new signing secret, shown this once; the old one keeps signing beside it for 24 hours
/// (each delivery then carries both signatures).
#[utoipa::path(post, path = "/v0/webhooks/{id}/rotate-secret", tag = "events",
    params(("id" = String, Path, description = "webhook id (`whk_...`)", pattern = r"^whk_[a-z2-7]{1,64}$")),
    responses((status = 200, body = WebhookCreated), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn rotate_webhook_secret(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<WebhookCreated>> {
    Ok(Json(s.loft.rotate_webhook_secret(&actor, &id).await?))
}

/// The endpoint's delivery log, newest first: event, attempt, status code, duration, error.
#[utoipa::path(get, path = "/v0/webhooks/{id}/deliveries", tag = "events",
    params(("id" = String, Path, description = "webhook id (`whk_...`)", pattern = r"^whk_[a-z2-7]{1,64}$"), ListWebhooksParams),
    responses((status = 200, body = Page<WebhookDelivery>), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_deliveries(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
    AppQuery(params): AppQuery<ListWebhooksParams>,
) -> ApiResult<Json<Page<WebhookDelivery>>> {
    Ok(Json(s.loft.list_webhook_deliveries(&actor, &id, params).await?))
}

/// Post a logged delivery's event again now (same `webhook-id`, new timestamp and signature),
/// outside the endpoint's order; answers the new log entry.
#[utoipa::path(post, path = "/v0/webhooks/{id}/deliveries/{delivery_id}/replay", tag = "events",
    params(("id" = String, Path, description = "webhook id (`whk_...`)", pattern = r"^whk_[a-z2-7]{1,64}$"),
        ("delivery_id" = String, Path, description = "delivery id (`whd_...`)", pattern = r"^whd_[a-z2-7]{1,64}$")),
    responses((status = 200, body = WebhookDelivery), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn replay_delivery(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath((id, delivery)): AppPath<(String, String)>,
) -> ApiResult<Json<WebhookDelivery>> {
    Ok(Json(s.loft.replay_webhook_delivery(&actor, &id, &delivery).await?))
}
