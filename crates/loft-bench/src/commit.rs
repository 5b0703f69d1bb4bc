//! The floor under a delivery: one single-row commit on the same database, measured in the
//! same run (issue 14 sets PostgreSQL's delivery p99 against it: at most 3 times).
//!
//! PostgreSQL: one connection of the same driver the server uses (sqlx), a table of its own in
//! the benchmark's fresh database, and per sample one `INSERT` of a 2 KiB row in its own
//! transaction (autocommit: one round trip, one WAL flush), the same as `pgbench -n -c1` with a
//! one-insert script. SQLite: a file of its own beside the benchmark's database, in WAL mode with
//! `synchronous=FULL` as Loft runs it, one `INSERT` per transaction through rusqlite.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::Connection as _;

use crate::report::Stats;

/// The row each sample writes: the size of a small mail.
const ROW_BYTES: usize = 2048;

/// `samples` single-row commits after `warmup` unmeasured ones.
pub async fn pg(url: &str, warmup: u32, samples: u32) -> Result<Stats, String> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| format!("commit baseline: connecting: {e}"))?;
    sqlx::query("CREATE TABLE bench_commit (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body TEXT NOT NULL)")
        .execute(&mut conn)
        .await
        .map_err(|e| format!("commit baseline: creating its table: {e}"))?;
    let body = "x".repeat(ROW_BYTES);
    let mut taken = Vec::with_capacity(samples as usize);
    for i in 0..warmup + samples {
        let start = Instant::now();
        sqlx::query("INSERT INTO bench_commit (body) VALUES ($1)")
            .bind(&body)
            .execute(&mut conn)
            .await
            .map_err(|e| format!("commit baseline: insert: {e}"))?;
        if i >= warmup {
            taken.push(start.elapsed());
        }
    }
    let _ = conn.close().await;
    Ok(Stats::of(&mut taken))
}

/// The same on a new SQLite file in `dir` (removed afterwards with the benchmark's data dir).
pub fn sqlite(dir: &Path, warmup: u32, samples: u32) -> Result<Stats, String> {
    let err = |e: rusqlite::Error| format!("commit baseline (sqlite): {e}");
    let conn = rusqlite::Connection::open(dir.join("commit-baseline.db")).map_err(err)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
         CREATE TABLE bench_commit (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
    )
    .map_err(err)?;
    let body = "x".repeat(ROW_BYTES);
    let mut insert = conn
        .prepare("INSERT INTO bench_commit (body) VALUES (?1)")
        .map_err(err)?;
    let mut taken: Vec<Duration> = Vec::with_capacity(samples as usize);
    for i in 0..warmup + samples {
        let start = Instant::now();
        insert.execute([&body]).map_err(err)?;
        if i >= warmup {
            taken.push(start.elapsed());
        }
    }
    Ok(Stats::of(&mut taken))
}
