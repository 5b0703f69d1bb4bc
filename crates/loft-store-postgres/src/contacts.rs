//! Contacts: the correspondence rows mail writes (`contacts`, see `caps.rs`) joined with the
//! address book (`address_book`, migration `address_book`), per identity.

use loft_core::address::EmailAddress;
use loft_core::audit::AuditEntry;
use loft_core::contacts::{
    AddressBookEntry, Contact, ContactQuery, ContactRow, MAX_ADDRESS_BOOK, address_book_full, from_row,
};
use loft_core::ids::IdentityId;
use loft_core::{Error, Result};
use sqlx::PgConnection;

use crate::{WriteTx, db_err, rows};

/// Every address of `$1` (mail exchanged or written down), with both rows. Addresses compare
/// in byte order (`COLLATE "C"`) and only ASCII letters are folded (`translate`), as on SQLite,
/// so that both backends match and order alike whatever the database's collation.
const SELECT: &str = "WITH addrs AS (
         SELECT address FROM contacts WHERE identity_id = $1
         UNION
         SELECT address FROM address_book WHERE identity_id = $1
     )
     SELECT a.address, c.first_sent_at, c.first_received_at, c.last_at, b.name, b.notes, b.tags::text, b.updated_at
     FROM addrs a
     LEFT JOIN contacts c ON c.identity_id = $1 AND c.address = a.address
     LEFT JOIN address_book b ON b.identity_id = $1 AND b.address = a.address";

const FOLD: (&str, &str) = ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz");

async fn get(conn: &mut PgConnection, identity: &IdentityId, address: &EmailAddress) -> Result<Option<Contact>> {
    let sql = format!("{SELECT} WHERE a.address = $2");
    let row: Option<ContactRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(identity.as_str())
        .bind(address.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    row.map(from_row).transpose()
}

#[async_trait::async_trait]
impl loft_core::contacts::ContactStore for crate::PostgresStore {
    async fn list_contacts(&self, identity: &IdentityId, q: &ContactQuery) -> Result<Vec<Contact>> {
        let (upper, lower) = FOLD;
        let sql = format!(
            "{SELECT}
             WHERE ($2::text IS NULL OR a.address COLLATE \"C\" > $2::text COLLATE \"C\")
               AND ($3::text IS NULL OR strpos(translate(a.address, '{upper}', '{lower}'), $3) > 0
                    OR strpos(translate(coalesce(b.name, ''), '{upper}', '{lower}'), $3) > 0)
               AND ($4::text IS NULL OR b.tags @> jsonb_build_array($4::text))
               AND ($5::bool IS NULL OR (c.address IS NOT NULL) = $5)
             ORDER BY a.address COLLATE \"C\" LIMIT $6"
        );
        let rows: Vec<ContactRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(identity.as_str())
            .bind(q.after.as_deref())
            .bind(q.text.as_deref())
            .bind(q.tag.as_deref())
            .bind(q.known)
            .bind(i64::from(q.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.into_iter().map(from_row).collect()
    }

    async fn get_contact(&self, identity: &IdentityId, address: &EmailAddress) -> Result<Option<Contact>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        get(&mut conn, identity, address).await
    }

    async fn write_contact(&self, e: AddressBookEntry, audit: AuditEntry) -> Result<Contact> {
        let mut w = WriteTx::begin(&self.pool).await?;
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM address_book WHERE identity_id = $1 AND address = $2")
                .bind(e.identity.as_str())
                .bind(e.address.as_str())
                .fetch_optional(w.conn())
                .await
                .map_err(db_err)?;
        if exists.is_none() {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM address_book WHERE identity_id = $1")
                .bind(e.identity.as_str())
                .fetch_one(w.conn())
                .await
                .map_err(db_err)?;
            if u64::try_from(n).unwrap_or(0) >= MAX_ADDRESS_BOOK {
                return Err(address_book_full());
            }
        }
        sqlx::query(
            "INSERT INTO address_book (identity_id, address, name, notes, tags, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5::jsonb, $6, $6) \
             ON CONFLICT (identity_id, address) DO UPDATE SET \
                 name = EXCLUDED.name, notes = EXCLUDED.notes, tags = EXCLUDED.tags, updated_at = EXCLUDED.updated_at",
        )
        .bind(e.identity.as_str())
        .bind(e.address.as_str())
        .bind(e.name.as_deref())
        .bind(e.notes.as_deref())
        .bind(rows::to_json(&e.tags)?)
        .bind(e.at.as_micros())
        .execute(w.conn())
        .await
        .map_err(db_err)?;
        w.audit(audit).await?;
        let now = get(w.conn(), &e.identity, &e.address)
            .await?
            .ok_or_else(|| Error::internal("an address book entry vanished in its own transaction"))?;
        self.wrote(w.commit().await)?;
        Ok(now)
    }

    async fn forget_contact(
        &self,
        identity: &IdentityId,
        address: &EmailAddress,
        audit: AuditEntry,
    ) -> Result<Contact> {
        let mut w = WriteTx::begin(&self.pool).await?;
        // The contact as it was, read in the transaction that deletes its entry.
        let before = get(w.conn(), identity, address).await?;
        let n = sqlx::query("DELETE FROM address_book WHERE identity_id = $1 AND address = $2")
            .bind(identity.as_str())
            .bind(address.as_str())
            .execute(w.conn())
            .await
            .map_err(db_err)?
            .rows_affected();
        let Some(before) = before.filter(|_| n == 1) else {
            return Err(Error::not_found("contact"));
        };
        w.audit(audit).await?;
        self.wrote(w.commit().await)?;
        Ok(before)
    }
}
