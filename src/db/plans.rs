//! Stored plan reports (`stored_plans`): the last whole-tenant plan of each tenant whose
//! sync page was looked at, kept across restarts by `ops::reconcile::Plans`. The report is
//! opaque text here; what it means, and when it may be served, is the use case's.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;

/// A tenant's stored plan: the plan version ([`super::tenants::plan_version`]) it was
/// made at, the build that made it, and its report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlan {
    pub version: (String, i64),
    pub planner: String,
    pub report: String,
}

/// Tenant `tenant_id`'s stored plan, if it has one.
pub fn get(conn: &Connection, tenant_id: i64) -> Result<Option<StoredPlan>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT created_at, plan_version, planner, report FROM stored_plans WHERE tenant_id = ?1",
        )?
        .query_row([tenant_id], |r| {
            Ok(StoredPlan {
                version: (r.get(0)?, r.get(1)?),
                planner: r.get(2)?,
                report: r.get(3)?,
            })
        })
        .optional()?)
}

/// Stores `plan` as tenant `tenant_id`'s, unless the one stored was made at a later plan
/// version of the same tenant (two plans stored out of order keep the newer).
pub fn put(conn: &Connection, tenant_id: i64, plan: &StoredPlan) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO stored_plans (tenant_id, created_at, plan_version, planner, report)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (tenant_id) DO UPDATE SET created_at = excluded.created_at,
             plan_version = excluded.plan_version, planner = excluded.planner,
             report = excluded.report
         WHERE excluded.created_at <> created_at OR excluded.plan_version >= plan_version",
    )?
    .execute(params![
        tenant_id,
        plan.version.0,
        plan.version.1,
        plan.planner,
        plan.report
    ])?;
    Ok(())
}

/// The tenants with a stored plan, live ones only: those whose page was looked at.
pub fn tenants(conn: &Connection) -> Result<Vec<i64>, DbError> {
    Ok(conn
        .prepare(
            "SELECT p.tenant_id FROM stored_plans p JOIN tenants t ON t.id = p.tenant_id
              WHERE t.deleting_at IS NULL ORDER BY p.tenant_id",
        )?
        .query_map([], |r| r.get(0))?
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
        assert_eq!(tenants(&conn).unwrap(), vec![2]);
        conn.execute("DELETE FROM tenants WHERE id = 2", [])
            .unwrap();
        assert_eq!(get(&conn, 2).unwrap(), None, "gone with its tenant");
    }
}
