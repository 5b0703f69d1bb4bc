//! Mail addresses. Parse, don't validate: an [`EmailAddress`] is always a plain, lowercased
//! `local@domain` that we are willing to put in a header.
//!
//! We accept the subset of RFC 5321 addresses that real agents use (dot-atom local parts,
//! LDH domain labels); quoted local parts and address literals are refused with a clear error,
//! since they are a source of header injection and confusion rather than of real users.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String")]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "researcher-k3x9p@agents.localhost"))]
pub struct EmailAddress(String);

/// As the string it is (without the copy `#[serde(into = "String")]` would make).
impl Serialize for EmailAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

pub const MAX_LOCAL_PART: usize = 64;
pub const MAX_DOMAIN: usize = 253;

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// Checks a local part: dot-atom, 1 to 64 characters.
pub fn validate_local_part(local: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::invalid(
            "invalid_address",
            format!("`{local}` is not a valid mailbox name: {why}"),
        ))
    };
    if local.is_empty() {
        return bad("it is empty");
    }
    if local.len() > MAX_LOCAL_PART {
        return bad("it is longer than 64 characters");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return bad("dots may not start, end or repeat");
    }
    if !local.chars().all(|c| c == '.' || is_atext(c)) {
        return bad("it may hold only letters, digits, dots and !#$%&'*+-/=?^_`{|}~");
    }
    Ok(())
}

/// Checks a domain: dot-separated LDH labels, each 1 to 63 characters.
pub fn validate_domain(domain: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::invalid(
            "invalid_domain",
            format!("`{domain}` is not a valid mail domain: {why}"),
        ))
    };
    if domain.is_empty() || domain.len() > MAX_DOMAIN {
        return bad("it must be 1 to 253 characters");
    }
    for label in domain.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each dot-separated label must be 1 to 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label may not start or end with '-'");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return bad("labels may hold only letters, digits and '-'");
        }
    }
    Ok(())
}

impl EmailAddress {
    /// Parses `local@domain`, trimming surrounding white space and lowercasing.
    pub fn parse(input: &str) -> Result<Self> {
        let s = input.trim();
        let hint = "addresses look like `writer-a1b2c@agents.example.com`";
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(Error::invalid(
                "invalid_address",
                format!("`{}` is not a mail address: it has no '@'", truncate(s)),
            )
            .with_hint(hint));
        };
        validate_local_part(local).map_err(|e| e.with_hint(hint))?;
        validate_domain(domain).map_err(|e| e.with_hint(hint))?;
        Ok(Self(format!(
            "{}@{}",
            local.to_ascii_lowercase(),
            domain.to_ascii_lowercase()
        )))
    }

    pub fn from_parts(local: &str, domain: &str) -> Result<Self> {
        Self::parse(&format!("{local}@{domain}"))
    }

    /// Wraps a value read back from our own database.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(l, _)| l)
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<EmailAddress> for String {
    fn from(a: EmailAddress) -> String {
        a.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_and_normalises() {
        let a = EmailAddress::parse("  Writer.One+x@Agents.Example.COM ").unwrap();
        assert_eq!(a.as_str(), "writer.one+x@agents.example.com");
        assert_eq!(a.local_part(), "writer.one+x");
        assert_eq!(a.domain(), "agents.example.com");
    }

    #[test]
    fn refuses_what_could_inject_or_confuse() {
        for bad in [
            "",
            "no-at",
            "@d.com",
            "a@",
            "a b@d.com",
            "a@d..com",
            ".a@d.com",
            "a..b@d.com",
            "a@-d.com",
            "a@d.com\r\nBcc: x@y.z",
            "\"quoted\"@d.com",
            "a@[127.0.0.1]",
            "a<b>@d.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(s in ".{0,80}") {
            if let Ok(a) = EmailAddress::parse(&s) {
                let again = EmailAddress::parse(a.as_str()).unwrap();
                prop_assert_eq!(&again, &a);
                prop_assert!(!a.as_str().contains(['\r', '\n', ' ', '<', '>', ',']));
            }
        }

        #[test]
        fn valid_shapes_are_accepted(local in "[a-z0-9][a-z0-9._+-]{0,20}[a-z0-9]", domain in "[a-z0-9]{1,10}(\\.[a-z]{2,6}){1,2}") {
            prop_assume!(!local.contains(".."));
            let a = EmailAddress::from_parts(&local, &domain).unwrap();
            prop_assert_eq!(a.local_part(), local.as_str());
            prop_assert_eq!(a.domain(), domain.as_str());
        }
    }
}
