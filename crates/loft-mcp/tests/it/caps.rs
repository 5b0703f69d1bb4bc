//! A sending cap through the MCP door: the refusal reaches the model as a tool error
//! (`cap_reached`) that says how long to wait and what to ask the operator, over `/mcp` and
//! over stdio's REST backend; `identity_whoami` shows the budget.

use std::sync::Arc;

use loft_core::service::SetIdentityCapsRequest;
use loft_mcp::{IdentityApi, RestApi};
use rmcp::ServiceExt as _;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;

use crate::{Client, World, body, call, client_for, error_code, ok};

async fn capped_send_is_a_tool_error(stdio: bool) {
    let w = World::new().await;
    let agent = w.agent("agent", None).await;
    let peer = w.agent("peer", None).await;
    let operator = w.actor(&w.admin).await;
    w.loft
        .set_identity_caps(
            &operator,
            &agent.id,
            SetIdentityCapsRequest {
                mails_per_hour: Some(Some(1)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let base = w.spawn_http().await;
    let client: Client = if stdio {
        let api: Arc<dyn IdentityApi> = Arc::new(RestApi::new(&base, &agent.key).unwrap());
        client_for(api).await
    } else {
        let config =
            StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).auth_header(agent.key.clone());
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .unwrap()
    };

    let me = ok(&call(&client, "identity_whoami", json!({})).await);
    assert_eq!(me["sending"]["mails_per_hour"]["identity_cap"], 1, "{me}");
    assert_eq!(me["sending"]["mails_per_hour"]["used"], 0, "{me}");
    assert_eq!(me["sending"]["first_contact"], "allow", "{me}");

    let args = json!({"to": peer.address, "subject": "one", "text": "hello"});
    ok(&call(&client, "mail_send", args.clone()).await);
    let r = call(&client, "mail_send", args).await;
    assert_eq!(error_code(&r), "cap_reached", "stdio: {stdio}");
    let e = &body(&r)["error"];
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("`mails_per_hour` (1)") && message.contains("retry in ") && message.ends_with(" s"),
        "{message}"
    );
    let hint = e["hint"].as_str().unwrap();
    assert!(hint.starts_with("wait ") && hint.contains("ask the operator"), "{hint}");
    let me = ok(&call(&client, "identity_whoami", json!({})).await);
    assert_eq!(me["sending"]["mails_per_hour"]["used"], 1, "{me}");
}

#[tokio::test]
async fn a_capped_send_is_a_tool_error_with_the_wait_over_mcp_http() {
    capped_send_is_a_tool_error(false).await;
}

#[tokio::test]
async fn a_capped_send_is_a_tool_error_with_the_wait_over_stdio_and_rest() {
    capped_send_is_a_tool_error(true).await;
}
