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

impl ListPage {
    fn of<T>(page: Keyset<T>, data: Vec<Value>, events_cursor: i64) -> ListPage {
        ListPage {
            data,
            before: page.prev,
            after: page.next,
            events_cursor,
        }
    }
}

/// The newest event `seq` apps may be shown (`Db::durable_cursor`): where one resumes
/// after a list read in the same snapshot.
fn events_cursor(conn: &Conn, tenant_id: i64, upto: i64) -> Result<i64, DbError> {
    Ok(events::shown_bounds(conn, tenant_id, upto)?.0)
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
    db.snapshot(move |c| {
        let page = members::page(c, tenant_id, &filter, cursor, limit)?;
        let data = page
            .items
            .iter()
            .map(|m| api_object(c, tenant_id, m))
            .collect::<Result<_, _>>()?;
        Ok(ListPage::of(page, data, events_cursor(c, tenant_id, upto)?))
    })
    .await
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
    db.snapshot(move |c| {
        let page = groups::page(c, tenant_id, None, cursor, limit)?;
        let data = page
            .items
            .iter()
            .map(|g| {
                let mut object = group_object(&g.id, &g.display_name, g.members, &g.last_modified);
                object["external_id"] = json!(g.external_id);
                object
            })
            .collect();
        Ok(ListPage::of(page, data, events_cursor(c, tenant_id, upto)?))
    })
    .await
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
    db.snapshot(move |c| {
        let Some(g) = groups::get(c, tenant_id, &id)? else {
            return Ok(None);
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
        Ok(Some(ListPage::of(
            page,
            data,
            events_cursor(c, tenant_id, upto)?,
        )))
    })
    .await
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
