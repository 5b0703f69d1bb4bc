//! The [`HttpBroker`] port on `reqwest`: the outbound HTTP request a brokered vault call makes.
//!
//! What this crate guarantees (the use case in `loft-core` checks the allow-list, injects the
//! credential and redacts the response): **no redirect is ever followed** (a 3xx is returned
//! as it came, so a redirect to another host can never receive the credential), the response
//! body is **streamed and cut** [`REDACTION_LOOKAHEAD`] bytes past the size cap (the core
//! redacts, then cuts at the cap), and the whole exchange has a **timeout**.
//! Errors name the host only, never a header, the URL's query or the body.
//!
//! Every connection is subject to the [`EgressPolicy`] (module [`egress`]), judged on the
//! address actually connected to: names are resolved by [`PolicyResolver`], which hands reqwest
//! only the allowed addresses (so the check and the connection use the same addresses, with
//! no second lookup a DNS rebinding could answer differently); an IP literal in the URL, which
//! reqwest connects to without resolving, is checked before the request is sent. Proxies are
//! off (`HTTP_PROXY` and friends are ignored), since a proxy would make the connection instead.
//! A refusal is `403 egress_denied`, naming the host and the rule.

pub mod egress;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use loft_core::vault::{BrokerRequest, BrokerResponse, HttpBroker};
use loft_core::{Error, Result};
use secrecy::ExposeSecret as _;

pub use crate::egress::{Denied, EgressAllow, EgressAllowError, EgressPolicy, Rule};

/// How far past `max_response_bytes` the body is read. The broker returns up to this much more
/// (with `truncated` set), so that the core, which knows the secrets, can cut the body at the
/// cap without splitting a secret that straddles it (a prefix of a secret would otherwise
/// escape redaction).
pub const REDACTION_LOOKAHEAD: usize = 64 * 1024;

/// Outbound HTTP with reqwest, under an egress policy.
#[derive(Debug, Clone)]
pub struct ReqwestBroker {
    client: reqwest::Client,
    policy: Arc<EgressPolicy>,
}

impl ReqwestBroker {
    /// A broker whose connections obey `policy` ([`EgressPolicy::default`] refuses every
    /// non-public address).
    pub fn new(policy: EgressPolicy) -> Result<Self> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(PolicyResolver::new(policy.clone()))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("loft-broker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("building the HTTP client: {e}")))?;
        Ok(Self { client, policy })
    }

    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }
}

/// A name resolver that lets through only the addresses the policy allows, so reqwest
/// connects to nothing else. If it allows none, the error ([`Refused`]) names the host and the
/// rule of the first address refused.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    policy: Arc<EgressPolicy>,
}

impl PolicyResolver {
    pub fn new(policy: Arc<EgressPolicy>) -> Self {
        Self { policy }
    }

    /// Resolves `host` and keeps the allowed addresses (port 0: the caller sets it).
    pub async fn resolve_allowed(
        policy: &EgressPolicy,
        host: &str,
    ) -> std::result::Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let mut allowed: Vec<SocketAddr> = Vec::new();
        let mut refused = None;
        for addr in tokio::net::lookup_host((host, 0)).await? {
            match policy.check(host, addr.ip()) {
                Ok(()) if !allowed.contains(&addr) => allowed.push(addr),
                Ok(()) => {}
                Err(d) => {
                    refused.get_or_insert(d);
                }
            }
        }
        match refused {
            Some(denied) if allowed.is_empty() => Err(Box::new(Refused {
                host: host.to_owned(),
                denied,
            })),
            _ if allowed.is_empty() => Err(format!("no address found for {host}").into()),
            _ => Ok(allowed),
        }
    }
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = Self::resolve_allowed(&policy, &host).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A connection the egress policy refused: the host as the URL named it, and why.
#[derive(Debug, Clone)]
pub struct Refused {
    pub host: String,
    pub denied: Denied,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the egress policy refuses connections to `{}`: {} (rule `{}`)",
            self.host,
            self.denied,
            self.denied.rule.name()
        )
    }
}

impl std::error::Error for Refused {}

impl Refused {
    /// `403 egress_denied`, with a hint naming the operator setting and the entry to add.
    pub fn to_error(&self) -> Error {
        let literal = self
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok();
        let entry = if literal || self.denied.rule == Rule::CloudMetadata {
            self.denied.ip.to_string()
        } else {
            self.host.clone()
        };
        let refused = if self.denied.rule == Rule::Public {
            "this server refuses outbound connections to public addresses too (--egress-deny-public)"
        } else {
            "outbound connections to non-public addresses are refused"
        };
        Error::forbidden("egress_denied", self.to_string()).with_hint(format!(
            "{refused}; if this server should reach `{}`, its operator can allow it with \
             `--egress-allow {entry}` (LOFT_EGRESS_ALLOW)",
            self.host
        ))
    }

    /// The refusal somewhere in an error's source chain (reqwest wraps the resolver's error).
    pub fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Self> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(r) = err.downcast_ref::<Self>() {
                return Some(r);
            }
            cur = err.source();
        }
        None
    }
}

/// The address of a URL whose host is an IP literal (reqwest connects to it unresolved).
fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(d) => d.parse().ok(),
    }
}

#[async_trait]
impl HttpBroker for ReqwestBroker {
    /// An IP literal, and `localhost` (RFC 6761: always loopback), are judged now; other
    /// names when a connection resolves them (no lookup here: registering a webhook never
    /// queries DNS). With public addresses refused, a name the operator did not allow can
    /// reach nothing unless an allowed range holds its address, so it is refused now too when
    /// there is no such range.
    fn check_target(&self, url: &url::Url) -> Result<()> {
        let host = url.host_str().unwrap_or_default().to_owned();
        let ip = literal_ip(url).or_else(|| {
            let h = host.trim_end_matches('.').to_ascii_lowercase();
            (h == "localhost" || h.ends_with(".localhost")).then_some(IpAddr::from([127, 0, 0, 1]))
        });
        if let Some(ip) = ip {
            return self
                .policy
                .check(&host, ip)
                .map_err(|denied| Refused { host, denied }.to_error());
        }
        if self.policy.denies_every_name(&host) {
            return Err(Error::forbidden(
                "egress_denied",
                format!(
                    "the egress policy refuses connections to `{host}`: public addresses are refused (rule `public`)"
                ),
            )
            .with_hint(format!(
                "this server refuses outbound connections to public addresses (--egress-deny-public); if it should \
                 reach `{host}`, its operator can allow it with `--egress-allow {host}` (LOFT_EGRESS_ALLOW)"
            )));
        }
        Ok(())
    }

    async fn send(&self, request: BrokerRequest) -> Result<BrokerResponse> {
        let host = request.url.host_str().unwrap_or_default().to_owned();
        if let Some(ip) = literal_ip(&request.url) {
            self.policy.check(&host, ip).map_err(|denied| {
                Refused {
                    host: host.clone(),
                    denied,
                }
                .to_error()
            })?;
        }
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| Error::invalid("invalid_method", "unsupported HTTP method"))?;
        let mut builder = self
            .client
            .request(method, request.url.as_str())
            .timeout(request.timeout);
        for (name, value) in &request.headers {
            // Checked here: reqwest would keep a bad name as a builder error, and `send` would
            // report it as a failure of the remote host.
            let n = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::invalid("invalid_header", format!("`{name}` is not a valid header name")))?;
            let mut v = reqwest::header::HeaderValue::from_str(value.expose_secret())
                .map_err(|_| Error::invalid("invalid_header", format!("the value of header `{name}` is not valid")))?;
            v.set_sensitive(true);
            builder = builder.header(n, v);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let unreachable = |e: &reqwest::Error| {
            if e.is_timeout() {
                Error::upstream("upstream_timeout", format!("the brokered request to {host} timed out"))
            } else {
                Error::upstream("upstream_failed", format!("the brokered request to {host} failed"))
            }
            .with_hint("check that the remote service is up; the request was not retried")
        };
        let deadline = tokio_deadline(request.timeout);
        let response = builder
            .send()
            .await
            .map_err(|e| Refused::find(&e).map_or_else(|| unreachable(&e), Refused::to_error))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let mut body = Vec::new();
        let mut cut = false;
        // Read past the cap by the lookahead; the core cuts at the cap, clear of secrets.
        let limit = request.max_response_bytes.saturating_add(REDACTION_LOOKAHEAD);
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| unreachable(&e))?;
            let room = limit.saturating_sub(body.len());
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                cut = true;
                break;
            }
            body.extend_from_slice(&chunk);
            if std::time::Instant::now() > deadline {
                return Err(Error::upstream(
                    "upstream_timeout",
                    format!("the brokered request to {host} timed out"),
                ));
            }
        }
        let truncated = cut || body.len() > request.max_response_bytes;
        tracing::debug!(%host, status, bytes = body.len(), truncated, "brokered request done");
        Ok(BrokerResponse {
            status,
            headers,
            body,
            truncated,
        })
    }
}

fn tokio_deadline(timeout: Duration) -> std::time::Instant {
    std::time::Instant::now() + timeout
}

#[cfg(test)]
mod tests {
    //! Live tests on loopback only: a local server counts what reaches it. Nothing here
    //! connects to, or resolves, anything off this machine.

    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A local HTTP server on 127.0.0.1 that counts requests; `/big/N` answers N bytes.
    async fn peer() -> (u16, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new()
            .route(
                "/big/{n}",
                axum::routing::get(|axum::extract::Path(n): axum::extract::Path<usize>| async move { "x".repeat(n) }),
            )
            .fallback(|| async { "hello" })
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    h.fetch_add(1, Ordering::SeqCst);
                    next.run(req)
                },
            ));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (port, hits)
    }

    fn get(url: &str, max_response_bytes: usize) -> BrokerRequest {
        BrokerRequest {
            method: "GET".into(),
            url: url.parse().unwrap(),
            headers: vec![("authorization".into(), "Bearer s3cret-value".to_owned().into())],
            body: None,
            max_response_bytes,
            timeout: Duration::from_secs(10),
        }
    }

    fn refusal(e: &Error) -> (String, String, String) {
        let Error::Forbidden(d) = e else {
            panic!("not a refusal: {e:?}")
        };
        (
            d.code.to_string(),
            d.message.clone(),
            d.hint.clone().unwrap_or_default(),
        )
    }

    #[tokio::test]
    async fn loopback_is_refused_by_default_and_nothing_is_sent() {
        let (port, hits) = peer().await;
        let broker = ReqwestBroker::new(EgressPolicy::default()).unwrap();
        for (host, rule) in [
            ("127.0.0.1", "loopback"),
            ("localhost", "loopback"),
            ("[::1]", "loopback"),
            ("[::ffff:127.0.0.1]", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("[::]", "unspecified"),
            ("2130706433", "loopback"),
        ] {
            let err = broker
                .send(get(&format!("http://{host}:{port}/v0/health"), 1024))
                .await
                .unwrap_err();
            let (code, message, hint) = refusal(&err);
            assert_eq!(code, "egress_denied", "{host}: {message}");
            assert!(message.contains(&format!("rule `{rule}`")), "{host}: {message}");
            assert!(message.contains('`'), "{message}");
            assert!(
                hint.contains("--egress-allow") && hint.contains("LOFT_EGRESS_ALLOW"),
                "{hint}"
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0, "a refused request reached the server");
    }

    #[tokio::test]
    async fn a_name_is_refused_by_the_resolver_with_the_host_and_rule() {
        let (port, hits) = peer().await;
        let broker = ReqwestBroker::new(EgressPolicy::default()).unwrap();
        let err = broker
            .send(get(&format!("http://localhost:{port}/"), 1024))
            .await
            .unwrap_err();
        let (code, message, hint) = refusal(&err);
        assert_eq!(code, "egress_denied");
        assert!(
            message.contains("`localhost`") && message.contains("loopback"),
            "{message}"
        );
        assert!(hint.contains("--egress-allow localhost"), "{hint}");
        // The resolver itself keeps nothing.
        let policy = EgressPolicy::default();
        let e = PolicyResolver::resolve_allowed(&policy, "localhost").await.unwrap_err();
        assert_eq!(Refused::find(e.as_ref()).unwrap().denied.rule, Rule::Loopback);
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn the_operator_allowance_lets_loopback_through() {
        let (port, hits) = peer().await;
        let by_range = ReqwestBroker::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()).unwrap();
        for host in ["127.0.0.1", "[::ffff:127.0.0.1]"] {
            let r = by_range
                .send(get(&format!("http://{host}:{port}/"), 1024))
                .await
                .unwrap();
            assert_eq!((r.status, r.body.as_slice()), (200, b"hello".as_slice()), "{host}");
        }
        // `localhost` may resolve to ::1 as well: the resolver keeps only 127.0.0.1 here.
        let r = by_range
            .send(get(&format!("http://localhost:{port}/"), 1024))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let by_name = ReqwestBroker::new(EgressPolicy::parse(["localhost"]).unwrap()).unwrap();
        let r = by_name
            .send(get(&format!("http://localhost:{port}/"), 1024))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        // A name allowance does not allow the bare address.
        let err = by_name
            .send(get(&format!("http://127.0.0.1:{port}/"), 1024))
            .await
            .unwrap_err();
        assert_eq!(refusal(&err).0, "egress_denied");
        assert_eq!(hits.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn bodies_over_the_cap_come_with_the_lookahead_and_are_marked_truncated() {
        let (port, _) = peer().await;
        let broker = ReqwestBroker::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()).unwrap();
        let cap = 1000;
        for (n, len, truncated) in [
            (cap, cap, false),
            (cap + 1, cap + 1, true),
            (cap + REDACTION_LOOKAHEAD, cap + REDACTION_LOOKAHEAD, true),
            (cap + REDACTION_LOOKAHEAD + 5000, cap + REDACTION_LOOKAHEAD, true),
        ] {
            let r = broker
                .send(get(&format!("http://127.0.0.1:{port}/big/{n}"), cap))
                .await
                .unwrap();
            assert_eq!((r.body.len(), r.truncated), (len, truncated), "{n}");
        }
    }
}
