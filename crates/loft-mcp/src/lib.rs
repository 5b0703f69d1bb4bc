//! Loft's MCP door: the identity, mail and vault tools for agents, over stdio and streamable HTTP.
//!
//! - `loft mcp` ([`run_stdio`]): an MCP server on stdin/stdout acting as the identity whose key
//!   it is given, talking to a Loft server over REST ([`RestApi`]). It holds no database and no
//!   secrets of its own: the server enforces everything.
//! - `/mcp` ([`http_router`]): MCP over streamable HTTP inside `loft serve`, stateless, each
//!   request authenticated by its own identity key, so one endpoint serves a whole crew.
//!
//! Both doors run the same tools (one spec per tool, by area, in `tools/`) over one small trait,
//! [`IdentityApi`]: [`LocalApi`] calls the `loft-core` use cases in process, [`RestApi`] calls
//! the server. The tool list is gated by the key's scopes, results are one JSON text block plus
//! `structuredContent`, failures are tool results with `isError` and the REST error codes
//! ([`error`]), and mail bodies and brokered HTTP response bodies are framed as untrusted text
//! ([`framing`]). The vault tools let an agent use a credential (TOTP codes, brokered HTTP)
//! without seeing its secret; only `vault_get`, offered to keys with `vault:reveal`, shows one.
//!
//! This crate is a thin adapter: no business rules, no SQL. rmcp is a fast-moving dependency,
//! so its types stay inside: the public API speaks `loft-core`, axum and tokio.

mod api;
pub mod error;
pub mod framing;
mod http;
mod rest;
mod server;
mod stdio;
mod tools;
pub mod views;

pub use api::{IdentityApi, LocalApi};
pub use error::{ErrorBody, ToolError};
pub use http::{AllowedHosts, DEFAULT_MAX_REQUEST_BYTES, MCP_PATH, McpHttpSettings, http_router};
pub use rest::{DEFAULT_URL, RestApi};
pub use stdio::{run_stdio, serve_io, serve_stdio};
pub use tools::{DEFAULT_LIMIT, DEFAULT_WAIT_SECONDS};
