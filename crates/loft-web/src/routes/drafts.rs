//! `/v0/drafts`: the calling identity's drafts, and sending one.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use loft_core::drafts::Draft;
use loft_core::mail::Message;
use loft_core::service::{CreateDraftRequest, ListDraftsParams, Page, SendDraftRequest, UpdateDraftRequest};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::created;
use super::mail::idempotency_key;
use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, Auth, OptionalJson};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_draft, list_drafts))
        .routes(routes!(get_draft, update_draft, delete_draft))
        .routes(routes!(send_draft))
}

/// Start a draft (needs `mail:send`). Every field is optional; recipients are checked only
/// when it is sent. With `reply_to` and no recipients it is addressed as a reply.
#[utoipa::path(post, path = "/v0/drafts", tag = "mail", request_body = CreateDraftRequest,
    responses((status = 201, body = Draft), (status = 403, description = "the key lacks `mail:send`, or the `drafts` quota is used up", body = ErrorBody),
        (status = 404, description = "`reply_to` is not a message in your mailbox", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_draft(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppJson(req): AppJson<CreateDraftRequest>,
) -> ApiResult<Response> {
    Ok(created(s.loft.create_draft(&actor, req).await?))
}

/// The caller's drafts, newest first (needs `mail:read`).
#[utoipa::path(get, path = "/v0/drafts", tag = "mail", params(ListDraftsParams),
    responses((status = 200, body = Page<Draft>), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_drafts(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppQuery(params): AppQuery<ListDraftsParams>,
) -> ApiResult<Json<Page<Draft>>> {
    Ok(Json(s.loft.list_drafts(&actor, params).await?))
}

/// One draft (needs `mail:read`).
#[utoipa::path(get, path = "/v0/drafts/{id}", tag = "mail",
    params(("id" = String, Path, description = "draft id (`drf_...`)", pattern = r"^drf_[a-z2-7]{1,64}$")),
    responses((status = 200, body = Draft), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn get_draft(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<Draft>> {
    Ok(Json(s.loft.get_draft(&actor, &id).await?))
}

/// Change a draft: only the fields given (needs `mail:send`).
#[utoipa::path(patch, path = "/v0/drafts/{id}", tag = "mail", request_body = UpdateDraftRequest,
    params(("id" = String, Path, description = "draft id (`drf_...`)", pattern = r"^drf_[a-z2-7]{1,64}$")),
    responses((status = 200, body = Draft), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update_draft(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<UpdateDraftRequest>,
) -> ApiResult<Json<Draft>> {
    Ok(Json(s.loft.update_draft(&actor, &id, req).await?))
}

/// Delete a draft (needs `mail:send`).
#[utoipa::path(delete, path = "/v0/drafts/{id}", tag = "mail",
    params(("id" = String, Path, description = "draft id (`drf_...`)", pattern = r"^drf_[a-z2-7]{1,64}$")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn delete_draft(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<StatusCode> {
    s.loft.delete_draft(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a draft exactly as `POST /v0/messages/send` (or, with `reply_to`, a reply) would send
/// its content: the same checks, oversight gate and quotas. The draft is deleted with the
/// send, in one transaction. The body may be left out.
#[utoipa::path(post, path = "/v0/drafts/{id}/send", tag = "mail", request_body(content = SendDraftRequest, description = "optional"),
    params(("id" = String, Path, description = "draft id (`drf_...`)", pattern = r"^drf_[a-z2-7]{1,64}$"),
        ("Idempotency-Key" = Option<String>, Header, description = "the same as the body's `idempotency_key`")),
    responses(
        (status = 201, description = "the sender's copy, as a send returns it (status `pending_approval` when held)", body = Message),
        (status = 403, description = "the key lacks `mail:send`, or the sender's mode or a freeze forbids sending", body = ErrorBody),
        (status = 404, description = "no such draft (or it was sent or deleted already)", body = ErrorBody),
        (status = 409, description = "the idempotency key was used for a different request, or the message the draft answers was deleted for ever (`reply_to_deleted`)", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn send_draft(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    OptionalJson(mut req): OptionalJson<SendDraftRequest>,
) -> ApiResult<Response> {
    req.idempotency_key = idempotency_key(&headers, req.idempotency_key)?;
    Ok(created(s.loft.send_draft(&actor, &id, req).await?))
}
