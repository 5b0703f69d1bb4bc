//! The [`HttpBroker`] port on `reqwest`: the outbound HTTP request a brokered vault call makes.
//!
//! What this crate guarantees (the use case in `loft-core` checks the allow-list, injects the
//! credential and redacts the response): **no redirect is ever followed** (a 3xx is returned
//! as it came, so a redirect to another host can never receive the credential), the response
//! body is **streamed and cut** at the size cap, and the whole exchange has a **timeout**.
//! Errors name the host only, never a header, the URL's query or the body.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use loft_core::vault::{BrokerRequest, BrokerResponse, HttpBroker};
use loft_core::{Error, Result};
use secrecy::ExposeSecret as _;

/// Outbound HTTP with reqwest.
#[derive(Debug, Clone)]
pub struct ReqwestBroker {
    client: reqwest::Client,
}

impl ReqwestBroker {
    pub fn new() -> Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("loft-broker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("building the HTTP client: {e}")))?;
        Ok(Self { client })
    }
}

#[async_trait]
impl HttpBroker for ReqwestBroker {
    async fn send(&self, request: BrokerRequest) -> Result<BrokerResponse> {
        let host = request.url.host_str().unwrap_or_default().to_owned();
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| Error::invalid("invalid_method", "unsupported HTTP method"))?;
        let mut builder = self
            .client
            .request(method, request.url.as_str())
            .timeout(request.timeout);
        for (name, value) in &request.headers {
            let mut v = reqwest::header::HeaderValue::from_str(value.expose_secret())
                .map_err(|_| Error::invalid("invalid_header", format!("the value of header `{name}` is not valid")))?;
            v.set_sensitive(true);
            builder = builder.header(name.as_str(), v);
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
        let response = builder.send().await.map_err(|e| unreachable(&e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let mut body = Vec::new();
        let mut truncated = false;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| unreachable(&e))?;
            let room = request.max_response_bytes.saturating_sub(body.len());
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
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
