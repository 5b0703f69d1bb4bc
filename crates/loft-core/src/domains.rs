//! Hosted mail domains: the domains this server accepts mail for and signs mail from, their
//! DKIM keys (one ed25519 and one RSA-2048 selector each, private keys sealed by the vault
//! keyring), the DNS records an operator publishes for them, and the comparison of those
//! records with what DNS answers (`loft domain check`).
//!
//! The crypto (key generation, signing) and DNS are behind the [`crate::mailauth::MailAuth`]
//! port; this module holds the model and the rules, and never sees a private key in clear
//! outside the function that uses it.

use std::fmt::Write as _;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::audit::AuditEntry;
use crate::time::Timestamp;
use crate::vault::Sealed;

/// The two DKIM signature algorithms Loft signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DkimAlgorithm {
    /// `ed25519-sha256` (RFC 8463): short keys and signatures; not every verifier knows it yet.
    Ed25519,
    /// `rsa-sha256` with a 2048-bit key: what every verifier knows.
    Rsa,
}

impl DkimAlgorithm {
    pub const ALL: [DkimAlgorithm; 2] = [DkimAlgorithm::Ed25519, DkimAlgorithm::Rsa];

    pub fn as_str(self) -> &'static str {
        match self {
            DkimAlgorithm::Ed25519 => "ed25519",
            DkimAlgorithm::Rsa => "rsa",
        }
    }

    pub fn parse_stored(s: &str) -> Result<Self> {
        match s {
            "ed25519" => Ok(DkimAlgorithm::Ed25519),
            "rsa" => Ok(DkimAlgorithm::Rsa),
            other => Err(crate::Error::internal(format!(
                "a DKIM key has the unknown algorithm `{other}` (written by a newer version?)"
            ))),
        }
    }

    /// The `k=` tag of the key's DNS record.
    pub fn dns_tag(self) -> &'static str {
        match self {
            DkimAlgorithm::Ed25519 => "ed25519",
            DkimAlgorithm::Rsa => "rsa",
        }
    }
}

/// One DKIM selector of a hosted domain, as shown (never the private key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DkimSelector {
    /// The selector: the record is published at `<selector>._domainkey.<domain>`.
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// The public key, base64, as in the record's `p=` tag.
    pub public_key: String,
    pub created_at: Timestamp,
}

/// A DKIM key as the store keeps it: the selector and the private key sealed by the vault
/// keyring (`vault::seal_domain_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDkimKey {
    pub domain: String,
    pub selector: DkimSelector,
    pub sealed: Sealed,
}

/// A hosted domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Domain {
    /// Lowercase ASCII.
    pub name: String,
    /// True for the server's own mail domain (`loft serve --domain`): hosted whether or not it
    /// is in the table, and never removed.
    pub default: bool,
    /// `None` for the default domain before `loft domain add` gave it keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// Its DKIM selectors (empty for the default domain until it is added).
    pub dkim: Vec<DkimSelector>,
}

/// A domain with its DNS records, as `add` and `show` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DomainView {
    #[serde(flatten)]
    pub domain: Domain,
    /// The records to publish for it.
    pub records: Vec<DnsRecord>,
    /// The same records as a zone-file snippet.
    pub zone: String,
}

/// The body of `POST /v0/domains`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddDomainRequest {
    /// The domain to host, e.g. `agents.example.com`.
    pub name: String,
}

/// Kinds of DNS record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordType {
    Mx,
    Txt,
}

/// What each record is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecordPurpose {
    Mx,
    Spf,
    Dkim,
    Dmarc,
}

/// One DNS record to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DnsRecord {
    pub purpose: RecordPurpose,
    #[serde(rename = "type")]
    pub record_type: RecordType,
    /// Fully qualified name, without the trailing dot.
    pub name: String,
    /// The record's value: `10 mx.example.com.` for MX, the text for TXT (unquoted).
    pub value: String,
}

/// Whether a published record matches the expected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Published as expected.
    Ok,
    /// Nothing of this kind is published at that name.
    Missing,
    /// Something of this kind is published there, but not the expected value.
    Different,
    /// DNS did not answer (timeout, server failure): try again.
    Temperror,
}

/// One record of `loft domain check`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordCheck {
    pub record: DnsRecord,
    pub status: CheckStatus,
    /// What DNS answered for that name and type (empty when nothing).
    pub found: Vec<String>,
}

/// The answer of `loft domain check`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DomainCheck {
    pub name: String,
    /// True when every record is `ok`.
    pub ok: bool,
    pub records: Vec<RecordCheck>,
}

/// The DKIM selector names Loft generates: `loft-<algorithm>-<yyyymm>` (a date in the name lets
/// a later key roll publish a new selector beside the old one).
pub fn selector_name(algorithm: DkimAlgorithm, at: Timestamp) -> String {
    let month = chrono::DateTime::from_timestamp_micros(at.as_micros())
        .map_or_else(|| "0".into(), |t| t.format("%Y%m").to_string());
    format!("loft-{}-{month}", algorithm.as_str())
}

/// The records to publish for `domain`, whose MX is `mx_host`.
pub fn records(domain: &str, mx_host: &str, dkim: &[DkimSelector]) -> Vec<DnsRecord> {
    let mut out = vec![
        DnsRecord {
            purpose: RecordPurpose::Mx,
            record_type: RecordType::Mx,
            name: domain.to_owned(),
            value: format!("10 {mx_host}."),
        },
        DnsRecord {
            purpose: RecordPurpose::Spf,
            record_type: RecordType::Txt,
            name: domain.to_owned(),
            value: "v=spf1 mx -all".to_owned(),
        },
    ];
    for k in dkim {
        out.push(DnsRecord {
            purpose: RecordPurpose::Dkim,
            record_type: RecordType::Txt,
            name: format!("{}._domainkey.{domain}", k.selector),
            value: format!("v=DKIM1; k={}; p={}", k.algorithm.dns_tag(), k.public_key),
        });
    }
    out.push(DnsRecord {
        purpose: RecordPurpose::Dmarc,
        record_type: RecordType::Txt,
        name: format!("_dmarc.{domain}"),
        value: format!("v=DMARC1; p=quarantine; adkim=s; aspf=s; rua=mailto:postmaster@{domain}"),
    });
    out
}

/// The records as a zone-file snippet (absolute names; long TXT values split into quoted
/// strings of at most 255 bytes, as DNS requires).
pub fn zone_snippet(records: &[DnsRecord]) -> String {
    let mut out = String::new();
    for r in records {
        match r.record_type {
            RecordType::Mx => {
                let _ = writeln!(out, "{}.\t3600\tIN\tMX\t{}", r.name, r.value);
            }
            RecordType::Txt => {
                let parts: Vec<String> = r
                    .value
                    .as_bytes()
                    .chunks(255)
                    .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
                    .collect();
                let _ = writeln!(out, "{}.\t3600\tIN\tTXT\t{}", r.name, parts.join(" "));
            }
        }
    }
    out
}

/// Normalises TXT text for comparison: tags split on `;`, white space around them dropped.
fn txt_tags(s: &str) -> Vec<String> {
    s.split(';')
        .map(|t| t.split_whitespace().collect::<String>())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Compares what DNS answered for a record's name and type with the record.
pub fn compare(record: &DnsRecord, answer: &DnsAnswer) -> CheckStatus {
    let found = match answer {
        DnsAnswer::Temporary => return CheckStatus::Temperror,
        DnsAnswer::NotFound => return CheckStatus::Missing,
        DnsAnswer::Records(r) => r,
    };
    match record.purpose {
        RecordPurpose::Mx => {
            let want = record
                .value
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let hit = found.iter().any(|f| {
                f.split_whitespace()
                    .last()
                    .is_some_and(|h| h.trim_end_matches('.').eq_ignore_ascii_case(&want))
            });
            if hit { CheckStatus::Ok } else { CheckStatus::Different }
        }
        RecordPurpose::Spf | RecordPurpose::Dmarc => {
            let prefix = if record.purpose == RecordPurpose::Spf {
                "v=spf1"
            } else {
                "v=dmarc1"
            };
            let ours: Vec<&String> = found
                .iter()
                .filter(|f| f.trim_start().to_ascii_lowercase().starts_with(prefix))
                .collect();
            if ours.is_empty() {
                CheckStatus::Missing
            } else if ours.iter().any(|f| {
                f.split_whitespace().collect::<Vec<_>>() == record.value.split_whitespace().collect::<Vec<_>>()
            }) || (record.purpose == RecordPurpose::Dmarc
                && ours.iter().any(|f| txt_tags(f) == txt_tags(&record.value)))
            {
                CheckStatus::Ok
            } else {
                CheckStatus::Different
            }
        }
        RecordPurpose::Dkim => {
            let want = txt_tags(&record.value);
            if found.iter().any(|f| txt_tags(f) == want) {
                CheckStatus::Ok
            } else {
                CheckStatus::Different
            }
        }
    }
}

/// What a DNS lookup answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsAnswer {
    /// The records: TXT strings (each record's strings joined), or MX as `pref host`.
    Records(Vec<String>),
    /// The name or the type does not exist (NXDOMAIN, NODATA).
    NotFound,
    /// No answer: timeout, server failure, network.
    Temporary,
}

/// Hosted domains and their DKIM keys (conformance: `domains`).
#[async_trait]
pub trait DomainStore: Send + Sync {
    /// Stores a new hosted domain with its keys and the audit row. `Conflict("domain_exists")`
    /// when the domain is already hosted.
    async fn insert_domain(&self, name: &str, at: Timestamp, keys: Vec<StoredDkimKey>, audit: AuditEntry)
    -> Result<()>;

    /// Every hosted domain (in name order) with its selectors.
    async fn list_domains(&self) -> Result<Vec<Domain>>;

    /// One hosted domain, `None` when it is not in the table.
    async fn get_domain(&self, name: &str) -> Result<Option<Domain>>;

    /// The sealed DKIM keys of `name` (in selector order), empty when it is not hosted.
    async fn domain_keys(&self, name: &str) -> Result<Vec<StoredDkimKey>>;

    /// Removes the domain and its keys, with the audit row. `NotFound("domain")` when absent.
    async fn delete_domain(&self, name: &str, audit: AuditEntry) -> Result<()>;

    /// DKIM keys sealed under another master key than `current` (for the vault rotation).
    async fn domain_keys_stale(&self, current: &str) -> Result<Vec<StoredDkimKey>>;

    /// Replaces each key's sealed parts when it is still sealed under the key id it was read
    /// with (`old_key_id`), with the audit row; answers how many were rewritten.
    async fn domain_keys_rewrap(&self, keys: Vec<(StoredDkimKey, String)>, audit: AuditEntry) -> Result<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(purpose: RecordPurpose, value: &str) -> DnsRecord {
        DnsRecord {
            purpose,
            record_type: if purpose == RecordPurpose::Mx {
                RecordType::Mx
            } else {
                RecordType::Txt
            },
            name: "agents.test".into(),
            value: value.into(),
        }
    }

    #[test]
    fn compare_says_ok_missing_different() {
        let spf = rec(RecordPurpose::Spf, "v=spf1 mx -all");
        let found = |v: &[&str]| DnsAnswer::Records(v.iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(compare(&spf, &found(&["v=spf1 mx -all"])), CheckStatus::Ok);
        assert_eq!(
            compare(&spf, &found(&["google-site-verification=x"])),
            CheckStatus::Missing
        );
        assert_eq!(compare(&spf, &found(&["v=spf1 ~all"])), CheckStatus::Different);
        assert_eq!(compare(&spf, &DnsAnswer::NotFound), CheckStatus::Missing);
        assert_eq!(compare(&spf, &DnsAnswer::Temporary), CheckStatus::Temperror);
        let mx = rec(RecordPurpose::Mx, "10 mx.agents.test.");
        assert_eq!(compare(&mx, &found(&["20 MX.agents.test."])), CheckStatus::Ok);
        assert_eq!(compare(&mx, &found(&["10 other.test."])), CheckStatus::Different);
        let dkim = rec(RecordPurpose::Dkim, "v=DKIM1; k=ed25519; p=AAAA");
        assert_eq!(compare(&dkim, &found(&["v=DKIM1;k=ed25519;p=AAAA"])), CheckStatus::Ok);
        assert_eq!(
            compare(&dkim, &found(&["v=DKIM1; k=ed25519; p=BBBB"])),
            CheckStatus::Different
        );
    }

    #[test]
    fn zone_splits_long_txt() {
        let long = "p=".to_owned() + &"A".repeat(400);
        let z = zone_snippet(&[rec(RecordPurpose::Dkim, &long)]);
        assert!(z.contains("\" \""), "{z}");
        assert!(z.starts_with("agents.test.\t3600\tIN\tTXT\t\""));
    }
}
