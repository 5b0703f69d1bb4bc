//! `/v0/contacts`: an identity's contacts (mail exchanged) and address book (written by hand).

use axum::Json;
use axum::extract::State;
use loft_core::contacts::Contact;
use loft_core::service::{ContactParams, ListContactsParams, Page, UpsertContact};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, Auth};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_contacts, upsert_contact))
        .routes(routes!(get_contact, forget_contact))
}

/// The caller's contacts (needs `mail:read`; the operator names the identity): every address
/// it exchanged mail with or wrote down, in address order. `known` says whether mail was
/// exchanged, which is what first-contact gating looks at.
#[utoipa::path(get, path = "/v0/contacts", tag = "mail", params(ListContactsParams),
    responses((status = 200, body = Page<Contact>), (status = 401, body = ErrorBody),
        (status = 403, description = "the key lacks `mail:read`", body = ErrorBody),
        (status = 404, description = "no such identity, or another identity's (identity keys)", body = ErrorBody),
        (status = 422, description = "a bad filter or cursor; the operator did not name `identity`", body = ErrorBody)))]
async fn list_contacts(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppQuery(params): AppQuery<ListContactsParams>,
) -> ApiResult<Json<Page<Contact>>> {
    Ok(Json(s.loft.list_contacts(&actor, params).await?))
}

/// Write the address book entry of one address (needs `mail:manage`; the operator names the
/// identity): a field left out keeps its value, `""` clears a name or notes, `[]` the tags.
/// Writing an entry does not make an address known to first-contact gating: only mail does.
#[utoipa::path(post, path = "/v0/contacts", tag = "mail", request_body = UpsertContact,
    responses((status = 200, body = Contact), (status = 401, body = ErrorBody),
        (status = 403, description = "the key lacks `mail:manage`", body = ErrorBody),
        (status = 404, description = "no such identity, or another identity's (identity keys)", body = ErrorBody),
        (status = 409, description = "the address book is full, or the identity is revoked", body = ErrorBody),
        (status = 422, description = "a bad address, name, notes or tag", body = ErrorBody)))]
async fn upsert_contact(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppJson(req): AppJson<UpsertContact>,
) -> ApiResult<Json<Contact>> {
    Ok(Json(s.loft.upsert_contact(&actor, req).await?))
}

/// One contact (needs `mail:read`).
#[utoipa::path(get, path = "/v0/contacts/{address}", tag = "mail",
    params(("address" = String, Path, description = "the contact's email address"), ContactParams),
    responses((status = 200, body = Contact), (status = 401, body = ErrorBody),
        (status = 403, description = "the key lacks `mail:read`", body = ErrorBody),
        (status = 404, description = "no mail exchanged with this address and no entry for it", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn get_contact(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(address): AppPath<String>,
    AppQuery(params): AppQuery<ContactParams>,
) -> ApiResult<Json<Contact>> {
    Ok(Json(s.loft.get_contact(&actor, &address, params).await?))
}

/// Forget the address book entry of one address (needs `mail:manage`); answers the contact as
/// it was. The mail exchanged with the address stays recorded.
#[utoipa::path(delete, path = "/v0/contacts/{address}", tag = "mail",
    params(("address" = String, Path, description = "the contact's email address"), ContactParams),
    responses((status = 200, body = Contact), (status = 401, body = ErrorBody),
        (status = 403, description = "the key lacks `mail:manage`", body = ErrorBody),
        (status = 404, description = "no address book entry for this address", body = ErrorBody),
        (status = 409, description = "the identity is revoked", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn forget_contact(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(address): AppPath<String>,
    AppQuery(params): AppQuery<ContactParams>,
) -> ApiResult<Json<Contact>> {
    Ok(Json(s.loft.forget_contact(&actor, &address, params).await?))
}
