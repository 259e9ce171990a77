//! Members: the organisation's people as apps consume them. Sync creates and changes them
//! from the directory; admins create them by hand or by CSV import before provisioning.
//!
//! Emails and userNames are unique per tenant, case-insensitively (folded copies carry
//! the unique indexes), because sync matches people by them.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde::Serialize;
use serde_json::Value;

use super::DbError;
use super::paging::{Conditions, Cursor, Direction, Keyset};
use crate::model::{Field, Link, Member, MemberSource, MemberStatus, Profile, Role};
use crate::scim::datetime;
use crate::scim::filter::fold;

/// A stored member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRow {
    #[serde(skip)]
    pub pk: i64,
    #[serde(skip)]
    pub tenant_id: i64,
    pub id: String,
    #[serde(flatten)]
    pub profile: Profile,
    pub role: Role,
    pub role_reason: String,
    pub status: MemberStatus,
    pub managed: bool,
    pub source: MemberSource,
    /// SCIM id of the linked directory user (kept after the IdP deletes it).
    pub user_id: Option<String>,
    /// Whether that directory user still exists.
    #[serde(skip)]
    pub user_exists: bool,
    pub created_at: String,
    pub updated_at: String,
    /// Suspended by the grace period: deleted at this time unless reactivated first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_after: Option<String>,
}

impl MemberRow {
    /// The member as `sync::plan` sees it.
    pub fn to_sync(&self) -> Member {
        Member {
            pk: self.pk,
            id: self.id.clone(),
            profile: self.profile.clone(),
            role: self.role.clone(),
            role_reason: self.role_reason.clone(),
            status: self.status,
            managed: self.managed,
            source: self.source,
            link: link(self.user_id.clone(), self.user_exists),
            deletion_scheduled: self.delete_after.is_some(),
        }
    }
}

/// A member's link to its directory user `user_id`, which exists or not.
fn link(user_id: Option<String>, exists: bool) -> Link {
    match user_id {
        None => Link::None,
        Some(id) if exists => Link::Live(id),
        Some(id) => Link::Gone(id),
    }
}

const SELECT: &str = "SELECT m.pk, m.id, m.email, m.user_name, m.given_name, m.family_name,
        m.display_name, m.role, m.role_reason, m.status, m.managed, m.source, m.user_id,
        u.pk IS NOT NULL, m.created_at, m.updated_at, m.tenant_id, m.delete_after
    FROM members m LEFT JOIN users u ON u.id = m.user_id AND u.tenant_id = m.tenant_id";

/// Column `i` of `r`, text parsed as a `T`.
fn parsed<T: std::str::FromStr>(r: &Row, i: usize) -> rusqlite::Result<T>
where
    T::Err: std::fmt::Display,
{
    let text = r.get_ref(i)?.as_str().map_err(rusqlite::Error::from)?;
    text.parse().map_err(|e: T::Err| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            e.to_string().into(),
        )
    })
}

/// Columns 2 to 6 of a member query: its profile.
fn profile(r: &Row) -> rusqlite::Result<Profile> {
    Ok(Profile {
        email: r.get(2)?,
        user_name: r.get(3)?,
        given_name: r.get(4)?,
        family_name: r.get(5)?,
        display_name: r.get(6)?,
    })
}

fn from_row(r: &Row) -> rusqlite::Result<MemberRow> {
    Ok(MemberRow {
        pk: r.get(0)?,
        id: r.get(1)?,
        profile: profile(r)?,
        role: parsed(r, 7)?,
        role_reason: r.get(8)?,
        status: parsed(r, 9)?,
        managed: r.get(10)?,
        source: parsed(r, 11)?,
        user_id: r.get(12)?,
        user_exists: r.get(13)?,
        created_at: r.get(14)?,
        updated_at: r.get(15)?,
        tenant_id: r.get(16)?,
        delete_after: r.get(17)?,
    })
}

pub fn get_by_pk(conn: &Connection, pk: i64) -> Result<Option<MemberRow>, DbError> {
    Ok(conn
        .prepare_cached(&format!("{SELECT} WHERE m.pk = ?1"))?
        .query_row([pk], from_row)
        .optional()?)
}

pub fn get(conn: &Connection, tenant_id: i64, id: &str) -> Result<Option<MemberRow>, DbError> {
    Ok(conn
        .prepare_cached(&format!("{SELECT} WHERE m.tenant_id = ?1 AND m.id = ?2"))?
        .query_row(params![tenant_id, id], from_row)
        .optional()?)
}

/// The pk of the first member of `tenant_id` (every tenant when `None`) linked to a
/// directory user whose SCIM id sorts after `user_id`: where the member of a user that is
/// gone stood in pk order, for a pushed user's member is made with it and SCIM ids are
/// UUIDv7 in the order they were made (see `groups::pk_after_id`).
pub fn pk_after_user_id(
    conn: &Connection,
    tenant_id: Option<i64>,
    user_id: &str,
) -> Result<Option<i64>, DbError> {
    Ok(conn
        .query_row(
            "SELECT pk FROM members WHERE user_id > ?2 AND (?1 IS NULL OR tenant_id = ?1)
             ORDER BY user_id LIMIT 1",
            params![tenant_id, user_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// The member linked to directory user `user_id` (its SCIM id).
pub fn by_user_id(
    conn: &Connection,
    tenant_id: Option<i64>,
    user_id: &str,
) -> Result<Option<MemberRow>, DbError> {
    Ok(conn
        .query_row(
            &format!("{SELECT} WHERE m.user_id = ?2 AND (?1 IS NULL OR m.tenant_id = ?1)"),
            params![tenant_id, user_id],
            from_row,
        )
        .optional()?)
}

/// Keeps on the member linked to directory user `user_id` what that user last said of the
/// person (`last`: its `externalId` and profile attributes), before the user is deleted.
pub fn keep_last_directory(
    conn: &Connection,
    tenant_id: i64,
    user_id: &str,
    last: &Value,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE OR FAIL members SET last_directory = ?3 WHERE tenant_id = ?1 AND user_id = ?2",
    )?
    .execute(params![tenant_id, user_id, last.to_string()])?;
    Ok(())
}

/// What [`keep_last_directory`] kept on the member linked to `user_id`, if anything.
pub fn last_directory(
    conn: &Connection,
    tenant_id: i64,
    user_id: &str,
) -> Result<Option<Value>, DbError> {
    let text: Option<Option<String>> = conn
        .prepare_cached("SELECT last_directory FROM members WHERE tenant_id = ?1 AND user_id = ?2")?
        .query_row(params![tenant_id, user_id], |r| r.get(0))
        .optional()?;
    match text.flatten() {
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| DbError::Schema(format!("a member's last_directory is not JSON: {e}"))),
        None => Ok(None),
    }
}

/// How a page of members in one directory group tests membership, by the group's size.
/// A page walks members in pk order, which no index of a group's memberships follows.
/// Reading the group's whole member list for each page costs the group's size per page:
/// walking a 100 000-member group 100 at a time read it 1 000 times (80 ms a page). Asking
/// of each member walked whether it is in the group costs what the walk steps over until
/// a page of matches: little for a big group, up to the tenant's members for a small one.
/// So a group of at most [`InGroup::LISTED`] members is read whole, a bigger one asked
/// member by member, and a walk of any group costs at most one pass over the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InGroup {
    /// The group's members read as a list.
    Listed,
    /// Each member walked looked up in the group.
    Asked,
}

impl InGroup {
    /// Members of a group read whole for each page.
    pub(crate) const LISTED: i64 = 1_000;

    /// The test for the group with SCIM id `group`, when one is asked for.
    pub(crate) fn of(conn: &Connection, group: Option<&str>) -> Result<InGroup, DbError> {
        let Some(group) = group else {
            return Ok(InGroup::Listed);
        };
        let n: i64 = conn
            .prepare_cached(
                "SELECT count(*) FROM (SELECT 1 FROM groups g
                   JOIN group_members gm ON gm.group_pk = g.pk
                  WHERE g.id = ?1 LIMIT ?2)",
            )?
            .query_row(params![group, InGroup::LISTED + 1], |r| r.get(0))?;
        Ok(if n > InGroup::LISTED {
            InGroup::Asked
        } else {
            InGroup::Listed
        })
    }

    /// The condition on member `m`, its one parameter the group's SCIM id.
    pub(crate) fn sql(self) -> &'static str {
        match self {
            InGroup::Listed => {
                "m.user_id IN (SELECT u2.id FROM groups g
                   JOIN group_members gm ON gm.group_pk = g.pk
                   JOIN users u2 ON u2.pk = gm.member_user_pk
                   WHERE g.tenant_id = m.tenant_id AND g.id = ?)"
            }
            InGroup::Asked => {
                // The group found once per statement (the subquery is not correlated);
                // a group holds members of its own tenant only, as the user's is checked.
                "EXISTS (SELECT 1 FROM users u2
                   JOIN group_members gm ON gm.member_user_pk = u2.pk
                   WHERE u2.id = m.user_id AND u2.tenant_id = m.tenant_id
                     AND gm.group_pk = (SELECT g.pk FROM groups g WHERE g.id = ?))"
            }
        }
    }
}

/// Up to `limit` members that stand for a directory user (linked to one, and not archived),
/// of `tenant_id` (every tenant when `None`), in the directory group `group` when given,
/// beyond `cursor` (a member pk) in `direction`.
pub fn linked_page(
    conn: &Connection,
    tenant_id: Option<i64>,
    group: Option<&str>,
    only: &Only,
    cursor: Option<i64>,
    direction: Direction,
    limit: usize,
) -> Result<Vec<MemberRow>, DbError> {
    let in_group = InGroup::of(conn, group)?;
    let (sql, values) = linked_query(tenant_id, group, in_group, only, cursor, direction, limit);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(&values), from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Which linked members a page may hold besides its tenant and group: the one with this
/// email (any case), or those of these directory users; any, when neither is given.
#[derive(Debug, Clone, Default)]
pub struct Only {
    pub email: Option<String>,
    pub user_ids: Option<Vec<String>>,
}

/// [`linked_page`]'s statement and its parameters.
fn linked_query(
    tenant_id: Option<i64>,
    group: Option<&str>,
    in_group: InGroup,
    only: &Only,
    cursor: Option<i64>,
    direction: Direction,
    limit: usize,
) -> (String, Vec<SqlValue>) {
    let user_ids = only.user_ids.as_deref().unwrap_or_default();
    let marks = vec!["?"; user_ids.len()].join(", ");
    Conditions::new(match only.user_ids {
        // Asked for the members of no user: none.
        Some(ref ids) if ids.is_empty() => "0",
        _ => "m.user_id IS NOT NULL AND m.status != 'archived'",
    })
    .and("m.tenant_id = ?", tenant_id)
    .and("m.email_fold = ?", only.email.as_deref().map(fold))
    .and_each(
        &format!("m.user_id IN ({marks})"),
        user_ids
            .iter()
            .map(|id| SqlValue::Text(id.clone()))
            .collect(),
    )
    .and(&format!("m.pk {} ?", direction.cmp()), cursor)
    .and(in_group.sql(), group.map(str::to_string))
    .query(
        SELECT,
        &format!("ORDER BY m.pk {} LIMIT ?", direction.order()),
        limit as i64,
    )
}

/// The member with this email (any case).
pub fn by_email(
    conn: &Connection,
    tenant_id: i64,
    email: &str,
) -> Result<Option<MemberRow>, DbError> {
    Ok(conn
        .query_row(
            &format!("{SELECT} WHERE m.tenant_id = ?1 AND m.email_fold = ?2"),
            params![tenant_id, fold(email)],
            from_row,
        )
        .optional()?)
}

/// How many of the tenant's members have each (status, role), for the dashboard: the counts
/// the triggers keep (`member_counts`, migration 0019).
pub fn counts_by_status_and_role(
    conn: &Connection,
    tenant_id: i64,
) -> Result<Vec<(MemberStatus, Role, i64)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT status, role, n FROM member_counts WHERE tenant_id = ?1 AND n > 0
         ORDER BY status, role",
    )?;
    let mut rows = stmt.query([tenant_id])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let bad = |e: String| DbError::Schema(format!("bad stored member value: {e}"));
        let status: String = r.get(0)?;
        let role: String = r.get(1)?;
        out.push((
            status.parse().map_err(|e| bad(format!("{e}")))?,
            role.parse().map_err(bad)?,
            r.get(2)?,
        ));
    }
    Ok(out)
}

/// Every member of the tenant, oldest first.
pub fn list(conn: &Connection, tenant_id: i64) -> Result<Vec<MemberRow>, DbError> {
    let mut stmt =
        conn.prepare_cached(&format!("{SELECT} WHERE m.tenant_id = ?1 ORDER BY m.pk"))?;
    let rows = stmt
        .query_map([tenant_id], from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Every member of tenant `tenant_id` as a plan of the whole directory sees it, in pk
/// order: what [`list`] and [`MemberRow::to_sync`] give, without reading the columns a
/// plan does not look at or copying each member once more (a whole-tenant plan reads
/// 100 000), and with every link as [`Link::Gone`]: whether its user exists is not looked
/// up (a third of the read), for such a plan sees which users the directory has. (Only
/// directory users are linked: a seed never is.)
pub fn for_plan(conn: &Connection, tenant_id: i64) -> Result<Vec<Member>, DbError> {
    let mut stmt =
        conn.prepare_cached(&format!("{FOR_PLAN} WHERE m.tenant_id = ?1 ORDER BY m.pk"))?;
    // Room for them all at once, as `users::all_directory_users` makes.
    let count: i64 = conn
        .prepare_cached("SELECT coalesce(sum(n), 0) FROM member_counts WHERE tenant_id = ?1")?
        .query_row([tenant_id], |r| r.get(0))?;
    let mut out = Vec::with_capacity(count as usize);
    for member in stmt.query_map([tenant_id], for_plan_row)? {
        out.push(member?);
    }
    Ok(out)
}

/// The columns [`for_plan`] reads.
const FOR_PLAN: &str = "SELECT m.pk, m.id, m.email, m.user_name, m.given_name, m.family_name,
        m.display_name, m.role, m.role_reason, m.status, m.managed, m.source,
        m.user_id, m.delete_after IS NOT NULL
 FROM members m";

fn for_plan_row(r: &Row) -> rusqlite::Result<Member> {
    Ok(Member {
        pk: r.get(0)?,
        id: r.get(1)?,
        profile: profile(r)?,
        role: parsed(r, 7)?,
        role_reason: r.get(8)?,
        status: parsed(r, 9)?,
        managed: r.get(10)?,
        source: parsed(r, 11)?,
        link: link(r.get(12)?, false),
        deletion_scheduled: r.get(13)?,
    })
}

/// Member `id` of tenant `tenant_id` as [`for_plan`] reads it.
pub fn for_plan_by_id(
    conn: &Connection,
    tenant_id: i64,
    id: &str,
) -> Result<Option<Member>, DbError> {
    let mut stmt =
        conn.prepare_cached(&format!("{FOR_PLAN} WHERE m.tenant_id = ?1 AND m.id = ?2"))?;
    Ok(stmt
        .query_row(params![tenant_id, id], for_plan_row)
        .optional()?)
}

/// The ids of tenant `tenant_id`'s members that a directory user matches by `key` (a
/// folded email or userName), and of the one linked to directory user `user_id`.
pub fn holding_key(
    conn: &Connection,
    tenant_id: i64,
    key: Option<&str>,
    user_id: Option<&str>,
) -> Result<Vec<String>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM members WHERE tenant_id = ?1 AND email_fold = ?2
         UNION SELECT id FROM members WHERE tenant_id = ?1 AND user_name_fold = ?2
         UNION SELECT id FROM members WHERE tenant_id = ?1 AND user_id = ?3",
    )?;
    let ids = stmt
        .query_map(params![tenant_id, key, user_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// Which members a list shows; empty shows all.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// A piece of the email, userName or name, in any case.
    pub search: Option<String>,
    pub status: Option<MemberStatus>,
    pub role: Option<Role>,
    pub managed: Option<bool>,
    /// This email exactly, in any case.
    pub email: Option<String>,
    /// Members whose linked directory user is a direct member of the group with this SCIM id.
    pub group: Option<String>,
    /// Changed at or after this time (canonical UTC, see `scim::datetime`).
    pub updated_since: Option<String>,
}

impl ListFilter {
    /// The WHERE clause (after the tenant) and its parameters.
    ///
    /// The search is a substring test evaluated while the query walks the tenant's members
    /// in row order, so it stops as soon as a page of matches is found; only a term that
    /// (almost) nobody matches reads every member of the tenant once. Substrings rather
    /// than prefixes because admins type a surname and expect `ada.lovelace@…` to match.
    fn conditions(&self, tenant_id: i64, in_group: InGroup) -> (String, Vec<SqlValue>) {
        let mut cond = vec!["m.tenant_id = ?1".to_string()];
        let mut params = vec![SqlValue::Integer(tenant_id)];
        // The status and managed indexes hold only the rare values (migration 0023), and
        // SQLite uses a partial index only for a query that states its condition.
        match self.managed {
            Some(true) => cond.push("m.managed = 1".into()),
            Some(false) => cond.push("m.managed = 0".into()),
            None => {}
        }
        let mut bind = |sql: &str, value: SqlValue| {
            params.push(value);
            cond.push(sql.replace('?', &format!("?{}", params.len())));
        };
        match self.status {
            Some(MemberStatus::Active) => bind("m.status = ?", SqlValue::Text("active".into())),
            Some(rare) => bind(
                "m.status = ? AND m.status <> 'active'",
                SqlValue::Text(rare.as_str().into()),
            ),
            None => {}
        }
        if let Some(role) = &self.role {
            bind("m.role = ?", SqlValue::Text(role.as_str().into()));
        }
        if let Some(email) = &self.email {
            bind("m.email_fold = ?", SqlValue::Text(fold(email)));
        }
        if let Some(group) = &self.group {
            bind(in_group.sql(), SqlValue::Text(group.clone()));
        }
        if let Some(since) = &self.updated_since {
            bind("m.updated_at >= ?", SqlValue::Text(since.clone()));
        }
        if let Some(term) = self
            .search
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            bind(
                "(instr(m.email_fold, ?) > 0 OR instr(m.user_name_fold, ?) > 0
                  OR instr(scim_fold(coalesce(m.given_name, '') || ' ' || coalesce(m.family_name, '')
                       || ' ' || coalesce(m.display_name, '')), ?) > 0)",
                SqlValue::Text(fold(term)),
            );
        }
        (cond.join(" AND "), params)
    }
}

/// The SQL and parameters of one page of members (`limit + 1` rows, see [`Keyset`]).
fn page_query(
    tenant_id: i64,
    filter: &ListFilter,
    in_group: InGroup,
    cursor: Cursor,
    limit: usize,
) -> (String, Vec<SqlValue>) {
    let (mut cond, mut params) = filter.conditions(tenant_id, in_group);
    let order = match cursor {
        Cursor::First => "ASC",
        Cursor::After(pk) => {
            cond.push_str(&format!(" AND m.pk > ?{}", params.len() + 1));
            params.push(SqlValue::Integer(pk));
            "ASC"
        }
        Cursor::Before(pk) => {
            cond.push_str(&format!(" AND m.pk < ?{}", params.len() + 1));
            params.push(SqlValue::Integer(pk));
            "DESC"
        }
    };
    params.push(SqlValue::Integer(limit as i64 + 1));
    let sql = format!(
        "{SELECT} WHERE {cond} ORDER BY m.pk {order} LIMIT ?{}",
        params.len()
    );
    (sql, params)
}

/// One page of the tenant's members matching `filter`, in the order they were added.
pub fn page(
    conn: &Connection,
    tenant_id: i64,
    filter: &ListFilter,
    cursor: Cursor,
    limit: usize,
) -> Result<Keyset<MemberRow>, DbError> {
    let in_group = InGroup::of(conn, filter.group.as_deref())?;
    let (sql, params) = page_query(tenant_id, filter, in_group, cursor, limit);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(params), from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Keyset::from_rows(rows, cursor, limit, |m| m.pk))
}

/// How many members match `filter`, counting no further than `cap` (a search cannot use
/// an index to count, so the count of a big tenant stops early and says "more than").
pub fn count(
    conn: &Connection,
    tenant_id: i64,
    filter: &ListFilter,
    cap: usize,
) -> Result<usize, DbError> {
    let in_group = InGroup::of(conn, filter.group.as_deref())?;
    let (cond, mut params) = filter.conditions(tenant_id, in_group);
    params.push(SqlValue::Integer(cap as i64));
    let n: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM (SELECT 1 FROM members m WHERE {cond} LIMIT ?{})",
            params.len()
        ),
        params_from_iter(params),
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

/// Calls `f` with the tenant's members, oldest first, a chunk at a time: an export of
/// 100 000 members never holds them all.
pub fn for_each_chunk(
    conn: &Connection,
    tenant_id: i64,
    mut f: impl FnMut(&[MemberRow]) -> Result<(), DbError>,
) -> Result<(), DbError> {
    const CHUNK: usize = 1000;
    let mut cursor = Cursor::First;
    loop {
        let page = page(conn, tenant_id, &ListFilter::default(), cursor, CHUNK)?;
        f(&page.items)?;
        match page.next {
            Some(pk) => cursor = Cursor::After(pk),
            None => return Ok(()),
        }
    }
}

/// Up to this many keys [`for_users`] looks up one by one, beyond it in lists.
const FEW_KEYS: usize = 8;

/// The members a plan for some directory users needs: those linked to `user_ids`, and those
/// whose email or userName is one of `keys` (folded by this function) — the candidates for
/// matching and the holders of values a change could collide with.
pub fn for_users(
    conn: &Connection,
    tenant_id: i64,
    user_ids: &[String],
    keys: &[String],
) -> Result<Vec<MemberRow>, DbError> {
    // A userName is often the email too: each folded key is looked up once.
    let mut folded: Vec<String> = keys.iter().map(|k| fold(k)).collect();
    folded.sort_unstable();
    folded.dedup();
    let queries: [(&str, &[String]); 3] = [
        ("m.user_id", user_ids),
        ("m.email_fold", &folded),
        ("m.user_name_fold", &folded),
    ];
    // The keys usually find one member three times: find the keys first (each from its
    // index alone), then read each member found once.
    let mut pks = BTreeSet::new();
    for (column, values) in queries {
        for chunk in values.chunks(in_list_size(values.len())) {
            let marks = vec!["?"; chunk.len()].join(",");
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT m.pk FROM members m WHERE m.tenant_id = {tenant_id} AND {column} IN ({marks})"
            ))?;
            for pk in stmt.query_map(params_from_iter(chunk), |r| r.get::<_, i64>(0))? {
                pks.insert(pk?);
            }
        }
    }
    let pks: Vec<i64> = pks.into_iter().collect();
    let mut out = Vec::with_capacity(pks.len());
    for chunk in pks.chunks(in_list_size(pks.len())) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare_cached(&format!("{SELECT} WHERE m.pk IN ({marks})"))?;
        for row in stmt.query_map(params_from_iter(chunk), from_row)? {
            out.push(row?);
        }
    }
    out.sort_by_key(|m| m.pk);
    Ok(out)
}

/// How many of `n` values go in one `IN` list. SQLite builds a list of more than one
/// value into a temporary b-tree on every run: the few values of one write are looked
/// up one at a time, a sync's many in lists.
fn in_list_size(n: usize) -> usize {
    if n <= FEW_KEYS { 1 } else { 500 }
}

/// A member to insert.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub profile: Profile,
    pub role: Role,
    pub role_reason: String,
    pub status: MemberStatus,
    pub managed: bool,
    pub source: MemberSource,
    pub user_id: Option<String>,
}

/// A unique-index failure as the sentence a person can act on.
fn conflict(e: rusqlite::Error, profile: &Profile) -> DbError {
    if !super::is_unique_violation(&e) {
        return e.into();
    }
    let text = e.to_string();
    let what = if text.contains("user_name") {
        format!("userName {:?}", profile.user_name.as_deref().unwrap_or(""))
    } else if text.contains("user_id") {
        "directory user".to_string()
    } else {
        format!("email {:?}", profile.email.as_deref().unwrap_or(""))
    };
    DbError::Conflict(format!("another member already has this {what}"))
}

pub fn insert(conn: &Connection, tenant_id: i64, new: &NewMember) -> Result<MemberRow, DbError> {
    insert_linked(conn, tenant_id, new, None)
}

/// [`insert`], told whether `new.user_id` names a user of the tenant when the caller has
/// just read it (a sync applying its own plan); read here otherwise.
pub fn insert_linked(
    conn: &Connection,
    tenant_id: i64,
    new: &NewMember,
    user_exists: Option<bool>,
) -> Result<MemberRow, DbError> {
    let now = datetime::now();
    let id = uuid::Uuid::now_v7().to_string();
    let p = &new.profile;
    // The row is what was bound, and what `get_by_pk` would read back: only its pk and
    // whether its directory user exists come from the database. Not `RETURNING`: SQLite
    // gathers its rows in a temporary b-tree, which cost a whole-tenant sync ~10 %.
    conn.prepare_cached(
        "INSERT OR FAIL INTO members (tenant_id, id, email, email_fold, user_name, user_name_fold,
                          given_name, family_name, display_name, role, role_reason, status,
                          managed, source, user_id, created_at, updated_at, status_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16, ?16)",
    )?
    .execute(params![
        tenant_id,
        id,
        p.email,
        p.email.as_deref().map(fold),
        p.user_name,
        p.user_name.as_deref().map(fold),
        p.given_name,
        p.family_name,
        p.display_name,
        new.role.as_str(),
        new.role_reason,
        new.status.as_str(),
        new.managed,
        new.source.as_str(),
        new.user_id,
        now
    ])
    .map_err(|e| conflict(e, p))?;
    let pk = conn.last_insert_rowid();
    let read = || -> Result<bool, DbError> {
        Ok(match &new.user_id {
            Some(user_id) => conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1 AND tenant_id = ?2)",
                )?
                .query_row(params![user_id, tenant_id], |r| r.get(0))?,
            None => false,
        })
    };
    let user_exists = match user_exists {
        Some(known) => {
            debug_assert_eq!(known, read()?, "the caller knew the wrong user");
            known
        }
        None => read()?,
    };
    Ok(MemberRow {
        pk,
        tenant_id,
        id,
        profile: new.profile.clone(),
        role: new.role.clone(),
        role_reason: new.role_reason.clone(),
        status: new.status,
        managed: new.managed,
        source: new.source,
        user_id: new.user_id.clone(),
        user_exists,
        created_at: now.clone(),
        updated_at: now,
        delete_after: None,
    })
}

/// Sets one field. Role and status have their own functions: they carry more meaning.
pub fn set_field(
    conn: &Connection,
    pk: i64,
    field: Field,
    value: Option<&str>,
) -> Result<(), DbError> {
    let now = datetime::now();
    let profile = Profile {
        email: value.map(str::to_string),
        user_name: value.map(str::to_string),
        ..Profile::default()
    };
    let folded = |column: &str| {
        conn.prepare_cached(&format!(
            "UPDATE OR FAIL members SET {column} = ?2, {column}_fold = ?3, updated_at = ?4 WHERE pk = ?1"
        ))?
        .execute(params![pk, value, value.map(fold), now])
    };
    let plain = |column: &str| {
        conn.prepare_cached(&format!(
            "UPDATE OR FAIL members SET {column} = ?2, updated_at = ?3 WHERE pk = ?1"
        ))?
        .execute(params![pk, value, now])
    };
    match field {
        Field::Email => folded("email"),
        Field::UserName => folded("user_name"),
        Field::GivenName => plain("given_name"),
        Field::FamilyName => plain("family_name"),
        Field::DisplayName => plain("display_name"),
        Field::UserId => plain("user_id"),
        Field::RoleReason => plain("role_reason"),
        Field::Role | Field::Status => {
            return Err(DbError::Schema(format!(
                "{field} is set with set_role or set_status"
            )));
        }
    }
    .map_err(|e| conflict(e, &profile))?;
    Ok(())
}

pub fn set_role(conn: &Connection, pk: i64, role: &Role, reason: &str) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE OR FAIL members SET role = ?2, role_reason = ?3, updated_at = ?4 WHERE pk = ?1",
    )?
    .execute(params![pk, role.as_str(), reason, datetime::now()])?;
    Ok(())
}

/// Sets the member's status; any status change cancels a scheduled deletion.
pub fn set_status(conn: &Connection, pk: i64, status: MemberStatus) -> Result<(), DbError> {
    let now = datetime::now();
    conn.prepare_cached(
        "UPDATE OR FAIL members SET status = ?2, updated_at = ?3, delete_after = NULL,
                status_at = CASE WHEN status = ?2 THEN status_at ELSE ?3 END
         WHERE pk = ?1",
    )?
    .execute(params![pk, status.as_str(), now])?;
    Ok(())
}

/// Suspends the member until `at`, when the daily job deletes it (the grace period).
pub fn schedule_deletion(conn: &Connection, pk: i64, at: &str) -> Result<(), DbError> {
    set_status(conn, pk, MemberStatus::Suspended)?;
    conn.execute(
        "UPDATE OR FAIL members SET delete_after = ?2 WHERE pk = ?1",
        params![pk, at],
    )?;
    Ok(())
}

/// Members whose grace period ended by `now`, a batch at a time.
pub fn deletions_due(
    conn: &Connection,
    now: &str,
    limit: usize,
) -> Result<Vec<MemberRow>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} WHERE m.delete_after IS NOT NULL AND m.delete_after <= ?1
         ORDER BY m.delete_after LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![now, limit as i64], from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The tenant's members archived before `before`, a batch at a time.
pub fn archived_before(
    conn: &Connection,
    tenant_id: i64,
    before: &str,
    limit: usize,
) -> Result<Vec<MemberRow>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} WHERE m.tenant_id = ?1 AND m.status = 'archived' AND m.status_at < ?2
         ORDER BY m.status_at LIMIT ?3"
    ))?;
    let rows = stmt
        .query_map(params![tenant_id, before, limit as i64], from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// How members moved between (status, role) counts in a bulk apply, which writes them
/// with the triggers that keep `member_counts` off ([`super::tenants::member_batch`]).
#[derive(Debug, Default)]
pub struct CountMoves(BTreeMap<(MemberStatus, Role), i64>);

impl CountMoves {
    /// `m` (as it was) left its count: changed or deleted.
    pub fn left(&mut self, m: &MemberRow) {
        *self.0.entry((m.status, m.role.clone())).or_default() -= 1;
    }

    /// `m` (as it is now) joined its count: created or changed.
    pub fn joined(&mut self, m: &MemberRow) {
        *self.0.entry((m.status, m.role.clone())).or_default() += 1;
    }
}

/// Adds a bulk apply's moves to the tenant's member counts: a row per (status, role) that
/// changed, where counting every member again cost 0.15-0.35 s of a 100 000-member sync.
/// Debug builds count again anyway and check that both agree.
pub fn apply_count_moves(
    conn: &Connection,
    tenant_id: i64,
    moves: &CountMoves,
) -> Result<(), DbError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO member_counts (tenant_id, status, role, n) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant_id, status, role) DO UPDATE SET n = n + excluded.n",
    )?;
    for ((status, role), n) in moves.0.iter().filter(|(_, n)| **n != 0) {
        stmt.execute(params![tenant_id, status.as_str(), role.as_str(), n])?;
    }
    #[cfg(debug_assertions)]
    {
        let counted: Vec<(MemberStatus, Role, i64)> = conn
            .prepare(
                "SELECT status, role, count(*) FROM members WHERE tenant_id = ?1
                 GROUP BY status, role ORDER BY status, role",
            )?
            .query_map([tenant_id], |r| {
                let (status, role): (String, String) = (r.get(0)?, r.get(1)?);
                Ok((status, role, r.get::<_, i64>(2)?))
            })?
            .map(|row| {
                let (status, role, n) = row?;
                Ok((
                    status.parse().expect("stored"),
                    role.parse().expect("stored"),
                    n,
                ))
            })
            .collect::<Result<_, DbError>>()?;
        assert_eq!(
            counts_by_status_and_role(conn, tenant_id)?,
            counted,
            "member_counts after a bulk apply"
        );
    }
    Ok(())
}

/// How many of the tenant's members are active, from the counts the triggers keep
/// (`member_counts`, migration 0019): a row per role.
pub fn count_active(conn: &Connection, tenant_id: i64) -> Result<u64, DbError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT coalesce(sum(n), 0) FROM member_counts
             WHERE tenant_id = ?1 AND status = 'active'",
        )?
        .query_row([tenant_id], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// Marks the member changed now, for a change apps see that is not one of its columns (its
/// directory user's externalId).
pub fn touch(conn: &Connection, pk: i64) -> Result<(), DbError> {
    conn.prepare_cached("UPDATE OR FAIL members SET updated_at = ?2 WHERE pk = ?1")?
        .execute(params![pk, datetime::now()])?;
    Ok(())
}

/// [`touch`] of the members linked to directory users `user_ids` (those that have one).
pub fn touch_linked(conn: &Connection, tenant_id: i64, user_ids: &[String]) -> Result<(), DbError> {
    let now = datetime::now();
    for chunk in user_ids.chunks(in_list_size(user_ids.len())) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare_cached(&format!(
            "UPDATE OR FAIL members SET updated_at = ?1 WHERE tenant_id = {tenant_id} AND user_id IN ({marks})"
        ))?;
        let args = std::iter::once(now.as_str()).chain(chunk.iter().map(String::as_str));
        stmt.execute(params_from_iter(args))?;
    }
    Ok(())
}

/// Sets whether provisioning manages the member. Seeds follow `managed`: the caller refreshes
/// them once after its batch (`seeds::refresh`), not once per member.
pub fn set_managed(conn: &Connection, pk: i64, managed: bool) -> Result<(), DbError> {
    conn.execute(
        "UPDATE OR FAIL members SET managed = ?2, updated_at = ?3 WHERE pk = ?1",
        params![pk, managed, datetime::now()],
    )?;
    Ok(())
}

/// Removes the member and, through foreign keys, everything that hangs off it.
pub fn delete(conn: &Connection, pk: i64) -> Result<(), DbError> {
    let n = conn.execute("DELETE FROM members WHERE pk = ?1", [pk])?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
