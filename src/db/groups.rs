//! Directory groups and their memberships.
//!
//! Members are rows in `group_members`, one per membership, so adding or removing one member
//! touches one row whatever the size of the group, and reading a group without its members
//! never touches them at all.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Map, Value};

use super::{DbError, HasPk, ListQuery, Page};
use crate::scim::datetime;
use crate::scim::filter::fold;
use crate::scim::schema::GROUP_RESOURCE;

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

pub use crate::scim::patch::{Member as MemberInput, MemberKind};

/// A member resolved to its row.
#[derive(Debug, Clone)]
pub struct ResolvedMember {
    pub kind: MemberKind,
    pub pk: i64,
    pub display: Option<String>,
}

/// A member as rendered.
#[derive(Debug, Clone)]
pub struct Member {
    pub value: String,
    pub kind: MemberKind,
    /// What the IdP sent, else the member's own display name.
    pub display: Option<String>,
}

const COLUMNS: &str = "g.pk, g.id, g.data, g.created, g.last_modified, g.version";

fn from_row(r: &Row) -> rusqlite::Result<GroupRow> {
    let data: String = r.get(2)?;
    let data = serde_json::from_str(&data).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(GroupRow {
        pk: r.get(0)?,
        id: r.get(1)?,
        data,
        created: r.get(3)?,
        last_modified: r.get(4)?,
        version: r.get(5)?,
    })
}

pub fn get(conn: &Connection, tenant_id: i64, id: &str) -> Result<Option<GroupRow>, DbError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM groups g WHERE g.tenant_id = ?1 AND g.id = ?2"),
            params![tenant_id, id],
            from_row,
        )
        .optional()?)
}

fn display_name(data: &Map<String, Value>) -> &str {
    data.get("displayName")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub fn create(
    conn: &Connection,
    tenant_id: i64,
    data: &Map<String, Value>,
) -> Result<GroupRow, DbError> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = datetime::now();
    let name = display_name(data);
    conn.execute(
        "INSERT INTO groups (tenant_id, id, display_name, display_name_fold, external_id, data, created, last_modified, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1)",
        params![
            tenant_id,
            id,
            name,
            fold(name),
            data.get("externalId").and_then(Value::as_str),
            Value::Object(data.clone()).to_string(),
            now
        ],
    )?;
    Ok(GroupRow {
        pk: conn.last_insert_rowid(),
        id,
        data: data.clone(),
        created: now.clone(),
        last_modified: now,
        version: 1,
    })
}

/// Stores `data` as the new state of `row` and bumps its version.
pub fn update(
    conn: &Connection,
    row: &GroupRow,
    data: Map<String, Value>,
) -> Result<GroupRow, DbError> {
    let now = datetime::now();
    let name = display_name(&data);
    conn.execute(
        "UPDATE groups SET display_name = ?2, display_name_fold = ?3, external_id = ?4, data = ?5,
                           last_modified = ?6, version = version + 1
         WHERE pk = ?1",
        params![
            row.pk,
            name,
            fold(name),
            data.get("externalId").and_then(Value::as_str),
            Value::Object(data.clone()).to_string(),
            now
        ],
    )?;
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
    let n = conn.execute(
        "DELETE FROM groups WHERE tenant_id = ?1 AND id = ?2",
        params![tenant_id, id],
    )?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

pub fn list(conn: &Connection, tenant_id: i64, q: &ListQuery) -> Result<Page<GroupRow>, DbError> {
    super::list_page(
        conn,
        tenant_id,
        q,
        &GROUP_RESOURCE,
        "groups g",
        COLUMNS,
        from_row,
    )
}

/// Resolves members to rows of this tenant. Returns the resolved members and the values
/// that name nothing in the tenant. A member sent without `type` defaults to `User`; if no
/// user has that id, a group with it is taken instead.
pub fn resolve_members(
    conn: &Connection,
    tenant_id: i64,
    members: &[MemberInput],
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
            MemberKind::Group => find(&mut groups)?.map(|pk| (MemberKind::Group, pk)),
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
pub fn add_members(
    conn: &Connection,
    group_pk: i64,
    members: &[ResolvedMember],
) -> Result<Vec<ResolvedMember>, DbError> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO group_members (group_pk, member_user_pk, member_group_pk, display)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut added = Vec::new();
    for m in members {
        let (user, group) = match m.kind {
            MemberKind::User => (Some(m.pk), None),
            MemberKind::Group => (None, Some(m.pk)),
        };
        if stmt.execute(params![group_pk, user, group, m.display])? > 0 {
            added.push(m.clone());
        }
    }
    Ok(added)
}

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
/// lookup per value: the rest of the group is never read.
pub fn remove_members(
    conn: &Connection,
    group_pk: i64,
    values: &[String],
) -> Result<Vec<Removed>, DbError> {
    let mut by_user = conn.prepare_cached(
        "DELETE FROM group_members
          WHERE group_pk = ?1 AND member_user_pk = (SELECT pk FROM users WHERE id = ?2)
         RETURNING member_user_pk, member_group_pk",
    )?;
    let mut by_group = conn.prepare_cached(
        "DELETE FROM group_members
          WHERE group_pk = ?1 AND member_group_pk = (SELECT pk FROM groups WHERE id = ?2)
         RETURNING member_user_pk, member_group_pk",
    )?;
    let mut removed = Vec::new();
    for v in values {
        for stmt in [&mut by_user, &mut by_group] {
            for r in stmt.query_map(params![group_pk, v], removed_row)? {
                removed.push(r?);
            }
        }
    }
    Ok(removed)
}

/// Removes every member, returning who was removed.
pub fn clear_members(conn: &Connection, group_pk: i64) -> Result<Vec<Removed>, DbError> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM group_members WHERE group_pk = ?1 RETURNING member_user_pk, member_group_pk",
    )?;
    let rows = stmt
        .query_map([group_pk], removed_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Up to `limit` members of the group, in insertion order.
pub fn members(
    conn: &Connection,
    group_pk: i64,
    limit: Option<usize>,
) -> Result<Vec<Member>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.id, 'User', coalesce(gm.display, u.display_name, u.user_name), gm.rowid
           FROM group_members gm JOIN users u ON u.pk = gm.member_user_pk WHERE gm.group_pk = ?1
         UNION ALL
         SELECT g.id, 'Group', coalesce(gm.display, g.display_name), gm.rowid
           FROM group_members gm JOIN groups g ON g.pk = gm.member_group_pk WHERE gm.group_pk = ?1
         ORDER BY 4 LIMIT ?2",
    )?;
    let limit = limit.map_or(-1, |l| l as i64);
    let rows = stmt
        .query_map(params![group_pk, limit], |r| {
            let kind: String = r.get(1)?;
            Ok(Member {
                value: r.get(0)?,
                kind: if kind == "Group" {
                    MemberKind::Group
                } else {
                    MemberKind::User
                },
                display: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
