//! The events outbox: every applied member change and every directory group change appends
//! a row in the same transaction as the change, so the feed and the webhooks that read it
//! see exactly what committed, in commit order.
//!
//! Each tenant numbers its events 1, 2, 3… (`seq`) with no gap: the counter lives on the
//! tenant row and is bumped inside the writing transaction, which SQLite serialises, so an
//! app that has seen `seq` N has seen every event before it. The global `cursor` (the row
//! id) is never reused either; it names an event across tenants.

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::Serialize;
use serde_json::Value;

use super::DbError;
use super::paging::{Conditions, Direction};
use crate::model::{Actor, TextEnum, text_enum};
use crate::scim::datetime;

text_enum! {
    pub enum EventType ("event type") {
        MemberCreated => "member.created",
        MemberUpdated => "member.updated",
        MemberRoleChanged => "member.role_changed",
        MemberSuspended => "member.suspended",
        MemberReactivated => "member.reactivated",
        MemberArchived => "member.archived",
        MemberDeleted => "member.deleted",
        GroupCreated => "group.created",
        GroupUpdated => "group.updated",
        GroupDeleted => "group.deleted",
        GroupMemberAdded => "group.member_added",
        GroupMemberRemoved => "group.member_removed",
        /// The guard against mass deprovisioning held member deprovisionings for an admin.
        DeprovisioningHeld => "deprovisioning.held",
        /// An admin approved or rejected them, or nothing is left to hold.
        DeprovisioningResolved => "deprovisioning.resolved",
        /// An admin deleted the tenant. Its one event that outlives it: apps reading every
        /// tenant (WorkOS's `dsync.deleted`) learn of it after the tenant's data is gone.
        TenantDeleted => "tenant.deleted",
    }
}

impl EventType {
    /// The types a tenant's own feed and webhooks may hold: not `tenant.deleted`, which only
    /// readers of every tenant see once the tenant is gone.
    pub fn of_a_tenant() -> impl Iterator<Item = EventType> {
        EventType::ALL
            .iter()
            .copied()
            .filter(|t| *t != EventType::TenantDeleted)
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Strictly increasing across tenants, never reused.
    pub cursor: i64,
    /// The tenant's own number for it: 1, 2, 3… without gaps.
    pub seq: i64,
    #[serde(skip)]
    pub tenant_id: i64,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The member or group id the event is about.
    pub subject: String,
    pub payload: Value,
    pub created_at: String,
    /// Who caused it ([`Actor::label`]); `None` for events older than that record.
    pub actor: Option<String>,
    /// The request that caused it, when there was one.
    pub request_id: Option<String>,
}

/// Appends an event caused by `actor`; returns its `seq`.
pub fn append(
    conn: &Connection,
    actor: &Actor,
    tenant_id: i64,
    kind: EventType,
    subject: &str,
    payload: &impl Serialize,
) -> Result<i64, DbError> {
    let mut numbering = Numbering::new(tenant_id);
    let seq = numbering.append(conn, actor, kind, subject, payload)?;
    numbering.finish(conn)?;
    Ok(seq)
}

/// One tenant's event numbers for the events one write appends in its transaction: the
/// tenant's counter is read at the first event and stored once, by [`Numbering::finish`].
/// A write of one event costs what it always did (read, insert, store); one of 100 000 (a
/// whole-tenant sync) reads and stores the counter once instead of 100 000 times.
///
/// Nothing else may append the tenant's events before `finish`: it would take a number
/// handed out here, and the unique `(tenant, seq)` index and `finish`'s check refuse that
/// loudly, failing the write rather than numbering two events alike.
#[must_use = "the tenant's counter is stored only by `finish`"]
pub struct Numbering {
    tenant_id: i64,
    /// The counter as read, and the last number handed out since.
    read: Option<(i64, i64)>,
}

impl Numbering {
    pub fn new(tenant_id: i64) -> Numbering {
        Numbering {
            tenant_id,
            read: None,
        }
    }

    /// Appends an event caused by `actor` with the tenant's next number; returns it.
    pub fn append(
        &mut self,
        conn: &Connection,
        actor: &Actor,
        kind: EventType,
        subject: &str,
        payload: &impl Serialize,
    ) -> Result<i64, DbError> {
        let (stored, last) = match self.read {
            Some(read) => read,
            None => {
                let stored: i64 = conn
                    .prepare_cached("SELECT last_event_seq FROM tenants WHERE id = ?1")?
                    .query_row([self.tenant_id], |r| r.get(0))?;
                (stored, stored)
            }
        };
        let seq = last + 1;
        let mut stmt = conn.prepare_cached(
            "INSERT INTO events (tenant_id, seq, type, subject, payload, created_at, actor, request_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        stmt.execute(params![
            self.tenant_id,
            seq,
            kind.as_str(),
            subject,
            serde_json::to_string(payload)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
            datetime::now(),
            actor.label(),
            actor.request_id,
        ])?;
        self.read = Some((stored, seq));
        Ok(seq)
    }

    /// Stores the tenant's counter at the last number handed out, if any was. Fails if
    /// the counter moved since it was read.
    pub fn finish(self, conn: &Connection) -> Result<(), DbError> {
        let Some((stored, last)) = self.read else {
            return Ok(());
        };
        let moved = conn
            .prepare_cached(
                "UPDATE tenants SET last_event_seq = ?3 WHERE id = ?1 AND last_event_seq = ?2",
            )?
            .execute(params![self.tenant_id, stored, last])?
            == 0;
        if moved {
            return Err(DbError::Schema(format!(
                "tenant {}'s events were numbered by two writers at once",
                self.tenant_id
            )));
        }
        Ok(())
    }
}

const COLUMNS: &str =
    "cursor, seq, tenant_id, type, subject, payload, created_at, actor, request_id";

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Event> {
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let kind: String = r.get(3)?;
    let payload: String = r.get(5)?;
    Ok(Event {
        cursor: r.get(0)?,
        seq: r.get(1)?,
        tenant_id: r.get(2)?,
        kind: kind.parse().map_err(|e| bad(3, format!("{e}")))?,
        subject: r.get(4)?,
        payload: serde_json::from_str(&payload).map_err(|e| bad(5, e.to_string()))?,
        created_at: r.get(6)?,
        actor: r.get(7)?,
        request_id: r.get(8)?,
    })
}

/// Up to `limit` of the tenant's events after `seq` (0: from the start), oldest first.
pub fn after(
    conn: &Connection,
    tenant_id: i64,
    seq: i64,
    limit: u32,
) -> Result<Vec<Event>, DbError> {
    after_of_types(conn, tenant_id, seq, limit, &[], i64::MAX)
}

/// [`after`], only events of `types` (all when empty), and none past cursor `upto` (what
/// readers may be shown: `Db::durable_cursor`).
pub fn after_of_types(
    conn: &Connection,
    tenant_id: i64,
    seq: i64,
    limit: u32,
    types: &[EventType],
    upto: i64,
) -> Result<Vec<Event>, DbError> {
    use rusqlite::types::Value as SqlValue;
    let mut sql =
        format!("SELECT {COLUMNS} FROM events WHERE tenant_id = ? AND seq > ? AND cursor <= ?");
    let mut values: Vec<SqlValue> = vec![tenant_id.into(), seq.into(), upto.into()];
    if !types.is_empty() {
        sql.push_str(&format!(
            " AND type IN ({})",
            vec!["?"; types.len()].join(",")
        ));
        values.extend(types.iter().map(|t| SqlValue::Text(t.as_str().into())));
    }
    sql.push_str(" ORDER BY seq LIMIT ?");
    values.push(i64::from(limit).into());
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(&values), from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// What the admin UI's events page browses: up to `limit` of the tenant's events before
/// `before` (all when `None`), newest first, of `kind` and about `subject` when given.
pub struct Browse<'a> {
    pub before: Option<i64>,
    pub limit: u32,
    pub kind: Option<EventType>,
    pub subject: Option<&'a str>,
}

/// How many events one filtered page of [`recent`] looks at, at most: neither a type nor
/// a subject is indexed (one more index entry on every write of the product), so a rare
/// one would otherwise make a page load read the tenant's whole retained feed.
pub const SEARCHED_PER_PAGE: u32 = 10_000;

/// The matches among the `?3` events before `?2`: `?4` the type, `?5` the subject (each
/// only when not null), at most `?6`.
const SEARCH_WINDOW: &str = "SELECT seq FROM (SELECT seq, type, subject FROM events
                           WHERE tenant_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3)
          WHERE (?4 IS NULL OR type = ?4) AND (?5 IS NULL OR subject = ?5)
          ORDER BY seq DESC LIMIT ?6";

/// A page of [`recent`].
#[derive(Debug)]
pub struct Recent {
    pub events: Vec<Event>,
    /// When a filtered page stopped at [`SEARCHED_PER_PAGE`] events with fewer matches
    /// than asked: the `before` that searches on, from the newest event not looked at.
    pub searched_to: Option<i64>,
}

/// The events of `page`, newest first: a filtered page looks at `searched` events at most.
pub fn recent(
    conn: &Connection,
    tenant_id: i64,
    page: &Browse,
    searched: u32,
) -> Result<Recent, DbError> {
    let before = page.before.unwrap_or(i64::MAX);
    if page.kind.is_none() && page.subject.is_none() {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM events WHERE tenant_id = ?1 AND seq < ?2
             ORDER BY seq DESC LIMIT ?3"
        ))?;
        let events = stmt
            .query_map(params![tenant_id, before, page.limit], from_row)?
            .collect::<Result<_, _>>()?;
        return Ok(Recent {
            events,
            searched_to: None,
        });
    }
    // Only the matches' rows are decoded; the window reads the two columns it filters on.
    let mut stmt = conn.prepare_cached(SEARCH_WINDOW)?;
    let seqs: Vec<i64> = stmt
        .query_map(
            params![
                tenant_id,
                before,
                searched,
                page.kind.map(EventType::as_str),
                page.subject,
                page.limit
            ],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    let mut events = Vec::with_capacity(seqs.len());
    for seq in &seqs {
        events.extend(get(conn, tenant_id, *seq)?);
    }
    let searched_to = if seqs.len() < page.limit as usize {
        conn.prepare_cached(
            "SELECT seq FROM events WHERE tenant_id = ?1 AND seq < ?2
             ORDER BY seq DESC LIMIT 1 OFFSET ?3",
        )?
        .query_row(params![tenant_id, before, searched], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|first_not_searched| first_not_searched + 1)
    } else {
        None
    };
    Ok(Recent {
        events,
        searched_to,
    })
}

/// A page of the WorkOS-compatible feed, which pages across tenants: up to `limit` events
/// of `tenant_id` (every tenant when `None`) of `types` (all when empty), created within
/// `[since, until)` when given, beyond the global `cursor` in `direction`.
pub struct FeedPage<'a> {
    pub tenant_id: Option<i64>,
    pub types: &'a [EventType],
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub cursor: Option<i64>,
    pub direction: Direction,
    pub limit: u32,
    /// No event past this cursor (what readers may be shown: `Db::durable_cursor`).
    pub upto: i64,
}

/// The events of `page`, in its direction's order by cursor.
pub fn across(conn: &Connection, page: &FeedPage) -> Result<Vec<Event>, DbError> {
    let (sql, values) = page.query();
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(&values), from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

impl FeedPage<'_> {
    /// The page's statement and its parameters.
    fn query(&self) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value as SqlValue;
        let types: Vec<SqlValue> = self
            .types
            .iter()
            .map(|t| t.as_str().to_string().into())
            .collect();
        let marks = vec!["?"; types.len()].join(",");
        Conditions::new("1")
            .and("tenant_id = ?", self.tenant_id)
            .and(&format!("cursor {} ?", self.direction.cmp()), self.cursor)
            .and("cursor <= ?", (self.upto < i64::MAX).then_some(self.upto))
            .and("created_at >= ?", self.since.map(str::to_string))
            .and("created_at < ?", self.until.map(str::to_string))
            .and_each(&format!("type IN ({marks})"), types)
            .query(
                &format!("SELECT {COLUMNS} FROM events"),
                &format!("ORDER BY cursor {} LIMIT ?", self.direction.order()),
                i64::from(self.limit),
            )
    }
}

/// The tenant's event `seq`, if it is still kept.
pub fn get(conn: &Connection, tenant_id: i64, seq: i64) -> Result<Option<Event>, DbError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM events WHERE tenant_id = ?1 AND seq = ?2"),
            params![tenant_id, seq],
            from_row,
        )
        .optional()?)
}

/// The `seq` of the tenant's first event past cursor `?2`, read from the few entries past
/// it (`min(seq)` would walk the tenant's whole feed from its oldest event).
const FIRST_PAST: &str = "SELECT seq FROM events INDEXED BY events_tenant
                          WHERE tenant_id = ?1 AND cursor > ?2 ORDER BY cursor LIMIT 1";

/// [`bounds`] as readers of the feed are shown them: the newest `seq` is the newest of
/// the events up to cursor `upto` (`Db::durable_cursor`). Seqs and cursors grow together,
/// so the events past `upto` are the tenant's newest ones.
pub fn shown_bounds(conn: &Connection, tenant_id: i64, upto: i64) -> Result<(i64, i64), DbError> {
    let (newest, purged) = bounds(conn, tenant_id)?;
    if upto == i64::MAX {
        return Ok((newest, purged));
    }
    let first_hidden: Option<i64> = conn
        .prepare_cached(FIRST_PAST)?
        .query_row(params![tenant_id, upto], |r| r.get(0))
        .optional()?;
    Ok((first_hidden.map_or(newest, |s| (s - 1).min(newest)), purged))
}

/// The newest event cursor of every tenant (0 before the first event).
pub fn newest_cursor(conn: &Connection) -> Result<i64, DbError> {
    Ok(super::writer::newest_cursor(conn)?)
}

/// Where the tenant's purged (or, after a restore, undone) events end in the global cursor
/// order: a cursor of every tenant before it has missed some of the tenant's events.
pub fn purged_cursor(conn: &Connection, tenant_id: i64) -> Result<i64, DbError> {
    Ok(conn
        .prepare_cached("SELECT events_purged_cursor FROM tenants WHERE id = ?1")?
        .query_row([tenant_id], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// The tenant's newest `seq` (0 before its first event) and the last one purged.
pub fn bounds(conn: &Connection, tenant_id: i64) -> Result<(i64, i64), DbError> {
    Ok(conn
        .prepare_cached("SELECT last_event_seq, events_purged_seq FROM tenants WHERE id = ?1")?
        .query_row([tenant_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, 0)))
}

/// How far a database numbered its events: the newest cursor it handed out (the event ids
/// apps and webhook receivers dedupe on) and each tenant's newest `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    pub cursor: i64,
    /// (tenant id, its `last_event_seq`).
    pub seqs: Vec<(i64, i64)>,
}

pub fn counters(conn: &Connection) -> Result<Counters, DbError> {
    let cursor = conn.query_row(
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
        [],
        |r| r.get(0),
    )?;
    let seqs = conn
        .prepare("SELECT id, last_event_seq FROM tenants")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(Counters { cursor, seqs })
}

/// How far past its own counters a restored database numbers its events when what the
/// database it replaced handed out is unknown: more than any database hands out between a
/// backup and its restore.
pub const RESTORE_MARGIN: i64 = 1_000_000_000;

/// Numbers a restored database's next events past what the database it replaced handed
/// out (`replaced`; unknown: [`RESTORE_MARGIN`] past its own), so that no event id, which
/// receivers dedupe on, and no `seq`, which apps resume from, is handed out twice. A
/// tenant whose events went further than the backup's marks them all purged: an app
/// resuming from any earlier cursor, whose view may hold changes the restore undid, hears
/// 410 and lists again, and a list's `events_cursor` resumes past the gap.
pub fn continue_past(conn: &Connection, replaced: Option<&Counters>) -> Result<(), DbError> {
    let cursor = match replaced {
        Some(old) => {
            let mut stmt = conn.prepare(
                "UPDATE tenants SET last_event_seq = ?2 + 1, events_purged_seq = ?2 + 1,
                                    events_purged_cursor = ?3 + 1
                 WHERE id = ?1 AND last_event_seq < ?2",
            )?;
            for (tenant, seq) in &old.seqs {
                stmt.execute(params![tenant, seq, old.cursor])?;
            }
            old.cursor
        }
        None => {
            let cursor = counters(conn)?.cursor + RESTORE_MARGIN;
            conn.execute(
                "UPDATE tenants SET last_event_seq = last_event_seq + ?1,
                                    events_purged_seq = last_event_seq + ?1,
                                    events_purged_cursor = ?2",
                [RESTORE_MARGIN, cursor],
            )?;
            cursor
        }
    };
    conn.execute(
        "UPDATE sqlite_sequence SET seq = max(seq, ?1) WHERE name = 'events'",
        [cursor],
    )?;
    conn.execute(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'events', ?1
         WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events')",
        [cursor],
    )?;
    Ok(())
}

/// The newest of the tenant's events created before `cutoff` (a stored time): retention
/// purges through it, [`purge_through`] a batch at a time.
pub fn purgeable(conn: &Connection, tenant_id: i64, cutoff: &str) -> Result<Option<i64>, DbError> {
    // From the time index, the old rows alone: the tenant's sequence made SQLite walk every
    // event it keeps from the newest down, in the writer (60 ms at 100 000 events, each
    // hour, when nothing was old enough).
    Ok(conn.query_row(
        "SELECT max(seq) FROM events INDEXED BY events_created
         WHERE created_at < ?2 AND tenant_id = ?1",
        params![tenant_id, cutoff],
        |r| r.get(0),
    )?)
}

/// Deletes the tenant's oldest events, up to `limit` of them and none after `last`,
/// remembering the last `seq` deleted so a reader behind it learns it must list again.
/// Returns how many went: a batch short of `limit` reached `last`.
pub fn purge_through(
    conn: &Connection,
    tenant_id: i64,
    last: i64,
    limit: usize,
) -> Result<usize, DbError> {
    let upto: i64 = conn.query_row(
        "SELECT coalesce((SELECT seq FROM events WHERE tenant_id = ?1 AND seq <= ?2
                          ORDER BY seq LIMIT 1 OFFSET ?3), ?2)",
        params![tenant_id, last, limit.saturating_sub(1) as i64],
        |r| r.get(0),
    )?;
    // Within a tenant cursors grow with `seq`: the last event purged has the newest.
    let upto_cursor: Option<i64> = conn
        .prepare_cached(
            "SELECT cursor FROM events WHERE tenant_id = ?1 AND seq <= ?2 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(params![tenant_id, upto], |r| r.get(0))
        .optional()?;
    let n = conn.execute(
        "DELETE FROM events WHERE tenant_id = ?1 AND seq <= ?2",
        params![tenant_id, upto],
    )?;
    conn.execute(
        "UPDATE tenants SET events_purged_seq = max(events_purged_seq, ?2),
                            events_purged_cursor = max(events_purged_cursor, ?3)
          WHERE id = ?1",
        params![tenant_id, upto, upto_cursor.unwrap_or(0)],
    )?;
    Ok(n)
}

/// Up to `limit` of the tenant's events caused by request `request_id`, oldest first: the
/// changes the request inspector shows under a request. Looked for among those created
/// `during` (from, until: canonical times, as `requests::Entry::while_answered` gives).
pub fn by_request(
    conn: &Connection,
    tenant_id: i64,
    request_id: &str,
    during: &(String, String),
    limit: u32,
) -> Result<Vec<Event>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM events INDEXED BY events_created
          WHERE created_at BETWEEN ?3 AND ?4 AND tenant_id = ?1 AND request_id = ?2
          ORDER BY seq LIMIT ?5"
    ))?;
    let (from, until) = during;
    let rows = stmt
        .query_map(params![tenant_id, request_id, from, until, limit], from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::paging::plan_of;
    use crate::db::scratch_db;

    /// An app polling the feed for what is new, of one tenant or all, seeks to its cursor:
    /// a page costs the same after a million events as after ten.
    #[test]
    fn a_feed_page_seeks_to_its_cursor() {
        let conn = scratch_db();
        let plan = |tenant_id: Option<i64>, cursor: Option<i64>, greater, ascending| {
            let page = FeedPage {
                tenant_id,
                types: &[EventType::MemberCreated],
                since: None,
                until: None,
                cursor,
                direction: Direction { greater, ascending },
                limit: 10,
                upto: i64::MAX,
            };
            let (sql, values) = page.query();
            plan_of(&conn, &sql, &values)
        };
        for ascending in [true, false] {
            for greater in [true, false] {
                assert_eq!(
                    plan(Some(1), Some(5), greater, ascending),
                    format!(
                        "SEARCH events USING INDEX events_tenant (tenant_id=? AND cursor{}?)",
                        if greater { ">" } else { "<" }
                    )
                );
                assert_eq!(
                    plan(None, Some(5), greater, ascending),
                    format!(
                        "SEARCH events USING INTEGER PRIMARY KEY (rowid{}?)",
                        if greater { ">" } else { "<" }
                    )
                );
            }
            assert_eq!(
                plan(Some(1), None, true, ascending),
                "SEARCH events USING INDEX events_tenant (tenant_id=?)"
            );
        }
    }

    /// Retention purges the feed a batch at a time up to its bound, and says how far it
    /// went so a reader behind it learns it must list again.
    #[test]
    fn a_purge_goes_a_batch_at_a_time_up_to_its_bound() {
        let conn = scratch_db();
        let actor = crate::model::Actor::cli();
        for n in 1..=10 {
            append(&conn, &actor, 1, EventType::MemberUpdated, "m", &n).unwrap();
        }
        assert_eq!(
            purgeable(&conn, 1, "2000-01-01T00:00:00.000000Z").unwrap(),
            None
        );
        assert_eq!(
            purgeable(&conn, 1, "2999-01-01T00:00:00.000000Z").unwrap(),
            Some(10)
        );
        let batches: Vec<usize> = (0..4)
            .map(|_| purge_through(&conn, 1, 7, 3).unwrap())
            .collect();
        assert_eq!(batches, [3, 3, 1, 0]);
        assert_eq!(bounds(&conn, 1).unwrap(), (10, 7));
        let left: i64 = conn
            .query_row("SELECT min(seq) FROM events WHERE tenant_id = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(left, 8);
    }

    /// Events committed but not yet flushed are past `Db::durable_cursor`: readers get
    /// neither them nor a newest `seq` that counts them, of their own tenant or another.
    #[test]
    fn readers_see_no_event_past_the_durable_cursor() {
        let conn = scratch_db();
        let actor = crate::model::Actor::cli();
        conn.execute(
            "INSERT INTO tenants (id, slug, name, created_at) VALUES (2, 'b', 'B', 't')",
            [],
        )
        .unwrap();
        for (tenant, n) in [(1, 1), (1, 2), (2, 1), (1, 3), (2, 2)] {
            append(&conn, &actor, tenant, EventType::MemberUpdated, "m", &n).unwrap();
        }
        let cursor_of = |tenant: i64, seq: i64| -> i64 {
            conn.query_row(
                "SELECT cursor FROM events WHERE tenant_id = ?1 AND seq = ?2",
                [tenant, seq],
                |r| r.get(0),
            )
            .unwrap()
        };
        let seqs = |tenant, upto| -> Vec<i64> {
            after_of_types(&conn, tenant, 0, 10, &[], upto)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect()
        };
        // Flushed through tenant 2's first event: tenant 1's third is not.
        let upto = cursor_of(2, 1);
        assert_eq!(seqs(1, upto), [1, 2]);
        assert_eq!(shown_bounds(&conn, 1, upto).unwrap(), (2, 0));
        assert_eq!(seqs(2, upto), [1]);
        assert_eq!(shown_bounds(&conn, 2, upto).unwrap(), (1, 0));
        // Nothing flushed yet.
        assert_eq!(shown_bounds(&conn, 1, 0).unwrap(), (0, 0));
        assert!(seqs(1, 0).is_empty());
        // Everything flushed.
        assert_eq!(seqs(1, i64::MAX), [1, 2, 3]);
        assert_eq!(shown_bounds(&conn, 1, cursor_of(2, 2)).unwrap(), (3, 0));
        let page = FeedPage {
            tenant_id: None,
            types: &[],
            since: None,
            until: None,
            cursor: None,
            direction: Direction {
                greater: true,
                ascending: true,
            },
            limit: 10,
            upto,
        };
        assert_eq!(across(&conn, &page).unwrap().len(), 3);
        // Each reads the entries past `upto` or up to its page, never the whole feed.
        let plan = plan_of(&conn, FIRST_PAST, &[1.into(), upto.into()]);
        assert!(
            plan.contains("events_tenant (tenant_id=? AND cursor>?)"),
            "{plan}"
        );
    }

    /// A filtered page of the admin UI looks at a bounded window of events and says where
    /// it stopped; following that on finds a rare subject's events however deep they are.
    #[test]
    fn a_filtered_page_searches_a_window_and_says_where_to_go_on() {
        let conn = scratch_db();
        let actor = crate::model::Actor::cli();
        for n in 1..=30 {
            let subject = if n == 3 { "rare" } else { "common" };
            append(&conn, &actor, 1, EventType::MemberUpdated, subject, &n).unwrap();
        }
        let browse = |before, subject| {
            let page = Browse {
                before,
                limit: 5,
                kind: None,
                subject,
            };
            let r = recent(&conn, 1, &page, 10).unwrap();
            (
                r.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
                r.searched_to,
            )
        };
        // Unfiltered pages are plain pages; the window plays no part.
        assert_eq!(browse(None, None), (vec![30, 29, 28, 27, 26], None));
        // 30..=21 looked at: nothing, go on from 20.
        assert_eq!(browse(None, Some("rare")), (vec![], Some(21)));
        assert_eq!(browse(Some(21), Some("rare")), (vec![], Some(11)));
        // The last window holds it, and nothing is older.
        assert_eq!(browse(Some(11), Some("rare")), (vec![3], None));
        // A full page of matches stops at its own last row, not at the window.
        assert_eq!(
            browse(None, Some("common")),
            (vec![30, 29, 28, 27, 26], None)
        );
        // The window walks the tenant's sequence index, newest first.
        let values = [
            1.into(),
            11.into(),
            10.into(),
            String::from("x").into(),
            String::from("rare").into(),
            5.into(),
        ];
        assert_eq!(
            plan_of(&conn, SEARCH_WINDOW, &values),
            "CO-ROUTINE (subquery-1)\n\
             SEARCH events USING INDEX events_tenant_seq (tenant_id=? AND seq<?)\n\
             SCAN (subquery-1)"
        );
    }
}
