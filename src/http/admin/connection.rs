//! The SCIM connection: the base URL to paste into the IdP, tokens (create, list, revoke,
//! regenerate) and a setup guide per IdP with this appliance's own URL.

use askama::Template;

use super::filters;
use super::{Layout, PageResult, Req, UiError, html, layout, page_status, redirect_with_flash};
use crate::db::{self, tenants::Tenant};
use crate::http::State;
use crate::ops;

/// A token shown once, right after it was made.
pub(super) struct NewSecret {
    pub name: String,
    pub secret: String,
}

#[derive(Template)]
#[template(path = "connection.html")]
struct ConnectionPage {
    layout: Layout,
    csrf: String,
    base_url: String,
    tokens: Vec<db::tokens::ScimToken>,
    new_secret: Option<NewSecret>,
    error: Option<String>,
}

/// The public root of this server.
fn root_url(state: &State, req: &Req) -> String {
    crate::http::public_root(&state.config, &req.headers, req.tls)
}

async fn render(
    state: &State,
    req: &Req,
    tenant: &Tenant,
    new_secret: Option<NewSecret>,
    error: Option<String>,
) -> PageResult {
    let s = req.session()?;
    let id = tenant.id;
    let tokens = state
        .db
        .read(move |c| db::tokens::list(c, Some(id)))
        .await?;
    let status = page_status(error.is_some());
    let page = ConnectionPage {
        layout: layout(state, req, Some(tenant), "connection").await?,
        csrf: s.session.csrf.clone(),
        base_url: format!("{}/scim/v2", root_url(state, req)),
        tokens,
        new_secret,
        error,
    };
    html(status, &page)
}

pub(super) async fn page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    render(state, req, tenant, None, None).await
}

/// Creates a token and shows it once, in this response (never stored in clear, never
/// put in a redirect or a cookie).
pub(super) async fn create_token(state: &State, req: &mut Req, tenant: &Tenant) -> PageResult {
    let form = req.form_once(state).await?;
    let name = match form.trimmed("name") {
        "" => "SCIM token".to_string(),
        n if n.chars().count() > 100 => {
            return render(
                state,
                req,
                tenant,
                None,
                Some("Keep the token name under 100 characters.".into()),
            )
            .await;
        }
        n => n.to_string(),
    };
    let expires_at = match super::expiry(form.get("expires_in_days")) {
        Ok(e) => e,
        Err(error) => return render(state, req, tenant, None, Some(error)).await,
    };
    let issued = ops::tokens::issue(
        &state.db,
        &req.actor()?,
        tenant.id,
        name.clone(),
        expires_at,
    )
    .await?;
    render(
        state,
        req,
        tenant,
        Some(NewSecret {
            name,
            secret: issued.token.secret,
        }),
        None,
    )
    .await
}

pub(super) async fn revoke_token(
    state: &State,
    req: &mut Req,
    tenant: &Tenant,
    id: &str,
) -> PageResult {
    req.form(state).await?;
    let id: i64 = id.parse().map_err(|_| UiError::NoSuchPage)?;
    ops::tokens::revoke(&state.db, &req.actor()?, tenant.id, id).await?;
    Ok(redirect_with_flash(
        req,
        &format!("/t/{}/connection", tenant.slug),
        "Token revoked. It stopped working immediately.",
    ))
}

/// Replaces a token: the old one stops working and a new one with the same name and
/// expiry policy is shown once.
pub(super) async fn regenerate_token(
    state: &State,
    req: &mut Req,
    tenant: &Tenant,
    id: &str,
) -> PageResult {
    req.form_once(state).await?;
    let id: i64 = id.parse().map_err(|_| UiError::NoSuchPage)?;
    let (name, new) = ops::tokens::regenerate(&state.db, &req.actor()?, tenant.id, id).await?;
    render(
        state,
        req,
        tenant,
        Some(NewSecret {
            name,
            secret: new.token.secret,
        }),
        None,
    )
    .await
}
