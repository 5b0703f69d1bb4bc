//! One SMTP session: our own loop over a byte stream, with `smtp-proto` parsing each command
//! line. It reads lines (each bounded), answers in order (replies are flushed whenever no more
//! pipelined input is waiting, so PIPELINING costs no round trips), asks `loft-core` about
//! each recipient, and answers the data with 250 only after `Loft::receive_inbound` has
//! stored the mail.
//!
//! It must not decide who may receive what (core does) nor say why in any detail a sender
//! could use (`reply.rs`).

use std::sync::Arc;

use loft_core::address::EmailAddress;
use loft_core::inbound::Envelope;
use loft_core::service::{Actor, Loft, RequestContext};
use smtp_proto::{Error as ParseError, Request};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::watch;

use crate::SmtpConfig;
use crate::reply::{self, Reply};

/// How much of an over-long command line is read and dropped before the session gives up on
/// the client.
const MAX_DISCARD: usize = 1 << 20;

/// What reading one line gave.
enum Line {
    /// A whole line, its ending included, in the caller's buffer.
    Whole,
    /// A line longer than the limit: read to its end (or [`MAX_DISCARD`] bytes past the
    /// limit) and dropped; how many bytes were dropped.
    TooLong(usize),
    /// The client closed the connection (a partial last line is dropped).
    Eof,
}

/// Why the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Quit,
    ClientClosed,
    Idle,
    TooManyCommands,
    TooManyErrors,
    LineTooLong,
    TooBig,
    Shutdown,
    /// The client asked for STARTTLS and was told 220: the caller does the handshake.
    StartTls,
}

pub(crate) struct Session<R, W> {
    loft: Arc<Loft>,
    config: Arc<SmtpConfig>,
    reader: BufReader<R>,
    writer: BufWriter<W>,
    client_ip: Option<String>,
    helo: Option<String>,
    /// `Some` once MAIL FROM was accepted (the inner `None` is the null sender `<>`).
    #[allow(
        clippy::option_option,
        reason = "no transaction / null sender / a sender: three states, all meant"
    )]
    mail_from: Option<Option<EmailAddress>>,
    recipients: Vec<EmailAddress>,
    commands: usize,
    errors: usize,
    line: Vec<u8>,
    /// Whether this session runs over TLS (after STARTTLS): STARTTLS is then not offered.
    secured: bool,
    /// Whether the client connected from a loopback address.
    loopback: bool,
    /// On the submission listener, the identity the client authenticated as.
    actor: Option<Actor>,
}

/// What reading the data of a mail gave.
enum Data {
    /// The whole message, dot-unstuffed.
    Mail(Vec<u8>),
    /// Larger than the limit: read to its end and dropped.
    TooBig,
    /// The session ends (idle, closed, or far too big).
    End(End),
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Session<R, W> {
    pub(crate) fn new(
        loft: Arc<Loft>,
        config: Arc<SmtpConfig>,
        read: R,
        write: W,
        client_ip: Option<String>,
        secured: bool,
    ) -> Self {
        Self {
            loft,
            config,
            reader: BufReader::new(read),
            writer: BufWriter::new(write),
            helo: None,
            mail_from: None,
            recipients: Vec::new(),
            commands: 0,
            errors: 0,
            loopback: client_ip
                .as_deref()
                .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
                .is_some_and(|ip| ip.to_canonical().is_loopback()),
            client_ip,
            line: Vec::with_capacity(512),
            secured,
            actor: None,
        }
    }

    /// The stream's halves, for the TLS handshake; anything read ahead is dropped.
    pub(crate) fn into_parts(self) -> (R, W) {
        (self.reader.into_inner(), self.writer.into_inner())
    }

    /// Whether STARTTLS is offered: a certificate is configured and TLS is not on yet.
    fn tls_offered(&self) -> bool {
        self.config.tls.is_some() && !self.secured
    }

    /// Whether AUTH is offered: on the submission listener, before authenticating, over TLS
    /// (or from loopback when the operator allows it in the clear).
    fn auth_offered(&self) -> bool {
        self.config
            .submission
            .is_some_and(|s| self.actor.is_none() && (self.secured || (s.allow_plain_loopback && self.loopback)))
    }

    fn host(&self) -> &str {
        &self.config.hostname
    }

    async fn send(&mut self, r: &Reply) -> std::io::Result<()> {
        self.writer.write_all(r.to_wire().as_bytes()).await
    }

    /// Sends `r` and everything buffered before it, then ends the session.
    async fn close_with(&mut self, r: &Reply, why: End) -> std::io::Result<End> {
        self.send(r).await?;
        self.writer.flush().await?;
        Ok(why)
    }

    /// Flushes the replies when no more pipelined input is waiting: a client that sent a
    /// group of commands gets the group's replies in one write, and one waiting for a reply
    /// always gets it before the server blocks on reading.
    async fn flush_if_idle(&mut self) -> std::io::Result<()> {
        if self.reader.buffer().is_empty() {
            self.writer.flush().await?;
        }
        Ok(())
    }

    /// Reads one line of at most `max` bytes into `self.line`, within the idle timeout
    /// (`None` when it ran out).
    async fn read_line(&mut self, max: usize) -> std::io::Result<Option<Line>> {
        self.flush_if_idle().await?;
        let idle = self.config.idle_timeout;
        match tokio::time::timeout(idle, read_line(&mut self.reader, &mut self.line, max)).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.recipients.clear();
    }

    /// Runs the session to its end: greeting, commands, data.
    pub(crate) async fn run(&mut self, mut shutdown: watch::Receiver<bool>) -> std::io::Result<End> {
        // After STARTTLS there is no new greeting: the client sends EHLO again.
        if !self.secured {
            let greeting = Reply::new(220, "2.0.0", format!("{} ESMTP Loft", self.host()));
            self.writer
                .write_all(format!("220 {}\r\n", greeting.text).as_bytes())
                .await?;
        }
        loop {
            let max = self.config.max_line_bytes;
            // Stopping is seen between commands only: a mail under way is finished first.
            let line = tokio::select! {
                biased;
                stop = shutdown.wait_for(|stop| *stop) => {
                    drop(stop);
                    None
                }
                l = self.read_line(max) => Some(l?),
            };
            let host = self.host().to_owned();
            let Some(line) = line else {
                return self.close_with(&Reply::shutting_down(&host), End::Shutdown).await;
            };
            match line {
                None => return self.close_with(&Reply::idle_timeout(&host), End::Idle).await,
                Some(Line::Eof) => return Ok(End::ClientClosed),
                Some(Line::TooLong(dropped)) => {
                    if dropped > MAX_DISCARD {
                        return self.close_with(&Reply::line_too_long(), End::LineTooLong).await;
                    }
                    if let Some(end) = self.error(Reply::line_too_long()).await? {
                        return Ok(end);
                    }
                    continue;
                }
                Some(Line::Whole) => {}
            }
            self.commands += 1;
            if self.commands > self.config.max_commands {
                return self
                    .close_with(&Reply::too_many_commands(&host), End::TooManyCommands)
                    .await;
            }
            let line = std::mem::take(&mut self.line);
            let outcome = self.command(&line).await;
            self.line = line;
            if let Some(end) = outcome? {
                return Ok(end);
            }
        }
    }

    /// Sends an error reply; ends the session after too many of them.
    async fn error(&mut self, r: Reply) -> std::io::Result<Option<End>> {
        self.errors += 1;
        self.send(&r).await?;
        if self.errors >= self.config.max_errors {
            let host = self.host().to_owned();
            return self
                .close_with(&Reply::too_many_errors(&host), End::TooManyErrors)
                .await
                .map(Some);
        }
        Ok(None)
    }

    async fn command(&mut self, line: &[u8]) -> std::io::Result<Option<End>> {
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r,
            Err(ParseError::UnknownCommand) => return self.error(Reply::unrecognized()).await,
            Err(ParseError::InvalidSenderAddress) => {
                return self.error(Reply::new(553, "5.1.7", "Bad sender address syntax")).await;
            }
            Err(ParseError::InvalidRecipientAddress) => {
                return self
                    .error(Reply::new(501, "5.1.3", "Bad recipient address syntax"))
                    .await;
            }
            Err(ParseError::SyntaxError { syntax }) => {
                return self.error(Reply::syntax(&format!("Syntax: {syntax}"))).await;
            }
            Err(ParseError::InvalidParameter { param }) => {
                return self
                    .error(Reply::new(501, "5.5.4", format!("Invalid parameter {param}")))
                    .await;
            }
            Err(ParseError::UnsupportedParameter { .. }) => {
                return self.error(Reply::new(555, "5.5.4", "Unsupported parameter")).await;
            }
            Err(_) => return self.error(Reply::syntax("Syntax error")).await,
        };
        match request {
            Request::Ehlo { host } => {
                // The name is echoed in the greeting: no control character (NUL included) in it.
                if host.is_empty() || host.chars().any(char::is_control) {
                    return self.error(Reply::syntax("Invalid domain name")).await;
                }
                self.reset();
                self.helo = Some(host.to_string());
                let me = self.host().to_owned();
                let mut lines = vec![
                    format!("{me} greets {host}"),
                    "PIPELINING".to_owned(),
                    format!("SIZE {}", self.config.max_message_bytes),
                    "8BITMIME".to_owned(),
                    "SMTPUTF8".to_owned(),
                    "ENHANCEDSTATUSCODES".to_owned(),
                ];
                if self.tls_offered() {
                    lines.push("STARTTLS".to_owned());
                }
                if self.auth_offered() {
                    lines.push("AUTH PLAIN LOGIN".to_owned());
                }
                let mut out = String::new();
                for (i, l) in lines.iter().enumerate() {
                    let sep = if i + 1 == lines.len() { ' ' } else { '-' };
                    out.push_str("250");
                    out.push(sep);
                    out.push_str(l);
                    out.push_str("\r\n");
                }
                self.writer.write_all(out.as_bytes()).await?;
            }
            Request::Helo { host } => {
                // The name is echoed in the greeting: no control character (NUL included) in it.
                if host.is_empty() || host.chars().any(char::is_control) {
                    return self.error(Reply::syntax("Invalid domain name")).await;
                }
                self.reset();
                self.helo = Some(host.to_string());
                let me = self.host().to_owned();
                self.writer.write_all(format!("250 {me}\r\n").as_bytes()).await?;
            }
            Request::Lhlo { .. } => return self.error(Reply::unrecognized()).await,
            Request::Mail { from } => {
                if self.helo.is_none() {
                    return self.error(Reply::bad_sequence("Send EHLO or HELO first")).await;
                }
                if self.mail_from.is_some() {
                    return self.error(Reply::bad_sequence("Sender already given")).await;
                }
                if from.size > self.config.max_message_bytes {
                    return self.error(Reply::too_big(self.config.max_message_bytes)).await;
                }
                if self.config.submission.is_some() {
                    return self.submission_sender(&from.address).await;
                }
                let sender = if from.address.is_empty() {
                    None
                } else {
                    match EmailAddress::parse(&from.address) {
                        Ok(a) => Some(a),
                        // An internationalized address (SMTPUTF8, which is offered): Loft's
                        // addresses are ASCII, so it is kept like the null sender; the From
                        // header is still judged after the data.
                        Err(_) if !from.address.is_ascii() => None,
                        Err(_) => {
                            return self.error(Reply::new(553, "5.1.7", "Bad sender address syntax")).await;
                        }
                    }
                };
                self.mail_from = Some(sender);
                self.send(&Reply::new(250, "2.1.0", "Sender OK")).await?;
            }
            Request::Rcpt { to } => {
                let Some(sender) = self.mail_from.clone() else {
                    return self.error(Reply::bad_sequence("Send MAIL FROM first")).await;
                };
                if self.recipients.len() >= self.config.max_recipients {
                    // A temporary refusal: the client sends the rest in another transaction.
                    let r = Reply::too_many_recipients(self.config.max_recipients);
                    self.send(&r).await?;
                    return Ok(None);
                }
                if self.config.submission.is_some() {
                    // Any address: the send checks the recipients (and says why) at the data.
                    let Ok(address) = EmailAddress::parse(&to.address) else {
                        return self
                            .error(Reply::new(501, "5.1.3", "Bad recipient address syntax"))
                            .await;
                    };
                    if !self.recipients.contains(&address) {
                        self.recipients.push(address);
                    }
                    self.send(&Reply::new(250, "2.1.5", "Recipient OK")).await?;
                    return Ok(None);
                }
                let envelope = self.envelope(sender);
                match self.loft.check_inbound_recipient(&envelope, &to.address).await {
                    Ok(address) => {
                        if !self.recipients.contains(&address) {
                            self.recipients.push(address);
                        }
                        self.send(&Reply::new(250, "2.1.5", "Recipient OK")).await?;
                    }
                    Err(e) => {
                        let r = reply::from_error(&e);
                        log_refusal(&e, &r, self.client_ip.as_deref(), "RCPT");
                        if r.code >= 500 {
                            return self.error(r).await;
                        }
                        self.send(&r).await?;
                    }
                }
            }
            Request::Data => {
                let Some(sender) = self.mail_from.clone() else {
                    return self.error(Reply::bad_sequence("Send MAIL FROM first")).await;
                };
                if self.recipients.is_empty() {
                    return self.error(Reply::new(554, "5.5.1", "No valid recipients")).await;
                }
                return self.data(sender).await;
            }
            Request::Rset => {
                self.reset();
                self.send(&Reply::ok()).await?;
            }
            Request::Noop { .. } => self.send(&Reply::ok()).await?,
            Request::Quit => {
                let host = self.host().to_owned();
                return self
                    .close_with(&Reply::new(221, "2.0.0", format!("{host} Bye")), End::Quit)
                    .await
                    .map(Some);
            }
            Request::Vrfy { .. } => {
                // Never confirm or deny an address (a harvesting aid).
                self.send(&Reply::new(
                    252,
                    "2.5.2",
                    "Cannot VRFY user; send mail and it will be tried",
                ))
                .await?;
            }
            Request::Help { .. } => {
                self.send(&Reply::new(214, "2.0.0", "See RFC 5321")).await?;
            }
            Request::StartTls if self.tls_offered() => {
                if self.helo.is_none() {
                    return self.error(Reply::bad_sequence("Send EHLO first")).await;
                }
                // Everything the client pipelined after STARTTLS is dropped with the read
                // buffer (`into_parts`): only what comes through TLS counts.
                self.reset();
                let r = Reply::new(220, "2.0.0", "Ready to start TLS");
                return self.close_with(&r, End::StartTls).await.map(Some);
            }
            Request::Auth {
                mechanism,
                initial_response,
            } if self.config.submission.is_some() => {
                return self.auth(mechanism, initial_response.to_string()).await;
            }
            // Not offered in EHLO: CHUNKING, STARTTLS without a certificate (or again over
            // TLS), AUTH on the MX, EXPN, ETRN, ATRN, BURL.
            Request::Bdat { .. }
            | Request::StartTls
            | Request::Auth { .. }
            | Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => return self.error(Reply::not_implemented()).await,
        }
        Ok(None)
    }

    fn envelope(&self, sender: Option<EmailAddress>) -> Envelope {
        Envelope {
            client_ip: self.client_ip.clone(),
            helo: self.helo.clone().unwrap_or_default(),
            mail_from: sender,
            recipients: self.recipients.clone(),
        }
    }

    /// DATA: reads the message, then stores it (MX) or sends it (submission) and answers.
    /// The transaction ends either way.
    async fn data(&mut self, sender: Option<EmailAddress>) -> std::io::Result<Option<End>> {
        let data = match self.read_data().await? {
            Data::End(end) => return Ok(Some(end)),
            Data::TooBig => {
                self.reset();
                return self.error(Reply::too_big(self.config.max_message_bytes)).await;
            }
            Data::Mail(data) => data,
        };
        let recipients = self.recipients.len();
        let envelope = self.envelope(sender);
        self.reset();
        if let Some(actor) = self.actor.clone() {
            return self.submit(&actor, &envelope.recipients, &data).await;
        }
        match self.loft.receive_inbound(&envelope, &data).await {
            Ok(receipt) => {
                tracing::info!(
                    client = self.client_ip.as_deref().unwrap_or("-"),
                    message_id = %receipt.message_id,
                    recipients,
                    delivered = receipt.copies.len(),
                    refused = receipt.refused.len(),
                    size = data.len(),
                    "smtp: mail received"
                );
                let text = format!("OK: stored as <{}>", receipt.message_id);
                self.send(&Reply::new(250, "2.0.0", text)).await?;
            }
            Err(e) => {
                let r = reply::from_error(&e);
                log_refusal(&e, &r, self.client_ip.as_deref(), "DATA");
                if r.code >= 500 {
                    return self.error(r).await;
                }
                self.send(&r).await?;
            }
        }
        Ok(None)
    }

    /// Reads the message to the lone dot (dot-unstuffing it), bounded by the size limit.
    async fn read_data(&mut self) -> std::io::Result<Data> {
        self.send(&Reply::new(354, "2.0.0", "Start mail input; end with <CRLF>.<CRLF>"))
            .await?;
        let max = self.config.max_message_bytes;
        let mut data: Vec<u8> = Vec::new();
        let mut too_big = false;
        let mut discarded = 0usize;
        // The end is a dot alone on a line that follows a CRLF: a bare LF never ends the data
        // (no SMTP smuggling through "\n.\n").
        let mut after_crlf = true;
        loop {
            // A line may be as long as what is left of the message, plus its dot and CRLF.
            let limit = if too_big { MAX_DISCARD } else { max - data.len() + 3 };
            let line = self.read_line(limit).await?;
            let host = self.host().to_owned();
            match line {
                None => {
                    self.reset();
                    return self
                        .close_with(&Reply::idle_timeout(&host), End::Idle)
                        .await
                        .map(Data::End);
                }
                Some(Line::Eof) => return Ok(Data::End(End::ClientClosed)),
                Some(Line::TooLong(dropped)) => {
                    too_big = true;
                    data = Vec::new();
                    discarded += dropped;
                }
                Some(Line::Whole) => {
                    let line = &self.line;
                    if after_crlf && line.as_slice() == b".\r\n" {
                        break;
                    }
                    after_crlf = line.ends_with(b"\r\n");
                    let content = line.strip_prefix(b".").unwrap_or(line);
                    if too_big {
                        discarded += content.len();
                    } else if data.len() + content.len() > max {
                        too_big = true;
                        discarded = data.len() + content.len();
                        data = Vec::new();
                    } else {
                        data.extend_from_slice(content);
                    }
                }
            }
            if too_big && discarded > max.saturating_mul(4).max(MAX_DISCARD) {
                self.reset();
                return self.close_with(&Reply::too_big(max), End::TooBig).await.map(Data::End);
            }
        }
        Ok(if too_big { Data::TooBig } else { Data::Mail(data) })
    }

    /// Submission: `MAIL FROM` after AUTH, and only the identity's own address.
    async fn submission_sender(&mut self, address: &str) -> std::io::Result<Option<End>> {
        let Some(actor) = &self.actor else {
            return self.error(Reply::new(530, "5.7.0", "Authentication required")).await;
        };
        let own = actor.identity().map(|i| i.address.clone());
        match (EmailAddress::parse(address), own) {
            (Ok(a), Some(own)) if a == own => {
                self.mail_from = Some(Some(a));
                self.send(&Reply::new(250, "2.1.0", "Sender OK")).await?;
                Ok(None)
            }
            (_, own) => {
                let own = own.map_or_else(String::new, |o| format!(" (<{o}>)"));
                self.error(Reply::new(
                    553,
                    "5.7.1",
                    format!("Sender address rejected: not the authenticated identity's address{own}"),
                ))
                .await
            }
        }
    }

    /// AUTH PLAIN or LOGIN (RFC 4954), offered only as [`Self::auth_offered`] says.
    async fn auth(&mut self, mechanism: u64, initial: String) -> std::io::Result<Option<End>> {
        if self.actor.is_some() {
            return self.error(Reply::bad_sequence("Already authenticated")).await;
        }
        if self.mail_from.is_some() {
            return self
                .error(Reply::bad_sequence("AUTH not allowed during a mail transaction"))
                .await;
        }
        if !self.auth_offered() {
            return self
                .error(Reply::new(538, "5.7.11", "Encryption required: send STARTTLS first"))
                .await;
        }
        let credentials = match mechanism {
            smtp_proto::AUTH_PLAIN => {
                let response = if initial.is_empty() {
                    match self.challenge("").await? {
                        Ok(r) => r,
                        Err(stop) => return Ok(stop),
                    }
                } else {
                    initial
                };
                decode(&response).and_then(|b| plain(&b))
            }
            smtp_proto::AUTH_LOGIN => {
                let user = if initial.is_empty() {
                    match self.challenge("VXNlcm5hbWU6").await? {
                        Ok(r) => r,
                        Err(stop) => return Ok(stop),
                    }
                } else {
                    initial
                };
                let pass = match self.challenge("UGFzc3dvcmQ6").await? {
                    Ok(r) => r,
                    Err(stop) => return Ok(stop),
                };
                match (decode(&user), decode(&pass)) {
                    (Some(u), Some(p)) => match (String::from_utf8(u), String::from_utf8(p)) {
                        (Ok(u), Ok(p)) => Some((u, p)),
                        _ => None,
                    },
                    _ => None,
                }
            }
            _ => {
                return self
                    .error(Reply::new(
                        504,
                        "5.5.4",
                        "Unrecognized authentication type: use PLAIN or LOGIN",
                    ))
                    .await;
            }
        };
        let Some((user, pass)) = credentials else {
            return self.error(Reply::new(501, "5.5.2", "Cannot decode the response")).await;
        };
        let ctx = RequestContext {
            request_id: None,
            remote_addr: self.client_ip.clone(),
        };
        match self.loft.authenticate_submission(&user, &pass, ctx).await {
            Ok(actor) => {
                tracing::info!(client = self.client_ip.as_deref().unwrap_or("-"), user = %user, "smtp: submission authenticated");
                self.actor = Some(actor);
                self.send(&Reply::new(235, "2.7.0", "Authentication successful"))
                    .await?;
                Ok(None)
            }
            Err(e) => {
                // The user name is logged (it is an address); the password never is.
                tracing::info!(client = self.client_ip.as_deref().unwrap_or("-"), user = %user.chars().take(100).collect::<String>(), reason = %e.code(), "smtp: submission AUTH refused");
                let r = match &e {
                    loft_core::Error::TooManyRequests { retry_after_secs, .. } => Reply::new(
                        454,
                        "4.7.0",
                        format!("Too many failed authentications from your address; try again in {retry_after_secs} s"),
                    ),
                    loft_core::Error::Unavailable(_) | loft_core::Error::Internal(_) => {
                        Reply::new(454, "4.7.0", "Temporary authentication failure")
                    }
                    _ => Reply::new(535, "5.7.8", "Authentication credentials invalid"),
                };
                self.error(r).await
            }
        }
    }

    /// Sends a `334` challenge and reads the client's answer line (without its CRLF). `Err`
    /// when the session or the exchange ends: `Err(None)` after a reply was sent (cancelled,
    /// too long), `Err(Some(end))` when the session is over.
    async fn challenge(&mut self, text: &str) -> std::io::Result<Result<String, Option<End>>> {
        self.writer.write_all(format!("334 {text}\r\n").as_bytes()).await?;
        let max = self.config.max_line_bytes;
        let host = self.host().to_owned();
        match self.read_line(max).await? {
            None => Ok(Err(Some(
                self.close_with(&Reply::idle_timeout(&host), End::Idle).await?,
            ))),
            Some(Line::Eof) => Ok(Err(Some(End::ClientClosed))),
            Some(Line::TooLong(_)) => Ok(Err(self.error(Reply::line_too_long()).await?)),
            Some(Line::Whole) => {
                let answer = String::from_utf8_lossy(&self.line)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned();
                if answer == "*" {
                    return Ok(Err(self
                        .error(Reply::new(501, "5.0.0", "Authentication cancelled"))
                        .await?));
                }
                Ok(Ok(answer))
            }
        }
    }

    /// Sends a submitted mail as the authenticated identity and answers: 250 when it is sent
    /// or held for a reviewer (the text says which), the send's refusal otherwise.
    async fn submit(
        &mut self,
        actor: &Actor,
        recipients: &[EmailAddress],
        data: &[u8],
    ) -> std::io::Result<Option<End>> {
        match self.loft.submit(actor, recipients, data).await {
            Ok(m) => {
                tracing::info!(
                    client = self.client_ip.as_deref().unwrap_or("-"),
                    message = %m.id,
                    status = m.status.as_str(),
                    recipients = recipients.len(),
                    size = data.len(),
                    "smtp: mail submitted"
                );
                let text = match &m.approval {
                    Some(a) if m.status == loft_core::mail::MessageStatus::PendingApproval => format!(
                        "OK: held for a reviewer's approval ({}), not sent yet: <{}>",
                        a.id, m.message_id
                    ),
                    _ => format!("OK: sent as <{}>", m.message_id),
                };
                self.send(&Reply::new(250, "2.0.0", text)).await?;
                Ok(None)
            }
            Err(e) => {
                let r = reply::from_submit_error(&e);
                log_refusal(&e, &r, self.client_ip.as_deref(), "DATA");
                if r.code >= 500 {
                    return self.error(r).await;
                }
                self.send(&r).await?;
                Ok(None)
            }
        }
    }
}

/// A base64 SASL response.
fn decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s.trim()).ok()
}

/// PLAIN's `authzid NUL authcid NUL passwd` (RFC 4616): the user and the password; an
/// authorization identity, if given, must be the user.
fn plain(b: &[u8]) -> Option<(String, String)> {
    let s = std::str::from_utf8(b).ok()?;
    let mut parts = s.split('\0');
    let (authz, user, pass) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || (!authz.is_empty() && authz != user) {
        return None;
    }
    Some((user.to_owned(), pass.to_owned()))
}

fn log_refusal(e: &loft_core::Error, r: &Reply, client: Option<&str>, stage: &str) {
    let client = client.unwrap_or("-");
    if r.code == 451 {
        tracing::warn!(client, stage, error = %e, "smtp: temporary local error");
    } else {
        tracing::info!(client, stage, code = r.code, reason = %e.code(), "smtp: refused");
    }
}

/// Reads one line (through `\n`) of at most `max` bytes into `buf`. A longer line is read to
/// its end (at most [`MAX_DISCARD`] bytes of it), dropped, and reported as [`Line::TooLong`].
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let mut dropped = 0usize;
    loop {
        let avail = reader.fill_buf().await?;
        if avail.is_empty() {
            return Ok(Line::Eof);
        }
        let (take, done) = match avail.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        if dropped > 0 || buf.len() + take > max {
            dropped += buf.len() + take;
            buf.clear();
        } else {
            buf.extend_from_slice(&avail[..take]);
        }
        reader.consume(take);
        if done || dropped > MAX_DISCARD {
            return Ok(if dropped > 0 {
                Line::TooLong(dropped)
            } else {
                Line::Whole
            });
        }
    }
}
