//! `/v0/audit`: listing, export, chain head and server-side verification.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use loft_core::audit::{AuditRecord, ChainHead, VerifyReport};
use loft_core::service::{AuditExportParams, ListAuditParams, Page};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppQuery, Auth};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit))
        .routes(routes!(export_audit))
        .routes(routes!(audit_head))
        .routes(routes!(verify_audit))
}

/// Audit rows, newest first. Identity keys see only rows they caused.
#[utoipa::path(get, path = "/v0/audit", tag = "audit", params(ListAuditParams),
    responses((status = 200, body = Page<AuditRecord>), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_audit(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppQuery(params): AppQuery<ListAuditParams>,
) -> ApiResult<Json<Page<AuditRecord>>> {
    Ok(Json(s.loft.list_audit(&actor, params).await?))
}

/// Rows oldest first as JSON lines (operator only): the input of `loft audit verify`.
#[utoipa::path(get, path = "/v0/audit/export", tag = "audit", params(AuditExportParams),
    responses((status = 200, content_type = "application/x-ndjson", body = String), (status = 403, body = ErrorBody)))]
async fn export_audit(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppQuery(p): AppQuery<AuditExportParams>,
) -> ApiResult<Response> {
    let rows = s.loft.audit_export(&actor, p.after, p.limit.unwrap_or(1000)).await?;
    let mut body = String::new();
    for row in rows {
        body.push_str(&serde_json::to_string(&row).map_err(loft_core::Error::internal)?);
        body.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// The last row of the chain (operator only); `null` when the log is empty.
#[utoipa::path(get, path = "/v0/audit/head", tag = "audit",
    responses((status = 200, body = Option<ChainHead>), (status = 403, body = ErrorBody)))]
async fn audit_head(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<Option<ChainHead>>> {
    Ok(Json(s.loft.audit_head(&actor).await?))
}

/// Recompute the whole chain on the server (operator only). `loft audit verify` does the same
/// on the client's machine from an export, without trusting the server.
#[utoipa::path(get, path = "/v0/audit/verify", tag = "audit",
    responses((status = 200, body = VerifyReport), (status = 403, body = ErrorBody)))]
async fn verify_audit(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<VerifyReport>> {
    Ok(Json(s.loft.audit_verify(&actor).await?))
}
