//! The one semantic error type of Loft.
//!
//! Variants say what went wrong in domain terms (not found, conflict, forbidden, ...), never
//! which library failed. Each door (HTTP, MCP, CLI, SMTP) maps them once, in one file.
//! `Internal` carries a message for the server log only; doors never show it to clients.
//!
//! [`ErrorBody`] is the envelope the REST door writes an error into and `loft-client` reads it
//! from (a wire type, defined once; see [`crate::wire`]). Which status goes with which variant is
//! the REST door's business, not this module's.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::keys::Scope;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error body every route returns.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable, machine-readable: act on this.
    pub code: String,
    /// For humans and models.
    pub message: String,
    /// How to fix the request, where there is a known fix.
    pub hint: Option<String>,
    /// Quote this when asking for help; it is in the server log and the audit log.
    pub request_id: Option<String>,
}

/// What a client is told: a stable machine-readable code, a human message, and a hint on how
/// to fix it where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    pub code: Cow<'static, str>,
    pub message: String,
    pub hint: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The caller did not prove who it is (no key, unknown key, revoked or expired key).
    #[error("{}", .0.message)]
    Unauthenticated(Detail),
    /// The caller is known but lacks a scope.
    #[error("this key lacks the scope `{scope}`")]
    MissingScope { scope: Scope },
    /// The caller is known but may not do this for another reason.
    #[error("{}", .0.message)]
    Forbidden(Detail),
    /// The thing does not exist, or exists but belongs to someone else (never say which).
    #[error("{}", .0.message)]
    NotFound(Detail),
    /// The request conflicts with what is stored (a taken address, a duplicate name).
    #[error("{}", .0.message)]
    Conflict(Detail),
    /// The request itself is malformed or out of bounds.
    #[error("{}", .0.message)]
    Invalid(Detail),
    /// Allowed in principle, but a policy stops it now.
    #[error("{}", .0.message)]
    PolicyDenied(Detail),
    /// Part of the request is larger than a configured limit (the message names it).
    #[error("{}", .0.message)]
    TooLarge(Detail),
    /// Too many requests, or too many refused keys, from this key or address (or a rate quota
    /// used up): retry after `retry_after_secs`.
    #[error("{}", .detail.message)]
    TooManyRequests { detail: Detail, retry_after_secs: u64 },
    /// A dependency (the database) cannot serve the request right now.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A remote service that Loft called on the caller's behalf (a brokered HTTP request)
    /// failed or timed out. The message names the host only and may be shown.
    #[error("{}", .0.message)]
    Upstream(Detail),
    /// A bug or an unexpected failure; the text is for the server log only.
    #[error("internal error: {0}")]
    Internal(String),
}

fn detail(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Detail {
    Detail {
        code: code.into(),
        message: message.into(),
        hint: None,
    }
}

impl Error {
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::Unauthenticated(detail("unauthenticated", message))
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden(detail(code, message))
    }
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(detail("not_found", format!("{what} not found")))
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict(detail(code, message))
    }
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid(detail(code, message))
    }
    pub fn policy_denied(code: &'static str, message: impl Into<String>) -> Self {
        Self::PolicyDenied(detail(code, message))
    }
    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::TooLarge(detail(code, message))
    }
    pub fn upstream(code: &'static str, message: impl Into<String>) -> Self {
        Self::Upstream(detail(code, message))
    }
    pub fn too_many(code: &'static str, message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::TooManyRequests {
            detail: detail(code, message),
            retry_after_secs: retry_after_secs.max(1),
        }
    }
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::Internal(message.to_string())
    }

    /// Adds a hint telling the client how to fix the request.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        if let Self::Unauthenticated(d)
        | Self::Forbidden(d)
        | Self::NotFound(d)
        | Self::Conflict(d)
        | Self::Invalid(d)
        | Self::PolicyDenied(d)
        | Self::TooLarge(d)
        | Self::Upstream(d)
        | Self::TooManyRequests { detail: d, .. } = &mut self
        {
            d.hint = Some(hint.into());
        }
        self
    }

    /// The stable code a client can act on.
    pub fn code(&self) -> Cow<'static, str> {
        match self {
            Self::Unauthenticated(d)
            | Self::Forbidden(d)
            | Self::NotFound(d)
            | Self::Conflict(d)
            | Self::Invalid(d)
            | Self::PolicyDenied(d)
            | Self::TooLarge(d)
            | Self::Upstream(d)
            | Self::TooManyRequests { detail: d, .. } => d.code.clone(),
            Self::MissingScope { .. } => "missing_scope".into(),
            Self::Unavailable(_) => "unavailable".into(),
            Self::Internal(_) => "internal".into(),
        }
    }

    /// The message a client may see. Internal details are replaced by a generic sentence.
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => "internal error; the server log has the details".into(),
            Self::Unavailable(_) => "the server cannot reach its database right now".into(),
            other => other.to_string(),
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Unauthenticated(d)
            | Self::Forbidden(d)
            | Self::NotFound(d)
            | Self::Conflict(d)
            | Self::Invalid(d)
            | Self::PolicyDenied(d)
            | Self::TooLarge(d)
            | Self::Upstream(d)
            | Self::TooManyRequests { detail: d, .. } => d.hint.clone(),
            Self::MissingScope { scope } => Some(format!(
                "use a key that carries `{scope}`: the operator can add it to the identity (`loft identity update ID --scopes ...`), which its primary key follows; extra keys keep the scopes they were minted with"
            )),
            Self::Unavailable(_) => Some("retry shortly".into()),
            Self::Internal(_) => None,
        }
    }
}
