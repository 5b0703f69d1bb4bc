//! The MCP door end to end, on a real `SQLite` file: in process over `tokio::io::duplex` with
//! rmcp's client (both backends: the use cases in process, and REST against a real server), and
//! over HTTP with raw JSON-RPC POSTs to `/mcp` (both protocol generations).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc, reason = "tests")]

mod caps;
mod http;
mod oversight;
mod rest;
mod rules;
mod tools;
mod unicode;
mod vault;

use std::net::SocketAddr;
use std::sync::Arc;

use loft_core::keys::OperatorKey;
use loft_core::random::OsRandom;
use loft_core::service::{Actor, CreateIdentityRequest, Loft, LoftConfig, RequestContext};
use loft_core::time::SystemClock;
use loft_core::vault::{Keyring, MasterKey};
use loft_mcp::{AllowedHosts, IdentityApi, LocalApi, McpHttpSettings};
use loft_web::{AppState, WebConfig};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;

pub const DOMAIN: &str = "agents.test";

pub struct World {
    pub loft: Arc<Loft>,
    pub admin: String,
    _dir: tempfile::TempDir,
}

pub struct Agent {
    pub id: String,
    pub key: String,
    pub address: String,
}

pub type Client = RunningService<RoleClient, ()>;

impl World {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = loft_store_sqlite::SqliteStore::open(&dir.path().join("loft.db"))
            .await
            .unwrap();
        let admin = OperatorKey::generate(&OsRandom);
        let loft = Loft::new(
            Arc::new(store),
            Arc::new(SystemClock),
            Arc::new(OsRandom),
            OperatorKey::from_secret(&admin).unwrap(),
            LoftConfig {
                max_body_bytes: 64 * 1024,
                // The mail tests test mail; the oversight tests set modes explicitly.
                default_oversight_mode: loft_core::oversight::OversightMode::Autonomous,
                ..LoftConfig::new(DOMAIN)
            },
        )
        .unwrap()
        .with_vault(Keyring::new(MasterKey::generate(&OsRandom), vec![]), None)
        // The vault tests' peer listens on 127.0.0.1, which the default egress policy refuses.
        .with_broker(Arc::new(loft_testkit::loopback::LoopbackOnly(
            loft_broker::ReqwestBroker::new(loft_broker::EgressPolicy::parse(["127.0.0.1"]).unwrap()).unwrap(),
        )));
        loft.verify_vault_keys().await.unwrap();
        Self {
            loft: Arc::new(loft),
            admin,
            _dir: dir,
        }
    }

    pub async fn actor(&self, key: &str) -> Actor {
        self.loft
            .authenticate(Some(key), RequestContext::default())
            .await
            .unwrap()
    }

    /// A new identity with the default scopes, or the ones named.
    pub async fn agent(&self, name: &str, scopes: Option<&[&str]>) -> Agent {
        let operator = self.actor(&self.admin).await;
        let req = CreateIdentityRequest {
            name: name.into(),
            scopes: scopes.map(|s| s.iter().map(|s| (*s).to_owned()).collect()),
            ..CreateIdentityRequest::default()
        };
        let created = self.loft.create_identity(&operator, req).await.unwrap();
        Agent {
            id: created.identity.id.to_string(),
            key: created.api_key,
            address: created.identity.address.to_string(),
        }
    }

    /// An MCP client talking, in process, to a server acting as `key`'s identity.
    pub async fn local_client(&self, key: &str) -> Client {
        let api: Arc<dyn IdentityApi> = Arc::new(LocalApi::new(self.loft.clone(), self.actor(key).await));
        client_for(api).await
    }

    /// `loft_web::router` merged with `/mcp`, served on 127.0.0.1:0; returns the base URL.
    pub async fn spawn_http(&self) -> String {
        self.spawn_http_with(McpHttpSettings::new(AllowedHosts::defaults_for(SocketAddr::from((
            [127, 0, 0, 1],
            0,
        )))))
        .await
    }

    pub async fn spawn_http_with(&self, settings: McpHttpSettings) -> String {
        let state = AppState {
            loft: self.loft.clone(),
            config: Arc::new(WebConfig::default()),
        };
        let app = loft_web::router(state).merge(loft_mcp::http_router(self.loft.clone(), settings));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .await
                .unwrap();
        });
        format!("http://{addr}")
    }
}

/// Sets an identity's scopes as the operator does, with `PATCH /v0/identities/{id}` on the
/// server at `base`.
pub async fn set_scopes(base: &str, admin: &str, identity_id: &str, scopes: &[&str]) {
    let res = reqwest::Client::new()
        .patch(format!("{base}/v0/identities/{identity_id}"))
        .bearer_auth(admin)
        .json(&serde_json::json!({ "scopes": scopes }))
        .send()
        .await
        .unwrap();
    let status = res.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        res.text().await.unwrap_or_default()
    );
}

/// An rmcp client connected over an in-memory duplex pipe to `loft_mcp::serve_io(api)`.
pub async fn client_for(api: Arc<dyn IdentityApi>) -> Client {
    let (server_end, client_end) = tokio::io::duplex(64 * 1024);
    let (read, write) = tokio::io::split(server_end);
    tokio::spawn(async move {
        let _ = loft_mcp::serve_io(api, read, write).await;
    });
    ().serve(client_end).await.unwrap()
}

pub async fn call(client: &Client, tool: &'static str, args: Value) -> CallToolResult {
    let args = args.as_object().cloned().unwrap_or_default();
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
        .await
        .unwrap()
}

/// The JSON in a result's one text block, checked against `structuredContent` on success.
#[track_caller]
pub fn body(r: &CallToolResult) -> Value {
    assert_eq!(r.content.len(), 1, "one content block: {r:?}");
    let text = &r.content[0].as_text().expect("a text block").text;
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    if r.is_error != Some(true) {
        assert_eq!(
            r.structured_content.as_ref(),
            Some(&v),
            "structuredContent is the text's JSON"
        );
    }
    v
}

/// A successful result's JSON.
#[track_caller]
pub fn ok(r: &CallToolResult) -> Value {
    assert_ne!(r.is_error, Some(true), "{}", body(r));
    body(r)
}

/// A failed result's error code, after checking the error shape.
#[track_caller]
pub fn error_code(r: &CallToolResult) -> String {
    assert_eq!(r.is_error, Some(true), "{r:?}");
    assert!(r.structured_content.is_none());
    let v = body(r);
    let e = v["error"].as_object().unwrap_or_else(|| panic!("{v}"));
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e.contains_key("hint"), "{v}");
    e["code"].as_str().unwrap().to_owned()
}

pub async fn tool_names(client: &Client) -> Vec<String> {
    client
        .list_tools(None)
        .await
        .unwrap()
        .tools
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect()
}
