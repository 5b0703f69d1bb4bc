//! The mail-authentication port: DKIM key generation and signing, SPF / DKIM / DMARC / ARC
//! verification of received mail, and the DNS lookups of `loft domain check`. Implemented by
//! `loft-mailauth` (with the `mail-auth` crate); tests inject DNS answers there, so no test
//! asks a real resolver.
//!
//! Core decides what the results mean (the verdict, `service/inbound.rs`); the port only
//! reports them.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Result;
use crate::domains::{DkimAlgorithm, DnsAnswer, RecordType};

/// A freshly generated DKIM key pair.
pub struct GeneratedKey {
    /// The private key, PKCS#8 DER: sealed at once, never stored or logged in clear.
    pub private_pkcs8: Zeroizing<Vec<u8>>,
    /// The public key, base64, for the record's `p=` tag.
    pub public_key: String,
}

/// A private key opened for one signing.
pub struct SigningKey {
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    pub private_pkcs8: Zeroizing<Vec<u8>>,
}

/// What the verifier needs of a received mail besides its bytes.
#[derive(Debug, Clone)]
pub struct VerifyInput<'a> {
    /// The connecting client's address (`None` when unknown: SPF is then `none`).
    pub client_ip: Option<std::net::IpAddr>,
    /// The EHLO / HELO name.
    pub helo: &'a str,
    /// The envelope sender (`None` for the null sender).
    pub mail_from: Option<&'a str>,
    /// The domain of the header From address.
    pub from_domain: &'a str,
    /// This server's name (for the `Received-SPF` style results).
    pub host: &'a str,
}

/// The result of one check, in the words of RFC 8601.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CheckResult {
    Pass,
    Fail,
    Softfail,
    Neutral,
    None,
    Temperror,
    Permerror,
}

impl CheckResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckResult::Pass => "pass",
            CheckResult::Fail => "fail",
            CheckResult::Softfail => "softfail",
            CheckResult::Neutral => "neutral",
            CheckResult::None => "none",
            CheckResult::Temperror => "temperror",
            CheckResult::Permerror => "permerror",
        }
    }
}

/// A DMARC record's requested handling of failing mail (RFC 7489 6.3, `p=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DmarcPolicy {
    /// Deliver as usual (the domain only asks for reports).
    None,
    /// Treat failing mail as suspicious: Loft holds it for a reviewer (`--dmarc enforce`).
    Quarantine,
    /// Refuse failing mail: Loft answers `550 5.7.1` (`--dmarc enforce`).
    Reject,
}

/// What the receiver does with mail that fails DMARC (`loft serve --dmarc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DmarcEnforcement {
    /// Follow the From domain's policy: `reject` refuses the mail (`550 5.7.1`), `quarantine`
    /// holds it for a reviewer's release. A failure whose DNS was undecided (`temperror`) is
    /// never enforced.
    #[default]
    Enforce,
    /// Store every mail with its verdict and do nothing else (a host behind forwarders or
    /// mailing lists that break DKIM signatures).
    Mark,
}

impl DmarcEnforcement {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s {
            "enforce" => Ok(Self::Enforce),
            "mark" => Ok(Self::Mark),
            other => Err(format!("`{other}` is not `enforce` or `mark`")),
        }
    }
}

/// One DKIM signature's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DkimCheck {
    pub result: CheckResult,
    /// The signing domain (`d=`), when the signature could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The selector (`s=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Whether `d=` is the From domain or its parent/child (relaxed alignment).
    pub aligned: bool,
}

/// The SPF, DKIM, DMARC and ARC results of a received mail, stored on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthChecks {
    /// SPF of the MAIL FROM domain (of the HELO name for the null sender).
    pub spf: CheckResult,
    /// The domain SPF was checked for.
    pub spf_domain: String,
    /// Whether that domain is aligned with the From domain (relaxed).
    pub spf_aligned: bool,
    /// One entry per DKIM signature (empty: `none`).
    pub dkim: Vec<DkimCheck>,
    /// DMARC of the From domain.
    pub dmarc: CheckResult,
    /// What the From domain's DMARC record asks a receiver to do with mail that fails it
    /// (`p=`, or `sp=` / `np=` for a subdomain; lowered one step by `t=y`), when a record was
    /// found. What Loft did with it follows `loft serve --dmarc` (docs/smtp.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmarc_policy: Option<DmarcPolicy>,
    /// ARC chain result (`none` when the mail carries no ARC set).
    pub arc: CheckResult,
}

impl AuthChecks {
    /// Whether any DKIM signature passed with a domain aligned with From.
    pub fn dkim_aligned_pass(&self) -> bool {
        self.dkim.iter().any(|d| d.result == CheckResult::Pass && d.aligned)
    }
    /// Whether SPF passed for a domain aligned with From.
    pub fn spf_aligned_pass(&self) -> bool {
        self.spf == CheckResult::Pass && self.spf_aligned
    }
    /// The overall DKIM result: `pass` when one signature passed, else the first one's.
    pub fn dkim_result(&self) -> CheckResult {
        if self.dkim.iter().any(|d| d.result == CheckResult::Pass) {
            CheckResult::Pass
        } else {
            self.dkim.first().map_or(CheckResult::None, |d| d.result)
        }
    }
    /// Whether a DNS failure left a result undecided.
    pub fn temperror(&self) -> bool {
        self.spf == CheckResult::Temperror
            || self.dmarc == CheckResult::Temperror
            || self.dkim.iter().any(|d| d.result == CheckResult::Temperror)
    }
    /// `spf=pass dkim=pass dmarc=pass arc=none`: one line for people.
    pub fn line(&self) -> String {
        format!(
            "spf={} dkim={} dmarc={} arc={}",
            self.spf.as_str(),
            self.dkim_result().as_str(),
            self.dmarc.as_str(),
            self.arc.as_str()
        )
    }
}

/// Relaxed alignment (RFC 7489 3.1): the same organisational domain, approximated as one of
/// the two names equal to or a subdomain of the other.
pub fn relaxed_aligned(a: &str, b: &str) -> bool {
    let (a, b) = (
        a.trim_end_matches('.').to_ascii_lowercase(),
        b.trim_end_matches('.').to_ascii_lowercase(),
    );
    a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}"))
}

#[async_trait]
pub trait MailAuth: Send + Sync {
    /// Generates a DKIM key pair.
    fn generate_key(&self, algorithm: DkimAlgorithm) -> Result<GeneratedKey>;

    /// The `DKIM-Signature` header fields (each ending in CRLF) for `message` signed by each
    /// key for `domain`, to be put in front of the message.
    fn sign(&self, domain: &str, keys: &[SigningKey], message: &[u8]) -> Result<Vec<u8>>;

    /// Checks SPF, DKIM, DMARC and ARC of a received mail. Never fails: a DNS failure or a
    /// timeout is `temperror` in the results.
    async fn verify(&self, input: &VerifyInput<'_>, message: &[u8]) -> AuthChecks;

    /// Looks up `name`'s records of type `kind`, within a time limit.
    async fn lookup(&self, name: &str, kind: RecordType) -> DnsAnswer;
}
