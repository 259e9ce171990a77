//! What the organisation's apps read through `/api/v1`: members with their roles, groups
//! and their members, the role settings. Every list is read from one snapshot together
//! with the tenant's newest event `seq` (`events_cursor`), so an app can list everything
//! and then follow the feed from exactly that point without missing or repeating a change.

use serde_json::{Value, json};

use super::members::api_object;
use crate::db::members::{self, ListFilter};
use crate::db::paging::{Cursor, Keyset};
use crate::db::{Conn, Db, DbError, events, groups, settings};

/// One page of a list, and the events cursor of the snapshot it was read from.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub data: Vec<Value>,
    /// The key to page backwards from (the first item's), when a page precedes.
    pub before: Option<i64>,
    /// The key to page forwards from (the last item's), when a page follows.
    pub after: Option<i64>,
    /// The tenant's newest event `seq` when the page was read.
    pub events_cursor: i64,
}

/// Where an app resumes the feed after a list read in the same snapshot: the newest event
/// `seq` apps may be shown (`Db::durable_cursor`), and when the snapshot holds the
/// tenant's newer events, committed a moment before the flush that makes them durable,
/// the newest of those with the cursor [`settle`] waits for.
struct EventsCursor {
    shown: i64,
    unflushed: Option<(i64, i64)>,
}

fn events_cursor(conn: &Conn, tenant_id: i64, upto: i64) -> Result<EventsCursor, DbError> {
    let shown = events::shown_bounds(conn, tenant_id, upto)?.0;
    let newest = events::bounds(conn, tenant_id)?.0;
    let unflushed = if newest > shown {
        Some((newest, events::newest_cursor(conn)?))
    } else {
        None
    };
    Ok(EventsCursor { shown, unflushed })
}

/// How long a list answer waits for the flush of changes its snapshot saw (a flush takes
/// well under a millisecond; a disk this slow is failing, and the answer falls back).
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The page's `events_cursor`. A snapshot may show a change whose event is not durable
/// yet: a cursor stopping before it would have the app see the change twice, in the page
/// and again in the feed. So the answer waits for that flush, as the change's own answer
/// did, and then names the snapshot's newest event. If the flush does not come in time,
/// the durable cursor: a change seen twice, never one missed.
async fn settle(db: &Db, cursor: EventsCursor) -> i64 {
    let Some((newest, wanted)) = cursor.unflushed else {
        return cursor.shown;
    };
    let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
    let mut commits = db.commits();
    while db.durable_cursor() < wanted {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return cursor.shown;
        }
        // Flushes of other processes' events are not announced: look again soon anyway.
        let nap = (deadline - now).min(std::time::Duration::from_millis(5));
        let _ = tokio::time::timeout(nap, commits.changed()).await;
    }
    newest
}

/// A page as its snapshot read it, before its events cursor is [`settle`]d.
struct Read {
    page: ListPage,
    cursor: EventsCursor,
}

impl Read {
    fn of<T>(page: Keyset<T>, data: Vec<Value>, cursor: EventsCursor) -> Read {
        Read {
            page: ListPage {
                data,
                before: page.prev,
                after: page.next,
                events_cursor: 0,
            },
            cursor,
        }
    }

    async fn settled(self, db: &Db) -> ListPage {
        ListPage {
            events_cursor: settle(db, self.cursor).await,
            ..self.page
        }
    }
}

/// A page of the tenant's members matching `filter`, in the order they were added.
pub async fn members(
    db: &Db,
    tenant_id: i64,
    filter: ListFilter,
    cursor: Cursor,
    limit: usize,
) -> Result<ListPage, DbError> {
    let upto = db.durable_cursor();
    let read = db
        .snapshot(move |c| {
            let page = members::page(c, tenant_id, &filter, cursor, limit)?;
            let data = page
                .items
                .iter()
                .map(|m| api_object(c, tenant_id, m))
                .collect::<Result<_, _>>()?;
            Ok::<_, DbError>(Read::of(page, data, events_cursor(c, tenant_id, upto)?))
        })
        .await?;
    Ok(read.settled(db).await)
}

/// Member `id` of the tenant, as apps read it.
pub async fn member(db: &Db, tenant_id: i64, id: String) -> Result<Option<Value>, DbError> {
    db.lookup(move |c| match members::get(c, tenant_id, &id)? {
        Some(m) => api_object(c, tenant_id, &m).map(Some),
        None => Ok(None),
    })
    .await
}

fn group_object(id: &str, display_name: &str, members: i64, updated_at: &str) -> Value {
    json!({
        "object": "group",
        "id": id,
        "display_name": display_name,
        "members_count": members,
        "updated_at": updated_at,
    })
}

/// A page of the tenant's groups, by name.
pub async fn groups(
    db: &Db,
    tenant_id: i64,
    cursor: Cursor,
    limit: usize,
) -> Result<ListPage, DbError> {
    let upto = db.durable_cursor();
    let read = db
        .snapshot(move |c| {
            let page = groups::page(c, tenant_id, None, cursor, limit)?;
            let data = page
                .items
                .iter()
                .map(|g| {
                    let mut object =
                        group_object(&g.id, &g.display_name, g.members, &g.last_modified);
                    object["external_id"] = json!(g.external_id);
                    object
                })
                .collect();
            Ok::<_, DbError>(Read::of(page, data, events_cursor(c, tenant_id, upto)?))
        })
        .await?;
    Ok(read.settled(db).await)
}

/// Group `id` of the tenant.
pub async fn group(db: &Db, tenant_id: i64, id: String) -> Result<Option<Value>, DbError> {
    db.read(move |c| {
        let Some(g) = groups::get(c, tenant_id, &id)? else {
            return Ok(None);
        };
        let name = g
            .data
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let count = groups::count_members(c, g.pk)?;
        let mut object = group_object(&g.id, name, count, &g.last_modified);
        object["external_id"] = g.data.get("externalId").cloned().unwrap_or(Value::Null);
        object["created_at"] = json!(g.created);
        Ok(Some(object))
    })
    .await
}

/// A page of group `id`'s direct members in the order they were added (one page of a
/// 100 000-member group costs one page); `None` for a group the tenant does not have.
pub async fn group_members(
    db: &Db,
    tenant_id: i64,
    id: String,
    cursor: Cursor,
    limit: usize,
) -> Result<Option<ListPage>, DbError> {
    let upto = db.durable_cursor();
    let read = db
        .snapshot(move |c| {
            let Some(g) = groups::get(c, tenant_id, &id)? else {
                return Ok::<_, DbError>(None);
            };
            let page = groups::member_page(c, tenant_id, g.pk, cursor, limit)?;
            let data = page
                .items
                .iter()
                .map(|m| {
                    let (member_id, role, status) = match &m.member {
                        Some((id, role, status)) => (json!(id), json!(role), json!(status)),
                        None => (Value::Null, Value::Null, Value::Null),
                    };
                    json!({
                        "object": "group_member",
                        "type": m.kind.as_str().to_ascii_lowercase(),
                        "id": m.id,
                        "display": m.display,
                        "user_name": m.user_name,
                        "member_id": member_id,
                        "role": role,
                        "status": status,
                    })
                })
                .collect();
            Ok(Some(Read::of(
                page,
                data,
                events_cursor(c, tenant_id, upto)?,
            )))
        })
        .await?;
    Ok(match read {
        Some(read) => Some(read.settled(db).await),
        None => None,
    })
}

/// The tenant's roles, highest first, the default role, the reserved group-name prefix and
/// the custom group → role mappings.
pub async fn roles(db: &Db, tenant_id: i64) -> Result<Value, DbError> {
    let s = db.read(move |c| settings::get(c, tenant_id)).await?;
    Ok(json!({
        "object": "roles",
        "roles": s.roles.iter().map(|r| {
            json!({"slug": r, "reserved_group": format!("{}{r}", s.role_prefix)})
        }).collect::<Vec<_>>(),
        "default_role": s.default_role,
        "role_prefix": s.role_prefix,
        "mappings": s.mappings.iter().map(|m| json!({"group": m.group, "role": m.role})).collect::<Vec<_>>(),
    }))
}
