//! The apps area of a tenant: app API keys (created and shown once, listed, revoked) and
//! the events page, which browses the feed apps follow, by type and by member or group.

use askama::Template;
use hyper::StatusCode;

use super::filters;
use super::{Layout, PageResult, Req, UiError, html, layout, redirect_with_flash};
use crate::db::events::{self, EventType};
use crate::db::{api_keys, tenants::Tenant};
use crate::http::State;
use crate::model::TextEnum;
use crate::ops;

/// A key shown once, right after it was made.
pub(super) struct NewKey {
    pub name: String,
    pub secret: String,
}

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage {
    layout: Layout,
    csrf: String,
    api_url: String,
    keys: Vec<api_keys::ApiKey>,
    new_key: Option<NewKey>,
    error: Option<String>,
}

async fn render(
    state: &State,
    req: &Req,
    tenant: &Tenant,
    new_key: Option<NewKey>,
    error: Option<String>,
) -> PageResult {
    let s = req.session()?;
    let id = tenant.id;
    let keys = state.db.read(move |c| api_keys::list(c, Some(id))).await?;
    let page = AppsPage {
        layout: layout(state, req, Some(tenant), "apps").await?,
        csrf: s.session.csrf.clone(),
        api_url: format!(
            "{}/api/v1",
            crate::http::public_root(&state.config, &req.headers, req.tls)
        ),
        keys,
        new_key,
        error,
    };
    let status = if page.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    html(status, &page)
}

pub(super) async fn page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    render(state, req, tenant, None, None).await
}

/// Creates a key and shows it once, in this response only.
pub(super) async fn create_key(state: &State, req: &mut Req, tenant: &Tenant) -> PageResult {
    let form = req.form(state).await?;
    let name = form.trimmed("name").to_string();
    if name.is_empty() || name.chars().count() > 100 {
        let error = "Give the key a name of 1 to 100 characters.".to_string();
        return render(state, req, tenant, None, Some(error)).await;
    }
    let expires_at = match super::expiry(form.get("expires_in_days")) {
        Ok(e) => e,
        Err(error) => return render(state, req, tenant, None, Some(error)).await,
    };
    let actor = req.actor()?;
    let issued =
        ops::apikeys::issue(&state.db, &actor, Some(tenant.id), name.clone(), expires_at).await?;
    let new_key = NewKey {
        name,
        secret: issued.token.secret,
    };
    render(state, req, tenant, Some(new_key), None).await
}

pub(super) async fn revoke_key(
    state: &State,
    req: &mut Req,
    tenant: &Tenant,
    id: &str,
) -> PageResult {
    req.form(state).await?;
    let id: i64 = id.parse().map_err(|_| UiError::NotFound)?;
    ops::apikeys::revoke(&state.db, &req.actor()?, Some(tenant.id), id).await?;
    Ok(redirect_with_flash(
        req,
        &format!("/t/{}/apps", tenant.slug),
        "API key revoked. It stopped working immediately.",
    ))
}

/// One event as the events page lists it.
struct EventRow {
    seq: i64,
    kind: String,
    at: String,
    subject: String,
    actor: String,
    via: String,
    json: String,
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    layout: Layout,
    types: Vec<&'static str>,
    kind: String,
    subject: String,
    rows: Vec<EventRow>,
    /// The `before` of the next (older) page, when there is one.
    older: Option<i64>,
    latest: i64,
}

/// Events per page.
const EVENTS_PAGE: u32 = 50;

pub(super) async fn events_page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    let kind_text = req.query("type").unwrap_or("").to_string();
    let kind = match kind_text.as_str() {
        "" => None,
        k => Some(
            k.parse::<EventType>()
                .map_err(|e| UiError::BadRequest(e.to_string()))?,
        ),
    };
    let subject = req.query("subject").unwrap_or("").trim().to_string();
    let before = req.query("before").and_then(|b| b.parse::<i64>().ok());
    let (id, who) = (tenant.id, subject.clone());
    let (list, (latest, _)) = state
        .db
        .read(move |c| {
            let who = Some(who.as_str()).filter(|s| !s.is_empty());
            let list = events::recent(c, id, before, EVENTS_PAGE + 1, kind, who)?;
            Ok::<_, crate::db::DbError>((list, events::bounds(c, id)?))
        })
        .await?;
    let more = list.len() > EVENTS_PAGE as usize;
    let rows: Vec<EventRow> = list
        .iter()
        .take(EVENTS_PAGE as usize)
        .map(|e| {
            let object = ops::events::object(e);
            EventRow {
                seq: e.seq,
                kind: e.kind.as_str().to_string(),
                at: e.created_at.clone(),
                subject: e.subject.clone(),
                actor: e.actor.clone().unwrap_or_default(),
                via: object["context"]["via"].as_str().unwrap_or("").to_string(),
                json: serde_json::to_string_pretty(&object).unwrap_or_default(),
            }
        })
        .collect();
    let page = EventsPage {
        layout: layout(state, req, Some(tenant), "apps").await?,
        types: EventType::ALL.iter().map(|t| t.as_str()).collect(),
        kind: kind_text,
        subject,
        older: if more {
            rows.last().map(|r| r.seq)
        } else {
            None
        },
        rows,
        latest,
    };
    html(StatusCode::OK, &page)
}
