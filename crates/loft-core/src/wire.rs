//! How the wire types read and write JSON and query strings: the serde helpers they share.
//!
//! The wire types themselves (requests, query parameters, responses) are defined once, in this
//! crate, and every door and the client use them as they are: a request or query type lives
//! with its area's use cases (`service::identities::CreateIdentityRequest`,
//! `service::messages::ListMessagesParams`, re-exported from [`crate::service`]), a response is
//! the domain type the use case returns (`mail::Message`, `service::Page`), and the error
//! envelope is [`crate::error::ErrorBody`]. Each is `Deserialize` for the server and `Serialize`
//! for `loft-client`, with what a request leaves out written down once, in its serde attributes
//! (`skip_serializing_if` on bodies; a query goes through `serde_urlencoded`, which drops `None`
//! by itself), so that the CLI, the stdio MCP server and the benchmark send what the server
//! reads. Their OpenAPI derives (feature `openapi`, for `loft-web`) and JSON schemas (feature
//! `json-schema`, for MCP tools that take a request as it is) are optional: the domain compiles
//! without either library.
//!
//! This module must not grow types of its own: a wire type belongs to its area.

use serde::{Deserialize, Deserializer};

// One string or a list of them, read by `one_or_many` and `opt_one_or_many`, and advertised as
// exactly that in JSON schemas. (A plain comment on purpose: with `json-schema`, a doc comment
// would become a description inside every field that uses it.)
#[derive(Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// Accepts `"a@x"` as well as `["a@x", "b@y"]`.
pub fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    OneOrMany::deserialize(d).map(OneOrMany::into_vec)
}

/// Like [`one_or_many`], for an optional list: `null` (or, with `#[serde(default)]`, nothing)
/// is `None`.
pub fn opt_one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(Option::<OneOrMany>::deserialize(d)?.map(OneOrMany::into_vec))
}

/// For `skip_serializing_if` on a filter flag where `false` and absent mean the same (no filter):
/// only `true` is sent.
#[allow(clippy::ref_option, reason = "serde passes the field by reference")]
pub fn is_not_true(b: &Option<bool>) -> bool {
    *b != Some(true)
}
