//! SCIM bearer tokens: hashes, names and timestamps; never the secret.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::DbError;
use super::credentials::Found;
use crate::scim::datetime;

/// A SCIM token as listed to admins.
#[derive(Debug, Clone, Serialize)]
pub struct ScimToken {
    pub id: i64,
    pub tenant: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl ScimToken {
    /// [`super::credentials::state`].
    pub fn state(&self) -> &'static str {
        super::credentials::state(self.revoked_at.as_deref(), self.expires_at.as_deref())
    }
}

pub fn insert(
    conn: &Connection,
    tenant_id: i64,
    name: &str,
    prefix: &str,
    hash: &[u8; 32],
    expires_at: Option<&str>,
) -> Result<i64, DbError> {
    conn.execute(
        "INSERT INTO scim_tokens (tenant_id, name, prefix, hash, created_at, expires_at)
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

/// The live token `id` of the tenant.
pub fn get(conn: &Connection, tenant_id: i64, id: i64) -> Result<ScimToken, DbError> {
    list(conn, Some(tenant_id))?
        .into_iter()
        .find(|t| t.id == id && t.revoked_at.is_none())
        .ok_or(DbError::NotFound)
}

pub fn list(conn: &Connection, tenant_id: Option<i64>) -> Result<Vec<ScimToken>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT t.id, n.slug, t.name, t.prefix, t.created_at, t.last_used_at, t.expires_at, t.revoked_at
         FROM scim_tokens t JOIN tenants n ON n.id = t.tenant_id
         WHERE ?1 IS NULL OR t.tenant_id = ?1 ORDER BY t.id",
    )?;
    let rows = stmt
        .query_map([tenant_id], |r| {
            Ok(ScimToken {
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

/// Revokes token `id` (of `tenant_id`, when given); `NotFound` if there is no such live
/// token.
pub fn revoke(conn: &Connection, tenant_id: Option<i64>, id: i64) -> Result<(), DbError> {
    let n = conn.execute(
        "UPDATE scim_tokens SET revoked_at = ?2
         WHERE id = ?1 AND revoked_at IS NULL AND (?3 IS NULL OR tenant_id = ?3)",
        params![id, datetime::now(), tenant_id],
    )?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// The live, unexpired token whose hash is `hash`.
pub fn authenticate(
    conn: &Connection,
    hash: &[u8; 32],
    now: &str,
) -> Result<Option<Found>, DbError> {
    Ok(conn
        .query_row(
            "SELECT id, tenant_id, expires_at FROM scim_tokens
             WHERE hash = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)",
            params![&hash[..], now],
            |r| {
                Ok(Found::Scim {
                    id: r.get(0)?,
                    tenant_id: r.get(1)?,
                    expires_at: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// Whether token `id` was last used before `cutoff` (or never).
pub fn used_before(conn: &Connection, id: i64, cutoff: &str) -> Result<bool, DbError> {
    Ok(conn.query_row(
        "SELECT last_used_at IS NULL OR last_used_at < ?2 FROM scim_tokens WHERE id = ?1",
        params![id, cutoff],
        |r| r.get(0),
    )?)
}

/// Records that token `id` was used at `now`.
pub fn touch(conn: &Connection, id: i64, now: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE scim_tokens SET last_used_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}
