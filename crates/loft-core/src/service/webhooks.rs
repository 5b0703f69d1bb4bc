//! Webhooks: endpoints registered by an identity (its own events) or the operator (everyone's,
//! or one identity's), and the delivery job that posts their events, signed, in order.
//!
//! Delivery (see docs/events.md and ARCHITECTURE.md): an endpoint keeps a position (the last
//! event given to it) and has at most one `webhook.deliver` job at a time. The job posts the
//! next event after the position, and only when the receiver answered 2xx moves on to the
//! next; a failure is logged and retried with exponential backoff
//! ([`WebhookSettings::retry_delay`]); a streak longer than
//! [`WebhookSettings::disable_after_secs`] disables the endpoint with a `webhook.disabled`
//! event. Jobs are queued by [`Loft::queue_webhook_jobs`], which the job runner calls whenever
//! events became visible (it sleeps on the event hub) and on every pass: an endpoint with no
//! job and an event after its position gets one. A job that runs out of events lets go of its
//! endpoint and queues again, so an event that became visible while it was finishing is not
//! left behind.
//!
//! Nothing here logs or returns a secret except the `whsec_` shown once to the caller that
//! registered or rotated the endpoint.

use std::time::Instant;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::events::{kind_allowed, needed_scope};
use super::{Actor, Loft, Page, Principal, cursor, page, page_limit};
use crate::audit::AuditEntry;
use crate::events::{self, Event, EventKind, EventQuery, NewEvent};
use crate::ids::{IdentityId, WebhookDeliveryId, WebhookId};
use crate::jobs::{Job, NewJob};
use crate::runner::JobError;
use crate::vault::{self as v, BrokerRequest, Keyring};
use crate::webhooks::{
    self as wh, DeliveryState, SigningSecret, StoredWebhook, WebhookCreated, WebhookDelivery, WebhookEndpoint,
};
use crate::{Error, Result};

/// `POST /v0/webhooks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where to post events: `https://...` (or `http://`); no user name or password in it.
    pub url: String,
    /// Event types to deliver, as the stream's filter takes them (`message.received`,
    /// `approval.*`); none: every type the key may see.
    #[serde(default)]
    pub types: Vec<String>,
    pub description: Option<String>,
    /// Operator only: deliver only this identity's events (none: everyone's).
    pub identity: Option<String>,
}

/// `PATCH /v0/webhooks/{id}`: what is given changes, the rest stays.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    pub url: Option<String>,
    pub types: Option<Vec<String>>,
    /// An empty text removes the description.
    pub description: Option<String>,
    /// `false` pauses deliveries (events keep accumulating after its position); `true`
    /// resumes them from the position, and clears a failure streak.
    pub enabled: Option<bool>,
}

/// `GET /v0/webhooks` and `GET /v0/webhooks/{id}/deliveries`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ListWebhooksParams {
    pub cursor: Option<String>,
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
}

fn not_found() -> Error {
    Error::not_found("webhook")
}

/// The URL as the audit log shows it: no query (it may carry a token), no user info.
fn url_for_audit(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

fn parse_url(s: &str) -> Result<url::Url> {
    let bad = |why: &str| {
        Error::invalid("invalid_url", format!("the webhook URL {why}"))
            .with_hint("give an absolute `https://host/path` (or `http://`) URL without a user name or password")
    };
    if s.len() > wh::MAX_URL_LEN {
        return Err(bad(&format!("is longer than {} bytes", wh::MAX_URL_LEN)));
    }
    let url = url::Url::parse(s.trim()).map_err(|e| bad(&format!("does not parse: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must use http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry a user name or password"));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a fragment (`#...`)"));
    }
    Ok(url)
}

fn clean_description(d: Option<&str>) -> Result<Option<String>> {
    let Some(d) = d.map(str::trim).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    if d.chars().count() > wh::MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(
            "invalid_description",
            format!("a description holds at most {} characters", wh::MAX_DESCRIPTION_CHARS),
        ));
    }
    if d.chars().any(char::is_control) {
        return Err(Error::invalid(
            "invalid_description",
            "a description must not hold control characters",
        ));
    }
    Ok(Some(d.to_owned()))
}

/// Who owns an endpoint, as an actor sees it: `None` for the operator.
fn owner_of(actor: &Actor) -> Option<IdentityId> {
    actor.identity().map(|i| i.id.clone())
}

impl Loft {
    /// Sets the delivery schedule (`loft serve --webhook-*`).
    #[must_use]
    pub fn with_webhooks(mut self, settings: wh::WebhookSettings) -> Self {
        self.webhooks = settings;
        self
    }

    pub fn webhook_settings(&self) -> &wh::WebhookSettings {
        &self.webhooks
    }

    /// The types an actor asks for, checked as the event stream checks them; for an identity
    /// key, "every type" becomes the types its scopes let it see.
    fn webhook_types(actor: &Actor, asked: &[String]) -> Result<Vec<EventKind>> {
        let kinds = events::parse_kinds(&asked.join(","))?;
        let Principal::Identity { scopes, .. } = &actor.principal else {
            return Ok(kinds);
        };
        if kinds.is_empty() {
            let all: Vec<EventKind> = EventKind::ALL
                .into_iter()
                .filter(|k| kind_allowed(scopes, *k))
                .collect();
            if all.len() < EventKind::ALL.len() {
                let mut all = all;
                all.sort_by_key(|k| k.as_str());
                return Ok(all);
            }
        } else {
            Self::check_may_receive(actor, &kinds)?;
        }
        Ok(kinds)
    }

    /// Refuses an identity key that may not see every type `types` carries (empty: every
    /// type): changing where an endpoint posts, or turning it back on, is receiving its events,
    /// so a key of the identity without `mail:read` cannot point another key's endpoint at
    /// itself.
    fn check_may_receive(actor: &Actor, types: &[EventKind]) -> Result<()> {
        let Principal::Identity { scopes, .. } = &actor.principal else {
            return Ok(());
        };
        let all = EventKind::ALL;
        let kinds: &[EventKind] = if types.is_empty() { &all } else { types };
        for k in kinds {
            if !kind_allowed(scopes, *k)
                && let Some(scope) = needed_scope(*k)
            {
                return Err(Error::MissingScope { scope });
            }
        }
        Ok(())
    }

    /// Refuses a target the egress policy refuses already at registration, when that is
    /// known without resolving a name (the delivery checks the resolved address again).
    fn check_webhook_target(&self, url: &url::Url) -> Result<()> {
        match &self.broker {
            Some(b) => b.check_target(url),
            None => Ok(()),
        }
    }

    fn seal_webhook_secret(&self, ring: &Keyring, id: &WebhookId, secret: &SigningSecret) -> Result<v::Sealed> {
        v::seal_for(
            ring,
            self.random.as_ref(),
            id.as_str(),
            wh::SECRET_NAME,
            secret.as_bytes(),
        )
    }

    fn open_webhook_secret(ring: &Keyring, id: &WebhookId, sealed: &v::Sealed) -> Result<SigningSecret> {
        let bytes = v::open_for(ring, id.as_str(), wh::SECRET_NAME, sealed)?;
        Ok(SigningSecret::from_bytes(&bytes))
    }

    /// An endpoint the actor may see: its own, or any for the operator; 404 otherwise.
    async fn load_webhook(&self, actor: &Actor, id: &str) -> Result<StoredWebhook> {
        let id = WebhookId::parse(id)?;
        let w = self.store.webhook_get(&id).await?.ok_or_else(not_found)?;
        match actor.identity() {
            Some(me) if w.endpoint.owner.as_ref() != Some(&me.id) => Err(not_found()),
            _ => Ok(w),
        }
    }

    fn webhook_audit(actor: &Actor, at: crate::time::Timestamp, action: &str, w: &WebhookEndpoint) -> AuditEntry {
        let url = url::Url::parse(&w.url).map_or_else(|_| String::new(), |u| url_for_audit(&u));
        actor.audit(
            at,
            action,
            Some(w.id.to_string()),
            serde_json::json!({
                "url": url,
                "types": w.types,
                "identity": w.identity,
                "enabled": w.enabled,
            }),
        )
    }

    /// `POST /v0/webhooks`: registers an endpoint; the answer shows its secret this once.
    pub async fn create_webhook(&self, actor: &Actor, req: CreateWebhookRequest) -> Result<WebhookCreated> {
        let url = parse_url(&req.url)?;
        let types = Self::webhook_types(actor, &req.types)?;
        let description = clean_description(req.description.as_deref())?;
        let asked = req
            .identity
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(IdentityId::parse)
            .transpose()?;
        let owner = owner_of(actor);
        let identity = match (&owner, asked) {
            (Some(me), Some(other)) if *me != other => {
                return Err(Error::forbidden(
                    "operator_only",
                    "only the operator registers a webhook for another identity's events",
                )
                .with_hint("an identity key registers for its own events: leave out `identity`"));
            }
            (Some(me), _) => Some(me.clone()),
            (None, Some(other)) => {
                self.store
                    .get_identity(&other)
                    .await?
                    .ok_or_else(|| Error::not_found("identity"))?;
                Some(other)
            }
            (None, None) => None,
        };
        self.check_webhook_target(&url)?;
        if self.store.webhook_count(owner.as_ref()).await? >= wh::MAX_ENDPOINTS_PER_OWNER {
            return Err(Error::conflict(
                "too_many_webhooks",
                format!("at most {} webhook endpoints per owner", wh::MAX_ENDPOINTS_PER_OWNER),
            )
            .with_hint("remove an endpoint you no longer use"));
        }
        let ring = self.keyring()?;
        let id = WebhookId::generate(self.random.as_ref());
        let secret = SigningSecret::generate(self.random.as_ref());
        let sealed = self.seal_webhook_secret(&ring, &id, &secret)?;
        let now = self.clock.now();
        // Only events from now on: the newest event visible now is its starting position.
        let position = self.store.latest_event_seq().await?;
        let endpoint = WebhookEndpoint {
            id: id.clone(),
            owner,
            identity,
            url: url.to_string(),
            description,
            types,
            enabled: true,
            disabled_reason: None,
            position: Event::id_for(position),
            failures: 0,
            failing_since: None,
            previous_secret_expires_at: None,
            created_at: now,
            updated_at: now,
        };
        let audit = Self::webhook_audit(actor, now, "webhook.create", &endpoint);
        self.store
            .webhook_create(
                StoredWebhook {
                    endpoint: endpoint.clone(),
                    position,
                    secret: sealed,
                    previous: None,
                    version: 1,
                    job_id: None,
                },
                audit,
            )
            .await?;
        Ok(WebhookCreated {
            endpoint,
            secret: secret.to_whsec().to_string(),
        })
    }

    /// `GET /v0/webhooks`: the caller's endpoints (the operator: every endpoint), newest first.
    pub async fn list_webhooks(&self, actor: &Actor, params: ListWebhooksParams) -> Result<Page<WebhookEndpoint>> {
        let limit = page_limit(params.limit)?;
        let before = cursor(params.cursor.as_deref())?;
        let owner = owner_of(actor);
        Ok(page(self.store.webhook_list(owner.as_ref(), before, limit).await?))
    }

    pub async fn get_webhook(&self, actor: &Actor, id: &str) -> Result<WebhookEndpoint> {
        Ok(self.load_webhook(actor, id).await?.endpoint)
    }

    /// `PATCH /v0/webhooks/{id}`.
    pub async fn update_webhook(&self, actor: &Actor, id: &str, req: UpdateWebhookRequest) -> Result<WebhookEndpoint> {
        let mut w = self.load_webhook(actor, id).await?;
        let expected = w.version;
        let turned_on = req.enabled == Some(true) && !w.endpoint.enabled;
        if req.url.is_some() || turned_on {
            let types = match &req.types {
                Some(t) => Self::webhook_types(actor, t)?,
                None => w.endpoint.types.clone(),
            };
            Self::check_may_receive(actor, &types)?;
        }
        if let Some(u) = &req.url {
            let url = parse_url(u)?;
            self.check_webhook_target(&url)?;
            w.endpoint.url = url.to_string();
        }
        if let Some(t) = &req.types {
            w.endpoint.types = Self::webhook_types(actor, t)?;
        }
        if let Some(d) = &req.description {
            w.endpoint.description = clean_description(Some(d))?;
        }
        if let Some(enabled) = req.enabled {
            if enabled && !w.endpoint.enabled {
                w.endpoint.failures = 0;
                w.endpoint.failing_since = None;
            }
            w.endpoint.enabled = enabled;
            w.endpoint.disabled_reason = None;
        }
        let now = self.clock.now();
        w.endpoint.updated_at = now;
        let audit = Self::webhook_audit(actor, now, "webhook.update", &w.endpoint);
        let endpoint = w.endpoint.clone();
        self.store.webhook_update(w, expected, audit).await?;
        self.bump_job_tick();
        Ok(endpoint)
    }

    /// `DELETE /v0/webhooks/{id}`: the endpoint and its delivery log; answers it as it was.
    pub async fn delete_webhook(&self, actor: &Actor, id: &str) -> Result<WebhookEndpoint> {
        let w = self.load_webhook(actor, id).await?;
        let audit = Self::webhook_audit(actor, self.clock.now(), "webhook.delete", &w.endpoint);
        self.store.webhook_delete(&w.endpoint.id, audit).await?;
        Ok(w.endpoint)
    }

    /// `POST /v0/webhooks/{id}/rotate-secret`: a new secret, shown this once; the old one
    /// keeps signing beside it for [`wh::ROTATION_OVERLAP_SECS`].
    pub async fn rotate_webhook_secret(&self, actor: &Actor, id: &str) -> Result<WebhookCreated> {
        let mut w = self.load_webhook(actor, id).await?;
        let expected = w.version;
        let ring = self.keyring()?;
        let secret = SigningSecret::generate(self.random.as_ref());
        let sealed = self.seal_webhook_secret(&ring, &w.endpoint.id, &secret)?;
        let now = self.clock.now();
        w.previous = Some(std::mem::replace(&mut w.secret, sealed));
        w.endpoint.previous_secret_expires_at = Some(now.plus_secs(wh::ROTATION_OVERLAP_SECS));
        w.endpoint.updated_at = now;
        let audit = Self::webhook_audit(actor, now, "webhook.rotate_secret", &w.endpoint);
        let endpoint = w.endpoint.clone();
        self.store.webhook_update(w, expected, audit).await?;
        Ok(WebhookCreated {
            endpoint,
            secret: secret.to_whsec().to_string(),
        })
    }

    /// `GET /v0/webhooks/{id}/deliveries`: the delivery log, newest first.
    pub async fn list_webhook_deliveries(
        &self,
        actor: &Actor,
        id: &str,
        params: ListWebhooksParams,
    ) -> Result<Page<WebhookDelivery>> {
        let limit = page_limit(params.limit)?;
        let before = cursor(params.cursor.as_deref())?;
        let w = self.load_webhook(actor, id).await?;
        Ok(page(
            self.store.webhook_deliveries(&w.endpoint.id, before, limit).await?,
        ))
    }

    /// `POST /v0/webhooks/{id}/deliveries/{delivery_id}/replay`: posts that delivery's event
    /// again, now (same `webhook-id`, a new timestamp and signature), outside the endpoint's
    /// sequence, and logs it; answers the new log entry.
    pub async fn replay_webhook_delivery(&self, actor: &Actor, id: &str, delivery: &str) -> Result<WebhookDelivery> {
        let delivery = WebhookDeliveryId::parse(delivery)?;
        let w = self.load_webhook(actor, id).await?;
        let logged = self
            .store
            .webhook_delivery(&w.endpoint.id, &delivery)
            .await?
            .ok_or_else(|| Error::not_found("delivery"))?;
        let seq = events::parse_position(&logged.event_id)?;
        let event = self
            .store
            .events_after(EventQuery {
                after: seq - 1,
                identity: None,
                kinds: vec![],
                limit: 1,
            })
            .await?
            .into_iter()
            .find(|e| e.seq == seq)
            .ok_or_else(|| Error::not_found("event"))?;
        // Posted again only while the caller's key and the endpoint's owner may see it.
        Self::check_may_receive(actor, &[event.kind])?;
        let (owner, posts) = self.webhook_owner(&w).await?;
        if !posts || !Self::webhook_allows(owner.as_ref(), &event) {
            return Err(Error::forbidden(
                "event_not_visible",
                "the endpoint's identity may no longer see this event (a scope it lost, or it is paused or revoked)",
            ));
        }
        let mut sent = self.post_event(&w, &event, logged.attempt).await?;
        sent.replay = true;
        let audit = actor.audit(
            sent.at,
            "webhook.replay",
            Some(w.endpoint.id.to_string()),
            serde_json::json!({
                "delivery": logged.id, "event": event.id, "ok": sent.ok, "status_code": sent.status_code,
            }),
        );
        self.store.webhook_log(sent.clone(), audit).await?;
        Ok(sent)
    }

    /// Signs and posts one event to the endpoint: the attempt as logged (never an error for
    /// what the receiver or the network did).
    async fn post_event(&self, w: &StoredWebhook, event: &Event, attempt: u32) -> Result<WebhookDelivery> {
        let ring = self.keyring()?;
        let now = self.clock.now();
        let mut secrets = vec![Self::open_webhook_secret(&ring, &w.endpoint.id, &w.secret)?];
        if let (Some(prev), Some(until)) = (&w.previous, w.endpoint.previous_secret_expires_at)
            && until > now
        {
            secrets.push(Self::open_webhook_secret(&ring, &w.endpoint.id, prev)?);
        }
        let body = serde_json::to_vec(event).map_err(Error::internal)?;
        let ts = now.as_secs();
        let signature = wh::signature_header(&secrets.iter().collect::<Vec<_>>(), &event.id, ts, &body);
        let mut out = WebhookDelivery {
            id: WebhookDeliveryId::generate(self.random.as_ref()),
            webhook_id: w.endpoint.id.clone(),
            event_id: event.id.clone(),
            event_type: event.kind,
            attempt,
            ok: false,
            status_code: None,
            duration_ms: 0,
            error: None,
            replay: false,
            at: now,
        };
        let Ok(url) = url::Url::parse(&w.endpoint.url) else {
            out.error = Some("the endpoint's URL does not parse".into());
            return Ok(out);
        };
        let Some(broker) = &self.broker else {
            out.error = Some("this server makes no outbound HTTP requests".into());
            return Ok(out);
        };
        let request = BrokerRequest {
            method: "POST".into(),
            url,
            headers: vec![
                ("content-type".into(), SecretString::from("application/json")),
                ("webhook-id".into(), SecretString::from(event.id.clone())),
                ("webhook-timestamp".into(), SecretString::from(ts.to_string())),
                ("webhook-signature".into(), SecretString::from(signature)),
            ],
            body: Some(body),
            max_response_bytes: 1024,
            timeout: self.webhooks.timeout,
        };
        let started = Instant::now();
        let result = broker.send(request).await;
        out.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok(r) => {
                out.status_code = Some(r.status);
                out.ok = (200..300).contains(&r.status);
                if !out.ok {
                    out.error = Some(format!("the receiver answered HTTP {}", r.status));
                }
            }
            Err(e) => out.error = Some(e.public_message()),
        }
        Ok(out)
    }

    /// Queues a delivery job for every endpoint that has events waiting and no job (the job
    /// runner calls this on each pass and whenever events became visible).
    pub async fn queue_webhook_jobs(&self) -> Result<u32> {
        let n = self
            .store
            .webhook_queue_due(NewJob {
                kind: wh::DELIVER_JOB.into(),
                payload: String::new(),
                owner: None,
                run_at: self.clock.now(),
                // The endpoint's failure streak decides when to stop, not the job's attempts.
                max_attempts: 1_000_000,
            })
            .await?;
        if n > 0 {
            self.bump_job_tick();
        }
        Ok(n)
    }

    /// The identity that registered an endpoint (`None` for the operator's), and whether the
    /// endpoint may post now: its owner is active and not paused (a paused identity's keys are
    /// refused, and so is everything acting for it; its events wait for it to be resumed).
    async fn webhook_owner(&self, w: &StoredWebhook) -> Result<(Option<crate::identity::Identity>, bool)> {
        let Some(o) = &w.endpoint.owner else {
            return Ok((None, true));
        };
        let owner = self.store.get_identity(o).await?;
        let posts = owner.as_ref().is_some_and(crate::identity::Identity::receives_webhooks);
        Ok((owner, posts))
    }

    /// Whether an event may go to this endpoint now: its owner's current scopes still allow
    /// the type (an identity that lost `mail:read` stops receiving mail events), and it is not
    /// about mail held for the owner that it may not see yet (`events::hidden_from_owner`).
    fn webhook_allows(owner: Option<&crate::identity::Identity>, event: &Event) -> bool {
        owner.is_none_or(|i| kind_allowed(&i.scopes, event.kind) && !super::events::hidden_from_owner(event))
    }

    /// The `webhook.deliver` job: posts the endpoint's events after its position, in order,
    /// for up to about 30 s; see the module docs.
    pub(crate) async fn deliver_webhook(&self, job: &Job) -> std::result::Result<(), JobError> {
        #[derive(Deserialize)]
        struct Payload {
            webhook_id: String,
        }
        let p: Payload = serde_json::from_str(&job.payload)
            .map_err(|e| JobError::Permanent(format!("a webhook job's payload does not parse: {e}")))?;
        let id = WebhookId::parse(&p.webhook_id).map_err(|e| JobError::Permanent(e.to_string()))?;
        let Some(w) = self.store.webhook_get(&id).await? else {
            return Ok(()); // deleted
        };
        if w.job_id != Some(job.id) {
            return Ok(()); // not this job's endpoint any more
        }
        if !w.endpoint.enabled {
            self.store.webhook_release(&id, job.id).await?;
            return Ok(());
        }
        let (owner, posts) = self.webhook_owner(&w).await?;
        if !posts {
            // The queueing statement skips such endpoints: this job raced a pause or revocation.
            self.store.webhook_release(&id, job.id).await?;
            return Ok(());
        }
        let started = Instant::now();
        let budget = std::time::Duration::from_secs(30);
        let mut state = DeliveryState {
            position: w.position,
            failures: w.failures(),
            failing_since: w.endpoint.failing_since,
        };
        'outer: while started.elapsed() < budget {
            let batch = self
                .store
                .events_after(EventQuery {
                    after: state.position,
                    identity: w.endpoint.identity.clone(),
                    kinds: w.endpoint.types.clone(),
                    limit: 50,
                })
                .await?;
            if batch.is_empty() {
                break;
            }
            for event in batch {
                if started.elapsed() >= budget {
                    break 'outer;
                }
                if !Self::webhook_allows(owner.as_ref(), &event) {
                    state.position = event.seq;
                    if !self.store.webhook_progress(&id, job.id, None, state).await? {
                        return Ok(());
                    }
                    continue;
                }
                let delivery = self.post_event(&w, &event, state.failures + 1).await?;
                if delivery.ok {
                    state = DeliveryState {
                        position: event.seq,
                        failures: 0,
                        failing_since: None,
                    };
                    if !self.store.webhook_progress(&id, job.id, Some(delivery), state).await? {
                        return Ok(());
                    }
                    continue;
                }
                let at = delivery.at;
                let reason = delivery.error.clone().unwrap_or_default();
                state.failures += 1;
                let since = *state.failing_since.get_or_insert(at);
                if !self.store.webhook_progress(&id, job.id, Some(delivery), state).await? {
                    return Ok(());
                }
                if at.as_secs() - since.as_secs() >= self.webhooks.disable_after_secs {
                    self.disable_webhook(&w, job.id, state, &reason).await?;
                    return Ok(());
                }
                return Err(JobError::Retry {
                    after_secs: self.webhooks.retry_delay(state.failures),
                    reason: format!("delivering {} to webhook {id}: {reason}", event.id),
                });
            }
        }
        // Out of events or out of time: let go, and queue again if more are waiting (also
        // those that became visible after the last look).
        if self.store.webhook_release(&id, job.id).await? {
            self.queue_webhook_jobs().await?;
        }
        Ok(())
    }

    async fn disable_webhook(&self, w: &StoredWebhook, job_id: i64, state: DeliveryState, reason: &str) -> Result<()> {
        let at = self.clock.now();
        let since = state.failing_since.unwrap_or(at);
        let why = format!(
            "disabled after failing since {} ({} attempts in a row); last error: {reason}",
            since.to_rfc3339(),
            state.failures
        );
        let mut entry = AuditEntry {
            at,
            actor_kind: crate::audit::ActorKind::System,
            actor_identity_id: None,
            key_id: None,
            action: "webhook.disable".into(),
            target: Some(w.endpoint.id.to_string()),
            outcome: crate::audit::Outcome::Ok,
            request_id: None,
            remote_addr: None,
            details: serde_json::json!({ "failures": state.failures, "failing_since": since }),
            events: Vec::new(),
        };
        let url = url::Url::parse(&w.endpoint.url).map_or_else(|_| String::new(), |u| url_for_audit(&u));
        entry.events.push(NewEvent {
            kind: EventKind::WebhookDisabled,
            identity: w.endpoint.owner.clone(),
            payload: serde_json::json!({
                "webhook_id": w.endpoint.id, "url": url, "failing_since": since, "failures": state.failures,
            }),
        });
        let woken = super::events::raised_by(&entry);
        if self
            .store
            .webhook_disable(&w.endpoint.id, job_id, why, at, entry)
            .await?
        {
            self.wake(&woken);
        }
        Ok(())
    }

    /// The keyring's re-wrap of webhook secrets (part of `vault rotate-master-key`).
    pub(super) async fn rewrap_webhook_secrets(&self, actor: &Actor, ring: &Keyring) -> Result<u64> {
        let current = ring.current().id().to_owned();
        let mut rewrapped = 0;
        for _ in 0..100_000 {
            let stale = self.store.webhook_stale(&current, 100).await?;
            if stale.is_empty() {
                break;
            }
            let mut batch = Vec::with_capacity(stale.len());
            for mut w in stale {
                let id = w.endpoint.id.as_str().to_owned();
                w.secret = v::rewrap_for(ring, self.random.as_ref(), &id, wh::SECRET_NAME, &w.secret)?;
                if let Some(prev) = &w.previous {
                    w.previous = Some(v::rewrap_for(ring, self.random.as_ref(), &id, wh::SECRET_NAME, prev)?);
                }
                let expected = w.version;
                batch.push((w, expected));
            }
            let audit = actor.audit(
                self.clock.now(),
                "webhook.rewrap",
                None,
                serde_json::json!({ "master_key_id": current, "batch": batch.len() }),
            );
            rewrapped += self.store.webhook_rewrap(batch, audit).await?;
        }
        Ok(rewrapped)
    }
}

impl StoredWebhook {
    fn failures(&self) -> u32 {
        self.endpoint.failures
    }
}
