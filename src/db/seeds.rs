//! Seeds: directory users that stand in for members who existed before provisioning.
//!
//! DESIGN.md: "members that existed before provisioning must be findable by the IdP's GET
//! /Users lookups and listings so it can match them; a write to such a user adopts it into
//! the directory." A seed is an ordinary row of `users` with `origin = 'seed'`, built from a
//! managed, never-linked, not archived member, so every SCIM lookup, filter and page finds
//! it exactly as it finds IdP users. The IdP's first write to it (PUT, PATCH, a POST with
//! its userName, a group membership) adopts it: `origin` becomes `'idp'` and sync links the
//! member by email as usual. Sync never reads seeds, so a seed never creates, changes or
//! archives anything by itself.
//!
//! [`refresh`] reconciles the seeds of a tenant with its members; it runs after a CSV
//! import, after an applied sync and when a member's `managed` flag changes.

use std::collections::HashMap;

use rusqlite::{Connection, params};
use serde_json::{Map, Value, json};

use super::{DbError, users};
use crate::scim::filter::fold;

/// What [`refresh`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeedSummary {
    pub created: usize,
    pub updated: usize,
    pub removed: usize,
}

/// A member that should be findable by the IdP, with the userName its seed carries.
struct Wanted {
    user_name: String,
    data: Map<String, Value>,
}

/// The SCIM user a member stands for before the IdP has it.
fn seed_data(
    email: Option<&str>,
    user_name: Option<&str>,
    given: Option<&str>,
    family: Option<&str>,
    display: Option<&str>,
    active: bool,
) -> Option<Wanted> {
    let user_name = user_name.or(email)?.trim().to_string();
    if user_name.is_empty() {
        return None;
    }
    let mut data = Map::new();
    data.insert("userName".into(), json!(user_name));
    let mut name = Map::new();
    if let Some(g) = given {
        name.insert("givenName".into(), json!(g));
    }
    if let Some(f) = family {
        name.insert("familyName".into(), json!(f));
    }
    if !name.is_empty() {
        data.insert("name".into(), Value::Object(name));
    }
    if let Some(d) = display {
        data.insert("displayName".into(), json!(d));
    }
    if let Some(e) = email {
        data.insert(
            "emails".into(),
            json!([{"value": e, "type": "work", "primary": true}]),
        );
    }
    data.insert("active".into(), json!(active));
    Some(Wanted { user_name, data })
}

/// Makes the tenant's seeds match its members: one seed per managed, never-linked, not
/// archived member that no IdP user already matches; no other seeds.
pub fn refresh(conn: &Connection, tenant_id: i64) -> Result<SeedSummary, DbError> {
    let mut wanted: HashMap<String, Wanted> = HashMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT m.email, m.user_name, m.given_name, m.family_name, m.display_name, m.status
               FROM members m
              WHERE m.tenant_id = ?1 AND m.managed = 1 AND m.status <> 'archived' AND m.user_id IS NULL
                AND NOT EXISTS (SELECT 1 FROM users u WHERE u.tenant_id = m.tenant_id AND u.origin = 'idp'
                                  AND u.user_name_fold IN (m.user_name_fold, m.email_fold))
                AND NOT EXISTS (SELECT 1 FROM user_emails e JOIN users u ON u.pk = e.user_pk
                                 WHERE e.value_fold = m.email_fold AND u.tenant_id = m.tenant_id AND u.origin = 'idp')",
        )?;
        let mut rows = stmt.query([tenant_id])?;
        while let Some(r) = rows.next()? {
            let text = |i: usize| -> rusqlite::Result<Option<String>> { r.get(i) };
            let (email, user_name, given, family, display) =
                (text(0)?, text(1)?, text(2)?, text(3)?, text(4)?);
            let status: String = r.get(5)?;
            if let Some(w) = seed_data(
                email.as_deref(),
                user_name.as_deref(),
                given.as_deref(),
                family.as_deref(),
                display.as_deref(),
                status == "active",
            ) {
                // Two members claiming one userName: the first keeps it.
                wanted.entry(fold(&w.user_name)).or_insert(w);
            }
        }
    }
    let mut existing: Vec<(i64, String)> = Vec::new();
    {
        let mut stmt =
            conn.prepare("SELECT pk, id FROM users WHERE tenant_id = ?1 AND origin = 'seed'")?;
        let rows = stmt.query_map([tenant_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for r in rows {
            existing.push(r?);
        }
    }
    let mut summary = SeedSummary::default();
    for (pk, id) in existing {
        let row = users::get(conn, tenant_id, &id)?.ok_or(DbError::NotFound)?;
        let key = fold(
            row.data
                .get("userName")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        );
        match wanted.remove(&key) {
            Some(w) if w.data != row.data => {
                users::refresh_seed(conn, tenant_id, &row, w.data)?;
                summary.updated += 1;
            }
            Some(_) => {}
            None => {
                conn.execute("DELETE FROM users WHERE pk = ?1", params![pk])?;
                summary.removed += 1;
            }
        }
    }
    for (_, w) in wanted {
        match users::create_seed(conn, tenant_id, &w.data) {
            Ok(_) => summary.created += 1,
            // An IdP user already holds that userName: sync will match them instead.
            Err(DbError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(summary)
}
