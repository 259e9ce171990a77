//! Directory users: one row per SCIM User, its canonical JSON plus indexed copies of the
//! attributes that lookups, uniqueness and sorting need.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde_json::{Map, Value};

use super::assign::Assignments;
use super::paging::{self, Listed};
use super::{DbError, ListQuery, Page};
use crate::model::{DirectoryGroup, DirectoryUser, member_text};
use crate::scim::filter::fold;
use crate::scim::schema::ENTERPRISE_URN;
use crate::scim::{datetime, resource};

/// A stored user.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Internal row id: stable order for paging, target of foreign keys.
    pub pk: i64,
    /// The SCIM `id` clients see.
    pub id: String,
    pub data: Map<String, Value>,
    pub created: String,
    pub last_modified: String,
    pub version: i64,
}

/// A user as a list page reads it: its data left as stored, parsed only when the page
/// needs the values (a projection, a manager to complete); most pages write it out as is.
pub struct StoredUser {
    pub pk: i64,
    pub id: String,
    /// The stored JSON object.
    pub data: String,
    pub created: String,
    pub last_modified: String,
    pub version: i64,
}

impl StoredUser {
    /// The row with its data parsed.
    pub fn parse(self) -> Result<UserRow, DbError> {
        Ok(self.parsed()?)
    }

    /// [`StoredUser::parse`], failing as reading the column would.
    fn parsed(self) -> rusqlite::Result<UserRow> {
        Ok(UserRow {
            pk: self.pk,
            id: self.id,
            data: super::json_text(&self.data, 2)?,
            created: self.created,
            last_modified: self.last_modified,
            version: self.version,
        })
    }
}

impl super::HasPk for StoredUser {
    fn pk(&self) -> i64 {
        self.pk
    }
}

fn stored_from_row(r: &Row) -> rusqlite::Result<StoredUser> {
    Ok(StoredUser {
        pk: r.get(0)?,
        id: r.get(1)?,
        data: r.get(2)?,
        created: r.get(3)?,
        last_modified: r.get(4)?,
        version: r.get(5)?,
    })
}

/// A group a user belongs to, for the read-only `User.groups` attribute.
#[derive(Debug, Clone)]
pub struct GroupRef {
    pub id: String,
    pub display: String,
}

const COLUMNS: &str = "u.pk, u.id, u.data, u.created, u.last_modified, u.version";

fn from_row(r: &Row) -> rusqlite::Result<UserRow> {
    stored_from_row(r)?.parsed()
}

/// The indexed copies of a user's attributes.
struct Columns<'a> {
    user_name: &'a str,
    external_id: Option<&'a str>,
    display_name: Option<&'a str>,
    active: Option<bool>,
}

impl<'a> Columns<'a> {
    fn of(data: &'a Map<String, Value>) -> Columns<'a> {
        Columns {
            user_name: data
                .get("userName")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            external_id: data.get("externalId").and_then(Value::as_str),
            display_name: data.get("displayName").and_then(Value::as_str),
            active: data.get("active").and_then(Value::as_bool),
        }
    }
}

pub fn get(conn: &Connection, tenant_id: i64, id: &str) -> Result<Option<UserRow>, DbError> {
    get_stored(conn, tenant_id, id)?
        .map(StoredUser::parse)
        .transpose()
}

/// [`get`] with the data left as stored.
pub fn get_stored(
    conn: &Connection,
    tenant_id: i64,
    id: &str,
) -> Result<Option<StoredUser>, DbError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM users u WHERE u.tenant_id = ?1 AND u.id = ?2"
        ))?
        .query_row(params![tenant_id, id], stored_from_row)
        .optional()?)
}

/// A user's direct groups as one JSON text, `[[pk, id, displayName], …]`: a column of the
/// user's own query, so that one user with its groups is one statement, read as of one
/// moment without a transaction around two (see [`get_stored_with_groups`]). Sorted by
/// [`groups_from_json`], not by an aggregate's `ORDER BY`, which opens a sorter per user.
const GROUPS_JSON: &str = "(SELECT json_group_array(json_array(g.pk, g.id, g.display_name))
     FROM group_members gm CROSS JOIN groups g ON g.pk = gm.group_pk
     WHERE gm.member_user_pk = u.pk)";

/// The groups of a [`GROUPS_JSON`] column, in group order.
fn groups_from_json(r: &Row, column: usize) -> rusqlite::Result<Vec<GroupRef>> {
    let text = r.get_ref(column)?.as_str()?;
    let groups: Vec<(i64, String, String)> = serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, e.into())
    })?;
    Ok(in_group_order(
        groups
            .into_iter()
            .map(|(pk, id, display)| (pk, GroupRef { id, display }))
            .collect(),
    ))
}

/// A user's groups, each with its pk, in group order (the pk's).
fn in_group_order(mut groups: Vec<(i64, GroupRef)>) -> Vec<GroupRef> {
    groups.sort_unstable_by_key(|(pk, _)| *pk);
    groups.into_iter().map(|(_, g)| g).collect()
}

/// A stored user with its direct groups, in group order.
pub type WithGroups = (StoredUser, Vec<GroupRef>);

/// [`get_stored`] with the user's direct groups ([`groups_of`]), in one statement.
pub fn get_stored_with_groups(
    conn: &Connection,
    tenant_id: i64,
    id: &str,
) -> Result<Option<WithGroups>, DbError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, {GROUPS_JSON} FROM users u WHERE u.tenant_id = ?1 AND u.id = ?2"
        ))?
        .query_row(params![tenant_id, id], |r| {
            Ok((stored_from_row(r)?, groups_from_json(r, 6)?))
        })
        .optional()?)
}

/// The ids of the tenant's users the IdP knows as `idp_id`: by `externalId`, or by their
/// own id when they have none (as a WorkOS directory user's `idp_id` names them).
pub fn ids_by_idp_id(
    conn: &Connection,
    tenant_id: i64,
    idp_id: &str,
) -> Result<Vec<String>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM users WHERE tenant_id = ?1 AND external_id = ?2
         UNION SELECT id FROM users WHERE tenant_id = ?1 AND id = ?2 AND external_id IS NULL",
    )?;
    let ids = stmt
        .query_map(params![tenant_id, idp_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// The id of the user other than `except_pk` whose userName folds to the same value.
fn user_name_taken(
    conn: &Connection,
    tenant_id: i64,
    user_name: &str,
    except_pk: i64,
) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM users WHERE tenant_id = ?1 AND user_name_fold = ?2 AND pk <> ?3",
        )?
        .query_row(params![tenant_id, fold(user_name), except_pk], |_| Ok(()))
        .optional()?
        .is_some())
}

fn conflict(user_name: &str) -> DbError {
    DbError::Conflict(format!(
        "a user with userName \"{user_name}\" already exists"
    ))
}

/// A write's unique-index failure as the userName conflict it means (a race past the
/// lookup before it).
fn user_name_violation(user_name: &str) -> impl Fn(rusqlite::Error) -> DbError + '_ {
    move |e| {
        if super::is_unique_violation(&e) {
            conflict(user_name)
        } else {
            e.into()
        }
    }
}

/// Inserts a new user with a fresh `id`; `Conflict` if the userName is taken. A seed
/// (a pre-provisioned member) with that userName is adopted instead: it keeps its `id`
/// and takes the IdP's data, so an IdP that creates without looking up first still links
/// to the person the organisation already had.
pub fn create(
    conn: &Connection,
    tenant_id: i64,
    data: &Map<String, Value>,
) -> Result<UserRow, DbError> {
    // Most creates bring a userName nobody holds: inserted at once, the unique index the
    // only lookup (a failing single-row insert changes nothing). Only a taken name is
    // looked up: a seed is adopted, anyone else holds it.
    match insert_unchecked(conn, tenant_id, data, "idp") {
        Err(DbError::Conflict(_)) => {}
        inserted => return inserted,
    }
    let c = Columns::of(data);
    match named(conn, tenant_id, c.user_name)? {
        Some((seed, true)) => replace(conn, tenant_id, &seed, data.clone()),
        _ => Err(conflict(c.user_name)),
    }
}

/// Inserts a seed: a directory user standing in for a member that existed before
/// provisioning (see `db::seeds`).
pub fn create_seed(
    conn: &Connection,
    tenant_id: i64,
    data: &Map<String, Value>,
) -> Result<UserRow, DbError> {
    insert(conn, tenant_id, data, "seed")
}

/// Whether user `pk` is a seed: a member who existed before provisioning, that the IdP
/// has not written to yet (`db::seeds`).
pub fn is_seed(conn: &Connection, pk: i64) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached("SELECT origin = 'seed' FROM users WHERE pk = ?1")?
        .query_row([pk], |r| r.get(0))
        .optional()?
        .unwrap_or(false))
}

/// The user whose userName folds like `user_name` (the unique index allows one), and
/// whether it is a seed.
fn named(
    conn: &Connection,
    tenant_id: i64,
    user_name: &str,
) -> Result<Option<(UserRow, bool)>, DbError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, u.origin = 'seed' FROM users u WHERE u.tenant_id = ?1 AND u.user_name_fold = ?2"
        ))?
        .query_row(params![tenant_id, fold(user_name)], |r| {
            Ok((from_row(r)?, r.get(6)?))
        })
        .optional()?)
}

/// The users `pks` joined or left a group. Their `groups` are part of what a GET shows,
/// so their versions (and ETags) move, and `meta.lastModified` with them: RFC 7643 §3.1
/// dates any change to "the details of this resource", and a client that asks for what
/// changed since (`meta.lastModified gt …`) must find what its ETags say changed. A seed
/// the IdP puts in a group is the IdP's from then on. A few hundred to a statement (see
/// `groups::add_members` for why not one each).
pub fn regrouped_all(conn: &Connection, pks: &[i64]) -> Result<(), DbError> {
    let now = datetime::now();
    if pks.len() <= super::groups::FEW {
        let mut stmt = conn.prepare_cached(
            "UPDATE OR FAIL users SET version = version + 1, last_modified = ?2, origin = 'idp'
             WHERE pk = ?1",
        )?;
        for pk in pks {
            stmt.execute(params![pk, now])?;
        }
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "UPDATE OR FAIL users SET version = version + 1, last_modified = ?2, origin = 'idp'
         WHERE pk IN (SELECT value FROM json_each(?1))",
    )?;
    for batch in pks.chunks(super::groups::BATCH) {
        stmt.execute(params![
            serde_json::Value::from(batch.to_vec()).to_string(),
            now
        ])?;
    }
    Ok(())
}

/// [`regrouped_all`] for every user member of group `group_pk`, before the group is renamed,
/// emptied or deleted. One pass over the group's membership index.
pub fn regrouped_members(conn: &Connection, group_pk: i64) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE OR FAIL users SET version = version + 1, last_modified = ?2, origin = 'idp'
         WHERE pk IN (SELECT member_user_pk FROM group_members
                      WHERE group_pk = ?1 AND member_user_pk IS NOT NULL)",
    )?
    .execute(params![group_pk, datetime::now()])?;
    Ok(())
}

fn insert(
    conn: &Connection,
    tenant_id: i64,
    data: &Map<String, Value>,
    origin: &str,
) -> Result<UserRow, DbError> {
    let user_name = Columns::of(data).user_name;
    if user_name_taken(conn, tenant_id, user_name, 0)? {
        return Err(conflict(user_name));
    }
    insert_unchecked(conn, tenant_id, data, origin)
}

/// [`insert`] for a userName nobody holds (a race is still refused by the unique index).
fn insert_unchecked(
    conn: &Connection,
    tenant_id: i64,
    data: &Map<String, Value>,
    origin: &str,
) -> Result<UserRow, DbError> {
    let c = Columns::of(data);
    let id = uuid::Uuid::now_v7().to_string();
    let now = datetime::now();
    let json = super::data_text(data);
    conn.prepare_cached(
        "INSERT OR FAIL INTO users (tenant_id, id, user_name, user_name_fold, external_id, display_name,
        display_name_fold, active, data, created, last_modified, version, origin)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, 1, ?11)",
    )?
    .execute(params![
        tenant_id,
        id,
        c.user_name,
        fold(c.user_name),
        c.external_id,
        c.display_name,
        c.display_name.map(fold),
        c.active,
        json,
        now,
        origin
    ])
    .map_err(user_name_violation(c.user_name))?;
    let pk = conn.last_insert_rowid();
    write_emails(conn, tenant_id, pk, data)?;
    Ok(UserRow {
        pk,
        id,
        data: data.clone(),
        created: now.clone(),
        last_modified: now,
        version: 1,
    })
}

/// Stores `data` as the new state of `row`, bumping its version. Any write through here
/// is the IdP's, so a seed becomes an IdP user.
pub fn replace(
    conn: &Connection,
    tenant_id: i64,
    row: &UserRow,
    data: Map<String, Value>,
) -> Result<UserRow, DbError> {
    store(conn, tenant_id, row, data, "idp")
}

/// Refreshes a seed from its member, keeping it a seed.
pub fn refresh_seed(
    conn: &Connection,
    tenant_id: i64,
    row: &UserRow,
    data: Map<String, Value>,
) -> Result<UserRow, DbError> {
    store(conn, tenant_id, row, data, "seed")
}

fn store(
    conn: &Connection,
    tenant_id: i64,
    row: &UserRow,
    data: Map<String, Value>,
    origin: &str,
) -> Result<UserRow, DbError> {
    let (was, c) = (Columns::of(&row.data), Columns::of(&data));
    let renamed = fold(c.user_name) != fold(was.user_name);
    if renamed && user_name_taken(conn, tenant_id, c.user_name, row.pk)? {
        return Err(conflict(c.user_name));
    }
    let now = datetime::now();
    let version = row.version + 1;
    let display_fold = c.display_name.map(fold);
    Assignments::new()
        .set("user_name", c.user_name.to_string())
        .set_if(renamed, "user_name_fold", fold(c.user_name))
        .set_if(
            c.external_id != was.external_id,
            "external_id",
            c.external_id.map(str::to_string),
        )
        .set("display_name", c.display_name.map(str::to_string))
        .set_if(
            display_fold != was.display_name.map(fold),
            "display_name_fold",
            display_fold,
        )
        .set("active", c.active)
        .set("data", super::data_text(&data))
        .set("last_modified", now.clone())
        .set("version", version)
        .set("origin", origin.to_string())
        .update(conn, "users", row.pk)
        .map_err(user_name_violation(c.user_name))?;
    // A member shown without the display its IdP sent is shown by this user's name: the
    // groups showing it so change too, and their ETags must move.
    if c.display_name != was.display_name || (c.display_name.is_none() && renamed) {
        conn.prepare_cached(
            "UPDATE OR FAIL groups SET version = version + 1, last_modified = ?2
             WHERE pk IN (SELECT group_pk FROM group_members
                          WHERE member_user_pk = ?1 AND display IS NULL)",
        )?
        .execute(params![row.pk, now])?;
    }
    // Rewriting the emails costs three b-trees a row: only when they changed.
    if emails_of(&data) != emails_of(&row.data) {
        conn.prepare_cached("DELETE FROM user_emails WHERE user_pk = ?1")?
            .execute([row.pk])?;
        write_emails(conn, tenant_id, row.pk, &data)?;
    }
    Ok(UserRow {
        pk: row.pk,
        id: row.id.clone(),
        data,
        created: row.created.clone(),
        last_modified: now,
        version,
    })
}

/// What `user_emails` holds of a user's emails: (folded value, folded type, primary), in
/// order, for those with a value.
fn emails_of(data: &Map<String, Value>) -> Vec<(String, Option<String>, bool)> {
    let Some(Value::Array(emails)) = data.get("emails") else {
        return Vec::new();
    };
    emails
        .iter()
        .filter_map(|email| {
            let value = email.get("value").and_then(Value::as_str)?;
            let kind = email.get("type").and_then(Value::as_str).map(fold);
            let primary = email
                .get("primary")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Some((fold(value), kind, primary))
        })
        .collect()
}

fn write_emails(
    conn: &Connection,
    tenant_id: i64,
    pk: i64,
    data: &Map<String, Value>,
) -> Result<(), DbError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO user_emails (user_pk, tenant_id, value_fold, type_fold, is_primary)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (value, kind, primary) in emails_of(data) {
        stmt.execute(params![pk, tenant_id, value, kind, primary])?;
    }
    Ok(())
}

/// Deletes the user `id` and its memberships; `NotFound` if there is none.
pub fn delete(conn: &Connection, tenant_id: i64, id: &str) -> Result<(), DbError> {
    let pk: i64 = conn
        .query_row(
            "SELECT pk FROM users WHERE tenant_id = ?1 AND id = ?2",
            params![tenant_id, id],
            |r| r.get(0),
        )
        .optional()?
        .ok_or(DbError::NotFound)?;
    // The groups it leaves change too: their ETags must move.
    conn.execute(
        "UPDATE OR FAIL groups SET version = version + 1, last_modified = ?2
         WHERE pk IN (SELECT group_pk FROM group_members WHERE member_user_pk = ?1)",
        params![pk, datetime::now()],
    )?;
    // And so do the users it manages: their `manager` loses its `$ref`.
    conn.prepare_cached(MANAGED_BY)?
        .execute(params![tenant_id, id, datetime::now()])?;
    conn.execute("DELETE FROM users WHERE pk = ?1", [pk])?;
    Ok(())
}

/// Moves the version of the tenant's users whose manager is user `?2`, through the
/// `users_manager` index (migration 0035), whose expression this repeats.
const MANAGED_BY: &str = r#"UPDATE OR FAIL users SET version = version + 1, last_modified = ?3
 WHERE tenant_id = ?1
   AND json_extract(data, '$."urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".manager.value') = ?2
   AND json_extract(data, '$."urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".manager.value') IS NOT NULL"#;

/// One page of the tenant's users matching `q`.
pub fn list(conn: &Connection, tenant_id: i64, q: &ListQuery) -> Result<Page<UserRow>, DbError> {
    let page = list_resuming(conn, tenant_id, q, None)?.0;
    Ok(Page {
        total: page.total,
        items: page
            .items
            .into_iter()
            .map(StoredUser::parse)
            .collect::<Result<_, _>>()?,
        next: page.next,
    })
}

/// [`list`], starting from `resume` when it still holds, and giving the positions it
/// learned (where the next `startIndex` page starts, and the marks of its step) (see [`paging::scim_page`]).
pub fn list_resuming(
    conn: &Connection,
    tenant_id: i64,
    q: &ListQuery,
    resume: Option<paging::Resume>,
) -> Result<(Page<StoredUser>, Vec<paging::Resume>), DbError> {
    paging::scim_page(
        conn,
        tenant_id,
        q,
        paging::Listed::Users,
        COLUMNS,
        stored_from_row,
        resume,
    )
}

/// The first page of a filtered user list, with each user's groups if `want_groups`, in
/// one statement when it holds every match (see [`paging::whole_first_page`]).
pub fn whole_first_page(
    conn: &Connection,
    tenant_id: i64,
    q: &ListQuery,
    want_groups: bool,
) -> Result<Option<Vec<WithGroups>>, DbError> {
    let users = Listed::Users;
    if want_groups {
        let columns = format!("{COLUMNS}, {GROUPS_JSON}");
        paging::whole_first_page(conn, tenant_id, q, users, &columns, |r| {
            Ok((stored_from_row(r)?, groups_from_json(r, 6)?))
        })
    } else {
        paging::whole_first_page(conn, tenant_id, q, users, COLUMNS, |r| {
            Ok((stored_from_row(r)?, Vec::new()))
        })
    }
}

/// The query for the groups of `n` users: each membership with its group's pk, id and
/// name. Each user's groups come in group order, sorted by [`groups_of`] rather than by
/// `ORDER BY`: SQLite would sort every row of the page in a sorter of its own, on every
/// read of a user. `CROSS JOIN` keeps the memberships the outer loop whatever the
/// statistics say: from the user through group_members_by_user, which holds the group
/// too, never from each group of the tenant.
pub(super) fn groups_of_sql(n: usize) -> String {
    let marks = vec!["?"; n].join(",");
    format!(
        "SELECT gm.member_user_pk, g.pk, g.id, g.display_name FROM group_members gm
         CROSS JOIN groups g ON g.pk = gm.group_pk
         WHERE gm.member_user_pk IN ({marks})"
    )
}

/// The direct groups of each user in `pks`, for rendering `User.groups`.
pub fn groups_of(conn: &Connection, pks: &[i64]) -> Result<HashMap<i64, Vec<GroupRef>>, DbError> {
    let mut found: HashMap<i64, Vec<(i64, GroupRef)>> = HashMap::with_capacity(pks.len());
    for chunk in pks.chunks(500) {
        let mut stmt = conn.prepare_cached(&groups_of_sql(chunk.len()))?;
        let mut rows = stmt.query(params_from_iter(chunk))?;
        while let Some(r) = rows.next()? {
            let group = GroupRef {
                id: r.get(2)?,
                display: r.get(3)?,
            };
            found.entry(r.get(0)?).or_default().push((r.get(1)?, group));
        }
    }
    Ok(found
        .into_iter()
        .map(|(user, groups)| (user, in_group_order(groups)))
        .collect())
}

/// Which of `ids` name users of the tenant. For a rendered `manager`.
pub fn existing_ids(
    conn: &Connection,
    tenant_id: i64,
    ids: &[&str],
) -> Result<std::collections::HashSet<String>, DbError> {
    let mut out = std::collections::HashSet::new();
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare(&format!(
            "SELECT id FROM users WHERE tenant_id = ? AND id IN ({marks})"
        ))?;
        let args = std::iter::once(&tenant_id as &dyn rusqlite::ToSql)
            .chain(chunk.iter().map(|id| id as &dyn rusqlite::ToSql));
        let mut rows = stmt.query(params_from_iter(args))?;
        while let Some(r) = rows.next()? {
            out.insert(r.get(0)?);
        }
    }
    Ok(out)
}

/// How many users and groups the tenant's directory holds.
pub fn counts(conn: &Connection, tenant_id: i64) -> Result<(i64, i64), DbError> {
    let (users, _) = paging::tenant_count(conn, tenant_id, Listed::Users)?;
    let (groups, _) = paging::tenant_count(conn, tenant_id, Listed::Groups)?;
    Ok((users as i64, groups as i64))
}

/// Its condition is the `users_inactive` index's own, so that index answers it alone.
const COUNT_INACTIVE: &str =
    "SELECT count(*) FROM users WHERE tenant_id = ?1 AND coalesce(active, 1) <> 1";

/// How many of the tenant's users are active (or say nothing about it): the stored count
/// less the users of the `users_inactive` index, which holds no active one.
pub fn count_active(conn: &Connection, tenant_id: i64) -> Result<i64, DbError> {
    let (users, _) = paging::tenant_count(conn, tenant_id, Listed::Users)?;
    let inactive: i64 = conn
        .prepare_cached(COUNT_INACTIVE)?
        .query_row([tenant_id], |r| r.get(0))?;
    Ok(users as i64 - inactive)
}

// --- What sync reads ---------------------------------------------------------------------

fn parse_data(pk: i64, data: &str) -> Result<Map<String, Value>, DbError> {
    serde_json::from_str(data)
        .map_err(|e| DbError::Schema(format!("user {pk}: stored data is not JSON: {e}")))
}

/// The directory users `pks` of the tenant (the IdP's, never seeds) with their direct
/// groups, leaving out `without_group` (a group being deleted).
pub fn directory_users(
    conn: &Connection,
    tenant_id: i64,
    pks: &[i64],
    without_group: Option<i64>,
) -> Result<Vec<DirectoryUser>, DbError> {
    let mut out = Vec::with_capacity(pks.len());
    for chunk in pks.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare_cached(&directory_groups_sql(chunk.len()))?;
        let params: Vec<SqlValue> = chunk
            .iter()
            .map(|&pk| pk.into())
            .chain([without_group.into()])
            .collect();
        let mut groups = read_groups(stmt.query(params_from_iter(&params))?)?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT pk, id, data FROM users WHERE tenant_id = ? AND origin = 'idp' AND pk IN ({marks}) ORDER BY pk"
        ))?;
        let params: Vec<SqlValue> = std::iter::once(tenant_id.into())
            .chain(chunk.iter().map(|&pk| pk.into()))
            .collect();
        read_directory_users(stmt.query(params_from_iter(&params))?, &mut groups, |u| {
            out.push(u);
            true
        })?;
    }
    Ok(out)
}

/// The query for the direct groups of `n` users (`?1` to `?n`), each user's in group
/// order, leaving out group `?{n+1}` (none when NULL). Ordered as group_members_by_user
/// holds them, so no write's sync hook sorts them in a temporary b-tree.
pub(super) fn directory_groups_sql(n: usize) -> String {
    let marks = vec!["?"; n].join(",");
    format!(
        "SELECT gm.member_user_pk, g.id, g.display_name FROM group_members gm
         JOIN groups g ON g.pk = gm.group_pk
         WHERE gm.member_user_pk IN ({marks}) AND g.pk IS NOT ?{}
         ORDER BY gm.member_user_pk, gm.group_pk",
        n + 1
    )
}

/// `trim(col, …)` of the white space Rust's `str::trim` trims (`char::is_whitespace`), as
/// migration 0037's indexes of padded userNames and emails write it: written the same, so
/// that SQLite uses them.
macro_rules! trimmed {
    ($col:literal) => {
        concat!(
            "trim(",
            $col,
            ", char(9, 10, 11, 12, 13, 32, 133, 160, 5760, 8192, 8193, 8194, 8195, 8196, 8197, 8198, 8199, 8200, 8201, 8202, 8232, 8233, 8239, 8287, 12288))"
        )
    };
}

/// The directory users of tenant `tenant_id` who may match by `key` (an email or userName,
/// folded and trimmed, as `sync::plan` matches by): by SCIM id, those whose userName or any
/// email is `key` once trimmed.
pub fn holding_key(conn: &Connection, tenant_id: i64, key: &str) -> Result<Vec<String>, DbError> {
    let ids = conn
        .prepare_cached(HOLDING_KEY)?
        .query_map(params![tenant_id, key], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// By the indexes of the folds, and by those of the few padded ones (`users_padded`,
/// `user_emails_padded`).
const HOLDING_KEY: &str = concat!(
    "SELECT id FROM users WHERE tenant_id = ?1 AND user_name_fold = ?2 AND origin = 'idp'
     UNION
     SELECT id FROM users WHERE tenant_id = ?1 AND user_name_fold <> ",
    trimmed!("user_name_fold"),
    " AND ",
    trimmed!("user_name_fold"),
    " = ?2 AND origin = 'idp'
     UNION
     SELECT u.id FROM user_emails e JOIN users u ON u.pk = e.user_pk
      WHERE e.value_fold = ?2 AND e.tenant_id = ?1 AND u.origin = 'idp'
     UNION
     SELECT u.id FROM user_emails e JOIN users u ON u.pk = e.user_pk
      WHERE e.tenant_id = ?1 AND e.value_fold <> ",
    trimmed!("e.value_fold"),
    " AND ",
    trimmed!("e.value_fold"),
    " = ?2 AND u.origin = 'idp'"
);

/// The pks of tenant `tenant_id`'s directory users (not seeds) with these SCIM ids, in pk
/// order: the directory's.
pub fn directory_pks(conn: &Connection, tenant_id: i64, ids: &[&str]) -> Result<Vec<i64>, DbError> {
    let mut pks = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT pk FROM users WHERE tenant_id = ? AND origin = 'idp' AND id IN ({marks})"
        ))?;
        let params = std::iter::once(SqlValue::Integer(tenant_id))
            .chain(chunk.iter().map(|id| SqlValue::Text(id.to_string())));
        for pk in stmt.query_map(params_from_iter(params), |r| r.get(0))? {
            pks.push(pk?);
        }
    }
    pks.sort_unstable();
    Ok(pks)
}

/// [`directory_users`] for a user the IdP has just written (`row`, as stored): its groups
/// are read, the user itself is not read back and parsed again.
pub fn written_directory_user(conn: &Connection, row: &UserRow) -> Result<DirectoryUser, DbError> {
    let mut stmt = conn.prepare_cached(&directory_groups_sql(1))?;
    let groups = read_groups(stmt.query(params![row.pk, None::<i64>])?)?.of(row.pk);
    Ok(DirectoryUser::from_data(&row.id, &row.data, groups))
}

/// Every directory user of the tenant with its direct groups.
pub fn all_directory_users(
    conn: &Connection,
    tenant_id: i64,
) -> Result<Vec<DirectoryUser>, DbError> {
    // Room for them all at once: growing a vector of 100 000 people copies it over and
    // over, and faults in fresh pages each time.
    let (users, _) = paging::tenant_count(conn, tenant_id, Listed::Users)?;
    let mut out = Vec::with_capacity(users as usize);
    each_directory_user(conn, tenant_id, |user| {
        out.push(user);
        true
    })?;
    Ok(out)
}

/// [`all_directory_users`], handed to `take` one at a time in pk order as they are read,
/// until it returns `false`.
pub fn each_directory_user(
    conn: &Connection,
    tenant_id: i64,
    take: impl FnMut(DirectoryUser) -> bool,
) -> Result<(), DbError> {
    let mut stmt = conn.prepare(
        "SELECT gm.member_user_pk, g.id, g.display_name FROM group_members gm
         JOIN groups g ON g.pk = gm.group_pk
         WHERE g.tenant_id = ?1 AND gm.member_user_pk IS NOT NULL ORDER BY g.pk",
    )?;
    let mut groups = read_groups(stmt.query([tenant_id])?)?;
    let mut stmt = conn.prepare(
        "SELECT pk, id, data FROM users WHERE tenant_id = ?1 AND origin = 'idp' ORDER BY pk",
    )?;
    read_directory_users(stmt.query([tenant_id])?, &mut groups, take)
}

/// Users' direct groups, in the order of the users' pks, to take as the users are read in
/// that order: sorting the memberships once costs a tenth of looking each user's up in a
/// map of 100 000.
struct Memberships {
    /// `(user pk, group)`, each user's groups in the order they were read.
    by_user: std::iter::Peekable<std::vec::IntoIter<(i64, DirectoryGroup)>>,
}

impl Memberships {
    /// The groups of user `pk`, which must not come before a user taken already.
    fn of(&mut self, pk: i64) -> Vec<DirectoryGroup> {
        // Users not read (seeds) hold memberships too.
        while self.by_user.next_if(|(user, _)| *user < pk).is_some() {}
        let mut groups = Vec::new();
        while let Some((_, g)) = self.by_user.next_if(|(user, _)| *user == pk) {
            groups.push(g);
        }
        groups
    }
}

/// Reads `(member_user_pk, group id, group displayName)` rows into each user's groups.
fn read_groups(mut rows: rusqlite::Rows) -> Result<Memberships, DbError> {
    let mut by_user = Vec::new();
    // Each group's strings are made once and shared by its members.
    let mut seen: HashMap<Arc<str>, DirectoryGroup> = HashMap::new();
    while let Some(r) = rows.next()? {
        let id = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
        let group = match seen.get(id) {
            Some(g) => g.clone(),
            None => {
                let g = DirectoryGroup {
                    id: id.into(),
                    display_name: r.get::<_, String>(2)?.into(),
                };
                seen.insert(g.id.clone(), g.clone());
                g
            }
        };
        by_user.push((r.get(0)?, group));
    }
    // Stable: each user's groups keep the order they were read in.
    by_user.sort_by_key(|(user, _)| *user);
    Ok(Memberships {
        by_user: by_user.into_iter().peekable(),
    })
}

/// Reads `(pk, id, data)` user rows into directory users carrying their groups.
fn read_directory_users(
    mut rows: rusqlite::Rows,
    groups: &mut Memberships,
    mut take: impl FnMut(DirectoryUser) -> bool,
) -> Result<(), DbError> {
    while let Some(r) = rows.next()? {
        let pk: i64 = r.get(0)?;
        let id: String = r.get(1)?;
        let text = r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?;
        let groups = groups.of(pk);
        let user = match serde_json::from_str::<SyncFields>(text) {
            Ok(fields) => fields.into_user(id, groups),
            // Whatever the shortcut cannot read (a key twice, a value of another type
            // than SCIM's) takes the long way, which reads it as `from_data` always has.
            Err(_) => DirectoryUser::from_data(&id, &parse_data(pk, text)?, groups),
        };
        if !take(user) {
            break;
        }
    }
    Ok(())
}

/// The members of a stored user that `DirectoryUser::from_data` reads, and only those,
/// typed as SCIM has them: parsing a user's whole JSON for six keys was a third of a full
/// sync's plan, and building a JSON tree of those six another tenth. Absent and `null`
/// read alike in `from_data`, as they do here; a value of another type fails the parse.
/// The profile attributes are read as JSON values: most users have none or a few.
#[derive(serde::Deserialize)]
struct SyncFields<'a> {
    title: Option<Value>,
    #[serde(rename = "userType")]
    user_type: Option<Value>,
    #[serde(rename = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")]
    enterprise: Option<Value>,
    #[serde(rename = "userName", borrow)]
    user_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    emails: Option<Vec<SyncEmail<'a>>>,
    #[serde(borrow)]
    name: Option<SyncName<'a>>,
    #[serde(rename = "displayName", borrow)]
    display_name: Option<Cow<'a, str>>,
    active: Option<bool>,
    #[serde(rename = "externalId")]
    external_id: Option<Value>,
}

#[derive(serde::Deserialize)]
struct SyncEmail<'a> {
    #[serde(borrow)]
    value: Option<Cow<'a, str>>,
    primary: Option<bool>,
}

#[derive(serde::Deserialize)]
struct SyncName<'a> {
    #[serde(rename = "givenName", borrow)]
    given_name: Option<Cow<'a, str>>,
    #[serde(rename = "familyName", borrow)]
    family_name: Option<Cow<'a, str>>,
}

impl SyncFields<'_> {
    /// What `DirectoryUser::from_data` makes of the same JSON.
    fn into_user(self, id: String, groups: Vec<DirectoryGroup>) -> DirectoryUser {
        let text = |v: Option<&str>| v.and_then(member_text);
        let emails = self.emails.unwrap_or_default();
        let email = DirectoryUser::chosen_email(&emails, |e| e.primary == Some(true));
        let (given_name, family_name) = match self.name {
            Some(n) => (
                text(n.given_name.as_deref()),
                text(n.family_name.as_deref()),
            ),
            None => (None, None),
        };
        DirectoryUser {
            id,
            user_name: text(self.user_name.as_deref()).unwrap_or_default(),
            email: text(email.and_then(|e| e.value.as_deref())),
            given_name,
            family_name,
            display_name: text(self.display_name.as_deref()),
            active: self.active,
            groups,
            external_id: self.external_id,
            attributes: profile_attributes(self.title, self.user_type, self.enterprise),
        }
    }
}

/// [`resource::profile_attributes`] of a user whose data holds (only) these.
fn profile_attributes(
    title: Option<Value>,
    user_type: Option<Value>,
    enterprise: Option<Value>,
) -> Map<String, Value> {
    if title.is_none() && user_type.is_none() && enterprise.is_none() {
        return Map::new();
    }
    let named = [
        ("title", title),
        ("userType", user_type),
        (ENTERPRISE_URN, enterprise),
    ];
    let data = named
        .into_iter()
        .filter_map(|(name, v)| Some((name.to_string(), v?)))
        .collect();
    resource::profile_attributes(&data)
}

/// How a group's feed names a user that joined or left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    /// The id of the user's member, when it has one.
    pub member_id: Option<String>,
}

/// The users `pks` of the tenant, in pk order, with the ids of their members.
pub fn ids_and_names(
    conn: &Connection,
    tenant_id: i64,
    pks: &[i64],
) -> Result<Vec<Named>, DbError> {
    let mut out = Vec::with_capacity(pks.len());
    for chunk in pks.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT u.id, u.user_name, u.external_id, m.id FROM users u
             LEFT JOIN members m ON m.tenant_id = ?1 AND m.user_id = u.id
             WHERE u.pk IN ({marks}) ORDER BY u.pk"
        ))?;
        let args = std::iter::once(tenant_id).chain(chunk.iter().copied());
        let rows = stmt.query_map(params_from_iter(args), |r| {
            Ok(Named {
                id: r.get(0)?,
                user_name: r.get(1)?,
                external_id: r.get(2)?,
                member_id: r.get(3)?,
            })
        })?;
        for row in rows {
            out.push(row?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::db::{check, scratch_db as fresh_db};
    use crate::scim::resource::normalize;
    use crate::scim::schema::USER_RESOURCE;

    fn user(v: Value) -> Map<String, Value> {
        normalize(&USER_RESOURCE, v).unwrap()
    }

    /// The people holding a key are found by key, with white space at the key's edges
    /// (a padded userName or email) as the plan trims it, in an index, not a scan.
    #[test]
    fn the_holders_of_a_key_are_found_trimmed_by_index() {
        let conn = fresh_db();
        let padded = create(
            &conn,
            1,
            &user(json!({"userName": " Ada\t", "emails": [{"value": "\u{a0}ADA@x.io "}]})),
        )
        .unwrap();
        let other = create(&conn, 1, &user(json!({"userName": "ada@x.io"}))).unwrap();
        assert_eq!(
            holding_key(&conn, 1, "ada").unwrap(),
            std::slice::from_ref(&padded.id)
        );
        let mut both = holding_key(&conn, 1, "ada@x.io").unwrap();
        both.sort();
        let mut want = vec![padded.id, other.id];
        want.sort();
        assert_eq!(both, want);
        assert_eq!(holding_key(&conn, 2, "ada").unwrap(), Vec::<String>::new());
        let plan = paging::plan_of(&conn, HOLDING_KEY, &[1.into(), "ada".to_string().into()]);
        for index in ["users_user_name", "users_padded", "user_emails_padded"] {
            assert!(plan.contains(&format!("USING INDEX {index}")), "{plan}");
        }
        assert!(
            plan.contains("USING COVERING INDEX") || plan.contains("user_emails_value"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN"), "{plan}");
    }

    /// Deleting a user moves the version of the users it manages, and theirs only, found
    /// through the `users_manager` index rather than a walk of the tenant's users.
    #[test]
    fn deleting_a_manager_moves_the_versions_of_the_users_it_manages_alone() {
        let conn = fresh_db();
        let boss = create(&conn, 1, &user(json!({"userName": "boss"}))).unwrap();
        let managed = |name: &str| {
            user(json!({"userName": name, ENTERPRISE_URN: {"manager": {"value": boss.id}}}))
        };
        let worker = create(&conn, 1, &managed("worker")).unwrap();
        let other = create(&conn, 1, &user(json!({"userName": "other"}))).unwrap();
        let version = |id: &str| get(&conn, 1, id).unwrap().unwrap().version;
        let (w, o) = (version(&worker.id), version(&other.id));
        delete(&conn, 1, &boss.id).unwrap();
        assert_eq!(version(&worker.id), w + 1);
        assert_eq!(version(&other.id), o);
        let args = [1i64.into(), SqlValue::Text(boss.id.clone()), SqlValue::Null];
        let plan = crate::db::paging::plan_of(&conn, MANAGED_BY, &args);
        assert!(plan.contains("INDEX users_manager"), "{plan}");
    }

    /// A deep `startIndex` page asked out of order steps from the nearest position a page
    /// before it left, and leaves one every `MARK_EVERY` rows on its way: each gives the
    /// rows one big page gives there, and a deletion in the tenant since voids them.
    #[test]
    fn deep_start_index_pages_step_from_the_nearest_mark() {
        use crate::db::paging::MARK_EVERY;
        let conn = fresh_db();
        let n = 2 * MARK_EVERY as usize + 500;
        for i in 0..n {
            create(&conn, 1, &user(json!({"userName": format!("u{i:05}")}))).unwrap();
        }
        let query = |start_index: u64, count: u64| ListQuery {
            start_index,
            count,
            ..Default::default()
        };
        let ids = |page: &Page<StoredUser>| -> Vec<String> {
            page.items.iter().map(|u| u.id.clone()).collect()
        };
        let everyone = ids(&list_resuming(&conn, 1, &query(1, n as u64), None)
            .unwrap()
            .0);
        let slice = |from: u64, count: usize| everyone[from as usize - 1..][..count].to_vec();

        let deep = n as u64 - 100;
        let (page, learned) = list_resuming(&conn, 1, &query(deep, 10), None).unwrap();
        assert_eq!(ids(&page), slice(deep, 10));
        let marks: Vec<u64> = learned.iter().map(|r| r.start_index).collect();
        let m1 = MARK_EVERY + 1;
        assert_eq!(marks, [m1, 2 * MARK_EVERY + 1, deep + 10]);
        let second = learned[1];
        for start in [second.start_index, second.start_index + 1, deep - 7] {
            let (page, _) = list_resuming(&conn, 1, &query(start, 10), Some(second)).unwrap();
            assert_eq!(ids(&page), slice(start, 10), "from the mark to {start}");
        }
        // Past the end from a mark: empty, and still the whole count.
        let (page, _) = list_resuming(&conn, 1, &query(n as u64 + 5, 10), Some(second)).unwrap();
        assert!(page.items.is_empty());
        assert_eq!(page.total, n as u64);

        // A deletion before the mark: the mark no longer holds and is not used.
        delete(&conn, 1, &everyone[3]).unwrap();
        let after: Vec<String> = everyone
            .iter()
            .filter(|id| **id != everyone[3])
            .cloned()
            .collect();
        let (page, learned) = list_resuming(&conn, 1, &query(deep, 10), Some(second)).unwrap();
        assert_eq!(ids(&page), after[deep as usize - 1..][..10].to_vec());
        assert!(learned.iter().all(|r| r.deleted == second.deleted + 1));
    }

    /// The pks each lookup index finds for `key`: by userName, externalId, displayName
    /// and email (all folded but externalId).
    fn found(conn: &Connection, key: &str) -> [Vec<i64>; 4] {
        let pks = |sql: &str| -> Vec<i64> {
            let mut stmt = conn.prepare(sql).unwrap();
            stmt.query_map([key], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        [
            pks("SELECT pk FROM users WHERE tenant_id = 1 AND user_name_fold = lower(?1)"),
            pks("SELECT pk FROM users WHERE tenant_id = 1 AND external_id = ?1"),
            pks("SELECT pk FROM users WHERE tenant_id = 1 AND display_name_fold = lower(?1)"),
            pks("SELECT user_pk FROM user_emails WHERE value_fold = lower(?1)"),
        ]
    }

    /// The dashboard's counts, read from the stored counts and the inactive users' index,
    /// agree with counting every row, through creates, replaces and deletes.
    #[test]
    fn the_dashboard_counts_agree_with_counting_every_row() {
        let conn = fresh_db();
        crate::db::tenants::create(&conn, "other", "Other").unwrap();
        let mut rows = Vec::new();
        for (i, active) in [json!(true), json!(false), Value::Null, json!(false)]
            .into_iter()
            .enumerate()
        {
            let mut data = json!({"userName": format!("u{i}")});
            if !active.is_null() {
                data["active"] = active;
            }
            rows.push(create(&conn, 1, &user(data)).unwrap());
        }
        create(&conn, 2, &user(json!({"userName": "x", "active": false}))).unwrap();
        let counted = |conn: &Connection| -> (i64, i64) {
            conn.query_row(
                "SELECT count(*), count(*) FILTER (WHERE coalesce(active, 1) = 1)
                 FROM users WHERE tenant_id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        let check = |conn: &Connection, active: i64| {
            assert_eq!(counted(conn), (counts(conn, 1).unwrap().0, active));
            assert_eq!(count_active(conn, 1).unwrap(), active);
        };
        check(&conn, 2);
        let set_active = |row: &UserRow, name: &str, active: bool| {
            let data = user(json!({"userName": name, "active": active}));
            replace(&conn, 1, row, data).unwrap();
        };
        set_active(&rows[1], "u1", true);
        check(&conn, 3);
        set_active(&rows[0], "u0", false);
        check(&conn, 2);
        delete(&conn, 1, &rows[3].id).unwrap();
        check(&conn, 2);
        let plan = crate::db::paging::plan_of(&conn, COUNT_INACTIVE, &[1.into()]);
        assert!(plan.contains("COVERING INDEX users_inactive"), "{plan}");
    }

    /// A whole-tenant read takes a typed shortcut through each user's JSON; whatever the
    /// JSON holds, the directory user is the one `DirectoryUser::from_data` makes of it.
    #[test]
    fn the_whole_tenant_read_reads_users_as_from_data_does() {
        let conn = fresh_db();
        let stored = [
            r#"{"userName":"ada@x.org","active":false,"name":{"givenName":"Ada","familyName":"Lovelace"},"displayName":"Ada L","emails":[{"value":"a2@x.org"},{"value":"ada@x.org","primary":true,"type":"work"}],"externalId":"00u1"}"#,
            r#"{"userName":"caf\u00e9 \"q\"","emails":[],"name":null,"externalId":7}"#,
            r#"{"userName":"b","emails":[{"value":"b1@x.org","primary":false},{"value":"b2@x.org"}]}"#,
            r#"{"userName":"c","emails":[{"primary":true},{"value":"c2@x.org"}],"active":null}"#,
            r#"{"userName":"d","active":"yes","emails":[{"value":5}]}"#,
            r#"{"userName":"e","userName":"e2","name":"Eve"}"#,
            r#"{"userName":"f","emails":[{"value":"f@x.org","primary":"true"}],"name":{"givenName":1}}"#,
            r#"{"userName":null,"emails":null,"displayName":{"x":1}}"#,
            r#"{"userName":"g","title":"Lead","userType":null,"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"R&D","costCenter":7,"manager":{"value":"m1"}}}"#,
            r#"{"userName":"h","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":"odd"}"#,
            r#"{"userName":"i","name":{"givenName":" Ivy ","familyName":" "},"displayName":"\t"}"#,
            r#"{"userName":" j@x.org ","emails":[{"value":" J@X.org\n","primary":true}]}"#,
            r#"{"userName":"  ","emails":[{"value":" "}]}"#,
        ];
        for (i, data) in stored.iter().enumerate() {
            let row = create(&conn, 1, &user(json!({"userName": format!("u{i}")}))).unwrap();
            conn.execute(
                "UPDATE users SET data = ?2 WHERE pk = ?1",
                params![row.pk, data],
            )
            .unwrap();
        }
        let read = all_directory_users(&conn, 1).unwrap();
        assert_eq!(read.len(), stored.len());
        for (user, data) in read.iter().zip(stored) {
            let long_way =
                DirectoryUser::from_data(&user.id, &parse_data(0, data).unwrap(), vec![]);
            assert_eq!(user, &long_way, "{data}");
        }
        assert_eq!(read[0].email.as_deref(), Some("ada@x.org"));
        assert_eq!(read[1].user_name, "caf\u{e9} \"q\"");
        let person = |u: &DirectoryUser| (u.user_name.clone(), u.email.clone());
        assert_eq!(
            person(&read[11]),
            ("j@x.org".into(), Some("J@X.org".into()))
        );
        assert_eq!(person(&read[12]), (String::new(), None));
        assert_eq!(
            Value::Object(read[8].attributes.clone()),
            json!({"title": "Lead", "department": "R&D", "costCenter": 7, "manager": "m1"})
        );
    }

    /// What the sync hook builds from a user just written is what reading it back gives:
    /// the same person, with the same groups in the same order.
    #[test]
    fn a_written_user_is_the_directory_user_read_back() {
        use crate::db::groups::{self, ResolvedMember};
        use crate::scim::patch::MemberKind;
        use crate::scim::schema::GROUP_RESOURCE;
        let conn = fresh_db();
        let row = create(
            &conn,
            1,
            &user(json!({"userName": "ada@x.org", "active": false,
            "name": {"givenName": "Ada", "familyName": "Lovelace"}, "displayName": "Ada L",
            "emails": [{"value": "a2@x.org"}, {"value": "ada@x.org", "primary": true}]})),
        )
        .unwrap();
        let alone = written_directory_user(&conn, &row).unwrap();
        assert_eq!(directory_users(&conn, 1, &[row.pk], None).unwrap(), [alone]);
        for name in ["Zeta", "Alpha", "Mid"] {
            let g = normalize(&GROUP_RESOURCE, json!({"displayName": name})).unwrap();
            let g = groups::create(&conn, 1, &g).unwrap();
            let me = ResolvedMember {
                kind: MemberKind::User,
                pk: row.pk,
                display: None,
            };
            groups::add_members(&conn, g.pk, &[me]).unwrap();
        }
        let written = written_directory_user(&conn, &row).unwrap();
        let names: Vec<&str> = written.groups.iter().map(|g| &*g.display_name).collect();
        assert_eq!(
            names,
            ["Zeta", "Alpha", "Mid"],
            "in the order the groups were made"
        );
        assert_eq!(
            directory_users(&conn, 1, &[row.pk], None).unwrap(),
            [written]
        );
    }

    /// A write assigns the columns an index holds, and rewrites the emails, only when they
    /// change. What it keeps is still found by its old values, what it changes only by
    /// its new ones, and every index agrees with its table.
    #[test]
    fn a_replaced_user_is_found_by_what_it_now_holds() {
        let conn = fresh_db();
        let ada = |name: &str, ext: &str, shown: &str, email: &str, active: bool| {
            user(
                json!({"userName": name, "externalId": ext, "displayName": shown, "active": active,
                        "emails": [{"value": email, "type": "work", "primary": true}]}),
            )
        };
        let row = create(&conn, 1, &ada("ada", "e1", "Ada L", "ada@x.org", true)).unwrap();
        let other = create(&conn, 1, &user(json!({"userName": "bob"}))).unwrap();
        let pk = row.pk;

        // Only `active` changes: every lookup still finds her.
        let row = replace(
            &conn,
            1,
            &row,
            ada("ada", "e1", "Ada L", "ada@x.org", false),
        )
        .unwrap();
        for key in ["ada", "e1", "Ada L", "ada@x.org"] {
            assert!(found(&conn, key).iter().any(|f| f == &[pk]), "{key}");
        }
        let active: bool = conn
            .query_row("SELECT active FROM users WHERE pk = ?1", [pk], |r| r.get(0))
            .unwrap();
        assert!(!active);

        // A change of case: stored as sent, found as before, still not bob's to take.
        let row = replace(
            &conn,
            1,
            &row,
            ada("ADA", "e1", "ADA L", "ada@x.org", false),
        )
        .unwrap();
        let stored: (String, String) = conn
            .query_row(
                "SELECT user_name, display_name FROM users WHERE pk = ?1",
                [pk],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(stored, ("ADA".into(), "ADA L".into()));
        assert_eq!(found(&conn, "ada")[0], [pk]);
        assert!(replace(&conn, 1, &other, user(json!({"userName": "Ada"}))).is_err());

        // Everything changes: found only by the new values, and the old name is free.
        let row = replace(
            &conn,
            1,
            &row,
            ada("grace", "e2", "Grace H", "grace@x.org", true),
        )
        .unwrap();
        assert_eq!(found(&conn, "grace@x.org")[3], [pk]);
        assert_eq!(found(&conn, "e2")[1], [pk]);
        assert_eq!(found(&conn, "Grace H")[2], [pk]);
        assert_eq!(found(&conn, "grace")[0], [pk]);
        for key in ["ada", "e1", "Ada L", "ada@x.org"] {
            assert!(found(&conn, key).iter().all(Vec::is_empty), "{key}");
        }
        replace(&conn, 1, &other, user(json!({"userName": "Ada"}))).unwrap();

        // Emails dropped, then the same email with another type.
        let row = replace(&conn, 1, &row, user(json!({"userName": "grace"}))).unwrap();
        assert!(found(&conn, "grace@x.org")[3].is_empty());
        replace(
            &conn,
            1,
            &row,
            user(json!({"userName": "grace",
            "emails": [{"value": "grace@x.org", "type": "home"}]})),
        )
        .unwrap();
        let kind: String = conn
            .query_row(
                "SELECT type_fold FROM user_emails WHERE user_pk = ?1",
                [pk],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kind, "home");
        assert_eq!(check(&conn).unwrap(), Vec::<String>::new());
    }
}
