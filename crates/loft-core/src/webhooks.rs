//! Webhook signatures, as the Standard Webhooks specification defines them
//! (<https://www.standardwebhooks.com>): what a receiver checks with any of its libraries.
//!
//! A delivery carries three headers: `webhook-id` (the event's id, the same on every retry, so
//! that a receiver can drop repeats), `webhook-timestamp` (seconds since the epoch, when this
//! attempt was signed, so that a receiver can refuse old replays) and `webhook-signature`:
//! `v1,` and the base64 HMAC-SHA256, under the endpoint's secret, of
//! `{webhook-id}.{webhook-timestamp}.{body}`. While a rotated secret overlaps the new one,
//! the header carries one signature per secret, separated by spaces, and a receiver holding
//! either accepts it. A secret is shown as `whsec_` and the base64 of its 32 random bytes.
//!
//! Beside the signatures, this module holds the endpoint and delivery-log types, the store
//! port for them ([`WebhookStore`], conformance module `webhooks`) and the retry schedule
//! ([`WebhookSettings`]); the use cases and the delivery job are in `service/webhooks.rs`.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::audit::AuditEntry;
use crate::events::EventKind;
use crate::ids::{IdentityId, WebhookDeliveryId, WebhookId};
use crate::mail::StorePage;
use crate::random::Random;
use crate::time::Timestamp;
use crate::vault::Sealed;
use crate::{Error, Result};

/// How a secret is shown (and how receivers' libraries expect it).
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret.
pub const SECRET_BYTES: usize = 32;

/// An endpoint's signing secret. Never logged: `Debug` shows no bytes.
#[derive(Clone)]
pub struct SigningSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(..)")
    }
}

impl SigningSecret {
    pub fn generate(random: &dyn Random) -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        random.fill(&mut bytes);
        Self(bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// `whsec_...`, as shown once to whoever registers or rotates the endpoint.
    pub fn to_whsec(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(self.as_bytes())))
    }

    /// Reads `whsec_...` (or the bare base64) back; the error never repeats the input.
    pub fn parse(s: &str) -> Result<Self> {
        let b64 = s.strip_prefix(SECRET_PREFIX).unwrap_or(s);
        let bytes = Zeroizing::new(
            STANDARD
                .decode(b64)
                .map_err(|_| Error::invalid("invalid_secret", "a webhook secret is `whsec_` followed by base64"))?,
        );
        if bytes.len() < 16 {
            return Err(Error::invalid(
                "invalid_secret",
                "a webhook secret must hold at least 16 bytes",
            ));
        }
        Ok(Self(bytes))
    }
}

/// `v1,` and the signature of one delivery under one secret.
pub fn sign(secret: &SigningSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per live secret (the new one first).
pub fn signature_header(secrets: &[&SigningSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| sign(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `header` carries a valid `v1` signature under `secret` (for tests and for
/// receivers written in Rust), compared in constant time.
pub fn verify(secret: &SigningSecret, header: &str, id: &str, timestamp: i64, body: &[u8]) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    header.split(' ').filter_map(|s| s.strip_prefix("v1,")).any(|sig| {
        STANDARD
            .decode(sig)
            .is_ok_and(|sig| mac.clone().verify_slice(&sig).is_ok())
    })
}

// ----- endpoints, deliveries, retries -------------------------------------------------------

/// The job kind that delivers an endpoint's events (one job per endpoint at a time).
pub const DELIVER_JOB: &str = "webhook.deliver";
/// The payload of an endpoint's delivery job.
pub fn job_payload(id: &WebhookId) -> String {
    serde_json::json!({ "webhook_id": id }).to_string()
}

/// The name an endpoint's secrets are sealed under (with the endpoint's id as owner).
pub const SECRET_NAME: &str = "webhook-signing-secret";
/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP_SECS: i64 = 24 * 3600;
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Endpoints one identity (or the operator) may register.
pub const MAX_ENDPOINTS_PER_OWNER: u64 = 50;

/// An endpoint as served. Its secret is never part of it (shown once, at registration and
/// rotation: [`WebhookCreated`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookEndpoint {
    pub id: WebhookId,
    /// The identity that registered it, for its own events; absent for the operator's.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub owner: Option<IdentityId>,
    /// Whose events it receives: the owner's, or, for an operator's endpoint, the identity
    /// named at registration (absent: every identity's, and instance-wide events).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub identity: Option<IdentityId>,
    pub url: String,
    pub description: Option<String>,
    /// The event types it receives (empty: every type its owner may see).
    pub types: Vec<EventKind>,
    pub enabled: bool,
    /// Why it was disabled, when it was by the server (a failure streak).
    pub disabled_reason: Option<String>,
    /// The last event given to it (`evt_N`): delivered, or passed over as not for it.
    pub position: String,
    /// Failed attempts in a row on the event at the head of its queue.
    pub failures: u32,
    /// Since when its deliveries fail (absent: the last one succeeded).
    pub failing_since: Option<Timestamp>,
    /// Until when the previous secret (after a rotation) still signs beside the current one.
    pub previous_secret_expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An endpoint and its signing secret, shown this once (`whsec_...`).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    /// The signing secret (`whsec_` + base64), shown only now: give it to the receiver's
    /// Standard Webhooks library.
    pub secret: String,
}

impl std::fmt::Debug for WebhookCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookCreated")
            .field("endpoint", &self.endpoint)
            .field("secret", &"..")
            .finish()
    }
}

/// An endpoint as stored: the served part, its sealed secrets and the delivery job state.
#[derive(Debug, Clone)]
pub struct StoredWebhook {
    pub endpoint: WebhookEndpoint,
    /// The position as a number (`endpoint.position` is its `evt_` form).
    pub position: i64,
    pub secret: Sealed,
    /// The secret before the last rotation, while it overlaps.
    pub previous: Option<Sealed>,
    /// Bumped by every change of its settings or secrets (not by deliveries).
    pub version: i64,
    /// The delivery job queued or running for it, if any.
    pub job_id: Option<i64>,
}

/// The stored form of a types filter: `,a,b,` (empty: every type), so that SQL can test a
/// type with one substring search on both backends.
pub fn types_to_stored(types: &[EventKind]) -> String {
    if types.is_empty() {
        String::new()
    } else {
        format!(",{},", types.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(","))
    }
}

/// Reads a stored types filter back.
pub fn types_from_stored(s: &str, id: &str) -> Result<Vec<EventKind>> {
    s.split(',')
        .filter(|t| !t.is_empty())
        .map(|t| {
            EventKind::parse_stored(t, 0)
                .map_err(|_| Error::internal(format!("webhook {id} has the unknown event type `{t}`")))
        })
        .collect()
}

/// How many deliveries the log keeps per endpoint: recording one more drops the oldest beyond
/// this, so an endpoint that has received events for years has a log of bounded size.
pub const DELIVERY_LOG_KEEP: u32 = 1000;

/// One logged attempt to deliver an event (or a replay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    pub id: WebhookDeliveryId,
    pub webhook_id: WebhookId,
    /// The event delivered (`evt_N`, also its `webhook-id` header).
    pub event_id: String,
    #[serde(rename = "event_type")]
    pub event_type: EventKind,
    /// 1 for the first attempt at this event, counting on through retries.
    pub attempt: u32,
    /// Whether the receiver answered 2xx in time.
    pub ok: bool,
    /// The receiver's HTTP status (absent when none came: refused, unreachable, timed out).
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    /// What went wrong, when something did.
    pub error: Option<String>,
    /// A manual replay (`POST .../replay`), not part of the endpoint's sequence.
    pub replay: bool,
    pub at: Timestamp,
}

/// What a delivery attempt leaves on its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryState {
    pub position: i64,
    pub failures: u32,
    pub failing_since: Option<Timestamp>,
}

/// The delivery schedule (deploy-time; `loft serve --webhook-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookSettings {
    /// How long the receiver has to answer one delivery.
    pub timeout: std::time::Duration,
    /// The wait after the first failure; it doubles with each failure in a row...
    pub retry_base_secs: i64,
    /// ... up to this.
    pub retry_max_secs: i64,
    /// An endpoint failing for longer than this (every attempt since the first failure) is
    /// disabled, with a `webhook.disabled` event.
    pub disable_after_secs: i64,
}

impl Default for WebhookSettings {
    /// 10 s to answer; retries after 10 s, 20 s, 40 s, ... up to 6 h apart; disabled after
    /// failing for 3 days (about 25 attempts, the last 6 h apart).
    fn default() -> Self {
        Self {
            timeout: std::time::Duration::from_secs(10),
            retry_base_secs: 10,
            retry_max_secs: 6 * 3600,
            disable_after_secs: 3 * 24 * 3600,
        }
    }
}

impl WebhookSettings {
    /// The wait before the next attempt after `failures` failures in a row (at least 1).
    pub fn retry_delay(&self, failures: u32) -> i64 {
        let base = self.retry_base_secs.max(1);
        let doublings = failures.saturating_sub(1).min(40);
        base.saturating_mul(1_i64 << doublings)
            .min(self.retry_max_secs.max(base))
    }
}

/// Webhook endpoints, their delivery state and log (conformance: `webhooks`). Settings
/// changes are versioned; delivery progress is conditional on the endpoint's job, so a
/// delivery job that lost its endpoint (deleted, or a newer job) changes nothing.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a new endpoint (no job) with its audit row.
    async fn webhook_create(&self, webhook: StoredWebhook, audit: AuditEntry) -> Result<()>;

    async fn webhook_get(&self, id: &WebhookId) -> Result<Option<StoredWebhook>>;

    /// Endpoints newest first: `owner`'s own (`Some`), or every one (`None`); the cursor is a
    /// sequence number.
    async fn webhook_list(
        &self,
        owner: Option<&IdentityId>,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<StorePage<WebhookEndpoint>>;

    /// How many endpoints `owner` registered (`None`: the operator's).
    async fn webhook_count(&self, owner: Option<&IdentityId>) -> Result<u64>;

    /// Writes the endpoint's settings and secrets (url, description, types, enabled and
    /// reason, failures, `failing_since`, secrets, `updated_at`; never position or job) if its
    /// version is still `expected_version`, bumping it, with the audit row. `NotFound` when
    /// it is gone, `Conflict("version_conflict")` when changed since read.
    async fn webhook_update(&self, webhook: StoredWebhook, expected_version: i64, audit: AuditEntry) -> Result<()>;

    /// Deletes the endpoint and its delivery log, with the audit row. `NotFound` when gone.
    async fn webhook_delete(&self, id: &WebhookId, audit: AuditEntry) -> Result<()>;

    /// Queues a delivery job (`job`, its payload set here to the endpoint) for every enabled
    /// endpoint that has none and a visible event after its position of its types and
    /// identity; returns how many were queued. Safe to call from several nodes at once: an
    /// endpoint takes a job only if it still has none.
    async fn webhook_queue_due(&self, job: crate::jobs::NewJob) -> Result<u32>;

    /// Records an attempt (`delivery`, if one was made) and the endpoint's new state, if its
    /// job is still `job_id`; `false` (nothing written) otherwise.
    async fn webhook_progress(
        &self,
        id: &WebhookId,
        job_id: i64,
        delivery: Option<WebhookDelivery>,
        state: DeliveryState,
    ) -> Result<bool>;

    /// Lets go of the endpoint's job, if it is still `job_id`.
    async fn webhook_release(&self, id: &WebhookId, job_id: i64) -> Result<bool>;

    /// Disables the endpoint (with `reason`) and lets go of its job, if it is still
    /// `job_id`, with the audit row (which carries the `webhook.disabled` event).
    async fn webhook_disable(
        &self,
        id: &WebhookId,
        job_id: i64,
        reason: String,
        at: Timestamp,
        audit: AuditEntry,
    ) -> Result<bool>;

    /// Logs a delivery made outside the endpoint's sequence (a replay), with its audit row.
    async fn webhook_log(&self, delivery: WebhookDelivery, audit: AuditEntry) -> Result<()>;

    /// The endpoint's delivery log, newest first; the cursor is a sequence number.
    async fn webhook_deliveries(
        &self,
        id: &WebhookId,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<StorePage<WebhookDelivery>>;

    async fn webhook_delivery(&self, id: &WebhookId, delivery: &WebhookDeliveryId) -> Result<Option<WebhookDelivery>>;

    /// Up to `limit` endpoints with a secret wrapped under a key other than `current_key_id`.
    async fn webhook_stale(&self, current_key_id: &str, limit: u32) -> Result<Vec<StoredWebhook>>;

    /// Writes re-wrapped secrets (`secret`, `previous`), each only if its version is still the
    /// one paired with it, bumping it, and the audit row; returns how many were written.
    async fn webhook_rewrap(&self, batch: Vec<(StoredWebhook, i64)>, audit: AuditEntry) -> Result<u64>;
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    /// The example of the Standard Webhooks specification and its reference libraries.
    #[test]
    fn the_specifications_example() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            &secret,
            &sig,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            body
        ));
        assert!(!verify(
            &secret,
            &sig,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_331,
            body
        ));
    }

    #[test]
    fn rotation_overlap_signs_with_both() {
        let (old, new) = (SigningSecret::generate(&OsRandom), SigningSecret::generate(&OsRandom));
        let header = signature_header(&[&new, &old], "evt_1", 1, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&old, &header, "evt_1", 1, b"{}"));
        assert!(verify(&new, &header, "evt_1", 1, b"{}"));
        let other = SigningSecret::generate(&OsRandom);
        assert!(!verify(&other, &header, "evt_1", 1, b"{}"));
    }

    #[test]
    fn retries_double_up_to_the_cap_and_span_more_than_a_day_before_disabling() {
        let s = WebhookSettings::default();
        assert_eq!((s.retry_delay(1), s.retry_delay(2), s.retry_delay(3)), (10, 20, 40));
        assert_eq!(s.retry_delay(30), 6 * 3600);
        assert_eq!(s.retry_delay(u32::MAX), 6 * 3600);
        let (mut waited, mut n) = (0, 0);
        while waited < s.disable_after_secs {
            n += 1;
            waited += s.retry_delay(n);
        }
        assert!(n > 20 && waited > 24 * 3600, "{n} attempts over {waited} s");
        assert_eq!(types_to_stored(&[]), "");
        let t = [EventKind::MessageReceived, EventKind::VaultUsed];
        assert_eq!(types_from_stored(&types_to_stored(&t), "whk_x").unwrap(), t);
    }

    #[test]
    fn secrets_round_trip_and_never_show_in_debug_or_errors() {
        let s = SigningSecret::generate(&OsRandom);
        let shown = s.to_whsec();
        assert!(shown.starts_with(SECRET_PREFIX));
        assert_eq!(SigningSecret::parse(&shown).unwrap().as_bytes(), s.as_bytes());
        assert_eq!(format!("{s:?}"), "SigningSecret(..)");
        let e = SigningSecret::parse("whsec_!!not-base64-secret!!").unwrap_err();
        assert!(!e.to_string().contains("not-base64-secret"), "{e}");
        assert!(SigningSecret::parse("whsec_AAAA").is_err(), "too short");
    }
}
