//! Tenants: each SCIM token belongs to one, and every directory row carries its id.

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::DbError;
use super::members::CountMoves;
use crate::scim::datetime;

/// The tenant `scimd serve` creates on first start.
pub const DEFAULT_SLUG: &str = "default";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tenant {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub created_at: String,
}

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: r.get(0)?,
        slug: r.get(1)?,
        name: r.get(2)?,
        created_at: r.get(3)?,
    })
}

/// Creates the default tenant in a database that has no tenant (a new one). One whose
/// default tenant an admin deleted keeps its other tenants, and no default.
pub fn ensure_default(conn: &Connection) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO tenants (id, slug, name, created_at)
         SELECT (SELECT highest + 1 FROM tenant_ids), ?1, 'Default', ?2
          WHERE NOT EXISTS (SELECT 1 FROM tenants)",
        params![DEFAULT_SLUG, datetime::now()],
    )?;
    Ok(())
}

/// A slug is what admins type on the command line and see in URLs: keep it simple.
pub fn valid_slug(slug: &str) -> bool {
    (1..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
}

/// A tenant's name as stored: trimmed, 1 to 100 characters, none of them a control
/// character (a tab or a line break would break `tenant list`'s columns and lines).
fn checked_name(name: &str) -> Result<&str, DbError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(DbError::Conflict(
            "the tenant name must be 1 to 100 characters".into(),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(DbError::Conflict(
            "the tenant name may not hold control characters (tabs, line breaks)".into(),
        ));
    }
    Ok(name)
}

pub fn create(conn: &Connection, slug: &str, name: &str) -> Result<Tenant, DbError> {
    if !valid_slug(slug) {
        return Err(DbError::Conflict(format!(
            "invalid tenant slug {slug:?}: use 1-63 lowercase letters, digits and dashes"
        )));
    }
    let name = checked_name(name)?;
    let now = datetime::now();
    // Never an id a deleted tenant had: its audit entries keep it.
    match conn.execute(
        "INSERT INTO tenants (id, slug, name, created_at)
         VALUES ((SELECT highest + 1 FROM tenant_ids), ?1, ?2, ?3)",
        params![slug, name, now],
    ) {
        Ok(_) => {}
        Err(e) if super::is_unique_violation(&e) => {
            return Err(DbError::Conflict(format!("tenant {slug:?} already exists")));
        }
        Err(e) => return Err(e.into()),
    }
    by_slug(conn, slug)
}

pub fn by_slug(conn: &Connection, slug: &str) -> Result<Tenant, DbError> {
    conn.query_row(
        "SELECT id, slug, name, created_at FROM tenants WHERE slug = ?1 AND deleting_at IS NULL",
        [slug],
        from_row,
    )
    .optional()?
    .ok_or(DbError::NotFound)
}

/// Tenant `id`, being deleted or not.
pub fn get(conn: &Connection, id: i64) -> Result<Tenant, DbError> {
    conn.query_row(
        "SELECT id, slug, name, created_at FROM tenants WHERE id = ?1",
        [id],
        from_row,
    )
    .optional()?
    .ok_or(DbError::NotFound)
}

pub fn list(conn: &Connection) -> Result<Vec<Tenant>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT id, slug, name, created_at FROM tenants WHERE deleting_at IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([], from_row)?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Renames a tenant (its slug, which URLs and tokens' owners use, never changes).
pub fn rename(conn: &Connection, id: i64, name: &str) -> Result<(), DbError> {
    let name = checked_name(name)?;
    let n = conn.execute(
        "UPDATE tenants SET name = ?1 WHERE id = ?2",
        params![name, id],
    )?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

// --- Deletion -------------------------------------------------------------------------------

/// What a tenant holds, for the admin about to delete it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contents {
    pub users: i64,
    pub groups: i64,
    pub members: i64,
    pub active_members: i64,
    pub events: i64,
    pub scim_tokens: i64,
    pub oauth_clients: i64,
    pub api_keys: i64,
    pub webhook_endpoints: i64,
}

pub fn contents(conn: &Connection, id: i64) -> Result<Contents, DbError> {
    let count =
        |sql: &str| -> Result<i64, DbError> { Ok(conn.query_row(sql, [id], |r| r.get(0))?) };
    Ok(Contents {
        users: count("SELECT count(*) FROM users WHERE tenant_id = ?1")?,
        groups: count("SELECT count(*) FROM groups WHERE tenant_id = ?1")?,
        members: count("SELECT count(*) FROM members WHERE tenant_id = ?1")?,
        active_members: count(
            "SELECT count(*) FROM members WHERE tenant_id = ?1 AND status = 'active'",
        )?,
        events: count("SELECT count(*) FROM events WHERE tenant_id = ?1")?,
        scim_tokens: count(
            "SELECT count(*) FROM scim_tokens WHERE tenant_id = ?1 AND revoked_at IS NULL",
        )?,
        oauth_clients: count(
            "SELECT count(*) FROM oauth_clients WHERE tenant_id = ?1 AND revoked_at IS NULL",
        )?,
        api_keys: count(
            "SELECT count(*) FROM api_keys WHERE tenant_id = ?1 AND revoked_at IS NULL",
        )?,
        webhook_endpoints: count("SELECT count(*) FROM webhook_endpoints WHERE tenant_id = ?1")?,
    })
}

/// Starts deleting tenant `id`: from this transaction on, no list or slug finds it (its
/// slug is free for a new tenant), and its SCIM tokens, OAuth clients, API keys and
/// webhook endpoints are gone, so nothing reaches it or hears from it. What it holds is
/// left for [`purge_step`]. `Conflict` for the last tenant left.
pub fn mark_deleting(conn: &Connection, id: i64) -> Result<(), DbError> {
    let others: i64 = conn.query_row(
        "SELECT count(*) FROM tenants WHERE deleting_at IS NULL AND id <> ?1",
        [id],
        |r| r.get(0),
    )?;
    if others == 0 {
        return Err(DbError::Conflict(
            "the last tenant cannot be deleted: create another first".into(),
        ));
    }
    // A slug no admin can type (`valid_slug` refuses `~`), so the old one is free at once.
    let n = conn.execute(
        "UPDATE tenants SET deleting_at = ?2, slug = '~deleting-' || id
          WHERE id = ?1 AND deleting_at IS NULL",
        params![id, datetime::now()],
    )?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    for table in [
        "scim_tokens",
        "oauth_clients",
        "api_keys",
        "webhook_endpoints",
    ] {
        conn.execute(&format!("DELETE FROM {table} WHERE tenant_id = ?1"), [id])?;
    }
    Ok(())
}

/// The tenants being deleted, oldest request first.
pub fn deleting(conn: &Connection) -> Result<Vec<i64>, DbError> {
    let mut stmt = conn
        .prepare("SELECT id FROM tenants WHERE deleting_at IS NOT NULL ORDER BY deleting_at, id")?;
    let ids = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// The rows of a tenant being deleted, by table, in the order they go: memberships before
/// the groups and users they join (a group's would otherwise cascade all at once), rows
/// without a key to the tenant among them.
const PURGE: &[&str] = &[
    "DELETE FROM group_members WHERE rowid IN (SELECT m.rowid FROM groups g
       JOIN group_members m ON m.group_pk = g.pk WHERE g.tenant_id = ?1 LIMIT ?2)",
    "DELETE FROM users WHERE pk IN (SELECT pk FROM users WHERE tenant_id = ?1 LIMIT ?2)",
    "DELETE FROM groups WHERE pk IN (SELECT pk FROM groups WHERE tenant_id = ?1 LIMIT ?2)",
    "DELETE FROM members WHERE pk IN (SELECT pk FROM members WHERE tenant_id = ?1 LIMIT ?2)",
    // All but the tenant's `tenant.deleted`, kept for apps that read every tenant.
    "DELETE FROM events WHERE cursor IN (SELECT cursor FROM events WHERE tenant_id = ?1
       AND type <> 'tenant.deleted' LIMIT ?2)",
    "DELETE FROM scim_requests WHERE rowid IN (SELECT rowid FROM scim_requests WHERE tenant_id = ?1 LIMIT ?2)",
    "DELETE FROM sync_runs WHERE rowid IN (SELECT rowid FROM sync_runs WHERE tenant_id = ?1 LIMIT ?2)",
    // Last: deleting users and members above touches them.
    "DELETE FROM plan_touches WHERE (tenant_id, kind, key) IN
       (SELECT tenant_id, kind, key FROM plan_touches WHERE tenant_id = ?1 LIMIT ?2)",
];

/// Deletes at most `limit` rows of tenant `id`, which [`mark_deleting`] marked, from the
/// first table that still has some; once none has, the tenant's row (with its settings,
/// roles and counts). Returns whether the tenant is gone. Its audit entries stay, and its
/// `tenant.deleted` event.
pub fn purge_step(conn: &Connection, id: i64, limit: i64) -> Result<bool, DbError> {
    let marked: Option<Option<String>> = conn
        .query_row("SELECT deleting_at FROM tenants WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    match marked {
        None => return Ok(true),
        Some(None) => {
            return Err(DbError::Conflict(format!(
                "tenant {id} is not being deleted"
            )));
        }
        Some(Some(_)) => {}
    }
    for sql in PURGE {
        if conn.prepare_cached(sql)?.execute(params![id, limit])? > 0 {
            return Ok(false);
        }
    }
    conn.execute("DELETE FROM tenants WHERE id = ?1", [id])?;
    Ok(true)
}

/// `Ok` while tenant `id` takes writes; [`DbError::TenantDeleted`] once it is marked for
/// deletion or gone. A SCIM write checks it in its transaction: its token was found valid
/// when the request came, and a deletion may have committed since.
pub fn taking_writes(conn: &Connection, id: i64) -> Result<(), DbError> {
    let live: Option<bool> = conn
        .prepare_cached("SELECT deleting_at IS NULL FROM tenants WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    match live {
        Some(true) => Ok(()),
        _ => Err(DbError::TenantDeleted),
    }
}

/// What identifies the state of everything tenant `id`'s sync plan reads: the tenant's
/// creation time and its plan counter, which triggers bump in the transaction of every
/// write to users, groups, memberships, members, settings, roles and role mappings
/// (migration `0014_plan_version`). Equal versions mean equal plans. `NotFound` once the
/// tenant is being deleted: nothing plans it.
pub fn plan_version(conn: &Connection, id: i64) -> Result<(String, i64), DbError> {
    conn.prepare_cached(
        "SELECT created_at, plan_version FROM tenants WHERE id = ?1 AND deleting_at IS NULL",
    )?
    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()?
    .ok_or(DbError::NotFound)
}

/// Member writes in bulk, for a whole-tenant apply: while the batch is open the
/// connection fires no triggers, and [`MemberBatch::finish`] bumps tenant `tenant_id`'s
/// plan version once and moves the member counts as the batch moved members (what the
/// caller tallied in a [`CountMoves`]). The only triggers that writes to members, the
/// audit log and the outbox fire are the plan version's, one `UPDATE tenants` per row (a
/// fifth of applying 100 000 members), and the member counts' one upsert. Write nothing
/// else while it is open (users and groups keep their list counts by trigger). Switching
/// triggers off or on recompiles the connection's statements, twice per batch, so it is
/// for many rows, not one.
pub struct MemberBatch<'c> {
    conn: &'c Connection,
    tenant_id: i64,
}

pub fn member_batch(conn: &Connection, tenant_id: i64) -> Result<MemberBatch<'_>, DbError> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)?;
    Ok(MemberBatch { conn, tenant_id })
}

impl MemberBatch<'_> {
    /// Turns the triggers back on, bumps the plan version for the whole batch and moves
    /// the member counts as the batch moved members (their triggers did not fire).
    pub fn finish(self, moves: &CountMoves) -> Result<(), DbError> {
        self.conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, true)?;
        self.conn
            .prepare_cached("UPDATE tenants SET plan_version = plan_version + 1 WHERE id = ?1")?
            .execute([self.tenant_id])?;
        super::plans::touch_everything(self.conn, self.tenant_id)?;
        super::members::apply_count_moves(self.conn, self.tenant_id, moves)
    }
}

impl Drop for MemberBatch<'_> {
    /// A batch that failed leaves its transaction to be rolled back, and its connection
    /// with triggers on, whatever happened.
    fn drop(&mut self) {
        // Only an unknown option fails, and this one is known.
        let _ = self
            .conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deleted tenant's rows go a bounded number per step, memberships of a big group
    /// included, across as many steps (and restarts) as it takes; the other tenant keeps
    /// every row; the keys still hold; and a new tenant never takes the deleted one's id.
    #[test]
    fn a_deleted_tenant_goes_a_bounded_step_at_a_time_and_its_id_never_returns() {
        let conn = super::super::scratch_db();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        let gone = create(&conn, "gone", "Gone").unwrap().id;
        conn.execute_batch(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200)
             INSERT INTO users (tenant_id, id, user_name, user_name_fold, data, created, last_modified, version)
             SELECT t, t || '-u' || i, 'u' || i, 'u' || i, '{{}}', 't', 't', 1
               FROM n, (SELECT {gone} AS t UNION ALL SELECT 1);
             INSERT INTO groups (tenant_id, id, display_name, display_name_fold, data, created, last_modified, version)
             VALUES ({gone}, 'g-gone', 'Big', 'big', '{{}}', 't', 't', 1), (1, 'g-kept', 'Big', 'big', '{{}}', 't', 't', 1);
             INSERT INTO group_members (group_pk, member_user_pk)
             SELECT g.pk, u.pk FROM groups g JOIN users u ON u.tenant_id = g.tenant_id;
             INSERT INTO events (tenant_id, type, subject, payload, created_at)
             SELECT tenant_id, 'member.created', id, '{{}}', 't' FROM users;"
        ))
        .unwrap();
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        let kept =
            |table: &str| count(&format!("SELECT count(*) FROM {table} WHERE tenant_id = 1"));
        let before: Vec<i64> = ["users", "groups", "events"].map(kept).to_vec();

        mark_deleting(&conn, gone).unwrap();
        assert!(list(&conn).unwrap().iter().all(|t| t.id != gone));
        assert!(matches!(by_slug(&conn, "gone"), Err(DbError::NotFound)));
        assert!(matches!(mark_deleting(&conn, gone), Err(DbError::NotFound)));
        assert_eq!(deleting(&conn).unwrap(), [gone]);
        // The slug is free at once.
        let again = create(&conn, "gone", "Gone again").unwrap().id;
        assert!(again > gone);

        let mut steps = 0;
        loop {
            let total = count(
                "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM group_members) + (SELECT count(*) FROM events)",
            );
            let done = purge_step(&conn, gone, 500).unwrap();
            let after = count(
                "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM group_members) + (SELECT count(*) FROM events)",
            );
            // A user's delete takes its memberships with it, but those went first.
            assert!(total - after <= 500, "one step deleted {}", total - after);
            steps += 1;
            if done {
                break;
            }
        }
        // 1 200 memberships, users and events: three steps each; the group one; the
        // touches of 1 200 users and their userNames, five; the row.
        assert_eq!(steps, 16, "{steps}");
        assert!(purge_step(&conn, gone, 500).unwrap(), "gone stays gone");
        assert!(deleting(&conn).unwrap().is_empty());
        assert_eq!(["users", "groups", "events"].map(kept).to_vec(), before);
        assert_eq!(count("SELECT count(*) FROM group_members"), 1200);
        assert_eq!(count("SELECT count(*) FROM pragma_foreign_key_check"), 0);
        // The last tenant left cannot go.
        mark_deleting(&conn, again).unwrap();
        assert!(matches!(mark_deleting(&conn, 1), Err(DbError::Conflict(_))));
        // Ids only grow, even past a deleted tenant that had the highest.
        while !purge_step(&conn, again, 500).unwrap() {}
        assert!(create(&conn, "next", "Next").unwrap().id > again);
    }
}
