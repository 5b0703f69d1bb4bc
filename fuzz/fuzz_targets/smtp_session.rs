//! The inbound SMTP command loop: any bytes, as the client's side of a session, through the
//! real session state machine (`loft_smtp::run_session_on`, in memory, no socket) and the real
//! core and store behind it (a Loft over a SQLite file, one identity `agent@agents.test`).
//! Small limits (5 recipients, 40 commands, 8 errors, 64 KiB mails, 200-byte lines) so that the
//! fuzzer reaches each of them.
//!
//! Invariants: the session never fails or panics; the server speaks first with `220`; every
//! reply line is `[2-5]xy` then a space or a hyphen, printable, with no CR or LF inside (no
//! reply splitting, whatever the client said); and the way the session ended matches its last
//! reply (`221` for QUIT, `421` when a limit closed it, `500` for a line past the discard limit,
//! `552` for a message past its).
//!
//! Seeds: fuzz/seeds/smtp_session (scripts/fuzz.sh copies them into the corpus).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use loft_core::service::{CreateIdentityRequest, Loft};
use loft_smtp::{End, SmtpConfig};

struct Rig {
    rt: tokio::runtime::Runtime,
    loft: Arc<Loft>,
    config: Arc<SmtpConfig>,
    _dir: tempfile::TempDir,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // On tmpfs when there is one: every stored mail is fsynced (synchronous=FULL).
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let dir = tempfile::Builder::new().prefix("loft-fuzz-smtp-").tempdir_in(base).unwrap();
        let loft = rt.block_on(async {
            let store = loft_store_sqlite::SqliteStore::open(&dir.path().join("loft.db")).await.unwrap();
            let t = loft_testkit::test_loft(Arc::new(store));
            t.identity_with(CreateIdentityRequest {
                name: "agent".into(),
                local_part: Some("agent".into()),
                ..Default::default()
            })
            .await;
            t.loft
        });
        let mut config = SmtpConfig::new(loft_testkit::TEST_DOMAIN);
        config.max_recipients = 5;
        config.max_commands = 40;
        config.max_errors = 8;
        config.max_message_bytes = 64 * 1024;
        config.max_line_bytes = 200;
        Rig {
            rt,
            loft,
            config: Arc::new(config),
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let rig = rig();
    let mut out: Vec<u8> = Vec::new();
    let end = rig
        .rt
        .block_on(loft_smtp::run_session_on(
            rig.loft.clone(),
            rig.config.clone(),
            data,
            &mut out,
            Some("192.0.2.7".into()),
        ))
        .expect("an in-memory session never fails on I/O");
    assert!(out.starts_with(b"220 "), "the greeting comes first");
    assert!(out.ends_with(b"\r\n"), "replies end with CRLF");
    let text = &out[..out.len() - 1];
    let mut last: &[u8] = b"";
    for line in text.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").expect("every reply line ends with CRLF");
        assert!(line.len() >= 4, "a reply line is a code and a separator at least: {line:?}");
        assert!((b'2'..=b'5').contains(&line[0]) && line[1].is_ascii_digit() && line[2].is_ascii_digit());
        assert!(line[3] == b' ' || line[3] == b'-', "{line:?}");
        assert!(
            !line.iter().any(|b| *b == b'\r' || *b == 0),
            "no CR or NUL inside a reply line: {line:?}"
        );
        last = line;
    }
    let code = &last[..3];
    match end {
        End::Quit => assert_eq!(code, b"221"),
        End::TooManyCommands | End::TooManyErrors | End::Idle | End::Shutdown => assert_eq!(code, b"421"),
        End::LineTooLong => assert_eq!(code, b"500"),
        End::TooBig => assert_eq!(code, b"552"),
        End::StartTls => panic!("STARTTLS is not offered without a certificate"),
        End::ClientClosed => {}
    }
});
