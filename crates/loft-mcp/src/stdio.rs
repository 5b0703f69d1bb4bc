//! `loft mcp`: an MCP server on stdin/stdout acting as one identity, through a Loft server's REST
//! API. This is what an `AutoGen` `StdioServerParams` or a `CrewAI` `MCPServerAdapter` launches, one
//! per agent.
//!
//! Nothing but protocol goes to stdout; messages for people (and logs) go to stderr. The key is
//! checked before serving (`GET /v0/whoami`): a missing or refused key is a clear message and a
//! non-zero exit, never a server that hangs or fails on the first tool call.

use std::process::ExitCode;
use std::sync::Arc;

use rmcp::ServiceExt;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::api::IdentityApi;
use crate::rest::RestApi;
use crate::server::{Caller, LoftMcp};

/// Serves MCP on stdin/stdout as the identity behind `api`, until the client closes stdin.
pub async fn serve_stdio(api: Arc<dyn IdentityApi>) -> std::io::Result<()> {
    let (read, write) = rmcp::transport::stdio_pipes();
    serve_io(api, read, write).await
}

/// Serves MCP over any byte stream pair (newline-delimited JSON-RPC), as `api`'s identity.
pub async fn serve_io<R, W>(api: Arc<dyn IdentityApi>, read: R, write: W) -> std::io::Result<()>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let running = LoftMcp::new(Caller::Fixed(api))
        .serve((read, write))
        .await
        .map_err(|e| std::io::Error::other(format!("MCP start-up failed: {e}")))?;
    running
        .waiting()
        .await
        .map_err(|e| std::io::Error::other(format!("MCP server stopped: {e}")))?;
    Ok(())
}

/// The whole `loft mcp` command: check the key against the server, then serve on stdio.
/// Exit status: 0 when the client closed the session, 1 when the server refused the key or
/// could not be reached, 2 for a usage problem found before any request.
pub async fn run_stdio(url: &str, api_key: Option<&str>) -> ExitCode {
    let Some(key) = api_key.map(str::trim).filter(|k| !k.is_empty()) else {
        eprintln!("loft mcp: no API key: set LOFT_API_KEY to the key of the identity this MCP server acts as");
        eprintln!("hint: `loft identity create NAME` prints a new identity's key (`loft_sk_...`)");
        return ExitCode::from(2);
    };
    let api = match RestApi::new(url, key) {
        Ok(api) => api,
        Err(e) => {
            eprintln!("loft mcp: LOFT_URL: {e}");
            return ExitCode::from(2);
        }
    };
    let me = match api.whoami().await {
        Ok(me) => me,
        Err(e) => {
            let detail = match &e {
                // Said by this process (connection refused, an unexpected answer): the precise text.
                loft_core::Error::Unavailable(why) | loft_core::Error::Internal(why) => why.clone(),
                other => other.public_message(),
            };
            eprintln!("loft mcp: cannot act with this key at {}: {detail}", api.base_url());
            let hint = match &e {
                loft_core::Error::Unavailable(_) => {
                    Some("is `loft serve` running there? Point LOFT_URL at the server's base URL".to_owned())
                }
                other => other.hint(),
            };
            if let Some(hint) = hint {
                eprintln!("hint: {hint}");
            }
            return ExitCode::FAILURE;
        }
    };
    let Some(identity) = me.identity.as_ref() else {
        eprintln!("loft mcp: LOFT_API_KEY holds the operator key; an MCP server acts as one identity");
        eprintln!("hint: use the API key of the identity that should act (`loft_sk_...`)");
        return ExitCode::from(2);
    };
    let scopes: Vec<&str> = me.scopes.iter().map(loft_core::keys::Scope::as_str).collect();
    eprintln!(
        "loft mcp: acting as {} ({}) with scopes {} via {}",
        identity.address,
        identity.name,
        if scopes.is_empty() {
            "(none)".to_owned()
        } else {
            scopes.join(", ")
        },
        api.base_url()
    );
    match serve_stdio(Arc::new(api)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loft mcp: {e}");
            ExitCode::FAILURE
        }
    }
}
