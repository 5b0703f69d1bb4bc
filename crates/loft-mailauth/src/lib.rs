//! Loft's mail authentication, behind `loft_core::mailauth::MailAuth`: DKIM key generation
//! (aws-lc-rs) and signing, SPF / DKIM / DMARC / ARC verification of received mail, and the
//! DNS lookups of `loft domain check`, with `mail-auth` 0.15.
//!
//! DNS comes from one of two places: the system resolver (`/etc/resolv.conf`, through
//! mail-auth's hickory resolver) with a small in-process cache ([`Authenticator::system`]),
//! or answers given up front ([`Authenticator::with_answers`]) which tests use, so that no
//! test ever asks a real resolver: every name they did not give is answered NXDOMAIN at once.
//! Every check runs under a time limit; a DNS failure or timeout is `temperror`, never an
//! error or a hang.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use loft_core::domains::{DkimAlgorithm, DnsAnswer, RecordType};
use loft_core::mailauth::{
    AuthChecks, CheckResult, DkimCheck, DmarcPolicy, GeneratedKey, MailAuth, SigningKey, VerifyInput, relaxed_aligned,
};
use loft_core::{Error, Result};
use mail_auth::dkim::DkimSigner;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dns::{DnsCache, Negative, RecordSet, ResolverCache, TxtRecordParser};
use mail_auth::headers::HeaderWriter;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, Mx, SpfResult, TxtRecord};
use zeroize::Zeroizing;

/// How long one whole verification may take before its undecided parts are `temperror`.
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one lookup of `loft domain check` may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(8);
/// Entries per record type kept by the system resolver's cache before it is emptied.
const CACHE_ENTRIES: usize = 10_000;

type Answer<T> = std::result::Result<RecordSet<T>, Negative>;

/// One record type's cache: a map with expiry, emptied when it grows past [`CACHE_ENTRIES`].
pub struct MapCache<K, V>(Mutex<HashMap<K, (V, Instant)>>);

impl<K, V> Default for MapCache<K, V> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for MapCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (value, expires) = map.get(name)?;
        (*expires > Instant::now()).then(|| value.clone())
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(name).map(|(v, _)| v)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= CACHE_ENTRIES {
            map.clear();
        }
        map.insert(key, (value, valid_until));
    }
}

/// The system resolver's caches, one per record type.
#[derive(Default)]
pub struct Caches {
    txt: MapCache<Box<str>, TxtRecord>,
    mx: MapCache<Box<str>, Answer<Mx>>,
    ipv4: MapCache<Box<str>, Answer<Ipv4Addr>>,
    ipv6: MapCache<Box<str>, Answer<Ipv6Addr>>,
    ptr: MapCache<IpAddr, Answer<Box<str>>>,
}

impl DnsCache for Caches {
    type Txt = MapCache<Box<str>, TxtRecord>;
    type Mx = MapCache<Box<str>, Answer<Mx>>;
    type Ipv4 = MapCache<Box<str>, Answer<Ipv4Addr>>;
    type Ipv6 = MapCache<Box<str>, Answer<Ipv6Addr>>;
    type Ptr = MapCache<IpAddr, Answer<Box<str>>>;

    fn txt(&self) -> Option<&Self::Txt> {
        Some(&self.txt)
    }
    fn mx(&self) -> Option<&Self::Mx> {
        Some(&self.mx)
    }
    fn ipv4(&self) -> Option<&Self::Ipv4> {
        Some(&self.ipv4)
    }
    fn ipv6(&self) -> Option<&Self::Ipv6> {
        Some(&self.ipv6)
    }
    fn ptr(&self) -> Option<&Self::Ptr> {
        Some(&self.ptr)
    }
}

/// DNS answers given up front (tests, or a host with no resolver): names with their TXT
/// strings, MX hosts and addresses (A and AAAA: SPF's `mx` and `a` mechanisms resolve through
/// them); every other name does not exist. Keys are lowercase names without the trailing dot.
#[derive(Debug, Clone, Default)]
pub struct StaticDns {
    pub txt: HashMap<String, Vec<String>>,
    pub mx: HashMap<String, Vec<(u16, String)>>,
    pub a: HashMap<String, Vec<Ipv4Addr>>,
    pub aaaa: HashMap<String, Vec<Ipv6Addr>>,
    /// Names whose lookups fail as if DNS timed out (`temperror`).
    pub failing: Vec<String>,
}

impl StaticDns {
    #[must_use]
    pub fn txt(mut self, name: &str, value: &str) -> Self {
        self.txt.entry(norm(name)).or_default().push(value.to_owned());
        self
    }
    #[must_use]
    pub fn mx(mut self, name: &str, pref: u16, host: &str) -> Self {
        self.mx.entry(norm(name)).or_default().push((pref, norm(host)));
        self
    }
    /// An address record of `name`: A for IPv4, AAAA for IPv6.
    #[must_use]
    pub fn addr(mut self, name: &str, ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => self.a.entry(norm(name)).or_default().push(v4),
            IpAddr::V6(v6) => self.aaaa.entry(norm(name)).or_default().push(v6),
        }
        self
    }
    #[must_use]
    pub fn failing(mut self, name: &str) -> Self {
        self.failing.push(norm(name));
        self
    }
}

fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn not_found() -> mail_auth::Error {
    mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(ResponseCode::NXDomain))
}

/// Cache views over [`StaticDns`] that answer every name, so nothing is ever queried: a name
/// given answers its records, any other name NXDOMAIN. Keys are as mail-auth asks them:
/// lowercase with the trailing dot.
struct StaticTxt(HashMap<Box<str>, TxtRecord>);
struct StaticMx(HashMap<Box<str>, Answer<Mx>>);
struct StaticAddrs<T>(HashMap<Box<str>, Answer<T>>);
struct Nx;

impl<T: Clone> StaticAddrs<T> {
    fn new(given: &HashMap<String, Vec<T>>) -> Self {
        Self(
            given
                .iter()
                .map(|(name, ips)| {
                    let set = RecordSet {
                        records: ips.clone().into(),
                        dnssec_status: mail_auth::dns::DnssecStatus::Indeterminate,
                    };
                    (fqdn(name), Ok(set))
                })
                .collect(),
        )
    }
}

impl<T: Clone> ResolverCache<Box<str>, Answer<T>> for StaticAddrs<T> {
    fn get<Q>(&self, name: &Q) -> Option<Answer<T>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Some(self.0.get(name).cloned().unwrap_or(Err(Negative {
            code: ResponseCode::NXDomain,
        })))
    }
    fn remove<Q>(&self, _: &Q) -> Option<Answer<T>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }
    fn insert(&self, _: Box<str>, _: Answer<T>, _: Instant) {}
}

fn fqdn(name: &str) -> Box<str> {
    format!("{}.", norm(name)).into_boxed_str()
}

impl ResolverCache<Box<str>, TxtRecord> for StaticTxt {
    fn get<Q>(&self, name: &Q) -> Option<TxtRecord>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Some(
            self.0
                .get(name)
                .cloned()
                .unwrap_or_else(|| TxtRecord::Error(not_found())),
        )
    }
    fn remove<Q>(&self, _: &Q) -> Option<TxtRecord>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }
    fn insert(&self, _: Box<str>, _: TxtRecord, _: Instant) {}
}

/// Parses a name's TXT strings as the record its name says it holds.
fn parse_txt(name: &str, records: &[Vec<u8>]) -> TxtRecord {
    let r: mail_auth::Result<TxtRecord> = if name.contains("._domainkey.") {
        mail_auth::dkim::DomainKey::parse_records(records).map(Into::into)
    } else if name.starts_with("_dmarc.") {
        mail_auth::dmarc::DmarcRecord::parse_records(records).map(Into::into)
    } else {
        mail_auth::spf::SpfRecord::parse_records(records).map(Into::into)
    };
    r.unwrap_or_else(TxtRecord::Error)
}

fn mx_groups(list: &[(u16, String)]) -> Vec<Mx> {
    let mut list = list.to_vec();
    list.sort();
    let mut groups: Vec<Mx> = Vec::new();
    for (pref, host) in list {
        match groups.last_mut() {
            Some(g) if g.preference == pref => {
                let mut v = g.exchanges.to_vec();
                v.push(host.into_boxed_str());
                g.exchanges = v.into_boxed_slice();
            }
            _ => groups.push(Mx {
                exchanges: vec![host.into_boxed_str()].into_boxed_slice(),
                preference: pref,
            }),
        }
    }
    groups
}

impl ResolverCache<Box<str>, Answer<Mx>> for StaticMx {
    fn get<Q>(&self, name: &Q) -> Option<Answer<Mx>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Some(self.0.get(name).cloned().unwrap_or(Err(Negative {
            code: ResponseCode::NXDomain,
        })))
    }
    fn remove<Q>(&self, _: &Q) -> Option<Answer<Mx>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }
    fn insert(&self, _: Box<str>, _: Answer<Mx>, _: Instant) {}
}

impl<K, T> ResolverCache<K, Answer<T>> for Nx {
    fn get<Q>(&self, _: &Q) -> Option<Answer<T>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Some(Err(Negative {
            code: ResponseCode::NXDomain,
        }))
    }
    fn remove<Q>(&self, _: &Q) -> Option<Answer<T>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }
    fn insert(&self, _: K, _: Answer<T>, _: Instant) {}
}

struct StaticCaches {
    txt: StaticTxt,
    mx: StaticMx,
    ipv4: StaticAddrs<Ipv4Addr>,
    ipv6: StaticAddrs<Ipv6Addr>,
    nx: Nx,
}

impl DnsCache for StaticCaches {
    type Txt = StaticTxt;
    type Mx = StaticMx;
    type Ipv4 = StaticAddrs<Ipv4Addr>;
    type Ipv6 = StaticAddrs<Ipv6Addr>;
    type Ptr = Nx;

    fn txt(&self) -> Option<&Self::Txt> {
        Some(&self.txt)
    }
    fn mx(&self) -> Option<&Self::Mx> {
        Some(&self.mx)
    }
    fn ipv4(&self) -> Option<&Self::Ipv4> {
        Some(&self.ipv4)
    }
    fn ipv6(&self) -> Option<&Self::Ipv6> {
        Some(&self.ipv6)
    }
    fn ptr(&self) -> Option<&Self::Ptr> {
        Some(&self.nx)
    }
}

enum Dns {
    System(Box<Caches>),
    Static(Box<StaticCaches>, Arc<StaticDns>),
}

/// The `MailAuth` implementation.
pub struct Authenticator {
    auth: MessageAuthenticator,
    dns: Dns,
}

fn resolver_opts() -> ResolverOpts {
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(3);
    opts.attempts = 2;
    opts
}

impl Authenticator {
    /// The system resolver (`/etc/resolv.conf`) with a small cache.
    pub fn system() -> Result<Self> {
        let auth = MessageAuthenticator::new_system_conf()
            .or_else(|_| {
                // No usable resolv.conf: every lookup then fails as temperror (nothing crashes).
                MessageAuthenticator::new(
                    ResolverConfig::from_name_servers(vec![NameServerConfig::udp_and_tcp(IpAddr::V4(
                        Ipv4Addr::LOCALHOST,
                    ))]),
                    resolver_opts(),
                )
            })
            .map_err(|e| Error::internal(format!("cannot set up the DNS resolver: {e}")))?;
        Ok(Self {
            auth,
            dns: Dns::System(Box::default()),
        })
    }

    /// Only the answers given (every other name does not exist): no query leaves the process.
    pub fn with_answers(answers: StaticDns) -> Result<Self> {
        // A resolver is needed to build the authenticator; it is never asked (the caches
        // answer every name), and points at the loopback discard port in case it were.
        let auth = MessageAuthenticator::new(
            ResolverConfig::from_name_servers(vec![NameServerConfig::udp(IpAddr::V4(Ipv4Addr::LOCALHOST))]),
            resolver_opts(),
        )
        .map_err(|e| Error::internal(format!("cannot set up the DNS resolver: {e}")))?;
        let mut txt: HashMap<Box<str>, TxtRecord> = answers
            .txt
            .iter()
            .map(|(name, values)| {
                let records: Vec<Vec<u8>> = values.iter().map(|v| v.as_bytes().to_vec()).collect();
                (fqdn(name), parse_txt(name, &records))
            })
            .collect();
        for name in &answers.failing {
            txt.insert(
                fqdn(name),
                TxtRecord::Error(mail_auth::Error::Dns(mail_auth::DnsError::Resolver(
                    "injected failure".into(),
                ))),
            );
        }
        let mx = answers
            .mx
            .iter()
            .map(|(name, list)| {
                let set = RecordSet {
                    records: mx_groups(list).into(),
                    dnssec_status: mail_auth::dns::DnssecStatus::Indeterminate,
                };
                (fqdn(name), Ok(set))
            })
            .collect();
        let answers = Arc::new(answers);
        Ok(Self {
            auth,
            dns: Dns::Static(
                Box::new(StaticCaches {
                    txt: StaticTxt(txt),
                    mx: StaticMx(mx),
                    ipv4: StaticAddrs::new(&answers.a),
                    ipv6: StaticAddrs::new(&answers.aaaa),
                    nx: Nx,
                }),
                answers,
            ),
        })
    }

    async fn checks<C: DnsCache>(&self, cache: &C, input: &VerifyInput<'_>, message: &[u8]) -> AuthChecks {
        let mail_from = input.mail_from.unwrap_or("");
        let spf_domain = mail_from
            .rsplit_once('@')
            .map_or(input.helo, |(_, d)| d)
            .to_ascii_lowercase();
        let Some(msg) = AuthenticatedMessage::parse(message) else {
            return AuthChecks {
                spf: CheckResult::None,
                spf_domain,
                spf_aligned: false,
                dkim: vec![],
                dmarc: CheckResult::Permerror,
                dmarc_policy: None,
                arc: CheckResult::None,
            };
        };
        let spf_output = match input.client_ip {
            Some(ip) => {
                let params = SpfParameters::mail_from(ip, input.helo, input.host, mail_from);
                Some(
                    self.auth
                        .verify_spf(mail_auth::Parameters::new(params).with_cache(cache))
                        .await,
                )
            }
            None => None,
        };
        let spf = spf_output
            .as_ref()
            .map_or(CheckResult::None, |o| spf_result(o.result()));
        let dkim_output = self
            .auth
            .verify_dkim(mail_auth::Parameters::new(&msg).with_cache(cache))
            .await;
        let dkim = dkim_output
            .iter()
            .map(|o| {
                let sig = o.signature();
                DkimCheck {
                    result: dkim_result(o.result()),
                    domain: sig.map(|s| s.d.to_ascii_lowercase()),
                    selector: sig.map(|s| s.s.clone()),
                    aligned: sig.is_some_and(|s| relaxed_aligned(&s.d, input.from_domain)),
                }
            })
            .collect();
        let arc = if msg.arc_seals().is_empty() && msg.arc_message_signatures().is_empty() && !msg.has_arc_errors() {
            CheckResult::None
        } else {
            let out = self
                .auth
                .verify_arc(mail_auth::Parameters::new(&msg).with_cache(cache))
                .await;
            dkim_result(out.result())
        };
        // Without a client address SPF was not checked: DMARC then sees SPF `none`.
        let none = mail_auth::SpfOutput::new(spf_domain.clone());
        let spf_for_dmarc = spf_output.as_ref().unwrap_or(&none);
        let params = DmarcParameters::new(&msg, &dkim_output, &spf_domain, spf_for_dmarc);
        let dmarc_output = self
            .auth
            .verify_dmarc(mail_auth::Parameters::new(params).with_cache(cache))
            .await;
        let dmarc = dmarc_result(&dmarc_output.result());
        let dmarc_policy = dmarc_output.record().map(|_| match dmarc_output.policy() {
            mail_auth::dmarc::Policy::Reject => DmarcPolicy::Reject,
            mail_auth::dmarc::Policy::Quarantine => DmarcPolicy::Quarantine,
            mail_auth::dmarc::Policy::None | mail_auth::dmarc::Policy::Unspecified => DmarcPolicy::None,
        });
        AuthChecks {
            spf,
            spf_aligned: relaxed_aligned(&spf_domain, input.from_domain),
            spf_domain,
            dkim,
            dmarc,
            dmarc_policy,
            arc,
        }
    }

    async fn lookup_system(&self, name: &str, kind: RecordType) -> DnsAnswer {
        use mail_auth::hickory_resolver::net::NetError;
        let resolver = self.auth.resolver();
        let fqdn = format!("{}.", norm(name));
        let classify = |e: &NetError| {
            if e.is_no_records_found() || e.is_nx_domain() {
                DnsAnswer::NotFound
            } else {
                DnsAnswer::Temporary
            }
        };
        match kind {
            RecordType::Txt => match tokio::time::timeout(LOOKUP_TIMEOUT, resolver.txt_lookup(fqdn.as_str())).await {
                Err(_) => DnsAnswer::Temporary,
                Ok(Err(e)) => classify(&e),
                Ok(Ok(l)) => DnsAnswer::Records(
                    l.answers()
                        .iter()
                        .filter_map(|r| match &r.data {
                            mail_auth::hickory_resolver::proto::rr::RData::TXT(t) => Some(
                                t.txt_data
                                    .iter()
                                    .map(|p| String::from_utf8_lossy(p).into_owned())
                                    .collect::<String>(),
                            ),
                            _ => None,
                        })
                        .collect(),
                ),
            },
            RecordType::Mx => match tokio::time::timeout(LOOKUP_TIMEOUT, resolver.mx_lookup(fqdn.as_str())).await {
                Err(_) => DnsAnswer::Temporary,
                Ok(Err(e)) => classify(&e),
                Ok(Ok(l)) => DnsAnswer::Records(
                    l.answers()
                        .iter()
                        .filter_map(|r| match &r.data {
                            mail_auth::hickory_resolver::proto::rr::RData::MX(m) => {
                                Some(format!("{} {}", m.preference, m.exchange))
                            }
                            _ => None,
                        })
                        .collect(),
                ),
            },
        }
    }
}

fn spf_result(r: SpfResult) -> CheckResult {
    match r {
        SpfResult::Pass => CheckResult::Pass,
        SpfResult::Fail => CheckResult::Fail,
        SpfResult::SoftFail => CheckResult::Softfail,
        SpfResult::Neutral => CheckResult::Neutral,
        SpfResult::TempError => CheckResult::Temperror,
        SpfResult::PermError => CheckResult::Permerror,
        SpfResult::None => CheckResult::None,
    }
}

fn dkim_result(r: &DkimResult) -> CheckResult {
    match r {
        DkimResult::Pass => CheckResult::Pass,
        DkimResult::Neutral(_) => CheckResult::Neutral,
        DkimResult::Fail(_) => CheckResult::Fail,
        DkimResult::PermError(_) => CheckResult::Permerror,
        DkimResult::TempError(_) => CheckResult::Temperror,
        DkimResult::None => CheckResult::None,
    }
}

fn dmarc_result(r: &DmarcResult) -> CheckResult {
    match r {
        DmarcResult::Pass => CheckResult::Pass,
        DmarcResult::Fail(_) => CheckResult::Fail,
        DmarcResult::TempError(_) => CheckResult::Temperror,
        DmarcResult::PermError(_) => CheckResult::Permerror,
        DmarcResult::None => CheckResult::None,
    }
}

fn crypto(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("DKIM: {e}"))
}

/// The header names of `message`'s header section, lowercase.
fn present_headers(message: &[u8]) -> Vec<String> {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| message.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(message.len());
    String::from_utf8_lossy(&message[..end])
        .lines()
        .filter(|l| !l.starts_with([' ', '\t']))
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_ascii_lowercase()))
        .collect()
}

/// The headers Loft signs, in this order, when present.
const SIGN: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "X-Loft-Identity",
    "X-Loft-Oversight",
];

#[async_trait]
impl MailAuth for Authenticator {
    fn generate_key(&self, algorithm: DkimAlgorithm) -> Result<GeneratedKey> {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::KeyPair as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        match algorithm {
            DkimAlgorithm::Ed25519 => {
                let pkcs8 = Zeroizing::new(mail_auth::crypto::Ed25519Key::generate_pkcs8().map_err(crypto)?);
                let key = mail_auth::crypto::Ed25519Key::from_pkcs8_der(&pkcs8).map_err(crypto)?;
                Ok(GeneratedKey {
                    public_key: b64.encode(key.public_key()),
                    private_pkcs8: pkcs8,
                })
            }
            DkimAlgorithm::Rsa => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(crypto)?;
                let pkcs8 = Zeroizing::new(pair.as_der().map_err(crypto)?.as_ref().to_vec());
                // The record's `p=` holds the SubjectPublicKeyInfo, as `openssl rsa -pubout` writes it.
                let spki = pair.public_key().as_der().map_err(crypto)?;
                Ok(GeneratedKey {
                    public_key: b64.encode(spki.as_ref()),
                    private_pkcs8: pkcs8,
                })
            }
        }
    }

    fn sign(&self, domain: &str, keys: &[SigningKey], message: &[u8]) -> Result<Vec<u8>> {
        let present = present_headers(message);
        let headers: Vec<&str> = SIGN
            .iter()
            .copied()
            .filter(|h| present.iter().any(|p| p.eq_ignore_ascii_case(h)))
            .collect();
        if headers.is_empty() {
            return Err(Error::invalid(
                "invalid_message",
                "the message has no From header to sign",
            ));
        }
        let mut out = Vec::new();
        for k in keys {
            let sig = match k.algorithm {
                DkimAlgorithm::Ed25519 => {
                    let key = mail_auth::crypto::Ed25519Key::from_pkcs8_der(&k.private_pkcs8).map_err(crypto)?;
                    DkimSigner::from_key(key)
                        .domain(domain)
                        .selector(&k.selector)
                        .headers(headers.iter().copied())
                        .sign(message)
                        .map_err(crypto)?
                }
                DkimAlgorithm::Rsa => {
                    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
                        k.private_pkcs8.as_slice(),
                    ));
                    let key =
                        mail_auth::crypto::RsaKey::<mail_auth::crypto::Sha256>::from_key_der(der).map_err(crypto)?;
                    DkimSigner::from_key(key)
                        .domain(domain)
                        .selector(&k.selector)
                        .headers(headers.iter().copied())
                        .sign(message)
                        .map_err(crypto)?
                }
            };
            out.extend_from_slice(sig.to_header().as_bytes());
        }
        Ok(out)
    }

    async fn verify(&self, input: &VerifyInput<'_>, message: &[u8]) -> AuthChecks {
        let run = async {
            match &self.dns {
                Dns::System(c) => self.checks(c.as_ref(), input, message).await,
                Dns::Static(c, _) => self.checks(c.as_ref(), input, message).await,
            }
        };
        match tokio::time::timeout(VERIFY_TIMEOUT, run).await {
            Ok(c) => c,
            Err(_) => AuthChecks {
                spf: CheckResult::Temperror,
                spf_domain: input
                    .mail_from
                    .and_then(|m| m.rsplit_once('@').map(|(_, d)| d.to_owned()))
                    .unwrap_or_else(|| input.helo.to_owned()),
                spf_aligned: false,
                dkim: vec![],
                dmarc: CheckResult::Temperror,
                dmarc_policy: None,
                arc: CheckResult::None,
            },
        }
    }

    async fn lookup(&self, name: &str, kind: RecordType) -> DnsAnswer {
        match &self.dns {
            Dns::System(_) => self.lookup_system(name, kind).await,
            Dns::Static(_, answers) => {
                let key = norm(name);
                if answers.failing.contains(&key) {
                    return DnsAnswer::Temporary;
                }
                let found = match kind {
                    RecordType::Txt => answers.txt.get(&key).cloned(),
                    RecordType::Mx => answers
                        .mx
                        .get(&key)
                        .map(|l| l.iter().map(|(p, h)| format!("{p} {h}.")).collect()),
                };
                found.map_or(DnsAnswer::NotFound, DnsAnswer::Records)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: Writer <writer@agents.test>\r\nTo: x@partner.test\r\nSubject: hi\r\n\
X-Loft-Identity: idt_abc\r\n\r\nHello.\r\n";

    fn input<'a>() -> VerifyInput<'a> {
        VerifyInput {
            client_ip: Some("192.0.2.1".parse().unwrap()),
            helo: "mx.agents.test",
            mail_from: Some("writer@agents.test"),
            from_domain: "agents.test",
            host: "mx.partner.test",
        }
    }

    /// Signatures made here verify here, for both algorithms; a changed body does not; a
    /// name the answers do not have is NXDOMAIN (SPF none), not a query.
    #[tokio::test]
    async fn sign_then_verify_both_algorithms() {
        let keygen = Authenticator::with_answers(StaticDns::default()).unwrap();
        let mut dns = StaticDns::default();
        let mut keys = Vec::new();
        for a in DkimAlgorithm::ALL {
            let g = keygen.generate_key(a).unwrap();
            let selector = format!("s-{}", a.as_str());
            dns = dns.txt(
                &format!("{selector}._domainkey.agents.test"),
                &format!("v=DKIM1; k={}; p={}", a.dns_tag(), g.public_key),
            );
            keys.push(SigningKey {
                selector,
                algorithm: a,
                private_pkcs8: g.private_pkcs8,
            });
        }
        let headers = keygen.sign("agents.test", &keys, MSG).unwrap();
        let text = String::from_utf8(headers.clone()).unwrap();
        assert!(
            text.contains("x-loft-identity") || text.contains("X-Loft-Identity"),
            "{text}"
        );
        let mut signed = headers;
        signed.extend_from_slice(MSG);
        let verifier = Authenticator::with_answers(dns).unwrap();
        let checks = verifier.verify(&input(), &signed).await;
        assert_eq!(checks.dkim.len(), 2, "{checks:?}");
        assert!(
            checks.dkim.iter().all(|d| d.result == CheckResult::Pass && d.aligned),
            "{checks:?}"
        );
        assert_eq!(checks.spf, CheckResult::None);
        assert!(checks.dkim_aligned_pass());

        let tampered = String::from_utf8(signed).unwrap().replace("Hello.", "Hullo.");
        let checks = verifier.verify(&input(), tampered.as_bytes()).await;
        assert!(checks.dkim.iter().all(|d| d.result != CheckResult::Pass), "{checks:?}");
    }

    #[tokio::test]
    async fn lookups_answer_from_the_given_records() {
        let a = Authenticator::with_answers(
            StaticDns::default()
                .txt("agents.test", "v=spf1 mx -all")
                .mx("agents.test", 10, "mx.agents.test")
                .failing("down.test"),
        )
        .unwrap();
        assert_eq!(
            a.lookup("Agents.Test.", RecordType::Txt).await,
            DnsAnswer::Records(vec!["v=spf1 mx -all".into()])
        );
        assert_eq!(
            a.lookup("agents.test", RecordType::Mx).await,
            DnsAnswer::Records(vec!["10 mx.agents.test.".into()])
        );
        assert_eq!(a.lookup("none.test", RecordType::Txt).await, DnsAnswer::NotFound);
        assert_eq!(a.lookup("down.test", RecordType::Txt).await, DnsAnswer::Temporary);
    }

    /// SPF's `mx` and `a` mechanisms resolve through the given address records: the client at
    /// the MX host's address passes, another address fails; AAAA records count for IPv6; a
    /// host without address records matches nothing.
    #[tokio::test]
    async fn spf_mx_and_a_resolve_through_given_addresses() {
        let dns = StaticDns::default()
            .txt("agents.test", "v=spf1 mx -all")
            .mx("agents.test", 10, "mx.agents.test")
            .addr("mx.agents.test", "127.0.0.1".parse().unwrap())
            .addr("mx.agents.test", "::1".parse().unwrap())
            .txt("web.test", "v=spf1 a -all")
            .addr("web.test", "192.0.2.7".parse().unwrap())
            .txt("nohost.test", "v=spf1 mx -all")
            .mx("nohost.test", 10, "gone.nohost.test");
        let a = Authenticator::with_answers(dns).unwrap();
        let spf = async |ip: &str, sender: &str| {
            let mut i = input();
            i.client_ip = Some(ip.parse().unwrap());
            i.mail_from = Some(sender);
            a.verify(&i, MSG).await.spf
        };
        assert_eq!(spf("127.0.0.1", "writer@agents.test").await, CheckResult::Pass);
        assert_eq!(spf("::1", "writer@agents.test").await, CheckResult::Pass);
        assert_eq!(spf("192.0.2.1", "writer@agents.test").await, CheckResult::Fail);
        assert_eq!(spf("192.0.2.7", "x@web.test").await, CheckResult::Pass);
        assert_eq!(spf("127.0.0.1", "x@web.test").await, CheckResult::Fail);
        assert_eq!(spf("127.0.0.1", "x@nohost.test").await, CheckResult::Fail);
    }
}
