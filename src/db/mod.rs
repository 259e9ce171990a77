//! Storage: the only module that speaks SQL.
//!
//! One SQLite file in WAL mode behind an r2d2 pool. Every connection gets the same pragmas
//! and SQL functions in the pool's init hook. Blocking work runs on tokio's blocking pool
//! through [`Db::read`]; a pooled connection is never held across an `.await`. Writes go
//! to one writer thread ([`Db::write`], `writer`), which commits the writes waiting
//! together in one IMMEDIATE transaction, each in its own savepoint that keeps its changes
//! only when its closure succeeds: a request's writes land together or not at all, and
//! its answer waits for the commit.

pub mod admins;
pub mod api_keys;
mod assign;
pub mod audit;
pub mod credentials;
pub mod events;
pub mod filter_sql;
pub mod groups;
pub mod guard;
mod health;
pub mod members;
mod migrations;
pub mod oauth;
pub mod paging;
pub mod plans;
pub mod requests;
pub mod seeds;
pub mod settings;
pub mod sync_runs;
pub mod tenants;
pub mod tokens;
pub mod users;
pub mod webhooks;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::scim::list::Position;

pub use health::WriteFailure;
pub use migrations::{SCHEMA_VERSION, schema_version};

/// A connection or transaction, as the use cases (`ops`) hand it to the table functions.
pub type Conn = Connection;

/// What storage can fail with: exactly the distinctions callers act on.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database pool error: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("{0}")]
    Schema(String),
    #[error("database task failed: {0}")]
    Task(String),
    /// Someone else holds what is needed (a server, for a restore).
    #[error("{0}")]
    Busy(String),
    /// The tenant a write was authenticated for was deleted before the write ran (by the
    /// command line, whose deletion a server's token cache learns of within a second).
    #[error("the tenant was deleted: its credentials no longer work")]
    TenantDeleted,
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
}

impl DbError {
    /// The storage cannot take writes now (disk full, read-only or failing file system,
    /// the database locked past the busy timeout, no connection free): the request may
    /// succeed later, and nothing of it was written (its transaction rolled back).
    pub fn unavailable(&self) -> bool {
        use rusqlite::ErrorCode as C;
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                C::DiskFull
                    | C::ReadOnly
                    | C::SystemIoFailure
                    | C::CannotOpen
                    | C::DatabaseBusy
                    | C::DatabaseLocked
            ),
            DbError::Pool(_) | DbError::Busy(_) => true,
            _ => false,
        }
    }

    /// A read stopped past its [`Scan::budget`]: the request asks more than the server
    /// will compute for one answer (a filter no index helps, many times over).
    pub fn too_costly(&self) -> bool {
        matches!(self, DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::OperationInterrupted)
    }
}

/// Prepared statements each connection keeps (`prepare_cached`).
const STATEMENT_CACHE: usize = 512;

/// How hard a commit waits for the disk (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// A 2xx survives power loss: an IdP never re-sends a write it saw succeed.
    Full,
    /// Survives a crash of scimd but may lose the last commits on power loss; faster.
    Normal,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// The database handle shared by the whole server; cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<SqliteConnectionManager>,
    /// The writer thread's queue (group commit, see [`writer`]): writes wait here in
    /// arrival order, and whatever waits is committed together. Other processes (the CLI)
    /// still meet the busy timeout.
    writer: std::sync::mpsc::Sender<writer::Job>,
    /// Bumped after every commit of [`Db::write`]: what the events feed's long polls and
    /// the webhook workers wait on, so a new event reaches them without a polling delay.
    commits: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// The newest event cursor whose commit is durable: readers of the events feed see no
    /// further (see [`Db::durable_cursor`]).
    durable: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// The bearer tokens seen lately (kept current by the writer).
    credentials: std::sync::Arc<credentials::Credentials>,
    /// How the writer's newest durable commit attempt ended (see [`Db::write_health`]).
    write_health: std::sync::Arc<health::WriteHealth>,
    /// The database file, whose size (and its WAL's) the metrics report.
    path: std::sync::Arc<std::path::PathBuf>,
    /// Leave to hold a pooled connection for a read whose cost grows with the directory or
    /// with the client ([`Db::scan`]): fewer than the pool has, so lookups always find one.
    scans: std::sync::Arc<tokio::sync::Semaphore>,
    /// Each tenant's share of `scans` ([`SCANS_PER_TENANT`]), made on its first scan.
    tenant_scans: std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<i64, std::sync::Arc<tokio::sync::Semaphore>>>,
    >,
}

/// A connection running under a [`Scan::budget`]; dropping it takes the budget off.
struct Budgeted<'c>(&'c Connection);

impl Drop for Budgeted<'_> {
    fn drop(&mut self) {
        let _ = self.0.progress_handler(0, None::<fn() -> bool>);
    }
}

/// A read for [`Db::scan`]: whose turn it takes, and how long its statements may run.
#[derive(Debug, Clone, Copy)]
pub struct Scan {
    pub tenant_id: i64,
    /// `None` for a read whose length is its client's (a big group streamed): only what
    /// the server computes is budgeted, not how slowly a client reads.
    pub budget: Option<Duration>,
}

impl Scan {
    /// A list page of `tenant_id`: its statements get [`LIST_BUDGET`].
    pub fn list(tenant_id: i64) -> Scan {
        Scan {
            tenant_id,
            budget: Some(LIST_BUDGET),
        }
    }

    /// A read that waits on its client between chunks, unbudgeted.
    pub fn streamed(tenant_id: i64) -> Scan {
        Scan {
            tenant_id,
            budget: None,
        }
    }
}

/// Connections the read pool holds.
const POOL: u32 = 8;
/// Of them, how many reads whose cost grows with the directory or waits on a client (a
/// filtered list, a big group streamed to a slow reader) may hold at once.
const SCANS: usize = 4;
/// Of the [`SCANS`], how many one tenant's reads may hold at once: however its clients
/// read (or fail to), another tenant's scans find a turn.
const SCANS_PER_TENANT: usize = SCANS / 2;
/// How long a scan waits for its turn before the client hears "busy, retry".
const SCAN_WAIT: Duration = Duration::from_secs(30);
/// How long one list page may compute: a filter that no index answers and that repeats
/// itself hundreds of times (`title co "a" or title co "b" or …`) costs its length times
/// the directory, and past this it is refused rather than holding a core.
pub const LIST_BUDGET: Duration = Duration::from_secs(5);

/// The write-ahead log of the database at `path`.
fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

impl Db {
    /// The sizes in bytes of the database file and of its write-ahead log (0 when a
    /// checkpoint has truncated it or it cannot be read).
    pub fn file_sizes(&self) -> (u64, u64) {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        (size(&self.path), size(&wal_path(&self.path)))
    }

    /// Opens (creating if needed) the database at `path` and migrates it to this binary's
    /// schema. A database written by a newer scimd is refused.
    pub fn open(path: &Path, durability: Durability) -> Result<Db, DbError> {
        Db::open_with(path, durability, 0)
    }

    /// [`Db::open`], with up to `mapped` bytes of the file mapped into memory for reads
    /// (`PRAGMA mmap_size`; 0: none). A lookup then reads the random leaves it lands on
    /// from the mapping instead of with a `pread` each, but the file's pages it touched
    /// count in the process's RSS, and an I/O error on the file stops the process (SIGBUS)
    /// rather than failing one request: off unless the operator asks (`--mmap-mib`).
    pub fn open_with(path: &Path, durability: Durability, mapped: u64) -> Result<Db, DbError> {
        create_private(path)?;
        // SQLite follows a symlink to the database and keeps its log beside the file it
        // points to: the flusher must flush that log, not one beside the link.
        let path = &std::fs::canonicalize(path)?;
        let sync = durability.pragma();
        let manager = SqliteConnectionManager::file(path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(move |c| {
                c.busy_timeout(Duration::from_secs(10))?;
                // rusqlite keeps 16 prepared statements per connection by default; one SCIM
                // write runs many more distinct ones (the resource, sync, members, audit,
                // events), so the cache thrashed and ~40% of the writer's time went to
                // SQLite's parser. Every statement the code runs fits in this.
                c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                // SQLite marks a statement to be compiled again whenever a value is bound to
                // a parameter its plan looked at, even the same value: every `LIMIT ?` (so
                // every list page and filtered lookup) was parsed anew on each run, a fifth
                // of the server's time. With the planner's stability guarantee a plan
                // never depends on bound values, and a cached statement stays compiled.
                c.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
                c.execute_batch(&format!(
                    "PRAGMA foreign_keys = ON; PRAGMA synchronous = {sync}; PRAGMA temp_store = MEMORY;
                     PRAGMA mmap_size = {mapped};"
                ))?;
                filter_sql::register_functions(c)
            });
        // WAL must be set before the pool hands out readers; it persists in the file.
        {
            let conn = Connection::open(path)?;
            conn.busy_timeout(Duration::from_secs(10))?;
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(DbError::Schema(format!(
                    "{} cannot use WAL journaling (got {mode})",
                    path.display()
                )));
            }
        }
        let pool = r2d2::Pool::builder()
            .max_size(POOL)
            // A connection to a local file does not go stale; the check ran a statement
            // on every checkout (~3 % of a lookup's time).
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(30))
            .build(manager)?;
        let mut conn = pool.get()?;
        migrations::run(&mut conn)?;
        audit::seal_pending(&mut conn)?;
        tenants::ensure_default(&conn)?;
        drop(conn);
        let commits = std::sync::Arc::new(tokio::sync::watch::Sender::new(0));
        let credentials = std::sync::Arc::new(credentials::Credentials::default());
        let conn = pool.get()?;
        credentials.refresh(&conn)?;
        let log = wal_path(path);
        let durable = match durability {
            // What the log holds may have been written by a process that stopped before
            // its flush: flushed now, it is durable. Read first, flushed after, as the
            // flusher does: an event another process committed meanwhile is flushed too.
            Durability::Full => {
                let newest = writer::newest_cursor(&conn)?;
                match writer::sync_log(&log) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
                newest
            }
            Durability::Normal => i64::MAX,
        };
        drop(conn);
        let durable = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(durable));
        let write_health = std::sync::Arc::new(health::WriteHealth::default());
        let db = Db {
            writer: writer::start(
                pool.clone(),
                durability,
                log,
                commits.clone(),
                durable.clone(),
                credentials.clone(),
                write_health.clone(),
            )?,
            pool,
            commits,
            durable,
            credentials,
            write_health,
            path: std::sync::Arc::new(path.to_path_buf()),
            scans: std::sync::Arc::new(tokio::sync::Semaphore::new(SCANS)),
            tenant_scans: Default::default(),
        };
        db.optimize()?;
        Ok(db)
    }

    /// Whether writes can be stored: `Err`, with the reason and since when, from the first
    /// durable commit attempt of the writer that fails for a reason of the storage (disk
    /// full, read-only or failing file system, the log's flush failing) until one succeeds
    /// after a minute without such a failure (see [`health`]); `Ok` otherwise. A write that
    /// failed on its own (a constraint, a conflict) changes nothing here. While writes
    /// fail, the writer tries a commit of its own every few seconds when no write comes,
    /// so this turns `Ok` when the storage recovers even if nothing else writes. Reads no
    /// database: as cheap as a lock.
    pub fn write_health(&self) -> Result<(), WriteFailure> {
        self.write_health.check()
    }

    /// Refreshes the query planner's statistics where they are stale (`PRAGMA optimize`),
    /// so lookups keep starting from the right index as the directory grows. Cheap when
    /// nothing changed; the server runs it at start and periodically.
    pub fn optimize(&self) -> Result<(), DbError> {
        self.pool
            .get()?
            .execute_batch("PRAGMA optimize = 0x10002;")?;
        Ok(())
    }

    /// At a clean stop, once requests and deliveries have ended: copies the whole log into
    /// the database and empties it (`wal_checkpoint(TRUNCATE)`), so the database file alone
    /// holds every write (copied to another machine, or kept as the backup of a stopped
    /// server) and the next start has no log to read. Returns whether it did; it does not
    /// while another process reads or writes the database (a command of the command line),
    /// and then the log stays beside the file as it would after a crash, whole and safe.
    pub async fn empty_log_for_exit(&self) -> Result<bool, DbError> {
        let pool = self.pool.clone();
        run_blocking(move || {
            let conn = pool.get()?;
            // A stop should not wait long on another process.
            conn.busy_timeout(Duration::from_secs(2))?;
            let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
            Ok(busy == 0)
        })
        .await
    }

    /// Runs `f` on a pooled connection, on the blocking thread pool.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let pool = self.pool.clone();
        run_blocking(move || {
            let conn = pool.get().map_err(DbError::from)?;
            f(&conn)
        })
        .await
    }

    /// Runs `f`, a lookup whose cost does not grow with the directory (a few index probes
    /// and rows), on the calling task's thread with a connection the pool has free at once;
    /// when none is free it goes to the blocking pool like [`Db::read`]. A trip to the
    /// blocking pool costs two thread wake-ups, more than such a lookup itself: skipping
    /// it is a third of a `GET /Users/{id}`'s server time.
    pub async fn lookup<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        match self.pool.try_get() {
            Some(conn) => f(&conn),
            None => self.read(f).await,
        }
    }

    /// Runs `f` in one read transaction: every query it makes sees the same snapshot of the
    /// database (a list and the events cursor it reports agree, whatever commits meanwhile).
    pub async fn snapshot<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.read(move |c| in_snapshot(c, f)).await
    }

    /// [`Db::snapshot`] for a read whose cost grows with the directory (a filtered or sorted
    /// list page) or with how slowly its client reads (a big group streamed): at most
    /// [`SCANS`] of them hold connections at once, so however many a client sends, or
    /// however slowly it reads them, lookups and other reads always find a connection; and
    /// one tenant's hold at most [`SCANS_PER_TENANT`], so another tenant's find a turn.
    /// The others wait their turn, up to [`SCAN_WAIT`]: then `Busy`, a 503 "retry". A
    /// statement running past the scan's budget is stopped: [`DbError::too_costly`].
    pub async fn scan<T, E, F>(&self, scan: Scan, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let share = {
            let mut shares = self.tenant_scans.lock().unwrap_or_else(|e| e.into_inner());
            shares
                .entry(scan.tenant_id)
                .or_insert_with(|| {
                    std::sync::Arc::new(tokio::sync::Semaphore::new(SCANS_PER_TENANT))
                })
                .clone()
        };
        let turns = tokio::time::timeout(SCAN_WAIT, async {
            let share = share.acquire_owned().await?;
            let turn = self.scans.clone().acquire_owned().await?;
            Ok::<_, tokio::sync::AcquireError>((share, turn))
        })
        .await;
        let Ok(Ok(turns)) = turns else {
            return Err(DbError::Busy(
                "the server is answering as many long reads as it may; retry shortly".into(),
            )
            .into());
        };
        self.read(move |c| {
            let _turns = turns;
            let Some(budget) = scan.budget else {
                return in_snapshot(c, f);
            };
            let deadline = std::time::Instant::now() + budget;
            c.progress_handler(10_000, Some(move || std::time::Instant::now() > deadline))
                .map_err(DbError::from)?;
            // Taken off however the read ends, a panic included: left on the pooled
            // connection, its past deadline would stop every later statement there.
            let _budget = Budgeted(c);
            in_snapshot(c, f)
        })
        .await
    }

    /// [`Db::snapshot`] for a lookup, run where [`Db::lookup`] runs one.
    pub async fn lookup_snapshot<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.lookup(move |c| in_snapshot(c, f)).await
    }

    /// A lookup that `once` answers in one statement when it can (`Some`), as of one
    /// moment without a transaction; otherwise `f` answers it in a snapshot
    /// ([`Db::lookup_snapshot`]).
    pub async fn lookup_once_or_snapshot<T, E, G, F>(&self, once: G, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        G: FnOnce(&Connection) -> Result<Option<T>, E> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.lookup(move |c| match once(c)? {
            Some(answer) => Ok(answer),
            None => in_snapshot(c, f),
        })
        .await
    }

    /// Runs `f` in a write transaction that commits `f`'s changes only if it returns `Ok`,
    /// and answers once that commit is durable. Concurrent writes share one transaction
    /// and one flush (group commit, see [`writer`]), each in a savepoint of its own: one
    /// write's failure never fails or changes another.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Transaction) -> Result<T, E> + Send + 'static,
    {
        self.write_as(false, f).await
    }

    async fn write_as<T, E, F>(&self, relaxed: bool, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Transaction) -> Result<T, E> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.queue(writer::Job::once(relaxed, f, answer), answered)
            .await
    }

    /// [`Db::write`] for an `f` that may run more than once before its changes commit,
    /// each time on the same database, because it acts on nothing but the transaction
    /// (no channel, cache or counter of the process): it then needs no savepoint of its
    /// own (see [`writer`]). What `f` returns the last time it ran is the answer.
    pub async fn write_replayable<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: Fn(&Transaction) -> Result<T, E> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.queue(writer::Job::replayable(false, f, answer), answered)
            .await
    }

    /// [`Db::write_relaxed`] for an `f` that may run again, as [`Db::write_replayable`]:
    /// bookkeeping written beside the SCIM writes (the request inspector's rows) then
    /// costs them no savepoints.
    pub async fn write_relaxed_replayable<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: Fn(&Transaction) -> Result<T, E> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.queue(writer::Job::replayable(true, f, answer), answered)
            .await
    }

    /// Hands `job` to the writer and waits for its answer.
    async fn queue<T, E>(
        &self,
        job: writer::Job,
        answered: tokio::sync::oneshot::Receiver<std::thread::Result<Result<T, E>>>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let stopped = || DbError::Task("the database writer has stopped".into());
        self.writer.send(job).map_err(|_| stopped())?;
        match answered.await {
            Ok(Ok(out)) => out,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(stopped().into()),
        }
    }

    /// [`Db::write`] for bookkeeping that may be lost on power loss and redone without harm
    /// (a webhook endpoint's cursor: at least once allows a second delivery). Its commit is
    /// not flushed to disk by itself (`synchronous=NORMAL` for this transaction; the next
    /// durable commit flushes the log up to it), so frequent bookkeeping does not hold
    /// every SCIM write behind an fsync of its own. It stays atomic, and survives a crash
    /// of the process.
    pub async fn write_relaxed<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Transaction) -> Result<T, E> + Send + 'static,
    {
        self.write_as(true, f).await
    }

    /// Changes whenever a write of this process commits (writes of other processes, such
    /// as the CLI, are not seen: waiters also look again after a while).
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// The newest event cursor readers of the events feed may be shown. With
    /// `synchronous=FULL` a batch is visible to readers once committed, a moment before the
    /// flush that makes it durable and answers its writes; an event shown in that moment
    /// and then lost to a power cut would be handed out again, under the same cursor, for
    /// another change. So the feed, the webhooks and the cursors apps are given stop at the
    /// events flushed. Without a flush per commit (`normal`), no limit.
    pub fn durable_cursor(&self) -> i64 {
        self.durable.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The bearer tokens seen lately, to authenticate without a query.
    pub fn credentials(&self) -> &credentials::Credentials {
        &self.credentials
    }

    /// A connection for synchronous callers (the CLI).
    pub fn conn(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, DbError> {
        Ok(self.pool.get()?)
    }

    /// [`Db::snapshot`] on the calling thread, with a connection the pool has free at once
    /// (`None` when it has none): for blocking work that reads a second snapshot beside the
    /// one it holds, on a thread of its own, and would rather do without than wait.
    pub fn snapshot_here<T, E, F>(&self, f: F) -> Option<Result<T, E>>
    where
        E: From<DbError>,
        F: FnOnce(&Connection) -> Result<T, E>,
    {
        let conn = self.pool.try_get()?;
        Some(in_snapshot(&conn, f))
    }
}

/// Creates the file `path`, readable and writable by its owner only, unless it exists. A
/// database holds webhook signing secrets and every credential's hash, so neither it nor a
/// backup is left readable by everyone under the usual umask; SQLite gives a database's
/// `-wal` and `-shm` files its mode.
fn create_private(path: &Path) -> Result<(), DbError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e.into()),
            _ => {}
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Copies the whole database to a new file with SQLite's online backup, which yields a
/// consistent snapshot while writers go on (a plain file copy of a WAL database may not).
/// Returns the number of pages copied.
///
/// The copy is written beside `to` under a temporary name and renamed into place once
/// whole and flushed, so a backup that fails (a full disk) or is killed leaves no file
/// that looks like one, and the same name can be tried again. It is a self-contained file
/// in rollback-journal mode: it opens read-only where nothing can be written beside it (a
/// snapshot, a read-only mount), which a WAL file cannot (SQLite needs its `-shm`).
pub fn backup(db: &Db, to: &Path) -> Result<i32, DbError> {
    let src = db.conn()?;
    let name = to.file_name().unwrap_or_default().to_string_lossy();
    let partial = to.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let remove = |p: &Path| {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
        }
    };
    remove(&partial);
    let copied = copy(&src, &partial).and_then(|pages| {
        std::fs::File::open(&partial)?.sync_all()?;
        if to.exists() {
            return Err(DbError::Busy(format!(
                "{} appeared meanwhile",
                to.display()
            )));
        }
        std::fs::rename(&partial, to)?;
        let dir = to.parent().filter(|d| !d.as_os_str().is_empty());
        std::fs::File::open(dir.unwrap_or(Path::new(".")))?.sync_all()?;
        Ok(pages)
    });
    if copied.is_err() {
        remove(&partial);
    }
    copied
}

/// Copies the database of `src` into the file `to` in one step: one read transaction, so
/// the copy is the snapshot of the moment it began, whatever commits meanwhile (a copy
/// made in small steps would start over at every commit of another connection). WAL
/// readers block no writer, so the server goes on meanwhile. Returns the pages copied.
fn copy(src: &Connection, to: &Path) -> Result<i32, DbError> {
    create_private(to)?;
    let mut dst = Connection::open(to)?;
    dst.busy_timeout(Duration::from_secs(10))?;
    {
        use rusqlite::backup::StepResult;
        let b = rusqlite::backup::Backup::new(src, &mut dst)?;
        // -1: every page in one step.
        while let StepResult::Busy | StepResult::Locked | StepResult::More = b.step(-1)? {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // The pages carry the source's WAL mode; a file on its own is better off without it
    // (a restored database is put back in WAL mode as it opens).
    let _: String = dst.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    let pages: i32 = dst.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    Ok(pages)
}

/// Opens a database file to read it as it is (a backup to check or restore). A WAL-mode
/// file (a backup from before backups left WAL mode) cannot be opened read-only where its
/// `-shm` cannot be created; with no `-wal` beside it, nothing is in a log, and it is then
/// read as immutable.
fn open_read_only(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let cannot_open =
        |e: &rusqlite::Error| e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen);
    match conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)) {
        Err(e) if cannot_open(&e) && !wal_path(path).exists() => {
            let mut uri = url::Url::from_file_path(std::fs::canonicalize(path)?)
                .map_err(|()| DbError::Schema(format!("{} has no usable path", path.display())))?;
            uri.set_query(Some("immutable=1"));
            Ok(Connection::open_with_flags(
                uri.as_str(),
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
            )?)
        }
        _ => Ok(conn),
    }
}

/// The database at `path` as it is, read only, without its migrations or start-up reads:
/// what `scimd check` looks at when the database does not open for use.
pub fn open_as_is(path: &Path) -> Result<Connection, DbError> {
    open_read_only(path)
}

/// SQLite's quick check of every page (`PRAGMA quick_check`: not the indexes' contents),
/// each problem as a line; empty when it found none.
pub fn quick_check(conn: &Connection) -> Result<Vec<String>, DbError> {
    Ok(conn
        .prepare("PRAGMA quick_check")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|l| l != "ok")
        .collect())
}

/// What is wrong with a database: SQLite's integrity check and foreign key check, each
/// problem as a line; empty when it is sound.
pub fn check(conn: &Connection) -> Result<Vec<String>, DbError> {
    let mut problems: Vec<String> = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|l| l != "ok")
        .collect();
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let fks = stmt.query_map([], |r| {
        Ok(format!(
            "row {} of {} refers to a missing row of {}",
            r.get::<_, Option<i64>>(1)?.unwrap_or_default(),
            r.get::<_, String>(0)?,
            r.get::<_, String>(2)?
        ))
    })?;
    for fk in fks {
        problems.push(fk?);
    }
    Ok(problems)
}

/// Run as root on a database whose directory belongs to another user (the packaged
/// service's `DynamicUser` state directory), hands the files root created there (the
/// database, its `-wal` and `-shm`) to that user, so the service can still open them.
/// Anywhere else it does nothing.
pub fn adopt_owner(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    if std::fs::metadata("/proc/self")?.uid() != 0 {
        return Ok(());
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let owner = std::fs::metadata(dir)?;
    if owner.uid() == 0 {
        return Ok(());
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if std::fs::metadata(&file).is_ok_and(|m| m.uid() == 0) {
            std::os::unix::fs::chown(&file, Some(owner.uid()), Some(owner.gid()))?;
        }
    }
    Ok(())
}

/// Held by `scimd serve` for as long as it runs, and by `restore` while it replaces the
/// database: an exclusive advisory `flock` on the database file, which SQLite's own locks
/// ignore (the command line's other commands go on beside a server). So `restore` can
/// tell a server holds the database, and a second server on the same database is refused:
/// two would each deliver every webhook event, out of order.
#[derive(Debug)]
pub struct ServerLock(#[allow(dead_code)] std::fs::File);

impl ServerLock {
    /// The lock of a server; `Busy` when another server holds the database.
    pub fn serving(path: &Path) -> Result<ServerLock, DbError> {
        ServerLock::exclusive(path).map_err(|e| match e {
            DbError::Busy(_) => DbError::Busy(format!(
                "another scimd server is using {}: one server per database",
                path.display()
            )),
            e => e,
        })
    }

    /// The lock no server may hold meanwhile; `Busy` when one does. A database it creates
    /// is private to its owner from the start, as [`create_private`] makes it.
    fn exclusive(path: &Path) -> Result<ServerLock, DbError> {
        create_private(path)?;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match f.try_lock() {
            Ok(()) => Ok(ServerLock(f)),
            Err(std::fs::TryLockError::WouldBlock) => Err(DbError::Busy(format!(
                "a scimd server is using {}: stop it first",
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub pages: i32,
    /// Whether there was a database at the path (not a first restore on a new machine).
    pub replaced: bool,
    /// Whether the replaced database told how far it numbered its events; if not, the
    /// restored one numbers its next events [`events::RESTORE_MARGIN`] past its own.
    pub replaced_read: bool,
    /// Where the replaced database went (`…replaced-<time>`, or `…damaged-<time>` when
    /// SQLite could not read it).
    pub set_aside: Option<PathBuf>,
}

/// Replaces the database at `to` with the backup `from`, after checking the backup: it
/// must be a sound SQLite database (`check`) of this scimd or an older one. Refuses while
/// a server holds `to`. The restored database is then migrated to this scimd's schema, and
/// numbers its next events past those `to` handed out ([`events::continue_past`]): apps
/// and webhook receivers saw those, and must never see their ids or numbers again.
pub fn restore(from: &Path, to: &Path) -> Result<Restored, DbError> {
    if !from.is_file() {
        return Err(DbError::Schema(format!("{} is not a file", from.display())));
    }
    let src = open_read_only(from)
        .map_err(|e| DbError::Schema(format!("{} cannot be opened: {e}", from.display())))?;
    let version = schema_version(&src)
        .map_err(|e| DbError::Schema(format!("{} is not a database: {e}", from.display())))?;
    if version == 0 || version > SCHEMA_VERSION {
        return Err(DbError::Schema(format!(
            "{} is not a backup of this scimd (schema version {version}, this scimd writes {SCHEMA_VERSION})",
            from.display()
        )));
    }
    let problems = check(&src)
        .map_err(|e| DbError::Schema(format!("{} cannot be checked: {e}", from.display())))?;
    if !problems.is_empty() {
        return Err(DbError::Schema(format!(
            "{} fails its integrity check, nothing restored: {}",
            from.display(),
            problems.join("; ")
        )));
    }
    let existed = std::fs::metadata(to).is_ok_and(|m| m.len() > 0);
    let mut lock = ServerLock::exclusive(to)?;
    let replaced = replaced_counters(to);
    // (A missing database is an empty file now: the lock's.) The one replaced is kept,
    // whole with its log: restoring the wrong backup must not lose what it held.
    let set_aside = match std::fs::metadata(to)?.len() > 0 {
        true => {
            let why = if replaced.is_some() {
                "replaced"
            } else {
                "damaged"
            };
            let aside = set_aside(to, why)?;
            lock = ServerLock::exclusive(to)?;
            Some(aside)
        }
        false => None,
    };
    let pages = copy(&src, to)?;
    drop(src);
    let db = Db::open(to, Durability::Full)?;
    let mut conn = db.conn()?;
    write_sync(&mut conn, |tx| events::continue_past(tx, replaced.as_ref()))?;
    drop(lock);
    Ok(Restored {
        pages,
        replaced: existed,
        replaced_read: replaced.is_some(),
        set_aside,
    })
}

/// Moves the database a restore replaces out of the way, with its log, to
/// `<path>.<why>-<unix time>` (`replaced`, or `damaged` when SQLite cannot read it): kept,
/// and its log never replayed into the database that takes its place.
fn set_aside(path: &Path, why: &str) -> Result<PathBuf, DbError> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        if from.exists() {
            let aside = PathBuf::from(format!("{}.{why}-{stamp}{suffix}", path.display()));
            std::fs::rename(&from, &aside)?;
        }
    }
    Ok(PathBuf::from(format!("{}.{why}-{stamp}", path.display())))
}

/// How far the database at `path`, about to be replaced, numbered its events; `None` when
/// it is missing or cannot tell (damaged: often why it is being replaced).
fn replaced_counters(path: &Path) -> Option<events::Counters> {
    if !path.is_file() {
        return None;
    }
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    events::counters(&conn).ok()
}

/// Whether the database answers a query: what `/healthz` reports.
pub fn ping(conn: &Connection) -> Result<(), DbError> {
    Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?)
}

/// The transaction discipline of [`Db::write`], for callers already off the runtime.
pub fn write_sync<T, E, F>(conn: &mut Connection, f: F) -> Result<T, E>
where
    E: From<DbError>,
    F: FnOnce(&Transaction) -> Result<T, E>,
{
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(DbError::from)?;
    let out = f(&tx)?;
    tx.commit().map_err(DbError::from)?;
    Ok(out)
}

/// Runs `f` in one read transaction on `conn`.
///
/// `BEGIN` and `COMMIT` run as cached statements: rusqlite's `Transaction` parses both
/// anew each time, a twentieth of a `userName eq` lookup.
fn in_snapshot<T, E, F>(conn: &Connection, f: F) -> Result<T, E>
where
    E: From<DbError>,
    F: FnOnce(&Connection) -> Result<T, E>,
{
    let run = |sql: &str| conn.prepare_cached(sql)?.execute([]).map(drop);
    run("BEGIN DEFERRED").map_err(DbError::from)?;
    let snapshot = Snapshot(conn);
    let out = f(conn)?;
    run("COMMIT").map_err(DbError::from)?;
    drop(snapshot);
    Ok(out)
}

/// Ends a read transaction however its reader left it (an error, a panic): a pooled
/// connection must not keep its snapshot, which would hold back checkpoints.
struct Snapshot<'c>(&'c Connection);

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

/// Runs blocking work on tokio's blocking pool, re-raising a panic in the caller.
async fn run_blocking<T, E, F>(f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(DbError::Task(e.to_string()).into()),
    }
}

/// Column `idx` of `r`: a resource's stored JSON object (`users.data`, `groups.data`).
pub(crate) fn json_column(
    r: &rusqlite::Row,
    idx: usize,
) -> rusqlite::Result<serde_json::Map<String, serde_json::Value>> {
    json_text(&r.get::<_, String>(idx)?, idx)
}

/// [`json_column`] for text already read from column `idx`.
pub(crate) fn json_text(
    text: &str,
    idx: usize,
) -> rusqlite::Result<serde_json::Map<String, serde_json::Value>> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A resource's attributes as the JSON text its `data` column stores, printed straight from
/// the map: wrapping it in a `Value` to print it copies it first (~1.5 % of a POST /Users
/// in the writer).
pub(crate) fn data_text(data: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::to_string(data).expect("a JSON object always prints")
}

/// Whether `e` is a UNIQUE constraint failure.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

/// A list request after parsing: filter, order and the page wanted.
#[derive(Default)]
pub struct ListQuery {
    pub filter: Option<filter_sql::Compiled>,
    pub sort_by: Option<crate::scim::schema::AttrRef>,
    pub descending: bool,
    /// 1-based index of the first result (RFC 7644 §3.4.2.4); 1 when paging by cursor.
    pub start_index: u64,
    /// Page size; 0 asks for the total only.
    pub count: u64,
    /// Cursor pagination (RFC 9865): resume after this position in the query's order.
    pub after: Option<Position>,
}

impl ListQuery {
    /// Whether the page is found by an index lookup of the few resources its filter names
    /// (see [`filter_sql::Compiled::lookup`]): cheap whatever the directory's size.
    pub fn is_lookup(&self) -> bool {
        self.filter.as_ref().is_some_and(|f| f.lookup)
    }
}

/// One page of results.
pub struct Page<T> {
    /// How many rows match the filter in all.
    pub total: u64,
    pub items: Vec<T>,
    /// Where the next page resumes (the last row's position), when there is a next page.
    pub next: Option<Position>,
}

/// The shared list query: `from` is `"<table> <alias>"`, `columns` begin with the pk.
fn list_page<T>(
    conn: &Connection,
    tenant_id: i64,
    q: &ListQuery,
    rt: &crate::scim::schema::ResourceType,
    from: &str,
    columns: &str,
    map: fn(&rusqlite::Row) -> rusqlite::Result<T>,
) -> Result<Page<T>, DbError>
where
    T: HasPk,
{
    use rusqlite::types::Value as SqlValue;
    let alias = from.rsplit(' ').next().unwrap_or(from);
    let mut cond = format!("{alias}.tenant_id = ?");
    let mut params: Vec<SqlValue> = vec![SqlValue::Integer(tenant_id)];
    if let Some(f) = &q.filter {
        cond.push_str(&format!(" AND ({})", f.sql));
        params.extend(f.params.iter().cloned());
    }
    let total: i64 = conn.query_row(
        &format!("SELECT count(*) FROM {from} WHERE {cond}"),
        rusqlite::params_from_iter(&params),
        |r| r.get(0),
    )?;
    if q.count == 0 {
        return Ok(Page {
            total: total as u64,
            items: Vec::new(),
            next: None,
        });
    }
    let key = q.sort_by.as_ref().and_then(|a| filter_sql::sort_key(a, rt));
    // Keyset pagination: the rows after `after` in the order below. Without a sort value
    // (the default order) that is `pk > ?`, which the primary key answers from where the
    // cursor points, whatever the page's position.
    let mut page_cond = cond;
    if let Some(after) = &q.after {
        let pk = SqlValue::Integer(after.pk);
        let lt = if q.descending { "<" } else { ">" };
        match (&key, json_to_sql(&after.key)) {
            (None, _) => {
                page_cond.push_str(&format!(" AND {alias}.pk {lt} ?"));
                params.push(pk);
            }
            // Ascending, NULLS LAST: after a null, only nulls with a greater pk.
            (Some(k), SqlValue::Null) if !q.descending => {
                page_cond.push_str(&format!(" AND ({k}) IS NULL AND {alias}.pk > ?"));
                params.push(pk);
            }
            // Descending, NULLS FIRST: after a null, the other nulls below it, then all values.
            (Some(k), SqlValue::Null) => {
                page_cond.push_str(&format!(" AND (({k}) IS NOT NULL OR {alias}.pk < ?)"));
                params.push(pk);
            }
            // Ascending: greater values, equal ones with a greater pk, then the nulls.
            (Some(k), v) if !q.descending => {
                page_cond.push_str(&format!(
                    " AND (COALESCE(({k}) > ?, 1) OR (({k}) = ? AND {alias}.pk > ?))"
                ));
                params.extend([v.clone(), v, pk]);
            }
            // Descending: smaller values, equal ones with a smaller pk (nulls came first).
            (Some(k), v) => {
                page_cond.push_str(&format!(
                    " AND (COALESCE(({k}) < ?, 0) OR (({k}) = ? AND {alias}.pk < ?))"
                ));
                params.extend([v.clone(), v, pk]);
            }
        }
    }
    let offset = if q.after.is_some() {
        0
    } else {
        q.start_index.saturating_sub(1)
    };
    // The sort value is selected once, as the last column, ordered by and kept for the cursor.
    let select = match &key {
        Some(k) => format!("{columns}, {k} AS sort_key"),
        None => columns.to_string(),
    };
    let order = filter_sql::order_by_key(key.as_ref().map(|_| "sort_key"), q.descending, rt);
    // One extra row tells whether another page follows.
    params.push(SqlValue::Integer(q.count as i64 + 1));
    params.push(SqlValue::Integer(offset.min(i64::MAX as u64) as i64));
    let mut stmt = conn.prepare(&format!(
        "SELECT {select} FROM {from} WHERE {page_cond} {order} LIMIT ? OFFSET ?"
    ))?;
    let key_column = key.as_ref().map(|_| stmt.column_count() - 1);
    let mut items = Vec::new();
    let mut keys = Vec::new();
    let mut rows = stmt.query(rusqlite::params_from_iter(&params))?;
    while let Some(row) = rows.next()? {
        items.push(map(row)?);
        keys.push(match key_column {
            Some(i) => sql_to_json(row.get_ref(i)?),
            None => serde_json::Value::Null,
        });
    }
    let more = items.len() as u64 > q.count;
    items.truncate(q.count as usize);
    let next = match (more, items.last()) {
        (true, Some(last)) => Some(Position {
            key: keys[items.len() - 1].clone(),
            pk: last.pk(),
        }),
        _ => None,
    };
    Ok(Page {
        total: total as u64,
        next,
        items,
    })
}

/// A cursor's sort value as an SQL value to compare with.
fn json_to_sql(v: &serde_json::Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as SqlValue;
    match v {
        serde_json::Value::String(s) => SqlValue::Text(s.clone()),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or_default()),
        },
        _ => SqlValue::Null,
    }
}

/// A sort value as read, for a cursor. Sort expressions give text, numbers or NULL.
fn sql_to_json(v: rusqlite::types::ValueRef) -> serde_json::Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => {
            serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)
        }
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
        ValueRef::Null | ValueRef::Blob(_) => serde_json::Value::Null,
    }
}

/// Rows that can be paged by keyset.
pub trait HasPk {
    fn pk(&self) -> i64;
}

impl HasPk for users::UserRow {
    fn pk(&self) -> i64 {
        self.pk
    }
}

/// A migrated in-memory database with the default tenant (id 1) and the SQL functions the
/// server registers: what the storage layer's unit tests start from.
#[cfg(test)]
pub(crate) fn scratch_db() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    migrations::run(&mut conn).unwrap();
    tenants::ensure_default(&conn).unwrap();
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However many long reads wait on slow clients (or scan a big directory), they hold at
    /// most [`SCANS`] connections: lookups and other reads still find one at once, and the
    /// other scans wait their turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scans_leave_connections_for_everything_else() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.db"), Durability::Normal).unwrap();
        let running = std::sync::Arc::new(AtomicUsize::new(0));
        let mut releases = Vec::new();
        let mut scans = Vec::new();
        for tenant in 0..POOL {
            let (release, wait) = std::sync::mpsc::channel::<()>();
            releases.push(release);
            let (db, running) = (db.clone(), running.clone());
            scans.push(tokio::spawn(async move {
                db.scan(Scan::streamed(tenant.into()), move |c| {
                    running.fetch_add(1, Ordering::SeqCst);
                    let _ = wait.recv();
                    ping(c)
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            running.load(Ordering::SeqCst),
            SCANS,
            "the others wait their turn"
        );
        let read = tokio::time::timeout(Duration::from_secs(2), db.read(ping)).await;
        assert!(
            matches!(read, Ok(Ok(()))),
            "a read finds a connection at once"
        );
        let lookup = tokio::time::timeout(Duration::from_secs(2), db.lookup(ping)).await;
        assert!(matches!(lookup, Ok(Ok(()))));
        drop(releases);
        for scan in scans {
            scan.await.unwrap().unwrap();
        }
        assert_eq!(running.load(Ordering::SeqCst), POOL as usize);
    }

    /// One tenant's scans, however slowly their clients read, hold at most its share: another
    /// tenant's scan has a turn at once. A list page computing past its budget is stopped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tenant_holds_its_share_of_scans_and_a_list_its_budget() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.db"), Durability::Normal).unwrap();
        let running = std::sync::Arc::new(AtomicUsize::new(0));
        let (release, wait) = tokio::sync::watch::channel(false);
        let mut scans = Vec::new();
        for _ in 0..SCANS {
            let (db, running, mut wait) = (db.clone(), running.clone(), wait.clone());
            scans.push(tokio::spawn(async move {
                db.scan(Scan::streamed(7), move |c| {
                    running.fetch_add(1, Ordering::SeqCst);
                    while !*wait.borrow_and_update() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    ping(c)
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(running.load(Ordering::SeqCst), SCANS_PER_TENANT);
        let other =
            tokio::time::timeout(Duration::from_secs(2), db.scan(Scan::list(8), ping)).await;
        assert!(matches!(other, Ok(Ok(()))), "another tenant's turn at once");
        release.send(true).unwrap();
        for scan in scans {
            scan.await.unwrap().unwrap();
        }

        let budget = Scan {
            tenant_id: 8,
            budget: Some(Duration::from_millis(200)),
        };
        let endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";
        let stopped = db
            .scan(budget, move |c| {
                Ok::<i64, DbError>(c.query_row(endless, [], |r| r.get(0))?)
            })
            .await
            .unwrap_err();
        assert!(stopped.too_costly(), "{stopped}");
        // A read that panics under its budget (a bug) leaves no budget behind either.
        for _ in 0..POOL {
            let db = db.clone();
            let panicked = tokio::spawn(async move {
                db.scan(budget, |_| -> Result<(), DbError> {
                    panic!("a bug in a list page")
                })
                .await
            })
            .await;
            assert!(panicked.is_err_and(|e| e.is_panic()));
        }
        // The connection it used is as good as before: no budget left behind on it, which
        // would stop this longer statement on whichever connection it runs.
        let longer = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) SELECT count(*) FROM n";
        for _ in 0..POOL {
            let n = db
                .scan(Scan::streamed(8), move |c| {
                    Ok::<i64, DbError>(c.query_row(longer, [], |r| r.get(0))?)
                })
                .await
                .unwrap();
            assert_eq!(n, 200_000);
        }
    }

    /// A backup restored where the database it replaces cannot tell how far it numbered its
    /// events (missing: a new machine; damaged) numbers its next ones far past its own, and
    /// every earlier cursor must list again.
    #[test]
    fn a_restore_over_an_unreadable_database_numbers_events_far_past_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let (live, backup) = (dir.path().join("live.db"), dir.path().join("backup.db"));
        let db = Db::open(&live, Durability::Normal).unwrap();
        let mut conn = db.conn().unwrap();
        write_sync(&mut conn, |tx| {
            for _ in 0..3 {
                let actor = crate::model::Actor::cli();
                events::append(tx, &actor, 1, events::EventType::GroupCreated, "g", &())?;
            }
            Ok::<_, DbError>(())
        })
        .unwrap();
        drop(conn);
        self::backup(&db, &backup).unwrap();
        drop(db);
        for target in ["missing.db", "damaged.db"] {
            let to = dir.path().join(target);
            if target == "damaged.db" {
                std::fs::write(&to, b"not a database").unwrap();
            }
            let restored = restore(&backup, &to).unwrap();
            assert!(!restored.replaced_read, "{target}");
            match restored.set_aside {
                Some(aside) => assert_eq!(std::fs::read(aside).unwrap(), b"not a database"),
                None => assert_eq!(target, "missing.db"),
            }
            let conn = Connection::open(&to).unwrap();
            let after = events::counters(&conn).unwrap();
            assert_eq!(after.cursor, 3 + events::RESTORE_MARGIN);
            assert_eq!(after.seqs, vec![(1, 3 + events::RESTORE_MARGIN)]);
            assert_eq!(
                events::bounds(&conn, 1).unwrap(),
                (3 + events::RESTORE_MARGIN, 3 + events::RESTORE_MARGIN)
            );
        }
    }

    /// A cached statement is compiled once, whatever values are bound to it later, even
    /// after `PRAGMA optimize` has sampled the indexes (`.cargo/config.toml`: SQLite
    /// without STAT4, which re-plans a statement for every new value bound; the planner's
    /// stability guarantee on every connection, for the rest).
    #[test]
    fn cached_statements_are_not_compiled_again_for_new_values() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.db"), Durability::Normal).unwrap();
        let conn = db.conn().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (pk INTEGER PRIMARY KEY, k INTEGER NOT NULL);
             CREATE INDEX t_k ON t(k);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO t (k) SELECT CASE WHEN i % 10 = 0 THEN i ELSE 0 END FROM n;
             ANALYZE;",
        )
        .unwrap();
        // A value compared with a sampled index, and a page's `LIMIT ?`, which SQLite
        // looks at when planning even without statistics.
        for sql in [
            "SELECT count(*) FROM t WHERE k = ?1",
            "SELECT count(*) FROM (SELECT pk FROM t WHERE k >= ?1 ORDER BY pk LIMIT ?1)",
        ] {
            for k in [0, 10, 20, 0, 30] {
                let _: i64 = conn
                    .prepare_cached(sql)
                    .unwrap()
                    .query_row([k], |r| r.get(0))
                    .unwrap();
            }
            let stmt = conn.prepare_cached(sql).unwrap();
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }

    /// Every connection of a database opened with a mapping maps the file; one opened
    /// without maps nothing.
    #[test]
    fn a_mapping_is_asked_of_every_connection_or_of_none() {
        let dir = tempfile::tempdir().unwrap();
        // Every connection but the writer's, which it holds.
        let readers = POOL as usize - 1;
        let mapped = |db: &Db| -> Vec<i64> {
            let conns: Vec<_> = (0..readers).map(|_| db.conn().unwrap()).collect();
            conns
                .iter()
                .map(|c| c.query_row("PRAGMA mmap_size", [], |r| r.get(0)).unwrap())
                .collect()
        };
        let path = dir.path().join("m.db");
        let db = Db::open_with(&path, Durability::Normal, 8 << 20).unwrap();
        assert_eq!(mapped(&db), vec![8 << 20; readers]);
        drop(db);
        let db = Db::open(&path, Durability::Normal).unwrap();
        assert_eq!(mapped(&db), vec![0; readers]);
    }

    /// A snapshot sees one state of the database throughout, and leaves its connection
    /// out of any transaction however its reader ends: success, error or panic.
    #[test]
    fn a_snapshot_is_one_state_and_always_ends() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.db"), Durability::Normal).unwrap();
        let (reader, writer) = (db.conn().unwrap(), db.conn().unwrap());
        writer
            .execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        let sum = |c: &Connection| c.query_row("SELECT sum(v) FROM t", [], |r| r.get::<_, i64>(0));
        let seen = in_snapshot(&reader, |c| {
            let before = sum(c)?;
            writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
            Ok::<_, DbError>((before, sum(c)?))
        })
        .unwrap();
        assert_eq!(seen, (1, 1), "a commit meanwhile is not seen");
        assert!(reader.is_autocommit());
        assert_eq!(sum(&reader).unwrap(), 3);

        let failed = in_snapshot(&reader, |c| {
            sum(c)?;
            Err::<(), _>(DbError::NotFound)
        });
        assert!(matches!(failed, Err(DbError::NotFound)));
        assert!(reader.is_autocommit(), "an error ends the snapshot");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            in_snapshot(&reader, |c| -> Result<(), DbError> {
                sum(c)?;
                panic!("reader fails");
            })
        }));
        assert!(panicked.is_err());
        assert!(reader.is_autocommit(), "a panic ends the snapshot");
    }

    /// A lookup runs on the caller's thread when a connection is free; when every
    /// connection is out, it waits for one on the blocking pool, never on the async
    /// worker, so other requests go on meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_lookup_waits_for_a_connection_off_the_async_worker() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("l.db"), Durability::Normal).unwrap();
        let caller = std::thread::current().id();
        let ran_on = db
            .lookup(|_| Ok::<_, DbError>(std::thread::current().id()))
            .await;
        assert_eq!(ran_on.unwrap(), caller, "a free connection: run in place");

        let taken: Vec<_> = (0..db.pool.max_size())
            .map(|_| db.pool.get().unwrap())
            .collect();
        let lookup = tokio::spawn({
            let db = db.clone();
            async move {
                let worker = std::thread::current().id();
                let out = db
                    .lookup_snapshot(|c| {
                        let one: i64 = c.query_row("SELECT 1", [], |r| r.get(0))?;
                        Ok::<_, DbError>((one, std::thread::current().id()))
                    })
                    .await;
                out.map(|(one, ran_on)| (one, ran_on, worker))
            }
        });
        // The only async worker is free while the lookup waits: this task runs.
        let other = tokio::spawn(async { 2 });
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), other)
                .await
                .unwrap()
                .unwrap(),
            2
        );
        assert!(!lookup.is_finished());
        drop(taken);
        let (one, ran_on, worker) = lookup.await.unwrap().unwrap();
        assert_eq!(one, 1);
        assert_ne!(
            ran_on, worker,
            "no free connection: the blocking pool waited"
        );
    }
}
