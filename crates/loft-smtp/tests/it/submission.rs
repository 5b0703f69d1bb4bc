//! The submission listener (`SmtpConfig::submission`), command by command: AUTH offered only
//! over TLS (or in the clear from loopback when allowed), PLAIN and LOGIN with an identity's
//! API key and address, refusals with their codes (530, 535, 538, 504, 501, 503, 553), failed
//! AUTH locked out like refused keys over HTTP, and the mail sent through the send use case:
//! delivered with its attachment, or held for a reviewer and answered 250 saying so.

use std::sync::Arc;

use base64::Engine as _;
use loft_core::limits::LimitsConfig;
use loft_core::oversight::OversightMode;
use loft_core::service::{CreateIdentityRequest, ListMessagesParams};
use loft_smtp::{Submission, TlsConfig};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use super::starttls::{client_config, cmd, reply, self_signed};
use super::{Client, server, server_with};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn plain(user: &str, pass: &str) -> String {
    b64(&format!("\0{user}\0{pass}"))
}

fn allow_loopback(c: &mut loft_smtp::SmtpConfig) {
    c.submission = Some(Submission {
        allow_plain_loopback: true,
    });
}

/// A message with a text body and one attached file, as a mail program writes it.
fn message(from: &str, to: &str, subject: &str) -> String {
    format!(
        "From: Someone <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMessage-ID: <client-1@laptop.test>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello from a mail program.\r\n..leading dot kept\r\n\
--B\r\nContent-Type: text/csv; name=\"q4.csv\"\r\nContent-Disposition: attachment; filename=\"q4.csv\"\r\n\r\n\
region,total\r\nnorth,12\r\n--B--\r\n.\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submission_session_command_by_command() {
    let s = server(allow_loopback).await;
    let (a, aa) = s.t.identity("alice").await;
    let (b, ba) = s.t.identity("bob").await;
    let (alice, bob) = (a.identity.address.to_string(), b.identity.address.to_string());

    let (mut c, code, _) = Client::connect(s.addr).await;
    assert_eq!(code, 220);
    let (code, ehlo) = c.cmd("EHLO laptop.test").await;
    assert_eq!(code, 250);
    assert!(ehlo.lines().any(|l| l == "AUTH PLAIN LOGIN"), "{ehlo}");

    // Nothing before AUTH.
    assert_eq!(c.cmd(&format!("MAIL FROM:<{alice}>")).await.0, 530);
    assert_eq!(c.cmd("AUTH CRAM-MD5").await.0, 504);
    // A wrong key; the right key with another identity's address; an undecodable answer.
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", plain(&alice, "loft_sk_wrong"))).await.0,
        535
    );
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", plain(&bob, &a.api_key))).await.0, 535);
    assert_eq!(c.cmd("AUTH PLAIN !!!").await.0, 501);
    // LOGIN, cancelled at the password.
    let (code, text) = c.cmd("AUTH LOGIN").await;
    assert_eq!((code, text.as_str()), (334, "VXNlcm5hbWU6"));
    assert_eq!(c.cmd(&b64(&alice)).await, (334, "UGFzc3dvcmQ6".into()));
    assert_eq!(c.cmd("*").await.0, 501);
    // PLAIN with the initial response empty: the server asks for it.
    assert_eq!(c.cmd("AUTH PLAIN").await.0, 334);
    let (code, text) = c.cmd(&plain(&alice, &a.api_key)).await;
    assert_eq!(code, 235, "{text}");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", plain(&alice, &a.api_key))).await.0, 503);
    let (_, ehlo) = c.cmd("EHLO laptop.test").await;
    assert!(!ehlo.contains("AUTH"), "not offered again once authenticated: {ehlo}");

    // MAIL FROM must be the identity's own address.
    let (code, text) = c.cmd(&format!("MAIL FROM:<{bob}>")).await;
    assert_eq!(code, 553, "{text}");
    assert!(text.starts_with("5.7.1"), "{text}");
    assert_eq!(c.cmd("MAIL FROM:<>").await.0, 553);
    assert_eq!(c.cmd(&format!("MAIL FROM:<{alice}>")).await.0, 250);
    assert_eq!(c.cmd("RCPT TO:<not an address>").await.0, 501);
    assert_eq!(c.cmd(&format!("RCPT TO:<{bob}>")).await.0, 250);
    assert_eq!(c.cmd("DATA").await.0, 354);
    c.send(&message("spoof@elsewhere.test", &bob, "From a mail program"))
        .await;
    let (code, text) = c.reply().await;
    assert_eq!(code, 250, "{text}");
    assert!(text.contains("sent as <"), "{text}");

    let inbox = s.inbox(&ba).await;
    assert_eq!(inbox.len(), 1);
    let got = s.t.loft.get_message(&ba, inbox[0].id.as_str()).await.unwrap();
    assert_eq!(got.from.as_str(), alice, "From is the authenticated identity");
    assert_eq!(got.subject, "From a mail program");
    assert!(
        got.text.contains("Hello from a mail program.\n.leading dot kept"),
        "{:?}",
        got.text
    );
    assert_eq!(got.attachments.len(), 1);
    let f = s.t.loft.get_attachment(&ba, got.id.as_str(), 0).await.unwrap();
    assert_eq!(f.attachment.name.as_deref(), Some("q4.csv"));
    assert_eq!(f.bytes, b"region,total\r\nnorth,12");
    // The sender's copy and the audit row, as for a REST send.
    let sent =
        s.t.all_messages(
            &aa,
            ListMessagesParams {
                folder: Some("sent".into()),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(sent.len(), 1);
    assert_eq!(s.t.audit_count("mail.submit").await, 1);

    // A refusal of the send says why: an unknown local address.
    assert_eq!(c.cmd(&format!("MAIL FROM:<{alice}>")).await.0, 250);
    assert_eq!(c.cmd("RCPT TO:<nobody-zzzzz@agents.test>").await.0, 250);
    assert_eq!(c.cmd("DATA").await.0, 354);
    c.send(&message(&alice, "nobody-zzzzz@agents.test", "Lost")).await;
    let (code, text) = c.reply().await;
    assert_eq!(code, 550, "{text}");
    assert!(text.contains("unknown_recipient"), "{text}");
    // A Bcc: in the envelope, not in the headers.
    assert_eq!(c.cmd(&format!("MAIL FROM:<{alice}>")).await.0, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{bob}>")).await.0, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{alice}>")).await.0, 250);
    assert_eq!(c.cmd("DATA").await.0, 354);
    c.send(&message(&alice, &bob, "With a Bcc")).await;
    assert_eq!(c.reply().await.0, 250);
    let copy = s.inbox(&aa).await;
    assert_eq!(copy.len(), 1, "the Bcc got its copy");
    assert_eq!(c.cmd("QUIT").await.0, 221);
    let _ = s.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submission_auth_needs_tls_unless_loopback_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let tls = TlsConfig::from_pem_files(&cert, &key).unwrap();
    let s = server(move |c| {
        c.tls = Some(tls);
        c.submission = Some(Submission::default());
    })
    .await;
    let (a, _) = s.t.identity("alice").await;
    let (b, ba) = s.t.identity("bob").await;
    let (alice, bob) = (a.identity.address.to_string(), b.identity.address.to_string());

    let mut c = BufReader::new(TcpStream::connect(s.addr).await.unwrap());
    assert_eq!(reply(&mut c).await.0, 220);
    let (code, ehlo) = cmd(&mut c, "EHLO laptop.test").await;
    assert_eq!(code, 250);
    assert!(ehlo.lines().any(|l| l == "STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "no AUTH in the clear: {ehlo}");
    let (code, text) = cmd(&mut c, &format!("AUTH PLAIN {}", plain(&alice, &a.api_key))).await;
    assert_eq!(code, 538, "{text}");
    assert_eq!(cmd(&mut c, "STARTTLS").await.0, 220);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&cert)));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, c.into_inner()).await.unwrap();
    let mut c = BufReader::new(tls);
    let (code, ehlo) = cmd(&mut c, "EHLO laptop.test").await;
    assert_eq!(code, 250);
    assert!(ehlo.lines().any(|l| l == "AUTH PLAIN LOGIN"), "{ehlo}");
    // LOGIN, the whole exchange.
    assert_eq!(cmd(&mut c, "AUTH LOGIN").await.0, 334);
    assert_eq!(cmd(&mut c, &b64(&alice)).await.0, 334);
    assert_eq!(cmd(&mut c, &b64(&a.api_key)).await.0, 235);
    assert_eq!(cmd(&mut c, &format!("MAIL FROM:<{alice}>")).await.0, 250);
    assert_eq!(cmd(&mut c, &format!("RCPT TO:<{bob}>")).await.0, 250);
    assert_eq!(cmd(&mut c, "DATA").await.0, 354);
    c.get_mut()
        .write_all(message(&alice, &bob, "Over TLS").as_bytes())
        .await
        .unwrap();
    assert_eq!(reply(&mut c).await.0, 250);
    assert_eq!(s.inbox(&ba).await.len(), 1);
    let _ = s.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submission_of_held_mail_is_250_saying_held() {
    let s = server(allow_loopback).await;
    let (a, aa) =
        s.t.identity_with(CreateIdentityRequest {
            name: "gated".into(),
            oversight_mode: Some(OversightMode::GatedSend),
            ..Default::default()
        })
        .await;
    let (b, ba) = s.t.identity("bob").await;
    let (alice, bob) = (a.identity.address.to_string(), b.identity.address.to_string());
    let mut c = Client::ready(s.addr).await;
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", plain(&alice, &a.api_key))).await.0, 235);
    assert_eq!(c.cmd(&format!("MAIL FROM:<{alice}>")).await.0, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{bob}>")).await.0, 250);
    assert_eq!(c.cmd("DATA").await.0, 354);
    c.send(&message(&alice, &bob, "Needs a look")).await;
    let (code, text) = c.reply().await;
    assert_eq!(code, 250, "{text}");
    assert!(text.contains("held for a reviewer's approval (apr_"), "{text}");
    assert!(s.inbox(&ba).await.is_empty(), "nothing reached bob");
    let sent =
        s.t.all_messages(
            &aa,
            ListMessagesParams {
                folder: Some("sent".into()),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(sent[0].status, loft_core::mail::MessageStatus::PendingApproval);
    let _ = s.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_auth_is_locked_out_like_refused_keys() {
    let s = server_with(
        |store| {
            loft_testkit::test_loft_with_limits(
                store,
                LimitsConfig {
                    auth_failures: 3,
                    ..LimitsConfig::off()
                },
            )
        },
        allow_loopback,
    )
    .await;
    let (a, _) = s.t.identity("alice").await;
    let alice = a.identity.address.to_string();
    let mut c = Client::ready(s.addr).await;
    for _ in 0..3 {
        assert_eq!(
            c.cmd(&format!("AUTH PLAIN {}", plain(&alice, "loft_sk_guess"))).await.0,
            535
        );
    }
    // Locked out now, the right key included, until the window ends.
    let (code, text) = c.cmd(&format!("AUTH PLAIN {}", plain(&alice, &a.api_key))).await;
    assert_eq!(code, 454, "{text}");
    assert!(text.starts_with("4.7.0"), "{text}");
    let _ = s.stop.send(true);
}

/// The MX never offers or accepts AUTH: submission is its own listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mx_offers_no_auth() {
    let s = server(|_| {}).await;
    let (a, _) = s.t.identity("alice").await;
    let (mut c, _, _) = Client::connect(s.addr).await;
    let (_, ehlo) = c.cmd("EHLO laptop.test").await;
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    let line = format!("AUTH PLAIN {}", plain(a.identity.address.as_str(), &a.api_key));
    assert_eq!(c.cmd(&line).await.0, 502);
}
