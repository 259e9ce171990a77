//! Stored plan reports (`stored_plans`): the last whole-tenant plan of each tenant, kept
//! across restarts by `ops::reconcile::Plans`, and what was written since it was made
//! (`plan_touches`). The report is opaque text here; what it means, and when it may be
//! served, is the use case's.

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

/// A stored plan's report, as text, with the plan version it was made at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    pub text: String,
    pub plan_version: i64,
}

/// What tenant `tenant_id`'s stored plan holds for a server whose plan is `version` by
/// `planner`: the last load of the page it knows of, and the report when that build made
/// it for this tenant, at `version` or, if its text is at most `stale_at_most` bytes, at an
/// earlier one (to bring up to date). A longer stale report (megabytes at 100 000
/// members) is not read.
pub fn current(
    conn: &Connection,
    tenant_id: i64,
    version: &(String, i64),
    planner: &str,
    stale_at_most: usize,
) -> Result<Option<(i64, Option<StoredReport>)>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT looked_at, CASE WHEN created_at = ?2 AND planner = ?4
                                      AND (plan_version = ?3 OR length(report) <= ?5)
                                     THEN report END, plan_version
               FROM stored_plans WHERE tenant_id = ?1",
        )?
        .query_row(
            params![
                tenant_id,
                version.0,
                version.1,
                planner,
                stale_at_most as i64
            ],
            |r| {
                let text: Option<String> = r.get(1)?;
                let plan_version = r.get(2)?;
                let report = text.map(|text| StoredReport { text, plan_version });
                Ok((r.get(0)?, report))
            },
        )
        .optional()?)
}

/// Whether tenant `tenant_id`'s stored plan may be left as it is by a server whose plan is
/// `version` by `planner`: it is current, or its report is longer than `long` bytes (too
/// long to bring up to date, so planned again only when someone asks for it).
pub fn may_stay(
    conn: &Connection,
    tenant_id: i64,
    version: &(String, i64),
    planner: &str,
    long: usize,
) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT (created_at = ?2 AND plan_version = ?3 AND planner = ?4)
                    OR length(report) > ?5
               FROM stored_plans WHERE tenant_id = ?1",
        )?
        .query_row(
            params![tenant_id, version.0, version.1, planner, long as i64],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(false))
}

/// Stores `plan` as tenant `tenant_id`'s, unless the one stored was made at a later plan
/// version of the same tenant (two plans stored out of order keep the newer), and drops
/// the tenant's touches older than the plan.
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
    // The stored plan's version says how far they went: this one's, or a later one's.
    conn.prepare_cached("DELETE FROM plan_touches WHERE tenant_id = ?1 AND version < ?2")?
        .execute(params![tenant_id, plan.version.1])?;
    Ok(())
}

/// Notes that anything in tenant `tenant_id`'s plan may have moved: for writes made with
/// triggers off (`tenants::MemberBatch`).
pub fn touch_everything(conn: &Connection, tenant_id: i64) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO plan_touches (tenant_id, kind, key, version)
         SELECT id, 0, '', plan_version FROM tenants WHERE id = ?1
         ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version",
    )?
    .execute([tenant_id])?;
    Ok(())
}

/// What was written to tenant `tenant_id` since its plan version `since`, as far as its
/// plan is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    /// Directory users, by SCIM id (deleted ones too).
    pub users: Vec<String>,
    /// Members, by id (deleted ones too).
    pub members: Vec<String>,
    /// Emails and userNames (folded, as stored) that a user or member held and may no
    /// longer hold.
    pub keys: Vec<String>,
}

/// The touches of tenant `tenant_id` since its plan version `since` (which may include the
/// last write a plan at `since` saw), or `None` when they cannot say what moved: anything
/// may have (settings, roles, a bulk write), there are more than `at_most`, or touches
/// since `since` were dropped already (a plan stored since is newer).
pub fn touched_since(
    conn: &Connection,
    tenant_id: i64,
    since: i64,
    at_most: usize,
) -> Result<Option<Touched>, DbError> {
    let dropped_to: i64 = conn
        .prepare_cached("SELECT plan_version FROM stored_plans WHERE tenant_id = ?1")?
        .query_row([tenant_id], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    if since < dropped_to {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT kind, key FROM plan_touches WHERE tenant_id = ?1 AND version >= ?2 LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![tenant_id, since, at_most as i64 + 1])?;
    let mut touched = Touched::default();
    let mut n = 0;
    while let Some(r) = rows.next()? {
        n += 1;
        let key: String = r.get(1)?;
        match r.get::<_, i64>(0)? {
            1 => touched.users.push(key),
            2 => touched.members.push(key),
            3 => touched.keys.push(key),
            _ => return Ok(None),
        }
        if n > at_most {
            return Ok(None);
        }
    }
    Ok(Some(touched))
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

    /// Touches name each person and key written once, however often; say "anything"
    /// for settings; and those older than a plan go when it is stored, after which a plan
    /// made before it cannot be brought up to date.
    #[test]
    fn touches_say_who_moved_since_a_plan_and_go_when_a_later_one_is_stored() {
        let conn = db();
        let user = |id: &str, name: &str| {
            conn.execute(
                "INSERT INTO users (tenant_id, id, user_name, user_name_fold, data, created, last_modified, version)
                 VALUES (2, ?1, ?2, lower(?2), '{}', 't', 't', 1)",
                [id, name],
            )
            .unwrap();
        };
        let version = || crate::db::tenants::plan_version(&conn, 2).unwrap().1;
        let start = version();
        user("u1", "Ada");
        user("u2", "Bob");
        conn.execute_batch(
            "UPDATE users SET user_name = 'Al', user_name_fold = 'al' WHERE id = 'u1';
             UPDATE users SET version = 2 WHERE id = 'u1';
             DELETE FROM users WHERE id = 'u2';",
        )
        .unwrap();
        let touched = touched_since(&conn, 2, start, 10).unwrap().unwrap();
        assert_eq!(touched.users, ["u1", "u2"]);
        assert_eq!(touched.keys, ["ada", "bob"]);
        assert!(touched.members.is_empty());
        assert_eq!(
            touched_since(&conn, 1, 0, 10).unwrap(),
            Some(Touched::default())
        );
        assert_eq!(touched_since(&conn, 2, start, 3).unwrap(), None, "too many");
        let now = version();
        assert_eq!(
            touched_since(&conn, 2, now + 1, 10).unwrap(),
            Some(Touched::default())
        );
        put(&conn, 2, &plan(now, "now")).unwrap();
        let older: i64 = conn
            .query_row(
                "SELECT count(*) FROM plan_touches WHERE tenant_id = 2 AND version < ?1",
                [now],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(older, 0);
        assert_eq!(touched_since(&conn, 2, start, 10).unwrap(), None, "dropped");
        crate::db::settings::save(&conn, 2, &crate::model::Settings::default()).unwrap();
        assert_eq!(
            touched_since(&conn, 2, now, 10).unwrap(),
            None,
            "anyone may move"
        );
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
        let report = |text: &str| StoredReport {
            text: text.into(),
            plan_version: 7,
        };
        assert_eq!(
            current(&conn, 2, &seven, "p", 0).unwrap(),
            Some((107, Some(report("seven"))))
        );
        assert_eq!(
            current(&conn, 2, &seven, "q", 9).unwrap(),
            Some((107, None))
        );
        let eight = ("t2".into(), 8);
        assert_eq!(
            current(&conn, 2, &eight, "p", 4).unwrap(),
            Some((107, None)),
            "stale, and longer"
        );
        assert_eq!(
            current(&conn, 2, &eight, "p", 5).unwrap(),
            Some((107, Some(report("seven"))))
        );
        assert_eq!(
            current(&conn, 2, &("t3".into(), 7), "p", 9).unwrap(),
            Some((107, None)),
            "another tenant's"
        );
        looked_at(&conn, 2, 200).unwrap();
        looked_at(&conn, 2, 150).unwrap();
        assert_eq!(get(&conn, 2).unwrap().unwrap().looked_at, 200);
        conn.execute("DELETE FROM tenants WHERE id = 2", [])
            .unwrap();
        assert_eq!(get(&conn, 2).unwrap(), None, "gone with its tenant");
    }
}
