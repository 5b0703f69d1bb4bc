//! Loft's HTTP door: the REST API under `/v0` and its OpenAPI document.
//!
//! Handlers are thin: they extract an authenticated [`loft_core::service::Actor`]
//! ([`extract::Auth`]), parse the body or query with Loft's own error format
//! ([`extract::AppJson`], [`extract::AppQuery`]), call one use case on
//! [`loft_core::service::Loft`] and serialise its result. Core errors become HTTP responses in
//! one place ([`error`]). Routes are registered through `utoipa-axum`, so the OpenAPI document
//! is generated from the same handler list that serves requests and cannot drift from it.
//!
//! It reads and writes `loft-core`'s wire types (with core's `openapi` feature for their
//! schemas), the same ones `loft-client` sends; it must not define a request, query or answer
//! type of its own (`Health` aside, which no client decodes).
//!
//! This crate must not contain business rules or SQL.

pub mod error;
pub mod extract;
mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use loft_core::service::Loft;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;

/// Default largest request body, in bytes.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;

/// HTTP-level settings.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Largest request body accepted; larger ones get 413 `body_too_large`.
    pub max_request_bytes: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub loft: Arc<Loft>,
    pub config: Arc<WebConfig>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Loft",
        description = "Identities, mail and audit for AI agents. Authenticate with `Authorization: Bearer <key>`: \
                       the operator key for administration, an identity key (`loft_sk_...`) to act as that identity.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "identities", description = "Agent identities and their delegation chain"),
        (name = "keys", description = "API keys: mint, rotate, revoke"),
        (name = "mail", description = "Mailboxes, sending, replies, threads"),
        (name = "events", description = "What happened, as a resumable stream or pages, and signed webhooks"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "vault", description = "Per-identity encrypted credentials, TOTP, brokered HTTP"),
        (name = "oversight", description = "Held mail and reviewers' decisions, the kill switches, and allow / block / hold rules"),
        (name = "domains", description = "Hosted mail domains, their DKIM keys and DNS records"),
        (name = "meta", description = "Health and this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("API key")
                    .build(),
            ),
        );
    }
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::meta::router())
        .merge(routes::identities::router())
        .merge(routes::keys::router())
        .merge(routes::mail::router())
        .merge(routes::drafts::router())
        .merge(routes::contacts::router())
        .merge(routes::events::router())
        .merge(routes::audit::router())
        .merge(routes::vault::router())
        .merge(routes::oversight::router())
        .merge(routes::caps::router())
        .merge(routes::rules::router())
        .merge(routes::domains::router())
        .merge(routes::webhooks::router())
        .merge(routes::suppressions::router())
}

/// The OpenAPI document of the whole API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().into_openapi();
    complete(&mut doc);
    doc
}

/// What the route attributes leave out: the error answers of every route, and the rules of
/// request bodies that no one field can state (`loft_core::wire::openapi::body_rules`).
fn complete(doc: &mut utoipa::openapi::OpenApi) {
    document_errors(doc);
    loft_core::wire::openapi::add_body_rules(doc);
}

/// Every operation lists the error answers any route can give, with Loft's error body, besides
/// those it declares itself: a client generated from the document, or a schema-driven test,
/// is never surprised by a status. Authenticated routes can answer 400 (a malformed body or
/// query), 401 (no or a refused key), 403 (a missing scope or a policy), 404, 409, 413, 415,
/// 422 (invalid input), 429 (a rate limit, lockout or quota); every route 500 and 503.
fn document_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    let authenticated: [(&str, &str); 9] = [
        ("400", "The request is malformed (body, query or path)"),
        ("401", "No API key, or a key that is unknown, revoked or expired"),
        ("403", "The key lacks a scope, or a policy or quota forbids this"),
        ("404", "Not found, or not visible to this key"),
        ("409", "Conflicts with what is stored"),
        ("413", "The request body is too large"),
        ("415", "The body is not JSON"),
        ("422", "The input is invalid"),
        (
            "429",
            "Too many requests, refused keys, or a rate quota used up; see Retry-After",
        ),
    ];
    let always: [(&str, &str); 2] = [
        (
            "500",
            "An internal error (the server log has the details, under the request id)",
        ),
        ("503", "The database cannot be reached right now"),
    ];
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
            &mut item.head,
        ]
        .into_iter()
        .flatten()
        {
            // `security(())` marks the public routes (health, this document).
            let public = op.security.as_ref().is_some_and(|s| {
                s.iter()
                    .all(|r| serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({})))
            });
            let extra = if public { &[][..] } else { &authenticated[..] };
            for (status, description) in extra.iter().chain(always.iter()) {
                op.responses
                    .responses
                    .entry((*status).to_owned())
                    .or_insert_with(|| error(description));
            }
            // OpenAPI requires a description on every response.
            for (status, response) in &mut op.responses.responses {
                if let RefOr::T(r) = response
                    && r.description.is_empty()
                {
                    r.description = authenticated
                        .iter()
                        .chain(always.iter())
                        .find(|(s, _)| s == status)
                        .map_or_else(
                            || if status.starts_with('2') { "Success" } else { "Error" }.to_owned(),
                            |(_, d)| (*d).to_owned(),
                        );
                }
            }
        }
    }
}

/// The complete HTTP application.
pub fn router(state: AppState) -> Router {
    let (router, mut doc) = api().split_for_parts();
    complete(&mut doc);
    let doc = Arc::new(doc);
    let limit = state.config.max_request_bytes;
    router
        .route(
            "/v0/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(routes::meta::no_route)
        .method_not_allowed_fallback(routes::meta::method_not_allowed)
        .with_state(state)
        // Bodies are read by our own extractor against this limit; axum's default is lifted
        // so that the configured limit, not axum's 2 MB, decides.
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        // A bug must not drop the connection: the client gets a 500 in Loft's error format
        // with its request id, and the panic is logged once.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(middleware::from_fn(request_id))
}

/// The answer to a request whose handler panicked.
#[allow(
    clippy::needless_pass_by_value,
    reason = "the signature `CatchPanicLayer::custom` takes"
)]
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(
        request_id = current_request_id(),
        panic = what,
        "a request handler panicked"
    );
    axum::response::IntoResponse::into_response(error::ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; the server log has the details",
    ))
}

/// A JSON body serialised once and shared (a kept mailbox page or `whoami`), sent without a copy.
pub(crate) fn json_bytes(json: std::sync::Arc<[u8]>) -> Response {
    let body = axum::body::Body::from(axum::body::Bytes::from_owner(json));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, for error bodies and the audit log.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

tokio::task_local! {
    static CURRENT_REQUEST_ID: String;
}

/// The request id of the current request, when called inside a handler.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
}

fn acceptable_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
        .then(|| s.to_owned())
}

/// The operating system's CSPRNG read 4 KiB at a time per thread, for request ids (not
/// secrets: they only need to be unique): one `getrandom` call per 200 requests rather than
/// one per request (3% of a `whoami`, docs/benchmarks.md).
struct PooledOsRandom;

impl loft_core::random::Random for PooledOsRandom {
    fn fill(&self, buf: &mut [u8]) {
        thread_local! {
            static POOL: std::cell::RefCell<(Box<[u8; 4096]>, usize)> =
                std::cell::RefCell::new((Box::new([0; 4096]), 4096));
        }
        POOL.with_borrow_mut(|(pool, used)| {
            for b in buf.iter_mut() {
                if *used == pool.len() {
                    loft_core::random::Random::fill(&loft_core::random::OsRandom, &mut pool[..]);
                    *used = 0;
                }
                *b = pool[*used];
                *used += 1;
            }
        });
    }
}

/// Gives every request an id (the client's `x-request-id` if it is sane), echoes it in the
/// response, and makes it available to handlers and error bodies.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(acceptable_request_id)
        .unwrap_or_else(|| format!("req_{}", loft_core::random::base32_string(&PooledOsRandom, 20)));
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = CURRENT_REQUEST_ID.scope(id.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    res
}
