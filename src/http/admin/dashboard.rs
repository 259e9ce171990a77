//! A tenant's dashboard: is the IdP connected, what did it last do, how big is the directory.

use askama::Template;
use hyper::StatusCode;

use super::filters;
use super::sync::RunRow;
use super::{Layout, PageResult, Req, html, layout};
use crate::db::{self, tenants::Tenant};
use crate::http::{Activity, State};
use crate::scim::datetime;
use crate::sync::{MemberStatus, TextEnum};

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
    /// Members per status, every status listed.
    by_status: Vec<(&'static str, i64)>,
    /// Members per role, in rank order, then roles the tenant no longer has.
    by_role: Vec<(String, i64)>,
    members: i64,
    last_run: Option<RunRow>,
    /// Webhook endpoints scimd disabled or an admin did: (id, URL, why).
    disabled_webhooks: Vec<(i64, String, String)>,
    /// Enabled endpoints whose retries have failed [`FAILING_SHOWN`] times or more: still
    /// retrying, but a receiver down for that long wants an admin to look.
    failing_webhooks: Vec<Failing>,
    /// Whether the request inspector records requests (the last ones link to it).
    inspector: bool,
}

/// Failed retries after which the dashboard shows an endpoint: the first retry comes 5 s
/// after a failure and the second 5 min later, so a receiver failing that long is down.
const FAILING_SHOWN: i64 = 3;

/// An endpoint still retrying an event that keeps failing.
struct Failing {
    id: i64,
    url: String,
    failures: i64,
    since: String,
    next: String,
}

pub(super) async fn page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    let id = tenant.id;
    let (tokens, (users, groups), active_users, counts, settings, last_run) = state
        .db
        .read(move |c| {
            Ok::<_, db::DbError>((
                db::tokens::list(c, Some(id))?,
                db::users::counts(c, id)?,
                db::users::count_active(c, id)?,
                db::members::counts_by_status_and_role(c, id)?,
                db::settings::get(c, id)?,
                db::sync_runs::recent(c, id, 1)?.into_iter().next(),
            ))
        })
        .await?;
    let by_status = MemberStatus::ALL
        .iter()
        .map(|&st| {
            let n = counts
                .iter()
                .filter(|(s, _, _)| *s == st)
                .map(|c| c.2)
                .sum();
            (st.as_str(), n)
        })
        .collect();
    let mut by_role: Vec<(String, i64)> = settings
        .roles
        .iter()
        .map(|r| {
            let n = counts
                .iter()
                .filter(|(_, role, _)| role == r)
                .map(|c| c.2)
                .sum();
            (r.to_string(), n)
        })
        .collect();
    for (_, role, n) in &counts {
        if settings.rank(role).is_none() {
            match by_role.iter_mut().find(|(name, _)| name == role.as_str()) {
                Some(entry) => entry.1 += n,
                None => by_role.push((role.to_string(), *n)),
            }
        }
    }
    let members = counts.iter().map(|c| c.2).sum();
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
    let endpoints = crate::ops::webhooks::list(&state.db, Some(id)).await?;
    let page = DashboardPage {
        layout: layout(state, req, Some(tenant), "dashboard").await?,
        status,
        last_used: latest,
        activity,
        live_tokens: live.len(),
        users,
        active_users,
        groups,
        by_status,
        by_role,
        members,
        last_run: last_run.map(RunRow::of),
        inspector: state.recorder.enabled(),
        disabled_webhooks: endpoints
            .iter()
            .filter(|e| !e.enabled)
            .map(|e| {
                let why = e
                    .disabled_reason
                    .clone()
                    .unwrap_or_else(|| "disabled".into());
                (e.id, crate::auth::webhooks::shown_url(&e.url), why)
            })
            .collect(),
        failing_webhooks: endpoints
            .iter()
            .filter(|e| e.enabled && e.failures >= FAILING_SHOWN)
            .map(|e| Failing {
                id: e.id,
                url: crate::auth::webhooks::shown_url(&e.url),
                failures: e.failures,
                since: e.failing_since.clone().unwrap_or_default(),
                next: e.next_attempt_at.clone().unwrap_or_default(),
            })
            .collect(),
    };
    html(StatusCode::OK, &page)
}
