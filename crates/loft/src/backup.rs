//! `loft backup` and `loft restore`: a consistent online snapshot of a SQLite deployment,
//! and bringing one back into a new data dir, checked before it is declared good.
//!
//! Unlike the other client subcommands these act on the data dir itself, on the machine that
//! holds it, not through the HTTP API: a backup holds the whole database and the vault master
//! key, so an API to take one would turn the operator key into a way to read every secret in
//! every vault. PostgreSQL deployments use `pg_dump` / `pg_restore` (docs/backup.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use loft_core::keys::OperatorKey;
use loft_core::random::OsRandom;
use loft_core::service::{Loft, LoftConfig, RequestContext};
use loft_core::store::Store;
use loft_core::time::{Clock as _, SystemClock};
use loft_store_sqlite::backup::{self, create_private_file};

use crate::serve::{Backend, backend_from_url, create_private_dir, master_keys};

/// The files of a data dir that a backup carries besides the database.
const KEY_FILES: [&str; 2] = ["vault.keys", "admin.key"];
const DB_FILE: &str = "loft.db";
const MANIFEST: &str = "manifest.json";

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// A new (or empty) directory for the backup.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The data dir of the deployment to back up (the server may be running).
    #[arg(long, env = "LOFT_DATA_DIR", default_value = "./loft-data")]
    data_dir: PathBuf,
    /// The database, if not the data dir's SQLite file.
    #[arg(long, env = "LOFT_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A directory written by `loft backup`.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The data dir to restore into; it must not hold a database already.
    #[arg(long, env = "LOFT_DATA_DIR")]
    data_dir: PathBuf,
}

pub async fn run_backup(args: BackupArgs) -> ExitCode {
    report("backup", backup(&args).await)
}

pub async fn run_restore(args: RestoreArgs) -> ExitCode {
    report("restore", restore(&args).await)
}

fn report(what: &str, r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loft {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn copy_private(from: &Path, to: &Path) -> Result<(), String> {
    create_private_file(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    std::fs::copy(from, to).map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
    Ok(())
}

async fn backup(args: &BackupArgs) -> Result<(), String> {
    let source = match args.database_url.as_deref().map(backend_from_url).transpose()? {
        None => args.data_dir.join(DB_FILE),
        Some(Backend::Sqlite(path)) => path,
        Some(Backend::Postgres(_)) => {
            return Err("a PostgreSQL deployment is backed up with pg_dump; see docs/backup.md".into());
        }
    };
    create_private_dir(&args.dir).map_err(|e| format!("cannot create {}: {e}", args.dir.display()))?;
    let target = args.dir.join(DB_FILE);
    if target.exists() {
        return Err(format!(
            "{} exists already: back up into a new, empty directory",
            target.display()
        ));
    }
    let snap = backup::snapshot(&source, &target).await.map_err(|e| with_hint(&e))?;
    // The key files after the database: keys are only ever added to them, so the copy holds
    // every key that wraps a credential in the snapshot, even across a rotation.
    let mut files = vec![DB_FILE.to_owned()];
    for name in KEY_FILES {
        let from = args.data_dir.join(name);
        if from.is_file() {
            copy_private(&from, &args.dir.join(name))?;
            files.push(name.to_owned());
        }
    }
    let manifest = serde_json::json!({
        "format": "loft-backup-v1",
        "created_at": SystemClock.now(),
        "loft_version": env!("CARGO_PKG_VERSION"),
        "source": source.display().to_string(),
        "files": files,
        "audit_head": { "seq": snap.audit_seq, "hash": snap.audit_hash },
        "master_key_ids": snap.master_key_ids,
    });
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
    let manifest_path = args.dir.join(MANIFEST);
    create_private_file(&manifest_path).map_err(|e| format!("cannot create {}: {e}", manifest_path.display()))?;
    std::fs::write(&manifest_path, text).map_err(|e| e.to_string())?;

    println!(
        "backed up {} ({} bytes) to {}: audit chain at row {}",
        source.display(),
        snap.bytes,
        args.dir.display(),
        snap.audit_seq
    );
    if !snap.master_key_ids.is_empty() && !files.iter().any(|f| f == "vault.keys") {
        println!(
            "the vault master key is not in the data dir (LOFT_MASTER_KEY or LOFT_MASTER_KEY_FILE): keep it with this backup; it needs {}",
            snap.master_key_ids.join(", ")
        );
    }
    Ok(())
}

async fn restore(args: &RestoreArgs) -> Result<(), String> {
    let source = args.dir.join(DB_FILE);
    if !source.is_file() {
        return Err(format!(
            "{} holds no {DB_FILE}: is it a `loft backup` directory?",
            args.dir.display()
        ));
    }
    create_private_dir(&args.data_dir).map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
    let target = args.data_dir.join(DB_FILE);
    if target.exists() {
        return Err(format!(
            "{} exists already: restore into a new data dir",
            target.display()
        ));
    }
    let mut written = Vec::new();
    let outcome = async {
        copy_private(&source, &target)?;
        written.push(target.clone());
        for name in KEY_FILES {
            let (from, to) = (args.dir.join(name), args.data_dir.join(name));
            if from.is_file() && !to.exists() {
                copy_private(&from, &to)?;
                written.push(to);
            }
        }
        if !args.data_dir.join("vault.keys").exists() {
            // master_keys() would generate one: that is the right start for a deployment
            // whose keys come from the environment, and a failed check below removes it.
            written.push(args.data_dir.join("vault.keys"));
        }
        check(&args.data_dir, &target).await
    }
    .await;
    match outcome {
        Ok(summary) => {
            println!(
                "restored {} into {}: {summary}",
                args.dir.display(),
                args.data_dir.display()
            );
            Ok(())
        }
        Err(e) => {
            // Nothing half-restored is left to be started by mistake.
            for f in written {
                let _ = std::fs::remove_file(&f);
                for suffix in ["-wal", "-shm"] {
                    let mut side = f.as_os_str().to_owned();
                    side.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(side));
                }
            }
            Err(format!("{e}; nothing was restored"))
        }
    }
}

/// Opens the restored database as the server would and checks what it will need: the vault
/// master keys (every key id wrapping a credential must be held) and the audit chain.
async fn check(data_dir: &Path, db: &Path) -> Result<String, String> {
    let store: Arc<dyn Store> = Arc::new(
        loft_store_sqlite::SqliteStore::open(db)
            .await
            .map_err(|e| format!("opening the restored database: {e}"))?,
    );
    let result = async {
        let (keyring, source) = master_keys(data_dir)?;
        let operator = OperatorKey::generate(&OsRandom);
        let loft = Loft::new(
            store.clone(),
            Arc::new(SystemClock),
            Arc::new(OsRandom),
            OperatorKey::from_secret(&operator).map_err(|e| e.to_string())?,
            LoftConfig::new("restore.localhost"),
        )
        .map_err(|e| e.to_string())?
        .with_vault(keyring, source);
        let held = loft.verify_vault_keys().await.map_err(|e| with_hint(&e))?;
        let op = loft
            .authenticate(Some(&operator), RequestContext::default())
            .await
            .map_err(|e| e.to_string())?;
        let report = loft.audit_verify(&op).await.map_err(|e| e.to_string())?;
        if !report.ok {
            return Err(format!("the audit chain of the backup does not verify: {report:?}"));
        }
        Ok(format!(
            "audit chain intact ({} rows), vault master keys held: {}",
            report.rows_checked,
            held.join(", ")
        ))
    }
    .await;
    store.close().await;
    result
}

fn with_hint(e: &loft_core::Error) -> String {
    match e.hint() {
        Some(h) => format!("{e} ({h})"),
        None => e.to_string(),
    }
}
