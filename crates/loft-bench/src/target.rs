//! The database under test: a fresh SQLite file, or a fresh `loft_bench_<random>` database on
//! a PostgreSQL server (created and dropped with [`loft_testkit::pg`]), and its removal.

use std::path::PathBuf;

use loft::serve::{self, Backend};
use loft_core::random::{self, OsRandom};
use loft_testkit::pg;

use crate::BenchArgs;

/// The fresh database the benchmark runs on, and how to remove it.
pub struct Target {
    /// Temporary data directory (SQLite file, operator key file); removed at the end.
    pub data_dir: PathBuf,
    /// What the server is given as `--database-url`.
    pub url: String,
    pub backend: &'static str,
    /// For the report: where the data lives (never a password).
    pub description: String,
    /// For PostgreSQL: the server URL to reconnect to and the database to drop.
    pg: Option<(String, String)>,
}

impl Target {
    pub async fn prepare(args: &BenchArgs) -> Result<Self, String> {
        let parent = args.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let data_dir = parent.join(format!(
            "loft-bench-{}-{}",
            std::process::id(),
            random::base32_string(&OsRandom, 8)
        ));
        let given = if args.pg {
            Some(pg::DEFAULT_URL.to_owned())
        } else {
            args.database_url.clone()
        };
        let backend = match &given {
            Some(url) => serve::backend_from_url(url).map_err(|e| format!("--database-url: {e}"))?,
            None => Backend::Sqlite(data_dir.join("loft.db")),
        };
        match backend {
            Backend::Sqlite(path) => {
                // Never write benchmark traffic into somebody's real database.
                if path.exists() {
                    return Err(format!(
                        "{} exists; the benchmark only runs on a new SQLite file (omit --database-url to use a \
                         temporary one)",
                        path.display()
                    ));
                }
                let kept = if given.is_some() {
                    "kept afterwards"
                } else {
                    "removed afterwards"
                };
                let description = format!("sqlite, new file {} ({kept})", path.display());
                let url = format!("sqlite://{}", path.display());
                Ok(Self {
                    data_dir,
                    url,
                    backend: "sqlite",
                    description,
                    pg: None,
                })
            }
            Backend::Postgres(server) => {
                let version = pg::server_version(&server).await?;
                // Lowercase base32: a plain identifier, as the testkit requires.
                let name = format!("loft_bench_{}", random::base32_string(&OsRandom, 12));
                let url = pg::create_database(&server, &name).await?;
                let description = format!(
                    "postgres {version}, new database {name} on {} (dropped afterwards)",
                    host_of(&server).unwrap_or("?")
                );
                Ok(Self {
                    data_dir,
                    url,
                    backend: "postgres",
                    description,
                    pg: Some((server, name)),
                })
            }
        }
    }

    /// Brings the planner's statistics up to date after a bulk load (PostgreSQL's `ANALYZE`,
    /// what autovacuum would do in time; nothing on SQLite, whose planner has no statistics
    /// unless asked for them).
    pub async fn refresh_statistics(&self) -> Result<(), String> {
        match &self.pg {
            Some(_) => pg::analyze(&self.url).await,
            None => Ok(()),
        }
    }

    pub async fn cleanup(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Some((server, name)) = &self.pg
            && let Err(e) = pg::drop_database(server, name).await
        {
            problems.push(e);
        }
        if let Err(e) = std::fs::remove_dir_all(&self.data_dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            problems.push(format!("could not remove {}: {e}", self.data_dir.display()));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// `host:port` of a URL, for the report.
fn host_of(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = rest.split(['/', '?']).next()?;
    Some(authority.rsplit_once('@').map_or(authority, |(_, host)| host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_shown_without_credentials() {
        assert_eq!(host_of("postgres://u:p@db.example:5433/x?y"), Some("db.example:5433"));
        assert_eq!(host_of(pg::DEFAULT_URL), Some("127.0.0.1:5432"));
        assert_eq!(host_of("postgres://h"), Some("h"));
    }
}
