//! The use cases: what an authenticated caller may do, checked and carried out.
//!
//! [`Loft`] is what every door holds. A door authenticates a request into an [`Actor`]
//! ([`Loft::authenticate`]) and calls one method per use case. This module decides *whether*
//! an action is allowed (scopes, ownership, delegation) and *what* it means (addresses,
//! threading, message building); the store carries it out in one transaction with its audit
//! row. Nothing here knows about HTTP or SQL.
//!
//! One file per area, each continuing `impl Loft` with that area's use cases and owning its
//! wire types (re-exported here; see [`crate::wire`]): `auth` (keys to actors, limits),
//! `identities`, `keys` (the minting rule), `messages`, `drafts`, `oversight`, `rules` (allow,
//! block and hold rules), `audit` and `vault`. This file holds what
//! they share: the [`Loft`] value and its settings, [`Actor`], pages, item lists and cursors.

use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::address;
use crate::audit::{ActorKind, AuditEntry, Outcome};
use crate::identity::Identity;
use crate::keys::{KeyMeta, OperatorKey, Scope, ScopeSet};
use crate::limits::{Limits, LimitsConfig};
use crate::mail;
use crate::oversight::OversightMode;
use crate::quota::{Quotas, RecipientBudget};
use crate::random::Random;
use crate::store::Store;
use crate::time::{Clock, Timestamp};
use crate::{Error, Result};

mod approval_context;
mod approval_edits;
mod audit;
mod auth;
mod caps;
mod console;
mod contacts;
mod delivery;
mod domains;
mod drafts;
mod events;
mod forward;
mod identities;
mod inbound;
mod inbound_holds;
mod inspect;
mod keys;
mod mailbox;
mod messages;
mod mode_requests;
mod notices;
mod oversight;
mod reads;
mod rules;
mod schedule;
mod search;
mod submission;
mod vault;
mod webhooks;

pub use approval_context::{ApprovalContext, CONTEXT_MESSAGES};
pub use approval_edits::EditHeldMail;
pub use audit::{AuditExportParams, ListAuditParams};
pub use auth::KEY_CACHE_TTL;
pub use caps::{SetIdentityCapsRequest, SetInstanceCapsRequest};
pub use console::{ConsoleInvite, ConsoleInviteLink, ConsoleUser, SignedIn};
pub use contacts::{ContactParams, ListContactsParams, UpsertContact};
pub use delivery::{ListSuppressionsParams, OutgoingDelivery};
pub use drafts::{CreateDraftRequest, ListDraftsParams, SendDraftRequest, UpdateDraftRequest};
pub use events::{EventPage, EventParams, EventScope};
pub use identities::{CreateIdentityRequest, ListIdentitiesParams, RevokedIdentities, UpdateIdentityRequest};
pub use inbound::InboundReceipt;
pub use inspect::CredentialOverview;
use keys::MintCeiling;
pub use keys::{CreateKeyRequest, MAX_KEY_LIFETIME_SECS};
pub use mailbox::Deleted;
pub use messages::{
    AttachmentFile, GetThreadParams, ListMessagesParams, ListThreadsParams, MAX_WAIT_SECONDS, WaitParams, WaitResult,
};
pub use mode_requests::{DenyModeRequest, ListModeRequestsParams, MAX_MODE_REASON, RequestModeRequest};
pub use notices::{ConfirmNoticeRequest, NoticeSetting, PendingAddress, SetNoticeRequest};
pub use oversight::{
    ApprovalView, BatchDecision, BatchOutcome, DecideRequest, InstanceStatus, ListApprovalsParams, RejectRequest,
};
pub use rules::{CreateRuleRequest, ListRulesParams};
pub use schedule::RescheduleRequest;
pub use search::SearchParams;
#[cfg(feature = "openapi")]
pub use vault::UpdateCredentialSchema;
pub use vault::{
    BackupCode, BrokeredHttpRequest, BrokeredHttpResponse, CredentialView, GetCredentialParams, InjectInput,
    ListCredentialsParams, RotationReport, StoreCredentialRequest,
};
pub use webhooks::{CreateWebhookRequest, ListWebhooksParams, UpdateWebhookRequest};

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Deploy-time settings the use cases need.
#[derive(Debug, Clone)]
pub struct LoftConfig {
    /// Mail domain of new identities.
    pub domain: String,
    /// Largest text + HTML body accepted for one message.
    pub max_body_bytes: usize,
    /// Largest total (decoded) size of the files attached to one sent mail.
    pub max_attachment_bytes: usize,
    /// The oversight mode of new identities when the request names none
    /// (`loft serve --default-oversight-mode`; [`OversightMode::DEFAULT`] otherwise).
    pub default_oversight_mode: OversightMode,
    /// How long held mail waits for a reviewer before it expires.
    pub approval_ttl_secs: i64,
    /// Where people open the web console (`https://loft.example.com`, no trailing slash):
    /// `--public-url`, or the HTTP address. Held-mail events and notices link to an
    /// approval's page under it; `None` leaves the link out.
    pub console_url: Option<String>,
    /// What becomes of mail from outside that fails DMARC (`loft serve --dmarc`).
    pub dmarc: crate::mailauth::DmarcEnforcement,
}

/// Held mail expires after three days unless the operator sets another time.
pub const DEFAULT_APPROVAL_TTL_SECS: i64 = 3 * 24 * 3600;

impl LoftConfig {
    /// A configuration with every setting but the domain at its default.
    pub fn new(domain: impl Into<String>) -> Self {
        Self {
            domain: domain.into(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_attachment_bytes: crate::mail::DEFAULT_MAX_ATTACHMENT_BYTES,
            default_oversight_mode: OversightMode::DEFAULT,
            approval_ttl_secs: DEFAULT_APPROVAL_TTL_SECS,
            console_url: None,
            dmarc: crate::mailauth::DmarcEnforcement::Enforce,
        }
    }
}

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub remote_addr: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Principal {
    Operator,
    Identity {
        identity: Box<Identity>,
        key: Box<KeyMeta>,
        /// Key scopes within the identity's scopes.
        scopes: ScopeSet,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Actor {
    pub principal: Principal,
    pub ctx: RequestContext,
}

impl Actor {
    pub fn is_operator(&self) -> bool {
        matches!(self.principal, Principal::Operator)
    }

    pub fn identity(&self) -> Option<&Identity> {
        match &self.principal {
            Principal::Identity { identity, .. } => Some(identity),
            Principal::Operator => None,
        }
    }

    pub fn scopes(&self) -> ScopeSet {
        match &self.principal {
            Principal::Operator => ScopeSet::new(Scope::ALL),
            Principal::Identity { scopes, .. } => scopes.clone(),
        }
    }

    pub fn key_id(&self) -> String {
        match &self.principal {
            Principal::Operator => "operator".into(),
            Principal::Identity { key, .. } => key.id.to_string(),
        }
    }

    /// The identity acting, holding `scope`. The operator is not an identity: routes that act
    /// as one (mail, vault) need an identity key.
    pub fn require(&self, scope: Scope) -> Result<&Identity> {
        match &self.principal {
            Principal::Operator => Err(Error::forbidden(
                "identity_key_required",
                "this route acts as an identity; the operator key is not one",
            )
            .with_hint("use the API key of the identity that should act (returned by `POST /v0/identities`)")),
            Principal::Identity { identity, scopes, .. } => {
                if scopes.contains(scope) {
                    Ok(identity)
                } else {
                    Err(Error::MissingScope { scope })
                }
            }
        }
    }

    /// The calling key's own id, when it is an identity key.
    fn own_key(&self) -> Option<&KeyMeta> {
        match &self.principal {
            Principal::Identity { key, .. } => Some(key),
            Principal::Operator => None,
        }
    }

    /// Key management (listing, minting, revoking keys; revoking identities) needs
    /// `keys:manage` on an identity key; the operator always may.
    fn require_keys_manage(&self) -> Result<()> {
        match &self.principal {
            Principal::Operator => Ok(()),
            Principal::Identity { scopes, .. } if scopes.contains(Scope::KeysManage) => Ok(()),
            Principal::Identity { .. } => Err(Error::MissingScope {
                scope: Scope::KeysManage,
            }),
        }
    }

    /// What any key this actor mints may hold at most: see [`MintCeiling`].
    fn mint_ceiling(&self) -> MintCeiling {
        match &self.principal {
            Principal::Operator => MintCeiling {
                scopes: ScopeSet::new(Scope::ALL),
                expires_at: None,
            },
            Principal::Identity { key, scopes, .. } => MintCeiling {
                scopes: scopes.clone(),
                expires_at: key.expires_at,
            },
        }
    }

    fn audit(&self, at: Timestamp, action: &str, target: Option<String>, details: serde_json::Value) -> AuditEntry {
        let (kind, id) = match &self.principal {
            Principal::Operator => (ActorKind::Operator, None),
            Principal::Identity { identity, .. } => (ActorKind::Identity, Some(identity.id.clone())),
        };
        AuditEntry {
            at,
            actor_kind: kind,
            actor_identity_id: id,
            key_id: Some(self.key_id()),
            action: action.into(),
            target,
            outcome: Outcome::Ok,
            request_id: self.ctx.request_id.clone(),
            remote_addr: self.ctx.remote_addr.clone(),
            details,
            events: Vec::new(),
        }
    }
}

/// A page of results and the cursor for the next one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A result that may be served many times (one kept by `service/reads.rs`: a mailbox page,
/// a `whoami`): its JSON is made once, by the first door that asks, and shared after. Reads
/// as the value.
#[derive(Debug, Clone)]
pub struct Shared<T> {
    value: T,
    json: std::sync::OnceLock<Arc<[u8]>>,
}

/// A mailbox page, shared (see [`Shared`]).
pub type SharedPage<T> = Shared<Page<T>>;

impl<T> Shared<T> {
    pub fn new(value: T) -> Self {
        Self {
            value,
            json: std::sync::OnceLock::new(),
        }
    }

    /// The value, taken out of its share (copied when others hold it too).
    pub fn into_inner(self: Arc<Self>) -> T
    where
        T: Clone,
    {
        Arc::unwrap_or_clone(self).value
    }
}

impl<T: Serialize> Shared<T> {
    /// The value as JSON, made at the first call.
    pub fn json(&self) -> Result<Arc<[u8]>> {
        if let Some(json) = self.json.get() {
            return Ok(Arc::clone(json));
        }
        let json: Arc<[u8]> = serde_json::to_vec(&self.value)
            .map_err(|e| Error::Internal(format!("serialising an answer: {e}")))?
            .into();
        // Another caller may have made it meanwhile: either copy is the same.
        Ok(Arc::clone(self.json.get_or_init(|| json)))
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// A plain list wrapped in an object, so that fields can be added later without breaking
/// clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Items<T> {
    pub items: Vec<T>,
}

pub fn encode_cursor(seq: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{seq}"))
}

pub fn decode_cursor(cursor: &str) -> Result<i64> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("v1:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| {
            Error::invalid("invalid_cursor", "the cursor is not one this server issued")
                .with_hint("pass `next_cursor` from the previous page unchanged")
        })
}

fn page<T>(p: mail::StorePage<T>) -> Page<T> {
    Page {
        items: p.items,
        next_cursor: p.next_before.map(encode_cursor),
    }
}

fn page_limit(limit: Option<u32>) -> Result<u32> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(Error::invalid(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_PAGE}, not {n}"),
        )),
    }
}

fn cursor(c: Option<&str>) -> Result<Option<i64>> {
    c.filter(|c| !c.is_empty()).map(decode_cursor).transpose()
}

/// The service every door holds.
pub struct Loft {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    operator: OperatorKey,
    config: LoftConfig,
    /// Wakes the waiters of identities with news (see `service/events.rs`).
    hub: Arc<events::EventHub>,
    /// How many times a waiter (`mail_wait`, an event stream) looked at the database.
    waiter_looks: std::sync::atomic::AtomicU64,
    /// Keys looked up in the last few milliseconds (`service/auth.rs`).
    key_cache: auth::KeyCache,
    /// Results of the hottest reads, while the store has written nothing since (`service/reads.rs`).
    reads: reads::Reads,
    /// Bumped whenever this process queues a job the runner runs (a scheduled send).
    job_tick: watch::Sender<u64>,
    /// Set when the server is stopping: waits answer at once.
    stopping: watch::Sender<bool>,
    /// The master keyring; `None` until [`Loft::with_vault`] (vault routes then refuse).
    vault: Option<vault::VaultKeys>,
    /// Outbound HTTP for brokered calls; `None` until [`Loft::with_broker`].
    broker: Option<Arc<dyn crate::vault::HttpBroker>>,
    /// Request limits and refused-key counts; off until [`Loft::with_limits`].
    limits: Limits,
    /// Per-identity quotas ([`Quotas::default`] unless [`Loft::with_quotas`]).
    quotas: Quotas,
    /// This process's hourly budgets of queued remote recipients.
    recipient_budget: RecipientBudget,
    /// Whether mail to addresses outside this server is queued for SMTP delivery; without
    /// it such a send is refused at once rather than queued for ever.
    outbound: bool,
    /// DKIM keys, signing, inbound SPF / DKIM / DMARC and DNS; `None` until
    /// [`Loft::with_mail_auth`] (domains then refuse to be added, and received mail is
    /// marked not verified).
    mail_auth: Option<Arc<dyn crate::mailauth::MailAuth>>,
    /// The webhook delivery schedule ([`crate::webhooks::WebhookSettings::default`] unless
    /// [`Loft::with_webhooks`]).
    webhooks: crate::webhooks::WebhookSettings,
    /// Refused console sign-ins per address and minute (always on).
    console_limiter: crate::console::SignInLimiter,
}

impl Loft {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
        operator: OperatorKey,
        config: LoftConfig,
    ) -> Result<Self> {
        address::validate_domain(&config.domain)?;
        let hub = Self::event_hub(&store);
        Ok(Self {
            store,
            clock,
            random,
            operator,
            config,
            hub,
            waiter_looks: std::sync::atomic::AtomicU64::new(0),
            key_cache: auth::KeyCache::default(),
            reads: reads::Reads::default(),
            job_tick: watch::channel(0).0,
            stopping: watch::channel(false).0,
            vault: None,
            broker: None,
            limits: Limits::new(LimitsConfig::off()),
            quotas: Quotas::default(),
            recipient_budget: RecipientBudget::default(),
            outbound: false,
            mail_auth: None,
            webhooks: crate::webhooks::WebhookSettings::default(),
            console_limiter: crate::console::SignInLimiter::default(),
        })
    }

    /// Accepts mail for addresses outside this server, queued as delivery jobs for the SMTP
    /// worker (off by default: until a worker delivers them, such mail would never leave).
    #[must_use]
    pub fn with_outbound(mut self, enabled: bool) -> Self {
        self.outbound = enabled;
        self
    }

    /// Mail authentication: DKIM keys of hosted domains, signing, inbound verdicts, DNS.
    #[must_use]
    pub fn with_mail_auth(mut self, mail_auth: Arc<dyn crate::mailauth::MailAuth>) -> Self {
        self.mail_auth = Some(mail_auth);
        self
    }

    /// Sets the per-identity quotas (deploy-time: `loft serve --quota NAME=N`).
    #[must_use]
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// Limits requests per key and per address, and locks out addresses that present too
    /// many refused keys (`loft serve` turns them on with generous defaults).
    #[must_use]
    pub fn with_limits(mut self, config: LimitsConfig) -> Self {
        self.limits = Limits::new(config);
        self
    }

    /// What becomes of mail from outside that fails DMARC (`LoftConfig::dmarc`).
    #[must_use]
    pub fn with_dmarc(mut self, dmarc: crate::mailauth::DmarcEnforcement) -> Self {
        self.config.dmarc = dmarc;
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn config(&self) -> &LoftConfig {
        &self.config
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// How many times waiters (`mail_wait`, the long poll, event streams) have looked at the
    /// database: what idle waiting costs, for tests and benchmarks (it should not grow while
    /// nothing happens).
    pub fn waiter_looks(&self) -> u64 {
        self.waiter_looks.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_look(&self) {
        self.waiter_looks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether [`Loft::begin_shutdown`] was called (streams end).
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// The server is stopping: long polls return now (as timed out) so that shutdown is not
    /// held up by them.
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
    }

    /// The hub, relaying the store's signals of other nodes' events when it has them (and a
    /// runtime is there to relay them on).
    fn event_hub(store: &Arc<dyn Store>) -> Arc<events::EventHub> {
        let hub = events::EventHub::new();
        if let (Some(signals), Ok(_)) = (store.event_signals(), tokio::runtime::Handle::try_current()) {
            events::EventHub::relay(Arc::downgrade(&hub), signals);
        }
        hub
    }

    /// Subscribes to the jobs this process queues for the runner (a hint to look again).
    pub fn job_ticks(&self) -> watch::Receiver<u64> {
        self.job_tick.subscribe()
    }

    /// Tells the runner that this process queued a job.
    pub(crate) fn bump_job_tick(&self) {
        self.job_tick.send_modify(|t| *t += 1);
    }

    /// A watch that changes whenever events became visible (written here, or signalled by
    /// another node): the runner queues webhook deliveries then.
    pub fn event_ticks(&self) -> watch::Receiver<u64> {
        self.hub.watch_all()
    }
}
