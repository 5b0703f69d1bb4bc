//! Unit tests of what is particular to the SQLite store, each on a fresh file: group commit
//! and the writer's handling of failing jobs, how connections are set up, the file itself (two
//! stores on one file, URLs, closing and reopening) and the append-only log as the schema
//! enforces it. The store contract is checked on every backend by the shared conformance suite
//! (`loft_testkit::conformance`, run from `tests/conformance.rs`).

#![allow(
    clippy::unwrap_used,
    reason = "tests: an unexpected error must fail the test that hit it, with its message"
)]

use std::sync::Arc;

use loft_core::Error;
use loft_core::audit::{AuditEntry, verify_chain};
use loft_core::mail::{MessagePatch, ReplyMail};
use loft_core::store::{AuditStore, IdentityQuery, IdentityStore, MailStore, Store};
use loft_core::time::Timestamp;
use loft_testkit::conformance::operator_entry;
use tempfile::TempDir;

use crate::SqliteStore;
use crate::db::Db as _;

/// A store on a fresh file in its own temporary directory.
async fn fresh() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::open(&dir.path().join("loft.db")).await.unwrap();
    (dir, store)
}

fn entry(action: &str) -> AuditEntry {
    operator_entry(action, Timestamp::from_micros(1_795_000_000_000_000))
}

/// Appends `e` to the audit log in a job on the writer's sqlx connection.
async fn sqlx_append(store: &SqliteStore, e: AuditEntry) -> loft_core::Result<()> {
    store
        .write(move |c| Box::pin(async move { crate::audit::append(c, e).await.map(|_| ()) }))
        .await
}

/// Verifies the whole chain; returns how many rows it holds.
async fn assert_chain_ok(store: &SqliteStore) -> i64 {
    let head = store.audit_head().await.unwrap();
    let rows = store.audit_after(0, 10_000).await.unwrap();
    let report = verify_chain(&rows, head);
    assert!(report.ok, "{report:?}");
    report.rows_checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_chain_verifies_after_200_concurrent_writes_sharing_commits() {
    let (_dir, store) = fresh().await;
    let store = Arc::new(store);
    let t = Arc::new(loft_testkit::test_loft(store.clone()));
    let creator = ["mail:read", "mail:send", "mail:manage", "identity:create"];
    let (ann, aa) = t.identity_with_scopes("ann", &creator).await;
    let (bob, _) = t.identity("bob").await;
    let first = t.send(&aa, &[bob.identity.address.as_str()], "Seed", "x").await;
    let setup_rows = assert_chain_ok(&store).await;
    let commits_before = store.committed_batches();

    let mut tasks = Vec::new();
    for i in 0..200 {
        let (t, store, aa, first) = (Arc::clone(&t), Arc::clone(&store), aa.clone(), first.id.clone());
        tasks.push(tokio::spawn(async move {
            match i % 4 {
                0 => store.append_audit(entry("auth.refused")).await.unwrap(),
                1 => {
                    let reply = ReplyMail {
                        idempotency_key: None,
                        send_at: None,
                        text: format!("n{i}"),
                        html: None,
                        reply_all: false,
                        attachments: vec![],
                    };
                    t.loft.reply(&aa, first.as_str(), reply).await.unwrap();
                }
                2 => {
                    let patch = MessagePatch {
                        add_labels: vec![format!("l{i}")],
                        ..Default::default()
                    };
                    t.loft.update_message(&aa, first.as_str(), patch).await.unwrap();
                }
                _ => drop(t.child(&aa, &format!("c{i}"), None).await),
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rows = assert_chain_ok(&store).await;
    assert_eq!(rows, setup_rows + 200);
    let commits = store.committed_batches() - commits_before;
    eprintln!("200 concurrent writes: {commits} commits");
    assert!(
        commits < 200,
        "200 concurrent writes took {commits} commits: nothing was grouped"
    );
    // Every write landed.
    let seed = store.get_message(&ann.identity.id, &first.id).await.unwrap().unwrap();
    assert_eq!(seed.labels.len(), 50);
    let children = store
        .list_identities(IdentityQuery {
            within: Some(ann.identity.id.clone()),
            limit: 200,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(children.items.len(), 51);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_keep_one_chain() {
    // Two `SqliteStore`s on one file stand for two processes: each has its own writer, and
    // BEGIN IMMEDIATE (with the busy timeout) serialises their batches on the file lock.
    let (_dir, store) = fresh().await;
    let store = Arc::new(store);
    let other = Arc::new(crate::open(store.path()).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (store, other) = (Arc::clone(&store), Arc::clone(&other));
        tasks.push(tokio::spawn(async move {
            let e = entry("node.write");
            if i % 2 == 0 {
                store.append_audit(e).await
            } else {
                other.append_audit(e).await
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(assert_chain_ok(&store).await, 100);
    assert_eq!(other.audit_head().await.unwrap(), store.audit_head().await.unwrap());
    other.close().await;
}

#[tokio::test]
async fn a_failing_job_does_not_spoil_the_other_jobs_of_its_batch() {
    let (_dir, store) = fresh().await;
    store.append_audit(entry("setup")).await.unwrap();
    let commits_before = store.committed_batches();

    // On this single-threaded runtime the writer cannot run until this task yields, and
    // `join!` first polls each future in order, which queues its job: the three jobs are
    // queued, in this order, before the writer takes any, so they form one batch.
    let good1 = sqlx_append(&store, entry("good.one"));
    let bad_entry = entry("bad");
    let bad = store.write(move |c| {
        Box::pin(async move {
            // Writes an audit row and moves the head, then fails: all of it must go.
            crate::audit::append(c, bad_entry).await?;
            sqlx::query("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, 'x')")
                .execute(&mut *c)
                .await
                .map_err(crate::error::map_err)?;
            Ok(())
        })
    });
    let good2 = sqlx_append(&store, entry("good.two"));
    let (good1, bad, good2) = tokio::join!(good1, bad, good2);

    good1.unwrap();
    let e = bad.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    good2.unwrap();
    assert_eq!(store.committed_batches() - commits_before, 1, "one batch of three");

    let rows = store.audit_after(0, 100).await.unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(actions, vec!["setup", "good.one", "good.two"]);
    assert_chain_ok(&store).await;
}

/// A job alone in its batch runs without a savepoint: when it fails (an error, or a panic),
/// its transaction is rolled back whole, so nothing of it remains, on either connection, and
/// the writer carries on.
#[tokio::test]
async fn a_lone_failing_job_leaves_nothing_on_either_connection() {
    let (_dir, store) = fresh().await;
    store.append_audit(entry("setup")).await.unwrap();
    let commits_before = store.committed_batches();
    let native_entry = entry("bad.native");
    let e = store
        .write_native(move |c| {
            crate::db::at_once(async {
                crate::audit::append(c, native_entry).await?;
                c.exec("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, 'x')", &[])
                    .await?;
                Ok(())
            })
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "its own error: {e:?}");
    let sqlx_entry = entry("bad.sqlx");
    let e = store
        .write(move |c| {
            Box::pin(async move {
                crate::audit::append(c, sqlx_entry).await?;
                sqlx::query("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, 'x')")
                    .execute(&mut *c)
                    .await
                    .map_err(crate::error::map_err)?;
                Ok(())
            })
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    let panicked_entry = entry("bad.panic");
    let e = store
        .write_native(move |c| -> loft_core::Result<()> {
            crate::db::at_once(crate::audit::append(c, panicked_entry))?;
            panic!("after writing")
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    assert_eq!(store.committed_batches(), commits_before, "nothing committed");

    store.append_audit(entry("after")).await.unwrap();
    sqlx_append(&store, entry("after.sqlx")).await.unwrap();
    let rows = store.audit_after(0, 100).await.unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(actions, vec!["setup", "after", "after.sqlx"]);
    assert_eq!(assert_chain_ok(&store).await, 3);
}

/// `data_epoch` (what Loft keeps hot reads under) moves before a write's call returns, on
/// either connection, whether the write committed or failed, and not for reads.
#[tokio::test]
async fn the_data_epoch_moves_before_each_write_returns_and_not_for_reads() {
    let (_dir, store) = fresh().await;
    let epoch = || store.data_epoch().expect("SQLite knows every write");
    let start = epoch();
    store.audit_head().await.unwrap();
    store.audit_after(0, 10).await.unwrap();
    assert_eq!(epoch(), start, "reads leave it");
    store.append_audit(entry("native")).await.unwrap();
    let after_native = epoch();
    assert!(after_native > start);
    sqlx_append(&store, entry("sqlx")).await.unwrap();
    let after_sqlx = epoch();
    assert!(after_sqlx > after_native);
    let e = store
        .write_native(|c| crate::db::at_once(c.exec("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, 'x')", &[])))
        .await;
    assert!(e.is_err());
    assert!(epoch() > after_sqlx, "a failed write moves it too");
}

#[tokio::test]
async fn a_failing_rusqlite_job_does_not_spoil_its_batch_and_both_kinds_keep_queue_order() {
    let (_dir, store) = fresh().await;
    store.append_audit(entry("setup")).await.unwrap();
    let commits_before = store.committed_batches();
    let native = |action: &'static str| {
        let e = entry(action);
        store.write_native(move |c| crate::db::at_once(crate::audit::append(c, e)).map(|_| ()))
    };

    // Queued in this order before the writer takes any (see the test above): three rusqlite
    // jobs, a sqlx one, a rusqlite one. The batch is cut into three runs, in queue order.
    let good1 = native("native.one");
    let bad_entry = entry("bad");
    let bad = store.write_native(move |c| {
        crate::db::at_once(async {
            crate::audit::append(c, bad_entry).await?;
            c.exec("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, 'x')", &[])
                .await?;
            Ok(())
        })
    });
    let good2 = native("native.two");
    let sqlx_job = sqlx_append(&store, entry("sqlx.three"));
    let good4 = native("native.four");
    let (good1, bad, good2, sqlx_job, good4) = tokio::join!(good1, bad, good2, sqlx_job, good4);

    good1.unwrap();
    let e = bad.unwrap_err();
    assert!(
        matches!(e, Error::Conflict(_)),
        "a unique violation is a conflict on rusqlite too: {e:?}"
    );
    good2.unwrap();
    sqlx_job.unwrap();
    good4.unwrap();
    assert_eq!(
        store.committed_batches() - commits_before,
        3,
        "one commit per run of one kind"
    );

    let rows = store.audit_after(0, 100).await.unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["setup", "native.one", "native.two", "sqlx.three", "native.four"]
    );
    assert_chain_ok(&store).await;

    // A panic in a rusqlite job is that job's error; the writer and its connection carry on.
    let e = store
        .write_native(|_c| -> loft_core::Result<()> { panic!("boom") })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    native("after.panic").await.unwrap();
    assert_eq!(assert_chain_ok(&store).await, 6);
}

#[tokio::test]
async fn connections_are_set_up_as_designed() {
    let (_dir, store) = fresh().await;
    assert_eq!(loft_core::store::Store::backend(&store), "sqlite");
    let (journal, ints): (String, Vec<i64>) = store
        .write(|c| {
            Box::pin(async move {
                let journal = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(&mut *c)
                    .await
                    .map_err(crate::error::map_err)?;
                let mut ints = Vec::new();
                for pragma in ["PRAGMA synchronous", "PRAGMA foreign_keys", "PRAGMA busy_timeout"] {
                    let value = sqlx::query_scalar(pragma).fetch_one(&mut *c).await;
                    ints.push(value.map_err(crate::error::map_err)?);
                }
                Ok((journal, ints))
            })
        })
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    let [sync, fk, busy] = ints[..] else {
        panic!("three pragmas: {ints:?}")
    };
    assert_eq!(sync, 2, "synchronous=FULL");
    assert_eq!(fk, 1);
    assert_eq!(busy, 5000);
    // The writer's rusqlite connection: the same settings.
    let native: Vec<i64> = store
        .write_native(|c| {
            ["PRAGMA synchronous", "PRAGMA foreign_keys", "PRAGMA busy_timeout"]
                .iter()
                .map(|p| c.query_row(p, [], |r| r.get(0)).map_err(crate::error::map_rusqlite))
                .collect()
        })
        .await
        .unwrap();
    assert_eq!(native, ints);

    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&store.reader)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let write = sqlx::query("INSERT INTO mail_contents (text, extracted_text) VALUES ('a', 'a')")
        .execute(&store.reader)
        .await
        .unwrap_err();
    assert!(write.to_string().contains("readonly"), "{write}");

    // The bundled SQLite is built as .cargo/config.toml says: no memory statistics (a
    // process-wide mutex on every allocation).
    let options: Vec<String> = store
        .hot(crate::hot::Cost::Short, |c| {
            let mut st = c
                .prepare("PRAGMA compile_options")
                .map_err(crate::error::map_rusqlite)?;
            st.query_map([], |r| r.get(0))
                .and_then(Iterator::collect)
                .map_err(crate::error::map_rusqlite)
        })
        .await
        .unwrap();
    assert!(
        options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
        "built with LIBSQLITE3_FLAGS=-DSQLITE_DEFAULT_MEMSTATUS=0: {options:?}"
    );
}

#[tokio::test]
async fn a_panicking_job_is_an_error_and_the_writer_carries_on() {
    let (_dir, store) = fresh().await;
    let e = store
        .write(|_c| -> futures::future::BoxFuture<'_, loft_core::Result<()>> { Box::pin(async { panic!("boom") }) })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    store.append_audit(entry("after.panic")).await.unwrap();
    assert_eq!(assert_chain_ok(&store).await, 1);
}

#[tokio::test]
async fn the_audit_log_is_append_only_even_to_the_stores_own_sql() {
    let (_dir, store) = fresh().await;
    for action in ["one", "two"] {
        store.append_audit(entry(action)).await.unwrap();
    }
    let e = store
        .write(|c| {
            Box::pin(async move {
                sqlx::query("DELETE FROM audit_log")
                    .execute(c)
                    .await
                    .map_err(crate::error::map_err)
                    .map(|_| ())
            })
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    assert_eq!(assert_chain_ok(&store).await, 2);
}

#[tokio::test]
async fn urls_files_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let url = format!("sqlite://{}", path.display());
    let store = crate::open_url(&url).await.unwrap();
    assert_eq!(store.path(), path.as_path());
    store.append_audit(entry("one")).await.unwrap();
    store.close().await;
    store.close().await;
    let e = store.append_audit(entry("two")).await.unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    let e = store.audit_head().await.unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");

    // Reopened (the other URL form): the row is there, and migrations do not run twice.
    let store = crate::open_url(&format!("sqlite:{}", path.display())).await.unwrap();
    assert_eq!(store.audit_head().await.unwrap().unwrap().seq, 1);
    store.close().await;

    assert!(
        crate::open(&dir.path().join("missing-dir/x.db")).await.is_err(),
        "parent directories are not created"
    );
    for bad in ["postgres://x", "sqlite://", "sqlite::memory:", "sqlite://x.db?mode=rwc"] {
        let e = crate::open_url(bad).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{bad}: {e:?}");
    }
}

/// The migration `0013_caps_contacts` fills `contacts` from the mail already stored: on a
/// mailbox written by the live code, it finds the rows the live code recorded (first-sent
/// times exactly; a recipient of approved mail is dated by the mail, not the approval).
#[tokio::test]
async fn the_contacts_backfill_finds_what_sends_recorded() {
    type Row = (String, String, Option<i64>, bool);
    use sqlx::Connection as _;
    let (dir, store) = fresh().await;
    let store = Arc::new(store);
    let t = loft_testkit::test_loft(store.clone());
    loft_testkit::conformance::contacts_story(&t).await;
    drop(t);
    store.close().await;

    let url = format!("sqlite://{}", dir.path().join("loft.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let read = "SELECT identity_id, address, first_sent_at, first_received_at IS NOT NULL FROM contacts \
                ORDER BY identity_id, address";
    let live: Vec<Row> = sqlx::query_as(read).fetch_all(&mut conn).await.unwrap();
    assert!(live.len() >= 10, "{live:?}");
    assert!(
        live.iter().any(|r| r.1 == "hidden@example.com"),
        "bcc recipients are contacts"
    );
    assert!(
        !live.iter().any(|r| r.1 == "pending@example.com"),
        "held mail records nothing"
    );
    sqlx::query("DELETE FROM contacts").execute(&mut conn).await.unwrap();
    let migration = include_str!("../migrations/0013_caps_contacts.sql");
    let backfill = &migration[migration.find("INSERT INTO contacts").unwrap()..];
    sqlx::raw_sql(sqlx::AssertSqlSafe(backfill.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
    let filled: Vec<Row> = sqlx::query_as(read).fetch_all(&mut conn).await.unwrap();
    // To the second: a released scheduled mail's time is its send_at in the backfill and the
    // release's moment live, which the manual clock puts a few microseconds later.
    let seconds = |rows: Vec<Row>| -> Vec<Row> {
        rows.into_iter()
            .map(|(i, a, sent, received)| (i, a, sent.map(|t| t / 1_000_000), received))
            .collect()
    };
    assert_eq!(seconds(filled), seconds(live));
}

/// Deleting for ever removes the content and raw bytes with the last copy, and every index row.
#[tokio::test]
async fn delete_for_ever_removes_shared_content_with_the_last_copy() {
    let (_dir, store) = fresh().await;
    let store = Arc::new(store);
    let t = loft_testkit::test_loft(store.clone());
    let count = |sql: &'static str| {
        let store = store.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&store.reader)
                .await
                .unwrap()
        }
    };
    loft_testkit::conformance::delete_content_story(&t, || async {
        assert_eq!(count("SELECT COUNT(*) FROM messages").await, 1);
        assert_eq!(count("SELECT COUNT(*) FROM mail_contents").await, 1, "still Alice's");
        assert_eq!(count("SELECT COUNT(*) FROM mail_raw").await, 1);
        assert_eq!(count("SELECT COUNT(*) FROM message_labels").await, 0);
        assert_eq!(
            count("SELECT COUNT(*) FROM message_search WHERE message_search MATCH 'narwhal'").await,
            1
        );
    })
    .await;
    for table in [
        "messages",
        "mail_contents",
        "mail_raw",
        "message_labels",
        "idempotency_keys",
    ] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&store.reader)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    assert_eq!(
        count("SELECT COUNT(*) FROM message_search WHERE message_search MATCH 'narwhal'").await,
        0
    );
    assert_eq!(count("SELECT COALESCE(SUM(bytes), 0) FROM mailbox_usage").await, 0);
    assert_chain_ok(&store).await;
}

/// Hot reads run on `rusqlite` connections on blocking threads (`hot.rs`): a read whose
/// caller stopped waiting leaves no broken connection behind, more reads at once than
/// connections wait their turn and each sees the committed state, and a closed store refuses
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reads_survive_dropped_reads_and_bursts() {
    let (_dir, store) = fresh().await;
    store.append_audit(entry("first")).await.unwrap();
    let want = store.audit_head().await.unwrap().unwrap();
    // Dropped at once, or after one poll, or mid-statement: whichever the timer hits.
    for micros in [0, 1, 10, 50, 100, 500] {
        for _ in 0..20 {
            let _ = tokio::time::timeout(std::time::Duration::from_micros(micros), store.audit_head()).await;
        }
    }
    let burst = futures::future::join_all((0..64).map(|_| store.audit_head())).await;
    for got in burst {
        assert_eq!(got.unwrap().unwrap(), want);
    }
    // A write committed by the writer is seen by the next hot read on every connection.
    store.append_audit(entry("second")).await.unwrap();
    let burst = futures::future::join_all((0..16).map(|_| store.audit_head())).await;
    for got in burst {
        assert_eq!(got.unwrap().unwrap().seq, want.seq + 1);
    }
    store.close().await;
    assert!(matches!(store.audit_head().await, Err(Error::Unavailable(_))));
}

/// Every hot read keeps its prepared statement: none is prepared again when it runs. (SQLite
/// prepares a statement again at each run when its plan used a bound value, e.g. a bound
/// `LIMIT`; the inbox list did that on every call.)
#[tokio::test]
async fn hot_statements_are_prepared_once() {
    use loft_core::mail::{Folder, MessageQuery};
    use loft_core::store::{OversightStore as _, SendingStore as _, Store as _};
    let (_dir, store) = fresh().await;
    let store = Arc::new(store);
    let t = loft_testkit::test_loft(store.clone());
    let (_, parent_actor) = t
        .identity_with_scopes("parent", &["mail:read", "mail:send", "identity:create"])
        .await;
    let (child, _) = t.child(&parent_actor, "child", None).await;
    t.send(&parent_actor, &[child.identity.address.as_str()], "hello", "one")
        .await;
    let owner = child.identity.id.clone();
    let shapes = [
        MessageQuery {
            limit: 20,
            ..MessageQuery::default()
        },
        MessageQuery {
            folder: Some(Folder::Inbox),
            archived: Some(false),
            limit: 20,
            ..MessageQuery::default()
        },
        MessageQuery {
            folder: Some(Folder::Sent),
            before_seq: Some(1_000),
            limit: 5,
            ..MessageQuery::default()
        },
    ];
    // One read at a time: each takes the connection the one before gave back.
    for _ in 0..3 {
        assert!(store.find_key(&child.key_id).await.unwrap().is_some());
        assert!(store.get_identity(&owner).await.unwrap().is_some());
        assert_eq!(store.ancestors(&owner).await.unwrap().len(), 1);
        store.usage(&owner).await.unwrap();
        store.instance_caps().await.unwrap();
        store.get_mode_request(&owner).await.unwrap();
        assert_eq!(store.whoami_context(&child.identity).await.unwrap().ancestors.len(), 1);
        store.audit_head().await.unwrap();
        for q in &shapes {
            store.list_messages(&owner, q.clone()).await.unwrap();
        }
    }
    let mut statements: Vec<String> = [
        crate::identities::FIND_KEY,
        crate::identities::GET,
        crate::identities::ANCESTORS,
        crate::identities::USAGE,
        crate::caps::INSTANCE_CAPS,
        crate::oversight_edits::GET_MODE_REQUEST,
        crate::audit::HEAD,
        "BEGIN",
        "COMMIT",
    ]
    .map(str::to_owned)
    .to_vec();
    statements.extend(
        shapes
            .iter()
            .map(|q| crate::mail::list_select(&owner, q, crate::page_limit(q.limit)).sql),
    );
    let counts = store
        .hot(crate::hot::Cost::Short, move |c| {
            statements
                .iter()
                .map(|sql| {
                    let st = c.prepare_cached(sql).map_err(crate::error::map_rusqlite)?;
                    let runs = st.get_status(rusqlite::StatementStatus::Run);
                    let again = st.get_status(rusqlite::StatementStatus::RePrepare);
                    Ok((sql.clone(), runs, again))
                })
                .collect::<loft_core::Result<Vec<_>>>()
        })
        .await
        .unwrap();
    for (sql, runs, again) in counts {
        assert!(
            runs >= 3,
            "each hot read ran at least three times on this connection: {sql}"
        );
        assert_eq!(again, 0, "prepared again when it ran: {sql}");
    }
}

/// The same for the writer's `rusqlite` connection: the job runner's claim, run once per pass,
/// is prepared once (its page size is part of its SQL; bound, it made SQLite prepare the
/// statement again at every run).
#[tokio::test]
async fn the_writers_statements_are_prepared_once() {
    use loft_core::jobs::{JobStore as _, NewJob};
    let (_dir, store) = fresh().await;
    let now = Timestamp::from_micros(1_000_000);
    for i in 0..3 {
        let job = NewJob {
            kind: "test.kind".into(),
            payload: format!("{{\"n\": {i}}}"),
            owner: None,
            run_at: now,
            max_attempts: 1,
        };
        store.enqueue_job(job).await.unwrap();
    }
    let later = Timestamp::from_micros(2_000_000);
    for _ in 0..3 {
        let claimed = store.claim_jobs(&["test.kind"], "w", now, later, 1).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert!(store.complete_job(claimed[0].id, "w", now).await.unwrap());
    }
    let (runs, again) = store
        .write_native(|c| {
            let st = c
                .prepare_cached(&crate::jobs::claim_sql(1))
                .map_err(crate::error::map_rusqlite)?;
            Ok((
                st.get_status(rusqlite::StatementStatus::Run),
                st.get_status(rusqlite::StatementStatus::RePrepare),
            ))
        })
        .await
        .unwrap();
    assert!(runs >= 3, "the claim ran three times on the writer: {runs}");
    assert_eq!(again, 0, "the claim was prepared again when it ran");
}

/// `hot::snapshot` ends its read transaction whatever its read did, and a connection a read
/// left inside a transaction (its snapshot pinned) is not lent to the next read.
#[tokio::test]
async fn a_snapshot_ends_its_transaction_and_a_connection_left_in_one_is_not_kept() {
    use crate::hot::{Cost, snapshot};
    let (_dir, store) = fresh().await;
    let in_transaction = |c: &rusqlite::Connection| Ok(!c.is_autocommit());
    let out = store
        .hot(Cost::Short, move |c| {
            snapshot(c, |c| {
                assert!(in_transaction(c)?, "inside the snapshot");
                c.query_row("SELECT nothing FROM nowhere", [], |_| Ok(()))
                    .map_err(crate::error::map_rusqlite)
            })
        })
        .await;
    assert!(out.is_err(), "{out:?}");
    assert!(
        !store.hot(Cost::Short, in_transaction).await.unwrap(),
        "ended though its read failed"
    );
    assert_eq!(
        store
            .hot(Cost::Short, |c| snapshot(c, |c| c
                .query_row("SELECT 7", [], |r| r.get::<_, i64>(0))
                .map_err(crate::error::map_rusqlite)))
            .await
            .unwrap(),
        7
    );
    // A read that leaves a transaction open: its connection is closed, not lent again.
    for cost in [Cost::Short, Cost::Long] {
        store
            .hot(cost, |c| {
                c.execute_batch("BEGIN; SELECT 1;").map_err(crate::error::map_rusqlite)
            })
            .await
            .unwrap();
        assert!(!store.hot(Cost::Short, in_transaction).await.unwrap(), "{cost:?}");
    }
}

/// A short hot read runs on the calling thread with a busy timeout of zero; one that SQLite
/// would make wait (`Unavailable`) runs again on a blocking thread, where the connection waits
/// for locks as every other does; a long read runs there from the start. Connections go back
/// with the timeout at zero.
#[tokio::test]
async fn a_short_read_that_would_wait_runs_again_where_it_may_wait() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::hot::Cost;
    let (_dir, store) = fresh().await;
    let busy_timeout = |c: &rusqlite::Connection| -> loft_core::Result<i64> {
        c.query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .map_err(crate::error::map_rusqlite)
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let thread = std::thread::current().id();
    let out = store
        .hot(Cost::Short, move |c| {
            let timeout = busy_timeout(c)?;
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                assert_eq!(timeout, 0, "a short read does not wait for a lock");
                assert_eq!(std::thread::current().id(), thread, "on the calling thread");
                return Err(Error::Unavailable("SQLite: database is locked (code 5)".into()));
            }
            assert_ne!(std::thread::current().id(), thread, "again on a blocking thread");
            Ok(timeout)
        })
        .await
        .unwrap();
    assert_eq!((out, calls.load(Ordering::SeqCst)), (5000, 2));
    assert_eq!(store.hot(Cost::Long, busy_timeout).await.unwrap(), 5000);
    assert_eq!(
        store.hot(Cost::Short, busy_timeout).await.unwrap(),
        0,
        "given back at zero"
    );
    // Any other error is the answer: no second run.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let out = store
        .hot(Cost::Short, move |_| -> loft_core::Result<()> {
            seen.fetch_add(1, Ordering::SeqCst);
            Err(Error::internal("broken"))
        })
        .await;
    assert!(matches!(out, Err(Error::Internal(_))));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
