//! The web console's people: operator-key sign-in, one-time invites that set a reviewer's
//! password (argon2id, never stored in the clear), sessions that expire and end at sign-out,
//! refused sign-ins audited and limited.

use std::sync::Arc;

use loft_core::console::{self, Person};
use loft_core::keys::Scope;
use loft_core::service::{CreateIdentityRequest, ListAuditParams, RequestContext};
use loft_core::store::Store;
use secrecy::ExposeSecret as _;

use crate::{expect_err, test_loft};

fn from(addr: &str) -> RequestContext {
    RequestContext {
        request_id: None,
        remote_addr: Some(addr.into()),
    }
}

pub async fn console_sessions_invites_and_passwords(store: Arc<dyn Store>) {
    let t = test_loft(store.clone());
    let op = t.operator().await;
    let (agent, agent_actor) = t.identity("agent").await;
    let (alice, _) = t
        .identity_with(CreateIdentityRequest {
            name: "alice".into(),
            scopes: Some(Scope::REVIEWER.iter().map(|s| s.as_str().to_owned()).collect()),
            ..Default::default()
        })
        .await;

    // The operator key signs in; a wrong one is refused.
    let s = t
        .loft
        .console_sign_in_operator(&t.operator_key, from("10.0.0.1"))
        .await
        .unwrap();
    let user = t
        .loft
        .console_session(s.token.expose_secret(), from("10.0.0.1"))
        .await
        .unwrap();
    assert!(user.is_operator() && user.actor.is_operator());
    assert_eq!(user.csrf, console::csrf_token(s.token.expose_secret()));
    let stored = store
        .find_console_session(&console::digest(s.token.expose_secret()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.person, Person::Operator);
    assert_ne!(stored.digest, s.token.expose_secret().to_string());
    expect_err(
        t.loft
            .console_sign_in_operator("not-the-operator-key-at-all", from("10.0.0.1"))
            .await,
    );

    // Invites: operator only, reviewers only.
    assert_eq!(
        expect_err(t.loft.console_invite(&agent_actor, alice.identity.id.as_str()).await).code(),
        "operator_only"
    );
    assert_eq!(
        expect_err(t.loft.console_invite(&op, agent.identity.id.as_str()).await).code(),
        "not_a_reviewer"
    );
    let first = t.loft.console_invite(&op, alice.identity.id.as_str()).await.unwrap();
    let invite = t.loft.console_invite(&op, alice.identity.id.as_str()).await.unwrap();
    // A new invite replaces the first.
    expect_err(t.loft.console_invite_for(&first.token).await);
    assert_eq!(
        t.loft.console_invite_for(&invite.token).await.unwrap().id,
        alice.identity.id
    );
    // No password yet: nobody signs in as alice.
    let addr = alice.identity.address.to_string();
    expect_err(t.loft.console_sign_in_password(&addr, "", from("10.0.0.2")).await);
    assert_eq!(
        expect_err(
            t.loft
                .console_accept_invite(&invite.token, "short", from("10.0.0.2"))
                .await
        )
        .code(),
        "password_too_short"
    );
    let password = "a long enough passphrase";
    t.loft
        .console_accept_invite(&invite.token, password, from("10.0.0.2"))
        .await
        .unwrap();
    // Used up.
    expect_err(
        t.loft
            .console_accept_invite(&invite.token, password, from("10.0.0.2"))
            .await,
    );
    let login = store.console_login(&alice.identity.id).await.unwrap().unwrap();
    let hash = login.password_hash.unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains(password));
    assert!(login.invite_digest.is_none());

    // Wrong password, unknown address: refused alike; the right one opens a session acting as
    // alice's identity.
    for (who, pw) in [(addr.as_str(), "wrong password here"), ("nobody@agents.test", password)] {
        assert_eq!(
            expect_err(t.loft.console_sign_in_password(who, pw, from("10.0.0.3")).await).code(),
            "unauthenticated"
        );
    }
    let s2 = t
        .loft
        .console_sign_in_password(&addr.to_uppercase(), password, from("10.0.0.3"))
        .await
        .unwrap();
    let user2 = t
        .loft
        .console_session(s2.token.expose_secret(), from("10.0.0.3"))
        .await
        .unwrap();
    assert_eq!(user2.person, Person::Identity(alice.identity.id.clone()));
    assert_eq!(user2.actor.identity().unwrap().id, alice.identity.id);
    assert_eq!(user2.name, "alice");

    // Sign-out ends the session; so does expiry.
    t.loft.console_sign_out(&user2).await.unwrap();
    expect_err(t.loft.console_session(s2.token.expose_secret(), from("10.0.0.3")).await);
    t.clock.advance_secs(console::SESSION_TTL_SECS);
    expect_err(t.loft.console_session(s.token.expose_secret(), from("10.0.0.1")).await);
    assert_eq!(store.purge_console_sessions(t.loft.now()).await.unwrap(), 1);

    // A paused or revoked reviewer's sessions stop working.
    let s3 = t
        .loft
        .console_sign_in_password(&addr, password, from("10.0.0.3"))
        .await
        .unwrap();
    t.loft.revoke_identity(&op, alice.identity.id.as_str()).await.unwrap();
    expect_err(t.loft.console_session(s3.token.expose_secret(), from("10.0.0.3")).await);

    // Too many refusals from one address: 429 for the rest of the minute, for everyone there.
    for _ in 0..console::SIGN_IN_FAILURES_PER_MINUTE {
        expect_err(
            t.loft
                .console_sign_in_operator("wrong wrong wrong wrong wrong", from("10.0.0.9"))
                .await,
        );
    }
    assert_eq!(
        expect_err(t.loft.console_sign_in_operator(&t.operator_key, from("10.0.0.9")).await).code(),
        "too_many_sign_ins"
    );

    // Audited: sign-ins as the person, refusals as anonymous with the address; no secret.
    let rows = t
        .loft
        .list_audit(
            &op,
            ListAuditParams {
                action: Some("console.".into()),
                limit: Some(200),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items;
    let text = serde_json::to_string(&rows).unwrap();
    for secret in [
        s.token.expose_secret(),
        s2.token.expose_secret(),
        invite.token.as_str(),
        password,
        t.operator_key.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
    let count = |action: &str, outcome: &str| {
        rows.iter()
            .filter(|r| r.entry.action == action && r.entry.outcome.as_str() == outcome)
            .count()
    };
    assert_eq!(count("console.sign_in", "ok"), 3);
    assert_eq!(
        count("console.sign_in", "denied"),
        4 + console::SIGN_IN_FAILURES_PER_MINUTE as usize
    );
    assert_eq!(count("console.invite", "ok"), 2);
    assert_eq!(count("console.set_password", "ok"), 1);
    assert_eq!(count("console.sign_out", "ok"), 1);
    assert!(
        rows.iter()
            .any(|r| r.entry.action == "console.sign_in"
                && r.entry.actor_identity_id.as_ref() == Some(&alice.identity.id))
    );
}
