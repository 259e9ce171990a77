//! The guard against mass deprovisioning: what it holds, and the admin's decision.

use askama::Template;
use hyper::StatusCode;

use super::filters;
use super::{Layout, PageResult, Req, UiError, html, layout, redirect_with_flash};
use crate::db::DbError;
use crate::db::guard::HoldState;
use crate::db::tenants::Tenant;
use crate::http::State;
use crate::ops::guard::{self, Status};

/// Held deprovisionings listed on the page.
const LISTED: usize = 500;

#[derive(Template)]
#[template(path = "guard.html")]
struct GuardPage {
    layout: Layout,
    csrf: String,
    status: Option<Status>,
    rejected: bool,
}

pub(super) async fn page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    let s = req.session()?;
    let status = guard::status(&state.db, tenant.id, LISTED).await?;
    let page = GuardPage {
        layout: layout(state, req, Some(tenant), "guard").await?,
        csrf: s.session.csrf.clone(),
        rejected: status
            .as_ref()
            .is_some_and(|s| s.hold.state == HoldState::Rejected),
        status,
    };
    html(StatusCode::OK, &page)
}

pub(super) async fn decide(
    state: &State,
    req: &mut Req,
    tenant: &Tenant,
    id: &str,
    decision: &str,
) -> PageResult {
    let form = req.form(state).await?;
    let id: i64 = id.parse().map_err(|_| UiError::NoSuchPage)?;
    let actor = req.actor()?;
    let decided = match decision {
        "approve" => {
            // What the page showed: an approval applies that, or nothing.
            let seen = Some(form.get("held").to_string());
            guard::approve(&state.db, &actor, tenant.id, id, seen)
                .await
                .map(|n| format!("Approved: {n} held changes applied."))
        }
        "reject" => guard::reject(&state.db, &actor, tenant.id, id)
            .await
            .map(|()| {
                "Rejected: members stay as they are. Deprovisionings stay held until the IdP's \
                 directory changes back (or you approve after all)."
                    .to_string()
            }),
        _ => return Err(UiError::NoSuchPage),
    };
    // Decided or changed meanwhile (by the IdP, another admin): back to the page as it is.
    let message = match decided {
        Err(DbError::Conflict(message)) => message,
        decided => decided?,
    };
    Ok(redirect_with_flash(
        req,
        &format!("/t/{}/guard", tenant.slug),
        &message,
    ))
}
