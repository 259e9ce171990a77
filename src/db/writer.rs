//! Group commit: every write of the process goes through one writer thread, which runs
//! whatever writes are waiting as one SQLite transaction with one commit (one flush of
//! the log with `synchronous=FULL`), each write after the first inside a savepoint of its
//! own (the first needs none: when it fails, the transaction is rolled back and begun
//! again).
//!
//! A savepoint is not free: SQLite copies every page a write changes into a journal in
//! memory, in case it must roll back to it (8 % of a POST's time in the writer). Writes
//! that may run again ([`Db::write_replayable`](super::Db::write_replayable): the SCIM
//! writes, whose closures act on nothing but the database) need none while every write
//! before them in the transaction may run again too. When one of them fails, the whole
//! transaction is rolled back instead, the failing write is answered with its error, and
//! the writes that ran before it run again, first in the next transaction; that
//! transaction gives every write a savepoint, so a batch is rolled back at most once.
//! Each caller hears what its write returned in the transaction that committed it.
//!
//! SQLite admits one writer at a time, and a durable commit costs a flush of the log: one
//! transaction per request would make the flush the ceiling of every SCIM write. Here,
//! while one batch commits, the next requests queue; the writer then takes about half of
//! them ([`batch_size`]) and commits them together, the rest in the next batch. Nothing waits on a timer: a lone
//! write is committed at once, and batches grow only when writes really arrive together.
//!
//! With `synchronous=FULL` the flush is not the writer's: it commits each batch without
//! one and another thread flushes the log and answers the batch, while the writer runs
//! the next ([`flusher`]). There are two of them: a batch committed while one flushes
//! gets its flush from the other at once, instead of waiting for the flush under way.
//!
//! Both note how each commit attempt ended for `/healthz` ([`super::health`]): a failure
//! of the storage, or a durable commit. While writes fail and none come, the writer
//! commits a [`probe`] of its own now and then, so a recovery is noticed without traffic.
//!
//! What each write sees is what it would see alone: the writes of the batch run one after
//! another, in arrival order, each on the database as the ones before it left it. A write
//! whose closure fails (or panics) is rolled back to its savepoint and leaves no trace; the
//! others go on. Each caller is answered only after the batch's commit: success when the
//! commit is durable, or, when the commit fails, the commit's error (nothing of the batch
//! was written). When SQLite rolls back the whole transaction on its own (a full disk, an
//! I/O error), the writes that ran fail and nothing is written; those that had not run yet
//! go on in the next transaction.
//!
//! Copying the log into the database (a checkpoint) adds nothing to a commit's durability,
//! only to its writers' wait, so the writer leaves it to a third thread ([`checkpointer`]):
//! a commit that grows the log past [`CHECKPOINT_FRAMES`] asks it to copy the log while
//! the next batches run. Copying beside the writes, it never quite catches up with a log
//! that keeps growing, and SQLite starts a log over only once all of it was copied: after
//! a commit that leaves it past [`RESTART_FRAMES`], the writer copies the rest itself, so
//! the log stays bounded, once the batch is answered (with `synchronous=FULL`, handed to
//! the flusher): after a whole-tenant sync of 100 000 members, that is 0.4 s. Under a
//! stream of POSTs, a checkpoint inside the commit had held up the batch that ended on it
//! for ~4 ms every 1 000 frames, and taken a quarter of the writer's time; off its thread,
//! POST /Users and PATCH /Users ran ~12 % faster and a POST's p99 fell from ~5.9 to ~3.9 ms.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Transaction, TransactionBehavior};

use super::credentials::Credentials;
use super::health::{Waiter, WriteHealth, storage_failure};
use super::{DbError, Durability};

/// The most writes one transaction takes: bounds how long the first of them waits for the
/// last to run (a batch of small writes takes a few milliseconds).
const MAX_BATCH: usize = 128;

/// The fewest writes a transaction takes when more are waiting: a commit writes the pages
/// its writes share (the tables' last pages, the tenant's counts) once for all of them.
const MIN_BATCH: usize = 8;

/// How many of the `waiting` writes the next transaction takes: half of them, but at least
/// [`MIN_BATCH`] and at most [`MAX_BATCH`]. Taking all of them answers them all at once,
/// their clients' next writes then all arrive while the writer has nothing to run, and
/// writer and clients take turns idling: with 16 clients the writer was ~67 % busy with a
/// third of the machine idle. Half keeps answers flowing while the rest run, and with many
/// clients batches still grow to share a commit among many writes (BENCHMARKS.md,
/// twentieth: with 16 clients, a cap of 8 made POST /Users ~6 % faster than taking all,
/// and half does as well; with 64, half is within 6 % of taking all, where a fixed 8 lost
/// 20 %).
fn batch_size(waiting: usize) -> usize {
    waiting.div_ceil(2).clamp(MIN_BATCH, MAX_BATCH).min(waiting)
}

/// How many threads flush the log ([`flusher`]). A flush of the log takes 0.2–0.4 ms on the
/// benchmark's disk, and two flushes of one file overlap on the device (from two threads,
/// 4 335 flushes/s against 2 851 from one, at the same median): with one flusher, a batch
/// committed during a flush waited for it to end before its own began. Two made
/// `POST /Users` 5 % and `PATCH /Users` 12 % faster in alternating rounds; a third
/// flushing thread gained nothing in the measurement of the disk alone (BENCHMARKS.md,
/// twenty-ninth).
const FLUSHERS: usize = 2;

/// How long the writer waits for a write before it looks at what other processes changed.
const IDLE_LOOK: std::time::Duration = std::time::Duration::from_secs(1);

/// While writes fail for a reason of the storage, how often the writer, with no write to
/// run, tries a commit of its own ([`probe`]): a server a load balancer took out of
/// rotation for its failing `/healthz` gets no write that could say it recovered.
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Frames in the log past which a commit asks the [`checkpointer`] to copy it into the
/// database (16 MiB of 4 KiB pages). Four times SQLite's default: a page that many writes
/// change (a table's last page, an index's inner pages, the tenant's counts) is copied
/// and flushed once per copy, and copies less often leave the disk to the log's flushes,
/// which answer writes (BENCHMARKS.md, twentieth).
const CHECKPOINT_FRAMES: i32 = 4000;

/// Frames in the log past which a commit copies what the [`checkpointer`] has not, so the
/// next one starts the log over (64 MiB; it goes on growing while a reader still reads
/// its end, as with SQLite's own checkpoints).
const RESTART_FRAMES: i32 = 4 * CHECKPOINT_FRAMES;

thread_local! {
    /// The frames in the log after the writer thread's last commit ([`checkpoint_hook`]).
    static LOG_FRAMES: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// The writer connection's log hook, in place of SQLite's automatic checkpoint (a hook
/// too), called inside each commit with the frames the log now holds: what
/// [`Writer::checkpoint_if_due`] acts on once the batch is handed on.
fn checkpoint_hook(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    LOG_FRAMES.set(frames);
    Ok(())
}

/// Logs a checkpoint that failed, unless only because another process's checkpoint was
/// copying the log (a passive checkpoint does not wait for another).
fn warn_unless_busy<T>(done: rusqlite::Result<T>) {
    match done {
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {}
        Err(e) => tracing::warn!(error = %e, "could not checkpoint the log"),
        Ok(_) => {}
    }
}

/// Copies the log into the database whenever the writer asks, on a pooled connection,
/// passively: a reader on an older snapshot only keeps the frames it still reads, and the
/// writer goes on committing meanwhile. Holds `copying` while it copies. Ends when the
/// writer does.
fn checkpointer(
    pool: &r2d2::Pool<SqliteConnectionManager>,
    wanted: &mpsc::Receiver<()>,
    copying: &std::sync::Mutex<()>,
) {
    while wanted.recv().is_ok() {
        // Taken before the lock: the writer never waits for a busy pool.
        match pool.get() {
            Ok(conn) => {
                let _copying = copying
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                warn_unless_busy(conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())))
            }
            Err(e) => tracing::warn!(error = %e, "could not checkpoint the log"),
        }
    }
}

/// One write waiting for the writer.
pub(super) struct Job {
    /// May be committed without a flush of its own (`Db::write_relaxed`).
    relaxed: bool,
    work: Box<dyn Work>,
}

/// A queued write, as the writer drives it.
trait Work: Send {
    /// Runs the write in the open transaction and keeps its outcome; true when it
    /// succeeded (its changes are to be kept). A panic is caught and kept as its outcome.
    fn run(&mut self, tx: &Transaction) -> bool;
    /// May run again after its transaction was rolled back.
    fn replayable(&self) -> bool;
    /// Answers the caller with the outcome of its last run, once the fate of its batch's
    /// commit is known (a write that failed has its own error as its answer).
    fn settle(self: Box<Self>, committed: Result<(), &DbError>);
    /// Answers the caller with `e`, without running.
    fn fail(self: Box<Self>, e: DbError);
}

/// The closure of a write: run once, or any number of times.
trait Body<T, E>: Send + 'static {
    const REPLAYABLE: bool;
    fn call(&mut self, tx: &Transaction) -> Result<T, E>;
}

/// A write that runs once (`FnOnce`).
struct Once<F>(Option<F>);

impl<T, E, F> Body<T, E> for Once<F>
where
    F: FnOnce(&Transaction) -> Result<T, E> + Send + 'static,
{
    const REPLAYABLE: bool = false;
    fn call(&mut self, tx: &Transaction) -> Result<T, E> {
        (self.0.take().expect("a write that runs once ran again"))(tx)
    }
}

/// A write that may run again (`Fn`).
struct Again<F>(F);

impl<T, E, F> Body<T, E> for Again<F>
where
    F: Fn(&Transaction) -> Result<T, E> + Send + 'static,
{
    const REPLAYABLE: bool = true;
    fn call(&mut self, tx: &Transaction) -> Result<T, E> {
        (self.0)(tx)
    }
}

type Answer<T, E> = tokio::sync::oneshot::Sender<std::thread::Result<Result<T, E>>>;

/// A write with its caller's answer and the outcome of its last run.
struct Pending<T, E, B> {
    body: B,
    out: Option<std::thread::Result<Result<T, E>>>,
    answer: Answer<T, E>,
}

impl<T, E, B> Work for Pending<T, E, B>
where
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
    B: Body<T, E>,
{
    fn run(&mut self, tx: &Transaction) -> bool {
        let out = catch_unwind(AssertUnwindSafe(|| self.body.call(tx)));
        let keep = matches!(out, Ok(Ok(_)));
        self.out = Some(out);
        keep
    }

    fn replayable(&self) -> bool {
        B::REPLAYABLE
    }

    fn settle(self: Box<Self>, committed: Result<(), &DbError>) {
        let out = match (self.out, committed) {
            (Some(Ok(Ok(_))), Err(e)) => Ok(Err(again(e).into())),
            (Some(out), _) => out,
            (None, _) => Ok(Err(DbError::Task(
                "a write was answered before it ran".into(),
            )
            .into())),
        };
        let _ = self.answer.send(out);
    }

    fn fail(self: Box<Self>, e: DbError) {
        let _ = self.answer.send(Ok(Err(e.into())));
    }
}

impl Job {
    /// A job running `f` once, whose outcome reaches `answer` once its batch committed (or
    /// failed). A panic in `f` is caught, rolled back, and re-raised in the caller.
    pub(super) fn once<T, E, F>(relaxed: bool, f: F, answer: Answer<T, E>) -> Job
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Transaction) -> Result<T, E> + Send + 'static,
    {
        Job::of(relaxed, Once(Some(f)), answer)
    }

    /// [`Job::once`] for an `f` that may run again: it needs no savepoint while the
    /// writes before it in its transaction may run again too.
    pub(super) fn replayable<T, E, F>(relaxed: bool, f: F, answer: Answer<T, E>) -> Job
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: Fn(&Transaction) -> Result<T, E> + Send + 'static,
    {
        Job::of(relaxed, Again(f), answer)
    }

    fn of<T, E, B>(relaxed: bool, body: B, answer: Answer<T, E>) -> Job
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        B: Body<T, E>,
    {
        Job {
            relaxed,
            work: Box::new(Pending {
                body,
                out: None,
                answer,
            }),
        }
    }
}

/// The same error once more, for each write of a batch whose commit failed with it: what
/// callers act on (the SQLite code, so a full disk is still a 503) is kept.
fn again(e: &DbError) -> DbError {
    match e {
        // The directory's keys are checked at commit (migration 0024): a write that left a
        // dangling one (its tenant deleted meanwhile) fails the commit of its whole batch.
        // The others did nothing wrong and may try again, and will then commit.
        DbError::Sqlite(rusqlite::Error::SqliteFailure(code, _))
            if code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            DbError::Busy(
                "a write committed with this one left a reference to something deleted; try again"
                    .into(),
            )
        }
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
    log: std::path::PathBuf,
    commits: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    durable: std::sync::Arc<AtomicI64>,
    credentials: std::sync::Arc<Credentials>,
    health: std::sync::Arc<WriteHealth>,
) -> Result<mpsc::Sender<Job>, DbError> {
    let (queue, jobs) = mpsc::channel::<Job>();
    let flusher = match durability {
        Durability::Full => {
            let (flushes, flushed) = mpsc::channel::<Flush>();
            let flushed = std::sync::Arc::new(std::sync::Mutex::new(flushed));
            for n in 0..FLUSHERS {
                let (log, flushed) = (log.clone(), flushed.clone());
                let (commits, durable, health) = (commits.clone(), durable.clone(), health.clone());
                std::thread::Builder::new()
                    .name("scimd-flusher".into())
                    .spawn(move || flusher(n, &log, &durable, &commits, &health, &flushed))?;
            }
            Some(flushes)
        }
        Durability::Normal => None,
    };
    // One request waits at most: asked while it copies, it copies once more after.
    let (checkpoints, wanted) = mpsc::sync_channel::<()>(1);
    let copying = std::sync::Arc::new(std::sync::Mutex::new(()));
    {
        let (pool, copying) = (pool.clone(), copying.clone());
        std::thread::Builder::new()
            .name("scimd-checkpointer".into())
            .spawn(move || checkpointer(&pool, &wanted, &copying))?;
    }
    std::thread::Builder::new()
        .name("scimd-writer".into())
        .spawn(move || {
            let mut writer = Writer {
                pool,
                conn: None,
                durability,
                synchronous: durability,
                credentials,
                guard_all: false,
                flusher,
                durable,
                checkpoints,
                asked_at: 0,
                copying,
                health,
                attempts: 0,
                probed: std::time::Instant::now(),
                locked_out: None,
            };
            // The next transaction's writes, and those queued behind them, in arrival order.
            let (mut batch, mut queued) = (VecDeque::new(), VecDeque::new());
            loop {
                if batch.is_empty() && queued.is_empty() {
                    match jobs.recv_timeout(IDLE_LOOK) {
                        Ok(job) => queued.push_back(job),
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            writer.look_around();
                            match writer.probe_if_due() {
                                Some(probe) => batch.push_back(probe),
                                None => continue,
                            }
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                queued.extend(jobs.try_iter());
                let size = batch_size(batch.len() + queued.len());
                let take = size.saturating_sub(batch.len()).min(queued.len());
                batch.extend(queued.drain(..take));
                if writer.commit(&mut batch) {
                    commits.send_modify(|n| *n = n.wrapping_add(1));
                }
                if let Some(e) = writer.locked_out.take() {
                    // Another process held the write lock for the whole busy timeout.
                    // Every write waiting now has waited with this batch; each batch
                    // behind it would wait as long again (20 to 40 s for an IdP's burst).
                    // They are answered "try again" at once; new ones wait afresh.
                    queued.extend(jobs.try_iter());
                    for job in queued.drain(..) {
                        job.work.fail(again(&e));
                    }
                }
                writer.checkpoint_if_due();
            }
        })?;
    Ok(queue)
}

struct Writer {
    pool: r2d2::Pool<SqliteConnectionManager>,
    /// The writer's connection, kept between batches (its page cache stays warm) and
    /// replaced after a batch that failed.
    conn: Option<WriterConn>,
    durability: Durability,
    /// The `synchronous` setting `conn` has now.
    synchronous: Durability,
    credentials: std::sync::Arc<Credentials>,
    /// Gives every write of the next transaction a savepoint: set after a transaction was
    /// rolled back to undo a write without one.
    guard_all: bool,
    /// With `synchronous=FULL`: the thread that flushes the log and answers each durable
    /// batch, while this one runs the next ([`flusher`]).
    flusher: Option<mpsc::Sender<Flush>>,
    /// The newest event cursor readers are offered (see [`super::Db::durable_cursor`]).
    durable: std::sync::Arc<AtomicI64>,
    /// Asks the [`checkpointer`] to copy the log.
    checkpoints: mpsc::SyncSender<()>,
    /// The frames the log held when the writer last asked for a copy: it asks again
    /// [`CHECKPOINT_FRAMES`] later, not after every commit, so each page is copied about as
    /// often as SQLite's own checkpoints would copy it.
    asked_at: i32,
    /// Held by the [`checkpointer`] while it copies.
    copying: std::sync::Arc<std::sync::Mutex<()>>,
    /// Where the outcome of each durable commit attempt is noted, for `/healthz`.
    health: std::sync::Arc<WriteHealth>,
    /// The commit attempts begun so far: the number of the current one, which orders the
    /// outcomes the writer and the flusher note.
    attempts: u64,
    /// When the writer last tried a [`probe`].
    probed: std::time::Instant,
    /// Set when a batch could not begin because another process held the write lock past
    /// the busy timeout: the error to answer the writes queued behind it with.
    locked_out: Option<DbError>,
}

/// A committed batch waiting for its flush: its writes' answers, the newest event cursor
/// the database held after it, whether it changed anything, and the writer's number of the
/// commit attempt it follows.
struct Flush {
    jobs: Vec<Job>,
    cursor: i64,
    kept: bool,
    attempt: u64,
}

/// Flushes the log for the batches the writer committed, and answers them. The writer
/// commits with `synchronous=NORMAL` (its commit writes the log but waits for no disk) and
/// hands the batch here: one `fdatasync` of the log then makes durable every batch
/// committed since the last one (SQLite recovers a log's commits in order, up to the last
/// whole one), and only then are their writes answered, their events offered to readers
/// (`durable`) and the waiters woken. Meanwhile the writer runs the next batch: the flush
/// no longer holds every write behind it. Checkpoints stay safe: with `NORMAL`, SQLite
/// still syncs the log before it copies it into the database, and the database before it
/// starts the log over.
///
/// A batch's newest event cursor is read after its commit and counts as durable only after
/// a flush that began later: events another process (the command line) committed in
/// between, and perhaps had not flushed yet, are in the log file by then and flushed too.
///
/// [`FLUSHERS`] threads run this, number `n` among them, taking turns at the queue: each
/// takes every batch waiting, lets go of the queue and flushes, so a batch committed
/// meanwhile is taken by another at once. Every batch is still answered only after a
/// flush that began after its commit. A later batch may be answered before an earlier
/// one whose flush began first: the later flush made the earlier batch durable too (an
/// `fdatasync` returns once everything written before it is on the disk), and no
/// caller waits on another's answer; `durable` only ever grows.
fn flusher(
    n: usize,
    log: &std::path::Path,
    durable: &AtomicI64,
    commits: &tokio::sync::watch::Sender<u64>,
    health: &WriteHealth,
    flushed: &std::sync::Mutex<mpsc::Receiver<Flush>>,
) {
    let mut held = HeldLog {
        path: log.to_path_buf(),
        open: None,
    };
    loop {
        let flushes = {
            let queue = flushed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Ok(first) = queue.recv() else {
                return; // the writer has ended
            };
            let mut flushes = vec![first];
            flushes.extend(queue.try_iter());
            flushes
        };
        let attempt = flushes.iter().map(|f| f.attempt).max().unwrap_or(0);
        health.busy(Waiter::Flusher(n), true);
        let synced = held.sync();
        health.busy(Waiter::Flusher(n), false);
        let synced = synced.map_err(|e| {
            tracing::error!(error = %e, log = %log.display(), "could not flush the log to disk");
            health.failed(attempt, format!("could not flush the log to disk: {e}"));
            // Not "unavailable" (a 503 that says nothing was changed): the batch committed
            // and readers may see it; only its durability is unknown.
            DbError::Task(format!(
                "the disk failed to confirm this write ({e}): it may have been saved; \
                 read before retrying"
            ))
        });
        if synced.is_ok() {
            let cursor = flushes.iter().map(|f| f.cursor).max().unwrap_or(0);
            durable.fetch_max(cursor, Ordering::SeqCst);
            // Only a batch of this writer's is a commit made durable: a flush for another
            // process's events alone says nothing of whether this one can commit.
            if flushes.iter().any(|f| !f.jobs.is_empty()) {
                health.committed(attempt);
            }
        }
        let kept = flushes.iter().any(|f| f.kept);
        for job in flushes.into_iter().flat_map(|f| f.jobs) {
            job.work.settle(synced.as_ref().map(|_| ()));
        }
        if kept && synced.is_ok() {
            commits.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// Makes what was written to the log durable: `fdatasync` of the file, opened by name so
/// it is the log SQLite writes now.
pub(super) fn sync_log(log: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(log)?.sync_data()
}

/// The log as the flusher holds it: opened once and flushed through the same descriptor,
/// opened anew only when the file at the log's name is another (SQLite made a new log), so
/// a flush needs no descriptor of its own: with every descriptor taken by connections, a
/// flush that opened the log failed, and a committed write was answered 500.
struct HeldLog {
    path: std::path::PathBuf,
    /// The open log and the (device, inode) it was opened as.
    open: Option<(std::fs::File, (u64, u64))>,
}

impl HeldLog {
    fn sync(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let now = std::fs::metadata(&self.path)?;
        let named = (now.dev(), now.ino());
        match &self.open {
            Some((file, held)) if *held == named => file.sync_data(),
            _ => {
                let file = std::fs::File::open(&self.path)?;
                file.sync_data()?;
                self.open = Some((file, named));
                Ok(())
            }
        }
    }
}

/// The newest event cursor handed out (0 before the first).
pub(super) fn newest_cursor(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT coalesce(max(cursor), 0) FROM events")?
        .query_row([], |r| r.get(0))
}

/// The writer's connection, with [`checkpoint_hook`] for its log. Given back to the pool,
/// it checkpoints as SQLite does again.
struct WriterConn(r2d2::PooledConnection<SqliteConnectionManager>);

impl WriterConn {
    fn of(conn: r2d2::PooledConnection<SqliteConnectionManager>) -> WriterConn {
        conn.wal_hook(Some(checkpoint_hook));
        WriterConn(conn)
    }
}

impl std::ops::Deref for WriterConn {
    type Target = rusqlite::Connection;
    fn deref(&self) -> &rusqlite::Connection {
        &self.0
    }
}

impl std::ops::DerefMut for WriterConn {
    fn deref_mut(&mut self) -> &mut rusqlite::Connection {
        &mut self.0
    }
}

impl Drop for WriterConn {
    fn drop(&mut self) {
        // SQLite's automatic checkpoint is a log hook: setting it replaces the writer's.
        let _ = self
            .0
            .pragma_update(None, "wal_autocheckpoint", CHECKPOINT_FRAMES);
    }
}

impl Writer {
    /// What the writer does when no write came for a while: notice the changes other
    /// processes (the command line) made to credentials.
    fn look_around(&mut self) {
        if let Some(conn) = &self.conn {
            self.look_at(conn);
        } else if let Ok(conn) = self.pool.get() {
            self.look_at(&conn);
        }
    }

    /// Notices the credentials other processes changed, and the events they committed
    /// (durable already): offered to readers once this process's own last batch is flushed.
    fn look_at(&self, conn: &rusqlite::Connection) {
        self.refresh_credentials(conn);
        if let (Some(flusher), Ok(cursor)) = (&self.flusher, newest_cursor(conn))
            && cursor > self.durable.load(Ordering::SeqCst)
        {
            let _ = flusher.send(Flush {
                jobs: Vec::new(),
                cursor,
                kept: false,
                attempt: self.attempts,
            });
        }
    }

    /// After a commit that left the log past [`CHECKPOINT_FRAMES`], asks the
    /// [`checkpointer`] to copy it; past [`RESTART_FRAMES`], waits for any copy under way
    /// and copies the rest, so the next commit starts the log over (passively: a reader on
    /// an older snapshot only keeps the frames it still reads).
    fn checkpoint_if_due(&mut self) {
        let frames = LOG_FRAMES.take();
        if frames == 0 {
            return; // nothing committed
        }
        if frames >= RESTART_FRAMES {
            self.asked_at = 0;
            let Some(conn) = &self.conn else { return };
            let _copying = self
                .copying
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Failing, the log only grows until the next commit checkpoints it.
            warn_unless_busy(conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())));
        } else if frames >= self.asked_at + CHECKPOINT_FRAMES {
            // Full: a copy is asked for already, and it will see this commit's frames.
            let _ = self.checkpoints.try_send(());
            self.asked_at = frames;
        } else if frames < self.asked_at {
            // The log started over.
            self.asked_at = 0;
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
        self.health.busy(Waiter::Writer, true);
        let committed = self.commit_batch(batch);
        self.health.busy(Waiter::Writer, false);
        committed
    }

    /// [`Self::commit`], while the writer is noted busy.
    fn commit_batch(&mut self, batch: &mut VecDeque<Job>) -> bool {
        self.attempts += 1;
        let relaxed = batch.iter().all(|j| j.relaxed);
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => match self.pool.get() {
                Ok(c) => {
                    self.synchronous = self.durability;
                    WriterConn::of(c)
                }
                Err(e) => return self.fail(batch, &DbError::from(e)),
            },
        };
        // A batch of bookkeeping alone is not flushed by itself; any durable write in the
        // batch makes the whole commit durable.
        let wanted = if relaxed || self.flusher.is_some() {
            Durability::Normal
        } else {
            self.durability
        };
        if wanted != self.synchronous {
            let set = format!("PRAGMA synchronous = {};", wanted.pragma());
            if let Err(e) = conn.execute_batch(&set) {
                return self.fail(batch, &DbError::from(e));
            }
            self.synchronous = wanted;
        }
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                let e = DbError::from(e);
                if let DbError::Sqlite(failure) = &e
                    && failure.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                {
                    self.locked_out = Some(again(&e));
                }
                return self.fail(batch, &e);
            }
        };
        // True while every write that ran may run again: the next one that may also runs
        // without a savepoint. Not in the transaction after a rollback of that kind.
        let mut bare = !std::mem::take(&mut self.guard_all);
        let mut ran: Vec<Job> = Vec::with_capacity(batch.len());
        let mut kept = false;
        let mut broken: Option<DbError> = None;
        while let Some(mut job) = batch.pop_front() {
            // The first write of a transaction needs no savepoint: when it fails, rolling
            // the transaction back undoes it alone. This spares a lone write the journal
            // SQLite keeps for a savepoint (a copy of each page it changes, 12 % of a POST).
            let first = ran.is_empty();
            let unguarded = first || (bare && job.work.replayable());
            let guarded = !unguarded;
            if guarded && let Err(e) = cached(&tx, "SAVEPOINT scimd_write") {
                batch.push_front(job);
                broken = Some(e.into());
                break;
            }
            let keep = job.work.run(&tx);
            if !keep && !guarded {
                if tx.is_autocommit() {
                    self.rolled_back_on_its_own();
                }
                drop(tx); // rolls back the failed write, and what ran before it
                job.work.settle(Ok(())); // its own error is its answer
                self.conn = Some(conn);
                if !first {
                    // What ran before it may run again: it goes first in the next
                    // transaction, this time with savepoints.
                    for job in ran.into_iter().rev() {
                        batch.push_front(job);
                    }
                    self.guard_all = true;
                }
                // The rest of the batch goes on in a transaction of its own.
                return false;
            }
            bare &= job.work.replayable();
            kept |= keep;
            if tx.is_autocommit() {
                // SQLite rolled the whole transaction back on its own (a full disk, an
                // I/O error), savepoint and all: what ran is lost, and may be retried by
                // its sender. (Rolling back to the savepoint now would fail as a write
                // error of its own, and answer the batch 500.)
                ran.push(job);
                broken = Some(DbError::Busy(
                    "the database rolled back a write transaction; try again".into(),
                ));
                break;
            }
            let ended = if !guarded {
                Ok(())
            } else if keep {
                cached(&tx, "RELEASE scimd_write")
            } else {
                tx.execute_batch("ROLLBACK TO scimd_write; RELEASE scimd_write")
            };
            ran.push(job);
            if let Err(e) = ended {
                broken = Some(e.into());
                break;
            }
        }
        let outcome = match broken {
            Some(e) => {
                if tx.is_autocommit() {
                    self.rolled_back_on_its_own();
                }
                drop(tx); // rolls back
                Err(e)
            }
            None => tx.commit().map_err(DbError::from),
        };
        match &outcome {
            // With the flusher, the commit is durable once the log is flushed (it notes it
            // then); a relaxed batch's never says so.
            Ok(()) if self.flusher.is_none() => self.health.committed(self.attempts),
            Ok(()) => {}
            Err(e) => self.note(e),
        }
        if outcome.is_ok() {
            // Before anyone is answered: a revocation is in force once it is acknowledged.
            self.refresh_credentials(&conn);
        }
        if let (Ok(()), Some(flusher), false) = (&outcome, &self.flusher, relaxed) {
            // Answered once the log is flushed; the waiters are woken then too.
            let cursor = newest_cursor(&conn).unwrap_or_else(|e| {
                // Its events are offered with the next batch's.
                tracing::warn!(error = %e, "could not read the newest event cursor");
                0
            });
            let flush = Flush {
                jobs: ran,
                cursor,
                kept,
                attempt: self.attempts,
            };
            if let Err(mpsc::SendError(flush)) = flusher.send(flush) {
                let stopped = DbError::Task("the log flusher has stopped".into());
                self.health.failed(self.attempts, stopped.to_string());
                for job in flush.jobs {
                    job.work.settle(Err(&stopped));
                }
                return false;
            }
            self.conn = Some(conn);
            return false;
        }
        for job in ran {
            job.work.settle(outcome.as_ref().map(|_| ()));
        }
        match outcome {
            Ok(()) => {
                self.conn = Some(conn);
                kept
            }
            Err(_) => false,
        }
    }

    /// Fails every write of a batch that could not start with `e`.
    fn fail(&self, batch: &mut VecDeque<Job>, e: &DbError) -> bool {
        self.note(e);
        for job in batch.drain(..) {
            job.work.fail(again(e));
        }
        false
    }

    /// Notes the current commit attempt as failed when `e` is the storage failing.
    fn note(&self, e: &DbError) {
        if let Some(reason) = storage_failure(e) {
            self.health.failed(self.attempts, reason);
        }
    }

    /// SQLite ended the transaction by itself: it does so when the disk is full or the
    /// file system fails under a write, and the error went to that write's closure. A
    /// write's own error undoes one statement only (scimd has no `ROLLBACK` conflict
    /// clause or trigger).
    fn rolled_back_on_its_own(&self) {
        self.health.failed(
            self.attempts,
            "the database rolled back a write transaction on its own (disk full or I/O error)"
                .into(),
        );
    }

    /// A [`probe`] to commit now, while writes fail and the last probe is
    /// [`PROBE_EVERY`] old.
    fn probe_if_due(&mut self) -> Option<Job> {
        if self.health.check().is_ok() || self.probed.elapsed() < PROBE_EVERY {
            return None;
        }
        self.probed = std::time::Instant::now();
        Some(probe())
    }
}

/// Runs `sql`, one of the statements around each write, compiled once per connection
/// rather than for every write.
fn cached(tx: &rusqlite::Transaction, sql: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(sql)?.execute([]).map(drop)
}

/// A durable write of the writer's own that changes nothing: it stores `user_version`
/// again, which writes the database's first page to the log (an empty transaction writes
/// nothing, so it would prove nothing). Its outcome is noted like any commit's, and no
/// one waits for its answer.
fn probe() -> Job {
    let (answer, _) = tokio::sync::oneshot::channel();
    Job::once(
        false,
        |tx: &Transaction| {
            let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            tx.pragma_update(None, "user_version", version)?;
            Ok::<_, DbError>(())
        },
        answer,
    )
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

    /// When the log cannot be flushed, the batch committed but may not be durable: its
    /// writes hear so, not that nothing was changed (a 503 the IdP would retry into a
    /// conflict). The next flush that succeeds answers the next writes as usual.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_whose_flush_fails_is_told_it_may_have_been_saved() {
        let (dir, db) = scratch().await;
        let (log, away) = (dir.path().join("w.db-wal"), dir.path().join("away"));
        // SQLite keeps writing the file it opened; the flusher, which opens it by name,
        // finds nothing to flush.
        std::fs::rename(&log, &away).unwrap();
        let e = db.write(|tx| insert(tx, "a")).await.unwrap_err();
        assert!(!e.unavailable(), "{e}");
        assert!(e.to_string().contains("may have been saved"), "{e}");
        std::fs::rename(&away, &log).unwrap();
        db.write(|tx| insert(tx, "b")).await.unwrap();
        assert_eq!(
            keys(&db).await,
            ["a", "b"],
            "the first write committed all the same"
        );
    }

    /// A flush that fails marks writes as failing, from then on, with the reason; the next
    /// write whose flush succeeds clears it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_flush_marks_writes_failing_until_a_write_is_durable_again() {
        let (dir, db) = scratch().await;
        // Cleared by the next durable commit, without the minute `health::SETTLE` waits.
        db.write_health.settle_after(std::time::Duration::ZERO);
        assert_eq!(db.write_health(), Ok(()));
        let (log, away) = (dir.path().join("w.db-wal"), dir.path().join("away"));
        std::fs::rename(&log, &away).unwrap();
        let before = time::OffsetDateTime::now_utc();
        db.write(|tx| insert(tx, "a")).await.unwrap_err();
        let failing = db.write_health().unwrap_err();
        assert!(
            failing
                .reason
                .starts_with("could not flush the log to disk: "),
            "{failing}"
        );
        assert!(!failing.reason.contains("w.db"), "no path: {failing}");
        assert!(failing.since >= before && failing.since <= time::OffsetDateTime::now_utc());
        // Still failing: the first failure's time is kept.
        db.write(|tx| insert(tx, "b")).await.unwrap_err();
        assert_eq!(db.write_health().unwrap_err().since, failing.since);
        std::fs::rename(&away, &log).unwrap();
        db.write(|tx| insert(tx, "c")).await.unwrap();
        assert_eq!(db.write_health(), Ok(()));
    }

    /// With writes failing and none coming, the writer tries a commit of its own: once
    /// the storage recovers, the failure clears without any write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_writes_clear_by_themselves_once_the_storage_recovers() {
        let (dir, db) = scratch().await;
        db.write_health.settle_after(std::time::Duration::ZERO);
        let (log, away) = (dir.path().join("w.db-wal"), dir.path().join("away"));
        std::fs::rename(&log, &away).unwrap();
        db.write(|tx| insert(tx, "a")).await.unwrap_err();
        assert!(db.write_health().is_err());
        std::fs::rename(&away, &log).unwrap();
        let deadline = std::time::Instant::now() + 4 * super::PROBE_EVERY;
        while db.write_health().is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "no probe cleared it: {:?}",
                db.write_health()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(keys(&db).await, ["a"], "the probe changed nothing");
    }

    /// A write's own error (its closure's, a constraint's, a panic) is the answer to that
    /// write: the storage is fine.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writes_own_error_leaves_write_health_alone() {
        let (_dir, db) = scratch().await;
        let e = db
            .write(|tx| {
                insert(tx, "a")?;
                Err::<(), _>(DbError::Conflict("taken".into()))
            })
            .await
            .unwrap_err();
        assert!(matches!(e, DbError::Conflict(_)), "{e}");
        assert_eq!(db.write_health(), Ok(()));
        db.write(|tx| insert(tx, "b")).await.unwrap();
        db.write_replayable(|tx| insert(tx, "b")).await.unwrap_err();
        assert_eq!(db.write_health(), Ok(()));
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
        mixed_writes(&db, 200, |_| false).await;
    }

    /// The same, with writes that may run again (no savepoint while all before them may run
    /// again too) mixed with writes that run once: a failing replayable write rolls the
    /// transaction back and the writes before it run again, yet every caller hears its
    /// own outcome and only the writes that succeeded are stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replayable_writes_that_fail_leave_the_others_of_their_batch_alone() {
        let (_dir, db) = scratch().await;
        // Two in three may run again.
        mixed_writes(&db, 300, |i| i % 3 != 0).await;
    }

    /// Sends `n` concurrent writes, write `i` through `Db::write_replayable` when
    /// `replayable(i)`, else `Db::write`; each inserts a row, then fails, panics, breaks a
    /// constraint or succeeds. Checks that each caller hears its own outcome, that only
    /// the writes that succeeded are stored, and that the writer survives.
    async fn mixed_writes(db: &Db, n: usize, replayable: fn(usize) -> bool) {
        let mut tasks = Vec::new();
        for i in 0..n {
            let db = db.clone();
            let write = move |tx: &rusqlite::Transaction| {
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
            };
            tasks.push(tokio::spawn(async move {
                if replayable(i) {
                    db.write_replayable(write).await
                } else {
                    db.write(write).await
                }
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
        assert_eq!(keys(db).await, expected);
        assert_eq!(
            db.write_health(),
            Ok(()),
            "no write's failure is the storage's"
        );
        // The writer survived the panics.
        db.write(|tx| insert(tx, "after")).await.unwrap();
        db.write_replayable(|tx| insert(tx, "again")).await.unwrap();
    }

    /// In one batch of writes that may run again, a failing one undoes the transaction:
    /// the ones before it run again (and are stored once), the failing one leaves no
    /// trace, and the ones after it, and a write that runs once, commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_replayable_write_runs_the_ones_before_it_again() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (_dir, db) = scratch().await;
        let pause = || tokio::time::sleep(std::time::Duration::from_millis(100));
        // Hold the writer inside one write, so that the next ones queue as one batch.
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let hold = tokio::spawn({
            let db = db.clone();
            async move {
                db.write(move |tx| {
                    wait.recv().unwrap();
                    insert(tx, "held")
                })
                .await
            }
        });
        pause().await;
        let runs: Vec<Arc<AtomicUsize>> = (0..4).map(|_| Arc::default()).collect();
        let mut tasks = Vec::new();
        for (i, runs) in runs.iter().enumerate() {
            let db = db.clone();
            let runs = runs.clone();
            tasks.push(tokio::spawn(async move {
                db.write_replayable(move |tx| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    insert(tx, &format!("r{i}"))?;
                    if i == 2 {
                        return Err(DbError::Conflict("r2".into()));
                    }
                    Ok(i)
                })
                .await
            }));
            pause().await;
        }
        let once = tokio::spawn({
            let db = db.clone();
            async move { db.write(|tx| insert(tx, "once")).await }
        });
        pause().await;
        go.send(()).unwrap();
        hold.await.unwrap().unwrap();
        for (i, task) in tasks.into_iter().enumerate() {
            match (i, task.await.unwrap()) {
                (2, Err(DbError::Conflict(_))) => {}
                (i, Ok(n)) => assert_eq!(n, i),
                (i, other) => panic!("write {i}: unexpected {other:?}"),
            }
        }
        once.await.unwrap().unwrap();
        assert_eq!(keys(&db).await, ["held", "once", "r0", "r1", "r3"]);
        let runs: Vec<usize> = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
        // r0 and r1 ran before r2 failed, and again; r2 ran once; r3 only after.
        assert_eq!(runs, [2, 2, 1, 1]);
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

    /// A write that leaves a dangling key (its tenant gone) fails at commit, with every
    /// write of its batch: each hears "try again" (the storage is unavailable for it now),
    /// not a constraint error, and nothing of the batch is kept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_dangling_key_fails_its_batch_as_try_again() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("k.db"), Durability::Full).unwrap();
        let user_of = |tenant: i64, id: &'static str| {
            move |tx: &rusqlite::Transaction| {
                tx.execute(
                    "INSERT OR FAIL INTO users (tenant_id, id, user_name, user_name_fold, data, created, last_modified, version)
                     VALUES (?1, ?2, ?2, ?2, '{}', 't', 't', 1)",
                    rusqlite::params![tenant, id],
                )?;
                Ok::<_, DbError>(())
            }
        };
        let (dangling, kept) = (user_of(999, "u"), user_of(1, "k"));
        let (a, b) = tokio::join!(db.write_replayable(dangling), db.write_replayable(kept));
        let a = a.unwrap_err();
        assert!(a.unavailable(), "{a}");
        if let Err(b) = b {
            assert!(b.unavailable(), "batched with it: {b}");
        }
        let users: i64 = db
            .read(|c| {
                Ok::<_, DbError>(c.query_row(
                    "SELECT count(*) FROM users WHERE id = 'u'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(users, 0);
        assert_eq!(
            db.write_health(),
            Ok(()),
            "a commit failed for what a write did, not for the storage"
        );
    }

    /// Another process holding the write lock past the busy timeout fails the batch that
    /// waited for it and every write queued behind it at once, as "try again": before,
    /// each batch behind it waited the whole timeout again, and an IdP's burst hung for
    /// 20 to 40 s. Once the lock is free, writes go through again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writes_queued_behind_a_lock_held_elsewhere_wait_one_timeout_not_one_each() {
        let (dir, db) = scratch().await;
        let other = rusqlite::Connection::open(dir.path().join("w.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let started = std::time::Instant::now();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.write(move |tx| insert(tx, &format!("k{i}"))).await
            }));
        }
        for t in tasks {
            let e = t.await.unwrap().unwrap_err();
            assert!(e.unavailable(), "{e}");
        }
        let waited = started.elapsed();
        assert!(
            waited < std::time::Duration::from_secs(15),
            "40 writes behind one held lock were answered after {waited:?}"
        );
        other.execute_batch("ROLLBACK").unwrap();
        db.write(|tx| insert(tx, "after")).await.unwrap();
        assert_eq!(keys(&db).await, ["after"]);
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

    /// A few waiting writes go together; more are split so that half are answered while
    /// the rest run; a flood is taken [`super::MAX_BATCH`] at a time.
    #[test]
    fn a_batch_takes_half_of_the_waiting_writes_within_bounds() {
        let sizes: Vec<usize> = [1, 5, 8, 9, 16, 17, 64, 256, 10_000]
            .into_iter()
            .map(super::batch_size)
            .collect();
        assert_eq!(sizes, [1, 5, 8, 8, 8, 9, 32, 128, 128]);
    }

    /// Past [`CHECKPOINT_FRAMES`](super::CHECKPOINT_FRAMES) the checkpointer copies the
    /// log into the database, beside the writes; past
    /// [`RESTART_FRAMES`](super::RESTART_FRAMES) the writer copies the rest, so the log is
    /// reused from its start and stays that size. A big commit is copied after its answer,
    /// with no further write.
    #[tokio::test]
    async fn the_log_is_copied_into_the_database_and_stays_bounded() {
        let (dir, db) = scratch().await;
        let rows = |from: usize, n: usize| {
            move |tx: &rusqlite::Transaction| {
                for i in from..from + n {
                    insert(tx, &format!("{i:05}-{}", "x".repeat(4000)))?;
                }
                Ok::<_, DbError>(())
            }
        };
        let page: i64 = db
            .read(|c| Ok::<_, DbError>(c.query_row("PRAGMA page_size", [], |r| r.get(0))?))
            .await
            .unwrap();
        let frames = |file: &str| {
            std::fs::metadata(dir.path().join(file)).unwrap().len() / (page as u64 + 24)
        };
        let soon = async |what: &str, done: &dyn Fn() -> bool| {
            for _ in 0..200 {
                if done() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!(
                "{what}: {} pages in the database file, {} in the log",
                frames("w.db"),
                frames("w.db-wal")
            );
        };
        // Writes of 50 rows of 4 KB (with the unique index, 2 pages each: ~100 frames) up
        // to half again the checkpoint mark, short of a restart. The commit past the mark
        // asks the checkpointer to copy what the log holds by then.
        let per_write = 100;
        let first = (super::CHECKPOINT_FRAMES * 3 / 2 / per_write) as usize;
        let before = frames("w.db");
        for w in 0..first {
            db.write(rows(w * 50, 50)).await.unwrap();
        }
        soon("the checkpointer did not copy the log", &|| {
            frames("w.db") > before + super::CHECKPOINT_FRAMES as u64 / 2
        })
        .await;

        // Two and a half restart marks more: the log starts over past the restart mark,
        // however far behind the checkpointer is.
        let written = first + (super::RESTART_FRAMES * 5 / 2 / per_write) as usize;
        for w in first..written {
            db.write(rows(w * 50, 50)).await.unwrap();
        }
        let limit = super::RESTART_FRAMES as u64 + 200;
        assert!(
            frames("w.db-wal") < limit,
            "the log grew to {} frames",
            frames("w.db-wal")
        );
        let rows_written = written * 50;
        soon("the rows are not in the database file", &|| {
            frames("w.db") > rows_written as u64 * 19 / 10
        })
        .await;

        // One write of ~10 000 frames: in the database file soon after it is answered.
        let before = frames("w.db");
        db.write(rows(rows_written, 4000)).await.unwrap();
        soon("the big commit was not copied", &|| {
            frames("w.db") > before + 7000
        })
        .await;
        assert_eq!(keys(&db).await.len(), rows_written + 4000);
    }
}
