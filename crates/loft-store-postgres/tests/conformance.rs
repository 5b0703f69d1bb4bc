//! The storage conformance suite (`loft_testkit::conformance`) on PostgreSQL: every case in a
//! fresh database (`loft_testkit::pg::TestDb`), dropped afterwards. Without a reachable server
//! the cases warn loudly and pass outside CI, and fail in CI.

use std::sync::Arc;

use loft_store_postgres::PostgresStore;
use loft_testkit::conformance::{Cleanup, Fixture};
use loft_testkit::pg::TestDb;

async fn fresh() -> Fixture {
    let db = TestDb::create().await?;
    match PostgresStore::connect(&db.url).await {
        Ok(store) => Some((Arc::new(store), Cleanup::new(db.drop_db()))),
        Err(e) => {
            let name = db.name.clone();
            db.drop_db().await;
            panic!("connecting a PostgresStore to the fresh database {name} failed: {e:?}");
        }
    }
}

loft_testkit::conformance_tests!(fresh());
