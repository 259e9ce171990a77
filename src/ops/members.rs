//! What admins do to members directly: CSV import (with its preview), marking a member
//! (not) managed, and exports. Every member change here and in the reconcile hooks is
//! recorded by [`record`]: the event and the audit entry of one member write, built the
//! same way whoever made it.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::db::audit::{self, Action as AuditAction};
use crate::db::events::{self, EventType};
use crate::db::members::{self, MemberRow, NewMember};
use crate::db::{Conn, Db, DbError, seeds, settings, users};
use crate::model::{
    Actor, DirectoryUser, Field, MemberSource, MemberStatus, Profile, Role, Settings,
};
use crate::scim::resource;
use crate::sync::member_csv::{self, ImportRow, RowError};
use crate::sync::{RoleDecision, RoleReason};

/// A member as apps read it (the read API, the events feed and webhooks): its profile,
/// role and why, status, whether provisioning manages it, where it came from, the linked
/// directory user (its SCIM id and externalId) and that user's groups.
pub fn api_object(conn: &Conn, tenant_id: i64, row: &MemberRow) -> Result<Value, DbError> {
    let linked = LinkedUser::of(conn, tenant_id, row.user_id.as_deref())?;
    Ok(linked.api_object(row))
}

/// What a member's API object shows of the directory user it links to. Writing a member
/// does not change its directory user, so a write that needs the object before and after
/// reads this once.
pub(super) struct LinkedUser {
    /// The member's `user_id` this was read for.
    user_id: Option<String>,
    external_id: Option<Value>,
    attributes: Map<String, Value>,
    groups: Vec<LinkedGroup>,
}

/// One group of a member's directory user, as its API object shows it.
#[derive(Serialize)]
struct LinkedGroup {
    id: String,
    display_name: String,
}

impl LinkedUser {
    pub(super) fn of(
        conn: &Conn,
        tenant_id: i64,
        user_id: Option<&str>,
    ) -> Result<LinkedUser, DbError> {
        let user = match user_id {
            Some(id) => users::get(conn, tenant_id, id)?,
            None => None,
        };
        let Some(user) = user else {
            // A user the IdP deleted: what it last said, in no group.
            let last = match user_id {
                Some(id) => members::last_directory(conn, tenant_id, id)?,
                None => None,
            };
            let last = last.unwrap_or_default();
            return Ok(LinkedUser {
                user_id: user_id.map(str::to_string),
                external_id: last.get("external_id").filter(|v| !v.is_null()).cloned(),
                attributes: match last.get("attributes") {
                    Some(Value::Object(a)) => a.clone(),
                    _ => Map::new(),
                },
                groups: Vec::new(),
            });
        };
        let groups = users::groups_of(conn, &[user.pk])?
            .remove(&user.pk)
            .unwrap_or_default()
            .into_iter()
            .map(|g| LinkedGroup {
                id: g.id,
                display_name: g.display,
            })
            .collect();
        Ok(LinkedUser {
            user_id: Some(user.id),
            external_id: user.data.get("externalId").cloned(),
            attributes: resource::profile_attributes(&user.data),
            groups,
        })
    }

    /// What `user`, a directory user as just read, shows: no
    /// query, for writes that read their people already.
    pub(super) fn from_directory(user: &DirectoryUser) -> LinkedUser {
        LinkedUser {
            user_id: Some(user.id.clone()),
            external_id: user.external_id.clone(),
            attributes: user.attributes.clone(),
            groups: user
                .groups
                .iter()
                .map(|g| LinkedGroup {
                    id: g.id.to_string(),
                    display_name: g.display_name.to_string(),
                })
                .collect(),
        }
    }

    /// Whether this is what `row` links to.
    pub(super) fn is_of(&self, row: &MemberRow) -> bool {
        self.user_id == row.user_id
    }

    /// `row`'s API object; `row` must link to this user ([`LinkedUser::is_of`]).
    pub(super) fn api_object(&self, row: &MemberRow) -> Value {
        serde_json::to_value(self.object(row)).expect("a member object always serialises")
    }

    /// [`LinkedUser::api_object`] borrowed, to serialise without building a JSON tree.
    pub(super) fn object<'a>(&'a self, row: &'a MemberRow) -> MemberObject<'a> {
        debug_assert!(self.is_of(row));
        let p = &row.profile;
        MemberObject {
            object: "member",
            id: &row.id,
            email: p.email.as_deref(),
            user_name: p.user_name.as_deref(),
            given_name: p.given_name.as_deref(),
            family_name: p.family_name.as_deref(),
            display_name: p.display_name.as_deref(),
            role: &row.role,
            role_reason: &row.role_reason,
            status: row.status,
            managed: row.managed,
            source: row.source,
            directory_user_id: row.user_id.as_deref(),
            external_id: self.external_id.as_ref(),
            attributes: &self.attributes,
            groups: &self.groups,
            delete_after: row.delete_after.as_deref(),
            created_at: &row.created_at,
            updated_at: &row.updated_at,
        }
    }
}

/// A member's API object ([`api_object`]), its fields in the order apps see them.
#[derive(Serialize)]
pub(super) struct MemberObject<'a> {
    object: &'static str,
    id: &'a str,
    email: Option<&'a str>,
    user_name: Option<&'a str>,
    given_name: Option<&'a str>,
    family_name: Option<&'a str>,
    display_name: Option<&'a str>,
    role: &'a Role,
    role_reason: &'a str,
    status: MemberStatus,
    managed: bool,
    source: MemberSource,
    directory_user_id: Option<&'a str>,
    external_id: Option<&'a Value>,
    /// The directory user's profile attributes, under SCIM's names.
    attributes: &'a Map<String, Value>,
    groups: &'a [LinkedGroup],
    delete_after: Option<&'a str>,
    created_at: &'a str,
    updated_at: &'a str,
}

/// What the fields of `after` that changed were in `before` (`updated_at` aside). Of the
/// profile `attributes`, only those that changed, `null` for one that was not there.
fn previous_values(before: &Value, after: &Value) -> Value {
    let (Value::Object(b), Value::Object(a)) = (before, after) else {
        return json!({});
    };
    let mut previous: Map<String, Value> = b
        .iter()
        .filter(|(k, v)| k.as_str() != "updated_at" && a.get(k.as_str()) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(Value::Object(was)) = previous.get_mut("attributes") {
        let is = a.get("attributes").and_then(Value::as_object);
        let mut changed: Map<String, Value> = std::mem::take(was)
            .into_iter()
            .filter(|(name, v)| is.and_then(|is| is.get(name)) != Some(v))
            .collect();
        let was = b.get("attributes").and_then(Value::as_object);
        for name in is.into_iter().flat_map(Map::keys) {
            if was.is_none_or(|was| !was.contains_key(name)) {
                changed.insert(name.clone(), Value::Null);
            }
        }
        previous.insert("attributes".to_string(), Value::Object(changed));
    }
    Value::Object(previous)
}

/// What a write of a directory user changed that apps read of it besides its member: its
/// `externalId` (the member's `external_id`), and its profile attributes
/// ([`resource::profile_attributes`]: a WorkOS app's `custom_attributes`).
#[derive(Debug, Default)]
pub(super) struct DirectoryChange {
    /// The `externalId` before and after, when it changed (`null`: none).
    pub external_id: Option<(Value, Value)>,
    /// Each changed profile attribute's value before (`null`: it had none).
    pub attributes: Map<String, Value>,
    /// Each changed profile attribute's value after (`null`: it has none now).
    pub attributes_after: Map<String, Value>,
}

impl DirectoryChange {
    /// What changed from user data `before` to `after`.
    pub fn between(before: &Map<String, Value>, after: &Map<String, Value>) -> DirectoryChange {
        let external_id =
            |data: &Map<String, Value>| data.get("externalId").cloned().unwrap_or(Value::Null);
        let external_id = (before.get("externalId") != after.get("externalId"))
            .then(|| (external_id(before), external_id(after)));
        let (old, new) = (
            resource::profile_attributes(before),
            resource::profile_attributes(after),
        );
        let mut change = DirectoryChange {
            external_id,
            ..DirectoryChange::default()
        };
        for name in old.keys().chain(new.keys()) {
            let (was, is) = (old.get(name), new.get(name));
            if was != is && !change.attributes.contains_key(name) {
                change
                    .attributes
                    .insert(name.clone(), was.cloned().unwrap_or(Value::Null));
                change
                    .attributes_after
                    .insert(name.clone(), is.cloned().unwrap_or(Value::Null));
            }
        }
        change
    }

    pub fn is_empty(&self) -> bool {
        self.external_id.is_none() && self.attributes.is_empty()
    }

    /// What it changed as an audit entry lists a member's fields (`field`, `before`,
    /// `after`).
    pub fn fields(&self) -> Vec<Value> {
        let external_id = self.external_id.iter().map(
            |(before, after)| json!({"field": "externalId", "before": before, "after": after}),
        );
        let attributes = self.attributes.iter().map(|(name, before)| {
            let after = &self.attributes_after[name];
            json!({"field": format!("attributes.{name}"), "before": before, "after": after})
        });
        external_id.chain(attributes).collect()
    }

    /// `object`, a member's API object as the directory user reads now, as it read before
    /// the write: its `external_id` and `attributes` as they were.
    pub fn revert(&self, object: &mut Value) {
        if let Some((before, _)) = &self.external_id {
            object["external_id"] = before.clone();
        }
        if let Some(Value::Object(attributes)) = object.get_mut("attributes") {
            for (name, before) in &self.attributes {
                match before {
                    Value::Null => attributes.remove(name),
                    before => attributes.insert(name.clone(), before.clone()),
                };
            }
        }
    }
}

/// After a write of directory user `user_id` and its sync, when the write changed what apps
/// read of the user besides its member ([`DirectoryChange`]) and the sync recorded no
/// `member.updated` that says so (the member changed in nothing the sync compares, or in test
/// mode): the member looks different to apps, or the person does, so a `member.updated` of its
/// own says what it was (`previous.external_id`, `previous.attributes`), and the member's
/// `updated_at` moves. In test mode too: the values are read live, and test mode does not hold
/// them back.
pub(super) fn directory_changed(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    user_id: &str,
    change: DirectoryChange,
) -> Result<(), DbError> {
    if change.is_empty() {
        return Ok(());
    }
    let Some(member) = members::by_user_id(conn, Some(tenant_id), user_id)? else {
        return Ok(());
    };
    members::touch(conn, member.pk)?;
    let after = members::get_by_pk(conn, member.pk)?.ok_or(DbError::NotFound)?;
    let mut object = api_object(conn, tenant_id, &after)?;
    let changes = Value::Array(change.fields());
    change.revert(&mut object);
    let write = MemberWrite {
        before: Some(object),
        after: &after,
        event: EventType::MemberUpdated,
        action: AuditAction::MemberUpdated,
        via: "scim",
        extra: json!({}),
        detail: detail(&json!({"changes": changes})),
    };
    record(conn, actor, tenant_id, write)
}

/// One member write to record: the member before (its API object; `None` for a creation)
/// and after, and how it is named.
pub(super) struct MemberWrite<'a> {
    /// The member as apps saw it before the write.
    pub before: Option<Value>,
    /// The member now; for a deletion, as it was last.
    pub after: &'a MemberRow,
    pub event: EventType,
    pub action: AuditAction,
    /// How the write came about: `scim`, `force_sync`, `settings`, `csv_import`, `admin`.
    pub via: &'static str,
    /// Said in the event's context (why: a cause, a reason).
    pub extra: Value,
    /// The audit entry's detail, as stored ([`detail`]).
    pub detail: Box<RawValue>,
}

/// `value` as an audit entry's detail: its compact JSON text.
pub(super) fn detail(value: &impl Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("a detail of JSON values and strings serialises")
}

/// The event and the audit entry of one member write, in the write's transaction: the
/// event carries the member as apps read it now, the values it had before, and who and
/// what caused it; the audit entry the write's detail.
pub(super) fn record(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    w: MemberWrite,
) -> Result<(), DbError> {
    let mut journal = Journal::new(tenant_id);
    journal.record(conn, actor, w)?;
    journal.finish(conn)
}

/// Where the member writes of one transaction append their events and audit entries: the
/// tenant's event numbers and audit chain, read at the first write and stored by
/// [`Journal::finish`], so that a write of many members (a whole-tenant sync) reads and
/// stores them once.
#[must_use = "the tenant's event counter is stored only by `finish`"]
pub(super) struct Journal {
    tenant_id: i64,
    events: events::Numbering,
    audit: audit::Chain,
}

impl Journal {
    pub fn new(tenant_id: i64) -> Journal {
        Journal {
            tenant_id,
            events: events::Numbering::new(tenant_id),
            audit: audit::Chain::new(Some(tenant_id)),
        }
    }

    /// [`record`]: the event and the audit entry of one member write.
    pub fn record(&mut self, conn: &Conn, actor: &Actor, w: MemberWrite) -> Result<(), DbError> {
        let data = if w.event == EventType::MemberDeleted {
            w.before.clone().unwrap_or(Value::Null)
        } else {
            api_object(conn, self.tenant_id, w.after)?
        };
        self.record_as(conn, actor, w, &data)
    }

    /// [`Journal::record`], with the member's API object after the write (`data`) already built:
    /// a JSON tree, or a [`MemberObject`] that goes into the event without one.
    pub fn record_as(
        &mut self,
        conn: &Conn,
        actor: &Actor,
        w: MemberWrite,
        data: &impl Serialize,
    ) -> Result<(), DbError> {
        let row = w.after;
        let previous = match (&w.before, w.event) {
            (Some(before), e) if e != EventType::MemberDeleted => {
                let after = serde_json::to_value(data).unwrap_or(Value::Null);
                previous_values(before, &after)
            }
            _ => json!({}),
        };
        let mut context = json!({"via": w.via});
        if let (Value::Object(c), Value::Object(extra)) = (&mut context, w.extra) {
            c.extend(extra);
        }
        let payload = EventPayload {
            member: data,
            previous: &previous,
            context: &context,
        };
        self.events
            .append(conn, actor, w.event, &row.id, &payload)?;
        self.audit.append_raw(
            conn,
            &audit::Entry::new(
                actor,
                Some(self.tenant_id),
                w.action,
                Some(format!("member/{}", row.id)),
            ),
            &w.detail,
        )?;
        Ok(())
    }

    /// Stores the tenant's event counter.
    pub fn finish(self, conn: &Conn) -> Result<(), DbError> {
        self.events.finish(conn)
    }
}

/// A member event's payload: the member now, what its changed fields were, and why.
#[derive(Serialize)]
struct EventPayload<'a, M> {
    member: &'a M,
    previous: &'a Value,
    context: &'a Value,
}

// --- Marking a member (not) managed ------------------------------------------------------

/// Marks member `id` managed or not managed by provisioning, like the CSV column
/// "Provisioning Managed": a `member.updated` entry and event. Returns whether anything
/// changed; `NotFound` for a member the tenant does not have.
pub async fn set_managed(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    id: String,
    managed: bool,
) -> Result<bool, DbError> {
    let actor = actor.clone();
    db.write(move |tx| {
        let m = members::get(tx, tenant_id, &id)?.ok_or(DbError::NotFound)?;
        if m.managed == managed {
            return Ok(false);
        }
        let before = api_object(tx, tenant_id, &m)?;
        members::set_managed(tx, m.pk, managed)?;
        // Only managed members stand as seeds for the IdP to find.
        seeds::refresh(tx, tenant_id)?;
        let after = members::get_by_pk(tx, m.pk)?.ok_or(DbError::NotFound)?;
        let changes = json!([{"field": "managed", "before": m.managed, "after": managed}]);
        let write = MemberWrite {
            before: Some(before),
            after: &after,
            event: EventType::MemberUpdated,
            action: AuditAction::MemberUpdated,
            via: "admin",
            extra: json!({}),
            detail: detail(&json!({"changes": changes})),
        };
        record(tx, &actor, tenant_id, write)?;
        Ok(true)
    })
    .await
}

/// Restores member `id`, which the deletion grace period suspended: active again, the
/// deletion cancelled, with everything it had (a `member.reactivated` entry and event).
/// `Conflict` when no deletion is scheduled.
pub async fn restore(db: &Db, actor: &Actor, tenant_id: i64, id: String) -> Result<(), DbError> {
    let actor = actor.clone();
    db.write(move |tx| {
        let m = members::get(tx, tenant_id, &id)?.ok_or(DbError::NotFound)?;
        if m.delete_after.is_none() {
            return Err(DbError::Conflict(
                "this member has no scheduled deletion to cancel".into(),
            ));
        }
        let before = api_object(tx, tenant_id, &m)?;
        members::set_status(tx, m.pk, MemberStatus::Active)?;
        let after = members::get_by_pk(tx, m.pk)?.ok_or(DbError::NotFound)?;
        let write = MemberWrite {
            before: Some(before),
            after: &after,
            event: EventType::MemberReactivated,
            action: AuditAction::MemberReactivated,
            via: "admin",
            extra: json!({"cause": "restored within the deletion grace period"}),
            detail: detail(&json!({"memberId": m.id, "cancelledDeletion": m.delete_after})),
        };
        record(tx, &actor, tenant_id, write)
    })
    .await
}

// --- An admin's own status changes ---------------------------------------------------------

/// What an admin may do to a member that provisioning does not decide for: one not managed,
/// or one the IdP has never provisioned (added by hand or by CSV and not linked yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminStatus {
    /// Active → suspended: apps revoke the person's access, reversibly.
    Suspend,
    /// Suspended or archived → active.
    Reactivate,
    /// Active or suspended → archived: gone, kept for history.
    Archive,
    /// Removed with everything hanging off it (`member.deleted`).
    Delete,
}

impl AdminStatus {
    pub fn parse(s: &str) -> Option<AdminStatus> {
        Some(match s {
            "suspend" => AdminStatus::Suspend,
            "reactivate" => AdminStatus::Reactivate,
            "archive" => AdminStatus::Archive,
            "delete" => AdminStatus::Delete,
            _ => return None,
        })
    }

    /// Whether a member that is `status` now can be taken there.
    pub fn applies_to(self, status: MemberStatus) -> bool {
        match self {
            AdminStatus::Suspend => status == MemberStatus::Active,
            AdminStatus::Reactivate => status != MemberStatus::Active,
            AdminStatus::Archive => status != MemberStatus::Archived,
            AdminStatus::Delete => true,
        }
    }
}

/// Whether provisioning decides `m`'s status: a managed member the IdP has provisioned.
/// An admin changes it in the IdP then, or marks the member not managed first.
pub fn idp_decides(m: &MemberRow) -> bool {
    m.managed && m.user_id.is_some()
}

/// Whether the directory still holds the user `m` is linked to: deleting `m` would then
/// only have sync create a member for it again (unmanaged, `m` kept it from that).
pub fn idp_still_has(conn: &Conn, tenant_id: i64, m: &MemberRow) -> Result<bool, DbError> {
    match m.user_id.as_deref() {
        Some(uid) => Ok(users::get(conn, tenant_id, uid)?.is_some()),
        None => Ok(false),
    }
}

/// An admin suspends, reactivates, archives or deletes member `id` (see [`AdminStatus`]),
/// with its event and audit entry, as sync would. `Conflict` when provisioning decides the
/// member's status or the member is not in a state the change applies to; `NotFound` for
/// a member the tenant does not have.
pub async fn set_status(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    id: String,
    change: AdminStatus,
) -> Result<(), DbError> {
    let actor = actor.clone();
    db.write(move |tx| {
        let m = members::get(tx, tenant_id, &id)?.ok_or(DbError::NotFound)?;
        if idp_decides(&m) {
            return Err(DbError::Conflict(
                "the IdP decides this member's status: deactivate or delete the person in the IdP, or mark the member not managed first".into(),
            ));
        }
        if !change.applies_to(m.status) {
            return Err(DbError::Conflict(format!("the member is already {}", m.status)));
        }
        if change == AdminStatus::Delete && idp_still_has(tx, tenant_id, &m)? {
            return Err(DbError::Conflict(
                "the IdP still provisions this person: a deleted member would be created again by its next change. Archive the member, or remove the person from the IdP's app".into(),
            ));
        }
        let before = api_object(tx, tenant_id, &m)?;
        let (event, action) = match change {
            AdminStatus::Suspend => (EventType::MemberSuspended, AuditAction::MemberSuspended),
            AdminStatus::Reactivate => (EventType::MemberReactivated, AuditAction::MemberReactivated),
            AdminStatus::Archive => (EventType::MemberArchived, AuditAction::MemberArchived),
            AdminStatus::Delete => (EventType::MemberDeleted, AuditAction::MemberDeleted),
        };
        let stored;
        let after = if change == AdminStatus::Delete {
            members::delete(tx, m.pk)?;
            &m
        } else {
            let status = match change {
                AdminStatus::Suspend => MemberStatus::Suspended,
                AdminStatus::Archive => MemberStatus::Archived,
                _ => MemberStatus::Active,
            };
            members::set_status(tx, m.pk, status)?;
            stored = members::get_by_pk(tx, m.pk)?.ok_or(DbError::NotFound)?;
            &stored
        };
        if m.managed {
            // A member the IdP has not provisioned yet stands as a seed for its lookups,
            // active or not; archived or deleted, it no longer does.
            seeds::refresh(tx, tenant_id)?;
        }
        let write = MemberWrite {
            before: Some(before),
            after,
            event,
            action,
            via: "admin",
            extra: json!({"cause": "by an admin"}),
            detail: detail(&json!({"memberId": m.id, "from": m.status, "change": format!("{change:?}").to_lowercase()})),
        };
        record(tx, &actor, tenant_id, write)
    })
    .await
}

// --- CSV import ---------------------------------------------------------------------------

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// One change an import row makes to an existing member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// A profile field, before and after.
    Field(Field, Option<String>, Option<String>),
    Managed(bool, bool),
    Role(Role, Role),
}

impl Planned {
    /// The field's name as the audit log and events spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Planned::Field(f, _, _) => f.as_str(),
            Planned::Managed(..) => "managed",
            Planned::Role(..) => "role",
        }
    }

    /// (before, after) as people read them.
    pub fn values(&self) -> (String, String) {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        match self {
            Planned::Field(_, b, a) => (text(b), text(a)),
            Planned::Managed(b, a) => (b.to_string(), a.to_string()),
            Planned::Role(b, a) => (b.to_string(), a.to_string()),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Planned::Field(field, before, after) => {
                json!({"field": field, "before": before, "after": after})
            }
            Planned::Managed(before, after) => {
                json!({"field": "managed", "before": before, "after": after})
            }
            Planned::Role(before, after) => {
                json!({"field": "role", "before": before, "after": after})
            }
        }
    }
}

/// What importing `row` changes on `existing`: the cells it fills that differ. An empty
/// cell leaves the member's value as it is.
pub fn planned_changes(existing: &MemberRow, row: &ImportRow) -> Vec<Planned> {
    let mut out = Vec::new();
    let fields = [
        (Field::UserName, &existing.profile.user_name, &row.user_name),
        (
            Field::GivenName,
            &existing.profile.given_name,
            &row.given_name,
        ),
        (
            Field::FamilyName,
            &existing.profile.family_name,
            &row.family_name,
        ),
    ];
    for (field, before, after) in fields {
        if after.is_some() && before != after {
            out.push(Planned::Field(field, before.clone(), after.clone()));
        }
    }
    if let Some(managed) = row.managed.filter(|m| *m != existing.managed) {
        out.push(Planned::Managed(existing.managed, managed));
    }
    if let Some(role) = row.role.as_ref().filter(|r| **r != existing.role) {
        out.push(Planned::Role(existing.role.clone(), role.clone()));
    }
    out
}

/// What one import row would do.
#[derive(Debug, Clone)]
pub enum RowOutcome {
    Create,
    Update {
        member: MemberRow,
        changes: Vec<Planned>,
    },
    Unchanged {
        member: MemberRow,
    },
}

/// What an import of `rows` would do, row by row, and whether it would succeed.
#[derive(Debug, Clone)]
pub struct ImportPreview {
    pub rows: Vec<(ImportRow, RowOutcome)>,
    pub summary: ImportSummary,
    /// Why the import would fail (a row colliding with another member), naming the line.
    pub error: Option<String>,
}

/// What each of `rows` would do to the members as they are.
fn row_outcomes(
    conn: &Conn,
    tenant_id: i64,
    rows: &[ImportRow],
) -> Result<Vec<(ImportRow, RowOutcome)>, DbError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let outcome = match members::by_email(conn, tenant_id, &row.email)? {
            None => RowOutcome::Create,
            Some(member) => {
                let changes = planned_changes(&member, row);
                if changes.is_empty() {
                    RowOutcome::Unchanged { member }
                } else {
                    RowOutcome::Update { member, changes }
                }
            }
        };
        out.push((row.clone(), outcome));
    }
    Ok(out)
}

/// A digest of what `outcomes` show each row doing: which member it creates or changes,
/// and every value before and after.
fn fingerprint(outcomes: &[(ImportRow, RowOutcome)]) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for (row, outcome) in outcomes {
        digest.update(row.line.to_le_bytes());
        match outcome {
            RowOutcome::Create => digest.update(b"create"),
            RowOutcome::Unchanged { member } => {
                digest.update(b"unchanged");
                digest.update(member.id.as_bytes());
            }
            RowOutcome::Update { member, changes } => {
                digest.update(b"update");
                digest.update(member.id.as_bytes());
                for change in changes {
                    digest.update(change.to_json().to_string().as_bytes());
                }
            }
        }
        digest.update([0]);
    }
    crate::auth::hex(&digest.finalize()[..16])
}

impl ImportPreview {
    /// What confirming this preview checks the import would still do
    /// ([`import`]'s `previewed`).
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.rows)
    }
}

/// Previews an import without changing anything: each row's outcome, read from the
/// members as they are, then [`import_rows`] itself run inside a savepoint that is rolled
/// back, so a collision only the database sees (a userName another member holds) is
/// reported exactly as the real import would meet it. Needs a write transaction.
fn preview_rows(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    settings: &Settings,
    rows: &[ImportRow],
) -> Result<ImportPreview, DbError> {
    let out = row_outcomes(conn, tenant_id, rows)?;
    conn.execute_batch("SAVEPOINT import_preview")?;
    let dry = import_rows(conn, actor, tenant_id, settings, rows);
    conn.execute_batch("ROLLBACK TO import_preview; RELEASE import_preview")?;
    let (summary, error) = match dry {
        Ok(summary) => (summary, None),
        Err(DbError::Conflict(m)) => (ImportSummary::default(), Some(m)),
        Err(e) => return Err(e),
    };
    Ok(ImportPreview {
        rows: out,
        summary,
        error,
    })
}

/// The explanation of a role an admin set (by CSV or by hand) rather than sync.
pub const CSV_ROLE_REASON: &str = "set by CSV import";

/// Imports validated CSV rows (see `sync::member_csv`): a row whose email (any case) is a
/// member's updates that member with the cells it fills; any other row creates a member
/// (source `csv`, active, managed unless the row says otherwise). Each member created or
/// changed gets an audit entry and an event. Run it in one transaction: a row that
/// collides with another member (`Conflict`, naming the line) leaves nothing imported.
fn import_rows(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    settings: &Settings,
    rows: &[ImportRow],
) -> Result<ImportSummary, DbError> {
    let mut summary = ImportSummary::default();
    let mut journal = Journal::new(tenant_id);
    let at_line = |line: u64| {
        move |e: DbError| match e {
            DbError::Conflict(m) => DbError::Conflict(format!("line {line}: {m}")),
            other => other,
        }
    };
    for row in rows {
        let existing = members::by_email(conn, tenant_id, &row.email)?;
        let before = match &existing {
            Some(m) => Some(api_object(conn, tenant_id, m)?),
            None => None,
        };
        let (row_after, event, action, entry) = match existing {
            None => {
                let (role, role_reason) = given_role(settings, row.role.clone(), CSV_ROLE_REASON);
                let new = NewMember {
                    profile: Profile {
                        email: Some(row.email.clone()),
                        user_name: row.user_name.clone(),
                        given_name: row.given_name.clone(),
                        family_name: row.family_name.clone(),
                        display_name: None,
                    },
                    role,
                    role_reason,
                    status: MemberStatus::Active,
                    managed: row.managed.unwrap_or(true),
                    source: MemberSource::Csv,
                    user_id: None,
                };
                let created = members::insert(conn, tenant_id, &new).map_err(at_line(row.line))?;
                summary.created += 1;
                (
                    created,
                    EventType::MemberCreated,
                    AuditAction::MemberCreated,
                    json!({}),
                )
            }
            Some(existing) => {
                let mut changes = Vec::new();
                for change in planned_changes(&existing, row) {
                    match &change {
                        Planned::Field(field, _, after) => {
                            members::set_field(conn, existing.pk, *field, after.as_deref())
                                .map_err(at_line(row.line))?;
                        }
                        Planned::Managed(_, after) => {
                            members::set_managed(conn, existing.pk, *after)?;
                        }
                        Planned::Role(_, after) => {
                            members::set_role(conn, existing.pk, after, CSV_ROLE_REASON)?;
                        }
                    }
                    changes.push(change.to_json());
                }
                if changes.is_empty() {
                    summary.unchanged += 1;
                    continue;
                }
                summary.updated += 1;
                let after = members::get_by_pk(conn, existing.pk)?.ok_or(DbError::NotFound)?;
                (
                    after,
                    EventType::MemberUpdated,
                    AuditAction::MemberUpdated,
                    json!({"changes": changes}),
                )
            }
        };
        let mut entry = entry;
        entry["line"] = json!(row.line);
        let write = MemberWrite {
            before,
            after: &row_after,
            event,
            action,
            via: "csv_import",
            extra: json!({}),
            detail: detail(&entry),
        };
        journal.record(conn, actor, write)?;
    }
    journal.finish(conn)?;
    audit::append(
        conn,
        &audit::Entry::new(
            actor,
            Some(tenant_id),
            AuditAction::MembersImported,
            Some("members".into()),
        )
        .with_detail(serde_json::to_value(&summary).unwrap_or_default()),
    )?;
    // Imported members the IdP does not have yet become findable by its lookups: once,
    // after every row, whatever the rows changed.
    seeds::refresh(conn, tenant_id)?;
    Ok(summary)
}

/// The role a new member is given: `role` for `reason`, else the tenant's default.
fn given_role(settings: &Settings, role: Option<Role>, reason: &str) -> (Role, String) {
    match role {
        Some(role) => (role, reason.to_string()),
        None => {
            let role = settings.default_role.clone();
            let reason = RoleDecision {
                role: role.clone(),
                reason: RoleReason::Default,
            };
            (role, reason.to_string())
        }
    }
}

// --- Adding a person by hand ----------------------------------------------------------

/// The role reason of a member an admin added with a role.
pub const ADMIN_ROLE_REASON: &str = "set by an admin";

/// A person an admin adds by hand (the admin UI's "Add a person").
#[derive(Debug, Clone, Default)]
pub struct NewPerson {
    pub email: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// `None`: the tenant's default role.
    pub role: Option<String>,
    /// Whether provisioning manages the member: the IdP's user with the same email links
    /// to it and its values win.
    pub managed: bool,
}

/// Adds a member by hand (source `manual`), with its audit entry and `member.created`
/// (`via: admin`) in one transaction; like an imported member, the IdP's lookups find it,
/// so the IdP can adopt it. `Err` with what to fix when the email is not one, the role is
/// not one of the tenant's, or a member has the email or userName already.
pub async fn add(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    person: NewPerson,
) -> Result<Result<MemberRow, String>, DbError> {
    let email = person.email.trim().to_string();
    if !crate::model::looks_like_email(&email) {
        return Ok(Err(format!("{email:?} is not an email address.")));
    }
    for (field, value) in [
        ("The given name", &person.given_name),
        ("The family name", &person.family_name),
    ] {
        if let Some(problem) = value
            .as_deref()
            .and_then(|v| crate::model::person_name_problem(field, v))
        {
            return Ok(Err(format!("{problem}.")));
        }
    }
    let actor = actor.clone();
    db.write(move |tx| {
        let settings = settings::get(tx, tenant_id)?;
        let role = match person.role.as_deref().map(|r| settings.role_named(r)) {
            None => None,
            Some(Err(e)) => return Ok(Err(format!("{e}."))),
            Some(Ok(r)) => Some(r),
        };
        if let Some(m) = members::by_email(tx, tenant_id, &email)? {
            return Ok(Err(format!(
                "{} is already a member ({}).",
                m.profile.email.unwrap_or(email),
                m.status
            )));
        }
        let (role, role_reason) = given_role(&settings, role, ADMIN_ROLE_REASON);
        let new = NewMember {
            profile: Profile {
                email: Some(email),
                user_name: None,
                given_name: person.given_name.filter(|s| !s.trim().is_empty()),
                family_name: person.family_name.filter(|s| !s.trim().is_empty()),
                display_name: None,
            },
            role,
            role_reason,
            status: MemberStatus::Active,
            managed: person.managed,
            source: MemberSource::Manual,
            user_id: None,
        };
        let created = match members::insert(tx, tenant_id, &new) {
            Ok(m) => m,
            Err(DbError::Conflict(m)) => return Ok(Err(m)),
            Err(e) => return Err(e),
        };
        let write = MemberWrite {
            before: None,
            after: &created,
            event: EventType::MemberCreated,
            action: AuditAction::MemberCreated,
            via: "admin",
            extra: json!({}),
            detail: detail(
                &json!({"added": "by hand", "role": created.role, "managed": created.managed}),
            ),
        };
        record(tx, &actor, tenant_id, write)?;
        seeds::refresh(tx, tenant_id)?;
        Ok(Ok(created))
    })
    .await
}

/// Why a CSV cannot be imported.
#[derive(Debug, Clone)]
pub enum ImportProblem {
    /// Invalid rows, each with its line; nothing was kept.
    Rows(Vec<RowError>),
    /// A row the database refuses (a value another member holds), naming its line.
    Conflict(String),
    /// The members changed since the preview the import was confirmed from (another
    /// admin, the IdP): what the import would do now.
    Changed(Box<ImportPreview>),
}

/// What `scimd members import` and the admin UI's preview show before importing `csv`:
/// each row's outcome and the counts, or why it cannot be imported. Changes nothing.
pub async fn preview_import(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    csv: Vec<u8>,
) -> Result<Result<ImportPreview, ImportProblem>, DbError> {
    let actor = actor.clone();
    db.write(move |tx| {
        let settings = settings::get(tx, tenant_id)?;
        let rows = match member_csv::parse(&csv, &settings) {
            Ok(rows) => rows,
            Err(errors) => return Ok(Err(ImportProblem::Rows(errors))),
        };
        let preview = preview_rows(tx, &actor, tenant_id, &settings, &rows)?;
        Ok(match preview.error.clone() {
            Some(e) => Err(ImportProblem::Conflict(e)),
            None => Ok(preview),
        })
    })
    .await
}

/// Imports `csv`, parsed and validated against the tenant's settings as they are now, in
/// one transaction with its audit entries and events: every row or none. Returns the
/// number of rows and what they did. With `previewed` (the [`ImportPreview::fingerprint`]
/// of the preview an admin confirmed), nothing is imported unless it would still do what
/// that preview showed: a value changed meanwhile is not overwritten unseen.
pub async fn import(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    csv: Vec<u8>,
    previewed: Option<String>,
) -> Result<Result<(usize, ImportSummary), ImportProblem>, DbError> {
    let actor = actor.clone();
    let imported = db
        .write(move |tx| {
            let settings = settings::get(tx, tenant_id)?;
            let rows = match member_csv::parse(&csv, &settings) {
                Ok(rows) => rows,
                Err(errors) => return Ok(Err(ImportProblem::Rows(errors))),
            };
            if let Some(previewed) = previewed
                && fingerprint(&row_outcomes(tx, tenant_id, &rows)?) != previewed
            {
                let now = preview_rows(tx, &actor, tenant_id, &settings, &rows)?;
                return Ok(Err(match now.error {
                    Some(e) => ImportProblem::Conflict(e),
                    None => ImportProblem::Changed(Box::new(now)),
                }));
            }
            // A conflict is an error here, so that the transaction is rolled back with the
            // rows imported before it (and their events, whose numbers would be taken again).
            let summary = import_rows(tx, &actor, tenant_id, &settings, &rows)?;
            Ok(Ok((rows.len(), summary)))
        })
        .await;
    match imported {
        Err(DbError::Conflict(m)) => Ok(Err(ImportProblem::Conflict(m))),
        other => other,
    }
}

// --- Export ------------------------------------------------------------------------------

/// The two export formats of `scimd members export` and the admin UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// The import format (see `sync::member_csv`), so an export can be edited and imported.
    Csv,
    /// Every attribute, including status, source and the role's explanation: a pretty
    /// JSON array.
    Json,
}

/// Every member of the tenant in `format`, exactly as `scimd members export` prints it.
pub async fn export(db: &Db, tenant_id: i64, format: ExportFormat) -> Result<String, DbError> {
    db.read(move |c| export_in(c, tenant_id, format)).await
}

fn export_in(conn: &Conn, tenant_id: i64, format: ExportFormat) -> Result<String, DbError> {
    let mut out = String::new();
    match format {
        ExportFormat::Csv => {
            out.push_str(&member_csv::export([]));
            members::for_each_chunk(conn, tenant_id, |chunk| {
                out.push_str(&member_csv::export_rows(
                    chunk
                        .iter()
                        .map(|m| (&m.profile, &m.role, m.managed, m.status)),
                ));
                Ok(())
            })?;
        }
        ExportFormat::Json => {
            // What `serde_json::to_string_pretty` makes of the whole list, built a chunk
            // at a time: each element pretty-printed and indented one level.
            out.push('[');
            let mut empty = true;
            members::for_each_chunk(conn, tenant_id, |chunk| {
                for m in chunk {
                    out.push_str(if empty { "\n" } else { ",\n" });
                    empty = false;
                    let item = serde_json::to_string_pretty(m)
                        .map_err(|e| DbError::Schema(format!("member JSON: {e}")))?;
                    for (i, line) in item.lines().enumerate() {
                        if i > 0 {
                            out.push('\n');
                        }
                        out.push_str("  ");
                        out.push_str(line);
                    }
                }
                Ok(())
            })?;
            out.push_str(if empty { "]\n" } else { "\n]\n" });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
