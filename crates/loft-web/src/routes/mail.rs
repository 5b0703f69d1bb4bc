//! `/v0/messages` and `/v0/threads`: the calling identity's mailbox.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use loft_core::mail::{ForwardMail, Message, MessagePatch, MessageSummary, ReplyMail, SendMail, Thread, ThreadSummary};
use loft_core::search::SearchHit;
use loft_core::service::{
    Deleted, GetThreadParams, ListMessagesParams, ListThreadsParams, Page, RescheduleRequest, SearchParams, WaitParams,
    WaitResult,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::created;
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, Auth};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send))
        .routes(routes!(list_messages))
        .routes(routes!(search_messages))
        .routes(routes!(wait_for_mail))
        .routes(routes!(get_message, update_message, delete_message))
        .routes(routes!(raw_message))
        .routes(routes!(get_attachment))
        .routes(routes!(reply))
        .routes(routes!(forward))
        .routes(routes!(cancel_scheduled))
        .routes(routes!(reschedule))
        .routes(routes!(list_threads))
        .routes(routes!(get_thread, update_thread, delete_thread))
}

/// Send a message. Recipients that are identities on this server have it in their inbox
/// before this returns; others are queued for SMTP delivery (see `delivery`).
#[utoipa::path(post, path = "/v0/messages/send", tag = "mail", request_body = SendMail,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same as the body's `idempotency_key`")),
    responses(
        (status = 201, description = "the sender's copy, with per-recipient delivery (status `pending_approval` when held for a reviewer)", body = Message),
        (status = 403, description = "the key lacks `mail:send`, or the sender's mode or a freeze forbids sending", body = ErrorBody),
        (status = 409, description = "the idempotency key was used for a different request", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, description = "a sending cap (`cap_reached`, with `Retry-After`) or a rate limit", body = ErrorBody)))]
async fn send(
    State(s): State<AppState>,
    Auth(actor): Auth,
    headers: HeaderMap,
    AppJson(mut req): AppJson<SendMail>,
) -> ApiResult<Response> {
    req.idempotency_key = idempotency_key(&headers, req.idempotency_key)?;
    Ok(created(s.loft.send(&actor, req).await?))
}

/// The key of a request: the `Idempotency-Key` header or the body's `idempotency_key` (the
/// same, if both are given).
pub(crate) fn idempotency_key(headers: &HeaderMap, body: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(h) = headers.get("idempotency-key") else {
        return Ok(body);
    };
    let bad = || {
        ApiError::from(
            loft_core::Error::invalid(
                "invalid_idempotency_key",
                "the Idempotency-Key header must be visible ASCII, and the same as `idempotency_key` if both are given",
            )
            .with_hint("send the key once, in the header or in the body"),
        )
    };
    let h = h.to_str().map_err(|_| bad())?.to_owned();
    match body {
        Some(b) if b != h => Err(bad()),
        _ => Ok(Some(h)),
    }
}

/// The caller's mailbox, newest first (inbox by default).
#[utoipa::path(get, path = "/v0/messages", tag = "mail", params(ListMessagesParams),
    responses((status = 200, body = Page<MessageSummary>), (status = 403, body = ErrorBody)))]
async fn list_messages(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppQuery(params): AppQuery<ListMessagesParams>,
) -> ApiResult<Response> {
    // A page kept while nothing was written is served as the JSON it was serialised to once.
    let page = s.loft.list_messages(&actor, params).await?;
    Ok(crate::json_bytes(page.json()?))
}

/// Search the caller's mailbox by words: messages in which every word of `q` occurs (in the
/// subject, the sender or recipients, or the body), best match first, each with where it
/// matched.
#[utoipa::path(get, path = "/v0/messages/search", tag = "mail", params(SearchParams),
    responses((status = 200, body = Page<SearchHit>), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn search_messages(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppQuery(params): AppQuery<SearchParams>,
) -> ApiResult<Json<Page<SearchHit>>> {
    Ok(Json(s.loft.search_messages(&actor, params).await?))
}

/// Wait up to `timeout_seconds` for inbox mail and return it (unread mail, or mail newer than
/// `after`): the inbox as a queue, without a polling loop in the agent.
#[utoipa::path(get, path = "/v0/messages/wait", tag = "mail", params(WaitParams),
    responses((status = 200, body = WaitResult), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn wait_for_mail(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppQuery(params): AppQuery<WaitParams>,
) -> ApiResult<Json<WaitResult>> {
    Ok(Json(s.loft.wait_for_mail(&actor, params).await?))
}

/// One message, whole; marks it read.
#[utoipa::path(get, path = "/v0/messages/{id}", tag = "mail",
    params(("id" = String, Path, description = "message id (`msg_...`)", pattern = r"^msg_[a-z2-7]{1,64}$")),
    responses((status = 200, body = Message), (status = 404, body = ErrorBody)))]
async fn get_message(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<Message>> {
    Ok(Json(s.loft.get_message(&actor, &id).await?))
}

/// The stored RFC 5322 message.
#[utoipa::path(get, path = "/v0/messages/{id}/raw", tag = "mail",
    params(("id" = String, Path, description = "message id", pattern = r"^msg_[a-z2-7]{1,64}$")),
    responses((status = 200, content_type = "message/rfc822", body = String), (status = 404, body = ErrorBody)))]
async fn raw_message(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Response> {
    let raw = s.loft.raw_message(&actor, &id).await?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], raw).into_response())
}

/// One attachment of a received message, its decoded bytes: `index` counts from 0 in the order
/// the message's `attachments` lists them. Served as a download (`Content-Disposition:
/// attachment`, sandboxed); types a browser would run (HTML, SVG, XML, JavaScript) are served
/// as `application/octet-stream`.
#[utoipa::path(get, path = "/v0/messages/{id}/attachments/{index}", tag = "mail",
    params(
        ("id" = String, Path, description = "message id", pattern = r"^msg_[a-z2-7]{1,64}$"),
        ("index" = u32, Path, description = "the attachment's place in `attachments`, from 0", minimum = 0, maximum = 99),
    ),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = ErrorBody)))]
async fn get_attachment(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath((id, index)): AppPath<(String, u32)>,
) -> ApiResult<Response> {
    let file = s.loft.get_attachment(&actor, &id, index).await?;
    let a = &file.attachment;
    let content_type = download_type(&a.content_type);
    let name = a.name.as_deref().unwrap_or("attachment");
    let disposition = format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{}",
        ascii_filename(name),
        percent_encode(name)
    );
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_DISPOSITION, disposition),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (
            header::CONTENT_SECURITY_POLICY,
            "sandbox; default-src 'none'".to_owned(),
        ),
    ];
    Ok((headers, file.bytes).into_response())
}

/// The type an attachment is served as: its own when a browser would only display it, else
/// `application/octet-stream` (a mail from anyone must not run script on this origin).
fn download_type(declared: &str) -> String {
    let ok_token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let Some((top, sub)) = declared.split_once('/') else {
        return "application/octet-stream".into();
    };
    let scriptable = matches!(top, "text" if sub != "plain" && sub != "csv" && sub != "calendar")
        || sub.contains("xml")
        || sub.contains("javascript")
        || sub.contains("html")
        || top == "multipart"
        || top == "message";
    if !ok_token(top) || !ok_token(sub) || scriptable {
        return "application/octet-stream".into();
    }
    format!("{top}/{sub}")
}

/// A file name reduced to printable ASCII without quotes or backslashes, for the plain
/// `filename=` parameter (the exact name is in `filename*`).
fn ascii_filename(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.trim().is_empty() {
        "attachment".into()
    } else {
        cleaned
    }
}

/// RFC 8187 percent-encoding of a UTF-8 value.
fn percent_encode(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Add or remove labels, mark read or unread, archive or unarchive, trash or restore
/// (`mail:manage`; docs/mailbox.md).
#[utoipa::path(patch, path = "/v0/messages/{id}", tag = "mail", request_body = MessagePatch,
    params(("id" = String, Path, description = "message id", pattern = r"^msg_[a-z2-7]{1,64}$")),
    responses((status = 200, body = Message), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`message_not_final`: held for a reviewer or scheduled, so not trashable yet", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update_message(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
    AppJson(patch): AppJson<MessagePatch>,
) -> ApiResult<Json<Message>> {
    Ok(Json(s.loft.update_message(&actor, &id, patch).await?))
}

/// Delete a message for ever, from the trash only (`mail:manage`): the caller's copy, its
/// labels and search entry go, and the shared content once no other copy refers to it; other
/// identities' copies are untouched, and the mailbox's usage goes down.
#[utoipa::path(delete, path = "/v0/messages/{id}", tag = "mail",
    params(("id" = String, Path, description = "message id", pattern = r"^msg_[a-z2-7]{1,64}$")),
    responses((status = 200, description = "the ids deleted", body = Deleted), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`not_in_trash`, `held_mail_kept`, `delivery_pending` or `sent_recently`", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn delete_message(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<Deleted>> {
    Ok(Json(s.loft.delete_message(&actor, &id).await?))
}

/// Reply in the same thread (`In-Reply-To`, `References`, `Re:` subject).
#[utoipa::path(post, path = "/v0/messages/{id}/reply", tag = "mail", request_body = ReplyMail,
    params(("id" = String, Path, description = "id of the message answered", pattern = r"^msg_[a-z2-7]{1,64}$"),
        ("Idempotency-Key" = Option<String>, Header, description = "the same as the body's `idempotency_key`")),
    responses((status = 201, body = Message), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the idempotency key was used for a different request", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "a sending cap (`cap_reached`, with `Retry-After`) or a rate limit", body = ErrorBody)))]
async fn reply(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    AppJson(mut req): AppJson<ReplyMail>,
) -> ApiResult<Response> {
    req.idempotency_key = idempotency_key(&headers, req.idempotency_key)?;
    Ok(created(s.loft.reply(&actor, &id, req).await?))
}

/// Forward a message of the caller's mailbox to new recipients: quoted below an optional
/// note, with a `Fwd:` subject, through the same checks and gate as a send.
#[utoipa::path(post, path = "/v0/messages/{id}/forward", tag = "mail", request_body = ForwardMail,
    params(("id" = String, Path, description = "id of the message forwarded (your copy)", pattern = r"^msg_[a-z2-7]{1,64}$"),
        ("Idempotency-Key" = Option<String>, Header, description = "the same as the body's `idempotency_key`")),
    responses((status = 201, description = "the sender's copy (status `pending_approval` when held for a reviewer)", body = Message),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the idempotency key was used for a different request", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn forward(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    AppJson(mut req): AppJson<ForwardMail>,
) -> ApiResult<Response> {
    req.idempotency_key = idempotency_key(&headers, req.idempotency_key)?;
    Ok(created(s.loft.forward(&actor, &id, req).await?))
}

/// Cancel a scheduled mail before its `send_at`: it is never sent (status `canceled`). For
/// its composer (`mail:send`) or the operator.
#[utoipa::path(post, path = "/v0/messages/{id}/cancel", tag = "mail",
    params(("id" = String, Path, description = "the sender's copy (`msg_...`)", pattern = r"^msg_[a-z2-7]{1,64}$")),
    responses((status = 200, description = "the sender's copy, now `canceled`", body = Message),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "not scheduled: sent already, held for a reviewer, or canceled", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn cancel_scheduled(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<Message>> {
    Ok(Json(s.loft.cancel_scheduled(&actor, &id).await?))
}

/// Move a scheduled mail to another time (a time now sends it within about a second). For its
/// composer (`mail:send`) or the operator.
#[utoipa::path(post, path = "/v0/messages/{id}/reschedule", tag = "mail", request_body = RescheduleRequest,
    params(("id" = String, Path, description = "the sender's copy (`msg_...`)", pattern = r"^msg_[a-z2-7]{1,64}$")),
    responses((status = 200, description = "the sender's copy with its new `send_at`", body = Message),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "not scheduled: sent already, held for a reviewer, or canceled", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn reschedule(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<RescheduleRequest>,
) -> ApiResult<Json<Message>> {
    Ok(Json(s.loft.reschedule(&actor, &id, req).await?))
}

/// Conversations, most recently active first.
#[utoipa::path(get, path = "/v0/threads", tag = "mail", params(ListThreadsParams),
    responses((status = 200, body = Page<ThreadSummary>)))]
async fn list_threads(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppQuery(params): AppQuery<ListThreadsParams>,
) -> ApiResult<Json<Page<ThreadSummary>>> {
    Ok(Json(s.loft.list_threads(&actor, params).await?))
}

/// One conversation, oldest message first: its mail outside the trash, or with `folder=trash`
/// its trashed mail.
#[utoipa::path(get, path = "/v0/threads/{id}", tag = "mail",
    params(("id" = String, Path, description = "thread id (`thr_...`)", pattern = r"^thr_[a-z2-7]{1,64}$"), GetThreadParams),
    responses((status = 200, body = Thread), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_thread(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
    AppQuery(params): AppQuery<GetThreadParams>,
) -> ApiResult<Json<Thread>> {
    Ok(Json(s.loft.get_thread(&actor, &id, params).await?))
}

/// The same change on every copy of the thread in the caller's mailbox, trashed ones included,
/// in one transaction (`mail:manage`): labels, read state, archive, trash or restore. Returns
/// the whole thread, trashed copies included.
#[utoipa::path(patch, path = "/v0/threads/{id}", tag = "mail", request_body = MessagePatch,
    params(("id" = String, Path, description = "thread id (`thr_...`)", pattern = r"^thr_[a-z2-7]{1,64}$")),
    responses((status = 200, body = Thread), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`message_not_final`: a copy is held for a reviewer or scheduled", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update_thread(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
    AppJson(patch): AppJson<MessagePatch>,
) -> ApiResult<Json<Thread>> {
    Ok(Json(s.loft.update_thread(&actor, &id, patch).await?))
}

/// Delete a thread for ever: every copy of it in the caller's mailbox, all of which must be in
/// the trash (`mail:manage`).
#[utoipa::path(delete, path = "/v0/threads/{id}", tag = "mail",
    params(("id" = String, Path, description = "thread id (`thr_...`)", pattern = r"^thr_[a-z2-7]{1,64}$")),
    responses((status = 200, description = "the ids deleted", body = Deleted), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`not_in_trash`, `held_mail_kept`, `delivery_pending` or `sent_recently`", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn delete_thread(
    State(s): State<AppState>,
    Auth(actor): Auth,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<Deleted>> {
    Ok(Json(s.loft.delete_thread(&actor, &id).await?))
}
