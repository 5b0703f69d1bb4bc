//! The single writer and its group commit.
//!
//! SQLite allows one writer at a time, and with `synchronous=FULL` every `COMMIT` costs an
//! fsync. Rather than let many tasks contend for the write lock (and pay one fsync each), every
//! write is a *job* sent to one task that owns the only read-write connection:
//!
//! 1. it waits for a job, then takes whatever else is already queued (up to [`MAX_BATCH`]);
//! 2. `BEGIN IMMEDIATE` (takes the database write lock now, so the audit chain head read by
//!    the jobs cannot move under them, even from another process);
//! 3. each job runs inside its own `SAVEPOINT`: `RELEASE` when it succeeds, `ROLLBACK TO` +
//!    `RELEASE` when it fails, so one bad job leaves no trace and does not spoil the others
//!    (a job alone in its batch runs without one: if it fails, `ROLLBACK` undoes it);
//! 4. one `COMMIT` for the whole batch;
//! 5. only then is each job answered. A job's success therefore means its change is on disk.
//!    If `COMMIT` fails, every job that had succeeded gets that error instead.
//!
//! While one batch commits, new jobs queue up and form the next batch, so under load many
//! writes share one fsync. Jobs see the effects of earlier jobs of the same batch (same
//! connection, same transaction), which is what keeps the audit chain contiguous.
//!
//! A job runs on one of two connections to the file, both the writer's alone: a `rusqlite`
//! one (the statements of a whole batch are one call on a blocking thread, see `db.rs`) or
//! sqlx's (each statement a hand-off to that connection's worker thread), for the jobs not
//! moved to `rusqlite` yet. A batch is cut where the kind of job changes, and each run of
//! one kind commits on its own connection, one after the other: the two connections never
//! hold a transaction at the same time, so they never wait for each other, and a job always
//! sees every job queued before it.
//!
//! The writer stops when [`Writer::close`] asks it to (after finishing every job already
//! queued) or when every sender is gone; then it closes its connections.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::FutureExt as _;
use futures::future::BoxFuture;
use loft_core::{Error, Result};
use sqlx::{Connection as _, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::db::Db;

/// Most jobs committed together.
pub(crate) const MAX_BATCH: usize = 64;
/// Jobs waiting beyond this many make senders wait (back-pressure instead of unbounded memory).
const QUEUE: usize = 1024;

/// A write on sqlx's connection, inside a transaction and a savepoint.
type SqlxFn<T> = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send>;
/// A write on the `rusqlite` connection, inside a transaction and a savepoint.
type NativeFn<T> = Box<dyn FnOnce(&mut rusqlite::Connection) -> Result<T> + Send>;

/// What the writer needs from a job, whatever its result type.
trait Job: Send {
    /// Whether it runs on the `rusqlite` connection.
    fn native(&self) -> bool;
    /// Runs the job's statements on sqlx's connection and keeps its result until the batch
    /// is decided.
    fn run_sqlx(self: Box<Self>, conn: &mut SqliteConnection) -> BoxFuture<'_, Ran>;
    /// The same on the `rusqlite` connection.
    fn run_native(self: Box<Self>, conn: &mut rusqlite::Connection) -> Ran;
    /// Answers without running (the batch could not start).
    fn abort(self: Box<Self>, err: &Error);
}

/// Answers a job that ran, given the batch's error if the batch failed after it ran.
type Answer = Box<dyn FnOnce(Option<&Error>) + Send>;

/// A job that ran: whether it succeeded, and how to answer once the batch is decided.
struct Ran {
    ok: bool,
    answer: Answer,
}

impl Ran {
    fn new<T: Send + 'static>(result: Result<T>, reply: oneshot::Sender<Result<T>>) -> Self {
        Ran {
            ok: result.is_ok(),
            answer: Box::new(move |batch_err: Option<&Error>| {
                let out = match (result, batch_err) {
                    // The job's own error says more than the batch's: nothing of it was
                    // written either way.
                    (Err(own), _) => Err(own),
                    (Ok(_), Some(e)) => Err(e.clone()),
                    (Ok(v), None) => Ok(v),
                };
                // The caller may have gone away (its request was cancelled): nothing to do.
                let _ = reply.send(out);
            }),
        }
    }
}

enum Body<T> {
    Sqlx(SqlxFn<T>),
    Native(NativeFn<T>),
}

struct TypedJob<T> {
    body: Body<T>,
    reply: oneshot::Sender<Result<T>>,
}

fn panicked() -> Error {
    Error::Internal("a store write panicked".into())
}

impl<T: Send + 'static> Job for TypedJob<T> {
    fn native(&self) -> bool {
        matches!(self.body, Body::Native(_))
    }

    fn run_sqlx(self: Box<Self>, conn: &mut SqliteConnection) -> BoxFuture<'_, Ran> {
        let TypedJob { body, reply } = *self;
        Box::pin(async move {
            let result = match body {
                // A panicking job must not take the writer (and every later write) down with it.
                Body::Sqlx(f) => AssertUnwindSafe(f(conn))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(panicked())),
                Body::Native(_) => Err(Error::internal("a rusqlite write was given sqlx's connection")),
            };
            Ran::new(result, reply)
        })
    }

    fn run_native(self: Box<Self>, conn: &mut rusqlite::Connection) -> Ran {
        let TypedJob { body, reply } = *self;
        let result = match body {
            Body::Native(f) => {
                std::panic::catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|_| Err(panicked()))
            }
            Body::Sqlx(_) => Err(Error::internal("a sqlx write was given the rusqlite connection")),
        };
        Ran::new(result, reply)
    }

    fn abort(self: Box<Self>, err: &Error) {
        let _ = self.reply.send(Err(err.clone()));
    }
}

/// A connection the writer commits batches on.
trait Driver: Db + Sized {
    fn run(job: Box<dyn Job>, conn: &mut Self) -> BoxFuture<'_, Ran>;
}

impl Driver for SqliteConnection {
    fn run(job: Box<dyn Job>, conn: &mut Self) -> BoxFuture<'_, Ran> {
        job.run_sqlx(conn)
    }
}

impl Driver for rusqlite::Connection {
    fn run(job: Box<dyn Job>, conn: &mut Self) -> BoxFuture<'_, Ran> {
        Box::pin(std::future::ready(job.run_native(conn)))
    }
}

enum Msg {
    Job(Box<dyn Job>),
    Close(oneshot::Sender<()>),
}

/// The sending side, held by the store.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
    counts: Arc<Counts>,
}

/// What the writer has done, counted before it answers the batch's jobs.
#[derive(Default)]
struct Counts {
    /// Batches committed.
    commits: AtomicU64,
    /// Batches ended, committed or rolled back: whatever a read saw before this number last
    /// changed may have changed since (`Store::data_epoch`).
    ended: AtomicU64,
}

fn stopped() -> Error {
    Error::Unavailable("the SQLite store is closed".into())
}

impl Writer {
    /// Starts the writer task on `conn` and `native`, which must be the store's only
    /// read-write connections.
    pub(crate) fn spawn(conn: SqliteConnection, native: rusqlite::Connection) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let counts = Arc::new(Counts::default());
        tokio::spawn(run(conn, native, rx, Arc::clone(&counts)));
        Self { tx, counts }
    }

    /// Batches committed so far (for tests and diagnostics: fewer than the writes means
    /// group commit is doing its work).
    pub(crate) fn commits(&self) -> u64 {
        self.counts.commits.load(Ordering::Relaxed)
    }

    /// Batches ended so far (committed or not), counted after the batch's `COMMIT` (or
    /// `ROLLBACK`) and before its jobs are answered: a read that loaded this number and then
    /// read the database saw every write whose call had returned, and no write it did not see
    /// has ended while this number stays the same.
    pub(crate) fn ended(&self) -> u64 {
        self.counts.ended.load(Ordering::SeqCst)
    }

    /// Runs `f` on sqlx's connection in the next batch and returns its result once the batch
    /// is committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        self.queue(Body::Sqlx(Box::new(f))).await
    }

    /// Runs `f` on the `rusqlite` connection in the next batch and returns its result once the
    /// batch is committed.
    pub(crate) async fn write_native<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T> + Send + 'static,
    {
        self.queue(Body::Native(Box::new(f))).await
    }

    async fn queue<T: Send + 'static>(&self, body: Body<T>) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let job = TypedJob { body, reply };
        self.tx.send(Msg::Job(Box::new(job))).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Finishes the jobs already queued, refuses new ones, closes the connection, and returns
    /// when all that is done. Calling it again returns at once.
    pub(crate) async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Close(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

async fn run(
    mut conn: SqliteConnection,
    native: rusqlite::Connection,
    mut rx: mpsc::Receiver<Msg>,
    counts: Arc<Counts>,
) {
    // Taken while a batch runs on a blocking thread; gone only if that thread was lost.
    let mut native = Some(native);
    let mut closers = Vec::new();
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Job(job) => batch.push(job),
                Msg::Close(ack) => {
                    // Refuse new jobs; those already queued are still received and run.
                    rx.close();
                    closers.push(ack);
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        // Runs of one kind, in queue order, each committed on its own connection.
        let mut jobs = std::mem::take(&mut batch).into_iter().peekable();
        while let Some(first) = jobs.next() {
            let kind = first.native();
            let mut run = vec![first];
            while let Some(job) = jobs.next_if(|j| j.native() == kind) {
                run.push(job);
            }
            if kind {
                commit_native(&mut native, run, &counts).await;
            } else {
                commit_batch(&mut conn, run, &counts).await;
            }
        }
    }
    drop(native);
    // Fold the WAL back into the database file so a stopped server leaves one tidy file
    // (best effort: a reader still inside a transaction can hold part of it back).
    if let Err(e) = conn.exec("PRAGMA wal_checkpoint(TRUNCATE)", &[]).await {
        tracing::debug!(error = %e, "final WAL checkpoint");
    }
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the SQLite writer connection");
    }
    for ack in closers {
        let _ = ack.send(());
    }
}

/// Commits `run` on the `rusqlite` connection, on a blocking thread (its statements, and the
/// fsync of its `COMMIT`, would otherwise hold up a Tokio worker).
async fn commit_native(native: &mut Option<rusqlite::Connection>, run: Vec<Box<dyn Job>>, counts: &Arc<Counts>) {
    let Some(mut conn) = native.take() else {
        for job in run {
            job.abort(&stopped());
        }
        return;
    };
    let counts = Arc::clone(counts);
    let done = tokio::task::spawn_blocking(move || {
        // Every statement of a rusqlite job is done when called: the batch never waits.
        let finished = commit_batch(&mut conn, run, &counts).now_or_never();
        debug_assert!(finished.is_some(), "a rusqlite batch waited");
        conn
    })
    .await;
    match done {
        Ok(conn) => *native = Some(conn),
        // Its jobs' callers see the store as stopped; later rusqlite jobs are refused.
        Err(e) => tracing::error!(error = %e, "the SQLite writer lost its rusqlite connection"),
    }
}

async fn exec<D: Db>(conn: &mut D, sql: &'static str) -> Result<()> {
    conn.exec(sql, &[]).await.map(|_| ())
}

/// Leaves the connection outside any transaction, whatever state a failure left it in.
async fn rollback<D: Db>(conn: &mut D) {
    // Fails harmlessly ("no transaction is active") when SQLite already rolled back itself.
    let _ = exec(conn, "ROLLBACK").await;
}

/// Runs one batch and answers its jobs, counting it (before the answers) in `counts.ended`,
/// and in `counts.commits` when it committed.
async fn commit_batch<D: Driver>(conn: &mut D, batch: Vec<Box<dyn Job>>, counts: &Counts) {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE").await {
        // Each job's caller gets (and logs, at its edge) the error; this only adds the batch.
        tracing::debug!(error = %e, jobs = batch.len(), "could not start a write transaction");
        rollback(conn).await;
        for job in batch {
            job.abort(&e);
        }
        return;
    }
    // A job alone in its batch needs no savepoint: if it fails, the whole transaction is
    // rolled back, which undoes exactly that job. (A savepoint makes SQLite copy every page
    // the job changes to its sub-journal first: 8% of the CPU of an inbound mail delivered
    // one at a time; docs/benchmarks.md, "... a lone job without a savepoint".)
    let savepoints = batch.len() > 1;
    let mut ran: Vec<Ran> = Vec::with_capacity(batch.len());
    let mut failure: Option<Error> = None;
    let mut jobs = batch.into_iter();
    for job in jobs.by_ref() {
        if savepoints && let Err(e) = exec(conn, "SAVEPOINT job").await {
            job.abort(&e);
            failure = Some(e);
            break;
        }
        let done = D::run(job, conn).await;
        let end = match (savepoints, done.ok) {
            (false, _) => Ok(()),
            (true, true) => exec(conn, "RELEASE job").await,
            // ROLLBACK TO keeps the savepoint open; RELEASE removes it. If SQLite rolled the
            // whole transaction back on its own (disk full, I/O error), this fails, and so
            // does the batch.
            (true, false) => match exec(conn, "ROLLBACK TO job").await {
                Ok(()) => exec(conn, "RELEASE job").await,
                Err(e) => Err(e),
            },
        };
        ran.push(done);
        if let Err(e) = end {
            failure = Some(e);
            break;
        }
    }
    // Without savepoints, a failed job's writes are still in the transaction: it is not
    // committed (the job's own error is its answer; the batch itself did not fail).
    let undo = !savepoints && ran.iter().any(|done| !done.ok);
    if let Some(e) = &failure {
        for job in jobs {
            job.abort(e);
        }
    } else if !undo && let Err(e) = exec(conn, "COMMIT").await {
        failure = Some(e);
    }
    if let Some(e) = &failure {
        tracing::debug!(error = %e, jobs = ran.len(), "write batch failed and was rolled back");
        rollback(conn).await;
    } else if undo {
        tracing::debug!("a write job failed and its transaction was rolled back");
        rollback(conn).await;
    } else {
        counts.commits.fetch_add(1, Ordering::Relaxed);
    }
    counts.ended.fetch_add(1, Ordering::SeqCst);
    for done in ran {
        (done.answer)(failure.as_ref());
    }
}
