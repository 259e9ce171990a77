//! A tenant's dashboard: is the IdP connected, what did it last do, how big is the directory.

use askama::Template;
use hyper::StatusCode;

use super::filters;
use super::{Layout, PageResult, Req, html, layout};
use crate::db::{self, tenants::Tenant};
use crate::http::{Activity, State};
use crate::scim::datetime;

/// How recent the last SCIM call must be for the IdP to count as connected.
const CONNECTED_WITHIN_MINUTES: i64 = 60;

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    layout: Layout,
    /// "connected", "idle" or "waiting".
    status: &'static str,
    last_used: Option<String>,
    activity: Activity,
    live_tokens: usize,
    users: i64,
    active_users: i64,
    groups: i64,
}

pub(super) async fn page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    let id = tenant.id;
    let (tokens, (users, groups), active_users) = state
        .db
        .read(move |c| {
            Ok::<_, db::DbError>((
                db::tokens::list(c, Some(id))?,
                db::users::counts(c, id)?,
                db::users::count_active(c, id)?,
            ))
        })
        .await?;
    let live: Vec<_> = tokens.iter().filter(|t| t.revoked_at.is_none()).collect();
    let last_used = tokens.iter().filter_map(|t| t.last_used_at.clone()).max();
    let activity = state.activity(id);
    let recent = datetime::format(
        time::OffsetDateTime::now_utc() - time::Duration::minutes(CONNECTED_WITHIN_MINUTES),
    );
    let latest = [
        last_used.clone(),
        activity.last.as_ref().map(|c| c.at.clone()),
    ]
    .into_iter()
    .flatten()
    .max();
    let status = match &latest {
        Some(t) if *t >= recent => "connected",
        Some(_) => "idle",
        None => "waiting",
    };
    let page = DashboardPage {
        layout: layout(state, req, Some(tenant), "dashboard").await?,
        status,
        last_used: latest,
        activity,
        live_tokens: live.len(),
        users,
        active_users,
        groups,
    };
    html(StatusCode::OK, &page)
}
