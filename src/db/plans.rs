//! Stored plan reports (`stored_plans`): the last whole-tenant plan of each tenant whose
//! sync page was looked at, kept across restarts by `ops::reconcile::Plans`. The report is
//! opaque text here; what it means, and when it may be served, is the use case's.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;

/// A tenant's stored plan: the plan version ([`super::tenants::plan_version`]) it was
/// made at, the build that made it, its report, and when the tenant's page was last
/// loaded (Unix seconds) as far as the server that stored it knew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlan {
    pub version: (String, i64),
    pub planner: String,
    pub report: String,
    pub looked_at: i64,
}

/// Tenant `tenant_id`'s stored plan, if it has one.
pub fn get(conn: &Connection, tenant_id: i64) -> Result<Option<StoredPlan>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT created_at, plan_version, planner, report, looked_at FROM stored_plans
              WHERE tenant_id = ?1",
        )?
        .query_row([tenant_id], |r| {
            Ok(StoredPlan {
                version: (r.get(0)?, r.get(1)?),
                planner: r.get(2)?,
                report: r.get(3)?,
                looked_at: r.get(4)?,
            })
        })
        .optional()?)
}

/// What tenant `tenant_id`'s stored plan holds for a server whose plan is `version` by
/// `planner`: the last load of the page it knows of, and the report only when the stored
/// plan is that one (a stale report, megabytes at 100 000 members, is not read).
pub fn current(
    conn: &Connection,
    tenant_id: i64,
    version: &(String, i64),
    planner: &str,
) -> Result<Option<(i64, Option<String>)>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT looked_at, CASE WHEN created_at = ?2 AND plan_version = ?3 AND planner = ?4
                                     THEN report END
               FROM stored_plans WHERE tenant_id = ?1",
        )?
        .query_row(params![tenant_id, version.0, version.1, planner], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?)
}

/// Stores `plan` as tenant `tenant_id`'s, unless the one stored was made at a later plan
/// version of the same tenant (two plans stored out of order keep the newer).
pub fn put(conn: &Connection, tenant_id: i64, plan: &StoredPlan) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO stored_plans (tenant_id, created_at, plan_version, planner, report, looked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (tenant_id) DO UPDATE SET created_at = excluded.created_at,
             plan_version = excluded.plan_version, planner = excluded.planner,
             report = excluded.report, looked_at = max(looked_at, excluded.looked_at)
         WHERE excluded.created_at <> created_at OR excluded.plan_version >= plan_version",
    )?
    .execute(params![
        tenant_id,
        plan.version.0,
        plan.version.1,
        plan.planner,
        plan.report,
        plan.looked_at
    ])?;
    Ok(())
}

/// Notes that tenant `tenant_id`'s page was loaded at `at` (Unix seconds), unless its stored
/// plan knows of a later load.
pub fn looked_at(conn: &Connection, tenant_id: i64, at: i64) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE stored_plans SET looked_at = max(looked_at, ?2) WHERE tenant_id = ?1",
    )?
    .execute(params![tenant_id, at])?;
    Ok(())
}

/// The live tenants with a stored plan whose page was loaded at `since` or later.
pub fn tenants(conn: &Connection, since: i64) -> Result<Vec<i64>, DbError> {
    Ok(conn
        .prepare(
            "SELECT p.tenant_id FROM stored_plans p JOIN tenants t ON t.id = p.tenant_id
              WHERE t.deleting_at IS NULL AND p.looked_at >= ?1 ORDER BY p.tenant_id",
        )?
        .query_map([since], |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database with a second tenant, created at `t2`.
    fn db() -> Connection {
        let conn = super::super::scratch_db();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        let id = crate::db::tenants::create(&conn, "two", "Two").unwrap().id;
        assert_eq!(id, 2);
        conn.execute("UPDATE tenants SET created_at = 't2' WHERE id = 2", [])
            .unwrap();
        conn
    }

    fn plan(version: i64, report: &str) -> StoredPlan {
        StoredPlan {
            version: ("t2".into(), version),
            planner: "p".into(),
            report: report.into(),
            looked_at: 100 + version,
        }
    }

    #[test]
    fn a_later_plan_replaces_an_earlier_one_and_never_the_reverse() {
        let conn = db();
        assert_eq!(get(&conn, 2).unwrap(), None);
        put(&conn, 2, &plan(5, "five")).unwrap();
        put(&conn, 2, &plan(7, "seven")).unwrap();
        put(&conn, 2, &plan(6, "six")).unwrap();
        assert_eq!(get(&conn, 2).unwrap(), Some(plan(7, "seven")));
        let seven = ("t2".to_string(), 7);
        assert_eq!(
            current(&conn, 2, &seven, "p").unwrap(),
            Some((107, Some("seven".into())))
        );
        assert_eq!(current(&conn, 2, &seven, "q").unwrap(), Some((107, None)));
        assert_eq!(
            current(&conn, 2, &("t2".into(), 6), "p").unwrap(),
            Some((107, None))
        );
        assert_eq!(tenants(&conn, 107).unwrap(), vec![2]);
        assert_eq!(
            tenants(&conn, 108).unwrap(),
            Vec::<i64>::new(),
            "not loaded since"
        );
        looked_at(&conn, 2, 200).unwrap();
        looked_at(&conn, 2, 150).unwrap();
        assert_eq!(get(&conn, 2).unwrap().unwrap().looked_at, 200);
        conn.execute("DELETE FROM tenants WHERE id = 2", [])
            .unwrap();
        assert_eq!(get(&conn, 2).unwrap(), None, "gone with its tenant");
    }
}
