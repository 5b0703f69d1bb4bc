//! The stdio door's backend: the same tools over `RestApi` against a real server on a socket.

use std::process::ExitCode;
use std::sync::Arc;

use loft_mcp::{IdentityApi, RestApi};
use serde_json::json;

use crate::{World, body, call, client_for, error_code, ok, tool_names};

async fn rest_client(base: &str, key: &str) -> crate::Client {
    let api: Arc<dyn IdentityApi> = Arc::new(RestApi::new(base, key).unwrap());
    client_for(api).await
}

#[tokio::test]
async fn tools_over_rest_match_the_local_ones() {
    let w = World::new().await;
    let base = w.spawn_http().await;
    let alice = w.agent("alice", None).await;
    let reader = w.agent("reader", Some(&["mail:read"])).await;
    let ca = rest_client(&base, &alice.key).await;
    let cr = rest_client(&base, &reader.key).await;

    assert_eq!(
        ok(&call(&ca, "identity_whoami", json!({})).await)["address"],
        alice.address
    );
    assert_eq!(tool_names(&ca).await.len(), 34);
    let names = tool_names(&cr).await;
    assert!(
        !names.contains(&"mail_send".to_owned()) && names.contains(&"mail_list_messages".to_owned()),
        "{names:?}"
    );

    let sent = ok(&call(
        &ca,
        "mail_send",
        json!({"to": [reader.address], "cc": [], "subject": "Over REST", "text": "Hello"}),
    )
    .await);
    assert_eq!(sent["delivery"][0]["status"], "delivered");
    let list = ok(&call(&cr, "mail_list_messages", json!({"unread_only": true, "limit": 5})).await);
    let id = list["messages"][0]["message_id"].as_str().unwrap().to_owned();
    let m = ok(&call(&cr, "mail_get_message", json!({"message_id": id})).await);
    assert!(
        m["body"]
            .as_str()
            .unwrap()
            .contains(&format!("<<<BEGIN MAIL BODY {id}>>>\nHello\n"))
    );
    let thread = ok(&call(&cr, "mail_get_thread", json!({"thread_id": m["thread_id"]})).await);
    assert_eq!(thread["messages"].as_array().unwrap().len(), 1);
    let threads = ok(&call(&cr, "mail_list_threads", json!({"unread_only": false})).await);
    assert_eq!(threads["threads"][0]["thread_id"], m["thread_id"]);
    let reply = ok(&call(
        &ca,
        "mail_reply",
        json!({"message_id": sent["message_id"], "text": "Follow-up", "reply_all": true}),
    )
    .await);
    assert_eq!(reply["subject"], "Re: Over REST");
    let labels = ok(&call(
        &ca,
        "mail_update_labels",
        json!({"message_id": sent["message_id"], "add_labels": ["sent-ok"]}),
    )
    .await);
    assert_eq!(labels["labels"], json!(["sent-ok"]));
    let waited = ok(&call(&cr, "mail_wait", json!({"timeout_seconds": 1})).await);
    assert_eq!(waited["messages"][0]["subject"], "Re: Over REST");

    // The server's refusals come back as the same tool errors as in process.
    let r = call(
        &cr,
        "mail_send",
        json!({"to": alice.address, "subject": "s", "text": "t"}),
    )
    .await;
    assert_eq!(error_code(&r), "missing_scope");
    let local = crate::call(
        &w.local_client(&reader.key).await,
        "mail_send",
        json!({"to": alice.address, "subject": "s", "text": "t"}),
    )
    .await;
    assert_eq!(body(&r), body(&local), "REST and in-process refusals read the same");
    let r = call(&cr, "mail_get_message", json!({"message_id": sent["message_id"]})).await;
    assert_eq!(error_code(&r), "not_found");
    let r = call(
        &ca,
        "mail_send",
        json!({"to": "ghost@agents.test", "subject": "s", "text": "t"}),
    )
    .await;
    assert_eq!(error_code(&r), "unknown_recipient");
    // Ids are checked before they become a URL path.
    let r = call(&ca, "mail_get_message", json!({"message_id": "../../v0/identities"})).await;
    assert_eq!(error_code(&r), "invalid_id");
}

#[tokio::test]
async fn a_revoked_key_or_a_dead_server_is_a_tool_error() {
    let w = World::new().await;
    let base = w.spawn_http().await;
    let a = w.agent("alice", None).await;
    let c = rest_client(&base, &a.key).await;
    let me = ok(&call(&c, "identity_whoami", json!({})).await);
    let operator = w.actor(&w.admin).await;
    w.loft
        .revoke_identity(&operator, me["identity_id"].as_str().unwrap())
        .await
        .unwrap();
    let r = call(&c, "mail_list_messages", json!({})).await;
    assert_eq!(error_code(&r), "unauthenticated");

    // Nothing listens on port 9 of the loopback.
    let c = rest_client("http://127.0.0.1:9", &a.key).await;
    let r = call(&c, "identity_whoami", json!({})).await;
    assert_eq!(error_code(&r), "unavailable");
}

#[tokio::test]
async fn loft_mcp_refuses_to_start_without_a_working_identity_key() {
    let w = World::new().await;
    let base = w.spawn_http().await;
    assert_eq!(loft_mcp::run_stdio(&base, None).await, ExitCode::from(2));
    assert_eq!(loft_mcp::run_stdio(&base, Some("  ")).await, ExitCode::from(2));
    assert_eq!(
        loft_mcp::run_stdio("not a url", Some("loft_sk_x")).await,
        ExitCode::from(2)
    );
    assert_eq!(
        loft_mcp::run_stdio(&base, Some("loft_sk_aaaaaaaaaaaaaaaa_bbbb")).await,
        ExitCode::FAILURE
    );
    assert_eq!(
        loft_mcp::run_stdio("http://127.0.0.1:9", Some("loft_sk_x")).await,
        ExitCode::FAILURE
    );
    // The operator key is valid, but not an identity.
    assert_eq!(loft_mcp::run_stdio(&base, Some(&w.admin)).await, ExitCode::from(2));
}

/// Archive, trash, restore, thread labels and delete for ever, over both doors alike; another
/// identity's ids are `not_found` on every one of them.
#[tokio::test]
async fn mailbox_tools_over_both_doors() {
    let w = World::new().await;
    let base = w.spawn_http().await;
    let alice = w.agent("alice", None).await;
    let bob = w.agent("bob", None).await;
    let local = w.local_client(&alice.key).await;
    let rest = rest_client(&base, &alice.key).await;
    let cb = rest_client(&base, &bob.key).await;
    for (door, ca) in [("local", &local), ("rest", &rest)] {
        ok(&call(
            &cb,
            "mail_send",
            json!({"to": alice.address, "subject": door, "text": "Seals"}),
        )
        .await);
        let list = ok(&call(ca, "mail_list_messages", json!({})).await);
        let m = list["messages"][0].clone();
        let (id, thread) = (m["message_id"].clone(), m["thread_id"].clone());

        let r = ok(&call(ca, "mail_archive", json!({"message_id": id})).await);
        assert_eq!(r["messages"][0]["archived"], true, "{door}: {r}");
        let archived = ok(&call(ca, "mail_list_messages", json!({"folder": "archive"})).await);
        assert_eq!(archived["messages"][0]["message_id"], id, "{door}");
        assert_eq!(archived["messages"][0]["archived"], true, "{door}");
        let r = ok(&call(ca, "mail_archive", json!({"thread_id": thread, "archived": false})).await);
        assert_eq!(
            (r["thread_id"].clone(), r["messages"][0]["archived"].clone()),
            (thread.clone(), json!(false))
        );

        let r = ok(&call(
            ca,
            "mail_label_thread",
            json!({"thread_id": thread, "add_labels": "seals"}),
        )
        .await);
        assert_eq!(r["messages"][0]["labels"], json!(["seals"]), "{door}");

        let r = call(ca, "mail_delete", json!({"message_id": id})).await;
        assert_eq!(error_code(&r), "not_in_trash", "{door}");
        let r = ok(&call(ca, "mail_trash", json!({"thread_id": thread})).await);
        assert!(r["messages"][0]["trashed_at"].is_string(), "{door}: {r}");
        let trash = ok(&call(ca, "mail_list_messages", json!({"folder": "trash"})).await);
        assert!(trash["messages"][0]["trashed_at"].is_string(), "{door}: {trash}");
        let threads = ok(&call(ca, "mail_list_threads", json!({"folder": "trash"})).await);
        assert_eq!(threads["threads"][0]["thread_id"], json!(thread), "{door}: {threads}");
        let threads = ok(&call(ca, "mail_list_threads", json!({})).await);
        assert!(
            threads["threads"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["thread_id"] != json!(thread)),
            "{door}: a trashed conversation is not listed: {threads}"
        );
        let r = ok(&call(ca, "mail_restore", json!({"message_id": id})).await);
        assert!(r["messages"][0].get("trashed_at").is_none(), "{door}: {r}");
        ok(&call(ca, "mail_trash", json!({"message_id": id})).await);

        // Bob cannot touch Alice's copy, by message or by thread.
        for (tool, args) in [
            ("mail_archive", json!({"message_id": id})),
            ("mail_trash", json!({"thread_id": thread})),
            ("mail_restore", json!({"message_id": id})),
            ("mail_delete", json!({"message_id": id})),
            ("mail_delete", json!({"thread_id": thread})),
            ("mail_label_thread", json!({"thread_id": thread, "add_labels": ["x"]})),
        ] {
            let r = call(&cb, tool, args).await;
            assert_eq!(error_code(&r), "not_found", "{door}: {tool}: {}", body(&r));
        }
        // Exactly one of the two ids.
        for args in [json!({}), json!({"message_id": id, "thread_id": thread})] {
            let r = call(ca, "mail_trash", args).await;
            assert_eq!(error_code(&r), "invalid_arguments", "{door}");
        }

        let r = ok(&call(ca, "mail_delete", json!({"thread_id": thread})).await);
        assert_eq!(r["deleted"], json!([id]), "{door}");
        let r = call(ca, "mail_get_message", json!({"message_id": id})).await;
        assert_eq!(error_code(&r), "not_found", "{door}");
    }
}
