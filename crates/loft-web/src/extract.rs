//! Extractors that speak Loft's error format.
//!
//! - [`Auth`]: the bearer key, authenticated into an [`Actor`] (refusals are audited by core).
//! - [`AppJson`]: a JSON body. Accepted with `application/json`, any `+json` type, no
//!   Content-Type at all, and the `application/x-www-form-urlencoded` that `curl -d` sends by
//!   default (many users paste such commands). Unparseable JSON is 400 `malformed_json` with
//!   line and column; a body of the wrong shape (unknown or missing field, wrong type) is 422
//!   `invalid_body` naming the field; an oversized body is 413 `body_too_large`.
//! - [`AppQuery`]: query parameters, with unknown ones refused by name.
//! - [`AppPath`]: path parameters; a segment that does not decode (percent-encoded bytes that
//!   are not UTF-8) is 400 `invalid_path`, not the framework's plain text.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use loft_core::service::{Actor, RequestContext};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::{AppState, RequestId};

/// The authenticated caller.
pub struct Auth(pub Actor);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
        let bearer = match header {
            None => None,
            Some(h) => match h.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim()),
                _ => {
                    return Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthenticated",
                        "the Authorization header must use the Bearer scheme",
                    )
                    .hint("send `Authorization: Bearer <key>`"));
                }
            },
        };
        let ctx = RequestContext {
            request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
            remote_addr: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        };
        Ok(Self(state.loft.authenticate(bearer, ctx).await?))
    }
}

/// A JSON body, parsed with Loft's errors.
pub struct AppJson<T>(pub T);

fn json_content_type(req: &Request) -> Result<(), ApiError> {
    let Some(ct) = req.headers().get(CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    let ok = essence.is_empty()
        || essence == "application/json"
        || essence.ends_with("+json")
        || essence == "application/x-www-form-urlencoded"
        || essence == "text/plain";
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("the body must be JSON, not `{essence}`"),
        )
        .hint("send `Content-Type: application/json`"))
    }
}

/// The body's bytes, within the server's limit, after its content type was checked.
async fn json_bytes(req: Request, state: &AppState) -> Result<axum::body::Bytes, ApiError> {
    json_content_type(&req)?;
    let limit = state.config.max_request_bytes;
    axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
        .hint("send less, or raise the server's --max-request-bytes")
    })
}

impl<T: DeserializeOwned> FromRequest<AppState> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = json_bytes(req, state).await?;
        parse_json(&bytes).map(AppJson)
    }
}

/// A JSON body that may be left out: an empty body is `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = json_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// Parses a JSON body into `T` with precise errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(
            ApiError::new(StatusCode::BAD_REQUEST, "missing_body", "this route needs a JSON body")
                .hint("send a JSON object, e.g. -d '{\"name\": \"researcher\"}'"),
        );
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, serde_path_to_error::Error<serde_json::Error>> = serde_path_to_error::deserialize(&mut *de);
    let (path, e) = match result {
        Ok(v) => match de.end() {
            Ok(()) => return Ok(v),
            Err(e) => (String::new(), e),
        },
        Err(err) => (err.path().to_string(), err.into_inner()),
    };
    let err = {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {e}"),
            )
            .hint("check quotes and commas; in a shell, wrap the JSON in single quotes"),
            Category::Data => {
                let at = if path.is_empty() || path == "." {
                    String::new()
                } else {
                    format!(" (at `{path}`)")
                };
                let msg = e.to_string();
                // serde_json appends " at line X column Y"; keep the message about the field.
                let msg = msg.split(" at line ").next().unwrap_or(&msg);
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", format!("{msg}{at}"))
            }
        }
    };
    Err(err)
}

/// Path parameters, parsed with Loft's errors.
pub struct AppPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for AppPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(AppPath(v)),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                format!("bad path parameter: {}", e.body_text()),
            )
            .hint("percent-encode path segments as UTF-8")),
        }
    }
}

/// Query parameters, parsed with Loft's errors.
pub struct AppQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded_from_str(q).map(AppQuery).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("bad query parameters: {e}"),
            )
        })
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(q: &str) -> Result<T, String> {
    axum::extract::Query::<T>::try_from_uri(&format!("/?{q}").parse().map_err(|_| "unparseable query".to_owned())?)
        .map(|axum::extract::Query(v)| v)
        .map_err(|e| e.body_text())
}
