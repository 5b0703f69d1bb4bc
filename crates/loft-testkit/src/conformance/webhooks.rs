//! Webhooks: endpoints (who may register, see and change which), their position and delivery
//! job (in order, one at a time, retried with backoff after a failure, disabled after a long
//! streak with an event), the delivery log, replay, secret rotation with overlap, and the
//! vault keyring's rewrap of their secrets. Deliveries go to a scripted broker that records
//! what it was asked to send (the real HTTP path is tested in `loft-web` and in Python).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use loft_core::Error;
use loft_core::events::EventKind;
use loft_core::jobs::NewJob;
use loft_core::runner::JobRunner;
use loft_core::service::{
    CreateWebhookRequest, EventParams, ListWebhooksParams, UpdateIdentityRequest, UpdateWebhookRequest,
};
use loft_core::store::Store;
use loft_core::vault::{BrokerRequest, BrokerResponse, HttpBroker, Keyring, MasterKey};
use loft_core::webhooks::{self as wh, DeliveryState, SigningSecret, WebhookSettings};
use secrecy::ExposeSecret as _;

use crate::{expect_err, test_loft};

/// One request the broker was asked to make.
#[derive(Debug, Clone)]
pub struct Sent {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Sent {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn event(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a webhook body is JSON")
    }

    /// Whether the signature header holds a valid signature under `secret`.
    pub fn signed_by(&self, secret: &str) -> bool {
        let ts: i64 = self.header("webhook-timestamp").parse().expect("a numeric timestamp");
        wh::verify(
            &SigningSecret::parse(secret).expect("a whsec_ secret"),
            self.header("webhook-signature"),
            self.header("webhook-id"),
            ts,
            &self.body,
        )
    }
}

/// An [`HttpBroker`] that answers with scripted statuses (then `otherwise`) and records every
/// request; it connects to nothing.
#[derive(Debug)]
pub struct ScriptedBroker {
    answers: Mutex<VecDeque<u16>>,
    otherwise: u16,
    seen: Mutex<Vec<Sent>>,
}

impl ScriptedBroker {
    pub fn new(answers: &[u16], otherwise: u16) -> Arc<Self> {
        Arc::new(Self {
            answers: Mutex::new(answers.iter().copied().collect()),
            otherwise,
            seen: Mutex::new(Vec::new()),
        })
    }

    pub fn seen(&self) -> Vec<Sent> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait::async_trait]
impl HttpBroker for ScriptedBroker {
    async fn send(&self, request: BrokerRequest) -> loft_core::Result<BrokerResponse> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Sent {
                url: request.url.to_string(),
                headers: request
                    .headers
                    .iter()
                    .map(|(n, v)| (n.clone(), v.expose_secret().to_owned()))
                    .collect(),
                body: request.body.clone().unwrap_or_default(),
            });
        let status = self
            .answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front()
            .unwrap_or(self.otherwise);
        Ok(BrokerResponse {
            status,
            headers: vec![],
            body: vec![],
            truncated: false,
        })
    }
}

fn req(url: &str, types: &[&str]) -> CreateWebhookRequest {
    CreateWebhookRequest {
        url: url.into(),
        types: types.iter().map(|s| (*s).to_owned()).collect(),
        description: None,
        identity: None,
    }
}

fn ids(seen: &[Sent]) -> Vec<String> {
    seen.iter().map(|s| s.header("webhook-id").to_owned()).collect()
}

/// Events are delivered to an endpoint in order, one at a time; a failure is retried after
/// the backoff and the events behind it wait; each attempt is logged; the body is the event
/// as `GET /v0/events` serves it, signed with the secret shown at registration.
pub async fn webhooks_deliver_in_order_and_retry(store: Arc<dyn Store>) {
    let base = test_loft(store);
    let broker = ScriptedBroker::new(&[500], 200);
    let t = base.with_broker(broker.clone(), WebhookSettings::default());
    let runner = JobRunner::new(t.loft.clone(), "test-runner");
    let (a, aa) = t.identity("alice").await;
    let (_b, bb) = t.identity("bob").await;
    // Something before the registration is not delivered.
    t.send(&bb, &[a.identity.address.as_str()], "before", "x").await;
    let created = t
        .loft
        .create_webhook(&aa, req("https://hooks.example.com/loft", &["message.*"]))
        .await
        .unwrap();
    assert!(created.secret.starts_with("whsec_"));
    assert!(
        !format!("{created:?}").contains(&created.secret),
        "Debug hides the secret"
    );
    let w = created.endpoint.clone();
    assert_eq!(w.owner.as_ref(), Some(&a.identity.id));
    assert_eq!(
        w.types,
        [
            EventKind::MessageBounced,
            EventKind::MessageDelivered,
            EventKind::MessageReceived,
            EventKind::MessageSent
        ]
    );
    for n in 1..=3 {
        t.send(&bb, &[a.identity.address.as_str()], &format!("mail {n}"), "x")
            .await;
    }
    let alices = t.loft.list_events(&aa, EventParams::default()).await.unwrap().items;
    let want: Vec<String> = alices.iter().rev().take(3).rev().map(|e| e.id.clone()).collect();

    // The first attempt fails: nothing else is sent, and it is retried after 10 s.
    let r = runner.run_due().await.unwrap();
    assert_eq!((r.retried, r.completed), (1, 0), "{r:?}");
    assert_eq!(ids(&broker.seen()), want[..1]);
    let got = t.loft.get_webhook(&aa, w.id.as_str()).await.unwrap();
    assert_eq!((got.failures, got.position.as_str()), (1, w.position.as_str()));
    assert!(got.failing_since.is_some());
    assert_eq!(runner.run_due().await.unwrap().retried, 0, "not before the backoff");
    assert_eq!(broker.seen().len(), 1);

    t.clock.advance_secs(10);
    runner.run_due().await.unwrap();
    let seen = broker.seen();
    assert_eq!(
        ids(&seen),
        [&want[..1], &want[..]].concat(),
        "the failed one again, then in order"
    );
    for s in &seen {
        assert!(s.signed_by(&created.secret), "signed with the shown secret");
        assert_eq!(s.header("content-type"), "application/json");
        assert_eq!(s.url, "https://hooks.example.com/loft");
        assert_eq!(s.event()["id"], s.header("webhook-id"));
        assert_eq!(s.event()["identity"], a.identity.id.as_str());
    }
    let served = alices.iter().find(|e| e.id == want[2]).unwrap();
    assert_eq!(
        seen[3].event(),
        serde_json::to_value(served).unwrap(),
        "the event as served"
    );
    let got = t.loft.get_webhook(&aa, w.id.as_str()).await.unwrap();
    assert_eq!((got.failures, got.failing_since), (0, None));
    assert_eq!(got.position, want[2]);

    // The log: newest first, with the attempt numbers and status codes.
    let log = t
        .loft
        .list_webhook_deliveries(&aa, w.id.as_str(), ListWebhooksParams::default())
        .await
        .unwrap()
        .items;
    let rows: Vec<(String, u32, Option<u16>, bool)> = log
        .iter()
        .map(|d| (d.event_id.clone(), d.attempt, d.status_code, d.ok))
        .collect();
    assert_eq!(
        rows,
        [
            (want[2].clone(), 1, Some(200), true),
            (want[1].clone(), 1, Some(200), true),
            (want[0].clone(), 2, Some(200), true),
            (want[0].clone(), 1, Some(500), false),
        ]
    );
    assert!(log[3].error.as_deref().unwrap().contains("500"));

    // Replay re-sends one logged delivery with the same webhook-id, outside the sequence.
    let replayed = t
        .loft
        .replay_webhook_delivery(&aa, w.id.as_str(), log[3].id.as_str())
        .await
        .unwrap();
    assert!(replayed.replay && replayed.ok);
    let seen = broker.seen();
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[4].header("webhook-id"), want[0]);
    assert!(seen[4].signed_by(&created.secret));
    assert_eq!(
        t.loft.get_webhook(&aa, w.id.as_str()).await.unwrap().position,
        want[2],
        "a replay does not move the position"
    );
    // Nothing more to do: no job is left running, and the next event is delivered at once.
    assert_eq!(runner.run_due().await.unwrap().completed, 0);
    t.send(&bb, &[a.identity.address.as_str()], "mail 4", "x").await;
    runner.run_due().await.unwrap();
    assert_eq!(broker.seen().len(), 6);
    // A sent mail of alice's is a `message.sent` (in the filter); a vault event is not.
    assert_eq!(broker.seen()[5].event()["type"], "message.received");
}

/// An endpoint failing every attempt is retried with doubling waits for more than a day, then
/// disabled after the streak with a `webhook.disabled` event for its identity; enabling it
/// again resumes from where it stopped.
pub async fn webhooks_disable_after_a_failure_streak(store: Arc<dyn Store>) {
    let base = test_loft(store);
    let broker = ScriptedBroker::new(&[], 503);
    let settings = WebhookSettings::default();
    let t = base.with_broker(broker.clone(), settings);
    let runner = JobRunner::new(t.loft.clone(), "test-runner");
    let (a, aa) = t.identity("alice").await;
    let (_b, bb) = t.identity("bob").await;
    let w = t
        .loft
        .create_webhook(&aa, req("https://down.example.com/", &["message.received"]))
        .await
        .unwrap()
        .endpoint;
    t.send(&bb, &[a.identity.address.as_str()], "hello", "x").await;
    let mut waited = 0;
    for attempt in 1..=100u32 {
        runner.run_due().await.unwrap();
        assert_eq!(broker.seen().len(), attempt as usize, "one attempt per due time");
        let got = t.loft.get_webhook(&aa, w.id.as_str()).await.unwrap();
        if !got.enabled {
            break;
        }
        let delay = settings.retry_delay(attempt);
        t.clock.advance_secs(delay);
        waited += delay;
    }
    let got = t.loft.get_webhook(&aa, w.id.as_str()).await.unwrap();
    assert!(!got.enabled, "disabled after the streak");
    assert!(waited >= settings.disable_after_secs && waited > 24 * 3600, "{waited}");
    assert!(broker.seen().len() > 20, "{} attempts", broker.seen().len());
    assert!(got.disabled_reason.as_deref().unwrap().contains("503"), "{got:?}");
    let disabled: Vec<_> = t
        .loft
        .list_events(
            &aa,
            EventParams {
                types: Some("webhook.disabled".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items;
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].payload["webhook_id"], w.id.as_str());
    assert_eq!(disabled[0].identity.as_ref(), Some(&a.identity.id));
    let audit = t
        .store()
        .list_audit(loft_core::audit::AuditQuery {
            action: Some("webhook.".into()),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = audit.items.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(actions, ["webhook.disable", "webhook.create"]);
    // Disabled: nothing more is tried, whatever happens.
    let tried = broker.seen().len();
    t.send(&bb, &[a.identity.address.as_str()], "more", "x").await;
    t.clock.advance_secs(24 * 3600);
    runner.run_due().await.unwrap();
    assert_eq!(broker.seen().len(), tried);
    // Enabled again (the receiver is back): the waiting events go out in order, at once.
    let t2 = t.with_broker(ScriptedBroker::new(&[], 200), settings);
    let runner2 = JobRunner::new(t2.loft.clone(), "test-runner-2");
    let again = t2
        .loft
        .update_webhook(
            &aa,
            w.id.as_str(),
            UpdateWebhookRequest {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(again.enabled && again.failures == 0 && again.disabled_reason.is_none());
    runner2.run_due().await.unwrap();
    let got = t2.loft.get_webhook(&aa, w.id.as_str()).await.unwrap();
    let latest = t2
        .loft
        .list_events(&aa, EventParams::default())
        .await
        .unwrap()
        .next_after;
    let received: Vec<_> = t2
        .loft
        .list_events(
            &aa,
            EventParams {
                types: Some("message.received".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items;
    assert_eq!(got.position, received.last().unwrap().id, "{latest}");
}

/// An identity key registers, sees and changes only its own endpoints, for its own events of
/// the types its scopes allow; the operator sees every endpoint and may register for anyone.
pub async fn webhooks_are_private(store: Arc<dyn Store>) {
    let base = test_loft(store);
    let broker = ScriptedBroker::new(&[], 200);
    let t = base.with_broker(broker.clone(), WebhookSettings::default());
    let runner = JobRunner::new(t.loft.clone(), "test-runner");
    let op = t.operator().await;
    let (a, aa) = t.identity("alice").await;
    let (b, bb) = t.identity("bob").await;
    let (_n, narrow) = t.identity_with_scopes("narrow", &["mail:send"]).await;
    let mine = t
        .loft
        .create_webhook(&aa, req("https://alice.example.com/", &[]))
        .await
        .unwrap()
        .endpoint;
    assert_eq!(mine.identity.as_ref(), Some(&a.identity.id));
    // Someone else's endpoint does not exist for bob.
    for e in [
        t.loft.get_webhook(&bb, mine.id.as_str()).await.map(|_| ()),
        t.loft
            .update_webhook(&bb, mine.id.as_str(), UpdateWebhookRequest::default())
            .await
            .map(|_| ()),
        t.loft.delete_webhook(&bb, mine.id.as_str()).await.map(|_| ()),
        t.loft.rotate_webhook_secret(&bb, mine.id.as_str()).await.map(|_| ()),
        t.loft
            .list_webhook_deliveries(&bb, mine.id.as_str(), ListWebhooksParams::default())
            .await
            .map(|_| ()),
    ] {
        assert!(matches!(expect_err(e), Error::NotFound(_)));
    }
    let bobs = t.loft.list_webhooks(&bb, ListWebhooksParams::default()).await.unwrap();
    assert!(bobs.items.is_empty());
    // Registering for another identity's events is the operator's.
    let mut other = req("https://bob.example.com/", &[]);
    other.identity = Some(a.identity.id.to_string());
    let e = expect_err(t.loft.create_webhook(&bb, other.clone()).await);
    assert!(matches!(&e, Error::Forbidden(d) if d.code == "operator_only"), "{e:?}");
    // A type the key may not see.
    let e = expect_err(
        t.loft
            .create_webhook(&narrow, req("https://n.example.com/", &["message.received"]))
            .await,
    );
    assert!(matches!(e, Error::MissingScope { .. }), "{e:?}");
    let e = expect_err(
        t.loft
            .create_webhook(&aa, req("https://a.example.com/", &["nope.*"]))
            .await,
    );
    assert!(
        matches!(&e, Error::Invalid(d) if d.code == "invalid_event_type"),
        "{e:?}"
    );
    // Every type the narrow key may see: not mail.
    let n = t
        .loft
        .create_webhook(&narrow, req("https://n.example.com/", &[]))
        .await
        .unwrap()
        .endpoint;
    assert!(!n.types.is_empty() && n.types.iter().all(|k| !k.as_str().starts_with("message.")));
    // Bad URLs.
    for bad in [
        "ftp://x.example.com/",
        "https://user:pw@x.example.com/",
        "not a url",
        "https://x.example.com/#frag",
    ] {
        let e = expect_err(t.loft.create_webhook(&aa, req(bad, &[])).await);
        assert!(
            matches!(&e, Error::Invalid(d) if d.code == "invalid_url"),
            "{bad}: {e:?}"
        );
    }
    // The operator: one identity's events, or everyone's.
    let for_bob = t.loft.create_webhook(&op, other).await.unwrap().endpoint;
    assert_eq!(
        (for_bob.owner.as_ref(), for_bob.identity.as_ref()),
        (None, Some(&a.identity.id))
    );
    let everyone = t
        .loft
        .create_webhook(&op, req("https://ops.example.com/", &["message.received"]))
        .await
        .unwrap()
        .endpoint;
    let all = t.loft.list_webhooks(&op, ListWebhooksParams::default()).await.unwrap();
    assert_eq!(all.items.len(), 4);
    let alices = t.loft.list_webhooks(&aa, ListWebhooksParams::default()).await.unwrap();
    assert_eq!(alices.items.len(), 1);

    // Mail to bob reaches the operator's everyone-endpoint, never alice's.
    t.send(&aa, &[b.identity.address.as_str()], "to bob", "x").await;
    runner.run_due().await.unwrap();
    let seen = broker.seen();
    let to = |url: &str| {
        seen.iter()
            .filter(|s| s.url == url)
            .map(Sent::event)
            .collect::<Vec<_>>()
    };
    let alice_got = to("https://alice.example.com/");
    assert_eq!(alice_got.len(), 1, "alice's own message.sent");
    assert_eq!(alice_got[0]["type"], "message.sent");
    let ops = to("https://ops.example.com/");
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0]["identity"], b.identity.id.as_str());
    let for_alice = to("https://bob.example.com/");
    assert_eq!(for_alice.len(), 1);
    assert_eq!(for_alice[0]["identity"], a.identity.id.as_str());
    assert!(to("https://n.example.com/").is_empty());

    // Alice loses mail:read: her endpoint stops receiving mail events.
    t.loft
        .update_identity(
            &op,
            a.identity.id.as_str(),
            UpdateIdentityRequest {
                scopes: Some(vec!["mail:send".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    t.send(&bb, &[a.identity.address.as_str()], "to alice", "x").await;
    runner.run_due().await.unwrap();
    assert_eq!(to("https://alice.example.com/").len(), 1);
    assert_eq!(
        broker
            .seen()
            .iter()
            .filter(|s| s.url == "https://alice.example.com/")
            .count(),
        1
    );
    // Deleting answers the endpoint and forgets it.
    t.loft.delete_webhook(&op, everyone.id.as_str()).await.unwrap();
    assert!(matches!(
        expect_err(t.loft.get_webhook(&op, everyone.id.as_str()).await),
        Error::NotFound(_)
    ));
}

/// Rotation: both secrets sign for a day, then only the new one; the vault keyring's rotation
/// rewraps webhook secrets as it does credentials.
pub async fn webhooks_rotate_secrets_and_rewrap(store: Arc<dyn Store>) {
    let base = test_loft(store);
    let broker = ScriptedBroker::new(&[], 200);
    let t = base.with_broker(broker.clone(), WebhookSettings::default());
    let runner = JobRunner::new(t.loft.clone(), "test-runner");
    let op = t.operator().await;
    let (a, aa) = t.identity("alice").await;
    let (_b, bb) = t.identity("bob").await;
    let created = t
        .loft
        .create_webhook(&aa, req("https://alice.example.com/", &["message.received"]))
        .await
        .unwrap();
    let id = created.endpoint.id.clone();
    let rotated = t.loft.rotate_webhook_secret(&aa, id.as_str()).await.unwrap();
    assert_ne!(rotated.secret, created.secret);
    assert!(rotated.endpoint.previous_secret_expires_at.is_some());
    t.send(&bb, &[a.identity.address.as_str()], "one", "x").await;
    runner.run_due().await.unwrap();
    let s = broker.seen().pop().unwrap();
    assert_eq!(s.header("webhook-signature").split(' ').count(), 2);
    assert!(s.signed_by(&created.secret) && s.signed_by(&rotated.secret));
    t.clock.advance_secs(wh::ROTATION_OVERLAP_SECS + 1);
    t.send(&bb, &[a.identity.address.as_str()], "two", "x").await;
    runner.run_due().await.unwrap();
    let s = broker.seen().pop().unwrap();
    assert_eq!(s.header("webhook-signature").split(' ').count(), 1);
    assert!(s.signed_by(&rotated.secret) && !s.signed_by(&created.secret));

    // Secrets are sealed: no byte of the secret in the stored row.
    let stored = t.store().webhook_get(&id).await.unwrap().unwrap();
    let raw = SigningSecret::parse(&rotated.secret).unwrap();
    assert!(
        !stored
            .secret
            .ciphertext
            .windows(raw.as_bytes().len())
            .any(|w| w == raw.as_bytes())
    );
    let old_key = t.keyring.current().id().to_owned();
    assert!(t.store().vault_key_ids_in_use().await.unwrap().contains(&old_key));

    // A new master key: the rotation rewraps both secrets, and deliveries still verify.
    let ring = Keyring::new(
        MasterKey::generate(&loft_core::random::OsRandom),
        vec![t.keyring.current().clone()],
    );
    let node = t
        .with_keyring(ring.clone())
        .with_broker(broker.clone(), WebhookSettings::default());
    node.loft.verify_vault_keys().await.unwrap();
    let report = node.loft.vault_rotate_master_key(&op).await.unwrap();
    assert!(report.rewrapped >= 1, "{report:?}");
    assert!(report.still_in_use.is_empty(), "{report:?}");
    let stored = node.store().webhook_get(&id).await.unwrap().unwrap();
    assert_eq!(stored.secret.master_key_id, ring.current().id());
    assert_eq!(stored.previous.as_ref().unwrap().master_key_id, ring.current().id());
    let runner = JobRunner::new(node.loft.clone(), "node-runner");
    t.send(&bb, &[a.identity.address.as_str()], "three", "x").await;
    runner.run_due().await.unwrap();
    assert!(broker.seen().pop().unwrap().signed_by(&rotated.secret));
}

/// The store's contract: one job per endpoint however often jobs are queued; progress and
/// release only for the endpoint's own job; versions guard settings; deleting takes the log.
pub async fn webhooks_store_contract(store: Arc<dyn Store>) {
    let base = test_loft(store);
    let t = base.with_broker(ScriptedBroker::new(&[], 200), WebhookSettings::default());
    let (a, aa) = t.identity("alice").await;
    let (_b, bb) = t.identity("bob").await;
    let w = t
        .loft
        .create_webhook(&aa, req("https://alice.example.com/", &[]))
        .await
        .unwrap()
        .endpoint;
    let job = || NewJob {
        kind: wh::DELIVER_JOB.into(),
        payload: String::new(),
        owner: None,
        run_at: t.loft.now(),
        max_attempts: 10,
    };
    assert_eq!(
        t.store().webhook_queue_due(job()).await.unwrap(),
        0,
        "nothing to deliver"
    );
    t.send(&bb, &[a.identity.address.as_str()], "x", "x").await;
    assert_eq!(t.store().webhook_queue_due(job()).await.unwrap(), 1);
    assert_eq!(
        t.store().webhook_queue_due(job()).await.unwrap(),
        0,
        "one job at a time"
    );
    let stored = t.store().webhook_get(&w.id).await.unwrap().unwrap();
    let job_id = stored.job_id.unwrap();
    let queued = t.store().get_job(job_id).await.unwrap().unwrap();
    assert_eq!(queued.kind, wh::DELIVER_JOB);
    assert!(queued.payload.contains(w.id.as_str()));
    let state = DeliveryState {
        position: stored.position + 1,
        failures: 0,
        failing_since: None,
    };
    assert!(
        !t.store()
            .webhook_progress(&w.id, job_id + 1000, None, state)
            .await
            .unwrap()
    );
    assert!(t.store().webhook_progress(&w.id, job_id, None, state).await.unwrap());
    assert!(!t.store().webhook_release(&w.id, job_id + 1000).await.unwrap());
    assert!(t.store().webhook_release(&w.id, job_id).await.unwrap());
    assert!(!t.store().webhook_release(&w.id, job_id).await.unwrap());
    let now = t.store().webhook_get(&w.id).await.unwrap().unwrap();
    assert_eq!((now.position, now.job_id), (stored.position + 1, None));
    // A stale version is refused, nothing written.
    let mut changed = now.clone();
    changed.endpoint.url = "https://elsewhere.example.com/".into();
    let audit = t.operator().await;
    let entry = loft_core::audit::AuditEntry {
        at: t.loft.now(),
        actor_kind: loft_core::audit::ActorKind::Operator,
        actor_identity_id: None,
        key_id: Some(audit.key_id()),
        action: "webhook.update".into(),
        target: Some(w.id.to_string()),
        outcome: loft_core::audit::Outcome::Ok,
        request_id: None,
        remote_addr: None,
        details: serde_json::json!({}),
        events: vec![],
    };
    let e = expect_err(
        t.store()
            .webhook_update(changed.clone(), now.version - 1, entry.clone())
            .await,
    );
    assert!(
        matches!(&e, Error::Conflict(d) if d.code == "version_conflict"),
        "{e:?}"
    );
    t.store()
        .webhook_update(changed, now.version, entry.clone())
        .await
        .unwrap();
    assert_eq!(
        t.store().webhook_get(&w.id).await.unwrap().unwrap().endpoint.url,
        "https://elsewhere.example.com/"
    );
    t.store().webhook_delete(&w.id, entry.clone()).await.unwrap();
    assert!(matches!(
        expect_err(t.store().webhook_delete(&w.id, entry).await),
        Error::NotFound(_)
    ));
    let e = expect_err(t.store().webhook_deliveries(&w.id, None, 10).await.and_then(|p| {
        if p.items.is_empty() {
            Err(Error::not_found("log"))
        } else {
            Ok(p)
        }
    }));
    assert!(matches!(e, Error::NotFound(_)));
}

/// The delivery log keeps each endpoint's newest `DELIVERY_LOG_KEEP` deliveries: recording one
/// more drops the oldest, and another endpoint's log is untouched.
pub async fn webhooks_delivery_log_is_bounded(store: Arc<dyn Store>) {
    let t = test_loft(store).with_broker(ScriptedBroker::new(&[], 200), WebhookSettings::default());
    let (_a, aa) = t.identity("alice").await;
    let full = t
        .loft
        .create_webhook(&aa, req("https://alice.example.com/full", &[]))
        .await
        .unwrap()
        .endpoint;
    let other = t
        .loft
        .create_webhook(&aa, req("https://alice.example.com/other", &[]))
        .await
        .unwrap()
        .endpoint;
    let delivery = |webhook: &wh::WebhookEndpoint, n: u32| wh::WebhookDelivery {
        id: loft_core::ids::WebhookDeliveryId::generate(&loft_core::random::OsRandom),
        webhook_id: webhook.id.clone(),
        event_id: format!("evt_{n}"),
        event_type: EventKind::MessageReceived,
        attempt: n,
        ok: true,
        status_code: Some(200),
        duration_ms: 1,
        error: None,
        replay: true,
        at: t.loft.now(),
    };
    let audit = || loft_core::audit::AuditEntry {
        at: t.loft.now(),
        actor_kind: loft_core::audit::ActorKind::System,
        actor_identity_id: None,
        key_id: None,
        action: "webhook.replay".into(),
        target: None,
        outcome: loft_core::audit::Outcome::Ok,
        request_id: None,
        remote_addr: None,
        details: serde_json::json!({}),
        events: vec![],
    };
    for n in 1..=2 {
        t.store().webhook_log(delivery(&other, n), audit()).await.unwrap();
    }
    let extra = 5;
    for n in 1..=wh::DELIVERY_LOG_KEEP + extra {
        t.store().webhook_log(delivery(&full, n), audit()).await.unwrap();
    }
    let mut kept = Vec::new();
    let mut before = None;
    loop {
        let page = t.store().webhook_deliveries(&full.id, before, 200).await.unwrap();
        kept.extend(page.items.iter().map(|d| d.attempt));
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    let expected: Vec<u32> = (extra + 1..=wh::DELIVERY_LOG_KEEP + extra).rev().collect();
    assert_eq!(kept, expected, "the newest are kept, newest first");
    let others = t.store().webhook_deliveries(&other.id, None, 200).await.unwrap();
    assert_eq!(others.items.len(), 2, "another endpoint's log is its own");
}

/// A key may only point an endpoint at events it may see itself: a key of the same identity
/// without `mail:read` cannot move or re-enable another key's endpoint, nor replay its mail
/// events. A paused identity's endpoints post nothing (its events wait for the resume), and a
/// replay for it is refused.
pub async fn webhooks_follow_the_callers_scopes_and_the_owners_pause(store: Arc<dyn Store>) {
    let broker = ScriptedBroker::new(&[], 200);
    let t = test_loft(store).with_broker(broker.clone(), WebhookSettings::default());
    let runner = JobRunner::new(t.loft.clone(), "test-runner");
    let op = t.operator().await;
    let (a, aa) = t.identity("alice").await;
    let (_b, bb) = t.identity("bob").await;
    let vault_only = t
        .loft
        .create_key(
            &aa,
            None,
            loft_core::service::CreateKeyRequest {
                scopes: Some(vec!["vault:read".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let narrow = t.actor(&vault_only.api_key).await;
    let w = t
        .loft
        .create_webhook(&aa, req("https://alice.example.com/", &[]))
        .await
        .unwrap()
        .endpoint;
    let moved = UpdateWebhookRequest {
        url: Some("https://attacker.example.net/".into()),
        ..Default::default()
    };
    let e = expect_err(t.loft.update_webhook(&narrow, w.id.as_str(), moved.clone()).await);
    assert!(matches!(e, Error::MissingScope { .. }), "{e:?}");
    let off = UpdateWebhookRequest {
        enabled: Some(false),
        ..Default::default()
    };
    t.loft.update_webhook(&narrow, w.id.as_str(), off).await.unwrap();
    let on = UpdateWebhookRequest {
        enabled: Some(true),
        ..Default::default()
    };
    let e = expect_err(t.loft.update_webhook(&narrow, w.id.as_str(), on.clone()).await);
    assert!(matches!(e, Error::MissingScope { .. }), "{e:?}");
    let e = expect_err(
        t.loft
            .update_webhook(
                &narrow,
                w.id.as_str(),
                UpdateWebhookRequest {
                    types: Some(vec!["message.*".into()]),
                    ..moved.clone()
                },
            )
            .await,
    );
    assert!(matches!(e, Error::MissingScope { .. }), "{e:?}");
    t.loft.update_webhook(&aa, w.id.as_str(), on).await.unwrap();
    assert_eq!(
        t.loft.get_webhook(&aa, w.id.as_str()).await.unwrap().url,
        "https://alice.example.com/",
        "nothing was moved"
    );

    // Delivered while alice is active; a replay of it by the narrow key is refused.
    t.send(&bb, &[a.identity.address.as_str()], "first", "x").await;
    runner.run_due().await.unwrap();
    assert_eq!(broker.seen().len(), 1);
    let logged = t
        .loft
        .list_webhook_deliveries(&aa, w.id.as_str(), ListWebhooksParams::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let e = expect_err(
        t.loft
            .replay_webhook_delivery(&narrow, w.id.as_str(), logged.id.as_str())
            .await,
    );
    assert!(matches!(e, Error::MissingScope { .. }), "{e:?}");

    // Paused: its events wait, nothing is posted, a replay is refused.
    t.loft.set_paused(&op, a.identity.id.as_str(), true).await.unwrap();
    t.send(&bb, &[a.identity.address.as_str()], "while paused", "x").await;
    runner.run_due().await.unwrap();
    assert_eq!(broker.seen().len(), 1, "nothing posted for a paused identity");
    let e = expect_err(
        t.loft
            .replay_webhook_delivery(&op, w.id.as_str(), logged.id.as_str())
            .await,
    );
    assert!(
        matches!(&e, Error::Forbidden(d) if d.code == "event_not_visible"),
        "{e:?}"
    );
    // Resumed: the waiting event goes out.
    t.loft.set_paused(&op, a.identity.id.as_str(), false).await.unwrap();
    runner.run_due().await.unwrap();
    let received: Vec<serde_json::Value> = broker
        .seen()
        .iter()
        .map(Sent::event)
        .filter(|e| e["type"] == "message.received")
        .collect();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1]["payload"]["subject"], "while paused");
}
