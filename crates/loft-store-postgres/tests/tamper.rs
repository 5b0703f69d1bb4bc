//! Tampering with the PostgreSQL tables behind Loft's back is detected, and secrets never
//! reach the database.
//!
//! These tests play someone with write access to the database: they change the audit table
//! through a connection of their own and check that `Loft::audit_verify` names the first bad
//! row. The last test reads every row of every table as text and checks that no API key ever
//! issued is in it.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test, with its message"
)]

use std::sync::Arc;

use loft_core::audit::VerifyReport;
use loft_core::service::{CreateKeyRequest, ListMessagesParams};
use loft_store_postgres::PostgresStore;
use loft_testkit::pg::with_test_db;
use loft_testkit::{TestLoft, test_loft};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

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

async fn execute(url: &str, sql: String) -> u64 {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let n = sqlx::query(AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected();
    conn.close().await.unwrap();
    n
}

async fn verify(t: &TestLoft) -> VerifyReport {
    let op = t.operator().await;
    t.loft.audit_verify(&op).await.unwrap()
}

/// Runs `test` on a Loft over a fresh database, with the database URL for raw access.
async fn with_loft<F, Fut>(test: F)
where
    F: FnOnce(String, TestLoft) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_test_db(|url| async move {
        let store = PostgresStore::connect(&url).await.unwrap();
        let t = test_loft(Arc::new(store.clone()));
        test(url, t).await;
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_row_is_named() {
    with_loft(|url, t| async move {
        activity(&t).await;
        let len = t.audit_len().await;
        assert!(len >= 8, "{len}");
        t.assert_chain_ok().await;
        let target = len / 2;
        let n = execute(
            &url,
            format!("UPDATE audit_log SET action = 'identity.delete' WHERE seq = {target}"),
        )
        .await;
        assert_eq!(n, 1);
        let report = verify(&t).await;
        assert!(!report.ok, "an altered row must be detected: {report:?}");
        assert_eq!(report.first_bad_seq, Some(target), "{report:?}");
        assert!(report.problem.as_deref().unwrap().contains("altered"), "{report:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_details_are_named() {
    with_loft(|url, t| async move {
        activity(&t).await;
        let row = t
            .audit_rows()
            .await
            .into_iter()
            .find(|r| r.entry.action == "mail.send")
            .unwrap();
        // The same JSON with one number changed.
        let n = execute(
            &url,
            format!(
                "UPDATE audit_log SET details = replace(details, '\"delivered\":1', '\"delivered\":0') WHERE seq = {}",
                row.seq
            ),
        )
        .await;
        assert_eq!(n, 1);
        let report = verify(&t).await;
        assert_eq!(report.first_bad_seq, Some(row.seq), "{report:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_middle_row_is_named() {
    with_loft(|url, t| async move {
        activity(&t).await;
        let target = t.audit_len().await / 2;
        assert_eq!(
            execute(&url, format!("DELETE FROM audit_log WHERE seq = {target}")).await,
            1
        );
        let report = verify(&t).await;
        assert!(!report.ok, "a removed row must be detected: {report:?}");
        assert_eq!(report.first_bad_seq, Some(target), "{report:?}");
        assert!(report.problem.as_deref().unwrap().contains("missing"), "{report:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_last_row_is_named() {
    with_loft(|url, t| async move {
        activity(&t).await;
        let len = t.audit_len().await;
        assert_eq!(
            execute(&url, format!("DELETE FROM audit_log WHERE seq = {len}")).await,
            1
        );
        let report = verify(&t).await;
        assert!(!report.ok, "{report:?}");
        assert_eq!(report.first_bad_seq, Some(len), "{report:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_never_reach_the_database() {
    with_loft(|url, t| async move {
        let keys = activity(&t).await;
        let mut conn = PgConnection::connect(&url).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert!(tables.iter().any(|t| t == "audit_log"), "{tables:?}");
        let mut everything = String::new();
        for table in &tables {
            let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!("SELECT t::text FROM \"{table}\" t")))
                .fetch_all(&mut conn)
                .await
                .unwrap();
            everything.extend(rows);
        }
        conn.close().await.unwrap();
        let first = keys[0].strip_prefix("loft_sk_").unwrap().split('_').next().unwrap();
        assert!(
            everything.contains(&format!("key_{first}")),
            "sanity: key ids are stored"
        );
        for key in &keys {
            assert!(!everything.contains(key.as_str()), "an API key is stored in plain text");
            let secret = key.rsplit_once('_').map_or(key.as_str(), |(_, s)| s);
            assert!(!everything.contains(secret), "an API key's secret is stored");
        }
    })
    .await;
}
