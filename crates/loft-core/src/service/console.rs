//! The web console's sign-in: operator-key and personal (password) sign-in, sessions, invites.
//!
//! A session turns into the same [`Actor`] a bearer key would: the operator, or the person's
//! own identity acting through its primary key (so every use case, and every audit row, is the
//! same as through REST). Who may do what stays with the use cases; this file only says who
//! is signed in. Secrets (tokens, passwords) are kept as digests and argon2id hashes
//! ([`crate::console`]).

use std::sync::OnceLock;

use super::{Actor, Loft, Principal, RequestContext};
use crate::address::EmailAddress;
use crate::audit::{ActorKind, AuditEntry, Outcome};
use crate::console::{self, ConsoleSession, INVITE_PREFIX, INVITE_TTL_SECS, Person, SESSION_PREFIX, SESSION_TTL_SECS};
use crate::identity::Identity;
use crate::ids::IdentityId;
use crate::keys::{KeyKind, Scope};
use crate::limits;
use crate::time::Timestamp;
use crate::{Error, Result};

/// A new session: the token goes into the cookie and nowhere else.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub token: secrecy::SecretString,
    pub expires_at: Timestamp,
}

/// The signed-in person behind a console request.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    /// Acts for them in every use case.
    pub actor: Actor,
    pub person: Person,
    /// Shown in the page header.
    pub name: String,
    /// Every form of the session's pages carries it.
    pub csrf: String,
    pub expires_at: Timestamp,
    digest: String,
}

impl ConsoleUser {
    pub fn is_operator(&self) -> bool {
        self.person == Person::Operator
    }
}

/// `POST /v0/identities/{id}/console-invite`: the one-time link a reviewer opens to set their
/// console password (shown once; a new one replaces it).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsoleInviteLink {
    pub identity_id: IdentityId,
    pub address: EmailAddress,
    /// The link's path on this server (`/invite/lci_...`): prefix it with the server's URL.
    pub path: String,
    pub expires_at: Timestamp,
}

impl From<ConsoleInvite> for ConsoleInviteLink {
    fn from(i: ConsoleInvite) -> Self {
        Self {
            identity_id: i.identity.id,
            address: i.identity.address,
            path: format!("/invite/{}", i.token),
            expires_at: i.expires_at,
        }
    }
}

/// A one-time link's token, shown once.
#[derive(Debug, Clone)]
pub struct ConsoleInvite {
    pub identity: Identity,
    pub token: String,
    pub expires_at: Timestamp,
}

fn refused() -> Error {
    Error::unauthenticated("the sign-in details are not right")
}

/// A hash to verify against when the address is unknown, so that an unknown address takes as
/// long to refuse as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        console::hash_password(&crate::random::SeededRandom::new(1), "decoy password, never accepted")
            .unwrap_or_default()
    })
}

impl Loft {
    fn sign_in_audit(&self, ctx: &RequestContext, outcome: Outcome, details: serde_json::Value) -> AuditEntry {
        AuditEntry {
            at: self.clock.now(),
            actor_kind: ActorKind::Anonymous,
            actor_identity_id: None,
            key_id: None,
            action: "console.sign_in".into(),
            target: None,
            outcome,
            request_id: ctx.request_id.clone(),
            remote_addr: ctx.remote_addr.clone(),
            details,
            events: Vec::new(),
        }
    }

    /// Refuses the attempt when its address used up its refusals this minute.
    fn sign_in_allowed(&self, ctx: &RequestContext) -> Result<String> {
        let address = limits::address_key(ctx.remote_addr.as_deref());
        self.console_limiter.check(&address, self.clock.now()).map_err(|wait| {
            Error::too_many(
                "too_many_sign_ins",
                format!("too many refused sign-ins from this address; try again in {wait} s"),
                wait,
            )
        })?;
        Ok(address)
    }

    /// Counts and audits a refused sign-in, and answers the error to show.
    async fn sign_in_refused(&self, ctx: &RequestContext, address: &str, method: &str, who: Option<&str>) -> Error {
        self.console_limiter.refused(address, self.clock.now());
        let entry = self.sign_in_audit(
            ctx,
            Outcome::Denied,
            serde_json::json!({ "method": method, "who": who }),
        );
        if let Err(e) = self.store.append_audit(entry).await {
            return e;
        }
        refused()
    }

    async fn open_session(&self, actor: &Actor, person: Person, method: &str) -> Result<SignedIn> {
        let token = console::new_token(self.random.as_ref(), SESSION_PREFIX);
        let now = self.clock.now();
        let session = ConsoleSession {
            digest: console::digest(&token),
            person,
            created_at: now,
            expires_at: now.plus_secs(SESSION_TTL_SECS),
        };
        let expires_at = session.expires_at;
        let audit = actor.audit(now, "console.sign_in", None, serde_json::json!({ "method": method }));
        self.store.create_console_session(session, audit).await?;
        Ok(SignedIn {
            token: token.into(),
            expires_at,
        })
    }

    /// Signs the operator in with the operator key.
    pub async fn console_sign_in_operator(&self, key: &str, ctx: RequestContext) -> Result<SignedIn> {
        let address = self.sign_in_allowed(&ctx)?;
        if !self.operator.matches(key.trim()) {
            return Err(self.sign_in_refused(&ctx, &address, "operator_key", None).await);
        }
        let actor = Actor {
            principal: Principal::Operator,
            ctx,
        };
        self.open_session(&actor, Person::Operator, "operator_key").await
    }

    /// Signs a person in with their identity's address and console password.
    pub async fn console_sign_in_password(
        &self,
        address: &str,
        password: &str,
        ctx: RequestContext,
    ) -> Result<SignedIn> {
        let client = self.sign_in_allowed(&ctx)?;
        let who = address.trim().to_lowercase();
        let parsed = EmailAddress::parse(&who).ok();
        let identity = match parsed {
            Some(a) => self
                .store
                .resolve_addresses(std::slice::from_ref(&a))
                .await?
                .into_iter()
                .next()
                .map(|(_, id)| id),
            None => None,
        };
        let login = match &identity {
            Some(id) => self.store.console_login(id).await?,
            None => None,
        };
        let stored = login.as_ref().and_then(|l| l.password_hash.clone());
        let ok = console::verify_password(stored.as_deref().unwrap_or(decoy_hash()), password) && stored.is_some();
        let Some(id) = identity.filter(|_| ok) else {
            return Err(self.sign_in_refused(&ctx, &client, "password", Some(&who)).await);
        };
        let Ok(actor) = self.person_actor(&id, ctx.clone()).await else {
            return Err(self.sign_in_refused(&ctx, &client, "password", Some(&who)).await);
        };
        self.open_session(&actor, Person::Identity(id), "password").await
    }

    /// The actor of a person with an identity: active, not paused, holding `oversight`, acting
    /// through its primary key.
    async fn person_actor(&self, id: &IdentityId, ctx: RequestContext) -> Result<Actor> {
        let gone = || Error::unauthenticated("this person can no longer sign in to the console");
        let keys = self.store.list_keys(id).await?;
        let primary = keys
            .into_iter()
            .find(|k| k.kind == KeyKind::Primary && k.revoked_at.is_none())
            .ok_or_else(gone)?;
        let (stored, identity) = self.store.find_key(&primary.id).await?.ok_or_else(gone)?;
        let principal = self.admit(stored, identity).map_err(|(_, e)| e)?;
        let actor = Actor { principal, ctx };
        if !actor.scopes().contains(Scope::Oversight) {
            return Err(gone());
        }
        Ok(actor)
    }

    /// The person signed in with this session token, or `Unauthenticated` (no such session,
    /// expired, or its person may no longer sign in).
    pub async fn console_session(&self, token: &str, ctx: RequestContext) -> Result<ConsoleUser> {
        let none = || Error::unauthenticated("not signed in, or the session has ended");
        if !console::token_shape(token, SESSION_PREFIX) {
            return Err(none());
        }
        let digest = console::digest(token);
        let session = self.store.find_console_session(&digest).await?.ok_or_else(none)?;
        if session.expires_at <= self.clock.now() {
            return Err(none());
        }
        let (actor, name) = match &session.person {
            Person::Operator => (
                Actor {
                    principal: Principal::Operator,
                    ctx,
                },
                "operator".to_owned(),
            ),
            Person::Identity(id) => {
                let actor = self.person_actor(id, ctx).await?;
                let name = actor.identity().map(|i| i.name.clone()).unwrap_or_default();
                (actor, name)
            }
        };
        Ok(ConsoleUser {
            actor,
            person: session.person,
            name,
            csrf: console::csrf_token(token),
            expires_at: session.expires_at,
            digest,
        })
    }

    /// Ends the session.
    pub async fn console_sign_out(&self, user: &ConsoleUser) -> Result<()> {
        let audit = user
            .actor
            .audit(self.clock.now(), "console.sign_out", None, serde_json::json!({}));
        self.store.delete_console_session(&user.digest, audit).await
    }

    /// Mints a one-time link for a reviewer to set their console password (operator only).
    /// A new invite replaces an earlier one; the password stays until the invite is used.
    pub async fn console_invite(&self, actor: &Actor, identity: &str) -> Result<ConsoleInvite> {
        Self::require_operator(actor, "inviting a person to the console")?;
        let id = IdentityId::parse(identity)?;
        let identity = self
            .store
            .get_identity(&id)
            .await?
            .filter(Identity::is_active)
            .ok_or_else(|| Error::not_found("identity"))?;
        if !identity.scopes.contains(Scope::Oversight) {
            return Err(Error::invalid(
                "not_a_reviewer",
                format!(
                    "{} does not hold the scope `oversight`: only reviewers sign in to the console with a password",
                    identity.id
                ),
            )
            .with_hint("create one with `loft reviewer create NAME`"));
        }
        let token = console::new_token(self.random.as_ref(), INVITE_PREFIX);
        let now = self.clock.now();
        let expires_at = now.plus_secs(INVITE_TTL_SECS);
        let audit = actor.audit(
            now,
            "console.invite",
            Some(identity.id.to_string()),
            serde_json::json!({ "expires_at": expires_at }),
        );
        self.store
            .put_console_invite(&identity.id, &console::digest(&token), expires_at, audit)
            .await?;
        Ok(ConsoleInvite {
            identity,
            token,
            expires_at,
        })
    }

    /// The identity an invite token is for, when it is still good.
    pub async fn console_invite_for(&self, token: &str) -> Result<Identity> {
        let gone = || {
            Error::not_found("invite").with_hint(
                "the link was used, replaced or has expired; ask the operator for a new one (`loft console invite ID`)",
            )
        };
        if !console::token_shape(token, INVITE_PREFIX) {
            return Err(gone());
        }
        let login = self
            .store
            .console_login_by_invite(&console::digest(token))
            .await?
            .ok_or_else(gone)?;
        if login.invite_expires_at.is_none_or(|t| t <= self.clock.now()) {
            return Err(gone());
        }
        self.store
            .get_identity(&login.identity_id)
            .await?
            .filter(Identity::is_active)
            .ok_or_else(gone)
    }

    /// Sets the person's password from a good invite token, which is used up.
    pub async fn console_accept_invite(&self, token: &str, password: &str, ctx: RequestContext) -> Result<Identity> {
        let identity = self.console_invite_for(token).await?;
        console::validate_password(password)?;
        let hash = console::hash_password(self.random.as_ref(), password)?;
        let actor = self.person_actor(&identity.id, ctx).await?;
        let audit = actor.audit(
            self.clock.now(),
            "console.set_password",
            Some(identity.id.to_string()),
            serde_json::json!({}),
        );
        self.store
            .accept_console_invite(&console::digest(token), &hash, audit)
            .await?;
        Ok(identity)
    }

    /// Deletes the sessions that have expired (they already refuse to sign anyone in; this
    /// keeps the table to the open ones). The job runner calls it every
    /// [`crate::runner::PURGE_EVERY_SECS`]; answers how many went. Not audited: nobody acts.
    pub async fn purge_expired_console_sessions(&self) -> Result<u64> {
        self.store.purge_console_sessions(self.clock.now()).await
    }
}
