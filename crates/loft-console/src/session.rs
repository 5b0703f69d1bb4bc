//! Who is asking: the session cookie turned into a [`ConsoleUser`] ([`User`]), and the CSRF and
//! `Origin` checks every state change passes ([`Post`]).

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use loft_core::console;
use loft_core::service::{ConsoleUser, RequestContext};
use serde::de::DeserializeOwned;

use crate::ConsoleState;
use crate::view;

/// The session cookie's name.
pub const COOKIE: &str = "loft_session";
/// Largest form body read (an edited mail fits).
const MAX_FORM_BYTES: usize = 2 * 1024 * 1024;

/// The request's context for the audit log: the REST door's request id when it set one, and
/// the client address.
pub fn context(parts: &Parts) -> RequestContext {
    RequestContext {
        request_id: parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        remote_addr: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
    }
}

/// The session token from the `Cookie` header.
pub fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// The `Set-Cookie` value of a new session.
pub fn set_cookie(token: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", 0, secure)
}

/// The signed-in person. A request without a good session is sent to the sign-in page
/// (a page load) or refused with 401 (anything else).
pub struct User(pub ConsoleUser);

impl FromRequestParts<ConsoleState> for User {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let ctx = context(parts);
        let Some(token) = token(&parts.headers) else {
            return Err(not_signed_in(parts));
        };
        match state.loft.console_session(&token, ctx).await {
            Ok(u) => Ok(Self(u)),
            Err(loft_core::Error::Unauthenticated(_)) => Err(not_signed_in(parts)),
            Err(e) => Err(view::error_page(None, &e)),
        }
    }
}

fn not_signed_in(parts: &Parts) -> Response {
    let htmx = parts.headers.contains_key("hx-request");
    if parts.method == Method::GET && !htmx {
        // Back to the page asked for after sign-in (a link from a notification, say).
        let asked = parts
            .uri
            .path_and_query()
            .map_or("/", axum::http::uri::PathAndQuery::as_str);
        match safe_next(asked).filter(|p| *p != "/") {
            Some(p) => Redirect::to(&sign_in_path(p)).into_response(),
            None => Redirect::to("/sign-in").into_response(),
        }
    } else {
        let mut res = view::message_page(
            None,
            StatusCode::UNAUTHORIZED,
            "Signed out",
            "Your session has ended. Sign in again.",
        );
        if htmx {
            // htmx follows this header with a full page load.
            res.headers_mut()
                .insert("hx-redirect", header::HeaderValue::from_static("/sign-in"));
        }
        res
    }
}

/// The sign-in page that leads back to `next` (a path [`safe_next`] accepted).
pub fn sign_in_path(next: &str) -> String {
    format!(
        "/sign-in?{}",
        serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
    )
}

/// Longest `next` path kept.
const MAX_NEXT_CHARS: usize = 2000;

/// `next` when it is a path on this server, `None` otherwise: no open redirect. It must begin
/// with exactly one `/` (`//host` and `/\host` are another server to a browser), hold no
/// backslash (browsers read it as `/`), no space or control character, and be printable
/// ASCII (a `Location` value; a browser sends a path percent-encoded anyway).
pub fn safe_next(next: &str) -> Option<&str> {
    let rest = next.strip_prefix('/')?;
    let ok = !rest.starts_with('/')
        && next.len() <= MAX_NEXT_CHARS
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    ok.then_some(next)
}

/// Refuses a POST whose `Origin` (when the browser sends one) is not this server.
pub fn same_origin(headers: &HeaderMap) -> Result<(), Response> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let origin = origin.to_str().unwrap_or("");
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    if !host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(view::message_page(
            None,
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was sent from another site.",
        ))
    }
}

/// A form posted by the signed-in person, with the session's CSRF token (field `csrf`):
/// without it, or with another, 403 and nothing done.
pub struct Post<T>(pub ConsoleUser, pub T);

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<ConsoleState> for Post<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        same_origin(&parts.headers)?;
        let User(user) = User::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES).await.map_err(|_| {
            view::message_page(
                Some(&user),
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "The form is too large.",
            )
        })?;
        check_csrf(&user, &bytes)?;
        let form = serde_urlencoded::from_bytes::<T>(&bytes).map_err(|e| {
            view::message_page(
                Some(&user),
                StatusCode::UNPROCESSABLE_ENTITY,
                "Form not understood",
                &format!("The form could not be read: {e}"),
            )
        })?;
        Ok(Self(user, form))
    }
}

fn check_csrf(user: &ConsoleUser, body: &Bytes) -> Result<(), Response> {
    let presented = serde_urlencoded::from_bytes::<CsrfField>(body)
        .map(|f| f.csrf)
        .unwrap_or_default();
    if console::csrf_matches(&user.csrf, &presented) {
        Ok(())
    } else {
        Err(view::message_page(
            Some(user),
            StatusCode::FORBIDDEN,
            "Refused",
            "This form is missing its security token or comes from an old page. Reload the page and try again.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_a_local_path_only() {
        for good in [
            "/",
            "/approvals/apr_1",
            "/approvals?order=oldest&identity=idt_2",
            "/a/b%2F%2Fc",
        ] {
            assert_eq!(safe_next(good), Some(good), "{good}");
        }
        for bad in [
            "",
            "approvals",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "/\\/evil.example",
            "/a\\b",
            "https://evil.example/",
            "http:/evil.example",
            "javascript:alert(1)",
            " /approvals",
            "/approvals\r\nSet-Cookie: x=1",
            "/appro vals",
            "/\tevil",
            "/é",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
        assert_eq!(safe_next(&format!("/{}", "a".repeat(3000))), None);
    }
}
