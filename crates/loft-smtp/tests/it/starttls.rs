//! STARTTLS: offered in EHLO only with a certificate; after the handshake the session starts
//! again (EHLO needed, no mail transaction carried over), and commands pipelined after
//! STARTTLS in plaintext are dropped, never run (RFC 3207 section 4.2, the command injection
//! of CVE-2011-0411). The certificate is self-signed, made by `openssl` for the test.

use std::sync::Arc;
use std::time::Duration;

use loft_smtp::TlsConfig;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use super::{Client, server};

/// A self-signed certificate for `localhost` and its key, as PEM files in `dir`.
pub(super) fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .args([
            "-addext",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs (Debian's openssl package)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

pub(super) fn client_config(cert: &std::path::Path) -> rustls::ClientConfig {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Reads one whole reply from any stream.
pub(super) async fn reply<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> (u16, String) {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line))
            .await
            .expect("a reply within 10 s")
            .unwrap();
        if n == 0 {
            return (0, lines.join("\n"));
        }
        let code: u16 = line[..3].parse().unwrap();
        lines.push(line[4..].trim_end().to_owned());
        if line.as_bytes()[3] == b' ' {
            return (code, lines.join("\n"));
        }
    }
}

pub(super) async fn cmd<S: AsyncRead + AsyncWrite + Unpin>(s: &mut BufReader<S>, line: &str) -> (u16, String) {
    s.get_mut().write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
    reply(s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_offered_only_with_a_certificate() {
    let s = server(|_| {}).await;
    let (mut c, code, _) = Client::connect(s.addr).await;
    assert_eq!(code, 220);
    let (code, ehlo) = c.cmd("EHLO client.outside.test").await;
    assert_eq!(code, 250);
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(c.cmd("STARTTLS").await.0, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_resets_the_session_and_drops_pipelined_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let tls = TlsConfig::from_pem_files(&cert, &key).unwrap();
    let s = server(move |c| c.tls = Some(tls)).await;
    let (w, wa) = s.t.identity("writer").await;
    let to = w.identity.address.to_string();

    let mut c = BufReader::new(TcpStream::connect(s.addr).await.unwrap());
    assert_eq!(reply(&mut c).await.0, 220);
    let (code, ehlo) = cmd(&mut c, "EHLO client.outside.test").await;
    assert_eq!(code, 250);
    assert!(ehlo.lines().any(|l| l == "STARTTLS"), "{ehlo}");
    assert_eq!(cmd(&mut c, "MAIL FROM:<before@outside.test>").await.0, 250);
    // STARTTLS with a whole mail pipelined behind it, in plaintext: an injection attempt.
    let injected = format!(
        "STARTTLS\r\nRSET\r\nMAIL FROM:<evil@outside.test>\r\nRCPT TO:<{to}>\r\nDATA\r\nSubject: injected\r\n\r\nx\r\n.\r\n"
    );
    c.get_mut().write_all(injected.as_bytes()).await.unwrap();
    assert_eq!(reply(&mut c).await.0, 220);
    // Whatever the server had read past STARTTLS was dropped; the handshake starts now.
    let stream = c.into_inner();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&cert)));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let handshake = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, stream)).await;
    // The injected bytes may have reached the server after it read STARTTLS: then they are
    // not a TLS ClientHello and the handshake fails. Either way nothing injected is run.
    if let Ok(Ok(tls)) = handshake {
        let mut c = BufReader::new(tls);
        // A new session: a mail transaction needs EHLO first, and the MAIL FROM of before is gone.
        assert_eq!(cmd(&mut c, &format!("RCPT TO:<{to}>")).await.0, 503);
        let (code, ehlo) = cmd(&mut c, "EHLO client.outside.test").await;
        assert_eq!(code, 250);
        assert!(!ehlo.contains("STARTTLS"), "not offered twice: {ehlo}");
        assert_eq!(cmd(&mut c, "STARTTLS").await.0, 502);
        assert_eq!(cmd(&mut c, "MAIL FROM:<friend@outside.test>").await.0, 250);
        assert_eq!(cmd(&mut c, &format!("RCPT TO:<{to}>")).await.0, 250);
        assert_eq!(cmd(&mut c, "DATA").await.0, 354);
        c.get_mut()
            .write_all(
                format!("From: <friend@outside.test>\r\nTo: <{to}>\r\nSubject: over TLS\r\n\r\nHi.\r\n.\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(reply(&mut c).await.0, 250);
        assert_eq!(cmd(&mut c, "QUIT").await.0, 221);
        let inbox = s.inbox(&wa).await;
        assert_eq!(
            inbox.iter().map(|m| m.subject.as_str()).collect::<Vec<_>>(),
            ["over TLS"]
        );
    } else {
        assert!(s.inbox(&wa).await.is_empty());
    }
}

/// A clean STARTTLS (nothing pipelined): the handshake succeeds and mail is accepted over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_is_accepted_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let tls = TlsConfig::from_pem_files(&cert, &key).unwrap();
    let s = server(move |c| c.tls = Some(tls)).await;
    let (w, wa) = s.t.identity("writer").await;
    let to = w.identity.address.to_string();
    let mut c = BufReader::new(TcpStream::connect(s.addr).await.unwrap());
    assert_eq!(reply(&mut c).await.0, 220);
    assert_eq!(cmd(&mut c, "EHLO client.outside.test").await.0, 250);
    assert_eq!(cmd(&mut c, "STARTTLS").await.0, 220);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&cert)));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, c.into_inner()).await.unwrap();
    let mut c = BufReader::new(tls);
    assert_eq!(cmd(&mut c, "EHLO client.outside.test").await.0, 250);
    assert_eq!(cmd(&mut c, "MAIL FROM:<friend@outside.test>").await.0, 250);
    assert_eq!(cmd(&mut c, &format!("RCPT TO:<{to}>")).await.0, 250);
    assert_eq!(cmd(&mut c, "DATA").await.0, 354);
    c.get_mut()
        .write_all(
            format!("From: <friend@outside.test>\r\nTo: <{to}>\r\nSubject: secret\r\n\r\nHi.\r\n.\r\n").as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(reply(&mut c).await.0, 250);
    assert_eq!(s.inbox(&wa).await.len(), 1);
    let _ = s.stop.send(true);
}
