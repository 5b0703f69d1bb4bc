//! `/v0/messages` and `/v0/threads`.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::{App, assert_error};

#[tokio::test]
async fn agent_to_agent_mail_reply_and_thread() {
    let app = App::new().await;
    let (_, r_addr, r_key) = app.identity("researcher").await;
    let (_, w_addr, w_key) = app.identity("writer").await;

    let sent = app
        .post(
            "/v0/messages/send",
            &r_key,
            json!({ "to": w_addr, "subject": "Brief", "text": "Please write 300 words." }),
        )
        .await;
    assert_eq!(sent.status, StatusCode::CREATED, "{}", sent.text);
    assert_eq!(sent.body["folder"], "sent");
    assert_eq!(sent.body["delivery"][0]["status"], "delivered");
    assert_eq!(sent.body["from"], r_addr.as_str());

    // In the writer's inbox before the send returned.
    let inbox = app.get("/v0/messages", &w_key).await;
    assert_eq!(inbox.status, StatusCode::OK, "{}", inbox.text);
    let items = inbox.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["subject"], "Brief");
    assert_eq!(items[0]["unread"], true);
    assert_eq!(items[0]["authentication"]["verdict"], "internal_verified");
    let msg_id = items[0]["id"].as_str().unwrap().to_owned();

    let msg = app.get(&format!("/v0/messages/{msg_id}"), &w_key).await;
    assert_eq!(msg.status, StatusCode::OK, "{}", msg.text);
    assert_eq!(msg.body["text"], "Please write 300 words.");
    assert_eq!(msg.body["extracted_text"], "Please write 300 words.");
    assert_eq!(msg.body["authentication"]["internal"], true);
    let unread = app.get("/v0/messages?unread=true", &w_key).await;
    assert_eq!(unread.body["items"].as_array().unwrap().len(), 0, "reading marks read");

    let reply = app
        .post(
            &format!("/v0/messages/{msg_id}/reply"),
            &w_key,
            json!({ "text": "Draft attached.\n\nOn Sunday, researcher wrote:\n> Please write 300 words." }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["subject"], "Re: Brief");
    assert_eq!(reply.body["in_reply_to"], msg.body["message_id"]);

    let r_inbox = app.get("/v0/messages", &r_key).await;
    let got = &r_inbox.body["items"][0];
    assert_eq!(got["from"], w_addr.as_str());
    assert_eq!(got["subject"], "Re: Brief");
    assert_eq!(
        got["thread_id"], sent.body["thread_id"],
        "the reply joins the researcher's thread"
    );
    let got_id = got["id"].as_str().unwrap();
    let full = app.get(&format!("/v0/messages/{got_id}"), &r_key).await;
    assert_eq!(full.body["extracted_text"], "Draft attached.");

    let threads = app.get("/v0/threads", &r_key).await;
    assert_eq!(threads.status, StatusCode::OK, "{}", threads.text);
    let t = &threads.body["items"][0];
    assert_eq!(t["message_count"], 2);
    assert_eq!(t["subject"], "Brief");
    let thread = app
        .get(&format!("/v0/threads/{}", t["id"].as_str().unwrap()), &r_key)
        .await;
    assert_eq!(thread.status, StatusCode::OK, "{}", thread.text);
    let subjects: Vec<&str> = thread.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["Brief", "Re: Brief"]);

    let raw = app.get(&format!("/v0/messages/{got_id}/raw"), &r_key).await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(raw.headers["content-type"], "message/rfc822");
    assert!(
        raw.text.contains("In-Reply-To: <") && raw.text.contains("Subject: Re: Brief"),
        "{}",
        raw.text
    );
}

#[tokio::test]
async fn another_identitys_message_is_404_through_every_route() {
    let app = App::new().await;
    let (_, a_addr, a_key) = app.identity("a").await;
    let (_, _, b_key) = app.identity("b").await;
    let (_, _, c_key) = app.identity("c").await;
    app.send(&c_key, &a_addr, "for a only").await;
    let a_msg = app.get("/v0/messages", &a_key).await.body["items"][0].clone();
    let id = a_msg["id"].as_str().unwrap();
    let thread = a_msg["thread_id"].as_str().unwrap();
    for r in [
        app.get(&format!("/v0/messages/{id}"), &b_key).await,
        app.get(&format!("/v0/messages/{id}/raw"), &b_key).await,
        app.patch(&format!("/v0/messages/{id}"), &b_key, json!({ "add_labels": ["x"] }))
            .await,
        app.post(&format!("/v0/messages/{id}/reply"), &b_key, json!({ "text": "hi" }))
            .await,
        app.get(&format!("/v0/threads/{thread}"), &b_key).await,
        app.patch(&format!("/v0/threads/{thread}"), &b_key, json!({ "trashed": true }))
            .await,
        app.patch(&format!("/v0/messages/{id}"), &b_key, json!({ "archived": true }))
            .await,
        app.call(Method::DELETE, &format!("/v0/messages/{id}"), Some(&b_key), None)
            .await,
        app.call(Method::DELETE, &format!("/v0/threads/{thread}"), Some(&b_key), None)
            .await,
    ] {
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
        assert!(!r.text.contains("for a only"));
    }
    // Untouched for its owner.
    let mine = app.get(&format!("/v0/messages/{id}"), &a_key).await;
    assert_eq!(mine.body["labels"].as_array().unwrap().len(), 0);
    assert_eq!(
        app.get("/v0/messages", &b_key).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn labels_read_state_and_filters() {
    let app = App::new().await;
    let (_, a_addr, a_key) = app.identity("a").await;
    let (_, b_addr, b_key) = app.identity("b").await;
    let (_, _, c_key) = app.identity("c").await;
    app.send(&b_key, &a_addr, "from b").await;
    app.send(&c_key, &a_addr, "from c").await;
    let first = app.get("/v0/messages", &a_key).await.body["items"][1].clone();
    let id = first["id"].as_str().unwrap();
    let r = app
        .patch(
            &format!("/v0/messages/{id}"),
            &a_key,
            json!({ "add_labels": ["Todo", "todo", "q4/brief"], "unread": false }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut labels: Vec<&str> = r.body["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    labels.sort_unstable();
    assert_eq!(labels, ["q4/brief", "todo"]);
    assert_eq!(r.body["unread"], false);
    let r = app
        .patch(
            &format!("/v0/messages/{id}"),
            &a_key,
            json!({ "remove_labels": ["q4/brief"] }),
        )
        .await;
    assert_eq!(r.body["labels"], json!(["todo"]));

    let by_label = app.get("/v0/messages?label=todo", &a_key).await;
    assert_eq!(by_label.body["items"].as_array().unwrap().len(), 1);
    let by_from = app.get(&format!("/v0/messages?from={b_addr}"), &a_key).await;
    assert_eq!(by_from.body["items"][0]["subject"], "from b");
    let unread = app.get("/v0/messages?unread=true", &a_key).await;
    assert_eq!(unread.body["items"].as_array().unwrap().len(), 1);
    let sent = app.get("/v0/messages?folder=sent", &b_key).await;
    assert_eq!(sent.body["items"][0]["subject"], "from b");

    let r = app
        .patch(
            &format!("/v0/messages/{id}"),
            &a_key,
            json!({ "add_labels": ["has space"] }),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_label");
    let r = app.patch(&format!("/v0/messages/{id}"), &a_key, json!({})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "empty_update");
}

#[tokio::test]
async fn pagination_walks_every_message_once() {
    let app = App::new().await;
    let (_, a_addr, a_key) = app.identity("a").await;
    let (_, _, b_key) = app.identity("b").await;
    for i in 0..7 {
        app.send(&b_key, &a_addr, &format!("m{i}")).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v0/messages?limit=3&cursor={c}"),
            None => "/v0/messages?limit=3".to_owned(),
        };
        let page = app.get(&path, &a_key).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for m in page.body["items"].as_array().unwrap() {
            seen.push(m["subject"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["m6", "m5", "m4", "m3", "m2", "m1", "m0"]);
}

#[tokio::test]
async fn bad_mail_input_is_refused_and_nothing_is_stored() {
    let app = App::new().await;
    let (_, a_addr, a_key) = app.identity("a").await;
    let cases = [
        (
            json!({ "subject": "s", "text": "t" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({ "to": [], "subject": "s", "text": "t" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_recipients",
        ),
        (
            json!({ "to": "not-an-address", "subject": "s", "text": "t" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_address",
        ),
        (
            json!({ "to": [a_addr, "bad@@x"], "subject": "s", "text": "t" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_address",
        ),
        (
            json!({ "to": "ghost@agents.test", "subject": "s", "text": "t" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_recipient",
        ),
        (
            json!({ "to": a_addr, "subject": "s", "text": " " }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_body",
        ),
        (
            json!({ "to": a_addr, "subject": "a\r\nBcc: x@y.z", "text": "t" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_subject",
        ),
    ];
    for (body, status, code) in cases {
        let r = app.post("/v0/messages/send", &a_key, body.clone()).await;
        assert_error(&r, status, code);
        if code == "invalid_address" {
            assert!(r.text.contains("`to`"), "the field is named: {}", r.text);
        }
    }
    let all = app.get("/v0/messages?folder=all", &a_key).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 0, "{}", all.text);
    let audit = app.get("/v0/audit?action=mail.", &app.admin).await;
    assert_eq!(audit.body["items"].as_array().unwrap().len(), 0, "{}", audit.text);
}

#[tokio::test]
async fn outside_recipients_are_refused_without_outbound_and_bcc_is_private() {
    let app = App::new().await;
    let (_, a_addr, a_key) = app.identity("a").await;
    let (_, b_addr, b_key) = app.identity("b").await;
    let (_, _, c_key) = app.identity("c").await;
    // This server has no outbound mail: the send says so at once, and stores nothing.
    let r = app
        .post(
            "/v0/messages/send",
            &c_key,
            json!({ "to": [a_addr, "person@example.com"], "bcc": b_addr, "subject": "hi", "text": "t" }),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "outbound_not_configured");
    assert!(r.text.contains("person@example.com"), "{}", r.text);
    assert_eq!(app.get("/v0/messages", &a_key).await.body["items"], json!([]));
    let r = app
        .post(
            "/v0/messages/send",
            &c_key,
            json!({ "to": [a_addr], "bcc": b_addr, "subject": "hi", "text": "t" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let delivery = r.body["delivery"].as_array().unwrap();
    assert_eq!(delivery.len(), 2);
    assert!(delivery.iter().all(|d| d["status"] == "delivered"), "{}", r.text);
    assert_eq!(r.body["bcc"], json!([b_addr]));
    for key in [&a_key, &b_key] {
        let id = app.get("/v0/messages", key).await.body["items"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let m = app.get(&format!("/v0/messages/{id}"), key).await;
        assert_eq!(m.body["bcc"], json!([]), "{}", m.text);
        let raw = app.get(&format!("/v0/messages/{id}/raw"), key).await;
        assert!(!raw.text.contains(&b_addr), "bcc leaked into the raw message");
    }
}

#[tokio::test]
async fn the_operator_key_is_not_a_mailbox() {
    let app = App::new().await;
    let r = app.get("/v0/messages", &app.admin).await;
    assert_error(&r, StatusCode::FORBIDDEN, "identity_key_required");
    let r = app
        .call(Method::GET, "/v0/messages/msg_zzzz", Some(&app.admin), None)
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "identity_key_required");
}

#[tokio::test]
async fn malformed_ids_are_invalid_not_missing() {
    let app = App::new().await;
    let (_, _, key) = app.identity("a").await;
    let r = app.get("/v0/messages/idt_abc", &key).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_id");
    let r = app.get("/v0/messages/msg_abcdefghij", &key).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn wait_returns_mail_as_it_arrives() {
    let app = std::sync::Arc::new(App::new().await);
    let (_, a_addr, a_key) = app.identity("a").await;
    let (_, _, b_key) = app.identity("b").await;

    // Nothing there: a zero timeout answers at once.
    let r = app.get("/v0/messages/wait?timeout_seconds=0", &a_key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["timed_out"], true);

    // Mail sent while the wait is under way ends it.
    let sender = {
        let app = app.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            app.send(&b_key, &a_addr, "wake up").await;
        })
    };
    let started = std::time::Instant::now();
    let r = app.get("/v0/messages/wait?timeout_seconds=20", &a_key).await;
    sender.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["timed_out"], false);
    assert_eq!(r.body["items"][0]["subject"], "wake up");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the wait did not wake on delivery"
    );

    // Unread mail is returned at once; with the cursor, only newer mail is.
    let again = app.get("/v0/messages/wait?timeout_seconds=5", &a_key).await;
    assert_eq!(again.body["items"].as_array().unwrap().len(), 1);
    let cursor = again.body["cursor"].as_str().unwrap();
    let newer = app
        .get(&format!("/v0/messages/wait?timeout_seconds=0&after={cursor}"), &a_key)
        .await;
    assert_eq!(newer.body["items"].as_array().unwrap().len(), 0, "{}", newer.text);

    let r = app.get("/v0/messages/wait?timeout_seconds=301", &a_key).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_timeout");
}

/// Replies to subjects that start with a multi-byte letter used to panic the request (the
/// subject was sliced by bytes) and drop the connection.
#[tokio::test]
async fn replies_to_non_ascii_subjects() {
    let app = App::new().await;
    let (_, a_addr, a_key) = app.identity("a").await;
    let (_, _, b_key) = app.identity("b").await;
    for subject in ["Grüße aus Köln", "Привет", "שלום עולם", "🙂 hi", "é"] {
        let sent = app.send(&b_key, &a_addr, subject).await;
        let id = app.get("/v0/messages?limit=1", &a_key).await.body["items"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(Some(id.as_str()), sent["id"].as_str());
        let r = app
            .post(&format!("/v0/messages/{id}/reply"), &a_key, json!({ "text": "danke" }))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{subject}: {}", r.text);
        assert_eq!(r.body["subject"], format!("Re: {subject}"));
    }
}

/// The id a send returns is the sender's copy: the recipient using it gets a 404 that says ids
/// are per mailbox and where to find its own.
#[tokio::test]
async fn a_not_found_message_says_ids_are_per_mailbox() {
    let app = App::new().await;
    let (_, a_addr, a_key) = app.identity("a").await;
    let (_, _, b_key) = app.identity("b").await;
    let sent = app.send(&b_key, &a_addr, "hello").await;
    let id = sent["id"].as_str().unwrap();
    for r in [
        app.get(&format!("/v0/messages/{id}"), &a_key).await,
        app.post(&format!("/v0/messages/{id}/reply"), &a_key, json!({ "text": "x" }))
            .await,
    ] {
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
        let hint = r.body["error"]["hint"].as_str().unwrap_or_default();
        assert!(
            hint.contains("per mailbox") && hint.contains("/v0/messages"),
            "{}",
            r.text
        );
    }
}

#[tokio::test]
async fn archive_trash_restore_and_delete_through_rest() {
    let app = App::new().await;
    let (_, a_addr, a_key) = app.identity("a").await;
    let (_, _, b_key) = app.identity("b").await;
    app.send(&b_key, &a_addr, "Otter sightings").await;
    let item = app.get("/v0/messages", &a_key).await.body["items"][0].clone();
    let id = item["id"].as_str().unwrap();
    let thread = item["thread_id"].as_str().unwrap();
    assert_eq!(item["archived"], false);
    assert!(item.get("trashed_at").is_none(), "{item}");

    let r = app
        .patch(&format!("/v0/messages/{id}"), &a_key, json!({ "archived": true }))
        .await;
    assert_eq!(
        (r.status, &r.body["archived"]),
        (StatusCode::OK, &json!(true)),
        "{}",
        r.text
    );
    assert_eq!(app.get("/v0/messages", &a_key).await.body["items"], json!([]));
    let archived = app.get("/v0/messages?folder=archive", &a_key).await;
    assert_eq!(archived.body["items"][0]["id"], id);

    // Deleting needs the trash first: a precise 409 with a hint.
    let r = app
        .call(Method::DELETE, &format!("/v0/messages/{id}"), Some(&a_key), None)
        .await;
    assert_error(&r, StatusCode::CONFLICT, "not_in_trash");
    assert!(
        r.body["error"]["hint"].as_str().is_some_and(|h| h.contains("trash")),
        "{}",
        r.text
    );

    // The whole thread to the trash, then back, then to the trash again.
    let r = app
        .patch(&format!("/v0/threads/{thread}"), &a_key, json!({ "trashed": true }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["messages"][0]["trashed_at"].is_string(), "{}", r.text);
    assert_eq!(
        app.get("/v0/messages?folder=all", &a_key).await.body["items"],
        json!([])
    );
    assert_eq!(
        app.get("/v0/messages/search?q=otter", &a_key).await.body["items"],
        json!([])
    );
    let r = app.get(&format!("/v0/threads/{thread}"), &a_key).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let trash = app.get("/v0/threads?folder=trash", &a_key).await;
    assert_eq!(trash.body["items"][0]["id"], thread, "{}", trash.text);
    let r = app
        .patch(
            &format!("/v0/threads/{thread}"),
            &a_key,
            json!({ "trashed": false, "add_labels": ["otters"] }),
        )
        .await;
    assert_eq!(r.body["messages"][0]["labels"], json!(["otters"]), "{}", r.text);
    assert!(r.body["messages"][0].get("trashed_at").is_none(), "{}", r.text);
    let r = app
        .patch(&format!("/v0/messages/{id}"), &a_key, json!({ "trashed": true }))
        .await;
    assert!(r.body["trashed_at"].is_string(), "{}", r.text);
    let listed = app.get("/v0/messages?folder=trash", &a_key).await;
    assert_eq!(listed.body["items"][0]["id"], id);

    let r = app
        .call(Method::DELETE, &format!("/v0/threads/{thread}"), Some(&a_key), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["deleted"], json!([id]));
    let r = app.get(&format!("/v0/messages/{id}"), &a_key).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    // The sender's copy is whole.
    let sent = app.get("/v0/messages?folder=sent", &b_key).await;
    assert_eq!(sent.body["items"][0]["subject"], "Otter sightings");
    let r = app.patch("/v0/messages/msg_x", &a_key, json!({ "bogus": true })).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
}

/// An attachment downloads whole, as a file, never as a page a browser would run.
#[tokio::test]
async fn attachments_download_as_files() {
    let app = App::new().await;
    let (_, bob_addr, bob) = app.identity("bob").await;
    let env = loft_core::inbound::Envelope {
        client_ip: Some("127.0.0.1".into()),
        helo: "mx.outside.test".into(),
        mail_from: Some(loft_core::address::EmailAddress::parse("carol@outside.test").unwrap()),
        recipients: vec![loft_core::address::EmailAddress::parse(&bob_addr).unwrap()],
    };
    let raw = format!(
        "From: Carol <carol@outside.test>\r\nTo: {bob_addr}\r\nSubject: Files\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nSee.\r\n\
--B\r\nContent-Type: application/pdf; name=\"r\u{e9}sum\u{e9}.pdf\"\r\nContent-Disposition: attachment; filename=\"t.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n\
--B\r\nContent-Type: text/html; name=\"x.html\"\r\nContent-Disposition: attachment; filename=\"x.html\"\r\n\r\n\
<script>alert(1)</script>\r\n--B--\r\n"
    );
    app.loft.receive_inbound(&env, raw.as_bytes()).await.unwrap();
    let list = app.get("/v0/messages", &bob).await;
    let id = list.body["items"][0]["id"].as_str().unwrap().to_owned();

    let pdf = app.get(&format!("/v0/messages/{id}/attachments/0"), &bob).await;
    assert_eq!(pdf.status, StatusCode::OK, "{}", pdf.text);
    assert_eq!(pdf.headers["content-type"], "application/pdf");
    assert_eq!(pdf.text, "hello world");
    let disposition = pdf.headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"t.pdf\""),
        "{disposition}"
    );
    assert_eq!(pdf.headers["x-content-type-options"], "nosniff");

    let html = app.get(&format!("/v0/messages/{id}/attachments/1"), &bob).await;
    assert_eq!(html.status, StatusCode::OK, "{}", html.text);
    assert_eq!(
        html.headers["content-type"], "application/octet-stream",
        "a page would run on this origin"
    );
    assert!(
        html.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );

    assert_error(
        &app.get(&format!("/v0/messages/{id}/attachments/2"), &bob).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Another identity's message is not found, attachment or not.
    let (_, _, eve) = app.identity("eve").await;
    assert_error(
        &app.get(&format!("/v0/messages/{id}/attachments/0"), &eve).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

/// Files sent over REST (`attachments` of a send and a reply) reach the recipient whole;
/// a bad file is 422 naming it, too many bytes 413 naming the limit, and nothing is sent.
#[tokio::test]
async fn attachments_are_sent_and_refused_precisely() {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    // Requests large enough to carry more than the attachment limit (1 MiB decoded).
    let app = App::with_limit(4 * 1024 * 1024).await;
    let (_, _, alice) = app.identity("alice").await;
    let (_, bob_addr, bob) = app.identity("bob").await;
    let sent = app
        .post(
            "/v0/messages/send",
            &alice,
            json!({
                "to": bob_addr, "subject": "Files", "text": "Two files.",
                "attachments": [
                    {"filename": "data.csv", "content_type": "text/csv", "content_base64": b64(b"a,b\n1,2\n")},
                    {"filename": "blob", "content_base64": b64(&[0, 159, 146, 150])},
                ],
            }),
        )
        .await;
    assert_eq!(sent.status, StatusCode::CREATED, "{}", sent.text);
    assert_eq!(sent.body["attachments"][0]["name"], "data.csv");
    assert_eq!(sent.body["attachments"][1]["content_type"], "application/octet-stream");
    let list = app.get("/v0/messages", &bob).await;
    let id = list.body["items"][0]["id"].as_str().unwrap().to_owned();
    let got = app.get(&format!("/v0/messages/{id}"), &bob).await;
    assert_eq!(got.body["attachments"], sent.body["attachments"], "{}", got.text);
    let csv = app.get(&format!("/v0/messages/{id}/attachments/0"), &bob).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.text, "a,b\n1,2\n");
    assert!(
        csv.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("data.csv")
    );

    // A reply with a file.
    let r = app
        .post(
            &format!("/v0/messages/{id}/reply"),
            &bob,
            json!({"text": "Back.", "attachments": [{"filename": "ok.txt", "content_base64": b64(b"ok")}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["attachments"][0]["name"], "ok.txt");

    let before = app.get("/v0/messages?folder=sent", &alice).await.body["items"]
        .as_array()
        .unwrap()
        .len();
    let bad = |files: serde_json::Value| json!({"to": bob_addr, "subject": "Bad", "text": "x", "attachments": files});
    let r = app
        .post(
            "/v0/messages/send",
            &alice,
            bad(json!([{"filename": "../../etc/passwd", "content_base64": "eA=="}])),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_attachment_name");
    let r = app
        .post(
            "/v0/messages/send",
            &alice,
            bad(json!([{"filename": "a.txt", "content_base64": "***"}])),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_attachment");
    let r = app
        .post(
            "/v0/messages/send",
            &alice,
            bad(json!([{"filename": "a.txt", "content_type": "nonsense", "content_base64": "eA=="}])),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_content_type");
    let r = app
        .post(
            "/v0/messages/send",
            &alice,
            bad(json!([{"filename": "a.txt", "content_base64": "eA==", "size": 1}])),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    let limit = app.loft.config().max_attachment_bytes;
    let big = b64(&vec![1u8; limit + 1]);
    let r = app
        .post(
            "/v0/messages/send",
            &alice,
            bad(json!([{"filename": "big.bin", "content_base64": big}])),
        )
        .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "attachment_too_large");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&limit.to_string()),
        "{}",
        r.text
    );
    let after = app.get("/v0/messages?folder=sent", &alice).await.body["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "nothing refused was sent");

    // The OpenAPI document describes the files.
    let schema = &app.doc["components"]["schemas"];
    for name in ["SendMail", "ReplyMail"] {
        assert!(schema[name].to_string().contains("\"attachments\""), "{}", schema[name]);
    }
    assert!(
        schema["NewAttachment"].to_string().contains("\"content_base64\""),
        "{}",
        schema["NewAttachment"]
    );
}
