//! `/mcp` over real HTTP with raw JSON-RPC POSTs, as clients of both protocol generations send
//! them: the 2025-11-25 handshake (Python `mcp` 1.x) and the 2026-07-28 per-request protocol
//! (`mcp` 2.x), each answered statelessly.

use std::time::Duration;

use loft_mcp::{AllowedHosts, McpHttpSettings};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::World;

const LEGACY: &str = "2025-11-25";
const MODERN: &str = "2026-07-28";

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    /// The JSON-RPC response (from SSE `data:` events or a JSON body), or the error body.
    json: Value,
}

async fn post(base: &str, key: Option<&str>, extra: &[(&str, &str)], msg: &Value) -> Reply {
    let client = reqwest::Client::new();
    let mut req = client
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(msg.to_string());
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    let mut res = tokio::time::timeout(Duration::from_secs(20), req.send())
        .await
        .unwrap()
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let sse = headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    let mut buf = String::new();
    let json = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(20), res.chunk())
            .await
            .unwrap()
            .unwrap();
        if let Some(c) = &chunk {
            buf.push_str(&String::from_utf8_lossy(c));
        }
        if sse {
            let found = buf
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
                .find(|v| v.get("result").is_some() || v.get("error").is_some());
            if let Some(v) = found {
                break v;
            }
            assert!(chunk.is_some(), "SSE stream ended without a response: {buf}");
        } else if chunk.is_none() {
            break serde_json::from_str(&buf).unwrap_or(Value::String(buf));
        }
    };
    Reply { status, headers, json }
}

fn initialize(version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}})
}

fn legacy_request(id: u64, method: &str, params: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A 2026-07-28 request: protocol version and client capabilities in `_meta`, every time.
fn modern_request(id: u64, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "0"},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// Posts a 2026-07-28 request with the headers that protocol wants beside the body: its method,
/// and for a tool call the tool's name.
async fn post_modern(base: &str, key: &str, id: u64, method: &str, params: Value) -> Reply {
    let name = params["name"].as_str().map(str::to_owned);
    let mut headers = vec![("mcp-protocol-version", MODERN), ("mcp-method", method)];
    headers.extend(name.as_deref().map(|n| ("mcp-name", n)));
    post(base, Some(key), &headers, &modern_request(id, method, params)).await
}

fn tool_names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The JSON a tool call's text block holds.
fn tool_json(reply: &Value) -> Value {
    let text = reply["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{reply}"));
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn keys_are_checked_before_mcp() {
    let w = World::new().await;
    let base = w.spawn_http().await;
    let init = initialize(LEGACY);

    let r = post(&base, None, &[], &init).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers.get("www-authenticate"),
        Some(&HeaderValue::from_static("Bearer"))
    );
    assert_eq!(r.json["error"]["code"], "unauthenticated");
    assert!(r.headers.contains_key("x-request-id"));

    let r = post(
        &base,
        Some("loft_sk_aaaaaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
        &[],
        &init,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.json);
    assert_eq!(r.json["error"]["code"], "unauthenticated");

    let r = post(&base, None, &[("authorization", "Basic dXNlcjpwYXNz")], &init).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = post(&base, Some(&w.admin), &[], &init).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json["error"]["code"], "identity_key_required");

    // Refusals are counted like REST's, and written as one aggregated row per address.
    assert_eq!(w.loft.flush_auth_refusals(true).await.unwrap(), 1);
    let operator = w.actor(&w.admin).await;
    let params = loft_core::service::ListAuditParams {
        action: Some("auth.refused".into()),
        ..Default::default()
    };
    let rows = w.loft.list_audit(&operator, params).await.unwrap().items;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].entry.details["count"].as_u64().unwrap() >= 2, "{:?}", rows[0]);
    assert_eq!(rows[0].entry.key_id, None);
}

#[tokio::test]
async fn the_2025_11_25_handshake_is_served_without_sessions() {
    let w = World::new().await;
    let base = w.spawn_http().await;
    let a = w.agent("alice", None).await;
    let key = Some(a.key.as_str());

    let r = post(&base, key, &[], &initialize(LEGACY)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["result"]["protocolVersion"], LEGACY);
    assert_eq!(r.json["result"]["serverInfo"]["name"], "loft");
    assert!(
        !r.headers.contains_key("mcp-session-id"),
        "stateless: no session to pin to a node"
    );

    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let res = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .bearer_auth(&a.key)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", LEGACY)
        .body(note.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);

    let v = [("mcp-protocol-version", LEGACY)];
    let list = post(&base, key, &v, &legacy_request(2, "tools/list", &json!({}))).await;
    assert_eq!(tool_names(&list.json).len(), 34, "{}", list.json);
    let tool = &list.json["result"]["tools"][1];
    assert_eq!(tool["name"], "mail_send");
    assert!(tool["annotations"]["openWorldHint"].as_bool().unwrap());
    // One address or a list, as the server accepts.
    assert_eq!(tool["inputSchema"]["properties"]["to"]["anyOf"][0]["type"], "string");
    assert_eq!(tool["inputSchema"]["properties"]["to"]["anyOf"][1]["type"], "array");
    assert!(tool["outputSchema"]["properties"]["delivery"].is_object());

    let call = legacy_request(3, "tools/call", &json!({"name": "identity_whoami", "arguments": {}}));
    let me = post(&base, key, &v, &call).await;
    assert_eq!(tool_json(&me.json)["address"], a.address);
    assert_eq!(me.json["result"]["structuredContent"]["address"], a.address);
    assert_eq!(me.json["result"]["isError"], false);

    let call = legacy_request(
        4,
        "tools/call",
        &json!({"name": "mail_get_message", "arguments": {"message_id": "msg_aaaaaaaaaaaaaaaaaaaa"}}),
    );
    let r = post(&base, key, &v, &call).await;
    assert_eq!(r.json["result"]["isError"], true);
    assert_eq!(tool_json(&r.json)["error"]["code"], "not_found");
}

#[tokio::test]
async fn the_2026_07_28_protocol_works_request_by_request() {
    let w = World::new().await;
    let base = w.spawn_http().await;
    let a = w.agent("alice", None).await;
    let b = w.agent("bob", Some(&["mail:read"])).await;

    let list = post_modern(&base, &a.key, 1, "tools/list", json!({})).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.json);
    assert_eq!(tool_names(&list.json).len(), 34, "{}", list.json);
    assert_eq!(
        list.json["result"]["cacheScope"], "private",
        "the list depends on the key"
    );

    let send = json!({"name": "mail_send", "arguments": {"to": b.address, "subject": "Hi", "text": "New protocol."}});
    let reply = post_modern(&base, &a.key, 2, "tools/call", send.clone()).await;
    assert_eq!(reply.json["result"]["isError"], false, "{}", reply.json);
    assert_eq!(tool_json(&reply.json)["delivery"][0]["status"], "delivered");

    // Bob's key is read-only: no mail_send offered, and a call is refused as a tool error.
    let list = post_modern(&base, &b.key, 3, "tools/list", json!({})).await;
    assert!(!tool_names(&list.json).contains(&"mail_send".to_owned()));
    let reply = post_modern(&base, &b.key, 2, "tools/call", send).await;
    assert_eq!(reply.json["result"]["isError"], true);
    assert_eq!(tool_json(&reply.json)["error"]["code"], "missing_scope");

    let wait = json!({"name": "mail_wait", "arguments": {"timeout_seconds": 5}});
    let reply = post_modern(&base, &b.key, 4, "tools/call", wait).await;
    assert_eq!(tool_json(&reply.json)["messages"][0]["subject"], "Hi");
}

#[tokio::test]
async fn any_node_serves_any_request() {
    // Two endpoints with nothing in memory in common (two "nodes" on one database).
    let w = World::new().await;
    let node_a = w.spawn_http().await;
    let node_b = w.spawn_http().await;
    let a = w.agent("alice", None).await;
    let key = Some(a.key.as_str());
    let r = post(&node_a, key, &[], &initialize(LEGACY)).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = [("mcp-protocol-version", LEGACY)];
    let call = legacy_request(2, "tools/call", &json!({"name": "identity_whoami", "arguments": {}}));
    let r = post(&node_b, key, &v, &call).await;
    assert_eq!(tool_json(&r.json)["address"], a.address);
}

#[tokio::test]
async fn host_names_must_be_allowed() {
    let w = World::new().await;
    let a = w.agent("alice", None).await;
    let base = w.spawn_http().await;
    let r = post(
        &base,
        Some(&a.key),
        &[("host", "loft.example.com")],
        &initialize(LEGACY),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a name not listed is refused (DNS-rebinding guard)"
    );

    let settings = McpHttpSettings::new(AllowedHosts::List(vec!["loft.example.com".into()]));
    let base = w.spawn_http_with(settings).await;
    let r = post(
        &base,
        Some(&a.key),
        &[("host", "loft.example.com")],
        &initialize(LEGACY),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);

    let base = w.spawn_http_with(McpHttpSettings::new(AllowedHosts::Any)).await;
    let r = post(
        &base,
        Some(&a.key),
        &[("host", "anything.example")],
        &initialize(LEGACY),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}
