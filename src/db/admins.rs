//! Admin accounts, sessions, the first-run setup link and login throttling.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::DbError;
use crate::scim::datetime;

#[derive(Debug, Clone, Serialize)]
pub struct Admin {
    pub id: i64,
    pub username: String,
    pub created_at: String,
    pub last_login_at: Option<String>,
}

/// A live session, as a request sees it.
#[derive(Debug, Clone)]
pub struct Session {
    pub admin_id: i64,
    pub username: String,
    pub csrf: String,
    pub expires_at: String,
    /// When it was last used, at most a minute behind ([`touch_session`]).
    pub last_seen_at: String,
}

pub fn count(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn.query_row("SELECT count(*) FROM admins", [], |r| r.get(0))?)
}

pub fn create(conn: &Connection, username: &str, password_hash: &str) -> Result<Admin, DbError> {
    let now = datetime::now();
    conn.execute(
        "INSERT INTO admins (username, password_hash, created_at) VALUES (?1, ?2, ?3)",
        params![username, password_hash, now],
    )
    .map_err(|e| {
        if super::is_unique_violation(&e) {
            // Names are unique whatever their case: name the one that exists.
            let existing: Option<String> = conn
                .query_row(
                    "SELECT username FROM admins WHERE username = ?1 COLLATE NOCASE",
                    [username],
                    |r| r.get(0),
                )
                .ok();
            let existing = existing.as_deref().unwrap_or(username);
            DbError::Conflict(format!("an admin called {existing:?} already exists"))
        } else {
            e.into()
        }
    })?;
    Ok(Admin {
        id: conn.last_insert_rowid(),
        username: username.to_string(),
        created_at: now,
        last_login_at: None,
    })
}

pub fn list(conn: &Connection) -> Result<Vec<Admin>, DbError> {
    let mut stmt = conn
        .prepare("SELECT id, username, created_at, last_login_at FROM admins ORDER BY username")?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Admin {
                id: r.get(0)?,
                username: r.get(1)?,
                created_at: r.get(2)?,
                last_login_at: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The id and password hash of `username` (any case).
pub fn credentials(conn: &Connection, username: &str) -> Result<Option<(i64, String)>, DbError> {
    Ok(conn
        .query_row(
            "SELECT id, password_hash FROM admins WHERE username = ?1",
            [username],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// Sets a new password and ends every session of that admin.
pub fn set_password(conn: &Connection, username: &str, password_hash: &str) -> Result<(), DbError> {
    let n = conn.execute(
        "UPDATE admins SET password_hash = ?2 WHERE username = ?1",
        params![username, password_hash],
    )?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    conn.execute(
        "DELETE FROM admin_sessions WHERE admin_id = (SELECT id FROM admins WHERE username = ?1)",
        [username],
    )?;
    Ok(())
}

/// Deletes an admin (and its sessions); the last admin cannot be deleted.
pub fn delete(conn: &Connection, id: i64) -> Result<(), DbError> {
    if count(conn)? <= 1 {
        return Err(DbError::Conflict(
            "the last admin account cannot be deleted".into(),
        ));
    }
    if conn.execute("DELETE FROM admins WHERE id = ?1", [id])? == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

// --- Sessions -----------------------------------------------------------------------------

pub fn create_session(
    conn: &Connection,
    admin_id: i64,
    id_hash: &[u8; 32],
    csrf: &str,
    expires_at: &str,
) -> Result<(), DbError> {
    let now = datetime::now();
    conn.execute(
        "INSERT INTO admin_sessions (id_hash, admin_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![&id_hash[..], admin_id, csrf, now, expires_at],
    )?;
    conn.execute(
        "UPDATE admins SET last_login_at = ?2 WHERE id = ?1",
        params![admin_id, now],
    )?;
    // Expired sessions are swept whenever someone logs in.
    conn.execute("DELETE FROM admin_sessions WHERE expires_at <= ?1", [now])?;
    Ok(())
}

/// The session whose cookie hashes to `id_hash`, unless it expired at `now` or was last
/// used at `idle_since` or before.
pub fn session(
    conn: &Connection,
    id_hash: &[u8; 32],
    now: &str,
    idle_since: &str,
) -> Result<Option<Session>, DbError> {
    Ok(conn
        .query_row(
            "SELECT s.admin_id, a.username, s.csrf, s.expires_at,
                    coalesce(s.last_seen_at, s.created_at)
             FROM admin_sessions s JOIN admins a ON a.id = s.admin_id
             WHERE s.id_hash = ?1 AND s.expires_at > ?2
               AND coalesce(s.last_seen_at, s.created_at) > ?3",
            params![&id_hash[..], now, idle_since],
            |r| {
                Ok(Session {
                    admin_id: r.get(0)?,
                    username: r.get(1)?,
                    csrf: r.get(2)?,
                    expires_at: r.get(3)?,
                    last_seen_at: r.get(4)?,
                })
            },
        )
        .optional()?)
}

/// Notes that the session whose cookie hashes to `id_hash` was used at `now`.
pub fn touch_session(conn: &Connection, id_hash: &[u8; 32], now: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE admin_sessions SET last_seen_at = ?2 WHERE id_hash = ?1",
        params![&id_hash[..], now],
    )?;
    Ok(())
}

pub fn delete_session(conn: &Connection, id_hash: &[u8; 32]) -> Result<(), DbError> {
    conn.execute(
        "DELETE FROM admin_sessions WHERE id_hash = ?1",
        [&id_hash[..]],
    )?;
    Ok(())
}

// --- The first-run setup link --------------------------------------------------------------

/// A new setup link, which voids every earlier unused one: each start of a server with no
/// admin prints a link to its log, and only the newest may work.
pub fn create_setup_token(
    conn: &Connection,
    hash: &[u8; 32],
    expires_at: &str,
) -> Result<(), DbError> {
    conn.execute("DELETE FROM setup_tokens WHERE used_at IS NULL", [])?;
    conn.execute(
        "INSERT INTO setup_tokens (hash, created_at, expires_at) VALUES (?1, ?2, ?3)",
        params![&hash[..], datetime::now(), expires_at],
    )?;
    Ok(())
}

/// Whether `hash` names an unused, unexpired setup token.
pub fn setup_token_valid(conn: &Connection, hash: &[u8; 32], now: &str) -> Result<bool, DbError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM setup_tokens WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2",
            params![&hash[..], now],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Marks the token used; `false` if it was not valid (used, expired or unknown).
pub fn consume_setup_token(conn: &Connection, hash: &[u8; 32], now: &str) -> Result<bool, DbError> {
    let n = conn.execute(
        "UPDATE setup_tokens SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2",
        params![&hash[..], now],
    )?;
    Ok(n == 1)
}

// --- Login throttling ---------------------------------------------------------------------

/// When `key` is locked out, until when.
pub fn locked_until(conn: &Connection, key: &str, now: &str) -> Result<Option<String>, DbError> {
    Ok(conn
        .query_row(
            "SELECT locked_until FROM login_failures WHERE key = ?1 AND locked_until > ?2",
            params![key, now],
            |r| r.get(0),
        )
        .optional()?)
}

/// Counts a failure for `key`; after `limit` failures within `window` the key is locked
/// until `lock_until`. Failures older than the window start a new count.
pub fn record_failure(
    conn: &Connection,
    key: &str,
    now: &str,
    window_start: &str,
    limit: i64,
    lock_until: &str,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO login_failures (key, failures, first_at) VALUES (?1, 1, ?2)
         ON CONFLICT(key) DO UPDATE SET
           failures = CASE WHEN first_at < ?3 THEN 1 ELSE failures + 1 END,
           first_at = CASE WHEN first_at < ?3 THEN ?2 ELSE first_at END",
        params![key, now, window_start],
    )?;
    conn.execute(
        "UPDATE login_failures SET locked_until = ?3 WHERE key = ?1 AND failures >= ?2",
        params![key, limit, lock_until],
    )?;
    Ok(())
}

pub fn clear_failures(conn: &Connection, key: &str) -> Result<(), DbError> {
    conn.execute("DELETE FROM login_failures WHERE key = ?1", [key])?;
    Ok(())
}

/// Forgets the failures of every key starting with `prefix`.
pub fn clear_failures_starting(conn: &Connection, prefix: &str) -> Result<(), DbError> {
    conn.execute(
        "DELETE FROM login_failures WHERE substr(key, 1, length(?1)) = ?1",
        [prefix],
    )?;
    Ok(())
}
