//! Test support shared by every crate's tests: a [`Loft`] wired to a manual clock and a fresh
//! operator key ([`test_loft`]), small fixtures over it ([`TestLoft`]), a fresh PostgreSQL
//! database per test ([`pg`]), the storage conformance suite ([`conformance`]) that every
//! [`Store`] implementation must pass, and the arbitrary Unicode the doors' property tests
//! push through every text field ([`unicode`]).
//!
//! This crate depends on no store implementation: the store crates depend on it (as a
//! dev-dependency) and hand their store in as an `Arc<dyn Store>`. It is test code: it panics
//! with a precise message instead of returning errors, so that a failing test says what broke.

#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    reason = "test support: an unexpected error must fail the test that hit it, with its message"
)]
#![allow(
    clippy::doc_markdown,
    reason = "product names (PostgreSQL, SQLite) read better without backticks"
)]

pub mod conformance;
pub mod loopback;
pub mod pg;
pub mod unicode;

use std::sync::Arc;

use loft_core::audit::{AuditRecord, VerifyReport};
use loft_core::identity::CreatedIdentity;
use loft_core::keys::OperatorKey;
use loft_core::limits::LimitsConfig;
use loft_core::mail::{Message, MessageSummary, SendMail};
use loft_core::oversight::OversightMode;
use loft_core::quota::Quotas;
use loft_core::random::OsRandom;
use loft_core::service::{Actor, CreateIdentityRequest, ListMessagesParams, Loft, LoftConfig, RequestContext};
use loft_core::store::Store;
use loft_core::time::{ManualClock, Timestamp};
use loft_core::vault::{Keyring, MasterKey};
use loft_core::{Error, Result};
pub use loft_mailauth::StaticDns;

/// The mail domain of every test server.
pub const TEST_DOMAIN: &str = "agents.test";
/// The console URL of [`test_loft`] (`--public-url`): held-mail events and notices link under it.
pub const TEST_CONSOLE_URL: &str = "https://console.agents.test";

/// Where every manual clock starts: 2026-11-18T22:13:20Z, a fixed instant so that runs repeat.
pub const TEST_START: Timestamp = Timestamp::from_micros(1_795_000_000_000_000);

/// A [`Loft`] over some store, with the handles a test needs to drive it.
pub struct TestLoft {
    pub loft: Arc<Loft>,
    /// The operator key, as a client would send it.
    pub operator_key: String,
    /// The clock every use case reads; advance it to expire keys.
    pub clock: Arc<ManualClock>,
    /// The vault master keyring (a fresh random key per test).
    pub keyring: Keyring,
}

/// A Loft on `store` with domain [`TEST_DOMAIN`], OS randomness, a manual clock at
/// [`TEST_START`] and a freshly generated operator key.
pub fn test_loft(store: Arc<dyn Store>) -> TestLoft {
    test_loft_with_limits(store, LimitsConfig::off())
}

/// [`test_loft`] with request limits and the refused-key lockout on (they are off by default
/// in tests, which call far faster than any agent).
pub fn test_loft_with_limits(store: Arc<dyn Store>, limits: LimitsConfig) -> TestLoft {
    test_loft_with(store, limits, Quotas::off(), true)
}

/// [`test_loft`] as a server without outbound mail: sends to outside addresses are refused.
pub fn test_loft_local_only(store: Arc<dyn Store>) -> TestLoft {
    test_loft_with(store, LimitsConfig::off(), Quotas::off(), false)
}

/// [`test_loft`] with these quotas (tests run without quotas unless they ask).
pub fn test_loft_with_quotas(store: Arc<dyn Store>, quotas: Quotas) -> TestLoft {
    test_loft_with(store, LimitsConfig::off(), quotas, true)
}

fn test_loft_with(store: Arc<dyn Store>, limits: LimitsConfig, quotas: Quotas, outbound: bool) -> TestLoft {
    let operator_key = OperatorKey::generate(&OsRandom);
    let clock = Arc::new(ManualClock::new(TEST_START));
    let keyring = Keyring::new(MasterKey::generate(&OsRandom), vec![]);
    build(
        store,
        operator_key,
        clock,
        keyring,
        limits,
        quotas,
        outbound,
        StaticDns::default(),
    )
}

/// [`test_loft`] whose mail authentication (SPF / DKIM / DMARC of received mail, `domain
/// check`) sees these DNS answers and nothing else (every test Loft has mail authentication,
/// with no DNS answers unless given here: no test asks a real resolver).
pub fn test_loft_with_dns(store: Arc<dyn Store>, dns: StaticDns) -> TestLoft {
    let operator_key = OperatorKey::generate(&OsRandom);
    let clock = Arc::new(ManualClock::new(TEST_START));
    let keyring = Keyring::new(MasterKey::generate(&OsRandom), vec![]);
    build(
        store,
        operator_key,
        clock,
        keyring,
        LimitsConfig::off(),
        Quotas::off(),
        true,
        dns,
    )
}

#[allow(clippy::too_many_arguments, reason = "one private constructor behind the named ones")]
fn build(
    store: Arc<dyn Store>,
    operator_key: String,
    clock: Arc<ManualClock>,
    keyring: Keyring,
    limits: LimitsConfig,
    quotas: Quotas,
    outbound: bool,
    dns: StaticDns,
) -> TestLoft {
    build_with(
        store,
        operator_key,
        clock,
        keyring,
        limits,
        quotas,
        outbound,
        dns,
        |l| l,
    )
}

#[allow(
    clippy::too_many_arguments,
    reason = "the private builder behind the public constructors"
)]
fn build_with(
    store: Arc<dyn Store>,
    operator_key: String,
    clock: Arc<ManualClock>,
    keyring: Keyring,
    limits: LimitsConfig,
    quotas: Quotas,
    outbound: bool,
    dns: StaticDns,
    customize: impl FnOnce(Loft) -> Loft,
) -> TestLoft {
    let mail_auth = loft_mailauth::Authenticator::with_answers(dns).expect("the test resolver builds");
    let loft = Loft::new(
        store,
        clock.clone(),
        Arc::new(OsRandom),
        OperatorKey::from_secret(&operator_key).expect("a generated operator key is valid"),
        // Autonomous by default, so that the mail cases test mail; the oversight cases set
        // each identity's mode explicitly.
        LoftConfig {
            default_oversight_mode: OversightMode::Autonomous,
            console_url: Some(TEST_CONSOLE_URL.into()),
            ..LoftConfig::new(TEST_DOMAIN)
        },
    )
    .expect("the test configuration is valid")
    .with_vault(keyring.clone(), None)
    .with_limits(limits)
    .with_quotas(quotas)
    .with_outbound(outbound)
    .with_mail_auth(Arc::new(mail_auth));
    let loft = customize(loft);
    TestLoft {
        loft: Arc::new(loft),
        operator_key,
        clock,
        keyring,
    }
}

/// A [`SendMail`] with a text body and no cc/bcc.
pub fn mail(to: &[&str], subject: &str, text: &str) -> SendMail {
    SendMail {
        idempotency_key: None,
        send_at: None,
        to: to.iter().map(|s| (*s).to_owned()).collect(),
        cc: vec![],
        bcc: vec![],
        subject: subject.into(),
        text: text.into(),
        html: None,
        attachments: vec![],
    }
}

impl TestLoft {
    /// Another node on a second store handle (say a second connection pool to the same
    /// database): same operator key, same clock, its own [`Loft`].
    pub fn another_node(&self, store: Arc<dyn Store>) -> TestLoft {
        build(
            store,
            self.operator_key.clone(),
            self.clock.clone(),
            self.keyring.clone(),
            LimitsConfig::off(),
            Quotas::off(),
            true,
            StaticDns::default(),
        )
    }

    /// The same store, operator key and clock, with another vault keyring (a node restarted
    /// with other master keys).
    pub fn with_keyring(&self, keyring: Keyring) -> TestLoft {
        build(
            self.store().clone(),
            self.operator_key.clone(),
            self.clock.clone(),
            keyring,
            LimitsConfig::off(),
            Quotas::off(),
            true,
            StaticDns::default(),
        )
    }

    /// The same store, operator key, clock and keyring, whose mail authentication sees these
    /// DNS answers.
    pub fn with_dns(&self, dns: StaticDns) -> TestLoft {
        build(
            self.store().clone(),
            self.operator_key.clone(),
            self.clock.clone(),
            self.keyring.clone(),
            LimitsConfig::off(),
            Quotas::off(),
            true,
            dns,
        )
    }

    /// The same store, operator key, clock and keyring, with outbound HTTP through `broker`
    /// and this webhook delivery schedule.
    pub fn with_broker(
        &self,
        broker: Arc<dyn loft_core::vault::HttpBroker>,
        settings: loft_core::webhooks::WebhookSettings,
    ) -> TestLoft {
        build_with(
            self.store().clone(),
            self.operator_key.clone(),
            self.clock.clone(),
            self.keyring.clone(),
            LimitsConfig::off(),
            Quotas::off(),
            true,
            StaticDns::default(),
            move |l| l.with_broker(broker).with_webhooks(settings),
        )
    }

    /// The same store, operator key, clock and keyring, with these DNS answers and this
    /// handling of mail that fails DMARC.
    pub fn with_dmarc(&self, dns: StaticDns, dmarc: loft_core::mailauth::DmarcEnforcement) -> TestLoft {
        build_with(
            self.store().clone(),
            self.operator_key.clone(),
            self.clock.clone(),
            self.keyring.clone(),
            LimitsConfig::off(),
            Quotas::off(),
            true,
            dns,
            move |l| l.with_dmarc(dmarc),
        )
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        self.loft.store()
    }

    /// Authenticates a bearer token as a door would (refusals are counted, and written to
    /// the audit log by `Loft::flush_auth_refusals`).
    pub async fn authenticate(&self, key: &str) -> Result<Actor> {
        self.loft.authenticate(Some(key), RequestContext::default()).await
    }

    /// [`Self::authenticate`] from the client address `addr`.
    pub async fn authenticate_from(&self, key: &str, addr: &str) -> Result<Actor> {
        let ctx = RequestContext {
            request_id: None,
            remote_addr: Some(addr.to_owned()),
        };
        self.loft.authenticate(Some(key), ctx).await
    }

    /// An actor for a key that must work.
    pub async fn actor(&self, key: &str) -> Actor {
        match self.authenticate(key).await {
            Ok(actor) => actor,
            Err(e) => panic!("authenticating a key that should work failed: {e:?}"),
        }
    }

    /// The operator.
    pub async fn operator(&self) -> Actor {
        self.actor(&self.operator_key.clone()).await
    }

    /// A new identity created by the operator with default scopes, and an actor for its key.
    pub async fn identity(&self, name: &str) -> (CreatedIdentity, Actor) {
        self.identity_with(CreateIdentityRequest {
            name: name.into(),
            ..Default::default()
        })
        .await
    }

    /// A new identity created by the operator with exactly these scopes.
    pub async fn identity_with_scopes(&self, name: &str, scopes: &[&str]) -> (CreatedIdentity, Actor) {
        self.identity_with(CreateIdentityRequest {
            name: name.into(),
            scopes: Some(scopes.iter().map(|s| (*s).to_owned()).collect()),
            ..Default::default()
        })
        .await
    }

    /// A new identity created by the operator from a full request.
    pub async fn identity_with(&self, req: CreateIdentityRequest) -> (CreatedIdentity, Actor) {
        let op = self.operator().await;
        self.created_by(&op, req).await
    }

    /// A sub-identity created by `parent` (which needs `identity:create`); `scopes: None`
    /// takes the default.
    pub async fn child(&self, parent: &Actor, name: &str, scopes: Option<&[&str]>) -> (CreatedIdentity, Actor) {
        self.created_by(
            parent,
            CreateIdentityRequest {
                name: name.into(),
                scopes: scopes.map(|s| s.iter().map(|s| (*s).to_owned()).collect()),
                ..Default::default()
            },
        )
        .await
    }

    async fn created_by(&self, creator: &Actor, req: CreateIdentityRequest) -> (CreatedIdentity, Actor) {
        let name = req.name.clone();
        let created = match self.loft.create_identity(creator, req).await {
            Ok(c) => c,
            Err(e) => panic!("creating identity `{name}` failed: {e:?}"),
        };
        let actor = self.actor(&created.api_key).await;
        (created, actor)
    }

    /// Sends a plain-text message that must be accepted.
    pub async fn send(&self, from: &Actor, to: &[&str], subject: &str, text: &str) -> Message {
        match self.loft.send(from, mail(to, subject, text)).await {
            Ok(m) => m,
            Err(e) => panic!("sending `{subject}` to {to:?} failed: {e:?}"),
        }
    }

    /// Every message matching `params`, following cursors to the end (newest first).
    pub async fn all_messages(&self, actor: &Actor, params: ListMessagesParams) -> Vec<MessageSummary> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .loft
                .list_messages(
                    actor,
                    ListMessagesParams {
                        cursor: cursor.clone(),
                        ..params.clone()
                    },
                )
                .await
                .unwrap_or_else(|e| panic!("listing messages failed: {e:?}"))
                .into_inner();
            out.extend(page.items);
            match page.next_cursor {
                Some(c) if Some(&c) != cursor.as_ref() => cursor = Some(c),
                Some(_) => panic!("the store returned the same cursor twice"),
                None => return out,
            }
        }
    }

    /// The whole audit chain, oldest first, read as the operator would export it.
    pub async fn audit_rows(&self) -> Vec<AuditRecord> {
        let op = self.operator().await;
        let mut out: Vec<AuditRecord> = Vec::new();
        loop {
            let after = out.last().map_or(0, |r| r.seq);
            let rows = self
                .loft
                .audit_export(&op, after, 1000)
                .await
                .unwrap_or_else(|e| panic!("exporting the audit log failed: {e:?}"));
            if rows.is_empty() {
                return out;
            }
            out.extend(rows);
        }
    }

    /// The actions of the whole audit chain, oldest first.
    pub async fn audit_actions(&self) -> Vec<String> {
        self.audit_rows().await.into_iter().map(|r| r.entry.action).collect()
    }

    /// How many rows carry `action`.
    pub async fn audit_count(&self, action: &str) -> usize {
        self.audit_rows()
            .await
            .iter()
            .filter(|r| r.entry.action == action)
            .count()
    }

    /// The chain head's sequence number (0 before the first row).
    pub async fn audit_len(&self) -> i64 {
        self.store()
            .audit_head()
            .await
            .unwrap_or_else(|e| panic!("reading the audit head failed: {e:?}"))
            .map_or(0, |h| h.seq)
    }

    /// Verifies the chain on the server and fails the test, naming the problem, if it is not ok.
    pub async fn assert_chain_ok(&self) -> VerifyReport {
        let op = self.operator().await;
        let report = self
            .loft
            .audit_verify(&op)
            .await
            .unwrap_or_else(|e| panic!("verifying the audit log failed: {e:?}"));
        assert!(report.ok, "the audit chain does not verify: {report:?}");
        report
    }
}

/// The error of a result that must have failed.
/// `Store::whoami_context` reads what the three reads it gathers read one by one.
pub async fn assert_whoami_context(store: &dyn Store, identity: &loft_core::identity::Identity) {
    let id = &identity.id;
    let context = store.whoami_context(identity).await.unwrap();
    assert_eq!(
        context,
        loft_core::store::WhoAmIContext {
            ancestors: store.ancestors(id).await.unwrap(),
            instance_caps: store.instance_caps().await.unwrap(),
            mode_request: store.get_mode_request(id).await.unwrap(),
        }
    );
}

#[track_caller]
pub fn expect_err<T: std::fmt::Debug>(result: Result<T>) -> Error {
    match result {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}
