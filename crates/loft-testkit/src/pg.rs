//! A fresh PostgreSQL database per test.
//!
//! [`TestDb::create`] connects to the server named by `LOFT_TEST_PG_URL` (default
//! [`DEFAULT_URL`]), creates `loft_test_<unix seconds>_<pid>_<n>_<random>` and hands back its
//! URL; [`TestDb::drop_db`] drops it again. The creation time in the name lets every run sweep
//! away databases older than an hour that crashed or killed runs left behind.
//!
//! When the server cannot be reached, CI must fail rather than skip: with `CI` set (to anything
//! but `false` or `0`) this panics; elsewhere it prints a loud warning that the PostgreSQL tests
//! did not run, and returns `None` so that the caller passes without testing anything.

use std::io::Write as _;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use loft_core::random::{self, OsRandom};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

/// The environment variable naming the server (a URL whose database we may connect to and
/// that may run `CREATE DATABASE`).
pub const URL_ENV: &str = "LOFT_TEST_PG_URL";
/// The server used when `LOFT_TEST_PG_URL` is unset: a local PostgreSQL with trust auth.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Every test database's name starts with this.
pub const DB_PREFIX: &str = "loft_test_";
/// Test databases older than this are dropped by the next run.
pub const STALE_AFTER_SECS: u64 = 3600;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A database of its own for one test.
#[derive(Debug)]
pub struct TestDb {
    /// Connection URL of the fresh database.
    pub url: String,
    /// Its name (`loft_test_...`).
    pub name: String,
    /// The server URL it was created from.
    admin_url: String,
}

/// The server URL from the environment, or the default.
pub fn server_url() -> String {
    std::env::var(URL_ENV)
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

/// True when running in CI (`CI` set and not `false`/`0`), where skipping is not allowed.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| {
        let v = v.trim();
        !(v.is_empty() || v.eq_ignore_ascii_case("false") || v == "0")
    })
}

impl TestDb {
    /// Creates a fresh database, or returns `None` (after a loud warning) when PostgreSQL is
    /// not reachable outside CI. Panics in CI when it is not reachable, and always when the
    /// server is reachable but refuses to create the database.
    pub async fn create() -> Option<TestDb> {
        let admin_url = server_url();
        let mut conn = match connect(&admin_url).await {
            Ok(c) => c,
            Err(why) => {
                unreachable_server(&admin_url, &why);
                return None;
            }
        };
        sweep_stale(&mut conn).await;
        let name = unique_name();
        if let Err(e) = sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
        {
            panic!(
                "PostgreSQL at {} is reachable but CREATE DATABASE {name} failed: {e}\n\
                 the test role needs CREATEDB (or set {URL_ENV} to a server where it has it)",
                redact(&admin_url)
            );
        }
        let _ = conn.close().await;
        Some(TestDb {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        })
    }

    /// Drops the database, closing any connection still open on it.
    pub async fn drop_db(self) {
        let mut conn = match connect(&self.admin_url).await {
            Ok(c) => c,
            Err(why) => panic!("could not reconnect to drop test database {}: {why}", self.name),
        };
        if let Err(e) = sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await
        {
            panic!("dropping test database {} failed: {e}", self.name);
        }
        let _ = conn.close().await;
    }
}

/// Runs `test` on the URL of a fresh database and drops the database afterwards, also when
/// the test panics (the panic is then re-raised). Returns without running it when PostgreSQL is
/// unavailable outside CI (see [`TestDb::create`]).
pub async fn with_test_db<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = TestDb::create().await else {
        return;
    };
    let outcome = tokio::spawn(test(db.url.clone())).await;
    db.drop_db().await;
    if let Err(e) = outcome {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("the test's task failed: {e}");
    }
}

async fn connect(url: &str) -> Result<PgConnection, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
    }
}

fn unreachable_server(url: &str, why: &str) {
    static TTY: Once = Once::new();
    let url = redact(url);
    assert!(
        !in_ci(),
        "PostgreSQL is not reachable at {url} ({why}).\n\
         CI must run the PostgreSQL tests, never skip them: start PostgreSQL 15+ there \
         (user `postgres`, trust auth, 127.0.0.1:5432) or point {URL_ENV} at a server \
         whose role may CREATE DATABASE."
    );
    let banner = format!(
        "\n\
         ************************************************************************\n\
         **  WARNING: THE POSTGRESQL TESTS DID NOT RUN                          **\n\
         ************************************************************************\n\
         **  PostgreSQL is not reachable at {url}\n\
         **  reason: {why}\n\
         **  Every PostgreSQL test returned early and is reported as passed\n\
         **  WITHOUT testing anything. Start PostgreSQL, or set {URL_ENV}\n\
         **  to a server whose role may CREATE DATABASE, and run them again.\n\
         **  (With CI set, this is a failure instead.)\n\
         ************************************************************************\n"
    );
    // Written to the stderr handle itself, not through `eprintln!`, so the test harness's
    // output capture does not swallow it.
    let _ = std::io::stderr().write_all(banner.as_bytes());
    // nextest keeps a passing test's output to itself; say it on the terminal once.
    if std::env::var_os("NEXTEST").is_some() {
        TTY.call_once(|| {
            if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
                let _ = tty.write_all(banner.as_bytes());
            }
        });
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "test database names carry the wall-clock creation time"
)]
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{DB_PREFIX}{}_{}_{n}_{}",
        unix_now(),
        std::process::id(),
        random::base32_string(&OsRandom, 6)
    )
}

/// The creation time encoded in a test database's name.
fn created_secs(name: &str) -> Option<u64> {
    name.strip_prefix(DB_PREFIX)?.split('_').next()?.parse().ok()
}

/// Drops `loft_test_*` databases created more than an hour ago (left by crashed runs).
/// Failures are ignored: another run may be sweeping the same database right now.
async fn sweep_stale(conn: &mut PgConnection) {
    let names: Vec<String> =
        match sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'loft\\_test\\_%'")
            .fetch_all(&mut *conn)
            .await
        {
            Ok(n) => n,
            Err(_) => return,
        };
    let now = unix_now();
    for name in names {
        let stale = created_secs(&name).is_some_and(|t| now.saturating_sub(t) > STALE_AFTER_SECS);
        // Only names we generate: no quoting surprises in the statement below.
        if stale
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

/// `url` with its database replaced by `db` (query parameters kept).
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:5432", "x"), "postgres://h:5432/x");
        assert_eq!(
            with_database("postgres://h?application_name=t", "x"),
            "postgres://h/x?application_name=t"
        );
    }

    #[test]
    fn names_carry_their_creation_time() {
        let name = unique_name();
        assert!(name.starts_with(DB_PREFIX));
        assert!(name.len() <= 63, "PostgreSQL truncates identifiers at 63 bytes: {name}");
        let t = created_secs(&name).unwrap();
        assert!(unix_now().abs_diff(t) < 5);
        assert_ne!(unique_name(), name);
        assert_eq!(created_secs("loft_test_12_3_4_abc"), Some(12));
        assert_eq!(created_secs("loft_testx"), None);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[tokio::test]
    async fn create_and_drop() {
        let Some(db) = TestDb::create().await else { return };
        let mut conn = PgConnection::connect(&db.url).await.unwrap();
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await.unwrap();
        assert_eq!(one, 1);
        conn.close().await.unwrap();
        let name = db.name.clone();
        db.drop_db().await;
        let mut admin = PgConnection::connect(&server_url()).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert_eq!(left, 0);
    }
}
