//! `/v0/events`: the caller's events, as a JSON page or as a server-sent event stream.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::ACCEPT;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use loft_core::events::Event;
use loft_core::service::{Actor, EventPage, EventParams, EventScope};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppQuery, Auth};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// How long one wait of a stream lasts before it looks again (a keep-alive comment goes out
/// every [`KEEP_ALIVE`] meanwhile, from axum, without a query).
const ROUND: Duration = Duration::from_hours(1);
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The caller's events: an identity key its own (the types its scopes allow; a reviewer key
/// also every identity's `approval.*`), the operator everyone's (`identity` narrows it).
/// With `Accept: text/event-stream`, an endless stream: each event's SSE `id` is its sequence
/// number, and reconnecting with `Last-Event-ID` resumes after it without a gap or a repeat;
/// without `after` or `Last-Event-ID` it starts with the next new event. Otherwise a JSON page,
/// oldest first, from `after` (or the oldest event).
#[utoipa::path(get, path = "/v0/events", tag = "events",
    params(EventParams,
        ("Last-Event-ID" = Option<String>, Header, description = "a stream resumes after this event (wins over `after`)")),
    responses(
        // The stream (`text/event-stream`) is described, not declared: schema-driven clients
        // and fuzzers would otherwise ask for it and wait on it for ever.
        (status = 200, description = "a page of events; with `Accept: text/event-stream`, the stream \
            (each message: `id` the event's seq, `event` its type, `data` the event as JSON)", body = EventPage),
        (status = 403, description = "another identity's events, or a type the key's scopes do not allow", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn events(
    State(s): State<AppState>,
    Auth(actor): Auth,
    headers: HeaderMap,
    AppQuery(mut params): AppQuery<EventParams>,
) -> ApiResult<Response> {
    let stream = headers
        .get_all(ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("text/event-stream")));
    if !stream {
        return Ok(Json(s.loft.list_events(&actor, params).await?).into_response());
    }
    if let Some(last) = headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        params.after = Some(last.to_owned());
    }
    let scope = s.loft.event_scope(&actor, &params)?;
    let position = s.loft.stream_start(params.after.as_deref()).await?;
    let state = Stream {
        s,
        actor,
        scope,
        position,
        queue: std::collections::VecDeque::new(),
        done: false,
    };
    let body = futures::stream::unfold(state, Stream::next);
    Ok(Sse::new(body)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

struct Stream {
    s: AppState,
    actor: Actor,
    scope: EventScope,
    position: i64,
    queue: std::collections::VecDeque<Event>,
    done: bool,
}

impl Stream {
    /// The next SSE message; the stream ends after an `error` message (a key no longer valid,
    /// scopes changed, a store failure) or when the server stops.
    async fn next(mut self) -> Option<(Result<SseEvent, std::convert::Infallible>, Self)> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                let msg = SseEvent::default()
                    .id(e.seq.to_string())
                    .event(e.kind.as_str())
                    .json_data(&e)
                    .unwrap_or_else(|_| SseEvent::default().comment("an event could not be encoded"));
                return Some((Ok(msg), self));
            }
            if self.done || self.s.loft.is_stopping() {
                return None;
            }
            let (found, next) = match self.s.loft.next_events(&self.scope, self.position, ROUND).await {
                Ok(r) => r,
                Err(e) => return Some(self.fail(&e)),
            };
            self.position = next;
            if found.is_empty() {
                continue;
            }
            // Nothing goes out unless the key still stands, and with the scopes it had.
            match self.s.loft.reauthenticate(&self.actor).await {
                Ok(now) if now.scopes() == self.actor.scopes() => {}
                Ok(_) => {
                    let e = loft_core::Error::unauthenticated("the key's scopes changed: reconnect to continue");
                    return Some(self.fail(&e));
                }
                Err(e) => return Some(self.fail(&e)),
            }
            self.queue.extend(found);
        }
    }

    fn fail(mut self, e: &loft_core::Error) -> (Result<SseEvent, std::convert::Infallible>, Self) {
        self.done = true;
        let body = serde_json::json!({ "error": { "code": e.code(), "message": e.public_message() } });
        (Ok(SseEvent::default().event("error").data(body.to_string())), self)
    }
}
