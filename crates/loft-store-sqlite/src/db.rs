//! One statement helper for both SQLite drivers, so that a write function is written once
//! whichever connection runs it.
//!
//! The writer runs most jobs on a `rusqlite` connection of its own (`writer.rs`): a job is one
//! synchronous call there, where on sqlx's driver every statement is a hand-off to the
//! connection's worker thread and back (docs/benchmarks.md, "The writer on rusqlite"). The
//! jobs not moved yet, and the reads that still use sqlx's pool, run the same functions on a
//! sqlx connection. [`Db`] is what both offer: the write functions are `async fn f(db: &mut
//! impl Db, ...)` and work on either.
//!
//! On `rusqlite` each method does its work when called and returns a future that is already
//! complete, so a write function on it never waits and [`at_once`] runs it to its end on the
//! calling thread. Statements are prepared once per connection (`prepare_cached`), as sqlx
//! does with its own cache.

use std::future::Future;

use loft_core::{Error, Result};
use rusqlite::types::Value;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Arguments as _, SqliteConnection};

use crate::error::{map_err, map_rusqlite};
use crate::rows::ReadRow;

/// What a statement changed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done {
    /// Rows inserted, updated or deleted.
    pub rows: u64,
    /// The rowid of the last row inserted on this connection.
    pub last_id: i64,
}

/// A result row both drivers can read: by name through sqlx, by position through `rusqlite`.
pub(crate) trait Row: ReadRow + for<'r> sqlx::FromRow<'r, SqliteRow> + Send + Unpin {}
impl<T: ReadRow + for<'r> sqlx::FromRow<'r, SqliteRow> + Send + Unpin> Row for T {}

/// A connection a write function runs its statements on.
pub(crate) trait Db {
    /// Runs one statement that returns no rows.
    fn exec(&mut self, sql: &'static str, args: &[Value]) -> impl Future<Output = Result<Done>> + Send;
    /// The first row the statement returns, if any.
    fn first<R: Row>(&mut self, sql: &'static str, args: &[Value]) -> impl Future<Output = Result<Option<R>>> + Send;
    /// Every row the statement returns.
    fn all<R: Row>(&mut self, sql: &'static str, args: &[Value]) -> impl Future<Output = Result<Vec<R>>> + Send;

    /// The first row of a statement that always returns one (`Internal` when it did not).
    fn one<R: Row>(&mut self, sql: &'static str, args: &[Value]) -> impl Future<Output = Result<R>> + Send;
}

/// The row a statement that always returns one returned.
fn required<R>(row: Option<R>) -> Result<R> {
    row.ok_or_else(|| Error::internal("a statement that returns a row returned none"))
}

/// A value bound to a statement's `?`.
pub(crate) trait Arg {
    fn arg(self) -> Value;
}

impl Arg for Value {
    fn arg(self) -> Value {
        self
    }
}
impl Arg for &str {
    fn arg(self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl Arg for String {
    fn arg(self) -> Value {
        Value::Text(self)
    }
}
impl Arg for &String {
    fn arg(self) -> Value {
        Value::Text(self.clone())
    }
}
impl Arg for i64 {
    fn arg(self) -> Value {
        Value::Integer(self)
    }
}
impl Arg for bool {
    fn arg(self) -> Value {
        Value::Integer(i64::from(self))
    }
}
impl Arg for &[u8] {
    fn arg(self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl Arg for Vec<u8> {
    fn arg(self) -> Value {
        Value::Blob(self)
    }
}
impl<T: Arg> Arg for Option<T> {
    fn arg(self) -> Value {
        self.map_or(Value::Null, Arg::arg)
    }
}

/// The values bound to a statement, in the order of its `?`s: `args![a, b, c]`.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        [$($crate::db::Arg::arg($value)),*]
    };
}
pub(crate) use args;

/// Runs a write function on a `rusqlite` connection to its end. Such a function never waits
/// (see the module's documentation); one that did would be a bug, reported as `Internal`.
pub(crate) fn at_once<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    futures::FutureExt::now_or_never(f)
        .unwrap_or_else(|| Err(Error::internal("a write on the rusqlite connection waited")))
}

/// The values as sqlx's arguments.
fn arguments(args: &[Value]) -> Result<SqliteArguments> {
    let mut out = SqliteArguments::default();
    for a in args {
        match a {
            Value::Null => out.add(None::<i64>),
            Value::Integer(i) => out.add(*i),
            Value::Real(f) => out.add(*f),
            Value::Text(s) => out.add(s.as_str()),
            Value::Blob(b) => out.add(b.as_slice()),
        }
        .map_err(|e| Error::internal(format!("binding a SQLite argument: {e}")))?;
    }
    Ok(out)
}

impl Db for SqliteConnection {
    async fn exec(&mut self, sql: &'static str, args: &[Value]) -> Result<Done> {
        let done = sqlx::query_with(sql, arguments(args)?)
            .execute(&mut *self)
            .await
            .map_err(map_err)?;
        Ok(Done {
            rows: done.rows_affected(),
            last_id: done.last_insert_rowid(),
        })
    }

    async fn first<R: Row>(&mut self, sql: &'static str, args: &[Value]) -> Result<Option<R>> {
        sqlx::query_as_with(sql, arguments(args)?)
            .fetch_optional(&mut *self)
            .await
            .map_err(map_err)
    }

    async fn all<R: Row>(&mut self, sql: &'static str, args: &[Value]) -> Result<Vec<R>> {
        sqlx::query_as_with(sql, arguments(args)?)
            .fetch_all(&mut *self)
            .await
            .map_err(map_err)
    }

    async fn one<R: Row>(&mut self, sql: &'static str, args: &[Value]) -> Result<R> {
        required(self.first(sql, args).await?)
    }
}

/// A `rusqlite` connection lent to a hot read (`hot.rs`), so that a read written against
/// [`Db`] runs there as well.
pub(crate) struct Hot<'c>(pub &'c rusqlite::Connection);

fn exec_on(conn: &rusqlite::Connection, sql: &str, args: &[Value]) -> Result<Done> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.execute(rusqlite::params_from_iter(args)))
        .map(|rows| Done {
            rows: rows as u64,
            last_id: conn.last_insert_rowid(),
        })
        .map_err(map_rusqlite)
}

fn first_on<R: Row>(conn: &rusqlite::Connection, sql: &str, args: &[Value]) -> Result<Option<R>> {
    conn.prepare_cached(sql)
        .and_then(|mut st| {
            let mut rows = st.query(rusqlite::params_from_iter(args))?;
            rows.next()?.map(<R as ReadRow>::from_row).transpose()
        })
        .map_err(map_rusqlite)
}

fn all_on<R: Row>(conn: &rusqlite::Connection, sql: &str, args: &[Value]) -> Result<Vec<R>> {
    conn.prepare_cached(sql)
        .and_then(|mut st| {
            st.query_map(rusqlite::params_from_iter(args), <R as ReadRow>::from_row)?
                .collect::<rusqlite::Result<Vec<R>>>()
        })
        .map_err(map_rusqlite)
}

impl Db for rusqlite::Connection {
    fn exec(&mut self, sql: &'static str, args: &[Value]) -> impl Future<Output = Result<Done>> + Send {
        std::future::ready(exec_on(self, sql, args))
    }

    fn first<R: Row>(&mut self, sql: &'static str, args: &[Value]) -> impl Future<Output = Result<Option<R>>> + Send {
        std::future::ready(first_on(self, sql, args))
    }

    fn all<R: Row>(&mut self, sql: &'static str, args: &[Value]) -> impl Future<Output = Result<Vec<R>>> + Send {
        std::future::ready(all_on(self, sql, args))
    }

    fn one<R: Row>(&mut self, sql: &'static str, args: &[Value]) -> impl Future<Output = Result<R>> + Send {
        std::future::ready(first_on(self, sql, args).and_then(required))
    }
}

impl Db for Hot<'_> {
    fn exec(&mut self, sql: &'static str, args: &[Value]) -> impl Future<Output = Result<Done>> + Send {
        // Hot connections are read-only: SQLite refuses a write here (`Unavailable`).
        std::future::ready(exec_on(self.0, sql, args))
    }

    fn first<R: Row>(&mut self, sql: &'static str, args: &[Value]) -> impl Future<Output = Result<Option<R>>> + Send {
        std::future::ready(first_on(self.0, sql, args))
    }

    fn all<R: Row>(&mut self, sql: &'static str, args: &[Value]) -> impl Future<Output = Result<Vec<R>>> + Send {
        std::future::ready(all_on(self.0, sql, args))
    }

    fn one<R: Row>(&mut self, sql: &'static str, args: &[Value]) -> impl Future<Output = Result<R>> + Send {
        std::future::ready(first_on(self.0, sql, args).and_then(required))
    }
}

/// A statement being put together: its SQL and the values bound to its `?`s.
pub(crate) struct Select {
    pub sql: String,
    pub args: Vec<Value>,
}

impl Select {
    pub(crate) fn new(sql: &str) -> Self {
        let mut out = Self {
            sql: String::with_capacity(1024),
            args: Vec::with_capacity(4),
        };
        out.sql.push_str(sql);
        out
    }

    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    pub(crate) fn bind(&mut self, value: impl Arg) -> &mut Self {
        self.args.push(value.arg());
        self.sql.push('?');
        self
    }

    /// Every row of the statement, on a `rusqlite` connection (prepared once per shape).
    pub(crate) fn rows<R: ReadRow>(&self, conn: &rusqlite::Connection) -> Result<Vec<R>> {
        conn.prepare_cached(&self.sql)
            .and_then(|mut st| {
                st.query_map(rusqlite::params_from_iter(&self.args), <R as ReadRow>::from_row)?
                    .collect()
            })
            .map_err(map_rusqlite)
    }
}

/// Tuples of plain columns read by position (a statement's own column names are not checked:
/// there are no field names to check them against).
macro_rules! tuple_rows {
    ($($t:ident),+) => {
        impl<$($t: rusqlite::types::FromSql),+> ReadRow for ($($t,)+) {
            fn read(row: &rusqlite::Row<'_>, at: &mut usize) -> rusqlite::Result<Self> {
                Ok(($({
                    let v: $t = row.get(*at)?;
                    *at += 1;
                    v
                },)+))
            }
        }
    };
}
tuple_rows!(A);
tuple_rows!(A, B);
tuple_rows!(A, B, C);
tuple_rows!(A, B, C, D);
tuple_rows!(A, B, C, D, E);
tuple_rows!(A, B, C, D, E, F);
