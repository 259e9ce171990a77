//! The guard against mass deprovisioning: the deprovisionings applied within its window,
//! the open hold of a tenant, and the member deprovisionings it keeps back.

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::Serialize;

use super::DbError;
use crate::model::text_enum;

text_enum! {
    pub enum HoldState ("hold state") {
        /// Waiting for an admin.
        Held => "held",
        /// An admin kept the members as they are; held until the directory changes back.
        Rejected => "rejected",
        /// An admin applied them (closed).
        Approved => "approved",
        /// Nothing was left to hold (closed).
        Cleared => "cleared",
    }
}

/// A tripped guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub id: i64,
    #[serde(skip)]
    pub tenant_id: i64,
    pub state: HoldState,
    pub opened_at: String,
    pub threshold: u64,
    pub active_members: u64,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub closed_at: Option<String>,
}

/// One held deprovisioning, with the member it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Held {
    pub member_pk: i64,
    pub member_id: String,
    /// The member's email, else userName, else id.
    pub subject: String,
    /// suspend, archive or delete.
    pub action: String,
    pub reason: Option<String>,
    pub held_at: String,
}

const HOLD: &str = "SELECT id, tenant_id, state, opened_at, threshold, active_members, decided_by,
        decided_at, closed_at FROM deprovision_holds";

fn hold(r: &rusqlite::Row) -> rusqlite::Result<Hold> {
    let state: String = r.get(2)?;
    Ok(Hold {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        state: state.parse().map_err(|e: crate::model::UnknownValue| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                e.to_string().into(),
            )
        })?,
        opened_at: r.get(3)?,
        threshold: r.get::<_, i64>(4)? as u64,
        active_members: r.get::<_, i64>(5)? as u64,
        decided_by: r.get(6)?,
        decided_at: r.get(7)?,
        closed_at: r.get(8)?,
    })
}

/// How many deprovisionings were applied in the tenant since `since` (from its whole
/// second: one row per second that had any, so at most an hour's 3 600 rows).
pub fn applied_since(conn: &Connection, tenant_id: i64, since: &str) -> Result<u64, DbError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT coalesce(sum(n), 0) FROM deprovisioned_per_second
             WHERE tenant_id = ?1 AND second >= substr(?2, 1, 19)",
        )?
        .query_row(params![tenant_id, since], |r| r.get(0))?;
    Ok(n as u64)
}

/// Notes `n` deprovisionings applied at `now`. The first of a new second also forgets
/// the seconds before `prune_before`: at most once a second, not on every write.
pub fn record_applied(
    conn: &Connection,
    tenant_id: i64,
    n: usize,
    now: &str,
    prune_before: &str,
) -> Result<(), DbError> {
    if n == 0 {
        return Ok(());
    }
    let in_second: i64 = conn
        .prepare_cached(
            "INSERT INTO deprovisioned_per_second (tenant_id, second, n)
             VALUES (?1, substr(?2, 1, 19), ?3)
             ON CONFLICT (tenant_id, second) DO UPDATE SET n = n + excluded.n
             RETURNING n",
        )?
        .query_row(params![tenant_id, now, n as i64], |r| r.get(0))?;
    if in_second == n as i64 {
        conn.prepare_cached(
            "DELETE FROM deprovisioned_per_second
             WHERE tenant_id = ?1 AND second < substr(?2, 1, 19)",
        )?
        .execute(params![tenant_id, prune_before])?;
    }
    Ok(())
}

/// The tenant's open hold (held or rejected), if any.
pub fn open_hold(conn: &Connection, tenant_id: i64) -> Result<Option<Hold>, DbError> {
    Ok(conn
        .prepare_cached(&format!(
            "{HOLD} WHERE tenant_id = ?1 AND closed_at IS NULL"
        ))?
        .query_row([tenant_id], hold)
        .optional()?)
}

/// A hold by id, within the tenant.
pub fn get(conn: &Connection, tenant_id: i64, id: i64) -> Result<Option<Hold>, DbError> {
    Ok(conn
        .query_row(
            &format!("{HOLD} WHERE tenant_id = ?1 AND id = ?2"),
            params![tenant_id, id],
            hold,
        )
        .optional()?)
}

/// Opens a hold for the tenant.
pub fn open(
    conn: &Connection,
    tenant_id: i64,
    threshold: u64,
    active_members: u64,
    now: &str,
) -> Result<Hold, DbError> {
    conn.execute(
        "INSERT INTO deprovision_holds (tenant_id, state, opened_at, threshold, active_members)
         VALUES (?1, 'held', ?2, ?3, ?4)",
        params![tenant_id, now, threshold as i64, active_members as i64],
    )?;
    let id = conn.last_insert_rowid();
    get(conn, tenant_id, id)?.ok_or(DbError::NotFound)
}

/// Keeps back one deprovisioning per member (the newest reason wins).
pub fn hold_changes(
    conn: &Connection,
    hold_id: i64,
    changes: &[(i64, &str, Option<String>)],
    now: &str,
) -> Result<(), DbError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO held_changes (hold_id, member_pk, action, reason, held_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (hold_id, member_pk) DO UPDATE SET action = excluded.action,
             reason = excluded.reason",
    )?;
    for (pk, action, reason) in changes {
        stmt.execute(params![hold_id, pk, action, reason, now])?;
    }
    Ok(())
}

/// Lets go of the members among `pks` (their deprovisioning no longer applies); returns
/// how many were held.
pub fn release(conn: &Connection, hold_id: i64, pks: &[i64]) -> Result<usize, DbError> {
    let mut released = 0;
    for chunk in pks.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!(
            "DELETE FROM held_changes WHERE hold_id = {hold_id} AND member_pk IN ({marks})"
        );
        released += conn.execute(&sql, params_from_iter(chunk))?;
    }
    Ok(released)
}

/// The members a hold keeps back.
pub fn held_pks(conn: &Connection, hold_id: i64) -> Result<Vec<i64>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT member_pk FROM held_changes WHERE hold_id = ?1 ORDER BY member_pk",
    )?;
    let pks = stmt
        .query_map([hold_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(pks)
}

/// The deprovisioning an open hold of the tenant keeps back for member `member_pk`: its
/// action (suspend, archive, delete) and when it was held.
pub fn held_for(conn: &Connection, member_pk: i64) -> Result<Option<(String, String)>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT h.action, h.held_at FROM held_changes h
             JOIN deprovision_holds d ON d.id = h.hold_id AND d.closed_at IS NULL
             WHERE h.member_pk = ?1",
        )?
        .query_row([member_pk], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// How many members a hold keeps back.
pub fn held_count(conn: &Connection, hold_id: i64) -> Result<u64, DbError> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM held_changes WHERE hold_id = ?1")?
        .query_row([hold_id], |r| r.get(0))?;
    Ok(n as u64)
}

/// How many deprovisionings hold `hold_id` keeps back, and a digest of which members and
/// what each would get: what an admin was shown, so that an approval applies exactly that
/// ([`crate::ops::guard::approve`]). One pass over the hold's rows, as counting them is.
pub fn held_digest(conn: &Connection, hold_id: i64) -> Result<(u64, String), DbError> {
    use sha2::{Digest, Sha256};
    let mut stmt = conn.prepare_cached(
        "SELECT member_pk, action FROM held_changes WHERE hold_id = ?1 ORDER BY member_pk",
    )?;
    let mut rows = stmt.query([hold_id])?;
    let (mut n, mut digest) = (0u64, Sha256::new());
    while let Some(r) = rows.next()? {
        let (pk, action): (i64, String) = (r.get(0)?, r.get(1)?);
        digest.update(pk.to_le_bytes());
        digest.update(action.as_bytes());
        digest.update([0]);
        n += 1;
    }
    Ok((n, crate::auth::hex(&digest.finalize()[..16])))
}

/// The first `?2` held deprovisionings of hold `?1`, oldest first, with their members:
/// read in the order of `held_changes_oldest`.
const HELD_OLDEST_FIRST: &str = "
    SELECT h.member_pk, m.id, coalesce(m.email, m.user_name, m.id), h.action, h.reason,
           h.held_at
    FROM held_changes h JOIN members m ON m.pk = h.member_pk
    WHERE h.hold_id = ?1 ORDER BY h.held_at, h.member_pk LIMIT ?2";

/// The first `limit` held deprovisionings, oldest first, with their members.
pub fn held(conn: &Connection, hold_id: i64, limit: usize) -> Result<Vec<Held>, DbError> {
    let mut stmt = conn.prepare_cached(HELD_OLDEST_FIRST)?;
    let rows = stmt
        .query_map(params![hold_id, limit as i64], |r| {
            Ok(Held {
                member_pk: r.get(0)?,
                member_id: r.get(1)?,
                subject: r.get(2)?,
                action: r.get(3)?,
                reason: r.get(4)?,
                held_at: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Puts a rejected hold back before the admin: held, its decision forgotten.
pub fn reopen(conn: &Connection, hold_id: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE deprovision_holds SET state = 'held', decided_by = NULL, decided_at = NULL
         WHERE id = ?1 AND closed_at IS NULL",
        [hold_id],
    )?;
    Ok(())
}

/// Records a decision (or the end) of a hold. A closed hold holds nothing: its held rows go
/// (the audit entries name them).
pub fn set_state(
    conn: &Connection,
    hold_id: i64,
    state: HoldState,
    decided_by: Option<&str>,
    now: &str,
) -> Result<(), DbError> {
    let closed = matches!(state, HoldState::Approved | HoldState::Cleared);
    conn.execute(
        "UPDATE deprovision_holds SET state = ?2,
             decided_by = coalesce(?3, decided_by),
             decided_at = CASE WHEN ?3 IS NULL THEN decided_at ELSE ?4 END,
             closed_at = CASE WHEN ?5 THEN ?4 ELSE NULL END
         WHERE id = ?1",
        params![hold_id, state.as_str(), decided_by, now, closed],
    )?;
    if closed {
        conn.execute("DELETE FROM held_changes WHERE hold_id = ?1", [hold_id])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{scratch_db, tenants};

    /// The window counts what was applied from its start's second on, a burst as one
    /// row, each tenant apart; what falls out of it is forgotten.
    #[test]
    fn the_window_counts_per_second_and_forgets_what_it_left() {
        let conn = scratch_db();
        tenants::create(&conn, "other", "Other").unwrap();
        let at = |s: &str| format!("2026-12-05T10:{s}.000000Z");
        let prune = at("00:00");
        record_applied(&conn, 1, 3, &at("00:00"), &prune).unwrap();
        record_applied(&conn, 1, 1, &at("00:00"), &prune).unwrap();
        record_applied(&conn, 1, 2, &at("30:15"), &prune).unwrap();
        record_applied(&conn, 2, 7, &at("30:15"), &prune).unwrap();
        assert_eq!(applied_since(&conn, 1, &at("00:00")).unwrap(), 6);
        assert_eq!(applied_since(&conn, 2, &at("00:00")).unwrap(), 7);
        // Within a second: the whole second counts.
        let mid_second = "2026-12-05T10:30:15.500000Z";
        assert_eq!(applied_since(&conn, 1, mid_second).unwrap(), 2);
        assert_eq!(applied_since(&conn, 1, &at("30:16")).unwrap(), 0);
        let rows = |conn: &Connection| -> i64 {
            conn.query_row("SELECT count(*) FROM deprovisioned_per_second", [], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(rows(&conn), 3, "a burst in one second is one row");
        record_applied(&conn, 1, 1, &at("40:00"), &at("10:00")).unwrap();
        assert_eq!(applied_since(&conn, 1, &at("00:00")).unwrap(), 3);
        assert_eq!(
            rows(&conn),
            3,
            "tenant 1's first second went, tenant 2's stayed"
        );
        // A second already noted forgets nothing; the next new one does.
        record_applied(&conn, 1, 1, &at("40:00"), &at("35:00")).unwrap();
        assert_eq!(applied_since(&conn, 1, &at("00:00")).unwrap(), 4);
        assert_eq!(rows(&conn), 3);
        record_applied(&conn, 1, 1, &at("40:01"), &at("35:00")).unwrap();
        assert_eq!(applied_since(&conn, 1, &at("00:00")).unwrap(), 3);
        assert_eq!(rows(&conn), 3, "10:30:15 went, 10:40:01 came");
    }

    /// The hold page lists the oldest held deprovisionings first, in the order of an
    /// index: a page reads its own rows, not every held change of the hold.
    #[test]
    fn a_hold_lists_its_oldest_changes_first_from_an_index() {
        let conn = scratch_db();
        for i in 1..=4 {
            conn.execute(
                "INSERT INTO members (pk, tenant_id, id, role, role_reason, status, source,
                                      created_at, updated_at)
                 VALUES (?1, 1, ?2, 'member', 'default', 'active', 'scim', 'x', 'x')",
                params![i, format!("m{i}")],
            )
            .unwrap();
        }
        let hold = open(&conn, 1, 1, 4, "2026-12-05T10:00:00Z").unwrap();
        let at = |m: &str| format!("2026-12-05T10:{m}:00Z");
        hold_changes(&conn, hold.id, &[(3, "suspend", None)], &at("01")).unwrap();
        hold_changes(
            &conn,
            hold.id,
            &[(4, "suspend", None), (1, "delete", None)],
            &at("02"),
        )
        .unwrap();
        hold_changes(&conn, hold.id, &[(2, "archive", None)], &at("03")).unwrap();
        // Held again with a newer reason: still as old as when it was first held.
        let again = Some("left the group".to_string());
        hold_changes(&conn, hold.id, &[(3, "archive", again)], &at("04")).unwrap();
        let page = held(&conn, hold.id, 3).unwrap();
        let order: Vec<_> = page
            .iter()
            .map(|h| (h.member_id.as_str(), h.action.as_str()))
            .collect();
        assert_eq!(
            order,
            [("m3", "archive"), ("m1", "delete"), ("m4", "suspend")]
        );
        assert_eq!(held_count(&conn, hold.id).unwrap(), 4);
        let plan =
            crate::db::paging::plan_of(&conn, HELD_OLDEST_FIRST, &[hold.id.into(), 3.into()]);
        assert!(plan.contains("INDEX held_changes_oldest"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}
