//! HTTP tests of every route, through the real router on a real SQLite file, without sockets
//! (`Router::oneshot`). Each test gets its own database.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc, reason = "tests")]

mod audit;
mod caps;
mod contacts;
mod drafts;
mod events;
mod identities;
mod keys;
mod mail;
mod oversight;
mod protocol;
mod rules;
mod unicode;
mod vault;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use loft_broker::EgressPolicy;
use loft_core::keys::OperatorKey;
use loft_core::random::OsRandom;
use loft_core::service::{Loft, LoftConfig};
use loft_core::time::SystemClock;
use loft_core::vault::{Keyring, MasterKey};
use loft_web::{AppState, WebConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

pub struct App {
    pub router: Router,
    /// The served OpenAPI document: every answer a test gets must be documented in it.
    pub doc: Arc<Value>,
    pub loft: Arc<Loft>,
    pub admin: String,
    _dir: tempfile::TempDir,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// The error code of an error response.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl App {
    pub async fn new() -> Self {
        Self::with_limit(64 * 1024).await
    }

    pub async fn with_limit(max_request_bytes: usize) -> Self {
        // The brokered HTTP tests' peers listen on 127.0.0.1, which the default policy refuses.
        Self::build(max_request_bytes, EgressPolicy::parse(["127.0.0.1"]).unwrap()).await
    }

    /// An app whose brokered calls obey `egress` (the others allow 127.0.0.1).
    pub async fn with_egress(egress: EgressPolicy) -> Self {
        Self::build(64 * 1024, egress).await
    }

    /// An app whose webhooks obey `egress` and this delivery schedule.
    pub async fn with_webhooks(egress: EgressPolicy, settings: loft_core::webhooks::WebhookSettings) -> Self {
        Self::build_with(64 * 1024, egress, settings).await
    }

    async fn build(max_request_bytes: usize, egress: EgressPolicy) -> Self {
        Self::build_with(
            max_request_bytes,
            egress,
            loft_core::webhooks::WebhookSettings::default(),
        )
        .await
    }

    async fn build_with(
        max_request_bytes: usize,
        egress: EgressPolicy,
        settings: loft_core::webhooks::WebhookSettings,
    ) -> Self {
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
                max_body_bytes: max_request_bytes,
                // The mail tests test mail; the oversight tests set modes explicitly.
                default_oversight_mode: loft_core::oversight::OversightMode::Autonomous,
                ..LoftConfig::new("agents.test")
            },
        )
        .unwrap()
        .with_vault(Keyring::new(MasterKey::generate(&OsRandom), vec![]), None)
        .with_broker(Arc::new(loft_testkit::loopback::LoopbackOnly(
            loft_broker::ReqwestBroker::new(egress).unwrap(),
        )))
        .with_webhooks(settings);
        let loft = Arc::new(loft);
        let state = AppState {
            loft: loft.clone(),
            config: Arc::new(WebConfig { max_request_bytes }),
        };
        Self {
            router: loft_web::router(state),
            doc: Arc::new(serde_json::to_value(loft_web::openapi()).unwrap()),
            loft,
            admin,
            _dir: dir,
        }
    }

    pub async fn raw(&self, req: Request<Body>) -> Resp {
        let (method, path) = (req.method().as_str().to_ascii_lowercase(), req.uri().path().to_owned());
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        assert_documented(&self.doc, &method, &path, status);
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn call(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.raw(req.unwrap()).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Resp {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(key), Some(body)).await
    }

    pub async fn put(&self, path: &str, key: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(key), Some(body)).await
    }

    /// Creates an identity with the operator key; returns (id, address, api key).
    pub async fn identity(&self, name: &str) -> (String, String, String) {
        let r = self.post("/v0/identities", &self.admin, json!({ "name": name })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        (
            r.body["id"].as_str().unwrap().to_owned(),
            r.body["address"].as_str().unwrap().to_owned(),
            r.body["api_key"].as_str().unwrap().to_owned(),
        )
    }

    /// Sends `subject` from `key` to `to`; returns the sender's copy.
    pub async fn send(&self, key: &str, to: &str, subject: &str) -> Value {
        let r = self
            .post(
                "/v0/messages/send",
                key,
                json!({ "to": to, "subject": subject, "text": "hello" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body
    }
}

/// Every answer of a route in the document is one of the statuses the document lists for it:
/// each test of this suite doubles as a check that the OpenAPI document tells the truth.
/// (Paths and methods no route serves answer 404 and 405 from the fallbacks, outside it.)
#[track_caller]
pub fn assert_documented(doc: &Value, method: &str, path: &str, status: StatusCode) {
    let Some(paths) = doc["paths"].as_object() else {
        panic!("the document has no paths")
    };
    let matches = |template: &str| {
        let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
        t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()))
    };
    // A literal path wins over a template (`/v0/keys/rotate` over `/v0/keys/{key_id}`).
    let mut candidates: Vec<&String> = paths.keys().filter(|t| matches(t)).collect();
    candidates.sort_by_key(|t| t.matches('{').count());
    let Some(op) = candidates.iter().find_map(|t| paths[*t].get(method)) else {
        return;
    };
    let documented = op["responses"]
        .as_object()
        .map(|r| r.contains_key(status.as_str()) || r.contains_key("default"));
    assert_eq!(
        documented,
        Some(true),
        "{} {path} answered {status}, which its OpenAPI operation does not list: {}",
        method.to_uppercase(),
        op["responses"]
    );
}

/// Asserts an error response: status, code, a message, and the request id.
#[track_caller]
pub fn assert_error(r: &Resp, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.code(), code, "{}", r.text);
    assert!(
        r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        r.text
    );
    assert!(r.body["error"]["request_id"].as_str().is_some(), "{}", r.text);
}
