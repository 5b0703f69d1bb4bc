//! The tools. Each is defined in one place: one [`ToolSpec`] value gives its name, title,
//! description (what a model is told), the scopes that offer it and its annotations, and
//! [`ToolSpec::calls`] adds its call, whose argument type is the input schema and whose result
//! type is the output schema. The specs live by area (`tools/identity.rs`, `tools/mail.rs`,
//! `tools/vault.rs`, and the reviewers' `tools/oversight.rs`), each area's list followed by its
//! argument types; [`all`] is their concatenation, in the order the tool list shows them. Adding
//! a tool is adding one item to its area's list (with its argument type, if new); a test checks
//! README.md and docs/mcp.md against the list, so the docs cannot drift from it.
//!
//! Why spec values and not rmcp's `#[tool]`/`#[tool_router]` macros: their argument extractor
//! (`Parameters<T>`) answers arguments that do not fit with a JSON-RPC `invalid_params` protocol
//! error, where the model must get an `invalid_arguments` tool result it can correct (MCP
//! 2025-11-25); their generated input schemas keep `["string", "null"]` for optional arguments,
//! which some agent frameworks cannot turn into function parameters; a route has no place for
//! the scopes that gate each key's tool list; and they would spread rmcp's types over every
//! tool. Working around each of these per tool would leave the macros saving little, while the
//! machinery below is a hundred lines of plain Rust, and a spec is data the tests can read.
//!
//! A call parses its arguments, calls one [`IdentityApi`] method and reshapes the result
//! ([`crate::views`]). It decides nothing: scopes, ownership and validation are the use cases'
//! (or the server's, behind REST). A spec's scopes only decide whether the tool is *offered*;
//! calling a tool the key may not use still reaches the use case and comes back as a
//! `missing_scope` tool error.
//!
//! The result of every call is one text block holding the JSON result (`AutoGen` shows a result
//! without text as an empty string; `CrewAI` drops unusual shapes) plus the same value as
//! `structuredContent`, which matches the tool's output schema.

mod contacts;
mod drafts;
mod identity;
mod mail;
mod oversight;
mod vault;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use loft_core::keys::{Scope, ScopeSet};
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::api::IdentityApi;
use crate::error::ToolError;

/// Default page size for list tools (a model reads every item; REST defaults to 50).
pub const DEFAULT_LIMIT: u32 = 20;
/// Default `mail_wait` timeout: under the 30 s request timeouts common in MCP clients.
pub const DEFAULT_WAIT_SECONDS: u32 = 25;

/// Every tool, in the order the tool list shows them.
pub(crate) fn all() -> &'static [ToolDef] {
    static TOOLS: LazyLock<Vec<ToolDef>> = LazyLock::new(|| {
        [
            identity::tools(),
            mail::tools(),
            drafts::tools(),
            contacts::tools(),
            vault::tools(),
            oversight::tools(),
        ]
        .into_iter()
        .flatten()
        .collect()
    });
    &TOOLS
}

/// The tool called `name`.
pub(crate) fn find(name: &str) -> Option<&'static ToolDef> {
    all().iter().find(|t| t.spec.name == name)
}

/// The tools a key with `scopes` is offered, in a stable order.
pub(crate) fn offered(scopes: &ScopeSet) -> Vec<Tool> {
    all()
        .iter()
        .filter(|t| t.offered_to(scopes))
        .map(|t| t.tool.clone())
        .collect()
}

/// Runs one tool call as the identity behind `api`.
pub(crate) async fn call(tool: &ToolDef, api: Arc<dyn IdentityApi>, args: JsonObject) -> CallToolResult {
    (tool.call)(api, args).await.unwrap_or_else(ToolError::into_call_result)
}

// ----- definitions -------------------------------------------------------------------------

/// What a tool is: everything but its call and its types.
pub(crate) struct ToolSpec {
    /// `area_verb`, with underscores (`OpenAI` function names may not contain dots).
    pub name: &'static str,
    pub title: &'static str,
    /// The scopes a key needs, all of them, for the tool to be offered (none: always offered).
    pub scopes: &'static [Scope],
    pub hints: Hints,
    /// What a model is told: what it does, what it returns, when to use another tool instead.
    pub description: &'static str,
}

/// The MCP annotations: how a call affects the world, for clients that ask before calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hints {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub open_world: bool,
}

impl Hints {
    /// Changes nothing the caller can see (the access may be recorded in the audit log).
    pub const READ: Hints = Hints {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: false,
    };
}

type CallFuture = Pin<Box<dyn Future<Output = Result<CallToolResult, ToolError>> + Send>>;
type CallFn = Box<dyn Fn(Arc<dyn IdentityApi>, JsonObject) -> CallFuture + Send + Sync>;

/// A tool, whole: its spec, its MCP description (built once) and its call.
pub(crate) struct ToolDef {
    pub spec: ToolSpec,
    /// Scopes that keep the tool off a key's list even when it holds the spec's scopes (see
    /// [`ToolDef::unless`]).
    pub unless: &'static [Scope],
    tool: Tool,
    call: CallFn,
}

impl ToolSpec {
    /// The tool that runs `call` with its arguments parsed as `A` and answers with its `O` as
    /// JSON: `A`'s schema is the input schema, `O`'s the output schema.
    pub fn calls<A, O, F, Fut>(self, call: F) -> ToolDef
    where
        A: DeserializeOwned + JsonSchema,
        O: Serialize + JsonSchema,
        F: Fn(Arc<dyn IdentityApi>, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    {
        let Hints {
            read_only,
            destructive,
            idempotent,
            open_world,
        } = self.hints;
        let mut tool = Tool::new(self.name, self.description, input_schema::<A>());
        tool.title = Some(self.title.to_owned());
        tool.output_schema = Some(output_schema::<O>());
        tool.annotations = Some(
            ToolAnnotations::with_title(self.title)
                .read_only(read_only)
                .destructive(destructive)
                .idempotent(idempotent)
                .open_world(open_world),
        );
        let name = self.name;
        let call: CallFn = Box::new(move |api, args| {
            let pending = parse::<A>(name, args).map(|a| call(api, a));
            Box::pin(async move { success(&pending?.await?) })
        });
        ToolDef {
            spec: self,
            unless: &[],
            tool,
            call,
        }
    }
}

impl ToolDef {
    /// The MCP description of the tool.
    pub fn tool(&self) -> &Tool {
        &self.tool
    }

    pub fn offered_to(&self, scopes: &ScopeSet) -> bool {
        self.spec.scopes.iter().all(|s| scopes.contains(*s)) && !self.unless.iter().any(|s| scopes.contains(*s))
    }

    /// Not offered to keys holding any of `scopes` (a tool for agents that a reviewer's key has
    /// no use for). Offering only: a call still reaches the use case, which decides.
    #[must_use]
    pub fn unless(mut self, scopes: &'static [Scope]) -> Self {
        self.unless = scopes;
        self
    }
}

fn parse<T: DeserializeOwned>(tool: &str, args: JsonObject) -> Result<T, ToolError> {
    serde_path_to_error::deserialize(Value::Object(args)).map_err(|e| ToolError::invalid_arguments(tool, &e))
}

/// A successful result: the JSON as one text block, and the same value as `structuredContent`.
fn success<T: Serialize>(view: &T) -> Result<CallToolResult, ToolError> {
    let internal =
        |e: serde_json::Error| ToolError::from(loft_core::Error::internal(format!("serialising a tool result: {e}")));
    let text = serde_json::to_string_pretty(view).map_err(internal)?;
    let structured = serde_json::to_value(view).map_err(internal)?;
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    Ok(result)
}

// ----- schemas -------------------------------------------------------------------------

fn generate<T: JsonSchema>(serialize: bool) -> JsonObject {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true);
    if serialize {
        settings = settings.for_serialize();
    }
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut object = match serde_json::to_value(schema) {
        Ok(Value::Object(o)) => o,
        _ => JsonObject::new(),
    };
    for key in ["$schema", "title", "description"] {
        object.remove(key);
    }
    object.entry("type").or_insert_with(|| Value::from("object"));
    object
}

/// An input schema: inlined, and with optional arguments written as plain types (absent from
/// `required`) rather than `["string", "null"]`, which some agent frameworks cannot turn into
/// function parameters. The arguments still accept `null`.
fn input_schema<T: JsonSchema>() -> Arc<JsonObject> {
    let mut object = generate::<T>(false);
    if let Some(Value::Object(props)) = object.get_mut("properties") {
        for prop in props.values_mut() {
            drop_null_type(prop);
        }
    }
    object
        .entry("properties")
        .or_insert_with(|| Value::Object(JsonObject::new()));
    Arc::new(object)
}

fn drop_null_type(schema: &mut Value) {
    let Value::Object(s) = schema else { return };
    // `Option<A | B>` comes out as `anyOf: [A, B, null]` (or with the pair nested): keep the
    // alternatives, drop the null.
    if let Some(Value::Array(alternatives)) = s.get_mut("anyOf") {
        let mut flat = Vec::new();
        for alt in alternatives.drain(..) {
            match alt {
                Value::Object(ref o) if o.get("type").and_then(Value::as_str) == Some("null") => {}
                Value::Object(mut o) if o.len() == 1 && o.contains_key("anyOf") => {
                    if let Some(Value::Array(inner)) = o.remove("anyOf") {
                        flat.extend(inner);
                    }
                }
                other => flat.push(other),
            }
        }
        *alternatives = flat;
    }
    if let Some(Value::Array(types)) = s.get("type") {
        let rest: Vec<Value> = types.iter().filter(|t| t.as_str() != Some("null")).cloned().collect();
        if rest.len() == 1 {
            s.insert("type".into(), rest[0].clone());
        } else {
            s.insert("type".into(), Value::Array(rest));
        }
    }
    if let Some(Value::Array(values)) = s.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
}

/// An output schema: what the result's `Serialize` writes (nullable fields included).
fn output_schema<T: JsonSchema>() -> Arc<JsonObject> {
    Arc::new(generate::<T>(true))
}

// ----- arguments shared by several areas ---------------------------------------------------

/// `"a@x"`, `["a@x", "b@y"]`, `null` or nothing.
fn opt_one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

// The schema of an argument that takes one string or a list of them (read by `one_or_many`):
// advertised as exactly that, since clients that check arguments against the schema before
// calling (CrewAI does) would otherwise refuse a model's `"to": "a@x"`. (A plain comment: a
// doc comment would become the schema's description.)
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "a schema only; the value is read by one_or_many")]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::*;

    fn tool(name: &str) -> &'static ToolDef {
        find(name).unwrap_or_else(|| panic!("no tool {name}"))
    }

    use std::fmt::Write as _;

    #[test]
    fn names_are_function_names() {
        for (i, t) in all().iter().enumerate() {
            let n = t.spec.name;
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{n}"
            );
            assert!(std::ptr::eq(find(n).unwrap(), t), "{n} is defined once");
            assert!(all()[..i].iter().all(|o| o.spec.name != n), "{n} is defined once");
            assert_eq!(t.tool().name, n);
        }
        assert!(find("mail.send").is_none());
    }

    #[test]
    fn every_tool_is_fully_described() {
        for t in all().iter().map(ToolDef::tool) {
            assert!(
                t.title.is_some() && t.description.as_deref().is_some_and(|d| d.len() > 80),
                "{}",
                t.name
            );
            let a = t.annotations.as_ref().unwrap();
            assert!(
                a.read_only_hint.is_some()
                    && a.destructive_hint.is_some()
                    && a.idempotent_hint.is_some()
                    && a.open_world_hint.is_some(),
                "{}",
                t.name
            );
            let input = Value::Object((*t.input_schema).clone());
            assert_eq!(input["type"], "object", "{}: {input}", t.name);
            for (field, schema) in input["properties"].as_object().unwrap() {
                assert!(
                    schema["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{}.{field}: {schema}",
                    t.name
                );
                // A type, or alternatives that each have one (one address or a list).
                let typed = schema["type"] != Value::Null
                    || schema["anyOf"]
                        .as_array()
                        .is_some_and(|alts| !alts.is_empty() && alts.iter().all(|a| a["type"] != Value::Null));
                assert!(typed, "{}.{field}: {schema}", t.name);
                assert!(
                    !schema.to_string().contains("\"null\""),
                    "{}.{field}: no null types in inputs: {schema}",
                    t.name
                );
            }
            assert!(!input.to_string().contains("$ref"), "{}: {input}", t.name);
            let output = Value::Object((*t.output_schema.clone().unwrap()).clone());
            assert_eq!(output["type"], "object", "{}: {output}", t.name);
            assert!(!output.to_string().contains("$ref"), "{}: {output}", t.name);
        }
    }

    #[test]
    fn vault_tools_tell_the_model_to_use_credentials_without_seeing_them() {
        for name in ["vault_totp", "vault_http_request"] {
            let d = tool(name).spec.description;
            assert!(
                d.contains("without you ever seeing") && d.contains("prefer it to vault_get"),
                "{d}"
            );
        }
        assert!(tool("vault_get").spec.description.contains("Prefer"));
        let a = tool("vault_delete").tool().annotations.clone().unwrap();
        assert_eq!((a.destructive_hint, a.read_only_hint), (Some(true), Some(false)));
    }

    /// The README and docs/mcp.md name every tool there is, and no tool that is not; the table
    /// in docs/mcp.md gives each tool's scopes and hints as its spec does.
    #[test]
    fn the_docs_list_the_real_tools() {
        let names: Vec<&str> = all().iter().map(|t| t.spec.name).collect();
        let docs = include_str!("../../../docs/mcp.md");
        for (file, text) in [("README.md", include_str!("../../../README.md")), ("docs/mcp.md", docs)] {
            for n in &names {
                assert!(text.contains(&format!("`{n}`")), "{file} does not name the tool {n}");
            }
            for word in text.split('`').skip(1).step_by(2) {
                let looks_like_tool = [
                    "identity_",
                    "mail_",
                    "drafts_",
                    "vault_",
                    "approvals_",
                    "oversight_request",
                ]
                .iter()
                .any(|p| word.starts_with(p))
                    && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
                assert!(
                    !looks_like_tool || names.contains(&word),
                    "{file} names `{word}`, which is not a tool"
                );
            }
        }
        // | `name` | scopes | what it does | read-only | idempotent |
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let mut rows = 0;
        for row in docs.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
            let Some(t) = find(cells[0].trim_matches('`')) else {
                continue;
            };
            rows += 1;
            let scopes: Vec<String> = t.spec.scopes.iter().map(|s| format!("`{}`", s.as_str())).collect();
            let mut scopes = if scopes.is_empty() {
                "(none)".to_owned()
            } else {
                scopes.join(" + ")
            };
            for s in t.unless {
                let _ = write!(scopes, ", not with `{}`", s.as_str());
            }
            let h = t.spec.hints;
            assert_eq!(
                [cells[1], cells[cells.len() - 2], cells[cells.len() - 1]],
                [scopes.as_str(), yes_no(h.read_only), yes_no(h.idempotent)],
                "docs/mcp.md's row for {} (scopes, read-only, idempotent)",
                t.spec.name
            );
        }
        assert_eq!(rows, names.len(), "docs/mcp.md's tool table has one row per tool");
    }

    #[test]
    fn address_arguments_take_one_or_many() {
        let s = Value::Object((*tool("mail_send").tool().input_schema).clone());
        for field in ["to", "cc", "bcc"] {
            let types: Vec<&str> = s["properties"][field]["anyOf"]
                .as_array()
                .unwrap_or_else(|| panic!("{field}: {s}"))
                .iter()
                .map(|a| a["type"].as_str().unwrap())
                .collect();
            assert_eq!(types, ["string", "array"], "{field}: {s}");
        }
    }

    #[test]
    fn required_arguments() {
        let required = |name: &str| -> Vec<String> {
            let s = Value::Object((*tool(name).tool().input_schema).clone());
            let mut r: Vec<String> = s["required"]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            r.sort();
            r
        };
        assert_eq!(required("mail_send"), ["subject", "to"]);
        assert_eq!(required("mail_reply"), ["message_id"]);
        assert_eq!(required("mail_get_thread"), ["thread_id"]);
        assert!(required("mail_wait").is_empty());
        assert!(required("identity_whoami").is_empty());
        assert_eq!(required("vault_store"), ["name"]);
        assert_eq!(required("vault_http_request"), ["name", "url"]);
        assert_eq!(required("vault_get"), ["name"]);
        assert!(required("vault_list").is_empty());
    }

    #[test]
    fn tools_are_gated_by_scopes() {
        let names = |scopes: &[Scope]| -> Vec<&'static str> {
            offered(&ScopeSet::new(scopes.iter().copied()))
                .iter()
                .map(|t| find(&t.name).unwrap().spec.name)
                .collect()
        };
        assert_eq!(names(&[]), ["identity_whoami", "oversight_request_mode"]);
        let read = names(&[Scope::MailRead]);
        assert!(
            read.contains(&"mail_get_message") && read.contains(&"mail_wait"),
            "{read:?}"
        );
        assert!(!read.contains(&"mail_send") && !read.contains(&"mail_reply") && !read.contains(&"mail_update_labels"));
        assert_eq!(
            names(&[Scope::MailSend]),
            [
                "identity_whoami",
                "mail_send",
                "mail_reply",
                "mail_forward",
                "mail_cancel_scheduled",
                "mail_reschedule",
                "drafts_create",
                "drafts_update",
                "drafts_send",
                "drafts_delete",
                "oversight_request_mode"
            ]
        );
        let default = names(&Scope::DEFAULT);
        assert_eq!(default.len(), 34, "{default:?}");
        assert!(
            default.contains(&"vault_totp")
                && default.contains(&"vault_http_request")
                && !default.contains(&"vault_get"),
            "{default:?}"
        );
        assert!(
            !names(&[Scope::VaultReveal]).contains(&"vault_get"),
            "vault_get also needs vault:read"
        );
        assert!(names(&[Scope::VaultRead, Scope::VaultReveal]).contains(&"vault_get"));
        assert_eq!(
            names(&[Scope::VaultRead]),
            [
                "identity_whoami",
                "vault_list",
                "vault_totp",
                "vault_http_request",
                "oversight_request_mode"
            ]
        );
        // A reviewer's key is not offered the agents' mode request.
        assert!(!names(&Scope::REVIEWER).contains(&"oversight_request_mode"));
    }
}
