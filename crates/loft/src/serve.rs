//! `loft serve`: configuration, storage selection, and the HTTP listener.
//!
//! Configuration is read once here (flags, each with an environment variable) and passed
//! down explicitly. Deploy-time settings only: run-time policy lives in the database.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use loft_core::keys::OperatorKey;
use loft_core::limits::{LimitsConfig, Rate};
use loft_core::oversight::OversightMode;
use loft_core::quota::Quotas;
use loft_core::random::OsRandom;
use loft_core::service::{Loft, LoftConfig};
use loft_core::store::Store;
use loft_core::time::SystemClock;
use loft_core::vault::{KeySource, Keyring, MasterKey};
use loft_mcp::{AllowedHosts, McpHttpSettings};
use loft_web::{AppState, WebConfig};

/// `loft serve`: the server's settings and those of its MCP endpoint (kept apart so that
/// in-process callers of [`app`], like the benchmark, build [`ServeArgs`] alone).
#[derive(Debug, Args)]
pub struct ServeCommand {
    #[command(flatten)]
    pub server: ServeArgs,
    #[command(flatten)]
    pub mcp: McpArgs,
    #[command(flatten)]
    pub smtp: SmtpArgs,
}

/// Settings of the inbound SMTP listener (docs/smtp.md).
#[derive(Debug, Args)]
pub struct SmtpArgs {
    /// Address for the inbound SMTP listener (the MX), e.g. `0.0.0.0:25`; off unless given
    /// (`127.0.0.1:0` picks a free port; the bound address is printed). It accepts mail for
    /// the hosted domains (`--domain` and `loft domain add`) only and never relays. STARTTLS is
    /// offered when `--smtp-tls-cert` and `--smtp-tls-key` are given.
    #[arg(long = "smtp", env = "LOFT_SMTP_ADDR", value_name = "ADDR")]
    pub smtp: Option<SocketAddr>,
    /// Largest message the SMTP listener accepts, in bytes (announced as SIZE).
    #[arg(long = "smtp-max-message-bytes", env = "LOFT_SMTP_MAX_MESSAGE_BYTES",
          default_value_t = loft_smtp::SmtpConfig::DEFAULT_MAX_MESSAGE_BYTES, value_name = "N")]
    pub smtp_max_message_bytes: usize,
    /// Simultaneous SMTP sessions per client address (IPv6 per /64).
    #[arg(
        long = "smtp-max-connections-per-ip",
        env = "LOFT_SMTP_MAX_CONNECTIONS_PER_IP",
        default_value_t = 20,
        value_name = "N"
    )]
    pub smtp_max_connections_per_ip: usize,
    /// Address for the SMTP submission listener, e.g. `0.0.0.0:587`; off unless given. Mail
    /// clients and scripts authenticate as an identity (AUTH PLAIN or LOGIN: the identity's
    /// address as user name, its API key as password) and their mail is sent as a REST send
    /// is (rules, gate, caps, exfiltration guard, quotas, audit). AUTH is offered only after
    /// STARTTLS (`--smtp-tls-cert`), unless `--submission-allow-plain-loopback`.
    #[arg(long = "submission", env = "LOFT_SUBMISSION_ADDR", value_name = "ADDR")]
    pub submission: Option<SocketAddr>,
    /// Offer AUTH on the submission listener without TLS to clients on a loopback address
    /// (a script on the same host); never to others.
    #[arg(
        long = "submission-allow-plain-loopback",
        env = "LOFT_SUBMISSION_ALLOW_PLAIN_LOOPBACK"
    )]
    pub submission_allow_plain_loopback: bool,
    /// PEM certificate chain for STARTTLS on the SMTP listener (with `--smtp-tls-key`);
    /// without it STARTTLS is not offered and mail arrives in plaintext.
    #[arg(
        long = "smtp-tls-cert",
        env = "LOFT_SMTP_TLS_CERT",
        value_name = "FILE",
        requires = "smtp_tls_key"
    )]
    pub smtp_tls_cert: Option<PathBuf>,
    /// PEM private key of `--smtp-tls-cert`.
    #[arg(
        long = "smtp-tls-key",
        env = "LOFT_SMTP_TLS_KEY",
        value_name = "FILE",
        requires = "smtp_tls_cert"
    )]
    pub smtp_tls_key: Option<PathBuf>,
    /// Deliver mail for outside addresses directly to their domains' MX hosts (port 25, by MX
    /// preference, the domain's own address when it has no MX). MX addresses that are not
    /// public are refused unless `--egress-allow` allows them. Without this or `--smarthost`,
    /// sends to outside addresses are refused.
    #[arg(long = "deliver-direct", env = "LOFT_DELIVER_DIRECT")]
    pub deliver_direct: bool,
    /// Send all outbound mail through this relay (`HOST:PORT`, e.g. `smtp.example.com:587`)
    /// instead of the recipients' MX hosts.
    #[arg(
        long,
        env = "LOFT_SMARTHOST",
        value_name = "HOST:PORT",
        conflicts_with = "deliver_direct"
    )]
    pub smarthost: Option<String>,
    /// How the connection to the smarthost is protected: `starttls` (required, certificate
    /// verified), `tls` (from the first byte, e.g. port 465) or `none`.
    #[arg(long = "smarthost-tls", env = "LOFT_SMARTHOST_TLS", default_value = "starttls",
          value_parser = loft_smtp::outbound::SmarthostTls::parse, value_name = "MODE")]
    pub smarthost_tls: loft_smtp::outbound::SmarthostTls,
    /// User for `AUTH` at the smarthost; the password comes from `LOFT_SMARTHOST_PASSWORD`
    /// (never a flag: it would show in `ps`).
    #[arg(long = "smarthost-user", env = "LOFT_SMARTHOST_USER", value_name = "USER")]
    pub smarthost_user: Option<String>,
    /// PEM file of the CA certificates the smarthost's certificate must chain to, instead of
    /// the system's roots (a relay with a certificate from the operator's own CA). Only this
    /// connection trusts them.
    #[arg(
        long = "smarthost-ca",
        env = "LOFT_SMARTHOST_CA",
        value_name = "FILE",
        requires = "smarthost"
    )]
    pub smarthost_ca: Option<PathBuf>,
    /// How long a remote recipient's mail is retried after temporary failures before it
    /// bounces: seconds, or a number with `s`, `m`, `h` or `d`.
    #[arg(long = "delivery-lifetime", env = "LOFT_DELIVERY_LIFETIME", default_value = "5d",
          value_parser = parse_lifetime, value_name = "DURATION")]
    pub delivery_lifetime_secs: i64,
    /// Test rigs: the port direct delivery connects to (25 on the internet).
    #[arg(
        long = "smtp-outbound-port",
        env = "LOFT_SMTP_OUTBOUND_PORT",
        default_value_t = 25,
        hide = true
    )]
    pub smtp_outbound_port: u16,
    /// Test rigs: fixed DNS answers for direct delivery, `DOMAIN=IP` (comma-separated); the
    /// domain then has that address and no MX, and no DNS server is asked about any domain.
    #[arg(
        long = "smtp-outbound-resolve",
        env = "LOFT_SMTP_OUTBOUND_RESOLVE",
        value_delimiter = ',',
        hide = true
    )]
    pub smtp_outbound_resolve: Vec<String>,
}

/// A duration for `--delivery-lifetime`: `N` seconds, or `Ns`, `Nm`, `Nh`, `Nd`; 1 minute to
/// 30 days.
fn parse_lifetime(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 3600, 90m, 12h, 5d)"))?;
    let secs = match unit {
        's' => n,
        'm' => n.saturating_mul(60),
        'h' => n.saturating_mul(3600),
        'd' => n.saturating_mul(86_400),
        _ => return Err(format!("`{s}`: the unit is one of s, m, h, d")),
    };
    if (60..=30 * 86_400).contains(&secs) {
        Ok(secs)
    } else {
        Err(format!("`{s}` is outside 1 minute to 30 days"))
    }
}

impl SmtpArgs {
    /// The outbound delivery worker's settings, or `None` when mail for outside addresses is
    /// refused (neither `--deliver-direct` nor `--smarthost`).
    pub fn outbound(
        &self,
        domain: &str,
        egress: loft_broker::EgressPolicy,
    ) -> Result<Option<loft_smtp::outbound::OutboundConfig>, String> {
        use loft_smtp::outbound::{OutboundConfig, Route, Smarthost};
        let password = std::env::var("LOFT_SMARTHOST_PASSWORD").ok().filter(|p| !p.is_empty());
        let route = match &self.smarthost {
            Some(hp) => {
                let (host, port) = hp
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
                    .filter(|(h, _)| !h.is_empty())
                    .ok_or_else(|| format!("--smarthost: `{hp}` is not HOST:PORT"))?;
                let credentials = match (&self.smarthost_user, password) {
                    (Some(u), Some(p)) => Some((u.clone(), secrecy::SecretString::from(p))),
                    (Some(_), None) => {
                        return Err("--smarthost-user needs the password in LOFT_SMARTHOST_PASSWORD".into());
                    }
                    (None, Some(_)) => {
                        return Err("LOFT_SMARTHOST_PASSWORD is set without --smarthost-user".into());
                    }
                    (None, None) => None,
                };
                Route::Smarthost(Smarthost {
                    host: host.to_owned(),
                    port,
                    tls: self.smarthost_tls,
                    credentials,
                })
            }
            None if self.deliver_direct => Route::Direct {
                port: self.smtp_outbound_port,
            },
            None => return Ok(None),
        };
        let mut config = OutboundConfig::new(route, domain, egress);
        config.lifetime_secs = self.delivery_lifetime_secs;
        if let Some(path) = &self.smarthost_ca {
            if self.smarthost_tls == loft_smtp::outbound::SmarthostTls::None {
                return Err(
                    "--smarthost-ca needs --smarthost-tls starttls or tls (with `none` nothing is verified)".into(),
                );
            }
            config.smarthost_ca = Some(
                loft_smtp::outbound::SmarthostCa::from_pem_file(path).map_err(|e| format!("--smarthost-ca: {e}"))?,
            );
        }
        Ok(Some(config))
    }

    /// The DNS of direct delivery: the system's, or, when `--dns-answers` or
    /// `--smtp-outbound-resolve` is given, only their answers (MX hosts and addresses from the
    /// file, plus each `DOMAIN=IP`): no query then leaves the process.
    pub fn resolver(&self, answers: Option<&Path>) -> Result<Arc<dyn loft_smtp::outbound::MxResolver>, String> {
        if self.smtp_outbound_resolve.is_empty() && answers.is_none() {
            return Ok(Arc::new(loft_smtp::outbound::SystemResolver::new()?));
        }
        let mut fixed = Vec::new();
        for entry in &self.smtp_outbound_resolve {
            let (domain, ip) = entry
                .split_once('=')
                .and_then(|(d, ip)| Some((d.trim().to_ascii_lowercase(), ip.trim().parse().ok()?)))
                .ok_or_else(|| format!("--smtp-outbound-resolve: `{entry}` is not DOMAIN=IP"))?;
            fixed.push((domain, ip));
        }
        let mut resolver = loft_smtp::outbound::FixedResolver::new(fixed);
        if let Some(path) = answers {
            let dns = read_dns_answers(path)?;
            for (name, list) in &dns.mx {
                for (pref, host) in list {
                    resolver = resolver.with_mx(name, *pref, host);
                }
            }
            for (name, ips) in &dns.a {
                for ip in ips {
                    resolver = resolver.with_address(name, std::net::IpAddr::V4(*ip));
                }
            }
            for (name, ips) in &dns.aaaa {
                for ip in ips {
                    resolver = resolver.with_address(name, std::net::IpAddr::V6(*ip));
                }
            }
        }
        Ok(Arc::new(resolver))
    }
}

/// Settings of the MCP endpoint `/mcp`.
#[derive(Debug, Default, Args)]
pub struct McpArgs {
    /// Host names the MCP endpoint `/mcp` accepts in the `Host` header (a DNS-rebinding guard),
    /// comma-separated, each a name, an IP address or `host:port`; `*` alone accepts any host.
    /// Default: `localhost`, `127.0.0.1`, `::1` and the host of `--http`. List every name clients use to
    /// reach this server (its DNS name, a load balancer's name), or they get 403.
    #[arg(
        long = "mcp-allowed-hosts",
        env = "LOFT_MCP_ALLOWED_HOSTS",
        value_delimiter = ',',
        value_name = "HOSTS"
    )]
    pub mcp_allowed_hosts: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory for the SQLite database and the generated operator key.
    #[arg(long, env = "LOFT_DATA_DIR", default_value = "./loft-data")]
    pub data_dir: PathBuf,
    /// Address for the HTTP API (`127.0.0.1:0` picks a free port; the bound address is printed).
    #[arg(long = "http", env = "LOFT_HTTP_ADDR", default_value = "127.0.0.1:7070")]
    pub http: SocketAddr,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`. Default: `sqlite://<data-dir>/loft.db`.
    #[arg(long, env = "LOFT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Mail domain of new identities' addresses.
    #[arg(long, env = "LOFT_DOMAIN", default_value = "agents.localhost")]
    pub domain: String,
    /// Exceptions to the egress policy, comma-separated. Outbound connections made for callers
    /// (brokered vault HTTP) go to public addresses only; an entry allows a host name
    /// (`localhost`, `api.internal.example`: connections to it may reach non-public addresses,
    /// except cloud metadata) or an address or range (`127.0.0.1`, `10.0.0.0/8`, `::1`), allowed
    /// whatever the name.
    #[arg(
        long = "egress-allow",
        env = "LOFT_EGRESS_ALLOW",
        value_delimiter = ',',
        value_name = "ENTRIES"
    )]
    pub egress_allow: Vec<String>,
    /// Refuse outbound connections to public addresses too, so that only the `--egress-allow`
    /// exceptions are reachable (test rigs, air-gapped sites).
    #[arg(long, env = "LOFT_EGRESS_DENY_PUBLIC")]
    pub egress_deny_public: bool,
    /// Seconds a webhook receiver has to answer one delivery (1 to 20).
    #[arg(long, env = "LOFT_WEBHOOK_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub webhook_timeout_secs: u64,
    /// Seconds before a failed webhook delivery is retried; the wait doubles with each failure
    /// in a row, up to `--webhook-retry-max-secs`.
    #[arg(long, env = "LOFT_WEBHOOK_RETRY_BASE_SECS", default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..))]
    pub webhook_retry_base_secs: i64,
    /// The longest wait between two attempts of a webhook delivery (default six hours).
    #[arg(long, env = "LOFT_WEBHOOK_RETRY_MAX_SECS", default_value_t = 6 * 3600, value_parser = clap::value_parser!(i64).range(1..))]
    pub webhook_retry_max_secs: i64,
    /// A webhook endpoint whose deliveries fail for longer than this many seconds is disabled
    /// (default three days), with a `webhook.disabled` event.
    #[arg(long, env = "LOFT_WEBHOOK_DISABLE_AFTER_SECS", default_value_t = 3 * 24 * 3600, value_parser = clap::value_parser!(i64).range(0..))]
    pub webhook_disable_after_secs: i64,
    /// The URL people open the console at (`https://loft.example.com`), when it differs from
    /// the `--http` address (behind a TLS proxy). With `https`, the console's session cookie is
    /// marked `Secure`.
    #[arg(long = "public-url", env = "LOFT_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Largest HTTP request body accepted, in bytes.
    #[arg(long, env = "LOFT_MAX_REQUEST_BYTES", default_value_t = loft_web::DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,
    /// Largest total size, in decoded bytes, of the files attached to one sent mail (their
    /// base64 must also fit `--max-request-bytes`).
    #[arg(long, env = "LOFT_MAX_ATTACHMENT_BYTES", default_value_t = loft_core::mail::DEFAULT_MAX_ATTACHMENT_BYTES)]
    pub max_attachment_bytes: usize,
    /// The oversight mode of new identities when their creator names none: `read_only`,
    /// `gated_all`, `gated_send` (every outgoing mail waits for a reviewer), `monitored` or
    /// `autonomous`. Existing identities keep theirs.
    #[arg(long, env = "LOFT_DEFAULT_OVERSIGHT_MODE", default_value = "gated_send", value_parser = parse_mode)]
    pub default_oversight_mode: OversightMode,
    /// Seconds held mail waits for a reviewer before it expires (default three days).
    #[arg(long = "approval-ttl", env = "LOFT_APPROVAL_TTL", default_value_t = loft_core::service::DEFAULT_APPROVAL_TTL_SECS,
          value_parser = clap::value_parser!(i64).range(60..=31_536_000))]
    pub approval_ttl_secs: i64,
    /// Limits on abuse.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// The operator key, when a caller inside this process (the benchmark) supplies it; the
    /// command line never does (it would show in `ps`): use `LOFT_ADMIN_KEY`.
    #[arg(skip)]
    pub admin_key: Option<String>,
    /// DNS answers given up front, as JSON (`{"txt": {"name": ["text", ...]}, "mx": {"name":
    /// [[10, "host"]]}, "a": {"host": ["127.0.0.1"]}, "aaaa": {"host": ["::1"]}}`), used
    /// instead of the system resolver for SPF / DKIM / DMARC checks of received mail (SPF's
    /// `mx` and `a` resolve through the address records), `loft domain check`, and the MX
    /// hosts and addresses of direct delivery: every other name does not exist. For tests and
    /// hosts without DNS; off by default (the resolver of /etc/resolv.conf, with a cache).
    #[arg(long = "dns-answers", env = "LOFT_DNS_ANSWERS", value_name = "FILE")]
    pub dns_answers: Option<PathBuf>,
    /// What becomes of mail from outside that fails DMARC for its From domain: `enforce`
    /// follows the domain's published policy (`p=reject`: refused with `550 5.7.1`;
    /// `p=quarantine`: accepted and held for a reviewer's release; `p=none`: delivered),
    /// `mark` delivers it with its verdict only (for a host behind forwarders or mailing lists
    /// that break signatures). An undecided DNS answer is never enforced.
    #[arg(long = "dmarc", env = "LOFT_DMARC", default_value = "enforce",
          value_parser = loft_core::mailauth::DmarcEnforcement::parse, value_name = "MODE")]
    pub dmarc: loft_core::mailauth::DmarcEnforcement,
    /// Background jobs (outbound deliveries, webhook posts, scheduled releases) this process
    /// runs at once: a slow receiver holds one place, not the queue.
    #[arg(long = "job-concurrency", env = "LOFT_JOB_CONCURRENCY",
          default_value_t = loft_core::runner::DEFAULT_CONCURRENCY,
          value_parser = parse_job_concurrency, value_name = "N")]
    pub job_concurrency: usize,
}

/// `--job-concurrency`: 1 to 1024.
fn parse_job_concurrency(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n @ 1..=1024) => Ok(n),
        Ok(n) => Err(format!("{n} is outside 1..=1024")),
        Err(e) => Err(format!("`{s}` is not a number: {e}")),
    }
}

/// The `--dns-answers` file: names with their TXT strings, MX hosts and addresses (A records
/// hold IPv4 addresses, AAAA records IPv6 ones).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsAnswersFile {
    #[serde(default)]
    txt: std::collections::HashMap<String, Vec<String>>,
    #[serde(default)]
    mx: std::collections::HashMap<String, Vec<(u16, String)>>,
    #[serde(default)]
    a: std::collections::HashMap<String, Vec<std::net::Ipv4Addr>>,
    #[serde(default)]
    aaaa: std::collections::HashMap<String, Vec<std::net::Ipv6Addr>>,
}

/// Reads the `--dns-answers` file; an error names the file and what is wrong in it.
fn read_dns_answers(path: &Path) -> Result<loft_mailauth::StaticDns, String> {
    let bad = |why: String| format!("--dns-answers {}: {why}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let file: DnsAnswersFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut dns = loft_mailauth::StaticDns::default();
    for (name, values) in &file.txt {
        for v in values {
            dns = dns.txt(name, v);
        }
    }
    for (name, list) in &file.mx {
        for (pref, host) in list {
            dns = dns.mx(name, *pref, host);
        }
    }
    for (name, ips) in &file.a {
        for ip in ips {
            dns = dns.addr(name, std::net::IpAddr::V4(*ip));
        }
    }
    for (name, ips) in &file.aaaa {
        for ip in ips {
            dns = dns.addr(name, std::net::IpAddr::V6(*ip));
        }
    }
    Ok(dns)
}

/// The mail authenticator: the system resolver, or the answers of `--dns-answers`.
fn mail_auth(answers: Option<&Path>) -> Result<loft_mailauth::Authenticator, String> {
    let Some(path) = answers else {
        return loft_mailauth::Authenticator::system().map_err(|e| e.to_string());
    };
    let dns = read_dns_answers(path)?;
    loft_mailauth::Authenticator::with_answers(dns).map_err(|e| format!("--dns-answers {}: {e}", path.display()))
}

fn parse_mode(s: &str) -> Result<OversightMode, String> {
    OversightMode::parse(s).map_err(|e| format!("{e}; {}", e.hint().unwrap_or_default()))
}

/// Limits on abuse: request rates per API key and per client address, and the lockout of
/// addresses that present too many refused keys. Defaults suit a crew of dozens of agents
/// on one host; behind a reverse proxy every client shares the proxy's address, so raise
/// `--rate-limit-per-address` there (or set it to `off`).
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Requests per second per identity key: `N` (burst 2N), `N/BURST`, or `off`.
    #[arg(
        long,
        env = "LOFT_RATE_LIMIT_PER_KEY",
        default_value = "100/200",
        value_name = "RATE"
    )]
    pub rate_limit_per_key: String,
    /// Requests per second per client address (IPv6 per /64): `N`, `N/BURST`, or `off`.
    #[arg(
        long,
        env = "LOFT_RATE_LIMIT_PER_ADDRESS",
        default_value = "1000/2000",
        value_name = "RATE"
    )]
    pub rate_limit_per_address: String,
    /// Refused API keys per client address per minute before that address gets 429 until
    /// the minute ends; 0 turns the lockout off.
    #[arg(long, env = "LOFT_AUTH_FAILURES_PER_MINUTE", default_value_t = 20, value_name = "N")]
    pub auth_failures_per_minute: u32,
    /// Per-identity quotas, each `NAME=N` or `NAME=off` (comma-separated or repeated):
    /// `sub_identities` (default 100), `keys` (50), `vault_items` (1000), `stored_bytes`
    /// (1073741824), `queued_recipients_per_hour` (1000), `drafts` (1000).
    #[arg(long = "quota", env = "LOFT_QUOTAS", value_delimiter = ',', value_name = "NAME=N")]
    pub quotas: Vec<String>,
}

impl LimitArgs {
    /// No limits (the benchmark measures the server, not the limiter).
    pub fn off() -> Self {
        Self {
            rate_limit_per_key: "off".into(),
            rate_limit_per_address: "off".into(),
            auth_failures_per_minute: 0,
            quotas: Quotas::NAMES.iter().map(|n| format!("{n}=off")).collect(),
        }
    }

    pub fn quotas(&self) -> Result<Quotas, String> {
        Quotas::parse(&self.quotas).map_err(|e| format!("--quota: {e}"))
    }

    pub fn config(&self) -> Result<LimitsConfig, String> {
        Ok(LimitsConfig {
            per_key: Rate::parse(&self.rate_limit_per_key).map_err(|e| format!("--rate-limit-per-key: {e}"))?,
            per_address: Rate::parse(&self.rate_limit_per_address)
                .map_err(|e| format!("--rate-limit-per-address: {e}"))?,
            auth_failures: self.auth_failures_per_minute,
            auth_window_secs: 60,
        })
    }
}

/// The storage backend a database URL names.
#[derive(Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite(PathBuf),
    Postgres(String),
}

/// Picks the backend from the URL scheme, in this one place. An unknown scheme is an error
/// naming the accepted ones; nothing without a scheme is taken for a file name, so a typo
/// never silently creates a new SQLite database.
pub fn backend_from_url(url: &str) -> Result<Backend, String> {
    let accepted = "accepted: sqlite://PATH (or sqlite:PATH) and postgres://... (or postgresql://...)";
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(format!("the database URL has no scheme; {accepted}"));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "sqlite" => {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err("the sqlite URL names no file; use sqlite://PATH".into());
            }
            Ok(Backend::Sqlite(PathBuf::from(path)))
        }
        "postgres" | "postgresql" => Ok(Backend::Postgres(url.to_owned())),
        other => Err(format!("unknown database URL scheme `{other}`; {accepted}")),
    }
}

fn init_logging() {
    // Logs go to stderr; stdout carries only the start-up lines that scripts read.
    crate::log_to_stderr("info,sqlx=warn,tower_http=info");
}

pub async fn run(cmd: ServeCommand) -> ExitCode {
    init_logging();
    match serve(cmd).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loft serve: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// The operator key: `LOFT_ADMIN_KEY`, else the one stored in the data dir, else a new one,
/// stored owner-only and printed this once.
fn operator_key(data_dir: &Path, given: Option<&str>) -> Result<OperatorKey, String> {
    if let Some(k) = given {
        return OperatorKey::from_secret(k).map_err(|e| e.to_string());
    }
    let path = data_dir.join("admin.key");
    if let Ok(k) = std::env::var("LOFT_ADMIN_KEY")
        && !k.trim().is_empty()
    {
        let key = OperatorKey::from_secret(&k).map_err(|e| format!("LOFT_ADMIN_KEY: {e}"))?;
        println!("operator key: from LOFT_ADMIN_KEY");
        // A key file left from an earlier start is not accepted while the variable is set:
        // say so, rather than let its key be refused as invalid without a word.
        if let Ok(stored) = std::fs::read_to_string(&path)
            && !key.matches(stored.trim())
        {
            println!(
                "operator key: note: {} holds another key, which is not accepted while LOFT_ADMIN_KEY is set",
                path.display()
            );
        }
        return Ok(key);
    }
    match std::fs::read_to_string(&path) {
        Ok(k) => {
            println!("operator key: stored in {}", path.display());
            OperatorKey::from_secret(&k).map_err(|e| format!("{}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = OperatorKey::generate(&OsRandom);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts
                .open(&path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            std::io::Write::write_all(&mut f, format!("{key}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            println!(
                "operator key (shown once; stored owner-only in {}):\n  {key}",
                path.display()
            );
            OperatorKey::from_secret(&key).map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The vault's master keys: `LOFT_MASTER_KEY` (base64 or hex of 32 bytes) or the first line
/// of `LOFT_MASTER_KEY_FILE`, with `LOFT_MASTER_KEY_PREVIOUS` (comma-separated) still able to
/// open rows not yet re-wrapped; else the data dir's `vault.keys` (current key first, previous
/// ones after), generated owner-only on first start. Only the data-dir file is a [`KeySource`]:
/// rotation then generates and stores the new key itself.
pub fn master_keys(data_dir: &Path) -> Result<(Keyring, Option<Arc<dyn KeySource>>), String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let previous = match env("LOFT_MASTER_KEY_PREVIOUS") {
        Some(list) => list
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(|k| MasterKey::parse(k).map_err(|e| format!("LOFT_MASTER_KEY_PREVIOUS: {e}")))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    if let Some(k) = env("LOFT_MASTER_KEY") {
        let current = MasterKey::parse(&k).map_err(|e| format!("LOFT_MASTER_KEY: {e}"))?;
        return Ok((Keyring::new(current, previous), None));
    }
    if let Some(path) = env("LOFT_MASTER_KEY_FILE") {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("LOFT_MASTER_KEY_FILE {path}: {e}"))?;
        let mut keys = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| MasterKey::parse(l).map_err(|e| format!("LOFT_MASTER_KEY_FILE {path}: {e}")));
        let current = keys
            .next()
            .ok_or_else(|| format!("LOFT_MASTER_KEY_FILE {path}: the file holds no key"))??;
        let mut prev = keys.collect::<Result<Vec<_>, _>>()?;
        prev.extend(previous);
        return Ok((Keyring::new(current, prev), None));
    }
    let file = KeyFile(data_dir.join("vault.keys"));
    match std::fs::read_to_string(&file.0) {
        Ok(text) => {
            let mut keys = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| MasterKey::parse(l).map_err(|e| format!("{}: {e}", file.0.display())));
            let current = keys
                .next()
                .ok_or_else(|| format!("{}: the file holds no key", file.0.display()))??;
            let mut prev = keys.collect::<Result<Vec<_>, _>>()?;
            prev.extend(previous);
            Ok((Keyring::new(current, prev), Some(Arc::new(file))))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let ring = Keyring::new(MasterKey::generate(&OsRandom), previous);
            file.store(&ring).map_err(|e| e.to_string())?;
            println!("vault master key: generated, stored owner-only in {}", file.0.display());
            Ok((ring, Some(Arc::new(file))))
        }
        Err(e) => Err(format!("cannot read {}: {e}", file.0.display())),
    }
}

/// The data dir's key file: one base64 key per line, the current one first.
struct KeyFile(PathBuf);

impl KeySource for KeyFile {
    fn store(&self, keyring: &Keyring) -> loft_core::Result<()> {
        use secrecy::ExposeSecret as _;
        let mut text = String::new();
        for k in keyring.keys() {
            text.push_str(k.to_base64().expose_secret());
            text.push('\n');
        }
        let tmp = self.0.with_extension("keys.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let fail = |e: std::io::Error| loft_core::Error::internal(format!("writing {}: {e}", self.0.display()));
        let mut f = opts.open(&tmp).map_err(fail)?;
        std::io::Write::write_all(&mut f, text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(fail)?;
        std::fs::rename(&tmp, &self.0).map_err(fail)?;
        Ok(())
    }
}

async fn open_store(args: &ServeArgs) -> Result<Arc<dyn Store>, String> {
    let backend = match &args.database_url {
        Some(url) => backend_from_url(url).map_err(|e| format!("--database-url: {e}"))?,
        None => Backend::Sqlite(args.data_dir.join("loft.db")),
    };
    Ok(match backend {
        Backend::Sqlite(path) => {
            let store = loft_store_sqlite::SqliteStore::open(&path)
                .await
                .map_err(|e| format!("opening SQLite database {}: {e}", path.display()))?;
            println!("database: sqlite {}", path.display());
            Arc::new(store)
        }
        Backend::Postgres(url) => {
            let store = loft_store_postgres::PostgresStore::connect(&url)
                .await
                .map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
            println!("database: postgres");
            Arc::new(store)
        }
    })
}

/// Everything `loft serve` runs, wired, without a listener: the HTTP application and the store
/// behind it (which the caller closes after the server stops). `/mcp` gets its default settings.
pub async fn app(args: &ServeArgs) -> Result<(axum::Router, Arc<dyn Store>), String> {
    let (router, store, _) = app_with_mcp(args, &McpArgs::default()).await?;
    Ok((router, store))
}

/// [`app`] with the MCP endpoint's settings.
pub async fn app_with_mcp(
    args: &ServeArgs,
    mcp: &McpArgs,
) -> Result<(axum::Router, Arc<dyn Store>, Arc<Loft>), String> {
    app_with_outbound(args, mcp, false).await
}

/// [`app_with_mcp`], accepting mail for outside addresses when `outbound` (the delivery
/// worker then runs in the job runner).
pub async fn app_with_outbound(
    args: &ServeArgs,
    mcp: &McpArgs,
    outbound: bool,
) -> Result<(axum::Router, Arc<dyn Store>, Arc<Loft>), String> {
    let allowed_hosts =
        AllowedHosts::parse(&mcp.mcp_allowed_hosts, args.http).map_err(|e| format!("--mcp-allowed-hosts: {e}"))?;
    let egress = loft_broker::EgressPolicy::parse(&args.egress_allow)
        .map_err(|e| format!("--egress-allow: {e}"))?
        .deny_public(args.egress_deny_public);
    let limits = args.limits.config()?;
    let quotas = args.limits.quotas()?;
    create_private_dir(&args.data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", args.data_dir.display()))?;
    let operator = operator_key(&args.data_dir, args.admin_key.as_deref())?;
    let store = open_store(args).await?;
    let loft = Loft::new(
        store.clone(),
        Arc::new(SystemClock),
        Arc::new(OsRandom),
        operator,
        LoftConfig {
            max_body_bytes: args.max_request_bytes,
            max_attachment_bytes: args.max_attachment_bytes,
            default_oversight_mode: args.default_oversight_mode,
            approval_ttl_secs: args.approval_ttl_secs,
            console_url: Some(console_url(args)?),
            dmarc: args.dmarc,
            ..LoftConfig::new(args.domain.to_ascii_lowercase())
        },
    )
    .map_err(|e| format!("--domain: {e}"))?
    .with_limits(limits)
    .with_quotas(quotas)
    .with_mail_auth(Arc::new(mail_auth(args.dns_answers.as_deref())?))
    .with_webhooks(loft_core::webhooks::WebhookSettings {
        timeout: std::time::Duration::from_secs(args.webhook_timeout_secs),
        retry_base_secs: args.webhook_retry_base_secs,
        retry_max_secs: args.webhook_retry_max_secs,
        disable_after_secs: args.webhook_disable_after_secs,
    })
    .with_outbound(outbound);
    let (keyring, source) = master_keys(&args.data_dir)?;
    if !egress.allowances().is_empty() {
        let allowed: Vec<String> = egress.allowances().iter().map(ToString::to_string).collect();
        tracing::info!(allowed = %allowed.join(","), "egress policy exceptions");
    }
    let broker = loft_broker::ReqwestBroker::new(egress).map_err(|e| format!("brokered HTTP: {e}"))?;
    let loft = loft.with_vault(keyring, source).with_broker(Arc::new(broker));
    let held = loft.verify_vault_keys().await.map_err(|e| match e.hint() {
        Some(h) => format!("vault: {e} ({h})"),
        None => format!("vault: {e}"),
    })?;
    println!("vault master key: {}", held.first().map_or("", String::as_str));
    let loft = Arc::new(loft);
    let state = AppState {
        loft: loft.clone(),
        config: Arc::new(WebConfig {
            max_request_bytes: args.max_request_bytes,
        }),
    };
    let mcp = McpHttpSettings {
        allowed_hosts,
        max_request_bytes: args.max_request_bytes,
    };
    let console = loft_console::ConsoleConfig {
        secure_cookies: args
            .public_url
            .as_deref()
            .is_some_and(|u| u.trim().to_ascii_lowercase().starts_with("https://")),
    };
    Ok((
        loft_web::router(state)
            .merge(loft_mcp::http_router(loft.clone(), mcp))
            .merge(loft_console::router(loft.clone(), console)),
        store,
        loft,
    ))
}

/// Where people open the console: `--public-url` (http or https, without a trailing
/// slash), or else the HTTP address (loopback for an unspecified one).
fn console_url(args: &ServeArgs) -> Result<String, String> {
    if let Some(u) = args.public_url.as_deref() {
        let u = u.trim().trim_end_matches('/');
        let lower = u.to_ascii_lowercase();
        let host = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"))
            .unwrap_or("");
        if host.is_empty() || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "--public-url: `{u}` is not an http:// or https:// URL (such as https://loft.example.com)"
            ));
        }
        return Ok(u.to_owned());
    }
    let mut addr = args.http;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Ok(format!("http://{addr}"))
}

/// Holds an exclusive lock on `<database>.lock` (owner-only, holding this process's id) for
/// as long as the returned file lives: a second server on the same SQLite database refuses to
/// start, naming the first. (Several nodes are the PostgreSQL story.)
fn lock_sqlite(db: &Path) -> Result<std::fs::File, String> {
    use std::io::{Read as _, Seek as _, Write as _};
    let path = db.with_extension("lock");
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts
        .open(&path)
        .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another `loft serve`".to_owned()
            } else {
                format!("another `loft serve` (pid {holder})")
            };
            return Err(format!(
                "{who} is already using {}: one server per SQLite database; stop it first, or use PostgreSQL for several nodes",
                db.display()
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(format!("cannot lock {}: {e}", path.display()));
        }
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(file)
}

async fn serve(cmd: ServeCommand) -> Result<(), String> {
    let ServeCommand {
        server: args,
        mcp,
        smtp,
    } = cmd;
    // One server per SQLite database, checked before anything is opened or printed.
    let sqlite = match args.database_url.as_deref().map(backend_from_url).transpose()? {
        None => Some(args.data_dir.join("loft.db")),
        Some(Backend::Sqlite(path)) => Some(path),
        Some(Backend::Postgres(_)) => None,
    };
    create_private_dir(&args.data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", args.data_dir.display()))?;
    let _lock = sqlite.as_deref().map(lock_sqlite).transpose()?;
    // The port before the keys: a start that fails on a busy port must not have printed a
    // newly generated operator key ("shown once") already.
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.http))?;
    // The port actually bound (`--http 127.0.0.1:0` picks one): the console's links use it.
    let mut args = args;
    if let Ok(bound) = listener.local_addr() {
        args.http = bound;
    }
    let smtp_listener = bind_smtp("--smtp", smtp.smtp).await?;
    let submission_listener = bind_smtp("--submission", smtp.submission).await?;
    let smtp_tls = match (&smtp.smtp_tls_cert, &smtp.smtp_tls_key) {
        (Some(cert), Some(key)) => {
            Some(loft_smtp::TlsConfig::from_pem_files(cert, key).map_err(|e| format!("--smtp-tls-cert: {e}"))?)
        }
        _ => None,
    };
    let egress = loft_broker::EgressPolicy::parse(&args.egress_allow)
        .map_err(|e| format!("--egress-allow: {e}"))?
        .deny_public(args.egress_deny_public);
    let outbound = smtp.outbound(&args.domain.to_ascii_lowercase(), egress)?;
    let resolver = match &outbound {
        Some(c) if matches!(c.route, loft_smtp::outbound::Route::Direct { .. }) => {
            Some(smtp.resolver(args.dns_answers.as_deref())?)
        }
        _ => None,
    };
    let (app, store, loft) = app_with_outbound(&args, &mcp, outbound.is_some()).await?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("mail domain: {}", args.domain);
    println!("HTTP API listening on http://{addr}");
    println!("MCP endpoint: http://{addr}{}", loft_mcp::MCP_PATH);
    println!("web console: http://{addr}/");
    match outbound.as_ref().map(|c| &c.route) {
        Some(loft_smtp::outbound::Route::Smarthost(s)) => {
            println!("outbound mail: through the smarthost {}:{}", s.host, s.port);
        }
        Some(loft_smtp::outbound::Route::Direct { .. }) => println!("outbound mail: direct to the MX hosts"),
        None => println!("outbound mail: off (mail for outside addresses is refused)"),
    }
    // The inbound SMTP listener (loft_smtp) and the submission listener (the same session code,
    // AUTH and sends instead of deliveries). On shutdown they stop accepting, say 421 to idle
    // sessions and let a mail under way finish (it has not had its 250 otherwise).
    let (stop_smtp, smtp_stop) = tokio::sync::watch::channel(false);
    let domain = args.domain.to_ascii_lowercase();
    let mut smtp_tasks = Vec::new();
    for (listener, role) in [
        (smtp_listener, SmtpRole::Mx),
        (submission_listener, SmtpRole::Submission),
    ] {
        if let Some(l) = listener {
            let listening = SmtpListening {
                domain: &domain,
                args: &smtp,
                tls: smtp_tls.as_ref(),
            };
            smtp_tasks.push(spawn_smtp_listener(
                l,
                role,
                &listening,
                loft.clone(),
                smtp_stop.clone(),
            )?);
        }
    }
    // Scripts and tests read the lines above; make sure they are out before serving.
    std::io::Write::flush(&mut std::io::stdout()).ok();
    tracing::info!(%addr, backend = store.backend(), "loft serve started");

    // No Nagle delay: responses (SSE ones for /mcp especially) go out in several writes, and
    // waiting for the client's delayed ACK added ~40 ms to every MCP call.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    // Refused keys are written to the audit log as one row per address and minute.
    let flusher = {
        let loft = loft.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
            loop {
                every.tick().await;
                if let Err(e) = loft.flush_auth_refusals(false).await {
                    tracing::warn!(error = %e, "writing refused-key audit rows");
                }
            }
        })
    };
    // The job runner (loft_core::runner): scheduled releases, webhooks and outbound delivery,
    // up to --job-concurrency at once. It looks every second, at once when this process queues
    // a job, and whenever a place frees; on shutdown it claims nothing more, lets the jobs in
    // hand finish for a while and gives back the rest, before the store closes. Every node
    // runs one: claims are leased, and each job is run by one runner.
    let (stop_jobs, jobs_stop) = tokio::sync::watch::channel(false);
    let runner = {
        let worker = format!(
            "serve-{}-{}",
            std::process::id(),
            loft_core::random::base32_string(&loft_core::random::OsRandom, 8)
        );
        let mut runner = loft_core::runner::JobRunner::new(loft.clone(), worker).with_concurrency(args.job_concurrency);
        // Outbound SMTP (loft_smtp::outbound): the `smtp.deliver` jobs of remote recipients.
        if let Some(config) = outbound {
            let resolver = match resolver {
                Some(r) => r,
                // The smarthost route never asks it.
                None => Arc::new(loft_smtp::outbound::FixedResolver::new(vec![])),
            };
            runner = runner.with_handler(Box::new(loft_smtp::outbound::DeliveryWorker::new(config, resolver)));
        }
        tokio::spawn(async move {
            runner
                .run_until(jobs_stop, std::time::Duration::from_secs(1), |e| {
                    tracing::warn!(error = %e, "running due jobs; trying again shortly");
                })
                .await;
        })
    };
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown({
            let loft = loft.clone();
            let stop_smtp = stop_smtp.clone();
            async move {
                shutdown_signal().await;
                let _ = stop_smtp.send(true);
                // Long polls (`mail_wait`) answer now instead of holding the shutdown up.
                loft.begin_shutdown();
            }
        })
        .await
        .map_err(|e| format!("HTTP server: {e}"))?;
    tracing::info!("shutting down: finishing pending writes");
    let _ = stop_smtp.send(true);
    for task in smtp_tasks {
        if let Err(e) = task.await {
            tracing::warn!(error = %e, "an SMTP listener stopped abnormally");
        }
    }
    flusher.abort();
    let _ = stop_jobs.send(true);
    if let Err(e) = runner.await {
        tracing::warn!(error = %e, "the job runner stopped abnormally");
    }
    if let Err(e) = loft.flush_auth_refusals(true).await {
        tracing::warn!(error = %e, "writing refused-key audit rows");
    }
    store.close().await;
    println!("loft serve stopped");
    Ok(())
}

/// Binds the address of an SMTP listener flag, if given.
async fn bind_smtp(flag: &str, addr: Option<SocketAddr>) -> Result<Option<tokio::net::TcpListener>, String> {
    match addr {
        Some(addr) => tokio::net::TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|e| format!("{flag}: cannot listen on {addr}: {e}")),
        None => Ok(None),
    }
}

/// Which SMTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SmtpRole {
    /// Inbound mail for the hosted domains (`--smtp`).
    Mx,
    /// Clients sending as an identity, with AUTH (`--submission`).
    Submission,
}

/// What every SMTP listener is configured from.
struct SmtpListening<'a> {
    domain: &'a str,
    args: &'a SmtpArgs,
    tls: Option<&'a loft_smtp::TlsConfig>,
}

/// Prints where an SMTP listener listens (scripts and tests read the line) and serves it
/// until `stop` turns true.
fn spawn_smtp_listener(
    listener: tokio::net::TcpListener,
    role: SmtpRole,
    with: &SmtpListening<'_>,
    loft: Arc<Loft>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut config = loft_smtp::SmtpConfig::new(with.domain);
    config.max_message_bytes = with.args.smtp_max_message_bytes;
    config.max_connections_per_ip = with.args.smtp_max_connections_per_ip;
    config.tls = with.tls.cloned();
    match role {
        SmtpRole::Mx => {
            println!("SMTP listening on {addr} (mail for @{})", with.domain);
            if with.tls.is_some() {
                println!("SMTP STARTTLS offered");
            }
        }
        SmtpRole::Submission => {
            let allow_plain_loopback = with.args.submission_allow_plain_loopback;
            let auth = match (with.tls.is_some(), allow_plain_loopback) {
                (true, true) => "AUTH after STARTTLS, or in the clear from loopback",
                (true, false) => "AUTH after STARTTLS",
                (false, true) => "AUTH in the clear from loopback only",
                (false, false) => "no AUTH offered: give --smtp-tls-cert or --submission-allow-plain-loopback",
            };
            println!("SMTP submission listening on {addr} ({auth})");
            config.submission = Some(loft_smtp::Submission { allow_plain_loopback });
        }
    }
    Ok(tokio::spawn(loft_smtp::serve(listener, loft, config, stop)))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_selection() {
        assert_eq!(
            backend_from_url("sqlite:///tmp/x.db"),
            Ok(Backend::Sqlite("/tmp/x.db".into()))
        );
        assert_eq!(backend_from_url("sqlite:rel.db"), Ok(Backend::Sqlite("rel.db".into())));
        assert!(matches!(
            backend_from_url("postgres://u@h/db"),
            Ok(Backend::Postgres(_))
        ));
        assert!(matches!(
            backend_from_url("postgresql://u@h/db"),
            Ok(Backend::Postgres(_))
        ));
        let e = backend_from_url("mysql://u@h/db").unwrap_err();
        assert!(
            e.contains("mysql") && e.contains("sqlite://") && e.contains("postgres://"),
            "{e}"
        );
        assert!(backend_from_url("./loft.db").unwrap_err().contains("no scheme"));
        assert!(backend_from_url("sqlite://").is_err());
    }

    /// `--dns-answers` holds A and AAAA records besides TXT and MX; direct delivery resolves
    /// the MX host through them, and a name the file does not hold does not exist.
    #[tokio::test]
    async fn dns_answers_hold_address_records_for_delivery() {
        use loft_smtp::outbound::DnsError;
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            smtp: SmtpArgs,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dns.json");
        std::fs::write(
            &path,
            r#"{"txt": {"b.test": ["v=spf1 mx -all"]}, "mx": {"b.test": [[10, "mx.b.test."]]},
                "a": {"mx.b.test": ["127.0.0.1"]}, "aaaa": {"mx.b.test": ["::1"]}}"#,
        )
        .unwrap();
        let flags =
            <Flags as clap::Parser>::try_parse_from(["x", "--smtp-outbound-resolve", "c.test=127.0.0.2"]).unwrap();
        let r = flags.smtp.resolver(Some(&path)).unwrap();
        assert_eq!(r.mx("B.test").await.unwrap(), vec![(10, "mx.b.test".to_owned())]);
        let ips = r.addresses("mx.b.test").await.unwrap();
        let (v4, v6): (std::net::IpAddr, std::net::IpAddr) = ("127.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        assert!(ips.len() == 2 && ips.contains(&v4) && ips.contains(&v6), "{ips:?}");
        assert_eq!(
            r.addresses("c.test").await.unwrap(),
            ["127.0.0.2".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(r.mx("c.test").await, Err(DnsError::NotFound));
        assert_eq!(r.addresses("elsewhere.test").await, Err(DnsError::NotFound));
        assert!(mail_auth(Some(&path)).is_ok());

        std::fs::write(&path, r#"{"a": {"mx.b.test": ["::1"]}}"#).unwrap();
        let e = mail_auth(Some(&path)).err().unwrap();
        assert!(e.contains("--dns-answers") && e.contains("dns.json"), "{e}");
    }
}
