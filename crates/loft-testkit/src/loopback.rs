//! [`LoopbackOnly`]: the outbound HTTP port for tests, which never leaves this machine.

use std::net::IpAddr;

use async_trait::async_trait;
use loft_core::vault::{BrokerRequest, BrokerResponse, HttpBroker};
use loft_core::{Error, Result};

/// Wraps the real broker in a test server: a brokered request goes on only when its URL names
/// `localhost` or a loopback or unspecified IP literal (IPv4-mapped ones included); anything else
/// is refused here, before any name is resolved. So no test's request (or DNS query) reaches an
/// address off this machine, even when the allow-list and egress checks under test are broken.
#[derive(Debug)]
pub struct LoopbackOnly<B>(pub B);

/// Whether `host` (as in a URL: IPv6 in brackets) stays on this machine.
pub fn is_local_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    match literal.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback() || v4.is_unspecified(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_unspecified())
        }
        Err(_) => false,
    }
}

#[async_trait]
impl<B: HttpBroker> HttpBroker for LoopbackOnly<B> {
    async fn send(&self, request: BrokerRequest) -> Result<BrokerResponse> {
        if !request.url.host_str().is_some_and(is_local_host) {
            return Err(Error::invalid(
                "test_egress_refused",
                "tests send brokered requests to this machine only",
            ));
        }
        self.0.send(request).await
    }

    fn check_target(&self, url: &url::Url) -> Result<()> {
        self.0.check_target(url)
    }
}

#[cfg(test)]
mod tests {
    use super::is_local_host;

    #[test]
    fn only_this_machine_is_local() {
        for h in [
            "localhost",
            "127.0.0.1",
            "0.0.0.0",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "127.1.2.3",
        ] {
            assert!(is_local_host(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1",
            "169.254.169.254",
            "[2001:db8::1]",
            "a",
            "localhost.example",
        ] {
            assert!(!is_local_host(h), "{h}");
        }
    }
}
