//! `/mcp`: MCP over streamable HTTP on the server's own port.
//!
//! Every HTTP request is authenticated by the identity key in `Authorization: Bearer ...`
//! before rmcp sees it (a missing, unknown or revoked key is a 401 with Loft's error body, and
//! the refusal is audited by core), so one endpoint serves a whole crew, each agent as itself.
//!
//! rmcp runs in stateless mode: no `Mcp-Session-Id`, nothing kept in memory between requests,
//! so any node behind a load balancer serves any request. Both protocol generations work: the
//! 2025-11-25 `initialize` handshake of Python `mcp` 1.x (each step answered statelessly) and
//! the 2026-07-28 per-request protocol of `mcp` 2.x. Responses are SSE streams with keep-alive
//! comments, so that a long `mail_wait` is not cut by an idle proxy.
//!
//! rmcp also checks the `Host` header against [`AllowedHosts`] (a DNS-rebinding guard); by
//! default only loopback names pass, so a server reached by another name must list it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use loft_core::Error;
use loft_core::service::{Loft, RequestContext};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

use crate::error::{ErrorBody, ToolError, http_status};
use crate::server::{AuthenticatedActor, Caller, LoftMcp};

/// Where the endpoint lives.
pub const MCP_PATH: &str = "/mcp";

/// Default largest MCP request body, in bytes.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Which `Host` header values `/mcp` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    /// Any host (no DNS-rebinding guard): only behind a proxy that checks the host itself.
    Any,
    /// These host names, or `host:port` authorities; a name without a port matches any port.
    List(Vec<String>),
}

impl AllowedHosts {
    /// The loopback names and the host of the HTTP listen address.
    pub fn defaults_for(http: SocketAddr) -> Self {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        let ip = http.ip();
        if !ip.is_unspecified() && !hosts.contains(&ip.to_string()) {
            hosts.push(ip.to_string());
        }
        Self::List(hosts)
    }

    /// Parses the `--mcp-allowed-hosts` values (comma-separated on the command line): host names
    /// or `host:port`, or `*` alone for any host. Nothing given: [`Self::defaults_for`].
    pub fn parse(values: &[String], http: SocketAddr) -> Result<Self, String> {
        let values: Vec<&str> = values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()).collect();
        if values.is_empty() {
            return Ok(Self::defaults_for(http));
        }
        if values.contains(&"*") {
            return if values.len() == 1 {
                Ok(Self::Any)
            } else {
                Err("`*` (any host) cannot be combined with host names".into())
            };
        }
        let mut hosts = Vec::new();
        for v in values {
            let v = v.to_ascii_lowercase();
            let ok =
                v.parse::<IpAddr>().is_ok() || v.parse::<axum::http::uri::Authority>().is_ok_and(|a| a.as_str() == v);
            if !ok || v.contains(['/', '@']) {
                return Err(format!("`{v}` is not a host name, an IP address or host:port"));
            }
            hosts.push(v);
        }
        Ok(Self::List(hosts))
    }
}

/// Settings of the `/mcp` endpoint.
#[derive(Debug, Clone)]
pub struct McpHttpSettings {
    pub allowed_hosts: AllowedHosts,
    /// Largest request body accepted (413 above it).
    pub max_request_bytes: usize,
}

impl McpHttpSettings {
    pub fn new(allowed_hosts: AllowedHosts) -> Self {
        Self {
            allowed_hosts,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

/// The `/mcp` route, to be merged into the server's router. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` to record client addresses in the audit log.
pub fn http_router(loft: Arc<Loft>, settings: McpHttpSettings) -> Router {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(false)
        .with_max_request_body_bytes(settings.max_request_bytes);
    let config = match settings.allowed_hosts {
        AllowedHosts::Any => config.disable_allowed_hosts(),
        AllowedHosts::List(hosts) => config.with_allowed_hosts(hosts),
    };
    let handler = LoftMcp::new(Caller::PerRequest(loft.clone()));
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    Router::new()
        .route_service(MCP_PATH, service)
        .route_layer(middleware::from_fn_with_state(loft, authenticate))
        // A bug must not drop the connection: the client gets a 500 in Loft's error format.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send + 'static>| {
                refuse(Error::internal("an MCP request handler panicked"))
            },
        ))
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(
            || {
                format!(
                    "req_{}",
                    loft_core::random::base32_string(&loft_core::random::OsRandom, 20)
                )
            },
            str::to_owned,
        )
}

/// The bearer token, `None` without an `Authorization` header, or an error for another scheme.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    match value.to_str().unwrap_or("").split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(
            Error::unauthenticated("the Authorization header must use the Bearer scheme")
                .with_hint("send `Authorization: Bearer <identity key>`"),
        ),
    }
}

/// Authenticates every `/mcp` request as an identity before MCP sees it.
async fn authenticate(State(loft): State<Arc<Loft>>, mut req: Request, next: Next) -> Response {
    let id = request_id(req.headers());
    let outcome = match bearer(req.headers()) {
        Err(e) => Err(e),
        Ok(token) => {
            let ctx = RequestContext {
                request_id: Some(id.clone()),
                remote_addr: req
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip().to_string()),
            };
            loft.authenticate(token, ctx).await
        }
    };
    let mut res = match outcome {
        Ok(actor) if actor.is_operator() => refuse(
            Error::forbidden(
                "identity_key_required",
                "the MCP endpoint acts as an identity; the operator key is not one",
            )
            .with_hint("send the API key of the identity that should act (`loft_sk_...`)"),
        ),
        Ok(actor) => {
            req.extensions_mut().insert(AuthenticatedActor(Arc::new(actor)));
            next.run(req).await
        }
        Err(e) => refuse(e),
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    res
}

fn refuse(e: Error) -> Response {
    let status = http_status(&e);
    let retry_after = match &e {
        Error::TooManyRequests { retry_after_secs, .. } => Some(*retry_after_secs),
        _ => None,
    };
    let mut res = (
        status,
        axum::Json(ErrorBody {
            error: ToolError::from(e),
        }),
    )
        .into_response();
    if status == axum::http::StatusCode::UNAUTHORIZED {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Some(secs) = retry_after {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn allowed_hosts_default_to_loopback_and_the_listen_address() {
        let local: SocketAddr = "127.0.0.1:7070".parse().unwrap();
        assert_eq!(
            AllowedHosts::parse(&[], local).unwrap(),
            AllowedHosts::List(strings(&["localhost", "127.0.0.1", "::1"]))
        );
        let lan: SocketAddr = "10.1.2.3:7070".parse().unwrap();
        assert_eq!(
            AllowedHosts::parse(&[], lan).unwrap(),
            AllowedHosts::List(strings(&["localhost", "127.0.0.1", "::1", "10.1.2.3"]))
        );
        let any: SocketAddr = "0.0.0.0:7070".parse().unwrap();
        assert_eq!(
            AllowedHosts::parse(&[], any).unwrap(),
            AllowedHosts::List(strings(&["localhost", "127.0.0.1", "::1"]))
        );
    }

    #[test]
    fn allowed_hosts_are_parsed() {
        let a: SocketAddr = "127.0.0.1:7070".parse().unwrap();
        assert_eq!(
            AllowedHosts::parse(&strings(&["Loft.Example.com", " lb.internal:8443 ", ""]), a).unwrap(),
            AllowedHosts::List(strings(&["loft.example.com", "lb.internal:8443"]))
        );
        assert_eq!(AllowedHosts::parse(&strings(&["*"]), a).unwrap(), AllowedHosts::Any);
        assert!(AllowedHosts::parse(&strings(&["*", "x.com"]), a).is_err());
        assert!(AllowedHosts::parse(&strings(&["https://x.com/"]), a).is_err());
        assert!(AllowedHosts::parse(&strings(&["a b"]), a).is_err());
        assert_eq!(
            AllowedHosts::parse(&strings(&["::1"]), a).unwrap(),
            AllowedHosts::List(strings(&["::1"]))
        );
    }
}
