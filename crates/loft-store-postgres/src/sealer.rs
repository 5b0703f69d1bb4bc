//! The audit sealer: chains the rows writers left in `audit_pending` onto the audit log.
//!
//! Writers never touch the chain head. Each write transaction inserts its audit entries into
//! `audit_pending` (no sequence number, no hash) and commits; nothing it does waits on another
//! identity's writes. [`seal_pending`] then, in one transaction:
//!
//! 1. takes the transaction-scoped advisory lock [`SEALER_LOCK`], which only sealers take, so
//!    at most one sealer per database works at a time, on whichever node;
//! 2. reads the head (`audit_head`), then up to [`BATCH`] pending rows in `id` order;
//! 3. seals them one after the other with [`AuditRecord::seal`], inserts them into
//!    `audit_log`, deletes them from `audit_pending` and moves the head;
//! 4. commits, and repeats while full batches keep coming.
//!
//! The chain order is the sealing order. A row whose transaction commits late (its `id` lower
//! than rows already sealed) is simply sealed in a later batch: a pending row is only ever
//! visible once committed, and it is moved exactly once, because moving it happens under the
//! lock and deletes it in the same transaction.
//!
//! Who seals, and when:
//! - **Every node runs a sealer task** ([`Sealer::spawn`]). A commit that wrote audit rows
//!   wakes it; it waits [`GATHER`] so that one batch carries many commits, then seals with
//!   `pg_try_advisory_xact_lock`: when another node is sealing, it leaves the rows to that one
//!   and looks again at its next wake-up. Every [`SWEEP`] it also looks for rows left by a
//!   node that stopped before sealing them, so any node takes over from any other.
//! - **Every reader of the chain seals first** (`list_audit`, `audit_after`, `audit_head`,
//!   with the blocking lock): whoever reads the log sees every row committed before the read
//!   began, exactly as when rows were chained at write time. Reads of the audit log are rare
//!   (people, exports, verification); writes are not.
//!
//! So an audit row is unsealed for at most about `GATHER` plus one batch's commit after its
//! write commits while its node runs (or until any node's next sweep if it died), and never
//! when anyone looks. The task reports the delay it saw (from a row's write to its sealing,
//! on the database's clock) in [`SealerStats`] and logs it; a delay over [`SLOW_SEAL`] is a warning.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use loft_core::Result;
use loft_core::audit::{AuditEntry, AuditRecord};
use loft_core::ids::IdentityId;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder, Row as _};
use tokio::sync::Notify;

use crate::db_err;
use crate::rows::{self, col};

/// The advisory lock only sealers take (`LOFTSEAL` in ASCII).
pub(crate) const SEALER_LOCK: i64 = 0x4c4f_4654_5345_414c;
/// Most rows sealed in one transaction (13 parameters each stays far below PostgreSQL's
/// 65,535 bind parameters per statement).
pub(crate) const BATCH: i64 = 500;
/// How long the task lets commits gather after the first wake-up before it seals.
const GATHER: Duration = Duration::from_millis(50);
/// How often the task looks for rows no running node woke it for.
const SWEEP: Duration = Duration::from_secs(5);
/// A sealing delay above this is logged as a warning.
const SLOW_SEAL: Duration = Duration::from_secs(2);

/// The statement that inserts one unsealed entry, given as one JSON parameter ([`pending_json`])
/// numbered `$param`: one parameter, so a writer can put it into a statement of its own as a
/// `WITH` part and write its change and its audit row in one round trip.
macro_rules! insert_pending_sql {
    ($param:literal) => {
        concat!(
            "INSERT INTO audit_pending (at, actor_kind, actor_identity_id, key_id, action, target, outcome, \
             request_id, remote_addr, details, events) \
             SELECT a.at, a.actor_kind, a.actor_identity_id, a.key_id, a.action, a.target, a.outcome, \
             a.request_id, a.remote_addr, a.details, a.events FROM jsonb_to_record(",
            $param,
            "::jsonb) AS a (at bigint, actor_kind text, actor_identity_id text, key_id text, action text, \
             target text, outcome text, request_id text, remote_addr text, details text, events text)"
        )
    };
}
pub(crate) use insert_pending_sql;

/// An entry as the one parameter of [`insert_pending_sql`]. `details` travels as a JSON string
/// holding its `serde_json` text, which `jsonb_to_record` hands back unchanged: the text stored is
/// byte for byte the one that will be hashed.
pub(crate) fn pending_json(e: &AuditEntry) -> Result<String> {
    rows::to_json(&serde_json::json!({
        "at": e.at.as_micros(),
        "actor_kind": e.actor_kind.as_str(),
        "actor_identity_id": e.actor_identity_id.as_ref().map(IdentityId::as_str),
        "key_id": e.key_id,
        "action": e.action,
        "target": e.target,
        "outcome": e.outcome.as_str(),
        "request_id": e.request_id,
        "remote_addr": e.remote_addr,
        "details": rows::to_json(&e.details)?,
        "events": if e.events.is_empty() { None } else { Some(rows::to_json(&e.events)?) },
    }))
}

/// Inserts one unsealed entry; the caller's transaction commits it.
pub(crate) async fn append(conn: &mut PgConnection, e: &AuditEntry) -> Result<()> {
    sqlx::query(insert_pending_sql!("$1"))
        .bind(pending_json(e)?)
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

fn pending_entry(row: &PgRow) -> Result<(i64, AuditEntry)> {
    let id: i64 = col(row, "id")?;
    let mut entry = crate::audit_log::entry(row, "pending audit row", id)?;
    if let Some(events) = col::<Option<String>>(row, "events")? {
        entry.events = serde_json::from_str(&events).map_err(|e| {
            loft_core::Error::internal(format!("pending audit row {id} has events that are not valid: {e}"))
        })?;
    }
    Ok((id, entry))
}

/// Whether to wait for another sealer or leave the work to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Wait for the lock (readers: they must see every committed row).
    Block,
    /// Give up when another sealer holds the lock (the background task).
    Skip,
}

/// What one call sealed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sealed {
    pub rows: u64,
    /// The longest a row waited from its write to its sealing, in microseconds (database clock).
    pub max_delay_micros: u64,
    /// False when another sealer held the lock (only with [`Wait::Skip`]).
    pub locked: bool,
}

/// Seals every pending row committed before the call (see the module docs).
pub(crate) async fn seal_pending(pool: &PgPool, wait: Wait) -> Result<Sealed> {
    let mut total = Sealed {
        locked: true,
        ..Sealed::default()
    };
    // One cheap probe first: most reads of the log find nothing to seal.
    let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM audit_pending)")
        .fetch_one(pool)
        .await
        .map_err(db_err)?;
    if !any {
        return Ok(total);
    }
    loop {
        let batch = seal_batch(pool, wait).await?;
        total.rows += batch.rows;
        total.max_delay_micros = total.max_delay_micros.max(batch.max_delay_micros);
        total.locked = batch.locked;
        if !batch.locked || batch.rows < BATCH as u64 {
            return Ok(total);
        }
    }
}

async fn seal_batch(pool: &PgPool, wait: Wait) -> Result<Sealed> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let locked = match wait {
        Wait::Block => {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(SEALER_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            true
        }
        Wait::Skip => sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(SEALER_LOCK)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?,
    };
    if !locked {
        return Ok(Sealed::default());
    }
    // Under READ COMMITTED each statement sees what committed before it began, so after the
    // lock these read the head the previous sealer left and every row committed since.
    let (mut seq, mut hash): (i64, String) = sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
    let found = sqlx::query(
        "SELECT id, at, actor_kind, actor_identity_id, key_id, action, target, outcome, request_id, remote_addr, \
         details, events, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint - written_at AS waited \
         FROM audit_pending ORDER BY id LIMIT $1",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err)?;
    if found.is_empty() {
        return Ok(Sealed {
            locked: true,
            ..Sealed::default()
        });
    }
    let mut ids = Vec::with_capacity(found.len());
    let mut sealed = Vec::with_capacity(found.len());
    let mut events = Vec::new();
    let mut max_delay_micros = 0u64;
    for row in &found {
        let (id, mut entry) = pending_entry(row)?;
        let raised = std::mem::take(&mut entry.events);
        let waited: i64 = col(row, "waited")?;
        max_delay_micros = max_delay_micros.max(waited.max(0) as u64);
        let record = AuditRecord::seal(entry, seq, &hash);
        seq = record.seq;
        hash.clone_from(&record.hash);
        events.extend(raised.into_iter().map(|e| (record.seq, record.entry.at, e)));
        ids.push(id);
        sealed.push(record);
    }
    insert_sealed(&mut tx, &sealed).await?;
    crate::events::number(&mut tx, events).await?;
    sqlx::query("DELETE FROM audit_pending WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(Sealed {
        rows: sealed.len() as u64,
        max_delay_micros,
        locked: true,
    })
}

async fn insert_sealed(conn: &mut PgConnection, records: &[AuditRecord]) -> Result<()> {
    let mut details = Vec::with_capacity(records.len());
    for r in records {
        details.push(rows::to_json(&r.entry.details)?);
    }
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
        "INSERT INTO audit_log (seq, at, actor_kind, actor_identity_id, key_id, action, target, outcome, \
         request_id, remote_addr, details, prev_hash, hash) ",
    );
    qb.push_values(records.iter().zip(details), |mut b, (r, details)| {
        let e = &r.entry;
        b.push_bind(r.seq)
            .push_bind(e.at.as_micros())
            .push_bind(e.actor_kind.as_str())
            .push_bind(e.actor_identity_id.as_ref().map(|i| i.as_str().to_owned()))
            .push_bind(e.key_id.clone())
            .push_bind(e.action.clone())
            .push_bind(e.target.clone())
            .push_bind(e.outcome.as_str())
            .push_bind(e.request_id.clone())
            .push_bind(e.remote_addr.clone())
            .push_bind(details)
            .push_bind(r.prev_hash.clone())
            .push_bind(r.hash.clone());
    });
    qb.build().execute(conn).await.map_err(db_err)?;
    Ok(())
}

/// What a node's sealer task has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealerStats {
    /// Rows this node's task sealed (readers seal too; those are not counted).
    pub rows: u64,
    /// Batches it committed.
    pub batches: u64,
    /// The longest a row waited from its write to its sealing, in microseconds.
    pub max_delay_micros: u64,
}

#[derive(Debug, Default)]
struct Counters {
    rows: AtomicU64,
    batches: AtomicU64,
    max_delay_micros: AtomicU64,
}

/// A node's sealer task, stopped when the last clone of its store is dropped or closed.
#[derive(Debug)]
pub(crate) struct Sealer {
    wake: Arc<Notify>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sealer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sealer {
    pub(crate) fn spawn(pool: PgPool) -> Self {
        let wake = Arc::new(Notify::new());
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run(pool, Arc::clone(&wake), Arc::clone(&counters)));
        Self { wake, counters, task }
    }

    /// Called after a commit that wrote audit rows.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn stats(&self) -> SealerStats {
        SealerStats {
            rows: self.counters.rows.load(Ordering::Relaxed),
            batches: self.counters.batches.load(Ordering::Relaxed),
            max_delay_micros: self.counters.max_delay_micros.load(Ordering::Relaxed),
        }
    }
}

async fn run(pool: PgPool, wake: Arc<Notify>, counters: Arc<Counters>) {
    let mut retry_soon = false;
    while !pool.is_closed() {
        let wait = if retry_soon { GATHER } else { SWEEP };
        if tokio::time::timeout(wait, wake.notified()).await.is_ok() {
            tokio::time::sleep(GATHER).await;
        }
        if pool.is_closed() {
            break;
        }
        match seal_pending(&pool, Wait::Skip).await {
            Ok(s) => {
                // Another node held the lock: it may stop before it reaches our rows.
                retry_soon = !s.locked;
                if s.rows > 0 {
                    counters.rows.fetch_add(s.rows, Ordering::Relaxed);
                    counters
                        .batches
                        .fetch_add(s.rows.div_ceil(BATCH as u64), Ordering::Relaxed);
                    counters
                        .max_delay_micros
                        .fetch_max(s.max_delay_micros, Ordering::Relaxed);
                    let delay = Duration::from_micros(s.max_delay_micros);
                    if delay > SLOW_SEAL {
                        tracing::warn!(rows = s.rows, ?delay, "audit rows waited long to be sealed");
                    } else {
                        tracing::debug!(rows = s.rows, ?delay, "sealed audit rows");
                    }
                }
            }
            Err(e) => {
                retry_soon = true;
                if !pool.is_closed() {
                    tracing::warn!(error = %e, "sealing the audit log failed; retrying");
                }
            }
        }
    }
}

/// How many audit rows wait to be sealed (diagnostics and tests).
pub(crate) async fn pending_count(pool: &PgPool) -> Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM audit_pending")
        .fetch_one(pool)
        .await
        .map_err(db_err)?;
    row.try_get("n").map_err(db_err)
}
