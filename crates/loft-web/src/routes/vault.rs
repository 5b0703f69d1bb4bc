//! `/v0/vault`: the calling identity's credential vault, and master key rotation (operator).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use loft_core::service::{
    BackupCode, BrokeredHttpRequest, BrokeredHttpResponse, CredentialView, GetCredentialParams, ListCredentialsParams,
    Page, RotationReport, StoreCredentialRequest, UpdateCredentialSchema,
};
use loft_core::vault::{CredentialMeta, TotpCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::created;
use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, Auth};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(store_credential, list_credentials))
        .routes(routes!(get_credential, update_credential, delete_credential))
        .routes(routes!(totp_code))
        .routes(routes!(totp_backup))
        .routes(routes!(brokered_http))
        .routes(routes!(rotate_master_key))
}

/// Store a credential. Short form `{"label": "crm", "value": "..."}` (an `api_key`); typed form
/// `{"name", "type", ...fields, "allowed_hosts", "inject"}`. Returns metadata only.
#[utoipa::path(post, path = "/v0/vault", tag = "vault", request_body = StoreCredentialRequest,
    responses(
        (status = 201, description = "the credential's metadata (never its secret)", body = CredentialMeta),
        (status = 403, description = "the key lacks `vault:write`", body = ErrorBody),
        (status = 409, description = "a credential of this name exists", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn store_credential(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppJson(req): AppJson<StoreCredentialRequest>,
) -> ApiResult<Response> {
    Ok(created(s.loft.vault_store(&actor, req).await?))
}

/// The caller's credentials, metadata only, newest first.
#[utoipa::path(get, path = "/v0/vault", tag = "vault", params(ListCredentialsParams),
    responses((status = 200, body = Page<CredentialMeta>), (status = 403, body = ErrorBody)))]
async fn list_credentials(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppQuery(params): AppQuery<ListCredentialsParams>,
) -> ApiResult<Json<Page<CredentialMeta>>> {
    Ok(Json(s.loft.vault_list(&actor, params).await?))
}

/// One credential's metadata; with `?reveal=true` and scope `vault:reveal`, its secret fields.
#[utoipa::path(get, path = "/v0/vault/{name}", tag = "vault", params(("name" = String, Path, description = "credential name: 1 to 64 of letters, digits, `.`, `_` and `-`, starting with a letter or digit", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"), GetCredentialParams),
    responses((status = 200, body = CredentialView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_credential(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(name): AppPath<String>,
    AppQuery(params): AppQuery<GetCredentialParams>,
) -> ApiResult<Json<CredentialView>> {
    Ok(Json(s.loft.vault_get(&actor, &name, params.reveal).await?))
}

/// Change the fields given (descriptive and/or secret); the name and type stay.
#[utoipa::path(patch, path = "/v0/vault/{name}", tag = "vault", request_body = UpdateCredentialSchema,
    params(("name" = String, Path, description = "credential name: 1 to 64 of letters, digits, `.`, `_` and `-`, starting with a letter or digit", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    responses((status = 200, body = CredentialMeta), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_credential(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(name): AppPath<String>,
    AppJson(req): AppJson<StoreCredentialRequest>,
) -> ApiResult<Json<CredentialMeta>> {
    Ok(Json(s.loft.vault_update(&actor, &name, req).await?))
}

/// Delete a credential.
#[utoipa::path(delete, path = "/v0/vault/{name}", tag = "vault", params(("name" = String, Path, description = "credential name: 1 to 64 of letters, digits, `.`, `_` and `-`, starting with a letter or digit", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_credential(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(name): AppPath<String>,
) -> ApiResult<StatusCode> {
    s.loft.vault_delete(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The current TOTP code of a totp credential, and the seconds it stays current.
#[utoipa::path(get, path = "/v0/vault/{name}/totp", tag = "vault", params(("name" = String, Path, description = "credential name: 1 to 64 of letters, digits, `.`, `_` and `-`, starting with a letter or digit", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    responses((status = 200, body = TotpCode), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn totp_code(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(name): AppPath<String>,
) -> ApiResult<Json<TotpCode>> {
    Ok(Json(s.loft.vault_totp(&actor, &name).await?))
}

/// Remove and return one backup code (two concurrent calls never get the same code).
#[utoipa::path(post, path = "/v0/vault/{name}/totp/backup", tag = "vault", params(("name" = String, Path, description = "credential name: 1 to 64 of letters, digits, `.`, `_` and `-`, starting with a letter or digit", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    responses((status = 200, body = BackupCode), (status = 404, body = ErrorBody),
        (status = 409, description = "no backup codes left", body = ErrorBody)))]
async fn totp_backup(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(name): AppPath<String>,
) -> ApiResult<Json<BackupCode>> {
    Ok(Json(s.loft.vault_totp_backup(&actor, &name).await?))
}

/// Make an HTTP request with the credential injected, to a host on its allow-list; redirects
/// are returned, never followed; every occurrence of the secret is redacted from the result.
#[utoipa::path(post, path = "/v0/vault/{name}/http", tag = "vault", request_body = BrokeredHttpRequest,
    params(("name" = String, Path, description = "credential name: 1 to 64 of letters, digits, `.`, `_` and `-`, starting with a letter or digit", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    responses((status = 200, body = BrokeredHttpResponse),
        (status = 403, description = "host not on the allow-list, refused by the egress policy, or scope missing", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 502, description = "the remote service failed or timed out (names the host only)", body = ErrorBody)))]
async fn brokered_http(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(name): AppPath<String>,
    AppJson(req): AppJson<BrokeredHttpRequest>,
) -> ApiResult<Json<BrokeredHttpResponse>> {
    Ok(Json(s.loft.vault_http(&actor, &name, req).await?))
}

/// Re-wrap every data key under the current master key (generating a new one when the keys
/// live in the data dir). Operator only; the server keeps serving.
#[utoipa::path(post, path = "/v0/vault/rotate-master-key", tag = "vault",
    responses((status = 200, body = RotationReport), (status = 403, body = ErrorBody)))]
async fn rotate_master_key(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<RotationReport>> {
    Ok(Json(s.loft.vault_rotate_master_key(&actor).await?))
}
