//! Tenants: one per IdP connection or organisation.

use askama::Template;

use super::access::{reauth, unproven};
use super::audit::Gone;
use super::filters;
use super::{Layout, PageResult, Req, UiError, html, layout, page_status, redirect_with_flash};
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
    /// The latest tenants deleted, newest first, whose audit entries are kept.
    deleted: Vec<Gone>,
    error: Option<String>,
    slug: String,
    name: String,
}

/// The deleted tenants the Tenants page lists, the latest first (the audit log outside
/// tenants has every one).
const DELETED_SHOWN: u64 = 20;

pub(super) async fn list_page(
    state: &State,
    req: &Req,
    error: Option<(String, String, String)>,
) -> PageResult {
    let s = req.session()?;
    let (rows, deleted) = state
        .db
        .read(|c| {
            let rows = db::tenants::list(c)?
                .into_iter()
                .map(|tenant| {
                    let (users, groups) = db::users::counts(c, tenant.id)?;
                    Ok(TenantRow {
                        tenant,
                        users,
                        groups,
                    })
                })
                .collect::<Result<Vec<_>, DbError>>()?;
            let deletions = db::audit::Filter {
                tenant_id: Some(None),
                action: Some(db::audit::Action::TenantDeleted),
                last: Some(DELETED_SHOWN),
                ..Default::default()
            };
            let deleted = db::audit::list(c, &deletions)?.into_iter().rev();
            Ok::<_, DbError>((rows, deleted.filter_map(Gone::of).collect()))
        })
        .await?;
    let (error, slug, name) = match error {
        Some((e, s, n)) => (Some(e), s, n),
        None => (None, String::new(), String::new()),
    };
    let status = page_status(error.is_some());
    let page = TenantsPage {
        layout: layout(state, req, None, "").await?,
        csrf: s.session.csrf.clone(),
        rows,
        deleted,
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

#[derive(Template)]
#[template(path = "tenant_delete.html")]
struct DeletePage {
    layout: Layout,
    csrf: String,
    tenant: db::tenants::Tenant,
    held: db::tenants::Contents,
    /// Whether it is the only tenant (which cannot be deleted).
    last: bool,
    error: Option<String>,
}

/// `/tenants/{slug}/delete`: what deleting the tenant removes, and the confirmation.
pub(super) async fn delete_page(
    state: &State,
    req: &Req,
    slug: &str,
    error: Option<String>,
) -> PageResult {
    let s = req.session()?;
    let slug = slug.to_string();
    let (tenant, held, last) = state
        .db
        .read(move |c| {
            let t = db::tenants::by_slug(c, &slug)?;
            let held = db::tenants::contents(c, t.id)?;
            let last = db::tenants::list(c)?.len() == 1;
            Ok::<_, DbError>((t, held, last))
        })
        .await
        .map_err(|e| match e {
            DbError::NotFound => UiError::NoSuchPage,
            e => e.into(),
        })?;
    let status = page_status(error.is_some());
    let page = DeletePage {
        layout: layout(state, req, None, "").await?,
        csrf: s.session.csrf.clone(),
        tenant,
        held,
        last,
        error,
    };
    html(status, &page)
}

pub(super) async fn delete(state: &State, req: &mut Req, slug: &str) -> PageResult {
    let form = req.form(state).await?;
    if form.trimmed("confirm") != slug {
        let typed = format!("Type the tenant's slug, {slug}, to confirm.");
        return delete_page(state, req, slug, Some(typed)).await;
    }
    let (actor, reauth) = (req.actor()?, reauth(req, &form)?);
    let deleted = crate::ops::admins::delete_tenant_proven(&state.db, &actor, reauth, slug.into());
    let proof = match deleted.await {
        Ok(proof) => proof,
        Err(DbError::Conflict(m)) => return delete_page(state, req, slug, Some(m)).await,
        Err(e) => return Err(e.into()),
    };
    let again = |e| delete_page(state, req, slug, Some(e));
    if let Some(r) = unproven(proof, "Your password is wrong.", again).await? {
        return Ok(r);
    }
    Ok(redirect_with_flash(
        req,
        "/tenants",
        &format!(
            "Tenant {slug} deleted. Its data is being removed in the background; its audit entries stay."
        ),
    ))
}
