//! The one place where driver errors become Loft's semantic errors.
//!
//! Unique violations are `Conflict`; anything that means "the database cannot serve right now"
//! (pool timeouts, a closed pool, I/O, a busy or full database) is `Unavailable`; everything
//! else is `Internal`. Messages name tables and columns at most (that is all SQLite puts in
//! them), never bound values, so a key digest can never end up in an error.

use loft_core::Error;
use sqlx::error::ErrorKind;

/// SQLite primary result codes that mean "try again later" rather than "this is a bug".
/// <https://www.sqlite.org/rescode.html>
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_NOMEM: i64 = 7;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;

pub(crate) fn map_err(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(db) => {
            if db.kind() == ErrorKind::UniqueViolation {
                return unique_violation();
            }
            let code = db.code().and_then(|c| c.parse::<i64>().ok());
            let message = format!("SQLite: {} (code {})", db.message(), db.code().unwrap_or_default());
            by_code(code, message)
        }
        sqlx::Error::PoolTimedOut => Error::Unavailable("timed out waiting for a SQLite connection".into()),
        sqlx::Error::PoolClosed => Error::Unavailable("the SQLite store is closed".into()),
        sqlx::Error::WorkerCrashed => Error::Unavailable("a SQLite connection worker stopped".into()),
        sqlx::Error::Io(io) => Error::Unavailable(format!("SQLite I/O: {io}")),
        other => Error::Internal(format!("SQLite: {other}")),
    }
}

/// [`map_err`] for `rusqlite` connections (the hot reads, the writer's jobs): the same
/// classes, from the same SQLite result codes.
pub(crate) fn map_rusqlite(e: rusqlite::Error) -> Error {
    match e {
        rusqlite::Error::SqliteFailure(code, _)
            if matches!(
                code.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ) =>
        {
            unique_violation()
        }
        rusqlite::Error::SqliteFailure(code, message) => {
            let text = format!(
                "SQLite: {} (code {})",
                message.as_deref().unwrap_or(&code.to_string()),
                code.extended_code
            );
            by_code(Some(i64::from(code.extended_code)), text)
        }
        other => Error::Internal(format!("SQLite: {other}")),
    }
}

fn unique_violation() -> Error {
    Error::conflict("already_exists", "a record with this identifier already exists")
}

/// `Unavailable` for the result codes that mean "try again later" (by their primary code, the
/// low byte of an extended one), `Internal` for the rest.
fn by_code(code: Option<i64>, message: String) -> Error {
    match code.map(|c| c & 0xff) {
        Some(
            SQLITE_BUSY | SQLITE_LOCKED | SQLITE_NOMEM | SQLITE_READONLY | SQLITE_IOERR | SQLITE_FULL | SQLITE_CANTOPEN,
        ) => Error::Unavailable(message),
        _ => Error::Internal(message),
    }
}

/// Decoding a stored JSON column: the database holds something Loft did not write.
pub(crate) fn bad_json(column: &str, e: &serde_json::Error) -> Error {
    Error::Internal(format!("stored `{column}` is not valid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_pool_is_unavailable_and_decode_errors_are_internal() {
        assert!(matches!(map_err(sqlx::Error::PoolClosed), Error::Unavailable(_)));
        assert!(matches!(map_err(sqlx::Error::PoolTimedOut), Error::Unavailable(_)));
        assert!(matches!(map_err(sqlx::Error::RowNotFound), Error::Internal(_)));
    }

    #[test]
    fn busy_is_unavailable_on_both_drivers() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY_SNAPSHOT),
            Some("database is locked".into()),
        );
        assert!(matches!(map_rusqlite(busy), Error::Unavailable(m) if m.contains("database is locked")));
        let misuse = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISUSE), None);
        assert!(matches!(map_rusqlite(misuse), Error::Internal(_)));
        assert!(matches!(
            map_rusqlite(rusqlite::Error::InvalidQuery),
            Error::Internal(_)
        ));
        let taken = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE),
            Some("UNIQUE constraint failed: identities.address".into()),
        );
        assert_eq!(map_rusqlite(taken).code(), "already_exists");
    }

    #[test]
    fn duplicates_keep_variant_and_code() {
        let e = Error::conflict("address_taken", "taken");
        let d = e.clone();
        assert_eq!(d.code(), "address_taken");
        assert_eq!(d.to_string(), e.to_string());
    }
}
