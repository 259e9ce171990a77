//! Members: the organisation's people as apps consume them. Sync creates and changes them
//! from the directory; admins create them by hand or by CSV import before provisioning.
//!
//! Emails and userNames are unique per tenant, case-insensitively (folded copies carry
//! the unique indexes), because sync matches people by them.

use std::collections::HashSet;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde::Serialize;

use super::DbError;
use super::paging::{Cursor, Keyset};
use crate::scim::datetime;
use crate::scim::filter::fold;
use crate::sync::{Field, Link, Member, MemberSource, MemberStatus, Profile, Role};

/// A stored member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRow {
    #[serde(skip)]
    pub pk: i64,
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
            link: match &self.user_id {
                None => Link::None,
                Some(id) if self.user_exists => Link::Live(id.clone()),
                Some(id) => Link::Gone(id.clone()),
            },
        }
    }
}

const SELECT: &str = "SELECT m.pk, m.id, m.email, m.user_name, m.given_name, m.family_name,
        m.display_name, m.role, m.role_reason, m.status, m.managed, m.source, m.user_id,
        u.pk IS NOT NULL, m.created_at, m.updated_at
    FROM members m LEFT JOIN users u ON u.id = m.user_id AND u.tenant_id = m.tenant_id";

fn from_row(r: &Row) -> rusqlite::Result<MemberRow> {
    fn parsed<T: std::str::FromStr>(r: &Row, i: usize) -> rusqlite::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let s: String = r.get(i)?;
        s.parse().map_err(|e: T::Err| {
            rusqlite::Error::FromSqlConversionFailure(
                i,
                rusqlite::types::Type::Text,
                e.to_string().into(),
            )
        })
    }
    Ok(MemberRow {
        pk: r.get(0)?,
        id: r.get(1)?,
        profile: Profile {
            email: r.get(2)?,
            user_name: r.get(3)?,
            given_name: r.get(4)?,
            family_name: r.get(5)?,
            display_name: r.get(6)?,
        },
        role: parsed(r, 7)?,
        role_reason: r.get(8)?,
        status: parsed(r, 9)?,
        managed: r.get(10)?,
        source: parsed(r, 11)?,
        user_id: r.get(12)?,
        user_exists: r.get(13)?,
        created_at: r.get(14)?,
        updated_at: r.get(15)?,
    })
}

pub fn get_by_pk(conn: &Connection, pk: i64) -> Result<Option<MemberRow>, DbError> {
    Ok(conn
        .query_row(&format!("{SELECT} WHERE m.pk = ?1"), [pk], from_row)
        .optional()?)
}

pub fn get(conn: &Connection, tenant_id: i64, id: &str) -> Result<Option<MemberRow>, DbError> {
    Ok(conn
        .query_row(
            &format!("{SELECT} WHERE m.tenant_id = ?1 AND m.id = ?2"),
            params![tenant_id, id],
            from_row,
        )
        .optional()?)
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

/// How many of the tenant's members have each (status, role), for the dashboard.
pub fn counts_by_status_and_role(
    conn: &Connection,
    tenant_id: i64,
) -> Result<Vec<(MemberStatus, Role, i64)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT status, role, count(*) FROM members WHERE tenant_id = ?1
         GROUP BY status, role ORDER BY status, role",
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
    let mut stmt = conn.prepare(&format!("{SELECT} WHERE m.tenant_id = ?1 ORDER BY m.pk"))?;
    let rows = stmt
        .query_map([tenant_id], from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Which members a list shows; empty shows all.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// A piece of the email, userName or name, in any case.
    pub search: Option<String>,
    pub status: Option<MemberStatus>,
    pub role: Option<Role>,
    pub managed: Option<bool>,
}

impl ListFilter {
    /// The WHERE clause (after the tenant) and its parameters.
    ///
    /// The search is a substring test evaluated while the query walks the tenant's members
    /// in row order, so it stops as soon as a page of matches is found; only a term that
    /// (almost) nobody matches reads every member of the tenant once. Substrings rather
    /// than prefixes because admins type a surname and expect `ada.lovelace@…` to match.
    fn conditions(&self, tenant_id: i64) -> (String, Vec<SqlValue>) {
        let mut cond = vec!["m.tenant_id = ?1".to_string()];
        let mut params = vec![SqlValue::Integer(tenant_id)];
        let mut bind = |sql: &str, value: SqlValue| {
            params.push(value);
            cond.push(sql.replace('?', &format!("?{}", params.len())));
        };
        if let Some(status) = self.status {
            bind("m.status = ?", SqlValue::Text(status.as_str().into()));
        }
        if let Some(role) = &self.role {
            bind("m.role = ?", SqlValue::Text(role.as_str().into()));
        }
        if let Some(managed) = self.managed {
            bind("m.managed = ?", SqlValue::Integer(managed.into()));
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
    cursor: Cursor,
    limit: usize,
) -> (String, Vec<SqlValue>) {
    let (mut cond, mut params) = filter.conditions(tenant_id);
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
    let (sql, params) = page_query(tenant_id, filter, cursor, limit);
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
    let (cond, mut params) = filter.conditions(tenant_id);
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
pub fn export(conn: &Connection, tenant_id: i64, format: ExportFormat) -> Result<String, DbError> {
    use crate::sync::member_csv;
    let mut out = String::new();
    match format {
        ExportFormat::Csv => {
            out.push_str(&member_csv::export([]));
            for_each_chunk(conn, tenant_id, |chunk| {
                out.push_str(&member_csv::export_rows(
                    chunk.iter().map(|m| (&m.profile, &m.role, m.managed)),
                ));
                Ok(())
            })?;
        }
        ExportFormat::Json => {
            // What `serde_json::to_string_pretty` makes of the whole list, built a chunk
            // at a time: each element pretty-printed and indented one level.
            out.push('[');
            let mut empty = true;
            for_each_chunk(conn, tenant_id, |chunk| {
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

/// The members a plan for some directory users needs: those linked to `user_ids`, and those
/// whose email or userName is one of `keys` (folded by this function) — the candidates for
/// matching and the holders of values a change could collide with.
pub fn for_users(
    conn: &Connection,
    tenant_id: i64,
    user_ids: &[String],
    keys: &[String],
) -> Result<Vec<MemberRow>, DbError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let folded: Vec<String> = keys.iter().map(|k| fold(k)).collect();
    let queries: [(&str, &[String]); 3] = [
        ("m.user_id", user_ids),
        ("m.email_fold", &folded),
        ("m.user_name_fold", &folded),
    ];
    for (column, values) in queries {
        for chunk in values.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let mut stmt = conn.prepare_cached(&format!(
                "{SELECT} WHERE m.tenant_id = {tenant_id} AND {column} IN ({marks})"
            ))?;
            for row in stmt.query_map(params_from_iter(chunk), from_row)? {
                let row = row?;
                if seen.insert(row.pk) {
                    out.push(row);
                }
            }
        }
    }
    out.sort_by_key(|m| m.pk);
    Ok(out)
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
    let now = datetime::now();
    let p = &new.profile;
    conn.execute(
        "INSERT INTO members (tenant_id, id, email, email_fold, user_name, user_name_fold,
                              given_name, family_name, display_name, role, role_reason, status,
                              managed, source, user_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)",
        params![
            tenant_id,
            uuid::Uuid::new_v4().to_string(),
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
        ],
    )
    .map_err(|e| conflict(e, p))?;
    get_by_pk(conn, conn.last_insert_rowid())?.ok_or(DbError::NotFound)
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
        conn.execute(
            &format!("UPDATE members SET {column} = ?2, {column}_fold = ?3, updated_at = ?4 WHERE pk = ?1"),
            params![pk, value, value.map(fold), now],
        )
    };
    let plain = |column: &str| {
        conn.execute(
            &format!("UPDATE members SET {column} = ?2, updated_at = ?3 WHERE pk = ?1"),
            params![pk, value, now],
        )
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
    conn.execute(
        "UPDATE members SET role = ?2, role_reason = ?3, updated_at = ?4 WHERE pk = ?1",
        params![pk, role.as_str(), reason, datetime::now()],
    )?;
    Ok(())
}

pub fn set_status(conn: &Connection, pk: i64, status: MemberStatus) -> Result<(), DbError> {
    conn.execute(
        "UPDATE members SET status = ?2, updated_at = ?3 WHERE pk = ?1",
        params![pk, status.as_str(), datetime::now()],
    )?;
    Ok(())
}

pub fn set_managed(conn: &Connection, pk: i64, managed: bool) -> Result<(), DbError> {
    conn.execute(
        "UPDATE members SET managed = ?2, updated_at = ?3 WHERE pk = ?1",
        params![pk, managed, datetime::now()],
    )?;
    // Only managed members stand as seeds for the IdP to find.
    let tenant_id: i64 =
        conn.query_row("SELECT tenant_id FROM members WHERE pk = ?1", [pk], |r| {
            r.get(0)
        })?;
    super::seeds::refresh(conn, tenant_id)?;
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
pub fn planned_changes(
    existing: &MemberRow,
    row: &crate::sync::member_csv::ImportRow,
) -> Vec<Planned> {
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
    pub rows: Vec<(crate::sync::member_csv::ImportRow, RowOutcome)>,
    pub summary: ImportSummary,
    /// Why the import would fail (a row colliding with another member), naming the line.
    pub error: Option<String>,
}

/// Previews an import without changing anything: each row's outcome, read from the
/// members as they are, then [`import`] itself run inside a savepoint that is rolled
/// back, so a collision only the database sees (a userName another member holds) is
/// reported exactly as the real import would meet it. Needs a write transaction.
pub fn preview_import(
    conn: &Connection,
    ctx: &super::sync::WriteContext,
    settings: &crate::sync::Settings,
    rows: &[crate::sync::member_csv::ImportRow],
) -> Result<ImportPreview, DbError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let outcome = match by_email(conn, ctx.tenant_id, &row.email)? {
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
    conn.execute_batch("SAVEPOINT import_preview")?;
    let dry = import(conn, ctx, settings, rows);
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
pub fn import(
    conn: &Connection,
    ctx: &super::sync::WriteContext,
    settings: &crate::sync::Settings,
    rows: &[crate::sync::member_csv::ImportRow],
) -> Result<ImportSummary, DbError> {
    use super::audit::{self, Action as AuditAction};
    use super::events::{self, EventType};
    use serde_json::json;

    let mut summary = ImportSummary::default();
    let at_line = |line: u64| {
        move |e: DbError| match e {
            DbError::Conflict(m) => DbError::Conflict(format!("line {line}: {m}")),
            other => other,
        }
    };
    for row in rows {
        let (row_after, event, action, detail) = match by_email(conn, ctx.tenant_id, &row.email)? {
            None => {
                let new = NewMember {
                    profile: Profile {
                        email: Some(row.email.clone()),
                        user_name: row.user_name.clone(),
                        given_name: row.given_name.clone(),
                        family_name: row.family_name.clone(),
                        display_name: None,
                    },
                    role: row
                        .role
                        .clone()
                        .unwrap_or_else(|| settings.default_role.clone()),
                    role_reason: if row.role.is_some() {
                        CSV_ROLE_REASON.to_string()
                    } else {
                        crate::sync::RoleDecision {
                            role: settings.default_role.clone(),
                            reason: crate::sync::RoleReason::Default,
                        }
                        .to_string()
                    },
                    status: MemberStatus::Active,
                    managed: row.managed.unwrap_or(true),
                    source: MemberSource::Csv,
                    user_id: None,
                };
                let created = insert(conn, ctx.tenant_id, &new).map_err(at_line(row.line))?;
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
                            set_field(conn, existing.pk, *field, after.as_deref())
                                .map_err(at_line(row.line))?;
                        }
                        Planned::Managed(_, after) => set_managed(conn, existing.pk, *after)?,
                        Planned::Role(_, after) => {
                            set_role(conn, existing.pk, after, CSV_ROLE_REASON)?;
                        }
                    }
                    changes.push(change.to_json());
                }
                if changes.is_empty() {
                    summary.unchanged += 1;
                    continue;
                }
                summary.updated += 1;
                let after = get_by_pk(conn, existing.pk)?.ok_or(DbError::NotFound)?;
                (
                    after,
                    EventType::MemberUpdated,
                    AuditAction::MemberUpdated,
                    json!({"changes": changes}),
                )
            }
        };
        let mut payload = json!({"member": row_after});
        payload
            .as_object_mut()
            .expect("an object")
            .extend(detail.as_object().cloned().unwrap_or_default());
        events::append(conn, ctx.tenant_id, event, &row_after.id, &payload)?;
        let mut detail = detail;
        detail["line"] = json!(row.line);
        audit::append(
            conn,
            &audit::Entry::new(
                ctx.tenant_id,
                &ctx.actor,
                action,
                Some(format!("member/{}", row_after.id)),
            )
            .with_detail(detail),
        )?;
    }
    audit::append(
        conn,
        &audit::Entry::new(
            ctx.tenant_id,
            &ctx.actor,
            AuditAction::MembersImported,
            Some("members".into()),
        )
        .with_detail(serde_json::to_value(&summary).unwrap_or_default()),
    )?;
    // Imported members the IdP does not have yet become findable by its lookups.
    super::seeds::refresh(conn, ctx.tenant_id)?;
    Ok(summary)
}

#[cfg(test)]
mod tests;
