//! Outbound delivery: the job handler for `smtp.deliver` jobs ([`DeliveryWorker`]).
//!
//! For each job (one remote recipient of one sent mail) it asks core what to send
//! (`Loft::prepare_delivery`: the stored RFC 5322 message with `X-Loft-Identity` and
//! `X-Loft-Oversight` in front), passes the bytes through [`DeliveryWorker::seal_outgoing`]
//! (where DKIM signing goes), and speaks SMTP (`mail-send`'s client) either to the configured
//! smarthost or directly to the recipient domain's MX hosts, by preference, falling back to the
//! domain's own address when it has no MX. Then it tells core the outcome:
//!
//! - `2xx` at the end of the data: `delivered`, with the remote reply.
//! - a `5xx` to `RCPT TO`: bounced, and the address suppressed; a `5xx` to `MAIL FROM` or to
//!   the data: bounced, not suppressed (the refusal is about the sender or the content).
//! - anything temporary (a `4xx`, no connection, a timeout, TLS or authentication failing,
//!   every MX tried): retried with exponential backoff until the delivery lifetime (from the
//!   send) or the job's attempts run out, then bounced (not suppressed).
//!
//! Direct delivery obeys the egress policy: an MX whose address is loopback, private and so on
//! is refused unless `--egress-allow` allows it (tests allow loopback explicitly). The smarthost
//! is the operator's own choice and is not judged. DNS goes through [`MxResolver`], which tests
//! replace with their own answers, so no test queries a real resolver.
//!
//! A crash between the remote `250` and the record leaves the job's lease to expire; the next
//! worker sends again (the mail may arrive twice, never zero times), and records the outcome
//! once: core's record is conditional on the recipient still being `queued`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use loft_broker::EgressPolicy;
use loft_core::jobs::Job;
use loft_core::mail::DELIVERY_JOB;
use loft_core::runner::{JobError, JobHandler};
use loft_core::service::{Loft, OutgoingDelivery};
use mail_send::SmtpClient;
use mail_send::smtp::message::Parameters;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// How a connection to the smarthost is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmarthostTls {
    /// Plaintext (a relay on the same host or network).
    None,
    /// STARTTLS, required, with the certificate verified.
    StartTls,
    /// TLS from the first byte (port 465), with the certificate verified.
    Tls,
}

impl SmarthostTls {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "starttls" => Ok(Self::StartTls),
            "tls" => Ok(Self::Tls),
            other => Err(format!("`{other}` is not one of none, starttls, tls")),
        }
    }
}

/// A relay all outbound mail goes through.
#[derive(Clone)]
pub struct Smarthost {
    pub host: String,
    pub port: u16,
    pub tls: SmarthostTls,
    /// `AUTH` user and password (the password from `LOFT_SMARTHOST_PASSWORD`, never a flag).
    pub credentials: Option<(String, SecretString)>,
}

impl std::fmt::Debug for Smarthost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smarthost")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish_non_exhaustive()
    }
}

/// Where mail goes.
#[derive(Debug, Clone)]
pub enum Route {
    Smarthost(Smarthost),
    /// To the recipient domain's MX hosts on this port (25; tests give their sink's).
    Direct {
        port: u16,
    },
}

/// The delivery worker's settings (`loft serve --smarthost*`, `--delivery-lifetime`).
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    pub route: Route,
    /// The name said in `EHLO` (the mail domain).
    pub helo: String,
    /// Retried until this long after the send, then bounced.
    pub lifetime_secs: i64,
    /// The first retry's delay; each next one doubles, up to `retry_max_secs`.
    pub retry_base_secs: i64,
    pub retry_max_secs: i64,
    /// Per connection and per command.
    pub timeout: Duration,
    /// Which MX addresses direct delivery may connect to.
    pub egress: EgressPolicy,
    /// The CA certificates a smarthost's certificate must chain to (`--smarthost-ca`), instead
    /// of the system's roots: a relay with a certificate from the operator's own CA. `None`:
    /// the system's roots (`rustls-platform-verifier`).
    pub smarthost_ca: Option<SmarthostCa>,
}

/// The trust anchors of `--smarthost-ca`, read once at start-up.
#[derive(Clone)]
pub struct SmarthostCa(Arc<tokio_rustls::rustls::RootCertStore>);

impl std::fmt::Debug for SmarthostCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SmarthostCa({} certificates)", self.0.len())
    }
}

impl SmarthostCa {
    /// Reads every certificate of a PEM file; a file without one, or with one that is not a
    /// usable trust anchor, is an error that names the file.
    pub fn from_pem_file(path: &std::path::Path) -> Result<Self, String> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate in it", path.display()));
        }
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
        }
        Ok(Self(Arc::new(roots)))
    }

    fn connector(&self) -> Result<tokio_rustls::TlsConnector, String> {
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(self.0.clone())
            .with_no_client_auth();
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }
}

impl OutboundConfig {
    pub fn new(route: Route, helo: impl Into<String>, egress: EgressPolicy) -> Self {
        Self {
            route,
            helo: helo.into(),
            lifetime_secs: loft_core::delivery::DEFAULT_DELIVERY_LIFETIME_SECS,
            retry_base_secs: 60,
            retry_max_secs: 4 * 3600,
            timeout: Duration::from_mins(2),
            egress,
            smarthost_ca: None,
        }
    }

    /// The delay before the retry that follows attempt `attempts` (1-based): base, 2 base,
    /// 4 base ... up to the maximum.
    pub fn backoff_secs(&self, attempts: u32) -> i64 {
        let doublings = attempts.saturating_sub(1).min(30);
        self.retry_base_secs
            .saturating_mul(1_i64 << doublings)
            .min(self.retry_max_secs)
            .max(1)
    }
}

/// Why a lookup found nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// The name has no such records (or does not exist).
    NotFound,
    /// The resolver failed (timeout, SERVFAIL): worth a retry.
    Temporary(String),
}

/// DNS for direct delivery: injectable, so tests answer it themselves.
#[async_trait]
pub trait MxResolver: Send + Sync {
    /// The domain's MX records as (preference, host), in any order.
    async fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsError>;
    /// The host's A and AAAA addresses.
    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError>;
}

/// The system's resolver (`/etc/resolv.conf`), through `hickory-resolver`.
pub struct SystemResolver(hickory_resolver::TokioResolver);

impl SystemResolver {
    pub fn new() -> Result<Self, String> {
        let r = hickory_resolver::TokioResolver::builder_tokio()
            .map_err(|e| format!("reading the system's DNS configuration: {e}"))?
            .build()
            .map_err(|e| format!("building the DNS resolver: {e}"))?;
        Ok(Self(r))
    }
}

fn dns_error(e: &hickory_resolver::net::NetError) -> DnsError {
    if e.is_no_records_found() || e.is_nx_domain() {
        DnsError::NotFound
    } else {
        DnsError::Temporary(e.to_string())
    }
}

#[async_trait]
impl MxResolver for SystemResolver {
    async fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsError> {
        let name = format!("{}.", domain.trim_end_matches('.'));
        let found = self.0.mx_lookup(name.as_str()).await.map_err(|e| dns_error(&e))?;
        Ok(found
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                hickory_resolver::proto::rr::RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                _ => None,
            })
            .collect())
    }

    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let name = format!("{}.", host.trim_end_matches('.'));
        let found = self.0.lookup_ip(name.as_str()).await.map_err(|e| dns_error(&e))?;
        Ok(found.iter().collect())
    }
}

/// Fixed answers (test rigs, `loft serve --smtp-outbound-resolve DOMAIN=IP` and the MX and
/// address records of `--dns-answers`): the MX hosts and addresses given; every other name
/// does not exist. Never asks a DNS server.
pub struct FixedResolver {
    /// (domain, preference, host)
    mx: Vec<(String, u16, String)>,
    addresses: Vec<(String, IpAddr)>,
}

fn dns_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl FixedResolver {
    /// Each listed name has that address and no MX.
    pub fn new(entries: Vec<(String, IpAddr)>) -> Self {
        Self {
            mx: Vec::new(),
            addresses: entries.into_iter().map(|(d, ip)| (dns_name(&d), ip)).collect(),
        }
    }

    /// Adds an MX record of `domain`.
    #[must_use]
    pub fn with_mx(mut self, domain: &str, preference: u16, host: &str) -> Self {
        self.mx.push((dns_name(domain), preference, dns_name(host)));
        self
    }

    /// Adds an address of `host` (an A or AAAA record).
    #[must_use]
    pub fn with_address(mut self, host: &str, ip: IpAddr) -> Self {
        self.addresses.push((dns_name(host), ip));
        self
    }
}

#[async_trait]
impl MxResolver for FixedResolver {
    async fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsError> {
        let domain = dns_name(domain);
        let found: Vec<(u16, String)> = self
            .mx
            .iter()
            .filter(|(d, _, _)| *d == domain)
            .map(|(_, pref, host)| (*pref, host.clone()))
            .collect();
        if found.is_empty() {
            Err(DnsError::NotFound)
        } else {
            Ok(found)
        }
    }

    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let host = dns_name(host);
        let found: Vec<IpAddr> = self
            .addresses
            .iter()
            .filter(|(d, _)| *d == host)
            .map(|(_, ip)| *ip)
            .collect();
        if found.is_empty() {
            Err(DnsError::NotFound)
        } else {
            Ok(found)
        }
    }
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The remote server's reply to the data.
    Delivered(String),
    /// Try again later (the reason).
    Temporary(String),
    /// Refused for good; `suppress` when the recipient itself was refused (`5xx` to `RCPT`).
    Permanent { reply: String, suppress: bool },
}

/// The `smtp.deliver` job handler; see the module docs. Add it to the job runner with
/// `JobRunner::with_handler`.
pub struct DeliveryWorker {
    config: OutboundConfig,
    resolver: Arc<dyn MxResolver>,
}

impl DeliveryWorker {
    pub fn new(config: OutboundConfig, resolver: Arc<dyn MxResolver>) -> Self {
        Self { config, resolver }
    }

    /// The last step before the bytes leave: the finished message of a mail from `from_domain`
    /// goes in, DKIM-signed with each of the domain's keys (`Loft::sign_outgoing`; the
    /// signatures cover `X-Loft-Identity` and `X-Loft-Oversight`, already in the bytes).
    pub async fn seal_outgoing(&self, loft: &Loft, from_domain: &str, bytes: Vec<u8>) -> Result<Vec<u8>, JobError> {
        // A store or keyring failure is worth a retry (JobError's conversion); a domain
        // without keys gets its bytes back unsigned.
        Ok(loft.sign_outgoing(from_domain, &bytes).await?)
    }

    /// One attempt at delivering `d` (already sealed `bytes`) by the configured route.
    pub async fn attempt(&self, d: &OutgoingDelivery, bytes: &[u8]) -> Attempt {
        match &self.config.route {
            Route::Smarthost(s) => self.via_smarthost(s, d, bytes).await,
            Route::Direct { port } => self.direct(*port, d, bytes).await,
        }
    }

    async fn via_smarthost(&self, s: &Smarthost, d: &OutgoingDelivery, bytes: &[u8]) -> Attempt {
        let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((s.host.as_str(), s.port)).await {
            Ok(a) => a.collect(),
            Err(e) => return Attempt::Temporary(format!("resolving the smarthost {}: {e}", s.host)),
        };
        let mut last = Attempt::Temporary(format!("the smarthost {} has no address", s.host));
        for addr in addrs {
            let tls = match s.tls {
                SmarthostTls::None => Tls::Never,
                SmarthostTls::StartTls => Tls::StartTlsVerified,
                SmarthostTls::Tls => Tls::ImplicitVerified,
            };
            last = self.session(addr, &s.host, tls, s.credentials.as_ref(), d, bytes).await;
            if !matches!(last, Attempt::Temporary(_)) {
                return last;
            }
        }
        last
    }

    async fn direct(&self, port: u16, d: &OutgoingDelivery, bytes: &[u8]) -> Attempt {
        let domain = d.recipient.domain().to_owned();
        let mut hosts = match self.resolver.mx(&domain).await {
            Ok(h) => h,
            Err(DnsError::NotFound) => vec![],
            Err(DnsError::Temporary(e)) => return Attempt::Temporary(format!("looking up the MX of {domain}: {e}")),
        };
        hosts.sort_by_key(|(pref, _)| *pref);
        // RFC 7505: a single MX of "." says the domain takes no mail.
        if hosts.len() == 1 && hosts[0].1.trim_end_matches('.').is_empty() {
            return Attempt::Permanent {
                reply: format!("556 5.1.10 {domain} accepts no mail (null MX)"),
                suppress: true,
            };
        }
        // No MX: the domain itself is the mail host (RFC 5321 section 5.1).
        if hosts.is_empty() {
            hosts.push((0, domain.clone()));
        }
        let mut last = None;
        let mut refused = Vec::new();
        for (_, host) in &hosts {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            let ips = match self.resolver.addresses(&host).await {
                Ok(ips) => ips,
                Err(DnsError::NotFound) => continue,
                Err(DnsError::Temporary(e)) => {
                    last = Some(Attempt::Temporary(format!("looking up {host}: {e}")));
                    continue;
                }
            };
            for ip in ips {
                if let Err(denied) = self.config.egress.check(&host, ip) {
                    tracing::warn!(%host, %ip, %denied, "outbound SMTP: MX address refused by the egress policy");
                    refused.push(format!("{host} ({ip}): {denied}"));
                    continue;
                }
                let outcome = self
                    .session(SocketAddr::new(ip, port), &host, Tls::Opportunistic, None, d, bytes)
                    .await;
                if !matches!(outcome, Attempt::Temporary(_)) {
                    return outcome;
                }
                last = Some(outcome);
            }
        }
        match last {
            Some(a) => a,
            None if !refused.is_empty() => Attempt::Permanent {
                reply: format!(
                    "no MX address of {domain} may be connected to: {} (the egress policy; `--egress-allow`)",
                    refused.join("; ")
                ),
                suppress: false,
            },
            None => Attempt::Permanent {
                reply: format!("{domain} has no mail server (no MX and no address records)"),
                suppress: false,
            },
        }
    }

    /// The TLS client of a verified smarthost connection: `--smarthost-ca`'s roots, or the
    /// system's.
    fn verified_connector(&self) -> Result<tokio_rustls::TlsConnector, String> {
        match &self.config.smarthost_ca {
            Some(ca) => ca.connector(),
            None => mail_send::smtp::tls::build_tls_connector(false),
        }
    }

    /// One SMTP session with `addr` (named `host`, for TLS): greeting, EHLO, STARTTLS or not,
    /// AUTH if given, one transaction, QUIT.
    async fn session(
        &self,
        addr: SocketAddr,
        host: &str,
        tls: Tls,
        credentials: Option<&(String, SecretString)>,
        d: &OutgoingDelivery,
        bytes: &[u8],
    ) -> Attempt {
        let timeout = self.config.timeout;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                // No Nagle delay: SMTP is lock-step, and mail-send writes the end of the data
                // in a second small write, which Nagle held for the peer's delayed ACK.
                let _ = s.set_nodelay(true);
                s
            }
            Ok(Err(e)) => return Attempt::Temporary(format!("connecting to {host} ({addr}): {e}")),
            Err(_) => return Attempt::Temporary(format!("connecting to {host} ({addr}): timed out")),
        };
        let client = SmtpClient { stream, timeout };
        let helo = self.config.helo.as_str();
        let before = |e: mail_send::Error| Attempt::Temporary(format!("{host} ({addr}): {}", describe(&e)));
        if tls == Tls::ImplicitVerified {
            let connector = match self.verified_connector() {
                Ok(c) => c,
                Err(e) => return Attempt::Temporary(format!("TLS: {e}")),
            };
            let mut c = match client.into_tls(&connector, host).await {
                Ok(c) => c,
                Err(e) => return before(e),
            };
            if let Err(e) = greeting(&mut c).await {
                return before(e);
            }
            return match c.ehlo(helo).await {
                Ok(ehlo) => finish(c, &ehlo, credentials, d, bytes, host, addr).await,
                Err(e) => before(e),
            };
        }
        let mut c = client;
        if let Err(e) = greeting(&mut c).await {
            return before(e);
        }
        let ehlo = match c.ehlo(helo).await {
            Ok(e) => e,
            Err(e) => return before(e),
        };
        let offers_tls = ehlo.has_capability(smtp_proto::EXT_START_TLS);
        let upgrade = match tls {
            Tls::Never => false,
            Tls::Opportunistic => offers_tls,
            Tls::StartTlsVerified if !offers_tls => {
                return Attempt::Temporary(format!("{host} ({addr}) does not offer STARTTLS, which is required"));
            }
            Tls::StartTlsVerified | Tls::ImplicitVerified => true,
        };
        if !upgrade {
            return finish(c, &ehlo, credentials, d, bytes, host, addr).await;
        }
        // Opportunistic TLS to an MX does not verify the certificate (as Postfix's `may`):
        // it protects against passive listening; a verified smarthost connection does.
        let connector = match if tls == Tls::Opportunistic {
            mail_send::smtp::tls::build_tls_connector(true)
        } else {
            self.verified_connector()
        } {
            Ok(c) => c,
            Err(e) => return Attempt::Temporary(format!("TLS: {e}")),
        };
        let mut c = match c.start_tls(&connector, host).await {
            Ok(c) => c,
            Err(e) => return before(e),
        };
        match c.ehlo(helo).await {
            Ok(ehlo) => finish(c, &ehlo, credentials, d, bytes, host, addr).await,
            Err(e) => before(e),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    Never,
    /// STARTTLS when offered, certificate not verified.
    Opportunistic,
    StartTlsVerified,
    ImplicitVerified,
}

async fn greeting<S: AsyncRead + AsyncWrite + Unpin>(c: &mut SmtpClient<S>) -> mail_send::Result<()> {
    let r = c.read().await?;
    if (200..300).contains(&r.code) {
        Ok(())
    } else {
        Err(mail_send::Error::UnexpectedReply(r))
    }
}

/// AUTH (if given), the transaction and QUIT.
async fn finish<S: AsyncRead + AsyncWrite + Unpin>(
    mut c: SmtpClient<S>,
    ehlo: &smtp_proto::EhloResponse<String>,
    credentials: Option<&(String, SecretString)>,
    d: &OutgoingDelivery,
    bytes: &[u8],
    host: &str,
    addr: SocketAddr,
) -> Attempt {
    let at = |e: &mail_send::Error| format!("{host} ({addr}): {}", describe(e));
    if let Some((user, password)) = credentials {
        let creds = mail_send::Credentials::Plain {
            username: user.clone(),
            secret: password.expose_secret().to_owned(),
        };
        if let Err(e) = c.authenticate(&creds, ehlo).await {
            // Our own configuration (user, password) failing: temporary, never the
            // recipient's fault.
            return Attempt::Temporary(format!("authenticating: {}", at(&e)));
        }
    }
    let params = Parameters::new();
    if let Err(e) = c.mail_from(d.from.as_str(), &params).await {
        return classify(&e, at(&e), false);
    }
    if let Err(e) = c.rcpt_to(d.recipient.as_str(), &params).await {
        return classify(&e, at(&e), true);
    }
    let outcome = match c.data(bytes).await {
        Ok(reply) => Attempt::Delivered(reply_text(&reply)),
        Err(e) => classify(&e, at(&e), false),
    };
    // mail-send does not QUIT by itself (STACK.md P5); a failing QUIT changes nothing.
    let _ = c.quit().await;
    outcome
}

/// A failed command: a `5xx` reply is permanent, anything else temporary.
fn classify(e: &mail_send::Error, text: String, recipient: bool) -> Attempt {
    match e {
        mail_send::Error::UnexpectedReply(r) if (500..600).contains(&r.code) => Attempt::Permanent {
            reply: reply_text(r),
            suppress: recipient,
        },
        _ => Attempt::Temporary(text),
    }
}

fn reply_text(r: &smtp_proto::Response<String>) -> String {
    let message = r.message.replace(['\r', '\n'], " ");
    if r.esc[0] == 0 {
        format!("{} {}", r.code, message.trim())
    } else {
        format!("{} {}.{}.{} {}", r.code, r.esc[0], r.esc[1], r.esc[2], message.trim())
    }
}

fn describe(e: &mail_send::Error) -> String {
    match e {
        mail_send::Error::UnexpectedReply(r) | mail_send::Error::AuthenticationFailed(r) => reply_text(r),
        other => other.to_string(),
    }
}

#[async_trait]
impl JobHandler for DeliveryWorker {
    fn kind(&self) -> &'static str {
        DELIVERY_JOB
    }

    async fn run(&self, loft: &Loft, job: &Job) -> Result<(), JobError> {
        let Some(d) = loft.prepare_delivery(job).await? else {
            return Ok(());
        };
        let bytes = self.seal_outgoing(loft, d.from.domain(), d.bytes.clone()).await?;
        let outcome = self.attempt(&d, &bytes).await;
        tracing::info!(job = job.id, message = %d.message, attempt = job.attempts, outcome = ?outcome, "outbound SMTP");
        match outcome {
            Attempt::Delivered(reply) => {
                loft.delivery_succeeded(&d, &reply).await?;
                Ok(())
            }
            Attempt::Permanent { reply, suppress } => {
                loft.delivery_bounced(&d, &reply, suppress).await?;
                Err(JobError::Permanent(reply))
            }
            Attempt::Temporary(reason) => {
                let now = loft.now();
                let deadline = d.sent_at.plus_secs(self.config.lifetime_secs);
                let after = self.config.backoff_secs(job.attempts);
                if job.attempts >= job.max_attempts || now.plus_secs(after) > deadline {
                    let why = format!(
                        "{reason} (given up after {} attempts; the delivery lifetime is {} hours)",
                        job.attempts,
                        self.config.lifetime_secs / 3600
                    );
                    loft.delivery_bounced(&d, &why, false).await?;
                    return Err(JobError::Permanent(why));
                }
                loft.delivery_deferred(&d, &reason, now.plus_secs(after)).await?;
                Err(JobError::Retry {
                    after_secs: after,
                    reason,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let c = OutboundConfig::new(Route::Direct { port: 25 }, "x.test", EgressPolicy::new());
        let delays: Vec<i64> = (1..=10).map(|n| c.backoff_secs(n)).collect();
        assert_eq!(delays[..5], [60, 120, 240, 480, 960]);
        assert!(delays.iter().all(|d| *d <= 4 * 3600));
        assert_eq!(c.backoff_secs(40), 4 * 3600);
    }

    #[test]
    fn tls_modes_parse() {
        assert_eq!(SmarthostTls::parse("starttls"), Ok(SmarthostTls::StartTls));
        assert!(SmarthostTls::parse("ssl").is_err());
    }

    #[test]
    fn smarthost_debug_hides_the_password() {
        let s = Smarthost {
            host: "relay.test".into(),
            port: 587,
            tls: SmarthostTls::StartTls,
            credentials: Some(("u".into(), SecretString::from("hunter2"))),
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
