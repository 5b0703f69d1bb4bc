//! Tampering with the SQLite file behind Loft's back is detected, and secrets never reach it.
//!
//! These tests play someone with write access to the database file: they change the audit
//! table through a connection of their own (dropping the append-only triggers first, as such
//! a person would) and check that `Loft::audit_verify` names the first bad row. The last test
//! reads the raw database and WAL bytes and checks that no API key ever issued is in them.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test, with its message"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use loft_core::audit::VerifyReport;
use loft_core::service::{CreateKeyRequest, ListMessagesParams};
use loft_store_sqlite::SqliteStore;
use loft_testkit::{TestLoft, test_loft};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, Connection as _, SqliteConnection};
use tempfile::TempDir;

struct Fixture {
    _dir: TempDir,
    path: PathBuf,
    t: TestLoft,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loft.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let t = test_loft(Arc::new(store));
    Fixture { _dir: dir, path, t }
}

/// Some activity: identities, keys, mail, reads. Returns the API keys issued.
async fn activity(t: &TestLoft) -> Vec<String> {
    let (a, aa) = t.identity("alice").await;
    let (b, ba) = t.identity("bob").await;
    let extra = t.loft.create_key(&aa, None, CreateKeyRequest::default()).await.unwrap();
    let rotated = t.loft.rotate_key(&ba, None).await.unwrap();
    let ba = t.actor(&rotated.api_key).await;
    for n in 0..3 {
        t.send(
            &aa,
            &[b.identity.address.as_str()],
            &format!("report {n}"),
            "numbers attached",
        )
        .await;
    }
    let inbox = t.all_messages(&ba, ListMessagesParams::default()).await;
    t.loft.get_message(&ba, inbox[0].id.as_str()).await.unwrap();
    let _ = t.authenticate("loft_sk_not_a_key").await;
    vec![
        a.api_key,
        b.api_key,
        extra.api_key,
        rotated.api_key,
        t.operator_key.clone(),
    ]
}

async fn raw_connection(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(Duration::from_secs(10)),
    )
    .await
    .unwrap()
}

async fn execute(conn: &mut SqliteConnection, sql: String) -> Result<u64, sqlx::Error> {
    sqlx::query(AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
}

async fn verify(t: &TestLoft) -> VerifyReport {
    let op = t.operator().await;
    t.loft.audit_verify(&op).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_row_is_named() {
    let f = fixture().await;
    activity(&f.t).await;
    let len = f.t.audit_len().await;
    assert!(len >= 8, "enough rows to alter one in the middle: {len}");
    assert!(f.t.assert_chain_ok().await.ok);
    let target = len / 2;

    let mut conn = raw_connection(&f.path).await;
    let update = format!("UPDATE audit_log SET action = 'identity.delete' WHERE seq = {target}");
    // Loft itself cannot change history: the append-only trigger refuses.
    let refused = execute(&mut conn, update.clone()).await;
    assert!(
        refused.is_err(),
        "the append-only trigger must refuse an UPDATE: {refused:?}"
    );
    execute(&mut conn, "DROP TRIGGER audit_log_no_update".into())
        .await
        .unwrap();
    assert_eq!(execute(&mut conn, update).await.unwrap(), 1);
    conn.close().await.unwrap();

    let report = verify(&f.t).await;
    assert!(!report.ok, "an altered row must be detected: {report:?}");
    assert_eq!(report.first_bad_seq, Some(target), "{report:?}");
    assert!(report.problem.as_deref().unwrap().contains("altered"), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_and_rehashed_row_is_caught_at_the_next_row() {
    let f = fixture().await;
    activity(&f.t).await;
    let len = f.t.audit_len().await;
    let target = len / 2;
    let rows = f.t.audit_rows().await;
    // A careful forger recomputes the altered row's own hash...
    let mut forged = rows[(target - 1) as usize].clone();
    forged.entry.action = "identity.delete".into();
    let hash = loft_core::audit::compute_hash(forged.seq, &forged.entry, &forged.prev_hash);

    let mut conn = raw_connection(&f.path).await;
    execute(&mut conn, "DROP TRIGGER audit_log_no_update".into())
        .await
        .unwrap();
    let n = execute(
        &mut conn,
        format!("UPDATE audit_log SET action = 'identity.delete', hash = '{hash}' WHERE seq = {target}"),
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    conn.close().await.unwrap();

    // ...but the next row still links to the original.
    let report = verify(&f.t).await;
    assert!(!report.ok, "{report:?}");
    assert_eq!(report.first_bad_seq, Some(target + 1), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_middle_row_is_named() {
    let f = fixture().await;
    activity(&f.t).await;
    let len = f.t.audit_len().await;
    let target = len / 2;

    let mut conn = raw_connection(&f.path).await;
    let delete = format!("DELETE FROM audit_log WHERE seq = {target}");
    assert!(
        execute(&mut conn, delete.clone()).await.is_err(),
        "the append-only trigger must refuse a DELETE"
    );
    execute(&mut conn, "DROP TRIGGER audit_log_no_delete".into())
        .await
        .unwrap();
    assert_eq!(execute(&mut conn, delete).await.unwrap(), 1);
    conn.close().await.unwrap();

    let report = verify(&f.t).await;
    assert!(!report.ok, "a removed row must be detected: {report:?}");
    assert_eq!(report.first_bad_seq, Some(target), "{report:?}");
    assert!(report.problem.as_deref().unwrap().contains("missing"), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_last_row_is_named() {
    let f = fixture().await;
    activity(&f.t).await;
    let len = f.t.audit_len().await;

    let mut conn = raw_connection(&f.path).await;
    execute(&mut conn, "DROP TRIGGER audit_log_no_delete".into())
        .await
        .unwrap();
    assert_eq!(
        execute(&mut conn, format!("DELETE FROM audit_log WHERE seq = {len}"))
            .await
            .unwrap(),
        1
    );
    conn.close().await.unwrap();

    // The head pointer still says `len`: removal at the end is caught too.
    let report = verify(&f.t).await;
    assert!(!report.ok, "{report:?}");
    assert_eq!(report.first_bad_seq, Some(len), "{report:?}");
}

/// Reads the database file and its WAL, if any.
fn file_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if let Ok(w) = std::fs::read(PathBuf::from(wal)) {
        bytes.extend(w);
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_never_reach_the_database_file() {
    let f = fixture().await;
    let keys = activity(&f.t).await;
    let check = |when: &str| {
        let bytes = file_bytes(&f.path);
        for key in &keys {
            assert!(
                !contains(&bytes, key),
                "{when}: an API key is stored in plain text in the database file"
            );
            // The secret part alone, in case the key is stored in pieces.
            let secret = key.rsplit_once('_').map_or(key.as_str(), |(_, s)| s);
            assert!(
                !contains(&bytes, secret),
                "{when}: an API key's secret is stored in the database file"
            );
        }
        bytes
    };
    let bytes = check("while open");
    // Sanity: we are reading the right file (the public key id of a key is stored).
    let first = keys[0].strip_prefix("loft_sk_").unwrap().split('_').next().unwrap();
    assert!(
        contains(&bytes, &format!("key_{first}")),
        "the key's public id should be in the file"
    );

    f.t.store().close().await;
    check("after close");
}
