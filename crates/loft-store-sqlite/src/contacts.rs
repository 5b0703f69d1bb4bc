//! Contacts: the correspondence rows mail writes (`contacts`, see `caps.rs`) joined with the
//! address book (`address_book`, migration 0017), per identity.

use loft_core::address::EmailAddress;
use loft_core::audit::AuditEntry;
use loft_core::contacts::{
    AddressBookEntry, Contact, ContactQuery, ContactRow, MAX_ADDRESS_BOOK, address_book_full, from_row,
};
use loft_core::ids::IdentityId;
use loft_core::{Error, Result};
use sqlx::SqliteConnection;

use crate::audit;
use crate::error::map_err;
use crate::rows::to_json;

/// Every address of `?1` (mail exchanged or written down), with both rows; `address` filters
/// follow. Text comparisons are byte order, and only ASCII letters are folded (as on
/// PostgreSQL, so that both backends match alike).
const SELECT: &str = "WITH addrs AS (
         SELECT address FROM contacts WHERE identity_id = ?1
         UNION
         SELECT address FROM address_book WHERE identity_id = ?1
     )
     SELECT a.address, c.first_sent_at, c.first_received_at, c.last_at, b.name, b.notes, b.tags, b.updated_at
     FROM addrs a
     LEFT JOIN contacts c ON c.identity_id = ?1 AND c.address = a.address
     LEFT JOIN address_book b ON b.identity_id = ?1 AND b.address = a.address";

async fn list(conn: &mut SqliteConnection, identity: &IdentityId, q: &ContactQuery) -> Result<Vec<Contact>> {
    let sql = format!(
        "{SELECT}
         WHERE (?2 IS NULL OR a.address > ?2)
           AND (?3 IS NULL OR instr(lower(a.address), ?3) > 0 OR instr(lower(coalesce(b.name, '')), ?3) > 0)
           AND (?4 IS NULL OR EXISTS (SELECT 1 FROM json_each(b.tags) WHERE value = ?4))
           AND (?5 IS NULL OR (c.address IS NOT NULL) = ?5)
         ORDER BY a.address LIMIT ?6"
    );
    let rows: Vec<ContactRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(identity.as_str().to_owned())
        .bind(q.after.clone())
        .bind(q.text.clone())
        .bind(q.tag.clone())
        .bind(q.known)
        .bind(i64::from(q.limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    rows.into_iter().map(from_row).collect()
}

async fn get(conn: &mut SqliteConnection, identity: &IdentityId, address: &EmailAddress) -> Result<Option<Contact>> {
    let sql = format!("{SELECT} WHERE a.address = ?2");
    let row: Option<ContactRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(identity.as_str().to_owned())
        .bind(address.as_str().to_owned())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    row.map(from_row).transpose()
}

async fn write(conn: &mut SqliteConnection, e: AddressBookEntry, audit_entry: AuditEntry) -> Result<Contact> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM address_book WHERE identity_id = ? AND address = ?")
        .bind(e.identity.as_str().to_owned())
        .bind(e.address.as_str().to_owned())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    if exists.is_none() {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM address_book WHERE identity_id = ?")
            .bind(e.identity.as_str().to_owned())
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
        if u64::try_from(n).unwrap_or(0) >= MAX_ADDRESS_BOOK {
            return Err(address_book_full());
        }
    }
    sqlx::query(
        "INSERT INTO address_book (identity_id, address, name, notes, tags, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
         ON CONFLICT (identity_id, address) DO UPDATE SET
             name = excluded.name, notes = excluded.notes, tags = excluded.tags, updated_at = excluded.updated_at",
    )
    .bind(e.identity.as_str().to_owned())
    .bind(e.address.as_str().to_owned())
    .bind(e.name.clone())
    .bind(e.notes.clone())
    .bind(to_json(&e.tags, "address_book.tags")?)
    .bind(e.at.as_micros())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    audit::append(conn, audit_entry).await?;
    get(conn, &e.identity, &e.address)
        .await?
        .ok_or_else(|| Error::internal("an address book entry vanished in its own transaction"))
}

async fn forget(
    conn: &mut SqliteConnection,
    identity: IdentityId,
    address: EmailAddress,
    audit_entry: AuditEntry,
) -> Result<Contact> {
    let before = get(conn, &identity, &address).await?;
    let Some(before) = before.filter(|c| c.updated_at.is_some()) else {
        return Err(Error::not_found("contact"));
    };
    sqlx::query("DELETE FROM address_book WHERE identity_id = ? AND address = ?")
        .bind(identity.as_str().to_owned())
        .bind(address.as_str().to_owned())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    audit::append(conn, audit_entry).await?;
    Ok(before)
}

#[async_trait::async_trait]
impl loft_core::contacts::ContactStore for crate::SqliteStore {
    async fn list_contacts(&self, identity: &IdentityId, query: &ContactQuery) -> Result<Vec<Contact>> {
        let mut tx = self.reading().await?;
        let out = self::list(&mut tx, identity, query).await;
        crate::done(tx, out).await
    }

    async fn get_contact(&self, identity: &IdentityId, address: &EmailAddress) -> Result<Option<Contact>> {
        let mut tx = self.reading().await?;
        let out = self::get(&mut tx, identity, address).await;
        crate::done(tx, out).await
    }

    async fn write_contact(&self, entry: AddressBookEntry, audit: AuditEntry) -> Result<Contact> {
        self.write(move |c| Box::pin(self::write(c, entry, audit))).await
    }

    async fn forget_contact(
        &self,
        identity: &IdentityId,
        address: &EmailAddress,
        audit: AuditEntry,
    ) -> Result<Contact> {
        let (identity, address) = (identity.clone(), address.clone());
        self.write(move |c| Box::pin(self::forget(c, identity, address, audit)))
            .await
    }
}
