//! App API keys: hashes, names and timestamps; never the key.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::DbError;
use crate::scim::datetime;

/// A key as listed to admins.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub id: i64,
    /// The tenant it reads; `None` for a key that reads every tenant.
    pub tenant: Option<String>,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl ApiKey {
    /// [`super::credentials::state`].
    pub fn state(&self) -> &'static str {
        super::credentials::state(self.revoked_at.as_deref(), self.expires_at.as_deref())
    }
}

/// Stores a key of `tenant_id` (`None`: every tenant); returns its id.
pub fn insert(
    conn: &Connection,
    tenant_id: Option<i64>,
    name: &str,
    prefix: &str,
    hash: &[u8; 32],
    expires_at: Option<&str>,
) -> Result<i64, DbError> {
    conn.execute(
        "INSERT INTO api_keys (tenant_id, name, prefix, hash, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            tenant_id,
            name,
            prefix,
            &hash[..],
            datetime::now(),
            expires_at
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The keys of `tenant_id` (every key when `None`), oldest first.
pub fn list(conn: &Connection, tenant_id: Option<i64>) -> Result<Vec<ApiKey>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT k.id, n.slug, k.name, k.prefix, k.created_at, k.last_used_at, k.expires_at, k.revoked_at
         FROM api_keys k LEFT JOIN tenants n ON n.id = k.tenant_id
         WHERE ?1 IS NULL OR k.tenant_id = ?1 ORDER BY k.id",
    )?;
    let rows = stmt
        .query_map([tenant_id], |r| {
            Ok(ApiKey {
                id: r.get(0)?,
                tenant: r.get(1)?,
                name: r.get(2)?,
                prefix: r.get(3)?,
                created_at: r.get(4)?,
                last_used_at: r.get(5)?,
                expires_at: r.get(6)?,
                revoked_at: r.get(7)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Revokes live key `id` (of `tenant_id`, when given); `NotFound` if there is none.
/// Returns the tenant it belonged to.
pub fn revoke(conn: &Connection, tenant_id: Option<i64>, id: i64) -> Result<Option<i64>, DbError> {
    conn.query_row(
        "UPDATE api_keys SET revoked_at = ?2
         WHERE id = ?1 AND revoked_at IS NULL AND (?3 IS NULL OR tenant_id = ?3)
         RETURNING tenant_id",
        params![id, datetime::now(), tenant_id],
        |r| r.get(0),
    )
    .optional()?
    .ok_or(DbError::NotFound)
}

/// The live, unexpired key whose hash is `hash`: `(id, tenant_id, last_used_at)`.
#[allow(clippy::type_complexity)]
pub fn authenticate(
    conn: &Connection,
    hash: &[u8; 32],
    now: &str,
) -> Result<Option<(i64, Option<i64>, Option<String>)>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, tenant_id, last_used_at FROM api_keys
             WHERE hash = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)",
        )?
        .query_row(params![&hash[..], now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?)
}

/// Whether key `id` is neither revoked nor expired at `now`.
pub fn in_force(conn: &Connection, id: i64, now: &str) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM api_keys
             WHERE id = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)",
        )?
        .query_row(params![id, now], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Records that key `id` was used at `now`.
pub fn touch(conn: &Connection, id: i64, now: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}
