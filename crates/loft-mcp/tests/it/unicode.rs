//! Arbitrary Unicode through the MCP door (issue 13): the strings of [`loft_testkit::unicode`]
//! in every text argument of every tool, called by rmcp's client over streamable HTTP at `/mcp`
//! (and, as `loft mcp` runs, over stdio with the REST backend).
//!
//! Every call must answer with a well-formed tool result: a success whose one text block is the
//! JSON of its `structuredContent`, which validates against the tool's advertised output
//! schema; or a result with `isError` and Loft's error body (`{"error": {"code", "message",
//! "hint"}}`), never `internal` or `unavailable`, and never `invalid_arguments` for arguments
//! the advertised input schema accepts. Never a protocol error and never a dropped connection.
//! Accepted text reads back intact through the read tools: subjects byte for byte, bodies as
//! [`frame_body`] frames them (the raw text between the markers), secrets byte for byte,
//! names and plain metadata trimmed, labels trimmed and lowercased. Ids that are not ours are
//! refused. Which arguments take text is read from `tools/list`: a text argument the test does
//! not push the strings through fails it.
//!
//! The REST door's test is `crates/loft-web/tests/it/unicode.rs`; the core's on both backends
//! is `crates/loft/tests/unicode_differential.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loft_core::mail::reply_subject;
use loft_mcp::framing::{Origin, frame_body, frame_http_body};
use loft_mcp::{IdentityApi, RestApi};
use loft_testkit::unicode::{CaseResult, TestCaseError, fail, percent_encode as pct, run_cases};
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::{Agent, Client, World, client_for};

/// Generated cases per run over `/mcp` (each is some 100 tool calls).
const CASES: u32 = 48;
/// Generated cases per run over stdio's REST backend (the same calls, one more hop).
const STDIO_CASES: u32 = 16;

const SCOPES: &[&str] = &[
    "mail:read",
    "mail:send",
    "mail:manage",
    "vault:read",
    "vault:write",
    "vault:reveal",
];

/// The credential `vault_http_request` uses (on the local echo server's allow-list), and its
/// secret (long enough for brokered HTTP, and in no generated string).
const ECHO: &str = "Echo.fixed";
const ECHO_SECRET: &str = "echo-secret-VALUE-0123456789";
/// RFC 6238's test key, in base32.
const TOTP_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

#[derive(Clone, Copy)]
enum Door {
    /// rmcp's client over streamable HTTP at `/mcp` (`LocalApi` behind it).
    Http,
    /// rmcp's client over a pipe to `serve_io` with `RestApi`, as `loft mcp` runs.
    Stdio,
}

/// What a tool call answered: a success's JSON, or a refusal's error code.
type Answer = Result<Value, String>;

struct Fixture {
    w: World,
    alice: Agent,
    bob: Agent,
    /// Alice's client (all scopes, `vault:reveal` too), Bob's and Carol's.
    ca: Client,
    cb: Client,
    cc: Client,
    /// Every tool's input schema (as listed and compiled) and output validator.
    inputs: HashMap<String, jsonschema::Validator>,
    outputs: HashMap<String, jsonschema::Validator>,
    /// `tool.argument` for every argument whose schema takes text.
    text_arguments: BTreeSet<String>,
    /// For every `tool.argument` a case has pushed a string through: how many calls were
    /// accepted, and how many refused.
    exercised: Mutex<BTreeMap<String, (u32, u32)>>,
    /// Alice's sent copy of a message to Bob (labels go on it).
    alice_copy: String,
    /// Bob's copy of a message from Carol (Bob replies to it; the replies go to Carol).
    bob_copy: String,
    echo_url: String,
}

async fn connect(door: Door, base: &str, key: &str) -> Client {
    match door {
        Door::Http => {
            let config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).auth_header(key);
            ().serve(StreamableHttpClientTransport::from_config(config))
                .await
                .unwrap()
        }
        Door::Stdio => {
            let api: Arc<dyn IdentityApi> = Arc::new(RestApi::new(base, key).unwrap());
            client_for(api).await
        }
    }
}

/// A local server that answers every request with its body.
async fn spawn_echo() -> String {
    let app = axum::Router::new().fallback(|body: axum::body::Bytes| async move { body });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://127.0.0.1:{port}/echo")
}

/// Whether a schema takes text: a string, or a list or a map of them, or an object (given by
/// `$ref` into the input schema's `$defs`, like a mail's attachments) with a text property.
fn takes_text(root: &Value, schema: &Value) -> bool {
    if !schema.is_object() {
        return false;
    }
    if let Some(name) = schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
        return takes_text(root, &root["$defs"][name]);
    }
    let is_string = match &schema["type"] {
        Value::String(t) => t == "string",
        Value::Array(ts) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    is_string
        || ["anyOf", "oneOf", "allOf"]
            .iter()
            .filter_map(|k| schema[*k].as_array())
            .flatten()
            .any(|s| takes_text(root, s))
        || takes_text(root, &schema["items"])
        || schema["properties"]
            .as_object()
            .is_some_and(|p| p.values().any(|s| takes_text(root, s)))
        // A map's keys are text too.
        || schema["additionalProperties"].is_object()
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(schema)
        .unwrap_or_else(|e| panic!("not a valid JSON Schema: {e}: {schema}"))
}

impl Fixture {
    async fn new(door: Door) -> Self {
        let w = World::new().await;
        let base = w.spawn_http().await;
        let alice = w.agent("alice", Some(SCOPES)).await;
        let bob = w.agent("bob", Some(SCOPES)).await;
        let carol = w.agent("carol", Some(SCOPES)).await;
        let ca = connect(door, &base, &alice.key).await;
        let cb = connect(door, &base, &bob.key).await;
        let cc = connect(door, &base, &carol.key).await;

        let tools = ca.list_tools(None).await.unwrap().tools;
        assert_eq!(tools.len(), 35, "every tool is offered to a key with every scope");
        let (mut inputs, mut outputs, mut text_arguments) = (HashMap::new(), HashMap::new(), BTreeSet::new());
        for t in &tools {
            let input = Value::Object((*t.input_schema).clone());
            for (name, schema) in input["properties"].as_object().unwrap() {
                if takes_text(&input, schema) {
                    text_arguments.insert(format!("{}.{name}", t.name));
                }
            }
            inputs.insert(t.name.to_string(), validator(&input));
            let output = Value::Object((*t.output_schema.clone().expect("an output schema")).clone());
            outputs.insert(t.name.to_string(), validator(&output));
        }

        let echo_url = spawn_echo().await;
        let mut f = Self {
            w,
            alice,
            bob,
            ca,
            cb,
            cc,
            inputs,
            outputs,
            text_arguments,
            exercised: Mutex::default(),
            alice_copy: String::new(),
            bob_copy: String::new(),
            echo_url,
        };
        let setup = async {
            let host = f.echo_url.trim_start_matches("http://").trim_end_matches("/echo");
            let sent = accepted(
                "setup",
                "",
                f.call(
                    &f.ca,
                    "mail_send",
                    None,
                    json!({"to": f.bob.address, "subject": "seed", "text": "seed"}),
                )
                .await?,
            )?;
            f.call(
                &f.cc,
                "mail_send",
                None,
                json!({"to": f.bob.address, "subject": "seed", "text": "seed"}),
            )
            .await?
            .map_err(|e| fail("setup", "", e))?;
            let (copy, _) = f.newest(&f.cb, "setup", "").await?;
            let store =
                json!({"name": ECHO, "value": ECHO_SECRET, "allowed_hosts": [host], "inject": "header:X-Echo-Key"});
            accepted("setup", "", f.call(&f.ca, "vault_store", None, store).await?)?;
            Ok::<_, TestCaseError>((str_of(&sent["message_id"]), str_of(&copy["message_id"])))
        };
        let (alice_copy, bob_copy) = setup.await.unwrap_or_else(|e| panic!("{e}"));
        f.alice_copy = alice_copy;
        f.bob_copy = bob_copy;
        f
    }

    /// Calls `tool` as the identity of `client` and checks that the answer is a well-formed tool
    /// result; `input` names the argument under test and the string pushed through it.
    async fn call(
        &self,
        client: &Client,
        tool: &str,
        input: Option<(&str, &str)>,
        args: Value,
    ) -> Result<Answer, TestCaseError> {
        let (field, s) = input.unwrap_or(("-", ""));
        let what = format!("{tool}.{field}");
        let answer = self.answer(client, tool, &what, s, args).await?;
        if input.is_some() {
            let mut counts = self.exercised.lock().unwrap();
            let (yes, no) = counts.entry(what).or_default();
            *if answer.is_ok() { yes } else { no } += 1;
        }
        Ok(answer)
    }

    async fn answer(
        &self,
        client: &Client,
        tool: &str,
        what: &str,
        s: &str,
        args: Value,
    ) -> Result<Answer, TestCaseError> {
        let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args.as_object().cloned().unwrap());
        let r = match tokio::time::timeout(Duration::from_secs(30), Box::pin(client.call_tool(params))).await {
            Err(_) => return Err(fail(what, s, "no answer within 30 s")),
            Ok(Err(e)) => return Err(fail(what, s, format!("a protocol error or a dropped connection: {e}"))),
            Ok(Ok(r)) => r,
        };
        let text = match r.content.as_slice() {
            [block] => match block.as_text() {
                Some(t) => t.text.clone(),
                None => return Err(fail(what, s, format!("not a text block: {r:?}"))),
            },
            _ => return Err(fail(what, s, format!("not one content block: {r:?}"))),
        };
        let body: Value =
            serde_json::from_str(&text).map_err(|e| fail(what, s, format!("the text is not JSON ({e}): {text:?}")))?;
        if r.is_error == Some(true) {
            if r.structured_content.is_some() {
                return Err(fail(what, s, format!("an error with structuredContent: {r:?}")));
            }
            let e = &body["error"];
            let filled = |v: &Value| v.as_str().is_some_and(|t| !t.is_empty());
            let Some(code) = e["code"]
                .as_str()
                .filter(|_| filled(&e["code"]) && filled(&e["message"]))
            else {
                return Err(fail(what, s, format!("an error without Loft's error body: {text}")));
            };
            if !e.as_object().is_some_and(|o| o.contains_key("hint")) {
                return Err(fail(what, s, format!("an error without `hint`: {text}")));
            }
            if ["internal", "unavailable"].contains(&code) {
                return Err(fail(what, s, format!("answered {code}: {text}")));
            }
            if code == "invalid_arguments" && self.inputs[tool].is_valid(&args) {
                return Err(fail(
                    what,
                    s,
                    format!("the input schema accepts these arguments, the tool does not: {text}"),
                ));
            }
            return Ok(Err(code.to_owned()));
        }
        if r.structured_content.as_ref() != Some(&body) {
            return Err(fail(
                what,
                s,
                format!("structuredContent is not the text's JSON: {r:?}"),
            ));
        }
        let errors: Vec<String> = self.outputs[tool].iter_errors(&body).map(|e| e.to_string()).collect();
        if !errors.is_empty() {
            return Err(fail(
                what,
                s,
                format!("the result breaks the output schema: {errors:?}: {body}"),
            ));
        }
        Ok(Ok(body))
    }

    /// The newest message in the inbox of `client`'s identity: its summary and the whole message
    /// (with the whole body).
    async fn newest(&self, client: &Client, what: &str, s: &str) -> Result<(Value, Value), TestCaseError> {
        let list = self
            .call(client, "mail_list_messages", None, json!({"limit": 1}))
            .await?;
        let summary = accepted(what, s, list)?["messages"][0].clone();
        let args = json!({"message_id": summary["message_id"], "full_body": true});
        let got = self.call(client, "mail_get_message", None, args).await?;
        Ok((summary, accepted(what, s, got)?))
    }

    /// The credential `name` revealed by `vault_get`.
    async fn revealed(&self, name: &str, what: &str, s: &str) -> Result<Value, TestCaseError> {
        accepted(
            what,
            s,
            self.call(&self.ca, "vault_get", None, json!({"name": name})).await?,
        )
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn accepted(what: &str, s: &str, a: Answer) -> Result<Value, TestCaseError> {
    a.map_err(|code| fail(what, s, format!("refused with {code}")))
}

fn refused(what: &str, s: &str, a: &Answer) -> CaseResult {
    match a {
        Ok(v) => Err(fail(what, s, format!("accepted: {v}"))),
        Err(_) => Ok(()),
    }
}

/// A field of an accepted answer holds what it should.
fn echo(what: &str, s: &str, got: &Value, want: &Value) -> CaseResult {
    if got == want {
        Ok(())
    } else {
        Err(fail(what, s, format!("read back {got}, not {want}")))
    }
}

/// A framed body (`got`, from [`frame_body`] or [`frame_http_body`]) holds `s`: the frame is
/// the one for `s`, and the text between its markers is `s` as sent, less the line breaks at
/// its end (or a note that it is empty, when it is blank). The second check does not rely on
/// the framing code.
fn framed(what: &str, s: &str, got: &Value, frame: &str, marker: &str, id: &str) -> CaseResult {
    echo(what, s, got, &json!(frame))?;
    let body = got.as_str().unwrap_or_default();
    let (begin, end) = (
        format!("<<<BEGIN {marker} {id}>>>\n"),
        format!("\n<<<END {marker} {id}>>>"),
    );
    let text = body
        .find(&begin)
        .and_then(|at| body.strip_suffix(&end)?.get(at + begin.len()..));
    let want = if s.trim().is_empty() {
        "(the body is empty)"
    } else {
        s.trim_end_matches(['\r', '\n'])
    };
    echo(what, s, &json!(text), &json!(want))
}

/// Plain metadata as stored: trimmed, empty meaning none.
fn cleaned(s: &str) -> Value {
    let t = s.trim();
    if t.is_empty() { Value::Null } else { json!(t) }
}

async fn case(f: &Fixture, s: &str) -> CaseResult {
    send(f, s).await?;
    reply(f, s).await?;
    forward(f, s).await?;
    labels(f, s).await?;
    ids_and_queries(f, s).await?;
    vault_store(f, s).await?;
    vault_names(f, s).await?;
    drafts(f, s).await?;
    contacts(f, s).await?;
    vault_http(f, s).await
}

async fn contacts(f: &Fixture, s: &str) -> CaseResult {
    // Written for a real address: accepted or refused, never a malformed answer.
    let bob = f.bob.address.as_str();
    for field in ["name", "notes"] {
        let a = args(&[("address", json!(bob)), (field, json!(s))]);
        let _ = f.call(&f.ca, "contacts_upsert", Some((field, s)), a).await?;
    }
    let a = json!({"address": bob, "tags": [s]});
    let _ = f.call(&f.ca, "contacts_upsert", Some(("tags", s)), a).await?;
    let a = json!({"address": s, "name": "x"});
    let _ = f.call(&f.ca, "contacts_upsert", Some(("address", s)), a).await?;
    for field in ["query", "tag", "page_token"] {
        let _ = f
            .call(&f.ca, "contacts_list", Some((field, s)), args(&[(field, json!(s))]))
            .await?;
    }
    Ok(())
}

fn args(pairs: &[(&str, Value)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())
}

async fn drafts(f: &Fixture, s: &str) -> CaseResult {
    // Text a draft keeps as written: read back whole, then the draft is deleted.
    for field in ["subject", "text", "html", "to", "cc", "bcc", "reply_to_message_id"] {
        let what = format!("drafts_create: {field}");
        let r = f
            .call(&f.ca, "drafts_create", Some((field, s)), args(&[(field, json!(s))]))
            .await?;
        if let Ok(draft) = r {
            let id = draft["draft_id"].clone();
            let got = accepted(
                &what,
                s,
                f.call(&f.ca, "drafts_get", None, json!({"draft_id": id})).await?,
            )?;
            let want = match field {
                "to" | "cc" | "bcc" => json!([s]),
                _ => json!(s),
            };
            if field != "reply_to_message_id" {
                echo(&what, s, &got[field], &want)?;
            }
            let gone = f.call(&f.ca, "drafts_delete", None, json!({"draft_id": id})).await?;
            accepted("drafts_delete", s, gone)?;
        }
    }
    // The same fields through an update of an empty draft, and a send of it (refused: it has no
    // recipient, or the key or time is not one).
    let created = accepted(
        "drafts_create",
        s,
        f.call(&f.ca, "drafts_create", None, json!({})).await?,
    )?;
    let id = created["draft_id"].clone();
    for field in ["subject", "text", "html", "to", "cc", "bcc", "reply_to_message_id"] {
        let a = args(&[("draft_id", id.clone()), (field, json!(s))]);
        let _ = f.call(&f.ca, "drafts_update", Some((field, s)), a).await?;
    }
    // Files: a name, type or content that is not one is a clear refusal.
    let file = json!([{"filename": s, "content_type": s, "content_base64": s}]);
    let a = args(&[("draft_id", id.clone()), ("attachments", file.clone())]);
    let _ = f.call(&f.ca, "drafts_update", Some(("attachments", s)), a).await?;
    let _ = f
        .call(
            &f.ca,
            "drafts_create",
            Some(("attachments", s)),
            json!({"attachments": file}),
        )
        .await?;
    for field in ["idempotency_key", "send_at"] {
        let a = args(&[("draft_id", id.clone()), (field, json!(s))]);
        let _ = f.call(&f.ca, "drafts_send", Some((field, s)), a).await?;
    }
    let _ = f.call(&f.ca, "drafts_delete", None, json!({"draft_id": id})).await?;
    // Ids: never one of ours, so refused.
    for (tool, a) in [
        ("drafts_get", json!({"draft_id": s})),
        ("drafts_update", json!({"draft_id": s, "text": "x"})),
        ("drafts_send", json!({"draft_id": s})),
        ("drafts_delete", json!({"draft_id": s})),
        ("mail_cancel_scheduled", json!({"message_id": s})),
        (
            "mail_reschedule",
            json!({"message_id": s, "send_at": "2030-01-01T00:00:00Z"}),
        ),
    ] {
        let field = if tool.starts_with("drafts") {
            "draft_id"
        } else {
            "message_id"
        };
        let r = f.call(&f.ca, tool, Some((field, s)), a).await?;
        refused(&format!("{tool}: {field}"), s, &r)?;
    }
    let _ = f
        .call(&f.ca, "drafts_list", Some(("page_token", s)), json!({"page_token": s}))
        .await?;
    // A time that is not one (or not ahead) is refused or sends now; never a malformed answer.
    let bob = f.bob.address.as_str();
    let a = json!({"to": bob, "subject": "later", "text": "x", "send_at": s});
    let _ = f.call(&f.ca, "mail_send", Some(("send_at", s)), a).await?;
    let a = json!({"message_id": f.bob_copy, "text": "later", "send_at": s});
    let _ = f.call(&f.cb, "mail_reply", Some(("send_at", s)), a).await?;
    let a = json!({"message_id": f.alice_copy, "send_at": s});
    let r = f.call(&f.ca, "mail_reschedule", Some(("send_at", s)), a).await?;
    refused("mail_reschedule: send_at of a sent mail", s, &r)?;
    Ok(())
}

async fn send(f: &Fixture, s: &str) -> CaseResult {
    let bob = f.bob.address.as_str();
    let from = f.alice.address.as_str();

    // The subject: echoed, received intact, and a reply to it works.
    let r = f
        .call(
            &f.ca,
            "mail_send",
            Some(("subject", s)),
            json!({"to": bob, "subject": s, "text": "body"}),
        )
        .await?;
    if let Ok(sent) = r {
        echo("mail_send: subject", s, &sent["subject"], &json!(s))?;
        let (summary, got) = f.newest(&f.cb, "mail_send: the recipient's copy", s).await?;
        echo("mail_list_messages: subject", s, &summary["subject"], &json!(s))?;
        echo("mail_get_message: subject", s, &got["subject"], &json!(s))?;
        let id = str_of(&got["message_id"]);
        let mut frame = frame_body(&id, from, Origin::InternalVerified, "body");
        // A subject the heuristic screening flags (invisible characters, words aimed at an AI)
        // puts its one-line notice above the frame; the frame itself must be intact.
        if got["screening"].as_str().is_some_and(|s| s.starts_with("SUSPICIOUS")) {
            frame = format!("Loft's heuristic screening flagged this mail as suspicious (see `screening`).\n{frame}");
        }
        echo("mail_get_message: body", s, &got["body"], &json!(frame))?;
        let thread = f
            .call(&f.cb, "mail_get_thread", None, json!({"thread_id": got["thread_id"]}))
            .await?;
        let thread = accepted("mail_get_thread: its thread", s, thread)?;
        echo(
            "mail_get_thread: subject",
            s,
            &thread["messages"][0]["subject"],
            &json!(s),
        )?;
        let r = f
            .call(&f.cb, "mail_reply", None, json!({"message_id": id, "text": "re"}))
            .await?;
        let r = accepted("mail_reply to that subject", s, r)?;
        echo("mail_reply: its subject", s, &r["subject"], &json!(reply_subject(s)))?;
    }

    // The bodies: the raw text between the frame's markers, with the full body asked for.
    for (field, args) in [
        ("text", json!({"to": bob, "subject": "t", "text": s})),
        ("html", json!({"to": bob, "subject": "h", "html": s})),
    ] {
        let what = format!("mail_send: {field}");
        if f.call(&f.ca, "mail_send", Some((field, s)), args).await?.is_ok() {
            let (_, got) = f.newest(&f.cb, &what, s).await?;
            let id = str_of(&got["message_id"]);
            let frame = frame_body(&id, from, Origin::InternalVerified, s);
            framed(&what, s, &got["body"], &frame, "MAIL BODY", &id)?;
        }
    }
    // Body and HTML together (the HTML is an alternative the tools do not show).
    let args = json!({"to": bob, "subject": "th", "text": s, "html": s});
    let _ = f.call(&f.ca, "mail_send", Some(("html", s)), args).await?;
    // An idempotency key: visible ASCII is a key, anything else a clear refusal.
    let args = json!({"to": bob, "subject": "k", "text": "x", "idempotency_key": s});
    let _ = f.call(&f.ca, "mail_send", Some(("idempotency_key", s)), args).await?;
    // An attachment's name and type: a plain name is kept as given, anything else a clear
    // refusal; the file then downloads under that name.
    let file = json!([{"filename": s, "content_type": "text/plain", "content_base64": "aGk="}]);
    let args = json!({"to": bob, "subject": "file", "text": "x", "attachments": file});
    if f.call(&f.ca, "mail_send", Some(("attachments", s)), args)
        .await?
        .is_ok()
    {
        let (_, got) = f.newest(&f.cb, "mail_send: attachments", s).await?;
        let id = str_of(&got["message_id"]);
        let r = f
            .call(
                &f.cb,
                "mail_get_attachment",
                None,
                json!({"message_id": id, "index": 0}),
            )
            .await?;
        let file = accepted("mail_get_attachment: a file named so", s, r)?;
        echo("mail_get_attachment: name", s, &file["name"], &json!(s))?;
    }
    let file = json!([{"filename": "a.txt", "content_type": s, "content_base64": "aGk="}]);
    let args = json!({"to": bob, "subject": "type", "text": "x", "attachments": file});
    let _ = f.call(&f.ca, "mail_send", Some(("attachments", s)), args).await?;
    let file = json!([{"filename": "a.txt", "content_base64": s}]);
    let args = json!({"to": bob, "subject": "b64", "text": "x", "attachments": file});
    let _ = f.call(&f.ca, "mail_send", Some(("attachments", s)), args).await?;

    // Addresses: never an identity here, so refused; one address or a list.
    for (field, args) in [
        ("to", json!({"to": s, "subject": "a", "text": "x"})),
        ("to", json!({"to": [bob, s], "subject": "a", "text": "x"})),
        ("cc", json!({"to": bob, "cc": [s], "subject": "a", "text": "x"})),
        ("bcc", json!({"to": bob, "bcc": s, "subject": "a", "text": "x"})),
    ] {
        let r = f.call(&f.ca, "mail_send", Some((field, s)), args).await?;
        refused(&format!("mail_send: {field}"), s, &r)?;
    }
    Ok(())
}

async fn reply(f: &Fixture, s: &str) -> CaseResult {
    let from = f.bob.address.as_str();
    for (field, args) in [
        ("text", json!({"message_id": f.bob_copy, "text": s})),
        ("html", json!({"message_id": f.bob_copy, "html": s})),
    ] {
        let what = format!("mail_reply: {field}");
        if f.call(&f.cb, "mail_reply", Some((field, s)), args).await?.is_ok() {
            let (_, got) = f.newest(&f.cc, &what, s).await?;
            let id = str_of(&got["message_id"]);
            let frame = frame_body(&id, from, Origin::InternalVerified, s);
            framed(&what, s, &got["body"], &frame, "MAIL BODY", &id)?;
        }
    }
    let args = json!({"message_id": f.bob_copy, "text": s, "html": s, "reply_all": true});
    let _ = f.call(&f.cb, "mail_reply", Some(("html", s)), args).await?;
    let args = json!({"message_id": f.bob_copy, "text": "k", "idempotency_key": s});
    let _ = f.call(&f.cb, "mail_reply", Some(("idempotency_key", s)), args).await?;
    let file = json!([{"filename": s, "content_type": s, "content_base64": s}]);
    let args = json!({"message_id": f.bob_copy, "text": "f", "attachments": file});
    let _ = f.call(&f.cb, "mail_reply", Some(("attachments", s)), args).await?;
    Ok(())
}

async fn forward(f: &Fixture, s: &str) -> CaseResult {
    let alice = f.alice.address.as_str();
    let id = f.bob_copy.as_str();
    // The note: the forward arrives, the note above the quoted original.
    let r = f
        .call(
            &f.cb,
            "mail_forward",
            Some(("text", s)),
            json!({"message_id": id, "to": alice, "text": s}),
        )
        .await?;
    if let Ok(sent) = r {
        let fwd = str_of(&sent["subject"]).starts_with("Fwd: ");
        echo("mail_forward: a Fwd: subject", s, &json!(fwd), &json!(true))?;
    }
    // Addresses: refused, one address or a list; the other fields: a well-formed answer.
    for (field, args) in [
        ("to", json!({"message_id": id, "to": s})),
        ("cc", json!({"message_id": id, "to": alice, "cc": [s]})),
        ("bcc", json!({"message_id": id, "to": alice, "bcc": s})),
    ] {
        let r = f.call(&f.cb, "mail_forward", Some((field, s)), args).await?;
        refused(&format!("mail_forward: {field}"), s, &r)?;
    }
    for (field, args) in [
        (
            "idempotency_key",
            json!({"message_id": id, "to": alice, "idempotency_key": s}),
        ),
        ("send_at", json!({"message_id": id, "to": alice, "send_at": s})),
    ] {
        let _ = f.call(&f.cb, "mail_forward", Some((field, s)), args).await?;
    }
    let file = json!([{"filename": s, "content_type": s, "content_base64": s}]);
    let args = json!({"message_id": id, "to": alice, "attachments": file});
    let _ = f.call(&f.cb, "mail_forward", Some(("attachments", s)), args).await?;
    let r = f
        .call(
            &f.cb,
            "mail_forward",
            Some(("message_id", s)),
            json!({"message_id": s, "to": alice}),
        )
        .await?;
    refused("mail_forward: message_id", s, &r)
}

async fn labels(f: &Fixture, s: &str) -> CaseResult {
    let id = f.alice_copy.as_str();
    let r = f
        .call(
            &f.ca,
            "mail_update_labels",
            Some(("add_labels", s)),
            json!({"message_id": id, "add_labels": [s]}),
        )
        .await?;
    let label = json!(s.trim().to_ascii_lowercase());
    let added = r.is_ok();
    if let Ok(v) = r {
        let has = v["labels"].as_array().is_some_and(|l| l.contains(&label));
        echo("mail_update_labels: the labels", s, &json!(has), &json!(true))?;
    }
    for (tool, args, list) in [
        ("mail_list_messages", json!({"folder": "all", "label": s}), "messages"),
        ("mail_list_threads", json!({"label": s}), "threads"),
    ] {
        let what = format!("{tool}: filter by label");
        let r = f.call(&f.ca, tool, Some(("label", s)), args).await?;
        if added {
            let found = accepted(&what, s, r)?[list].as_array().map_or(0, Vec::len);
            echo(&what, s, &json!(found > 0), &json!(true))?;
        }
    }
    let r = f
        .call(
            &f.ca,
            "mail_update_labels",
            Some(("remove_labels", s)),
            json!({"message_id": id, "remove_labels": s}),
        )
        .await?;
    if added {
        let v = accepted("mail_update_labels: remove", s, r)?;
        let has = v["labels"].as_array().is_some_and(|l| l.contains(&label));
        echo("mail_update_labels: removed", s, &json!(has), &json!(false))?;
    }
    // The same on a whole conversation.
    let r = f
        .call(
            &f.ca,
            "mail_update_labels",
            None,
            json!({"message_id": id, "unread": false}),
        )
        .await?;
    let thread = accepted("mail_update_labels: the thread", s, r)?["thread_id"].clone();
    let r = f
        .call(
            &f.ca,
            "mail_label_thread",
            Some(("add_labels", s)),
            json!({"thread_id": thread, "add_labels": [s]}),
        )
        .await?;
    echo(
        "mail_label_thread: accepted as a message's",
        s,
        &json!(r.is_ok()),
        &json!(added),
    )?;
    if let Ok(v) = r {
        let all = v["messages"].as_array().is_some_and(|m| {
            !m.is_empty()
                && m.iter()
                    .all(|m| m["labels"].as_array().is_some_and(|l| l.contains(&label)))
        });
        echo("mail_label_thread: every message", s, &json!(all), &json!(true))?;
    }
    let r = f
        .call(
            &f.ca,
            "mail_label_thread",
            Some(("remove_labels", s)),
            json!({"thread_id": thread, "remove_labels": s}),
        )
        .await?;
    if added {
        let v = accepted("mail_label_thread: remove", s, r)?;
        let any = v["messages"].as_array().is_some_and(|m| {
            m.iter()
                .any(|m| m["labels"].as_array().is_some_and(|l| l.contains(&label)))
        });
        echo("mail_label_thread: removed", s, &json!(any), &json!(false))?;
    }
    Ok(())
}

async fn ids_and_queries(f: &Fixture, s: &str) -> CaseResult {
    // Ids: never one of ours, so refused.
    for (client, tool, field, args) in [
        (&f.cb, "mail_get_message", "message_id", json!({"message_id": s})),
        (
            &f.cb,
            "mail_get_attachment",
            "message_id",
            json!({"message_id": s, "index": 0}),
        ),
        (&f.cb, "mail_reply", "message_id", json!({"message_id": s, "text": "x"})),
        (
            &f.cb,
            "mail_update_labels",
            "message_id",
            json!({"message_id": s, "unread": true}),
        ),
        (&f.cb, "mail_get_thread", "thread_id", json!({"thread_id": s})),
        (
            &f.cb,
            "mail_get_thread",
            "folder",
            json!({"thread_id": "thr_aaaaaaaaaaaaaaaaaaaa", "folder": s}),
        ),
        (
            &f.cb,
            "mail_label_thread",
            "thread_id",
            json!({"thread_id": s, "unread": true}),
        ),
        (&f.cb, "mail_archive", "message_id", json!({"message_id": s})),
        (&f.cb, "mail_archive", "thread_id", json!({"thread_id": s})),
        (&f.cb, "mail_trash", "message_id", json!({"message_id": s})),
        (&f.cb, "mail_trash", "thread_id", json!({"thread_id": s})),
        (&f.cb, "mail_restore", "message_id", json!({"message_id": s})),
        (&f.cb, "mail_restore", "thread_id", json!({"thread_id": s})),
        (&f.cb, "mail_delete", "message_id", json!({"message_id": s})),
        (&f.cb, "mail_delete", "thread_id", json!({"thread_id": s})),
    ] {
        let r = f.call(client, tool, Some((field, s)), args).await?;
        refused(&format!("{tool}: {field}"), s, &r)?;
    }
    // Filters, folders and page tokens: well-formed, whatever they are.
    for (client, tool, field, args) in [
        (&f.cb, "mail_list_messages", "folder", json!({"folder": s})),
        (&f.cb, "mail_list_messages", "from_address", json!({"from_address": s})),
        (&f.cb, "mail_list_messages", "thread_id", json!({"thread_id": s})),
        (&f.cb, "mail_list_messages", "page_token", json!({"page_token": s})),
        (&f.cb, "mail_list_threads", "page_token", json!({"page_token": s})),
        (&f.cb, "mail_list_threads", "folder", json!({"folder": s})),
        (&f.cb, "mail_search", "query", json!({"query": s})),
        (&f.cb, "mail_search", "folder", json!({"query": "x", "folder": s})),
        (
            &f.cb,
            "mail_search",
            "page_token",
            json!({"query": "x", "page_token": s}),
        ),
        (&f.cb, "mail_wait", "after", json!({"after": s, "timeout_seconds": 0})),
        (&f.ca, "vault_list", "page_token", json!({"page_token": s})),
        (
            &f.cb,
            "oversight_request_mode",
            "reason",
            json!({"mode": "read_only", "reason": s}),
        ),
        (
            &f.cb,
            "oversight_request_mode",
            "mode",
            json!({"mode": s, "reason": "a reason"}),
        ),
    ] {
        let _ = f.call(client, tool, Some((field, s)), args).await?;
    }
    Ok(())
}

async fn vault_store(f: &Fixture, s: &str) -> CaseResult {
    // The name: stored trimmed, and found, used and deleted by the name as given.
    let r = f
        .call(
            &f.ca,
            "vault_store",
            Some(("name", s)),
            json!({"name": s, "value": "a-secret-value"}),
        )
        .await?;
    let stored = r.is_ok();
    if let Ok(v) = r {
        echo("vault_store: name", s, &v["credential"]["name"], &json!(s.trim()))?;
    }
    let r = f
        .call(&f.ca, "vault_get", Some(("name", s)), json!({"name": s}))
        .await?;
    if stored {
        let v = accepted("vault_get: by that name", s, r)?;
        echo("vault_get: name", s, &v["credential"]["name"], &json!(s.trim()))?;
        echo("vault_get: value", s, &v["secrets"]["value"], &json!("a-secret-value"))?;
    }
    for tool in ["vault_totp", "vault_totp_backup"] {
        let r = f.call(&f.ca, tool, Some(("name", s)), json!({"name": s})).await?;
        refused(&format!("{tool}: an api_key"), s, &r)?;
    }
    let r = f
        .call(&f.ca, "vault_delete", Some(("name", s)), json!({"name": s}))
        .await?;
    if stored {
        accepted("vault_delete: by that name", s, r)?;
        let r = f.call(&f.ca, "vault_get", None, json!({"name": s})).await?;
        refused("vault_get: after the delete", s, &r)?;
    }

    // Secrets, kept as they are and revealed intact; each under one name (replaced every case).
    let login = json!({"type": "login", "password": "a-secret-password"});
    let oauth = json!({"type": "oauth", "access_token": "an-access-token"});
    let ssh = json!({"type": "ssh_key", "private_key": "a-private-key"});
    let totp = json!({"type": "totp", "secret": TOTP_SECRET});
    let with = |base: &Value, field: &str, v: Value| {
        let mut a = base.clone();
        a[field] = v;
        a
    };
    for (field, args) in [
        ("value", json!({"value": s})),
        ("password", with(&login, "password", json!(s))),
        ("access_token", with(&oauth, "access_token", json!(s))),
        ("refresh_token", with(&oauth, "refresh_token", json!(s))),
        ("client_secret", with(&oauth, "client_secret", json!(s))),
        ("private_key", with(&ssh, "private_key", json!(s))),
        ("passphrase", with(&ssh, "passphrase", json!(s))),
        ("connection_string", json!({"type": "database", "connection_string": s})),
        ("secret", with(&totp, "secret", json!(s))),
    ] {
        let name = format!("secret-{field}");
        let mut args = args;
        args["name"] = json!(name);
        args["replace"] = json!(true);
        let what = format!("vault_store: {field}");
        if f.call(&f.ca, "vault_store", Some((field, s)), args).await?.is_ok() {
            let v = f.revealed(&name, &what, s).await?;
            echo(&what, s, &v["secrets"][field], &json!(s))?;
        }
    }
    // A custom credential's field names (trimmed) and values (as they are).
    let args = json!({"name": "custom-key", "type": "custom", "fields": {s: "a-value"}, "replace": true});
    if f.call(&f.ca, "vault_store", Some(("fields", s)), args).await?.is_ok() {
        let v = f.revealed("custom-key", "vault_store: a field name", s).await?;
        echo(
            "vault_store: a field name",
            s,
            &v["secrets"],
            &json!({s.trim(): "a-value"}),
        )?;
    }
    let args = json!({"name": "custom-value", "type": "custom", "fields": {"k": s}, "replace": true});
    if f.call(&f.ca, "vault_store", Some(("fields", s)), args).await?.is_ok() {
        let v = f.revealed("custom-value", "vault_store: a field value", s).await?;
        echo("vault_store: a field value", s, &v["secrets"], &json!({"k": s}))?;
    }
    // Backup codes: trimmed, blank ones dropped; one code as a string works too.
    for codes in [json!([s, "bk-1"]), json!(s)] {
        let args = with(&totp, "backup_codes", codes);
        let mut args = args;
        args["name"] = json!("backup");
        args["replace"] = json!(true);
        if f.call(&f.ca, "vault_store", Some(("backup_codes", s)), args.clone())
            .await?
            .is_ok()
        {
            let v = f.revealed("backup", "vault_store: backup_codes", s).await?;
            let mut want: Vec<Value> = args["backup_codes"]
                .as_array()
                .cloned()
                .unwrap_or_else(|| vec![args["backup_codes"].clone()])
                .iter()
                .map(|c| json!(c.as_str().unwrap().trim()))
                .filter(|c| c != "")
                .collect();
            want.sort_by_key(ToString::to_string);
            let mut got = v["backup_codes"].as_array().cloned().unwrap_or_default();
            got.sort_by_key(ToString::to_string);
            echo("vault_store: backup_codes", s, &json!(got), &json!(want))?;
        }
    }

    // Plain metadata: trimmed, in the stored result and as `vault_get` and `vault_list` read it.
    let mut stored = Vec::new();
    for (field, args) in [
        ("notes", json!({"value": "a-secret-value", "notes": s})),
        ("username", with(&login, "username", json!(s))),
        ("url", with(&login, "url", json!(s))),
        ("client_id", with(&oauth, "client_id", json!(s))),
        ("issuer", with(&totp, "issuer", json!(s))),
        ("account", with(&totp, "account", json!(s))),
    ] {
        let name = format!("meta-{field}");
        let mut args = args;
        args["name"] = json!(name);
        args["replace"] = json!(true);
        let what = format!("vault_store: {field}");
        if let Ok(v) = f.call(&f.ca, "vault_store", Some((field, s)), args).await? {
            echo(&what, s, &v["credential"][field], &cleaned(s))?;
            let v = f.revealed(&name, &what, s).await?;
            echo(&what, s, &v["credential"][field], &cleaned(s))?;
            stored.push((name, field));
        }
    }
    let list = f.call(&f.ca, "vault_list", None, json!({"limit": 200})).await?;
    let list = accepted("vault_list", s, list)?;
    for (name, field) in stored {
        let c = list["credentials"]
            .as_array()
            .and_then(|l| l.iter().find(|c| c["name"] == name))
            .ok_or_else(|| fail("vault_list", s, format!("{name} is not listed")))?;
        echo(&format!("vault_list: {field}"), s, &c[field], &cleaned(s))?;
    }

    // Settings that are parsed: any answer, as long as it is well-formed; and what is stored
    // of them is plain metadata (no NULs).
    let uri = |label: &str, issuer: &str| format!("otpauth://totp/{label}?secret={TOTP_SECRET}&issuer={issuer}");
    for (field, args) in [
        ("type", json!({"type": s, "value": "a-secret-value"})),
        ("algorithm", with(&totp, "algorithm", json!(s))),
        ("otpauth_uri", json!({"type": "totp", "otpauth_uri": s})),
        ("otpauth_uri", json!({"type": "totp", "otpauth_uri": uri(s, "x")})),
        ("otpauth_uri", json!({"type": "totp", "otpauth_uri": uri(&pct(s), "x")})),
        ("expires_at", json!({"value": "a-secret-value", "expires_at": s})),
        (
            "allowed_hosts",
            json!({"value": "a-secret-value", "allowed_hosts": [s]}),
        ),
        ("allowed_hosts", json!({"value": "a-secret-value", "allowed_hosts": s})),
        ("inject", json!({"value": "a-secret-value", "inject": s})),
        (
            "inject",
            json!({"value": "a-secret-value", "inject": format!("header:{s}")}),
        ),
    ] {
        let mut args = args;
        args["name"] = json!(format!("parsed-{field}"));
        args["replace"] = json!(true);
        if let Ok(v) = f.call(&f.ca, "vault_store", Some((field, s)), args).await?
            && v["credential"].to_string().contains("\\u0000")
        {
            return Err(fail(&format!("vault_store: {field}"), s, format!("a NUL stored: {v}")));
        }
    }
    // An otpauth URI's issuer is plain metadata like the `issuer` argument: trimmed, blank
    // meaning none.
    let args =
        json!({"name": "parsed-issuer", "type": "totp", "otpauth_uri": uri("Issuer:acct", &pct(s)), "replace": true});
    if let Ok(v) = f.call(&f.ca, "vault_store", Some(("otpauth_uri", s)), args).await? {
        echo(
            "vault_store: an otpauth URI's issuer",
            s,
            &v["credential"]["issuer"],
            &cleaned(s),
        )?;
    }
    Ok(())
}

/// The tools that take a credential's name, on names that are not stored.
async fn vault_names(f: &Fixture, s: &str) -> CaseResult {
    // `x` first: never a stored name, whatever `s` is.
    let name = format!("x{s}");
    for tool in ["vault_totp", "vault_totp_backup", "vault_get", "vault_delete"] {
        let r = f
            .call(&f.ca, tool, Some(("name", &name)), json!({"name": name}))
            .await?;
        refused(&format!("{tool}: name"), &name, &r)?;
    }
    Ok(())
}

async fn vault_http(f: &Fixture, s: &str) -> CaseResult {
    let url = f.echo_url.as_str();
    let tool = "vault_http_request";
    let not_upstream = |what: &str, r: &Answer| match r {
        Err(code) if code.starts_with("upstream") => Err(fail(
            what,
            s,
            format!("{code}, though the echo server is up: a refusal of the request should say what is wrong with it"),
        )),
        _ => Ok(()),
    };
    let r = f
        .call(&f.ca, tool, Some(("name", s)), json!({"name": s, "url": url}))
        .await?;
    not_upstream("vault_http_request: name", &r)?;
    let r = f
        .call(&f.ca, tool, Some(("url", s)), json!({"name": ECHO, "url": s}))
        .await?;
    refused("vault_http_request: url", s, &r)?;
    for (field, args) in [
        ("url", json!({"name": ECHO, "url": format!("{url}/{s}")})),
        ("url", json!({"name": ECHO, "url": format!("{url}?q={s}")})),
        ("method", json!({"name": ECHO, "url": url, "method": s})),
        ("headers", json!({"name": ECHO, "url": url, "headers": {s: "v"}})),
        ("headers", json!({"name": ECHO, "url": url, "headers": {"x-test": s}})),
    ] {
        let r = f.call(&f.ca, tool, Some((field, s)), args).await?;
        not_upstream(&format!("vault_http_request: {field}"), &r)?;
    }
    // The body goes out as it is and comes back framed, intact.
    let r = f
        .call(
            &f.ca,
            tool,
            Some(("body", s)),
            json!({"name": ECHO, "url": url, "method": "POST", "body": s}),
        )
        .await?;
    let v = accepted("vault_http_request: body", s, r)?;
    let frame = frame_http_body(ECHO, "127.0.0.1", 200, s);
    framed(
        "vault_http_request: body",
        s,
        &v["body"],
        &frame,
        "HTTP RESPONSE BODY",
        ECHO,
    )
}

fn run(door: Door, cases: u32, label: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fixture = rt.block_on(Box::pin(Fixture::new(door)));
    let started = std::time::Instant::now();
    let ran = run_cases(cases, |s| rt.block_on(Box::pin(case(&fixture, s))));
    let exercised = fixture.exercised.lock().unwrap().clone();
    let pushed: BTreeSet<String> = exercised.keys().cloned().collect();
    let missed: Vec<&String> = fixture.text_arguments.difference(&pushed).collect();
    assert!(
        missed.is_empty(),
        "text arguments no string was pushed through: {missed:?}"
    );
    let unknown: Vec<&String> = pushed.difference(&fixture.text_arguments).collect();
    assert!(unknown.is_empty(), "arguments the tools do not list: {unknown:?}");
    // The read-backs above ran: each text argument that keeps text took some of the inputs.
    for kept in KEPT {
        assert!(exercised[*kept].0 > 0, "{kept} accepted no input: {exercised:?}");
    }
    rt.block_on(Box::pin(fixed_cases(&fixture)));
    let operator = rt.block_on(fixture.w.actor(&fixture.w.admin));
    let verified = rt.block_on(fixture.w.loft.audit_verify(&operator)).unwrap();
    assert!(verified.ok, "{verified:?}");
    let (calls, accepted) = exercised
        .values()
        .fold((0, 0), |(c, a), (yes, no)| (c + yes + no, a + yes));
    eprintln!(
        "{ran} inputs through the {} text arguments of the MCP door ({label}): {calls} calls, {accepted} accepted, \
         in {:.1} s",
        pushed.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Text arguments whose text is kept (and read back by the cases when accepted).
const KEPT: &[&str] = &[
    "mail_send.subject",
    "mail_send.text",
    "mail_send.html",
    "mail_reply.text",
    "mail_reply.html",
    "mail_update_labels.add_labels",
    "mail_update_labels.remove_labels",
    "mail_label_thread.add_labels",
    "mail_label_thread.remove_labels",
    "vault_store.name",
    "vault_store.value",
    "vault_store.password",
    "vault_store.access_token",
    "vault_store.private_key",
    "vault_store.fields",
    "vault_store.backup_codes",
    "vault_store.notes",
    "vault_store.username",
    "vault_store.url",
    "vault_store.issuer",
    "vault_store.account",
    "vault_http_request.body",
    "drafts_create.text",
];

/// Inputs that found defects here, as fixed cases with the answers they must get.
async fn fixed_cases(f: &Fixture) {
    // A header name that is not a token is the request's fault, not the remote host's: it was
    // `upstream_failed` (reqwest kept it as a builder error until `send`).
    for name in ["Grüße aus Köln", "x bad", "", "x\u{0}"] {
        let args = json!({"name": ECHO, "url": f.echo_url, "headers": {name: "v"}});
        let r = f.call(&f.ca, "vault_http_request", None, args).await.unwrap();
        assert_eq!(r, Err("invalid_header".to_owned()), "header name {name:?}");
    }
    // An otpauth URI's label and issuer are percent-decoded into plain metadata: a `%00` was
    // stored as a NUL in the account (which PostgreSQL refuses: an `internal` there).
    for (label, issuer) in [("a%00b", "x"), ("Issuer:a%00b", "x"), ("x", "%00")] {
        let uri = format!("otpauth://totp/{label}?secret={TOTP_SECRET}&issuer={issuer}");
        let args = json!({"name": "nul", "type": "totp", "otpauth_uri": uri});
        let r = f.call(&f.ca, "vault_store", None, args).await.unwrap();
        assert_eq!(r, Err("invalid_text".to_owned()), "{uri}");
    }
    // A remote host that fails is `upstream_failed` through the REST backend too (its 502 was
    // `internal` there).
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let store = json!({"name": "closed", "value": ECHO_SECRET, "allowed_hosts": [format!("127.0.0.1:{port}")]});
    accepted("setup", "", f.call(&f.ca, "vault_store", None, store).await.unwrap()).unwrap();
    let args = json!({"name": "closed", "url": format!("http://127.0.0.1:{port}/")});
    let r = f.call(&f.ca, "vault_http_request", None, args).await.unwrap();
    assert_eq!(r, Err("upstream_failed".to_owned()));
}

#[test]
fn unicode_through_every_text_argument_over_mcp_http() {
    run(Door::Http, CASES, "/mcp");
}

#[test]
fn unicode_through_every_text_argument_over_stdio_and_rest() {
    run(Door::Stdio, STDIO_CASES, "stdio, REST backend");
}
