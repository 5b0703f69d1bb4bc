//! `/v0/events` over HTTP: pages, and the server-sent event stream resumed with
//! `Last-Event-ID`.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures::StreamExt;
use tower::ServiceExt;

use crate::{App, assert_error};

/// Opens a stream for `key` (resuming after `last`), returning its body's chunks.
async fn open(app: &App, key: &str, last: Option<&str>) -> axum::body::BodyDataStream {
    let mut req = Request::get("/v0/events")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::ACCEPT, "text/event-stream");
    if let Some(id) = last {
        req = req.header("last-event-id", id);
    }
    let res = app
        .router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    res.into_body().into_data_stream()
}

/// Reads SSE messages (`id`, `event`, `data`) until `n` events came; comments are skipped.
async fn read(stream: &mut axum::body::BodyDataStream, n: usize) -> Vec<(String, String, serde_json::Value)> {
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an event within 5 s")
            .expect("the stream is open")
            .unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let message: String = buf.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
            for line in message.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    v.clone_into(&mut id);
                } else if let Some(v) = line.strip_prefix("event: ") {
                    v.clone_into(&mut event);
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if !event.is_empty() {
                out.push((id, event, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_stream_resumes_without_a_gap_or_a_repeat() {
    let app = App::new().await;
    let (_, _, a) = app.identity("a").await;
    let (b_id, b_addr, b) = app.identity("b").await;
    let (_, c_addr, _) = app.identity("c").await;

    let mut stream = open(&app, &b, None).await;
    // Mail for someone else is not in Bob's stream; his own comes at once.
    app.send(&a, &c_addr, "for carol").await;
    app.send(&a, &b_addr, "first").await;
    let got = read(&mut stream, 1).await;
    assert_eq!(got[0].1, "message.received");
    assert_eq!(got[0].2["payload"]["subject"], "first");
    assert_eq!(got[0].2["identity"], b_id.as_str());
    assert_eq!(got[0].0, got[0].2["seq"].to_string());
    let last = got[0].0.clone();
    drop(stream);

    // Disconnected: two more arrive, then the client resumes from the last id it saw.
    app.send(&a, &b_addr, "second").await;
    app.send(&a, &b_addr, "third").await;
    let mut stream = open(&app, &b, Some(&last)).await;
    let got = read(&mut stream, 2).await;
    let subjects: Vec<_> = got.iter().map(|g| g.2["payload"]["subject"].clone()).collect();
    assert_eq!(subjects, ["second", "third"]);
    assert!(got[0].0.parse::<i64>().unwrap() > last.parse::<i64>().unwrap());

    // The same as a JSON page, and filtered by type.
    let page = app
        .get(&format!("/v0/events?after={last}&types=message.received"), &b)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2, "{}", page.text);
    assert_eq!(page.body["next_after"], format!("evt_{}", got[1].0));
}

#[tokio::test]
async fn events_refuse_what_the_key_may_not_see() {
    let app = App::new().await;
    let (_, _, a) = app.identity("a").await;
    let (b_id, _, _) = app.identity("b").await;
    assert_error(
        &app.get(&format!("/v0/events?identity={b_id}"), &a).await,
        StatusCode::FORBIDDEN,
        "operator_only",
    );
    assert_error(
        &app.get("/v0/events?types=message.exploded", &a).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_event_type",
    );
    assert_error(
        &app.get("/v0/events?after=yesterday", &a).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_event_id",
    );
    let r = app.call(axum::http::Method::GET, "/v0/events", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The operator reads everyone's, narrowed to one identity.
    let all = app.get(&format!("/v0/events?identity={b_id}"), &app.admin).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
}

/// A stream whose key is revoked meanwhile ends with an `error` message and sends nothing more.
#[tokio::test]
async fn a_revoked_keys_stream_ends() {
    let app = App::new().await;
    let (_, _, a) = app.identity("a").await;
    let (b_id, b_addr, b) = app.identity("b").await;
    let mut stream = open(&app, &b, None).await;
    app.send(&a, &b_addr, "before").await;
    assert_eq!(read(&mut stream, 1).await[0].1, "message.received");
    let r = app
        .post(
            &format!("/v0/identities/{b_id}/revoke"),
            &app.admin,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let got = read(&mut stream, 1).await;
    assert_eq!(got[0].1, "error", "{got:?}");
    assert_eq!(got[0].2["error"]["code"], "unauthenticated", "{got:?}");
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap();
    assert!(end.is_none(), "the stream ended");
}
