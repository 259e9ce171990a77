//! Changing a tenant's sync settings and role mappings: the one path `scimd tenant set`,
//! `scimd roles …` and the admin UI's settings and roles pages take. A change is saved
//! once, audited with every setting that differs, and followed by the re-evaluation of
//! roles when it can change anyone's role (never an archival as a side effect).

use serde_json::{Map, Value, json};

use super::reconcile::{self, SyncRun};
use crate::db::audit::{self, Action as AuditAction};
use crate::db::{Conn, Db, DbError, settings, tenants};
use crate::model::{
    AbsentPolicy, Actor, DeactivatePolicy, DeletePolicy, MatchBy, Role, Settings, SyncScope,
};
use crate::sync::Report;

/// A change to some of a tenant's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// The tenant's display name (the settings page renames it with the rest).
    pub name: Option<String>,
    pub event_retention_days: Option<u32>,
    /// `Some(None)` turns the deletion grace period off.
    pub delete_grace_days: Option<Option<u32>>,
    /// `Some(None)`: archived members are kept forever.
    pub archived_retention_days: Option<Option<u32>>,
    /// `Some(None)`: audit entries are kept forever.
    pub audit_retention_days: Option<Option<u32>>,
    pub guard_enabled: Option<bool>,
    pub guard_percent: Option<u32>,
    pub guard_minimum: Option<u32>,
}

impl Update {
    /// `settings` with this update applied (the name is not a sync setting).
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
        if let Some(v) = self.event_retention_days {
            s.event_retention_days = v;
        }
        if let Some(v) = self.delete_grace_days {
            s.delete_grace_days = v;
        }
        if let Some(v) = self.archived_retention_days {
            s.archived_retention_days = v;
        }
        if let Some(v) = self.audit_retention_days {
            s.audit_retention_days = v;
        }
        if let Some(v) = self.guard_enabled {
            s.guard.enabled = v;
        }
        if let Some(v) = self.guard_percent {
            s.guard.percent = v;
        }
        if let Some(v) = self.guard_minimum {
            s.guard.minimum = v;
        }
        s
    }
}

/// One edit of a tenant's settings, as the command line and the admin UI submit it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Some settings at once (`tenant set`, `roles set`, the settings and roles forms).
    Update(Update),
    /// Members of directory group `group` (displayName, any case) get `role`; replaces any
    /// mapping of the same group.
    Map { group: String, role: Role },
    /// Group `group` no longer gives a role.
    Unmap { group: String },
}

impl Edit {
    /// The settings after this edit, validated but not saved; `Err` says what is wrong.
    pub fn apply(&self, s: &Settings) -> Result<Settings, String> {
        let after = match self {
            Edit::Update(u) => u.applied_to(s),
            Edit::Map { group, .. } if group.trim().is_empty() => {
                return Err("the group name must not be empty".into());
            }
            Edit::Map { role, .. } if s.rank(role).is_none() => {
                let roles: Vec<&str> = s.roles.iter().map(Role::as_str).collect();
                return Err(format!(
                    "there is no role {role}: choose one of {}, or add it to the roles first",
                    roles.join(", ")
                ));
            }
            Edit::Map { group, role } => s.with_mapping(group, role),
            Edit::Unmap { group } => s
                .without_mapping(group)
                .ok_or_else(|| format!("group {group:?} has no mapping"))?,
        };
        after.validate()?;
        Ok(after)
    }

    fn action(&self) -> AuditAction {
        match self {
            Edit::Update(_) => AuditAction::SettingsChanged,
            Edit::Map { .. } => AuditAction::RoleMapped,
            Edit::Unmap { .. } => AuditAction::RoleUnmapped,
        }
    }

    fn detail(&self) -> Map<String, Value> {
        let detail = match self {
            Edit::Update(_) => json!({}),
            Edit::Map { group, role } => json!({"group": group, "role": role}),
            Edit::Unmap { group } => json!({"group": group}),
        };
        match detail {
            Value::Object(d) => d,
            _ => Map::new(),
        }
    }
}

/// What saving an edit did.
#[derive(Debug, Clone)]
pub struct Saved {
    pub before: Settings,
    pub after: Settings,
    /// Whether anything was written: `false` when the edit asked for what the tenant
    /// already has.
    pub changed: bool,
    /// The re-evaluation of roles, when the edit could change anyone's role (a dry run in
    /// test mode).
    pub run: Option<SyncRun>,
}

/// Saves `edit` for the tenant: validated (`Conflict` says what is wrong), stored once,
/// audited as `actor` with every setting that differs (a rename under `changes.name`), and
/// followed by the re-evaluation of roles if they can have changed.
pub async fn edit(db: &Db, actor: &Actor, tenant_id: i64, edit: Edit) -> Result<Saved, DbError> {
    let actor = actor.clone();
    db.write(move |tx| edit_in(tx, &actor, tenant_id, &edit))
        .await
}

fn edit_in(conn: &Conn, actor: &Actor, tenant_id: i64, edit: &Edit) -> Result<Saved, DbError> {
    let before = settings::get(conn, tenant_id)?;
    let after = edit.apply(&before).map_err(DbError::Conflict)?;
    let mut changes = Map::new();
    if let Edit::Update(Update {
        name: Some(name), ..
    }) = edit
    {
        let old = tenants::get(conn, tenant_id)?.name;
        if *name != old {
            tenants::rename(conn, tenant_id, name)?;
            changes.insert("name".into(), json!({"before": old, "after": name}));
        }
    }
    if after == before && changes.is_empty() {
        return Ok(Saved {
            before,
            after,
            changed: false,
            run: None,
        });
    }
    settings::save(conn, tenant_id, &after)?;
    changes.extend(diff(&before, &after));
    let mut detail = edit.detail();
    detail.insert("changes".into(), Value::Object(changes));
    audit::append(
        conn,
        &audit::Entry::new(actor, Some(tenant_id), edit.action(), Some("tenant".into()))
            .with_detail(Value::Object(detail)),
    )?;
    let run = if roles_differ(&before, &after) {
        Some(reconcile::run(
            conn,
            actor,
            tenant_id,
            SyncScope::Roles,
            false,
        )?)
    } else {
        None
    };
    Ok(Saved {
        before,
        after,
        changed: true,
        run,
    })
}

/// What saving `edit` would change in members' roles, without saving anything: the plan the
/// save's re-evaluation would apply. `Err` says why the edit is invalid or changes nothing.
pub async fn preview(
    db: &Db,
    tenant_id: i64,
    edit: Edit,
) -> Result<Result<(Settings, Report), String>, DbError> {
    db.read(move |c| {
        let before = settings::get(c, tenant_id)?;
        let after = match edit.apply(&before) {
            Ok(a) => a,
            Err(m) => return Ok(Err(m)),
        };
        if after == before {
            return Ok(Err(
                "Nothing would change: that is the current setting.".into()
            ));
        }
        let report = reconcile::preview(c, tenant_id, &after, SyncScope::Roles)?;
        Ok(Ok((after, report)))
    })
    .await
}

/// Whether a settings change can change anyone's role.
fn roles_differ(a: &Settings, b: &Settings) -> bool {
    a.roles != b.roles
        || a.default_role != b.default_role
        || a.role_prefix != b.role_prefix
        || a.mappings != b.mappings
}

/// The settings that differ, as `{name: {before, after}}`.
fn diff(before: &Settings, after: &Settings) -> Map<String, Value> {
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
