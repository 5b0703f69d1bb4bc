//! Sending controls: the instance's caps, the counts the caps are checked against, and each
//! identity's contacts (see `loft_core::caps`).
//!
//! The counts read only the window's entries: sender copies through the partial indexes
//! `messages_composed_by_owner_idx` / `messages_composed_idx` (`messages.composed_at`, set on
//! sender copies only), first contacts through `contacts_first_sent_idx` /
//! `contacts_first_sent_time_idx` (migration `caps_contacts`). Mail over a cap is never written,
//! so a window holds about the cap's worth of entries whatever the size of the mailbox.

use loft_core::address::EmailAddress;
use loft_core::audit::AuditEntry;
use loft_core::caps::{CapCounter, CapWindow, ContactTouch, Correspondence, SendCaps};
use loft_core::ids::IdentityId;
use loft_core::time::Timestamp;
use loft_core::{Error, Result};
use sqlx::postgres::{PgConnection, PgPool};

use crate::rows::{cap, cap_col};
use crate::{WriteTx, db_err};

/// Inserts or merges contact rows (earliest first times, latest `last_at`) in one statement,
/// in (identity, address) order: every writer takes these row locks last in its transaction
/// and in this order, so two transactions cannot deadlock on them.
pub(crate) async fn touch_contacts(conn: &mut PgConnection, touches: &[ContactTouch]) -> Result<()> {
    if touches.is_empty() {
        return Ok(());
    }
    let identities: Vec<&str> = touches.iter().map(|t| t.identity.as_str()).collect();
    let addresses: Vec<&str> = touches.iter().map(|t| t.address.as_str()).collect();
    let sent: Vec<Option<i64>> = touches.iter().map(|t| t.sent_at.map(Timestamp::as_micros)).collect();
    let received: Vec<Option<i64>> = touches
        .iter()
        .map(|t| t.received_at.map(Timestamp::as_micros))
        .collect();
    let at: Vec<i64> = touches.iter().map(|t| t.at.as_micros()).collect();
    sqlx::query(
        "INSERT INTO contacts (identity_id, address, first_sent_at, first_received_at, last_at) \
         SELECT i, a, s, r, t FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) \
             AS u (i, a, s, r, t) ORDER BY i, a \
         ON CONFLICT (identity_id, address) DO UPDATE SET \
             first_sent_at = LEAST(contacts.first_sent_at, EXCLUDED.first_sent_at), \
             first_received_at = LEAST(contacts.first_received_at, EXCLUDED.first_received_at), \
             last_at = GREATEST(contacts.last_at, EXCLUDED.last_at)",
    )
    .bind(identities)
    .bind(addresses)
    .bind(sent)
    .bind(received)
    .bind(at)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn set_instance_caps(pool: &PgPool, caps: SendCaps, audit: AuditEntry) -> Result<()> {
    let mut w = WriteTx::begin(pool).await?;
    sqlx::query(
        "UPDATE instance_state SET cap_mails_per_hour = $1, cap_mails_per_day = $2, cap_new_recipients_per_day = $3 \
         WHERE id = 1",
    )
    .bind(cap_col(caps.mails_per_hour))
    .bind(cap_col(caps.mails_per_day))
    .bind(cap_col(caps.new_recipients_per_day))
    .execute(w.conn())
    .await
    .map_err(db_err)?;
    w.audit(audit).await?;
    w.commit().await
}

/// The rows a counter counts (`$1` the identity where per identity, the window's start next)
/// and their time column.
fn source(counter: CapCounter, per_identity: bool) -> (&'static str, &'static str) {
    match (counter, per_identity) {
        (CapCounter::Mails, true) => ("messages WHERE owner_id = $1 AND composed_at > $2", "composed_at"),
        (CapCounter::Mails, false) => ("messages WHERE composed_at > $1", "composed_at"),
        (CapCounter::NewRecipients, true) => (
            "contacts WHERE identity_id = $1 AND first_sent_at > $2",
            "first_sent_at",
        ),
        (CapCounter::NewRecipients, false) => ("contacts WHERE first_sent_at > $1", "first_sent_at"),
    }
}

async fn cap_window(
    pool: &PgPool,
    counter: CapCounter,
    identity: Option<&IdentityId>,
    since: Timestamp,
    keep: u64,
) -> Result<CapWindow> {
    let (from, time) = source(counter, identity.is_some());
    let count_sql = format!("SELECT COUNT(*) FROM {from}");
    let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
    if let Some(i) = identity {
        q = q.bind(i.as_str().to_owned());
    }
    let count = q.bind(since.as_micros()).fetch_one(pool).await.map_err(db_err)?;
    let count = u64::try_from(count).map_err(|_| Error::internal("a negative count"))?;
    if count <= keep {
        return Ok(CapWindow { count, frees_at: None });
    }
    let offset = i64::try_from(count - keep - 1).unwrap_or(i64::MAX);
    let n = if identity.is_some() { 3 } else { 2 };
    let nth_sql = format!("SELECT {time} FROM {from} ORDER BY {time} LIMIT 1 OFFSET ${n}");
    let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(nth_sql));
    if let Some(i) = identity {
        q = q.bind(i.as_str().to_owned());
    }
    let at = q
        .bind(since.as_micros())
        .bind(offset)
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    Ok(CapWindow {
        count,
        frees_at: at.map(Timestamp::from_micros),
    })
}

async fn contacts(pool: &PgPool, identity: &IdentityId, addresses: &[EmailAddress]) -> Result<Vec<Correspondence>> {
    if addresses.is_empty() {
        return Ok(vec![]);
    }
    let wanted: Vec<&str> = addresses.iter().map(EmailAddress::as_str).collect();
    let rows: Vec<(String, Option<i64>, Option<i64>, i64)> = sqlx::query_as(
        "SELECT address, first_sent_at, first_received_at, last_at FROM contacts \
         WHERE identity_id = $1 AND address = ANY($2)",
    )
    .bind(identity.as_str())
    .bind(wanted)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    Ok(rows
        .into_iter()
        .map(|(address, sent, received, last)| Correspondence {
            address: EmailAddress::from_trusted(address),
            first_sent_at: sent.map(Timestamp::from_micros),
            first_received_at: received.map(Timestamp::from_micros),
            last_at: Timestamp::from_micros(last),
        })
        .collect())
}

#[async_trait::async_trait]
impl loft_core::store::SendingStore for crate::PostgresStore {
    async fn instance_caps(&self) -> Result<SendCaps> {
        let (h, d, n): (Option<i64>, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT cap_mails_per_hour, cap_mails_per_day, cap_new_recipients_per_day FROM instance_state WHERE id = 1",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(SendCaps {
            mails_per_hour: cap(h),
            mails_per_day: cap(d),
            new_recipients_per_day: cap(n),
        })
    }

    async fn set_instance_caps(&self, caps: SendCaps, audit: AuditEntry) -> Result<()> {
        self.wrote(self::set_instance_caps(&self.pool, caps, audit).await)
    }

    async fn cap_window(
        &self,
        counter: CapCounter,
        identity: Option<&IdentityId>,
        since: Timestamp,
        keep: u64,
    ) -> Result<CapWindow> {
        self::cap_window(&self.pool, counter, identity, since, keep).await
    }

    async fn contacts(&self, identity: &IdentityId, addresses: &[EmailAddress]) -> Result<Vec<Correspondence>> {
        self::contacts(&self.pool, identity, addresses).await
    }
}
