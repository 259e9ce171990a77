//! The bridge between directory writes and the members layer: every SCIM write calls one
//! of these hooks inside its own transaction, so a write, its sync consequences, its audit
//! entries and its events commit together or not at all.
//!
//! A hook loads what `sync::plan` needs for the people the write affected only — one user
//! added to a 100 000-member group re-evaluates that one person — plans, and applies the
//! plan unless the tenant is in test mode. [`run`] does the same for the whole tenant
//! (force sync, `scimd sync`) and records the run; [`report`] only plans.
//!
//! Decisions the design left open, taken here:
//! - When the IdP deletes a user and the member is archived, the member keeps its link (the
//!   SCIM id) as history. A full sync then still knows the IdP deleted that person (even if
//!   the delete came in test mode), and a person the IdP re-creates is matched again by
//!   email and restored.
//! - Group events describe the directory, which test mode does not freeze, so they are
//!   emitted in test mode too; member events only when a change is applied.
//! - Roles come from a user's direct groups only.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use rusqlite::{Connection, params, params_from_iter};
use serde::Serialize;
use serde_json::{Value, json};

use super::audit::{self, Action as AuditAction};
use super::events::{self, EventType};
use super::members::{self, MemberRow, NewMember};
use super::{DbError, settings};
use crate::scim::datetime;
use crate::sync::model::text_enum;
use crate::sync::report::{Entry, Report};
use crate::sync::{
    self, Action, Change, Directory, DirectoryGroup, DirectoryUser, MemberSource, MemberStatus,
};

/// Who caused a directory write, for audit entries and events.
#[derive(Debug, Clone)]
pub struct WriteContext {
    pub tenant_id: i64,
    /// `token:<id>` for SCIM calls, `admin:<name>` for the UI, `cli` for the command line.
    pub actor: String,
    /// The HTTP request id, when there is one.
    pub request_id: Option<String>,
}

impl WriteContext {
    /// The command line acting on `tenant_id`.
    pub fn cli(tenant_id: i64) -> WriteContext {
        WriteContext {
            tenant_id,
            actor: "cli".to_string(),
            request_id: None,
        }
    }

    /// An admin acting on `tenant_id` from the web UI, in request `request_id`.
    pub fn admin(tenant_id: i64, username: &str, request_id: &str) -> WriteContext {
        WriteContext {
            tenant_id,
            actor: format!("admin:{username}"),
            request_id: Some(request_id.to_string()),
        }
    }
}

/// What changed in a group, as far as members' roles are concerned.
#[derive(Debug, Clone, Default)]
pub struct GroupChange {
    pub created: bool,
    /// `displayName` changed: every member's role is re-evaluated.
    pub renamed: bool,
    /// The membership was replaced wholesale (PUT, `replace members`, clear).
    pub members_replaced: bool,
    pub added_user_pks: Vec<i64>,
    pub removed_user_pks: Vec<i64>,
}

/// After a user was created or changed (POST, PUT, PATCH).
pub fn user_written(conn: &Connection, ctx: &WriteContext, user_pk: i64) -> Result<(), DbError> {
    let users = load_users(conn, ctx.tenant_id, &[user_pk], None)?;
    sync_people(
        conn,
        ctx,
        Directory {
            users,
            ..Directory::default()
        },
    )
}

/// Before a user row is deleted by the IdP (DELETE /Users/{id}).
pub fn user_deleting(conn: &Connection, ctx: &WriteContext, user_pk: i64) -> Result<(), DbError> {
    let deleted = load_users(conn, ctx.tenant_id, &[user_pk], None)?;
    // The memberships go with the user row: the groups' feeds say so.
    for user in &deleted {
        for group in &user.groups {
            events::append(
                conn,
                ctx.tenant_id,
                EventType::GroupMemberRemoved,
                &group.id,
                &json!({"group": group_json(group), "user": {"id": user.id, "userName": user.user_name}}),
            )?;
        }
    }
    sync_people(
        conn,
        ctx,
        Directory {
            deleted,
            ..Directory::default()
        },
    )
}

/// After a group was created or changed.
pub fn group_written(
    conn: &Connection,
    ctx: &WriteContext,
    group_pk: i64,
    change: &GroupChange,
) -> Result<(), DbError> {
    let group = load_group(conn, group_pk)?;
    // A wholesale replace reports every old member as removed and every new one as added;
    // people in both stayed, and neither their roles nor the feed change.
    let added: BTreeSet<i64> = change.added_user_pks.iter().copied().collect();
    let removed: BTreeSet<i64> = change.removed_user_pks.iter().copied().collect();
    let joined: Vec<i64> = added.difference(&removed).copied().collect();
    let left: Vec<i64> = removed.difference(&added).copied().collect();

    if change.created {
        events::append(
            conn,
            ctx.tenant_id,
            EventType::GroupCreated,
            &group.id,
            &json!({"group": group_json(&group)}),
        )?;
    } else if change.renamed || (joined.is_empty() && left.is_empty() && !change.members_replaced) {
        events::append(
            conn,
            ctx.tenant_id,
            EventType::GroupUpdated,
            &group.id,
            &json!({"group": group_json(&group)}),
        )?;
    }
    for (kind, pks) in [
        (EventType::GroupMemberAdded, &joined),
        (EventType::GroupMemberRemoved, &left),
    ] {
        for (user_id, user_name) in user_names(conn, pks)? {
            events::append(
                conn,
                ctx.tenant_id,
                kind,
                &group.id,
                &json!({"group": group_json(&group), "user": {"id": user_id, "userName": user_name}}),
            )?;
        }
    }

    let mut affected: BTreeSet<i64> = joined.into_iter().chain(left).collect();
    if change.renamed {
        affected.extend(group_user_pks(conn, group_pk)?);
    }
    if affected.is_empty() {
        return Ok(());
    }
    let pks: Vec<i64> = affected.into_iter().collect();
    let users = load_users(conn, ctx.tenant_id, &pks, None)?;
    sync_people(
        conn,
        ctx,
        Directory {
            users,
            ..Directory::default()
        },
    )
}

/// Before a group row is deleted: its members are re-evaluated as if they had left it.
pub fn group_deleting(conn: &Connection, ctx: &WriteContext, group_pk: i64) -> Result<(), DbError> {
    let group = load_group(conn, group_pk)?;
    events::append(
        conn,
        ctx.tenant_id,
        EventType::GroupDeleted,
        &group.id,
        &json!({"group": group_json(&group)}),
    )?;
    let pks = group_user_pks(conn, group_pk)?;
    if pks.is_empty() {
        return Ok(());
    }
    let users = load_users(conn, ctx.tenant_id, &pks, Some(group_pk))?;
    sync_people(
        conn,
        ctx,
        Directory {
            users,
            ..Directory::default()
        },
    )
}

/// Plans for the people in `directory` and applies the plan, unless in test mode.
fn sync_people(conn: &Connection, ctx: &WriteContext, directory: Directory) -> Result<(), DbError> {
    if directory.users.is_empty() && directory.deleted.is_empty() {
        return Ok(());
    }
    let settings = settings::get(conn, ctx.tenant_id)?;
    if settings.test_mode {
        return Ok(());
    }
    let people = directory.users.iter().chain(&directory.deleted);
    let user_ids: Vec<String> = people.clone().map(|u| u.id.clone()).collect();
    let keys: Vec<String> = people
        .flat_map(|u| {
            [
                u.match_email().map(str::to_string),
                Some(u.user_name.clone()),
            ]
        })
        .flatten()
        .collect();
    let members: Vec<_> = members::for_users(conn, ctx.tenant_id, &user_ids, &keys)?
        .iter()
        .map(MemberRow::to_sync)
        .collect();
    let changes = sync::plan(&directory, &members, &settings);
    apply(conn, ctx, &changes)
}

/// Applies `changes`: each one writes the member, an audit entry and an event.
pub fn apply(conn: &Connection, ctx: &WriteContext, changes: &[Change]) -> Result<(), DbError> {
    for change in changes {
        let pk = change.member.as_ref().map(|m| m.pk);
        let existing = || pk.ok_or_else(|| DbError::Schema("a change without its member".into()));
        let mut extra = json!({});
        let (event, action, pk) = match &change.action {
            Action::Skip { .. } => continue,
            Action::Create { profile, role } => {
                let row = members::insert(
                    conn,
                    ctx.tenant_id,
                    &NewMember {
                        profile: profile.clone(),
                        role: role.role.clone(),
                        role_reason: role.to_string(),
                        status: MemberStatus::Active,
                        managed: true,
                        source: MemberSource::Scim,
                        user_id: change.user_id.clone(),
                    },
                )?;
                (EventType::MemberCreated, AuditAction::MemberCreated, row.pk)
            }
            Action::Update { fields } => {
                let pk = existing()?;
                for f in fields {
                    members::set_field(conn, pk, f.field, f.after.as_deref())?;
                }
                extra = json!({"changes": fields});
                (EventType::MemberUpdated, AuditAction::MemberUpdated, pk)
            }
            Action::RoleChange { from, to } => {
                let pk = existing()?;
                members::set_role(conn, pk, &to.role, &to.to_string())?;
                extra = json!({"from": from, "to": to.role, "reason": to});
                (
                    EventType::MemberRoleChanged,
                    AuditAction::MemberRoleChanged,
                    pk,
                )
            }
            Action::Suspend => {
                let pk = existing()?;
                members::set_status(conn, pk, MemberStatus::Suspended)?;
                (EventType::MemberSuspended, AuditAction::MemberSuspended, pk)
            }
            Action::Reactivate { from } => {
                let pk = existing()?;
                members::set_status(conn, pk, MemberStatus::Active)?;
                extra = json!({"from": from});
                (
                    EventType::MemberReactivated,
                    AuditAction::MemberReactivated,
                    pk,
                )
            }
            Action::Archive { cause, .. } => {
                let pk = existing()?;
                members::set_status(conn, pk, MemberStatus::Archived)?;
                extra = json!({"cause": cause});
                (EventType::MemberArchived, AuditAction::MemberArchived, pk)
            }
            Action::Delete { cause, .. } => {
                let pk = existing()?;
                let row = members::get_by_pk(conn, pk)?.ok_or(DbError::NotFound)?;
                members::delete(conn, pk)?;
                record(
                    conn,
                    ctx,
                    change,
                    &row,
                    EventType::MemberDeleted,
                    AuditAction::MemberDeleted,
                    json!({"cause": cause}),
                )?;
                continue;
            }
        };
        let row = members::get_by_pk(conn, pk)?.ok_or(DbError::NotFound)?;
        record(conn, ctx, change, &row, event, action, extra)?;
    }
    Ok(())
}

/// The audit entry and the event of one applied change.
fn record(
    conn: &Connection,
    ctx: &WriteContext,
    change: &Change,
    row: &MemberRow,
    event: EventType,
    action: AuditAction,
    extra: Value,
) -> Result<(), DbError> {
    let mut payload = json!({"member": row});
    if let (Value::Object(p), Value::Object(extra)) = (&mut payload, extra) {
        p.extend(extra);
    }
    events::append(conn, ctx.tenant_id, event, &row.id, &payload)?;
    let mut detail = serde_json::to_value(Entry::of(change)).unwrap_or(Value::Null);
    detail["memberId"] = json!(row.id);
    audit::append(
        conn,
        &audit::Entry::new(
            ctx.tenant_id,
            &ctx.actor,
            action,
            Some(format!("member/{}", row.id)),
        )
        .with_request_id(ctx.request_id.as_deref())
        .with_detail(detail),
    )?;
    Ok(())
}

text_enum! {
    /// How much of a plan a run applies.
    pub enum Scope ("sync scope") {
        /// Everything: force sync, `scimd sync`.
        Full => "full",
        /// Role changes only: the re-evaluation after a role setting changed.
        Roles => "roles",
    }
}

/// A recorded sync run and its report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRun {
    pub id: i64,
    pub actor: String,
    pub scope: Scope,
    /// Nothing was applied: asked for, or the tenant is in test mode.
    pub dry_run: bool,
    pub test_mode: bool,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub report: Report,
}

/// The plan for the whole tenant now, without applying or recording anything: what test
/// mode shows.
pub fn report(conn: &Connection, tenant_id: i64) -> Result<Report, DbError> {
    Ok(Report::new(&full_plan(
        conn,
        tenant_id,
        &settings::get(conn, tenant_id)?,
    )?))
}

/// What the whole tenant's plan under `settings` would be, limited to `scope`, without
/// saving the settings, applying or recording anything: the admin UI's preview of a
/// settings change. It is the plan [`run`] would apply once `settings` are saved.
pub fn preview(
    conn: &Connection,
    tenant_id: i64,
    settings: &sync::Settings,
    scope: Scope,
) -> Result<Report, DbError> {
    Ok(Report::new(&scoped_plan(conn, tenant_id, settings, scope)?))
}

fn scoped_plan(
    conn: &Connection,
    tenant_id: i64,
    settings: &sync::Settings,
    scope: Scope,
) -> Result<Vec<Change>, DbError> {
    let changes = full_plan(conn, tenant_id, settings)?;
    Ok(match scope {
        Scope::Full => changes,
        Scope::Roles => sync::roles_only(changes),
    })
}

fn full_plan(
    conn: &Connection,
    tenant_id: i64,
    settings: &sync::Settings,
) -> Result<Vec<Change>, DbError> {
    let directory = Directory {
        users: load_all_users(conn, tenant_id)?,
        deleted: Vec::new(),
        complete: true,
    };
    let members: Vec<_> = members::list(conn, tenant_id)?
        .iter()
        .map(MemberRow::to_sync)
        .collect();
    Ok(sync::plan(&directory, &members, settings))
}

/// Plans for the whole tenant and, unless `dry_run` or test mode, applies the plan; records
/// the run (who, when, how long, counts, dry run or applied) and audits it. Run it in a
/// write transaction.
pub fn run(
    conn: &Connection,
    ctx: &WriteContext,
    scope: Scope,
    dry_run: bool,
) -> Result<SyncRun, DbError> {
    let started = Instant::now();
    let started_at = datetime::now();
    let settings = settings::get(conn, ctx.tenant_id)?;
    let dry_run = dry_run || settings.test_mode;
    let changes = scoped_plan(conn, ctx.tenant_id, &settings, scope)?;
    if !dry_run {
        apply(conn, ctx, &changes)?;
        super::seeds::refresh(conn, ctx.tenant_id)?;
    }
    let report = Report::new(&changes);
    let finished_at = datetime::now();
    let duration_ms = started.elapsed().as_millis() as u64;
    let counts = serde_json::to_value(&report.counts).unwrap_or(Value::Null);
    conn.execute(
        "INSERT INTO sync_runs (tenant_id, actor, scope, dry_run, started_at, finished_at, duration_ms, counts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![ctx.tenant_id, ctx.actor, scope.as_str(), dry_run, started_at, finished_at, duration_ms as i64, counts.to_string()],
    )?;
    let id = conn.last_insert_rowid();
    audit::append(
        conn,
        &audit::Entry::new(ctx.tenant_id, &ctx.actor, AuditAction::SyncRun, Some(format!("sync_run/{id}")))
            .with_request_id(ctx.request_id.as_deref())
            .with_detail(json!({"scope": scope, "dryRun": dry_run, "testMode": settings.test_mode, "counts": counts, "durationMs": duration_ms})),
    )?;
    Ok(SyncRun {
        id,
        actor: ctx.actor.clone(),
        scope,
        dry_run,
        test_mode: settings.test_mode,
        started_at,
        finished_at,
        duration_ms,
        report,
    })
}

/// A recorded run, without its report (which is not stored: the audit log has the changes).
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
pub fn runs(conn: &Connection, tenant_id: i64, limit: u32) -> Result<Vec<RunRecord>, DbError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs WHERE tenant_id = ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![tenant_id, limit], run_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// One of the tenant's runs; `NotFound` for another tenant's.
pub fn get_run(conn: &Connection, tenant_id: i64, id: i64) -> Result<RunRecord, DbError> {
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

// --- Loading the directory -------------------------------------------------------------

fn group_json(g: &DirectoryGroup) -> Value {
    json!({"id": g.id, "displayName": g.display_name})
}

fn load_group(conn: &Connection, group_pk: i64) -> Result<DirectoryGroup, DbError> {
    conn.query_row(
        "SELECT id, display_name FROM groups WHERE pk = ?1",
        [group_pk],
        |r| {
            Ok(DirectoryGroup {
                id: r.get(0)?,
                display_name: r.get(1)?,
            })
        },
    )
    .map_err(|e| match e {
        rusqlite::Error::QueryReturnedNoRows => DbError::NotFound,
        e => e.into(),
    })
}

/// The users (not nested groups) that are direct members of the group.
fn group_user_pks(conn: &Connection, group_pk: i64) -> Result<Vec<i64>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT member_user_pk FROM group_members WHERE group_pk = ?1 AND member_user_pk IS NOT NULL",
    )?;
    let pks = stmt
        .query_map([group_pk], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(pks)
}

/// (SCIM id, userName) of each user in `pks`.
fn user_names(conn: &Connection, pks: &[i64]) -> Result<Vec<(String, String)>, DbError> {
    let mut out = Vec::with_capacity(pks.len());
    for chunk in pks.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, user_name FROM users WHERE pk IN ({marks}) ORDER BY pk"
        ))?;
        for row in stmt.query_map(params_from_iter(chunk), |r| Ok((r.get(0)?, r.get(1)?)))? {
            out.push(row?);
        }
    }
    Ok(out)
}

fn parse_data(pk: i64, data: &str) -> Result<serde_json::Map<String, Value>, DbError> {
    serde_json::from_str(data)
        .map_err(|e| DbError::Schema(format!("user {pk}: stored data is not JSON: {e}")))
}

/// The directory users `pks` of the tenant with their direct groups, leaving out
/// `without_group` (a group being deleted).
fn load_users(
    conn: &Connection,
    tenant_id: i64,
    pks: &[i64],
    without_group: Option<i64>,
) -> Result<Vec<DirectoryUser>, DbError> {
    let mut out = Vec::with_capacity(pks.len());
    for chunk in pks.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut groups: HashMap<i64, Vec<DirectoryGroup>> = HashMap::new();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT gm.member_user_pk, g.id, g.display_name FROM group_members gm
             JOIN groups g ON g.pk = gm.group_pk
             WHERE gm.member_user_pk IN ({marks}) AND g.pk IS NOT ?{} ORDER BY g.pk",
            chunk.len() + 1
        ))?;
        let params: Vec<rusqlite::types::Value> = chunk
            .iter()
            .map(|&pk| pk.into())
            .chain([without_group.into()])
            .collect();
        read_groups(stmt.query(params_from_iter(&params))?, &mut groups)?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT pk, id, data FROM users WHERE tenant_id = ? AND origin = 'idp' AND pk IN ({marks}) ORDER BY pk"
        ))?;
        let params: Vec<rusqlite::types::Value> = std::iter::once(tenant_id.into())
            .chain(chunk.iter().map(|&pk| pk.into()))
            .collect();
        read_users(
            stmt.query(params_from_iter(&params))?,
            &mut groups,
            &mut out,
        )?;
    }
    Ok(out)
}

/// Reads `(member_user_pk, group id, group displayName)` rows into each user's groups.
fn read_groups(
    mut rows: rusqlite::Rows,
    into: &mut HashMap<i64, Vec<DirectoryGroup>>,
) -> Result<(), DbError> {
    while let Some(r) = rows.next()? {
        into.entry(r.get(0)?).or_default().push(DirectoryGroup {
            id: r.get(1)?,
            display_name: r.get(2)?,
        });
    }
    Ok(())
}

/// Reads `(pk, id, data)` user rows into directory users carrying their groups.
fn read_users(
    mut rows: rusqlite::Rows,
    groups: &mut HashMap<i64, Vec<DirectoryGroup>>,
    out: &mut Vec<DirectoryUser>,
) -> Result<(), DbError> {
    while let Some(r) = rows.next()? {
        let pk: i64 = r.get(0)?;
        let id: String = r.get(1)?;
        let data = parse_data(pk, &r.get::<_, String>(2)?)?;
        out.push(DirectoryUser::from_data(
            &id,
            &data,
            groups.remove(&pk).unwrap_or_default(),
        ));
    }
    Ok(())
}

/// Every directory user of the tenant with its direct groups.
fn load_all_users(conn: &Connection, tenant_id: i64) -> Result<Vec<DirectoryUser>, DbError> {
    let mut groups: HashMap<i64, Vec<DirectoryGroup>> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT gm.member_user_pk, g.id, g.display_name FROM group_members gm
         JOIN groups g ON g.pk = gm.group_pk
         WHERE g.tenant_id = ?1 AND gm.member_user_pk IS NOT NULL ORDER BY g.pk",
    )?;
    read_groups(stmt.query([tenant_id])?, &mut groups)?;
    let mut stmt = conn.prepare(
        "SELECT pk, id, data FROM users WHERE tenant_id = ?1 AND origin = 'idp' ORDER BY pk",
    )?;
    let mut out = Vec::new();
    read_users(stmt.query([tenant_id])?, &mut groups, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
