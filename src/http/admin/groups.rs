//! Groups: the directory's groups with their member counts, and a group's page with its
//! members a page at a time and the role the group gives.

use askama::Template;
use hyper::StatusCode;
use serde_json::Value;

use super::filters;
use super::people::{group_role, link};
use super::{Layout, PageResult, Req, html, layout};
use crate::db::groups::{GroupMemberRow, GroupSummary, NameClash};
use crate::db::paging::Cursor;
use crate::db::{self, DbError, tenants::Tenant};
use crate::http::State;

/// Groups or group members per page.
const PAGE: usize = 50;

/// A listed group with the role it gives.
struct GroupLine {
    g: GroupSummary,
    role: String,
}

#[derive(Template)]
#[template(path = "groups.html")]
struct GroupsPage {
    layout: Layout,
    q: String,
    rows: Vec<GroupLine>,
    prev: Option<String>,
    next: Option<String>,
    /// Names several groups share, stored before names were unique: listed until resolved.
    clashes: Vec<NameClash>,
}

pub(super) async fn list_page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    let q = req.query("q").unwrap_or("").trim().to_string();
    let cursor = Cursor::from_query(req.query("after"), req.query("before"));
    let (id, search) = (tenant.id, q.clone());
    let (settings, page, clashes) = state
        .db
        .read(move |c| {
            Ok::<_, DbError>((
                db::settings::get(c, id)?,
                db::groups::page(c, id, Some(&search), cursor, PAGE)?,
                db::groups::name_clashes(c, Some(id))?,
            ))
        })
        .await?;
    let base = format!("/t/{}/groups", tenant.slug);
    let keep = |k: &str, v: i64| link(&base, &[("q", &q), (k, &v.to_string())]);
    let page = GroupsPage {
        layout: layout(state, req, Some(tenant), "groups").await?,
        prev: page.prev.map(|k| keep("before", k)),
        next: page.next.map(|k| keep("after", k)),
        rows: page
            .items
            .into_iter()
            .map(|g| GroupLine {
                role: group_role(&settings, &g.display_name),
                g,
            })
            .collect(),
        q,
        clashes,
    };
    html(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "group.html")]
struct GroupPage {
    layout: Layout,
    id: String,
    name: String,
    external_id: Option<String>,
    created: String,
    last_modified: String,
    role: String,
    prefix: String,
    total: i64,
    members: Vec<GroupMemberRow>,
    prev: Option<String>,
    next: Option<String>,
}

pub(super) async fn group_page(state: &State, req: &Req, tenant: &Tenant, id: &str) -> PageResult {
    let cursor = Cursor::from_query(req.query("after"), req.query("before"));
    let (tenant_id, gid) = (tenant.id, id.to_string());
    let (group, settings, total, page) = state
        .db
        .read(move |c| {
            let g = db::groups::get(c, tenant_id, &gid)?.ok_or(DbError::NotFound)?;
            Ok::<_, DbError>((
                db::settings::get(c, tenant_id)?,
                db::groups::count_members(c, g.pk)?,
                db::groups::member_page(c, tenant_id, g.pk, cursor, PAGE)?,
                g,
            ))
        })
        .await
        .map(|(s, n, p, g)| (g, s, n, p))?;
    let text = |k: &str| {
        group
            .data
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let name = text("displayName").unwrap_or_default();
    let base = format!("/t/{}/groups/{}", tenant.slug, group.id);
    let keep = |k: &str, v: i64| link(&base, &[(k, &v.to_string())]);
    let page = GroupPage {
        layout: layout(state, req, Some(tenant), "groups").await?,
        id: group.id.clone(),
        role: group_role(&settings, &name),
        prefix: settings.role_prefix.clone(),
        external_id: text("externalId"),
        created: group.created.clone(),
        last_modified: group.last_modified.clone(),
        name,
        total,
        prev: page.prev.map(|k| keep("before", k)),
        next: page.next.map(|k| keep("after", k)),
        members: page.items,
    };
    html(StatusCode::OK, &page)
}
