//! Loft's inbound SMTP door (MX): an ESMTP listener that accepts mail for the domain this
//! server hosts and hands each mail to `loft-core` (`Loft::check_inbound_recipient` at RCPT,
//! `Loft::receive_inbound` at the end of DATA), answering 250 only once the mail is stored.
//!
//! Our own tokio session loop (`session.rs`) over `smtp-proto`'s command parser, as Stalwart
//! does it. Offered: PIPELINING, SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, and STARTTLS
//! (rustls) when a certificate is configured ([`TlsConfig`]). Not yet: CHUNKING, DSN. SPF,
//! DKIM and DMARC are checked by core when the mail is stored (`Loft::receive_inbound`). Limits, each with its reply: message size (552 5.3.4), recipients per message
//! (452 4.5.3), command line length (500 5.5.2), commands and errors per session (421 4.7.0),
//! idle time (421 4.4.2), connections per client address (421 4.7.0) and in all (421 4.3.2).
//!
//! The same session code serves the submission listener (`SmtpConfig::submission`, RFC 6409):
//! AUTH PLAIN / LOGIN with an identity's API key, `MAIL FROM` only that identity's address, and
//! the data sent through `Loft::submit` (the send use case) instead of `receive_inbound`.
//!
//! This crate must not decide who may receive what (core does), hold state beyond a session
//! (other than the connection counts), or depend on another door.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loft_core::service::Loft;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub mod outbound;
pub mod reply;
mod session;

pub use session::End;

/// The certificate STARTTLS presents (`loft serve --smtp-tls-cert/--smtp-tls-key`).
#[derive(Clone)]
pub struct TlsConfig(tokio_rustls::TlsAcceptor);

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig(..)")
    }
}

impl TlsConfig {
    /// Reads a PEM certificate chain and its private key (PKCS#8, PKCS#1 or SEC1). TLS 1.2 and
    /// 1.3 with rustls' safe defaults (aws-lc-rs).
    pub fn from_pem_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| format!("{}: {e}", cert.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", cert.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate in it", cert.display()));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("the certificate and key do not make a TLS configuration: {e}"))?;
        Ok(Self(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }
}

/// What makes a listener a submission listener (`loft serve --submission`): clients
/// authenticate as an identity (AUTH PLAIN or LOGIN, the identity's API key as password) and
/// their mail is sent through `Loft::submit`, the send use case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Submission {
    /// Offer AUTH without TLS to clients on a loopback address (`--submission-allow-plain-loopback`):
    /// a key sent in the clear never leaves the machine. Off by default: AUTH only after
    /// STARTTLS.
    pub allow_plain_loopback: bool,
}

/// The listener's limits and name. Deploy-time settings (`loft serve --smtp-*`).
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// STARTTLS, offered in EHLO only when set.
    pub tls: Option<TlsConfig>,
    /// `Some` for the submission listener; `None` for the MX.
    pub submission: Option<Submission>,
    /// The name in the greeting and in EHLO (the mail domain by default).
    pub hostname: String,
    /// Largest message accepted (announced as SIZE): 552 5.3.4 beyond it.
    pub max_message_bytes: usize,
    /// Recipients per message: 452 4.5.3 beyond it.
    pub max_recipients: usize,
    /// Longest command line, CRLF included: 500 5.5.2 beyond it. (Lines of the message itself
    /// are bounded only by the message size: real mail has long lines.)
    pub max_line_bytes: usize,
    /// Commands per session (a session carries many mails): 421 4.7.0 beyond it.
    pub max_commands: usize,
    /// Refused commands per session before the session is closed (421 4.7.0).
    pub max_errors: usize,
    /// How long the server waits for the client's next line: 421 4.4.2 after it.
    pub idle_timeout: Duration,
    /// Simultaneous sessions per client address (IPv6 per /64): 421 4.7.0 beyond it.
    pub max_connections_per_ip: usize,
    /// Simultaneous sessions in all: 421 4.3.2 beyond it.
    pub max_connections: usize,
    /// On shutdown, how long sessions in the middle of a mail get to finish it.
    pub shutdown_grace: Duration,
}

impl SmtpConfig {
    pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 25 * 1024 * 1024;

    /// Defaults suited to an MX for a few hundred agents.
    pub fn new(hostname: impl Into<String>) -> Self {
        Self {
            tls: None,
            submission: None,
            hostname: hostname.into(),
            max_message_bytes: Self::DEFAULT_MAX_MESSAGE_BYTES,
            max_recipients: 100,
            max_line_bytes: 1000,
            max_commands: 1000,
            max_errors: 20,
            idle_timeout: Duration::from_mins(5),
            max_connections_per_ip: 20,
            max_connections: 500,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Open sessions per client address and in all.
#[derive(Default)]
struct Counts {
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// A session's place in [`Counts`], given back when the session ends.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.key);
            }
        }
    }
}

/// The address a client is counted under: IPv4 as is, IPv6 by its /64 (one host usually has
/// a whole /64).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                IpAddr::V4(v4)
            } else {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        }
    }
}

/// Serves SMTP on `listener` until `shutdown` turns true: then it stops accepting, tells idle
/// sessions 421 and gives sessions in the middle of a mail [`SmtpConfig::shutdown_grace`] to
/// finish (a mail cut off then never got its 250, so its sender still has it).
pub async fn serve(listener: TcpListener, loft: Arc<Loft>, config: SmtpConfig, mut shutdown: watch::Receiver<bool>) {
    let config = Arc::new(config);
    let counts = Arc::new(Mutex::new(Counts::default()));
    let mut sessions = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            a = listener.accept() => a,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "smtp: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let slot = {
            let mut c = counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let key = client_key(peer.ip());
            let mine = c.per_ip.get(&key).copied().unwrap_or(0);
            if c.total >= config.max_connections {
                Err(reply::Reply::busy(&config.hostname))
            } else if mine >= config.max_connections_per_ip {
                Err(reply::Reply::too_many_connections(&config.hostname))
            } else {
                c.total += 1;
                *c.per_ip.entry(key).or_insert(0) += 1;
                Ok(Slot {
                    counts: counts.clone(),
                    key,
                })
            }
        };
        match slot {
            Ok(slot) => {
                let loft = loft.clone();
                let config = config.clone();
                let stop = shutdown.clone();
                sessions.spawn(async move {
                    run_session(stream, peer, loft, config, stop).await;
                    drop(slot);
                });
            }
            Err(r) => {
                tracing::info!(client = %peer.ip(), code = r.code, "smtp: connection refused by limit");
                sessions.spawn(async move {
                    let mut stream = stream;
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), stream.write_all(r.to_wire().as_bytes())).await;
                    let _ = stream.shutdown().await;
                });
            }
        }
    }
    drop(listener);
    let grace = config.shutdown_grace;
    if tokio::time::timeout(grace, async { while sessions.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!("smtp: sessions still open after the shutdown grace; closing them");
        sessions.abort_all();
    }
}

/// One session over any byte stream, without a listener or a socket: the greeting, the
/// commands and the data, answered exactly as the listener answers a TCP client (with no
/// shutdown signal and no connection limits, which the listener applies before a session
/// starts). After `220 Ready to start TLS` it returns [`End::StartTls`]; the handshake is the
/// caller's. The seam of the fuzz target `fuzz/fuzz_targets/smtp_session.rs`, which feeds it a
/// client's side of a session from memory.
pub async fn run_session_on<R, W>(
    loft: Arc<Loft>,
    config: Arc<SmtpConfig>,
    read: R,
    write: W,
    client_ip: Option<String>,
) -> std::io::Result<End>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    // The sender is kept until the session ends: a dropped one would read as "stop".
    let (keep, stop) = watch::channel(false);
    let mut session = session::Session::new(loft, config, read, write, client_ip, false);
    let end = session.run(stop).await;
    drop(keep);
    end
}

async fn run_session(
    stream: TcpStream,
    peer: SocketAddr,
    loft: Arc<Loft>,
    config: Arc<SmtpConfig>,
    stop: watch::Receiver<bool>,
) {
    let (read, write) = stream.into_split();
    let ip = Some(peer.ip().to_string());
    let mut session = session::Session::new(loft.clone(), config.clone(), read, write, ip.clone(), false);
    let end = session.run(stop.clone()).await;
    let end = match end {
        Ok(End::StartTls) => {
            // Whatever the client sent after STARTTLS, before the handshake, is in the
            // session's read buffer: dropped with it (RFC 3207 section 4.2, command injection).
            let (read, write) = session.into_parts();
            let Ok(stream) = read.reunite(write) else {
                return;
            };
            let Some(tls) = &config.tls else { return };
            let handshake = tokio::time::timeout(config.idle_timeout, tls.0.accept(stream)).await;
            let stream = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(client = %peer.ip(), error = %e, "smtp: TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let (read, write) = tokio::io::split(stream);
            // A new session: the client starts again with EHLO (RFC 3207 section 4.2).
            let mut secured = session::Session::new(loft, config, read, write, ip, true);
            secured.run(stop).await
        }
        other => other,
    };
    match end {
        Ok(end) => tracing::debug!(client = %peer.ip(), ?end, "smtp: session ended"),
        Err(e) => tracing::debug!(client = %peer.ip(), error = %e, "smtp: session broke off"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_key(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(client_key(mapped), v4);
    }
}
