//! A small typed client for Loft's REST API (`/v0`), over `reqwest`.
//!
//! Owns: joining the base URL with percent-encoded path segments, bearer authentication, the
//! `User-Agent`, decoding a success body into the `loft-core` type the server sends, and turning
//! an error answer (`{"error": {code, message, hint, request_id}}`) or a transport failure into
//! a typed [`ClientError`]. It must not print anything, and no error it builds ever contains a
//! key: keys travel only in the `Authorization` header, which reqwest marks as sensitive.
//!
//! An endpoint is described by a [`Call`] built in [`api`] (method, path, query, body, and the
//! type of the answer), and sent with [`Client::call`] (decoded), [`Client::call_json`] (the
//! server's JSON as is, for `--json`) or [`Client::call_bytes`] (raw messages, NDJSON export).
//!
//! It defines no wire type of its own: request bodies, query parameters, answers and the error
//! envelope are the `loft-core` types the server reads and writes (see `loft_core::wire`),
//! re-exported in [`api`], so a field added there reaches the CLI, the stdio MCP server and
//! `loft-bench` without a copy to update. A query is those types' serde form, in field order.
//!
//! Used by the `loft` CLI, the stdio MCP server (`loft mcp`) and `loft-bench`.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use loft_core::audit::AuditRecord;
use loft_core::error::ErrorBody;

/// Sent with every request.
pub const USER_AGENT: &str = concat!("loft-cli/", env!("CARGO_PKG_VERSION"));

/// Where a CLI looks when neither `--url` nor `LOFT_URL` is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7070";

/// An error answer from the server, decoded from its JSON error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    /// Stable, machine-readable (`not_found`, `missing_scope`, ...).
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
    pub request_id: Option<String>,
    /// The seconds of a `Retry-After` header (a 429's), when it gave a number.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// Decodes an error body; a body that is not Loft's error format (a proxy's HTML page, an
    /// empty 502) still gives a readable error naming the status.
    pub fn from_response(status: StatusCode, body: &[u8]) -> Self {
        if let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) {
            return Self {
                status: status.as_u16(),
                code: error.code,
                message: error.message,
                hint: error.hint,
                request_id: error.request_id,
                retry_after: None,
            };
        }
        let text = String::from_utf8_lossy(body);
        let text: String = text.trim().chars().filter(|c| !c.is_control()).take(200).collect();
        let reason = status.canonical_reason().unwrap_or("unknown status");
        let message = if text.is_empty() {
            format!("the server answered {} {reason}", status.as_u16())
        } else {
            format!("the server answered {} {reason}: {text}", status.as_u16())
        };
        Self {
            status: status.as_u16(),
            code: format!("http_{}", status.as_u16()),
            message,
            hint: (status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED)
                .then(|| "is --url / LOFT_URL pointing at a Loft server of a matching version?".to_owned()),
            request_id: None,
            retry_after: None,
        }
    }
}

/// Why a call failed.
#[derive(Debug)]
pub enum ClientError {
    /// The server answered with an error status.
    Api(ApiError),
    /// Nothing accepted the connection (server not running, wrong host or port).
    Connect { url: String, reason: String },
    /// The server did not answer in time.
    Timeout { url: String },
    /// Any other failure on the way (TLS, reset connection, ...).
    Transport { url: String, reason: String },
    /// The server answered 2xx, but not with what this client expected.
    Decode { url: String, reason: String },
    /// The base URL cannot be used.
    InvalidUrl(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Api(e) => f.write_str(&e.message),
            Self::Connect { url, reason } => write!(f, "cannot connect to the Loft server at {url}: {reason}"),
            Self::Timeout { url } => write!(f, "the Loft server at {url} did not answer in time"),
            Self::Transport { url, reason } => write!(f, "request to {url} failed: {reason}"),
            Self::Decode { url, reason } => write!(f, "unexpected answer from {url}: {reason}"),
            Self::InvalidUrl(why) => write!(f, "invalid server URL: {why}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    /// How to fix it, where we can tell.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Api(e) => e.hint.clone(),
            Self::Connect { .. } => Some(
                "is the server running? Start one with `loft serve`, or point --url / LOFT_URL at a running server"
                    .into(),
            ),
            Self::Timeout { .. } => Some("retry; if it persists, check the server's log".into()),
            Self::Decode { .. } => Some("is --url / LOFT_URL pointing at a Loft server of a matching version?".into()),
            Self::Transport { .. } | Self::InvalidUrl(_) => None,
        }
    }

    /// The server's error, if it answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status, if the server answered with an error.
    pub fn status(&self) -> Option<u16> {
        self.api().map(|e| e.status)
    }
}

/// One endpoint call, typed by what the server answers with.
#[derive(Debug, Clone)]
pub struct Call<T> {
    method: Method,
    segments: Vec<String>,
    query: Vec<(String, String)>,
    body: Option<serde_json::Value>,
    /// Overrides the client's request timeout (long polls).
    timeout: Option<Duration>,
    out: PhantomData<fn() -> T>,
}

impl<T> Call<T> {
    fn new<S: Into<String>>(method: Method, segments: impl IntoIterator<Item = S>) -> Self {
        Self {
            method,
            segments: segments.into_iter().map(Into::into).collect(),
            query: Vec::new(),
            body: None,
            timeout: None,
            out: PhantomData,
        }
    }

    fn get<S: Into<String>>(segments: impl IntoIterator<Item = S>) -> Self {
        Self::new(Method::GET, segments)
    }

    fn post<S: Into<String>>(segments: impl IntoIterator<Item = S>) -> Self {
        Self::new(Method::POST, segments)
    }

    /// Sets the JSON body.
    #[must_use]
    fn body(mut self, body: &impl Serialize) -> Self {
        // The request types in `api` are plain structs with string keys: serialising them to a
        // `Value` cannot fail.
        self.body = Some(serde_json::to_value(body).unwrap_or(serde_json::Value::Null));
        self
    }

    /// Sets the query from a query type of `loft_core` (`ListMessagesParams`, ...): its fields
    /// in order, those left out by its serde attributes (and every `None`) not sent.
    #[must_use]
    fn query(mut self, params: &impl Serialize) -> Self {
        // The query types are flat structs of strings, numbers and flags: encoding them, and
        // reading the pairs back, cannot fail.
        self.query = serde_urlencoded::to_string(params)
            .ok()
            .and_then(|q| serde_urlencoded::from_str(&q).ok())
            .unwrap_or_default();
        self
    }

    /// This call may take up to `timeout` instead of the client's usual limit.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path, percent-encoded, e.g. `/v0/identities/idt_x`.
    pub fn path(&self) -> String {
        let mut u = Url::parse("http://x/").unwrap_or_else(|_| unreachable!("a constant URL parses"));
        if let Ok(mut segs) = u.path_segments_mut() {
            segs.pop_if_empty().extend(&self.segments);
        }
        u.path().to_owned()
    }

    pub fn query_pairs(&self) -> &[(String, String)] {
        &self.query
    }

    pub fn json_body(&self) -> Option<&serde_json::Value> {
        self.body.as_ref()
    }
}

/// A client of one Loft server, acting with one key (or none).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    key: Option<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &display_url(&self.base))
            .field("key", &self.key.as_ref().map(|_| ".."))
            .finish_non_exhaustive()
    }
}

/// Refuses a base URL the client cannot use, naming the likely mistake.
fn check_base(base: &Url) -> Result<(), ClientError> {
    if !matches!(base.scheme(), "http" | "https") {
        return Err(ClientError::InvalidUrl(format!(
            "`{}` must start with http:// or https://",
            display_url(base)
        )));
    }
    if base.cannot_be_a_base() {
        return Err(ClientError::InvalidUrl(format!(
            "`{}` cannot be a base URL",
            display_url(base)
        )));
    }
    // The likely mistake of pasting an API URL: the client adds /v0 itself.
    if base.path().trim_end_matches('/').ends_with("/v0") {
        return Err(ClientError::InvalidUrl(format!(
            "`{}` ends in /v0: give the server's base URL (e.g. http://127.0.0.1:7070), the client adds /v0 itself",
            display_url(base)
        )));
    }
    Ok(())
}

/// A URL without any password in it, for messages.
fn display_url(u: &Url) -> String {
    let mut u = u.clone();
    let _ = u.set_password(None);
    u.as_str().trim_end_matches('/').to_owned()
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:7070`), sending `key` as the
    /// bearer token when given.
    pub fn new(base: Url, key: Option<String>) -> Result<Self, ClientError> {
        check_base(&base)?;
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_mins(2))
            .build()
            .map_err(|e| ClientError::Transport {
                url: display_url(&base),
                reason: root_cause(&e),
            })?;
        Ok(Self { http, base, key })
    }

    /// Like [`Client::new`], over an HTTP client the caller built (its own timeouts, proxy
    /// settings and connection pool: `loft-bench` gives every simulated agent one of its own).
    pub fn with_http(base: Url, key: Option<String>, http: reqwest::Client) -> Result<Self, ClientError> {
        check_base(&base)?;
        Ok(Self { http, base, key })
    }

    /// Parses `base` and builds a client.
    pub fn from_url(base: &str, key: Option<String>) -> Result<Self, ClientError> {
        let url = Url::parse(base).map_err(|e| ClientError::InvalidUrl(format!("`{base}`: {e}")))?;
        Self::new(url, key)
    }

    /// The same server, another key.
    #[must_use]
    pub fn with_key(&self, key: Option<String>) -> Self {
        Self {
            http: self.http.clone(),
            base: self.base.clone(),
            key,
        }
    }

    /// The base URL, without any password, for messages.
    pub fn base_url(&self) -> String {
        display_url(&self.base)
    }

    /// The full URL of a path below the base (a base with a path prefix keeps it).
    pub fn url_for(&self, segments: &[String]) -> Url {
        let mut u = self.base.clone();
        u.set_query(None);
        u.set_fragment(None);
        if let Ok(mut segs) = u.path_segments_mut() {
            segs.pop_if_empty().extend(segments);
        }
        u
    }

    async fn send<T>(&self, call: Call<T>) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let url = self.url_for(&call.segments);
        let shown = display_url(&url);
        let mut req = self.http.request(call.method, url);
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        if let Some(body) = &call.body {
            req = req.json(body);
        }
        if let Some(key) = &self.key {
            req = req.bearer_auth(key);
        }
        if let Some(t) = call.timeout {
            req = req.timeout(t);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(&e, &shown))?;
        let status = resp.status();
        // Only the delta-seconds form: Loft sends no other, and a date would need a clock.
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(&e, &shown))?;
        if !status.is_success() {
            let mut e = ApiError::from_response(status, &bytes);
            e.retry_after = retry_after;
            return Err(ClientError::Api(e));
        }
        Ok((status, bytes.to_vec()))
    }

    fn transport_error(&self, e: &reqwest::Error, url: &str) -> ClientError {
        if e.is_connect() {
            ClientError::Connect {
                url: self.base_url(),
                reason: root_cause(e),
            }
        } else if e.is_timeout() {
            ClientError::Timeout { url: self.base_url() }
        } else {
            ClientError::Transport {
                url: url.to_owned(),
                reason: root_cause(e),
            }
        }
    }

    /// Sends a call and decodes the answer into the type the server sends.
    pub async fn call<T: DeserializeOwned>(&self, call: Call<T>) -> Result<T, ClientError> {
        let path = call.path();
        let (_, body) = self.send(call).await?;
        decode(&body).map_err(|reason| ClientError::Decode {
            url: format!("{}{path}", self.base_url()),
            reason,
        })
    }

    /// Sends a call and returns the server's JSON as it came (for `--json`).
    pub async fn call_json<T>(&self, call: Call<T>) -> Result<serde_json::Value, ClientError> {
        let path = call.path();
        let (_, body) = self.send(call).await?;
        decode(&body).map_err(|reason| ClientError::Decode {
            url: format!("{}{path}", self.base_url()),
            reason,
        })
    }

    /// Sends a call and returns the body's bytes (raw messages, NDJSON).
    pub async fn call_bytes<T>(&self, call: Call<T>) -> Result<Vec<u8>, ClientError> {
        Ok(self.send(call).await?.1)
    }

    /// One page of the audit export, oldest first, with each row's line as the server sent it.
    pub async fn audit_export_page(&self, after: i64, limit: u32) -> Result<Vec<(String, AuditRecord)>, ClientError> {
        let call = api::audit_export(after, limit);
        let path = call.path();
        let bytes = self.call_bytes(call).await?;
        parse_ndjson(&bytes).map_err(|reason| ClientError::Decode {
            url: format!("{}{path}", self.base_url()),
            reason,
        })
    }
}

use api::EventParams;

impl Client {
    /// Opens the caller's event stream (`GET /v0/events` as server-sent events), resuming
    /// after `last_event_id` when given. The stream has no timeout of its own.
    pub async fn event_stream(&self, q: &EventParams, last_event_id: Option<&str>) -> Result<EventStream, ClientError> {
        let url = self.url_for(&["v0".to_owned(), "events".to_owned()]);
        let shown = display_url(&url);
        let mut req = self
            .http
            .get(url)
            .query(q)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            // Overrides the client's two minutes: a stream lasts as long as the caller wants.
            .timeout(Duration::from_hours(10 * 365 * 24));
        if let Some(key) = &self.key {
            req = req.bearer_auth(key);
        }
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(&e, &shown))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await.map_err(|e| self.transport_error(&e, &shown))?;
            return Err(ClientError::Api(ApiError::from_response(status, &bytes)));
        }
        Ok(EventStream {
            resp,
            buf: String::new(),
            url: shown,
        })
    }
}

/// An open event stream; [`EventStream::next`] reads one event at a time.
#[derive(Debug)]
pub struct EventStream {
    resp: reqwest::Response,
    buf: String,
    url: String,
}

impl EventStream {
    /// The next event, or `None` when the server ended the stream. An `error` message from
    /// the server (a revoked key, changed scopes) is an error naming its code.
    pub async fn next(&mut self) -> Result<Option<loft_core::events::Event>, ClientError> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let message: String = self.buf.drain(..end + 2).collect();
                let (mut kind, mut data) = (String::new(), String::new());
                for line in message.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        v.trim().clone_into(&mut kind);
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                if kind == "error" {
                    return Err(ClientError::Api(ApiError::from_response(
                        StatusCode::UNAUTHORIZED,
                        data.as_bytes(),
                    )));
                }
                return serde_json::from_str(&data).map(Some).map_err(|e| ClientError::Decode {
                    url: self.url.clone(),
                    reason: e.to_string(),
                });
            }
            let chunk = self.resp.chunk().await.map_err(|e| ClientError::Transport {
                url: self.url.clone(),
                reason: root_cause(&e),
            })?;
            let Some(chunk) = chunk else { return Ok(None) };
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    // An empty body (204) reads as JSON `null`, so `Option<T>` answers decode.
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"null"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// Parses NDJSON audit rows, keeping each row's line.
pub fn parse_ndjson(bytes: &[u8]) -> Result<Vec<(String, AuditRecord)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("the export is not UTF-8: {e}"))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str::<AuditRecord>(line)
                .map(|r| (line.trim_end().to_owned(), r))
                .map_err(|e| format!("line {} of the export: {e}", n + 1))
        })
        .collect()
}

/// The innermost cause of a reqwest error, e.g. "Connection refused (os error 111)".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The endpoints of `/v0`, and (re-exported from `loft-core`, where the server reads them too)
/// their request bodies and query parameters.
pub mod api {
    use loft_core::audit::{AuditRecord, ChainHead, VerifyReport};
    pub use loft_core::caps::FirstContact;
    use loft_core::caps::{InstanceCapsStatus, SendingStatus};
    pub use loft_core::contacts::Contact;
    pub use loft_core::delivery::Suppression;
    pub use loft_core::domains::{AddDomainRequest, Domain, DomainCheck, DomainView};
    use loft_core::drafts::Draft;
    use loft_core::identity::{CreatedIdentity, CreatedKey, Identity, WhoAmI};
    use loft_core::keys::KeyMeta;
    pub use loft_core::mail::{ForwardMail, MessagePatch, NewAttachment, ReplyMail, SendMail};
    use loft_core::mail::{Message, MessageSummary, Thread, ThreadSummary};
    use loft_core::oversight::{Approval, ModeRequest};
    use loft_core::rules::Rule;
    use loft_core::search::SearchHit;
    pub use loft_core::service::Deleted;
    pub use loft_core::service::ListSuppressionsParams;
    pub use loft_core::service::SearchParams;
    use loft_core::service::{
        ApprovalView, BackupCode, BatchDecision, BrokeredHttpResponse, CredentialView, InstanceStatus, Page,
        RevokedIdentities, RotationReport, WaitResult,
    };
    pub use loft_core::service::{
        AuditExportParams, BrokeredHttpRequest, CreateIdentityRequest, CreateKeyRequest, GetCredentialParams, Items,
        ListAuditParams, ListCredentialsParams, ListIdentitiesParams, ListMessagesParams, ListThreadsParams,
        StoreCredentialRequest, UpdateIdentityRequest, WaitParams,
    };
    pub use loft_core::service::{ConsoleInviteLink, DecideRequest, ListApprovalsParams, RejectRequest};
    pub use loft_core::service::{ContactParams, ListContactsParams, UpsertContact};
    pub use loft_core::service::{
        CreateDraftRequest, ListDraftsParams, RescheduleRequest, SendDraftRequest, UpdateDraftRequest,
    };
    pub use loft_core::service::{CreateRuleRequest, ListRulesParams};
    pub use loft_core::service::{CreateWebhookRequest, ListWebhooksParams, UpdateWebhookRequest};
    pub use loft_core::service::{DenyModeRequest, EditHeldMail, ListModeRequestsParams, RequestModeRequest};
    pub use loft_core::service::{EventPage, EventParams, GetThreadParams};
    pub use loft_core::service::{SetIdentityCapsRequest, SetInstanceCapsRequest};
    use loft_core::vault::{CredentialMeta, TotpCode};
    use loft_core::webhooks::{WebhookCreated, WebhookDelivery, WebhookEndpoint};

    use super::Call;

    /// Marker: the answer is an RFC 5322 document (use [`super::Client::call_bytes`]).
    #[derive(Debug)]
    pub enum RawMessage {}

    /// Marker: the answer is an attachment's bytes (use [`super::Client::call_bytes`]).
    #[derive(Debug)]
    pub enum AttachmentBytes {}

    /// Marker: the answer is NDJSON audit rows (use [`super::Client::audit_export_page`]).
    #[derive(Debug)]
    pub enum AuditExport {}

    pub fn health() -> Call<serde_json::Value> {
        Call::get(["v0", "health"])
    }

    pub fn whoami() -> Call<WhoAmI> {
        Call::get(["v0", "whoami"])
    }

    // ----- identities -----

    pub fn create_identity(req: &CreateIdentityRequest) -> Call<CreatedIdentity> {
        Call::post(["v0", "identities"]).body(req)
    }

    pub fn list_identities(q: &ListIdentitiesParams) -> Call<Page<Identity>> {
        Call::get(["v0", "identities"]).query(q)
    }

    pub fn get_identity(id: &str) -> Call<Identity> {
        Call::get(["v0", "identities", id])
    }

    pub fn update_identity(id: &str, req: &UpdateIdentityRequest) -> Call<Identity> {
        Call::new(reqwest::Method::PATCH, ["v0", "identities", id]).body(req)
    }

    pub fn revoke_identity(id: &str) -> Call<RevokedIdentities> {
        Call::post(["v0", "identities", id, "revoke"])
    }

    /// A one-time link for a reviewer to set their console password.
    pub fn console_invite(id: &str) -> Call<ConsoleInviteLink> {
        Call::post(["v0", "identities", id, "console-invite"])
    }

    // ----- keys -----

    /// The keys of `identity`, or of the calling identity when `None`.
    pub fn list_keys(identity: Option<&str>) -> Call<Items<KeyMeta>> {
        match identity {
            Some(id) => Call::get(["v0", "identities", id, "keys"]),
            None => Call::get(["v0", "keys"]),
        }
    }

    pub fn create_key(identity: Option<&str>, req: &CreateKeyRequest) -> Call<CreatedKey> {
        match identity {
            Some(id) => Call::post(["v0", "identities", id, "keys"]).body(req),
            None => Call::post(["v0", "keys"]).body(req),
        }
    }

    /// Rotates the calling key (`None`) or the primary key of `identity`.
    pub fn rotate_key(identity: Option<&str>) -> Call<CreatedKey> {
        match identity {
            Some(id) => Call::post(["v0", "identities", id, "keys", "rotate"]),
            None => Call::post(["v0", "keys", "rotate"]),
        }
    }

    pub fn revoke_key(key_id: &str) -> Call<KeyMeta> {
        Call::new(reqwest::Method::DELETE, ["v0", "keys", key_id])
    }

    // ----- mail -----

    pub fn send_mail(req: &SendMail) -> Call<Message> {
        Call::post(["v0", "messages", "send"]).body(req)
    }

    pub fn list_messages(q: &ListMessagesParams) -> Call<Page<MessageSummary>> {
        Call::get(["v0", "messages"]).query(q)
    }

    /// Messages in which every word of `q.q` occurs, best match first, with highlights.
    pub fn search_messages(q: &SearchParams) -> Call<Page<SearchHit>> {
        Call::get(["v0", "messages", "search"]).query(q)
    }

    /// Waits up to `timeout_seconds` (server default 30) for inbox mail; the request may take
    /// that long plus a margin.
    pub fn wait_for_mail(q: &WaitParams) -> Call<WaitResult> {
        let secs = u64::from(q.timeout_seconds.unwrap_or(30));
        Call::get(["v0", "messages", "wait"])
            .query(q)
            .with_timeout(std::time::Duration::from_secs(secs + 30))
    }

    /// Reading a message marks it read.
    pub fn get_message(id: &str) -> Call<Message> {
        Call::get(["v0", "messages", id])
    }

    pub fn raw_message(id: &str) -> Call<RawMessage> {
        Call::get(["v0", "messages", id, "raw"])
    }

    /// Attachment `index` (from 0, as the message's `attachments` lists them), decoded.
    pub fn get_attachment(id: &str, index: u32) -> Call<AttachmentBytes> {
        Call::get([
            "v0".to_owned(),
            "messages".to_owned(),
            id.to_owned(),
            "attachments".to_owned(),
            index.to_string(),
        ])
    }

    pub fn update_message(id: &str, patch: &MessagePatch) -> Call<Message> {
        Call::new(reqwest::Method::PATCH, ["v0", "messages", id]).body(patch)
    }

    pub fn reply(id: &str, req: &ReplyMail) -> Call<Message> {
        Call::post(["v0", "messages", id, "reply"]).body(req)
    }

    pub fn forward(id: &str, req: &ForwardMail) -> Call<Message> {
        Call::post(["v0", "messages", id, "forward"]).body(req)
    }

    /// Cancels a scheduled mail (the composer's, or with the operator key anyone's).
    pub fn cancel_scheduled(id: &str) -> Call<Message> {
        Call::post(["v0", "messages", id, "cancel"])
    }

    pub fn reschedule(id: &str, req: &RescheduleRequest) -> Call<Message> {
        Call::post(["v0", "messages", id, "reschedule"]).body(req)
    }

    pub fn list_threads(q: &ListThreadsParams) -> Call<Page<ThreadSummary>> {
        Call::get(["v0", "threads"]).query(q)
    }

    pub fn get_thread(id: &str, q: &GetThreadParams) -> Call<Thread> {
        Call::get(["v0", "threads", id]).query(q)
    }

    /// Labels, read state, archive or trash on every copy of a thread.
    pub fn update_thread(id: &str, patch: &MessagePatch) -> Call<Thread> {
        Call::new(reqwest::Method::PATCH, ["v0", "threads", id]).body(patch)
    }

    /// Deletes a trashed message for ever.
    pub fn delete_message(id: &str) -> Call<Deleted> {
        Call::new(reqwest::Method::DELETE, ["v0", "messages", id])
    }

    /// Deletes a thread whose every copy is in the trash, for ever.
    pub fn delete_thread(id: &str) -> Call<Deleted> {
        Call::new(reqwest::Method::DELETE, ["v0", "threads", id])
    }

    // ----- drafts -----

    pub fn create_draft(req: &CreateDraftRequest) -> Call<Draft> {
        Call::post(["v0", "drafts"]).body(req)
    }

    pub fn list_drafts(q: &ListDraftsParams) -> Call<Page<Draft>> {
        Call::get(["v0", "drafts"]).query(q)
    }

    pub fn get_draft(id: &str) -> Call<Draft> {
        Call::get(["v0", "drafts", id])
    }

    pub fn update_draft(id: &str, req: &UpdateDraftRequest) -> Call<Draft> {
        Call::new(reqwest::Method::PATCH, ["v0", "drafts", id]).body(req)
    }

    /// Answers 204 (use [`super::Client::call_bytes`]).
    pub fn delete_draft(id: &str) -> Call<serde_json::Value> {
        Call::new(reqwest::Method::DELETE, ["v0", "drafts", id])
    }

    /// Sends the draft (it is deleted with the send).
    pub fn send_draft(id: &str, req: &SendDraftRequest) -> Call<Message> {
        Call::post(["v0", "drafts", id, "send"]).body(req)
    }

    // ----- events -----

    /// A page of the caller's events (see [`Client::event_stream`] for the stream).
    pub fn list_events(q: &EventParams) -> Call<EventPage> {
        Call::get(["v0", "events"]).query(q)
    }

    // ----- contacts -----

    pub fn list_contacts(q: &ListContactsParams) -> Call<Page<Contact>> {
        Call::get(["v0", "contacts"]).query(q)
    }

    pub fn upsert_contact(req: &UpsertContact) -> Call<Contact> {
        Call::post(["v0", "contacts"]).body(req)
    }

    pub fn get_contact(address: &str, q: &ContactParams) -> Call<Contact> {
        Call::get(["v0", "contacts", address]).query(q)
    }

    /// Answers the contact as it was.
    pub fn forget_contact(address: &str, q: &ContactParams) -> Call<Contact> {
        Call::new(reqwest::Method::DELETE, ["v0", "contacts", address]).query(q)
    }

    // ----- audit -----

    /// Newest first.
    pub fn list_audit(q: &ListAuditParams) -> Call<Page<AuditRecord>> {
        Call::get(["v0", "audit"]).query(q)
    }

    /// Rows after `after`, oldest first, as NDJSON (operator only).
    pub fn audit_export(after: i64, limit: u32) -> Call<AuditExport> {
        Call::get(["v0", "audit", "export"]).query(&AuditExportParams {
            after,
            limit: Some(limit),
        })
    }

    /// `null` while the log is empty.
    pub fn audit_head() -> Call<Option<ChainHead>> {
        Call::get(["v0", "audit", "head"])
    }

    /// The server's own check of the chain.
    pub fn audit_verify() -> Call<VerifyReport> {
        Call::get(["v0", "audit", "verify"])
    }

    // ----- vault -----

    /// Metadata only, newest first.
    pub fn vault_list(q: &ListCredentialsParams) -> Call<Page<CredentialMeta>> {
        Call::get(["v0", "vault"]).query(q)
    }

    /// Stores a credential (only the fields given are sent: the server applies its defaults).
    pub fn vault_put(req: &StoreCredentialRequest) -> Call<CredentialMeta> {
        Call::post(["v0", "vault"]).body(req)
    }

    /// Metadata; with `reveal`, the secret fields (needs `vault:reveal`).
    pub fn vault_get(name: &str, reveal: bool) -> Call<CredentialView> {
        Call::get(["v0", "vault", name]).query(&GetCredentialParams { reveal })
    }

    /// Changes the fields given.
    pub fn vault_update(name: &str, req: &StoreCredentialRequest) -> Call<CredentialMeta> {
        Call::new(reqwest::Method::PATCH, ["v0", "vault", name]).body(req)
    }

    /// Answers 204 (use [`super::Client::call_bytes`]).
    pub fn vault_delete(name: &str) -> Call<serde_json::Value> {
        Call::new(reqwest::Method::DELETE, ["v0", "vault", name])
    }

    pub fn vault_totp(name: &str) -> Call<TotpCode> {
        Call::get(["v0", "vault", name, "totp"])
    }

    pub fn vault_totp_backup(name: &str) -> Call<BackupCode> {
        Call::post(["v0", "vault", name, "totp", "backup"])
    }

    pub fn vault_http(name: &str, req: &BrokeredHttpRequest) -> Call<BrokeredHttpResponse> {
        Call::post(["v0", "vault", name, "http"]).body(req)
    }

    /// Operator only.
    pub fn vault_rotate_master_key() -> Call<RotationReport> {
        Call::post(["v0", "vault", "rotate-master-key"])
    }

    // ----- oversight -----

    pub fn list_approvals(q: &ListApprovalsParams) -> Call<Page<Approval>> {
        Call::get(["v0", "approvals"]).query(q)
    }

    pub fn get_approval(id: &str) -> Call<ApprovalView> {
        Call::get(["v0", "approvals", id])
    }

    pub fn approve(id: &str) -> Call<Approval> {
        Call::post(["v0", "approvals", id, "approve"])
    }

    pub fn reject(id: &str, req: &RejectRequest) -> Call<Approval> {
        Call::post(["v0", "approvals", id, "reject"]).body(req)
    }

    pub fn decide_approvals(req: &DecideRequest) -> Call<BatchDecision> {
        Call::post(["v0", "approvals", "decide"]).body(req)
    }

    /// Edits held mail before deciding (only the fields given are sent).
    pub fn edit_approval(id: &str, req: &EditHeldMail) -> Call<ApprovalView> {
        Call::post(["v0", "approvals", id, "edit"]).body(req)
    }

    // ----- mode requests -----

    /// The calling identity asks the operator for another oversight mode.
    pub fn request_mode(req: &RequestModeRequest) -> Call<ModeRequest> {
        Call::post(["v0", "oversight", "mode-request"]).body(req)
    }

    /// Open mode requests (operator only).
    pub fn list_mode_requests(q: &ListModeRequestsParams) -> Call<Page<ModeRequest>> {
        Call::get(["v0", "oversight", "mode-requests"]).query(q)
    }

    /// Denies an identity's open mode request (operator only).
    pub fn deny_mode_request(identity_id: &str, req: &DenyModeRequest) -> Call<ModeRequest> {
        Call::post(["v0", "oversight", "mode-requests", identity_id, "deny"]).body(req)
    }

    // ----- the kill switches -----

    pub fn pause_identity(id: &str) -> Call<Identity> {
        Call::post(["v0", "identities", id, "pause"])
    }

    pub fn resume_identity(id: &str) -> Call<Identity> {
        Call::post(["v0", "identities", id, "resume"])
    }

    pub fn instance_status() -> Call<InstanceStatus> {
        Call::get(["v0", "instance"])
    }

    pub fn freeze_outgoing() -> Call<InstanceStatus> {
        Call::post(["v0", "instance", "freeze"])
    }

    pub fn unfreeze_outgoing() -> Call<InstanceStatus> {
        Call::post(["v0", "instance", "unfreeze"])
    }

    // ----- allow / block / hold rules -----

    /// The operator: every rule, or filtered; an identity key: the rules in effect for itself.
    pub fn list_rules(q: &ListRulesParams) -> Call<Page<Rule>> {
        Call::get(["v0", "rules"]).query(q)
    }

    /// Operator only.
    pub fn add_rule(req: &CreateRuleRequest) -> Call<Rule> {
        Call::post(["v0", "rules"]).body(req)
    }

    /// Operator only; answers the rule as it was.
    pub fn remove_rule(id: &str) -> Call<Rule> {
        Call::new(reqwest::Method::DELETE, ["v0", "rules", id])
    }

    // ----- hosted domains (operator) -----

    pub fn list_domains() -> Call<Items<Domain>> {
        Call::get(["v0", "domains"])
    }

    pub fn add_domain(req: &AddDomainRequest) -> Call<DomainView> {
        Call::post(["v0", "domains"]).body(req)
    }

    pub fn show_domain(name: &str) -> Call<DomainView> {
        Call::get(["v0", "domains", name])
    }

    pub fn check_domain(name: &str) -> Call<DomainCheck> {
        Call::post(["v0", "domains", name, "check"])
    }

    /// Answers the domain as it was.
    pub fn remove_domain(name: &str) -> Call<Domain> {
        Call::new(reqwest::Method::DELETE, ["v0", "domains", name])
    }

    // ----- webhooks -----

    /// Answers the endpoint with its signing secret, shown this once.
    pub fn create_webhook(req: &CreateWebhookRequest) -> Call<WebhookCreated> {
        Call::post(["v0", "webhooks"]).body(req)
    }

    pub fn list_webhooks(q: &ListWebhooksParams) -> Call<Page<WebhookEndpoint>> {
        Call::get(["v0", "webhooks"]).query(q)
    }

    pub fn get_webhook(id: &str) -> Call<WebhookEndpoint> {
        Call::get(["v0", "webhooks", id])
    }

    pub fn update_webhook(id: &str, req: &UpdateWebhookRequest) -> Call<WebhookEndpoint> {
        Call::new(reqwest::Method::PATCH, ["v0", "webhooks", id]).body(req)
    }

    /// Answers the endpoint as it was.
    pub fn delete_webhook(id: &str) -> Call<WebhookEndpoint> {
        Call::new(reqwest::Method::DELETE, ["v0", "webhooks", id])
    }

    /// A new secret, shown this once; the old one signs beside it for a day.
    pub fn rotate_webhook_secret(id: &str) -> Call<WebhookCreated> {
        Call::post(["v0", "webhooks", id, "rotate-secret"])
    }

    pub fn list_webhook_deliveries(id: &str, q: &ListWebhooksParams) -> Call<Page<WebhookDelivery>> {
        Call::get(["v0", "webhooks", id, "deliveries"]).query(q)
    }

    pub fn replay_webhook_delivery(id: &str, delivery: &str) -> Call<WebhookDelivery> {
        Call::post(["v0", "webhooks", id, "deliveries", delivery, "replay"])
    }

    // ----- the suppression list (outbound SMTP) -----

    /// Operator only: addresses whose servers refused mail for good, in address order.
    pub fn list_suppressions(q: &ListSuppressionsParams) -> Call<Page<Suppression>> {
        Call::get(["v0", "suppressions"]).query(q)
    }

    /// Operator only; answers the entry as it was.
    pub fn remove_suppression(address: &str) -> Call<Suppression> {
        Call::new(reqwest::Method::DELETE, ["v0", "suppressions", address])
    }

    // ----- sending caps -----

    pub fn identity_caps(id: &str) -> Call<SendingStatus> {
        Call::get(["v0", "identities", id, "caps"])
    }

    pub fn set_identity_caps(id: &str, req: &SetIdentityCapsRequest) -> Call<SendingStatus> {
        Call::new(reqwest::Method::PUT, ["v0", "identities", id, "caps"]).body(req)
    }

    pub fn instance_caps() -> Call<InstanceCapsStatus> {
        Call::get(["v0", "instance", "caps"])
    }

    pub fn set_instance_caps(req: &SetInstanceCapsRequest) -> Call<InstanceCapsStatus> {
        Call::new(reqwest::Method::PUT, ["v0", "instance", "caps"]).body(req)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::*;

    #[test]
    fn paths_are_joined_and_ids_percent_encoded() {
        let c = Client::from_url("http://127.0.0.1:7070", None).unwrap();
        let call = api::get_identity("../../admin?x=1");
        assert_eq!(call.path(), "/v0/identities/..%2F..%2Fadmin%3Fx=1");
        assert_eq!(
            c.url_for(&call.segments).as_str(),
            "http://127.0.0.1:7070/v0/identities/..%2F..%2Fadmin%3Fx=1"
        );
        // A base with a path prefix (behind a reverse proxy) keeps it, with or without a slash.
        for base in ["https://example.com/loft", "https://example.com/loft/"] {
            let c = Client::from_url(base, None).unwrap();
            assert_eq!(
                c.url_for(&api::whoami().segments).as_str(),
                "https://example.com/loft/v0/whoami"
            );
        }
    }

    #[test]
    fn bad_base_urls_are_refused() {
        assert!(matches!(
            Client::from_url("ftp://x", None),
            Err(ClientError::InvalidUrl(_))
        ));
        assert!(matches!(
            Client::from_url("127.0.0.1:7070", None),
            Err(ClientError::InvalidUrl(_))
        ));
        assert!(matches!(
            Client::from_url("not a url", None),
            Err(ClientError::InvalidUrl(_))
        ));
        for api_url in [
            "http://127.0.0.1:7070/v0",
            "http://127.0.0.1:7070/v0/",
            "https://loft.example/agents/v0",
        ] {
            match Client::from_url(api_url, None) {
                Err(ClientError::InvalidUrl(m)) => assert!(m.contains("base URL"), "{m}"),
                Ok(_) => panic!("{api_url} must be refused"),
                Err(other) => panic!("{api_url}: {other}"),
            }
        }
        // A server mounted under a path of its own is fine.
        Client::from_url("https://loft.example/agents", None).unwrap();
    }

    #[test]
    fn debug_and_messages_hide_secrets() {
        let c = Client::from_url("http://user:hunter2@h:1", Some("loft_sk_secret".into())).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("loft_sk_secret") && !dbg.contains("hunter2"), "{dbg}");
        assert_eq!(c.base_url(), "http://user@h:1");
    }

    #[test]
    fn query_pairs_skip_absent_values() {
        let q = api::ListMessagesParams {
            folder: Some("sent".into()),
            unread: Some(true),
            limit: Some(5),
            ..Default::default()
        };
        let call = api::list_messages(&q);
        assert_eq!(
            call.query_pairs(),
            &[("folder", "sent"), ("unread", "true"), ("limit", "5")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(
            api::list_identities(&api::ListIdentitiesParams::default())
                .query_pairs()
                .is_empty()
        );
    }

    #[test]
    fn bodies_omit_what_was_not_given() {
        // The server refuses `null` for list fields, so absent values must be left out.
        let patch = api::MessagePatch {
            add_labels: vec!["x".into()],
            ..Default::default()
        };
        let call = api::update_message("msg_a", &patch);
        assert_eq!(call.method(), Method::PATCH);
        assert_eq!(call.json_body().unwrap(), &serde_json::json!({"add_labels": ["x"]}));
        let reply = api::ReplyMail {
            text: "hi".into(),
            ..Default::default()
        };
        assert_eq!(
            api::reply("msg_a", &reply).json_body().unwrap(),
            &serde_json::json!({"text": "hi"})
        );
        let id = api::CreateIdentityRequest {
            name: "r".into(),
            ..Default::default()
        };
        assert_eq!(
            api::create_identity(&id).json_body().unwrap(),
            &serde_json::json!({"name": "r"})
        );
    }

    #[test]
    fn flags_that_mean_no_filter_are_not_sent() {
        // `false` and absent mean the same to the server: only `true` goes on the wire, as
        // before the query types were shared with the server.
        for unread in [None, Some(false)] {
            let q = api::ListThreadsParams {
                unread,
                ..Default::default()
            };
            assert!(api::list_threads(&q).query_pairs().is_empty());
        }
        assert!(api::vault_get("crm", false).query_pairs().is_empty());
        assert_eq!(
            api::vault_get("crm", true).query_pairs(),
            &[("reveal".to_owned(), "true".to_owned())]
        );
        let q = api::ListIdentitiesParams {
            include_revoked: true,
            cursor: Some("a b".into()),
            ..Default::default()
        };
        assert_eq!(
            api::list_identities(&q).query_pairs(),
            &[("include_revoked", "true"), ("cursor", "a b")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let wait = api::wait_for_mail(&api::WaitParams {
            timeout_seconds: Some(5),
            after: Some("c".into()),
            limit: None,
        });
        assert_eq!(
            wait.query_pairs(),
            &[("timeout_seconds", "5"), ("after", "c")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(wait.timeout, Some(Duration::from_secs(35)));
        assert_eq!(
            api::audit_export(7, 100).query_pairs(),
            &[("after", "7"), ("limit", "100")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn vault_bodies_carry_only_the_fields_given() {
        // (Moved from loft-mcp's `RestApi`, which built this body field by field.)
        let req = api::StoreCredentialRequest {
            name: Some("crm".into()),
            value: Some("v".into()),
            allowed_hosts: Some(vec!["api.example.com".into()]),
            inject: Some(loft_core::service::InjectInput::Short("header:X-Api-Key".into())),
            ..Default::default()
        };
        assert_eq!(
            api::vault_put(&req).json_body().unwrap(),
            &serde_json::json!({"name": "crm", "value": "v", "allowed_hosts": ["api.example.com"], "inject": "header:X-Api-Key"})
        );
        let http = api::BrokeredHttpRequest {
            url: "https://api.example.com/x".into(),
            ..Default::default()
        };
        assert_eq!(
            api::vault_http("crm", &http).json_body().unwrap(),
            &serde_json::json!({"url": "https://api.example.com/x"})
        );
        let send = api::SendMail {
            to: vec!["a@x".into()],
            subject: "s".into(),
            ..Default::default()
        };
        assert_eq!(
            api::send_mail(&send).json_body().unwrap(),
            &serde_json::json!({"to": ["a@x"], "subject": "s", "text": ""})
        );
    }

    #[test]
    fn edits_carry_only_the_fields_given() {
        let req = api::EditHeldMail {
            subject: Some("s".into()),
            cc: Some(vec![]),
            ..Default::default()
        };
        let call = api::edit_approval("apr_a", &req);
        assert_eq!(call.path(), "/v0/approvals/apr_a/edit");
        assert_eq!(
            call.json_body().unwrap(),
            &serde_json::json!({"subject": "s", "cc": []})
        );
        let deny = api::deny_mode_request("idt_a", &api::DenyModeRequest { reason: "r".into() });
        assert_eq!(deny.path(), "/v0/oversight/mode-requests/idt_a/deny");
    }

    #[test]
    fn error_bodies_decode() {
        let body = br#"{"error":{"code":"missing_scope","message":"this key lacks the scope `mail:send`","hint":"use another key","request_id":"req_1"}}"#;
        let e = ApiError::from_response(StatusCode::FORBIDDEN, body);
        assert_eq!(e.status, 403);
        assert_eq!(e.code, "missing_scope");
        assert_eq!(e.hint.as_deref(), Some("use another key"));
        assert_eq!(e.request_id.as_deref(), Some("req_1"));

        let e = ApiError::from_response(StatusCode::BAD_GATEWAY, b"<html>\r\nbad gateway</html>");
        assert_eq!(e.code, "http_502");
        assert_eq!(
            e.message,
            "the server answered 502 Bad Gateway: <html>bad gateway</html>"
        );
        let e = ApiError::from_response(StatusCode::NOT_FOUND, b"");
        assert_eq!(e.message, "the server answered 404 Not Found");
        assert!(e.hint.is_some());
    }

    #[test]
    fn empty_bodies_decode_as_null() {
        let head: Option<loft_core::audit::ChainHead> = decode(b"").unwrap();
        assert!(head.is_none());
        let head: Option<loft_core::audit::ChainHead> = decode(br#"{"seq":3,"hash":"ab"}"#).unwrap();
        assert_eq!(head.unwrap().seq, 3);
    }

    #[test]
    fn ndjson_keeps_lines_and_names_bad_ones() {
        use loft_core::audit::{ActorKind, AuditEntry, AuditRecord, GENESIS_HASH, Outcome};
        let entry = AuditEntry {
            at: loft_core::time::Timestamp::from_micros(1_795_000_000_000_000),
            actor_kind: ActorKind::Operator,
            actor_identity_id: None,
            key_id: Some("operator".into()),
            action: "identity.create".into(),
            target: None,
            outcome: Outcome::Ok,
            request_id: None,
            remote_addr: None,
            details: serde_json::json!({"z": 1, "a": 2}),
            events: Vec::new(),
        };
        let r1 = AuditRecord::seal(entry.clone(), 0, GENESIS_HASH);
        let r2 = AuditRecord::seal(entry, 1, &r1.hash);
        let text = format!(
            "{}\n\n{}\n",
            serde_json::to_string(&r1).unwrap(),
            serde_json::to_string(&r2).unwrap()
        );
        let rows = parse_ndjson(text.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].1, r2);
        assert_eq!(rows[0].0, serde_json::to_string(&r1).unwrap());
        let err = parse_ndjson(format!("{}\n{{oops\n", rows[0].0).as_bytes()).unwrap_err();
        assert!(err.starts_with("line 2 of the export"), "{err}");
    }

    #[tokio::test]
    async fn refused_connection_names_the_url_and_suggests_serve() {
        // Bind then drop a listener to get a port that nothing listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = Client::from_url(&format!("http://127.0.0.1:{port}"), Some("loft_sk_secret".into())).unwrap();
        let err = c.call(api::whoami()).await.unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("http://127.0.0.1:{port}")), "{msg}");
        assert!(!msg.contains("loft_sk_secret"));
        assert!(err.hint().unwrap().contains("loft serve"));
    }
}
