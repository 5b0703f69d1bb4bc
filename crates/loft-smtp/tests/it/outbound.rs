//! Outbound delivery against a scripted SMTP sink on loopback, with DNS answered by the test
//! (`MxResolver`): delivered with the identity headers; a 4xx then a 2xx (retried, delivered
//! once); a 5xx (bounced, notice in the sender's inbox, suppressed, later send refused); the
//! delivery lifetime running out; MX preference order and fallback; the egress policy refusing
//! loopback unless allowed; a smarthost with AUTH (and a wrong password, retried).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine as _;
use loft_broker::EgressPolicy;
use loft_core::events::EventKind;
use loft_core::mail::{DeliveryStatus, Message};
use loft_core::runner::{JobRunner, RunReport};
use loft_core::service::{Actor, EventParams, ListMessagesParams, ListSuppressionsParams};
use loft_smtp::outbound::{DeliveryWorker, DnsError, MxResolver, OutboundConfig, Route, Smarthost, SmarthostTls};
use loft_testkit::{TestLoft, mail, test_loft};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What a sink received in one transaction.
#[derive(Debug, Clone)]
struct Received {
    mail_from: String,
    rcpt: Vec<String>,
    data: String,
    user: Option<String>,
}

/// How a sink answers: per connection (the last entry repeats).
#[derive(Debug, Clone, Default)]
struct Script {
    greeting: Vec<&'static str>,
    rcpt: Vec<&'static str>,
    auth: Option<(&'static str, &'static str)>,
    /// Per connection: take the data, then never answer (the sender dies waiting).
    hang_after_data: Vec<bool>,
    /// Wait this long before answering the data (a slow MX).
    data_delay: std::time::Duration,
}

fn pick(list: &[&'static str], n: usize, default: &'static str) -> &'static str {
    list.get(n).or(list.last()).copied().unwrap_or(default)
}

struct Sink {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    /// The most sessions open at once.
    peak: Arc<Mutex<(usize, usize)>>,
}

impl Sink {
    fn peak(&self) -> usize {
        self.peak.lock().unwrap().1
    }
}

/// A tiny SMTP server on `ip` (a loopback address) and `port` (0: any); every connection's
/// arrival is logged in `log` with `name`.
async fn sink(ip: Ipv4Addr, port: u16, script: Script, name: &'static str, log: Arc<Mutex<Vec<String>>>) -> Sink {
    let listener = TcpListener::bind((ip, port)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let got2 = got.clone();
    // (open now, most open at once)
    let peak = Arc::new(Mutex::new((0, 0)));
    let peak2 = peak.clone();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            log.lock().unwrap().push(name.to_owned());
            let script = script.clone();
            let got = got2.clone();
            let conn = n;
            n += 1;
            let peak = peak2.clone();
            tokio::spawn(async move {
                {
                    let mut p = peak.lock().unwrap();
                    p.0 += 1;
                    p.1 = p.1.max(p.0);
                }
                let _ = session(stream, &script, conn, &got).await;
                peak.lock().unwrap().0 -= 1;
            });
        }
    });
    Sink { port, got, peak }
}

async fn session(
    stream: tokio::net::TcpStream,
    script: &Script,
    conn: usize,
    got: &Mutex<Vec<Received>>,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let greeting = pick(&script.greeting, conn, "220 sink.test ESMTP");
    w.write_all(format!("{greeting}\r\n").as_bytes()).await?;
    if !greeting.starts_with('2') {
        return Ok(());
    }
    let mut cur: Option<Received> = None;
    let mut user = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.trim_end().to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let auth = if script.auth.is_some() {
                "250-AUTH PLAIN\r\n"
            } else {
                ""
            };
            format!("250-sink.test\r\n{auth}250 8BITMIME")
        } else if let Some(arg) = upper.strip_prefix("AUTH PLAIN ") {
            let _ = arg;
            let b64 = line.trim_end()["AUTH PLAIN ".len()..].to_owned();
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default();
            let parts: Vec<String> = raw
                .split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            match script.auth {
                Some((u, p)) if parts.len() == 3 && parts[1] == u && parts[2] == p => {
                    user = Some(u.to_owned());
                    "235 2.7.0 Authentication successful".into()
                }
                _ => "535 5.7.8 Authentication credentials invalid".into(),
            }
        } else if upper.starts_with("MAIL FROM:") {
            if script.auth.is_some() && user.is_none() {
                "530 5.7.0 Authentication required".into()
            } else {
                cur = Some(Received {
                    mail_from: line.trim_end()[10..].trim_matches(['<', '>']).to_owned(),
                    rcpt: vec![],
                    data: String::new(),
                    user: user.clone(),
                });
                "250 2.1.0 OK".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            let answer = pick(&script.rcpt, conn, "250 2.1.5 OK");
            if answer.starts_with('2')
                && let Some(c) = cur.as_mut()
            {
                c.rcpt.push(line.trim_end()[8..].trim_matches(['<', '>']).to_owned());
            }
            answer.into()
        } else if upper == "DATA" {
            w.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).await? == 0 {
                    return Ok(());
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(l.strip_prefix('.').filter(|_| l.starts_with("..")).unwrap_or(&l));
            }
            let mut c = cur.take().unwrap_or(Received {
                mail_from: String::new(),
                rcpt: vec![],
                data: String::new(),
                user: None,
            });
            c.data = data;
            got.lock().unwrap().push(c);
            if script.hang_after_data.get(conn).copied().unwrap_or(false) {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(script.data_delay).await;
            let n = got.lock().unwrap().len();
            format!("250 2.0.0 OK queued as Q{n}")
        } else if upper == "QUIT" {
            w.write_all(b"221 2.0.0 bye\r\n").await?;
            let mut rest = Vec::new();
            let _ = r.read_to_end(&mut rest).await;
            return Ok(());
        } else {
            "250 OK".into()
        };
        w.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// DNS answers given by the test.
#[derive(Default)]
struct FakeDns {
    mx: HashMap<String, Vec<(u16, String)>>,
    a: HashMap<String, Vec<IpAddr>>,
}

#[async_trait]
impl MxResolver for FakeDns {
    async fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsError> {
        self.mx.get(domain).cloned().ok_or(DnsError::NotFound)
    }
    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        self.a.get(host).cloned().ok_or(DnsError::NotFound)
    }
}

fn dns(mx: &[(&str, u16, &str)], a: &[(&str, Ipv4Addr)]) -> Arc<FakeDns> {
    let mut d = FakeDns::default();
    for (domain, pref, host) in mx {
        d.mx.entry((*domain).to_owned())
            .or_default()
            .push((*pref, (*host).to_owned()));
    }
    for (host, ip) in a {
        d.a.entry((*host).to_owned()).or_default().push(IpAddr::V4(*ip));
    }
    Arc::new(d)
}

fn loopback_allowed() -> EgressPolicy {
    EgressPolicy::parse(["127.0.0.0/8"]).unwrap()
}

struct Rig {
    t: TestLoft,
    runner: JobRunner,
    _dir: tempfile::TempDir,
}

async fn rig(config: OutboundConfig, resolver: Arc<dyn MxResolver>) -> Rig {
    rig_with(config, resolver).await.0
}

/// A rig and a second worker on the same server (another node's runner).
async fn rig_with(config: OutboundConfig, resolver: Arc<dyn MxResolver>) -> (Rig, JobRunner) {
    let dir = tempfile::tempdir().unwrap();
    let store = loft_store_sqlite::SqliteStore::open(&dir.path().join("loft.db"))
        .await
        .unwrap();
    let t = test_loft(Arc::new(store));
    let runner = JobRunner::new(t.loft.clone(), "worker-1")
        .with_handler(Box::new(DeliveryWorker::new(config.clone(), resolver.clone())));
    let second =
        JobRunner::new(t.loft.clone(), "worker-2").with_handler(Box::new(DeliveryWorker::new(config, resolver)));
    (Rig { t, runner, _dir: dir }, second)
}

fn direct(port: u16) -> OutboundConfig {
    let mut c = OutboundConfig::new(Route::Direct { port }, "agents.test", loopback_allowed());
    c.timeout = std::time::Duration::from_secs(10);
    c
}

impl Rig {
    async fn run(&self) -> RunReport {
        self.runner.run_due().await.unwrap()
    }
    async fn report(&self, who: &Actor, m: &Message) -> Vec<loft_core::mail::Delivery> {
        self.t.loft.get_message(who, m.id.as_str()).await.unwrap().delivery
    }
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
    async fn kinds(&self, who: &Actor) -> Vec<EventKind> {
        let page = self.t.loft.list_events(who, EventParams::default()).await.unwrap();
        page.items.iter().map(|e| e.kind).collect()
    }

    /// Hosts `domain` on the rig's server (its DKIM keys made) and starts a second Loft whose
    /// DNS answers hold the TXT records the domain published (DKIM, SPF, DMARC), with an
    /// identity `b` to receive into: the far side of an outbound delivery.
    async fn receiving_loft(&self, domain: &str) -> Receiver {
        use loft_core::domains::{AddDomainRequest, RecordType};
        let op = self.t.operator().await;
        let view = self
            .t
            .loft
            .add_domain(&op, AddDomainRequest { name: domain.into() })
            .await
            .unwrap();
        let mut answers = loft_testkit::StaticDns::default();
        for rec in view.records.iter().filter(|r| r.record_type == RecordType::Txt) {
            answers = answers.txt(&rec.name, &rec.value);
        }
        let dir = tempfile::tempdir().unwrap();
        let store = loft_store_sqlite::SqliteStore::open(&dir.path().join("other.db"))
            .await
            .unwrap();
        let other = loft_testkit::test_loft_with_dns(Arc::new(store), answers);
        let (b_c, b) = other.identity("b").await;
        Receiver {
            other,
            b_address: b_c.identity.address,
            b,
            _dir: dir,
        }
    }
}

/// The far side of an outbound delivery ([`Rig::receiving_loft`]).
struct Receiver {
    other: TestLoft,
    b_address: loft_core::address::EmailAddress,
    b: Actor,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// `data` (as it left the rig's server) delivered to `b` from an outside address (the To
    /// is rewritten only in the envelope); the stored message.
    async fn receive(&self, data: &str) -> Message {
        let env = loft_core::inbound::Envelope {
            client_ip: Some("192.0.2.1".into()),
            helo: "mx.agents.test".into(),
            mail_from: None,
            recipients: vec![self.b_address.clone()],
        };
        self.other.loft.receive_inbound(&env, data.as_bytes()).await.unwrap();
        let inbox = self.other.all_messages(&self.b, ListMessagesParams::default()).await;
        self.other
            .loft
            .get_message(&self.b, inbox[0].id.as_str())
            .await
            .unwrap()
    }

    async fn attachment(&self, m: &Message, index: u32) -> Vec<u8> {
        self.other
            .loft
            .get_attachment(&self.b, m.id.as_str(), index)
            .await
            .unwrap()
            .bytes
    }
}

#[tokio::test]
async fn delivers_to_the_mx_with_the_identity_headers() {
    let log = Arc::new(Mutex::new(vec![]));
    let s = sink(Ipv4Addr::LOCALHOST, 0, Script::default(), "mx", log).await;
    let resolver = dns(
        &[("remote.example", 10, "mx.remote.example")],
        &[("mx.remote.example", Ipv4Addr::LOCALHOST)],
    );
    let r = rig(direct(s.port), resolver).await;
    let (a_c, a) = r.t.identity("a").await;
    let sent =
        r.t.send(&a, &["x@remote.example"], "Proposal", "Hello from Loft.")
            .await;
    assert_eq!(sent.delivery[0].status, DeliveryStatus::Queued);

    let report = r.run().await;
    assert_eq!(report.completed, 1, "{report:?}");
    let got = s.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mail_from, a_c.identity.address.as_str());
    assert_eq!(got[0].rcpt, vec!["x@remote.example"]);
    assert!(
        got[0]
            .data
            .starts_with(&format!("X-Loft-Identity: {} (", a_c.identity.address)),
        "{}",
        got[0].data
    );
    assert!(got[0].data.contains("X-Loft-Oversight: autonomous\r\n"));
    assert!(got[0].data.contains("Subject: Proposal") && got[0].data.contains("Hello from Loft."));
    let d = r.report(&a, &sent).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered);
    assert!(d[0].detail.contains("250 2.0.0 OK queued as Q1"), "{d:?}");
    assert!(r.kinds(&a).await.contains(&EventKind::MessageDelivered));
    // Nothing left to do.
    assert_eq!(r.run().await, RunReport::default());
}

#[tokio::test]
async fn a_temporary_failure_is_retried_then_delivered_once() {
    let log = Arc::new(Mutex::new(vec![]));
    let script = Script {
        rcpt: vec!["451 4.3.0 mailbox busy, try later", "250 2.1.5 OK"],
        ..Script::default()
    };
    let s = sink(Ipv4Addr::LOCALHOST, 0, script, "mx", log.clone()).await;
    let resolver = dns(
        &[("remote.example", 10, "mx.remote.example")],
        &[("mx.remote.example", Ipv4Addr::LOCALHOST)],
    );
    let r = rig(direct(s.port), resolver).await;
    let (_, a) = r.t.identity("a").await;
    let sent = r.t.send(&a, &["x@remote.example"], "Busy", "x").await;

    assert_eq!(r.run().await.retried, 1);
    let d = r.report(&a, &sent).await;
    assert_eq!(d[0].status, DeliveryStatus::Queued);
    assert!(d[0].detail.contains("451 4.3.0 mailbox busy"), "{d:?}");
    // Not due before its backoff (60 s).
    assert_eq!(r.run().await, RunReport::default());
    r.t.clock.advance_secs(61);
    assert_eq!(r.run().await.completed, 1);
    assert_eq!(r.report(&a, &sent).await[0].status, DeliveryStatus::Delivered);
    assert_eq!(s.got.lock().unwrap().len(), 1);
    assert_eq!(log.lock().unwrap().len(), 2, "two connections");
    assert!(r.inbox(&a).await.is_empty(), "no notice for a delivered mail");
}

#[tokio::test]
async fn a_hard_bounce_notifies_suppresses_and_refuses_later_sends() {
    let log = Arc::new(Mutex::new(vec![]));
    let script = Script {
        rcpt: vec!["550 5.1.1 <gone@remote.example>: Recipient address rejected: User unknown"],
        ..Script::default()
    };
    let s = sink(Ipv4Addr::LOCALHOST, 0, script, "mx", log).await;
    let resolver = dns(
        &[("remote.example", 10, "mx.remote.example")],
        &[("mx.remote.example", Ipv4Addr::LOCALHOST)],
    );
    let r = rig(direct(s.port), resolver).await;
    let (_, a) = r.t.identity("a").await;
    let (_, b) = r.t.identity("b").await;
    let sent = r.t.send(&a, &["gone@remote.example"], "Offer", "x").await;

    assert_eq!(r.run().await.failed, 1);
    let d = r.report(&a, &sent).await;
    assert_eq!(d[0].status, DeliveryStatus::Bounced);
    assert!(d[0].detail.contains("550 5.1.1"), "{d:?}");
    assert!(s.got.lock().unwrap().is_empty());
    let inbox = r.inbox(&a).await;
    assert_eq!(inbox.len(), 1);
    let notice = r.t.loft.get_message(&a, inbox[0].id.as_str()).await.unwrap();
    assert!(notice.subject.contains("Offer"), "{notice:?}");
    assert!(notice.text.contains("gone@remote.example") && notice.text.contains("User unknown"));
    let kinds = r.kinds(&a).await;
    assert!(kinds.contains(&EventKind::MessageBounced), "{kinds:?}");

    let op = r.t.operator().await;
    let list =
        r.t.loft
            .list_suppressions(&op, ListSuppressionsParams::default())
            .await
            .unwrap();
    assert_eq!(list.items.len(), 1);
    let e =
        r.t.loft
            .send(&b, mail(&["gone@remote.example"], "Again", "x"))
            .await
            .unwrap_err();
    assert_eq!(e.code(), "recipient_suppressed");
}

#[tokio::test]
async fn the_delivery_lifetime_running_out_bounces_without_suppressing() {
    let log = Arc::new(Mutex::new(vec![]));
    let script = Script {
        rcpt: vec!["452 4.2.2 mailbox full"],
        ..Script::default()
    };
    let s = sink(Ipv4Addr::LOCALHOST, 0, script, "mx", log).await;
    let resolver = dns(
        &[("remote.example", 10, "mx.remote.example")],
        &[("mx.remote.example", Ipv4Addr::LOCALHOST)],
    );
    let mut config = direct(s.port);
    config.lifetime_secs = 100;
    let r = rig(config, resolver).await;
    let (_, a) = r.t.identity("a").await;
    let sent = r.t.send(&a, &["full@remote.example"], "Later", "x").await;
    assert_eq!(r.run().await.retried, 1);
    r.t.clock.advance_secs(61);
    // The next retry (120 s on) would fall after the lifetime: bounced now.
    assert_eq!(r.run().await.failed, 1);
    let d = r.report(&a, &sent).await;
    assert_eq!(d[0].status, DeliveryStatus::Bounced);
    assert!(
        d[0].detail.contains("452 4.2.2") && d[0].detail.contains("given up after 2 attempts"),
        "{d:?}"
    );
    assert_eq!(r.inbox(&a).await.len(), 1);
    let op = r.t.operator().await;
    let list =
        r.t.loft
            .list_suppressions(&op, ListSuppressionsParams::default())
            .await
            .unwrap();
    assert!(list.items.is_empty());
}

#[tokio::test]
async fn mx_hosts_are_tried_by_preference() {
    let log = Arc::new(Mutex::new(vec![]));
    // The preferred MX (127.0.0.2) turns the session away; the next one (127.0.0.1) takes it.
    let good = sink(Ipv4Addr::LOCALHOST, 0, Script::default(), "mx2", log.clone()).await;
    let busy = Script {
        greeting: vec!["421 4.3.2 too busy"],
        ..Script::default()
    };
    let _bad = sink(Ipv4Addr::new(127, 0, 0, 2), good.port, busy, "mx1", log.clone()).await;
    // Listed worst first: the worker sorts by preference.
    let resolver = dns(
        &[
            ("remote.example", 30, "mx3.remote.example"),
            ("remote.example", 20, "mx2.remote.example"),
            ("remote.example", 10, "mx1.remote.example"),
        ],
        &[
            ("mx1.remote.example", Ipv4Addr::new(127, 0, 0, 2)),
            ("mx2.remote.example", Ipv4Addr::LOCALHOST),
            ("mx3.remote.example", Ipv4Addr::new(127, 0, 0, 3)),
        ],
    );
    let r = rig(direct(good.port), resolver).await;
    let (_, a) = r.t.identity("a").await;
    let sent = r.t.send(&a, &["x@remote.example"], "Order", "x").await;
    assert_eq!(r.run().await.completed, 1);
    assert_eq!(*log.lock().unwrap(), vec!["mx1", "mx2"]);
    assert_eq!(good.got.lock().unwrap().len(), 1);
    assert_eq!(r.report(&a, &sent).await[0].status, DeliveryStatus::Delivered);

    // A domain without MX records gets its mail at its own address.
    let bare = dns(&[], &[("bare.example", Ipv4Addr::LOCALHOST)]);
    let r = rig(direct(good.port), bare).await;
    let (_, a) = r.t.identity("a").await;
    r.t.send(&a, &["y@bare.example"], "Bare", "x").await;
    assert_eq!(r.run().await.completed, 1);
    assert_eq!(good.got.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn the_egress_policy_refuses_a_loopback_mx_unless_allowed() {
    let log = Arc::new(Mutex::new(vec![]));
    let s = sink(Ipv4Addr::LOCALHOST, 0, Script::default(), "mx", log.clone()).await;
    let resolver = dns(
        &[("remote.example", 10, "mx.remote.example")],
        &[("mx.remote.example", Ipv4Addr::LOCALHOST)],
    );
    let mut config = direct(s.port);
    config.egress = EgressPolicy::new();
    let r = rig(config, resolver).await;
    let (_, a) = r.t.identity("a").await;
    let sent = r.t.send(&a, &["x@remote.example"], "Inside", "x").await;
    assert_eq!(r.run().await.failed, 1);
    let d = r.report(&a, &sent).await;
    assert_eq!(d[0].status, DeliveryStatus::Bounced);
    assert!(d[0].detail.contains("egress"), "{d:?}");
    assert!(log.lock().unwrap().is_empty(), "no connection was made");
    let op = r.t.operator().await;
    assert!(
        r.t.loft
            .list_suppressions(&op, ListSuppressionsParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn a_smarthost_with_auth_relays_everything() {
    let log = Arc::new(Mutex::new(vec![]));
    let script = Script {
        auth: Some(("loft", "s3cret-pass")),
        ..Script::default()
    };
    let s = sink(Ipv4Addr::LOCALHOST, 0, script, "relay", log).await;
    let smarthost = |password: &str| {
        let route = Route::Smarthost(Smarthost {
            host: "127.0.0.1".into(),
            port: s.port,
            tls: SmarthostTls::None,
            credentials: Some(("loft".into(), password.to_owned().into())),
        });
        // The smarthost is the operator's choice: not judged by the egress policy, and no DNS
        // for the recipient's domain.
        OutboundConfig::new(route, "agents.test", EgressPolicy::new())
    };
    let r = rig(smarthost("s3cret-pass"), Arc::new(FakeDns::default())).await;
    let (_, a) = r.t.identity("a").await;
    let sent = r.t.send(&a, &["x@elsewhere.example"], "Relayed", "x").await;
    assert_eq!(r.run().await.completed, 1);
    let got = s.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].user.as_deref(), Some("loft"));
    assert_eq!(r.report(&a, &sent).await[0].status, DeliveryStatus::Delivered);

    // A wrong password is the operator's to fix: retried, never bounced, never suppressed.
    let r = rig(smarthost("wrong"), Arc::new(FakeDns::default())).await;
    let (_, a) = r.t.identity("a").await;
    let sent = r.t.send(&a, &["x@elsewhere.example"], "Relayed", "x").await;
    assert_eq!(r.run().await.retried, 1);
    let d = r.report(&a, &sent).await;
    assert_eq!(d[0].status, DeliveryStatus::Queued);
    assert!(
        d[0].detail.contains("authenticating") && d[0].detail.contains("535"),
        "{d:?}"
    );
    assert!(!d[0].detail.contains("wrong"), "the password never shows: {d:?}");
}

/// A worker killed in the middle of a delivery (the data sent, no reply yet) records nothing;
/// once its lease expires another worker delivers the mail: twice at the remote end, as SMTP
/// allows, never lost, and recorded once.
#[tokio::test]
async fn a_worker_killed_mid_delivery_leaves_the_mail_to_the_next() {
    let log = Arc::new(Mutex::new(vec![]));
    let script = Script {
        hang_after_data: vec![true, false],
        ..Script::default()
    };
    let s = sink(Ipv4Addr::LOCALHOST, 0, script, "mx", log.clone()).await;
    let resolver = dns(
        &[("remote.example", 10, "mx.remote.example")],
        &[("mx.remote.example", Ipv4Addr::LOCALHOST)],
    );
    let (r, second) = rig_with(direct(s.port), resolver).await;
    let r = Arc::new(r);
    let (_, a) = r.t.identity("a").await;
    let sent = r.t.send(&a, &["x@remote.example"], "Crash", "x").await;

    let first = {
        let r = r.clone();
        tokio::spawn(async move { r.runner.run_due().await })
    };
    for _ in 0..500 {
        if !s.got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(s.got.lock().unwrap().len(), 1, "the first worker sent the data");
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    assert_eq!(r.report(&a, &sent).await[0].status, DeliveryStatus::Queued);

    // The lease (60 s) still holds the job: the other node waits.
    assert_eq!(second.run_due().await.unwrap(), RunReport::default());
    r.t.clock.advance_secs(61);
    assert_eq!(second.run_due().await.unwrap().completed, 1);
    let d = r.report(&a, &sent).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered, "{d:?}");
    assert!(d[0].detail.contains("Q2"), "{d:?}");
    assert_eq!(s.got.lock().unwrap().len(), 2, "delivered again, never lost");
    assert_eq!(r.run().await, RunReport::default());
}

/// Mail from a hosted domain with DKIM keys leaves signed by each selector, over the identity
/// headers too; a second Loft that sees the published records verifies it (DKIM and DMARC pass).
#[tokio::test]
async fn outgoing_mail_is_dkim_signed_and_verifies_elsewhere() {
    let log = Arc::new(Mutex::new(vec![]));
    let s = sink(Ipv4Addr::LOCALHOST, 0, Script::default(), "mx", log).await;
    let resolver = dns(
        &[("remote.example", 10, "mx.remote.example")],
        &[("mx.remote.example", Ipv4Addr::LOCALHOST)],
    );
    let r = rig(direct(s.port), resolver).await;
    let receiver = r.receiving_loft(loft_testkit::TEST_DOMAIN).await;
    let (_, a) = r.t.identity("a").await;
    r.t.send(&a, &["x@remote.example"], "Signed", "Hello, signed.").await;
    assert_eq!(r.run().await.completed, 1);
    let data = s.got.lock().unwrap()[0].data.clone();
    assert_eq!(data.matches("DKIM-Signature:").count(), 2, "{data}");
    let signed_headers = data.to_ascii_lowercase();
    assert!(
        signed_headers.contains("x-loft-identity") && signed_headers.contains("x-loft-oversight"),
        "the signatures cover who sent it and under what oversight: {data}"
    );

    // Another server, whose DNS answers with what the domain published.
    let got = receiver.receive(&data).await;
    let checks = got.authentication.summary.clone();
    assert!(checks.contains("dkim=pass"), "{checks}");
}

#[tokio::test]
async fn attachments_go_out_as_multipart_mixed_and_still_verify() {
    let log = Arc::new(Mutex::new(vec![]));
    let s = sink(Ipv4Addr::LOCALHOST, 0, Script::default(), "mx", log).await;
    let resolver = dns(
        &[("remote.example", 10, "mx.remote.example")],
        &[("mx.remote.example", Ipv4Addr::LOCALHOST)],
    );
    let r = rig(direct(s.port), resolver).await;
    let receiver = r.receiving_loft(loft_testkit::TEST_DOMAIN).await;
    let (_, a) = r.t.identity("a").await;
    let pdf: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let req = loft_core::mail::SendMail {
        attachments: vec![
            loft_core::mail::NewAttachment {
                filename: "report.pdf".into(),
                content_type: Some("application/pdf".into()),
                content_base64: b64(&pdf),
            },
            loft_core::mail::NewAttachment {
                filename: "notes é.txt".into(),
                content_type: Some("text/plain".into()),
                content_base64: b64("line one\r\n.\r\nline after a lone dot\r\n".as_bytes()),
            },
        ],
        ..mail(&["x@remote.example"], "With files", "Two files attached.")
    };
    r.t.loft.send(&a, req).await.unwrap();
    assert_eq!(r.run().await.completed, 1);
    let data = s.got.lock().unwrap()[0].data.clone();
    assert!(data.contains("Content-Type: multipart/mixed"), "{data}");
    assert_eq!(data.matches("DKIM-Signature:").count(), 2, "{data}");

    // The receiving side (another Loft, with the domain's published keys) finds DKIM passing
    // and both files, byte for byte.
    let got = receiver.receive(&data).await;
    assert!(
        got.authentication.summary.contains("dkim=pass"),
        "{:?}",
        got.authentication
    );
    let names: Vec<_> = got
        .attachments
        .iter()
        .map(|x| x.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["report.pdf", "notes é.txt"]);
    assert_eq!(got.attachments[0].content_type, "application/pdf");
    let f = receiver.attachment(&got, 0).await;
    assert_eq!(f, pdf);
    let f = receiver.attachment(&got, 1).await;
    assert_eq!(f, b"line one\r\n.\r\nline after a lone dot\r\n");
    assert!(got.text.contains("Two files attached."), "{}", got.text);
}

/// A slow MX does not make deliveries queue behind each other: four recipients' deliveries
/// (four jobs) are in the MX's hands at once, and the runner's concurrency bounds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_to_a_slow_mx_proceed_in_parallel_up_to_the_concurrency() {
    let slow = std::time::Duration::from_millis(800);
    let log = Arc::new(Mutex::new(vec![]));
    let script = Script {
        data_delay: slow,
        ..Script::default()
    };
    let s = sink(Ipv4Addr::LOCALHOST, 0, script.clone(), "mx", log.clone()).await;
    let resolver = dns(
        &[("remote.example", 10, "mx.remote.example")],
        &[("mx.remote.example", Ipv4Addr::LOCALHOST)],
    );
    let r = rig(direct(s.port), resolver.clone()).await;
    let (_, a) = r.t.identity("a").await;
    let to = [
        "w@remote.example",
        "x@remote.example",
        "y@remote.example",
        "z@remote.example",
    ];
    r.t.send(&a, &to, "Four at once", "x").await;
    let started = std::time::Instant::now();
    assert_eq!(r.run().await.completed, 4);
    let took = started.elapsed();
    assert_eq!(s.peak(), 4, "all four sessions open at once");
    assert!(took < slow * 3, "in parallel, not one after another: {took:?}");
    assert_eq!(s.got.lock().unwrap().len(), 4);

    // With two places, never more than two at once.
    let s2 = sink(Ipv4Addr::LOCALHOST, 0, script, "mx", log).await;
    let Rig { t, runner, _dir: dir } = rig(direct(s2.port), resolver).await;
    let r2 = Rig {
        t,
        runner: runner.with_concurrency(2),
        _dir: dir,
    };
    let (_, a) = r2.t.identity("a").await;
    r2.t.send(&a, &to, "Two at a time", "x").await;
    assert_eq!(r2.run().await.completed, 4);
    assert_eq!(s2.peak(), 2);
    assert_eq!(s2.got.lock().unwrap().len(), 4);
}

/// A webhook receiver on 127.0.0.1 that takes `delay` to answer each request with 200, and
/// counts the requests it was sent and the ones it answered.
async fn webhook_receiver(delay: std::time::Duration) -> (String, Arc<Mutex<(usize, usize)>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let counts = Arc::new(Mutex::new((0, 0)));
    let c = counts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let c = c.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(stream);
                loop {
                    // The head, then the body by its Content-Length.
                    let mut len = 0usize;
                    let mut first = true;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" && !first {
                            break;
                        }
                        first = false;
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    c.lock().unwrap().0 += 1;
                    tokio::time::sleep(delay).await;
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if r.get_mut().write_all(ok).await.is_err() {
                        return;
                    }
                    c.lock().unwrap().1 += 1;
                }
            });
        }
    });
    (format!("http://127.0.0.1:{port}/hook"), counts)
}

/// A webhook receiver that takes seconds to answer holds one place of the runner: an outbound
/// delivery and another identity's webhook go out meanwhile; on shutdown the runner waits for
/// the slow post to finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_webhook_receiver_delays_neither_outbound_mail_nor_other_webhooks() {
    use loft_core::service::CreateWebhookRequest;
    let slow = std::time::Duration::from_secs(4);
    let (slow_url, slow_counts) = webhook_receiver(slow).await;
    let (fast_url, fast_counts) = webhook_receiver(std::time::Duration::ZERO).await;
    let log = Arc::new(Mutex::new(vec![]));
    let s = sink(Ipv4Addr::LOCALHOST, 0, Script::default(), "mx", log).await;
    let resolver = dns(
        &[("remote.example", 10, "mx.remote.example")],
        &[("mx.remote.example", Ipv4Addr::LOCALHOST)],
    );
    let r = rig(direct(s.port), resolver.clone()).await;
    let broker = loft_broker::ReqwestBroker::new(loopback_allowed()).unwrap();
    let settings = loft_core::webhooks::WebhookSettings {
        timeout: std::time::Duration::from_secs(30),
        ..Default::default()
    };
    let t = r.t.with_broker(Arc::new(broker), settings);
    let (a_c, a) = t.identity("alice").await;
    let (c_c, c) = t.identity("carol").await;
    let (_, b) = t.identity("bob").await;
    for (who, url) in [(&a, &slow_url), (&c, &fast_url)] {
        t.loft
            .create_webhook(
                who,
                CreateWebhookRequest {
                    url: url.clone(),
                    types: vec!["message.received".into()],
                    description: None,
                    identity: None,
                },
            )
            .await
            .unwrap();
    }
    // Alice's receiver is busy with this one first...
    t.send(&b, &[a_c.identity.address.as_str()], "to alice", "x").await;
    let runner = Arc::new(
        JobRunner::new(t.loft.clone(), "worker-1")
            .with_handler(Box::new(DeliveryWorker::new(direct(s.port), resolver))),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = {
        let runner = runner.clone();
        tokio::spawn(async move {
            runner
                .run_until(stopped, std::time::Duration::from_millis(50), |e| panic!("{e}"))
                .await;
        })
    };
    let started = std::time::Instant::now();
    let wait_for = async |what: &str, done: &dyn Fn() -> bool| {
        while !done() {
            assert!(started.elapsed() < slow, "{what} waited for the slow receiver");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    wait_for("alice's post", &|| slow_counts.lock().unwrap().0 == 1).await;
    // ... while mail goes out and carol's receiver hears of her mail.
    let sent = t.send(&b, &["x@remote.example"], "outside", "x").await;
    t.send(&b, &[c_c.identity.address.as_str()], "to carol", "x").await;
    wait_for("the outbound delivery", &|| s.got.lock().unwrap().len() == 1).await;
    wait_for("carol's webhook", &|| fast_counts.lock().unwrap().1 == 1).await;
    let mut delivered = false;
    while !delivered {
        assert!(started.elapsed() < slow, "the delivery was recorded late");
        delivered =
            t.loft.get_message(&b, sent.id.as_str()).await.unwrap().delivery[0].status == DeliveryStatus::Delivered;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(*slow_counts.lock().unwrap(), (1, 0), "alice's post is still under way");

    // Shutdown waits for the post in hand.
    stop.send(true).unwrap();
    tokio::time::timeout(slow * 2, task).await.unwrap().unwrap();
    assert_eq!(*slow_counts.lock().unwrap(), (1, 1));
}

/// On shutdown, a job that outlives the grace is abandoned and given back at once (its
/// attempt counted), for the next runner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_back_a_job_that_outlives_the_grace() {
    let log = Arc::new(Mutex::new(vec![]));
    let script = Script {
        hang_after_data: vec![true, false],
        ..Script::default()
    };
    let s = sink(Ipv4Addr::LOCALHOST, 0, script, "mx", log).await;
    let resolver = dns(
        &[("remote.example", 10, "mx.remote.example")],
        &[("mx.remote.example", Ipv4Addr::LOCALHOST)],
    );
    let (r, second) = rig_with(direct(s.port), resolver.clone()).await;
    let (_, a) = r.t.identity("a").await;
    let sent = r.t.send(&a, &["x@remote.example"], "Hung", "x").await;
    let runner = JobRunner::new(r.t.loft.clone(), "worker-1")
        .with_handler(Box::new(DeliveryWorker::new(direct(s.port), resolver)))
        .with_shutdown_grace(std::time::Duration::from_millis(300));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        runner
            .run_until(stopped, std::time::Duration::from_millis(50), |e| panic!("{e}"))
            .await;
    });
    for _ in 0..500 {
        if !s.got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        s.got.lock().unwrap().len(),
        1,
        "the data was sent; the MX never answers"
    );
    stop.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("the runner stops after its grace")
        .unwrap();
    let job = queued_job(&r).await;
    assert_eq!(job.attempts, 1);
    assert!(job.last_error.unwrap().contains("shut down"));
    // No lease to wait for: the next runner sends it at once.
    assert_eq!(second.run_due().await.unwrap().completed, 1);
    assert_eq!(r.report(&a, &sent).await[0].status, DeliveryStatus::Delivered);
}

/// The one delivery job of a rig.
async fn queued_job(r: &Rig) -> loft_core::jobs::Job {
    for id in 1..100 {
        if let Some(j) = r.t.store().get_job(id).await.unwrap()
            && j.kind == loft_core::mail::DELIVERY_JOB
        {
            return j;
        }
    }
    panic!("no delivery job");
}
