//! The SMTP listener driven by a raw TCP client on loopback, command by command, with the
//! reply codes a sending MTA relies on: the happy path, PIPELINING, every limit, refusals
//! (never an open relay) and bad sequences.

#![allow(
    clippy::unwrap_used,
    clippy::too_many_lines,
    clippy::many_single_char_names,
    reason = "test stories read top to bottom; short names pair an identity with its actor"
)]

mod outbound;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use loft_core::mail::Verdict;
use loft_core::quota::Quotas;
use loft_core::rules::{RuleAction, RuleDirection};
use loft_core::service::{Actor, CreateRuleRequest, ListMessagesParams};
use loft_smtp::SmtpConfig;
use loft_testkit::{TEST_DOMAIN, TestLoft, test_loft_with_quotas};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

mod starttls;
mod submission;

struct Server {
    t: TestLoft,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn server(config: impl FnOnce(&mut SmtpConfig)) -> Server {
    server_with_quotas(Quotas::off(), config).await
}

async fn server_with_quotas(quotas: Quotas, config: impl FnOnce(&mut SmtpConfig)) -> Server {
    server_with(|store| test_loft_with_quotas(store, quotas), config).await
}

/// A listener over the Loft `make` builds on a fresh SQLite store.
async fn server_with(
    make: impl FnOnce(Arc<dyn loft_core::store::Store>) -> TestLoft,
    config: impl FnOnce(&mut SmtpConfig),
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = loft_store_sqlite::SqliteStore::open(&dir.path().join("loft.db"))
        .await
        .unwrap();
    let t = make(Arc::new(store));
    let mut c = SmtpConfig::new(TEST_DOMAIN);
    config(&mut c);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(loft_smtp::serve(listener, t.loft.clone(), c, stopped));
    Server {
        t,
        addr,
        stop,
        task,
        _dir: dir,
    }
}

impl Server {
    async fn inbox(&self, who: &Actor) -> Vec<loft_core::mail::MessageSummary> {
        self.t
            .all_messages(
                who,
                ListMessagesParams {
                    folder: Some("inbox".into()),
                    ..Default::default()
                },
            )
            .await
    }
}

struct Client {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> (Self, u16, String) {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut c = Self {
            r: BufReader::new(r),
            w,
        };
        let (code, text) = c.reply().await;
        (c, code, text)
    }

    /// A greeted client that said EHLO.
    async fn ready(addr: SocketAddr) -> Self {
        let (mut c, code, _) = Self::connect(addr).await;
        assert_eq!(code, 220);
        assert_eq!(c.cmd("EHLO client.outside.test").await.0, 250);
        c
    }

    /// One whole reply (all its lines): the code and the lines' texts joined by `\n`. Code
    /// 0 when the server closed the connection.
    async fn reply(&mut self) -> (u16, String) {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), self.r.read_line(&mut line))
                .await
                .expect("a reply within 10 s")
                .unwrap();
            if n == 0 {
                return (0, lines.join("\n"));
            }
            assert!(line.ends_with("\r\n"), "replies end with CRLF: {line:?}");
            let code: u16 = line[..3].parse().unwrap();
            let last = line.as_bytes()[3] == b' ';
            lines.push(line[4..].trim_end().to_owned());
            if last {
                return (code, lines.join("\n"));
            }
        }
    }

    async fn send(&mut self, raw: &str) {
        self.w.write_all(raw.as_bytes()).await.unwrap();
    }

    async fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await
    }

    /// Whether the server closed the connection (reads to the end).
    async fn closed(&mut self) -> bool {
        let mut rest = String::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.r.read_line(&mut rest)).await,
            Ok(Ok(0))
        )
    }
}

fn mail(from: &str, to: &str, subject: &str, body: &str) -> String {
    format!("From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@outside.test>\r\n\r\n{body}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_is_stored_before_250_and_reads_back() {
    let s = server(|_| {}).await;
    let (a, aa) = s.t.identity("alice").await;
    let to = a.identity.address.as_str();

    let (mut c, code, greeting) = Client::connect(s.addr).await;
    assert_eq!(code, 220);
    assert!(greeting.starts_with(TEST_DOMAIN), "{greeting}");
    let (code, ehlo) = c.cmd("EHLO client.outside.test").await;
    assert_eq!(code, 250);
    for ext in [
        "PIPELINING",
        "SIZE 26214400",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
    ] {
        assert!(ehlo.lines().any(|l| l == ext), "EHLO offers {ext}: {ehlo}");
    }
    assert!(!ehlo.contains("STARTTLS"), "STARTTLS is not offered yet: {ehlo}");
    assert_eq!(
        c.cmd("MAIL FROM:<carol@outside.test> BODY=8BITMIME SIZE=300").await.0,
        250
    );
    let (code, text) = c.cmd(&format!("RCPT TO:<{to}>")).await;
    assert_eq!((code, text.as_str()), (250, "2.1.5 Recipient OK"));
    let (code, text) = c.cmd("DATA").await;
    assert_eq!(code, 354, "{text}");
    // A leading dot is doubled on the wire (dot-stuffing) and must come back single.
    let body = "Hello Alice,\r\n..hidden dot line\r\nthe end\r\n";
    c.send(&mail("carol@outside.test", to, "greeting", body)).await;
    c.send(".\r\n").await;
    let (code, text) = c.reply().await;
    assert_eq!(code, 250, "{text}");
    assert!(
        text.starts_with("2.0.0 OK: stored as <greeting@outside.test>"),
        "{text}"
    );

    // 250 means stored: it is in the inbox now.
    let inbox = s.inbox(&aa).await;
    assert_eq!(inbox.len(), 1);
    let m = s.t.loft.get_message(&aa, inbox[0].id.as_str()).await.unwrap();
    assert_eq!(m.from.as_str(), "carol@outside.test");
    assert_eq!(m.text, "Hello Alice,\n.hidden dot line\nthe end");
    assert_eq!(m.authentication.verdict, Verdict::ExternalUnverified);
    let raw = s.t.loft.raw_message(&aa, m.id.as_str()).await.unwrap();
    assert!(String::from_utf8_lossy(&raw).contains("\r\n.hidden dot line\r\n"));

    // An internationalized sender (SMTPUTF8 is offered) is accepted; Loft keeps its From as
    // the name.
    assert_eq!(c.cmd("MAIL FROM:<jürgen@bücher.example> SMTPUTF8").await.0, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{to}>")).await.0, 250);
    assert_eq!(c.cmd("DATA").await.0, 354);
    c.send(&format!(
        "From: Jürgen <jürgen@bücher.example>\r\nTo: <{to}>\r\nSubject: grüße\r\n\r\nHallo\r\n.\r\n"
    ))
    .await;
    assert_eq!(c.reply().await.0, 250);
    let inbox = s.inbox(&aa).await;
    let m = inbox.iter().find(|m| m.subject == "grüße").unwrap();
    assert_eq!(m.from_name.as_deref(), Some("Jürgen <jürgen@bücher.example>"));
    assert_eq!(m.from.as_str(), "unknown@unknown.invalid");

    // The session goes on: a second mail in the same session, then RSET, NOOP, QUIT.
    assert_eq!(
        c.cmd("MAIL FROM:<>").await.0,
        250,
        "the null sender (bounces) is accepted"
    );
    assert_eq!(c.cmd(&format!("RCPT TO:<{}>", to.to_uppercase())).await.0, 250);
    assert_eq!(c.cmd("DATA").await.0, 354);
    c.send(&mail("mailer-daemon@outside.test", to, "second", "two\r\n.\r\n"))
        .await;
    assert_eq!(c.reply().await.0, 250);
    assert_eq!(s.inbox(&aa).await.len(), 3);
    assert_eq!(c.cmd("RSET").await, (250, "2.0.0 OK".into()));
    assert_eq!(c.cmd("NOOP").await.0, 250);
    assert_eq!(c.cmd("VRFY alice").await.0, 252, "VRFY neither confirms nor denies");
    assert_eq!(c.cmd("QUIT").await.0, 221);
    assert!(c.closed().await);
    s.stop.send(true).unwrap();
    s.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_commands_get_their_replies_in_order() {
    let s = server(|_| {}).await;
    let (a, aa) = s.t.identity("alice").await;
    let (b, ba) = s.t.identity("bob").await;
    let mut c = Client::ready(s.addr).await;
    // One write with the whole transaction up to DATA (RFC 2920).
    c.send(&format!(
        "MAIL FROM:<carol@outside.test>\r\nRCPT TO:<{}>\r\nRCPT TO:<nobody@{TEST_DOMAIN}>\r\nRCPT TO:<victim@elsewhere.test>\r\nRCPT TO:<{}>\r\nDATA\r\n",
        a.identity.address, b.identity.address
    ))
    .await;
    let codes: Vec<(u16, String)> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(c.reply().await);
        }
        v
    };
    assert_eq!(codes[0].0, 250);
    assert_eq!(codes[1].0, 250);
    assert_eq!(codes[2], (550, "5.1.1 No such user here".into()));
    assert_eq!(codes[3], (550, "5.7.1 Relaying denied".into()), "never an open relay");
    assert_eq!(codes[4].0, 250);
    assert_eq!(codes[5].0, 354);
    // The data and the next transaction in one write too.
    c.send(&format!(
        "{}\r\n.\r\nMAIL FROM:<carol@outside.test>\r\nRCPT TO:<{}>\r\nDATA\r\n",
        mail(
            "carol@outside.test",
            a.identity.address.as_str(),
            "piped",
            "pipelined\r\n"
        ),
        b.identity.address
    ))
    .await;
    assert_eq!(c.reply().await.0, 250);
    assert_eq!(c.reply().await.0, 250);
    assert_eq!(c.reply().await.0, 250);
    assert_eq!(c.reply().await.0, 354);
    c.send(&format!(
        "{}.\r\nQUIT\r\n",
        mail("carol@outside.test", "x@y.test", "piped2", "again\r\n")
    ))
    .await;
    assert_eq!(c.reply().await.0, 250);
    assert_eq!(c.reply().await.0, 221);
    assert_eq!(s.inbox(&aa).await.len(), 1);
    assert_eq!(s.inbox(&ba).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_answers_with_its_code() {
    let s = server(|c| {
        c.max_message_bytes = 2000;
        c.max_recipients = 2;
        c.max_line_bytes = 100;
        c.max_commands = 12;
        c.idle_timeout = Duration::from_millis(400);
        c.max_connections_per_ip = 3;
    })
    .await;
    let (a, aa) = s.t.identity("alice").await;
    let (b, _) = s.t.identity("bob").await;
    let (d, _) = s.t.identity("dave").await;
    let to = a.identity.address.as_str();

    // Message size: announced too big, and too big in fact (nothing stored; the session goes on).
    let mut c = Client::ready(s.addr).await;
    let (code, text) = c.cmd("MAIL FROM:<carol@outside.test> SIZE=5000").await;
    assert_eq!((code, &text[..5]), (552, "5.3.4"), "{text}");
    assert_eq!(c.cmd("MAIL FROM:<carol@outside.test>").await.0, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{to}>")).await.0, 250);
    assert_eq!(c.cmd("DATA").await.0, 354);
    let line = format!("{}\r\n", "x".repeat(70));
    c.send(&mail("carol@outside.test", to, "big", &line.repeat(40))).await;
    c.send(".\r\n").await;
    let (code, text) = c.reply().await;
    assert_eq!((code, &text[..5]), (552, "5.3.4"), "{text}");
    assert!(s.inbox(&aa).await.is_empty());
    assert_eq!(c.cmd("NOOP").await.0, 250, "the session survives a refused mail");

    // Recipients per message: the third is deferred.
    assert_eq!(c.cmd("MAIL FROM:<carol@outside.test>").await.0, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{to}>")).await.0, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{}>", b.identity.address)).await.0, 250);
    let (code, text) = c.cmd(&format!("RCPT TO:<{}>", d.identity.address)).await;
    assert_eq!((code, &text[..5]), (452, "4.5.3"), "{text}");
    assert_eq!(c.cmd("RSET").await.0, 250);

    // Command line length.
    let (code, text) = c.cmd(&format!("NOOP {}", "y".repeat(200))).await;
    assert_eq!((code, text.as_str()), (500, "5.5.2 Line too long"));

    // Commands per session: 11 so far (EHLO, MAIL, MAIL, RCPT, DATA, NOOP, MAIL, RCPT, RCPT,
    // RCPT, RSET; the over-long line was refused before it counted), the 12th is the last.
    assert_eq!(c.cmd("NOOP").await.0, 250);
    let (code, text) = c.cmd("NOOP").await;
    assert_eq!((code, &text[..5]), (421, "4.7.0"), "{text}");
    assert!(c.closed().await);

    // Idle time.
    let mut c = Client::ready(s.addr).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (code, text) = c.reply().await;
    assert_eq!((code, &text[..5]), (421, "4.4.2"), "{text}");
    assert!(c.closed().await);

    // Connections per client address: three open, the fourth refused at once.
    let held: Vec<Client> = futures_join(s.addr, 3).await;
    let (mut fourth, code, text) = Client::connect(s.addr).await;
    assert_eq!((code, &text[..5]), (421, "4.7.0"), "{text}");
    assert!(fourth.closed().await);
    drop(held);
    // Once they are gone, a new one is welcome (the server notices the closes).
    let mut welcomed = false;
    for _ in 0..50 {
        let (mut c, code, _) = Client::connect(s.addr).await;
        if code == 220 {
            assert_eq!(c.cmd("QUIT").await.0, 221);
            welcomed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(welcomed);
}

async fn futures_join(addr: SocketAddr, n: usize) -> Vec<Client> {
    let mut v = Vec::new();
    for _ in 0..n {
        let (c, code, _) = Client::connect(addr).await;
        assert_eq!(code, 220);
        v.push(c);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sequences_and_unknown_commands_are_refused() {
    let s = server(|c| c.max_errors = 8).await;
    let (a, aa) = s.t.identity("alice").await;
    let to = a.identity.address.as_str();
    let (mut c, _, _) = Client::connect(s.addr).await;
    assert_eq!(c.cmd("MAIL FROM:<carol@outside.test>").await.0, 503, "MAIL before EHLO");
    assert_eq!(c.cmd("HELO client.outside.test").await.0, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{to}>")).await.0, 503, "RCPT before MAIL");
    assert_eq!(c.cmd("DATA").await.0, 503, "DATA before MAIL");
    assert_eq!(c.cmd("MAIL FROM:<carol@outside.test>").await.0, 250);
    assert_eq!(c.cmd("MAIL FROM:<carol@outside.test>").await.0, 503, "a second MAIL");
    assert_eq!(c.cmd("DATA").await.0, 554, "DATA without a recipient");
    let (code, text) = c.cmd("FROB").await;
    assert_eq!((code, text.as_str()), (500, "5.5.1 Command unrecognized"));
    assert_eq!(c.cmd("STARTTLS").await.0, 502, "not offered yet");
    // One more refusal reaches max_errors: the session ends.
    let (code, _) = c.cmd("MAIL FROM:<not an address>").await;
    assert!(code == 501 || code == 553, "{code}");
    let (code, text) = c.reply().await;
    assert_eq!((code, &text[..5]), (421, "4.7.0"), "{text}");
    assert!(c.closed().await);

    // RSET ends a transaction: its recipients are forgotten.
    let mut c = Client::ready(s.addr).await;
    assert_eq!(c.cmd("MAIL FROM:<carol@outside.test>").await.0, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{to}>")).await.0, 250);
    assert_eq!(c.cmd("RSET").await.0, 250);
    assert_eq!(c.cmd("DATA").await.0, 503);

    // A bare LF before the dot does not end the data (no SMTP smuggling): the "second mail"
    // below stays inside the first one's body.
    assert_eq!(c.cmd("MAIL FROM:<carol@outside.test>").await.0, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{to}>")).await.0, 250);
    assert_eq!(c.cmd("DATA").await.0, 354);
    c.send(&mail(
        "carol@outside.test",
        to,
        "smuggle",
        "first\n.\nMAIL FROM:<x@y.test>\r\n.\r\n",
    ))
    .await;
    assert_eq!(c.reply().await.0, 250);
    assert_eq!(c.cmd("NOOP").await.0, 250);
    let inbox = s.inbox(&aa).await;
    assert_eq!(inbox.len(), 1);
    let m = s.t.loft.get_message(&aa, inbox[0].id.as_str()).await.unwrap();
    assert!(m.text.contains("MAIL FROM:<x@y.test>"), "{:?}", m.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_greeting_name_with_control_characters_is_refused_not_echoed() {
    // Found by the smtp_session fuzz target: the greeting echoed a NUL of the EHLO name.
    let s = server(|_| {}).await;
    let (mut c, _, _) = Client::connect(s.addr).await;
    let (code, text) = c.cmd("EHLO client\0.outside.test").await;
    assert_eq!((code, text.as_str()), (501, "5.5.4 Invalid domain name"));
    assert_eq!(c.cmd("HELO a\u{1}b.outside.test").await.0, 501);
    let (code, text) = c.cmd("EHLO client.outside.test").await;
    assert_eq!(code, 250, "{text}");
    assert!(!text.chars().any(|ch| ch.is_control() && ch != '\n'), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_senders_and_spoofers() {
    let s = server(|_| {}).await;
    let (a, aa) = s.t.identity("alice").await;
    let (b, _) = s.t.identity("bob").await;
    let to = a.identity.address.as_str();
    let op = s.t.operator().await;
    s.t.loft
        .add_rule(
            &op,
            CreateRuleRequest {
                identity: Some(a.identity.id.to_string()),
                instance: None,
                direction: RuleDirection::Receive,
                action: RuleAction::Block,
                pattern: "*@spam.test".into(),
                note: None,
            },
        )
        .await
        .unwrap();
    let mut c = Client::ready(s.addr).await;
    assert_eq!(c.cmd("MAIL FROM:<boss@spam.test>").await.0, 250);
    let (code, text) = c.cmd(&format!("RCPT TO:<{to}>")).await;
    assert_eq!(code, 550);
    assert!(text.starts_with("5.7.1"), "{text}");
    assert!(
        !text.contains("spam") && !text.contains("rule") && !text.contains("alice"),
        "names no internals: {text}"
    );
    assert_eq!(c.cmd("RSET").await.0, 250);
    // The From header blocked while the envelope is not: refused after the data.
    assert_eq!(c.cmd("MAIL FROM:<bounces@relay.test>").await.0, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{to}>")).await.0, 250);
    assert_eq!(c.cmd("DATA").await.0, 354);
    c.send(&mail("boss@spam.test", to, "blocked", "hi\r\n.\r\n")).await;
    let (code, text) = c.reply().await;
    assert_eq!((code, &text[..5]), (550, "5.7.1"), "{text}");
    assert!(s.inbox(&aa).await.is_empty());
    // A hosted address in From, arriving by SMTP: kept, marked as suspected spoofing.
    assert_eq!(c.cmd("MAIL FROM:<x@outside.test>").await.0, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{to}>")).await.0, 250);
    assert_eq!(c.cmd("DATA").await.0, 354);
    c.send(&mail(b.identity.address.as_str(), to, "spoof", "I am Bob\r\n.\r\n"))
        .await;
    assert_eq!(c.reply().await.0, 250);
    let inbox = s.inbox(&aa).await;
    assert_eq!(inbox[0].authentication.verdict, Verdict::SpoofedSuspect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_says_421_to_idle_sessions() {
    let s = server(|c| c.shutdown_grace = Duration::from_secs(2)).await;
    let mut c = Client::ready(s.addr).await;
    s.stop.send(true).unwrap();
    let (code, text) = c.reply().await;
    assert_eq!((code, &text[..5]), (421, "4.3.2"), "{text}");
    assert!(c.closed().await);
    tokio::time::timeout(Duration::from_secs(5), s.task)
        .await
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(s.addr).await.is_err(), "no longer listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_mailbox_defers_with_452() {
    let s = server_with_quotas(
        Quotas {
            stored_bytes: Some(3000),
            ..Quotas::off()
        },
        |_| {},
    )
    .await;
    let (a, aa) = s.t.identity("alice").await;
    let to = a.identity.address.as_str();
    let mut c = Client::ready(s.addr).await;
    let deliver = async |c: &mut Client, subject: &str, body_len: usize| -> (u16, String) {
        assert_eq!(c.cmd("MAIL FROM:<carol@outside.test>").await.0, 250);
        let (code, text) = c.cmd(&format!("RCPT TO:<{to}>")).await;
        if code != 250 {
            return (code, text);
        }
        assert_eq!(c.cmd("DATA").await.0, 354);
        let body = format!("{}\r\n.\r\n", "z".repeat(body_len));
        c.send(&mail("carol@outside.test", to, subject, &body)).await;
        c.reply().await
    };
    // Too big for the mailbox: refused after the data, temporarily, nothing stored.
    let (code, text) = deliver(&mut c, "big", 3500).await;
    assert_eq!((code, text.as_str()), (452, "4.2.2 Mailbox full, try again later"));
    assert!(s.inbox(&aa).await.is_empty());
    // One mail, then one that fills the mailbox to the byte (same header sizes: the subjects
    // are as long), then RCPT itself defers.
    assert_eq!(deliver(&mut c, "one", 1000).await.0, 250);
    let inbox = s.inbox(&aa).await;
    let one = s.t.loft.get_message(&aa, inbox[0].id.as_str()).await.unwrap();
    let overhead = u64::try_from(one.size).unwrap() - 1002;
    let rest = usize::try_from(3000 - u64::try_from(one.size).unwrap() - overhead - 2).unwrap();
    assert_eq!(deliver(&mut c, "two", rest).await.0, 250);
    let used =
        s.t.store()
            .mailbox_bytes(std::slice::from_ref(&a.identity.id))
            .await
            .unwrap()[0]
            .1;
    assert_eq!(used, 3000);
    let (code, text) = deliver(&mut c, "six", 1).await;
    assert_eq!((code, text.as_str()), (452, "4.2.2 Mailbox full, try again later"));
    assert_eq!(s.inbox(&aa).await.len(), 2);
    assert_eq!(c.cmd("RSET").await.0, 250);
}
