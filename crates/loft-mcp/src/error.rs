//! Core errors → what the MCP door says, in this one place.
//!
//! A tool that fails returns a tool *result* with `isError: true` whose one text block is
//! `{"error": {"code", "message", "hint"}}`, with the stable codes REST uses (`missing_scope`,
//! `not_found`, `invalid_address`, `unknown_recipient`, ...), so that the model reads what went
//! wrong and can recover. JSON-RPC errors (`ErrorData`) are kept for protocol problems only: an
//! unknown tool name, or a request that is not a tool call at all. Arguments that do not fit a
//! tool's input schema are a tool result (`invalid_arguments`): MCP 2025-11-25 asks for input
//! validation errors to be tool results so that the model can correct its call.
//!
//! | core error        | tool result code            | HTTP status at `/mcp` (authentication only) |
//! |-------------------|-----------------------------|---------------------------------------------|
//! | `Unauthenticated` | its code (`unauthenticated`) | 401 with `WWW-Authenticate: Bearer`         |
//! | `MissingScope`    | `missing_scope`             | 403                                         |
//! | `Forbidden`       | its code                    | 403                                         |
//! | `PolicyDenied`    | its code                    | 403                                         |
//! | `NotFound`        | `not_found`                 | 404                                         |
//! | `Conflict`        | its code                    | 409                                         |
//! | `Invalid`         | its code                    | 422                                         |
//! | `TooManyRequests` | its code (`rate_limited`, `quota_exceeded`, ...); the message names the seconds to wait | 429 with `Retry-After` |
//! | `Unavailable`     | `unavailable` (logged)      | 503                                         |
//! | `Internal`        | `internal` (logged; generic message) | 500                                |
//!
//! Internal details are logged here, once, and never shown to the model.

use axum::http::StatusCode;
use loft_core::Error;
use rmcp::model::{CallToolResult, ContentBlock};
use serde::{Deserialize, Serialize};

/// What a model is told when a tool fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolError {
    /// Stable and machine-readable: the same codes as the REST API.
    pub code: String,
    /// What went wrong, for the model (and the person reading its log).
    pub message: String,
    /// How to fix the call, where there is a known fix.
    pub hint: Option<String>,
}

/// The JSON body of a failed tool call (and of a refused HTTP request at `/mcp`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ToolError,
}

impl ToolError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            hint: None,
        }
    }

    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Arguments that do not fit the tool's input schema (a missing field, a wrong type).
    pub fn invalid_arguments(tool: &str, error: &serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = error.path().to_string();
        let inner = error.inner().to_string();
        // serde_json appends " at line X column Y", which means nothing to a model.
        let inner = inner.split(" at line ").next().unwrap_or(&inner);
        let at = if path.is_empty() || path == "." {
            String::new()
        } else {
            format!(" (at `{path}`)")
        };
        Self::new(
            "invalid_arguments",
            format!("the arguments do not fit `{tool}`: {inner}{at}"),
        )
        .with_hint("call the tool again with arguments that follow its input schema")
    }

    /// The JSON a model reads: `{"error": {"code", "message", "hint"}}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&ErrorBody { error: self.clone() })
            .unwrap_or_else(|_| format!("{{\"error\": {{\"code\": \"{}\"}}}}", self.code))
    }

    /// A tool result with `isError: true` and the error JSON as its one text block. It carries
    /// no `structuredContent`: that is reserved for results that match the tool's output schema.
    pub(crate) fn into_call_result(self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(self.to_json())])
    }
}

impl From<Error> for ToolError {
    fn from(e: Error) -> Self {
        match &e {
            Error::Internal(m) => tracing::error!(error = %m, "internal error in an MCP tool call"),
            Error::Unavailable(m) => tracing::warn!(error = %m, "MCP tool call: Loft is unavailable"),
            _ => tracing::debug!(error = %e, code = %e.code(), "MCP tool call refused"),
        }
        let message = match &e {
            // Core's public text speaks of the database; from the stdio door the missing
            // dependency may be the Loft server itself. The log above has the precise reason.
            Error::Unavailable(_) => "Loft cannot serve this request right now".to_owned(),
            other => other.public_message(),
        };
        Self {
            code: e.code().into_owned(),
            message,
            hint: e.hint(),
        }
    }
}

/// The HTTP status of a request refused before MCP (authentication at `/mcp`).
pub(crate) fn http_status(e: &Error) -> StatusCode {
    match e {
        Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Error::MissingScope { .. } | Error::Forbidden(_) | Error::PolicyDenied(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Upstream(_) => StatusCode::BAD_GATEWAY,
        Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::*;
    use loft_core::keys::Scope;

    #[test]
    fn core_errors_keep_their_codes_and_hints() {
        let e = ToolError::from(Error::MissingScope { scope: Scope::MailSend });
        assert_eq!(e.code, "missing_scope");
        assert!(e.message.contains("mail:send"), "{e:?}");
        assert!(e.hint.is_some());

        let e = ToolError::from(Error::invalid("unknown_recipient", "no such identity").with_hint("check it"));
        assert_eq!(
            (e.code.as_str(), e.message.as_str(), e.hint.as_deref()),
            ("unknown_recipient", "no such identity", Some("check it"))
        );
    }

    #[test]
    fn internal_details_are_never_shown() {
        let e = ToolError::from(Error::internal("sqlite: disk I/O error at /var/lib/loft"));
        assert_eq!(e.code, "internal");
        assert!(!e.message.contains("sqlite"), "{e:?}");
        let e = ToolError::from(Error::Unavailable("pool timed out on 10.0.0.5".into()));
        assert_eq!(e.code, "unavailable");
        assert!(!e.message.contains("10.0.0.5"), "{e:?}");
    }

    #[test]
    fn the_result_is_one_json_text_block_marked_as_error() {
        let r = ToolError::from(Error::not_found("message")).into_call_result();
        assert_eq!(r.is_error, Some(true));
        assert_eq!(r.content.len(), 1);
        assert!(r.structured_content.is_none());
        let text = &r.content[0].as_text().unwrap().text;
        let body: ErrorBody = serde_json::from_str(text).unwrap();
        assert_eq!(body.error.code, "not_found");
        let raw: serde_json::Value = serde_json::from_str(text).unwrap();
        assert!(
            raw["error"].as_object().unwrap().contains_key("hint"),
            "hint is always present: {text}"
        );
    }
}
