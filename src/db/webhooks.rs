//! Webhook endpoints and their delivery attempts: SQL only. What a delivery means for an
//! endpoint (retry, disable, resume) is decided in `ops::webhooks`.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::DbError;
use crate::scim::datetime;

/// An endpoint row, secrets included: only the sender and the admin pages read it.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub id: i64,
    pub tenant_id: i64,
    pub url: String,
    /// The event types it receives; empty for every type.
    pub types: Vec<String>,
    pub format: String,
    #[serde(skip)]
    pub secret: String,
    #[serde(skip)]
    pub previous_secret: Option<String>,
    pub previous_until: Option<String>,
    pub enabled: bool,
    pub disabled_at: Option<String>,
    pub disabled_reason: Option<String>,
    /// The last `seq` delivered or skipped.
    pub cursor: i64,
    /// When the event now being retried first failed.
    pub failing_since: Option<String>,
    /// Failed attempts of the event now being retried.
    pub failures: i64,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
}

const COLUMNS: &str = "id, tenant_id, url, types, format, secret, previous_secret, previous_until,
    enabled, disabled_at, disabled_reason, cursor, failing_since, failures, next_attempt_at,
    created_at";

fn from_row(r: &Row) -> rusqlite::Result<Endpoint> {
    let types: Option<String> = r.get(3)?;
    Ok(Endpoint {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        url: r.get(2)?,
        types: types
            .map(|t| t.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        format: r.get(4)?,
        secret: r.get(5)?,
        previous_secret: r.get(6)?,
        previous_until: r.get(7)?,
        enabled: r.get(8)?,
        disabled_at: r.get(9)?,
        disabled_reason: r.get(10)?,
        cursor: r.get(11)?,
        failing_since: r.get(12)?,
        failures: r.get(13)?,
        next_attempt_at: r.get(14)?,
        created_at: r.get(15)?,
    })
}

/// Stores an endpoint that starts after event `cursor`; returns its id.
pub fn insert(
    conn: &Connection,
    tenant_id: i64,
    url: &str,
    types: &[String],
    format: &str,
    secret: &str,
    cursor: i64,
) -> Result<i64, DbError> {
    let types = (!types.is_empty()).then(|| types.join(","));
    conn.execute(
        "INSERT INTO webhook_endpoints (tenant_id, url, types, format, secret, cursor, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            tenant_id,
            url,
            types,
            format,
            secret,
            cursor,
            datetime::now()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Endpoint `id` (of `tenant_id`, when given).
pub fn get(conn: &Connection, tenant_id: Option<i64>, id: i64) -> Result<Endpoint, DbError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM webhook_endpoints WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)"
    ))?
    .query_row(params![id, tenant_id], from_row)
    .optional()?
    .ok_or(DbError::NotFound)
}

/// The endpoints of `tenant_id` (every tenant's when `None`), oldest first.
pub fn list(conn: &Connection, tenant_id: Option<i64>) -> Result<Vec<Endpoint>, DbError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM webhook_endpoints WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([tenant_id], from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The oldest cursor among the tenant's enabled endpoints: every event after it is still
/// to be delivered to one of them (`None` without enabled endpoints).
pub fn oldest_enabled_cursor(conn: &Connection, tenant_id: i64) -> Result<Option<i64>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT min(cursor) FROM webhook_endpoints WHERE tenant_id = ?1 AND enabled = 1",
        )?
        .query_row([tenant_id], |r| r.get(0))?)
}

/// The ids of the enabled endpoints of every tenant.
pub fn enabled_ids(conn: &Connection) -> Result<Vec<i64>, DbError> {
    let mut stmt = conn.prepare_cached("SELECT id FROM webhook_endpoints WHERE enabled = 1")?;
    let rows = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Deletes endpoint `id` with its attempts.
pub fn delete(conn: &Connection, id: i64) -> Result<(), DbError> {
    match conn.execute("DELETE FROM webhook_endpoints WHERE id = ?1", [id])? {
        0 => Err(DbError::NotFound),
        _ => Ok(()),
    }
}

/// Moves the cursor of `id` from `from` to `to` and clears its failures; `false` when the
/// cursor is no longer `from` (a replay moved it meanwhile: the caller's batch is stale).
pub fn advance(conn: &Connection, id: i64, from: i64, to: i64) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "UPDATE webhook_endpoints SET cursor = ?3, failures = 0, failing_since = NULL,
                 next_attempt_at = NULL
             WHERE id = ?1 AND cursor = ?2",
        )?
        .execute(params![id, from, to])?
        > 0)
}

/// Records one more failure of the event after cursor `at` and when to try again; `false`
/// when the cursor moved meanwhile. Returns the failures so far otherwise.
pub fn fail(
    conn: &Connection,
    id: i64,
    at: i64,
    now: &str,
    next_attempt_at: &str,
) -> Result<Option<i64>, DbError> {
    Ok(conn
        .prepare_cached(
            "UPDATE webhook_endpoints SET failures = failures + 1,
                 failing_since = coalesce(failing_since, ?3), next_attempt_at = ?4
             WHERE id = ?1 AND cursor = ?2 RETURNING failures",
        )?
        .query_row(params![id, at, now, next_attempt_at], |r| r.get(0))
        .optional()?)
}

/// Disables endpoint `id` for `reason`, keeping its cursor.
pub fn disable(conn: &Connection, id: i64, reason: &str) -> Result<(), DbError> {
    let n = conn.execute(
        "UPDATE webhook_endpoints SET enabled = 0, disabled_at = ?2, disabled_reason = ?3,
             next_attempt_at = NULL
         WHERE id = ?1 AND enabled = 1",
        params![id, datetime::now(), reason],
    )?;
    match n {
        0 => Err(DbError::NotFound),
        _ => Ok(()),
    }
}

/// Enables endpoint `id` again, from its cursor, with a fresh retry schedule.
pub fn enable(conn: &Connection, id: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE webhook_endpoints SET enabled = 1, disabled_at = NULL, disabled_reason = NULL,
             failures = 0, failing_since = NULL, next_attempt_at = NULL
         WHERE id = ?1",
        [id],
    )?;
    Ok(())
}

/// Sets the cursor of `id` to `cursor` with a fresh retry schedule (a replay).
pub fn rewind(conn: &Connection, id: i64, cursor: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE webhook_endpoints SET cursor = ?2, failures = 0, failing_since = NULL,
             next_attempt_at = NULL
         WHERE id = ?1",
        params![id, cursor],
    )?;
    Ok(())
}

/// Replaces the secret of `id`, keeping the old one valid until `until`.
pub fn rotate(conn: &Connection, id: i64, secret: &str, until: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = ?3, secret = ?2
         WHERE id = ?1",
        params![id, secret, until],
    )?;
    Ok(())
}

/// A delivery attempt as stored and listed.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub endpoint_id: i64,
    /// The event's `seq`; 0 for a test event.
    pub seq: i64,
    pub event_id: String,
    pub at: String,
    /// The HTTP status; `None` when no answer came.
    pub status: Option<u16>,
    pub duration_ms: i64,
    pub error: Option<String>,
    /// The first bytes of the answer.
    pub response: Option<String>,
}

/// How many attempts are kept per endpoint.
pub const ATTEMPTS_KEPT: i64 = 1000;

/// Logs `attempts` of one endpoint and prunes its log to the newest [`ATTEMPTS_KEPT`].
pub fn log_attempts(conn: &Connection, attempts: &[Attempt]) -> Result<(), DbError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO webhook_attempts
             (endpoint_id, seq, event_id, at, status, duration_ms, error, response)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for a in attempts {
        insert.execute(params![
            a.endpoint_id,
            a.seq,
            a.event_id,
            a.at,
            a.status,
            a.duration_ms,
            a.error,
            a.response
        ])?;
    }
    let Some(endpoint) = attempts.first().map(|a| a.endpoint_id) else {
        return Ok(());
    };
    conn.prepare_cached(
        "DELETE FROM webhook_attempts WHERE endpoint_id = ?1 AND id <= (
             SELECT id FROM webhook_attempts WHERE endpoint_id = ?1
             ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )?
    .execute(params![endpoint, ATTEMPTS_KEPT])?;
    Ok(())
}

/// The newest `limit` attempts of endpoint `id`, newest first.
pub fn attempts(conn: &Connection, id: i64, limit: u32) -> Result<Vec<Attempt>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT endpoint_id, seq, event_id, at, status, duration_ms, error, response
         FROM webhook_attempts WHERE endpoint_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![id, limit], |r| {
            Ok(Attempt {
                endpoint_id: r.get(0)?,
                seq: r.get(1)?,
                event_id: r.get(2)?,
                at: r.get(3)?,
                status: r.get(4)?,
                duration_ms: r.get(5)?,
                error: r.get(6)?,
                response: r.get(7)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
