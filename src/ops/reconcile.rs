//! Reconciling members with the directory: every SCIM write calls one of these hooks
//! inside its own transaction, so a write, its sync consequences, its audit
//! entries and its events commit together or not at all.
//!
//! A hook loads what `sync::plan` needs for the people the write affected only — one user
//! added to a 100 000-member group re-evaluates that one person — plans, and applies the
//! plan unless the tenant is in test mode. [`run`] does the same for the whole tenant
//! (force sync, `scimd sync`, the re-evaluation after a role setting changed) and records
//! the run; [`report`] and [`preview`] only plan.
//!
//! Decisions the design left open, taken here:
//! - When the IdP deletes a user and the member is archived, the member keeps its link (the
//!   SCIM id) as history. A full sync then still knows the IdP deleted that person (even if
//!   the delete came in test mode), and a person the IdP re-creates is matched again by
//!   email and restored.
//! - Group events describe the directory, which test mode does not freeze, so they are
//!   emitted in test mode too; member events only when a change is applied.
//! - Roles come from a user's direct groups only.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
#[cfg(test)]
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};

use super::guard;
use super::members::{DirectoryChange, Journal, LinkedUser, MemberWrite};
use crate::db::Conn;
use crate::db::audit::{self, Action as AuditAction};
use crate::db::events::{self, EventType};
use crate::db::members::{self, CountMoves, MemberRow, NewMember};
use crate::db::plans::{self as stored_plans, StoredPlan};
use crate::db::{Db, DbError, groups, seeds, settings, sync_runs, tenants, users};
use crate::model::{
    Actor, Directory, DirectoryGroup, DirectoryUser, MemberSource, MemberStatus, Settings,
    SyncScope,
};
use crate::scim::datetime;
use crate::sync::report::{Counts, Report, ReportEntry};
use crate::sync::{self, Action, Change};

/// What changed in a group, as far as members' roles are concerned.
#[derive(Debug, Clone, Default)]
pub struct GroupChange {
    pub created: bool,
    /// `displayName` changed from this: every member's role is re-evaluated when either
    /// name gives a role.
    pub renamed_from: Option<String>,
    /// `externalId` changed from this (`null`: it had none).
    pub external_id_from: Option<Value>,
    /// The membership was replaced wholesale (PUT, `replace members`, clear).
    pub members_replaced: bool,
    pub added_user_pks: Vec<i64>,
    pub removed_user_pks: Vec<i64>,
}

/// After the IdP created or changed user `row` (POST, PUT, PATCH), which is as stored.
/// What `change` says the write changed besides (its `externalId`, its profile attributes)
/// goes into the `member.updated` the sync records of its member, or into one of its own
/// when the sync records none ([`super::members::directory_changed`]).
pub(super) fn user_written(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    row: &users::UserRow,
    change: DirectoryChange,
) -> Result<(), DbError> {
    let users = vec![users::written_directory_user(conn, row)?];
    let unsaid = (!change.is_empty()).then_some(Unsaid {
        user_id: &row.id,
        change,
    });
    let unsaid = sync_people(
        conn,
        actor,
        tenant_id,
        Directory {
            users,
            ..Directory::default()
        },
        true,
        unsaid,
    )?;
    match unsaid {
        Some(change) => super::members::directory_changed(conn, actor, tenant_id, &row.id, change),
        None => Ok(()),
    }
}

/// Before a user row is deleted by the IdP (DELETE /Users/{id}).
pub fn user_deleting(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    user_pk: i64,
) -> Result<(), DbError> {
    let mut deleted = users::directory_users(conn, tenant_id, &[user_pk], None)?;
    // The memberships go with the user row: the groups' feeds say so.
    for user in &deleted {
        let member_id = match user.groups.is_empty() {
            true => None,
            false => members::by_user_id(conn, Some(tenant_id), &user.id)?.map(|m| m.id),
        };
        for group in &user.groups {
            let named = users::Named {
                id: user.id.clone(),
                user_name: user.user_name.clone(),
                external_id: user
                    .external_id
                    .as_ref()
                    .and_then(|v| v.as_str().map(String::from)),
                member_id: member_id.clone(),
            };
            events::append(
                conn,
                actor,
                tenant_id,
                EventType::GroupMemberRemoved,
                &group.id,
                &membership_json(
                    &group_json(group, groups::external_id_of(conn, tenant_id, &group.id)?),
                    &named,
                ),
            )?;
        }
    }
    // …and the member the deletion archives is in none of them any more. It goes on
    // showing what the user last said of the person, as its event does.
    for user in &mut deleted {
        user.groups.clear();
        let last = json!({"external_id": user.external_id, "attributes": user.attributes});
        members::keep_last_directory(conn, tenant_id, &user.id, &last)?;
    }
    sync_people(
        conn,
        actor,
        tenant_id,
        Directory {
            deleted,
            ..Directory::default()
        },
        true,
        None,
    )
    .map(drop)
}

/// After a group was created or changed.
pub fn group_written(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    group_pk: i64,
    change: &GroupChange,
) -> Result<(), DbError> {
    let group = groups::directory_group(conn, group_pk)?;
    // A wholesale replace reports every old member as removed and every new one as added;
    // people in both stayed, and neither their roles nor the feed change.
    let added: BTreeSet<i64> = change.added_user_pks.iter().copied().collect();
    let removed: BTreeSet<i64> = change.removed_user_pks.iter().copied().collect();
    let joined: Vec<i64> = added.difference(&removed).copied().collect();
    let left: Vec<i64> = removed.difference(&added).copied().collect();
    // The group as its events store it, membership events too: with its externalId then,
    // which apps go by (WorkOS's `idp_id`) after the group is gone.
    let stored = group_with_external_id(conn, group_pk, &group)?;

    if change.created {
        events::append(
            conn,
            actor,
            tenant_id,
            EventType::GroupCreated,
            &group.id,
            &json!({"group": stored}),
        )?;
    } else if change.renamed_from.is_some()
        || change.external_id_from.is_some()
        || (joined.is_empty() && left.is_empty() && !change.members_replaced)
    {
        // A rename says what the group was called, as a member's change says its values;
        // a new externalId what it was.
        let mut previous = json!({});
        if let Some(old) = &change.renamed_from {
            previous["displayName"] = json!(old);
        }
        if let Some(old) = &change.external_id_from {
            previous["externalId"] = old.clone();
        }
        events::append(
            conn,
            actor,
            tenant_id,
            EventType::GroupUpdated,
            &group.id,
            &json!({"group": stored, "previous": previous}),
        )?;
    }
    for (kind, pks) in [
        (EventType::GroupMemberAdded, &joined),
        (EventType::GroupMemberRemoved, &left),
    ] {
        let mut moved = Vec::new();
        for user in users::ids_and_names(conn, tenant_id, pks)? {
            let payload = membership_json(&stored, &user);
            events::append(conn, actor, tenant_id, kind, &group.id, &payload)?;
            if user.member_id.is_some() {
                moved.push(user.id);
            }
        }
        // Their members' `groups` changed: an app reading the members changed since a time
        // must find them. In test mode too: apps read the groups live.
        members::touch_linked(conn, tenant_id, &moved)?;
    }

    let mut affected: BTreeSet<i64> = joined.into_iter().chain(left).collect();
    if let Some(old) = &change.renamed_from
        && gives_a_role(conn, tenant_id, &[old, &group.display_name])?
    {
        affected.extend(groups::user_pks(conn, group_pk)?);
    }
    if affected.is_empty() {
        return Ok(());
    }
    let pks: Vec<i64> = affected.into_iter().collect();
    let users = users::directory_users(conn, tenant_id, &pks, None)?;
    sync_people(
        conn,
        actor,
        tenant_id,
        Directory {
            users,
            ..Directory::default()
        },
        true,
        None,
    )
    .map(drop)
}

/// Before a group row is deleted: its members are re-evaluated as if they had left it.
pub fn group_deleting(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    group_pk: i64,
) -> Result<(), DbError> {
    let group = groups::directory_group(conn, group_pk)?;
    events::append(
        conn,
        actor,
        tenant_id,
        EventType::GroupDeleted,
        &group.id,
        &json!({"group": group_with_external_id(conn, group_pk, &group)?}),
    )?;
    if !gives_a_role(conn, tenant_id, &[&group.display_name])? {
        return Ok(());
    }
    let pks = groups::user_pks(conn, group_pk)?;
    if pks.is_empty() {
        return Ok(());
    }
    let users = users::directory_users(conn, tenant_id, &pks, Some(group_pk))?;
    // Read as if the group were gone already: what they show apps is read as it stands.
    sync_people(
        conn,
        actor,
        tenant_id,
        Directory {
            users,
            ..Directory::default()
        },
        false,
        None,
    )
    .map(drop)
}

/// Whether a group of any of these names gives a role. A group's name reaches its members
/// only through the role it gives (and the reason that names it), so a group that gives
/// none can be renamed or deleted without re-planning its members: for 100 000 members
/// that re-planning held the writer for a second, to change nothing.
fn gives_a_role(conn: &Conn, tenant_id: i64, names: &[&str]) -> Result<bool, DbError> {
    let settings = settings::get(conn, tenant_id)?;
    Ok(names
        .iter()
        .any(|name| sync::roles::role_of_group(&settings, name).is_some()))
}

/// Plans for the people in `directory` and applies the plan, unless in test mode.
/// `as_stored`: the directory's users are as stored, so what a member's API object shows
/// of them needs no second read. What `unsaid` says the write changed of one of them goes
/// into its member's `member.updated`; returned when the sync recorded none.
fn sync_people(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    directory: Directory,
    as_stored: bool,
    unsaid: Option<Unsaid>,
) -> Result<Option<DirectoryChange>, DbError> {
    let unsaid_change = |unsaid: Option<Unsaid>| unsaid.map(|u| u.change);
    if directory.users.is_empty() && directory.deleted.is_empty() {
        return Ok(unsaid_change(unsaid));
    }
    let settings = settings::get(conn, tenant_id)?;
    if settings.test_mode {
        return Ok(unsaid_change(unsaid));
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
    let rows = members::for_users(conn, tenant_id, &user_ids, &keys)?;
    let members: Vec<_> = rows.iter().map(MemberRow::to_sync).collect();
    let changes = sync::plan(&directory, &members, &settings);
    let looked_at: Vec<i64> = members.iter().map(|m| m.pk).collect();
    let considered = guard::Considered::Members(&looked_at);
    let changes = guard::screen(conn, actor, tenant_id, &settings, considered, &changes)?;
    let mut known = Known::of(as_stored.then_some(&directory), &rows);
    known.unsaid = unsaid;
    apply(conn, actor, tenant_id, "scim", &changes, &mut known)?;
    Ok(unsaid_change(known.unsaid))
}

/// Applies what the whole tenant's plan now says for the members in `held` (an admin
/// approved the deprovisionings the guard held for them), past the guard. Returns how many
/// changes were applied.
pub fn apply_held(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    held: &BTreeSet<i64>,
) -> Result<usize, DbError> {
    let settings = settings::get(conn, tenant_id)?;
    let plan = full_plan(conn, tenant_id, &settings)?;
    let changes: Vec<Change> = plan
        .changes
        .iter()
        .filter(|c| !matches!(c.action, Action::Skip { .. }))
        .filter(|c| c.member.as_ref().is_some_and(|m| held.contains(&m.pk)))
        .cloned()
        .collect();
    apply(conn, actor, tenant_id, "guard", &changes, &mut plan.known())?;
    seeds::refresh(conn, tenant_id)?;
    Ok(changes.len())
}

/// What a write has read before it applies its plan, so that applying it reads nothing
/// again: the directory users as they are stored, by SCIM id, each with whether it stays
/// (not one being deleted), which members' API objects show and new members link to; and
/// the members the plan was made of, by pk, as they are until their own change.
#[derive(Default)]
struct Known<'d> {
    users: HashMap<&'d str, (&'d DirectoryUser, bool)>,
    members: HashMap<i64, &'d MemberRow>,
    /// What the write changed of a directory user besides what the plan compares, until a
    /// `member.updated` of its member says it.
    unsaid: Option<Unsaid<'d>>,
}

/// What a write changed of directory user `user_id` that no plan compares
/// ([`DirectoryChange`]): its member's `member.updated` says it, so apps hear of one write
/// in one event.
struct Unsaid<'a> {
    user_id: &'a str,
    change: DirectoryChange,
}

impl<'d> Known<'d> {
    /// `directory`'s users when they were read as stored, and `members`.
    fn of(directory: Option<&'d Directory>, members: &'d [MemberRow]) -> Known<'d> {
        let users = match directory {
            Some(d) => {
                let staying = d.users.iter().map(|u| (u, true));
                let leaving = d.deleted.iter().map(|u| (u, false));
                staying
                    .chain(leaving)
                    .map(|(u, stays)| (u.id.as_str(), (u, stays)))
                    .collect()
            }
            None => HashMap::new(),
        };
        Known {
            users,
            members: members.iter().map(|m| (m.pk, m)).collect(),
            unsaid: None,
        }
    }

    /// Member `pk` as stored now: as the plan read it the first time (a change writes
    /// only its own member), read again for a later change of the same member.
    fn member(&mut self, conn: &Conn, pk: i64) -> Result<Cow<'d, MemberRow>, DbError> {
        match self.members.remove(&pk) {
            Some(row) => {
                debug_assert_eq!(
                    members::get_by_pk(conn, pk).ok().flatten().as_ref(),
                    Some(row),
                    "a member changed between its plan and its first change"
                );
                Ok(Cow::Borrowed(row))
            }
            None => Ok(Cow::Owned(
                members::get_by_pk(conn, pk)?.ok_or(DbError::NotFound)?,
            )),
        }
    }

    /// What a member linked to `user_id` shows of that user.
    fn linked(
        &self,
        conn: &Conn,
        tenant_id: i64,
        user_id: Option<&str>,
    ) -> Result<LinkedUser, DbError> {
        match user_id.and_then(|id| self.users.get(id)) {
            Some((user, _)) => Ok(LinkedUser::from_directory(user)),
            None => LinkedUser::of(conn, tenant_id, user_id),
        }
    }

    /// What the write changed of `user_id` that is still unsaid, taken to be said now.
    fn take_unsaid(&mut self, user_id: Option<&str>) -> Option<DirectoryChange> {
        match (&self.unsaid, user_id) {
            (Some(u), Some(id)) if u.user_id == id => self.unsaid.take().map(|u| u.change),
            _ => None,
        }
    }

    /// Whether a member linked to `user_id` links to a user that stays, when known.
    fn stays(&self, user_id: Option<&str>) -> Option<bool> {
        match user_id {
            None => Some(false),
            Some(id) => self.users.get(id).map(|(_, stays)| *stays),
        }
    }
}

/// Applies `changes`: each one writes the member, an audit entry and an event. The guard
/// has screened them already.
/// Applies `changes` and says how members moved between status and role counts: what a
/// bulk apply, whose triggers are off, hands to [`tenants::MemberBatch::finish`].
fn apply(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    via: &'static str,
    changes: &[Change],
    known: &mut Known,
) -> Result<CountMoves, DbError> {
    let mut journal = Journal::new(tenant_id);
    let mut moves = CountMoves::default();
    for change in changes {
        if matches!(change.action, Action::Skip { .. }) {
            continue;
        }
        let existing = match &change.member {
            Some(m) => Some(known.member(conn, m.pk)?),
            None => None,
        };
        // Read once for the member's object before and after, unless the change links it
        // to another directory user.
        let mut linked = known.linked(
            conn,
            tenant_id,
            match &existing {
                Some(row) => row.user_id.as_deref(),
                None => change.user_id.as_deref(),
            },
        )?;
        let before = existing.as_ref().map(|row| linked.api_object(row));
        let pk = || {
            existing
                .as_ref()
                .map(|m| m.pk)
                .ok_or_else(|| DbError::Schema("a change without its member".into()))
        };
        let mut extra = json!({});
        let mut created = None;
        let (event, action, pk) = match &change.action {
            Action::Skip { .. } => continue,
            Action::Create { profile, role } => {
                let row = members::insert_linked(
                    conn,
                    tenant_id,
                    &NewMember {
                        profile: profile.clone(),
                        role: role.role.clone(),
                        role_reason: role.to_string(),
                        status: MemberStatus::Active,
                        managed: true,
                        source: MemberSource::Scim,
                        user_id: change.user_id.clone(),
                    },
                    known.stays(change.user_id.as_deref()),
                )?;
                let pk = row.pk;
                created = Some(row);
                (EventType::MemberCreated, AuditAction::MemberCreated, pk)
            }
            Action::Update { fields } => {
                let pk = pk()?;
                for f in fields {
                    members::set_field(conn, pk, f.field, f.after.as_deref())?;
                }
                (EventType::MemberUpdated, AuditAction::MemberUpdated, pk)
            }
            Action::RoleChange { to, .. } => {
                let pk = pk()?;
                members::set_role(conn, pk, &to.role, &to.to_string())?;
                extra = json!({"reason": to});
                let event = EventType::MemberRoleChanged;
                (event, AuditAction::MemberRoleChanged, pk)
            }
            Action::Suspend => {
                let pk = pk()?;
                members::set_status(conn, pk, MemberStatus::Suspended)?;
                (EventType::MemberSuspended, AuditAction::MemberSuspended, pk)
            }
            Action::Reactivate { .. } => {
                let pk = pk()?;
                members::set_status(conn, pk, MemberStatus::Active)?;
                let event = EventType::MemberReactivated;
                (event, AuditAction::MemberReactivated, pk)
            }
            Action::Archive { cause, .. } => {
                let pk = pk()?;
                members::set_status(conn, pk, MemberStatus::Archived)?;
                extra = json!({"cause": cause});
                (EventType::MemberArchived, AuditAction::MemberArchived, pk)
            }
            Action::Delete {
                cause,
                after_days: Some(days),
                ..
            } => {
                let pk = pk()?;
                let after = datetime::in_days(i64::from(*days));
                members::schedule_deletion(conn, pk, &after)?;
                extra = json!({"cause": cause, "deleteAfter": after});
                (EventType::MemberSuspended, AuditAction::MemberSuspended, pk)
            }
            Action::Delete { cause, .. } => {
                members::delete(conn, pk()?)?;
                extra = json!({"cause": cause});
                (EventType::MemberDeleted, AuditAction::MemberDeleted, pk()?)
            }
        };
        let after = match (&change.action, existing.as_ref()) {
            (
                Action::Delete {
                    after_days: None, ..
                },
                Some(row),
            ) => row.clone().into_owned(),
            _ => match created {
                Some(row) => row,
                None => members::get_by_pk(conn, pk)?.ok_or(DbError::NotFound)?,
            },
        };
        if let Some(row) = &existing {
            moves.left(row);
        }
        if event != EventType::MemberDeleted {
            moves.joined(&after);
            if !linked.is_of(&after) {
                linked = known.linked(conn, tenant_id, after.user_id.as_deref())?;
            }
        }
        let deleted = match event {
            EventType::MemberDeleted => Some(before.clone().unwrap_or(Value::Null)),
            _ => None,
        };
        let mut entry = ReportEntry::borrowed(change);
        entry.member_id = Some(&after.id);
        let mut before = before;
        let unsaid = match event {
            EventType::MemberUpdated => known.take_unsaid(after.user_id.as_deref()),
            _ => None,
        };
        let detail = match unsaid {
            None => super::members::detail(&entry),
            Some(unsaid) => {
                if let Some(object) = &mut before {
                    unsaid.revert(object);
                }
                let mut entry = serde_json::to_value(&entry).unwrap_or(Value::Null);
                if let Some(Value::Array(fields)) = entry.get_mut("fields") {
                    fields.extend(unsaid.fields());
                }
                super::members::detail(&entry)
            }
        };
        let write = MemberWrite {
            before,
            after: &after,
            event,
            action,
            via,
            extra,
            detail,
        };
        match &deleted {
            Some(data) => journal.record_as(conn, actor, write, data)?,
            None => journal.record_as(conn, actor, write, &linked.object(&after))?,
        }
    }
    journal.finish(conn)?;
    Ok(moves)
}

/// A recorded sync run and its report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRun {
    pub id: i64,
    pub actor: String,
    pub scope: SyncScope,
    /// Nothing was applied: asked for, or the tenant is in test mode.
    pub dry_run: bool,
    pub test_mode: bool,
    /// Member deprovisionings of the report the guard held instead of applying.
    pub held: usize,
    pub started_at: String,
    pub finished_at: String,
    /// Planning and applying, inside the transaction: what the run records of itself.
    pub duration_ms: u64,
    /// From asking for the run until its commit was durable (the writer's queue, the
    /// commit, its flush and the checkpoint after it included): what whoever asked waited.
    /// Known only to [`force`], after the run's own record was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durable_ms: Option<u64>,
    pub report: Report,
}

impl SyncRun {
    /// "applied in … ms", and until it was durable when known.
    /// How many member changes of its report it applied: all but the skips and what the
    /// guard held (none in test mode or a dry run).
    pub fn applied(&self) -> usize {
        if self.test_mode || self.dry_run {
            return 0;
        }
        self.report.counts.changes().saturating_sub(self.held)
    }

    pub fn applied_in(&self) -> String {
        match self.durable_ms {
            Some(durable) => format!(
                "applied in {} ms, durable after {durable} ms",
                self.duration_ms
            ),
            None => format!("applied in {} ms", self.duration_ms),
        }
    }
}

/// The plan for the whole tenant now, without applying or recording anything: what test
/// mode shows, with the settings it was planned under.
pub async fn report(db: &Db, tenant_id: i64) -> Result<(Report, Settings), DbError> {
    db.read(move |c| {
        let settings = settings::get(c, tenant_id)?;
        Ok((
            Report::new(&full_plan(c, tenant_id, &settings)?.changes),
            settings,
        ))
    })
    .await
}

/// How long writes must pause before [`Plans::keep_current`] plans again.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);
/// The longest a watched plan stays behind a steady stream of writes.
const STALE_AT_MOST: std::time::Duration = std::time::Duration::from_secs(30);

/// The last whole-tenant plan of each tenant, so the test mode & sync page (and its
/// exports) plan once per directory change instead of on every load: at 100 000 members a
/// plan takes about 0.2 s, a cached report nothing. Each plan made is also stored
/// (`db::plans`), so a restart does not plan again what nothing changed. After a change,
/// the last plan is brought up to date ([`since::replan`]): only the people the writes
/// since can move are planned again, a millisecond for a few.
///
/// A report is served only while the tenant's plan version
/// ([`tenants::plan_version`]) is the one it was planned at. The version is bumped by
/// triggers in the transaction of every write to what the plan reads, by any code path or
/// process, and is read in the same snapshot as the plan's inputs, so a cached report is
/// never older than the data an admin could read at the same moment. Force sync never
/// uses it: [`run`] plans again inside its write transaction. [`Plans::keep_current`]
/// plans again in the background after writes, so a page load rarely waits for a plan.
#[derive(Clone, Default)]
pub struct Plans {
    inner: Arc<PlansInner>,
}

#[derive(Default)]
struct PlansInner {
    /// Tenant id → its last plan. One entry per tenant whose page was looked at within
    /// [`WATCH_FOR`].
    by_tenant: Mutex<HashMap<i64, CachedPlan>>,
    /// Held while a plan is made or read back, so that a page load and the background
    /// (or two loads) never make the same plan twice at once: a plan of 100 000 members
    /// takes half a second and a few hundred MiB at its peak.
    planning: tokio::sync::Mutex<()>,
    /// How many plans were made whole rather than brought up to date.
    #[cfg(test)]
    made_whole: std::sync::atomic::AtomicUsize,
}

#[derive(Clone)]
struct CachedPlan {
    /// The plan version it was made at.
    version: (String, i64),
    report: Arc<Report>,
    /// The settings it was planned under.
    settings: Settings,
    /// When the tenant's page was last loaded (Unix seconds): its plan is kept current in
    /// the background for [`WATCH_FOR`] after that.
    looked_at: i64,
}

/// The longest stored report read back to bring up to date after a restart (of about
/// 10 000 changes): a longer one costs about as much to read as planning the tenant whole.
const STALE_BASE_AT_MOST: usize = 4 << 20;

/// How long after the last load of a tenant's page its plan is kept in memory: past it, the
/// plan is kept current in the database only, and the next load reads it back.
const WATCH_FOR: i64 = 7 * 24 * 60 * 60;

/// Now, in Unix seconds.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What a plan leaves to store: a plan it made, or only a later load of the page.
enum Store {
    Plan(StoredPlan),
    Look(i64),
}

/// Who asks for a plan: a load of the page, or the background keeping it current.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asker {
    Page,
    Background,
}

impl Plans {
    /// [`report`], planned again only when something the plan reads changed since the
    /// last call for this tenant. A plan made here is also stored in the database, so that
    /// after a restart the page is served the stored one instead of planning again while
    /// nothing changed (and this build made it).
    pub async fn report(
        &self,
        db: &Db,
        tenant_id: i64,
    ) -> Result<(Arc<Report>, Settings), DbError> {
        let planned = self.plan(db, tenant_id, Asker::Page).await?;
        Ok(planned.expect("a page load is always given a plan"))
    }

    /// The current plan of tenant `tenant_id`, as [`Plans::report`]; for the background,
    /// `None` when the plan of a tenant whose page is not watched is current already.
    async fn plan(
        &self,
        db: &Db,
        tenant_id: i64,
        asker: Asker,
    ) -> Result<Option<(Arc<Report>, Settings)>, DbError> {
        let now = unix_now();
        let cache = self.clone();
        let hit = db
            .snapshot(move |c| {
                Ok::<_, DbError>(cache.get(tenant_id, &tenants::plan_version(c, tenant_id)?))
            })
            .await?;
        if let Some(hit) = hit {
            if asker == Asker::Page {
                self.looked_at(tenant_id, now);
            }
            return Ok(Some((hit.report, hit.settings)));
        }
        let planning = self.inner.planning.lock().await;
        let cache = self.clone();
        let beside = db.clone();
        let planned: Option<(_, _, Option<Store>)> = db
            .snapshot(move |c| -> Result<_, DbError> {
                let version = tenants::plan_version(c, tenant_id)?;
                // Made while this load waited for another's.
                if let Some(hit) = cache.get(tenant_id, &version) {
                    if asker == Asker::Page {
                        cache.looked_at(tenant_id, now);
                    }
                    return Ok(Some((hit.report, hit.settings, None)));
                }
                let cached_look = cache.lock().get(&tenant_id).map(|p| p.looked_at);
                // A tenant whose page is not watched keeps its plan in the database only:
                // reading it back when it is current would serve nobody, and one too long
                // to bring up to date (thousands of changes pending in test mode) is made
                // whole only when its page is loaded.
                if asker == Asker::Background
                    && cached_look.is_none()
                    && stored_plans::may_stay(
                        c,
                        tenant_id,
                        &version,
                        planner(),
                        STALE_BASE_AT_MOST,
                    )?
                {
                    return Ok(None);
                }
                let settings = settings::get(c, tenant_id)?;
                let cached_base = cache.base(tenant_id, &version, &settings);
                // A stale stored report is read back only to bring it up to date, when no
                // plan in memory can be.
                let stale_at_most = match cached_base {
                    Some(_) => 0,
                    None => STALE_BASE_AT_MOST,
                };
                let stored =
                    stored_plans::current(c, tenant_id, &version, planner(), stale_at_most)?;
                let stored_look = stored.as_ref().map(|(at, _)| *at);
                // The last load of the page this process or the stored plan knows of (0:
                // never loaded).
                let looked_at = match asker {
                    Asker::Page => now,
                    Asker::Background => cached_look.or(stored_look).unwrap_or(0),
                };
                let read = stored
                    .and_then(|(_, report)| report)
                    .and_then(|s| Some((read_back(tenant_id, s.text)?, s.plan_version)));
                let (report, store) = match read {
                    Some((report, at)) if at == version.1 => {
                        let later = stored_look.is_some_and(|at| at < looked_at);
                        (report, later.then_some(Store::Look(looked_at)))
                    }
                    stale => {
                        let stale = stale.map(|(report, at)| (Arc::new(report), at));
                        let report = match cached_base.or(stale) {
                            Some((base, since)) => {
                                since::replan(c, tenant_id, &base, since, &settings)?
                            }
                            None => None,
                        };
                        let report = match report {
                            Some(report) => report,
                            None => {
                                #[cfg(test)]
                                cache.inner.made_whole.fetch_add(1, Ordering::Relaxed);
                                let changes =
                                    plan_at_once(&beside, c, tenant_id, &version, &settings)?;
                                Report::new(&changes)
                            }
                        };
                        let entries: Vec<&ReportEntry> = report.entries().collect();
                        let made = serde_json::to_string(&entries).ok().map(|text| StoredPlan {
                            version: version.clone(),
                            planner: planner().to_string(),
                            report: text,
                            looked_at,
                        });
                        (report, made.map(Store::Plan))
                    }
                };
                let report = Arc::new(report);
                if looked_at >= now - WATCH_FOR {
                    let cached = CachedPlan {
                        version,
                        report: report.clone(),
                        settings: settings.clone(),
                        looked_at,
                    };
                    cache.lock().insert(tenant_id, cached);
                }
                Ok(Some((report, settings, store)))
            })
            .await?;
        drop(planning);
        let Some((report, settings, store)) = planned else {
            return Ok(None);
        };
        if let Some(store) = store {
            // A cache: lost to a power cut, it costs one plan, so no flush of its own.
            let stored = db
                .write_relaxed(move |tx| match store {
                    Store::Plan(plan) => stored_plans::put(tx, tenant_id, &plan),
                    Store::Look(at) => stored_plans::looked_at(tx, tenant_id, at),
                })
                .await;
            if let Err(e) = stored {
                tracing::debug!(tenant_id, error = %e, "storing the plan failed");
            }
        }
        Ok(Some((report, settings)))
    }

    /// Plans again (or reads back) the plans of `tenants` whose plan version moved: what
    /// [`Plans::keep_current`] does for every tenant at start and after writes.
    async fn refresh(&self, db: &Db, tenants: Vec<i64>) {
        for tenant_id in tenants {
            match self.plan(db, tenant_id, Asker::Background).await {
                Ok(_) => {}
                // Deleted: no page of it will be looked at again.
                Err(DbError::NotFound) => drop(self.lock().remove(&tenant_id)),
                Err(e) => {
                    tracing::debug!(tenant_id, error = %e, "planning in the background failed")
                }
            }
        }
    }

    /// Keeps every tenant's plan current in the background, so that the page an admin
    /// opens, the first time too, has its plan ready instead of making it (about 0.2 s at
    /// 100 000 members). At start, and once this process's writes settle ([`SETTLE`]
    /// without a commit, or every [`STALE_AT_MOST`] under a steady stream of them), each
    /// tenant whose plan version moved is planned again, mostly by bringing its last plan
    /// up to date. Plans of tenants whose page was loaded within [`WATCH_FOR`] are kept in
    /// memory (read back at start); the others are kept in the database only. A version
    /// that did not move (the request inspector's own commits) costs a read or two. Ends
    /// when the last other handle on these plans is dropped.
    pub fn keep_current(&self, db: Db) {
        let plans = Arc::downgrade(&self.inner);
        let mut commits = db.commits();
        tokio::spawn(async move {
            let all =
                || db.read(|c| Ok::<_, DbError>(tenants::list(c)?.iter().map(|t| t.id).collect()));
            if let (Ok(tenants), Some(inner)) = (all().await, plans.upgrade()) {
                Plans { inner }.refresh(&db, tenants).await;
            }
            while commits.changed().await.is_ok() {
                let first = tokio::time::Instant::now();
                loop {
                    match tokio::time::timeout(SETTLE, commits.changed()).await {
                        Err(_quiet) => break,
                        Ok(Err(_closed)) => return,
                        Ok(Ok(())) if first.elapsed() >= STALE_AT_MOST => break,
                        Ok(Ok(())) => {}
                    }
                }
                let Some(inner) = plans.upgrade() else {
                    return;
                };
                let plans = Plans { inner };
                plans.watched(unix_now() - WATCH_FOR);
                if let Ok(tenants) = all().await {
                    plans.refresh(&db, tenants).await;
                }
            }
        });
    }

    /// The tenants whose page was loaded since `since`; the others leave the cache.
    fn watched(&self, since: i64) -> Vec<i64> {
        let mut plans = self.lock();
        plans.retain(|_, p| p.looked_at >= since);
        plans.keys().copied().collect()
    }

    /// Notes a load of tenant `tenant_id`'s page at `now`.
    fn looked_at(&self, tenant_id: i64, now: i64) {
        if let Some(p) = self.lock().get_mut(&tenant_id) {
            p.looked_at = now;
        }
    }

    /// The last plan of tenant `tenant_id` (the same tenant, not one deleted and made again
    /// under its id) under `settings`, to bring up to date, with its plan version.
    fn base(
        &self,
        tenant_id: i64,
        version: &(String, i64),
        settings: &Settings,
    ) -> Option<(Arc<Report>, i64)> {
        self.lock()
            .get(&tenant_id)
            .filter(|p| p.version.0 == version.0 && p.settings == *settings)
            .map(|p| (p.report.clone(), p.version.1))
    }

    fn get(&self, tenant_id: i64, version: &(String, i64)) -> Option<CachedPlan> {
        self.lock()
            .get(&tenant_id)
            .filter(|p| &p.version == version)
            .cloned()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i64, CachedPlan>> {
        // A panic while holding it cannot leave a half-written entry behind.
        self.inner
            .by_tenant
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// The report of tenant `tenant_id`'s stored plan, when it is current (its text), if it
/// reads back.
fn read_back(tenant_id: i64, text: String) -> Option<Report> {
    match serde_json::from_str::<Vec<ReportEntry>>(&text) {
        Ok(entries) => Some(Report::of_entries(entries)),
        Err(e) => {
            tracing::debug!(tenant_id, error = %e, "a stored plan did not read back");
            None
        }
    }
}

/// Which build of scimd made a plan: its version, and its executable's size and
/// modification time, since two builds of one version may plan differently. A plan stored
/// by another build is made again rather than shown. Where the executable cannot be
/// looked at, this process's start: nothing stored before it is served.
fn planner() -> &'static str {
    static PLANNER: OnceLock<String> = OnceLock::new();
    PLANNER.get_or_init(|| {
        let exe = std::env::current_exe().and_then(std::fs::metadata);
        let build = match exe.as_ref().map(|m| (m.len(), m.modified())) {
            Ok((len, Ok(modified))) => format!("{len} bytes, modified {modified:?}"),
            _ => format!("started {}", datetime::now()),
        };
        format!("scimd {}, {build}", env!("CARGO_PKG_VERSION"))
    })
}

/// Force sync and `scimd sync`: [`run`] for the whole tenant in a transaction of its own.
pub async fn force(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    dry_run: bool,
) -> Result<SyncRun, DbError> {
    let actor = actor.clone();
    let asked = Instant::now();
    let recorded = db
        .write(move |tx| record(tx, &actor, tenant_id, SyncScope::Full, dry_run))
        .await?;
    let durable_ms = Some(asked.elapsed().as_millis() as u64);
    Ok(SyncRun {
        durable_ms,
        ..recorded.reported()
    })
}

/// What the whole tenant's plan under `settings` would be, limited to `scope`, without
/// saving the settings, applying or recording anything: the admin UI's preview of a
/// settings change. It is the plan [`run`] would apply once `settings` are saved.
pub fn preview(
    conn: &Conn,
    tenant_id: i64,
    settings: &Settings,
    scope: SyncScope,
) -> Result<Report, DbError> {
    Ok(Report::new(
        &scoped_plan(conn, tenant_id, settings, scope)?.changes,
    ))
}

/// The whole directory and the plan for it, limited to `scope`.
fn scoped_plan(
    conn: &Conn,
    tenant_id: i64,
    settings: &Settings,
    scope: SyncScope,
) -> Result<Planned, DbError> {
    let mut plan = full_plan(conn, tenant_id, settings)?;
    if scope == SyncScope::Roles {
        plan.changes = sync::roles_only(plan.changes);
    }
    Ok(plan)
}

/// A whole-tenant plan and what it was made of.
struct Planned {
    directory: Directory,
    members: Vec<MemberRow>,
    changes: Vec<Change>,
}

impl Planned {
    /// What applying the plan need not read again.
    fn known(&self) -> Known<'_> {
        Known::of(Some(&self.directory), &self.members)
    }
}

/// The whole directory and the plan for it.
fn full_plan(conn: &Conn, tenant_id: i64, settings: &Settings) -> Result<Planned, DbError> {
    let directory = Directory {
        users: users::all_directory_users(conn, tenant_id)?,
        deleted: Vec::new(),
        complete: true,
    };
    let members = members::list(conn, tenant_id)?;
    let synced: Vec<_> = members.iter().map(MemberRow::to_sync).collect();
    let changes = sync::plan(&directory, &synced, settings);
    Ok(Planned {
        directory,
        members,
        changes,
    })
}

/// The whole tenant's plan, as [`full_plan`] makes it, on two cores. The directory users
/// are read on `conn` (in a snapshot at plan version `version`) and handed over in
/// batches, while a second connection of `db`, in a snapshot of its own, reads the
/// members; its thread indexes them and plans the users handed over so far, then each
/// batch as it comes ([`sync::plan_streamed`]). Equal plan versions say the two snapshots
/// saw the same directory and members; when a write came between them, or the pool had no
/// second connection free, all is read on `conn` and planned there. Nothing here is
/// needed to apply the plan (a page's report).
pub fn plan_at_once(
    db: &Db,
    conn: &Conn,
    tenant_id: i64,
    version: &(String, i64),
    settings: &Settings,
) -> Result<Vec<Change>, DbError> {
    /// Users handed over at a time: few enough that the planner is seldom left waiting.
    const BATCH: usize = 512;
    let (hand_over, batches) = std::sync::mpsc::channel::<Vec<DirectoryUser>>();
    let (read, planned) = std::thread::scope(|s| {
        let planner = s.spawn(move || {
            let same = |c: &Conn| -> Result<bool, DbError> {
                Ok(tenants::plan_version(c, tenant_id)? == *version)
            };
            let members = db.snapshot_here(|c| match same(c)? {
                true => members::for_plan(c, tenant_id).map(Some),
                false => Ok(None),
            });
            // No connection, or another state: dropping `batches` stops the reading.
            let members = members.transpose()?.flatten();
            let Some(members) = members else {
                return Ok(None);
            };
            let users = batches.into_iter().flatten();
            let changes = sync::plan_streamed(users, sync::Indexed::new(&members), settings);
            free_aside(members);
            Ok::<_, DbError>(Some(changes))
        });
        let mut batch = Vec::with_capacity(BATCH);
        let read = users::each_directory_user(conn, tenant_id, |user| {
            batch.push(user);
            batch.len() < BATCH
                || hand_over
                    .send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                    .is_ok()
        });
        // The last batch; an error leaves the plan short, and it is not used.
        let _ = hand_over.send(batch);
        drop(hand_over);
        let planned = planner
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (read, planned)
    });
    if let Some(changes) = planned? {
        read?;
        return Ok(changes);
    }
    let directory = Directory {
        users: users::all_directory_users(conn, tenant_id)?,
        deleted: Vec::new(),
        complete: true,
    };
    let members = members::for_plan(conn, tenant_id)?;
    let changes = sync::plan(&directory, &members, settings);
    free_aside((directory, members));
    Ok(changes)
}

/// Frees `what` on a thread of its own: freeing 100 000 people is a tenth of a plan, and
/// its report need not wait for it.
fn free_aside<T: Send + 'static>(what: T) {
    if let Err(e) = std::thread::Builder::new().spawn(move || drop(what)) {
        tracing::debug!(error = %e, "no thread to free a plan's inputs on");
    }
}

/// The page cache a whole-tenant apply may use (`sync_runs::widen_cache`): enough for
/// 100 000 members' writes to stay in memory until the commit.
const APPLY_CACHE_MIB: i64 = 512;

/// Plans for the whole tenant and, unless `dry_run` or test mode, applies the plan; records
/// the run (who, when, how long, counts, dry run or applied) and audits it. Run it in a
/// write transaction.
pub fn run(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    scope: SyncScope,
    dry_run: bool,
) -> Result<SyncRun, DbError> {
    Ok(record(conn, actor, tenant_id, scope, dry_run)?.reported())
}

/// A run as [`record`] left it: everything but its report, and the changes to build the
/// report from, which need not hold up the transaction (a tenth of a second at 100 000).
struct Recorded {
    run: SyncRun,
    changes: Vec<Change>,
}

impl Recorded {
    fn reported(self) -> SyncRun {
        SyncRun {
            report: Report::new(&self.changes),
            ..self.run
        }
    }
}

/// [`run`], but for the report.
fn record(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    scope: SyncScope,
    dry_run: bool,
) -> Result<Recorded, DbError> {
    let started = Instant::now();
    let started_at = datetime::now();
    let settings = settings::get(conn, tenant_id)?;
    let dry_run = dry_run || settings.test_mode;
    let plan = scoped_plan(conn, tenant_id, &settings, scope)?;
    let changes = &plan.changes;
    let mut held = 0;
    if !dry_run {
        let _cache = sync_runs::widen_cache(conn, APPLY_CACHE_MIB)?;
        let (via, screened) = match scope {
            SyncScope::Full => {
                let all = guard::Considered::All;
                let screened = guard::screen(conn, actor, tenant_id, &settings, all, changes)?;
                ("force_sync", screened)
            }
            // A role re-evaluation never deprovisions anyone.
            SyncScope::Roles => ("settings", Cow::Borrowed(&changes[..])),
        };
        held = changes.len() - screened.len();
        let batch = tenants::member_batch(conn, tenant_id)?;
        let moves = apply(conn, actor, tenant_id, via, &screened, &mut plan.known())?;
        batch.finish(&moves)?;
        seeds::refresh(conn, tenant_id)?;
    }
    let finished_at = datetime::now();
    let duration_ms = started.elapsed().as_millis() as u64;
    // The report's counts, of every change, held or not; the run keeps how many the guard
    // held beside them, so its history never reads as if those were applied.
    let counts = serde_json::to_value(Counts::of(changes)).unwrap_or(Value::Null);
    let mut run_counts = counts.clone();
    if held > 0 {
        run_counts["held"] = json!(held);
    }
    let label = actor.label();
    let id = sync_runs::insert(
        conn,
        &sync_runs::NewRun {
            tenant_id,
            actor: &label,
            scope: scope.as_str(),
            dry_run,
            started_at: &started_at,
            finished_at: &finished_at,
            duration_ms,
            counts: &run_counts,
        },
    )?;
    audit::append(
        conn,
        &audit::Entry::new(actor, Some(tenant_id), AuditAction::SyncRun, Some(format!("sync_run/{id}")))
            .with_detail(json!({"scope": scope, "dryRun": dry_run, "testMode": settings.test_mode, "counts": counts, "held": held, "durationMs": duration_ms})),
    )?;
    Ok(Recorded {
        run: SyncRun {
            id,
            actor: label,
            scope,
            dry_run,
            test_mode: settings.test_mode,
            held,
            started_at,
            finished_at,
            duration_ms,
            durable_ms: None,
            // Built by `reported`, outside the transaction.
            report: Report::new(&[]),
        },
        changes: plan.changes,
    })
}

/// What a membership event stores: the group, and the directory user with its member's id
/// (none in test mode, or before a sync made one): enough to name the person after their
/// member and user rows are gone.
fn membership_json(group: &Value, user: &users::Named) -> Value {
    json!({"group": group,
           "user": {"id": user.id, "userName": user.user_name, "externalId": user.external_id,
                    "memberId": user.member_id}})
}

/// What a group's events store of it: its id, displayName and externalId.
fn group_json(g: &DirectoryGroup, external_id: Option<String>) -> Value {
    json!({"id": &*g.id, "displayName": &*g.display_name, "externalId": external_id})
}

/// [`group_json`] of group `group_pk`.
fn group_with_external_id(
    conn: &Conn,
    group_pk: i64,
    g: &DirectoryGroup,
) -> Result<Value, DbError> {
    Ok(group_json(g, groups::external_id(conn, group_pk)?))
}

mod since;
#[cfg(test)]
mod tests;
