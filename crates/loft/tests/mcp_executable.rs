//! `loft mcp` becomes the small `loft-mcp` executable installed beside it, runs itself when
//! there is none, and refuses a `loft-mcp` from another version (`loft::mcp`).
//!
//! The MCP session itself is exercised by the Python clients (tests/python), which start
//! `loft mcp` and so go through the small executable.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc, reason = "tests")]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const LOFT: &str = env!("CARGO_BIN_EXE_loft");
const LOFT_MCP: &str = env!("CARGO_BIN_EXE_loft-mcp");

/// Starts `program mcp` against a loopback listener that accepts and never answers, waits until
/// the process has connected (it is past start-up and asking whoami), and returns the file the
/// running process executes, read from `/proc`.
fn executable_of_running_mcp(program: &Path) -> PathBuf {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (connected, wait) = mpsc::channel();
    std::thread::spawn(move || {
        let held = listener.accept().unwrap();
        connected.send(()).unwrap();
        // Keep the connection open (and unanswered) until the test has looked.
        std::thread::sleep(Duration::from_secs(30));
        drop(held);
    });
    let mut child = KillOnDrop(
        Command::new(program)
            .arg("mcp")
            .env("LOFT_URL", &url)
            .env("LOFT_API_KEY", "loft_sk_not_checked_by_this_test")
            .env_remove("LOFT_MCP_EXPECT_VERSION")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait.recv_timeout(Duration::from_secs(20))
        .expect("`loft mcp` never connected to its server");
    let exe = std::fs::read_link(format!("/proc/{}/exe", child.0.id())).unwrap();
    let _ = child.0.kill();
    exe
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn loft_mcp_becomes_the_small_executable_beside_it() {
    let running = executable_of_running_mcp(Path::new(LOFT));
    assert_eq!(running, std::fs::canonicalize(LOFT_MCP).unwrap());
}

#[test]
fn without_the_small_executable_loft_mcp_runs_itself() {
    // A directory holding `loft` alone (a hard link: no copy of a large debug binary).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let alone = dir.path().join("loft");
    std::fs::hard_link(LOFT, &alone).unwrap();
    let running = executable_of_running_mcp(&alone);
    assert_eq!(running, std::fs::canonicalize(&alone).unwrap());
}

#[test]
fn a_small_executable_of_another_version_is_refused() {
    let out = Command::new(LOFT_MCP)
        .env("LOFT_MCP_EXPECT_VERSION", "0.0.0-another-build")
        .env("LOFT_API_KEY", "loft_sk_not_checked_by_this_test")
        .env("LOFT_URL", "http://127.0.0.1:9")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0.0.0-another-build") && stderr.contains("install both from one build"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing but MCP on stdout");
}

#[test]
fn the_small_executable_answers_help_like_loft_mcp() {
    let help = |program: &str, args: &[&str]| {
        let out = Command::new(program).args(args).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let small = help(LOFT_MCP, &["--help"]);
    for flag in ["--url <URL>", "--api-key <KEY>", "LOFT_URL", "LOFT_API_KEY"] {
        assert!(small.contains(flag), "{small}");
    }
    // `loft mcp --help` is the small executable's help when it is installed beside `loft`,
    // under the name the user typed.
    let through_loft = help(LOFT, &["mcp", "--help"]);
    assert!(through_loft.contains("Usage: loft mcp [OPTIONS]"), "{through_loft}");
    assert_eq!(through_loft, small.replace("Usage: loft-mcp", "Usage: loft mcp"));
}
