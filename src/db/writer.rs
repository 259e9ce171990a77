//! Group commit: every write of the process goes through one writer thread, which runs
//! whatever writes are waiting as one SQLite transaction with one commit (one fsync with
//! `synchronous=FULL`), each write after the first inside a savepoint of its own (the
//! first needs none: when it fails, the transaction is rolled back and begun again).
//!
//! SQLite admits one writer at a time, and a durable commit costs a flush of the log: one
//! transaction per request would make the flush the ceiling of every SCIM write. Here,
//! while one batch commits, the next requests queue; the writer then takes all of them
//! (up to [`MAX_BATCH`]) and commits them together. Nothing waits on a timer: a lone write
//! is committed at once, and batches grow only when writes really arrive together.
//!
//! What each write sees is what it would see alone: the writes of the batch run one after
//! another, in arrival order, each on the database as the ones before it left it. A write
//! whose closure fails (or panics) is rolled back to its savepoint and leaves no trace; the
//! others go on. Each caller is answered only after the batch's commit: success when the
//! commit is durable, or, when the commit fails, the commit's error (nothing of the batch
//! was written). When SQLite rolls back the whole transaction on its own (a full disk, an
//! I/O error), the writes that ran fail and nothing is written; those that had not run yet
//! go on in the next transaction.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Transaction, TransactionBehavior};

use super::credentials::Credentials;
use super::{DbError, Durability};

/// The most writes one transaction takes: bounds how long the first of them waits for the
/// last to run (a batch of small writes takes a few milliseconds).
const MAX_BATCH: usize = 128;

/// How long the writer waits for a write before it looks at what other processes changed.
const IDLE_LOOK: std::time::Duration = std::time::Duration::from_secs(1);

/// What a queued write reports once it has run in its savepoint: whether to keep its
/// changes, and how to answer its caller once the batch's fate is known.
pub(super) struct Ran {
    keep: bool,
    answer: Settle,
}

/// Answers a ran write's caller with the fate of its batch's commit.
type Settle = Box<dyn FnOnce(Result<(), &DbError>) + Send>;

/// Runs a queued write in the open transaction (or fails it when none could be opened).
type Run = Box<dyn FnOnce(Result<&Transaction, DbError>) -> Ran + Send>;

/// One write waiting for the writer.
pub(super) struct Job {
    /// May be committed without a flush of its own (`Db::write_relaxed`).
    relaxed: bool,
    /// Runs the write in the open transaction, or fails it without running when the
    /// transaction could not be opened.
    run: Run,
}

type Answer<T, E> = tokio::sync::oneshot::Sender<std::thread::Result<Result<T, E>>>;

impl Job {
    /// A job running `f`, whose outcome reaches `answer` once its batch committed (or
    /// failed). A panic in `f` is caught, rolled back, and re-raised in the caller.
    pub(super) fn new<T, E, F>(relaxed: bool, f: F, answer: Answer<T, E>) -> Job
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Transaction) -> Result<T, E> + Send + 'static,
    {
        let run = move |tx: Result<&Transaction, DbError>| {
            let tx = match tx {
                Ok(tx) => tx,
                Err(e) => {
                    let _ = answer.send(Ok(Err(e.into())));
                    return Ran::nothing();
                }
            };
            let out = catch_unwind(AssertUnwindSafe(|| f(tx)));
            let keep = matches!(out, Ok(Ok(_)));
            Ran {
                keep,
                answer: Box::new(move |committed: Result<(), &DbError>| {
                    let out = match (out, committed) {
                        (Ok(Ok(_)), Err(e)) => Ok(Err(again(e).into())),
                        (out, _) => out,
                    };
                    let _ = answer.send(out);
                }),
            }
        };
        Job {
            relaxed,
            run: Box::new(run),
        }
    }
}

impl Ran {
    fn nothing() -> Ran {
        Ran {
            keep: false,
            answer: Box::new(|_| {}),
        }
    }
}

/// The same error once more, for each write of a batch whose commit failed with it: what
/// callers act on (the SQLite code, so a full disk is still a 503) is kept.
fn again(e: &DbError) -> DbError {
    match e {
        DbError::Sqlite(rusqlite::Error::SqliteFailure(code, msg)) => {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(*code, msg.clone()))
        }
        DbError::Busy(m) => DbError::Busy(m.clone()),
        other => DbError::Task(other.to_string()),
    }
}

/// Starts the writer thread; it ends when every sender of its queue is gone.
pub(super) fn start(
    pool: r2d2::Pool<SqliteConnectionManager>,
    durability: Durability,
    commits: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    credentials: std::sync::Arc<Credentials>,
) -> Result<mpsc::Sender<Job>, DbError> {
    let (queue, jobs) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("scimd-writer".into())
        .spawn(move || {
            let mut writer = Writer {
                pool,
                conn: None,
                durability,
                synchronous: durability,
                credentials,
            };
            let mut batch = VecDeque::new();
            loop {
                if batch.is_empty() {
                    match jobs.recv_timeout(IDLE_LOOK) {
                        Ok(job) => batch.push_back(job),
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            writer.look_around();
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(job) => batch.push_back(job),
                        Err(_) => break,
                    }
                }
                if writer.commit(&mut batch) {
                    commits.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
        })?;
    Ok(queue)
}

struct Writer {
    pool: r2d2::Pool<SqliteConnectionManager>,
    /// The writer's connection, kept between batches (its page cache stays warm) and
    /// replaced after a batch that failed.
    conn: Option<r2d2::PooledConnection<SqliteConnectionManager>>,
    durability: Durability,
    /// The `synchronous` setting `conn` has now.
    synchronous: Durability,
    credentials: std::sync::Arc<Credentials>,
}

impl Writer {
    /// What the writer does when no write came for a while: notice the changes other
    /// processes (the command line) made to credentials.
    fn look_around(&mut self) {
        if let Some(conn) = &self.conn {
            self.refresh_credentials(conn);
        } else if let Ok(conn) = self.pool.get() {
            self.refresh_credentials(&conn);
        }
    }

    fn refresh_credentials(&self, conn: &rusqlite::Connection) {
        if let Err(e) = self.credentials.refresh(conn) {
            // The cache keeps its last generation; the next commit or look tries again.
            tracing::warn!(error = %e, "could not read the credential generation");
        }
    }

    /// Runs the writes of `batch` in one transaction, taking them from the front; true
    /// when something was committed. Writes that did not get to run because the
    /// transaction broke under them stay in `batch` for the next one.
    fn commit(&mut self, batch: &mut VecDeque<Job>) -> bool {
        let relaxed = batch.iter().all(|j| j.relaxed);
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => match self.pool.get() {
                Ok(c) => {
                    self.synchronous = self.durability;
                    c
                }
                Err(e) => return fail(batch, &DbError::from(e)),
            },
        };
        // A batch of bookkeeping alone is not flushed by itself; any durable write in the
        // batch makes the whole commit durable.
        let wanted = if relaxed {
            Durability::Normal
        } else {
            self.durability
        };
        if wanted != self.synchronous {
            let set = format!("PRAGMA synchronous = {};", wanted.pragma());
            if let Err(e) = conn.execute_batch(&set) {
                return fail(batch, &DbError::from(e));
            }
            self.synchronous = wanted;
        }
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => return fail(batch, &DbError::from(e)),
        };
        let mut ran = Vec::with_capacity(batch.len());
        let mut broken: Option<DbError> = None;
        while let Some(job) = batch.pop_front() {
            // The first write of a transaction needs no savepoint: when it fails, rolling
            // the transaction back undoes it alone. This spares a lone write the journal
            // SQLite keeps for a savepoint (a copy of each page it changes, 12 % of a POST).
            let first = ran.is_empty();
            if !first && let Err(e) = cached(&tx, "SAVEPOINT scimd_write") {
                batch.push_front(job);
                broken = Some(e.into());
                break;
            }
            let out = (job.run)(Ok(&tx));
            if first && !out.keep {
                drop(tx); // rolls back the failed write, and nothing else
                (out.answer)(Ok(())); // its own error is its answer
                self.conn = Some(conn);
                // The rest of the batch goes on in a transaction of its own.
                return false;
            }
            let ended = if first {
                Ok(())
            } else if out.keep {
                cached(&tx, "RELEASE scimd_write")
            } else {
                tx.execute_batch("ROLLBACK TO scimd_write; RELEASE scimd_write")
            };
            ran.push(out);
            if let Err(e) = ended {
                broken = Some(e.into());
                break;
            }
            if tx.is_autocommit() {
                // SQLite rolled the whole transaction back on its own (a full disk, an
                // I/O error): what ran is lost, and may be retried by its sender.
                broken = Some(DbError::Busy(
                    "the database rolled back a write transaction; try again".into(),
                ));
                break;
            }
        }
        let kept = ran.iter().any(|r| r.keep);
        let outcome = match broken {
            Some(e) => {
                drop(tx); // rolls back
                Err(e)
            }
            None => tx.commit().map_err(DbError::from),
        };
        if outcome.is_ok() {
            // Before anyone is answered: a revocation is in force once it is acknowledged.
            self.refresh_credentials(&conn);
        }
        for r in ran {
            (r.answer)(outcome.as_ref().map(|_| ()));
        }
        match outcome {
            Ok(()) => {
                self.conn = Some(conn);
                kept
            }
            Err(_) => false,
        }
    }
}

/// Runs `sql`, one of the statements around each write, compiled once per connection
/// rather than for every write.
fn cached(tx: &rusqlite::Transaction, sql: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(sql)?.execute([]).map(drop)
}

/// Fails every write of a batch that could not start with `e`.
fn fail(batch: &mut VecDeque<Job>, e: &DbError) -> bool {
    for job in batch.drain(..) {
        (job.run)(Err(again(e)));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::super::{Db, DbError, Durability};

    async fn scratch() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("w.db"), Durability::Full).unwrap();
        db.write(|tx| {
            tx.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE)")?;
            Ok::<_, DbError>(())
        })
        .await
        .unwrap();
        (dir, db)
    }

    fn insert(tx: &rusqlite::Transaction, k: &str) -> Result<(), DbError> {
        tx.execute("INSERT INTO t (k) VALUES (?1)", [k])?;
        Ok(())
    }

    async fn keys(db: &Db) -> Vec<String> {
        db.read(|c| {
            let mut s = c.prepare("SELECT k FROM t ORDER BY k")?;
            let rows = s.query_map([], |r| r.get(0))?;
            Ok::<_, DbError>(rows.collect::<Result<Vec<String>, _>>()?)
        })
        .await
        .unwrap()
    }

    /// Writes arriving together share transactions, yet each one's failure, or panic,
    /// undoes exactly its own changes: the others commit, and each caller hears its own
    /// outcome.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_or_panicking_write_leaves_the_others_of_its_batch_alone() {
        let (_dir, db) = scratch().await;
        let mut tasks = Vec::new();
        for i in 0..200 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.write(move |tx| {
                    insert(tx, &format!("k{i:03}"))?;
                    match i % 4 {
                        // Wrote, then failed: the row must go.
                        1 => Err(DbError::Conflict(format!("no {i}"))),
                        // Wrote, then panicked: the row must go, the panic reach the caller.
                        2 if i % 40 == 2 => panic!("write {i} panics"),
                        // A constraint error of SQLite's own, after a good insert.
                        3 => insert(tx, &format!("k{i:03}")).map(|_| i),
                        _ => Ok(i),
                    }
                })
                .await
            }));
        }
        let mut expected = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            match (i % 4, task.await) {
                (1, Ok(Err(DbError::Conflict(m)))) => assert_eq!(m, format!("no {i}")),
                (2, Err(panic)) if i % 40 == 2 => assert!(panic.is_panic()),
                (3, Ok(Err(DbError::Sqlite(e)))) => assert!(super::super::is_unique_violation(&e)),
                (_, Ok(Ok(n))) => {
                    assert_eq!(n, i);
                    expected.push(format!("k{i:03}"));
                }
                (_, other) => panic!("write {i}: unexpected {other:?}"),
            }
        }
        assert_eq!(keys(&db).await, expected);
        // The writer survived the panics.
        db.write(|tx| insert(tx, "after")).await.unwrap();
    }

    /// The first write of a batch runs without a savepoint: when it fails or panics, the
    /// transaction is rolled back with it alone, and the writes queued behind it commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_batch_whose_first_write_fails_commits_the_rest() {
        let (_dir, db) = scratch().await;
        let pause = || tokio::time::sleep(std::time::Duration::from_millis(100));
        let mut expected = Vec::new();
        for (round, first_panics) in [(0, false), (1, true)] {
            // Hold the writer inside one write, so that the next two queue as one batch.
            let (go, wait) = std::sync::mpsc::channel::<()>();
            let held = format!("held{round}");
            let hold = tokio::spawn({
                let db = db.clone();
                let held = held.clone();
                async move {
                    db.write(move |tx| {
                        wait.recv().unwrap();
                        insert(tx, &held)
                    })
                    .await
                }
            });
            pause().await;
            let first = tokio::spawn({
                let db = db.clone();
                async move {
                    db.write(move |tx| {
                        insert(tx, &format!("first{round}"))?;
                        if first_panics {
                            panic!("the first write panics");
                        }
                        Err::<(), _>(DbError::Conflict("first".into()))
                    })
                    .await
                }
            });
            pause().await;
            let second = tokio::spawn({
                let db = db.clone();
                async move {
                    db.write(move |tx| insert(tx, &format!("second{round}")))
                        .await
                }
            });
            pause().await;
            go.send(()).unwrap();
            hold.await.unwrap().unwrap();
            match first.await {
                Err(panic) => assert!(first_panics && panic.is_panic()),
                Ok(out) => assert!(!first_panics && matches!(out, Err(DbError::Conflict(_)))),
            }
            second.await.unwrap().unwrap();
            expected.extend([held, format!("second{round}")]);
            expected.sort();
            assert_eq!(keys(&db).await, expected);
        }
    }

    /// A write is answered only once its batch is committed: what it wrote is visible to
    /// any read that starts after the answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_answered_write_is_visible_to_the_next_read() {
        let (_dir, db) = scratch().await;
        let mut tasks = Vec::new();
        for i in 0..64 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let k = format!("v{i:02}");
                let kk = k.clone();
                db.write(move |tx| insert(tx, &kk)).await.unwrap();
                let seen: i64 = db
                    .read(move |c| {
                        Ok::<_, DbError>(c.query_row(
                            "SELECT count(*) FROM t WHERE k = ?1",
                            [&k],
                            |r| r.get(0),
                        )?)
                    })
                    .await
                    .unwrap();
                assert_eq!(seen, 1);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
}
