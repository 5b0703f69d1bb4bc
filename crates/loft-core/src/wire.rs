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

/// For a body field where `null` and absent mean different things (`Option<Option<T>>`, with
/// `#[serde(default)]`): absent is `None` (leave it), `null` is `Some(None)` (clear it), a
/// value is `Some(Some(v))`.
pub fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// For `skip_serializing_if` on a filter flag where `false` and absent mean the same (no filter):
/// only `true` is sent.
#[allow(clippy::ref_option, reason = "serde passes the field by reference")]
pub fn is_not_true(b: &Option<bool>) -> bool {
    *b != Some(true)
}

/// For `skip_serializing_if` on a flag that is mostly false.
#[allow(clippy::trivially_copy_pass_by_ref, reason = "serde passes the field by reference")]
pub fn is_false(b: &bool) -> bool {
    !*b
}

/// Schemas the OpenAPI document gives fields whose rule one attribute cannot state (a string or
/// a list; the white space the server trims), for `#[schema(schema_with = ...)]`, and the rules
/// of whole request bodies ([`body_rules`](openapi::body_rules)). The patterns are ECMA-262;
/// `loft-web`'s test `openapi_request_schemas_state_what_the_server_checks` holds them against
/// the server's own parsers (`parse_label`, `validate_name`, ...).
#[cfg(feature = "openapi")]
pub mod openapi {
    use utoipa::openapi::OpenApi;
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{
        AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
    };

    use crate::mail::{MAX_LABELS_PER_MESSAGE, MAX_RECIPIENTS};
    use crate::vault::{MAX_ALLOWED_HOSTS, MAX_BACKUP_CODES};

    /// The characters `str::trim` removes (Unicode `White_Space`), as a regex class.
    pub const TRIMMED: &str = r"[\t\n\v\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";

    /// `core`, with any white space `str::trim` removes around it.
    pub fn trimmed(core: &str) -> String {
        format!("^{TRIMMED}*{core}{TRIMMED}*$")
    }

    /// A message label (`mail::parse_label`): 1 to 64 letters, digits and `_-:./` once trimmed
    /// (upper case is lowered).
    pub fn label_pattern() -> String {
        trimmed("[A-Za-z0-9_:./-]{1,64}")
    }

    /// A credential name (`vault::validate_name`) once trimmed.
    pub fn credential_name_pattern() -> String {
        trimmed("[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
    }

    /// `label` of a key: at most 64 characters and no control characters once trimmed.
    pub fn key_label() -> RefOr<Schema> {
        string()
            .pattern(Some(trimmed(r"[^\u0000-\u001F\u007F-\u009F]{0,64}")))
            .description(Some(
                "At most 64 printable characters (no control characters) once trimmed; blank means none.",
            ))
            .into()
    }

    /// Text with no NUL, which neither backend stores.
    pub const NO_NUL: &str = r"^[^\u0000]*$";
    /// One line: no CR, LF or NUL.
    pub const ONE_LINE: &str = r"^[^\r\n\u0000]*$";

    fn string() -> ObjectBuilder {
        ObjectBuilder::new().schema_type(Type::String)
    }

    fn email() -> ObjectBuilder {
        string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
    }

    /// One address or a list of them (`one_or_many`).
    fn addresses(description: &str, min: usize) -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(email())
            .item(
                ArrayBuilder::new()
                    .items(email())
                    .min_items((min > 0).then_some(min))
                    .max_items(Some(MAX_RECIPIENTS)),
            )
            .description(Some(format!(
                "{description} One address (`\"a@example.com\"`) or a list of them. A message has at most \
                 {MAX_RECIPIENTS} distinct recipients across `to`, `cc` and `bcc` together."
            )))
            .into()
    }

    /// `to` of a send.
    pub fn to() -> RefOr<Schema> {
        addresses(
            "Recipient addresses. A message needs at least one recipient in `to`, `cc` or `bcc`.",
            0,
        )
    }

    /// `cc` of a send.
    pub fn cc() -> RefOr<Schema> {
        addresses("Copy recipients.", 0)
    }

    /// `bcc` of a send.
    pub fn bcc() -> RefOr<Schema> {
        addresses("Blind copy recipients (never written into the headers).", 0)
    }

    fn labels(description: &str, max: Option<usize>) -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(string().pattern(Some(label_pattern())))
            .max_items(max)
            .description(Some(description))
            .into()
    }

    /// `add_labels` of a message patch.
    pub fn add_labels() -> RefOr<Schema> {
        labels(
            &format!(
                "Labels to add, at most {MAX_LABELS_PER_MESSAGE}: 1 to 64 letters, digits and `_-:./` each \
                 (stored in lower case; surrounding white space is ignored)."
            ),
            Some(MAX_LABELS_PER_MESSAGE),
        )
    }

    /// `remove_labels` of a message patch.
    pub fn remove_labels() -> RefOr<Schema> {
        labels("Labels to remove (written as for `add_labels`).", None)
    }

    /// `name` and `label` of a credential.
    pub fn credential_name() -> RefOr<Schema> {
        string()
            .pattern(Some(credential_name_pattern()))
            .description(Some(
                "The name to store it under (`label` is accepted instead, not both): 1 to 64 letters, digits, \
                 `.`, `_` and `-`, starting with a letter or digit (e.g. `crm`, `github-token`); surrounding white \
                 space is ignored.",
            ))
            .into()
    }

    fn one_or_many_strings(description: &str, max: usize) -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(string())
            .item(ArrayBuilder::new().items(string()).max_items(Some(max)))
            .description(Some(description))
            .into()
    }

    /// `backup_codes` of a totp credential.
    pub fn backup_codes() -> RefOr<Schema> {
        one_or_many_strings(
            &format!(
                "One-time backup (recovery) codes of a `totp` (secret), at most {MAX_BACKUP_CODES}; one code as a \
                 string works too."
            ),
            MAX_BACKUP_CODES,
        )
    }

    /// `allowed_hosts` of a credential.
    pub fn allowed_hosts() -> RefOr<Schema> {
        one_or_many_strings(
            &format!(
                "Hosts (`host` or `host:port`) that brokered requests with this credential may reach, at most \
                 {MAX_ALLOWED_HOSTS}, e.g. `[\"api.example.com\"]`; one host as a string works too."
            ),
            MAX_ALLOWED_HOSTS,
        )
    }

    /// `expires_at` of a credential: an RFC 3339 time, or blank to remove it.
    pub fn expires_at() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))))
            .item(string().pattern(Some(format!("^{TRIMMED}*$"))))
            .description(Some(
                "When the credential expires (RFC 3339, e.g. `2027-01-01T00:00:00Z`), if it does; an empty string \
                 removes the expiry.",
            ))
            .into()
    }

    /// `algorithm` of a totp credential.
    pub fn totp_algorithm() -> RefOr<Schema> {
        string()
            .enum_values(Some(["SHA1", "SHA256", "SHA512"]))
            .description(Some(
                "The `totp` algorithm: SHA1 (default), SHA256 or SHA512 (the server also reads other cases and \
                 `SHA-256`).",
            ))
            .into()
    }

    /// A field given and not empty: a string, or a list of at least one.
    fn given_list(field: &str) -> ObjectBuilder {
        ObjectBuilder::new().required(field).property(
            field,
            AnyOfBuilder::new()
                .item(string())
                .item(ArrayBuilder::new().min_items(Some(1))),
        )
    }

    /// A text field given and not blank (holding a character `str::trim` keeps).
    fn not_blank(field: &str) -> ObjectBuilder {
        ObjectBuilder::new()
            .required(field)
            .property(field, string().pattern(Some(format!("[^{}", &TRIMMED[1..]))))
    }

    /// What no one field's schema can say, by the name of the request body it is about: each
    /// rule is added to that schema with `allOf`.
    pub fn body_rules() -> Vec<(&'static str, RefOr<Schema>)> {
        vec![
            (
                "SendMail",
                AllOfRules::new()
                    .rule(
                        "at least one recipient in `to`, `cc` or `bcc`",
                        [given_list("to"), given_list("cc"), given_list("bcc")],
                    )
                    .rule(
                        "a body: `text` or `html` that is not blank",
                        [not_blank("text"), not_blank("html")],
                    )
                    .build(),
            ),
            (
                "MessagePatch",
                AllOfRules::new()
                    .rule(
                        "something to change: a label to add or remove, or `unread`",
                        [
                            ObjectBuilder::new()
                                .required("add_labels")
                                .property("add_labels", ArrayBuilder::new().min_items(Some(1))),
                            ObjectBuilder::new()
                                .required("remove_labels")
                                .property("remove_labels", ArrayBuilder::new().min_items(Some(1))),
                            ObjectBuilder::new()
                                .required("unread")
                                .property("unread", ObjectBuilder::new().schema_type(Type::Boolean)),
                        ],
                    )
                    .build(),
            ),
            (
                "StoreCredentialRequest",
                OneOfBuilder::new()
                    .item(ObjectBuilder::new().required("name"))
                    .item(ObjectBuilder::new().required("label"))
                    .description(Some("a `name` or a `label`, not both"))
                    .into(),
            ),
        ]
    }

    /// Rules that each hold (`allOf`), each one of alternatives (`anyOf`).
    struct AllOfRules(utoipa::openapi::schema::AllOfBuilder);

    impl AllOfRules {
        fn new() -> Self {
            Self(utoipa::openapi::schema::AllOfBuilder::new())
        }

        fn rule(self, description: &str, alternatives: impl IntoIterator<Item = ObjectBuilder>) -> Self {
            let any = alternatives
                .into_iter()
                .fold(AnyOfBuilder::new(), AnyOfBuilder::item)
                .description(Some(description));
            Self(self.0.item(any))
        }

        fn build(self) -> RefOr<Schema> {
            self.0.into()
        }
    }

    /// Adds [`body_rules`] to the request bodies of `doc`.
    pub fn add_body_rules(doc: &mut OpenApi) {
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        for (name, rule) in body_rules() {
            if let Some(schema) = components.schemas.get_mut(name) {
                let fields = std::mem::take(schema);
                *schema = utoipa::openapi::schema::AllOfBuilder::new()
                    .item(fields)
                    .item(rule)
                    .into();
            }
        }
    }
}
