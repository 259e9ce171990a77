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
    // Named 0009 so that it lands after another branch's 0008; renumber on merge.
    (
        "0009_requests",
        include_str!("migrations/0009_requests.sql"),
    ),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`], refusing one that is newer.
pub fn run(conn: &mut Connection) -> Result<(), DbError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(DbError::Schema(format!(
            "the database is at schema version {current} but this scimd only knows up to \
             {SCHEMA_VERSION}: it was written by a newer scimd; upgrade scimd or restore a backup"
        )));
    }
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
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
}
