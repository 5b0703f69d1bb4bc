//! End to end: the real `loft` binary as a server, and the real CLI as its client, through the
//! scenario a newcomer follows (two agents, mail both ways, revoke one, verify the audit log),
//! on the embedded SQLite default and on PostgreSQL; plus start-up behaviour (generated
//! operator key, refused database URLs, graceful shutdown) and two server processes sharing one
//! PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc, reason = "tests")]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_loft");
const ADMIN: &str = "e2e-operator-key-0123456789abcdef";

/// A `loft serve` child process, killed when dropped.
struct Server {
    child: Child,
    url: String,
    stdout_lines: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &Path, database_url: Option<&str>, admin: Option<&str>) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--http", "127.0.0.1:0", "--domain", "agents.e2e"])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("LOFT_ADMIN_KEY")
        .env_remove("LOFT_DATABASE_URL")
        .env("LOFT_LOG", "warn")
        // Nothing a test does may reach past this machine, even if the code is broken.
        .env("LOFT_EGRESS_DENY_PUBLIC", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(url) = database_url {
        cmd.args(["--database-url", url]);
    }
    if let Some(k) = admin {
        cmd.env("LOFT_ADMIN_KEY", k);
    }
    let mut server = Server {
        child: cmd.spawn().unwrap(),
        url: String::new(),
        stdout_lines: Vec::new(),
    };
    let stdout = server.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("loft serve did not start; stdout so far: {:?}", server.stdout_lines));
        if let Some(url) = line.strip_prefix("HTTP API listening on ") {
            url.trim().clone_into(&mut server.url);
            server.stdout_lines.push(line);
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return server;
        }
        server.stdout_lines.push(line);
    }
}

/// Runs the CLI against `server` with the given keys; returns its output.
fn cli(server: &Server, api_key: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("LOFT_URL", &server.url)
        .env("LOFT_ADMIN_KEY", ADMIN)
        .env_remove("LOFT_API_KEY")
        .stdin(Stdio::null());
    if let Some(k) = api_key {
        cmd.env("LOFT_API_KEY", k);
    }
    cmd.output().unwrap()
}

#[track_caller]
fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[track_caller]
fn ok_text(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The scenario at the top of the foundation issue, through the CLI.
fn newcomer_scenario(server: &Server) {
    let health = ok_text(&cli(server, None, &["whoami"]));
    assert!(health.contains("operator"), "{health}");

    let researcher = ok_json(&cli(server, None, &["identity", "create", "researcher", "--json"]));
    let writer = ok_json(&cli(
        server,
        None,
        &["identity", "create", "writer", "--mode", "autonomous", "--json"],
    ));
    assert_eq!(researcher["oversight_mode"], "gated_send", "the default mode");
    assert_eq!(writer["oversight_mode"], "autonomous");
    let r_key = researcher["api_key"].as_str().unwrap();
    let w_key = writer["api_key"].as_str().unwrap();
    let w_addr = writer["address"].as_str().unwrap();
    let r_addr = researcher["address"].as_str().unwrap();
    assert!(
        r_addr.starts_with("researcher-") && r_addr.ends_with("@agents.e2e"),
        "{r_addr}"
    );

    // Human-readable creation output shows the key once, marked as such.
    let third = ok_text(&cli(server, None, &["identity", "create", "support"]));
    assert!(
        third.contains("loft_sk_") && third.to_lowercase().contains("once"),
        "{third}"
    );

    let who = ok_json(&cli(server, Some(w_key), &["whoami", "--json"]));
    assert_eq!(who["address"], w_addr);

    let sent = ok_json(&cli(
        server,
        Some(r_key),
        &[
            "mail",
            "send",
            "--to",
            w_addr,
            "--subject",
            "Brief: Q4 launch",
            "--text",
            "Please draft 300 words.",
            "--json",
        ],
    ));
    // The researcher is in gated_send: the mail waits for a human, who approves it.
    assert_eq!(sent["status"], "pending_approval");
    assert_eq!(sent["delivery"][0]["status"], "held");
    let empty = ok_json(&cli(server, Some(w_key), &["mail", "list", "--json"]));
    assert_eq!(empty["items"], serde_json::json!([]));
    let queue = ok_json(&cli(server, None, &["approvals", "list", "--json"]));
    let approval = queue["items"][0]["id"].as_str().unwrap();
    assert_eq!(approval, sent["approval"]["id"].as_str().unwrap());
    let human_queue = ok_text(&cli(server, None, &["approvals", "list"]));
    assert!(human_queue.contains("Brief: Q4 launch"), "{human_queue}");
    ok_text(&cli(server, None, &["approvals", "approve", approval]));
    let twice = cli(server, None, &["approvals", "approve", approval]);
    assert!(!twice.status.success(), "a second approval must fail");
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already decided"));

    let inbox = ok_json(&cli(server, Some(w_key), &["mail", "list", "--json"]));
    let first = &inbox["items"][0];
    assert_eq!(first["subject"], "Brief: Q4 launch");
    assert_eq!(first["from"], r_addr);
    let msg_id = first["id"].as_str().unwrap();
    let human_list = ok_text(&cli(server, Some(w_key), &["mail", "list"]));
    assert!(human_list.contains("Brief: Q4 launch"), "{human_list}");

    let read = ok_text(&cli(server, Some(w_key), &["mail", "read", msg_id]));
    assert!(read.contains("Please draft 300 words."), "{read}");

    // Search by words: the body's, in any case; the matched word in brackets for people.
    let found = ok_json(&cli(server, Some(w_key), &["mail", "search", "DRAFT", "30*", "--json"]));
    assert_eq!(found["items"][0]["message"]["id"], msg_id, "{found}");
    assert_eq!(found["items"][0]["highlights"][0]["field"], "body", "{found}");
    let human_found = ok_text(&cli(server, Some(w_key), &["mail", "search", "draft"]));
    assert!(
        human_found.contains("[draft]") && human_found.contains("Brief: Q4 launch"),
        "{human_found}"
    );
    let none = ok_text(&cli(server, Some(w_key), &["mail", "search", "holiday"]));
    assert!(none.contains("no messages match"), "{none}");
    let bad = cli(server, Some(w_key), &["mail", "search", "x*"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("prefix needs at least 2"),
        "{bad:?}"
    );

    let reply = ok_json(&cli(
        server,
        Some(w_key),
        &["mail", "reply", msg_id, "--text", "Draft attached.", "--json"],
    ));
    assert_eq!(reply["subject"], "Re: Brief: Q4 launch");

    let r_inbox = ok_json(&cli(server, Some(r_key), &["mail", "list", "--json"]));
    assert_eq!(r_inbox["items"][0]["from"], w_addr);
    assert_eq!(r_inbox["items"][0]["thread_id"], sent["thread_id"]);
    let threads = ok_json(&cli(server, Some(r_key), &["mail", "threads", "--json"]));
    assert_eq!(threads["items"][0]["message_count"], 2);

    // Forward it back to the researcher with a note: a Fwd: subject, the original quoted.
    let fwd = ok_json(&cli(
        server,
        Some(w_key),
        &[
            "mail",
            "forward",
            msg_id,
            "--to",
            r_addr,
            "--text",
            "Is this the brief?",
            "--json",
        ],
    ));
    assert_eq!(fwd["subject"], "Fwd: Brief: Q4 launch", "{fwd}");
    let fwd_text = fwd["text"].as_str().unwrap();
    assert!(
        fwd_text.starts_with("Is this the brief?") && fwd_text.contains("Please draft 300 words."),
        "{fwd_text}"
    );
    // In the researcher's mailbox the forward joins the brief's conversation (its References).
    let threads = ok_json(&cli(server, Some(r_key), &["mail", "threads", "--json"]));
    assert_eq!(threads["items"][0]["message_count"], 3);
    // Sending caps: the researcher sent one mail this hour, so a cap of one stops the next,
    // with the wait; the operator lifts it. The instance's caps count everyone.
    let r_id = researcher["id"].as_str().unwrap();
    let caps = ok_text(&cli(
        server,
        None,
        &["identity", "caps", r_id, "--per-hour", "1", "--first-contact", "hold"],
    ));
    assert!(caps.contains("mails per hour:") && caps.contains("1 of 1"), "{caps}");
    assert!(caps.contains("first contact:") && caps.contains("hold"), "{caps}");
    let capped = cli(
        server,
        Some(r_key),
        &["mail", "send", "--to", w_addr, "--subject", "again", "--text", "x"],
    );
    assert!(!capped.status.success());
    let stderr = String::from_utf8_lossy(&capped.stderr);
    assert!(
        stderr.contains("`mails_per_hour` (1)") && stderr.contains("retry in"),
        "{stderr}"
    );
    let me = ok_json(&cli(server, Some(r_key), &["whoami", "--json"]));
    assert_eq!(me["sending"]["caps"]["mails_per_hour"], 1, "{me}");
    let caps = ok_json(&cli(
        server,
        None,
        &["identity", "caps", r_id, "--per-hour", "none", "--json"],
    ));
    assert_eq!(caps["caps"]["mails_per_hour"], serde_json::Value::Null, "{caps}");
    assert_eq!(caps["caps"]["first_contact"], "hold", "left out: kept");
    let instance = ok_text(&cli(server, None, &["caps", "--per-day", "1000"]));
    assert!(
        instance.contains("mails per day:") && instance.contains("of 1000"),
        "{instance}"
    );
    let instance = ok_json(&cli(server, None, &["caps", "--json"]));
    assert_eq!(instance["caps"]["mails_per_day"], 1000, "{instance}");

    // Events: a follower resumes after the last event it saw and gets new mail at once.
    let seen = ok_json(&cli(server, Some(r_key), &["events", "--json"]));
    let after = seen["next_after"].as_str().unwrap().to_owned();
    let mut follow = Command::new(BIN)
        .args(["events", "--follow", "--json", "--after", &after])
        .env("LOFT_URL", &server.url)
        .env("LOFT_API_KEY", r_key)
        .env_remove("LOFT_ADMIN_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(follow.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    ok_json(&cli(
        server,
        Some(w_key),
        &[
            "mail",
            "send",
            "--to",
            r_addr,
            "--subject",
            "followed",
            "--text",
            "x",
            "--json",
        ],
    ));
    let event: Value = serde_json::from_str(&rx.recv_timeout(Duration::from_secs(10)).unwrap()).unwrap();
    follow.kill().unwrap();
    let _ = follow.wait();
    assert_eq!(event["type"], "message.received", "{event}");
    assert_eq!(event["payload"]["subject"], "followed", "{event}");
    assert_eq!(event["payload"]["from"], w_addr, "{event}");

    // Revoke the writer: its key is refused at once, the researcher keeps working.
    let w_id = writer["id"].as_str().unwrap();
    ok_text(&cli(server, None, &["identity", "revoke", w_id]));
    let refused = cli(server, Some(w_key), &["mail", "list"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("revoked"), "{stderr}");
    assert!(!stderr.contains(w_key), "the key is echoed in an error");
    ok_json(&cli(server, Some(r_key), &["mail", "list", "--json"]));

    // Bad input: a clear error and a non-zero exit.
    let bad = cli(
        server,
        Some(r_key),
        &[
            "mail",
            "send",
            "--to",
            "nobody@agents.e2e",
            "--subject",
            "x",
            "--text",
            "y",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nobody@agents.e2e"));

    // Who did what, tamper-evident.
    let audit = ok_json(&cli(server, None, &["audit", "list", "--json", "--limit", "200"]));
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for a in [
        "identity.create",
        "mail.send",
        "mail.read",
        "mail.reply",
        "identity.revoke",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let revoked = ok_json(&cli(server, None, &["events", "--json", "--type", "identity.*"]));
    assert!(
        revoked["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "identity.revoked"),
        "{revoked}"
    );
    let verify = ok_text(&cli(server, None, &["audit", "verify"]));
    assert!(verify.contains("intact"), "{verify}");
    let export = ok_text(&cli(server, None, &["audit", "export"]));
    assert_eq!(export.lines().count(), actions.len());
    assert!(!export.contains("loft_sk_"), "keys never reach the audit log");
}

#[test]
fn newcomer_scenario_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), None, Some(ADMIN));
    assert!(
        server.stdout_lines.iter().any(|l| l.contains("sqlite")),
        "{:?}",
        server.stdout_lines
    );
    newcomer_scenario(&server);
}

#[test]
fn newcomer_scenario_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(loft_testkit::pg::TestDb::create()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    {
        let server = serve(dir.path(), Some(&db.url), Some(ADMIN));
        assert!(
            server.stdout_lines.iter().any(|l| l.contains("postgres")),
            "{:?}",
            server.stdout_lines
        );
        newcomer_scenario(&server);
    }
    rt.block_on(db.drop_db());
}

#[test]
fn two_server_processes_share_one_postgres_database() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(loft_testkit::pg::TestDb::create()) else {
        return;
    };
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    {
        let a = serve(dir_a.path(), Some(&db.url), Some(ADMIN));
        let b = serve(dir_b.path(), Some(&db.url), Some(ADMIN));
        let x = ok_json(&cli(
            &a,
            None,
            &["identity", "create", "x", "--mode", "autonomous", "--json"],
        ));
        let y = ok_json(&cli(
            &b,
            None,
            &["identity", "create", "y", "--mode", "autonomous", "--json"],
        ));
        let x_key = x["api_key"].as_str().unwrap().to_owned();
        let y_key = y["api_key"].as_str().unwrap().to_owned();
        // Keys minted on one node work on the other at once.
        ok_json(&cli(&b, Some(&x_key), &["whoami", "--json"]));
        // Mail-wait callers on both nodes follow both mailboxes while the nodes write: each
        // must see every message once, none missed, none repeated.
        let mut waiters = Vec::new();
        for node in [&a, &b] {
            for key in [&x_key, &y_key] {
                waiters.push(rt.spawn(follow_mailbox(node.url.clone(), key.clone(), 24)));
            }
        }
        // Both nodes write at the same time.
        std::thread::scope(|s| {
            for (node, key, to) in [
                (&a, &x_key, y["address"].as_str().unwrap()),
                (&b, &y_key, x["address"].as_str().unwrap()),
            ] {
                for t in 0..3 {
                    s.spawn(move || {
                        for i in 0..8 {
                            let subject = format!("t{t} m{i}");
                            ok_json(&cli(
                                node,
                                Some(key),
                                &[
                                    "mail",
                                    "send",
                                    "--to",
                                    to,
                                    "--subject",
                                    &subject,
                                    "--text",
                                    "x",
                                    "--json",
                                ],
                            ));
                        }
                    });
                }
            }
        });
        let x_inbox = ok_json(&cli(&a, Some(&x_key), &["mail", "list", "--limit", "200", "--json"]));
        assert_eq!(x_inbox["items"].as_array().unwrap().len(), 24);
        for w in waiters {
            let seen = rt.block_on(w).unwrap();
            assert_eq!(seen.len(), 24, "a mail-wait caller missed messages: {seen:?}");
            assert!(
                seen.values().all(|n| *n == 1),
                "a mail-wait caller saw repeats: {seen:?}"
            );
        }
        // Revoked through one node: refused by it at once, and by the other once its key
        // cache's bound has passed (ARCHITECTURE.md, "The key cache").
        ok_text(&cli(&a, None, &["identity", "revoke", y["id"].as_str().unwrap()]));
        assert!(!cli(&a, Some(&y_key), &["whoami"]).status.success());
        std::thread::sleep(loft_core::service::KEY_CACHE_TTL);
        assert!(!cli(&b, Some(&y_key), &["whoami"]).status.success());
        for node in [&a, &b] {
            let verify = ok_text(&cli(node, None, &["audit", "verify"]));
            assert!(verify.contains("intact"), "{verify}");
        }
    }
    rt.block_on(db.drop_db());
}

/// Held mail approved at the same moment through two server processes on one PostgreSQL
/// database, by two reviewers: each mail is released once, every other attempt gets 409.
#[test]
fn two_server_processes_approve_each_held_mail_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(loft_testkit::pg::TestDb::create()) else {
        return;
    };
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    {
        let a = serve(dir_a.path(), Some(&db.url), Some(ADMIN));
        let b = serve(dir_b.path(), Some(&db.url), Some(ADMIN));
        let agent = ok_json(&cli(&a, None, &["identity", "create", "agent", "--json"]));
        let reader = ok_json(&cli(
            &a,
            None,
            &["identity", "create", "reader", "--mode", "autonomous", "--json"],
        ));
        let r1 = ok_json(&cli(&a, None, &["reviewer", "create", "r1", "--json"]));
        let r2 = ok_json(&cli(&b, None, &["reviewer", "create", "r2", "--json"]));
        let agent_key = agent["api_key"].as_str().unwrap();
        let reader_key = reader["api_key"].as_str().unwrap().to_owned();
        let to = reader["address"].as_str().unwrap();
        let mails = 6;
        let mut ids = Vec::new();
        for i in 0..mails {
            let subject = format!("held {i}");
            let sent = ok_json(&cli(
                &a,
                Some(agent_key),
                &[
                    "mail",
                    "send",
                    "--to",
                    to,
                    "--subject",
                    &subject,
                    "--text",
                    "x",
                    "--json",
                ],
            ));
            assert_eq!(sent["status"], "pending_approval");
            ids.push(sent["approval"]["id"].as_str().unwrap().to_owned());
        }
        // Each mail: four approvals at once, two reviewers on two nodes.
        let client = reqwest::Client::new();
        let results = rt.block_on(async {
            let mut tasks = Vec::new();
            for id in &ids {
                for (node, reviewer) in [(&a, &r1), (&b, &r2), (&b, &r1), (&a, &r2)] {
                    let url = format!("{}/v0/approvals/{id}/approve", node.url);
                    let key = reviewer["api_key"].as_str().unwrap().to_owned();
                    let client = client.clone();
                    tasks.push(tokio::spawn(async move {
                        client
                            .post(url)
                            .bearer_auth(key)
                            .send()
                            .await
                            .unwrap()
                            .status()
                            .as_u16()
                    }));
                }
            }
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        for (i, chunk) in results.chunks(4).enumerate() {
            let mut sorted = chunk.to_vec();
            sorted.sort_unstable();
            assert_eq!(sorted, [200, 409, 409, 409], "mail {i}: {chunk:?}");
        }
        let inbox = ok_json(&cli(
            &b,
            Some(&reader_key),
            &["mail", "list", "--limit", "200", "--json"],
        ));
        assert_eq!(inbox["items"].as_array().unwrap().len(), mails, "{inbox}");

        // The kill switches, thrown through one node, hold on the other (the freeze at once,
        // a pause within the key cache's bound).
        let frozen = ok_text(&cli(&a, None, &["freeze"]));
        assert!(frozen.contains("FROZEN"), "{frozen}");
        let send = ["mail", "send", "--to", to, "--subject", "s", "--text", "x", "--json"];
        let refused = cli(&b, Some(&reader_key), &send);
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("froze"),
            "{refused:?}"
        );
        ok_text(&cli(&b, None, &["unfreeze"]));
        ok_json(&cli(&b, Some(&reader_key), &send));
        let reader_id = reader["id"].as_str().unwrap();
        let paused = ok_text(&cli(&a, None, &["identity", "pause", reader_id]));
        assert!(paused.contains("paused"), "{paused}");
        // A pause is part of what a node's key cache holds: the other node sees it within
        // the cache's bound.
        std::thread::sleep(loft_core::service::KEY_CACHE_TTL);
        let refused = cli(&b, Some(&reader_key), &["mail", "list"]);
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("paused"),
            "{refused:?}"
        );
        ok_text(&cli(&b, None, &["identity", "resume", reader_id]));
        ok_json(&cli(&a, Some(&reader_key), &["mail", "list", "--json"]));
        for node in [&a, &b] {
            let verify = ok_text(&cli(node, None, &["audit", "verify"]));
            assert!(verify.contains("intact"), "{verify}");
        }
    }
    rt.block_on(db.drop_db());
}

/// Follows one mailbox with `GET /v0/messages/wait` cursors until `want` messages arrived (or a
/// minute passed); returns how often each subject was seen.
/// Mail scheduled through one node is released once, by whichever node's job runner claims it
/// first, and not before its time: the runner `loft serve` starts, on two processes sharing one
/// PostgreSQL database.
#[test]
fn two_server_processes_release_each_scheduled_mail_once() {
    use loft_core::time::Clock as _;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(loft_testkit::pg::TestDb::create()) else {
        return;
    };
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    {
        let a = serve(dir_a.path(), Some(&db.url), Some(ADMIN));
        let b = serve(dir_b.path(), Some(&db.url), Some(ADMIN));
        let sender = ok_json(&cli(
            &a,
            None,
            &["identity", "create", "x", "--mode", "autonomous", "--json"],
        ));
        let receiver = ok_json(&cli(
            &b,
            None,
            &["identity", "create", "y", "--mode", "autonomous", "--json"],
        ));
        let (sender_key, receiver_key) = (
            sender["api_key"].as_str().unwrap(),
            receiver["api_key"].as_str().unwrap(),
        );
        let y_addr = receiver["address"].as_str().unwrap();
        let send_at = loft_core::time::SystemClock.now().plus_secs(3).to_rfc3339();
        for i in 0..4 {
            let node = if i % 2 == 0 { &a } else { &b };
            let subject = format!("later {i}");
            let m = ok_json(&cli(
                node,
                Some(sender_key),
                &[
                    "mail",
                    "send",
                    "--to",
                    y_addr,
                    "-s",
                    &subject,
                    "--text",
                    "x",
                    "--send-at",
                    &send_at,
                    "--json",
                ],
            ));
            assert_eq!(m["status"], "scheduled", "{m}");
        }
        let inbox = |node: &Server| -> Vec<String> {
            let v = ok_json(&cli(node, Some(receiver_key), &["mail", "list", "--json"]));
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["subject"].as_str().unwrap().to_owned())
                .collect()
        };
        assert!(inbox(&a).is_empty(), "nothing before its time");
        let deadline = Instant::now() + Duration::from_secs(30);
        while inbox(&b).len() < 4 {
            assert!(Instant::now() < deadline, "the scheduled mail was not released in time");
            std::thread::sleep(Duration::from_millis(300));
        }
        // Both runners have looked again since: still one copy of each.
        std::thread::sleep(Duration::from_millis(2500));
        let mut got = inbox(&a);
        got.sort();
        assert_eq!(got, ["later 0", "later 1", "later 2", "later 3"]);
        let sent = ok_json(&cli(
            &a,
            Some(sender_key),
            &["mail", "list", "--folder", "sent", "--json"],
        ));
        assert!(
            sent["items"].as_array().unwrap().iter().all(|m| m["status"] == "sent"),
            "{sent}"
        );
    }
    rt.block_on(db.drop_db());
}

async fn follow_mailbox(url: String, key: String, want: usize) -> std::collections::BTreeMap<String, u32> {
    let client = reqwest::Client::new();
    let wait_once = |after: Option<String>, timeout: u32| {
        let mut q = vec![("timeout_seconds", timeout.to_string()), ("limit", "5".to_owned())];
        if let Some(a) = after {
            q.push(("after", a));
        }
        let req = client
            .get(format!("{url}/v0/messages/wait"))
            .bearer_auth(&key)
            .query(&q);
        async move {
            let resp = req.send().await.unwrap();
            assert!(resp.status().is_success(), "wait: {}", resp.status());
            resp.json::<Value>().await.unwrap()
        }
    };
    // The first call (no cursor) returns the unread mail already there, if the senders were
    // quicker than this task; later calls return what came after the cursor.
    let mut got = wait_once(None, 0).await;
    let mut seen = std::collections::BTreeMap::new();
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        for m in got["items"].as_array().unwrap() {
            *seen.entry(m["subject"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        }
        if seen.len() >= want || Instant::now() >= deadline {
            return seen;
        }
        let cursor = got["cursor"].as_str().unwrap().to_owned();
        got = wait_once(Some(cursor), 1).await;
    }
}

#[test]
fn first_start_generates_and_stores_the_operator_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = {
        let server = serve(dir.path(), None, None);
        let printed = server
            .stdout_lines
            .iter()
            .find_map(|l| l.trim().strip_prefix("loft_admin_").map(|k| format!("loft_admin_{k}")));
        let key = printed.unwrap_or_else(|| panic!("no key printed: {:?}", server.stdout_lines));
        // It works as the operator key.
        let out = Command::new(BIN)
            .args(["whoami", "--json"])
            .env("LOFT_URL", &server.url)
            .env("LOFT_ADMIN_KEY", &key)
            .env_remove("LOFT_API_KEY")
            .output()
            .unwrap();
        assert_eq!(ok_json(&out)["kind"], "operator");
        key
    };
    let path = dir.path().join("admin.key");
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // The second start reuses it and does not print it again.
    let again = serve(dir.path(), None, None);
    assert!(
        again.stdout_lines.iter().all(|l| !l.contains(&key)),
        "{:?}",
        again.stdout_lines
    );
}

#[test]
fn unknown_database_url_scheme_is_refused_with_the_accepted_ones() {
    let dir = tempfile::tempdir().unwrap();
    for url in ["mysql://root@localhost/loft", "./loft.db"] {
        let out = Command::new(BIN)
            .args(["serve", "--http", "127.0.0.1:0", "--database-url", url])
            .arg("--data-dir")
            .arg(dir.path())
            .env("LOFT_ADMIN_KEY", ADMIN)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("sqlite://") && err.contains("postgres://"), "{err}");
        assert!(!dir.path().join("loft.db").exists() && !Path::new("./loft.db").exists());
    }
}

#[test]
fn a_bad_egress_allowance_is_refused_at_start_up_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, env, fault) in [
        (
            Some("localhost,10.0.0.1/8"),
            None,
            "`10.0.0.1/8` has bits set after its /8 prefix",
        ),
        (None, Some("127.0.0.1,api.example.com:443"), "`api.example.com:443`"),
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--http", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path())
            .env("LOFT_ADMIN_KEY", ADMIN)
            .env_remove("LOFT_DATABASE_URL")
            .env_remove("LOFT_EGRESS_ALLOW")
            .stdin(Stdio::null());
        if let Some(f) = flag {
            cmd.args(["--egress-allow", f]);
        }
        if let Some(e) = env {
            cmd.env("LOFT_EGRESS_ALLOW", e);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--egress-allow") && err.contains(fault), "{err}");
    }
    assert!(
        !dir.path().join("loft.db").exists(),
        "nothing is created before the settings are checked"
    );
}

#[cfg(unix)]
#[test]
fn sigterm_shuts_down_gracefully() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path(), None, Some(ADMIN));
    // A long poll under way must not hold the shutdown up.
    let agent = ok_json(&cli(
        &server,
        None,
        &["identity", "create", "waiter", "--mode", "autonomous", "--json"],
    ));
    let key = agent["api_key"].as_str().unwrap().to_owned();
    let host = server.url.trim_start_matches("http://").to_owned();
    let mut conn = std::net::TcpStream::connect(&host).unwrap();
    write!(
        conn,
        "GET /v0/messages/wait?timeout_seconds=300 HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "loft serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("\"timed_out\":true"),
        "{answer}"
    );
}

/// The vault through the real binary and CLI: put (secret on stdin), list, get, reveal refused
/// and granted, TOTP, backup codes, rotation of the data-dir master key, a restart with a wrong
/// key refused; and the marker secret appears nowhere: not in the SQLite file or its WAL, not in
/// the server's debug log, not in any CLI output but the explicit reveal.
#[test]
fn vault_scenario_leaves_no_plaintext() {
    const MARKER: &str = "e2e-vault-marker-c0ffee42d00d";
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--http", "127.0.0.1:0", "--domain", "agents.e2e"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("LOFT_ADMIN_KEY", ADMIN)
        .env_remove("LOFT_DATABASE_URL")
        .env_remove("LOFT_MASTER_KEY")
        .env_remove("LOFT_MASTER_KEY_FILE")
        .env_remove("LOFT_MASTER_KEY_PREVIOUS")
        .env("LOFT_LOG", "debug")
        .env("LOFT_EGRESS_DENY_PUBLIC", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    let server = spawn_server(cmd);
    let key_file = dir.path().join("vault.keys");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the generated master key file must be owner-only");
    }

    let agent = ok_json(&cli(
        &server,
        None,
        &["identity", "create", "agent", "--mode", "autonomous", "--json"],
    ));
    let key = agent["api_key"].as_str().unwrap();
    let id = agent["id"].as_str().unwrap();
    let mut outputs = String::new();
    let mut record = |o: &Output| {
        outputs.push_str(&String::from_utf8_lossy(&o.stdout));
        outputs.push_str(&String::from_utf8_lossy(&o.stderr));
    };

    let put = cli_stdin(
        &server,
        Some(key),
        &[
            "vault",
            "put",
            "crm",
            "--allowed-hosts",
            "127.0.0.1",
            "--meta",
            "url=https://crm.test",
        ],
        MARKER,
    );
    record(&put);
    assert!(ok_text(&put).contains("stored crm"));
    let totp_uri = "otpauth://totp/ACME:agent?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME";
    let put = cli_stdin(&server, Some(key), &["vault", "put", "otp", "--type", "totp"], totp_uri);
    record(&put);
    ok_text(&put);
    let list = cli(&server, Some(key), &["vault", "list", "--json"]);
    record(&list);
    assert_eq!(ok_json(&list)["items"].as_array().unwrap().len(), 2);
    let human = cli(&server, Some(key), &["vault", "list"]);
    record(&human);
    assert!(ok_text(&human).contains("crm"));
    let get = cli(&server, Some(key), &["vault", "get", "crm"]);
    record(&get);
    assert!(ok_text(&get).contains("https://crm.test"));
    let refused = cli(&server, Some(key), &["vault", "get", "crm", "--reveal"]);
    record(&refused);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("vault:reveal"));
    let code = cli(&server, Some(key), &["vault", "totp", "otp"]);
    record(&code);
    let code = ok_text(&code);
    assert_eq!(code.trim().len(), 6, "{code}");
    let other = cli(&server, Some(key), &["vault", "totp", "nope"]);
    record(&other);
    assert!(!other.status.success());

    // Rotation: the server generates a new key into the data dir and re-wraps everything.
    let rot = ok_json(&cli(&server, None, &["vault", "rotate-master-key", "--json"]));
    assert_eq!(rot["generated"], true);
    assert_eq!(rot["rewrapped"], 2);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().lines().count(), 2);

    // The operator grants reveal; the plaintext comes back only there.
    ok_text(&cli(
        &server,
        None,
        &[
            "identity",
            "update",
            id,
            "--scopes",
            "mail:read,vault:read,vault:write,vault:reveal",
        ],
    ));
    let revealed = ok_text(&cli(&server, Some(key), &["vault", "get", "crm", "--reveal"]));
    assert!(revealed.contains(MARKER), "{revealed}");
    let rm = cli(&server, Some(key), &["vault", "rm", "otp"]);
    record(&rm);
    ok_text(&rm);

    assert!(!outputs.contains(MARKER), "a CLI output holds the secret: {outputs}");
    let scan = |path: &Path| {
        if let Ok(bytes) = std::fs::read(path) {
            assert!(
                !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
                "{} holds the plaintext secret",
                path.display()
            );
        }
    };
    let db = dir.path().join("loft.db");
    assert!(db.exists());
    scan(&db);
    scan(&dir.path().join("loft.db-wal"));
    drop(server);
    scan(&db);
    scan(&dir.path().join("loft.db-wal"));
    let log_text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log_text.contains("DEBUG") || log_text.contains("debug"),
        "debug logging was not on"
    );
    assert!(!log_text.contains(MARKER), "the server log holds the secret");

    // A restart with another master key is refused, naming the key ids the database needs.
    let out = Command::new(BIN)
        .args(["serve", "--http", "127.0.0.1:0", "--domain", "agents.e2e"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("LOFT_ADMIN_KEY", ADMIN)
        .env_remove("LOFT_DATABASE_URL")
        .env("LOFT_MASTER_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("master key") && err.contains(rot["current_key_id"].as_str().unwrap()),
        "{err}"
    );
}

fn spawn_server(mut cmd: Command) -> Server {
    let mut server = Server {
        child: cmd.spawn().unwrap(),
        url: String::new(),
        stdout_lines: Vec::new(),
    };
    let stdout = server.child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_mins(1);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(url) = line.strip_prefix("HTTP API listening on ") {
            url.trim().clone_into(&mut server.url);
            std::thread::spawn(move || for _ in lines.by_ref() {});
            return server;
        }
        server.stdout_lines.push(line);
    }
    panic!("loft serve did not start: {:?}", server.stdout_lines);
}

fn cli_stdin(server: &Server, api_key: Option<&str>, args: &[&str], input: &str) -> Output {
    use std::io::Write as _;
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("LOFT_URL", &server.url)
        .env("LOFT_ADMIN_KEY", ADMIN)
        .env_remove("LOFT_API_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(k) = api_key {
        cmd.env("LOFT_API_KEY", k);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Sends `n` mails from `key` to `to`, one after another; returns the sends per second.
async fn sends_per_second(client: &reqwest::Client, url: &str, key: &str, to: &str, n: usize) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        let r = client
            .post(format!("{url}/v0/messages/send"))
            .bearer_auth(key)
            .json(&serde_json::json!({"to": to, "subject": format!("m{i}"), "text": "x"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "a legitimate send failed: {}", r.status());
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Finding 6 of the security probe, on the real server: a flood of forged keys from one
/// address is locked out after a few refusals (429, the key never looked up), the audit log
/// grows by one aggregated row for the whole flood (naming no key id), and a legitimate agent
/// on another address keeps working. Its throughput with and without the flood is printed
/// (a figure to compare, not asserted: these machines are shared and noisy).
#[test]
fn bad_key_flood_is_locked_out_and_leaves_one_audit_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--http", "127.0.0.1:0", "--domain", "agents.e2e"])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("LOFT_DATABASE_URL")
        .env("LOFT_ADMIN_KEY", ADMIN)
        .env("LOFT_AUTH_FAILURES_PER_MINUTE", "10")
        .env("LOFT_RATE_LIMIT_PER_KEY", "off")
        .env("LOFT_LOG", "warn")
        // Nothing a test does may reach past this machine, even if the code is broken.
        .env("LOFT_EGRESS_DENY_PUBLIC", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut server = spawn_server(cmd);
    let agent = ok_json(&cli(
        &server,
        None,
        &["identity", "create", "agent", "--mode", "autonomous", "--json"],
    ));
    let key = agent["api_key"].as_str().unwrap().to_owned();
    let to = agent["address"].as_str().unwrap().to_owned();
    let kid = agent["key_id"].as_str().unwrap().to_owned();
    let forged = format!("{}_{}", key.rsplit_once('_').unwrap().0, "a".repeat(52));
    let url = server.url.clone();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (quiet, loud, statuses) = rt.block_on(async {
        let legit = reqwest::Client::new();
        let quiet = sends_per_second(&legit, &url, &key, &to, 100).await;
        // The attacker comes from 127.0.0.2 (all of 127/8 is this machine), the agent from
        // 127.0.0.1.
        let attacker = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .build()
            .unwrap();
        // Refusals are counted per wall-clock minute: a flood that straddles a minute's end
        // gets a fresh allowance and two audit rows. Start it early in a minute.
        let second = loft_core::time::Clock::now(&loft_core::time::SystemClock).as_micros() / 1_000_000 % 60;
        if second > 30 {
            tokio::time::sleep(Duration::from_secs((61 - second).unsigned_abs())).await;
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut flood = Vec::new();
        for _ in 0..8 {
            let (attacker, url, forged, stop) = (attacker.clone(), url.clone(), forged.clone(), stop.clone());
            flood.push(tokio::spawn(async move {
                let mut seen = std::collections::BTreeMap::<u16, usize>::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = attacker
                        .get(format!("{url}/v0/messages"))
                        .bearer_auth(&forged)
                        .send()
                        .await
                        .unwrap();
                    *seen.entry(r.status().as_u16()).or_default() += 1;
                }
                seen
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let loud = sends_per_second(&legit, &url, &key, &to, 100).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
        for f in flood {
            for (s, n) in f.await.unwrap() {
                *statuses.entry(s).or_default() += n;
            }
        }
        (quiet, loud, statuses)
    });
    let flooded: usize = statuses.values().sum();
    println!(
        "legitimate sends: {quiet:.0}/s without the flood, {loud:.0}/s during it; flood: {flooded} requests, {statuses:?}"
    );
    // 10 refusals, then the lockout; up to 8 more (one per concurrent client) may have passed
    // the lockout check while the 10th was being looked up.
    let refused = statuses.get(&401).copied().unwrap_or(0);
    assert!((10..=18).contains(&refused), "{statuses:?}");
    assert_eq!(
        statuses.get(&429).copied().unwrap_or(0),
        flooded - refused,
        "{statuses:?}"
    );

    // The refusals reach the audit log at the end of their minute, or at shutdown.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(server.child.wait().unwrap().success());
    let server = serve(dir.path(), None, Some(ADMIN));
    let audit = ok_json(&cli(&server, None, &["audit", "list", "--json", "--limit", "200"]));
    let rows = audit["items"].as_array().unwrap();
    let refused: Vec<&Value> = rows.iter().filter(|r| r["action"] == "auth.refused").collect();
    assert_eq!(refused.len(), 1, "one aggregated row for the whole flood: {refused:?}");
    assert_eq!(refused[0]["remote_addr"], "127.0.0.2");
    assert_eq!(refused[0]["key_id"], Value::Null);
    assert_eq!(refused[0]["details"]["count"], flooded);
    assert!(!serde_json::to_string(&refused).unwrap().contains(&kid));
    // identity.create, 200 sends, the refusal row, and the vault key registrations.
    let others = rows.len() - 1;
    assert!(others <= 1 + 200 + 2, "the log grew by {} rows", rows.len());
    let verify = ok_text(&cli(&server, None, &["audit", "verify"]));
    assert!(verify.contains("intact"), "{verify}");
}

/// The SQLite database, its WAL and its shared-memory file are readable by the owner only,
/// whatever the umask (this test runs with the usual 022), like the key files.
#[cfg(unix)]
#[test]
fn data_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), None, Some(ADMIN));
    ok_json(&cli(
        &server,
        None,
        &["identity", "create", "agent", "--mode", "autonomous", "--json"],
    ));
    for name in ["loft.db", "loft.db-wal", "loft.db-shm", "vault.keys"] {
        let mode = std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{name} has mode {mode:o}");
    }
}

/// The probe's finding 5 through the CLI: a key minted for a narrow job cannot list or mint
/// keys, rotate the primary key or revoke its identity; it can rotate itself.
#[test]
fn a_narrow_key_cannot_manage_keys_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), None, Some(ADMIN));
    let agent = ok_json(&cli(
        &server,
        None,
        &["identity", "create", "agent", "--mode", "autonomous", "--json"],
    ));
    let primary = agent["api_key"].as_str().unwrap();
    let id = agent["id"].as_str().unwrap();
    let narrow = ok_json(&cli(
        &server,
        Some(primary),
        &["key", "create", "--scopes", "mail:read", "--expires-in", "1h", "--json"],
    ));
    let narrow = narrow["api_key"].as_str().unwrap();
    for args in [
        &["key", "list"][..],
        &["key", "create"],
        &["key", "rotate", "--identity", id],
        &["identity", "revoke", id],
    ] {
        // Without the operator key in the environment, so that the CLI uses the narrow key.
        let out = Command::new(BIN)
            .args(args)
            .env("LOFT_URL", &server.url)
            .env("LOFT_API_KEY", narrow)
            .env_remove("LOFT_ADMIN_KEY")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("keys:manage") || err.contains("primary key"),
            "{args:?}: {err}"
        );
    }
    // Rotating itself works; the primary key was never touched.
    let rotated = ok_json(&cli(&server, Some(narrow), &["key", "rotate", "--json"]));
    assert_eq!(rotated["scopes"], serde_json::json!(["mail:read"]));
    ok_json(&cli(&server, Some(primary), &["whoami", "--json"]));
}

/// Runs `loft backup` or `loft restore` (local commands: no server URL, no key).
fn local(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("LOFT_DATA_DIR")
        .env_remove("LOFT_DATABASE_URL")
        .env_remove("LOFT_MASTER_KEY")
        .env_remove("LOFT_MASTER_KEY_FILE")
        .env_remove("LOFT_MASTER_KEY_PREVIOUS")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `loft backup` of a server under write load, then `loft restore` into a new data dir and a
/// server on it: every send acknowledged before the backup started is there, the audit chain
/// verifies, and the files are owner-only.
#[test]
fn backup_under_write_load_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let (data, snap, restored) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    let server = serve(&data, None, Some(ADMIN));
    let agent = ok_json(&cli(
        &server,
        None,
        &["identity", "create", "agent", "--mode", "autonomous", "--json"],
    ));
    let key = agent["api_key"].as_str().unwrap().to_owned();
    let to = agent["address"].as_str().unwrap().to_owned();
    let url = server.url.clone();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (before_backup, total, backup_out) = rt.block_on(async {
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (acked, stop, url, key, to) = (acked.clone(), stop.clone(), url.clone(), key.clone(), to.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let subject = format!("load-{n}");
                    let r = client
                        .post(format!("{url}/v0/messages/send"))
                        .bearer_auth(&key)
                        .json(&serde_json::json!({"to": to, "subject": subject, "text": "x"}))
                        .send()
                        .await
                        .unwrap();
                    if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
                        // Over the per-key rate: wait as a well-behaved client does.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    assert!(r.status().is_success(), "{}", r.status());
                    acked.lock().unwrap().push(subject);
                    n += 1;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before_backup = acked.lock().unwrap().clone();
        let args: Vec<String> = vec![
            "backup".into(),
            snap.to_str().unwrap().into(),
            "--data-dir".into(),
            data.to_str().unwrap().into(),
        ];
        let out = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            local(&args, &[])
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.await.unwrap();
        let total = acked.lock().unwrap().len();
        (before_backup, total, out)
    });
    let text = ok_text(&backup_out);
    assert!(text.contains("audit chain at row"), "{text}");
    assert!(
        !before_backup.is_empty() && total > before_backup.len(),
        "the load ran across the backup"
    );
    drop(server);

    let out = local(
        &[
            "restore",
            snap.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ],
        &[],
    );
    let text = ok_text(&out);
    assert!(text.contains("audit chain intact"), "{text}");
    // Restoring over a database is refused.
    let again = local(
        &[
            "restore",
            snap.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("exists already"));
    #[cfg(unix)]
    for f in [
        "b/loft.db",
        "b/vault.keys",
        "b/manifest.json",
        "c/loft.db",
        "c/vault.keys",
    ] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{f} has mode {mode:o}");
    }

    let server = serve(&restored, None, Some(ADMIN));
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = vec!["mail", "list", "--json", "--limit", "200"];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let page = ok_json(&cli(&server, Some(&key), &args));
        for m in page["items"].as_array().unwrap() {
            seen.insert(m["subject"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let missing: Vec<_> = before_backup.iter().filter(|s| !seen.contains(*s)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged before the backup but not restored: {missing:?}"
    );
    println!(
        "{} sends acknowledged before the backup, {total} in all, {} in the restored inbox",
        before_backup.len(),
        seen.len()
    );
    let verify = ok_text(&cli(&server, None, &["audit", "verify"]));
    assert!(verify.contains("intact"), "{verify}");
}

/// A backup whose vault credentials are wrapped by a master key from the environment, restored
/// with another key, fails naming the key it needs, and leaves no database behind.
#[test]
fn restore_with_the_wrong_master_key_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (data, snap, restored) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    let right = "11".repeat(32);
    let wrong = "22".repeat(32);
    let (right, wrong) = (right.as_str(), wrong.as_str());
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--http", "127.0.0.1:0", "--domain", "agents.e2e"])
        .arg("--data-dir")
        .arg(&data)
        .env("LOFT_ADMIN_KEY", ADMIN)
        .env("LOFT_MASTER_KEY", right)
        .env_remove("LOFT_DATABASE_URL")
        .env("LOFT_LOG", "warn")
        // Nothing a test does may reach past this machine, even if the code is broken.
        .env("LOFT_EGRESS_DENY_PUBLIC", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let server = spawn_server(cmd);
    let key_line = server
        .stdout_lines
        .iter()
        .find_map(|l| l.strip_prefix("vault master key: "))
        .unwrap_or_default()
        .to_owned();
    let agent = ok_json(&cli(
        &server,
        None,
        &["identity", "create", "agent", "--mode", "autonomous", "--json"],
    ));
    let api_key = agent["api_key"].as_str().unwrap();
    ok_text(&cli_stdin(
        &server,
        Some(api_key),
        &["vault", "put", "crm"],
        "a-long-enough-secret-value",
    ));
    drop(server);

    let out = local(
        &["backup", snap.to_str().unwrap(), "--data-dir", data.to_str().unwrap()],
        &[],
    );
    let text = ok_text(&out);
    assert!(text.contains("keep it with this backup"), "{text}");

    let out = local(
        &[
            "restore",
            snap.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ],
        &[("LOFT_MASTER_KEY", wrong)],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mk_") && err.contains("nothing was restored"), "{err}");
    if !key_line.is_empty() {
        assert!(
            err.contains(&key_line),
            "the error names the key the backup needs ({key_line}): {err}"
        );
    }
    assert!(!restored.join("loft.db").exists());
    // With the right key it restores.
    let out = local(
        &[
            "restore",
            snap.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ],
        &[("LOFT_MASTER_KEY", right)],
    );
    ok_text(&out);
}

/// A second `loft serve` on the same SQLite data dir refuses to start, naming the first; the
/// operator key's source is printed (never the key), and a conflicting `admin.key` is reported.
#[test]
fn one_server_per_sqlite_data_dir_and_the_operator_key_source_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let first = serve(dir.path(), None, None);
    assert!(
        first.stdout_lines.iter().any(|l| l.contains("shown once")),
        "{:?}",
        first.stdout_lines
    );
    let out = Command::new(BIN)
        .args(["serve", "--http", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("LOFT_DATABASE_URL")
        .env("LOFT_ADMIN_KEY", ADMIN)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let pid = first.child.id().to_string();
    assert!(err.contains("already using") && err.contains(&pid), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    drop(first);

    // With LOFT_ADMIN_KEY set over an existing admin.key: which key is in use, and the conflict.
    let second = serve(dir.path(), None, Some(ADMIN));
    let lines = second.stdout_lines.join("\n");
    assert!(lines.contains("operator key: from LOFT_ADMIN_KEY"), "{lines}");
    assert!(lines.contains("admin.key holds another key"), "{lines}");
    assert!(!lines.contains(ADMIN), "the key itself is never printed");
}

/// The README's walkthrough runs for real (`scripts/walkthrough.sh`, with the values each step
/// returns), and every `loft` and `curl` command of that README section is in the script: a
/// change that breaks a documented command or its output fails here.
#[test]
fn the_readme_walkthrough_runs() {
    let readme = include_str!("../../../README.md");
    let script = include_str!("../../../scripts/walkthrough.sh");
    let start = readme.find("## Five minutes").expect("the walkthrough section");
    let end = start + readme[start..].find("\n## ").expect("the next section");
    let mut checked = 0;
    for line in readme[start..end].lines() {
        let command = line.split(" #").next().unwrap_or_default().trim();
        // Leading `NAME=value` assignments are the environment, not the command.
        let words: Vec<&str> = command
            .split_whitespace()
            .skip_while(|w| w.contains('=') && !w.starts_with('-'))
            .collect();
        if !matches!(words.first(), Some(&"loft" | &"curl")) {
            continue;
        }
        // The command's words up to its first argument or placeholder.
        let skeleton: Vec<&str> = words
            .iter()
            .take_while(|w| !w.contains("...") && !w.starts_with(['$', '-', '"', '\'']))
            .copied()
            .collect();
        let skeleton = skeleton.join(" ");
        assert!(
            script.contains(&skeleton),
            "the README command `{command}` is not in scripts/walkthrough.sh (looked for `{skeleton}`)"
        );
        checked += 1;
    }
    assert!(
        checked >= 12,
        "only {checked} README commands found: is the section still there?"
    );
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/walkthrough.sh"))
        .env("LOFT_BIN", BIN)
        .env_remove("LOFT_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the walkthrough failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tiny SMTP sink on loopback for outbound delivery: every DATA it receives is counted in
/// `got`; while `hang` is set it takes the data and never answers (the sender dies waiting).
fn smtp_sink(
    got: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    hang: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> u16 {
    use std::io::Write as _;
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (got, hang) = (got.clone(), hang.clone());
            std::thread::spawn(move || {
                let mut w = stream.try_clone().unwrap();
                let mut r = BufReader::new(stream);
                let _ = w.write_all(b"220 sink.test ESMTP\r\n");
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_ascii_uppercase();
                    let reply = if cmd.starts_with("EHLO") {
                        "250-sink.test\r\n250 8BITMIME"
                    } else if cmd == "DATA" {
                        let _ = w.write_all(b"354 go ahead\r\n");
                        loop {
                            line.clear();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                        }
                        got.fetch_add(1, Ordering::SeqCst);
                        if hang.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_mins(10));
                            return;
                        }
                        "250 2.0.0 OK queued"
                    } else if cmd == "QUIT" {
                        let _ = w.write_all(b"221 bye\r\n");
                        return;
                    } else {
                        "250 OK"
                    };
                    let _ = w.write_all(format!("{reply}\r\n").as_bytes());
                }
            });
        }
    });
    port
}

/// Outbound delivery through the real binary (`--deliver-direct`, the test's DNS answers, a
/// loopback sink): the server is killed with SIGKILL in the middle of a delivery (the data sent,
/// no reply yet), restarted on the same data, and the mail is delivered after the lease expires:
/// possibly twice, never lost; the sent copy shows `delivered`.
#[test]
fn outbound_mail_survives_sigkill_mid_delivery() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let got = Arc::new(AtomicUsize::new(0));
    let hang = Arc::new(AtomicBool::new(true));
    let port = smtp_sink(got.clone(), hang.clone());
    let dir = tempfile::tempdir().unwrap();
    let start = |dir: &Path| {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--domain",
            "agents.e2e",
            "--deliver-direct",
        ])
        .args(["--smtp-outbound-port", &port.to_string()])
        .args(["--smtp-outbound-resolve", "remote.test=127.0.0.1"])
        .args(["--egress-allow", "127.0.0.1"])
        .arg("--data-dir")
        .arg(dir)
        .env_remove("LOFT_DATABASE_URL")
        .env("LOFT_ADMIN_KEY", ADMIN)
        .env("LOFT_LOG", "warn")
        .env("LOFT_EGRESS_DENY_PUBLIC", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        spawn_server(cmd)
    };
    let mut server = start(dir.path());
    let writer = ok_json(&cli(
        &server,
        None,
        &["identity", "create", "writer", "--mode", "autonomous", "--json"],
    ));
    let key = writer["api_key"].as_str().unwrap().to_owned();
    let sent = ok_json(&cli(
        &server,
        Some(&key),
        &[
            "mail",
            "send",
            "--to",
            "x@remote.test",
            "--subject",
            "Out",
            "--text",
            "Hello.",
            "--json",
        ],
    ));
    let id = sent["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the server never sent the data");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    hang.store(false, Ordering::SeqCst);

    let server = start(dir.path());
    let shown = ok_json(&cli(&server, Some(&key), &["mail", "read", &id, "--json"]));
    assert_eq!(shown["delivery"][0]["status"], "queued", "{shown}");
    // The dead server's lease (60 s) expires, and the new one delivers.
    let deadline = Instant::now() + Duration::from_mins(2);
    loop {
        let shown = ok_json(&cli(&server, Some(&key), &["mail", "read", &id, "--json"]));
        if shown["delivery"][0]["status"] == "delivered" {
            assert!(
                shown["delivery"][0]["detail"].as_str().unwrap().contains("250 2.0.0"),
                "{shown}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "not delivered after the restart: {shown}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(got.load(Ordering::SeqCst), 2, "delivered again after the crash, once");
}
