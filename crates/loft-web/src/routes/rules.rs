//! `/v0/rules`: the operator's allow, block and hold rules for sending, receiving and replying.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use loft_core::rules::Rule;
use loft_core::service::{CreateRuleRequest, ListRulesParams, Page};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, Auth};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, add_rule))
        .routes(routes!(remove_rule))
}

/// Rules, newest first. The operator sees every rule, the instance rules (`instance=true`), or
/// the rules in effect for one identity (`identity`: its own and the instance's); an identity
/// key sees the rules in effect for itself, so that an agent can learn why it was refused.
#[utoipa::path(get, path = "/v0/rules", tag = "oversight", params(ListRulesParams),
    responses((status = 200, body = Page<Rule>), (status = 401, body = ErrorBody),
        (status = 404, description = "no such identity, or another identity's (identity keys)", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list_rules(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppQuery(params): AppQuery<ListRulesParams>,
) -> ApiResult<Json<Page<Rule>>> {
    Ok(Json(s.loft.list_rules(&actor, params).await?))
}

/// Add a rule (operator): for one identity or the whole instance, for `send`, `receive` or
/// `reply`, to `allow`, `block` or `hold` mail whose other party matches the pattern.
#[utoipa::path(post, path = "/v0/rules", tag = "oversight", request_body = CreateRuleRequest,
    responses((status = 201, body = Rule), (status = 401, body = ErrorBody),
        (status = 403, description = "not the operator", body = ErrorBody),
        (status = 404, description = "no such identity", body = ErrorBody),
        (status = 409, description = "the same rule exists, the identity is revoked, or too many rules", body = ErrorBody),
        (status = 422, description = "a bad pattern, scope or note; `hold` for `receive`", body = ErrorBody)))]
async fn add_rule(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppJson(req): AppJson<CreateRuleRequest>,
) -> ApiResult<Response> {
    Ok(super::created(s.loft.add_rule(&actor, req).await?))
}

/// Remove a rule (operator); answers the rule as it was.
#[utoipa::path(delete, path = "/v0/rules/{id}", tag = "oversight",
    params(("id" = String, Path, description = "rule id (`rul_...`)", pattern = r"^rul_[a-z2-7]{1,64}$")),
    responses((status = 200, body = Rule), (status = 401, body = ErrorBody),
        (status = 403, description = "not the operator", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove_rule(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<Rule>> {
    Ok(Json(s.loft.remove_rule(&actor, &id).await?))
}
