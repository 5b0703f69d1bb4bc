//! Webhook endpoints and their delivery log (`loft_core::webhooks::WebhookStore`). Changes of
//! settings go through the writer with their audit rows; delivery progress is conditional on
//! the endpoint's job, so a job that lost its endpoint writes nothing.

use loft_core::audit::AuditEntry;
use loft_core::events::Event;
use loft_core::events::EventKind;
use loft_core::ids::{IdentityId, WebhookDeliveryId, WebhookId};
use loft_core::jobs::NewJob;
use loft_core::mail::StorePage;
use loft_core::time::Timestamp;
use loft_core::vault::Sealed;
use loft_core::webhooks::{self as wh, DeliveryState, StoredWebhook, WebhookDelivery, WebhookEndpoint, WebhookStore};
use loft_core::{Error, Result};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::db::{Db, args, at_once};
use crate::error::map_err;
use crate::{audit, page_limit, paged};

const COLS: &str = "seq, id, owner_id, identity_id, url, description, types, enabled, disabled_reason, position, \
    failures, failing_since, job_id, version, created_at, updated_at, secret_ciphertext, secret_nonce, \
    secret_wrapped_key, secret_wrap_nonce, secret_key_id, prev_ciphertext, prev_nonce, prev_wrapped_key, \
    prev_wrap_nonce, prev_key_id, prev_expires_at";

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    id: String,
    owner_id: Option<String>,
    identity_id: Option<String>,
    url: String,
    description: Option<String>,
    types: String,
    enabled: bool,
    disabled_reason: Option<String>,
    position: i64,
    failures: i64,
    failing_since: Option<i64>,
    job_id: Option<i64>,
    version: i64,
    created_at: i64,
    updated_at: i64,
    secret_ciphertext: Vec<u8>,
    secret_nonce: Vec<u8>,
    secret_wrapped_key: Vec<u8>,
    secret_wrap_nonce: Vec<u8>,
    secret_key_id: String,
    prev_ciphertext: Option<Vec<u8>>,
    prev_nonce: Option<Vec<u8>>,
    prev_wrapped_key: Option<Vec<u8>>,
    prev_wrap_nonce: Option<Vec<u8>>,
    prev_key_id: Option<String>,
    prev_expires_at: Option<i64>,
}

impl Row {
    fn into_stored(self) -> Result<StoredWebhook> {
        let previous = match (
            self.prev_ciphertext,
            self.prev_nonce,
            self.prev_wrapped_key,
            self.prev_wrap_nonce,
            self.prev_key_id,
        ) {
            (Some(ciphertext), Some(nonce), Some(wrapped_key), Some(wrap_nonce), Some(master_key_id)) => Some(Sealed {
                ciphertext,
                nonce,
                wrapped_key,
                wrap_nonce,
                master_key_id,
            }),
            _ => None,
        };
        Ok(StoredWebhook {
            endpoint: WebhookEndpoint {
                types: wh::types_from_stored(&self.types, &self.id)?,
                id: WebhookId::from_trusted(self.id),
                owner: self.owner_id.map(IdentityId::from_trusted),
                identity: self.identity_id.map(IdentityId::from_trusted),
                url: self.url,
                description: self.description,
                enabled: self.enabled,
                disabled_reason: self.disabled_reason,
                position: Event::id_for(self.position),
                failures: u32::try_from(self.failures).unwrap_or(u32::MAX),
                failing_since: self.failing_since.map(Timestamp::from_micros),
                previous_secret_expires_at: self.prev_expires_at.map(Timestamp::from_micros),
                created_at: Timestamp::from_micros(self.created_at),
                updated_at: Timestamp::from_micros(self.updated_at),
            },
            position: self.position,
            secret: Sealed {
                ciphertext: self.secret_ciphertext,
                nonce: self.secret_nonce,
                wrapped_key: self.secret_wrapped_key,
                wrap_nonce: self.secret_wrap_nonce,
                master_key_id: self.secret_key_id,
            },
            previous,
            version: self.version,
            job_id: self.job_id,
        })
    }
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    seq: i64,
    id: String,
    webhook_id: String,
    event_seq: i64,
    event_type: String,
    attempt: i64,
    ok: bool,
    status_code: Option<i64>,
    duration_ms: i64,
    error: Option<String>,
    replay: bool,
    at: i64,
}

const DELIVERY_COLS: &str =
    "seq, id, webhook_id, event_seq, event_type, attempt, ok, status_code, duration_ms, error, replay, at";

impl DeliveryRow {
    fn into_delivery(self) -> Result<WebhookDelivery> {
        Ok(WebhookDelivery {
            event_type: EventKind::parse_stored(&self.event_type, self.event_seq)?,
            id: WebhookDeliveryId::from_trusted(self.id),
            webhook_id: WebhookId::from_trusted(self.webhook_id),
            event_id: Event::id_for(self.event_seq),
            attempt: u32::try_from(self.attempt).unwrap_or(u32::MAX),
            ok: self.ok,
            status_code: self.status_code.and_then(|c| u16::try_from(c).ok()),
            duration_ms: u64::try_from(self.duration_ms).unwrap_or(0),
            error: self.error,
            replay: self.replay,
            at: Timestamp::from_micros(self.at),
        })
    }
}

fn event_seq(d: &WebhookDelivery) -> Result<i64> {
    loft_core::events::parse_position(&d.event_id)
}

async fn get(conn: &mut SqliteConnection, id: &WebhookId) -> Result<Option<StoredWebhook>> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM webhooks WHERE id = ?")))
        .bind(id.as_str().to_owned())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    row.map(Row::into_stored).transpose()
}

async fn create(conn: &mut SqliteConnection, w: StoredWebhook, entry: AuditEntry) -> Result<()> {
    let e = &w.endpoint;
    let p = w.previous.as_ref();
    sqlx::query(
        "INSERT INTO webhooks (id, owner_id, identity_id, url, description, types, enabled, disabled_reason, position, \
         failures, failing_since, job_id, version, created_at, updated_at, secret_ciphertext, secret_nonce, \
         secret_wrapped_key, secret_wrap_nonce, secret_key_id, prev_ciphertext, prev_nonce, prev_wrapped_key, \
         prev_wrap_nonce, prev_key_id, prev_expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.id.as_str().to_owned())
    .bind(e.owner.as_ref().map(|i| i.as_str().to_owned()))
    .bind(e.identity.as_ref().map(|i| i.as_str().to_owned()))
    .bind(e.url.clone())
    .bind(e.description.clone())
    .bind(wh::types_to_stored(&e.types))
    .bind(e.enabled)
    .bind(e.disabled_reason.clone())
    .bind(w.position)
    .bind(i64::from(e.failures))
    .bind(e.failing_since.map(Timestamp::as_micros))
    .bind(w.version)
    .bind(e.created_at.as_micros())
    .bind(e.updated_at.as_micros())
    .bind(w.secret.ciphertext.clone())
    .bind(w.secret.nonce.clone())
    .bind(w.secret.wrapped_key.clone())
    .bind(w.secret.wrap_nonce.clone())
    .bind(w.secret.master_key_id.clone())
    .bind(p.map(|s| s.ciphertext.clone()))
    .bind(p.map(|s| s.nonce.clone()))
    .bind(p.map(|s| s.wrapped_key.clone()))
    .bind(p.map(|s| s.wrap_nonce.clone()))
    .bind(p.map(|s| s.master_key_id.clone()))
    .bind(e.previous_secret_expires_at.map(Timestamp::as_micros))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    audit::append(conn, entry).await?;
    Ok(())
}

async fn update(conn: &mut SqliteConnection, w: StoredWebhook, expected: i64, entry: AuditEntry) -> Result<()> {
    let e = &w.endpoint;
    let p = w.previous.as_ref();
    // Re-enabling lets go of a job waiting out a long retry: a fresh one is queued at once.
    let n = sqlx::query(
        "UPDATE webhooks SET url = ?, description = ?, types = ?, \
         job_id = CASE WHEN enabled = 0 AND ? = 1 THEN NULL ELSE job_id END, \
         enabled = ?, disabled_reason = ?, failures = ?, failing_since = ?, updated_at = ?, \
         secret_ciphertext = ?, secret_nonce = ?, secret_wrapped_key = ?, secret_wrap_nonce = ?, secret_key_id = ?, \
         prev_ciphertext = ?, prev_nonce = ?, prev_wrapped_key = ?, prev_wrap_nonce = ?, prev_key_id = ?, \
         prev_expires_at = ?, version = version + 1 WHERE id = ? AND version = ?",
    )
    .bind(e.url.clone())
    .bind(e.description.clone())
    .bind(wh::types_to_stored(&e.types))
    .bind(e.enabled)
    .bind(e.enabled)
    .bind(e.disabled_reason.clone())
    .bind(i64::from(e.failures))
    .bind(e.failing_since.map(Timestamp::as_micros))
    .bind(e.updated_at.as_micros())
    .bind(w.secret.ciphertext.clone())
    .bind(w.secret.nonce.clone())
    .bind(w.secret.wrapped_key.clone())
    .bind(w.secret.wrap_nonce.clone())
    .bind(w.secret.master_key_id.clone())
    .bind(p.map(|s| s.ciphertext.clone()))
    .bind(p.map(|s| s.nonce.clone()))
    .bind(p.map(|s| s.wrapped_key.clone()))
    .bind(p.map(|s| s.wrap_nonce.clone()))
    .bind(p.map(|s| s.master_key_id.clone()))
    .bind(e.previous_secret_expires_at.map(Timestamp::as_micros))
    .bind(e.id.as_str().to_owned())
    .bind(expected)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?
    .rows_affected();
    if n == 0 {
        return Err(if get(conn, &e.id).await?.is_some() {
            wh_conflict()
        } else {
            Error::not_found("webhook")
        });
    }
    audit::append(conn, entry).await?;
    Ok(())
}

fn wh_conflict() -> Error {
    Error::conflict("version_conflict", "the webhook changed since it was read").with_hint("read it again and retry")
}

async fn delete(conn: &mut SqliteConnection, id: WebhookId, entry: AuditEntry) -> Result<()> {
    let n = sqlx::query("DELETE FROM webhooks WHERE id = ?")
        .bind(id.as_str().to_owned())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected();
    if n == 0 {
        return Err(Error::not_found("webhook"));
    }
    sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = ?")
        .bind(id.as_str().to_owned())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    audit::append(conn, entry).await?;
    Ok(())
}

/// Enabled endpoints of an active, unpaused owner (or the operator) with no delivery job and
/// events waiting for them.
const DUE: &str = "SELECT w.id, w.owner_id FROM webhooks w WHERE w.enabled = 1 AND w.job_id IS NULL \
           AND (w.owner_id IS NULL OR EXISTS (SELECT 1 FROM identities i WHERE i.id = w.owner_id \
             AND i.status = 'active' AND i.paused_at IS NULL)) AND EXISTS ( \
         SELECT 1 FROM events e WHERE e.seq > w.position \
           AND (w.identity_id IS NULL OR e.identity_id = w.identity_id) \
           AND (w.types = '' OR instr(w.types, ',' || e.kind || ',') > 0)) \
     ORDER BY w.seq";

async fn queue_due(conn: &mut impl Db, job: NewJob) -> Result<u32> {
    let due: Vec<(String, Option<String>)> = conn.all(DUE, &[]).await?;
    let mut n = 0;
    for (id, owner) in due {
        let job = NewJob {
            payload: wh::job_payload(&WebhookId::from_trusted(id.clone())),
            owner: owner.map(IdentityId::from_trusted),
            ..job.clone()
        };
        let job_id = crate::jobs::insert(conn, &job).await?;
        conn.exec(
            "UPDATE webhooks SET job_id = ? WHERE id = ? AND job_id IS NULL",
            &args![job_id, id],
        )
        .await?;
        n += 1;
    }
    Ok(n)
}

async fn insert_delivery(conn: &mut impl Db, d: &WebhookDelivery) -> Result<()> {
    conn.exec(
        "INSERT INTO webhook_deliveries (id, webhook_id, event_seq, event_type, attempt, ok, status_code, \
         duration_ms, error, replay, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &args![
            d.id.as_str().to_owned(),
            d.webhook_id.as_str().to_owned(),
            event_seq(d)?,
            d.event_type.as_str(),
            i64::from(d.attempt),
            d.ok,
            d.status_code.map(i64::from),
            i64::try_from(d.duration_ms).unwrap_or(i64::MAX),
            d.error.clone(),
            d.replay,
            d.at.as_micros()
        ],
    )
    .await?;
    // The log keeps the endpoint's newest `DELIVERY_LOG_KEEP` (an index walk of that many rows
    // back from the newest, beside the HTTP request the delivery was).
    conn.exec(
        "DELETE FROM webhook_deliveries WHERE webhook_id = ?1 AND seq <= (SELECT seq FROM webhook_deliveries \
         WHERE webhook_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
        &args![d.webhook_id.as_str().to_owned(), i64::from(wh::DELIVERY_LOG_KEEP)],
    )
    .await?;
    Ok(())
}

async fn progress(
    conn: &mut impl Db,
    id: WebhookId,
    job_id: i64,
    delivery: Option<WebhookDelivery>,
    state: DeliveryState,
) -> Result<bool> {
    let n = conn
        .exec(
            "UPDATE webhooks SET position = ?, failures = ?, failing_since = ? WHERE id = ? AND job_id = ?",
            &args![
                state.position,
                i64::from(state.failures),
                state.failing_since.map(Timestamp::as_micros),
                id.as_str().to_owned(),
                job_id
            ],
        )
        .await?
        .rows;
    if n == 0 {
        return Ok(false);
    }
    if let Some(d) = delivery {
        insert_delivery(conn, &d).await?;
    }
    Ok(true)
}

async fn disable(
    conn: &mut impl Db,
    id: WebhookId,
    job_id: i64,
    reason: String,
    at: Timestamp,
    entry: AuditEntry,
) -> Result<bool> {
    let n = conn.exec(
        "UPDATE webhooks SET enabled = 0, disabled_reason = ?, job_id = NULL, version = version + 1, updated_at = ? \
         WHERE id = ? AND job_id = ?",
        &args![reason, at.as_micros(), id.as_str().to_owned(), job_id],
    )
    .await?
    .rows;
    if n == 0 {
        return Ok(false);
    }
    audit::append(conn, entry).await?;
    Ok(true)
}

async fn rewrap(conn: &mut SqliteConnection, batch: Vec<(StoredWebhook, i64)>, entry: AuditEntry) -> Result<u64> {
    let mut written = 0;
    for (w, expected) in batch {
        let p = w.previous.as_ref();
        written += sqlx::query(
            "UPDATE webhooks SET secret_ciphertext = ?, secret_nonce = ?, secret_wrapped_key = ?, secret_wrap_nonce = ?, \
             secret_key_id = ?, prev_ciphertext = ?, prev_nonce = ?, prev_wrapped_key = ?, prev_wrap_nonce = ?, \
             prev_key_id = ?, version = version + 1 WHERE id = ? AND version = ?",
        )
        .bind(w.secret.ciphertext.clone())
        .bind(w.secret.nonce.clone())
        .bind(w.secret.wrapped_key.clone())
        .bind(w.secret.wrap_nonce.clone())
        .bind(w.secret.master_key_id.clone())
        .bind(p.map(|s| s.ciphertext.clone()))
        .bind(p.map(|s| s.nonce.clone()))
        .bind(p.map(|s| s.wrapped_key.clone()))
        .bind(p.map(|s| s.wrap_nonce.clone()))
        .bind(p.map(|s| s.master_key_id.clone()))
        .bind(w.endpoint.id.as_str().to_owned())
        .bind(expected)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected();
    }
    audit::append(conn, entry).await?;
    Ok(written)
}

#[async_trait::async_trait]
impl WebhookStore for crate::SqliteStore {
    async fn webhook_create(&self, webhook: StoredWebhook, audit: AuditEntry) -> Result<()> {
        self.write(move |c| Box::pin(self::create(c, webhook, audit))).await
    }

    async fn webhook_get(&self, id: &WebhookId) -> Result<Option<StoredWebhook>> {
        let mut tx = self.reading().await?;
        let out = self::get(&mut tx, id).await;
        crate::done(tx, out).await
    }

    async fn webhook_list(
        &self,
        owner: Option<&IdentityId>,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<StorePage<WebhookEndpoint>> {
        let limit = page_limit(limit);
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(format!("SELECT {COLS} FROM webhooks WHERE 1 = 1"));
        if let Some(o) = owner {
            sql.push(" AND owner_id = ").push_bind(o.as_str().to_owned());
        }
        if let Some(b) = before_seq {
            sql.push(" AND seq < ").push_bind(b);
        }
        sql.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(limit) + 1);
        let mut tx = self.reading().await?;
        let rows: Result<Vec<Row>> = sql.build_query_as().fetch_all(&mut *tx).await.map_err(map_err);
        let rows = crate::done(tx, rows).await?;
        let page = paged(rows, limit, |r| r.seq);
        Ok(StorePage {
            items: page
                .items
                .into_iter()
                .map(|r| r.into_stored().map(|w| w.endpoint))
                .collect::<Result<_>>()?,
            next_before: page.next_before,
        })
    }

    async fn webhook_count(&self, owner: Option<&IdentityId>) -> Result<u64> {
        let mut tx = self.reading().await?;
        let out = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM webhooks WHERE COALESCE(owner_id, '') = ?")
            .bind(owner.map_or_else(String::new, |o| o.as_str().to_owned()))
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err);
        Ok(u64::try_from(crate::done(tx, out).await?).unwrap_or(0))
    }

    async fn webhook_update(&self, webhook: StoredWebhook, expected_version: i64, audit: AuditEntry) -> Result<()> {
        self.write(move |c| Box::pin(self::update(c, webhook, expected_version, audit)))
            .await
    }

    async fn webhook_delete(&self, id: &WebhookId, audit: AuditEntry) -> Result<()> {
        let id = id.clone();
        self.write(move |c| Box::pin(self::delete(c, id, audit))).await
    }

    async fn webhook_queue_due(&self, job: NewJob) -> Result<u32> {
        // Called after every event: a look on a read connection first spares the writer a
        // transaction when no endpoint has anything waiting (the usual case). The writer's
        // query decides; events that become visible after the look trigger another call.
        let any_due = self
            .hot(crate::hot::Cost::Short, |c| {
                c.prepare_cached(DUE)
                    .and_then(|mut st| st.exists([]))
                    .map_err(crate::error::map_rusqlite)
            })
            .await?;
        if !any_due {
            return Ok(0);
        }
        self.write_native(move |c| at_once(self::queue_due(c, job))).await
    }

    async fn webhook_progress(
        &self,
        id: &WebhookId,
        job_id: i64,
        delivery: Option<WebhookDelivery>,
        state: DeliveryState,
    ) -> Result<bool> {
        let id = id.clone();
        self.write_native(move |c| at_once(self::progress(c, id, job_id, delivery, state)))
            .await
    }

    async fn webhook_release(&self, id: &WebhookId, job_id: i64) -> Result<bool> {
        let id = id.as_str().to_owned();
        self.write_native(move |c| {
            at_once(c.exec(
                "UPDATE webhooks SET job_id = NULL WHERE id = ? AND job_id = ?",
                &args![id, job_id],
            ))
            .map(|done| done.rows > 0)
        })
        .await
    }

    async fn webhook_disable(
        &self,
        id: &WebhookId,
        job_id: i64,
        reason: String,
        at: Timestamp,
        audit: AuditEntry,
    ) -> Result<bool> {
        let id = id.clone();
        self.write_native(move |c| at_once(self::disable(c, id, job_id, reason, at, audit)))
            .await
    }

    async fn webhook_log(&self, delivery: WebhookDelivery, audit: AuditEntry) -> Result<()> {
        self.write_native(move |c| {
            at_once(async move {
                insert_delivery(c, &delivery).await?;
                audit::append(c, audit).await?;
                Ok(())
            })
        })
        .await
    }

    async fn webhook_deliveries(
        &self,
        id: &WebhookId,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<StorePage<WebhookDelivery>> {
        let limit = page_limit(limit);
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE webhook_id = "
        ));
        sql.push_bind(id.as_str().to_owned());
        if let Some(b) = before_seq {
            sql.push(" AND seq < ").push_bind(b);
        }
        sql.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(limit) + 1);
        let mut tx = self.reading().await?;
        let rows: Result<Vec<DeliveryRow>> = sql.build_query_as().fetch_all(&mut *tx).await.map_err(map_err);
        let rows = crate::done(tx, rows).await?;
        let page = paged(rows, limit, |r| r.seq);
        Ok(StorePage {
            items: page
                .items
                .into_iter()
                .map(DeliveryRow::into_delivery)
                .collect::<Result<_>>()?,
            next_before: page.next_before,
        })
    }

    async fn webhook_delivery(&self, id: &WebhookId, delivery: &WebhookDeliveryId) -> Result<Option<WebhookDelivery>> {
        let mut tx = self.reading().await?;
        let row: Result<Option<DeliveryRow>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE webhook_id = ? AND id = ?"
        )))
        .bind(id.as_str().to_owned())
        .bind(delivery.as_str().to_owned())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err);
        crate::done(tx, row).await?.map(DeliveryRow::into_delivery).transpose()
    }

    async fn webhook_stale(&self, current_key_id: &str, limit: u32) -> Result<Vec<StoredWebhook>> {
        let mut tx = self.reading().await?;
        let rows: Result<Vec<Row>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM webhooks WHERE secret_key_id <> ?1 OR (prev_key_id IS NOT NULL AND prev_key_id <> ?1) \
             ORDER BY seq LIMIT ?2"
        )))
        .bind(current_key_id.to_owned())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err);
        crate::done(tx, rows).await?.into_iter().map(Row::into_stored).collect()
    }

    async fn webhook_rewrap(&self, batch: Vec<(StoredWebhook, i64)>, audit: AuditEntry) -> Result<u64> {
        self.write(move |c| Box::pin(self::rewrap(c, batch, audit))).await
    }
}
