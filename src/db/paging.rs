//! Paging. The admin UI's lists page by keyset: a page starts after (or ends before) a
//! row, named by its row id, so reading page 2 000 of a 100 000-row list costs one page of
//! index entries, like page 1 — never an OFFSET that reads and drops everything before it.
//!
//! SCIM lists in the default order ([`scim_page`]) also page by `startIndex`, which Okta and
//! Entra use to walk a whole directory: the skipped rows are stepped over in the tenant's
//! `(tenant_id, pk)` index, and an unfiltered list's total is the tenant's stored count.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension};

use super::{DbError, HasPk, ListQuery, Page};
use crate::scim::list::Position;
use crate::scim::schema::{GROUP_RESOURCE, ResourceType, USER_RESOURCE};

/// A WHERE clause of the conditions a query was given and no others, each a plain
/// comparison SQLite can seek with. The alternative, one statement with
/// `(?1 IS NULL OR column = ?1)` for every optional condition, cannot use an index on
/// `column`: a feed page after a cursor walked every row before it.
pub(crate) struct Conditions {
    sql: String,
    values: Vec<SqlValue>,
}

impl Conditions {
    /// `always`: what every row must meet (`1` for nothing).
    pub fn new(always: &str) -> Conditions {
        Conditions {
            sql: format!(" WHERE {always}"),
            values: Vec::new(),
        }
    }

    /// And `clause`, whose one `?` is `value`, when there is a value.
    pub fn and(&mut self, clause: &str, value: Option<impl Into<SqlValue>>) -> &mut Self {
        if let Some(value) = value {
            self.sql.push_str(" AND ");
            self.sql.push_str(clause);
            self.values.push(value.into());
        }
        self
    }

    /// And `clause` with one `?` for each of `values`, when there are any.
    pub fn and_each(&mut self, clause: &str, values: Vec<SqlValue>) -> &mut Self {
        if !values.is_empty() {
            self.sql.push_str(" AND ");
            self.sql.push_str(clause);
            self.values.extend(values);
        }
        self
    }

    /// `select` with this WHERE clause and `rest` (ORDER BY, LIMIT ?), `limit` bound last.
    pub fn query(&self, select: &str, rest: &str, limit: i64) -> (String, Vec<SqlValue>) {
        let mut values = self.values.clone();
        values.push(SqlValue::Integer(limit));
        (format!("{select}{} {rest}", self.sql), values)
    }
}

/// Which way a keyset page reads: rows after or before a key, ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Direction {
    /// Compare keys with `>` (else `<`) against the cursor.
    pub greater: bool,
    /// Read in ascending key order (else descending).
    pub ascending: bool,
}

impl Direction {
    /// The comparison of a key with the cursor.
    pub fn cmp(self) -> &'static str {
        if self.greater { ">" } else { "<" }
    }

    /// The key order, for `ORDER BY`.
    pub fn order(self) -> &'static str {
        if self.ascending { "ASC" } else { "DESC" }
    }
}

/// What SQLite's EXPLAIN QUERY PLAN says of `sql` with `params`, a line per step.
#[cfg(test)]
pub(crate) fn plan_of(conn: &Connection, sql: &str, params: &[SqlValue]) -> String {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let rows: Vec<String> = stmt
        .query_map(rusqlite::params_from_iter(params), |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.join("\n")
}

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cursor {
    #[default]
    First,
    /// The rows after this one, in list order.
    After(i64),
    /// The rows before this one (the previous page).
    Before(i64),
}

impl Cursor {
    /// From the `after` / `before` query parameters of a list page.
    pub fn from_query(after: Option<&str>, before: Option<&str>) -> Cursor {
        match (
            after.and_then(|a| a.parse().ok()),
            before.and_then(|b| b.parse().ok()),
        ) {
            (Some(a), _) => Cursor::After(a),
            (None, Some(b)) => Cursor::Before(b),
            _ => Cursor::First,
        }
    }
}

/// One page of a list, in list order.
#[derive(Debug, Clone)]
pub struct Keyset<T> {
    pub items: Vec<T>,
    /// The cursor of the previous page (`Before` this key), when there is one.
    pub prev: Option<i64>,
    /// The cursor of the next page (`After` this key), when there is one.
    pub next: Option<i64>,
}

impl<T> Keyset<T> {
    /// Builds a page from rows read with `LIMIT limit + 1` in the cursor's direction
    /// (descending for `Before`): the extra row only says whether more follow.
    pub fn from_rows(mut rows: Vec<T>, cursor: Cursor, limit: usize, key: fn(&T) -> i64) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        if let Cursor::Before(_) = cursor {
            rows.reverse();
        }
        let first = rows.first().map(key);
        let last = rows.last().map(key);
        let (prev, next) = match cursor {
            Cursor::First => (None, last.filter(|_| more)),
            Cursor::After(_) => (first, last.filter(|_| more)),
            Cursor::Before(_) => (first.filter(|_| more), last),
        };
        Keyset {
            items: rows,
            prev,
            next,
        }
    }
}

/// The table a SCIM list reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Listed {
    Users,
    Groups,
}

impl Listed {
    /// `"<table> <alias>"`, as the filter compiler names the table.
    fn from(self) -> &'static str {
        match self {
            Listed::Users => "users u",
            Listed::Groups => "groups g",
        }
    }

    fn resource_type(self) -> &'static ResourceType {
        match self {
            Listed::Users => &USER_RESOURCE,
            Listed::Groups => &GROUP_RESOURCE,
        }
    }

    fn alias(self) -> &'static str {
        match self {
            Listed::Users => "u",
            Listed::Groups => "g",
        }
    }

    /// The tenant's rows in pk order, index entries only (migration 0012).
    fn tenant_index(self) -> &'static str {
        match self {
            Listed::Users => "users_tenant",
            Listed::Groups => "groups_tenant",
        }
    }

    /// Its columns in `resource_counts`, kept by triggers on every insert and delete: the
    /// rows there are, and the deletions there have been.
    fn count_columns(self) -> &'static str {
        match self {
            Listed::Users => "users, users_deleted",
            Listed::Groups => "groups, groups_deleted",
        }
    }
}

/// Where the next `startIndex` page of a walk in the default order starts: its first row.
/// Remembered by the caller from the page before, it spares the next page the step over
/// the skipped rows. It holds while the tenant's table has had no deletion since (new rows
/// take a pk above every existing one, so they move no earlier position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    pub start_index: u64,
    pub pk: i64,
    /// The tenant's deletion count in the table when it was taken.
    pub deleted: i64,
}

/// How many rows of `table` the tenant holds, and how many were ever deleted, from the
/// counts the triggers keep.
pub(crate) fn tenant_count(
    conn: &Connection,
    tenant_id: i64,
    table: Listed,
) -> Result<(u64, i64), DbError> {
    let n: Option<(i64, i64)> = conn
        .prepare_cached(&format!(
            "SELECT {} FROM resource_counts WHERE tenant_id = ?1",
            table.count_columns()
        ))?
        .query_row([tenant_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    let (rows, deleted) = n.unwrap_or((0, 0));
    Ok((rows.max(0) as u64, deleted))
}

/// One page of a SCIM list (`columns` begin with the pk). In the default order (by pk) a
/// `startIndex` page first finds its first row's pk by stepping over the skipped rows in
/// the pk-ordered tenant index, when no filter needs the rows themselves, then reads its
/// rows from there by primary key; a deep page costs index entries, not decoded rows. An
/// unfiltered total is the tenant's stored count; a filtered one is counted only when the
/// page is not a first page holding every match. Sorted lists take the general query.
///
/// An unfiltered ascending `startIndex` page also says where the page after it starts
/// ([`Resume`]), and starts there itself without stepping when handed the one its
/// predecessor gave (`resume`) and it still holds: what a client walking the whole
/// directory page after page gets. Handed an earlier position that holds, it steps only
/// from there; and a step leaves a position every [`MARK_EVERY`] rows, so a deep page
/// asked out of order costs at most that many index entries once any page before has
/// been read that deep. What the page learned comes back with it, to be handed to later
/// pages.
pub(crate) fn scim_page<T: HasPk>(
    conn: &Connection,
    tenant_id: i64,
    q: &ListQuery,
    table: Listed,
    columns: &str,
    map: fn(&rusqlite::Row) -> rusqlite::Result<T>,
    resume: Option<Resume>,
) -> Result<(Page<T>, Vec<Resume>), DbError> {
    if q.sort_by.is_some() {
        let (from, rt) = (table.from(), table.resource_type());
        return Ok((
            super::list_page(conn, tenant_id, q, rt, from, columns, map)?,
            Vec::new(),
        ));
    }
    let (from, alias) = (table.from(), table.alias());
    let mut cond = format!("{alias}.tenant_id = ?");
    let mut params = vec![SqlValue::Integer(tenant_id)];
    let mut deleted = None;
    // A filtered total is counted only when the page cannot tell it: a first page that
    // holds every match (the single user an IdP looks up before each write) is the total.
    let stored = match &q.filter {
        None => {
            let (rows, gone) = tenant_count(conn, tenant_id, table)?;
            deleted = Some(gone);
            Some(rows)
        }
        Some(f) => {
            cond.push_str(&format!(" AND ({})", f.sql));
            params.extend(f.params.iter().cloned());
            None
        }
    };
    let filtered = (cond.clone(), params.clone());
    let counted = || -> Result<u64, DbError> {
        if let Some(total) = stored {
            return Ok(total);
        }
        let (cond, params) = &filtered;
        let n: i64 = conn
            .prepare_cached(&format!("SELECT count(*) FROM {from} WHERE {cond}"))?
            .query_row(rusqlite::params_from_iter(params), |r| r.get(0))?;
        Ok(n as u64)
    };
    let empty = |total| Page {
        total,
        items: Vec::new(),
        next: None,
    };
    if q.count == 0 {
        return Ok((empty(counted()?), Vec::new()));
    }
    // Positions that inserts cannot move: unfiltered, ascending, by startIndex.
    let resumable = deleted.filter(|_| !q.descending && q.after.is_none());
    // The handed position, while it holds and is not past this page.
    let known = resume.filter(|r| {
        Some(r.deleted) == resumable && r.start_index > 1 && r.start_index <= q.start_index
    });
    let mut learned = Vec::new();
    let (dir, beyond, from_here) = if q.descending {
        ("DESC", "<", "<=")
    } else {
        ("ASC", ">", ">=")
    };
    if let Some(after) = &q.after {
        cond.push_str(&format!(" AND {alias}.pk {beyond} ?"));
        params.push(SqlValue::Integer(after.pk));
    } else if let Some(r) = known.filter(|r| r.start_index == q.start_index) {
        cond.push_str(&format!(" AND {alias}.pk {from_here} ?"));
        params.push(SqlValue::Integer(r.pk));
    } else if let Some(deleted) = resumable.filter(|_| q.start_index > 1) {
        let step = Step {
            tenant_id,
            table,
            deleted,
        };
        let Some(first) = step.to(conn, known, q.start_index, &mut learned)? else {
            return Ok((empty(counted()?), learned));
        };
        cond.push_str(&format!(" AND {alias}.pk {from_here} ?"));
        params.push(SqlValue::Integer(first));
    } else if q.start_index > 1 {
        // Without a filter the index holds everything the step needs; with one, SQLite
        // picks its own way, and still never decodes the page's rows twice.
        let hint = match q.filter {
            None => format!(" INDEXED BY {}", table.tenant_index()),
            Some(_) => String::new(),
        };
        let skip = (q.start_index - 1).min(i64::MAX as u64) as i64;
        let mut skip_params = params.clone();
        skip_params.push(SqlValue::Integer(skip));
        let first: Option<i64> = conn
            .query_row(
                &format!(
                    "SELECT {alias}.pk FROM {from}{hint} WHERE {cond} ORDER BY {alias}.pk {dir} LIMIT 1 OFFSET ?"
                ),
                rusqlite::params_from_iter(&skip_params),
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        let Some(first) = first else {
            return Ok((empty(counted()?), learned));
        };
        cond.push_str(&format!(" AND {alias}.pk {from_here} ?"));
        params.push(SqlValue::Integer(first));
    }
    let mut items = page_rows(conn, table, q, (&cond, params), columns, map)?;
    let more = items.len() as u64 > q.count;
    if let (Some(deleted), Some(first)) = (resumable, items.get(q.count as usize)) {
        learned.push(Resume {
            start_index: q.start_index.saturating_add(q.count),
            pk: first.pk(),
            deleted,
        });
    }
    let whole = !more && q.start_index <= 1 && q.after.is_none();
    let total = match stored {
        None if whole => items.len() as u64,
        _ => counted()?,
    };
    items.truncate(q.count as usize);
    let next = items.last().filter(|_| more).map(|last| Position {
        key: serde_json::Value::Null,
        pk: last.pk(),
    });
    Ok((Page { total, items, next }, learned))
}

/// The rows `cond` matches in pk order, one more than `q.count` (which tells whether
/// another page follows).
fn page_rows<T>(
    conn: &Connection,
    table: Listed,
    q: &ListQuery,
    (cond, mut params): (&str, Vec<SqlValue>),
    columns: &str,
    map: fn(&rusqlite::Row) -> rusqlite::Result<T>,
) -> Result<Vec<T>, DbError> {
    let (from, alias) = (table.from(), table.alias());
    let dir = if q.descending { "DESC" } else { "ASC" };
    params.push(SqlValue::Integer(
        q.count.min(i64::MAX as u64 - 1) as i64 + 1,
    ));
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {columns} FROM {from} WHERE {cond} ORDER BY {alias}.pk {dir} LIMIT ?"
    ))?;
    let mut items = Vec::new();
    let mut rows = stmt.query(rusqlite::params_from_iter(&params))?;
    while let Some(row) = rows.next()? {
        items.push(map(row)?);
    }
    Ok(items)
}

/// The first page of a filtered list in the default order, read in one statement, when
/// it holds every match and so is its own total: an answer as of one moment that needs no
/// transaction around a count (the single user an IdP looks up before each write).
/// `None` when the page cannot tell (sorted, not the first, or more matches than it
/// holds): [`scim_page`] answers that one, in a snapshot with its count.
pub(crate) fn whole_first_page<T>(
    conn: &Connection,
    tenant_id: i64,
    q: &ListQuery,
    table: Listed,
    columns: &str,
    map: fn(&rusqlite::Row) -> rusqlite::Result<T>,
) -> Result<Option<Vec<T>>, DbError> {
    let first = q.sort_by.is_none() && q.start_index <= 1 && q.after.is_none() && q.count > 0;
    let Some(filter) = q.filter.as_ref().filter(|_| first) else {
        return Ok(None);
    };
    let cond = format!("{}.tenant_id = ? AND ({})", table.alias(), filter.sql);
    let mut params = vec![SqlValue::Integer(tenant_id)];
    params.extend(filter.params.iter().cloned());
    let items = page_rows(conn, table, q, (&cond, params), columns, map)?;
    Ok(Some(items).filter(|items| items.len() as u64 <= q.count))
}

/// A step leaves a position every this many rows ([`scim_page`]): a deep page asked out of
/// order starts from the nearest one before it, at most this many index entries away.
pub const MARK_EVERY: u64 = 1024;

/// A step over a tenant's rows in pk order, by their index, to a `startIndex`.
struct Step {
    tenant_id: i64,
    table: Listed,
    /// The tenant's deletion count, which the positions it leaves hold for.
    deleted: i64,
}

impl Step {
    /// The pk of the row at position `to` (1-based), stepping from `from` (or the first
    /// row), in hops that stop at every multiple of [`MARK_EVERY`] (plus one) and leave
    /// that position in `learned`. `None`: the tenant has fewer rows.
    fn to(
        &self,
        conn: &Connection,
        from: Option<Resume>,
        to: u64,
        learned: &mut Vec<Resume>,
    ) -> Result<Option<i64>, DbError> {
        let (alias, index) = (self.table.alias(), self.table.tenant_index());
        let mut hop = conn.prepare_cached(&format!(
            "SELECT {alias}.pk FROM {} INDEXED BY {index}
              WHERE {alias}.tenant_id = ?1 AND {alias}.pk >= ?2
              ORDER BY {alias}.pk LIMIT 1 OFFSET ?3",
            self.table.from()
        ))?;
        // Position 1 is the first row whatever its pk.
        let (mut at, mut pk) = from.map_or((1, i64::MIN), |r| (r.start_index, r.pk));
        while at < to {
            let mark = (at - 1) / MARK_EVERY * MARK_EVERY + MARK_EVERY + 1;
            let next = mark.min(to);
            let skip = i64::try_from(next - at).unwrap_or(i64::MAX);
            match hop
                .query_row(rusqlite::params![self.tenant_id, pk, skip], |r| r.get(0))
                .optional()?
            {
                Some(found) => pk = found,
                None => return Ok(None),
            }
            at = next;
            if at == mark {
                learned.push(Resume {
                    start_index: at,
                    pk,
                    deleted: self.deleted,
                });
            }
        }
        Ok(Some(pk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_know_their_neighbours() {
        let id = |x: &i64| *x;
        let p = Keyset::from_rows(vec![1, 2, 3], Cursor::First, 2, id);
        assert_eq!((p.items, p.prev, p.next), (vec![1, 2], None, Some(2)));
        let p = Keyset::from_rows(vec![3, 4], Cursor::After(2), 2, id);
        assert_eq!((p.items, p.prev, p.next), (vec![3, 4], Some(3), None));
        // Read descending from before 5: 4, 3, 2 → shown 3, 4.
        let p = Keyset::from_rows(vec![4, 3, 2], Cursor::Before(5), 2, id);
        assert_eq!((p.items, p.prev, p.next), (vec![3, 4], Some(3), Some(4)));
        let p = Keyset::from_rows(vec![1], Cursor::Before(2), 2, id);
        assert_eq!((p.items, p.prev, p.next), (vec![1], None, Some(1)));
        assert_eq!(Cursor::from_query(Some("7"), None), Cursor::After(7));
        assert_eq!(Cursor::from_query(None, Some("x")), Cursor::First);
    }
}
