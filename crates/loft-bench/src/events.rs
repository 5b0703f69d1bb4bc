//! Event latency: from the start of a send to the recipient learning of it, by the event
//! stream (`GET /v0/events`, server-sent events) and by `mail_wait`'s long poll. One send at a
//! time. The server wakes both before it answers the send, so a sample is about the send's own
//! time (compare `delivery: the send call alone`); measuring from the send's return would read 0.

use std::time::{Duration, Instant};

use loft_client::api;

use crate::gate::{Block, finish};
use crate::load::process_cpu;
use crate::{Agent, failed, mail, progress};

pub struct EventRun {
    /// Send started → `message.received` read from the recipient's stream.
    pub stream: Block,
    /// Send started → the recipient's pending `GET /v0/messages/wait` answered.
    pub wait: Block,
}

pub async fn events(samples: u32, from: &Agent, to: &Agent) -> Result<EventRun, String> {
    progress(&format!(
        "events: {samples} sends seen on the stream, {samples} by mail_wait"
    ));
    let q = api::EventParams {
        types: Some("message.received".into()),
        ..Default::default()
    };
    let mut stream = to
        .client
        .event_stream(&q, None)
        .await
        .map_err(failed("GET /v0/events (stream)"))?;
    let mut lat = Vec::with_capacity(samples as usize);
    let cpu0 = process_cpu();
    for i in 0..samples {
        let t = Instant::now();
        from.client
            .call(api::send_mail(&mail(&to.address, format!("event {i}"))))
            .await
            .map_err(failed("POST /v0/messages/send"))?;
        let e = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .map_err(|_| "no event within 10 s of a send".to_owned())?
            .map_err(failed("reading the event stream"))?
            .ok_or("the server ended the event stream")?;
        lat.push(t.elapsed());
        if e.payload["subject"] != format!("event {i}") {
            return Err(format!("event {i}: unexpected {}", e.payload));
        }
    }
    let stream_block = finish(lat, cpu0, samples);

    // Start after the newest mail (the stream's sends are unread), so that each wait answers
    // with exactly the next send.
    let mut cursor: Option<String> = None;
    loop {
        let r = to
            .client
            .call(api::wait_for_mail(&api::WaitParams {
                timeout_seconds: Some(0),
                after: cursor.clone(),
                limit: Some(200),
            }))
            .await
            .map_err(failed("GET /v0/messages/wait"))?;
        cursor = Some(r.cursor);
        if r.items.is_empty() {
            break;
        }
    }
    let mut cursor = cursor.unwrap_or_default();
    let mut lat = Vec::with_capacity(samples as usize);
    let cpu0 = process_cpu();
    for i in 0..samples {
        let waiter = to.client.clone();
        let after = cursor.clone();
        let wait = tokio::spawn(async move {
            let r = waiter
                .call(api::wait_for_mail(&api::WaitParams {
                    timeout_seconds: Some(30),
                    after: Some(after),
                    ..Default::default()
                }))
                .await;
            (r, Instant::now())
        });
        // Let the wait reach the server before the send.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sent = Instant::now();
        from.client
            .call(api::send_mail(&mail(&to.address, format!("wait {i}"))))
            .await
            .map_err(failed("POST /v0/messages/send"))?;
        let (r, answered) = wait.await.map_err(|e| e.to_string())?;
        let r = r.map_err(failed("GET /v0/messages/wait"))?;
        if r.items.first().map(|m| m.subject.as_str()) != Some(format!("wait {i}").as_str()) {
            return Err(format!("wait {i} answered with something else, or timed out"));
        }
        lat.push(answered.saturating_duration_since(sent));
        cursor = r.cursor;
    }
    Ok(EventRun {
        stream: stream_block,
        wait: finish(lat, cpu0, samples),
    })
}
