//! PostgreSQL databases of their own: one per test, and the benchmark's.
//!
//! [`TestDb::create`] connects to the server named by `LOFT_TEST_PG_URL` (default
//! [`DEFAULT_URL`]), creates `loft_test_<unix seconds>_<pid>_<n>_<random>` and hands back its
//! URL; [`TestDb::drop_db`] drops it again. The creation time in the name lets every run sweep
//! away databases older than an hour that crashed or killed runs left behind.
//!
//! When the server cannot be reached, CI must fail rather than skip: with `CI` set (to anything
//! but `false` or `0`) this panics; elsewhere it prints a loud warning that the PostgreSQL tests
//! did not run, and returns `None` so that the caller passes without testing anything.
//!
//! Under it, [`create_database`] and [`drop_database`] create and drop a database of a given
//! name on a given server and return errors instead of panicking: `loft-bench` makes its
//! `loft_bench_<random>` database with them. This is the workspace's one copy of the SQL that
//! creates and drops databases.

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
/// Longest `CREATE DATABASE` or `DROP DATABASE` may take (a drop waits for other sessions on
/// the database to be terminated).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

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
        let created = create_on(&mut conn, &name).await;
        let _ = conn.close().await;
        if let Err(e) = created {
            panic!(
                "PostgreSQL at {} is reachable, but {e}\n(or set {URL_ENV} to a server where the role has it)",
                redact(&admin_url)
            );
        }
        Some(TestDb {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        })
    }

    /// Drops the database, closing any connection still open on it.
    pub async fn drop_db(self) {
        if let Err(e) = drop_database(&self.admin_url, &self.name).await {
            panic!("test database: {e}");
        }
    }

    /// [`TestDb::drop_db`] from synchronous code, such as a `Drop` impl, on a runtime of its
    /// own in a thread of its own (the test's runtime may be shutting down, or single-threaded).
    /// A failure is reported on stderr, not raised: this may run while a test is unwinding.
    pub fn drop_db_blocking(self) {
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(drop_database(&self.admin_url, &self.name))
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("test database: {e}"),
            Err(_) => eprintln!("test database {name}: the thread dropping it panicked"),
        }
    }
}

/// Creates the database `name` (lowercase ASCII letters, digits and `_`, at most 63 bytes) on
/// the server at `server_url`, and returns the URL of the new database (the server URL with its
/// database replaced). The role needs `CREATEDB`.
pub async fn create_database(server_url: &str, name: &str) -> Result<String, String> {
    let mut conn = connect(server_url)
        .await
        .map_err(|why| format!("cannot connect to PostgreSQL at {}: {why}", redact(server_url)))?;
    let created = create_on(&mut conn, name).await;
    let _ = conn.close().await;
    created
        .map(|()| with_database(server_url, name))
        .map_err(|e| format!("PostgreSQL at {}: {e}", redact(server_url)))
}

/// Drops the database `name` on the server at `server_url`, closing any connection still open on
/// it (`WITH (FORCE)`); a database that does not exist is not an error.
pub async fn drop_database(server_url: &str, name: &str) -> Result<(), String> {
    check_name(name)?;
    let mut conn = connect(server_url).await.map_err(|why| {
        format!(
            "cannot reconnect to PostgreSQL at {} to drop database {name} (drop it by hand): {why}",
            redact(server_url)
        )
    })?;
    let drop = sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn);
    let dropped = match tokio::time::timeout(STATEMENT_TIMEOUT, drop).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("dropping database {name} failed (drop it by hand): {e}")),
        Err(_) => Err(format!(
            "dropping database {name}: no answer within {} s (drop it by hand)",
            STATEMENT_TIMEOUT.as_secs()
        )),
    };
    let _ = conn.close().await;
    dropped
}

/// Updates the planner's statistics of every table of the database at `url` (`ANALYZE`), as
/// autovacuum would in time: a benchmark that has just filled tables measures plans made for
/// their real size, also on a server with autovacuum off.
pub async fn analyze(url: &str) -> Result<(), String> {
    let fail = |why: String| format!("PostgreSQL at {}: {why}", redact(url));
    let mut conn = connect(url).await.map_err(fail)?;
    let done = sqlx::query("ANALYZE").execute(&mut conn).await;
    let _ = conn.close().await;
    done.map(|_| ()).map_err(|e| fail(format!("ANALYZE: {e}")))
}

/// The server's version (`SHOW server_version`), e.g. `15.8`.
pub async fn server_version(url: &str) -> Result<String, String> {
    let fail = |why: String| format!("PostgreSQL at {}: {why}", redact(url));
    let mut conn = connect(url).await.map_err(fail)?;
    let version = tokio::time::timeout(
        STATEMENT_TIMEOUT,
        sqlx::query_scalar::<_, String>("SHOW server_version").fetch_one(&mut conn),
    )
    .await;
    let _ = conn.close().await;
    match version {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(_) => Err(fail(format!("no answer within {} s", STATEMENT_TIMEOUT.as_secs()))),
    }
}

async fn create_on(conn: &mut PgConnection, name: &str) -> Result<(), String> {
    check_name(name)?;
    // The name is checked above, so quoting it is safe.
    let create = sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut *conn);
    match tokio::time::timeout(STATEMENT_TIMEOUT, create).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("CREATE DATABASE {name} failed (the role needs CREATEDB): {e}")),
        Err(_) => Err(format!(
            "CREATE DATABASE {name}: no answer within {} s (check whether it exists)",
            STATEMENT_TIMEOUT.as_secs()
        )),
    }
}

/// Only names this module's callers generate: nothing that needs quoting, nothing PostgreSQL
/// would truncate.
fn check_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a database name this helper creates or drops (lowercase letters, digits and `_`, at most 63 bytes)"
        ))
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

/// `text` with the password of every `scheme://user:password@` in it replaced by `***`: for
/// messages and reports that show a URL or a command line.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(['/', '?', ' ']).unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***@");
                    out.push_str(host);
                }
                None => out.push_str(authority),
            },
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
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
        if stale && check_name(&name).is_ok() {
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

/// `url` with its database replaced by `db` (query parameters kept).
pub fn with_database(url: &str, db: &str) -> String {
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
        assert_eq!(
            redact("loft-bench --database-url postgres://u:secret@h:5432/db?x=1 --pg"),
            "loft-bench --database-url postgres://u:***@h:5432/db?x=1 --pg"
        );
        assert_eq!(redact("--samples 10"), "--samples 10");
    }

    #[test]
    fn only_plain_names_are_created_or_dropped() {
        assert!(check_name("loft_bench_abc123").is_ok());
        assert!(check_name(&unique_name()).is_ok());
        for bad in ["", "Loft", "a\"b", "a;b", "a b", &"x".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn create_and_drop() {
        let Some(db) = TestDb::create().await else { return };
        let mut conn = PgConnection::connect(&db.url).await.unwrap();
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await.unwrap();
        assert_eq!(one, 1);
        conn.close().await.unwrap();
        assert!(!server_version(&db.url).await.unwrap().is_empty());
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
