//! Route handlers, one module per area. Each handler authenticates, parses, calls one use
//! case and serialises the result; nothing else.

pub mod audit;
pub mod caps;
pub mod contacts;
pub mod domains;
pub mod drafts;
pub mod events;
pub mod identities;
pub mod keys;
pub mod mail;
pub mod meta;
pub mod oversight;
pub mod rules;
pub mod suppressions;
pub mod vault;
pub mod webhooks;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
pub use loft_core::service::Items;
use serde::Serialize;

/// `201 Created` with a JSON body.
pub(crate) fn created<T: Serialize>(value: T) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}
