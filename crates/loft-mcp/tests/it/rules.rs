//! The operator's allow / block / hold rules as an agent meets them through MCP: `mail_send`
//! and `mail_reply` refused by a rule are tool errors with the REST codes, naming the rule and
//! saying whom to ask; a `hold` rule's mail comes back `pending_approval` with the rule as the
//! reason. In process (`LocalApi`) and over stdio's backend (`RestApi` against a real server).

use std::sync::Arc;

use loft_core::rules::{RuleAction, RuleDirection};
use loft_core::service::CreateRuleRequest;
use loft_mcp::{IdentityApi, RestApi};
use serde_json::{Value, json};

use crate::{Agent, Client, World, body, call, client_for, error_code, ok};

async fn add(w: &World, who: &Agent, direction: RuleDirection, action: RuleAction, pattern: &str) -> String {
    let operator = w.actor(&w.admin).await;
    let req = CreateRuleRequest {
        identity: Some(who.id.clone()),
        instance: None,
        direction,
        action,
        pattern: pattern.into(),
        note: None,
    };
    w.loft.add_rule(&operator, req).await.unwrap().id.to_string()
}

async fn remove(w: &World, id: &str) {
    let operator = w.actor(&w.admin).await;
    w.loft.remove_rule(&operator, id).await.unwrap();
}

fn error_of(r: &rmcp::model::CallToolResult) -> Value {
    body(r)["error"].clone()
}

async fn refusals_and_holds(w: &World, a: &Agent, b: &Agent, ca: &Client, cb: &Client) {
    // A block: the agent reads the code, the address, the rule and whom to ask.
    let block = add(w, a, RuleDirection::Send, RuleAction::Block, &b.address).await;
    let r = call(ca, "mail_send", json!({"to": b.address, "subject": "Hi", "text": "x"})).await;
    assert_eq!(error_code(&r), "recipient_blocked");
    let refusal = error_of(&r);
    let message = refusal["message"].as_str().unwrap();
    assert!(message.contains(&block) && message.contains(&b.address), "{refusal}");
    assert!(refusal["hint"].as_str().unwrap().contains("operator"), "{refusal}");
    remove(w, &block).await;

    // An allow list: anyone else is refused.
    let allow = add(w, a, RuleDirection::Send, RuleAction::Allow, "*@partner.example").await;
    let r = call(ca, "mail_send", json!({"to": b.address, "subject": "Hi", "text": "x"})).await;
    assert_eq!(error_code(&r), "recipient_not_allowed");
    assert!(error_of(&r)["message"].as_str().unwrap().contains(&allow));
    remove(w, &allow).await;

    // A reply rule refuses mail_reply, not mail_send.
    let no_replies = add(w, a, RuleDirection::Reply, RuleAction::Block, "*").await;
    ok(&call(
        cb,
        "mail_send",
        json!({"to": a.address, "subject": "Question", "text": "?"}),
    )
    .await);
    let inbox = ok(&call(ca, "mail_list_messages", json!({})).await);
    let id = inbox["messages"][0]["message_id"].as_str().unwrap().to_owned();
    let r = call(ca, "mail_reply", json!({"message_id": id, "text": "answer"})).await;
    assert_eq!(error_code(&r), "recipient_blocked");
    assert!(error_of(&r)["message"].as_str().unwrap().contains(&no_replies));
    remove(w, &no_replies).await;

    // The recipient's receive rules: the sender learns who refuses, not the rule.
    let guard = add(w, b, RuleDirection::Receive, RuleAction::Block, &a.address).await;
    let r = call(ca, "mail_send", json!({"to": b.address, "subject": "Hi", "text": "x"})).await;
    assert_eq!(error_code(&r), "recipient_refuses_sender");
    let message = error_of(&r)["message"].as_str().unwrap().to_owned();
    assert!(message.contains(&b.address) && !message.contains(&guard), "{message}");
    remove(w, &guard).await;

    // A hold: a normal result, pending a reviewer, with the rule as the reason.
    let hold = add(w, a, RuleDirection::Send, RuleAction::Hold, &b.address).await;
    let sent = ok(&call(ca, "mail_send", json!({"to": b.address, "subject": "Hi", "text": "x"})).await);
    assert_eq!(sent["status"], "pending_approval", "{sent}");
    assert!(
        sent["oversight"]["held_because"][0]
            .as_str()
            .is_some_and(|r| r.contains(&hold)),
        "{sent}"
    );
    remove(w, &hold).await;
}

#[tokio::test]
async fn rule_refusals_and_holds_reach_the_agent_in_process() {
    let w = World::new().await;
    let a = w.agent("a", None).await;
    let b = w.agent("b", None).await;
    let ca = w.local_client(&a.key).await;
    let cb = w.local_client(&b.key).await;
    refusals_and_holds(&w, &a, &b, &ca, &cb).await;
}

#[tokio::test]
async fn rule_refusals_and_holds_reach_the_agent_over_rest() {
    let w = World::new().await;
    let base = w.spawn_http().await;
    let a = w.agent("a", None).await;
    let b = w.agent("b", None).await;
    let api = |key: &str| -> Arc<dyn IdentityApi> { Arc::new(RestApi::new(&base, key).unwrap()) };
    let ca = client_for(api(&a.key)).await;
    let cb = client_for(api(&b.key)).await;
    refusals_and_holds(&w, &a, &b, &ca, &cb).await;
}
