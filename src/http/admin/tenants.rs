//! Tenants: one per IdP connection or organisation.

use askama::Template;
use hyper::StatusCode;

use super::filters;
use super::{Layout, PageResult, Req, html, layout, redirect_with_flash};
use crate::db::{self, DbError};
use crate::http::State;

/// A tenant with the size of its directory.
pub(super) struct TenantRow {
    pub tenant: db::tenants::Tenant,
    pub users: i64,
    pub groups: i64,
}

#[derive(Template)]
#[template(path = "tenants.html")]
struct TenantsPage {
    layout: Layout,
    csrf: String,
    rows: Vec<TenantRow>,
    error: Option<String>,
    slug: String,
    name: String,
}

pub(super) async fn list_page(
    state: &State,
    req: &Req,
    error: Option<(String, String, String)>,
) -> PageResult {
    let s = req.session()?;
    let rows = state
        .db
        .read(|c| {
            db::tenants::list(c)?
                .into_iter()
                .map(|tenant| {
                    let (users, groups) = db::users::counts(c, tenant.id)?;
                    Ok(TenantRow {
                        tenant,
                        users,
                        groups,
                    })
                })
                .collect::<Result<Vec<_>, DbError>>()
        })
        .await?;
    let (error, slug, name) = match error {
        Some((e, s, n)) => (Some(e), s, n),
        None => (None, String::new(), String::new()),
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = TenantsPage {
        layout: layout(state, req, None, "").await?,
        csrf: s.session.csrf.clone(),
        rows,
        error,
        slug,
        name,
    };
    html(status, &page)
}

pub(super) async fn create(state: &State, req: &mut Req) -> PageResult {
    let form = req.form(state).await?;
    let slug = form.trimmed("slug").to_string();
    let name = match form.trimmed("name") {
        "" => slug.clone(),
        n => n.to_string(),
    };
    let actor = req.actor()?;
    let created = crate::ops::admins::create_tenant(&state.db, &actor, slug.clone(), name.clone());
    match created.await {
        Ok(t) => Ok(redirect_with_flash(
            req,
            &format!("/t/{}/connection", t.slug),
            &format!(
                "Tenant {} created. Create a SCIM token for it below.",
                t.name
            ),
        )),
        Err(DbError::Conflict(m)) => list_page(state, req, Some((m, slug, name))).await,
        Err(e) => Err(e.into()),
    }
}
