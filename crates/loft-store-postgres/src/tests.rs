//! Unit tests of what is particular to the PostgreSQL store, against a real server: nodes
//! migrating and writing at once, the audit sealer and its lock, session settings, connection
//! errors. The store contract is checked on every backend by the shared conformance suite
//! (`loft_testkit::conformance`, run from `tests/conformance.rs`).
//!
//! Each test creates its own database with the testkit's helper (`loft_testkit::pg`:
//! `loft_test_<time>_<pid>_<n>_<random>` on the server named by `LOFT_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and drops it afterwards, also when the test
//! fails.

use std::sync::Arc;

use loft_core::Error;
use loft_core::audit::{self, AuditEntry};
use loft_core::mail::MessageQuery;
use loft_core::store::{AuditStore, IdentityStore, MailStore, Store};
use loft_core::time::Timestamp;
use loft_testkit::conformance::operator_entry;
use loft_testkit::{mail, pg, test_loft};
use sqlx::{Connection, PgConnection};

use crate::PostgresStore;

/// A database of our own for one test ([`pg::TestDb`]), dropped when this value is dropped.
/// Unlike the testkit's own callers these tests fail, rather than pass untested, when
/// PostgreSQL is not reachable.
struct TestDb {
    url: String,
    db: Option<pg::TestDb>,
}

impl TestDb {
    async fn create() -> Self {
        let db = pg::TestDb::create()
            .await
            .expect("PostgreSQL for tests (set LOFT_TEST_PG_URL)");
        Self {
            url: db.url.clone(),
            db: Some(db),
        }
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url).await.expect("connect the store")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            db.drop_db_blocking();
        }
    }
}

fn entry(action: &str) -> AuditEntry {
    operator_entry(action, Timestamp::from_micros(1_795_000_000_000_000))
}

async fn verify(store: &PostgresStore) -> audit::VerifyReport {
    let rows = store.audit_after(0, 100_000).await.expect("audit rows");
    let head = store.audit_head().await.expect("audit head");
    audit::verify_chain(&rows, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_pools_append_audit_concurrently_and_the_chain_verifies() {
    let db = TestDb::create().await;
    // Two "nodes" connecting (and migrating) at the same time.
    let (a, b) = tokio::join!(PostgresStore::connect(&db.url), PostgresStore::connect(&db.url));
    let (a, b) = (a.expect("node a"), b.expect("node b"));
    assert_eq!(a.audit_head().await.expect("head"), None);

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move {
            let mut e = entry("auth.refused");
            e.details = serde_json::json!({ "n": i, "node": if i % 2 == 0 { "a" } else { "b" } });
            store.append_audit(e).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task").expect("append");
    }
    let report = verify(&a).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.rows_checked, 200);
    assert_eq!(b.audit_head().await.expect("head").map(|h| h.seq), Some(200));
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_mail_from_two_nodes_keeps_one_chain() {
    let db = TestDb::create().await;
    let a = db.store().await;
    let b = db.store().await;
    let node_a = test_loft(Arc::new(a.clone()));
    let node_b = node_a.another_node(Arc::new(b.clone()));
    let (alice, alice_a) = node_a.identity("alice").await;
    let (bob, bob_b) = node_b.identity("bob").await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (loft, from, to) = if i % 2 == 0 {
            (node_a.loft.clone(), alice_a.clone(), bob.identity.address.to_string())
        } else {
            (node_b.loft.clone(), bob_b.clone(), alice.identity.address.to_string())
        };
        tasks.spawn(async move { loft.send(&from, mail(&[&to], &format!("n{i}"), "x")).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task").expect("send");
    }
    let report = verify(&b).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.rows_checked, 42);
    let all = MessageQuery {
        limit: 200,
        ..MessageQuery::default()
    };
    assert_eq!(
        a.list_messages(&alice.identity.id, all)
            .await
            .expect("list")
            .items
            .len(),
        40
    );
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn unreachable_server_is_unavailable_and_names_host_without_password() {
    // Port 1 on loopback: nothing listens there.
    let err = PostgresStore::connect("postgres://loft:hunter2-secret@127.0.0.1:1/loft")
        .await
        .expect_err("nothing listens on port 1");
    let Error::Unavailable(msg) = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert!(msg.contains("127.0.0.1:1"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    let err = PostgresStore::connect("mysql://loft:hunter2-secret@db/loft")
        .await
        .expect_err("not a postgres url");
    assert!(
        matches!(&err, Error::Invalid(d) if d.code == "invalid_database_url"),
        "{err:?}"
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn action_prefixes_escape_like_wildcards() {
    assert_eq!(crate::audit_log::prefix_pattern("a_b%c\\."), "a\\_b\\%c\\\\.%");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_never_wait_for_the_sealer_and_readers_see_every_committed_row() {
    let db = TestDb::create().await;
    let store = db.store().await;
    assert_eq!(store.backend(), "postgres");
    let setting: String = sqlx::query_scalar("SHOW lock_timeout")
        .fetch_one(store.pool())
        .await
        .expect("show");
    assert_eq!(setting, "30s");
    let setting: String = sqlx::query_scalar("SHOW idle_in_transaction_session_timeout")
        .fetch_one(store.pool())
        .await
        .expect("show");
    assert_eq!(setting, "30s");

    // Another "node" is sealing (it holds the sealer's lock and the chain head): writers go on
    // at once, with their audit rows pending; a reader of the log waits for that sealer and
    // then sees the rows, chained after what the other node sealed.
    let mut other = PgConnection::connect(&db.url).await.expect("connect");
    let mut tx = other.begin().await.expect("begin");
    sqlx::query("SELECT pg_advisory_xact_lock(x'4c4f46545345414c'::bigint)")
        .execute(&mut *tx)
        .await
        .expect("sealer lock");
    sqlx::query("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        .execute(&mut *tx)
        .await
        .expect("head");
    let t = test_loft(Arc::new(store.clone()));
    let write = async {
        store.append_audit(entry("auth.refused")).await.expect("append");
        t.identity("alice").await
    };
    let (alice, _) = tokio::time::timeout(std::time::Duration::from_secs(5), write)
        .await
        .expect("writers must not wait for the sealer");
    assert_eq!(store.unsealed_audit_rows().await.expect("pending"), 2);
    let reader = {
        let store = store.clone();
        tokio::spawn(async move { store.audit_head().await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !reader.is_finished(),
        "a reader of the log waits for the sealer at work"
    );
    tx.rollback().await.expect("release");
    let head = reader.await.expect("task").expect("head").expect("a head");
    assert_eq!(head.seq, 2);
    assert_eq!(store.unsealed_audit_rows().await.expect("pending"), 0);
    assert!(store.get_identity(&alice.identity.id).await.expect("get").is_some());
    let report = verify(&store).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.rows_checked, 2);
    let _ = other.close().await;
    store.close().await;
}

/// The migration `caps_contacts` fills `contacts` from the mail already stored: on a mailbox
/// written by the live code, it finds the rows the live code recorded (first-sent times
/// exactly; a recipient of approved mail is dated by the mail, not the approval).
#[tokio::test]
async fn the_contacts_backfill_finds_what_sends_recorded() {
    type Row = (String, String, Option<i64>, bool);
    let db = TestDb::create().await;
    let store = Arc::new(db.store().await);
    let t = test_loft(store.clone());
    loft_testkit::conformance::contacts_story(&t).await;
    drop(t);
    store.close().await;

    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let read = "SELECT identity_id, address, first_sent_at, first_received_at IS NOT NULL FROM contacts \
                ORDER BY identity_id, address";
    let live: Vec<Row> = sqlx::query_as(read).fetch_all(&mut conn).await.unwrap();
    assert!(live.len() >= 10, "{live:?}");
    assert!(
        live.iter().any(|r| r.1 == "hidden@example.com"),
        "bcc recipients are contacts"
    );
    assert!(
        !live.iter().any(|r| r.1 == "pending@example.com"),
        "held mail records nothing"
    );
    // The sender copies' composition times, as the migration sets them.
    let unset: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE (composed_at IS NULL) = (folder = 'sent')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(unset, 0, "composed_at is set on sender copies and only there");
    sqlx::query("DELETE FROM contacts").execute(&mut conn).await.unwrap();
    sqlx::query("UPDATE messages SET composed_at = NULL")
        .execute(&mut conn)
        .await
        .unwrap();
    let migration = include_str!("../migrations/20261212000000_caps_contacts.sql");
    let start = migration.find("UPDATE messages m SET composed_at").unwrap();
    let end = migration[start..].find(';').unwrap() + start + 1;
    let backfill = format!(
        "{}\n{}",
        &migration[start..end],
        &migration[migration.find("INSERT INTO contacts").unwrap()..]
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(backfill))
        .execute(&mut conn)
        .await
        .unwrap();
    let filled: Vec<Row> = sqlx::query_as(read).fetch_all(&mut conn).await.unwrap();
    // To the second: a released scheduled mail's time is its send_at in the backfill and the
    // release's moment live, which the manual clock puts a few microseconds later.
    let seconds = |rows: Vec<Row>| -> Vec<Row> {
        rows.into_iter()
            .map(|(i, a, sent, received)| (i, a, sent.map(|t| t / 1_000_000), received))
            .collect()
    };
    assert_eq!(seconds(filled), seconds(live));
    let unset: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE (composed_at IS NULL) = (folder = 'sent')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(unset, 0);
    conn.close().await.unwrap();
}

/// Deleting for ever removes the content (bytes, search vector) with the last copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_for_ever_removes_shared_content_with_the_last_copy() {
    let db = TestDb::create().await;
    let store = Arc::new(db.store().await);
    let t = test_loft(store.clone());
    let url = db.url.clone();
    let count = |sql: &'static str| {
        let url = url.clone();
        async move {
            let mut conn = PgConnection::connect(&url).await.unwrap();
            sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut conn).await.unwrap()
        }
    };
    loft_testkit::conformance::delete_content_story(&t, || async {
        assert_eq!(count("SELECT COUNT(*) FROM messages").await, 1);
        assert_eq!(count("SELECT COUNT(*) FROM mail_contents").await, 1, "still Alice's");
        assert_eq!(count("SELECT COUNT(*) FROM message_labels").await, 0);
    })
    .await;
    for sql in [
        "SELECT COUNT(*) FROM messages",
        "SELECT COUNT(*) FROM mail_contents",
        "SELECT COUNT(*) FROM message_labels",
        "SELECT COALESCE(SUM(bytes), 0)::bigint FROM mailbox_usage",
    ] {
        assert_eq!(count(sql).await, 0, "{sql}");
    }
    drop(t);
    assert!(verify(&store).await.ok);
    store.close().await;
}
