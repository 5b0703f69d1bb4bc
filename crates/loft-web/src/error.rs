//! Core errors → HTTP responses, in this one place.
//!
//! | core error          | status | notes                                   |
//! |---------------------|--------|-----------------------------------------|
//! | `Unauthenticated`   | 401    | with `WWW-Authenticate: Bearer`          |
//! | `MissingScope`      | 403    | code `missing_scope`, names the scope    |
//! | `Forbidden`         | 403    |                                         |
//! | `PolicyDenied`      | 403    |                                         |
//! | `NotFound`          | 404    | also for other identities' data          |
//! | `Conflict`          | 409    |                                         |
//! | `Invalid`           | 422    | 400 for unparseable JSON (see extract)  |
//! | `TooLarge`          | 413    | a configured size limit (attachments)   |
//! | `Unavailable`       | 503    | logged                                  |
//! | `Upstream`          | 502    | a brokered request's remote host failed |
//! | `Internal`          | 500    | logged; the client sees a generic text  |
//!
//! Every error body is `{"error": {"code", "message", "hint", "request_id"}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use loft_core::Error;
/// The body (defined in core, shared with `loft-client`).
pub use loft_core::error::{ErrorBody, ErrorDetail};

/// A response-ready error: a core error, or one found by the HTTP layer itself.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
    /// Seconds for a `Retry-After` header (429 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            retry_after: None,
            status,
            code: code.into(),
            message: message.into(),
            hint: None,
        }
    }

    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
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
        };
        let retry_after = match &e {
            Error::TooManyRequests { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        };
        let request_id = crate::current_request_id();
        match &e {
            Error::Internal(m) => tracing::error!(request_id, error = %m, "internal error"),
            Error::Unavailable(m) => tracing::warn!(request_id, error = %m, "database unavailable"),
            _ => tracing::debug!(request_id, error = %e, "request refused"),
        }
        Self {
            status,
            code: e.code().into_owned(),
            message: e.public_message(),
            hint: e.hint(),
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                hint: self.hint,
                request_id: crate::current_request_id(),
            },
        };
        let mut res = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
