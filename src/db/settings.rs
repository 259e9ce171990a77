//! Tenant sync settings: test mode, policies, matching, roles and role mappings.
//!
//! Settings are read whole ([`get`]) and written whole ([`save`]) after
//! [`Settings::validate`], so no sequence of edits can leave a tenant with, say, a default
//! role it does not have.

use rusqlite::{Connection, OptionalExtension, params};

use serde_json::{Map, Value, json};

use super::sync::{self, Scope, SyncRun, WriteContext};
use super::{DbError, audit};
use crate::scim::datetime;
use crate::scim::filter::fold;
use crate::sync::{
    AbsentPolicy, DeactivatePolicy, DeletePolicy, MatchBy, Role, RoleMapping, Settings,
};

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
        .query_row(
            "SELECT test_mode, on_deactivate, on_delete, absent, match_by, default_role, role_prefix
             FROM tenant_settings WHERE tenant_id = ?1",
            [tenant_id],
            |r| {
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
                                      match_by, default_role, role_prefix, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (tenant_id) DO UPDATE SET
            test_mode = excluded.test_mode, on_deactivate = excluded.on_deactivate,
            on_delete = excluded.on_delete, absent = excluded.absent,
            match_by = excluded.match_by, default_role = excluded.default_role,
            role_prefix = excluded.role_prefix, updated_at = excluded.updated_at",
        params![
            tenant_id,
            settings.test_mode,
            settings.on_deactivate.as_str(),
            settings.on_delete.as_str(),
            settings.absent.as_str(),
            settings.match_by.as_str(),
            settings.default_role.as_str(),
            settings.role_prefix,
            datetime::now()
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

/// A change to some of a tenant's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub test_mode: Option<bool>,
    pub on_deactivate: Option<DeactivatePolicy>,
    pub on_delete: Option<DeletePolicy>,
    pub absent: Option<AbsentPolicy>,
    pub match_by: Option<MatchBy>,
    pub default_role: Option<Role>,
    pub role_prefix: Option<String>,
    /// Highest first.
    pub roles: Option<Vec<Role>>,
}

impl Update {
    /// `settings` with this update applied.
    pub fn applied_to(&self, settings: &Settings) -> Settings {
        let mut s = settings.clone();
        if let Some(v) = self.test_mode {
            s.test_mode = v;
        }
        if let Some(v) = self.on_deactivate {
            s.on_deactivate = v;
        }
        if let Some(v) = self.on_delete {
            s.on_delete = v;
        }
        if let Some(v) = self.absent {
            s.absent = v;
        }
        if let Some(v) = self.match_by {
            s.match_by = v;
        }
        if let Some(v) = &self.default_role {
            s.default_role = v.clone();
        }
        if let Some(v) = &self.role_prefix {
            s.role_prefix = v.clone();
        }
        if let Some(v) = &self.roles {
            s.roles = v.clone();
        }
        s
    }
}

/// Maps directory group `group` (by displayName, case-insensitive) to `role`, replacing
/// any mapping of the same group. Returns the new settings.
pub fn map_role(
    conn: &Connection,
    tenant_id: i64,
    group: &str,
    role: &Role,
) -> Result<Settings, DbError> {
    if group.trim().is_empty() {
        return Err(DbError::Conflict("the group name must not be empty".into()));
    }
    let s = get(conn, tenant_id)?.with_mapping(group, role);
    save(conn, tenant_id, &s)?;
    get(conn, tenant_id)
}

/// Removes the mapping of `group`; `NotFound` if there is none.
pub fn unmap_role(conn: &Connection, tenant_id: i64, group: &str) -> Result<Settings, DbError> {
    let s = get(conn, tenant_id)?
        .without_mapping(group)
        .ok_or(DbError::NotFound)?;
    save(conn, tenant_id, &s)?;
    Ok(s)
}

/// Whether a settings change can change anyone's role.
pub fn roles_differ(a: &Settings, b: &Settings) -> bool {
    a.roles != b.roles
        || a.default_role != b.default_role
        || a.role_prefix != b.role_prefix
        || a.mappings != b.mappings
}

/// The settings that differ, as `{name: {before, after}}`.
pub fn diff(before: &Settings, after: &Settings) -> Map<String, Value> {
    let (Ok(Value::Object(b)), Ok(Value::Object(a))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Map::new();
    };
    a.into_iter()
        .filter(|(k, v)| b.get(k) != Some(v))
        .map(|(k, v)| {
            let old = b.get(&k).cloned().unwrap_or(Value::Null);
            (k, json!({"before": old, "after": v}))
        })
        .collect()
}

/// A settings change as the command line and the admin UI make it: saves `after`, audits
/// the change as `action` by `ctx.actor` (`detail` plus, under `changes`, every setting
/// that differs, merged with any `changes` the caller already put there), and re-evaluates
/// roles if they can have changed ([`sync::Scope::Roles`], a dry run in test mode). Returns
/// that re-evaluation run, if any. Run it in a write transaction.
pub fn change(
    conn: &Connection,
    ctx: &WriteContext,
    before: &Settings,
    after: &Settings,
    action: audit::Action,
    detail: Value,
) -> Result<Option<SyncRun>, DbError> {
    save(conn, ctx.tenant_id, after)?;
    let mut detail = match detail {
        Value::Object(d) => d,
        _ => Map::new(),
    };
    let mut changes = match detail.remove("changes") {
        Some(Value::Object(c)) => c,
        _ => Map::new(),
    };
    changes.extend(diff(before, after));
    detail.insert("changes".into(), Value::Object(changes));
    audit::append(
        conn,
        &audit::Entry::new(ctx.tenant_id, &ctx.actor, action, Some("tenant".into()))
            .with_request_id(ctx.request_id.as_deref())
            .with_detail(Value::Object(detail)),
    )?;
    if roles_differ(before, after) {
        return sync::run(conn, ctx, Scope::Roles, false).map(Some);
    }
    Ok(None)
}
