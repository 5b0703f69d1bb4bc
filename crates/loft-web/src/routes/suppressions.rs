//! `/v0/suppressions`: the addresses whose servers refused mail for good (a hard bounce of
//! outbound SMTP delivery); sends to them are refused until the operator lifts them.

use axum::Json;
use axum::extract::State;
use loft_core::delivery::Suppression;
use loft_core::service::{ListSuppressionsParams, Page};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppPath, AppQuery, Auth};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_suppressions))
        .routes(routes!(remove_suppression))
}

/// The suppression list (operator), in address order: each address with the remote reply that
/// refused it, the identity whose mail bounced and that mail.
#[utoipa::path(get, path = "/v0/suppressions", tag = "mail", params(ListSuppressionsParams),
    responses((status = 200, body = Page<Suppression>), (status = 401, body = ErrorBody),
        (status = 403, description = "not the operator", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list_suppressions(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppQuery(params): AppQuery<ListSuppressionsParams>,
) -> ApiResult<Json<Page<Suppression>>> {
    Ok(Json(s.loft.list_suppressions(&actor, params).await?))
}

/// Lift a suppression (operator): mail to the address is accepted again. Answers the entry as
/// it was.
#[utoipa::path(delete, path = "/v0/suppressions/{address}", tag = "mail",
    params(("address" = String, Path, description = "the suppressed address", max_length = 254)),
    responses((status = 200, body = Suppression), (status = 401, body = ErrorBody),
        (status = 403, description = "not the operator", body = ErrorBody),
        (status = 404, description = "the address is not on the list", body = ErrorBody),
        (status = 422, description = "not an email address", body = ErrorBody)))]
async fn remove_suppression(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(address): AppPath<String>,
) -> ApiResult<Json<Suppression>> {
    Ok(Json(s.loft.remove_suppression(&actor, &address).await?))
}
