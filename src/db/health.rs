//! Whether the database takes writes: what `/healthz` reports beside a read.
//!
//! A read answering says nothing of writes: with the disk full, the file system turned
//! read-only or the log's flush failing, writes fail while reads go on. The writer thread
//! and its flusher ([`super::writer`]) note here how each durable commit attempt ended,
//! and [`super::Db::write_health`] reads it without a query. Only a failure of the storage
//! counts ([`storage_failure`]): a write's own error (a constraint, a SCIM conflict) is an
//! answer to that request, not ill health.
//!
//! A failure is not cleared by the next commit that succeeds, but by the first one after
//! [`SETTLE`] without another failure. On a full disk a small commit still fits where the
//! log's file already has room (the failed commit's frames are discarded, and the next
//! commit writes over them), while a bigger one fails: the refused SCIM write's own audit
//! entry, committed right after it, would otherwise clear the failure at once, and
//! `/healthz` would stay green while every IdP write is refused.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::DbError;

/// Why writes are failing, and since when: what `/healthz` shows while they do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    /// The storage's own words for the newest failure (SQLite's message, or the flush's
    /// I/O error): no path, no value of a write.
    pub reason: String,
    /// When the first failure of this run of failures happened.
    pub since: time::OffsetDateTime,
}

impl std::fmt::Display for WriteFailure {
    /// `<reason> since <RFC 3339 time, to the second>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let since = self
            .since
            .replace_nanosecond(0)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        write!(f, "{} since {since}", self.reason)
    }
}

/// How long writes must go without a failure of the storage before a commit that succeeds
/// clears it: twice the `Retry-After` a refused write is answered with, so an IdP that
/// retries keeps it failing while its writes are refused.
pub(super) const SETTLE: Duration = Duration::from_secs(60);

/// How long a commit, or the flush of the log, may run before writes count as stalled: a
/// disk that hangs (a frozen file system, a dead network mount) fails nothing, it just
/// never answers, and every write waits while reads go on.
pub(super) const STALLED: Duration = Duration::from_secs(30);

/// Who may be waiting on the storage: the writer in a commit, a flusher (one of several,
/// by number) in a flush.
#[derive(Debug, Clone, Copy)]
pub(super) enum Waiter {
    Writer,
    Flusher(usize),
}

impl Waiter {
    /// Where its start is kept in [`State::busy`].
    fn slot(self) -> usize {
        match self {
            Waiter::Writer => 0,
            Waiter::Flusher(n) => 1 + n,
        }
    }
}

/// How the durable commit attempts have been ending, shared by the writer, the flusher and
/// the readers of [`super::Db::write_health`]. Locked once per commit: uncontended, it
/// costs nothing beside the commit's flush.
#[derive(Debug)]
pub(super) struct WriteHealth(Mutex<State>);

#[derive(Debug)]
struct State {
    /// The writer's number of the commit attempt noted last: the flusher notes a batch
    /// after the writer has tried the next ones, and an older outcome must not hide a
    /// newer one (a flush that succeeds for a batch committed before a commit that failed).
    attempt: u64,
    /// The run of failures under way, until a commit clears it.
    failing: Option<WriteFailure>,
    /// When the newest failure of the storage was noted.
    last_failure: Instant,
    /// [`SETTLE`], shorter in tests.
    settle: Duration,
    /// Since when each [`Waiter`] has been in the commit or flush under way, by its
    /// [`Waiter::slot`].
    busy: Vec<Option<Instant>>,
}

impl Default for WriteHealth {
    fn default() -> Self {
        WriteHealth(Mutex::new(State {
            attempt: 0,
            failing: None,
            last_failure: Instant::now(),
            settle: SETTLE,
            busy: Vec::new(),
        }))
    }
}

impl WriteHealth {
    /// Commit attempt `attempt` is durable: writes work, or work again when no failure
    /// was noted for [`SETTLE`].
    pub(super) fn committed(&self, attempt: u64) {
        let mut state = self.lock();
        if attempt < state.attempt {
            return;
        }
        state.attempt = attempt;
        let settled = state.last_failure.elapsed() >= state.settle;
        if let Some(was) = state.failing.take_if(|_| settled) {
            tracing::info!(failing_since = %was, "database writes work again");
        }
    }

    /// Commit attempt `attempt` failed for a reason of the storage. A run of failures keeps
    /// the time of its first and the reason of its newest.
    pub(super) fn failed(&self, attempt: u64, reason: String) {
        let mut state = self.lock();
        if attempt < state.attempt {
            return;
        }
        state.attempt = attempt;
        state.last_failure = Instant::now();
        match &mut state.failing {
            Some(failing) => failing.reason = reason,
            None => {
                tracing::error!(%reason, "database writes are failing");
                state.failing = Some(WriteFailure {
                    reason,
                    since: time::OffsetDateTime::now_utc(),
                });
            }
        }
    }

    /// `who` starts (`true`) or ends a commit or a flush.
    pub(super) fn busy(&self, who: Waiter, busy: bool) {
        let mut state = self.lock();
        let slot = who.slot();
        if state.busy.len() <= slot {
            state.busy.resize(slot + 1, None);
        }
        state.busy[slot] = busy.then(Instant::now);
    }

    /// Ok unless a durable commit attempt failed for the storage and none has succeeded
    /// since after [`SETTLE`] without another failure, or a commit or a flush has run for
    /// [`STALLED`] or longer.
    pub(super) fn check(&self) -> Result<(), WriteFailure> {
        let state = self.lock();
        if let Some(failing) = &state.failing {
            return Err(failing.clone());
        }
        let waited = state.busy.iter().flatten().map(Instant::elapsed).max();
        match waited {
            Some(waited) if waited >= STALLED => Err(WriteFailure {
                reason: format!(
                    "a write has waited {} s on the storage (a hung disk or file system?)",
                    waited.as_secs()
                ),
                since: time::OffsetDateTime::now_utc() - waited,
            }),
            _ => Ok(()),
        }
    }

    /// Shortens [`SETTLE`], for tests of the recovery that cannot wait a minute.
    #[cfg(test)]
    pub(super) fn settle_after(&self, settle: Duration) {
        self.lock().settle = settle;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The reason to report when `e`, met by a commit attempt of the writer, is the storage
/// failing: the disk full, the file read-only, gone or unreadable, an I/O error. Not what
/// a write did (a constraint, a dangling key at commit) nor contention (another process
/// holding the lock past the busy timeout, no connection free): those say nothing of
/// whether the next write can be stored. Narrower than [`DbError::unavailable`].
pub(super) fn storage_failure(e: &DbError) -> Option<String> {
    use rusqlite::ErrorCode as C;
    match e {
        DbError::Sqlite(e @ rusqlite::Error::SqliteFailure(f, _))
            if matches!(
                f.code,
                C::DiskFull
                    | C::ReadOnly
                    | C::SystemIoFailure
                    | C::CannotOpen
                    | C::DatabaseCorrupt
                    | C::NotADatabase
            ) =>
        {
            // SQLite's fixed wording ("database or disk is full", "disk I/O error"), never
            // a path or a value.
            Some(e.to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: std::ffi::c_int) -> DbError {
        DbError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    /// A hung disk fails nothing: a commit or flush that has run for [`STALLED`] shows as
    /// failing until it ends.
    #[test]
    fn a_commit_or_flush_that_never_ends_is_a_stall() {
        let h = WriteHealth::default();
        h.busy(Waiter::Flusher(0), true);
        h.busy(Waiter::Writer, true);
        assert_eq!(h.check(), Ok(()), "a flush under way");
        h.lock().busy[Waiter::Writer.slot()] = Some(Instant::now() - STALLED);
        let stalled = h.check().unwrap_err();
        assert!(stalled.reason.contains("waited 30 s"), "{stalled:?}");
        h.busy(Waiter::Writer, false);
        assert_eq!(h.check(), Ok(()));
        // Each flusher is its own waiter: one that ends does not hide another that hangs.
        h.busy(Waiter::Flusher(1), true);
        h.lock().busy[Waiter::Flusher(1).slot()] = Some(Instant::now() - STALLED);
        h.busy(Waiter::Flusher(0), false);
        assert!(h.check().is_err(), "the second flusher hangs");
        h.busy(Waiter::Flusher(1), false);
        assert_eq!(h.check(), Ok(()));
    }

    /// A failure is kept until a newer attempt succeeds; an outcome of an older attempt
    /// (the flusher's, behind the writer) changes nothing; a run of failures keeps its
    /// start.
    #[test]
    fn the_newest_attempt_decides_and_a_run_of_failures_keeps_its_start() {
        let h = WriteHealth::default();
        h.settle_after(Duration::ZERO);
        assert_eq!(h.check(), Ok(()));
        h.failed(2, "disk I/O error".into());
        let first = h.check().unwrap_err();
        assert_eq!(first.reason, "disk I/O error");
        h.committed(1);
        assert_eq!(
            h.check(),
            Err(first.clone()),
            "an older success hides nothing"
        );
        h.failed(3, "database or disk is full".into());
        let second = h.check().unwrap_err();
        assert_eq!(
            (second.reason.as_str(), second.since),
            ("database or disk is full", first.since)
        );
        h.committed(3);
        assert_eq!(h.check(), Ok(()));
        h.failed(2, "late".into());
        assert_eq!(h.check(), Ok(()), "an older failure hides nothing either");
    }

    /// A commit that succeeds soon after a failure (the refused write's own audit entry,
    /// small enough to fit on a full disk) does not clear it; one after [`SETTLE`] without
    /// a failure does.
    #[test]
    fn a_failure_clears_only_after_a_while_without_one() {
        let h = WriteHealth::default();
        h.failed(1, "database or disk is full".into());
        h.committed(2);
        assert!(
            h.check().is_err(),
            "cleared by a commit right after the failure"
        );
        let settle = Duration::from_millis(300);
        h.settle_after(settle);
        std::thread::sleep(settle);
        h.failed(3, "database or disk is full".into());
        h.committed(4);
        assert!(h.check().is_err(), "another failure started the wait again");
        std::thread::sleep(settle);
        h.committed(5);
        assert_eq!(h.check(), Ok(()));
    }

    #[test]
    fn only_failures_of_the_storage_count() {
        use rusqlite::ffi;
        for code in [
            ffi::SQLITE_FULL,
            ffi::SQLITE_IOERR_WRITE,
            ffi::SQLITE_IOERR_FSYNC,
            ffi::SQLITE_READONLY,
            ffi::SQLITE_READONLY_DBMOVED,
            ffi::SQLITE_CANTOPEN,
        ] {
            assert!(storage_failure(&sqlite(code)).is_some(), "{code}");
        }
        for e in [
            sqlite(ffi::SQLITE_CONSTRAINT_UNIQUE),
            sqlite(ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
            sqlite(ffi::SQLITE_BUSY),
            DbError::Conflict("taken".into()),
            DbError::Busy("try again".into()),
            DbError::NotFound,
        ] {
            assert_eq!(storage_failure(&e), None, "{e}");
        }
    }

    #[test]
    fn a_failure_reads_as_its_reason_and_its_start_to_the_second() {
        let f = WriteFailure {
            reason: "database or disk is full".into(),
            since: time::macros::datetime!(2026-03-04 05:06:07.891 UTC),
        };
        assert_eq!(
            f.to_string(),
            "database or disk is full since 2026-03-04T05:06:07Z"
        );
    }
}
