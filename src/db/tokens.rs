//! SCIM bearer tokens: hashes, names and timestamps; never the secret.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::DbError;
use crate::scim::datetime;

/// A token as listed to admins.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: i64,
    pub tenant: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// What a valid token grants: access to one tenant.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    /// The id of the token in the table its `credential` names.
    pub token_id: i64,
    pub tenant_id: i64,
    pub credential: Credential,
}

/// Which kind of bearer token authenticated a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A SCIM token an admin created (`scim_tokens`).
    ScimToken,
    /// An OAuth access token the token endpoint issued (`oauth_tokens`).
    OAuthAccessToken,
}

impl Grant {
    /// The caller as logs and the audit trail name it: never the token itself.
    pub fn actor(&self) -> String {
        match self.credential {
            Credential::ScimToken => format!("token:{}", self.token_id),
            Credential::OAuthAccessToken => format!("oauth-token:{}", self.token_id),
        }
    }
}

/// How stale `last_used_at` may get before a request refreshes it; keeps reads read-only.
const LAST_USED_RESOLUTION_SECS: i64 = 60;

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

/// Creates a token for `ctx`'s tenant and records who did it in the audit log (the prefix
/// and name, never the secret). Returns the token's id.
pub fn issue(
    conn: &Connection,
    ctx: &super::sync::WriteContext,
    name: &str,
    prefix: &str,
    hash: &[u8; 32],
    expires_at: Option<&str>,
) -> Result<i64, DbError> {
    let id = insert(conn, ctx.tenant_id, name, prefix, hash, expires_at)?;
    super::audit::append(
        conn,
        &super::audit::Entry::new(
            ctx.tenant_id,
            &ctx.actor,
            super::audit::Action::TokenCreated,
            Some(format!("token/{id}")),
        )
        .with_request_id(ctx.request_id.as_deref())
        .with_detail(serde_json::json!({"name": name, "prefix": prefix, "expiresAt": expires_at})),
    )?;
    Ok(id)
}

/// Revokes live token `id` of `ctx`'s tenant and records it in the audit log.
pub fn withdraw(
    conn: &Connection,
    ctx: &super::sync::WriteContext,
    id: i64,
) -> Result<(), DbError> {
    revoke(conn, Some(ctx.tenant_id), id)?;
    super::audit::append(
        conn,
        &super::audit::Entry::new(
            ctx.tenant_id,
            &ctx.actor,
            super::audit::Action::TokenRevoked,
            Some(format!("token/{id}")),
        )
        .with_request_id(ctx.request_id.as_deref()),
    )?;
    Ok(())
}

/// The live token `id` of the tenant.
pub fn get(conn: &Connection, tenant_id: i64, id: i64) -> Result<TokenInfo, DbError> {
    list(conn, Some(tenant_id))?
        .into_iter()
        .find(|t| t.id == id && t.revoked_at.is_none())
        .ok_or(DbError::NotFound)
}

pub fn list(conn: &Connection, tenant_id: Option<i64>) -> Result<Vec<TokenInfo>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT t.id, n.slug, t.name, t.prefix, t.created_at, t.last_used_at, t.expires_at, t.revoked_at
         FROM scim_tokens t JOIN tenants n ON n.id = t.tenant_id
         WHERE ?1 IS NULL OR t.tenant_id = ?1 ORDER BY t.id",
    )?;
    let rows = stmt
        .query_map([tenant_id], |r| {
            Ok(TokenInfo {
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

/// The grant of the live, unexpired token whose hash is `hash`.
pub fn authenticate(
    conn: &Connection,
    hash: &[u8; 32],
    now: &str,
) -> Result<Option<Grant>, DbError> {
    Ok(conn
        .query_row(
            "SELECT id, tenant_id FROM scim_tokens
             WHERE hash = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)",
            params![&hash[..], now],
            |r| {
                Ok(Grant {
                    token_id: r.get(0)?,
                    tenant_id: r.get(1)?,
                    credential: Credential::ScimToken,
                })
            },
        )
        .optional()?)
}

impl Credential {
    /// The table the credential's rows live in.
    fn table(self) -> &'static str {
        match self {
            Credential::ScimToken => "scim_tokens",
            Credential::OAuthAccessToken => "oauth_tokens",
        }
    }
}

/// The grant of a presented bearer token, a SCIM token or an OAuth access token (both
/// looked up by hash), and whether its `last_used_at` is older than the resolution kept.
pub fn authenticate_bearer(
    conn: &Connection,
    hash: &[u8; 32],
    now: time::OffsetDateTime,
) -> Result<Option<(Grant, bool)>, DbError> {
    let when = datetime::format(now);
    let grant = match authenticate(conn, hash, &when)? {
        Some(g) => g,
        None => match super::oauth::authenticate(conn, hash, &when)? {
            Some(g) => g,
            None => return Ok(None),
        },
    };
    let cutoff = datetime::format(now - time::Duration::seconds(LAST_USED_RESOLUTION_SECS));
    let stale: bool = conn.query_row(
        &format!(
            "SELECT last_used_at IS NULL OR last_used_at < ?2 FROM {} WHERE id = ?1",
            grant.credential.table()
        ),
        params![grant.token_id, cutoff],
        |r| r.get(0),
    )?;
    Ok(Some((grant, stale)))
}

/// Records that the grant's credential was used at `now`.
pub fn touch(conn: &Connection, grant: &Grant, now: &str) -> Result<(), DbError> {
    conn.execute(
        &format!(
            "UPDATE {} SET last_used_at = ?2 WHERE id = ?1",
            grant.credential.table()
        ),
        params![grant.token_id, now],
    )?;
    Ok(())
}
