//! Events: inserted with the audit row that carries them (always in the writer's
//! transaction), read back in number order.

use loft_core::Result;
use loft_core::events::{Event, EventKind, EventQuery, EventStore, NewEvent};
use loft_core::ids::IdentityId;
use loft_core::time::Timestamp;
use sqlx::{QueryBuilder, Row as _, Sqlite, SqliteConnection};

use crate::db::{Db, args};
use crate::error::map_err;
use crate::rows::to_json;

/// Inserts the events of the audit row `audit_seq` (written at `at`).
pub(crate) async fn insert(conn: &mut impl Db, events: &[NewEvent], at: Timestamp, audit_seq: i64) -> Result<()> {
    for e in events {
        conn.exec(
            "INSERT INTO events (at, kind, identity_id, audit_seq, payload) VALUES (?, ?, ?, ?, ?)",
            &args![
                at.as_micros(),
                e.kind.as_str(),
                e.identity.as_ref().map(|i| i.as_str().to_owned()),
                audit_seq,
                to_json(&e.payload, "payload")?
            ],
        )
        .await?;
    }
    Ok(())
}

async fn after(conn: &mut SqliteConnection, q: &EventQuery) -> Result<Vec<Event>> {
    let mut sql: QueryBuilder<Sqlite> =
        QueryBuilder::new("SELECT seq, at, kind, identity_id, audit_seq, payload FROM events WHERE seq > ");
    sql.push_bind(q.after);
    if let Some(id) = &q.identity {
        sql.push(" AND identity_id = ").push_bind(id.as_str().to_owned());
    }
    if !q.kinds.is_empty() {
        sql.push(" AND kind IN (");
        let mut list = sql.separated(", ");
        for k in &q.kinds {
            list.push_bind(k.as_str());
        }
        sql.push(")");
    }
    sql.push(" ORDER BY seq LIMIT ")
        .push_bind(i64::from(q.limit.min(crate::MAX_LIMIT)));
    let rows = sql.build().fetch_all(&mut *conn).await.map_err(map_err)?;
    rows.iter()
        .map(|r| {
            let seq: i64 = r.try_get("seq").map_err(map_err)?;
            let kind: String = r.try_get("kind").map_err(map_err)?;
            let payload: String = r.try_get("payload").map_err(map_err)?;
            Ok(Event {
                id: Event::id_for(seq),
                seq,
                kind: EventKind::parse_stored(&kind, seq)?,
                at: Timestamp::from_micros(r.try_get("at").map_err(map_err)?),
                identity: r
                    .try_get::<Option<String>, _>("identity_id")
                    .map_err(map_err)?
                    .map(IdentityId::from_trusted),
                audit_seq: r.try_get("audit_seq").map_err(map_err)?,
                payload: serde_json::from_str(&payload).map_err(|e| {
                    loft_core::Error::internal(format!("event {seq} has a payload that is not JSON: {e}"))
                })?,
            })
        })
        .collect()
}

#[async_trait::async_trait]
impl EventStore for crate::SqliteStore {
    async fn events_after(&self, query: EventQuery) -> Result<Vec<Event>> {
        let mut tx = self.reading().await?;
        let out = self::after(&mut tx, &query).await;
        crate::done(tx, out).await
    }

    async fn latest_event_seq(&self) -> Result<i64> {
        let mut tx = self.reading().await?;
        let out = sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err);
        crate::done(tx, out).await
    }
}
