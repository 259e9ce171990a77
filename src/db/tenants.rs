//! Tenants: each SCIM token belongs to one, and every directory row carries its id.

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::DbError;
use super::members::CountMoves;
use crate::scim::datetime;

/// The tenant `scimd serve` creates on first start.
pub const DEFAULT_SLUG: &str = "default";

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub created_at: String,
}

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: r.get(0)?,
        slug: r.get(1)?,
        name: r.get(2)?,
        created_at: r.get(3)?,
    })
}

/// Creates the default tenant if there is none.
pub fn ensure_default(conn: &Connection) -> Result<(), DbError> {
    conn.execute(
        "INSERT OR IGNORE INTO tenants (slug, name, created_at) VALUES (?1, 'Default', ?2)",
        params![DEFAULT_SLUG, datetime::now()],
    )?;
    Ok(())
}

/// A slug is what admins type on the command line and see in URLs: keep it simple.
pub fn valid_slug(slug: &str) -> bool {
    (1..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
}

/// A tenant's name as stored: trimmed, 1 to 100 characters, none of them a control
/// character (a tab or a line break would break `tenant list`'s columns and lines).
fn checked_name(name: &str) -> Result<&str, DbError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(DbError::Conflict(
            "the tenant name must be 1 to 100 characters".into(),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(DbError::Conflict(
            "the tenant name may not hold control characters (tabs, line breaks)".into(),
        ));
    }
    Ok(name)
}

pub fn create(conn: &Connection, slug: &str, name: &str) -> Result<Tenant, DbError> {
    if !valid_slug(slug) {
        return Err(DbError::Conflict(format!(
            "invalid tenant slug {slug:?}: use 1-63 lowercase letters, digits and dashes"
        )));
    }
    let name = checked_name(name)?;
    let now = datetime::now();
    match conn.execute(
        "INSERT INTO tenants (slug, name, created_at) VALUES (?1, ?2, ?3)",
        params![slug, name, now],
    ) {
        Ok(_) => {}
        Err(e) if super::is_unique_violation(&e) => {
            return Err(DbError::Conflict(format!("tenant {slug:?} already exists")));
        }
        Err(e) => return Err(e.into()),
    }
    by_slug(conn, slug)
}

pub fn by_slug(conn: &Connection, slug: &str) -> Result<Tenant, DbError> {
    conn.query_row(
        "SELECT id, slug, name, created_at FROM tenants WHERE slug = ?1",
        [slug],
        from_row,
    )
    .optional()?
    .ok_or(DbError::NotFound)
}

/// Tenant `id`.
pub fn get(conn: &Connection, id: i64) -> Result<Tenant, DbError> {
    conn.query_row(
        "SELECT id, slug, name, created_at FROM tenants WHERE id = ?1",
        [id],
        from_row,
    )
    .optional()?
    .ok_or(DbError::NotFound)
}

pub fn list(conn: &Connection) -> Result<Vec<Tenant>, DbError> {
    let mut stmt = conn.prepare("SELECT id, slug, name, created_at FROM tenants ORDER BY id")?;
    let rows = stmt.query_map([], from_row)?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Renames a tenant (its slug, which URLs and tokens' owners use, never changes).
pub fn rename(conn: &Connection, id: i64, name: &str) -> Result<(), DbError> {
    let name = checked_name(name)?;
    let n = conn.execute(
        "UPDATE tenants SET name = ?1 WHERE id = ?2",
        params![name, id],
    )?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// What identifies the state of everything tenant `id`'s sync plan reads: the tenant's
/// creation time (an id a deleted tenant freed may be reused) and its plan counter, which
/// triggers bump in the transaction of every write to users, groups, memberships,
/// members, settings, roles and role mappings (migration `0014_plan_version`). Equal
/// versions mean equal plans.
pub fn plan_version(conn: &Connection, id: i64) -> Result<(String, i64), DbError> {
    conn.prepare_cached("SELECT created_at, plan_version FROM tenants WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or(DbError::NotFound)
}

/// Member writes in bulk, for a whole-tenant apply: while the batch is open the
/// connection fires no triggers, and [`MemberBatch::finish`] bumps tenant `tenant_id`'s
/// plan version once and moves the member counts as the batch moved members (what the
/// caller tallied in a [`CountMoves`]). The only triggers that writes to members, the
/// audit log and the outbox fire are the plan version's, one `UPDATE tenants` per row (a
/// fifth of applying 100 000 members), and the member counts' one upsert. Write nothing
/// else while it is open (users and groups keep their list counts by trigger). Switching
/// triggers off or on recompiles the connection's statements, twice per batch, so it is
/// for many rows, not one.
pub struct MemberBatch<'c> {
    conn: &'c Connection,
    tenant_id: i64,
}

pub fn member_batch(conn: &Connection, tenant_id: i64) -> Result<MemberBatch<'_>, DbError> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)?;
    Ok(MemberBatch { conn, tenant_id })
}

impl MemberBatch<'_> {
    /// Turns the triggers back on, bumps the plan version for the whole batch and moves
    /// the member counts as the batch moved members (their triggers did not fire).
    pub fn finish(self, moves: &CountMoves) -> Result<(), DbError> {
        self.conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, true)?;
        self.conn
            .prepare_cached("UPDATE tenants SET plan_version = plan_version + 1 WHERE id = ?1")?
            .execute([self.tenant_id])?;
        super::members::apply_count_moves(self.conn, self.tenant_id, moves)
    }
}

impl Drop for MemberBatch<'_> {
    /// A batch that failed leaves its transaction to be rolled back, and its connection
    /// with triggers on, whatever happened.
    fn drop(&mut self) {
        // Only an unknown option fails, and this one is known.
        let _ = self
            .conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, true);
    }
}
