//! Identities: one per agent, each with its own address, keys and delegation chain.

use serde::{Deserialize, Serialize};

use crate::address::EmailAddress;
use crate::ids::{IdentityId, KeyId};
use crate::keys::{KeyMeta, ScopeSet};
use crate::random::{self, Random};
use crate::time::Timestamp;
use crate::{Error, Result};

pub const MAX_NAME: usize = 64;
pub const MAX_DISPLAY_NAME: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IdentityStatus {
    Active,
    Revoked,
}

/// Who created an identity: the operator, or another identity (with the key it used).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Creator {
    /// `operator` or `identity`.
    pub kind: CreatorKind,
    pub identity_id: Option<IdentityId>,
    pub key_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CreatorKind {
    Operator,
    Identity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Identity {
    pub id: IdentityId,
    /// The name it was created with (unique per creator is not required).
    pub name: String,
    pub display_name: Option<String>,
    pub address: EmailAddress,
    /// The most any key of this identity may do.
    pub scopes: ScopeSet,
    /// How much a human oversees its mail (set by the operator).
    pub oversight_mode: crate::oversight::OversightMode,
    pub status: IdentityStatus,
    /// Set while the operator has paused it (the kill switch): its keys are refused with
    /// `identity_paused`; mail sent to it is still delivered and kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<Timestamp>,
    /// Its sending caps and first-contact setting (set by the operator; none by default).
    #[serde(default)]
    pub caps: crate::caps::IdentityCaps,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub created_by: Creator,
}

impl Identity {
    pub fn is_active(&self) -> bool {
        self.status == IdentityStatus::Active
    }
    /// Whether its webhook endpoints post: active and not paused.
    pub fn receives_webhooks(&self) -> bool {
        self.is_active() && self.paused_at.is_none()
    }
    pub fn parent_id(&self) -> Option<&IdentityId> {
        self.created_by.identity_id.as_ref()
    }
}

/// What the store needs to create an identity and its first key, in one transaction.
#[derive(Debug, Clone)]
pub struct NewIdentity {
    pub identity: Identity,
    pub key: crate::keys::StoredKey,
}

/// `POST /v0/identities` answers with the identity and its key, shown this once. `Debug`
/// never prints the key.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedIdentity {
    #[serde(flatten)]
    pub identity: Identity,
    /// The identity's API key. It is shown only in this response; store it now.
    pub api_key: String,
    pub key_id: KeyId,
}

/// A new key, shown once. `Debug` never prints the key.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: KeyMeta,
    /// The key itself. It is shown only in this response; store it now.
    pub api_key: String,
}

impl std::fmt::Debug for CreatedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedIdentity")
            .field("identity", &self.identity)
            .field("api_key", &"[REDACTED]")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("key", &self.key)
            .field("api_key", &"[REDACTED]")
            .finish()
    }
}

/// One link of a whoami chain, from the caller up to the operator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainLink {
    /// `identity` or `operator`.
    pub kind: CreatorKind,
    pub identity_id: Option<IdentityId>,
    pub name: Option<String>,
    pub address: Option<EmailAddress>,
    /// The key the link above used to create this one.
    pub created_with_key: Option<String>,
}

impl ChainLink {
    /// The chain's last link: the operator, who created the first identities.
    pub fn operator() -> Self {
        Self {
            kind: CreatorKind::Operator,
            identity_id: None,
            name: None,
            address: None,
            created_with_key: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhoAmI {
    /// `identity` or `operator`.
    pub kind: CreatorKind,
    pub identity: Option<Identity>,
    pub address: Option<EmailAddress>,
    /// The scopes this request carries (key scopes within the identity's scopes).
    pub scopes: ScopeSet,
    pub key_id: String,
    pub key_expires_at: Option<Timestamp>,
    /// From this identity up to the operator.
    pub chain: Vec<ChainLink>,
    /// For an identity: its sending caps, the instance's, and what it used of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending: Option<crate::caps::SendingStatus>,
    /// This identity's request for another oversight mode: open (waiting for the operator) or
    /// denied (with the operator's reason, shown until it asks again). Absent when there is none
    /// (a granted request is cleared: the mode shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_request: Option<crate::oversight::ModeRequest>,
}

/// Checks a name: 1 to 64 printable characters.
pub fn validate_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(Error::invalid(
            "invalid_name",
            format!("the name must be 1 to {MAX_NAME} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "invalid_name",
            "the name may not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

pub fn validate_display_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.chars().count() > MAX_DISPLAY_NAME || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "invalid_display_name",
            format!("the display name must be at most {MAX_DISPLAY_NAME} printable characters"),
        ));
    }
    Ok(name.to_owned())
}

/// A mailbox-safe slug of a name: lowercase ASCII letters and digits joined by single dashes,
/// at most 40 characters; `agent` when nothing is left.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() { "agent".into() } else { out }
}

/// The default address of a new identity: `slug-xxxxx@domain`.
pub fn default_local_part(name: &str, random: &dyn Random) -> String {
    format!("{}-{}", slug(name), random::base32_string(random, 5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("Researcher"), "researcher");
        assert_eq!(slug("  Sales Bot #2 "), "sales-bot-2");
        assert_eq!(slug("研究"), "agent");
    }

    proptest! {
        #[test]
        fn slug_is_always_a_valid_local_part(name in "\\PC{0,80}") {
            let s = slug(&name);
            let local = format!("{s}-abcde");
            prop_assert!(crate::address::validate_local_part(&local).is_ok());
        }
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn created_keys_never_print_the_key_through_debug() {
        let meta: KeyMeta = serde_json::from_value(serde_json::json!({
            "id": "key_aaaaaaaaaaaaaaaa", "identity_id": "idt_aaaaaaaaaaaaaaaa", "kind": "extra",
            "label": null, "scopes": [], "created_at": "2026-12-04T00:00:00Z", "expires_at": null,
            "revoked_at": null, "created_by_key": null
        }))
        .expect("key meta");
        let secret = "loft_sk_aaaaaaaaaaaaaaaa_supersecretsupersecretsupersecretsupersecretsupers";
        let created = CreatedKey {
            key: meta,
            api_key: secret.into(),
        };
        let printed = format!("{created:?} {created:#?}");
        assert!(!printed.contains("supersecret"), "{printed}");
        assert!(printed.contains("[REDACTED]"));
    }
}
