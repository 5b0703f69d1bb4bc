//! Hosted mail domains (`/v0/domains`, operator only): add one (its DKIM keys generated, the
//! DNS records to publish answered), list, show, check what DNS publishes, remove.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use loft_core::domains::{AddDomainRequest, Domain, DomainCheck, DomainView};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Items, created};
use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, Auth};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_domains, add_domain))
        .routes(routes!(show_domain, remove_domain))
        .routes(routes!(check_domain))
}

/// Host a domain (operator): generates its DKIM keys (an ed25519 and an RSA-2048 selector,
/// private keys sealed by the vault keyring) and answers the DNS records to publish (MX, SPF,
/// DKIM per selector, DMARC), as a list and as a zone-file snippet. Audited as `domain.add`.
#[utoipa::path(post, path = "/v0/domains", tag = "domains", request_body = AddDomainRequest,
    responses((status = 201, body = DomainView), (status = 401, body = ErrorBody),
        (status = 403, description = "not the operator, or mail authentication is off", body = ErrorBody),
        (status = 409, description = "already hosted", body = ErrorBody),
        (status = 422, description = "not a valid domain", body = ErrorBody)))]
async fn add_domain(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppJson(req): AppJson<AddDomainRequest>,
) -> ApiResult<Response> {
    Ok(created(s.loft.add_domain(&actor, req).await?))
}

/// The hosted domains (operator): this server's own mail domain first (`default`), then the
/// others in name order, each with its DKIM selectors.
#[utoipa::path(get, path = "/v0/domains", tag = "domains",
    responses((status = 200, body = Items<Domain>), (status = 401, body = ErrorBody),
        (status = 403, description = "not the operator", body = ErrorBody)))]
async fn list_domains(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<Items<Domain>>> {
    Ok(Json(Items {
        items: s.loft.list_domains(&actor).await?,
    }))
}

/// One hosted domain with the DNS records to publish (operator).
#[utoipa::path(get, path = "/v0/domains/{name}", tag = "domains",
    params(("name" = String, Path, description = "the domain", max_length = 253)),
    responses((status = 200, body = DomainView), (status = 401, body = ErrorBody),
        (status = 403, description = "not the operator", body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show_domain(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(name): AppPath<String>,
) -> ApiResult<Json<DomainView>> {
    Ok(Json(s.loft.show_domain(&actor, &name).await?))
}

/// Stop hosting a domain and delete its DKIM keys (operator); answers the domain as it was.
/// This server's own mail domain cannot be removed (409 `default_domain`). Audited as
/// `domain.remove`.
#[utoipa::path(delete, path = "/v0/domains/{name}", tag = "domains",
    params(("name" = String, Path, description = "the domain", max_length = 253)),
    responses((status = 200, body = Domain), (status = 401, body = ErrorBody),
        (status = 403, description = "not the operator", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the server's own mail domain", body = ErrorBody)))]
async fn remove_domain(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(name): AppPath<String>,
) -> ApiResult<Json<Domain>> {
    Ok(Json(s.loft.remove_domain(&actor, &name).await?))
}

/// Resolve the records a domain should publish and say, per record, whether DNS has it
/// (`ok`), has none of its kind (`missing`), has another value (`different`), or did not
/// answer in time (`temperror`) (operator).
#[utoipa::path(post, path = "/v0/domains/{name}/check", tag = "domains",
    params(("name" = String, Path, description = "the domain", max_length = 253)),
    responses((status = 200, body = DomainCheck), (status = 401, body = ErrorBody),
        (status = 403, description = "not the operator, or mail authentication is off", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn check_domain(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(name): AppPath<String>,
) -> ApiResult<Json<DomainCheck>> {
    Ok(Json(s.loft.check_domain(&actor, &name).await?))
}
