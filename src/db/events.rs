//! The events outbox: every applied member change and every directory group change appends
//! a row in the same transaction as the change, so the feed and the webhooks that read it
//! (later) see exactly what committed, in commit order, resumable by cursor.

use rusqlite::{Connection, params};
use serde::Serialize;
use serde_json::Value;

use super::DbError;
use crate::model::{Actor, text_enum};
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
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Strictly increasing, never reused: a reader resumes after the last cursor it saw.
    pub cursor: i64,
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

/// Appends an event caused by `actor`; returns its cursor.
pub fn append(
    conn: &Connection,
    actor: &Actor,
    tenant_id: i64,
    kind: EventType,
    subject: &str,
    payload: &Value,
) -> Result<i64, DbError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO events (tenant_id, type, subject, payload, created_at, actor, request_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    stmt.execute(params![
        tenant_id,
        kind.as_str(),
        subject,
        payload.to_string(),
        datetime::now(),
        actor.label(),
        actor.request_id,
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Up to `limit` of the tenant's events after `cursor` (0: from the start), oldest first.
pub fn after(
    conn: &Connection,
    tenant_id: i64,
    cursor: i64,
    limit: u32,
) -> Result<Vec<Event>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT cursor, tenant_id, type, subject, payload, created_at, actor, request_id FROM events
         WHERE tenant_id = ?1 AND cursor > ?2 ORDER BY cursor LIMIT ?3",
    )?;
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let rows = stmt
        .query_map(params![tenant_id, cursor, limit], |r| {
            let kind: String = r.get(2)?;
            let payload: String = r.get(4)?;
            Ok(Event {
                cursor: r.get(0)?,
                tenant_id: r.get(1)?,
                kind: kind.parse().map_err(|e| bad(2, format!("{e}")))?,
                subject: r.get(3)?,
                payload: serde_json::from_str(&payload).map_err(|e| bad(4, e.to_string()))?,
                created_at: r.get(5)?,
                actor: r.get(6)?,
                request_id: r.get(7)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
