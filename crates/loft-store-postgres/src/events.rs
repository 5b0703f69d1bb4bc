//! Events: numbered by the sealer, read back in number order, and announced to every node.
//!
//! A writer leaves a change's events on its `audit_pending` row (see `sealer::append`). The
//! sealer, under its lock, numbers them after the highest number given so far ([`number`]),
//! inserts them into `events` and, in the same transaction, `NOTIFY loft_events`: the
//! notification is delivered when (and only if) that transaction commits. Numbers are thus
//! committed in order and a reader that saw event n and asks for what follows misses none.
//!
//! Each node holds one listening connection ([`Listener`]). On a notification, or after its
//! connection came back (notifications sent meanwhile are lost, so it looks anyway), it reads
//! the numbers and owners of the events it has not announced yet, one query per batch however
//! many streams and waiters the node serves, and broadcasts an [`EventSignal`].

use loft_core::Result;
use loft_core::events::{Event, EventKind, EventQuery, EventSignal, EventStore, NewEvent};
use loft_core::ids::IdentityId;
use loft_core::time::Timestamp;
use sqlx::postgres::{PgConnection, PgListener, PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder};
use tokio::sync::broadcast;

use crate::db_err;
use crate::rows::{self, col};

/// The channel sealers notify after numbering events.
const CHANNEL: &str = "loft_events";
/// Most signals a slow subscriber may lag behind before it is told to look at everything.
const SIGNAL_BUFFER: usize = 1024;
/// Most events one catch-up read announces; more are read in further rounds.
const CATCH_UP: i64 = 5_000;

/// Numbers `events` (audit seq, time, event) after the last one and inserts them; notifies
/// the nodes on commit. Runs in the sealer's transaction, under its lock.
pub(crate) async fn number(conn: &mut PgConnection, events: Vec<(i64, Timestamp, NewEvent)>) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    let mut payloads = Vec::with_capacity(events.len());
    for (_, _, e) in &events {
        payloads.push(rows::to_json(&e.payload)?);
    }
    let upto = last + events.len() as i64;
    // 6 parameters each: chunks of 5,000 stay far below the 65,535 a statement may bind.
    let numbered: Vec<_> = events.iter().zip(payloads).enumerate().collect();
    for chunk in numbered.chunks(5_000) {
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new("INSERT INTO events (seq, at, kind, identity_id, audit_seq, payload) ");
        qb.push_values(chunk, |mut b, (n, ((audit_seq, at, e), payload))| {
            b.push_bind(last + 1 + *n as i64)
                .push_bind(at.as_micros())
                .push_bind(e.kind.as_str())
                .push_bind(e.identity.as_ref().map(|i| i.as_str().to_owned()))
                .push_bind(*audit_seq)
                .push_bind(payload.clone());
        });
        qb.build().execute(&mut *conn).await.map_err(db_err)?;
    }
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(upto.to_string())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

fn event(row: &PgRow) -> Result<Event> {
    let seq: i64 = col(row, "seq")?;
    let kind: String = col(row, "kind")?;
    Ok(Event {
        id: Event::id_for(seq),
        seq,
        kind: EventKind::parse_stored(&kind, seq)?,
        at: rows::ts(row, "at")?,
        identity: col::<Option<String>>(row, "identity_id")?.map(IdentityId::from_trusted),
        audit_seq: col(row, "audit_seq")?,
        payload: rows::json_col(row, "payload")?,
    })
}

/// The listening task of a node, stopped when the store's last clone is dropped.
#[derive(Debug)]
pub(crate) struct Listener {
    signals: broadcast::Sender<EventSignal>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Starts listening before it returns, so that no event numbered after `connect` returns
    /// goes unannounced.
    pub(crate) async fn spawn(pool: PgPool) -> Result<Self> {
        let mut listener = PgListener::connect_with(&pool).await.map_err(db_err)?;
        listener.listen(CHANNEL).await.map_err(db_err)?;
        let seen: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&pool)
            .await
            .map_err(db_err)?;
        let (signals, _) = broadcast::channel(SIGNAL_BUFFER);
        let task = tokio::spawn(run(pool, listener, signals.clone(), seen));
        Ok(Self { signals, task })
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<EventSignal> {
        self.signals.subscribe()
    }
}

async fn run(pool: PgPool, mut listener: PgListener, signals: broadcast::Sender<EventSignal>, mut seen: i64) {
    loop {
        match listener.try_recv().await {
            // A notification, or a connection that came back: either way, look.
            Ok(_) => {}
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "listening for events failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
        // Announce everything numbered since the last look, in rounds.
        loop {
            match catch_up(&pool, seen).await {
                Ok((upto, identities, full)) if upto > seen => {
                    seen = upto;
                    // No receiver yet is fine: the signal only says "look again".
                    let _ = signals.send(EventSignal {
                        upto,
                        identities: Some(identities),
                    });
                    if !full {
                        break;
                    }
                }
                Ok(_) => break,
                Err(e) => {
                    if pool.is_closed() {
                        return;
                    }
                    tracing::warn!(error = %e, "reading new events failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// The highest number above `seen`, the owners of the events up to it, and whether the read
/// was a full round (more may follow).
async fn catch_up(pool: &PgPool, seen: i64) -> Result<(i64, Vec<IdentityId>, bool)> {
    let rows: Vec<(i64, Option<String>)> =
        sqlx::query_as("SELECT seq, identity_id FROM events WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(seen)
            .bind(CATCH_UP)
            .fetch_all(pool)
            .await
            .map_err(db_err)?;
    let full = rows.len() as i64 >= CATCH_UP;
    let upto = rows.last().map_or(seen, |r| r.0);
    let mut ids: Vec<IdentityId> = rows
        .into_iter()
        .filter_map(|r| r.1.map(IdentityId::from_trusted))
        .collect();
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids.dedup();
    Ok((upto, ids, full))
}

#[async_trait::async_trait]
impl EventStore for crate::PostgresStore {
    // Like every reader of the audit chain, readers of events seal first: they see every
    // event whose write committed before the read, numbered (and a stream woken by a write on
    // this node need not wait for the sealer task).
    async fn events_after(&self, q: EventQuery) -> Result<Vec<Event>> {
        crate::sealer::seal_pending(&self.pool, crate::sealer::Wait::Block).await?;
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new("SELECT seq, at, kind, identity_id, audit_seq, payload FROM events WHERE seq > ");
        qb.push_bind(q.after);
        if let Some(id) = &q.identity {
            qb.push(" AND identity_id = ").push_bind(id.as_str().to_owned());
        }
        if !q.kinds.is_empty() {
            let kinds: Vec<&str> = q.kinds.iter().map(|k| k.as_str()).collect();
            qb.push(" AND kind = ANY(").push_bind(kinds).push(")");
        }
        qb.push(" ORDER BY seq LIMIT ")
            .push_bind(i64::from(q.limit.min(10_000)));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(event).collect()
    }

    async fn latest_event_seq(&self) -> Result<i64> {
        crate::sealer::seal_pending(&self.pool, crate::sealer::Wait::Block).await?;
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }

    fn event_signals(&self) -> Option<broadcast::Receiver<EventSignal>> {
        Some(self.listener.subscribe())
    }
}
