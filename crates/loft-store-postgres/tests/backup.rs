//! The PostgreSQL backup documented in docs/backup.md, run for real: `pg_dump -Fc` of a live
//! database, `pg_restore` into a fresh one, and Loft on the restored database sees the same
//! identities, mail and vault, with an audit chain that verifies.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test, with its message"
)]

use std::process::Command;
use std::sync::Arc;

use loft_core::service::{ListMessagesParams, StoreCredentialRequest};
use loft_store_postgres::PostgresStore;
use loft_testkit::pg::TestDb;
use loft_testkit::test_loft;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_and_pg_restore_round_trip() {
    let Some(source) = TestDb::create().await else { return };
    let Some(target) = TestDb::create().await else {
        source.drop_db().await;
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("loft.dump");
    let outcome = tokio::spawn({
        let (src, dst, dump) = (source.url.clone(), target.url.clone(), dump.clone());
        async move {
            let store = Arc::new(PostgresStore::connect(&src).await.unwrap());
            let t = test_loft(store.clone());
            let (a, aa) = t.identity("alice").await;
            let (_, ba) = t.identity("bob").await;
            for n in 0..5 {
                t.send(&ba, &[a.identity.address.as_str()], &format!("m{n}"), "x").await;
            }
            t.loft
                .vault_store(
                    &aa,
                    StoreCredentialRequest {
                        name: Some("crm".into()),
                        value: Some("a-long-enough-secret-value".into()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let head = t.loft.audit_head(&t.operator().await).await.unwrap().unwrap();

            // The documented commands, while the source is open (pg_dump reads one snapshot).
            let out = Command::new("pg_dump")
                .args(["--format=custom", "--no-owner", "--file"])
                .arg(&dump)
                .arg(format!("--dbname={src}"))
                .output()
                .expect("pg_dump must be installed next to the PostgreSQL server");
            assert!(
                out.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            store.close().await;
            let out = Command::new("pg_restore")
                .args(["--no-owner", "--exit-on-error"])
                .arg(format!("--dbname={dst}"))
                .arg(&dump)
                .output()
                .expect("pg_restore must be installed next to the PostgreSQL server");
            assert!(
                out.status.success(),
                "pg_restore: {}",
                String::from_utf8_lossy(&out.stderr)
            );

            // Loft on the restored database, with the same vault keyring (the master key is
            // not in the database: it is backed up separately).
            let restored = Arc::new(PostgresStore::connect(&dst).await.unwrap());
            let r = t.another_node(restored.clone());
            let report = r.assert_chain_ok().await;
            assert_eq!(report.head.as_ref().map(|h| h.seq), Some(head.seq));
            assert_eq!(report.head.map(|h| h.hash), Some(head.hash));
            let aa = r.actor(&a.api_key).await;
            assert_eq!(r.all_messages(&aa, ListMessagesParams::default()).await.len(), 5);
            assert!(r.loft.vault_get(&aa, "crm", false).await.is_ok());
            // And it keeps working: new writes chain onto the restored head.
            r.send(&aa, &[a.identity.address.as_str()], "after restore", "x").await;
            r.assert_chain_ok().await;
            restored.close().await;
        }
    })
    .await;
    source.drop_db().await;
    target.drop_db().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
