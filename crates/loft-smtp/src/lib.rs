//! Loft's inbound SMTP door (MX): an ESMTP listener that accepts mail for the domain this
//! server hosts and hands each mail to `loft-core` (`Loft::check_inbound_recipient` at RCPT,
//! `Loft::receive_inbound` at the end of DATA), answering 250 only once the mail is stored.
//!
//! Our own tokio session loop (`session.rs`) over `smtp-proto`'s command parser, as Stalwart
//! does it. Offered: PIPELINING, SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES. Not yet:
//! STARTTLS, CHUNKING, DSN, and SPF / DKIM / DMARC checks (mail is marked external and not
//! verified). Limits, each with its reply: message size (552 5.3.4), recipients per message
//! (452 4.5.3), command line length (500 5.5.2), commands and errors per session (421 4.7.0),
//! idle time (421 4.4.2), connections per client address (421 4.7.0) and in all (421 4.3.2).
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

/// The listener's limits and name. Deploy-time settings (`loft serve --smtp-*`).
#[derive(Debug, Clone)]
pub struct SmtpConfig {
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

async fn run_session(
    stream: TcpStream,
    peer: SocketAddr,
    loft: Arc<Loft>,
    config: Arc<SmtpConfig>,
    stop: watch::Receiver<bool>,
) {
    let (read, write) = stream.into_split();
    let session = session::Session::new(loft, config, read, write, Some(peer.ip().to_string()));
    match session.run(stop).await {
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
