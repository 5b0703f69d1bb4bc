//! Inputs a careless client or a fuzzer sends: both backends must accept and refuse exactly
//! the same ones, with a precise error and nothing half-written.

use std::sync::Arc;

use loft_core::Error;
use loft_core::mail::{MessagePatch, ReplyMail, SendMail};
use loft_core::service::{
    CreateIdentityRequest, ListAuditParams, ListMessagesParams, StoreCredentialRequest, UpdateIdentityRequest,
};
use loft_core::store::Store;

use crate::{expect_err, test_loft};

/// A refusal a client can act on: never an internal error or "unavailable" (which is what a
/// NUL byte used to give on PostgreSQL while SQLite stored it).
#[track_caller]
fn refused<T: std::fmt::Debug>(what: &str, r: loft_core::Result<T>) {
    let e = expect_err(r);
    assert!(
        matches!(e, Error::Invalid(_) | Error::NotFound(_)),
        "{what}: expected a 422 or 404 refusal, got {e:?}"
    );
}

/// NUL bytes in every text a client sends are refused alike on both backends, and nothing is
/// stored; other control and non-ASCII characters in bodies and subjects are kept intact.
pub async fn robustness_nul_bytes_are_refused_alike(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let op = t.operator().await;
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let to = b.identity.address.as_str();
    let nul = "a\u{0}b";
    let send = |subject: &str, text: &str, html: Option<&str>| SendMail {
        idempotency_key: None,
        send_at: None,
        to: vec![to.to_owned()],
        cc: vec![],
        bcc: vec![],
        subject: subject.into(),
        text: text.into(),
        html: html.map(str::to_owned),
        attachments: vec![],
    };
    refused("subject", t.loft.send(&aa, send(nul, "x", None)).await);
    refused("text", t.loft.send(&aa, send("s", nul, None)).await);
    refused("html", t.loft.send(&aa, send("s", "x", Some(nul))).await);
    assert!(t.all_messages(&ba, ListMessagesParams::default()).await.is_empty());

    // Everything else a model might write is kept as it was written.
    let odd = "Grüße \u{202e}שלום\u{0301} 🙂 \u{7}\t tab";
    let m = t.send(&aa, &[to], "Привет 🙂", odd).await;
    let got = t
        .loft
        .get_message(
            &ba,
            &t.all_messages(&ba, ListMessagesParams::default()).await[0]
                .id
                .to_string(),
        )
        .await
        .unwrap();
    assert_eq!(got.text, odd);
    assert_eq!(got.subject, "Привет 🙂");
    refused(
        "reply text",
        t.loft
            .reply(
                &ba,
                got.id.as_str(),
                ReplyMail {
                    idempotency_key: None,
                    send_at: None,
                    text: nul.into(),
                    html: None,
                    reply_all: false,
                    attachments: vec![],
                },
            )
            .await,
    );
    refused(
        "label",
        t.loft
            .update_message(
                &aa,
                m.id.as_str(),
                MessagePatch {
                    add_labels: vec![nul.into()],
                    ..Default::default()
                },
            )
            .await,
    );
    refused(
        "label filter",
        t.loft
            .list_messages(
                &aa,
                ListMessagesParams {
                    label: Some(nul.into()),
                    ..Default::default()
                },
            )
            .await,
    );

    // Identities.
    for req in [
        CreateIdentityRequest {
            name: nul.into(),
            ..Default::default()
        },
        CreateIdentityRequest {
            name: "ok".into(),
            display_name: Some(nul.into()),
            ..Default::default()
        },
        CreateIdentityRequest {
            name: "ok".into(),
            local_part: Some(nul.into()),
            ..Default::default()
        },
    ] {
        refused("identity", t.loft.create_identity(&op, req).await);
    }
    refused(
        "display name update",
        t.loft
            .update_identity(
                &op,
                a.identity.id.as_str(),
                UpdateIdentityRequest {
                    display_name: Some(nul.into()),
                    ..Default::default()
                },
            )
            .await,
    );
    refused("identity id", t.loft.get_identity(&op, nul).await);

    // The audit filters.
    for params in [
        ListAuditParams {
            action: Some(nul.into()),
            ..Default::default()
        },
        ListAuditParams {
            identity: Some(nul.into()),
            ..Default::default()
        },
    ] {
        refused("audit filter", t.loft.list_audit(&op, params).await);
    }

    // The vault: names in paths, and plain metadata.
    refused("vault get", t.loft.vault_get(&aa, nul, false).await);
    refused("vault delete", t.loft.vault_delete(&aa, nul).await);
    refused("vault totp", t.loft.vault_totp(&aa, nul).await);
    refused("vault totp backup", t.loft.vault_totp_backup(&aa, nul).await);
    refused(
        "vault update",
        t.loft
            .vault_update(
                &aa,
                nul,
                StoreCredentialRequest {
                    notes: Some("x".into()),
                    ..Default::default()
                },
            )
            .await,
    );
    for req in [
        StoreCredentialRequest {
            name: Some("crm".into()),
            value: Some("a-long-enough-secret".into()),
            notes: Some(nul.into()),
            ..Default::default()
        },
        StoreCredentialRequest {
            name: Some("site".into()),
            kind: Some("login".into()),
            username: Some(nul.into()),
            password: Some("a-long-enough-secret".into()),
            ..Default::default()
        },
        StoreCredentialRequest {
            name: Some("site2".into()),
            kind: Some("login".into()),
            username: Some("me".into()),
            password: Some("a-long-enough-secret".into()),
            url: Some(format!("https://x.example/{nul}")),
            ..Default::default()
        },
    ] {
        refused("vault store", t.loft.vault_store(&aa, req).await);
    }
    assert!(
        t.loft
            .vault_list(&aa, loft_core::service::ListCredentialsParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    t.assert_chain_ok().await;
}
