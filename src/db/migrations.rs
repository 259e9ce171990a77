//! Numbered, embedded, forward-only migrations tracked in `PRAGMA user_version`.
//!
//! Each migration runs in its own transaction together with the version bump, so a
//! failure leaves the database at the previous version. Never edit a migration that has
//! landed: add the next one.

use rusqlite::{Connection, OptionalExtension};

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
    (
        "0016_member_checks",
        include_str!("migrations/0016_member_checks.sql"),
    ),
    (
        "0017_covering_groups_of",
        include_str!("migrations/0017_covering_groups_of.sql"),
    ),
    (
        "0018_covering_email_lookup",
        include_str!("migrations/0018_covering_email_lookup.sql"),
    ),
    (
        "0019_dashboard_counts",
        include_str!("migrations/0019_dashboard_counts.sql"),
    ),
    (
        "0020_deprovisioned_per_second",
        include_str!("migrations/0020_deprovisioned_per_second.sql"),
    ),
    (
        "0021_held_oldest_first",
        include_str!("migrations/0021_held_oldest_first.sql"),
    ),
    (
        "0022_webhook_ids_never_reused",
        include_str!("migrations/0022_webhook_ids_never_reused.sql"),
    ),
    (
        "0023_rare_member_indexes",
        include_str!("migrations/0023_rare_member_indexes.sql"),
    ),
    (
        "0024_deferred_keys",
        include_str!("migrations/0024_deferred_keys.sql"),
    ),
    (
        "0025_counts_without_upserts",
        include_str!("migrations/0025_counts_without_upserts.sql"),
    ),
    (
        "0026_canonical_folds",
        include_str!("migrations/0026_canonical_folds.sql"),
    ),
    (
        "0027_last_directory",
        include_str!("migrations/0027_last_directory.sql"),
    ),
    (
        "0028_login_failures_hashed",
        include_str!("migrations/0028_login_failures_hashed.sql"),
    ),
    (
        "0029_session_idle",
        include_str!("migrations/0029_session_idle.sql"),
    ),
    (
        "0030_group_member_counts",
        include_str!("migrations/0030_group_member_counts.sql"),
    ),
    (
        "0031_request_changes_by_time",
        include_str!("migrations/0031_request_changes_by_time.sql"),
    ),
    (
        "0032_events_purged_cursor",
        include_str!("migrations/0032_events_purged_cursor.sql"),
    ),
    (
        "0033_tenant_deletion",
        include_str!("migrations/0033_tenant_deletion.sql"),
    ),
    (
        "0034_credential_ids_never_reused",
        include_str!("migrations/0034_credential_ids_never_reused.sql"),
    ),
    (
        "0035_users_by_manager",
        include_str!("migrations/0035_users_by_manager.sql"),
    ),
    (
        "0036_stored_plans",
        include_str!("migrations/0036_stored_plans.sql"),
    ),
    (
        "0037_plan_touches",
        include_str!("migrations/0037_plan_touches.sql"),
    ),
    (
        "0038_event_seq_repair",
        include_str!("migrations/0038_event_seq_repair.sql"),
    ),
];

/// Migrations that rebuild a table, SQLite's only way to change a constraint. They run with
/// foreign keys off, as SQLite's ALTER TABLE page prescribes, so that dropping the old table
/// cascades into nothing; the keys are checked before the migration commits.
const REBUILDS: &[&str] = &[
    "0016_member_checks",
    "0022_webhook_ids_never_reused",
    "0034_credential_ids_never_reused",
];

/// Migrations that edit table definitions in place, for a change that alters nothing
/// stored (SQLite's ALTER TABLE page, "other kinds of table schema changes"): they run
/// with `writable_schema` on, then the schema version is bumped so every connection
/// reads the new definitions, and the edited schema must parse and pass SQLite's checks
/// before the migration commits.
const SCHEMA_EDITS: &[&str] = &["0024_deferred_keys"];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`], refusing one that is newer.
pub fn run(conn: &mut Connection) -> Result<(), DbError> {
    run_to(conn, SCHEMA_VERSION)
}

/// The schema version a database is at (`PRAGMA user_version`; 0 for a new one).
pub fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Brings the database up to version `target` (tests stop before a migration to build the
/// data it must cope with).
fn run_to(conn: &mut Connection, target: i64) -> Result<(), DbError> {
    // Migrations fold text as the server does (`scim_fold`), on whatever connection.
    super::filter_sql::register_functions(conn)?;
    let current = schema_version(conn)?;
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
        if REBUILDS.contains(name) {
            // Outside a transaction: SQLite ignores this pragma inside one.
            let keys: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
            conn.pragma_update(None, "foreign_keys", false)?;
            let applied = apply(conn, name, sql, version, true);
            conn.pragma_update(None, "foreign_keys", keys)?;
            applied?;
        } else {
            apply(conn, name, sql, version, false)?;
        }
        tracing::info!(migration = name, version, "applied migration");
    }
    Ok(())
}

/// Runs migration `name` and sets the version to `version`, in one transaction; with
/// `check_keys`, refuses to commit if the migration left a foreign key dangling.
fn apply(
    conn: &mut Connection,
    name: &str,
    sql: &str,
    version: i64,
    check_keys: bool,
) -> Result<(), DbError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let failed = |e: rusqlite::Error| DbError::Schema(format!("migration {name} failed: {e}"));
    if SCHEMA_EDITS.contains(&name) {
        let schema_version: i64 = tx.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
        tx.pragma_update(None, "writable_schema", true)?;
        let edited = tx.execute_batch(sql);
        tx.pragma_update(None, "writable_schema", false)?;
        edited.map_err(failed)?;
        tx.pragma_update(None, "schema_version", schema_version + 1)?;
        let problems: Vec<String> = tx
            .prepare("PRAGMA quick_check")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()
            .map_err(failed)?;
        if problems != ["ok"] {
            return Err(DbError::Schema(format!(
                "migration {name} left the schema damaged: {}",
                problems.join("; ")
            )));
        }
    } else {
        tx.execute_batch(sql).map_err(failed)?;
    }
    if check_keys {
        let dangling: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()?;
        if let Some(table) = dangling {
            return Err(DbError::Schema(format!(
                "migration {name} left a row of {table} pointing at nothing"
            )));
        }
    }
    tx.pragma_update(None, "user_version", version)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row `sql` returns, each as its values joined by `|`.
    fn dump(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            (0..n)
                .map(|i| {
                    r.get::<_, rusqlite::types::Value>(i)
                        .map(|v| format!("{v:?}"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.join("|"))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// A database with foreign keys on and the SQL functions the server registers, migrated
    /// up to (not including) migration `name`; and that migration's version less one.
    fn stopped_before(name: &str) -> (Connection, i64) {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        let before = MIGRATIONS.iter().position(|(n, _)| *n == name).unwrap() as i64;
        run_to(&mut conn, before).unwrap();
        (conn, before)
    }

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

    /// The highest tenant id ever used starts above every id the audit log and the events
    /// still name (a tenant removed by hand before deletion existed), so no new tenant
    /// inherits their chain.
    #[test]
    fn tenant_ids_start_above_every_id_still_named() {
        let (mut conn, _) = stopped_before("0033_tenant_deletion");
        conn.execute_batch(
            "INSERT INTO tenants (id, slug, name, created_at) VALUES (1, 'a', 'A', 't'), (3, 'c', 'C', 't');
             INSERT INTO audit_log (tenant_id, at, actor, action, outcome) VALUES (7, 't', 'cli', 'x', 'success');
             INSERT INTO events (tenant_id, type, subject, payload, created_at) VALUES (5, 'member.created', 's', '{}', 't');",
        )
        .unwrap();
        run(&mut conn).unwrap();
        assert_eq!(
            dump(&conn, "SELECT highest FROM tenant_ids"),
            ["Integer(7)"]
        );
        let t = super::super::tenants::create(&conn, "new", "New").unwrap();
        assert_eq!(t.id, 8);
    }

    /// A tenant whose event counter fell behind its events (a failed CSV import left some)
    /// numbers its next event past them; the others keep theirs.
    #[test]
    fn an_event_counter_behind_its_events_is_moved_past_them() {
        let (mut conn, _) = stopped_before("0038_event_seq_repair");
        conn.execute_batch(
            "INSERT INTO tenants (id, slug, name, created_at, last_event_seq) VALUES (1, 'a', 'A', 't', 1), (2, 'b', 'B', 't', 9);
             INSERT INTO events (tenant_id, seq, type, subject, payload, created_at) VALUES
               (1, 1, 'member.created', 's', '{}', 't'), (1, 2, 'member.created', 's', '{}', 't'),
               (2, 3, 'member.created', 's', '{}', 't');",
        )
        .unwrap();
        run(&mut conn).unwrap();
        assert_eq!(
            dump(&conn, "SELECT id, last_event_seq FROM tenants ORDER BY id"),
            ["Integer(1)|Integer(2)", "Integer(2)|Integer(9)"]
        );
    }

    /// Groups stored under one name before names were unique survive the migration apart
    /// (never merged), are reported, stay writable under their name, and from then on no
    /// new group or rename can take a used name.
    #[test]
    fn duplicate_group_names_are_kept_reported_and_no_new_ones_made() {
        use crate::db::groups;
        use serde_json::{Map, Value, json};
        let (mut conn, _) = stopped_before("0010_group_name_unique");
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

    /// Rebuilding members to change its checks keeps every row, pk and column, keeps the
    /// deprovisionings held against members (dropping the old table cascades nothing),
    /// brings back its indexes and triggers, still refuses a bad status or source, and
    /// leaves foreign keys on.
    #[test]
    fn rebuilding_members_keeps_rows_holds_indexes_and_checks() {
        let (mut conn, before) = stopped_before("0016_member_checks");
        conn.execute_batch(
            "INSERT INTO tenants (id, slug, name, created_at) VALUES (1, 'a', 'A', 't');
             INSERT INTO members (pk, tenant_id, id, email, email_fold, user_name, user_name_fold,
                                  given_name, family_name, display_name, role, role_reason, status,
                                  managed, source, user_id, created_at, updated_at, delete_after,
                                  status_at)
             VALUES (7, 1, 'm7', 'A@x', 'a@x', 'a', 'a', 'Ann', 'Lee', 'Ann Lee', 'admin', 'r', 'active', 1, 'scim', 'u1', 'c', 'u', NULL, 's'),
                    (9, 1, 'm9', NULL, NULL, 'b', 'b', NULL, NULL, NULL, 'viewer', 'r', 'suspended', 0, 'csv', NULL, 'c', 'u', 'd', 's'),
                    (12, 1, 'm12', 'c@x', 'c@x', NULL, NULL, NULL, NULL, NULL, 'viewer', 'r', 'archived', 1, 'manual', 'u3', 'c', 'u', NULL, NULL);
             INSERT INTO deprovision_holds (id, tenant_id, state, opened_at, threshold, active_members)
             VALUES (1, 1, 'held', 't', 1, 3);
             INSERT INTO held_changes (hold_id, member_pk, action, held_at) VALUES (1, 9, 'delete', 't');",
        )
        .unwrap();
        let rows = "SELECT * FROM members ORDER BY pk";
        let holds = "SELECT * FROM held_changes";
        let schema =
            "SELECT type, name FROM sqlite_schema WHERE tbl_name = 'members' ORDER BY name";
        let (rows_before, holds_before, schema_before) =
            (dump(&conn, rows), dump(&conn, holds), dump(&conn, schema));
        run_to(&mut conn, before + 1).unwrap();
        assert_eq!(dump(&conn, rows), rows_before);
        assert_eq!(dump(&conn, holds), holds_before, "no hold cascaded away");
        assert_eq!(dump(&conn, schema), schema_before);
        let keys: bool = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert!(keys, "foreign keys are back on");
        let insert = |status: &str, source: &str| {
            conn.execute(
                "INSERT INTO members (tenant_id, id, role, role_reason, status, source, created_at, updated_at)
                 VALUES (1, ?1, 'viewer', 'r', ?2, ?3, 'c', 'u')",
                rusqlite::params![format!("{status}-{source}"), status, source],
            )
        };
        assert!(
            insert("deleted", "scim").is_err(),
            "a bad status is refused"
        );
        assert!(insert("active", "ldap").is_err(), "a bad source is refused");
        insert("suspended", "manual").unwrap();
        // The plan-version trigger came back with the table.
        let version = |conn: &Connection| -> i64 {
            conn.query_row("SELECT plan_version FROM tenants WHERE id = 1", [], |r| {
                r.get(0)
            })
            .unwrap()
        };
        let v = version(&conn);
        conn.execute("UPDATE members SET role = 'admin' WHERE pk = 9", [])
            .unwrap();
        assert_eq!(version(&conn), v + 1);
        // And deleting a member still cascades into its held change.
        conn.execute("DELETE FROM members WHERE pk = 9", [])
            .unwrap();
        assert!(dump(&conn, holds).is_empty());
    }

    /// Rebuilding the webhook endpoints keeps their rows, ids and attempts, and from then
    /// on a removed endpoint's id is never handed out again.
    #[test]
    fn webhook_endpoint_ids_are_kept_and_never_reused() {
        let (mut conn, before) = stopped_before("0022_webhook_ids_never_reused");
        conn.execute_batch(
            "INSERT INTO tenants (id, slug, name, created_at) VALUES (1, 'a', 'A', 't');
             INSERT INTO webhook_endpoints (id, tenant_id, url, secret, cursor, created_at)
             VALUES (2, 1, 'https://a/hook', 'whsec_a', 4, 't'), (5, 1, 'https://b/hook', 'whsec_b', 0, 't');
             INSERT INTO webhook_attempts (endpoint_id, seq, event_id, at, status, duration_ms)
             VALUES (5, 1, 'evt_1', 't', 500, 3), (2, 4, 'evt_4', 't', 200, 2);",
        )
        .unwrap();
        let (endpoints, attempts) = (
            "SELECT * FROM webhook_endpoints ORDER BY id",
            "SELECT * FROM webhook_attempts ORDER BY id",
        );
        let schema = "SELECT type, name FROM sqlite_schema WHERE tbl_name = 'webhook_endpoints' ORDER BY name";
        let (endpoints_before, attempts_before, schema_before) = (
            dump(&conn, endpoints),
            dump(&conn, attempts),
            dump(&conn, schema),
        );
        run_to(&mut conn, before + 1).unwrap();
        assert_eq!(dump(&conn, endpoints), endpoints_before);
        assert_eq!(
            dump(&conn, attempts),
            attempts_before,
            "no attempt cascaded away"
        );
        assert_eq!(dump(&conn, schema), schema_before);
        conn.execute("DELETE FROM webhook_endpoints WHERE id = 5", [])
            .unwrap();
        assert_eq!(dump(&conn, attempts).len(), 1, "removal still cascades");
        conn.execute(
            "INSERT INTO webhook_endpoints (tenant_id, url, secret, created_at)
             VALUES (1, 'https://c/hook', 'whsec_c', 't')",
            [],
        )
        .unwrap();
        assert_eq!(conn.last_insert_rowid(), 6, "5 is not handed out again");
    }

    /// Rebuilding the SCIM tokens, API keys and OAuth apps keeps their rows, ids, indexes
    /// and triggers, and what hangs off an OAuth app; from then on an id freed by a tenant's
    /// deletion is never handed out again.
    #[test]
    fn credential_ids_are_kept_and_never_reused() {
        let (mut conn, before) = stopped_before("0034_credential_ids_never_reused");
        conn.execute_batch(
            "INSERT INTO tenants (id, slug, name, created_at) VALUES (1, 'a', 'A', 't'), (2, 'b', 'B', 't');
             INSERT INTO scim_tokens (id, tenant_id, name, prefix, hash, created_at)
             VALUES (3, 1, 'okta', 'scimd_ab', x'01', 't'), (7, 2, 'entra', 'scimd_cd', x'02', 't');
             INSERT INTO api_keys (id, tenant_id, name, prefix, hash, created_at)
             VALUES (2, 1, 'app', 'scimk_ab', x'03', 't'), (4, NULL, 'every', 'scimk_cd', x'04', 't');
             INSERT INTO oauth_clients (id, tenant_id, client_id, name, secret_hash, grant_types, created_at)
             VALUES (5, 2, 'c5', 'Okta', x'05', 'client_credentials', 't');
             INSERT INTO oauth_redirect_uris (client_id, uri) VALUES (5, 'https://okta/cb');
             INSERT INTO oauth_grants (id, client_id, grant_type, scope, created_at)
             VALUES (1, 5, 'client_credentials', 'scim', 't');",
        )
        .unwrap();
        let tables = [
            "scim_tokens",
            "api_keys",
            "oauth_clients",
            "oauth_redirect_uris",
            "oauth_grants",
        ];
        let rows = |conn: &Connection| {
            tables.map(|t| dump(conn, &format!("SELECT * FROM {t} ORDER BY rowid")))
        };
        let schema = "SELECT type, name FROM sqlite_schema
                      WHERE tbl_name IN ('scim_tokens', 'api_keys', 'oauth_clients') ORDER BY name";
        let (rows_before, schema_before) = (rows(&conn), dump(&conn, schema));
        run_to(&mut conn, before + 1).unwrap();
        assert_eq!(
            rows(&conn),
            rows_before,
            "nothing lost, nothing cascaded away"
        );
        assert_eq!(
            dump(&conn, schema),
            schema_before,
            "indexes and triggers kept"
        );
        let generation = |conn: &Connection| -> i64 {
            conn.query_row("SELECT n FROM credential_generation", [], |r| r.get(0))
                .unwrap()
        };
        let n = generation(&conn);
        // Tenant b goes, and its credentials with it.
        conn.execute("DELETE FROM tenants WHERE id = 2", [])
            .unwrap();
        assert!(generation(&conn) > n, "the token cache still hears of it");
        assert!(
            dump(&conn, "SELECT * FROM oauth_grants").is_empty(),
            "removal still cascades"
        );
        for (insert, freed) in [
            (
                "INSERT INTO scim_tokens (tenant_id, name, prefix, hash, created_at)
                 VALUES (1, 'new', 'scimd_ef', x'06', 't')",
                7,
            ),
            (
                "INSERT INTO oauth_clients (tenant_id, client_id, name, secret_hash, grant_types, created_at)
                 VALUES (1, 'c6', 'New', x'07', 'client_credentials', 't')",
                5,
            ),
        ] {
            conn.execute(insert, []).unwrap();
            assert_eq!(conn.last_insert_rowid(), freed + 1, "{freed} is not handed out again");
        }
        conn.execute("DELETE FROM api_keys WHERE id = 4", [])
            .unwrap();
        conn.execute(
            "INSERT INTO api_keys (tenant_id, name, prefix, hash, created_at)
             VALUES (1, 'new', 'scimk_ef', x'08', 't')",
            [],
        )
        .unwrap();
        assert_eq!(conn.last_insert_rowid(), 5, "4 is not handed out again");
    }

    /// Groups that had members before the upgrade start from their real counts, and the
    /// counts move with memberships afterwards; a count moving alone does not change what
    /// the sync plans (the membership's own trigger does), a group's rename still does.
    #[test]
    fn group_member_counts_start_from_the_memberships_already_there() {
        let (mut conn, _) = stopped_before("0030_group_member_counts");
        conn.execute_batch(
            "INSERT INTO tenants (id, slug, name, created_at) VALUES (1, 'a', 'A', 't');
             INSERT INTO users (pk, tenant_id, id, user_name, user_name_fold, data, created, last_modified, version)
             VALUES (1, 1, 'u1', 'a', 'a', '{}', 't', 't', 1), (2, 1, 'u2', 'b', 'b', '{}', 't', 't', 1);
             INSERT INTO groups (pk, tenant_id, id, display_name, display_name_fold, data, created, last_modified, version)
             VALUES (1, 1, 'g1', 'G', 'g', '{}', 't', 't', 1), (2, 1, 'g2', 'H', 'h', '{}', 't', 't', 1);
             INSERT INTO group_members (group_pk, member_user_pk) VALUES (1, 1), (1, 2);
             INSERT INTO group_members (group_pk, member_group_pk) VALUES (1, 2);",
        )
        .unwrap();
        run(&mut conn).unwrap();
        let counts =
            |conn: &Connection| dump(conn, "SELECT pk, member_count FROM groups ORDER BY pk");
        let plan = |conn: &Connection| -> i64 {
            conn.query_row("SELECT plan_version FROM tenants WHERE id = 1", [], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(
            counts(&conn),
            dump(&conn, "SELECT 1, 3 UNION ALL SELECT 2, 0")
        );
        conn.execute(
            "INSERT INTO group_members (group_pk, member_user_pk) VALUES (2, 1)",
            [],
        )
        .unwrap();
        conn.execute("DELETE FROM users WHERE pk = 2", []).unwrap();
        assert_eq!(
            counts(&conn),
            dump(&conn, "SELECT 1, 2 UNION ALL SELECT 2, 1")
        );
        let before = plan(&conn);
        conn.execute(
            "UPDATE groups SET member_count = member_count WHERE pk = 1",
            [],
        )
        .unwrap();
        assert_eq!(plan(&conn), before);
        conn.execute("UPDATE groups SET display_name = 'G2' WHERE pk = 1", [])
            .unwrap();
        assert_eq!(plan(&conn), before + 1);
    }

    /// The directory's foreign keys are checked at commit once edited in place: a dangling
    /// one still fails its commit, and deleting a tenant or a user still cascades. Every
    /// other table keeps its immediate keys.
    #[test]
    fn the_directory_keys_are_deferred_and_still_hold() {
        let (mut conn, at) = stopped_before("0024_deferred_keys");
        conn.execute_batch(
            "INSERT INTO tenants (id, slug, name, created_at) VALUES (1, 'a', 'A', 't'), (2, 'b', 'B', 't');
             INSERT INTO users (pk, tenant_id, id, user_name, user_name_fold, data, created, last_modified, version)
             VALUES (1, 1, 'u1', 'a', 'a', '{}', 't', 't', 1), (2, 2, 'u2', 'b', 'b', '{}', 't', 't', 1);
             INSERT INTO groups (pk, tenant_id, id, display_name, display_name_fold, data, created, last_modified, version)
             VALUES (1, 1, 'g1', 'G', 'g', '{}', 't', 't', 1);
             INSERT INTO group_members (group_pk, member_user_pk) VALUES (1, 1);",
        )
        .unwrap();
        let schema = "SELECT type, name, tbl_name FROM sqlite_schema ORDER BY name";
        let before = dump(&conn, schema);
        run_to(&mut conn, at + 1).unwrap();
        assert_eq!(
            dump(&conn, schema),
            before,
            "no table, index or trigger lost"
        );
        let deferred: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema
                 WHERE type = 'table' AND sql LIKE '%DEFERRABLE INITIALLY DEFERRED%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(deferred, 6);

        // Dangling within the transaction, refused at its commit.
        let tx = conn.transaction().unwrap();
        tx.execute(
            "INSERT OR FAIL INTO users (tenant_id, id, user_name, user_name_fold, data, created, last_modified, version)
             VALUES (9, 'u9', 'z', 'z', '{}', 't', 't', 1)",
            [],
        )
        .expect("a deferred key is not checked by the statement");
        let refused = tx.commit().unwrap_err();
        assert!(refused.to_string().contains("FOREIGN KEY"), "{refused}");
        conn.execute_batch("ROLLBACK").ok();
        assert!(dump(&conn, "SELECT id FROM users WHERE id = 'u9'").is_empty());
        // Other tables keep immediate keys.
        assert!(
            conn.execute(
                "INSERT INTO scim_tokens (tenant_id, name, prefix, hash, created_at) VALUES (9, 'n', 'p', 'h', 't')",
                [],
            )
            .is_err()
        );

        conn.execute("DELETE FROM users WHERE pk = 1", []).unwrap();
        assert!(
            dump(&conn, "SELECT * FROM group_members").is_empty(),
            "a user's memberships cascade"
        );
        conn.execute("DELETE FROM tenants WHERE id = 2", [])
            .unwrap();
        assert!(
            dump(&conn, "SELECT id FROM users").is_empty(),
            "a tenant's users cascade"
        );
    }

    /// Stored folds become canonical: a name stored with a combining accent is found by its
    /// precomposed spelling. A duplicate the old fold let in keeps its old fold rather than
    /// failing the upgrade.
    #[test]
    fn stored_folds_become_canonical_and_old_duplicates_survive() {
        let (mut conn, _) = stopped_before("0026_canonical_folds");
        // As the old fold stored them: lowercased, not composed.
        conn.execute_batch(
            "INSERT INTO tenants (id, slug, name, created_at) VALUES (1, 'a', 'A', 't');
             INSERT INTO users (pk, tenant_id, id, user_name, user_name_fold, data, created, last_modified, version)
             VALUES (1, 1, 'u1', 'JOS\u{c9}', 'jos\u{e9}', '{}', 't', 't', 1),
                    (2, 1, 'u2', 'Jose\u{301}', 'jose\u{301}', '{}', 't', 't', 1),
                    (3, 1, 'u3', 'Zoe\u{308}', 'zoe\u{308}', '{}', 't', 't', 1);
             INSERT INTO user_emails (user_pk, tenant_id, value_fold, type_fold)
             VALUES (3, 1, 'zoe\u{308}@x', 'work');
             INSERT INTO groups (pk, tenant_id, id, display_name, display_name_fold, data, created, last_modified, version)
             VALUES (1, 1, 'g1', 'E\u{301}quipe', 'e\u{301}quipe', '{}', 't', 't', 1);",
        )
        .unwrap();
        run(&mut conn).unwrap();
        let folds = |sql: &str| -> Vec<String> {
            let mut stmt = conn.prepare(sql).unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        // u2 would now clash with u1: it keeps its old fold; u3 is composed.
        assert_eq!(
            folds("SELECT user_name_fold FROM users ORDER BY pk"),
            ["jos\u{e9}", "jose\u{301}", "zo\u{eb}"]
        );
        assert_eq!(folds("SELECT value_fold FROM user_emails"), ["zo\u{eb}@x"]);
        assert_eq!(
            folds("SELECT display_name_fold FROM groups"),
            ["\u{e9}quipe"]
        );
    }

    /// The member counts the triggers keep start from the members already stored, in every
    /// tenant.
    #[test]
    fn the_active_count_starts_from_the_stored_members() {
        let (mut conn, _) = stopped_before("0019_dashboard_counts");
        conn.execute_batch(
            "INSERT INTO tenants (id, slug, name, created_at) VALUES (1, 'a', 'A', 't'), (2, 'b', 'B', 't'), (3, 'c', 'C', 't');
             INSERT INTO users (tenant_id, id, user_name, user_name_fold, data, created, last_modified, version)
             VALUES (1, 'u1', 'a', 'a', '{}', 't', 't', 1);",
        )
        .unwrap();
        for (i, (tenant, status)) in [
            (1, "active"),
            (1, "active"),
            (1, "suspended"),
            (2, "active"),
        ]
        .into_iter()
        .enumerate()
        {
            conn.execute(
                "INSERT INTO members (tenant_id, id, role, role_reason, status, source, created_at, updated_at)
                 VALUES (?1, ?2, 'viewer', 'r', ?3, 'csv', 'c', 'u')",
                rusqlite::params![tenant, format!("m{i}"), status],
            )
            .unwrap();
        }
        run(&mut conn).unwrap();
        let active: Vec<u64> = [1, 2, 3]
            .iter()
            .map(|&t| crate::db::members::count_active(&conn, t).unwrap())
            .collect();
        assert_eq!(active, [2, 1, 0]);
        let by_status: Vec<(String, i64)> = crate::db::members::counts_by_status_and_role(&conn, 1)
            .unwrap()
            .into_iter()
            .map(|(status, _, n)| (status.as_str().to_string(), n))
            .collect();
        assert_eq!(by_status, [("active".into(), 2), ("suspended".into(), 1)]);
    }

    /// The guard's window keeps what it held when it moves to a row per second.
    #[test]
    fn the_guards_window_keeps_its_deprovisionings_per_second() {
        let (mut conn, _) = stopped_before("0020_deprovisioned_per_second");
        conn.execute_batch(
            "INSERT INTO tenants (id, slug, name, created_at) VALUES (1, 'a', 'A', 't');
             INSERT INTO deprovisionings (tenant_id, at) VALUES
                 (1, '2026-12-05T10:00:00.100000Z'), (1, '2026-12-05T10:00:00.900000Z'),
                 (1, '2026-12-05T10:20:00.000000Z');",
        )
        .unwrap();
        run(&mut conn).unwrap();
        let since = |at: &str| crate::db::guard::applied_since(&conn, 1, at).unwrap();
        assert_eq!(since("2026-12-05T09:30:00.000000Z"), 3);
        assert_eq!(
            since("2026-12-05T10:00:00.500000Z"),
            3,
            "from its whole second"
        );
        assert_eq!(since("2026-12-05T10:00:01.000000Z"), 1);
    }
}
