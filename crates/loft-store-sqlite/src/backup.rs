//! Consistent online snapshots of a SQLite database (`loft backup`).
//!
//! `VACUUM INTO` from a read-only connection: it reads one consistent snapshot of the
//! database (WAL included) while the server keeps writing, and writes a compact copy. The
//! copy is created owner-only before SQLite fills it, since it holds mail, key digests and the
//! audit log.

use std::path::Path;

use loft_core::{Error, Result};
use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::error::map_err;

/// What a snapshot holds, for the backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The audit chain head in the copy (0 and the genesis hash when empty).
    pub audit_seq: i64,
    pub audit_hash: String,
    /// The master key ids wrapping the copy's vault credentials: the keys a restore needs.
    pub master_key_ids: Vec<String>,
    /// The copy's size in bytes.
    pub bytes: u64,
}

/// Writes a consistent copy of the database at `source` to `target`, which must not exist.
pub async fn snapshot(source: &Path, target: &Path) -> Result<Snapshot> {
    if !source.is_file() {
        return Err(Error::invalid(
            "no_database",
            format!("there is no SQLite database at {}", source.display()),
        )
        .with_hint("pass the data dir of the server (`--data-dir`, LOFT_DATA_DIR)"));
    }
    create_private_file(target).map_err(|e| {
        Error::invalid("backup_target", format!("cannot create {}: {e}", target.display()))
            .with_hint("back up into a new, empty directory")
    })?;
    let out = copy(source, target).await;
    if out.is_err() {
        let _ = std::fs::remove_file(target);
    }
    out
}

async fn copy(source: &Path, target: &Path) -> Result<Snapshot> {
    let read_only = SqliteConnectOptions::new()
        .filename(source)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(30));
    let mut conn = SqliteConnection::connect_with(&read_only).await.map_err(map_err)?;
    let target_text = target
        .to_str()
        .ok_or_else(|| Error::invalid("backup_target", "the backup path must be valid UTF-8"))?;
    sqlx::query("VACUUM INTO ?")
        .bind(target_text.to_owned())
        .execute(&mut conn)
        .await
        .map_err(map_err)?;
    conn.close().await.map_err(map_err)?;

    let mut copy = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(target).read_only(true))
        .await
        .map_err(map_err)?;
    let (audit_seq, audit_hash): (i64, String) = sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&mut copy)
        .await
        .map_err(map_err)?;
    let master_key_ids: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT master_key_id FROM vault_items ORDER BY master_key_id")
            .fetch_all(&mut copy)
            .await
            .map_err(map_err)?;
    copy.close().await.map_err(map_err)?;
    let bytes = std::fs::metadata(target).map_or(0, |m| m.len());
    Ok(Snapshot {
        audit_seq,
        audit_hash,
        master_key_ids,
        bytes,
    })
}

/// Creates an empty file readable by the owner only; fails if it exists.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}
