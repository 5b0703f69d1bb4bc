//! SMTP replies: the fixed ones the session sends, and the one mapping of core errors to
//! reply codes (ENGINEERING.md: each door maps the core error enum once). Replies never name
//! internals (rules, identities, database errors): those are logged, not sent.

use loft_core::Error;

/// One reply: a basic code, an enhanced status code (RFC 3463) and a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: &'static str,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Self {
        Self {
            code,
            status,
            text: text.into(),
        }
    }

    /// The reply as sent: `CODE X.Y.Z text\r\n`.
    pub fn to_wire(&self) -> String {
        // Nothing a client sent can split a reply or smuggle a control byte into one.
        let text: String = self
            .text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!("{} {} {}\r\n", self.code, self.status, text)
    }

    pub fn ok() -> Self {
        Self::new(250, "2.0.0", "OK")
    }
    pub fn bad_sequence(text: &str) -> Self {
        Self::new(503, "5.5.1", text)
    }
    pub fn syntax(text: &str) -> Self {
        Self::new(501, "5.5.4", text)
    }
    pub fn line_too_long() -> Self {
        Self::new(500, "5.5.2", "Line too long")
    }
    pub fn too_big(limit: usize) -> Self {
        Self::new(
            552,
            "5.3.4",
            format!("Message too big: this server accepts at most {limit} bytes"),
        )
    }
    pub fn too_many_recipients(limit: usize) -> Self {
        Self::new(
            452,
            "4.5.3",
            format!("Too many recipients: at most {limit} per message; send the rest in another message"),
        )
    }
    pub fn idle_timeout(host: &str) -> Self {
        Self::new(421, "4.4.2", format!("{host} Idle timeout, closing connection"))
    }
    pub fn too_many_commands(host: &str) -> Self {
        Self::new(421, "4.7.0", format!("{host} Too many commands, closing connection"))
    }
    pub fn too_many_errors(host: &str) -> Self {
        Self::new(421, "4.7.0", format!("{host} Too many errors, closing connection"))
    }
    pub fn too_many_connections(host: &str) -> Self {
        Self::new(
            421,
            "4.7.0",
            format!("{host} Too many connections from your address, try again later"),
        )
    }
    pub fn busy(host: &str) -> Self {
        Self::new(421, "4.3.2", format!("{host} Too busy, try again later"))
    }
    pub fn shutting_down(host: &str) -> Self {
        Self::new(421, "4.3.2", format!("{host} Shutting down, try again later"))
    }
    pub fn not_implemented() -> Self {
        Self::new(502, "5.5.1", "Command not implemented")
    }
    pub fn unrecognized() -> Self {
        Self::new(500, "5.5.1", "Command unrecognized")
    }
}

/// The reply for a refusal from `loft-core` (`check_inbound_recipient`, `receive_inbound`).
/// Codes the SMTP door knows map to their reply; anything else is a temporary local error
/// (451 4.3.0: the client keeps the mail and retries), logged by the caller.
pub fn from_error(e: &Error) -> Reply {
    match e.code().as_ref() {
        "relay_denied" => Reply::new(550, "5.7.1", "Relaying denied"),
        "unknown_recipient" => Reply::new(550, "5.1.1", "No such user here"),
        "sender_refused" => Reply::new(550, "5.7.1", "Delivery not authorized, message refused"),
        "dmarc_rejected" => Reply::new(
            550,
            "5.7.1",
            "Message rejected: it fails the DMARC policy of its From domain",
        ),
        "quota_exceeded" => Reply::new(452, "4.2.2", "Mailbox full, try again later"),
        "invalid_address" | "invalid_domain" => Reply::new(501, "5.1.3", "Bad recipient address syntax"),
        _ => match e {
            Error::NotFound(_) => Reply::new(550, "5.1.1", "No such user here"),
            _ => Reply::new(451, "4.3.0", "Local error in processing, try again later"),
        },
    }
}

/// The reply for a refused submission (`Loft::submit`). Unlike an MX peer, the client is the
/// authenticated identity itself: it is told what was wrong in the words the REST API uses
/// (code and message; internal errors stay generic). Refusals of the content or policy are
/// permanent (5xx); quotas, rate limits and an unreachable database temporary (4xx).
pub fn from_submit_error(e: &Error) -> Reply {
    let said = |e: &Error| {
        let text: String = format!("{}: {}", e.code(), e.public_message())
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(400)
            .collect();
        text
    };
    match e {
        Error::TooLarge(_) => Reply::new(552, "5.3.4", said(e)),
        Error::TooManyRequests { .. } => Reply::new(451, "4.7.1", said(e)),
        Error::Forbidden(_) if e.code() == "quota_exceeded" => Reply::new(452, "4.2.2", said(e)),
        Error::Invalid(_) if e.code() == "unknown_recipient" => Reply::new(550, "5.1.1", said(e)),
        Error::Invalid(_) => Reply::new(550, "5.6.0", said(e)),
        Error::Unauthenticated(_) | Error::MissingScope { .. } | Error::Forbidden(_) | Error::PolicyDenied(_) => {
            Reply::new(550, "5.7.1", said(e))
        }
        Error::NotFound(_) | Error::Conflict(_) => Reply::new(550, "5.7.1", said(e)),
        Error::Unavailable(_) | Error::Internal(_) | Error::Upstream(_) => {
            Reply::new(451, "4.3.0", "Local error in processing, try again later")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_refusals_say_what_was_wrong() {
        let r = from_submit_error(&Error::policy_denied(
            "recipient_suppressed",
            "x@y.example is suppressed",
        ));
        assert_eq!((r.code, r.status), (550, "5.7.1"));
        assert!(
            r.text.contains("recipient_suppressed") && r.text.contains("x@y.example"),
            "{r:?}"
        );
        let r = from_submit_error(&Error::too_large("attachment_too_large", "over 10 bytes"));
        assert_eq!((r.code, r.status), (552, "5.3.4"));
        let r = from_submit_error(&Error::forbidden("quota_exceeded", "full"));
        assert_eq!(r.code, 452);
        let r = from_submit_error(&Error::internal("secret detail"));
        assert_eq!(r.code, 451);
        assert!(!r.to_wire().contains("secret"));
        let r = from_submit_error(&Error::invalid("empty_body", "no\r\nbody"));
        assert!(!r.text.contains('\n'));
    }

    #[test]
    fn refusals_map_to_their_codes() {
        let r = from_error(&Error::policy_denied("relay_denied", "x"));
        assert_eq!((r.code, r.status), (550, "5.7.1"));
        let r = from_error(&Error::invalid("unknown_recipient", "x"));
        assert_eq!((r.code, r.status), (550, "5.1.1"));
        let r = from_error(&Error::forbidden("quota_exceeded", "x"));
        assert_eq!((r.code, r.status), (452, "4.2.2"));
        let r = from_error(&Error::Unavailable("db down".into()));
        assert_eq!((r.code, r.status), (451, "4.3.0"));
        assert!(!r.text.contains("db"));
        let r = from_error(&Error::internal("secret detail"));
        assert!(!r.to_wire().contains("secret"));
    }
}
