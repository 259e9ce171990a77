//! Directory groups and their memberships.
//!
//! Members are rows in `group_members`, one per membership, so adding or removing one member
//! touches one row whatever the size of the group, and reading a group without its members
//! never touches them at all.

use std::collections::{HashMap, HashSet};

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde_json::{Map, Value};

use super::assign::Assignments;
use super::paging::{Conditions, Cursor, Direction, Keyset};
use super::{DbError, HasPk, ListQuery, Page};
use crate::model::DirectoryGroup;
use crate::scim::datetime;
use crate::scim::filter::fold;

/// A stored group, without its members.
#[derive(Debug, Clone)]
pub struct GroupRow {
    pub pk: i64,
    pub id: String,
    pub data: Map<String, Value>,
    pub created: String,
    pub last_modified: String,
    pub version: i64,
}

impl HasPk for GroupRow {
    fn pk(&self) -> i64 {
        self.pk
    }
}

pub use crate::scim::patch::{MemberKind, MemberValue};

/// A member resolved to its row.
#[derive(Debug, Clone)]
pub struct ResolvedMember {
    pub kind: MemberKind,
    pub pk: i64,
    pub display: Option<String>,
}

/// A member as rendered.
#[derive(Debug, Clone)]
pub struct GroupMember {
    pub value: String,
    pub kind: MemberKind,
    /// What the IdP sent, else the member's own display name.
    pub display: Option<String>,
}

const COLUMNS: &str = "g.pk, g.id, g.data, g.created, g.last_modified, g.version";

fn from_row(r: &Row) -> rusqlite::Result<GroupRow> {
    Ok(GroupRow {
        pk: r.get(0)?,
        id: r.get(1)?,
        data: super::json_column(r, 2)?,
        created: r.get(3)?,
        last_modified: r.get(4)?,
        version: r.get(5)?,
    })
}

pub fn get(conn: &Connection, tenant_id: i64, id: &str) -> Result<Option<GroupRow>, DbError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM groups g WHERE g.tenant_id = ?1 AND g.id = ?2"
        ))?
        .query_row(params![tenant_id, id], from_row)
        .optional()?)
}

fn display_name(data: &Map<String, Value>) -> &str {
    data.get("displayName")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The id of another group of the tenant whose displayName folds like `name`.
pub fn named(
    conn: &Connection,
    tenant_id: i64,
    name: &str,
    except_pk: i64,
) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM groups WHERE tenant_id = ?1 AND display_name_fold = ?2 AND pk <> ?3
             ORDER BY pk LIMIT 1",
        )?
        .query_row(params![tenant_id, fold(name), except_pk], |r| r.get(0))
        .optional()?)
}

fn row_tenant(conn: &Connection, pk: i64) -> Result<i64, DbError> {
    Ok(conn
        .prepare_cached("SELECT tenant_id FROM groups WHERE pk = ?1")?
        .query_row([pk], |r| r.get(0))?)
}

fn name_conflict(name: &str, id: Option<&str>) -> DbError {
    DbError::Conflict(match id {
        Some(id) => format!("a group with displayName \"{name}\" already exists (id {id})"),
        None => format!("a group with displayName \"{name}\" already exists"),
    })
}

/// A UNIQUE failure of the name index as the same `Conflict` (the check before the write
/// answers first; this keeps a racing writer of another process precise too).
fn name_violation(name: &str) -> impl Fn(rusqlite::Error) -> DbError + '_ {
    move |e| {
        if super::is_unique_violation(&e) {
            name_conflict(name, None)
        } else {
            e.into()
        }
    }
}

/// Groups that share a displayName (case-insensitively) with another group of their
/// tenant: stored before names were unique (migration 0010), kept rather than merged.
#[derive(Debug, Clone, PartialEq)]
pub struct NameClash {
    pub tenant_id: i64,
    /// The name as the first group of it spells it.
    pub name: String,
    /// The ids of the groups with that name, oldest first.
    pub ids: Vec<String>,
}

/// Every name that more than one group of a tenant carries (`tenant` alone, if given).
pub fn name_clashes(conn: &Connection, tenant: Option<i64>) -> Result<Vec<NameClash>, DbError> {
    // The marked names first (one pass over the name index), then each one's groups by a
    // seek: asking every group "is your name marked?" cost a search per group, a second per
    // hit, and a second on every admin Groups page load at thousands of groups.
    let mut stmt = conn.prepare(
        "WITH marked AS (
             SELECT DISTINCT tenant_id, display_name_fold FROM groups
             WHERE name_clash <> 0 AND (?1 IS NULL OR tenant_id = ?1))
         SELECT g.tenant_id, g.display_name_fold, g.display_name, g.id
         FROM marked m JOIN groups g
           ON g.tenant_id = m.tenant_id AND g.display_name_fold = m.display_name_fold
         ORDER BY g.tenant_id, g.display_name_fold, g.pk",
    )?;
    let mut out: Vec<NameClash> = Vec::new();
    let mut last_fold = None;
    let mut rows = stmt.query([tenant])?;
    while let Some(r) = rows.next()? {
        let (tenant_id, folded): (i64, String) = (r.get(0)?, r.get(1)?);
        let key = Some((tenant_id, folded));
        if key != last_fold {
            out.push(NameClash {
                tenant_id,
                name: r.get(2)?,
                ids: Vec::new(),
            });
            last_fold = key;
        }
        out.last_mut().expect("pushed").ids.push(r.get(3)?);
    }
    // A marked group whose namesakes were all renamed or deleted clashes no more.
    out.retain(|clash| clash.ids.len() > 1);
    Ok(out)
}

/// Inserts a new group with a fresh `id`; `Conflict` if another group of the tenant has
/// its displayName, compared case-insensitively.
pub fn create(
    conn: &Connection,
    tenant_id: i64,
    data: &Map<String, Value>,
) -> Result<GroupRow, DbError> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = datetime::now();
    let name = display_name(data);
    if let Some(other) = named(conn, tenant_id, name, 0)? {
        return Err(name_conflict(name, Some(&other)));
    }
    conn.prepare_cached(
        "INSERT OR FAIL INTO groups (tenant_id, id, display_name, display_name_fold, external_id, data, created, last_modified, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1)",
    )?
    .execute(
        params![
            tenant_id,
            id,
            name,
            fold(name),
            data.get("externalId").and_then(Value::as_str),
            super::data_text(data),
            now
        ],
    )
    .map_err(name_violation(name))?;
    Ok(GroupRow {
        pk: conn.last_insert_rowid(),
        id,
        data: data.clone(),
        created: now.clone(),
        last_modified: now,
        version: 1,
    })
}

/// Stores `data` as the new state of `row` and bumps its version; `Conflict` if it renames
/// the group onto another group's displayName (case-insensitively). A write that keeps the
/// name (in any case) never conflicts, so a duplicate stored before names were unique
/// stays writable (memberships, Okta's rename PATCH with the same name) until it is renamed.
pub fn update(
    conn: &Connection,
    row: &GroupRow,
    data: Map<String, Value>,
) -> Result<GroupRow, DbError> {
    let now = datetime::now();
    let name = display_name(&data);
    let renamed = fold(name) != fold(display_name(&row.data));
    if renamed && let Some(other) = named(conn, row_tenant(conn, row.pk)?, name, row.pk)? {
        return Err(name_conflict(name, Some(&other)));
    }
    if name != display_name(&row.data) {
        // Every member user lists this group by name, and a group holding this one without
        // a display the IdP sent shows it by name: their ETags must move.
        super::users::regrouped_members(conn, row.pk)?;
        conn.prepare_cached(
            "UPDATE OR FAIL groups SET version = version + 1, last_modified = ?2
             WHERE pk IN (SELECT group_pk FROM group_members
                          WHERE member_group_pk = ?1 AND display IS NULL)",
        )?
        .execute(params![row.pk, datetime::now()])?;
    }
    let external_id = data.get("externalId").and_then(Value::as_str);
    let external_id_changed = external_id != row.data.get("externalId").and_then(Value::as_str);
    // A new name is an ordinary one (name_clash 0), held to the unique index like any.
    Assignments::new()
        .set("display_name", name.to_string())
        .set_if(renamed, "display_name_fold", fold(name))
        .set_if(renamed, "name_clash", 0)
        .set_if(
            external_id_changed,
            "external_id",
            external_id.map(str::to_string),
        )
        .set("data", super::data_text(&data))
        .set("last_modified", now.clone())
        .set("version", row.version + 1)
        .update(conn, "groups", row.pk)
        .map_err(name_violation(name))?;
    Ok(GroupRow {
        pk: row.pk,
        id: row.id.clone(),
        data,
        created: row.created.clone(),
        last_modified: now,
        version: row.version + 1,
    })
}

/// Deletes group `id` (its memberships go with it; the member users stay).
pub fn delete(conn: &Connection, tenant_id: i64, id: &str) -> Result<(), DbError> {
    let pk: i64 = conn
        .prepare_cached("SELECT pk FROM groups WHERE tenant_id = ?1 AND id = ?2")?
        .query_row(params![tenant_id, id], |r| r.get(0))
        .optional()?
        .ok_or(DbError::NotFound)?;
    // Its member users lose it from their `groups`, the groups holding it lose a member:
    // their ETags must move.
    super::users::regrouped_members(conn, pk)?;
    conn.prepare_cached(
        "UPDATE OR FAIL groups SET version = version + 1, last_modified = ?2
         WHERE pk IN (SELECT group_pk FROM group_members WHERE member_group_pk = ?1)",
    )?
    .execute(params![pk, datetime::now()])?;
    conn.prepare_cached("DELETE FROM groups WHERE pk = ?1")?
        .execute([pk])?;
    Ok(())
}

pub fn list(conn: &Connection, tenant_id: i64, q: &ListQuery) -> Result<Page<GroupRow>, DbError> {
    Ok(list_resuming(conn, tenant_id, q, None)?.0)
}

/// [`list`], starting from `resume` when it still holds, and giving the positions it
/// learned (where the next `startIndex` page starts, and the marks of its step) (see [`super::paging::scim_page`]).
pub fn list_resuming(
    conn: &Connection,
    tenant_id: i64,
    q: &ListQuery,
    resume: Option<super::paging::Resume>,
) -> Result<(Page<GroupRow>, Vec<super::paging::Resume>), DbError> {
    super::paging::scim_page(
        conn,
        tenant_id,
        q,
        super::paging::Listed::Groups,
        COLUMNS,
        from_row,
        resume,
    )
}

/// Whether group `inner_pk` is a member of group `outer_pk`, directly or through groups
/// nested in it. Walks the group members of the groups on the way only (an index of its
/// own), never their user members.
pub fn contains_group(conn: &Connection, outer_pk: i64, inner_pk: i64) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "WITH RECURSIVE inside(pk) AS (
                 SELECT member_group_pk FROM group_members
                  WHERE group_pk = ?1 AND member_group_pk IS NOT NULL
                 UNION
                 SELECT m.member_group_pk FROM group_members m JOIN inside ON m.group_pk = inside.pk
                  WHERE m.member_group_pk IS NOT NULL)
             SELECT EXISTS (SELECT 1 FROM inside WHERE pk = ?2)",
        )?
        .query_row([outer_pk, inner_pk], |r| r.get(0))?)
}

/// Resolves members to rows of this tenant. Returns the resolved members and the values
/// that name nothing in the tenant. `type` only says where to look first: a member sent as
/// a `User` (the default) whose id is a group's is that group, and one sent as a `Group`
/// whose id is a user's is that user, since ids are unique across both.
pub fn resolve_members(
    conn: &Connection,
    tenant_id: i64,
    members: &[MemberValue],
) -> Result<(Vec<ResolvedMember>, Vec<String>), DbError> {
    let mut users = conn.prepare_cached("SELECT pk FROM users WHERE tenant_id = ?1 AND id = ?2")?;
    let mut groups =
        conn.prepare_cached("SELECT pk FROM groups WHERE tenant_id = ?1 AND id = ?2")?;
    let mut resolved = Vec::with_capacity(members.len());
    let mut unknown = Vec::new();
    for m in members {
        let find = |stmt: &mut rusqlite::CachedStatement| -> Result<Option<i64>, DbError> {
            Ok(stmt
                .query_row(params![tenant_id, m.value], |r| r.get(0))
                .optional()?)
        };
        let hit = match m.kind {
            MemberKind::User => match find(&mut users)? {
                Some(pk) => Some((MemberKind::User, pk)),
                None => find(&mut groups)?.map(|pk| (MemberKind::Group, pk)),
            },
            MemberKind::Group => match find(&mut groups)? {
                Some(pk) => Some((MemberKind::Group, pk)),
                None => find(&mut users)?.map(|pk| (MemberKind::User, pk)),
            },
        };
        match hit {
            Some((kind, pk)) => resolved.push(ResolvedMember {
                kind,
                pk,
                display: m.display.clone(),
            }),
            None => unknown.push(m.value.clone()),
        }
    }
    Ok((resolved, unknown))
}

/// Adds members, ignoring ones already present (keeping their stored display).
/// Returns the members that were not there before.
///
/// Written [`BATCH`] members to a statement: inside a request's savepoint each statement
/// that ends truncates SQLite's in-memory sub-journal, a walk over everything the request
/// has written so far, so one statement per member made adding 50 000 members to a group
/// take minutes (quadratic) where batches take a second.
pub fn add_members(
    conn: &Connection,
    group_pk: i64,
    members: &[ResolvedMember],
) -> Result<Vec<ResolvedMember>, DbError> {
    let mut added = Vec::new();
    if members.len() <= FEW {
        // The usual write (one member joins): plain statements, cheaper than a batch's
        // JSON and RETURNING.
        let mut stmt = conn.prepare_cached(
            "INSERT OR IGNORE INTO group_members (group_pk, member_user_pk, member_group_pk, display)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for m in members {
            let (user, group) = match m.kind {
                MemberKind::User => (Some(m.pk), None),
                MemberKind::Group => (None, Some(m.pk)),
            };
            if stmt.execute(params![group_pk, user, group, m.display])? > 0 {
                added.push(m.clone());
            }
        }
        regrouped(conn, &added)?;
        return Ok(added);
    }
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO group_members (group_pk, member_user_pk, member_group_pk, display)
         SELECT ?1, json_extract(value, '$[0]'), json_extract(value, '$[1]'),
                json_extract(value, '$[2]')
           FROM json_each(?2)
         RETURNING member_user_pk, member_group_pk",
    )?;
    for batch in members.chunks(BATCH) {
        let rows: Vec<Value> = batch
            .iter()
            .map(|m| match m.kind {
                MemberKind::User => serde_json::json!([m.pk, null, m.display]),
                MemberKind::Group => serde_json::json!([null, m.pk, m.display]),
            })
            .collect();
        let mut inserted: HashSet<Removed> = stmt
            .query_map(
                params![group_pk, Value::Array(rows).to_string()],
                removed_row,
            )?
            .collect::<Result<_, _>>()?;
        // In the order asked, each once (a member sent twice was inserted once).
        added.extend(
            batch
                .iter()
                .filter(|m| inserted.remove(&(m.kind, m.pk)))
                .cloned(),
        );
    }
    regrouped(conn, &added)?;
    Ok(added)
}

/// Moves the versions of the users among `members` (`users::regrouped_all`).
fn regrouped(conn: &Connection, members: &[ResolvedMember]) -> Result<(), DbError> {
    let users: Vec<i64> = members
        .iter()
        .filter(|m| m.kind == MemberKind::User)
        .map(|m| m.pk)
        .collect();
    super::users::regrouped_all(conn, &users)
}

/// How many rows one statement writes when a request writes many (see [`add_members`]).
pub(super) const BATCH: usize = 500;
/// Up to how many rows a write goes row by row, each statement cheaper than a batch's.
pub(super) const FEW: usize = 16;

/// A membership that was removed: the member's kind and row.
pub type Removed = (MemberKind, i64);

fn removed_row(r: &Row) -> rusqlite::Result<Removed> {
    let user: Option<i64> = r.get(0)?;
    let group: Option<i64> = r.get(1)?;
    Ok(match (user, group) {
        (Some(pk), _) => (MemberKind::User, pk),
        (None, pk) => (MemberKind::Group, pk.unwrap_or_default()),
    })
}

/// Removes the members whose SCIM ids are `values`; absent ones are ignored. One indexed
/// lookup per value: the rest of the group is never read. The rows are then deleted by key
/// in batches, like [`add_members`] writes them, not `DELETE … RETURNING`: SQLite gathers
/// returned rows in a temporary b-tree, which cost more than the delete.
pub fn remove_members(
    conn: &Connection,
    group_pk: i64,
    values: &[String],
) -> Result<Vec<Removed>, DbError> {
    let kinds = [
        (MemberKind::User, "SELECT pk FROM users WHERE id = ?1"),
        (MemberKind::Group, "SELECT pk FROM groups WHERE id = ?1"),
    ];
    let mut removed = Vec::new();
    let mut seen = HashSet::new();
    for v in values {
        for (kind, find) in kinds {
            let pk: Option<i64> = conn
                .prepare_cached(find)?
                .query_row([v], |r| r.get(0))
                .optional()?;
            let Some(pk) = pk else { continue };
            if values.len() <= FEW {
                // The usual write (one member leaves): deleted at once, by key.
                let delete = member_statement(kind, "DELETE FROM group_members", "= ?2");
                let deleted = conn
                    .prepare_cached(&delete)?
                    .execute(params![group_pk, pk])?;
                if deleted > 0 {
                    removed.push((kind, pk));
                }
                continue;
            }
            let member: Option<i64> = conn
                .prepare_cached(&member_statement(
                    kind,
                    "SELECT 1 FROM group_members",
                    "= ?2",
                ))?
                .query_row(params![group_pk, pk], |r| r.get(0))
                .optional()?;
            if member.is_some() && seen.insert((kind, pk)) {
                removed.push((kind, pk));
            }
        }
    }
    if values.len() <= FEW {
        super::users::regrouped_all(conn, &pks_of(&removed, MemberKind::User))?;
    } else {
        delete_members(conn, group_pk, &removed)?;
    }
    Ok(removed)
}

/// Deletes the memberships `removed` of the group, [`BATCH`] to a statement, and moves the
/// version of the users among them.
fn delete_members(conn: &Connection, group_pk: i64, removed: &[Removed]) -> Result<(), DbError> {
    for kind in [MemberKind::User, MemberKind::Group] {
        let pks = pks_of(removed, kind);
        if pks.len() <= FEW {
            let mut delete =
                conn.prepare_cached(&member_statement(kind, "DELETE FROM group_members", "= ?2"))?;
            for pk in &pks {
                delete.execute(params![group_pk, pk])?;
            }
        } else {
            let mut delete = conn.prepare_cached(&member_statement(
                kind,
                "DELETE FROM group_members",
                "IN (SELECT value FROM json_each(?2))",
            ))?;
            for batch in pks.chunks(BATCH) {
                delete.execute(params![group_pk, Value::from(batch.to_vec()).to_string()])?;
            }
        }
        if kind == MemberKind::User {
            super::users::regrouped_all(conn, &pks)?;
        }
    }
    Ok(())
}

/// The rows of the members of `kind` among `removed`.
fn pks_of(removed: &[Removed], kind: MemberKind) -> Vec<i64> {
    removed
        .iter()
        .filter(|(k, _)| *k == kind)
        .map(|(_, pk)| *pk)
        .collect()
}

/// Makes the group's members exactly `members` (a PUT, or PATCH's `replace` of `members`):
/// removes those not among them, adds the new ones, and gives a kept member the display it
/// is sent with when that differs from the one it is shown with. Members on both sides are
/// left as they are, so a PUT of a whole membership writes what changed, not the group
/// (Okta's AIW apps PUT the whole list on every push).
/// Returns who was removed, who was added, and whether a kept member's display changed.
pub fn set_members(
    conn: &Connection,
    group_pk: i64,
    members: &[ResolvedMember],
) -> Result<(Vec<Removed>, Vec<ResolvedMember>, bool), DbError> {
    // Each member with the display it is shown with (its own name unless the IdP sent one).
    let mut current: HashMap<Removed, Option<String>> = conn
        .prepare_cached(
            "SELECT gm.member_user_pk, gm.member_group_pk,
                    coalesce(gm.display, u.display_name, u.user_name, g.display_name)
               FROM group_members gm
               LEFT JOIN users u ON u.pk = gm.member_user_pk
               LEFT JOIN groups g ON g.pk = gm.member_group_pk
              WHERE gm.group_pk = ?1",
        )?
        .query_map([group_pk], |r| Ok((removed_row(r)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut new = Vec::new();
    let mut asked = HashSet::new();
    let mut redisplayed = false;
    for m in members {
        let key = (m.kind, m.pk);
        if !asked.insert(key) {
            continue;
        }
        match current.remove(&key) {
            None => new.push(m.clone()),
            // A display sent (Okta sends null) that differs from the one shown.
            Some(shown) if m.display.is_some() && shown != m.display => {
                conn.prepare_cached(&member_statement(
                    m.kind,
                    "UPDATE OR FAIL group_members SET display = ?3",
                    "= ?2",
                ))?
                .execute(params![group_pk, m.pk, m.display])?;
                redisplayed = true;
            }
            Some(_) => {}
        }
    }
    let mut removed: Vec<Removed> = current.into_keys().collect();
    removed.sort_unstable();
    delete_members(conn, group_pk, &removed)?;
    let added = add_members(conn, group_pk, &new)?;
    Ok((removed, added, redisplayed))
}

/// `head` restricted to the group `?1`'s members of `kind` whose row `which` picks.
fn member_statement(kind: MemberKind, head: &str, which: &str) -> String {
    let column = match kind {
        MemberKind::User => "member_user_pk",
        MemberKind::Group => "member_group_pk",
    };
    format!("{head} WHERE group_pk = ?1 AND {column} {which}")
}

/// Removes every member, returning who was removed.
pub fn clear_members(conn: &Connection, group_pk: i64) -> Result<Vec<Removed>, DbError> {
    super::users::regrouped_members(conn, group_pk)?;
    let mut stmt = conn.prepare_cached(
        "DELETE FROM group_members WHERE group_pk = ?1 RETURNING member_user_pk, member_group_pk",
    )?;
    let rows = stmt
        .query_map([group_pk], removed_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// `IS NOT NULL` lets each half walk its partial membership index and nothing else.
/// Every member of the group, in insertion order. Reads the whole member list (walking
/// `group_members_in_order` in rowid order, so without a sort): callers that only need to
/// know whether it is small ask [`count_members`] first.
pub fn members(conn: &Connection, group_pk: i64) -> Result<Vec<GroupMember>, DbError> {
    let mut stmt = conn.prepare_cached(MEMBERS_IN_ORDER)?;
    let rows = stmt
        .query_map([group_pk], member_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The members of a group in insertion order, walking `group_members_in_order` in rowid
/// order (no sort).
const MEMBERS_IN_ORDER: &str = "SELECT coalesce(u.id, g.id),
        CASE WHEN gm.member_user_pk IS NULL THEN 'Group' ELSE 'User' END,
        coalesce(gm.display, u.display_name, u.user_name, g.display_name)
   FROM group_members gm INDEXED BY group_members_in_order
   LEFT JOIN users u ON u.pk = gm.member_user_pk
   LEFT JOIN groups g ON g.pk = gm.member_group_pk
  WHERE gm.group_pk = ?1
  ORDER BY gm.rowid";

fn member_from_row(r: &Row) -> rusqlite::Result<GroupMember> {
    let kind = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
    Ok(GroupMember {
        value: r.get(0)?,
        kind: if kind == "Group" {
            MemberKind::Group
        } else {
            MemberKind::User
        },
        display: r.get(2)?,
    })
}

/// [`members`] handed to `each` in chunks of `chunk` members, so that a caller streaming a
/// huge group holds one chunk at a time. A chunk shorter than `chunk` (possibly empty) is the
/// last; `each` returns false to stop early (the reader went away).
pub fn members_chunked(
    conn: &Connection,
    group_pk: i64,
    chunk: usize,
    mut each: impl FnMut(Vec<GroupMember>) -> bool,
) -> Result<(), DbError> {
    let chunk = chunk.max(1);
    let mut stmt = conn.prepare_cached(MEMBERS_IN_ORDER)?;
    let mut rows = stmt.query([group_pk])?;
    let mut batch = Vec::with_capacity(chunk);
    while let Some(r) = rows.next()? {
        batch.push(member_from_row(r)?);
        if batch.len() == chunk && !each(std::mem::replace(&mut batch, Vec::with_capacity(chunk))) {
            return Ok(());
        }
    }
    each(batch);
    Ok(())
}

/// A group as the admin UI lists it.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub pk: i64,
    pub id: String,
    pub display_name: String,
    /// Direct members, users and nested groups, counted from the membership index.
    pub members: i64,
    pub last_modified: String,
    pub external_id: Option<String>,
}

/// The SQL and parameters of one page of groups by name (`limit + 1` rows).
fn page_query(
    tenant_id: i64,
    search: Option<&str>,
    cursor: Cursor,
    limit: usize,
) -> (String, Vec<SqlValue>) {
    let mut cond = "g.tenant_id = ?1".to_string();
    let mut params = vec![SqlValue::Integer(tenant_id)];
    if let Some(term) = search.map(str::trim).filter(|t| !t.is_empty()) {
        params.push(SqlValue::Text(fold(term)));
        cond.push_str(&format!(
            " AND instr(g.display_name_fold, ?{}) > 0",
            params.len()
        ));
    }
    // Keyset on (name, pk): the cursor names a group, whose position the subquery reads.
    let (op, order) = match cursor {
        Cursor::First => ("", "ASC"),
        Cursor::After(_) => (">", "ASC"),
        Cursor::Before(_) => ("<", "DESC"),
    };
    if let Cursor::After(pk) | Cursor::Before(pk) = cursor {
        params.push(SqlValue::Integer(pk));
        cond.push_str(&format!(
            " AND (g.display_name_fold, g.pk) {op} (SELECT display_name_fold, pk FROM groups WHERE pk = ?{})",
            params.len()
        ));
    }
    params.push(SqlValue::Integer(limit as i64 + 1));
    let sql = format!(
        "SELECT g.pk, g.id, g.display_name, g.last_modified,
                g.member_count, g.external_id
         FROM groups g WHERE {cond}
         ORDER BY g.display_name_fold {order}, g.pk {order} LIMIT ?{}",
        params.len()
    );
    (sql, params)
}

/// One page of the tenant's groups, by name, with their member counts; `search` is a
/// piece of the name in any case.
pub fn page(
    conn: &Connection,
    tenant_id: i64,
    search: Option<&str>,
    cursor: Cursor,
    limit: usize,
) -> Result<Keyset<GroupSummary>, DbError> {
    let (sql, params) = page_query(tenant_id, search, cursor, limit);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(params), |r| {
            Ok(GroupSummary {
                pk: r.get(0)?,
                id: r.get(1)?,
                display_name: r.get(2)?,
                last_modified: r.get(3)?,
                members: r.get(4)?,
                external_id: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Keyset::from_rows(rows, cursor, limit, |g| g.pk))
}

/// How many direct members (users and groups) the group has: its count, which triggers
/// keep as memberships come and go (migration 0030), so asking it of a 100 000-member group
/// costs what asking it of a 10-member group does.
pub fn count_members(conn: &Connection, group_pk: i64) -> Result<i64, DbError> {
    Ok(conn
        .prepare_cached("SELECT member_count FROM groups WHERE pk = ?1")?
        .query_row([group_pk], |r| r.get(0))?)
}

/// One member of a group as the admin UI shows it.
#[derive(Debug, Clone)]
pub struct GroupMemberRow {
    /// The membership's row id: the page cursor.
    pub key: i64,
    pub kind: MemberKind,
    /// SCIM id of the user or nested group.
    pub id: String,
    pub display: String,
    pub user_name: Option<String>,
    /// The member (people layer) linked to this user, if any: id, role, status.
    pub member: Option<(String, String, String)>,
}

fn member_page_query(cursor: Cursor) -> String {
    let (cond, order) = match cursor {
        Cursor::First => ("", "ASC"),
        Cursor::After(_) => ("AND gm.rowid > ?3", "ASC"),
        Cursor::Before(_) => ("AND gm.rowid < ?3", "DESC"),
    };
    format!(
        "SELECT gm.rowid, gm.member_user_pk IS NOT NULL, coalesce(u.id, sg.id),
                coalesce(gm.display, u.display_name, u.user_name, sg.display_name, ''),
                u.user_name, m.id, m.role, m.status
         FROM group_members gm
         LEFT JOIN users u ON u.pk = gm.member_user_pk
         LEFT JOIN groups sg ON sg.pk = gm.member_group_pk
         LEFT JOIN members m ON m.tenant_id = ?1 AND m.user_id = u.id
         WHERE gm.group_pk = ?2 {cond}
         ORDER BY gm.rowid {order} LIMIT ?4"
    )
}

/// One page of a group's members in the order they were added: a 100 000-member group
/// is read a page of membership rows at a time.
pub fn member_page(
    conn: &Connection,
    tenant_id: i64,
    group_pk: i64,
    cursor: Cursor,
    limit: usize,
) -> Result<Keyset<GroupMemberRow>, DbError> {
    let key = match cursor {
        Cursor::First => 0,
        Cursor::After(k) | Cursor::Before(k) => k,
    };
    let mut stmt = conn.prepare_cached(&member_page_query(cursor))?;
    let rows = stmt
        .query_map(params![tenant_id, group_pk, key, limit as i64 + 1], |r| {
            let member_id: Option<String> = r.get(5)?;
            Ok(GroupMemberRow {
                key: r.get(0)?,
                kind: if r.get(1)? {
                    MemberKind::User
                } else {
                    MemberKind::Group
                },
                id: r.get(2)?,
                display: r.get(3)?,
                user_name: r.get(4)?,
                member: match member_id {
                    Some(id) => Some((id, r.get(6)?, r.get(7)?)),
                    None => None,
                },
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Keyset::from_rows(rows, cursor, limit, |m| m.key))
}

/// The displayNames of up to `limit` of the tenant's groups, in name order (any case), and
/// whether there are more: what a picker offers.
pub fn display_names(
    conn: &Connection,
    tenant_id: i64,
    limit: usize,
) -> Result<(Vec<String>, bool), DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT display_name FROM groups WHERE tenant_id = ?1
         ORDER BY display_name_fold, pk LIMIT ?2",
    )?;
    let mut names = stmt
        .query_map(params![tenant_id, limit as i64 + 1], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    let more = names.len() > limit;
    names.truncate(limit);
    Ok((names, more))
}

// --- Directory listings (the WorkOS-compatible API) ------------------------------------

/// A group as a directory listing names it, with its tenant.
#[derive(Debug, Clone)]
pub struct ListedGroup {
    pub pk: i64,
    pub tenant_id: i64,
    pub id: String,
    pub data: Map<String, Value>,
    pub created: String,
    pub last_modified: String,
}

const LISTED: &str =
    "SELECT g.pk, g.tenant_id, g.id, g.data, g.created, g.last_modified FROM groups g";

fn listed_row(r: &Row) -> rusqlite::Result<ListedGroup> {
    Ok(ListedGroup {
        pk: r.get(0)?,
        tenant_id: r.get(1)?,
        id: r.get(2)?,
        data: super::json_column(r, 3)?,
        created: r.get(4)?,
        last_modified: r.get(5)?,
    })
}

/// Group `id` of `tenant_id` (of any tenant when `None`).
pub fn listed(
    conn: &Connection,
    tenant_id: Option<i64>,
    id: &str,
) -> Result<Option<ListedGroup>, DbError> {
    Ok(conn
        .query_row(
            &format!("{LISTED} WHERE g.id = ?2 AND (?1 IS NULL OR g.tenant_id = ?1)"),
            params![tenant_id, id],
            listed_row,
        )
        .optional()?)
}

/// The pk of the first group of `tenant_id` (every tenant when `None`) whose SCIM id sorts
/// after `id`: where a group that is gone stood in pk order, for ids are UUIDv7 made in
/// the order their rows were (by one writer, `Uuid::now_v7` ordered within a process).
pub fn pk_after_id(
    conn: &Connection,
    tenant_id: Option<i64>,
    id: &str,
) -> Result<Option<i64>, DbError> {
    Ok(conn
        .query_row(
            "SELECT pk FROM groups WHERE id > ?2 AND (?1 IS NULL OR tenant_id = ?1)
             ORDER BY id LIMIT 1",
            params![tenant_id, id],
            |r| r.get(0),
        )
        .optional()?)
}

/// Up to `limit` groups of `tenant_id` (every tenant when `None`), only those directory user
/// `user_id` is a direct member of when given, beyond `cursor` (a group pk) in `direction`.
pub fn listed_page(
    conn: &Connection,
    tenant_id: Option<i64>,
    user_id: Option<&str>,
    cursor: Option<i64>,
    direction: Direction,
    limit: usize,
) -> Result<Vec<ListedGroup>, DbError> {
    let (sql, values) = listed_query(tenant_id, user_id, cursor, direction, limit);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(&values), listed_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// [`listed_page`]'s statement and its parameters.
fn listed_query(
    tenant_id: Option<i64>,
    user_id: Option<&str>,
    cursor: Option<i64>,
    direction: Direction,
    limit: usize,
) -> (String, Vec<SqlValue>) {
    Conditions::new("1")
        .and("g.tenant_id = ?", tenant_id)
        .and(&format!("g.pk {} ?", direction.cmp()), cursor)
        // The user's groups from its memberships, once: a membership joins a group to a
        // user of its own tenant, and a user id is unique, so the list needs no tenant of
        // its own. (Asking "the user's groups in this group's tenant" made SQLite ask again
        // for every group of every tenant, 10 ms at 5 000 groups.)
        .and(
            "g.pk IN (SELECT gm.group_pk FROM users u
                 JOIN group_members gm ON gm.member_user_pk = u.pk
                 WHERE u.id = ?)",
            user_id.map(str::to_string),
        )
        .query(
            LISTED,
            &format!("ORDER BY g.pk {} LIMIT ?", direction.order()),
            limit as i64,
        )
}

// --- What sync reads ---------------------------------------------------------------------

/// The group as sync sees it: its id and name.
pub fn directory_group(conn: &Connection, group_pk: i64) -> Result<DirectoryGroup, DbError> {
    conn.prepare_cached("SELECT id, display_name FROM groups WHERE pk = ?1")?
        .query_row([group_pk], |r| {
            Ok(DirectoryGroup {
                id: r.get::<_, String>(0)?.into(),
                display_name: r.get::<_, String>(1)?.into(),
            })
        })
        .map_err(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => DbError::NotFound,
            e => e.into(),
        })
}

/// Group `group_pk`'s `externalId`, if it has one.
pub fn external_id(conn: &Connection, group_pk: i64) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached("SELECT external_id FROM groups WHERE pk = ?1")?
        .query_row([group_pk], |r| r.get(0))?)
}

/// [`external_id`] of the tenant's group with SCIM id `id`.
pub fn external_id_of(
    conn: &Connection,
    tenant_id: i64,
    id: &str,
) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached("SELECT external_id FROM groups WHERE tenant_id = ?1 AND id = ?2")?
        .query_row(params![tenant_id, id], |r| r.get(0))
        .optional()?
        .flatten())
}

/// The users (not nested groups) that are direct members of the group.
pub fn user_pks(conn: &Connection, group_pk: i64) -> Result<Vec<i64>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT member_user_pk FROM group_members WHERE group_pk = ?1 AND member_user_pk IS NOT NULL",
    )?;
    let pks = stmt
        .query_map([group_pk], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(pks)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::db::{scratch_db as fresh_db, users};
    use crate::scim::resource::normalize;
    use crate::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};

    fn group(conn: &Connection, name: &str) -> GroupRow {
        create(
            conn,
            1,
            &normalize(&GROUP_RESOURCE, json!({"displayName": name})).unwrap(),
        )
        .unwrap()
    }

    fn user(conn: &Connection, name: &str) -> i64 {
        let data = normalize(&USER_RESOURCE, json!({"userName": name})).unwrap();
        users::create(conn, 1, &data).unwrap().pk
    }

    fn add(conn: &Connection, group_pk: i64, kind: MemberKind, pks: &[i64]) {
        let members: Vec<ResolvedMember> = pks
            .iter()
            .map(|&pk| ResolvedMember {
                kind,
                pk,
                display: None,
            })
            .collect();
        add_members(conn, group_pk, &members).unwrap();
    }

    /// Members go in by batches: past a batch's size, sent twice, mixed with members
    /// already there and with groups, each new one is added and reported once, in order,
    /// and only the users added move their version. `set_members` then leaves exactly the
    /// members asked for.
    #[test]
    fn members_are_added_and_set_in_batches_each_once() {
        let conn = fresh_db();
        let g = group(&conn, "Big");
        let inner = group(&conn, "Inner");
        let pks: Vec<i64> = (0..BATCH + 7)
            .map(|i| user(&conn, &format!("u{i}")))
            .collect();
        add(&conn, g.pk, MemberKind::User, &pks[..3]);
        let version = |pk: i64| -> i64 {
            conn.query_row("SELECT version FROM users WHERE pk = ?1", [pk], |r| {
                r.get(0)
            })
            .unwrap()
        };
        let before: Vec<i64> = pks.iter().map(|&pk| version(pk)).collect();
        let member = |kind, pk| ResolvedMember {
            kind,
            pk,
            display: None,
        };
        let mut asked: Vec<ResolvedMember> =
            pks.iter().map(|&pk| member(MemberKind::User, pk)).collect();
        asked.push(member(MemberKind::User, pks[10]));
        asked.push(member(MemberKind::Group, inner.pk));
        let added = add_members(&conn, g.pk, &asked).unwrap();
        let added: Vec<(MemberKind, i64)> = added.iter().map(|m| (m.kind, m.pk)).collect();
        let mut expected: Vec<(MemberKind, i64)> =
            pks[3..].iter().map(|&pk| (MemberKind::User, pk)).collect();
        expected.push((MemberKind::Group, inner.pk));
        assert_eq!(added, expected);
        for (i, &pk) in pks.iter().enumerate() {
            let moved = if i < 3 { 0 } else { 1 };
            assert_eq!(version(pk), before[i] + moved, "user {i}");
        }
        assert_eq!(count_members(&conn, g.pk).unwrap(), BATCH as i64 + 8);

        let keep: Vec<ResolvedMember> = pks[..2]
            .iter()
            .map(|&pk| member(MemberKind::User, pk))
            .collect();
        let (removed, added, redisplayed) = set_members(&conn, g.pk, &keep).unwrap();
        assert_eq!(removed.len(), BATCH + 6);
        assert!(added.is_empty() && !redisplayed);
        let left: Vec<String> = members(&conn, g.pk)
            .unwrap()
            .into_iter()
            .map(|m| m.display.unwrap_or_default())
            .collect();
        assert_eq!(left, ["u0", "u1"]);
    }

    /// A user's groups come in group order, whatever order the memberships were made in,
    /// for each user of a page alike, and for one user read with its groups in one
    /// statement; a user in no group has no entry.
    #[test]
    fn a_users_groups_are_listed_in_group_order() {
        let conn = fresh_db();
        let groups: Vec<GroupRow> = ["A", "B", "C"].iter().map(|n| group(&conn, n)).collect();
        let (ada, bob, eve) = (user(&conn, "ada"), user(&conn, "bob"), user(&conn, "eve"));
        for g in groups.iter().rev() {
            add(&conn, g.pk, MemberKind::User, &[ada]);
        }
        add(&conn, groups[2].pk, MemberKind::User, &[bob]);
        add(&conn, groups[0].pk, MemberKind::User, &[bob]);
        let names = |of: &HashMap<i64, Vec<users::GroupRef>>, pk: i64| {
            of[&pk]
                .iter()
                .map(|g| g.display.clone())
                .collect::<Vec<_>>()
        };
        let of = users::groups_of(&conn, &[ada, bob, eve]).unwrap();
        assert_eq!(names(&of, ada), ["A", "B", "C"]);
        assert_eq!(names(&of, bob), ["A", "C"]);
        assert!(!of.contains_key(&eve));
        assert_eq!(of[&ada][0].id, groups[0].id);
        for pk in [ada, bob, eve] {
            let id: String = conn
                .query_row("SELECT id FROM users WHERE pk = ?1", [pk], |r| r.get(0))
                .unwrap();
            let (row, with) = users::get_stored_with_groups(&conn, 1, &id)
                .unwrap()
                .unwrap();
            assert_eq!(row.pk, pk);
            let pairs = |g: &[users::GroupRef]| -> Vec<(String, String)> {
                g.iter()
                    .map(|g| (g.id.clone(), g.display.clone()))
                    .collect()
            };
            assert_eq!(pairs(&with), pairs(of.get(&pk).map_or(&[][..], |g| g)));
        }
        assert!(
            users::get_stored_with_groups(&conn, 1, "nobody")
                .unwrap()
                .is_none()
        );
    }

    /// A group's count is its direct members, users and groups, through every way a
    /// membership comes or goes: added (twice counts once), removed, replaced, and deleted
    /// with the user, the nested group or the group itself.
    #[test]
    fn a_groups_member_count_follows_its_memberships() {
        let conn = fresh_db();
        let counted = |pk: i64| count_members(&conn, pk).unwrap();
        let real = |pk: i64| -> i64 {
            conn.query_row(
                "SELECT count(*) FROM group_members WHERE group_pk = ?1",
                [pk],
                |r| r.get(0),
            )
            .unwrap()
        };
        let g = group(&conn, "Engineering");
        assert_eq!(counted(g.pk), 0);
        let people: Vec<i64> = (0..5).map(|i| user(&conn, &format!("u{i}"))).collect();
        add(&conn, g.pk, MemberKind::User, &people);
        add(&conn, g.pk, MemberKind::User, &people[..2]);
        let backend = group(&conn, "Backend");
        let frontend = group(&conn, "Frontend");
        add(&conn, g.pk, MemberKind::Group, &[backend.pk, frontend.pk]);
        add(&conn, backend.pk, MemberKind::User, &people[..3]);
        assert_eq!((counted(g.pk), counted(backend.pk)), (7, 3));
        assert_eq!(members(&conn, g.pk).unwrap().len(), 7);

        let id_of = |pk: i64| -> String {
            conn.query_row("SELECT id FROM users WHERE pk = ?1", [pk], |r| r.get(0))
                .unwrap()
        };
        remove_members(&conn, g.pk, &[id_of(people[4]), "nobody".into()]).unwrap();
        assert_eq!(counted(g.pk), 6);
        users::delete(&conn, 1, &id_of(people[0])).unwrap();
        assert_eq!((counted(g.pk), counted(backend.pk)), (5, 2));
        delete(&conn, 1, &frontend.id).unwrap();
        assert_eq!(counted(g.pk), 4);
        let keep = [ResolvedMember {
            kind: MemberKind::User,
            pk: people[1],
            display: None,
        }];
        set_members(&conn, g.pk, &keep).unwrap();
        assert_eq!(counted(g.pk), 1);
        delete(&conn, 1, &backend.id).unwrap();
        assert_eq!(counted(g.pk), real(g.pk));
        let page = page(&conn, 1, None, Cursor::First, 10).unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].members, 1);
    }

    /// Every read of a user renders its groups, and every write's sync hook reads them:
    /// from the user's memberships, which the index answers with the group (no read of the
    /// membership row, no sort), to each group by its pk; never a walk of the tenant's
    /// groups, with statistics or without.
    #[test]
    fn a_users_groups_come_from_its_memberships_alone() {
        let conn = fresh_db();
        let people: Vec<i64> = (0..50).map(|i| user(&conn, &format!("u{i}"))).collect();
        for i in 0..20 {
            let g = group(&conn, &format!("Team {i}"));
            add(&conn, g.pk, MemberKind::User, &people[i..i + 5]);
        }
        for analysed in [false, true] {
            if analysed {
                conn.execute_batch("ANALYZE").unwrap();
            }
            for n in [1, 3] {
                let ids: Vec<SqlValue> = people[..n]
                    .iter()
                    .map(|&pk| SqlValue::Integer(pk))
                    .collect();
                // For rendering, then for the sync hook (which leaves out one group).
                let with_none: Vec<SqlValue> =
                    ids.iter().cloned().chain([SqlValue::Null]).collect();
                for (sql, params) in [
                    (users::groups_of_sql(n), &ids),
                    (users::directory_groups_sql(n), &with_none),
                ] {
                    let plan = plan_of(&conn, &sql, params);
                    let first = plan.lines().next().unwrap_or_default();
                    assert!(
                        first.starts_with("SEARCH gm USING COVERING INDEX group_members_by_user"),
                        "analysed: {analysed}, {n} users:\n{plan}"
                    );
                    assert!(
                        plan.contains("SEARCH g USING INTEGER PRIMARY KEY")
                            && !plan.contains("TEMP B-TREE"),
                        "{plan}"
                    );
                }
            }
        }
        // And it finds them: user 4 is in teams 0 to 4, in group order.
        let found = users::groups_of(&conn, &[people[4]]).unwrap();
        let names: Vec<&str> = found[&people[4]]
            .iter()
            .map(|g| g.display.as_str())
            .collect();
        assert_eq!(names, ["Team 0", "Team 1", "Team 2", "Team 3", "Team 4"]);
    }

    /// A group write assigns the name and externalId columns only when they change: a
    /// membership change keeps both lookups, a rename moves them, and the indexes agree
    /// with the table throughout.
    #[test]
    fn an_updated_group_is_found_by_what_it_now_holds() {
        let conn = fresh_db();
        let data = |v: Value| normalize(&GROUP_RESOURCE, v).unwrap();
        let by = |column: &str, key: &str| -> Vec<i64> {
            let sql = format!("SELECT pk FROM groups WHERE tenant_id = 1 AND {column} = ?1");
            let mut stmt = conn.prepare(&sql).unwrap();
            stmt.query_map([key], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let row = create(
            &conn,
            1,
            &data(json!({"displayName": "Eng", "externalId": "x1"})),
        )
        .unwrap();
        let pk = row.pk;
        let row = update(
            &conn,
            &row,
            data(json!({"displayName": "ENG", "externalId": "x1"})),
        )
        .unwrap();
        assert_eq!(
            (by("display_name_fold", "eng"), by("external_id", "x1")),
            (vec![pk], vec![pk])
        );
        assert_eq!(by("display_name", "ENG"), [pk]);
        assert!(matches!(
            create(&conn, 1, &data(json!({"displayName": "eng"}))),
            Err(DbError::Conflict(_))
        ));
        update(
            &conn,
            &row,
            data(json!({"displayName": "Ops", "externalId": "x2"})),
        )
        .unwrap();
        assert_eq!(
            (by("display_name_fold", "ops"), by("external_id", "x2")),
            (vec![pk], vec![pk])
        );
        assert!(by("display_name_fold", "eng").is_empty() && by("external_id", "x1").is_empty());
        create(&conn, 1, &data(json!({"displayName": "Eng"}))).unwrap();
        assert_eq!(crate::db::check(&conn).unwrap(), Vec::<String>::new());
    }

    fn plan_of(conn: &Connection, sql: &str, params: &[SqlValue]) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows: Vec<String> = stmt
            .query_map(params_from_iter(params), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.join("\n")
    }

    /// The admin UI's pages of a huge group and of the group list start at their cursor
    /// in an index and stop after a page: no scan, no sort of the members.
    #[test]
    fn admin_pages_of_groups_and_members_come_from_indexes() {
        let conn = fresh_db();
        let big = group(&conn, "Everyone");
        let people: Vec<i64> = (0..2000).map(|i| user(&conn, &format!("u{i}"))).collect();
        add(&conn, big.pk, MemberKind::User, &people);
        for i in 0..200 {
            let g = group(&conn, &format!("Team {i}"));
            add(&conn, g.pk, MemberKind::User, &people[i..i + 3]);
            add(&conn, big.pk, MemberKind::Group, &[g.pk]);
        }
        conn.execute_batch("ANALYZE").unwrap();
        for cursor in [Cursor::First, Cursor::After(500), Cursor::Before(1500)] {
            let plan = plan_of(
                &conn,
                &member_page_query(cursor),
                &[1.into(), big.pk.into(), 500.into(), 51.into()],
            );
            // The group's index, or the rowid range itself when (as here) one group
            // holds nearly every membership: both start at the cursor.
            assert!(
                plan.contains("SEARCH gm USING INDEX group_members_in_order")
                    || plan.contains("SEARCH gm USING INTEGER PRIMARY KEY"),
                "{cursor:?}\n{plan}"
            );
            assert!(
                !plan.contains("SCAN") && !plan.contains("TEMP B-TREE"),
                "{cursor:?}\n{plan}"
            );
            for search in [None, Some("team")] {
                let (sql, params) = page_query(1, search, cursor, 50);
                let plan = plan_of(&conn, &sql, &params);
                assert!(
                    plan.contains("SEARCH g USING INDEX groups_display_name"),
                    "{cursor:?}\n{plan}"
                );
                assert!(!plan.contains("TEMP B-TREE"), "{cursor:?}\n{plan}");
            }
        }
        // Paging the big group forward visits every member once.
        let mut seen = 0;
        let mut cursor = Cursor::First;
        loop {
            let p = member_page(&conn, 1, big.pk, cursor, 300).unwrap();
            seen += p.items.len();
            match p.next {
                Some(k) => cursor = Cursor::After(k),
                None => break,
            }
        }
        assert_eq!(seen, 2200);
        assert_eq!(count_members(&conn, big.pk).unwrap(), 2200);
        let p = page(&conn, 1, Some("EVERY"), Cursor::First, 10).unwrap();
        assert_eq!((p.items.len(), p.items[0].members), (1, 2200));
    }

    /// An app walking the directory groups (the WorkOS drop-in) seeks to its cursor, in
    /// a tenant or across them.
    #[test]
    fn a_listed_page_seeks_to_its_cursor() {
        let conn = fresh_db();
        for i in 0..200 {
            group(&conn, &format!("g{i}"));
        }
        conn.execute_batch("ANALYZE").unwrap();
        for greater in [true, false] {
            let direction = crate::db::paging::Direction {
                greater,
                ascending: greater,
            };
            let cmp = if greater { ">" } else { "<" };
            let first_step = |tenant| {
                let (sql, values) = listed_query(tenant, None, Some(100), direction, 10);
                let plan = crate::db::paging::plan_of(&conn, &sql, &values);
                plan.lines().next().unwrap_or_default().to_string()
            };
            // By the tenant's index or by row id, as SQLite finds cheaper: either seeks.
            for tenant in [Some(1), None] {
                let step = first_step(tenant);
                assert!(
                    step.starts_with("SEARCH g ") && step.ends_with(&format!("rowid{cmp}?)")),
                    "{step}"
                );
            }
        }
        // A user's groups: the user's memberships are looked up once, and each is a
        // group read by its pk, in a tenant or across them.
        for tenant in [Some(1), None] {
            let (sql, values) = listed_query(
                tenant,
                Some("u"),
                None,
                crate::db::paging::Direction {
                    greater: true,
                    ascending: true,
                },
                10,
            );
            let plan = crate::db::paging::plan_of(&conn, &sql, &values);
            assert!(
                !plan.contains("SCAN") && !plan.contains("CORRELATED"),
                "{plan}"
            );
        }
    }
}
