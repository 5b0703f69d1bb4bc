//! The storage conformance suite (`loft_testkit::conformance`) on SQLite: every case on a
//! fresh database file in its own temporary directory.

use std::sync::Arc;

use loft_store_sqlite::SqliteStore;
use loft_testkit::conformance::{Cleanup, Fixture};

async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let store = SqliteStore::open(&dir.path().join("loft.db"))
        .await
        .unwrap_or_else(|e| panic!("opening a fresh SQLite store failed: {e:?}"));
    Some((Arc::new(store), Cleanup::keep(dir)))
}

loft_testkit::conformance_tests!(fresh());
