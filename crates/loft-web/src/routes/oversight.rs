//! `/v0/approvals`: the reviewers' queue of held mail (and their edits of it); the kill
//! switches; `/v0/oversight/mode-request(s)`: identities asking the operator for another mode.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use loft_core::identity::Identity;
use loft_core::oversight::{Approval, ModeRequest};
use loft_core::service::{
    ApprovalView, BatchDecision, ConfirmNoticeRequest, DecideRequest, DenyModeRequest, EditHeldMail, InstanceStatus,
    ListApprovalsParams, ListModeRequestsParams, NoticeSetting, Page, RejectRequest, RequestModeRequest,
    SetNoticeRequest,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::created;
use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, Auth};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_approvals))
        .routes(routes!(decide_many))
        .routes(routes!(get_approval))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(edit_approval))
        .routes(routes!(request_mode))
        .routes(routes!(list_mode_requests))
        .routes(routes!(deny_mode_request))
        .routes(routes!(pause_identity))
        .routes(routes!(resume_identity))
        .routes(routes!(instance_status))
        .routes(routes!(freeze))
        .routes(routes!(unfreeze))
        .routes(routes!(get_notices, set_notices))
        .routes(routes!(confirm_notices))
}

/// Held mail, newest first (reviewers: a key with `oversight`, or the operator).
#[utoipa::path(get, path = "/v0/approvals", tag = "oversight", params(ListApprovalsParams),
    responses((status = 200, body = Page<Approval>), (status = 401, body = ErrorBody),
        (status = 403, description = "the key lacks `oversight`", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_approvals(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppQuery(params): AppQuery<ListApprovalsParams>,
) -> ApiResult<Json<Page<Approval>>> {
    Ok(Json(s.loft.list_approvals(&actor, params).await?))
}

/// One held mail, whole, as it will be sent, with why it is held.
#[utoipa::path(get, path = "/v0/approvals/{id}", tag = "oversight",
    params(("id" = String, Path, description = "approval id (`apr_...`)", pattern = r"^apr_[a-z2-7]{1,64}$")),
    responses((status = 200, body = ApprovalView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_approval(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<ApprovalView>> {
    Ok(Json(s.loft.get_approval(&actor, &id).await?))
}

/// Approve held mail: it is sent now, once (a second decision gets 409).
#[utoipa::path(post, path = "/v0/approvals/{id}/approve", tag = "oversight",
    params(("id" = String, Path, description = "approval id (`apr_...`)", pattern = r"^apr_[a-z2-7]{1,64}$")),
    responses((status = 200, body = Approval), (status = 401, body = ErrorBody),
        (status = 403, description = "no `oversight`, or the reviewer composed the mail", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "already decided, expired, or edited while it was being approved", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn approve(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<Approval>> {
    Ok(Json(s.loft.approve(&actor, &id).await?))
}

/// Reject held mail, with a reason the agent reads; it is never sent.
#[utoipa::path(post, path = "/v0/approvals/{id}/reject", tag = "oversight", request_body = RejectRequest,
    params(("id" = String, Path, description = "approval id (`apr_...`)", pattern = r"^apr_[a-z2-7]{1,64}$")),
    responses((status = 200, body = Approval), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn reject(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<RejectRequest>,
) -> ApiResult<Json<Approval>> {
    Ok(Json(s.loft.reject(&actor, &id, req).await?))
}

/// Edit held mail before deciding (reviewers and the operator, never its composer; only while
/// pending): each field given replaces the mail's, checked as a send is. The sender's copy is
/// rewritten in place (same Message-ID), so the agent sees the mail as it will be sent and an
/// approval sends this version; the hold reasons are evaluated again. Audited with a diff, the
/// composer's vault values redacted.
#[utoipa::path(post, path = "/v0/approvals/{id}/edit", tag = "oversight", request_body = EditHeldMail,
    params(("id" = String, Path, description = "approval id (`apr_...`)", pattern = r"^apr_[a-z2-7]{1,64}$")),
    responses((status = 200, body = ApprovalView), (status = 401, body = ErrorBody),
        (status = 403, description = "no `oversight`, the editor composed the mail, or a quota", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "already decided, expired, edited meanwhile, or the sender was revoked",
            body = ErrorBody),
        (status = 422, description = "nothing to change, or the edited mail is not one Loft would send",
            body = ErrorBody)))]
async fn edit_approval(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<EditHeldMail>,
) -> ApiResult<Json<ApprovalView>> {
    Ok(Json(s.loft.edit_approval(&actor, &id, req).await?))
}

/// Ask the operator for another oversight mode, with a reason (any identity key; the mode must
/// differ from the current one). Replaces the identity's previous request; shown in whoami.
#[utoipa::path(post, path = "/v0/oversight/mode-request", tag = "oversight", request_body = RequestModeRequest,
    responses((status = 201, body = ModeRequest), (status = 401, body = ErrorBody),
        (status = 403, description = "the operator key (not an identity)", body = ErrorBody),
        (status = 422, description = "the same mode, no reason, or a reviewer", body = ErrorBody)))]
async fn request_mode(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppJson(req): AppJson<RequestModeRequest>,
) -> ApiResult<Response> {
    Ok(created(s.loft.request_mode(&actor, req).await?))
}

/// Open mode requests, newest first (operator). Grant one by setting the identity's mode
/// (`PATCH /v0/identities/{id}`), which clears it; or deny it.
#[utoipa::path(get, path = "/v0/oversight/mode-requests", tag = "oversight", params(ListModeRequestsParams),
    responses((status = 200, body = Page<ModeRequest>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_mode_requests(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppQuery(params): AppQuery<ListModeRequestsParams>,
) -> ApiResult<Json<Page<ModeRequest>>> {
    Ok(Json(s.loft.list_mode_requests(&actor, params).await?))
}

/// Deny an identity's open mode request with a reason it reads in whoami (operator).
#[utoipa::path(post, path = "/v0/oversight/mode-requests/{identity_id}/deny", tag = "oversight",
    request_body = DenyModeRequest,
    params(("identity_id" = String, Path, description = "identity id", pattern = r"^idt_[a-z2-7]{1,64}$")),
    responses((status = 200, body = ModeRequest), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "no request", body = ErrorBody),
        (status = 409, description = "already denied", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn deny_mode_request(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(identity_id): AppPath<String>,
    AppJson(req): AppJson<DenyModeRequest>,
) -> ApiResult<Json<ModeRequest>> {
    Ok(Json(s.loft.deny_mode_request(&actor, &identity_id, req).await?))
}

/// One decision (approve or reject) over several held mails; each succeeds or fails alone.
#[utoipa::path(post, path = "/v0/approvals/decide", tag = "oversight", request_body = DecideRequest,
    responses((status = 200, body = BatchDecision), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn decide_many(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppJson(req): AppJson<DecideRequest>,
) -> ApiResult<Json<BatchDecision>> {
    Ok(Json(s.loft.decide_many(&actor, req).await?))
}

/// Pause an identity at once, on every node (operator; the kill switch): its keys are refused
/// with 403 `identity_paused` until it is resumed; mail sent to it is delivered and kept.
#[utoipa::path(post, path = "/v0/identities/{id}/pause", tag = "oversight",
    params(("id" = String, Path, description = "identity id", pattern = r"^idt_[a-z2-7]{1,64}$")),
    responses((status = 200, body = Identity), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "revoked", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn pause_identity(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<Identity>> {
    Ok(Json(s.loft.set_paused(&actor, &id, true).await?))
}

/// Resume a paused identity (operator).
#[utoipa::path(post, path = "/v0/identities/{id}/resume", tag = "oversight",
    params(("id" = String, Path, description = "identity id", pattern = r"^idt_[a-z2-7]{1,64}$")),
    responses((status = 200, body = Identity), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "revoked", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn resume_identity(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<Identity>> {
    Ok(Json(s.loft.set_paused(&actor, &id, false).await?))
}

/// Whether outgoing mail is frozen (the operator, and reviewers: a freeze refuses their approvals).
#[utoipa::path(get, path = "/v0/instance", tag = "oversight",
    responses((status = 200, body = InstanceStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn instance_status(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<InstanceStatus>> {
    Ok(Json(s.loft.instance_status(&actor).await?))
}

/// Freeze all outgoing mail at once, on every node (operator; the kill switch): every send and
/// approval is refused with 403 `outgoing_frozen` until unfrozen.
#[utoipa::path(post, path = "/v0/instance/freeze", tag = "oversight",
    responses((status = 200, body = InstanceStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn freeze(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<InstanceStatus>> {
    Ok(Json(s.loft.set_frozen(&actor, true).await?))
}

/// Lift a freeze of outgoing mail (operator).
#[utoipa::path(post, path = "/v0/instance/unfreeze", tag = "oversight",
    responses((status = 200, body = InstanceStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn unfreeze(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<InstanceStatus>> {
    Ok(Json(s.loft.set_frozen(&actor, false).await?))
}

/// Where the calling reviewer's notices of held mail go (a reviewer: a key with `oversight`).
#[utoipa::path(get, path = "/v0/oversight/notices", tag = "oversight",
    responses((status = 200, body = NoticeSetting), (status = 401, body = ErrorBody),
        (status = 403, description = "not a reviewer (the operator has no notices)", body = ErrorBody)))]
async fn get_notices(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<NoticeSetting>> {
    Ok(Json(s.loft.held_mail_notice(&actor).await?))
}

/// Be told by mail when mail is held, or stop (`null`). Your own address here is used at once.
/// An outside address gets a code first (mail from your address, through the outbound queue);
/// it is used once `POST /v0/oversight/notices/confirm` brings the code back, and until then
/// the setting is unchanged (`pending` shows it). A notice names the held mail's subject,
/// sender, recipients and why it is held, and links to its console page (sign-in first);
/// never its body, never a link that decides. Audited as `console.notices`.
#[utoipa::path(put, path = "/v0/oversight/notices", tag = "oversight", request_body = SetNoticeRequest,
    responses((status = 200, body = NoticeSetting), (status = 401, body = ErrorBody),
        (status = 403, description = "not a reviewer (the operator has no notices), no outbound mail \
            (`outbound_not_configured`), outgoing mail frozen, the send rules keep the address out \
            (`notice_address_not_allowed`), or it is suppressed", body = ErrorBody),
        (status = 422, description = "not an address, another identity's address (`notice_address_not_yours`), \
            or at a hosted domain but no identity's (`notice_address_not_hosted`)", body = ErrorBody),
        (status = 429, description = "a code went out less than a minute ago", body = ErrorBody)))]
async fn set_notices(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppJson(req): AppJson<SetNoticeRequest>,
) -> ApiResult<Json<NoticeSetting>> {
    Ok(Json(s.loft.set_held_mail_notice(&actor, req.address.as_deref()).await?))
}

/// Confirm the pending outside address with the code mailed there: notices go there from now.
/// Five wrong codes, or 30 minutes, and a new code must be asked for.
#[utoipa::path(post, path = "/v0/oversight/notices/confirm", tag = "oversight", request_body = ConfirmNoticeRequest,
    responses((status = 200, body = NoticeSetting), (status = 401, body = ErrorBody),
        (status = 403, description = "not a reviewer", body = ErrorBody),
        (status = 409, description = "nothing waiting (`no_pending_address`), `code_expired`, or \
            `code_attempts_exhausted`", body = ErrorBody),
        (status = 422, description = "`wrong_code` (the message says how many tries are left)", body = ErrorBody)))]
async fn confirm_notices(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppJson(req): AppJson<ConfirmNoticeRequest>,
) -> ApiResult<Json<NoticeSetting>> {
    Ok(Json(s.loft.confirm_held_mail_notice(&actor, &req.code).await?))
}
