//! The request inspector's table: each tenant's last SCIM requests, already redacted by
//! the time they get here, pruned by count and age with failures apart from successes.

use rusqlite::{
    Connection, OptionalExtension, Row, params, params_from_iter, types::Value as SqlValue,
};

use super::DbError;
use super::paging::{Cursor, Keyset};
use crate::scim::datetime;
use crate::scim::idp::{Dialect, Idp};

/// One request as stored (bodies redacted and cut).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub tenant_id: i64,
    pub request_id: String,
    pub at: String,
    pub method: String,
    /// Path and query, secret query parameters redacted.
    pub path: String,
    /// `Users`, `Groups` or `other`.
    pub resource: String,
    pub status: u16,
    pub duration_us: u64,
    /// `token:<id>` or `oauth-client:<client_id>`.
    pub actor: String,
    pub user_agent: String,
    pub idp: Idp,
    pub dialect: Option<Dialect>,
    /// Why the client was recognised so, `; `-separated.
    pub evidence: String,
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    pub request_truncated: bool,
    pub response_truncated: bool,
    /// The SCIM Error's detail and scimType, for a failure.
    pub error: Option<String>,
    pub scim_type: Option<String>,
}

impl Entry {
    /// 4xx and 5xx: kept apart from successes, and longer.
    pub fn failed(&self) -> bool {
        self.status >= 400
    }

    /// When the events and audit entries this request caused were stamped: from its
    /// arrival to its answer, widened by [`CLOCK_SLACK`] either side, in canonical form.
    /// Its writes run (and stamp their rows) after it arrived and before it was answered,
    /// on the same clock; `duration_us` was timed on a monotonic one, so the slack covers
    /// the wall clock being stepped meanwhile. The inspector finds those rows in this span
    /// ([`super::audit::by_request`], [`super::events::by_request`]): what it looks through
    /// is bounded by the write rate of two seconds, never by the size of the log.
    pub fn while_answered(&self) -> (String, String) {
        let Some(at) = datetime::parse(&self.at) else {
            // Unreadable (never stored so): the whole of time, the answer still right.
            return (String::new(), "~".into());
        };
        let took = time::Duration::microseconds(self.duration_us.min(i64::MAX as u64) as i64);
        (
            datetime::format(at - CLOCK_SLACK),
            datetime::format(at + took + CLOCK_SLACK),
        )
    }
}

/// How far [`Entry::while_answered`] reaches past the request's own span.
const CLOCK_SLACK: time::Duration = time::Duration::seconds(1);

/// A stored request.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: i64,
    pub entry: Entry,
}

/// Which requests a list shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub failures_only: bool,
    /// `Users`, `Groups` or `other`.
    pub resource: Option<String>,
    pub idp: Option<Idp>,
}

const COLUMNS: &str = "id, tenant_id, request_id, at, method, path, resource, status, duration_us, \
     actor, user_agent, client, dialect, evidence, request_body, response_body, truncated, error, scim_type";

/// Appends `entries` (one batch, in the caller's transaction), but those of a tenant
/// deleted meanwhile: one such would otherwise fail the whole batch.
pub fn insert(conn: &Connection, entries: &[Entry]) -> Result<(), DbError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO scim_requests (tenant_id, request_id, at, method, path, resource, status, failed,
           duration_us, actor, user_agent, client, dialect, evidence, request_body, response_body,
           truncated, error, scim_type)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19
          WHERE EXISTS (SELECT 1 FROM tenants WHERE id = ?1)",
    )?;
    for e in entries {
        let truncated = i64::from(e.request_truncated) | (i64::from(e.response_truncated) << 1);
        stmt.execute(params![
            e.tenant_id,
            e.request_id,
            e.at,
            e.method,
            e.path,
            e.resource,
            e.status,
            e.failed(),
            e.duration_us.min(i64::MAX as u64) as i64,
            e.actor,
            e.user_agent,
            e.idp.as_str(),
            e.dialect.map(Dialect::as_str),
            e.evidence,
            e.request_body,
            e.response_body,
            truncated,
            e.error,
            e.scim_type,
        ])?;
    }
    Ok(())
}

/// Deletes the tenant's successes (or failures, with `failed`) beyond the newest `keep`
/// and those older than `cutoff` (a stored time). Returns how many went.
pub fn prune(
    conn: &Connection,
    tenant_id: i64,
    failed: bool,
    keep: u32,
    cutoff: &str,
) -> Result<usize, DbError> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM scim_requests WHERE tenant_id = ?1 AND failed = ?2 AND (at < ?3 OR id <= coalesce(
           (SELECT id FROM scim_requests WHERE tenant_id = ?1 AND failed = ?2
            ORDER BY id DESC LIMIT 1 OFFSET ?4), 0))",
    )?;
    Ok(stmt.execute(params![tenant_id, failed, cutoff, keep])?)
}

/// The tenants that have requests stored: what the daily prune walks.
pub fn tenants(conn: &Connection) -> Result<Vec<i64>, DbError> {
    let mut stmt = conn.prepare("SELECT id FROM tenants WHERE EXISTS (SELECT 1 FROM scim_requests r WHERE r.tenant_id = tenants.id)")?;
    let ids = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// One page of the tenant's requests matching `filter`, newest first.
pub fn page(
    conn: &Connection,
    tenant_id: i64,
    filter: &Filter,
    cursor: Cursor,
    limit: usize,
) -> Result<Keyset<Record>, DbError> {
    let mut cond = String::from("tenant_id = ?");
    let mut values: Vec<SqlValue> = vec![tenant_id.into()];
    if filter.failures_only {
        cond.push_str(" AND failed = 1");
    }
    if let Some(r) = &filter.resource {
        cond.push_str(" AND resource = ?");
        values.push(SqlValue::Text(r.clone()));
    }
    if let Some(i) = filter.idp {
        cond.push_str(" AND client = ?");
        values.push(SqlValue::Text(i.as_str().into()));
    }
    // Newest first: "after" in list order is an older (smaller) id.
    let order = match cursor {
        Cursor::First => "DESC",
        Cursor::After(id) => {
            cond.push_str(" AND id < ?");
            values.push(id.into());
            "DESC"
        }
        Cursor::Before(id) => {
            cond.push_str(" AND id > ?");
            values.push(id.into());
            "ASC"
        }
    };
    values.push((limit as i64 + 1).into());
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM scim_requests WHERE {cond} ORDER BY id {order} LIMIT ?"
    ))?;
    let rows = stmt
        .query_map(params_from_iter(values), from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Keyset::from_rows(rows, cursor, limit, |r| r.id))
}

/// The tenant's request `request_id`, if it is (still, or already) stored.
pub fn get(conn: &Connection, tenant_id: i64, request_id: &str) -> Result<Option<Record>, DbError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM scim_requests WHERE tenant_id = ?1 AND request_id = ?2
             ORDER BY id DESC LIMIT 1"
        ))?
        .query_row(params![tenant_id, request_id], from_row)
        .optional()?)
}

/// How many requests the tenant has stored: (successes, failures).
pub fn counts(conn: &Connection, tenant_id: i64) -> Result<(i64, i64), DbError> {
    Ok(conn.query_row(
        "SELECT coalesce(sum(failed = 0), 0), coalesce(sum(failed), 0) FROM scim_requests WHERE tenant_id = ?1",
        [tenant_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

fn from_row(r: &Row) -> rusqlite::Result<Record> {
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let client: String = r.get(11)?;
    let dialect: Option<String> = r.get(12)?;
    let truncated: i64 = r.get(16)?;
    let duration: i64 = r.get(8)?;
    Ok(Record {
        id: r.get(0)?,
        entry: Entry {
            tenant_id: r.get(1)?,
            request_id: r.get(2)?,
            at: r.get(3)?,
            method: r.get(4)?,
            path: r.get(5)?,
            resource: r.get(6)?,
            status: r.get(7)?,
            duration_us: duration.max(0) as u64,
            actor: r.get(9)?,
            user_agent: r.get(10)?,
            idp: client.parse().map_err(|e| bad(11, format!("{e}")))?,
            dialect: dialect
                .map(|d| d.parse())
                .transpose()
                .map_err(|e| bad(12, format!("{e}")))?,
            evidence: r.get(13)?,
            request_body: r.get(14)?,
            response_body: r.get(15)?,
            request_truncated: truncated & 1 != 0,
            response_truncated: truncated & 2 != 0,
            error: r.get(17)?,
            scim_type: r.get(18)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tenant_id: i64, n: u32, status: u16, at: &str) -> Entry {
        Entry {
            tenant_id,
            request_id: format!("r{n}"),
            at: at.into(),
            method: "GET".into(),
            path: "/scim/v2/Users".into(),
            resource: "Users".into(),
            status,
            duration_us: 1200,
            actor: "token:1".into(),
            user_agent: "Okta SCIM Client 1.0.0".into(),
            idp: Idp::Okta,
            dialect: None,
            evidence: String::new(),
            request_body: None,
            response_body: Some("{}".into()),
            request_truncated: false,
            response_truncated: true,
            error: None,
            scim_type: None,
        }
    }

    /// A request of a tenant deleted before its batch was written is left out; the rest of
    /// the batch is stored.
    #[test]
    fn a_batch_skips_the_requests_of_a_deleted_tenant() {
        let conn = super::super::scratch_db();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        let at = "2026-01-01T00:00:00.000000Z";
        insert(
            &conn,
            &[
                entry(1, 1, 200, at),
                entry(99, 2, 200, at),
                entry(1, 3, 400, at),
            ],
        )
        .unwrap();
        assert_eq!(counts(&conn, 1).unwrap(), (1, 1));
        assert_eq!(counts(&conn, 99).unwrap(), (0, 0));
    }

    #[test]
    fn prunes_successes_and_failures_apart_by_count_and_age() {
        let conn = super::super::scratch_db();
        let t = 1;
        let mut batch = Vec::new();
        for n in 0..10 {
            batch.push(entry(
                t,
                n,
                200,
                &format!("2026-01-0{}T00:00:00.000000Z", 1 + n % 9),
            ));
        }
        batch.push(entry(t, 100, 400, "2025-01-01T00:00:00.000000Z"));
        batch.push(entry(t, 101, 500, "2026-01-05T00:00:00.000000Z"));
        insert(&conn, &batch).unwrap();
        assert_eq!(counts(&conn, t).unwrap(), (10, 2));
        // Keep the newest 4 successes; a flood of successes never touches failures.
        assert_eq!(
            prune(&conn, t, false, 4, "2000-01-01T00:00:00Z").unwrap(),
            6
        );
        assert_eq!(counts(&conn, t).unwrap(), (4, 2));
        // Failures by age.
        assert_eq!(
            prune(&conn, t, true, 1000, "2026-01-01T00:00:00Z").unwrap(),
            1
        );
        let page = page(
            &conn,
            t,
            &Filter {
                failures_only: true,
                ..Filter::default()
            },
            Cursor::First,
            10,
        )
        .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(
            page.items[0].entry,
            entry(t, 101, 500, "2026-01-05T00:00:00.000000Z")
        );
        assert!(get(&conn, t, "r101").unwrap().is_some());
        assert!(get(&conn, 2, "r101").unwrap().is_none());
        assert_eq!(tenants(&conn).unwrap(), vec![t]);
    }

    /// The inspector finds what a request caused among the rows stamped while it was
    /// answered, through the time indexes: not another request's rows, nor another
    /// tenant's, nor rows of the same id stamped outside that span.
    #[test]
    fn a_requests_changes_are_found_in_the_span_it_was_answered() {
        let conn = super::super::scratch_db();
        let mut request = entry(1, 7, 201, "2026-03-01T12:00:00.000000Z");
        request.duration_us = 500_000;
        let during = request.while_answered();
        assert_eq!(
            during,
            (
                "2026-03-01T11:59:59.000000Z".to_string(),
                "2026-03-01T12:00:01.500000Z".to_string()
            )
        );
        let caused = "2026-03-01T12:00:00.400000Z";
        let stamped = [
            (1, "r7", caused),
            (1, "r8", "2026-03-01T12:00:00.300000Z"),
            (2, "r7", "2026-03-01T12:00:00.300000Z"),
            (1, "r7", "2026-03-01T12:00:05.000000Z"),
        ];
        for (seq, (tenant, rid, at)) in (1i64..).zip(stamped) {
            conn.execute(
                "INSERT INTO events (tenant_id, seq, type, subject, payload, created_at, actor, request_id)
                 VALUES (?1, ?2, 'member.updated', 'm', '{}', ?3, 'cli', ?4)",
                params![tenant, seq, at, rid],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO audit_log (tenant_id, at, actor, action, target, outcome, request_id)
                 VALUES (?1, ?2, 'cli', 'member.updated', 'm', 'success', ?3)",
                params![tenant, at, rid],
            )
            .unwrap();
        }
        let events = super::super::events::by_request(&conn, 1, "r7", &during, 10).unwrap();
        let times: Vec<&str> = events.iter().map(|e| e.created_at.as_str()).collect();
        assert_eq!(times, [caused]);
        let audit = super::super::audit::by_request(&conn, 1, "r7", &during, 10).unwrap();
        let times: Vec<&str> = audit.iter().map(|e| e.at.as_str()).collect();
        assert_eq!(times, [caused]);
    }
}
