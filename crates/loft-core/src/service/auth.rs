//! Authentication: turning a bearer token into an [`Actor`], under the request limits and
//! the refused-key lockout of [`crate::limits`], with the short-lived key cache
//! ([`KeyCache`]) that spares most requests the key's database lookup.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Actor, Loft, Principal, RequestContext};
use crate::audit::{ActorKind, AuditEntry, Outcome};
use crate::identity::Identity;
use crate::keys::{ApiKey, KEY_PREFIX, KeyKind, StoredKey};
use crate::limits;
use crate::{Error, Result};

/// How long a node trusts a key (and its identity) as it read them from the database, unless
/// this node changed an identity or key meanwhile (then at once no longer; see [`KeyCache`]).
/// It bounds how late another node sees a revocation, a pause or a change of scopes or mode:
/// an authentication that starts this long after the change committed reads it.
pub const KEY_CACHE_TTL: Duration = Duration::from_millis(50);

/// Most keys remembered at once; past it, entries no longer valid are dropped, and all if
/// none is.
const KEY_CACHE_MAX: usize = 10_000;

/// Keys this node looked up recently, by key id: the stored key (with its digest) and its
/// identity, as `IdentityStore::find_key` returned them. Only what the store found is kept
/// (an unknown key id is looked up every time, so guessing fills nothing). An entry is used
/// only while it is younger than [`KEY_CACHE_TTL`], counted from *before* the lookup started,
/// and while the store's [`key_epoch`](crate::store::IdentityStore::key_epoch) is the one read
/// before the lookup: every identity or key change this node commits bumps the epoch after its
/// commit, so the node that revoked a key refuses it before the revocation's call returns.
/// Everything else stays checked per request: the token's digest against the stored one, the
/// revocation, expiry (against the clock now) and pause of the entry, the rate limits.
#[derive(Default)]
pub(crate) struct KeyCache {
    entries: Mutex<HashMap<String, Cached>>,
}

struct Cached {
    found: (StoredKey, Identity),
    epoch: u64,
    fetched: Instant,
}

impl KeyCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        // A panic while holding the lock leaves nothing half-written worth refusing service for.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, id: &str, epoch: u64) -> Option<(StoredKey, Identity)> {
        let entries = self.entries();
        let e = entries.get(id)?;
        (e.epoch == epoch && e.fetched.elapsed() < KEY_CACHE_TTL).then(|| e.found.clone())
    }

    fn put(&self, id: &str, found: (StoredKey, Identity), epoch: u64, fetched: Instant) {
        let mut entries = self.entries();
        if entries.len() >= KEY_CACHE_MAX && !entries.contains_key(id) {
            entries.retain(|_, e| e.epoch == epoch && e.fetched.elapsed() < KEY_CACHE_TTL);
            if entries.len() >= KEY_CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(id.to_owned(), Cached { found, epoch, fetched });
    }
}

impl Loft {
    /// Turns a bearer token into an [`Actor`], or refuses it.
    ///
    /// Before the key is looked at, the client address must not be locked out (too many
    /// refused keys in this window) nor over its request rate; after, the key must be within
    /// its own rate. Refusals are counted per address and written as aggregated audit rows by
    /// [`Loft::flush_auth_refusals`], never one row per request (a flood of bad keys would
    /// otherwise grow the log and slow every writer), and never naming a key id taken from a
    /// token that did not verify.
    pub async fn authenticate(&self, bearer: Option<&str>, ctx: RequestContext) -> Result<Actor> {
        let now = self.clock.now();
        let address = limits::address_key(ctx.remote_addr.as_deref());
        if let Err(wait) = self.limits.check_lockout(&address, now) {
            return Err(Error::too_many(
                "too_many_refused_keys",
                format!("too many refused API keys from this address; try again in {wait} s"),
                wait,
            )
            .with_hint("check that the key is copied whole and not revoked or expired before retrying"));
        }
        if let Err(wait) = self.limits.check_address(&address, now) {
            return Err(Error::too_many(
                "rate_limited",
                format!("too many requests from this address; try again in {wait} s"),
                wait,
            )
            .with_hint("slow down; the operator sets the limit with `--rate-limit-per-address`"));
        }
        match self.check_key(bearer).await {
            Ok(principal) => {
                if let Principal::Identity { key, .. } = &principal
                    && let Err(wait) = self.limits.check_key(key.id.as_str(), now)
                {
                    return Err(Error::too_many(
                        "rate_limited",
                        format!("too many requests with this key; try again in {wait} s"),
                        wait,
                    )
                    .with_hint("slow down, e.g. wait for mail with `mail_wait` instead of polling; the operator sets the limit with `--rate-limit-per-key`"));
                }
                Ok(Actor { principal, ctx })
            }
            Err((Some(reason), err)) => {
                self.limits.record_refusal(&address, reason, now);
                Err(err)
            }
            Err((None, err)) => Err(err),
        }
    }

    /// Writes the refused authentications of every window that has ended (every window, the
    /// current one included, when `everything`: at shutdown) as one `auth.refused` audit row
    /// per address and window, with the count and the reasons. Returns the rows written.
    pub async fn flush_auth_refusals(&self, everything: bool) -> Result<usize> {
        let rows = self.limits.take_refusals(self.clock.now(), everything);
        let n = rows.len();
        for r in rows {
            let entry = AuditEntry {
                at: self.clock.now(),
                actor_kind: ActorKind::Anonymous,
                actor_identity_id: None,
                key_id: None,
                action: "auth.refused".into(),
                target: None,
                outcome: Outcome::Denied,
                request_id: None,
                remote_addr: Some(r.address.clone()),
                details: serde_json::json!({
                    "count": r.count, "locked_out": r.locked_out, "reasons": r.reasons,
                    "window_start": r.window_start, "window_end": r.window_end,
                }),
                events: Vec::new(),
            };
            self.store.append_audit(entry).await?;
        }
        Ok(n)
    }

    /// `Err((Some(reason), error))` is a refused key, counted against the client address;
    /// `Err((None, error))` is a failure to check it (the database), not the client's fault.
    async fn check_key(&self, bearer: Option<&str>) -> std::result::Result<Principal, (Option<&'static str>, Error)> {
        let unknown = || {
            Error::unauthenticated("the API key is not valid").with_hint(
                "check that the whole key was copied; keys are shown only once, so mint a new one if it is lost",
            )
        };
        let Some(token) = bearer.map(str::trim).filter(|t| !t.is_empty()) else {
            return Err((
                Some("missing_key"),
                Error::unauthenticated("an API key is required").with_hint("send `Authorization: Bearer <key>`"),
            ));
        };
        if !token.starts_with(KEY_PREFIX) {
            return if self.operator.matches(token) {
                Ok(Principal::Operator)
            } else {
                Err((Some("unknown_key"), unknown()))
            };
        }
        let key = ApiKey::parse(token).map_err(|e| (Some("malformed_key"), e))?;
        // The epoch and the time are taken before the lookup (see `KeyCache`).
        let epoch = self.store.key_epoch();
        let found = if let Some(hit) = self.key_cache.get(key.id().as_str(), epoch) {
            Some(hit)
        } else {
            let started = Instant::now();
            let found = self.store.find_key(key.id()).await.map_err(|e| (None, e))?;
            if let Some(found) = &found {
                self.key_cache.put(key.id().as_str(), found.clone(), epoch, started);
            }
            found
        };
        let Some((stored, identity)) = found else {
            return Err((Some("unknown_key"), unknown()));
        };
        if !stored.digest.matches(&key.digest()) {
            return Err((Some("unknown_key"), unknown()));
        }
        self.admit(stored, identity)
    }

    /// Whether a caller authenticated a while ago (a long-lived stream) may still act: its key
    /// not revoked nor expired, its identity neither revoked nor paused. Returns the caller as
    /// it stands now (its scopes may have changed).
    pub async fn reauthenticate(&self, actor: &Actor) -> Result<Actor> {
        let Principal::Identity { key, .. } = &actor.principal else {
            return Ok(actor.clone());
        };
        let Some((stored, identity)) = self.store.find_key(&key.id).await? else {
            return Err(Error::unauthenticated("the API key is not valid"));
        };
        let principal = self.admit(stored, identity).map_err(|(_, e)| e)?;
        Ok(Actor {
            principal,
            ctx: actor.ctx.clone(),
        })
    }

    /// A key found and matched: refused when revoked, expired or its identity is not active.
    pub(super) fn admit(
        &self,
        stored: crate::keys::StoredKey,
        identity: crate::identity::Identity,
    ) -> std::result::Result<Principal, (Option<&'static str>, Error)> {
        if stored.meta.revoked_at.is_some() {
            return Err((
                Some("revoked_key"),
                Error::unauthenticated("this API key has been revoked"),
            ));
        }
        if !identity.is_active() {
            return Err((
                Some("revoked_identity"),
                Error::unauthenticated("the identity of this API key has been revoked"),
            ));
        }
        if let Some(at) = identity.paused_at {
            // Not a refused key (the key is right): no lockout counting, a 403.
            return Err((
                None,
                Error::forbidden(
                    "identity_paused",
                    format!(
                        "the operator paused this identity at {at}: it can neither send nor read until it is resumed"
                    ),
                )
                .with_hint("mail sent to it is kept; ask the operator (`loft identity resume ID`)"),
            ));
        }
        if stored.meta.expires_at.is_some_and(|t| t <= self.clock.now()) {
            return Err((
                Some("expired_key"),
                Error::unauthenticated("this API key has expired").with_hint("mint a new key with `loft key create`"),
            ));
        }
        // The primary key follows its identity's scopes (so `identity update --scopes` takes
        // effect at once, widening included); extra keys keep their own, within the identity's.
        let scopes = match stored.meta.kind {
            KeyKind::Primary => identity.scopes.clone(),
            KeyKind::Extra => stored.meta.scopes.intersection(&identity.scopes),
        };
        Ok(Principal::Identity {
            identity: Box::new(identity),
            key: Box::new(stored.meta),
            scopes,
        })
    }

    /// Refuses anyone but the operator, naming `what` was asked.
    pub(super) fn require_operator(actor: &Actor, what: &str) -> Result<()> {
        if actor.is_operator() {
            Ok(())
        } else {
            Err(Error::forbidden(
                "operator_only",
                format!("{what} needs the operator key"),
            ))
        }
    }
}
