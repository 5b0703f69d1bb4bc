//! Arbitrary Unicode through every text field a client gives the use cases, on SQLite and on
//! PostgreSQL side by side (issue 13).
//!
//! Each generated string (multi-byte letters at any position, combining marks, right-to-left
//! marks and overrides, emoji with ZWJ sequences and skin tones, NUL and other C0/C1 controls,
//! long runs of one character) goes through the same call on two `Loft`s, one on a SQLite file
//! and one on a fresh PostgreSQL database, in lockstep. For every call:
//!
//! - each backend answers `Ok` or a refusal a client can act on (never `Internal`,
//!   `Unavailable`, ...);
//! - the backends agree: both `Ok`, or both the same error code;
//! - where the rule is simple (a subject is one line of at most 998 characters without NUL, a
//!   body is not blank and has no NUL, ...), the answer is the one the rule gives, so that a
//!   backend refusing everything cannot pass;
//! - when accepted, what is stored reads back byte for byte (the recipient's copy, labels,
//!   display names, key labels, vault metadata and secrets), and a reply to a message with
//!   that subject works.
//!
//! At the end both audit chains verify and hold the same actions in the same order.
//!
//! The strings, the fixed regression inputs and the deterministic runner (a fixed seed,
//! [`CASES`] cases, no failure files; `PROPTEST_CASES` runs more) are
//! [`loft_testkit::unicode`]'s, shared with the REST door's test. PostgreSQL unreachable is a
//! failure with `CI` set and a loud skip elsewhere ([`loft_testkit::pg::TestDb::create`]).

#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::too_many_lines,
    reason = "tests"
)]
#![allow(
    clippy::many_single_char_names,
    reason = "the vocabulary of every case: p the pair, b a backend, s the input, n its number, x and y the two answers"
)]

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use loft_core::Error;
use loft_core::identity::CreatedIdentity;
use loft_core::mail::{MAX_SUBJECT, Message, MessagePatch, ReplyMail, SendMail, reply_subject};
use loft_core::service::{
    Actor, CreateIdentityRequest, CreateKeyRequest, ListAuditParams, ListMessagesParams, ListThreadsParams,
    StoreCredentialRequest, UpdateIdentityRequest, WaitParams,
};
use loft_core::store::Store;
use loft_testkit::pg::TestDb;
use loft_testkit::unicode::{TestCaseError, fail, run_cases};
use loft_testkit::{TestLoft, test_loft};

/// Cases per run (each is some 60 calls on each backend).
const CASES: u32 = 48;
/// Every scope, so that vault secrets can be revealed and compared.
const SCOPES: &[&str] = &[
    "mail:read",
    "mail:send",
    "mail:manage",
    "keys:manage",
    "vault:read",
    "vault:write",
    "vault:reveal",
];

// ----- the two backends ---------------------------------------------------------------------------

/// One `Loft` with the fixtures every case uses.
struct Backend {
    name: &'static str,
    t: TestLoft,
    op: Actor,
    alice: CreatedIdentity,
    aa: Actor,
    bob: CreatedIdentity,
    ba: Actor,
    /// Bob's copy of a message from Alice: what Bob replies to.
    bob_copy: String,
    /// Alice's sent copy of it: what labels go on.
    alice_copy: String,
}

impl Backend {
    async fn new(name: &'static str, store: Arc<dyn Store>) -> Self {
        let t = test_loft(store);
        let op = t.operator().await;
        let (alice, aa) = t.identity_with_scopes("alice", SCOPES).await;
        let (bob, ba) = t.identity_with_scopes("bob", SCOPES).await;
        let sent = t.send(&aa, &[bob.identity.address.as_str()], "seed", "seed").await;
        let bob_copy = newest(&t, &ba).await.unwrap().id.to_string();
        t.loft
            .vault_store(
                &aa,
                StoreCredentialRequest {
                    name: Some("fixed".into()),
                    value: Some("fixed-secret-value".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        Self {
            name,
            op,
            alice_copy: sent.id.to_string(),
            alice,
            aa,
            bob,
            ba,
            bob_copy,
            t,
        }
    }

    fn to_bob(&self, subject: &str, text: &str, html: Option<&str>) -> SendMail {
        SendMail {
            idempotency_key: None,
            send_at: None,
            to: vec![self.bob.identity.address.to_string()],
            cc: vec![],
            bcc: vec![],
            subject: subject.into(),
            text: text.into(),
            html: html.map(str::to_owned),
            attachments: vec![],
        }
    }

    fn alice_id(&self) -> &str {
        self.alice.identity.id.as_str()
    }
}

/// The newest message in `who`'s inbox, read whole.
async fn newest(t: &TestLoft, who: &Actor) -> loft_core::Result<Message> {
    let page = t
        .loft
        .list_messages(
            who,
            ListMessagesParams {
                limit: Some(1),
                ..Default::default()
            },
        )
        .await?;
    let first = page
        .items
        .first()
        .ok_or_else(|| Error::internal("the inbox is empty"))?;
    t.loft.get_message(who, first.id.as_str()).await
}

struct Pair {
    sqlite: Backend,
    pg: Backend,
}

/// A refusal a client can act on, as opposed to a server failure.
fn client_error(e: &Error) -> bool {
    !matches!(
        e,
        Error::Internal(_) | Error::Unavailable(_) | Error::Upstream(_) | Error::TooManyRequests { .. }
    )
}

impl Pair {
    fn each(&self) -> [&Backend; 2] {
        [&self.sqlite, &self.pg]
    }

    /// Runs `f` on both backends: both answers when both accepted, the refusal when both
    /// refused with the same code; anything else fails the case.
    async fn both<T: Debug>(
        &self,
        what: &str,
        input: &str,
        f: impl AsyncFn(&Backend) -> loft_core::Result<T>,
    ) -> Result<Answer<T>, TestCaseError> {
        let a = f(&self.sqlite).await;
        let b = f(&self.pg).await;
        for (backend, r) in [(self.sqlite.name, &a), (self.pg.name, &b)] {
            if let Err(e) = r
                && !client_error(e)
            {
                return Err(fail(what, input, format!("{backend} answered a server error: {e:?}")));
            }
        }
        match (a, b) {
            (Ok(x), Ok(y)) => Ok(Answer::Accepted(x, y)),
            (Err(x), Err(y)) if x.code() == y.code() => Ok(Answer::Refused(x)),
            (a, b) => Err(fail(
                what,
                input,
                format!("the backends disagree: SQLite {a:?}, PostgreSQL {b:?}"),
            )),
        }
    }

    /// [`Self::both`], where both must accept.
    async fn must<T: Debug>(
        &self,
        what: &str,
        input: &str,
        f: impl AsyncFn(&Backend) -> loft_core::Result<T>,
    ) -> Result<(T, T), TestCaseError> {
        match self.both(what, input, f).await? {
            Answer::Accepted(x, y) => Ok((x, y)),
            Answer::Refused(e) => Err(fail(
                what,
                input,
                format!("refused on both backends ({e:?}), where it must work"),
            )),
        }
    }

    /// [`Self::both`], where both must refuse.
    async fn refuse<T: Debug>(
        &self,
        what: &str,
        input: &str,
        f: impl AsyncFn(&Backend) -> loft_core::Result<T>,
    ) -> Result<(), TestCaseError> {
        match self.both(what, input, f).await? {
            Answer::Refused(_) => Ok(()),
            Answer::Accepted(x, y) => Err(fail(what, input, format!("accepted on both backends: {x:?}, {y:?}"))),
        }
    }
}

/// What both backends answered alike.
#[derive(Debug)]
enum Answer<T> {
    Accepted(T, T),
    Refused(Error),
}

impl<T> Answer<T> {
    fn accepted(&self) -> Option<(&T, &T)> {
        match self {
            Self::Accepted(x, y) => Some((x, y)),
            Self::Refused(_) => None,
        }
    }
}

/// The answer is the one the rule gives.
fn accept<T: Debug>(what: &str, input: &str, answer: &Answer<T>, rule: bool) -> Result<(), TestCaseError> {
    match (answer, rule) {
        (Answer::Accepted(..), true) | (Answer::Refused(_), false) => Ok(()),
        (Answer::Refused(e), true) => Err(fail(
            what,
            input,
            format!("refused on both backends ({e:?}), but the rule accepts it"),
        )),
        (Answer::Accepted(x, _), false) => Err(fail(
            what,
            input,
            format!("accepted on both backends ({x:?}), but the rule refuses it"),
        )),
    }
}

/// What was stored reads back as it should, on both backends.
fn stored<T: PartialEq + Debug>(what: &str, input: &str, got: [&T; 2], want: &T) -> Result<(), TestCaseError> {
    for (backend, got) in ["SQLite", "PostgreSQL"].into_iter().zip(got) {
        if got != want {
            return Err(fail(what, input, format!("{backend} reads back {got:?}, not {want:?}")));
        }
    }
    Ok(())
}

/// Plain metadata as the vault keeps it: trimmed, empty meaning none.
fn cleaned(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn printable(s: &str, max: usize) -> bool {
    s.trim().chars().count() <= max && !s.trim().chars().any(char::is_control)
}

// ----- the cases --------------------------------------------------------------------------------

async fn case(p: &Pair, s: &str, n: usize) -> Result<(), TestCaseError> {
    Box::pin(mail(p, s)).await?;
    labels(p, s).await?;
    identities(p, s).await?;
    keys(p, s).await?;
    vault(p, s, n).await?;
    audit(p, s).await?;
    filters_and_paths(p, s).await
}

async fn mail(p: &Pair, s: &str) -> Result<(), TestCaseError> {
    // The subject.
    let rule = !s.contains(['\0', '\r', '\n']) && s.chars().count() <= MAX_SUBJECT;
    let sent = p
        .both("send: subject", s, async |b| {
            b.t.loft.send(&b.aa, b.to_bob(s, "body", None)).await
        })
        .await?;
    accept("send: subject", s, &sent, rule)?;
    if let Some((x, y)) = sent.accepted() {
        stored("send: the sender's subject", s, [&x.subject, &y.subject], &s.to_owned())?;
        let (x, y) = p
            .must("send: the recipient's copy", s, async |b| newest(&b.t, &b.ba).await)
            .await?;
        stored(
            "send: the recipient's subject",
            s,
            [&x.subject, &y.subject],
            &s.to_owned(),
        )?;
        stored("send: the recipient's text", s, [&x.text, &y.text], &"body".to_owned())?;
        // A reply to it works, and its subject is the original's with `Re: `.
        let want = reply_subject(s);
        let (x, y) = p
            .must("reply to that subject", s, async |b| {
                let m = newest(&b.t, &b.ba).await?;
                b.t.loft
                    .reply(
                        &b.ba,
                        m.id.as_str(),
                        ReplyMail {
                            text: "re".into(),
                            ..Default::default()
                        },
                    )
                    .await
            })
            .await?;
        stored("reply: its subject", s, [&x.subject, &y.subject], &want)?;
        let (x, y) = p
            .must("reply: the original sender's copy", s, async |b| {
                newest(&b.t, &b.aa).await
            })
            .await?;
        stored("reply: the subject received", s, [&x.subject, &y.subject], &want)?;
    }

    // The text body.
    let rule = !s.contains('\0') && !s.trim().is_empty();
    let sent = p
        .both("send: text", s, async |b| {
            b.t.loft.send(&b.aa, b.to_bob("t", s, None)).await
        })
        .await?;
    accept("send: text", s, &sent, rule)?;
    if sent.accepted().is_some() {
        let (x, y) = p
            .must("send: the recipient's copy", s, async |b| newest(&b.t, &b.ba).await)
            .await?;
        stored("send: the recipient's text", s, [&x.text, &y.text], &s.to_owned())?;
    }

    // The HTML body.
    let sent = p
        .both("send: html", s, async |b| {
            b.t.loft.send(&b.aa, b.to_bob("h", "x", Some(s))).await
        })
        .await?;
    accept("send: html", s, &sent, !s.contains('\0'))?;
    if sent.accepted().is_some() {
        let (x, y) = p
            .must("send: the recipient's copy", s, async |b| newest(&b.t, &b.ba).await)
            .await?;
        stored("send: the recipient's html", s, [&x.html, &y.html], &Some(s.to_owned()))?;
    }

    // A reply's text and HTML.
    let rule = !s.contains('\0') && !s.trim().is_empty();
    let replied = p
        .both("reply: text", s, async |b| {
            let req = ReplyMail {
                text: s.into(),
                ..Default::default()
            };
            b.t.loft.reply(&b.ba, &b.bob_copy, req).await
        })
        .await?;
    accept("reply: text", s, &replied, rule)?;
    if replied.accepted().is_some() {
        let (x, y) = p
            .must("reply: the recipient's copy", s, async |b| newest(&b.t, &b.aa).await)
            .await?;
        stored("reply: the text received", s, [&x.text, &y.text], &s.to_owned())?;
    }
    let replied = p
        .both("reply: html", s, async |b| {
            let req = ReplyMail {
                idempotency_key: None,
                send_at: None,
                text: "x".into(),
                html: Some(s.into()),
                reply_all: false,
                attachments: vec![],
            };
            b.t.loft.reply(&b.ba, &b.bob_copy, req).await
        })
        .await?;
    accept("reply: html", s, &replied, !s.contains('\0'))?;
    if replied.accepted().is_some() {
        let (x, y) = p
            .must("reply: the recipient's copy", s, async |b| newest(&b.t, &b.aa).await)
            .await?;
        stored("reply: the html received", s, [&x.html, &y.html], &Some(s.to_owned()))?;
    }
    Ok(())
}

async fn labels(p: &Pair, s: &str) -> Result<(), TestCaseError> {
    let label = s.trim().to_ascii_lowercase();
    let rule = !label.is_empty()
        && label.len() <= 64
        && label
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_-:./".contains(&c));
    let patch = |add: bool| MessagePatch {
        add_labels: if add { vec![s.to_owned()] } else { vec![] },
        remove_labels: if add { vec![] } else { vec![s.to_owned()] },
        ..MessagePatch::default()
    };
    let added = p
        .both("label: add", s, async |b| {
            b.t.loft.update_message(&b.aa, &b.alice_copy, patch(true)).await
        })
        .await?;
    accept("label: add", s, &added, rule)?;
    if let Some((x, y)) = added.accepted() {
        let has = |m: &Message| m.labels.contains(&label);
        stored("label: the message's labels", s, [&has(x), &has(y)], &true)?;
    }
    let found = p
        .both("label: filter messages", s, async |b| {
            let params = ListMessagesParams {
                folder: Some("all".into()),
                label: Some(s.into()),
                ..Default::default()
            };
            let page = b.t.loft.list_messages(&b.aa, params).await?;
            Ok(page.items.iter().any(|m| m.id.as_str() == b.alice_copy))
        })
        .await?;
    accept("label: filter messages", s, &found, rule)?;
    if let Some((x, y)) = found.accepted() {
        stored("label: the labelled message is found", s, [x, y], &true)?;
    }
    let threads = p
        .both("label: filter threads", s, async |b| {
            let params = ListThreadsParams {
                label: Some(s.into()),
                ..Default::default()
            };
            Ok(b.t.loft.list_threads(&b.aa, params).await?.items.len())
        })
        .await?;
    accept("label: filter threads", s, &threads, rule)?;
    if let Some((x, y)) = threads.accepted() {
        stored("label: threads with the label", s, [x, y], &1)?;
    }
    let removed = p
        .both("label: remove", s, async |b| {
            b.t.loft.update_message(&b.aa, &b.alice_copy, patch(false)).await
        })
        .await?;
    accept("label: remove", s, &removed, rule)?;
    if let Some((x, y)) = removed.accepted() {
        let has = |m: &Message| m.labels.contains(&label);
        stored("label: removed", s, [&has(x), &has(y)], &false)?;
    }
    Ok(())
}

async fn identities(p: &Pair, s: &str) -> Result<(), TestCaseError> {
    // The name.
    let rule = !s.trim().is_empty() && printable(s, 64);
    let created = p
        .both("identity: name", s, async |b| {
            let req = CreateIdentityRequest {
                name: s.into(),
                ..Default::default()
            };
            let c = b.t.loft.create_identity(&b.op, req).await?;
            b.t.loft.get_identity(&b.op, c.identity.id.as_str()).await
        })
        .await?;
    accept("identity: name", s, &created, rule)?;
    if let Some((x, y)) = created.accepted() {
        stored("identity: its name", s, [&x.name, &y.name], &s.trim().to_owned())?;
    }

    // The display name, at creation and in an update.
    let rule = printable(s, 128);
    let want = cleaned(s);
    let created = p
        .both("identity: display name", s, async |b| {
            let req = CreateIdentityRequest {
                name: "dn".into(),
                display_name: Some(s.into()),
                ..Default::default()
            };
            let c = b.t.loft.create_identity(&b.op, req).await?;
            b.t.loft.get_identity(&b.op, c.identity.id.as_str()).await
        })
        .await?;
    accept("identity: display name", s, &created, rule)?;
    if let Some((x, y)) = created.accepted() {
        stored(
            "identity: its display name",
            s,
            [&x.display_name, &y.display_name],
            &want,
        )?;
    }
    let updated = p
        .both("identity: display name update", s, async |b| {
            let req = UpdateIdentityRequest {
                display_name: Some(s.into()),
                ..Default::default()
            };
            b.t.loft.update_identity(&b.op, b.alice_id(), req).await?;
            b.t.loft.get_identity(&b.op, b.alice_id()).await
        })
        .await?;
    accept("identity: display name update", s, &updated, rule)?;
    if let Some((x, y)) = updated.accepted() {
        stored(
            "identity: the updated display name",
            s,
            [&x.display_name, &y.display_name],
            &want,
        )?;
        // Mail from it carries the name in `From:`, and arrives.
        p.must("send: with that display name", s, async |b| {
            let alice = b.t.authenticate(&b.alice.api_key).await?;
            b.t.loft.send(&alice, b.to_bob("from", "body", None)).await
        })
        .await?;
        let (x, y) = p
            .must("send: the recipient's copy", s, async |b| newest(&b.t, &b.ba).await)
            .await?;
        stored(
            "send: the sender's name received",
            s,
            [&x.from_name, &y.from_name],
            &want,
        )?;
    }

    // The local part of the address (no rule here beyond NUL: addresses have their own tests).
    let created = p
        .both("identity: local part", s, async |b| {
            let req = CreateIdentityRequest {
                name: "lp".into(),
                local_part: Some(s.into()),
                ..Default::default()
            };
            b.t.loft.create_identity(&b.op, req).await
        })
        .await?;
    if s.contains('\0') && created.accepted().is_some() {
        return Err(fail("identity: local part", s, "a NUL was accepted"));
    }
    if let Some((x, y)) = created.accepted()
        && !s.trim().is_empty()
    {
        let want = s.trim().to_ascii_lowercase();
        let (x, y) = (
            x.identity.address.local_part().to_owned(),
            y.identity.address.local_part().to_owned(),
        );
        stored("identity: its local part", s, [&x, &y], &want)?;
    }
    Ok(())
}

async fn keys(p: &Pair, s: &str) -> Result<(), TestCaseError> {
    let rule = printable(s, 64);
    let created = p
        .both("key: label", s, async |b| {
            let req = CreateKeyRequest {
                label: Some(s.into()),
                ..Default::default()
            };
            let k = b.t.loft.create_key(&b.op, Some(b.alice_id()), req).await?;
            let keys = b.t.loft.list_keys(&b.op, Some(b.alice_id())).await?;
            let meta = keys.into_iter().find(|m| m.id == k.key.id);
            Ok(meta.ok_or_else(|| Error::internal("the new key is not listed"))?.label)
        })
        .await?;
    accept("key: label", s, &created, rule)?;
    if let Some((x, y)) = created.accepted() {
        stored("key: its label", s, [x, y], &cleaned(s))?;
    }
    p.refuse("key: id in the path", s, async |b| b.t.loft.revoke_key(&b.op, s).await)
        .await?;
    p.refuse("authenticate: the key itself", s, async |b| b.t.authenticate(s).await)
        .await
}

async fn vault(p: &Pair, s: &str, n: usize) -> Result<(), TestCaseError> {
    let get = async |b: &Backend, name: &str| b.t.loft.vault_get(&b.aa, name, true).await;

    // The name.
    let name = s.trim();
    let rule = !name.is_empty()
        && name.len() <= 64
        && name.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
        && name != "fixed";
    let req = || StoreCredentialRequest {
        name: Some(s.into()),
        value: Some("a-secret-value".into()),
        ..Default::default()
    };
    let created = p
        .both("vault: name", s, async |b| {
            b.t.loft.vault_store(&b.aa, req()).await?;
            get(b, s).await
        })
        .await?;
    accept("vault: name", s, &created, rule)?;
    if let Some((x, y)) = created.accepted() {
        stored("vault: its name", s, [&x.meta.name, &y.meta.name], &name.to_owned())?;
        p.must("vault: delete by that name", s, async |b| {
            b.t.loft.vault_delete(&b.aa, s).await
        })
        .await?;
    }

    // A secret: sealed bytes, so anything is kept as it is, NUL included; an api_key's value is
    // injected into brokered calls, so it must be long enough to be redacted reliably.
    let cred = format!("value-{n}");
    let created = p
        .both("vault: value", s, async |b| {
            let req = StoreCredentialRequest {
                name: Some(cred.clone()),
                value: Some(s.into()),
                ..Default::default()
            };
            b.t.loft.vault_store(&b.aa, req).await?;
            get(b, &cred).await
        })
        .await?;
    let rule = s.chars().count() >= loft_core::vault::MIN_INJECTABLE_SECRET_CHARS;
    accept("vault: value", s, &created, rule)?;
    if let Some((x, y)) = created.accepted() {
        let value = |v: &loft_core::service::CredentialView| v.secrets.as_ref().and_then(|f| f.get("value")).cloned();
        stored(
            "vault: the revealed value",
            s,
            [&value(x), &value(y)],
            &Some(s.to_owned()),
        )?;
        // Gone again: the exfiltration guard would hold a later case's mail that quotes it.
        p.both("vault: delete the value", s, async |b| {
            b.t.loft.vault_delete(&b.aa, &cred).await
        })
        .await?;
    }

    // Plain metadata: notes, a login's user name and URL; at creation and in an update.
    let rule = !s.contains('\0');
    let want = cleaned(s);
    let fields = [
        ("notes", "api_key"),
        ("username", "login"),
        ("url", "login"),
        ("issuer", "totp"),
        ("account", "totp"),
        ("client_id", "oauth"),
    ];
    for (field, kind) in fields {
        let cred = format!("{field}-{n}");
        let what = format!("vault: {field}");
        let created = p
            .both(&what, s, async |b| {
                let mut req = StoreCredentialRequest {
                    name: Some(cred.clone()),
                    kind: Some(kind.into()),
                    ..Default::default()
                };
                let text = Some(s.to_owned());
                match field {
                    "notes" => (req.value, req.notes) = (Some("a-secret-value".into()), text),
                    "username" => (req.password, req.username) = (Some("a-secret-password".into()), text),
                    "url" => {
                        req.password = Some("a-secret-password".into());
                        req.username = Some("me".into());
                        req.url = text;
                    }
                    "issuer" => (req.secret, req.issuer) = (Some("JBSWY3DPEHPK3PXP".into()), text),
                    "account" => (req.secret, req.account) = (Some("JBSWY3DPEHPK3PXP".into()), text),
                    _ => (req.access_token, req.client_id) = (Some("an-access-token".into()), text),
                }
                b.t.loft.vault_store(&b.aa, req).await?;
                Ok(get(b, &cred).await?.meta)
            })
            .await?;
        accept(&what, s, &created, rule)?;
        if let Some((x, y)) = created.accepted() {
            let (x, y) = match field {
                "notes" => (&x.notes, &y.notes),
                "username" => (&x.username, &y.username),
                "url" => (&x.url, &y.url),
                "issuer" => (&x.issuer, &y.issuer),
                "account" => (&x.account, &y.account),
                _ => (&x.client_id, &y.client_id),
            };
            stored(&what, s, [x, y], &want)?;
        }
    }

    // The name of a custom credential's secret field: listed in the metadata, kept in the
    // sealed secrets.
    let cred = format!("custom-{n}");
    let key = s.trim();
    let created = p
        .both("vault: custom field name", s, async |b| {
            let req = StoreCredentialRequest {
                name: Some(cred.clone()),
                kind: Some("custom".into()),
                fields: Some([(s.to_owned(), "a-secret-value".to_owned())].into()),
                ..Default::default()
            };
            b.t.loft.vault_store(&b.aa, req).await?;
            get(b, &cred).await
        })
        .await?;
    let rule = !s.contains('\0') && !key.is_empty() && key.len() <= 64;
    accept("vault: custom field name", s, &created, rule)?;
    if let Some((x, y)) = created.accepted() {
        let listed = |v: &loft_core::service::CredentialView| v.meta.secret_fields.clone();
        stored(
            "vault: the field listed",
            s,
            [&listed(x), &listed(y)],
            &vec![key.to_owned()],
        )?;
        let kept = |v: &loft_core::service::CredentialView| v.secrets.as_ref().and_then(|f| f.get(key)).cloned();
        stored(
            "vault: the field revealed",
            s,
            [&kept(x), &kept(y)],
            &Some("a-secret-value".to_owned()),
        )?;
    }
    let rule = !s.contains('\0');
    let updated = p
        .both("vault: notes update", s, async |b| {
            let req = StoreCredentialRequest {
                notes: Some(s.into()),
                ..Default::default()
            };
            b.t.loft.vault_update(&b.aa, "fixed", req).await?;
            Ok(get(b, "fixed").await?.meta.notes)
        })
        .await?;
    accept("vault: notes update", s, &updated, rule)?;
    if let Some((x, y)) = updated.accepted() {
        stored("vault: the updated notes", s, [x, y], &want)?;
    }

    // Names in paths.
    p.both("vault: get by name", s, async |b| get(b, s).await).await?;
    p.both("vault: totp by name", s, async |b| b.t.loft.vault_totp(&b.aa, s).await)
        .await?;
    p.both("vault: update by name", s, async |b| {
        let req = StoreCredentialRequest {
            notes: Some("n".into()),
            ..Default::default()
        };
        b.t.loft.vault_update(&b.aa, s, req).await.map(|m| m.name)
    })
    .await?;
    Ok(())
}

/// Query parameters with one text field set.
type Filter<P> = fn(String) -> P;

async fn audit(p: &Pair, s: &str) -> Result<(), TestCaseError> {
    let actions = async |b: &Backend, params: ListAuditParams| -> loft_core::Result<Vec<String>> {
        let page = b.t.loft.list_audit(&b.op, params).await?;
        Ok(page.items.into_iter().map(|r| r.entry.action).collect())
    };
    for action in [s.to_owned(), format!("{s}."), format!("mail.{s}")] {
        let what = format!("audit: action filter {action:?}");
        let rows = p
            .both(&what, s, async |b| {
                let params = ListAuditParams {
                    action: Some(action.clone()),
                    limit: Some(200),
                    ..Default::default()
                };
                actions(b, params).await
            })
            .await?;
        accept(&what, s, &rows, !action.contains('\0'))?;
        if let Some((x, y)) = rows.accepted()
            && x != y
        {
            return Err(fail(&what, s, format!("SQLite lists {x:?}, PostgreSQL {y:?}")));
        }
    }
    let text_params: [(&str, Filter<ListAuditParams>); 4] = [
        ("identity", |v| ListAuditParams {
            identity: Some(v),
            ..Default::default()
        }),
        ("outcome", |v| ListAuditParams {
            outcome: Some(v),
            ..Default::default()
        }),
        ("since", |v| ListAuditParams {
            since: Some(v),
            ..Default::default()
        }),
        ("cursor", |v| ListAuditParams {
            cursor: Some(v),
            ..Default::default()
        }),
    ];
    for (field, params) in text_params {
        let what = format!("audit: {field} filter");
        let rows = p
            .both(&what, s, async |b| actions(b, params(s.to_owned())).await)
            .await?;
        if let Some((x, y)) = rows.accepted()
            && x != y
        {
            return Err(fail(&what, s, format!("SQLite lists {x:?}, PostgreSQL {y:?}")));
        }
    }
    Ok(())
}

async fn filters_and_paths(p: &Pair, s: &str) -> Result<(), TestCaseError> {
    let message_params: [(&str, Filter<ListMessagesParams>); 4] = [
        ("folder", |v| ListMessagesParams {
            folder: Some(v),
            ..Default::default()
        }),
        ("from", |v| ListMessagesParams {
            from: Some(v),
            ..Default::default()
        }),
        ("thread_id", |v| ListMessagesParams {
            thread_id: Some(v),
            ..Default::default()
        }),
        ("cursor", |v| ListMessagesParams {
            cursor: Some(v),
            ..Default::default()
        }),
    ];
    for (field, params) in message_params {
        let what = format!("messages: {field} filter");
        let found = p
            .both(&what, s, async |b| {
                Ok(b.t.loft.list_messages(&b.ba, params(s.to_owned())).await?.items.len())
            })
            .await?;
        if let Some((x, y)) = found.accepted()
            && x != y
        {
            return Err(fail(&what, s, format!("SQLite finds {x}, PostgreSQL {y}")));
        }
    }
    p.both("wait: after", s, async |b| {
        let params = WaitParams {
            timeout_seconds: Some(0),
            after: Some(s.into()),
            limit: None,
        };
        Ok(b.t.loft.wait_for_mail(&b.ba, params).await?.items.len())
    })
    .await?;

    // Ids in paths: never one of ours, so refused alike.
    p.refuse("message id: get", s, async |b| b.t.loft.get_message(&b.ba, s).await)
        .await?;
    p.refuse("message id: raw", s, async |b| b.t.loft.raw_message(&b.ba, s).await)
        .await?;
    p.refuse("message id: reply", s, async |b| {
        let req = ReplyMail {
            text: "x".into(),
            ..Default::default()
        };
        b.t.loft.reply(&b.ba, s, req).await
    })
    .await?;
    p.refuse("message id: update", s, async |b| {
        let req = MessagePatch {
            unread: Some(true),
            ..Default::default()
        };
        b.t.loft.update_message(&b.ba, s, req).await
    })
    .await?;
    p.refuse("thread id: get", s, async |b| {
        b.t.loft
            .get_thread(&b.ba, s, loft_core::service::GetThreadParams::default())
            .await
    })
    .await?;
    p.refuse("identity id: get", s, async |b| b.t.loft.get_identity(&b.op, s).await)
        .await?;
    p.refuse("identity id: update", s, async |b| {
        let req = UpdateIdentityRequest {
            display_name: Some("x".into()),
            ..Default::default()
        };
        b.t.loft.update_identity(&b.op, s, req).await
    })
    .await?;
    p.refuse("identity id: keys", s, async |b| {
        b.t.loft.list_keys(&b.op, Some(s)).await
    })
    .await
}

// ----- the run ----------------------------------------------------------------------------------

/// Deletes the PostgreSQL database however the test ends.
struct DropDb(Option<TestDb>);

impl Drop for DropDb {
    fn drop(&mut self) {
        if let Some(db) = self.0.take() {
            db.drop_db_blocking();
        }
    }
}

#[test]
fn unicode_is_accepted_and_refused_alike_and_kept_intact_on_both_backends() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = rt.block_on(TestDb::create()) else {
        return;
    };
    let db = DropDb(Some(db));
    let url = db.0.as_ref().unwrap().url.clone();
    let pair = rt.block_on(async {
        let sqlite = loft_store_sqlite::SqliteStore::open(&dir.path().join("loft.db"))
            .await
            .unwrap();
        let pg = loft_store_postgres::PostgresStore::connect(&url).await.unwrap();
        Pair {
            sqlite: Backend::new("SQLite", Arc::new(sqlite)).await,
            pg: Backend::new("PostgreSQL", Arc::new(pg)).await,
        }
    });
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let ran = run_cases(CASES, |s| {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        rt.block_on(case(&pair, s, n))
    });

    rt.block_on(async {
        for b in pair.each() {
            let report = b.t.assert_chain_ok().await;
            assert!(report.ok, "{}: {report:?}", b.name);
        }
        let (x, y) = (pair.sqlite.t.audit_actions().await, pair.pg.t.audit_actions().await);
        assert!(x == y, "the two audit logs differ:\nSQLite     {x:?}\nPostgreSQL {y:?}");
    });
    eprintln!(
        "{ran} inputs on SQLite and PostgreSQL in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(pair);
    drop(db);
}
