//! Tenant sync settings: test mode, policies, matching, roles and role mappings.
//!
//! Settings are read whole ([`get`]) and written whole ([`save`]) after
//! [`Settings::validate`], so no sequence of edits can leave a tenant with, say, a default
//! role it does not have. What an edit means and what follows it is `ops::settings`.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;
use crate::model::{Role, RoleMapping, Settings};
use crate::scim::datetime;
use crate::scim::filter::fold;

/// Turns a stored spelling back into its enum; a bad one means a corrupted row.
fn parse<T: std::str::FromStr>(s: String) -> Result<T, DbError>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e: T::Err| DbError::Schema(format!("bad stored value: {e}")))
}

/// The tenant's settings; the defaults for a tenant that never changed them.
pub fn get(conn: &Connection, tenant_id: i64) -> Result<Settings, DbError> {
    let mut s = Settings::default();
    let row = conn
        .prepare_cached(
            "SELECT test_mode, on_deactivate, on_delete, absent, match_by, default_role, role_prefix,
                    event_retention_days, delete_grace_days, archived_retention_days,
                    audit_retention_days, guard_enabled, guard_percent, guard_minimum
             FROM tenant_settings WHERE tenant_id = ?1",
        )?
        .query_row(
            [tenant_id],
            |r| {
                s.event_retention_days = r.get(7)?;
                s.delete_grace_days = r.get(8)?;
                s.archived_retention_days = r.get(9)?;
                s.audit_retention_days = r.get(10)?;
                s.guard.enabled = r.get(11)?;
                s.guard.percent = r.get(12)?;
                s.guard.minimum = r.get(13)?;
                Ok((
                    r.get::<_, bool>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            },
        )
        .optional()?;
    if let Some((test_mode, deact, del, absent, match_by, default_role, prefix)) = row {
        s.test_mode = test_mode;
        s.on_deactivate = parse(deact)?;
        s.on_delete = parse(del)?;
        s.absent = parse(absent)?;
        s.match_by = parse(match_by)?;
        s.default_role = parse(default_role)?;
        s.role_prefix = prefix;
    }
    let mut stmt =
        conn.prepare_cached("SELECT name FROM roles WHERE tenant_id = ?1 ORDER BY rank")?;
    let roles = stmt
        .query_map([tenant_id], |r| r.get::<_, String>(0))?
        .map(|name| parse(name?))
        .collect::<Result<Vec<Role>, DbError>>()?;
    if !roles.is_empty() {
        s.roles = roles;
    }
    let mut stmt = conn.prepare_cached(
        "SELECT group_name, role FROM role_mappings WHERE tenant_id = ?1 ORDER BY group_fold",
    )?;
    s.mappings = stmt
        .query_map([tenant_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .map(|row| {
            let (group, role) = row?;
            Ok(RoleMapping {
                group,
                role: parse(role)?,
            })
        })
        .collect::<Result<_, DbError>>()?;
    Ok(s)
}

/// Validates and stores `settings` as the tenant's, whole. `Conflict` says what is wrong.
pub fn save(conn: &Connection, tenant_id: i64, settings: &Settings) -> Result<(), DbError> {
    settings.validate().map_err(DbError::Conflict)?;
    conn.execute(
        "INSERT INTO tenant_settings (tenant_id, test_mode, on_deactivate, on_delete, absent,
                                      match_by, default_role, role_prefix, updated_at,
                                      event_retention_days, delete_grace_days,
                                      archived_retention_days, audit_retention_days,
                                      guard_enabled, guard_percent, guard_minimum)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
         ON CONFLICT (tenant_id) DO UPDATE SET
            test_mode = excluded.test_mode, on_deactivate = excluded.on_deactivate,
            on_delete = excluded.on_delete, absent = excluded.absent,
            match_by = excluded.match_by, default_role = excluded.default_role,
            role_prefix = excluded.role_prefix, updated_at = excluded.updated_at,
            event_retention_days = excluded.event_retention_days,
            delete_grace_days = excluded.delete_grace_days,
            archived_retention_days = excluded.archived_retention_days,
            audit_retention_days = excluded.audit_retention_days,
            guard_enabled = excluded.guard_enabled, guard_percent = excluded.guard_percent,
            guard_minimum = excluded.guard_minimum",
        params![
            tenant_id,
            settings.test_mode,
            settings.on_deactivate.as_str(),
            settings.on_delete.as_str(),
            settings.absent.as_str(),
            settings.match_by.as_str(),
            settings.default_role.as_str(),
            settings.role_prefix,
            datetime::now(),
            settings.event_retention_days,
            settings.delete_grace_days,
            settings.archived_retention_days,
            settings.audit_retention_days,
            settings.guard.enabled,
            settings.guard.percent,
            settings.guard.minimum,
        ],
    )?;
    conn.execute("DELETE FROM roles WHERE tenant_id = ?1", [tenant_id])?;
    let mut stmt =
        conn.prepare_cached("INSERT INTO roles (tenant_id, name, rank) VALUES (?1, ?2, ?3)")?;
    for (rank, role) in settings.roles.iter().enumerate() {
        stmt.execute(params![tenant_id, role.as_str(), rank as i64])?;
    }
    conn.execute(
        "DELETE FROM role_mappings WHERE tenant_id = ?1",
        [tenant_id],
    )?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO role_mappings (tenant_id, group_name, group_fold, role) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for m in &settings.mappings {
        stmt.execute(params![tenant_id, m.group, fold(&m.group), m.role.as_str()])?;
    }
    Ok(())
}
