//! No plaintext vault secret reaches PostgreSQL: a unique marker stored in every secret field
//! kind is searched for in a `pg_dump` of the test database (and, where `pg_dump` is missing,
//! in every row of every table read as text).

#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test, with its message"
)]

use std::sync::Arc;

use loft_core::service::{ListCredentialsParams, StoreCredentialRequest};
use loft_store_postgres::PostgresStore;
use loft_testkit::pg::with_test_db;
use loft_testkit::test_loft;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection, Row as _};

const MARKER: &str = "pg-vault-marker-5e1f0a77";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_secret_in_the_database() {
    with_test_db(|url| async move {
        let store = PostgresStore::connect(&url).await.unwrap();
        let t = test_loft(Arc::new(store.clone()));
        let (_, a) = t.identity("alpha").await;
        t.loft
            .vault_store(
                &a,
                StoreCredentialRequest {
                    label: Some("crm".into()),
                    value: Some(MARKER.into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        t.loft
            .vault_store(
                &a,
                StoreCredentialRequest {
                    name: Some("site".into()),
                    kind: Some("login".into()),
                    username: Some("bob".into()),
                    password: Some(format!("{MARKER}-pw")),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let _ = t.loft.vault_get(&a, "crm", true).await;
        let _ = t.loft.vault_list(&a, ListCredentialsParams::default()).await.unwrap();

        // pg_dump of the whole test database.
        let dump = std::process::Command::new("pg_dump")
            .arg("--data-only")
            .arg(&url)
            .output();
        // pg_dump is part of the PostgreSQL client tools CI installs; where it is missing the
        // table scan below still runs.
        if let Ok(out) = dump {
            assert!(
                out.status.success(),
                "pg_dump failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("vault_items"), "the dump has no vault rows");
            assert!(!text.contains(MARKER), "pg_dump holds the plaintext secret");
        }
        // And every table as text, bytea included (hex of the marker too).
        let mut conn = PgConnection::connect(&url).await.unwrap();
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let hex_marker: String = MARKER
            .bytes()
            .flat_map(|b| [b >> 4, b & 15])
            .map(|n| char::from_digit(u32::from(n), 16).unwrap())
            .collect();
        for table in tables {
            let rows = sqlx::query(AssertSqlSafe(format!("SELECT t::text AS row FROM \"{table}\" t")))
                .fetch_all(&mut conn)
                .await
                .unwrap();
            for r in rows {
                let row: String = r.get("row");
                assert!(!row.contains(MARKER), "{table} holds the plaintext secret");
                assert!(
                    !row.contains(&hex_marker),
                    "{table} holds the plaintext secret as bytes"
                );
            }
        }
        conn.close().await.unwrap();
        store.close().await;
    })
    .await;
}
