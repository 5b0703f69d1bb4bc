//! Sending controls: the instance's caps, the counts the caps are checked against, and each
//! identity's contacts (see `loft_core::caps`).
//!
//! The counts read only the window's entries: sender copies through the partial indexes
//! `messages_sent_by_owner_time` / `messages_sent_by_time` (sender copies by composition time),
//! first contacts through `contacts_first_sent` / `contacts_first_sent_time` (migration 0013).
//! Mail over a cap is never written, so a window holds about the cap's worth of entries
//! whatever the size of the mailbox.

use loft_core::address::EmailAddress;
use loft_core::audit::AuditEntry;
use loft_core::caps::{CapCounter, CapWindow, ContactTouch, Correspondence, SendCaps};
use loft_core::ids::IdentityId;
use loft_core::time::Timestamp;
use loft_core::{Error, Result};
use sqlx::SqliteConnection;

use crate::audit;
use crate::db::{Db, args};
use crate::error::{map_err, map_rusqlite};
use crate::rows::{cap, cap_col, to_json};

/// Inserts or merges contact rows (earliest first times, latest `last_at`), in the order given
/// (core sorts them).
pub(crate) async fn touch_contacts(conn: &mut impl Db, touches: &[ContactTouch]) -> Result<()> {
    for t in touches {
        conn.exec(
            "INSERT INTO contacts (identity_id, address, first_sent_at, first_received_at, last_at)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (identity_id, address) DO UPDATE SET
                 first_sent_at = COALESCE(MIN(contacts.first_sent_at, excluded.first_sent_at),
                                          contacts.first_sent_at, excluded.first_sent_at),
                 first_received_at = COALESCE(MIN(contacts.first_received_at, excluded.first_received_at),
                                              contacts.first_received_at, excluded.first_received_at),
                 last_at = MAX(contacts.last_at, excluded.last_at)",
            &args![
                t.identity.as_str().to_owned(),
                t.address.as_str().to_owned(),
                t.sent_at.map(Timestamp::as_micros),
                t.received_at.map(Timestamp::as_micros),
                t.at.as_micros()
            ],
        )
        .await?;
    }
    Ok(())
}

pub(crate) const INSTANCE_CAPS: &str =
    "SELECT cap_mails_per_hour, cap_mails_per_day, cap_new_recipients_per_day FROM instance_state WHERE id = 1";

pub(crate) fn instance_caps(conn: &rusqlite::Connection) -> Result<SendCaps> {
    conn.prepare_cached(INSTANCE_CAPS)
        .and_then(|mut st| {
            st.query_row([], |r| {
                Ok(SendCaps {
                    mails_per_hour: cap(r.get(0)?),
                    mails_per_day: cap(r.get(1)?),
                    new_recipients_per_day: cap(r.get(2)?),
                })
            })
        })
        .map_err(map_rusqlite)
}

async fn set_instance_caps(conn: &mut SqliteConnection, caps: SendCaps, audit_entry: AuditEntry) -> Result<()> {
    sqlx::query(
        "UPDATE instance_state SET cap_mails_per_hour = ?, cap_mails_per_day = ?, cap_new_recipients_per_day = ? \
         WHERE id = 1",
    )
    .bind(cap_col(caps.mails_per_hour))
    .bind(cap_col(caps.mails_per_day))
    .bind(cap_col(caps.new_recipients_per_day))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    audit::append(conn, audit_entry).await?;
    Ok(())
}

/// The table, index, time column and filter of each counter, per identity or instance-wide.
/// INDEXED BY: the planner would otherwise prefer `messages_owner_folder` (two equalities) and
/// walk every sent copy of the identity.
fn source(counter: CapCounter, per_identity: bool) -> (&'static str, &'static str) {
    match (counter, per_identity) {
        (CapCounter::Mails, true) => (
            "messages INDEXED BY messages_sent_by_owner_time WHERE owner_id = ?1 AND folder = 'sent' AND created_at > ?2",
            "created_at",
        ),
        (CapCounter::Mails, false) => (
            "messages INDEXED BY messages_sent_by_time WHERE ?1 IS NULL AND folder = 'sent' AND created_at > ?2",
            "created_at",
        ),
        (CapCounter::NewRecipients, true) => (
            "contacts INDEXED BY contacts_first_sent WHERE identity_id = ?1 AND first_sent_at > ?2",
            "first_sent_at",
        ),
        (CapCounter::NewRecipients, false) => (
            "contacts INDEXED BY contacts_first_sent_time WHERE ?1 IS NULL AND first_sent_at > ?2",
            "first_sent_at",
        ),
    }
}

pub(crate) async fn cap_window(
    conn: &mut SqliteConnection,
    counter: CapCounter,
    identity: Option<&IdentityId>,
    since: Timestamp,
    keep: u64,
) -> Result<CapWindow> {
    let (from, time) = source(counter, identity.is_some());
    let who = identity.map(|i| i.as_str().to_owned());
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {from}")))
        .bind(who.clone())
        .bind(since.as_micros())
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    let count = u64::try_from(count).map_err(|_| Error::internal("a negative count"))?;
    let frees_at = if count > keep {
        let offset = i64::try_from(count - keep - 1).unwrap_or(i64::MAX);
        let at: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {time} FROM {from} ORDER BY {time} LIMIT 1 OFFSET ?3"
        )))
        .bind(who)
        .bind(since.as_micros())
        .bind(offset)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
        at.map(Timestamp::from_micros)
    } else {
        None
    };
    Ok(CapWindow { count, frees_at })
}

async fn contacts(
    conn: &mut SqliteConnection,
    identity: &IdentityId,
    addresses: &[EmailAddress],
) -> Result<Vec<Correspondence>> {
    if addresses.is_empty() {
        return Ok(vec![]);
    }
    let rows: Vec<(String, Option<i64>, Option<i64>, i64)> = sqlx::query_as(
        "SELECT address, first_sent_at, first_received_at, last_at FROM contacts
         WHERE identity_id = ? AND address IN (SELECT value FROM json_each(?))",
    )
    .bind(identity.as_str().to_owned())
    .bind(to_json(addresses, "addresses")?)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
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
impl loft_core::store::SendingStore for crate::SqliteStore {
    async fn instance_caps(&self) -> Result<SendCaps> {
        self.hot(crate::hot::Cost::Short, self::instance_caps).await
    }

    async fn set_instance_caps(&self, caps: SendCaps, audit: AuditEntry) -> Result<()> {
        self.write(move |c| Box::pin(self::set_instance_caps(c, caps, audit)))
            .await
    }

    async fn cap_window(
        &self,
        counter: CapCounter,
        identity: Option<&IdentityId>,
        since: Timestamp,
        keep: u64,
    ) -> Result<CapWindow> {
        let mut tx = self.reading().await?;
        let out = self::cap_window(&mut tx, counter, identity, since, keep).await;
        crate::done(tx, out).await
    }

    async fn contacts(&self, identity: &IdentityId, addresses: &[EmailAddress]) -> Result<Vec<Correspondence>> {
        let mut tx = self.reading().await?;
        let out = self::contacts(&mut tx, identity, addresses).await;
        crate::done(tx, out).await
    }
}
