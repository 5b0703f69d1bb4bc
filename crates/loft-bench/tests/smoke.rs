//! The real `loft-bench` binary, briefly, on SQLite and on PostgreSQL: it measures every row,
//! prints its table and JSON, finds the audit chain intact, and leaves nothing behind. No
//! timing is asserted (figures are for reports, not tests).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc, reason = "tests")]

use std::path::Path;
use std::process::Command;

use loft_testkit::pg;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_loft-bench");

/// Runs a short benchmark with `extra` flags, temporary files under `tmp`; returns its JSON.
fn run(tmp: &Path, extra: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args([
            "--samples",
            "20",
            "--warmup",
            "2",
            "--agents",
            "1,3",
            "--seconds",
            "1",
            "--json",
        ])
        .arg("--tmp-dir")
        .arg(tmp)
        .args(extra)
        .env_remove("LOFT_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "loft-bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("| send throughput"), "{stdout}");
    assert!(
        stdout.contains("audit chain:") && stdout.contains("verified ok"),
        "{stdout}"
    );
    let json: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(json["delivery"]["delivered"]["n"], 20);
    assert_eq!(json["throughput"]["send"].as_array().unwrap().len(), 2);
    assert_eq!(json["throughput"]["list_limit_20"][1]["agents"], 3);
    assert_eq!(json["audit"]["ok"], true);
    assert!(json["command"].as_str().unwrap().starts_with("loft-bench "), "{json}");
    // The temporary data directory is gone again.
    assert_eq!(
        std::fs::read_dir(tmp).unwrap().count(),
        0,
        "left behind in {}",
        tmp.display()
    );
    json
}

#[test]
fn measures_sqlite_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let json = run(tmp.path(), &[]);
    assert_eq!(json["backend"], "sqlite");
}

#[test]
fn measures_postgres_and_drops_its_database() {
    let server = pg::server_url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    if let Err(e) = rt.block_on(pg::server_version(&server)) {
        assert!(!pg::in_ci(), "PostgreSQL is needed in CI: {e}");
        eprintln!("WARNING: PostgreSQL not reachable, loft-bench not run on it: {e}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let json = run(tmp.path(), &["--database-url", &server]);
    assert_eq!(json["backend"], "postgres");
    let database = json["database"].as_str().unwrap();
    let name = database
        .split_whitespace()
        .find(|w| w.starts_with("loft_bench_"))
        .unwrap_or_else(|| panic!("no database name in {database:?}"));
    // Dropped: creating it again succeeds (and is undone at once).
    let url = rt.block_on(pg::create_database(&server, name)).unwrap();
    assert!(url.ends_with(name), "{url}");
    rt.block_on(pg::drop_database(&server, name)).unwrap();
}
