//! Numbered, embedded, forward-only migrations tracked in `PRAGMA user_version`.
//!
//! Each migration runs in its own transaction together with the version bump, so a
//! failure leaves the database at the previous version. Never edit a migration that has
//! landed: add the next one.

use rusqlite::Connection;

use super::DbError;

/// The migrations, in order; migration `i` moves the database to version `i + 1`.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_directory",
        include_str!("migrations/0001_directory.sql"),
    ),
    ("0002_admin", include_str!("migrations/0002_admin.sql")),
    ("0003_members", include_str!("migrations/0003_members.sql")),
    (
        "0004_member_indexes",
        include_str!("migrations/0004_member_indexes.sql"),
    ),
    ("0005_oauth", include_str!("migrations/0005_oauth.sql")),
    (
        "0006_event_context",
        include_str!("migrations/0006_event_context.sql"),
    ),
    ("0007_apps", include_str!("migrations/0007_apps.sql")),
    (
        "0008_audit_chain",
        include_str!("migrations/0008_audit_chain.sql"),
    ),
    (
        "0009_deprovisioning",
        include_str!("migrations/0009_deprovisioning.sql"),
    ),
    (
        "0010_group_name_unique",
        include_str!("migrations/0010_group_name_unique.sql"),
    ),
    (
        "0011_requests",
        include_str!("migrations/0011_requests.sql"),
    ),
    (
        "0012_credential_generation",
        include_str!("migrations/0012_credential_generation.sql"),
    ),
    (
        "0013_list_counts",
        include_str!("migrations/0013_list_counts.sql"),
    ),
    (
        "0014_plan_version",
        include_str!("migrations/0014_plan_version.sql"),
    ),
    (
        "0015_partial_external_id",
        include_str!("migrations/0015_partial_external_id.sql"),
    ),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`], refusing one that is newer.
pub fn run(conn: &mut Connection) -> Result<(), DbError> {
    run_to(conn, SCHEMA_VERSION)
}

/// Brings the database up to version `target` (tests stop before a migration to build the
/// data it must cope with).
fn run_to(conn: &mut Connection, target: i64) -> Result<(), DbError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(DbError::Schema(format!(
            "the database is at schema version {current} but this scimd only knows up to \
             {SCHEMA_VERSION}: it was written by a newer scimd; upgrade scimd or restore a backup"
        )));
    }
    for (index, (name, sql)) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target as usize)
        .skip(current as usize)
    {
        let version = index as i64 + 1;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)
            .map_err(|e| DbError::Schema(format!("migration {name} failed: {e}")))?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(migration = name, version, "applied migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_databases() {
        let mut conn = Connection::open_in_memory().unwrap();
        run(&mut conn).unwrap();
        run(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = run(&mut conn).unwrap_err().to_string();
        assert!(err.contains("newer scimd"), "{err}");
    }

    /// Groups stored under one name before names were unique survive the migration apart
    /// (never merged), are reported, stay writable under their name, and from then on no
    /// new group or rename can take a used name.
    #[test]
    fn duplicate_group_names_are_kept_reported_and_no_new_ones_made() {
        use crate::db::groups;
        use serde_json::{Map, Value, json};
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::filter_sql::register_functions(&conn).unwrap();
        let before = MIGRATIONS
            .iter()
            .position(|(n, _)| *n == "0010_group_name_unique")
            .unwrap() as i64;
        run_to(&mut conn, before).unwrap();
        conn.execute_batch(
            "INSERT INTO tenants (id, slug, name, created_at) VALUES (1, 'a', 'A', '2026-01-01T00:00:00.000000Z'), (2, 'b', 'B', '2026-01-01T00:00:00.000000Z');",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for (pk, tenant, name) in [
            (1, 1, "Admins"),
            (2, 1, "ADMINS"),
            (3, 1, "Ops"),
            (4, 1, "admins"),
            (5, 2, "Admins"),
        ] {
            conn.execute(
                "INSERT INTO groups (pk, tenant_id, id, display_name, display_name_fold, data, created, last_modified, version)
                 VALUES (?1, ?2, 'g' || ?1, ?3, lower(?3), json_object('displayName', ?3), '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', 1)",
                rusqlite::params![pk, tenant, name],
            )
            .unwrap();
        }
        run(&mut conn).unwrap();
        let count: i64 = conn
            .query_row("SELECT count(*) FROM groups", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 5, "nothing merged or dropped");
        let clashes = groups::name_clashes(&conn, None).unwrap();
        assert_eq!(
            clashes,
            [groups::NameClash {
                tenant_id: 1,
                name: "Admins".into(),
                ids: vec!["g1".into(), "g2".into(), "g4".into()],
            }]
        );
        assert!(groups::name_clashes(&conn, Some(2)).unwrap().is_empty());
        let data = |name: &str| -> Map<String, Value> {
            json!({"displayName": name}).as_object().unwrap().clone()
        };
        // A new group of that name, or a rename onto it, is refused.
        assert!(matches!(
            groups::create(&conn, 1, &data("aDmInS")),
            Err(DbError::Conflict(_))
        ));
        let ops = groups::get(&conn, 1, "g3").unwrap().unwrap();
        assert!(matches!(
            groups::update(&conn, &ops, data("admins")),
            Err(DbError::Conflict(_))
        ));
        // A duplicate keeps its name through writes; renamed away, it is an ordinary group.
        let dup = groups::get(&conn, 1, "g2").unwrap().unwrap();
        let dup = groups::update(&conn, &dup, data("Admins")).unwrap();
        groups::update(&conn, &dup, data("Admins (2)")).unwrap();
        assert_eq!(
            groups::name_clashes(&conn, Some(1)).unwrap()[0].ids,
            ["g1", "g4"]
        );
        assert!(matches!(
            groups::create(&conn, 1, &data("admins (2)")),
            Err(DbError::Conflict(_))
        ));
        // A name left to one group is no clash, even if that group was a duplicate.
        groups::delete(&conn, 1, "g1").unwrap();
        assert!(matches!(
            groups::create(&conn, 1, &data("ADMINS")),
            Err(DbError::Conflict(_))
        ));
        assert!(groups::name_clashes(&conn, None).unwrap().is_empty());
    }
}
