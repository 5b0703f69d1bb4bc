//! Typed identifiers. Each entity's id has its own type and a readable prefix
//! (`idt_`, `msg_`, `thr_`, `apr_`, `rul_`, `key_`, `drf_`), so an id of one kind can never be passed as another and a
//! human can tell them apart in logs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::random::{self, Random};
use crate::{Error, Result};

/// Length of the random part of every id.
pub const ID_RANDOM_LEN: usize = 20;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(try_from = "String")]
        #[cfg_attr(feature = "openapi", schema(value_type = String, example = json!(concat!($prefix, "a2b3c4d5e6f7g2h3i4j5"))))]
        pub struct $name(String);

        /// As the string it is (without the copy `#[serde(into = "String")]` would make).
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate(random: &dyn Random) -> Self {
                Self(format!("{}{}", $prefix, random::base32_string(random, ID_RANDOM_LEN)))
            }

            /// Parses an id as a client sent it; anything else is `Invalid`.
            pub fn parse(s: &str) -> Result<Self> {
                match s.strip_prefix($prefix) {
                    Some(rest) if !rest.is_empty() && rest.len() <= 64 && random::is_base32(rest) => {
                        Ok(Self(s.to_owned()))
                    }
                    _ => Err(Error::invalid(
                        "invalid_id",
                        format!("`{}` is not a valid {} id", s.chars().take(80).collect::<String>(), $what),
                    )
                    .with_hint(format!("{} ids look like `{}a2b3c4d5e6f7g2h3i4j5`", $what, $prefix))),
                }
            }

            /// Wraps a value read back from our own database.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

typed_id!(
    /// An agent identity.
    IdentityId, "idt_", "identity"
);
typed_id!(
    /// One copy of a message in one identity's mailbox.
    MessageId, "msg_", "message"
);
typed_id!(
    /// A conversation within one identity's mailbox.
    ThreadId, "thr_", "thread"
);
typed_id!(
    /// A held mail waiting for (or decided by) a reviewer.
    ApprovalId, "apr_", "approval"
);
typed_id!(
    /// A mail an identity is still composing (`drf_...`).
    DraftId, "drf_", "draft"
);
typed_id!(
    /// An allow / block / hold rule for sending, receiving or replying.
    RuleId, "rul_", "rule"
);
typed_id!(
    /// A webhook endpoint (`whk_...`).
    WebhookId, "whk_", "webhook"
);
typed_id!(
    /// One logged delivery attempt of a webhook endpoint (`whd_...`).
    WebhookDeliveryId, "whd_", "webhook delivery"
);
typed_id!(
    /// An API key's public id (the secret part is never an id).
    KeyId, "key_", "key"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    #[test]
    fn generated_ids_parse_and_foreign_prefixes_do_not() {
        let r = SeededRandom::new(7);
        let id = MessageId::generate(&r);
        assert_eq!(MessageId::parse(id.as_str()).unwrap(), id);
        assert!(IdentityId::parse(id.as_str()).is_err());
        assert!(MessageId::parse("msg_").is_err());
        assert!(MessageId::parse("msg_ABC").is_err());
        assert!(MessageId::parse("msg_a/b").is_err());
    }
}
