//! Recorded sync runs: force syncs, `scimd sync` and the role re-evaluations that follow a
//! settings change, applied or dry. The report itself is not stored: the audit log holds
//! every applied change.

use rusqlite::{Connection, params};
use serde::Serialize;
use serde_json::Value;

use super::DbError;

/// A run to record.
pub struct NewRun<'a> {
    pub tenant_id: i64,
    /// [`crate::model::Actor::label`] of who ran it.
    pub actor: &'a str,
    pub scope: &'a str,
    pub dry_run: bool,
    pub started_at: &'a str,
    pub finished_at: &'a str,
    pub duration_ms: u64,
    /// The report's counts by kind.
    pub counts: &'a Value,
}

/// Records a run; returns its id.
pub fn insert(conn: &Connection, run: &NewRun) -> Result<i64, DbError> {
    conn.execute(
        "INSERT INTO sync_runs (tenant_id, actor, scope, dry_run, started_at, finished_at, duration_ms, counts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            run.tenant_id,
            run.actor,
            run.scope,
            run.dry_run,
            run.started_at,
            run.finished_at,
            run.duration_ms as i64,
            run.counts.to_string()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// A recorded run, without its report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub id: i64,
    pub actor: String,
    pub scope: String,
    pub dry_run: bool,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: i64,
    pub counts: Value,
}

const RUN_COLUMNS: &str = "id, actor, scope, dry_run, started_at, finished_at, duration_ms, counts";

fn run_from_row(r: &rusqlite::Row) -> rusqlite::Result<RunRecord> {
    let counts: String = r.get(7)?;
    Ok(RunRecord {
        id: r.get(0)?,
        actor: r.get(1)?,
        scope: r.get(2)?,
        dry_run: r.get(3)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        duration_ms: r.get(6)?,
        counts: serde_json::from_str(&counts).unwrap_or(Value::Null),
    })
}

/// The tenant's most recent runs, newest first.
pub fn recent(conn: &Connection, tenant_id: i64, limit: u32) -> Result<Vec<RunRecord>, DbError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs WHERE tenant_id = ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![tenant_id, limit], run_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// One of the tenant's runs; `NotFound` for another tenant's.
pub fn get(conn: &Connection, tenant_id: i64, id: i64) -> Result<RunRecord, DbError> {
    conn.query_row(
        &format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE tenant_id = ?1 AND id = ?2"),
        params![tenant_id, id],
        run_from_row,
    )
    .map_err(|e| match e {
        rusqlite::Error::QueryReturnedNoRows => DbError::NotFound,
        e => e.into(),
    })
}

/// A bigger page cache for `conn` while it lives, for a whole-tenant sync that writes in
/// one transaction far more than SQLite's default 2 MiB cache holds (at 100 000 members,
/// some 250 MiB of members, audit entries and events, with their indexes). With the
/// default, SQLite spills dirty pages to the WAL mid-transaction and reads them back for
/// the next index insertion, over and over; that, not the SQL, was most of the apply's
/// time. The cache only grows as pages are used and shrinks back when the guard drops.
pub struct WideCache<'c> {
    conn: &'c Connection,
    /// The connection's own `cache_size`, restored on drop.
    before: i64,
}

/// Sets `conn`'s page cache to at most `mib` MiB until the returned guard drops.
pub fn widen_cache(conn: &Connection, mib: i64) -> Result<WideCache<'_>, DbError> {
    let before: i64 = conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
    conn.execute_batch(&format!("PRAGMA cache_size = {}", -mib * 1024))?;
    Ok(WideCache { conn, before })
}

impl Drop for WideCache<'_> {
    fn drop(&mut self) {
        // Only memory is at stake if this fails: the pool's connection keeps the bigger cache.
        let _ = self
            .conn
            .execute_batch(&format!("PRAGMA cache_size = {}", self.before));
    }
}
